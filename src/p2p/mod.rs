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
pub mod tracker;
pub mod wire;

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
