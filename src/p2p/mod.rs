//! The P2P tier: a small BitTorrent engine that fetches the pieces readers
//! need from peers, resolves magnets over ut_metadata, and seeds from the cache.
//!
//! # Design
//! Formats are pure (`wire`, the tracker and KRPC parsers): bytes in,
//! values out. Peer discovery (`tracker`, `dht`, `lsd`, PEX) only produces
//! addresses; the swarm of each torrent decides whom to connect to. Like
//! every tier, P2P writes verified pieces into the store and never serves a
//! reader directly.

pub mod dht;
pub mod lsd;
mod metadata;
mod peer;
mod picker;
mod swarm;
pub mod tracker;
pub mod utp;
pub mod wire;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_io::Timer;
use futures_lite::future;
use smol::net::{TcpListener, TcpStream};

pub use swarm::Swarm;

use crate::config::Config;
use crate::format::InfoHash;
use crate::http::Client;
use crate::session::{Session, Torrent};
use wire::PeerId;

/// Handshakes read at once from incoming connections; more wait in the
/// kernel's backlog, so a connection flood costs no memory.
const MAX_HANDSHAKING: u32 = 16;

/// The P2P tier of this box: our peer id, the listening socket, the swarms,
/// and the limits they share. Cheap to clone.
#[derive(Clone)]
pub struct P2p {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<Config>,
    client: Client,
    peer_id: PeerId,
    /// The TCP port peers reach us on (`TORRENT_PORT`, or the kernel's choice).
    port: u16,
    swarms: Mutex<HashMap<InfoHash, Weak<Swarm>>>,
    /// Peer connections open or opening, over every torrent (`MAX_CONNECTIONS`).
    connections: AtomicU32,
    handshaking: AtomicU32,
    /// The upload cap's token bucket: bytes allowed, and when last refilled.
    upload: Mutex<(f64, Instant)>,
    downloaded: AtomicU64,
    uploaded: AtomicU64,
    /// The mainline DHT node (`ENABLE_DHT`), on the UDP port of the same number.
    dht: Option<dht::Dht>,
    /// Local Service Discovery (`ENABLE_LSD`).
    lsd: Option<lsd::Lsd>,
}

/// A peer connection's place under `MAX_CONNECTIONS`, given back on drop.
pub struct Slot(Arc<Inner>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl P2p {
    /// Listens for peers on `HOST:TORRENT_PORT` and starts accepting them.
    pub async fn start(config: Arc<Config>, client: Client) -> std::io::Result<P2p> {
        let listener = TcpListener::bind((config.host, config.torrent_port)).await?;
        let port = listener.local_addr()?.port();
        let peer_id = PeerId::generate();
        log::info!("[P2P] Listening for peers on port {port}");
        let dht = if config.enable_dht {
            // The DHT is IPv4 only; it listens where the peers do.
            let ip = match config.host {
                std::net::IpAddr::V4(ip) => ip,
                std::net::IpAddr::V6(_) => std::net::Ipv4Addr::UNSPECIFIED,
            };
            let state = config.cache_dir.join("dht.dat");
            match dht::Dht::start((ip, port).into(), config.dht_bootstrap.clone(), state).await {
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
                config,
                client,
                peer_id,
                port,
                swarms: Mutex::new(HashMap::new()),
                connections: AtomicU32::new(0),
                handshaking: AtomicU32::new(0),
                upload: Mutex::new((0.0, Instant::now())),
                downloaded: AtomicU64::new(0),
                uploaded: AtomicU64::new(0),
                dht,
                lsd,
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
                if p2p.inner.handshaking.load(Ordering::Relaxed) >= MAX_HANDSHAKING
                    || !p2p.has_room()
                {
                    log::debug!("[P2P] refusing {addr}: at the connection limit");
                    continue;
                }
                smol::spawn(async move { p2p.welcome(stream, addr).await }).detach();
            }
        })
        .detach();
        Ok(p2p)
    }

    /// Reads an incoming handshake and hands the connection to its swarm.
    async fn welcome(&self, mut stream: TcpStream, addr: SocketAddr) {
        self.inner.handshaking.fetch_add(1, Ordering::Relaxed);
        let theirs = peer::read_handshake(&mut stream).await;
        self.inner.handshaking.fetch_sub(1, Ordering::Relaxed);
        let theirs = match theirs {
            Ok(h) => h,
            Err(e) => return log::debug!("[P2P] incoming {addr}: {e}"),
        };
        match self.swarm_of(&theirs.info_hash) {
            Some(swarm) => swarm.accept(peer::Conn::tcp(stream, addr), theirs),
            None => log::debug!(
                "[P2P] incoming {addr} asks for {}, which we do not have",
                theirs.info_hash
            ),
        }
    }

    fn swarm_of(&self, ih: &InfoHash) -> Option<Arc<Swarm>> {
        self.inner.swarms.lock().unwrap().get(ih)?.upgrade()
    }

    /// The swarm of a torrent, created on first use. Its `run` future must be
    /// polled for it to find peers; dropping that future ends it.
    pub fn swarm(&self, session: &Session, torrent: &Arc<Torrent>) -> Arc<Swarm> {
        let mut swarms = self.inner.swarms.lock().unwrap();
        if let Some(s) = swarms.get(&torrent.info_hash).and_then(Weak::upgrade) {
            return s;
        }
        let s = Swarm::new(self.clone(), session.clone(), torrent.clone());
        swarms.insert(torrent.info_hash, Arc::downgrade(&s));
        s
    }

    fn forget(&self, ih: &InfoHash) {
        let mut swarms = self.inner.swarms.lock().unwrap();
        if swarms.get(ih).is_some_and(|w| w.strong_count() <= 1) {
            swarms.remove(ih);
        }
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
        if let Some(d) = &self.inner.dht {
            // The next start finds nodes at once, without the bootstrap routers.
            if let Err(e) = d.save().await {
                log::warn!("[P2P] cannot save the DHT table: {e}");
            }
        }
    }

    pub fn peer_id(&self) -> PeerId {
        self.inner.peer_id
    }

    pub fn port(&self) -> u16 {
        self.inner.port
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn client(&self) -> Client {
        self.inner.client.clone()
    }

    /// Whether another peer connection fits under `MAX_CONNECTIONS`.
    pub fn has_room(&self) -> bool {
        self.inner.connections.load(Ordering::Relaxed) < self.inner.config.max_connections
    }

    /// Takes a connection's place under `MAX_CONNECTIONS`.
    fn slot(&self) -> Slot {
        self.inner.connections.fetch_add(1, Ordering::Relaxed);
        Slot(self.inner.clone())
    }

    /// The DHT's UDP port, told to peers in a PORT message.
    fn dht_port(&self) -> Option<u16> {
        self.inner.dht.as_ref().map(|d| d.local_addr().port())
    }

    /// A DHT node a peer told us of (its PORT message).
    fn dht_node(&self, addr: SocketAddr) {
        if let Some(d) = &self.inner.dht {
            d.add_node(addr);
        }
    }

    /// Peer discovery beyond trackers for one swarm, until dropped: a DHT
    /// lookup (repeated, and announcing us) and LSD announces. Private
    /// torrents (BEP 27) use their trackers only.
    fn discover(&self, swarm: &Arc<Swarm>) -> impl Future<Output = ()> + 'static {
        let ih = swarm.info_hash;
        let private = swarm.meta().is_some_and(|m| m.private);
        let lookups = (!private)
            .then(|| {
                self.inner
                    .dht
                    .as_ref()
                    .map(|d| d.get_peers(ih, Some(self.port())))
            })
            .flatten();
        let lsd = (!private).then(|| self.inner.clone());
        if let Some(inner) = &lsd {
            if let Some(l) = &inner.lsd {
                l.announce(&[ih]);
            }
        }
        let swarm = Arc::downgrade(swarm);
        async move {
            // Forgotten by LSD when the swarm's run ends (this future is dropped).
            struct Forget(Option<Arc<Inner>>, InfoHash);
            impl Drop for Forget {
                fn drop(&mut self) {
                    if let Some(l) = self.0.as_ref().and_then(|i| i.lsd.as_ref()) {
                        l.forget(self.1);
                    }
                }
            }
            let _forget = Forget(lsd, ih);
            match lookups {
                Some(rx) => {
                    while let Ok(peers) = rx.recv().await {
                        let Some(s) = swarm.upgrade() else { return };
                        s.add_peers(peers, swarm::Origin::Dht);
                    }
                    future::pending().await
                }
                None => future::pending().await,
            }
        }
    }

    /// Waits until `bytes` more may be uploaded under `MAX_UPLOAD_KBPS`.
    async fn throttle_upload(&self, bytes: u64) {
        let rate = (self.inner.config.max_upload_kbps * 1024) as f64;
        if rate == 0.0 {
            return;
        }
        let wait = {
            let mut bucket = self.inner.upload.lock().unwrap();
            let now = Instant::now();
            // At most one second of burst.
            let tokens = (bucket.0 + now.duration_since(bucket.1).as_secs_f64() * rate).min(rate);
            let left = tokens - bytes as f64;
            *bucket = (left, now);
            if left < 0.0 {
                Duration::from_secs_f64(-left / rate)
            } else {
                Duration::ZERO
            }
        };
        if !wait.is_zero() {
            Timer::after(wait).await;
        }
    }

    fn count_download(&self, bytes: u64) {
        self.inner.downloaded.fetch_add(bytes, Ordering::Relaxed);
    }

    fn count_upload(&self, bytes: u64) {
        self.inner.uploaded.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// What the P2P tier knows about one torrent's swarm, for the status APIs.
/// All zero while the torrent has no swarm.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SwarmStats {
    /// Peers connected now.
    pub peers: u32,
    /// Connected peers that unchoke us.
    pub unchoked: u32,
    /// Addresses known and not connected, waiting for a slot.
    pub queued: u32,
    /// Distinct peer addresses learned from any source.
    pub unique: u32,
    /// Outgoing connection attempts so far.
    pub connection_tries: u32,
    /// Whether trackers, the DHT or LSD are still being asked for peers.
    pub peer_search_running: bool,
    /// The swarm's size as the trackers report it (seeders + leechers), or
    /// the addresses known when no tracker says.
    pub swarm_size: u32,
    /// Bytes per second received from peers (a few seconds' average).
    pub download_speed: f64,
    /// Bytes per second sent to peers.
    pub upload_speed: f64,
    /// Bytes of verified pieces received from peers.
    pub downloaded: u64,
    /// Bytes of pieces sent to peers.
    pub uploaded: u64,
}
