//! Client connections: who holds a slot, when each last moved a byte, the
//! deadlines, and closing one from outside.
//!
//! # Design
//! Memory is the budget, not a small count of sockets: an idle or paused
//! client costs a few KiB plus at most its stream's channel buffers, so a few
//! hundred are held ([`Limits::max`]), with a cap per IP address so that one
//! device cannot take them all. A new client is always accepted at once:
//! when a cap is reached, the connection that has moved no byte for the
//! longest is closed to make room ([`Registry::admit`]). That may be an idle
//! keep-alive, a slowloris still sending its head, or a paused player, which
//! re-requests its range when it resumes. Nothing waits in the listen backlog.
//!
//! Each socket is wrapped in a [`ConnIo`] that stamps the time of every byte
//! moved and can be shut down from outside; the connection task races the
//! HTTP exchange against its eviction and its deadlines, so a fired deadline
//! or an eviction drops the exchange (and the stream task behind it) and
//! frees the slot.
//!
//! The deadlines: the idle time between keep-alive requests, the whole time
//! of a request head (async-h1's `headers_timeout`, started at its first
//! byte), a request body (read by the handlers through
//! [`super::read_body`]), and a response the client accepts no byte of (the
//! stall watchdog). A request head is also bounded in bytes here, because
//! async-h1 checks its 8 KiB limit only at line ends.
//!
//! Must never block the accept loop: admission is a scan of a small table
//! under a lock that is never held across an await.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Shutdown};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_lite::{AsyncRead, AsyncWrite};
use smol::net::TcpStream;

/// The raw bytes a request head may take before it is cut. async-h1 refuses
/// a head over 8 KiB with an error, but only at a line end; this bounds a
/// head line that never ends. Two 8 KiB reads of its buffered reader (the
/// head, and the start of a body) fit below it.
pub const MAX_HEAD_BYTES: usize = 24 * 1024;

/// The connection caps and deadlines, from the config.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `CLIENT_MAX`: connections held at once.
    pub max: usize,
    /// `CLIENT_MAX_PER_ADDR`: connections one IP address may hold.
    pub per_addr: usize,
    /// `CLIENT_HEAD_TIMEOUT`: a whole request head, from its first byte.
    pub head: Duration,
    /// `CLIENT_IDLE_TIMEOUT`: between keep-alive requests.
    pub idle: Duration,
    /// `CLIENT_BODY_TIMEOUT`: a whole request body.
    pub body: Duration,
    /// `CLIENT_STALL_TIMEOUT`: no byte moved either way while a request is served.
    pub stall: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max: 256,
            per_addr: 64,
            head: Duration::from_secs(10),
            idle: Duration::from_secs(120),
            body: Duration::from_secs(60),
            stall: Duration::from_secs(7200),
        }
    }
}

/// One connection's state, shared by its IO, its task and the registry.
#[derive(Debug)]
pub struct Shared {
    id: u64,
    addr: IpAddr,
    stream: TcpStream,
    /// When the registry was made, the zero of `last_moved_ms`.
    epoch: Instant,
    /// Milliseconds after `epoch` when a byte last moved either way; what
    /// eviction ranks by.
    last_moved_ms: AtomicU64,
    /// Set by an eviction or a deadline: the task ends.
    evicted: AtomicBool,
    /// Set by an eviction or a refused request: reads see the end of the
    /// stream, so async-h1 stops draining a body nobody wants.
    reading_stopped: AtomicBool,
    /// Wakes the connection task when `evicted` is set.
    close_event: event_listener::Event,
    /// While a request head is read: its raw bytes so far.
    head_bytes: AtomicUsize,
    in_head: AtomicBool,
    /// The head went over [`MAX_HEAD_BYTES`].
    head_overflow: AtomicBool,
}

impl Shared {
    /// Stamps a byte moved now.
    pub fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_moved_ms.store(ms, Ordering::Relaxed);
    }

    /// When a byte last moved.
    pub fn last_moved(&self) -> Instant {
        self.epoch + Duration::from_millis(self.last_moved_ms.load(Ordering::Relaxed))
    }

    /// Closes the connection: its task ends and its socket is shut down, so
    /// the client sees the close at once.
    pub fn close(&self) {
        self.reading_stopped.store(true, Ordering::SeqCst);
        self.evicted.store(true, Ordering::SeqCst);
        self.close_event.notify(usize::MAX);
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Stops reading: the rest of a request body is not drained, and the
    /// connection ends after the response.
    pub fn stop_reading(&self) {
        self.reading_stopped.store(true, Ordering::SeqCst);
    }

    pub fn reading_stopped(&self) -> bool {
        self.reading_stopped.load(Ordering::SeqCst)
    }

    /// Resolves once [`Shared::close`] was called.
    pub async fn closed(&self) {
        loop {
            let listener = self.close_event.listen();
            if self.evicted.load(Ordering::SeqCst) {
                return;
            }
            listener.await;
        }
    }

    /// Marks the start of a request head.
    pub fn begin_head(&self) {
        self.head_bytes.store(0, Ordering::Relaxed);
        self.in_head.store(true, Ordering::Relaxed);
    }

    /// Marks the end of a request head (the handler got the request).
    pub fn end_head(&self) {
        self.in_head.store(false, Ordering::Relaxed);
    }

    /// Whether a request head is being read.
    pub fn in_head(&self) -> bool {
        self.in_head.load(Ordering::Relaxed)
    }

    pub fn head_overflowed(&self) -> bool {
        self.head_overflow.load(Ordering::Relaxed)
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Resolves when no byte has moved for `stall`.
    pub async fn stalled(&self, stall: Duration) {
        loop {
            let due = self.last_moved() + stall;
            if Instant::now() >= due {
                return;
            }
            async_io::Timer::at(due).await;
        }
    }
}

/// The table of held connections.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Mutex<Table>>,
    limits: Limits,
    epoch: Instant,
}

struct Table {
    next_id: u64,
    conns: HashMap<u64, Arc<Shared>>,
    /// Connections closed to admit others, for the stats and the tests' logs.
    evictions: u64,
}

/// A held slot; dropping it gives the slot back.
pub struct Slot {
    registry: Registry,
    pub shared: Arc<Shared>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut table = self
            .registry
            .inner
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        table.conns.remove(&self.shared.id);
    }
}

impl Registry {
    pub fn new(limits: Limits) -> Registry {
        Registry {
            inner: Arc::new(Mutex::new(Table {
                next_id: 0,
                conns: HashMap::new(),
                evictions: 0,
            })),
            limits,
            epoch: Instant::now(),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Connections held now, and evictions so far.
    pub fn counts(&self) -> (usize, u64) {
        let table = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (table.conns.len(), table.evictions)
    }

    /// Closes the connection that moved no byte for the longest, if any.
    pub fn close_quietest(&self) {
        let victim = {
            let mut table = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let id = quietest(table.conns.values());
            let victim = id.and_then(|id| table.conns.remove(&id));
            if victim.is_some() {
                table.evictions += 1;
            }
            victim
        };
        if let Some(victim) = victim {
            victim.close();
        }
    }

    /// Takes a slot for a new client from `addr`, closing the quietest
    /// connection of that address, then of all, while a cap is reached.
    pub fn admit(&self, stream: TcpStream, addr: IpAddr) -> Slot {
        let mut victims = Vec::new();
        let shared = {
            let mut table = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                let same = table.conns.values().filter(|c| c.addr == addr).count();
                let pick = if same >= self.limits.per_addr {
                    quietest(table.conns.values().filter(|c| c.addr == addr))
                } else if table.conns.len() >= self.limits.max {
                    quietest(table.conns.values())
                } else {
                    None
                };
                let Some(id) = pick else { break };
                if let Some(victim) = table.conns.remove(&id) {
                    table.evictions += 1;
                    victims.push(victim);
                }
            }
            table.next_id += 1;
            let shared = Arc::new(Shared {
                id: table.next_id,
                addr,
                stream,
                epoch: self.epoch,
                last_moved_ms: AtomicU64::new(self.epoch.elapsed().as_millis() as u64),
                evicted: AtomicBool::new(false),
                reading_stopped: AtomicBool::new(false),
                close_event: event_listener::Event::new(),
                head_bytes: AtomicUsize::new(0),
                in_head: AtomicBool::new(false),
                head_overflow: AtomicBool::new(false),
            });
            table.conns.insert(shared.id, shared.clone());
            shared
        };
        // Outside the lock: a shutdown is a syscall.
        for victim in victims {
            log::debug!(
                "[Server] closing a connection from {} quiet for {} ms to admit {addr}",
                victim.addr,
                victim.last_moved().elapsed().as_millis()
            );
            victim.close();
        }
        Slot {
            registry: self.clone(),
            shared,
        }
    }
}

/// The id of the connection that moved no byte for the longest.
fn quietest<'a>(conns: impl Iterator<Item = &'a Arc<Shared>>) -> Option<u64> {
    conns
        .min_by_key(|c| c.last_moved_ms.load(Ordering::Relaxed))
        .map(|c| c.id)
}

/// A client socket that stamps every byte moved. Clones share the socket,
/// as async-h1 needs.
#[derive(Clone)]
pub struct ConnIo {
    stream: TcpStream,
    shared: Arc<Shared>,
}

impl ConnIo {
    pub fn new(shared: Arc<Shared>) -> ConnIo {
        ConnIo {
            stream: shared.stream.clone(),
            shared,
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if self.shared.reading_stopped() {
            return Poll::Ready(Ok(0));
        }
        let in_head = self.shared.in_head.load(Ordering::Relaxed);
        let mut len = buf.len();
        if in_head {
            let left =
                MAX_HEAD_BYTES.saturating_sub(self.shared.head_bytes.load(Ordering::Relaxed));
            if left == 0 {
                self.shared.head_overflow.store(true, Ordering::Relaxed);
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("request head over {MAX_HEAD_BYTES} bytes"),
                )));
            }
            len = len.min(left);
        }
        let polled = Pin::new(&mut self.stream).poll_read(cx, &mut buf[..len]);
        if let Poll::Ready(Ok(n)) = polled {
            if n > 0 {
                self.shared.touch();
                if in_head {
                    self.shared.head_bytes.fetch_add(n, Ordering::Relaxed);
                }
            }
        }
        polled
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            if n > 0 {
                self.shared.touch();
            }
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connected loopback pair: the server's end and the client's.
    fn pair() -> (TcpStream, std::net::TcpStream) {
        smol::block_on(async {
            let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let client = std::net::TcpStream::connect(addr).unwrap();
            let (server, _) = listener.accept().await.unwrap();
            (server, client)
        })
    }

    #[test]
    fn a_full_table_closes_the_quietest_connection() {
        let registry = Registry::new(Limits {
            max: 3,
            per_addr: 3,
            ..Limits::default()
        });
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let mut held = Vec::new();
        for _ in 0..3 {
            let (server, client) = pair();
            held.push((registry.admit(server, a), client));
            std::thread::sleep(Duration::from_millis(5));
        }
        // The first one moves a byte, so the second is now the quietest.
        held[0].0.shared.touch();
        let (server, _client) = pair();
        let _new = registry.admit(server, a);
        assert!(!held[0].0.shared.evicted.load(Ordering::SeqCst));
        assert!(held[1].0.shared.evicted.load(Ordering::SeqCst));
        assert!(!held[2].0.shared.evicted.load(Ordering::SeqCst));
        assert_eq!(registry.counts(), (3, 1));
    }

    #[test]
    fn one_address_cannot_take_every_slot() {
        let registry = Registry::new(Limits {
            max: 10,
            per_addr: 2,
            ..Limits::default()
        });
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let (s, _c1) = pair();
        let other = registry.admit(s, b);
        let mut mine = Vec::new();
        for _ in 0..5 {
            let (s, c) = pair();
            mine.push((registry.admit(s, a), c));
        }
        assert!(!other.shared.evicted.load(Ordering::SeqCst));
        assert_eq!(registry.counts(), (3, 3));
        drop(mine);
        assert_eq!(registry.counts(), (1, 3));
    }
}
