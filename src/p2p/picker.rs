//! The streaming piece picker: which pieces are wanted, in what order, and
//! which blocks each peer is asked for.
//!
//! # Design
//! [`wanted`] turns the demand into a priority list, in the order a player
//! needs the bytes: the pieces readers block on (newest wait first, because
//! after a seek the old wait is abandoned), the readahead window after the
//! playhead, the first and last pieces of the file (containers keep their
//! index there), then the rest of the file from the playhead on, and from its
//! start, while the quota allows. A seek changes the list at once.
//!
//! [`Picker`] owns the pieces being downloaded, one buffer each, under a
//! memory budget, and hands blocks to peers in list order. Urgent pieces (a
//! reader waits, or they sit at the playhead) go by expected completion
//! time, as libtorrent's time-critical pieces do: a peer is given an urgent
//! block only if it would arrive within the swarm's best arrival time plus a
//! slack ([`Asker::urgent_within`]), so a piece at the playhead is split
//! block-wise over the peers that finish it first, and a slow peer never
//! holds it (it gets background pieces). Each asked block remembers when it
//! is due; an urgent block is asked of a second peer when that peer would
//! deliver it sooner while a reader is blocked on it, or when the first is
//! late, or an urgent one overdue (past its due time: its peer was slower
//! than it was taken for). Once every wanted block is asked for (the
//! endgame), any block may be asked twice the same way, so the file's last
//! blocks do not wait on a slow peer while the fast ones idle.
//!
//! A piece that failed its hash with several senders is fetched again from one
//! peer alone ([`Picker::fetch_alone`]): that copy either passes and judges
//! the earlier senders, or fails and convicts its one sender (see `blame`).
//!
//! Pure bookkeeping: no I/O, no clock of its own (callers pass `now`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::store::PiecePool;

use super::blame::{Senders, MAX_SUSPECTS};
use super::wire::{BlockRef, BLOCK_LEN};

mod order;
mod speed;

pub use order::{wanted, Want};
pub use speed::Speed;

/// A connection, as the swarm numbers them.
pub type PeerKey = u64;

/// At most this many peers are asked for the same block at once.
const MAX_ASKED: u8 = 2;

/// A second peer is asked for a block only if it would deliver it at least
/// this much sooner than the first is due (a copy costs upload; a tie does not pay).
const DUPLICATE_MARGIN: f64 = 0.1;

/// Seconds of leeway in the deadline order: a peer may take an urgent block
/// whose slot, by the estimates, falls to another peer up to this much sooner
/// (the estimates are rough; a block left open costs a writer's turn).
const ORDER_SLACK: f64 = 0.03;

/// A block is late once it has been out twice as long as expected plus this.
const LATE_GRACE: f64 = 0.2;

/// Seconds past its due time after which an urgent block is overdue and may be
/// asked of a second peer: its due time came from what its peer was taken
/// for when asked, and a peer not measured yet (taken for 1 MB/s) may be a
/// 400 KB/s one. On the WAN rig the slowest seeder held the first MiB's last
/// eight blocks 0.3 s past their due times, with faster peers idle.
const OVERDUE_GRACE: f64 = 0.05;

/// An urgent piece that no peer in time could take for this long (only slow
/// peers have it) goes to any peer that has it.
const STUCK_AFTER: Duration = Duration::from_secs(1);

/// Urgent pieces remembered for [`STUCK_AFTER`]; the map starts over beyond.
const MAX_PASSED_OVER: usize = 256;

/// A piece fetched from one peer alone passes to another peer once its owner
/// has been asked nothing of it for this long and holds no block of it that
/// is not this long overdue (it choked, left, or sits on the requests, as a
/// liar may): the blocks it sent are dropped, so the copy stays one peer's.
const OWNER_IDLE: Duration = Duration::from_secs(2);

/// Urgent blocks one peer may be asked for beyond its pipeline depth: what
/// goes to the playhead is not held back by the background requests.
const URGENT_EXTRA: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Open,
    /// Asked of `peers` peers, first at `at`; the earliest copy is expected by `due`.
    Asked {
        peers: u8,
        at: Instant,
        due: Instant,
    },
    Done,
}

/// One piece being downloaded.
struct Download {
    buf: Vec<u8>,
    blocks: Vec<Block>,
    done: u32,
    /// Who sent which block: judged if the piece fails its hash.
    senders: Senders,
    /// For a piece fetched from one peer alone: that peer, and when it was last asked a block.
    owner: Option<(IpAddr, Instant)>,
}

/// What a received block did.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// Not asked for, already had, or the wrong size: dropped.
    Unwanted,
    /// Kept; the piece is not complete yet.
    Kept,
    /// The piece is complete: its bytes, to verify and store, and who sent them.
    Complete { data: Vec<u8>, senders: Senders },
}

/// One peer, as the picker sees it when handing out blocks.
pub struct Asker<'a> {
    /// The peer's address: who a piece fetched alone belongs to.
    pub ip: IpAddr,
    /// Whether the peer has a piece.
    pub has: &'a dyn Fn(u32) -> bool,
    /// Whether this peer already has this block outstanding.
    pub asked: &'a dyn Fn(&BlockRef) -> bool,
    /// Whether a reader is blocked on a piece now (not only about to be).
    pub waited: &'a dyn Fn(u32) -> bool,
    /// How many blocks of a piece the other unchoked peers would bring
    /// within so many seconds if asked now: the deadline order. Urgent blocks
    /// are filled in order into the swarm's earliest arrivals, so this peer's
    /// next arrival takes the open urgent block ranked after every arrival
    /// that comes before it (the others', and its own earlier ones).
    pub others_by: &'a dyn Fn(u32, f64) -> usize,
    pub speed: Speed,
    /// Seconds: an urgent block goes to this peer only if it would arrive
    /// within this long (the swarm's best next arrival plus a slack).
    pub urgent_within: f64,
}

/// The pieces in flight of one torrent.
pub struct Picker {
    piece_length: u64,
    total_length: u64,
    downloads: BTreeMap<u32, Download>,
    /// Complete pieces whose hash the store is checking: not to be fetched again meanwhile.
    verifying: std::collections::HashSet<u32>,
    /// Urgent pieces with open blocks, and since when: see [`Picker::stuck`].
    passed_over: std::collections::HashMap<u32, Instant>,
    /// Pieces to fetch from one peer alone: they failed with several senders.
    alone: std::collections::HashSet<u32>,
    /// Pieces in flight beyond which no new non-urgent piece starts: the memory
    /// budget divided by the piece length.
    max_downloads: usize,
    /// Where piece buffers come from: the store's pool, which gets each one
    /// back after the write, so a stream does not zero and fault in 1 MiB per piece.
    buffers: PiecePool,
}

impl Picker {
    /// `budget`: bytes of piece buffers held at once (urgent pieces may exceed it).
    pub fn new(piece_length: u64, total_length: u64, budget: u64) -> Picker {
        Picker {
            piece_length,
            total_length,
            downloads: BTreeMap::new(),
            verifying: Default::default(),
            passed_over: Default::default(),
            alone: Default::default(),
            max_downloads: (budget / piece_length.max(1)).max(2) as usize,
            buffers: PiecePool::default(),
        }
    }

    /// Takes piece buffers from `pool` (the store's) rather than allocating each.
    pub fn with_buffers(mut self, pool: PiecePool) -> Picker {
        self.buffers = pool;
        self
    }

    fn piece_len(&self, piece: u32) -> u32 {
        let start = piece as u64 * self.piece_length;
        self.piece_length
            .min(self.total_length.saturating_sub(start)) as u32
    }

    fn block(&self, piece: u32, index: usize) -> BlockRef {
        let offset = index as u32 * BLOCK_LEN;
        BlockRef {
            piece,
            offset,
            length: BLOCK_LEN.min(self.piece_len(piece) - offset),
        }
    }

    /// Pieces being downloaded now.
    pub fn in_flight(&self) -> impl Iterator<Item = u32> + '_ {
        self.downloads.keys().copied()
    }

    #[cfg(test)]
    pub fn is_in_flight(&self, piece: u32) -> bool {
        self.downloads.contains_key(&piece)
    }

    /// Bytes held in piece buffers.
    #[cfg(test)]
    pub fn buffered(&self) -> u64 {
        self.downloads.values().map(|d| d.buf.len() as u64).sum()
    }

    /// Up to `room` blocks for `peer`, from the pieces of `order` (priority
    /// order; its first `urgent` pieces are time-critical), plus urgent blocks
    /// beyond `room` that this peer would deliver in time. Marks them asked.
    ///
    /// Runs per block received, so it stops as soon as the rest of `order`
    /// could give nothing: not a walk of the whole list per 16 KiB.
    pub fn pick(
        &mut self,
        order: &[u32],
        urgent: usize,
        peer: &Asker<'_>,
        room: usize,
        now: Instant,
    ) -> Vec<BlockRef> {
        let mut out = Vec::new();
        let urgent_room = room + URGENT_EXTRA;
        // Whether the next block asked of this peer may be urgent / ordinary.
        let in_time = |n: usize| n < urgent_room && peer.speed.eta(n + 1) <= peer.urgent_within;
        let mut endgame = true;
        // Open urgent blocks seen so far, in order (the deadline order's
        // rank), and how many of them this peer took.
        let mut urgent_seen = 0;
        let mut urgent_taken = 0;
        for (at, &piece) in order.iter().enumerate() {
            let is_urgent = at < urgent;
            // Past the urgent pieces, with the room full and the endgame ruled
            // out, nothing further down can be asked.
            if !is_urgent && !endgame && out.len() >= room {
                break;
            }
            if !(peer.has)(piece)
                || self.verifying.contains(&piece)
                || !self.claim(piece, peer.ip, now)
            {
                continue;
            }
            let alone = self.is_alone(piece);
            // An urgent piece no peer in time has taken for a while (only
            // slow peers have it) goes to whoever has it, like any other.
            let stuck = is_urgent && self.stuck(piece, now);
            let fits = |n: usize| {
                if is_urgent && !stuck {
                    in_time(n)
                } else {
                    n < room.max(usize::from(stuck))
                }
            };
            if !fits(out.len()) {
                if !self.downloads.contains_key(&piece) && !is_urgent {
                    endgame = false;
                }
                continue;
            }
            if !self.downloads.contains_key(&piece) {
                // Pieces waiting for their hash check hold their buffers too:
                // counting them is the back-pressure when the disk is slower
                // than the peers.
                if !is_urgent && self.downloads.len() + self.verifying.len() >= self.max_downloads {
                    endgame = false;
                    continue;
                }
                self.start(piece);
            }
            let count = self.downloads[&piece].blocks.len();
            for i in 0..count {
                if !fits(out.len()) {
                    break;
                }
                if self.downloads[&piece].blocks[i] == Block::Open {
                    let eta = peer.speed.eta(out.len() + 1);
                    // A piece fetched alone is its one peer's: no deadline order.
                    if is_urgent && !stuck && !alone {
                        // Earliest deadline first: the blocks before this
                        // arrival's rank are for arrivals that come sooner.
                        let rank = urgent_seen;
                        urgent_seen += 1;
                        let sooner = (peer.others_by)(piece, eta - ORDER_SLACK) + urgent_taken;
                        if rank < sooner {
                            continue;
                        }
                        urgent_taken += 1;
                    }
                    out.push(self.ask(piece, i, peer.ip, now, now + secs(eta)));
                }
            }
        }
        // Every open block is asked for: ask this peer too for blocks it
        // would bring sooner than they are due, or that are late.
        // Outside the endgame only the urgent pieces get copies.
        let candidates = if endgame {
            order
        } else {
            &order[..urgent.min(order.len())]
        };
        let pieces: Vec<(usize, u32)> = candidates
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, p)| self.downloads.contains_key(p) && (peer.has)(*p))
            .collect();
        for (at, piece) in pieces {
            if !self.claim(piece, peer.ip, now) {
                continue;
            }
            let is_urgent = at < urgent;
            for i in 0..self.downloads[&piece].blocks.len() {
                let n = out.len();
                if !(if is_urgent { in_time(n) } else { n < room }) {
                    break;
                }
                let Block::Asked { peers, at, due } = self.downloads[&piece].blocks[i] else {
                    continue;
                };
                let mine = now + secs(peer.speed.eta(n + 1));
                let expected = due.saturating_duration_since(at).as_secs_f64();
                let late = now.saturating_duration_since(at).as_secs_f64()
                    > 2.0 * expected + LATE_GRACE
                    || (is_urgent && now > due + secs(OVERDUE_GRACE));
                // Sooner only counts where a reader is blocked, or in the
                // endgame, where this peer would otherwise idle: elsewhere a
                // copy would mostly waste a slower peer's work.
                let sooner =
                    ((peer.waited)(piece) || endgame) && mine + secs(DUPLICATE_MARGIN) < due;
                let block = self.block(piece, i);
                if peers < MAX_ASKED
                    && (sooner || late)
                    && !(peer.asked)(&block)
                    && !out.contains(&block)
                {
                    out.push(self.ask(piece, i, peer.ip, now, mine));
                }
            }
        }
        out
    }

    /// Whether urgent `piece` has waited long for a peer in time: true once
    /// it has been passed over for [`STUCK_AFTER`] with blocks still open.
    fn stuck(&mut self, piece: u32, now: Instant) -> bool {
        let open = self
            .downloads
            .get(&piece)
            .is_none_or(|d| d.blocks.contains(&Block::Open));
        if !open {
            self.passed_over.remove(&piece);
            return false;
        }
        if self.passed_over.len() >= MAX_PASSED_OVER && !self.passed_over.contains_key(&piece) {
            self.passed_over.clear();
        }
        let since = *self.passed_over.entry(piece).or_insert(now);
        now.saturating_duration_since(since) >= STUCK_AFTER
    }

    fn start(&mut self, piece: u32) {
        let len = self.piece_len(piece);
        let count = len.div_ceil(BLOCK_LEN) as usize;
        self.downloads.insert(
            piece,
            Download {
                buf: self.buffers.take(len as usize),
                blocks: vec![Block::Open; count],
                done: 0,
                senders: Senders::new(count),
                owner: None,
            },
        );
    }

    /// Whether `piece` is fetched from one peer alone (no hashing in the usual
    /// case, where none is: this runs per piece of the order walked).
    fn is_alone(&self, piece: u32) -> bool {
        !self.alone.is_empty() && self.alone.contains(&piece)
    }

    /// Whether `ip` may be asked blocks of `piece`: any peer may, unless the
    /// piece is fetched alone and another peer owns it. An owner that has had
    /// nothing asked for [`OWNER_IDLE`] loses the piece, and what it sent.
    fn claim(&mut self, piece: u32, ip: IpAddr, now: Instant) -> bool {
        if !self.is_alone(piece) {
            return true;
        }
        let Some(d) = self.downloads.get_mut(&piece) else {
            return true;
        };
        match d.owner {
            None => true,
            Some((owner, _)) if owner == ip => true,
            Some((_, asked)) => {
                let holds =
                    |b: &Block| matches!(b, Block::Asked { due, .. } if now < *due + OWNER_IDLE);
                let idle = now.saturating_duration_since(asked) >= OWNER_IDLE
                    && !d.blocks.iter().any(holds);
                if idle {
                    d.blocks.fill(Block::Open);
                    d.done = 0;
                    d.senders = Senders::new(d.blocks.len());
                    d.owner = None;
                }
                idle
            }
        }
    }

    fn ask(
        &mut self,
        piece: u32,
        index: usize,
        ip: IpAddr,
        now: Instant,
        due: Instant,
    ) -> BlockRef {
        let alone = self.is_alone(piece);
        let d = self
            .downloads
            .get_mut(&piece)
            .expect("asked piece is in flight");
        if alone {
            d.owner = Some((ip, now));
        }
        d.blocks[index] = match d.blocks[index] {
            Block::Asked {
                peers,
                at,
                due: first,
            } => Block::Asked {
                peers: peers + 1,
                at,
                due: first.min(due),
            },
            _ => Block::Asked {
                peers: 1,
                at: now,
                due,
            },
        };
        self.block(piece, index)
    }

    /// A block arrived from the peer at `from`.
    pub fn receive(&mut self, from: IpAddr, piece: u32, offset: u32, data: &[u8]) -> Received {
        let Some(d) = self.downloads.get_mut(&piece) else {
            return Received::Unwanted;
        };
        // A piece fetched alone takes its owner's blocks only (a late one from
        // an owner it was taken from would mix two peers again).
        if !self.alone.is_empty()
            && self.alone.contains(&piece)
            && d.owner.is_some_and(|(owner, _)| owner != from)
        {
            return Received::Unwanted;
        }
        let index = (offset / BLOCK_LEN) as usize;
        let expected = BLOCK_LEN.min(d.buf.len() as u32 - offset.min(d.buf.len() as u32));
        if !offset.is_multiple_of(BLOCK_LEN)
            || index >= d.blocks.len()
            || data.len() as u32 != expected
            || d.blocks[index] == Block::Done
        {
            return Received::Unwanted;
        }
        d.buf[offset as usize..offset as usize + data.len()].copy_from_slice(data);
        d.blocks[index] = Block::Done;
        d.done += 1;
        d.senders.sent(index, from);
        if d.done as usize == d.blocks.len() {
            let d = self.downloads.remove(&piece).expect("present");
            self.verifying.insert(piece);
            self.passed_over.remove(&piece);
            self.alone.remove(&piece);
            return Received::Complete {
                data: d.buf,
                senders: d.senders,
            };
        }
        Received::Kept
    }

    /// The store has judged a complete piece: stored, or refused (then it may
    /// be fetched again).
    pub fn verified(&mut self, piece: u32) {
        self.verifying.remove(&piece);
    }

    /// `piece` failed its hash with several senders: its next copy comes from
    /// one peer alone. At most [`MAX_SUSPECTS`] at once, as many as `blame`
    /// keeps suspects for; beyond, a piece is fetched as any other.
    pub fn fetch_alone(&mut self, piece: u32) {
        if self.alone.len() < MAX_SUSPECTS {
            self.alone.insert(piece);
        }
    }

    /// A request to one peer ended without the block (choke, reject, timeout,
    /// disconnect): another peer may be asked.
    pub fn give_back(&mut self, block: &BlockRef) {
        let Some(d) = self.downloads.get_mut(&block.piece) else {
            return;
        };
        let index = (block.offset / BLOCK_LEN) as usize;
        if let Some(state) = d.blocks.get_mut(index) {
            *state = match *state {
                Block::Asked { peers, at, due } if peers > 1 => Block::Asked {
                    peers: peers - 1,
                    at,
                    due,
                },
                Block::Asked { .. } => Block::Open,
                other => other,
            };
        }
    }

    /// Drops every piece in flight that `liar` sent blocks of: its bytes
    /// cannot be trusted, and an honest peer must not be blamed for them.
    pub fn drop_from(&mut self, liar: IpAddr) {
        self.downloads
            .retain(|_, d| !d.senders.peers.contains(&liar));
    }

    /// Drops a piece in flight (its peers left, or it is no longer wanted and
    /// nothing of it arrived) so its buffer is freed.
    pub fn drop_piece(&mut self, piece: u32) {
        self.downloads.remove(&piece);
    }

    /// Pieces in flight that no one is fetching any more: nothing asked, so
    /// their buffers can go if they are not wanted.
    pub fn idle(&self) -> Vec<u32> {
        self.downloads
            .iter()
            .filter(|(_, d)| !d.blocks.iter().any(|b| matches!(b, Block::Asked { .. })))
            .map(|(p, _)| *p)
            .collect()
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.clamp(0.0, 3600.0))
}

#[cfg(test)]
mod tests;
