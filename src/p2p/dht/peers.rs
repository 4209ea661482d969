//! The peers other nodes announced to us (announce_peer), served back in
//! get_peers responses.
//!
//! Owns a bounded map: at most [`MAX_TORRENTS`] info hashes with at most
//! [`MAX_PEERS_PER_TORRENT`] peers each, every entry expiring after
//! [`PEER_TTL`]. About 1000 × 100 × 24 bytes = 2.4 MB at the very worst, which
//! a Raspberry Pi 3 can spare; a full map refuses new info hashes rather than
//! evicting, so an announce flood cannot push out real swarms. Pure: time is
//! passed in.

use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use crate::format::InfoHash;

pub const MAX_TORRENTS: usize = 1000;
pub const MAX_PEERS_PER_TORRENT: usize = 100;
/// BEP 5 leaves it open; libtorrent keeps announces 30 minutes (peers
/// re-announce every 15 to 30).
pub const PEER_TTL: Duration = Duration::from_secs(30 * 60);
/// Most peers handed out in one get_peers response: 50 × 8 bytes keeps the
/// datagram well under an MTU.
pub const MAX_PEERS_SERVED: usize = 50;

#[derive(Debug, Default)]
pub struct PeerStore {
    torrents: HashMap<InfoHash, Vec<(SocketAddrV4, Instant)>>,
}

impl PeerStore {
    /// Records an announce; false when the store is full of other torrents.
    pub fn announce(&mut self, info_hash: InfoHash, peer: SocketAddrV4, now: Instant) -> bool {
        self.expire(now);
        if !self.torrents.contains_key(&info_hash) && self.torrents.len() >= MAX_TORRENTS {
            return false;
        }
        let peers = self.torrents.entry(info_hash).or_default();
        if let Some(known) = peers.iter_mut().find(|(p, _)| *p == peer) {
            known.1 = now;
        } else if peers.len() < MAX_PEERS_PER_TORRENT {
            peers.push((peer, now));
        } else if let Some(oldest) = peers.iter_mut().min_by_key(|(_, t)| *t) {
            *oldest = (peer, now);
        }
        true
    }

    /// Live peers for `info_hash`, at most [`MAX_PEERS_SERVED`], a random
    /// sample when there are more.
    pub fn peers(&self, info_hash: &InfoHash, now: Instant) -> Vec<SocketAddrV4> {
        let mut live: Vec<SocketAddrV4> = self
            .torrents
            .get(info_hash)
            .into_iter()
            .flatten()
            .filter(|(_, t)| now.saturating_duration_since(*t) < PEER_TTL)
            .map(|(p, _)| *p)
            .collect();
        if live.len() > MAX_PEERS_SERVED {
            fastrand::shuffle(&mut live);
            live.truncate(MAX_PEERS_SERVED);
        }
        live
    }

    fn expire(&mut self, now: Instant) {
        self.torrents.retain(|_, peers| {
            peers.retain(|(_, t)| now.saturating_duration_since(*t) < PEER_TTL);
            !peers.is_empty()
        });
    }

    pub fn torrent_count(&self) -> usize {
        self.torrents.len()
    }

    pub fn peer_count(&self) -> usize {
        self.torrents.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn hash(n: u32) -> InfoHash {
        let mut h = [0u8; 20];
        h[..4].copy_from_slice(&n.to_be_bytes());
        InfoHash(h)
    }

    fn peer(n: u32) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(n), 6881)
    }

    #[test]
    fn announces_are_served_and_expire() {
        let now = Instant::now();
        let mut s = PeerStore::default();
        assert!(s.announce(hash(1), peer(1), now));
        assert!(s.announce(hash(1), peer(1), now), "a repeat refreshes");
        assert_eq!(s.peers(&hash(1), now), vec![peer(1)]);
        assert!(s.peers(&hash(2), now).is_empty());
        assert!(s.peers(&hash(1), now + PEER_TTL).is_empty());
        s.announce(hash(3), peer(3), now + PEER_TTL);
        assert_eq!(s.torrent_count(), 1, "the expired torrent is gone");
    }

    #[test]
    fn a_flood_of_announces_stays_within_the_bounds() {
        let now = Instant::now();
        let mut s = PeerStore::default();
        for n in 0..3000 {
            s.announce(hash(n), peer(n), now);
        }
        assert_eq!(s.torrent_count(), MAX_TORRENTS);
        assert!(
            !s.announce(hash(5000), peer(1), now),
            "full: new torrents refused"
        );
        for n in 0..500 {
            s.announce(hash(0), peer(10_000 + n), now);
        }
        assert_eq!(s.peers(&hash(0), now).len(), MAX_PEERS_SERVED);
        assert_eq!(
            s.peer_count(),
            MAX_TORRENTS - 1 + MAX_PEERS_PER_TORRENT,
            "one torrent capped at 100 peers"
        );
    }
}
