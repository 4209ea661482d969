//! The addresses a swarm knows for its torrent (from trackers, DHT, PEX,
//! LSD, the magnet and incoming peers), with each one's dial history.
//!
//! Owns the bound on that map: a tracker or PEX flood cannot grow it past
//! [`MAX_KNOWN`]. Must never evict an address that is connected now.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

/// Addresses remembered per torrent; more are dropped (a tracker or PEX flood
/// cannot grow our memory).
const MAX_KNOWN: usize = 2000;

/// One known address: how its dials went, and whether it is connected.
pub(super) struct Known {
    pub(super) failures: u32,
    /// Connections that ended after the handshake: the next try waits longer
    /// each time (2 s, 4 s, ... 64 s).
    pub(super) drops: u32,
    pub(super) retry_at: Option<Instant>,
    pub(super) connected: bool,
}

/// Makes room in `known` for one more address, if it is full: the eviction
/// rule is the oldest address waiting in the dial queue (never dialed, or
/// backing off), else any address not connected now. False only when every
/// known address is connected, which `MAX_PEERS` keeps far below the bound.
pub(super) fn make_room(
    known: &mut HashMap<SocketAddr, Known>,
    queue: &mut VecDeque<SocketAddr>,
) -> bool {
    if known.len() < MAX_KNOWN {
        return true;
    }
    while let Some(addr) = queue.pop_front() {
        if known.get(&addr).is_some_and(|k| !k.connected) {
            known.remove(&addr);
            return true;
        }
    }
    let idle = known.iter().find(|(_, k)| !k.connected).map(|(a, _)| *a);
    match idle {
        Some(addr) => {
            known.remove(&addr);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(connected: bool) -> Known {
        Known {
            failures: 0,
            drops: 0,
            retry_at: None,
            connected,
        }
    }

    #[test]
    fn a_flood_of_addresses_keeps_known_within_its_bound_and_evicts_the_oldest() {
        let mut map: HashMap<SocketAddr, Known> = HashMap::new();
        let mut queue = VecDeque::new();
        // A few connected peers stay; 100k addresses from a tracker or PEX flood come and go.
        for i in 0..10u16 {
            let a = SocketAddr::from(([10, 0, 0, 1], 1000 + i));
            map.insert(a, known(true));
        }
        for i in 0..100_000u32 {
            let a = SocketAddr::from((std::net::Ipv4Addr::from(0x0b00_0000 + i), 6881));
            assert!(make_room(&mut map, &mut queue));
            map.insert(a, known(false));
            queue.push_back(a);
            assert!(map.len() <= MAX_KNOWN);
            assert!(queue.len() <= MAX_KNOWN);
        }
        // The connected ones were never evicted; the newest addresses are the ones kept.
        assert_eq!(map.values().filter(|k| k.connected).count(), 10);
        let newest = SocketAddr::from((std::net::Ipv4Addr::from(0x0b00_0000 + 99_999), 6881));
        let oldest = SocketAddr::from((std::net::Ipv4Addr::from(0x0b00_0000), 6881));
        assert!(map.contains_key(&newest));
        assert!(!map.contains_key(&oldest));
    }

    #[test]
    fn when_every_known_address_is_connected_nothing_is_evicted() {
        let mut map: HashMap<SocketAddr, Known> = HashMap::new();
        let mut queue = VecDeque::new();
        for i in 0..MAX_KNOWN as u32 {
            map.insert(
                SocketAddr::from((std::net::Ipv4Addr::from(i), 1)),
                known(true),
            );
        }
        assert!(!make_room(&mut map, &mut queue));
        assert_eq!(map.len(), MAX_KNOWN);
    }
}
