//! The Kademlia routing table: who we know, by distance from our id.
//!
//! Owns the buckets, each node's state (good, questionable, bad, per BEP 5)
//! and the replacement caches. Pure bookkeeping: it never sends anything.
//! When a full bucket holds questionable nodes, [`Table::heard_from`] says
//! which to ping, and the engine reports back with [`Table::heard_from`] or
//! [`Table::failed`].
//!
//! # Design
//! Buckets are indexed by the length of the prefix a node shares with our id,
//! the usual flattening of BEP 5's splitting tree: the last bucket holds every
//! node at least that close, and splitting it moves the closer ones into a new
//! last bucket. Only the bucket that covers our id splits, as BEP 5 says, so
//! the table holds at most [`MAX_BUCKETS`] × [`K`] nodes plus as many in the
//! replacement caches: about 2,600 entries of ~60 bytes, 150 KiB at worst,
//! and 100–200 nodes in practice.

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use super::krpc::{CompactNode, NodeId, ID_LEN};

/// Nodes per bucket (BEP 5's K).
pub const K: usize = 8;
/// One bucket per bit of the id space.
pub const MAX_BUCKETS: usize = ID_LEN * 8;
/// Spare nodes kept per bucket, to replace the ones that go bad.
pub const REPLACEMENTS: usize = 8;
/// BEP 5: a node is good if it answered us, or queried us after having
/// answered once, within the last 15 minutes.
pub const GOOD_FOR: Duration = Duration::from_secs(15 * 60);
/// Unanswered queries in a row after which a node is bad.
pub const BAD_AFTER_FAILURES: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    Good,
    Questionable,
    Bad,
}

/// How we heard from a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contact {
    /// It answered one of our queries: its address is proven.
    Responded,
    /// It queried us: it exists, but its id and port are only claimed.
    Queried,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub node: CompactNode,
    pub last_response: Option<Instant>,
    pub last_seen: Instant,
    pub failures: u32,
}

impl Entry {
    pub fn state(&self, now: Instant) -> NodeState {
        if self.failures >= BAD_AFTER_FAILURES {
            return NodeState::Bad;
        }
        let recent = now.saturating_duration_since(self.last_seen) < GOOD_FOR;
        if self.last_response.is_some() && recent {
            NodeState::Good
        } else {
            NodeState::Questionable
        }
    }
}

/// What [`Table::heard_from`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Insert {
    Added,
    Updated,
    /// Into the replacement cache of a full bucket; ping these questionable
    /// nodes, and the first that fails makes room.
    Pending {
        ping: Vec<CompactNode>,
    },
    /// Our own id, an address already known under another id (or the
    /// reverse), or a full bucket of good nodes.
    Ignored,
}

#[derive(Debug, Default)]
struct Bucket {
    nodes: Vec<Entry>,
    replacements: Vec<Entry>,
}

#[derive(Debug)]
pub struct Table {
    own: NodeId,
    buckets: Vec<Bucket>,
}

impl Table {
    pub fn new(own: NodeId) -> Table {
        Table {
            own,
            buckets: vec![Bucket::default()],
        }
    }

    pub fn own_id(&self) -> NodeId {
        self.own
    }

    fn index(&self, id: &NodeId) -> usize {
        self.own.common_prefix_len(id).min(self.buckets.len() - 1)
    }

    /// Nodes in the buckets (not counting replacements).
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.nodes.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// Replacement entries over all buckets.
    pub fn replacement_count(&self) -> usize {
        self.buckets.iter().map(|b| b.replacements.len()).sum()
    }

    /// Records that `node` is alive.
    pub fn heard_from(&mut self, node: CompactNode, contact: Contact, now: Instant) -> Insert {
        if node.id == self.own {
            return Insert::Ignored;
        }
        // One entry per id and per address. An id seen at a second address
        // is ignored (a liar, or a move we learn when the old entry fails).
        // An address answering with a new id is a restarted node: its
        // response proves it, so the old entry goes; a query only claims it.
        let mut restarted = None;
        for (b, bucket) in self.buckets.iter_mut().enumerate() {
            for (i, entry) in bucket.nodes.iter_mut().enumerate() {
                match (entry.node.id == node.id, entry.node.addr == node.addr) {
                    (true, true) => {
                        entry.last_seen = now;
                        if contact == Contact::Responded {
                            entry.last_response = Some(now);
                            entry.failures = 0;
                        }
                        return Insert::Updated;
                    }
                    (false, false) => {}
                    (false, true) if contact == Contact::Responded => restarted = Some((b, i)),
                    _ => return Insert::Ignored,
                }
            }
        }
        if let Some((b, i)) = restarted {
            self.buckets[b].nodes.remove(i);
        }
        let entry = Entry {
            node,
            last_response: (contact == Contact::Responded).then_some(now),
            last_seen: now,
            failures: 0,
        };
        loop {
            let i = self.index(&node.id);
            let can_split = i == self.buckets.len() - 1 && self.buckets.len() < MAX_BUCKETS;
            let bucket = &mut self.buckets[i];
            if bucket.nodes.len() < K {
                bucket.replacements.retain(|r| r.node != node);
                bucket.nodes.push(entry);
                return Insert::Added;
            }
            if let Some(bad) = bucket
                .nodes
                .iter()
                .position(|e| e.state(now) == NodeState::Bad)
            {
                bucket.nodes[bad] = entry;
                return Insert::Added;
            }
            if can_split {
                self.split();
                continue;
            }
            let ping: Vec<CompactNode> = bucket
                .nodes
                .iter()
                .filter(|e| e.state(now) == NodeState::Questionable)
                .map(|e| e.node)
                .collect();
            if ping.is_empty() && contact == Contact::Queried {
                return Insert::Ignored;
            }
            remember(&mut bucket.replacements, entry);
            return if ping.is_empty() {
                Insert::Ignored
            } else {
                Insert::Pending { ping }
            };
        }
    }

    /// Splits the last bucket: the nodes that share one more bit with our id
    /// move into a new last bucket.
    fn split(&mut self) {
        let new_index = self.buckets.len();
        let own = self.own;
        let closer = |e: &Entry| own.common_prefix_len(&e.node.id) >= new_index;
        let old = self.buckets.last_mut().expect("never empty");
        let mut moved = Bucket::default();
        let (stay, go): (Vec<Entry>, Vec<Entry>) = old.nodes.drain(..).partition(|e| !closer(e));
        old.nodes = stay;
        moved.nodes = go;
        let (stay, go): (Vec<Entry>, Vec<Entry>) =
            old.replacements.drain(..).partition(|e| !closer(e));
        old.replacements = stay;
        moved.replacements = go;
        self.buckets.push(moved);
    }

    /// A query to `addr` went unanswered. A node that becomes bad is replaced
    /// by the freshest replacement of its bucket, if there is one.
    pub fn failed(&mut self, addr: SocketAddrV4, now: Instant) {
        for bucket in &mut self.buckets {
            let Some(i) = bucket.nodes.iter().position(|e| e.node.addr == addr) else {
                continue;
            };
            bucket.nodes[i].failures += 1;
            if bucket.nodes[i].state(now) == NodeState::Bad {
                if let Some(fresh) = bucket.replacements.pop() {
                    bucket.nodes[i] = fresh;
                }
            }
            return;
        }
    }

    /// Up to `n` good or questionable nodes closest to `target`.
    pub fn closest(&self, target: &NodeId, n: usize, now: Instant) -> Vec<CompactNode> {
        let mut all: Vec<&Entry> = self
            .buckets
            .iter()
            .flat_map(|b| b.nodes.iter())
            .filter(|e| e.state(now) != NodeState::Bad)
            .collect();
        all.sort_by_key(|e| e.node.id.distance(target));
        all.into_iter().take(n).map(|e| e.node).collect()
    }

    /// Questionable nodes not heard from for the longest time, to ping.
    pub fn stale(&self, n: usize, now: Instant) -> Vec<CompactNode> {
        let mut q: Vec<&Entry> = self
            .buckets
            .iter()
            .flat_map(|b| b.nodes.iter())
            .filter(|e| e.state(now) == NodeState::Questionable)
            .collect();
        q.sort_by_key(|e| e.last_seen);
        q.into_iter().take(n).map(|e| e.node).collect()
    }

    /// Every node that is not bad, for the saved table.
    pub fn nodes(&self, now: Instant) -> Vec<CompactNode> {
        self.closest(&self.own, usize::MAX, now)
    }

    #[cfg(test)]
    pub(crate) fn entry(&self, id: &NodeId) -> Option<&Entry> {
        self.buckets
            .iter()
            .flat_map(|b| b.nodes.iter())
            .find(|e| e.node.id == *id)
    }
}

/// Keeps the newest [`REPLACEMENTS`] candidates, the freshest last.
fn remember(cache: &mut Vec<Entry>, entry: Entry) {
    cache.retain(|e| e.node.id != entry.node.id && e.node.addr != entry.node.addr);
    if cache.len() >= REPLACEMENTS {
        cache.remove(0);
    }
    cache.push(entry);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn node(id: NodeId, n: u32) -> CompactNode {
        CompactNode {
            id,
            addr: SocketAddrV4::new(Ipv4Addr::from(0x0a00_0000 + n), 6881),
        }
    }

    /// An id that shares exactly `prefix` bits with `own`, varied by `salt`.
    fn at_prefix(own: NodeId, prefix: usize, salt: u8) -> NodeId {
        let mut id = own.0;
        id[prefix / 8] ^= 0x80 >> (prefix % 8);
        // Vary only bits after the flipped one.
        let mask = if prefix < 152 {
            0xff
        } else {
            (1u8 << (7 - prefix % 8)) - 1
        };
        id[19] ^= salt & mask;
        NodeId(id)
    }

    #[test]
    fn nodes_are_added_updated_and_our_id_ignored() {
        let own = NodeId([0; 20]);
        let mut t = Table::new(own);
        let now = Instant::now();
        assert_eq!(
            t.heard_from(node(own, 1), Contact::Responded, now),
            Insert::Ignored
        );
        let n = node(NodeId([0xff; 20]), 1);
        assert_eq!(t.heard_from(n, Contact::Queried, now), Insert::Added);
        assert_eq!(t.entry(&n.id).unwrap().state(now), NodeState::Questionable);
        assert_eq!(t.heard_from(n, Contact::Responded, now), Insert::Updated);
        assert_eq!(t.entry(&n.id).unwrap().state(now), NodeState::Good);
        assert_eq!(
            t.entry(&n.id).unwrap().state(now + GOOD_FOR),
            NodeState::Questionable,
            "15 minutes of silence make a good node questionable"
        );
        // Same id at another address: ignored.
        assert_eq!(
            t.heard_from(node(n.id, 2), Contact::Responded, now),
            Insert::Ignored
        );
        // Same address, another id: only claimed by a query, ignored; proven
        // by a response, it replaces the old entry (a restarted node).
        let restarted = node(NodeId([0xfe; 20]), 1);
        assert_eq!(
            t.heard_from(restarted, Contact::Queried, now),
            Insert::Ignored
        );
        assert!(t.entry(&n.id).is_some());
        assert_eq!(
            t.heard_from(restarted, Contact::Responded, now),
            Insert::Added
        );
        assert!(t.entry(&n.id).is_none());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn the_bucket_holding_our_id_splits_and_far_buckets_do_not() {
        let own = NodeId::random();
        let mut t = Table::new(own);
        let now = Instant::now();
        // Nine far nodes (prefix 0): the first bucket splits once, then bucket 0 is full.
        for i in 0..(K as u8 + 1) {
            t.heard_from(
                node(at_prefix(own, 0, i), u32::from(i)),
                Contact::Responded,
                now,
            );
        }
        assert_eq!(t.len(), K);
        assert_eq!(t.bucket_count(), 2);
        // A close node still fits: it lands in the last bucket.
        assert_eq!(
            t.heard_from(node(at_prefix(own, 100, 1), 100), Contact::Responded, now),
            Insert::Added
        );
        assert_eq!(t.len(), K + 1);
    }

    #[test]
    fn table_is_bounded_under_a_flood_of_ids() {
        let own = NodeId::random();
        let mut t = Table::new(own);
        let now = Instant::now();
        let mut n = 0;
        for prefix in 0..160 {
            for salt in 0..40u8 {
                n += 1;
                t.heard_from(
                    node(at_prefix(own, prefix, salt), n),
                    Contact::Responded,
                    now,
                );
            }
        }
        for _ in 0..20_000 {
            n += 1;
            t.heard_from(node(NodeId::random(), n), Contact::Queried, now);
        }
        assert!(t.bucket_count() <= MAX_BUCKETS);
        assert!(t.len() <= MAX_BUCKETS * K, "{} nodes", t.len());
        assert!(t.replacement_count() <= MAX_BUCKETS * REPLACEMENTS);
        assert!(t.len() > 100, "the close buckets filled: {}", t.len());
    }

    #[test]
    fn questionable_nodes_are_pinged_before_being_replaced() {
        let own = NodeId([0; 20]);
        let mut t = Table::new(own);
        let start = Instant::now();
        // Fill bucket 0 (after one split) with far nodes that answered once.
        let far: Vec<CompactNode> = (0..K as u8)
            .map(|i| node(at_prefix(own, 0, i), u32::from(i)))
            .collect();
        far.iter()
            .for_each(|n| assert_eq!(t.heard_from(*n, Contact::Responded, start), Insert::Added));
        t.heard_from(node(at_prefix(own, 1, 0), 50), Contact::Responded, start);
        assert_eq!(t.bucket_count(), 2);

        // While they are good, a newcomer is only a replacement.
        let newcomer = node(at_prefix(own, 0, 99), 99);
        assert_eq!(
            t.heard_from(newcomer, Contact::Responded, start),
            Insert::Ignored
        );
        assert!(t.entry(&newcomer.id).is_none());

        // 15 minutes later they are questionable: ping them, do not evict yet.
        let later = start + GOOD_FOR + Duration::from_secs(1);
        let Insert::Pending { ping } = t.heard_from(newcomer, Contact::Responded, later) else {
            panic!("expected pings");
        };
        assert_eq!(ping.len(), K);
        assert!(t.entry(&newcomer.id).is_none());

        // One answers, one does not (twice): the silent one is replaced.
        t.heard_from(ping[0], Contact::Responded, later);
        t.failed(ping[1].addr, later);
        assert!(t.entry(&ping[1].id).is_some(), "one failure is not bad yet");
        t.failed(ping[1].addr, later);
        assert!(t.entry(&ping[1].id).is_none());
        assert!(t.entry(&newcomer.id).is_some());
        assert_eq!(t.entry(&ping[0].id).unwrap().state(later), NodeState::Good);
    }

    #[test]
    fn closest_orders_by_xor_distance() {
        let own = NodeId([0; 20]);
        let mut t = Table::new(own);
        let now = Instant::now();
        for i in 1..=20u8 {
            let mut id = [0u8; 20];
            id[0] = i;
            t.heard_from(node(NodeId(id), u32::from(i)), Contact::Responded, now);
        }
        let mut target = [0u8; 20];
        target[0] = 6;
        let got: Vec<u8> = t
            .closest(&NodeId(target), 4, now)
            .iter()
            .map(|n| n.id.0[0])
            .collect();
        assert_eq!(got, vec![6, 7, 4, 5]);
    }
}
