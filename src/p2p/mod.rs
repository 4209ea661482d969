//! The P2P tier: a small BitTorrent engine that fetches the pieces readers
//! need from peers, resolves magnets over ut_metadata, and seeds from the cache.
//!
//! # Design
//! Formats are pure (`wire`, the tracker and KRPC parsers): bytes in,
//! values out. Peer discovery (`tracker`, `dht`, `lsd`, PEX) only produces
//! addresses; the swarm of each torrent decides whom to connect to. Like
//! every tier, P2P writes verified pieces into the store and never serves a
//! reader directly.

mod blame;
pub mod dht;
pub mod lsd;
mod metadata;
pub mod mse;
mod peer;
mod picker;
mod shared;
mod swarm;
pub mod tracker;
pub mod utp;
pub mod wire;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_io::Timer;
use futures_lite::future;
use smol::net::TcpListener;

pub use shared::Shared;
pub use swarm::{Swarm, SwarmCtx, SwarmStats};

use crate::config::Config;
use crate::format::InfoHash;
use crate::http::Client;
use wire::PeerId;

/// The P2P tier of this box: our peer id, the listening socket, the swarms,
/// and the limits they share. Cheap to clone.
#[derive(Clone)]
pub struct P2p {
    inner: Arc<Inner>,
}

struct Inner {
    /// What every swarm shares: peer id, port, limits, DHT and LSD.
    shared: Arc<Shared>,
    swarms: Mutex<HashMap<InfoHash, Weak<Swarm>>>,
}

impl P2p {
    /// Listens for peers on `HOST:TORRENT_PORT` and starts accepting them.
    pub async fn start(config: Arc<Config>, client: Client) -> std::io::Result<P2p> {
        let listener = TcpListener::bind((config.host, config.torrent_port)).await?;
        let port = listener.local_addr()?.port();
        let peer_id = PeerId::generate();
        log::info!("[P2P] Listening for peers on port {port}");
        // uTP (`ENABLE_UTP`, on by default) on the UDP port of the same
        // number; the DHT shares its socket. Off, nothing listens for uTP and every dial is TCP.
        let utp = if config.enable_utp {
            match utp::UtpSocket::bind(
                (config.host, port).into(),
                utp::Limits {
                    max_connections: config.max_connections as usize,
                    ..utp::Limits::default()
                },
            ) {
                Ok(u) => Some(Arc::new(u)),
                Err(e) => {
                    log::warn!("[P2P] uTP off: cannot bind UDP port {port}: {e}");
                    None
                }
            }
        } else {
            None
        };
        let dht = if config.enable_dht {
            // The DHT is IPv4 only; it listens where the peers do.
            let ip = match config.host {
                std::net::IpAddr::V4(ip) => ip,
                std::net::IpAddr::V6(_) => std::net::Ipv4Addr::UNSPECIFIED,
            };
            let state = config.cache_dir.join("dht.dat");
            let bootstrap = config.dht_bootstrap.clone();
            let started = match &utp {
                Some(u) if u.local_addr().is_ipv4() => {
                    dht::Dht::start_shared(u.udp(), u.dht_inbox(), bootstrap, state).await
                }
                _ => dht::Dht::start((ip, port).into(), bootstrap, state).await,
            };
            match started {
                Ok(d) => Some(d),
                Err(e) => {
                    log::warn!("[P2P] DHT off: cannot bind UDP port {port}: {e}");
                    None
                }
            }
        } else {
            None
        };
        let lsd = if config.enable_lsd {
            match lsd::Lsd::start(config.lsd_group, config.lsd_interface, port).await {
                Ok(l) => Some(l),
                Err(e) => {
                    log::warn!("[P2P] Local Service Discovery off: {e}");
                    None
                }
            }
        } else {
            None
        };
        let heard = lsd.as_ref().map(lsd::Lsd::incoming);
        let p2p = P2p {
            inner: Arc::new(Inner {
                shared: Arc::new(Shared::new(
                    config,
                    client,
                    peer_id,
                    port,
                    dht,
                    lsd,
                    utp.clone(),
                )),
                swarms: Mutex::new(HashMap::new()),
            }),
        };
        if let Some(heard) = heard {
            // LSD announces from the LAN go to the swarm of their torrent.
            let weak = Arc::downgrade(&p2p.inner);
            smol::spawn(async move {
                while let Ok((ih, addr)) = heard.recv().await {
                    let Some(inner) = weak.upgrade() else { return };
                    if let Some(swarm) = (P2p { inner }).swarm_of(&ih) {
                        swarm.add_peers([addr], swarm::Origin::Lsd);
                    }
                }
            })
            .detach();
        }
        let weak = Arc::downgrade(&p2p.inner);
        smol::spawn(async move {
            while let Ok((stream, addr)) = listener.accept().await {
                let Some(inner) = weak.upgrade() else { return };
                let p2p = P2p { inner };
                p2p.admit(peer::Conn::tcp(stream, addr));
            }
        })
        .detach();
        if let Some(utp) = utp {
            // Incoming uTP connections take the same path and caps as TCP.
            let weak = Arc::downgrade(&p2p.inner);
            smol::spawn(async move {
                while let Some(stream) = utp.accept().await {
                    let Some(inner) = weak.upgrade() else { return };
                    let p2p = P2p { inner };
                    log::debug!("[P2P] incoming uTP connection from {}", stream.peer_addr());
                    p2p.admit(peer::Conn::utp(stream));
                }
            })
            .detach();
        }
        Ok(p2p)
    }

    /// An incoming connection, over either transport: refused at the caps
    /// (`MAX_HANDSHAKING`, `MAX_CONNECTIONS`), else welcomed.
    fn admit(&self, conn: peer::Conn) {
        // The place is taken here, before the spawn: a burst of
        // connections cannot get past `MAX_HANDSHAKING`.
        let turn = match self.inner.shared.handshaking.try_take() {
            Some(turn) if self.inner.shared.has_room() => turn,
            _ => {
                log::debug!("[P2P] refusing {}: at the connection limit", conn.addr);
                return;
            }
        };
        let p2p = self.clone();
        smol::spawn(async move {
            let _turn = turn;
            p2p.welcome(conn).await
        })
        .detach();
    }

    /// Reads an incoming handshake (plain or MSE), over either transport,
    /// and hands the connection to its swarm.
    async fn welcome(&self, conn: peer::Conn) {
        // The caller holds this connection's place under `MAX_HANDSHAKING`.
        let addr = conn.addr;
        // The SKEYs an MSE peer may ask for: the torrents whose swarms run.
        let skeys: Vec<InfoHash> = self.inner.swarms.lock().unwrap().keys().copied().collect();
        let policy = self.inner.shared.config().encryption;
        let opened = peer::read_incoming(conn, policy, &skeys).await;
        let (conn, theirs) = match opened {
            Ok(opened) => opened,
            Err(e) => return log::debug!("[P2P] incoming {addr}: {e}"),
        };
        match self.swarm_of(&theirs.info_hash) {
            Some(swarm) => swarm.accept(conn, theirs),
            None => log::debug!(
                "[P2P] incoming {addr} asks for {}, which we do not have",
                theirs.info_hash
            ),
        }
    }

    fn swarm_of(&self, ih: &InfoHash) -> Option<Arc<Swarm>> {
        self.inner.swarms.lock().unwrap().get(ih)?.upgrade()
    }

    /// A new swarm for a torrent's controller; it replaces any older swarm of
    /// the same hash (a removed torrent's, still saying `stopped`), which is
    /// never handed to a new torrent. Its `run` future must be polled for it
    /// to find peers; dropping that future ends it.
    pub fn swarm(&self, ctx: SwarmCtx) -> Arc<Swarm> {
        let mut swarms = self.inner.swarms.lock().unwrap();
        // Entries of swarms nobody holds any more go first: the map stays as
        // small as the torrents that run.
        swarms.retain(|_, w| w.strong_count() > 0);
        let ih = ctx.info_hash;
        let s = Swarm::new(self.inner.shared.clone(), ctx);
        swarms.insert(ih, Arc::downgrade(&s));
        s
    }

    /// Sends `stopped` to the trackers of every swarm, in parallel, within a few seconds.
    pub async fn shut_down(&self) {
        let swarms: Vec<Arc<Swarm>> = self
            .inner
            .swarms
            .lock()
            .unwrap()
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        let stops: Vec<smol::Task<()>> = swarms
            .into_iter()
            .map(|s| smol::spawn(async move { s.stop_announcing().await }))
            .collect();
        let all = async {
            for t in stops {
                t.await;
            }
        };
        future::or(all, async {
            Timer::after(Duration::from_secs(4)).await;
        })
        .await;
        if let Some(d) = &self.inner.shared.dht {
            // The next start finds nodes at once, without the bootstrap routers.
            if let Err(e) = d.save().await {
                log::warn!("[P2P] cannot save the DHT table: {e}");
            }
        }
    }

    pub fn peer_id(&self) -> PeerId {
        self.inner.shared.peer_id()
    }

    pub fn port(&self) -> u16 {
        self.inner.shared.port()
    }

    pub fn config(&self) -> &Config {
        self.inner.shared.config()
    }
}
