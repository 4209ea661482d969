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
    /// Incoming handshakes being read, under `MAX_HANDSHAKING`.
    pub(super) handshaking: Arc<Gate>,
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
    /// The pings PORT messages may start (`PORT_PINGS_PER_SEC`).
    port_pings: Mutex<Bucket>,
}

/// Handshakes read at once from incoming connections; more wait in the
/// kernel's backlog, so a connection flood costs no memory.
pub const MAX_HANDSHAKING: u32 = 16;

/// A count of things in progress with a cap, taken before the work is
/// spawned (so a burst cannot get past it) and given back on drop.
pub struct Gate {
    taken: AtomicU32,
    max: u32,
}

/// One place taken in a [`Gate`].
pub struct Turn(Arc<Gate>);

impl Drop for Turn {
    fn drop(&mut self) {
        self.0.taken.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gate {
    pub fn new(max: u32) -> Gate {
        Gate {
            taken: AtomicU32::new(0),
            max,
        }
    }

    /// A place, if one is free now.
    pub fn try_take(self: &Arc<Gate>) -> Option<Turn> {
        self.taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| Turn(self.clone()))
    }

    #[cfg(test)]
    fn taken(&self) -> u32 {
        self.taken.load(Ordering::Acquire)
    }
}

/// DHT pings that peers' PORT messages may start: on average this many per
/// second over every swarm, in bursts of [`PORT_PING_BURST`]. One peer (or a
/// swarm of them reconnecting) cannot keep the DHT node busy.
pub const PORT_PINGS_PER_SEC: f64 = 2.0;
pub const PORT_PING_BURST: f64 = 8.0;

/// A token bucket: `rate` tokens a second, at most `burst` saved.
pub struct Bucket {
    tokens: f64,
    at: Instant,
    rate: f64,
    burst: f64,
}

impl Bucket {
    pub fn new(rate: f64, burst: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: burst,
            at: now,
            rate,
            burst,
        }
    }

    /// Takes one token if there is one at `now`.
    pub fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
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
            handshaking: Arc::new(Gate::new(MAX_HANDSHAKING)),
            upload: Mutex::new((0.0, Instant::now())),
            downloaded: AtomicU64::new(0),
            uploaded: AtomicU64::new(0),
            dht,
            lsd,
            utp,
            transports: Mutex::new(HashMap::new()),
            port_pings: Mutex::new(Bucket::new(
                PORT_PINGS_PER_SEC,
                PORT_PING_BURST,
                Instant::now(),
            )),
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

    /// A DHT node a peer told us of (its PORT message); pinged only within
    /// the rate limit, dropped beyond it (the DHT finds nodes by itself too).
    pub(super) fn dht_node(&self, addr: SocketAddr) {
        if let Some(d) = &self.dht {
            if self.port_pings.lock().unwrap().allow(Instant::now()) {
                d.add_node(addr);
            } else {
                log::debug!("[P2P] PORT from {addr} dropped: over the ping rate limit");
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_far_past_the_handshake_cap_gets_only_the_cap() {
        let gate = Arc::new(Gate::new(MAX_HANDSHAKING));
        // 10k connections arrive at once: only MAX_HANDSHAKING places are handed out.
        let turns: Vec<Turn> = (0..10_000).filter_map(|_| gate.try_take()).collect();
        assert_eq!(turns.len(), MAX_HANDSHAKING as usize);
        assert_eq!(gate.taken(), MAX_HANDSHAKING);
        drop(turns);
        assert_eq!(gate.taken(), 0);
        assert!(gate.try_take().is_some());
    }

    #[test]
    fn a_flood_of_port_messages_starts_only_the_rate_limit_of_pings() {
        let start = Instant::now();
        let mut b = Bucket::new(PORT_PINGS_PER_SEC, PORT_PING_BURST, start);
        // 100k PORT messages within one second: the burst, plus two a second.
        let allowed = (0..100_000u32)
            .filter(|i| b.allow(start + Duration::from_micros(*i as u64 * 10)))
            .count();
        assert!(
            allowed <= (PORT_PING_BURST + PORT_PINGS_PER_SEC) as usize + 1,
            "{allowed}"
        );
        // A minute later, the bucket holds the burst again, no more.
        let later = start + Duration::from_secs(60);
        let again = (0..1000).filter(|_| b.allow(later)).count();
        assert_eq!(again, PORT_PING_BURST as usize);
    }

    #[test]
    fn the_cap_holds_across_threads() {
        let gate = Arc::new(Gate::new(MAX_HANDSHAKING));
        let held: Vec<Vec<Turn>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| s.spawn(|| (0..1000).filter_map(|_| gate.try_take()).collect()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            held.iter().map(Vec::len).sum::<usize>(),
            MAX_HANDSHAKING as usize
        );
    }
}
