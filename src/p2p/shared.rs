//! What every swarm of this box shares: our peer id and port, the limits
//! over all torrents (`MAX_CONNECTIONS`, the upload cap), the counters, and
//! the discovery services (the DHT node and LSD).
//!
//! A leaf of the P2P tier: the registry ([`super::P2p`]), the swarms and the
//! connections all hold it, and it knows none of them. It must never hold a
//! swarm, or a lock across an `.await`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_io::Timer;

use super::wire::PeerId;
use super::{dht, lsd, utp};
use crate::config::Config;
use crate::http::Client;

/// The P2P tier's shared state. Cheap to share by `Arc`.
pub struct Shared {
    pub(super) config: Arc<Config>,
    pub(super) client: Client,
    pub(super) peer_id: PeerId,
    /// The TCP port peers reach us on (`TORRENT_PORT`, or the kernel's choice).
    pub(super) port: u16,
    /// Peer connections open or opening, over every torrent (`MAX_CONNECTIONS`).
    connections: AtomicU32,
    pub(super) handshaking: AtomicU32,
    /// The upload cap's token bucket: bytes allowed, and when last refilled.
    upload: Mutex<(f64, Instant)>,
    downloaded: AtomicU64,
    uploaded: AtomicU64,
    /// The mainline DHT node (`ENABLE_DHT`), on the UDP port of the same number.
    pub(super) dht: Option<dht::Dht>,
    /// Local Service Discovery (`ENABLE_LSD`).
    pub(super) lsd: Option<lsd::Lsd>,
    /// uTP on the UDP port of the same number (shared with the DHT).
    pub(super) utp: Option<Arc<utp::UtpSocket>>,
    /// Which transport reached each peer last, so the next dial goes
    /// straight to it (bounded: forgotten wholesale at [`MAX_TRANSPORTS`]).
    transports: Mutex<HashMap<SocketAddr, Transport>>,
}

/// How a peer connection is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Utp,
}

/// Peers whose transport is remembered; 4096 × ~40 bytes.
const MAX_TRANSPORTS: usize = 4096;

/// A peer connection's place under `MAX_CONNECTIONS`, given back on drop.
pub struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Shared {
    pub(super) fn new(
        config: Arc<Config>,
        client: Client,
        peer_id: PeerId,
        port: u16,
        dht: Option<dht::Dht>,
        lsd: Option<lsd::Lsd>,
        utp: Option<Arc<utp::UtpSocket>>,
    ) -> Shared {
        Shared {
            config,
            client,
            peer_id,
            port,
            connections: AtomicU32::new(0),
            handshaking: AtomicU32::new(0),
            upload: Mutex::new((0.0, Instant::now())),
            downloaded: AtomicU64::new(0),
            uploaded: AtomicU64::new(0),
            dht,
            lsd,
            utp,
            transports: Mutex::new(HashMap::new()),
        }
    }

    /// The transport that last reached `addr`, if any.
    pub(super) fn transport_of(&self, addr: SocketAddr) -> Option<Transport> {
        self.transports.lock().unwrap().get(&addr).copied()
    }

    /// Records how `addr` was reached (None: the remembered way failed).
    pub(super) fn remember_transport(&self, addr: SocketAddr, t: Option<Transport>) {
        let mut map = self.transports.lock().unwrap();
        match t {
            Some(t) => {
                if map.len() >= MAX_TRANSPORTS && !map.contains_key(&addr) {
                    map.clear();
                }
                map.insert(addr, t);
            }
            None => {
                map.remove(&addr);
            }
        }
    }

    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Whether another peer connection fits under `MAX_CONNECTIONS`.
    pub fn has_room(&self) -> bool {
        self.connections.load(Ordering::Relaxed) < self.config.max_connections
    }

    /// Takes a connection's place under `MAX_CONNECTIONS`.
    pub(super) fn slot(self: &Arc<Shared>) -> Slot {
        self.connections.fetch_add(1, Ordering::Relaxed);
        Slot(self.clone())
    }

    /// The DHT's UDP port, told to peers in a PORT message.
    pub(super) fn dht_port(&self) -> Option<u16> {
        self.dht.as_ref().map(|d| d.local_addr().port())
    }

    /// A DHT node a peer told us of (its PORT message).
    pub(super) fn dht_node(&self, addr: SocketAddr) {
        if let Some(d) = &self.dht {
            d.add_node(addr);
        }
    }

    /// Waits until `bytes` more may be uploaded under `MAX_UPLOAD_KBPS`.
    pub(super) async fn throttle_upload(&self, bytes: u64) {
        let rate = (self.config.max_upload_kbps * 1024) as f64;
        if rate == 0.0 {
            return;
        }
        let wait = {
            let mut bucket = self.upload.lock().unwrap();
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

    pub(super) fn count_download(&self, bytes: u64) {
        self.downloaded.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(super) fn count_upload(&self, bytes: u64) {
        self.uploaded.fetch_add(bytes, Ordering::Relaxed);
    }
}
