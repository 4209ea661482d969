//! Bans and strikes against peers, bounded: what a swarm remembers about
//! addresses that sent corrupt data or broke the protocol.
//!
//! # Design
//! Entries are keyed by network: the /24 of an IPv4 address, the /64 of an
//! IPv6 one (what one host or one customer usually holds). Within a network
//! up to [`MAX_IPS_PER_NETWORK`] addresses are banned one by one, so that a
//! liar does not take its honest neighbours down with it (on loopback, in
//! tests, every peer shares 127.0.0.0/24); past that the whole network is
//! banned, so an attacker that cycles addresses gains nothing. At most
//! [`MAX_NETWORKS`] networks are remembered; the least recently touched goes
//! first. Memory is bounded whatever peers do.
//!
//! Pure bookkeeping: no I/O, no time, no async.

use std::collections::HashMap;
use std::net::IpAddr;

/// Networks remembered per swarm. 256 × (16 + 16) small entries ≈ 40 KB at
/// worst, sized for a Pi Zero 2 W with a few torrents.
pub const MAX_NETWORKS: usize = 256;

/// Addresses banned or struck one by one within a network, before the whole
/// network is banned.
pub const MAX_IPS_PER_NETWORK: usize = 16;

/// A /24 (IPv4) or /64 (IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Net([u8; 9]);

impl Net {
    pub fn of(ip: IpAddr) -> Net {
        let mut key = [0u8; 9];
        match ip {
            IpAddr::V4(v4) => {
                key[0] = 4;
                key[1..4].copy_from_slice(&v4.octets()[..3]);
            }
            IpAddr::V6(v6) => {
                key[0] = 6;
                key[1..9].copy_from_slice(&v6.octets()[..8]);
            }
        }
        Net(key)
    }
}

#[derive(Default)]
struct Network {
    banned: Vec<IpAddr>,
    /// Every address of the network is banned.
    whole: bool,
    strikes: Vec<(IpAddr, u32)>,
    /// When last touched (a counter), for the LRU.
    used: u64,
}

/// One swarm's bans and strikes.
#[derive(Default)]
pub struct Blame {
    nets: HashMap<Net, Network>,
    clock: u64,
}

impl Blame {
    pub fn is_banned(&self, ip: IpAddr) -> bool {
        self.nets
            .get(&Net::of(ip))
            .is_some_and(|n| n.whole || n.banned.contains(&ip))
    }

    /// Bans `ip` (and its whole network once too many of it are banned).
    pub fn ban(&mut self, ip: IpAddr) {
        let n = self.touch(ip);
        if n.whole || n.banned.contains(&ip) {
            return;
        }
        if n.banned.len() >= MAX_IPS_PER_NETWORK {
            n.whole = true;
            n.banned = Vec::new();
            n.strikes = Vec::new();
        } else {
            n.banned.push(ip);
        }
    }

    /// Adds `count` strikes to `ip`; returns its strikes now.
    pub fn strike(&mut self, ip: IpAddr, count: u32) -> u32 {
        let n = self.touch(ip);
        if let Some(s) = n.strikes.iter_mut().find(|(a, _)| *a == ip) {
            s.1 = s.1.saturating_add(count);
            return s.1;
        }
        if n.strikes.len() >= MAX_IPS_PER_NETWORK {
            // The address struck longest ago… the one with fewest strikes goes.
            let weakest = (0..n.strikes.len())
                .min_by_key(|i| n.strikes[*i].1)
                .expect("not empty");
            n.strikes.swap_remove(weakest);
        }
        n.strikes.push((ip, count));
        count
    }

    /// A piece that failed its hash, with the addresses that sent its blocks (each once): returns
    /// those banned now. One that sent the whole piece alone is banned at once; each of several
    /// gets a strike, and `max_strikes` of them with no good piece between bans it. When one of
    /// them is banned already, it explains the failure (its blocks were in the piece before the
    /// ban) and no one else is blamed: striking the honest peers that shared such pieces would
    /// ban them too, and a swarm could lose every peer to one liar.
    pub fn piece_failed(&mut self, contributors: &[IpAddr], max_strikes: u32) -> Vec<IpAddr> {
        if contributors.iter().any(|ip| self.is_banned(*ip)) {
            return Vec::new();
        }
        let strike = if contributors.len() == 1 {
            max_strikes
        } else {
            1
        };
        let mut banned = Vec::new();
        for &ip in contributors {
            if self.strike(ip, strike) >= max_strikes {
                self.ban(ip);
                banned.push(ip);
            }
        }
        banned
    }

    /// A good piece from `ip`: its strikes are forgiven.
    pub fn forgive(&mut self, ip: IpAddr) {
        if let Some(n) = self.nets.get_mut(&Net::of(ip)) {
            n.strikes.retain(|(a, _)| *a != ip);
        }
    }

    /// Networks remembered now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.nets.len()
    }

    fn touch(&mut self, ip: IpAddr) -> &mut Network {
        self.clock += 1;
        let key = Net::of(ip);
        if !self.nets.contains_key(&key) && self.nets.len() >= MAX_NETWORKS {
            let oldest = *self
                .nets
                .iter()
                .min_by_key(|(_, n)| n.used)
                .map(|(k, _)| k)
                .expect("not empty");
            self.nets.remove(&oldest);
        }
        let n = self.nets.entry(key).or_default();
        n.used = self.clock;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    #[test]
    fn a_ban_is_one_address_and_spares_its_neighbours() {
        let mut b = Blame::default();
        b.ban(v4(127, 0, 0, 2));
        assert!(b.is_banned(v4(127, 0, 0, 2)));
        assert!(!b.is_banned(v4(127, 0, 0, 1)));
    }

    #[test]
    fn a_network_cycling_addresses_is_banned_whole() {
        let mut b = Blame::default();
        for d in 0..=MAX_IPS_PER_NETWORK as u8 {
            b.ban(v4(10, 1, 2, d));
        }
        assert!(b.is_banned(v4(10, 1, 2, 250)), "the /24 is banned");
        assert!(!b.is_banned(v4(10, 1, 3, 1)), "the next /24 is not");
        // IPv6: the /64 is the network.
        for i in 0..=MAX_IPS_PER_NETWORK as u16 {
            b.ban(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, i)));
        }
        assert!(b.is_banned(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 9, 9, 9, 9))));
        assert!(!b.is_banned(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1))));
    }

    #[test]
    fn a_flood_of_networks_stays_within_the_bound() {
        let mut b = Blame::default();
        // 200k addresses over 65k networks, far past the bound.
        for i in 0..200_000u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(i.wrapping_mul(2_654_435_761)));
            b.ban(ip);
            b.strike(ip, 1);
            assert!(b.len() <= MAX_NETWORKS);
        }
        for n in b.nets.values() {
            assert!(n.banned.len() <= MAX_IPS_PER_NETWORK);
            assert!(n.strikes.len() <= MAX_IPS_PER_NETWORK);
        }
        // The newest ban is remembered; the oldest networks were let go.
        let last = IpAddr::V4(Ipv4Addr::from(199_999u32.wrapping_mul(2_654_435_761)));
        assert!(b.is_banned(last));
    }

    #[test]
    fn a_liar_alone_is_banned_at_once_and_shared_pieces_strike_each_sender() {
        let mut b = Blame::default();
        let (liar, honest, other) = (v4(127, 0, 0, 2), v4(127, 0, 0, 1), v4(127, 0, 0, 3));
        assert_eq!(b.piece_failed(&[liar], 3), vec![liar]);
        // Two senders, neither banned: a strike each, a ban at the third.
        assert!(b.piece_failed(&[honest, other], 3).is_empty());
        assert!(b.piece_failed(&[other, honest], 3).is_empty());
        assert_eq!(b.piece_failed(&[honest, other], 3), vec![honest, other]);
    }

    #[test]
    fn pieces_that_held_a_banned_liars_blocks_blame_no_one_else() {
        // The liar is banned while pieces it shared with an honest seeder are still being
        // verified; they fail one after another, and the seeder must not pay for them.
        let mut b = Blame::default();
        let (liar, honest) = (v4(127, 0, 0, 2), v4(127, 0, 0, 1));
        assert_eq!(b.piece_failed(&[liar], 3), vec![liar]);
        for _ in 0..10 {
            assert!(b.piece_failed(&[honest, liar], 3).is_empty());
            assert!(
                b.piece_failed(&[liar], 3).is_empty(),
                "banned once, not again"
            );
        }
        assert!(!b.is_banned(honest));
        assert_eq!(b.strike(honest, 0), 0, "no strike was added");
    }

    #[test]
    fn strikes_add_up_and_a_good_piece_forgives() {
        let mut b = Blame::default();
        let ip = v4(192, 168, 1, 7);
        assert_eq!(b.strike(ip, 1), 1);
        assert_eq!(b.strike(ip, 2), 3);
        b.forgive(ip);
        assert_eq!(b.strike(ip, 1), 1);
        // Many addresses of one network: bounded.
        for d in 0..255u8 {
            b.strike(v4(192, 168, 1, d), 1);
        }
        assert!(b.nets[&Net::of(ip)].strikes.len() <= MAX_IPS_PER_NETWORK);
    }
}
