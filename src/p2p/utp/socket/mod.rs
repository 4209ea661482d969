//! The UDP socket on `TORRENT_PORT`: demultiplexes datagrams between uTP
//! connections and the DHT, runs the connections' timers, and hands out
//! [`UtpStream`]s for dialed and accepted connections.
//!
//! Owns the socket, the table of connections, the accept queue and the
//! byte budget over every connection. It never parses the peer wire
//! protocol and never decides whom to connect to.
//!
//! # Design
//! One receive task reads a batch of datagrams (what is ready, up to
//! [`BATCH`]), feeds each to its connection, then lets every connection it
//! touched transmit once: that one ST_STATE acks the whole batch, as
//! libtorrent's deferred ack does. Datagrams whose first byte is `d` are
//! KRPC (a bencoded dict) and go to the DHT's bounded inbox; a first byte
//! of version 1 and type 0..=4 is uTP; anything else is counted and
//! dropped. A ticker runs timeouts every [`TICK`] while connections exist.
//! Sends never wait: a full socket buffer drops the datagram, which uTP
//! treats as loss (it is one).
//!
//! # Layout
//! This module holds the bounds, the shared state (the table of
//! connections, the budget) and the socket's handle; [`demux`] is the
//! receive loop, [`ticker`] the timers, and [`stream`] the owner's
//! [`UtpStream`].

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use event_listener::Event;
use futures_lite::{future, AsyncRead, AsyncWrite};
use smol::channel;
use smol::Task;

use super::conn::{Connection, Room, State};
use super::header::{self, Header, Type};

mod demux;
mod stream;
mod ticker;

use demux::receive_loop;
use ticker::tick_loop;

pub use stream::UtpStream;

/// Datagrams read before the acks go out.
const BATCH: usize = 64;
/// Timer resolution: RTOs are ≥ 500 ms, so 20 ms is plenty; a tail-loss
/// probe due sooner wakes the ticker earlier.
const TICK: Duration = Duration::from_millis(20);
const MIN_TICK: Duration = Duration::from_millis(2);
/// After both halves of a stream drop, the FIN gets this long to be acked.
const LINGER: Duration = Duration::from_secs(10);
/// RESETs sent per second at most, to unknown connections: a flood of
/// forged packets must not turn us into a reflector.
const RESETS_PER_SEC: f64 = 50.0;
/// Largest datagram read (uTP packets are ≤ 64 KiB; KRPC is smaller).
const MAX_DATAGRAM: usize = 65_536;
/// The socket buffers asked of the kernel: a loopback peer at full speed
/// bursts more than the default ~200 KB (the kernel may cap it lower).
const SOCKET_BUFFER: usize = 4 << 20;

/// The bounds of one socket.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// uTP connections at once, dialed and accepted.
    pub max_connections: usize,
    /// Bytes buffered over every connection, sent and received.
    pub budget: usize,
    /// Accepted connections waiting for [`UtpSocket::accept`].
    pub accept_queue: usize,
    /// KRPC datagrams waiting for the DHT.
    pub dht_queue: usize,
}

impl Default for Limits {
    /// Sized for a Pi 3 (1 GB): 64 connections, 32 MiB over all of them.
    fn default() -> Limits {
        Limits {
            max_connections: 64,
            budget: 32 << 20,
            accept_queue: 16,
            dht_queue: 256,
        }
    }
}

/// A datagram for the DHT and where it came from.
pub type Datagram = (Vec<u8>, SocketAddr);

/// Counters for logs and the tests of the bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    pub connections: usize,
    /// Bytes buffered over every connection (under [`Limits::budget`]).
    pub held: usize,
    /// Datagrams that were neither uTP nor KRPC, or failed to parse.
    pub garbage: u64,
    /// KRPC datagrams dropped because the DHT's inbox was full.
    pub dht_dropped: u64,
    /// SYNs refused at the connection or accept limit.
    pub refused: u64,
}

struct Slot {
    conn: Connection,
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
    /// Live stream handles (0 once the owner dropped it).
    handles: usize,
    linger_until: Option<Instant>,
    /// Bytes of this connection counted in the socket's budget.
    reported: usize,
    released: bool,
}

struct Entry {
    addr: SocketAddr,
    key: (SocketAddr, u16),
    slot: Mutex<Slot>,
    /// Fires when the state changes (connected, failed), for `connect`.
    changed: Event,
}

struct Inner {
    udp: Arc<Async<UdpSocket>>,
    local: SocketAddr,
    limits: Limits,
    conns: Mutex<HashMap<(SocketAddr, u16), Arc<Entry>>>,
    held: AtomicUsize,
    accept_tx: channel::Sender<UtpStream>,
    dht_tx: Mutex<Option<channel::Sender<Datagram>>>,
    resets: Mutex<(f64, Instant)>,
    garbage: AtomicU64,
    dht_dropped: AtomicU64,
    refused: AtomicU64,
    /// Wakes the ticker when the first connection appears.
    work: Event,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The shared UDP socket. Dropping it stops its tasks.
pub struct UtpSocket {
    inner: Arc<Inner>,
    accept_rx: channel::Receiver<UtpStream>,
    _tasks: Vec<Task<()>>,
}

impl UtpSocket {
    pub fn bind(addr: SocketAddr, limits: Limits) -> io::Result<UtpSocket> {
        let std = UdpSocket::bind(addr)?;
        let s2 = socket2::SockRef::from(&std);
        let _ = s2.set_recv_buffer_size(SOCKET_BUFFER);
        let _ = s2.set_send_buffer_size(SOCKET_BUFFER);
        let udp = Arc::new(Async::new(std)?);
        let local = udp.get_ref().local_addr()?;
        let (accept_tx, accept_rx) = channel::bounded(limits.accept_queue.max(1));
        let inner = Arc::new(Inner {
            udp,
            local,
            limits,
            conns: Mutex::new(HashMap::new()),
            held: AtomicUsize::new(0),
            accept_tx,
            dht_tx: Mutex::new(None),
            resets: Mutex::new((RESETS_PER_SEC, Instant::now())),
            garbage: AtomicU64::new(0),
            dht_dropped: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            work: Event::new(),
        });
        let receive = smol::spawn(receive_loop(Arc::downgrade(&inner)));
        let ticker = smol::spawn(tick_loop(Arc::downgrade(&inner)));
        Ok(UtpSocket {
            inner,
            accept_rx,
            _tasks: vec![receive, ticker],
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }

    /// The socket itself, for the DHT's sends.
    pub fn udp(&self) -> Arc<Async<UdpSocket>> {
        Arc::clone(&self.inner.udp)
    }

    /// Starts passing KRPC datagrams to the returned inbox (bounded by
    /// [`Limits::dht_queue`]; beyond it they are dropped and counted).
    pub fn dht_inbox(&self) -> channel::Receiver<Datagram> {
        let (tx, rx) = channel::bounded(self.inner.limits.dht_queue.max(1));
        *lock(&self.inner.dht_tx) = Some(tx);
        rx
    }

    /// The next incoming connection.
    pub async fn accept(&self) -> Option<UtpStream> {
        self.accept_rx.recv().await.ok()
    }

    /// Dials `addr`: resolves when the peer answers the SYN, fails after
    /// the SYN's retries (~31 s; callers add their own shorter deadline).
    pub async fn connect(&self, addr: SocketAddr) -> io::Result<UtpStream> {
        let entry = {
            let mut conns = lock(&self.inner.conns);
            if conns.len() >= self.inner.limits.max_connections {
                return Err(io::Error::other(format!(
                    "uTP: {} connections open (at most {})",
                    conns.len(),
                    self.inner.limits.max_connections
                )));
            }
            let mut recv_id = fastrand::u16(..);
            // Both ids of the pair must be free for this peer.
            while conns.contains_key(&(addr, recv_id))
                || conns.contains_key(&(addr, recv_id.wrapping_add(1)))
            {
                recv_id = fastrand::u16(..);
            }
            let entry = Arc::new(Entry {
                addr,
                key: (addr, recv_id),
                slot: Mutex::new(Slot::new(Connection::dial(recv_id, Instant::now()))),
                changed: Event::new(),
            });
            conns.insert(entry.key, Arc::clone(&entry));
            entry
        };
        self.inner.work.notify(1);
        let stream = UtpStream::new(Arc::clone(&self.inner), Arc::clone(&entry));
        self.inner.flush(&entry);
        loop {
            let listener = entry.changed.listen();
            {
                let slot = lock(&entry.slot);
                if let Some(f) = slot.conn.failure {
                    return Err(f.io());
                }
                if slot.conn.state == State::Connected {
                    return Ok(stream);
                }
            }
            listener.await;
        }
    }

    pub fn footprint(&self) -> Footprint {
        self.inner.footprint()
    }
}

impl Slot {
    fn new(conn: Connection) -> Slot {
        Slot {
            conn,
            read_waker: None,
            write_waker: None,
            handles: 1,
            linger_until: None,
            reported: 0,
            released: false,
        }
    }

    /// Brings the socket's budget in line with what the connection holds.
    fn account(&mut self, held: &AtomicUsize) {
        if self.released {
            return;
        }
        let now = self.conn.held();
        if now > self.reported {
            held.fetch_add(now - self.reported, Ordering::Relaxed);
        } else {
            held.fetch_sub(self.reported - now, Ordering::Relaxed);
        }
        self.reported = now;
    }

    fn release(&mut self, held: &AtomicUsize) {
        if !self.released {
            held.fetch_sub(self.reported, Ordering::Relaxed);
            self.reported = 0;
            self.released = true;
        }
    }

    fn wake(&mut self) {
        if self.conn.readable() {
            if let Some(w) = self.read_waker.take() {
                w.wake();
            }
        }
        if self.conn.writable() {
            if let Some(w) = self.write_waker.take() {
                w.wake();
            }
        }
    }
}

impl Inner {
    /// What one connection, holding `mine` bytes, may add: its fair share
    /// of the budget (budget / connections) minus what it holds, and never
    /// more than the budget has left. A share, not first come first served:
    /// connections whose reader is slow must not starve the one that reads.
    fn room(&self, mine: usize) -> Room {
        let n = lock(&self.conns).len().max(1);
        let share = self.limits.budget / n;
        let left = self
            .limits
            .budget
            .saturating_sub(self.held.load(Ordering::Relaxed));
        Room(share.saturating_sub(mine).min(left))
    }

    fn footprint(&self) -> Footprint {
        Footprint {
            connections: lock(&self.conns).len(),
            held: self.held.load(Ordering::Relaxed),
            garbage: self.garbage.load(Ordering::Relaxed),
            dht_dropped: self.dht_dropped.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }

    /// Lets the connection send what is due, without waiting.
    fn flush(&self, entry: &Entry) {
        let mut out = Vec::new();
        {
            let mut slot = lock(&entry.slot);
            slot.conn.transmit(Instant::now(), &mut out);
            slot.account(&self.held);
        }
        self.send_all(&out, entry.addr);
    }

    fn send_all(&self, datagrams: &[Vec<u8>], to: SocketAddr) {
        for d in datagrams {
            if log::log_enabled!(log::Level::Trace) {
                if let Ok(p) = header::parse(d) {
                    log::trace!("uTP > {to} {}", p.describe());
                }
            }
            // Never waits: a full buffer is loss, and uTP recovers from loss.
            if let Err(e) = self.udp.get_ref().send_to(d, to) {
                if e.kind() != io::ErrorKind::WouldBlock {
                    log::trace!("uTP: send to {to}: {e}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
