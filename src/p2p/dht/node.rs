//! The DHT node's engine: one UDP socket, the receive loop, outgoing queries
//! matched to their responses, and answers to other nodes' queries.
//!
//! Owns the socket and the shared state (routing table, tokens, announced
//! peers, rate limits, outstanding queries). Must never hold a lock across an
//! `.await`, wait on the network without a deadline, or let a datagram grow
//! any structure beyond its bound.
//!
//! # Design
//! Every outgoing query gets a 2-byte transaction id and a slot in
//! `Pending`, keyed by (tid, address): a response is accepted only from the
//! address the query went to, and only a solicited response puts a node in
//! the table as proven. Queries wait with [`QUERY_TIMEOUT`]; at most
//! [`MAX_OUTSTANDING`] are in flight, beyond which a query fails at once with
//! [`QueryError::Busy`] rather than queueing without bound.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use futures_lite::future;
use smol::channel;

use super::krpc::{self, Body, CompactNode, Message, NodeId, Query, Response};
use super::limit::QueryLimit;
use super::peers::PeerStore;
use super::table::{Contact, Insert, Table, K};
use super::token::Tokens;

/// How long a query waits for its response. libtorrent waits 5 s for a
/// first try; loopback and LAN nodes answer in milliseconds.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Queries in flight at once: 3 per lookup for dozens of torrents plus pings.
pub const MAX_OUTSTANDING: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    Timeout,
    /// [`MAX_OUTSTANDING`] queries already in flight.
    Busy,
    /// The node answered with a KRPC error.
    Remote {
        code: i64,
    },
    Io(io::ErrorKind),
}

/// The routing table and everything else incoming queries touch.
pub(crate) struct State {
    pub table: Table,
    pub tokens: Tokens,
    pub peers: PeerStore,
    pub limit: QueryLimit,
}

type Reply = Result<Response, QueryError>;

struct Pending {
    next_tid: u16,
    waiting: HashMap<([u8; 2], SocketAddrV4), channel::Sender<Reply>>,
}

pub(crate) struct Node {
    pub id: NodeId,
    /// Shared with uTP when the socket on `TORRENT_PORT` is demultiplexed
    /// (`inbox` then brings our datagrams); our own otherwise.
    pub socket: Arc<Async<UdpSocket>>,
    inbox: Option<channel::Receiver<(Vec<u8>, SocketAddr)>>,
    pub local: SocketAddr,
    state: Mutex<State>,
    pending: Mutex<Pending>,
    /// Cleared when the last `Dht` handle goes: lookups stop at their next step.
    pub alive: AtomicBool,
    /// Datagrams dropped as malformed, for logs and tests.
    pub malformed: AtomicU64,
    /// Queries dropped by the rate limits.
    pub limited: AtomicU64,
    /// Background ping tasks running (bounded by [`MAX_PING_TASKS`]).
    ping_tasks: Arc<AtomicUsize>,
}

/// Background tasks pinging questionable nodes at once; more contests for a
/// bucket slot are simply not held (the newcomer stays a replacement).
pub const MAX_PING_TASKS: usize = 8;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not stop the DHT; the data stays consistent
    // because no method leaves it half-updated.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Node {
    pub fn new(
        id: NodeId,
        socket: Arc<Async<UdpSocket>>,
        inbox: Option<channel::Receiver<(Vec<u8>, SocketAddr)>>,
    ) -> io::Result<Node> {
        let local = socket.get_ref().local_addr()?;
        let now = Instant::now();
        Ok(Node {
            id,
            socket,
            inbox,
            local,
            state: Mutex::new(State {
                table: Table::new(id),
                tokens: Tokens::new(now),
                peers: PeerStore::default(),
                limit: QueryLimit::new(now),
            }),
            pending: Mutex::new(Pending {
                next_tid: fastrand::u16(..),
                waiting: HashMap::new(),
            }),
            alive: AtomicBool::new(true),
            malformed: AtomicU64::new(0),
            limited: AtomicU64::new(0),
            ping_tasks: Arc::new(AtomicUsize::new(0)),
        })
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    pub fn outstanding(&self) -> usize {
        lock(&self.pending).waiting.len()
    }

    /// Sends `query` to `addr` and waits for the answer, at most [`QUERY_TIMEOUT`].
    pub async fn query(&self, addr: SocketAddrV4, query: Query) -> Reply {
        let (tx, rx) = channel::bounded(1);
        let tid = {
            let mut p = lock(&self.pending);
            if p.waiting.len() >= MAX_OUTSTANDING {
                return Err(QueryError::Busy);
            }
            // Skip ids still in flight to the same address (after 65536 queries).
            let mut tid;
            loop {
                tid = p.next_tid.to_be_bytes();
                p.next_tid = p.next_tid.wrapping_add(1);
                if !p.waiting.contains_key(&(tid, addr)) {
                    break;
                }
            }
            p.waiting.insert((tid, addr), tx);
            tid
        };
        // Removed however this future ends, cancelled too: a lookup dropped
        // mid-query must not leak its place under `MAX_OUTSTANDING`.
        struct Forget<'a>(&'a Node, [u8; 2], SocketAddrV4);
        impl Drop for Forget<'_> {
            fn drop(&mut self) {
                lock(&self.0.pending).waiting.remove(&(self.1, self.2));
            }
        }
        let forget = Forget(self, tid, addr);
        let datagram = Message {
            tid: tid.to_vec(),
            body: Body::Query(query),
        }
        .encode();
        let sent = self.socket.send_to(&datagram, SocketAddr::V4(addr)).await;
        let reply = match sent {
            Err(e) => Err(QueryError::Io(e.kind())),
            Ok(_) => {
                future::or(
                    async { rx.recv().await.unwrap_or(Err(QueryError::Timeout)) },
                    async {
                        Timer::after(QUERY_TIMEOUT).await;
                        Err(QueryError::Timeout)
                    },
                )
                .await
            }
        };
        drop(forget);
        if reply == Err(QueryError::Timeout) {
            self.state().table.failed(addr, Instant::now());
        }
        reply
    }

    /// Pings a node; a response puts it in the table.
    pub async fn ping(&self, addr: SocketAddrV4) -> Reply {
        self.query(addr, Query::Ping { id: self.id }).await
    }

    /// Reads datagrams until the socket fails or the node is dropped.
    pub async fn receive_loop(self: Arc<Self>) {
        // A KRPC datagram larger than this is rejected by the parser anyway.
        let mut buf = vec![0u8; krpc::MAX_DATAGRAM + 1];
        loop {
            let received = match &self.inbox {
                Some(inbox) => match inbox.recv().await {
                    Ok((datagram, from)) => {
                        let len = datagram.len().min(buf.len());
                        buf[..len].copy_from_slice(&datagram[..len]);
                        Ok((len, from))
                    }
                    // The socket's owner is gone.
                    Err(_) => return,
                },
                None => self.socket.recv_from(&mut buf).await,
            };
            let (len, from) = match received {
                Ok(r) => r,
                Err(e) => {
                    // ICMP port unreachable surfaces here on Linux as
                    // ConnectionRefused: not fatal for a UDP server.
                    log::debug!("dht: receive: {e}");
                    Timer::after(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let SocketAddr::V4(from) = from else {
                continue;
            };
            match krpc::parse(&buf[..len]) {
                Ok(message) => self.handle(message, from).await,
                Err(e) => {
                    self.malformed.fetch_add(1, Ordering::Relaxed);
                    log::trace!("dht: dropped a datagram from {from}: {e}");
                }
            }
        }
    }

    async fn handle(self: &Arc<Self>, message: Message, from: SocketAddrV4) {
        let reply = match message.body {
            Body::Query(query) => self.answer(query, from),
            Body::Response(response) => {
                self.deliver(&message.tid, from, Ok(response));
                return;
            }
            Body::Error { code, .. } => {
                self.deliver(&message.tid, from, Err(QueryError::Remote { code }));
                return;
            }
        };
        let Some(body) = reply else {
            return;
        };
        let datagram = Message {
            tid: message.tid,
            body,
        }
        .encode();
        if let Err(e) = self.socket.send_to(&datagram, SocketAddr::V4(from)).await {
            log::debug!("dht: reply to {from}: {e}");
        }
    }

    fn deliver(&self, tid: &[u8], from: SocketAddrV4, reply: Reply) {
        let Ok(tid) = <[u8; 2]>::try_from(tid) else {
            return;
        };
        let Some(waiter) = lock(&self.pending).waiting.remove(&(tid, from)) else {
            return;
        };
        if let Ok(response) = &reply {
            let node = CompactNode {
                id: response.id,
                addr: from,
            };
            self.state()
                .table
                .heard_from(node, Contact::Responded, Instant::now());
        }
        let _ = waiter.try_send(reply);
    }

    /// The answer to a query, or None when a rate limit drops it.
    fn answer(self: &Arc<Self>, query: Query, from: SocketAddrV4) -> Option<Body> {
        let now = Instant::now();
        let ip = (*from.ip()).into();
        let mut state = self.state();
        if !state.limit.allow(ip, now) {
            self.limited.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let sender = CompactNode {
            id: query.sender(),
            addr: from,
        };
        if from.port() != 0 {
            if let Insert::Pending { ping } = state.table.heard_from(sender, Contact::Queried, now)
            {
                self.ping_later(ping);
            }
        }
        let mut response = Response::id_only(self.id);
        match query {
            Query::Ping { .. } => {}
            Query::FindNode { target, .. } => {
                response.nodes = state.table.closest(&target, K, now);
            }
            Query::GetPeers { info_hash, .. } => {
                response.token = Some(state.tokens.issue(ip, now));
                response.values = state.peers.peers(&info_hash, now);
                if response.values.is_empty() {
                    response.nodes = state.table.closest(&info_hash.into(), K, now);
                }
            }
            Query::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
                ..
            } => {
                if !state.tokens.accepts(&token, ip, now) {
                    return Some(Body::Error {
                        code: krpc::ERROR_PROTOCOL,
                        text: b"bad token".to_vec(),
                    });
                }
                let port = if implied_port { from.port() } else { port };
                if port == 0 {
                    return Some(Body::Error {
                        code: krpc::ERROR_PROTOCOL,
                        text: b"port 0".to_vec(),
                    });
                }
                state
                    .peers
                    .announce(info_hash, SocketAddrV4::new(*from.ip(), port), now);
            }
        }
        Some(Body::Response(response))
    }

    /// Pings questionable nodes of a full bucket in the background, in at
    /// most [`MAX_PING_TASKS`] tasks at once.
    pub fn ping_later(self: &Arc<Self>, nodes: Vec<CompactNode>) {
        let tasks = Arc::clone(&self.ping_tasks);
        if tasks.fetch_add(1, Ordering::AcqRel) >= MAX_PING_TASKS {
            tasks.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let node = Arc::clone(self);
        smol::spawn(async move {
            for n in nodes {
                let _ = node.ping(n.addr).await;
            }
            tasks.fetch_sub(1, Ordering::AcqRel);
        })
        .detach();
    }
}
