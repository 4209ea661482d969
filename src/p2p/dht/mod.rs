//! The mainline DHT (BEP 5): finds peers for info hashes without trackers,
//! and answers other nodes so the DHT works for them too.
//!
//! Owns one DHT node: its UDP socket, id, routing table and saved state, and
//! the peer lookups the swarms ask for. It only produces addresses: it never
//! connects to a peer, and it never reads the config (the caller passes the
//! bind address, routers and state file).
//!
//! # Design
//! [`krpc`] is the pure message format; [`table`], [`token`], [`peers`] and
//! [`limit`] are pure bounded bookkeeping with time passed in; `node` is the
//! engine (socket, receive loop, queries with deadlines, answers) and
//! `lookup` the iterative search. [`Dht`] is the handle: clones share one
//! node, and dropping the last clone saves the table and stops the tasks.
//! The table is saved as bencode (`id`, compact `nodes`) to the state file at
//! shutdown and every [`SAVE_EVERY`]; a start pings those nodes first, so a
//! restart finds the DHT without bootstrap routers. IPv4 only: BEP 32's
//! IPv6 DHT is not implemented.

pub mod krpc;
pub mod limit;
mod lookup;
mod node;
pub mod peers;
pub mod table;
pub mod token;

use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use futures_lite::future;
use smol::channel;
use smol::Task;

use crate::format::bencode::{self, Bencode};
use crate::format::InfoHash;
use krpc::{CompactNode, NodeId, COMPACT_NODE_LEN};
use lookup::Goal;
use node::Node;
use table::{K, MAX_BUCKETS};

/// How often lookups repeat, and the table is saved.
pub const LOOKUP_EVERY: Duration = Duration::from_secs(5 * 60);
pub const SAVE_EVERY: Duration = Duration::from_secs(5 * 60);
/// Housekeeping period: ping stale nodes, re-bootstrap a thin table.
pub const MAINTAIN_EVERY: Duration = Duration::from_secs(60);
/// A lookup that reached nobody (the table was still empty) retries this soon.
pub const RETRY_EMPTY: Duration = Duration::from_secs(3);
/// Bootstrap routers are resolved with this deadline each.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Saved nodes pinged at once at start.
const START_PINGS: usize = 16;
/// Largest state file read: a full table is 1280 × 26 bytes.
const MAX_STATE_FILE: u64 = 64 * 1024;

/// A running DHT node. Clones share it; it stops when the last clone drops.
#[derive(Clone)]
pub struct Dht {
    node: Arc<Node>,
    handle: Arc<Handle>,
}

/// Owns the background tasks; its drop is the node's shutdown.
struct Handle {
    node: Arc<Node>,
    state_file: PathBuf,
    tasks: Mutex<Vec<Task<()>>>,
    /// Resolved bootstrap routers, used when the table is thin.
    routers: Mutex<Vec<SocketAddrV4>>,
    /// Info hashes whose lookups should run again now (see [`Dht::again`]).
    again: Mutex<Vec<InfoHash>>,
    again_event: event_listener::Event,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.node.alive.store(false, Ordering::Relaxed);
        // Blocking, once, at shutdown: a file of at most 33 KB.
        let bytes = saved_table(&self.node);
        if let Err(e) = write_atomically(&self.state_file, &bytes) {
            log::warn!("dht: cannot save {}: {e}", self.state_file.display());
        }
        // Dropping `tasks` cancels the receive loop and housekeeping.
    }
}

impl Dht {
    /// Binds UDP `bind` (the lead passes 0.0.0.0:<TORRENT_PORT actually bound>), loads the
    /// saved table from `state_file`, bootstraps, and runs until dropped.
    pub async fn start(
        bind: SocketAddr,
        bootstrap: Vec<String>,
        state_file: PathBuf,
    ) -> io::Result<Dht> {
        if !bind.is_ipv4() {
            // BEP 32 (IPv6 DHT) is not implemented: an IPv6 socket could not
            // reach the IPv4 nodes the table holds.
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("dht: bind {bind}: only IPv4 is supported"),
            ));
        }
        let socket = Arc::new(Async::<UdpSocket>::bind(bind)?);
        Dht::start_with(socket, None, bootstrap, state_file).await
    }

    /// Runs on a socket someone else reads (uTP's, on `TORRENT_PORT`): our
    /// datagrams come through `inbox`, and we send on `socket`.
    pub async fn start_shared(
        socket: Arc<Async<UdpSocket>>,
        inbox: channel::Receiver<(Vec<u8>, SocketAddr)>,
        bootstrap: Vec<String>,
        state_file: PathBuf,
    ) -> io::Result<Dht> {
        if !socket.get_ref().local_addr()?.is_ipv4() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "dht: only IPv4 is supported",
            ));
        }
        Dht::start_with(socket, Some(inbox), bootstrap, state_file).await
    }

    async fn start_with(
        socket: Arc<Async<UdpSocket>>,
        inbox: Option<channel::Receiver<(Vec<u8>, SocketAddr)>>,
        bootstrap: Vec<String>,
        state_file: PathBuf,
    ) -> io::Result<Dht> {
        let saved = {
            let path = state_file.clone();
            smol::unblock(move || load(&path)).await
        };
        let id = saved.as_ref().map_or_else(NodeId::random, |s| s.id);
        let node = Arc::new(Node::new(id, socket, inbox)?);
        log::info!(
            "dht: node {id:?} on {} ({} saved nodes)",
            node.local,
            saved.as_ref().map_or(0, |s| s.nodes.len())
        );
        let handle = Arc::new(Handle {
            node: Arc::clone(&node),
            state_file,
            tasks: Mutex::new(Vec::new()),
            routers: Mutex::new(Vec::new()),
            again: Mutex::new(Vec::new()),
            again_event: event_listener::Event::new(),
        });
        let dht = Dht { node, handle };
        let receive = smol::spawn(Arc::clone(&dht.node).receive_loop());
        let saved_nodes = saved.map(|s| s.nodes).unwrap_or_default();
        let weak = Arc::downgrade(&dht.handle);
        let node = Arc::clone(&dht.node);
        let housekeeping = smol::spawn(async move {
            bootstrap_from(&node, &weak, &saved_nodes, &bootstrap).await;
            maintain(&node, &weak, &bootstrap).await;
        });
        *dht.handle.tasks.lock().expect("fresh") = vec![receive, housekeeping];
        Ok(dht)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.node.local
    }

    /// Looks peers up for `info_hash` now and every 5 min (sooner if `again()`); peers found go to
    /// the returned channel; the lookup stops when the receiver is dropped. If `announce_port` is
    /// Some, announces us at the end of each lookup.
    pub fn get_peers(
        &self,
        info_hash: InfoHash,
        announce_port: Option<u16>,
    ) -> channel::Receiver<Vec<SocketAddr>> {
        // Batches, not single peers: a slow swarm holds the lookup back
        // after 64 responses' worth rather than letting memory grow.
        let (tx, rx) = channel::bounded(64);
        let node = Arc::clone(&self.node);
        let weak = Arc::downgrade(&self.handle);
        smol::spawn(async move {
            while node.alive.load(Ordering::Relaxed) && !tx.is_closed() {
                let seeds = match weak.upgrade() {
                    Some(h) => h.thin_table_seeds(),
                    None => break,
                };
                let outcome =
                    lookup::run(&node, Goal::GetPeers(info_hash), &seeds, Some(&tx)).await;
                log::debug!(
                    "dht: get_peers {info_hash}: {} nodes answered, {} gave tokens",
                    outcome.answered,
                    outcome.with_tokens.len()
                );
                if let (Some(port), false) = (announce_port, outcome.with_tokens.is_empty()) {
                    let n = lookup::announce(&node, info_hash, port, outcome.with_tokens).await;
                    log::debug!("dht: announced {info_hash} port {port} to {n} nodes");
                }
                let pause = if outcome.answered == 0 {
                    RETRY_EMPTY
                } else {
                    LOOKUP_EVERY
                };
                if !wait_for_next_round(&weak, info_hash, pause, &tx).await {
                    break;
                }
            }
        })
        .detach();
        rx
    }

    /// Runs the lookups for `info_hash` again now instead of at their next
    /// period (for a swarm that ran out of peers).
    pub fn again(&self, info_hash: InfoHash) {
        let mut again = self.handle.again.lock().expect("not poisoned");
        if !again.contains(&info_hash) && again.len() < 1024 {
            again.push(info_hash);
        }
        drop(again);
        self.handle.again_event.notify(usize::MAX);
    }

    /// A node learned elsewhere (a peer's PORT message).
    pub fn add_node(&self, addr: SocketAddr) {
        let SocketAddr::V4(addr) = addr else { return };
        if addr.port() == 0 || SocketAddr::V4(addr) == self.node.local {
            return;
        }
        let node = Arc::clone(&self.node);
        // The ping's response puts it in the table.
        smol::spawn(async move {
            let _ = node.ping(addr).await;
        })
        .detach();
    }

    pub async fn save(&self) -> io::Result<()> {
        let bytes = saved_table(&self.node);
        let path = self.handle.state_file.clone();
        smol::unblock(move || write_atomically(&path, &bytes)).await
    }

    /// Nodes in the table, for the status API and tests.
    pub fn node_count(&self) -> usize {
        self.node.state().table.len()
    }

    /// Sizes of every bounded structure, for tests of the bounds.
    #[doc(hidden)]
    pub fn footprint(&self) -> Footprint {
        let state = self.node.state();
        Footprint {
            nodes: state.table.len(),
            replacements: state.table.replacement_count(),
            buckets: state.table.bucket_count(),
            announced_torrents: state.peers.torrent_count(),
            announced_peers: state.peers.peer_count(),
            rate_limited_sources: state.limit.tracked(),
            outstanding_queries: self.node.outstanding(),
            malformed: self.node.malformed.load(Ordering::Relaxed),
            rate_limited: self.node.limited.load(Ordering::Relaxed),
        }
    }
}

/// Waits until the next lookup round for `info_hash` is due: after `pause`,
/// or at once when [`Dht::again`] asks for it. False when the lookup should
/// end (the receiver or the node is gone).
async fn wait_for_next_round(
    handle: &std::sync::Weak<Handle>,
    info_hash: InfoHash,
    pause: Duration,
    tx: &channel::Sender<Vec<SocketAddr>>,
) -> bool {
    let due = Instant::now() + pause;
    loop {
        let Some(h) = handle.upgrade() else {
            return false;
        };
        // Listen before checking, so an again() in between is not missed.
        let listener = h.again_event.listen();
        {
            let mut again = h.again.lock().expect("not poisoned");
            if let Some(i) = again.iter().position(|x| *x == info_hash) {
                again.swap_remove(i);
                return true;
            }
        }
        drop(h);
        enum Woke {
            Due,
            Closed,
            Again,
        }
        let woke = future::or(
            async {
                Timer::at(due).await;
                Woke::Due
            },
            future::or(
                async {
                    tx.closed().await;
                    Woke::Closed
                },
                async {
                    listener.await;
                    Woke::Again
                },
            ),
        )
        .await;
        match woke {
            Woke::Due => return true,
            Woke::Closed => return false,
            Woke::Again => continue,
        }
    }
}

/// See [`Dht::footprint`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footprint {
    pub nodes: usize,
    pub replacements: usize,
    pub buckets: usize,
    pub announced_torrents: usize,
    pub announced_peers: usize,
    pub rate_limited_sources: usize,
    pub outstanding_queries: usize,
    pub malformed: u64,
    pub rate_limited: u64,
}

impl Handle {
    /// Routers to add to a lookup when the table cannot fill one by itself.
    fn thin_table_seeds(&self) -> Vec<SocketAddrV4> {
        if self.node.state().table.len() >= K {
            return Vec::new();
        }
        self.routers.lock().expect("not poisoned").clone()
    }
}

/// Pings the saved nodes (a few at a time), resolves the routers, and looks
/// our own id up, which fills the buckets near us.
async fn bootstrap_from(
    node: &Arc<Node>,
    handle: &std::sync::Weak<Handle>,
    saved: &[CompactNode],
    bootstrap: &[String],
) {
    for batch in saved.chunks(START_PINGS) {
        let pings: Vec<_> = batch
            .iter()
            .map(|n| {
                let (node, addr) = (Arc::clone(node), n.addr);
                smol::spawn(async move {
                    let _ = node.ping(addr).await;
                })
            })
            .collect();
        for p in pings {
            p.await;
        }
    }
    let routers = resolve_all(bootstrap).await;
    if let Some(h) = handle.upgrade() {
        *h.routers.lock().expect("not poisoned") = routers.clone();
    }
    let outcome = lookup::run(node, Goal::FindNode(node.id), &routers, None).await;
    log::info!(
        "dht: bootstrap: {} nodes answered, {} in the table",
        outcome.answered,
        node.state().table.len()
    );
}

/// Housekeeping until the node stops: pings stale nodes, refreshes a thin
/// table from the routers, saves the table.
async fn maintain(node: &Arc<Node>, handle: &std::sync::Weak<Handle>, bootstrap: &[String]) {
    let mut last_save = Instant::now();
    loop {
        Timer::after(MAINTAIN_EVERY).await;
        let Some(h) = handle.upgrade() else { return };
        let stale = node.state().table.stale(K, Instant::now());
        node.ping_later(stale);
        if node.state().table.len() < K {
            let routers = resolve_all(bootstrap).await;
            *h.routers.lock().expect("not poisoned") = routers.clone();
            lookup::run(node, Goal::FindNode(node.id), &routers, None).await;
        }
        if last_save.elapsed() >= SAVE_EVERY {
            last_save = Instant::now();
            let bytes = saved_table(node);
            let path = h.state_file.clone();
            if let Err(e) = smol::unblock(move || write_atomically(&path, &bytes)).await {
                log::warn!("dht: cannot save the table: {e}");
            }
        }
    }
}

/// Resolves `host:port` routers to IPv4 addresses, each with a deadline.
async fn resolve_all(bootstrap: &[String]) -> Vec<SocketAddrV4> {
    let mut out = Vec::new();
    for entry in bootstrap {
        let resolved = future::or(
            async { smol::net::resolve(entry.as_str()).await.ok() },
            async {
                Timer::after(RESOLVE_TIMEOUT).await;
                None
            },
        )
        .await;
        match resolved {
            Some(addrs) => out.extend(addrs.into_iter().filter_map(|a| match a {
                SocketAddr::V4(v4) => Some(v4),
                SocketAddr::V6(_) => None,
            })),
            None => log::warn!("dht: cannot resolve bootstrap router {entry}"),
        }
    }
    out.dedup();
    out
}

/// The state file's content.
struct Saved {
    id: NodeId,
    nodes: Vec<CompactNode>,
}

fn saved_table(node: &Node) -> Vec<u8> {
    let nodes = node.state().table.nodes(Instant::now());
    let mut compact = Vec::with_capacity(nodes.len() * COMPACT_NODE_LEN);
    nodes
        .iter()
        .for_each(|n| krpc::encode_compact_node(n, &mut compact));
    let mut dict = BTreeMap::new();
    dict.insert(b"id".to_vec(), Bencode::Bytes(node.id.0.to_vec()));
    dict.insert(b"nodes".to_vec(), Bencode::Bytes(compact));
    Bencode::Dict(dict).to_bytes()
}

/// Reads the state file; a missing or damaged one means a fresh start.
fn load(path: &Path) -> Option<Saved> {
    use std::io::Read;
    let file = std::fs::File::open(path).ok()?;
    let mut bytes = Vec::new();
    file.take(MAX_STATE_FILE).read_to_end(&mut bytes).ok()?;
    let parsed = parse_saved(&bytes);
    if parsed.is_none() {
        log::warn!("dht: ignoring damaged {}", path.display());
    }
    parsed
}

fn parse_saved(bytes: &[u8]) -> Option<Saved> {
    let root = bencode::parse(bytes).ok()?;
    let id = NodeId(root.get(b"id")?.as_bytes()?.try_into().ok()?);
    let mut nodes = krpc::compact_node_list(root.get(b"nodes")?.as_bytes()?).ok()?;
    nodes.truncate(MAX_BUCKETS * K);
    nodes.retain(|n| n.addr.port() != 0);
    Some(Saved { id, nodes })
}

/// Writes through a temporary file and a rename, so a crash leaves the old
/// table or the new one, never half of one.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests;
