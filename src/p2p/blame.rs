//! Bans against peers, bounded: what a swarm remembers about addresses that
//! sent corrupt data or broke the protocol, and which of several senders of
//! a failed piece lied.
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
//! A piece that fails its hash with one sender convicts it. A piece with
//! several senders convicts no one by itself: a streaming picker splits the
//! playhead's pieces block-wise over the fastest peers, so one liar shares
//! nearly every piece it touches with honest peers, and blaming them all
//! would ban the honest ones too (with strikes, three shared failures in a
//! row banned aria2c alongside a liar once more pieces were split). Instead the failed copy's blocks are hashed
//! per sender ([`digests`]) and kept as a [`Suspect`]; the piece is fetched
//! again from one peer alone, and once a copy passes, each earlier sender
//! whose blocks differ from the good ones is banned, and only those
//! (libtorrent's smart ban). A copy from one peer that fails convicts that
//! peer, so every failure bans someone or ends in a good copy.
//!
//! Pure bookkeeping and hashing: no I/O, no time, no async.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use sha1::{Digest, Sha1};

/// Networks remembered per swarm. 256 × (16 + 16) small entries ≈ 40 KB at
/// worst, sized for a Pi Zero 2 W with a few torrents.
pub const MAX_NETWORKS: usize = 256;

/// Addresses banned one by one within a network, before the whole network is
/// banned.
pub const MAX_IPS_PER_NETWORK: usize = 16;

/// Failed pieces whose senders are kept until a good copy judges them; the
/// oldest goes first. Each is a sender index per block (2 bytes) and a digest
/// per sender: under 100 KB at worst with 16 MiB pieces, a few KB with
/// streaming's usual 0.5–2 MiB.
pub const MAX_SUSPECTS: usize = 32;

/// Who sent which blocks of one piece.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Senders {
    /// Each sender once, in the order of its first block.
    pub peers: Vec<IpAddr>,
    /// Per block, its sender's index in `peers` ([`Senders::NONE`] while none).
    pub blocks: Vec<u16>,
}

impl Senders {
    /// No block from anyone yet.
    pub const NONE: u16 = u16::MAX;

    /// A piece of `blocks` blocks, none received.
    pub fn new(blocks: usize) -> Senders {
        Senders {
            peers: Vec::new(),
            blocks: vec![Senders::NONE; blocks],
        }
    }

    /// Block `index` came from `ip`.
    pub fn sent(&mut self, index: usize, ip: IpAddr) {
        let at = match self.peers.iter().position(|p| *p == ip) {
            Some(at) => at,
            None => {
                self.peers.push(ip);
                self.peers.len() - 1
            }
        };
        self.blocks[index] = at as u16;
    }
}

/// Per sender of `senders`, the SHA-1 of the blocks of `data` it sent, in
/// block order (`block_len` bytes a block, the last one shorter).
pub fn digests(data: &[u8], senders: &Senders, block_len: usize) -> Vec<[u8; 20]> {
    let mut hashers = vec![Sha1::new(); senders.peers.len()];
    for (block, &who) in data.chunks(block_len).zip(&senders.blocks) {
        if let Some(h) = hashers.get_mut(who as usize) {
            h.update(block);
        }
    }
    hashers.into_iter().map(|h| h.finalize().into()).collect()
}

/// A failed piece's senders and what each sent ([`digests`] of the bad copy).
struct Suspect {
    piece: u32,
    senders: Senders,
    digests: Vec<[u8; 20]>,
}

/// What a piece that failed its hash says about its senders.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// A sender is banned already: its blocks explain it, no one else is blamed.
    Explained,
    /// It had one sender, banned now.
    Liar(IpAddr),
    /// Several senders: none is convicted yet. Record them ([`Blame::suspect`])
    /// and fetch the piece again from one peer.
    Shared,
}

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
    /// When last touched (a counter), for the LRU.
    used: u64,
}

/// One swarm's bans and suspects.
#[derive(Default)]
pub struct Blame {
    nets: HashMap<Net, Network>,
    clock: u64,
    suspects: VecDeque<Suspect>,
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
        } else {
            n.banned.push(ip);
        }
    }

    /// A piece that failed its hash, with who sent its blocks: see [`Failure`].
    /// When one of them is banned already, it explains the failure (its blocks
    /// were in the piece before the ban): blaming the honest peers that shared
    /// such pieces could cost a swarm every peer for one liar.
    pub fn piece_failed(&mut self, senders: &Senders) -> Failure {
        if senders.peers.iter().any(|ip| self.is_banned(*ip)) {
            return Failure::Explained;
        }
        match senders.peers[..] {
            [liar] => {
                self.ban(liar);
                Failure::Liar(liar)
            }
            _ => Failure::Shared,
        }
    }

    /// Keeps a [`Failure::Shared`] piece's senders and the [`digests`] of the
    /// failed copy, until a good copy judges them (the latest failure of a
    /// piece replaces an earlier one).
    pub fn suspect(&mut self, piece: u32, senders: Senders, digests: Vec<[u8; 20]>) {
        self.suspects.retain(|s| s.piece != piece);
        if self.suspects.len() >= MAX_SUSPECTS {
            self.suspects.pop_front();
        }
        self.suspects.push_back(Suspect {
            piece,
            senders,
            digests,
        });
    }

    /// The senders of `piece`'s failed copy, if it is a suspect: a new copy's
    /// [`digests`] over these senders go to [`Blame::piece_passed`].
    pub fn suspected(&self, piece: u32) -> Option<&Senders> {
        self.suspects
            .iter()
            .find(|s| s.piece == piece)
            .map(|s| &s.senders)
    }

    /// `piece` passed its hash; `good` is the [`digests`] of the good copy
    /// over the senders [`Blame::suspected`] gave. Bans and returns each
    /// earlier sender whose blocks differ from the good ones (not banned yet).
    pub fn piece_passed(&mut self, piece: u32, good: &[[u8; 20]]) -> Vec<IpAddr> {
        let Some(at) = self.suspects.iter().position(|s| s.piece == piece) else {
            return Vec::new();
        };
        let s = self.suspects.remove(at).expect("present");
        let liars: Vec<IpAddr> = s
            .senders
            .peers
            .iter()
            .zip(&s.digests)
            .zip(good)
            .filter(|((ip, bad), good)| bad != good && !self.is_banned(**ip))
            .map(|((ip, _), _)| *ip)
            .collect();
        for ip in &liars {
            self.ban(*ip);
        }
        liars
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
            assert!(b.len() <= MAX_NETWORKS);
        }
        for n in b.nets.values() {
            assert!(n.banned.len() <= MAX_IPS_PER_NETWORK);
        }
        // The newest ban is remembered; the oldest networks were let go.
        let last = IpAddr::V4(Ipv4Addr::from(199_999u32.wrapping_mul(2_654_435_761)));
        assert!(b.is_banned(last));
    }

    /// `who[i]` sent block `i`.
    fn senders(who: &[IpAddr]) -> Senders {
        let mut s = Senders::new(who.len());
        for (i, ip) in who.iter().enumerate() {
            s.sent(i, *ip);
        }
        s
    }

    #[test]
    fn a_liar_alone_is_banned_at_once_and_a_shared_piece_convicts_no_one() {
        let mut b = Blame::default();
        let (liar, honest, other) = (v4(127, 0, 0, 2), v4(127, 0, 0, 1), v4(127, 0, 0, 3));
        assert_eq!(b.piece_failed(&senders(&[liar, liar])), Failure::Liar(liar));
        assert!(b.is_banned(liar));
        // However often two peers share failed pieces, neither is banned by that alone.
        for _ in 0..10 {
            assert_eq!(
                b.piece_failed(&senders(&[honest, other, honest])),
                Failure::Shared
            );
        }
        assert!(!b.is_banned(honest) && !b.is_banned(other));
    }

    #[test]
    fn a_good_copy_bans_exactly_the_senders_whose_blocks_differed() {
        const BLOCK: usize = 4;
        let mut b = Blame::default();
        let (liar, honest, other) = (v4(127, 0, 0, 2), v4(127, 0, 0, 1), v4(127, 0, 0, 3));
        let good: Vec<u8> = (0..4 * BLOCK as u8 - 1).collect();
        // The failed copy: blocks 0 and 2 from the honest peer, 1 from the liar (one byte
        // wrong), 3 (short) from the other honest one.
        let who = senders(&[honest, liar, honest, other]);
        let mut bad = good.clone();
        bad[BLOCK + 2] ^= 0x40;
        assert_eq!(b.piece_failed(&who), Failure::Shared);
        b.suspect(7, who.clone(), digests(&bad, &who, BLOCK));
        assert_eq!(b.suspected(7), Some(&who));
        // The good copy came from someone else altogether.
        let judged = digests(&good, b.suspected(7).unwrap(), BLOCK);
        assert_eq!(b.piece_passed(7, &judged), vec![liar]);
        assert!(b.is_banned(liar));
        assert!(!b.is_banned(honest) && !b.is_banned(other));
        assert_eq!(b.suspected(7), None, "judged once, then forgotten");
        assert!(b.piece_passed(7, &judged).is_empty());
    }

    #[test]
    fn pieces_that_held_a_banned_liars_blocks_blame_no_one_else() {
        // The liar is banned while pieces it shared with an honest seeder are still being
        // verified; they fail one after another, and the seeder must not pay for them.
        let mut b = Blame::default();
        let (liar, honest) = (v4(127, 0, 0, 2), v4(127, 0, 0, 1));
        assert_eq!(b.piece_failed(&senders(&[liar])), Failure::Liar(liar));
        for _ in 0..10 {
            assert_eq!(
                b.piece_failed(&senders(&[honest, liar])),
                Failure::Explained
            );
            assert_eq!(b.piece_failed(&senders(&[liar])), Failure::Explained);
        }
        assert!(!b.is_banned(honest));
    }

    #[test]
    fn a_flood_of_failed_pieces_keeps_the_newest_suspects_within_the_bound() {
        let mut b = Blame::default();
        let who = senders(&[v4(10, 0, 0, 1), v4(10, 0, 0, 2)]);
        for piece in 0..10_000 {
            b.suspect(piece, who.clone(), vec![[0; 20]; 2]);
            assert!(b.suspects.len() <= MAX_SUSPECTS);
        }
        // The same piece failing again replaces its record.
        b.suspect(9_999, who.clone(), vec![[1; 20]; 2]);
        assert_eq!(b.suspects.len(), MAX_SUSPECTS);
        assert!(b.suspected(9_999).is_some());
        assert!(b.suspected(9_999 - MAX_SUSPECTS as u32).is_none());
    }
}
