//! Iterative Kademlia lookups: find_node (bootstrap, refresh) and get_peers
//! (peers for an info hash), then announce_peer to the closest nodes.
//!
//! Owns one lookup's candidate list. Must never query more than [`ALPHA`]
//! nodes at once, keep more than [`MAX_CANDIDATES`] candidates, or run past
//! its deadline.
//!
//! # Design
//! The candidates are kept sorted by distance to the target. Each step
//! queries the closest not-yet-asked candidate among the [`K`] closest that
//! have not failed; the lookup ends when those K have all answered or failed,
//! or at [`LOOKUP_DEADLINE`]. Peers are streamed to the caller as each
//! response arrives, so a swarm can connect before the lookup converges.
//! Seeds without a known id (bootstrap routers, saved nodes) sort last but
//! are queried when nothing closer is known.

use std::collections::HashSet;
use std::net::{SocketAddr, SocketAddrV4};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_io::Timer;
use futures_lite::future;
use smol::channel;

use super::krpc::{NodeId, Query, Response, ID_LEN};
use super::node::{Node, QueryError};
use super::table::K;
use crate::format::InfoHash;

/// Queries in flight per lookup (BEP 5 / Kademlia's alpha).
pub const ALPHA: usize = 3;
/// Candidates kept per lookup; far ones beyond are dropped.
pub const MAX_CANDIDATES: usize = 64;
/// A lookup converges in a few seconds on the real DHT; one that has not in
/// 30 s is waiting on dead nodes.
pub const LOOKUP_DEADLINE: Duration = Duration::from_secs(30);
/// Distinct peers reported per lookup; beyond, new ones are not tracked.
pub const MAX_PEERS_PER_LOOKUP: usize = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Fresh,
    Asked,
    Answered,
    Failed,
}

#[derive(Debug)]
struct Candidate {
    addr: SocketAddrV4,
    id: Option<NodeId>,
    step: Step,
    token: Option<Vec<u8>>,
}

/// What a lookup is for.
#[derive(Debug, Clone, Copy)]
pub enum Goal {
    FindNode(NodeId),
    GetPeers(InfoHash),
}

impl Goal {
    fn target(&self) -> NodeId {
        match self {
            Goal::FindNode(id) => *id,
            Goal::GetPeers(h) => (*h).into(),
        }
    }
}

/// The outcome: how many nodes answered, and the closest that gave a token.
#[derive(Debug, Default)]
pub struct Outcome {
    pub answered: usize,
    pub with_tokens: Vec<(SocketAddrV4, Vec<u8>)>,
}

struct Lookup {
    target: NodeId,
    own: SocketAddr,
    candidates: Vec<Candidate>,
}

impl Lookup {
    fn key(&self, c: &Candidate) -> [u8; ID_LEN] {
        c.id.map_or([0xff; ID_LEN], |id| id.distance(&self.target))
    }

    fn add(&mut self, addr: SocketAddrV4, id: Option<NodeId>) {
        if addr.port() == 0
            || SocketAddr::V4(addr) == self.own
            || self.candidates.iter().any(|c| c.addr == addr)
        {
            return;
        }
        let c = Candidate {
            addr,
            id,
            step: Step::Fresh,
            token: None,
        };
        let key = self.key(&c);
        let at = self.candidates.partition_point(|o| self.key(o) <= key);
        if at >= MAX_CANDIDATES {
            return;
        }
        self.candidates.insert(at, c);
        if self.candidates.len() > MAX_CANDIDATES {
            // Keep a far candidate that is being asked; drop the farthest other.
            if let Some(i) = self.candidates.iter().rposition(|c| c.step != Step::Asked) {
                self.candidates.remove(i);
            }
        }
    }

    /// The next candidate to ask: fresh, among the K closest not failed.
    fn next(&mut self) -> Option<SocketAddrV4> {
        let c = self
            .candidates
            .iter_mut()
            .filter(|c| c.step != Step::Failed)
            .take(K)
            .find(|c| c.step == Step::Fresh)?;
        c.step = Step::Asked;
        Some(c.addr)
    }

    fn candidate(&mut self, addr: SocketAddrV4) -> Option<&mut Candidate> {
        self.candidates.iter_mut().find(|c| c.addr == addr)
    }
}

/// Runs one lookup from `seeds` (plus the table's closest). For get_peers,
/// batches of new peers go to `peers`; the lookup stops early when that
/// channel is closed.
pub async fn run(
    node: &Arc<Node>,
    goal: Goal,
    seeds: &[SocketAddrV4],
    peers: Option<&channel::Sender<Vec<SocketAddr>>>,
) -> Outcome {
    let target = goal.target();
    let mut lookup = Lookup {
        target,
        own: node.local,
        candidates: Vec::new(),
    };
    let known = node.state().table.closest(&target, K, Instant::now());
    for n in known {
        lookup.add(n.addr, Some(n.id));
    }
    seeds.iter().for_each(|a| lookup.add(*a, None));

    let (tx, rx) = channel::unbounded::<(SocketAddrV4, Result<Response, QueryError>)>();
    let deadline = Instant::now() + LOOKUP_DEADLINE;
    let mut in_flight = 0;
    let mut seen: HashSet<SocketAddr> = HashSet::new();
    let mut outcome = Outcome::default();
    loop {
        while in_flight < ALPHA {
            let Some(addr) = lookup.next() else {
                break;
            };
            let query = match goal {
                Goal::FindNode(target) => Query::FindNode {
                    id: node.id,
                    target,
                },
                Goal::GetPeers(info_hash) => Query::GetPeers {
                    id: node.id,
                    info_hash,
                },
            };
            let (node, tx) = (Arc::clone(node), tx.clone());
            smol::spawn(async move {
                let reply = node.query(addr, query).await;
                let _ = tx.send((addr, reply)).await;
            })
            .detach();
            in_flight += 1;
        }
        if in_flight == 0 || !node.alive.load(Ordering::Relaxed) {
            break;
        }
        let next = future::or(async { rx.recv().await.ok() }, async {
            Timer::at(deadline).await;
            None
        })
        .await;
        let Some((addr, reply)) = next else {
            log::debug!("dht: lookup for {target:?} hit its deadline");
            break;
        };
        in_flight -= 1;
        let response = match reply {
            Ok(r) => r,
            Err(_) => {
                if let Some(c) = lookup.candidate(addr) {
                    c.step = Step::Failed;
                }
                continue;
            }
        };
        outcome.answered += 1;
        if let Some(c) = lookup.candidate(addr) {
            c.step = Step::Answered;
            c.token = response.token.clone();
        }
        // The answering node's id may differ from what a seed was assumed to
        // be; its position is not worth re-sorting for.
        for n in response.nodes.iter().filter(|n| n.id != node.id) {
            lookup.add(n.addr, Some(n.id));
        }
        if let Some(out) = peers {
            let fresh: Vec<SocketAddr> = response
                .values
                .iter()
                .filter(|p| p.port() != 0)
                .map(|p| SocketAddr::V4(*p))
                .filter(|p| seen.len() < MAX_PEERS_PER_LOOKUP && seen.insert(*p))
                .collect();
            if !fresh.is_empty() && out.send(fresh).await.is_err() {
                break;
            }
        }
    }
    outcome.with_tokens = lookup
        .candidates
        .iter()
        .filter(|c| c.step == Step::Answered)
        .take(K)
        .filter_map(|c| Some((c.addr, c.token.clone()?)))
        .collect();
    outcome
}

/// Announces us for `info_hash` to the nodes that gave tokens, all at once;
/// returns how many accepted.
pub async fn announce(
    node: &Arc<Node>,
    info_hash: InfoHash,
    port: u16,
    to: Vec<(SocketAddrV4, Vec<u8>)>,
) -> usize {
    let tasks: Vec<_> = to
        .into_iter()
        .map(|(addr, token)| {
            let node = Arc::clone(node);
            smol::spawn(async move {
                let query = Query::AnnouncePeer {
                    id: node.id,
                    info_hash,
                    port,
                    implied_port: false,
                    token,
                };
                node.query(addr, query).await.is_ok()
            })
        })
        .collect();
    let mut accepted = 0;
    for t in tasks {
        accepted += usize::from(t.await);
    }
    accepted
}
