//! One peer connection: the handshake, then a reader and a writer over the
//! same socket until either ends.
//!
//! Owns the socket, the deadlines on it, and the framing limits. It decides
//! nothing: every message goes to [`SwarmSide::on_message`], and what to send
//! comes from [`SwarmSide::output`]. Nothing a peer sends is buffered beyond one
//! message of at most [`wire::MAX_MESSAGE_LEN`] bytes.
//!
//! It talks to its swarm through [`SwarmSide`], a narrow interface the swarm
//! implements, and never imports the swarm: the swarm owns the connections,
//! so the arrow points one way.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_io::Timer;
use event_listener::Event;
use futures_lite::io::BufReader;
use futures_lite::{future, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use smol::net::TcpStream;

mod opening;

pub(super) use opening::read_incoming;

use super::picker::PeerKey;
use super::shared::{Shared, Slot, Transport};
use super::utp::UtpStream;
use super::wire::{self, BlockRef, Handshake, Message, PeerId, HANDSHAKE_LEN};
use crate::config::Encryption;
use crate::format::InfoHash;

/// Connecting and the handshake: a LAN peer answers in milliseconds, one
/// across the world in a second; a dead address should not hold a slot long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A peer silent this long is gone (BEP 3 peers send keep-alives every ~2 min).
const IDLE_TIMEOUT: Duration = Duration::from_secs(180);

/// We send a keep-alive after this long without sending anything.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(90);

/// A write that does not drain in this long means the peer stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// Control messages queued for a peer beyond this mean it does not read them.
const MAX_OUTBOX: usize = 256 * 1024;

/// The read buffer per connection: a few blocks, so a 16 KiB block arrives
/// in one or two reads. 40 peers cost 1.3 MB.
const READ_BUFFER: usize = 32 * 1024;

/// Why a connection ends; logged at debug, and a ban for protocol abuse.
#[derive(Debug)]
pub enum Hangup {
    Io(std::io::Error),
    TimedOut(&'static str),
    Protocol(String),
    Banned,
    Unwanted(&'static str),
}

impl std::fmt::Display for Hangup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hangup::Io(e) => write!(f, "{e}"),
            Hangup::TimedOut(what) => write!(f, "timed out {what}"),
            Hangup::Protocol(why) => write!(f, "protocol violation: {why}"),
            Hangup::Banned => f.write_str("banned"),
            Hangup::Unwanted(why) => f.write_str(why),
        }
    }
}

impl From<wire::WireError> for Hangup {
    fn from(e: wire::WireError) -> Hangup {
        Hangup::Protocol(e.to_string())
    }
}

impl From<std::io::Error> for Hangup {
    fn from(e: std::io::Error) -> Hangup {
        Hangup::Io(e)
    }
}

/// What a peer's writer sends next.
pub struct Output {
    pub bytes: Vec<u8>,
    /// A block to read from the store and send, if the peer may have it now.
    pub upload: Option<BlockRef>,
}

/// The swarm as one connection sees it. The swarm implements it; this file
/// never names the swarm's type.
pub trait SwarmSide: Send + Sync {
    fn info_hash(&self) -> InfoHash;
    fn peer_id(&self) -> PeerId;
    /// `ENCRYPTION`: whether we dial with MSE.
    fn encryption(&self) -> Encryption;
    /// A place under `MAX_CONNECTIONS`, held while the connection lives.
    fn slot(&self) -> Slot;
    /// A handshake completed: the peer joins. Returns the first messages to send.
    fn join(
        &self,
        key: PeerKey,
        addr: SocketAddr,
        theirs: &Handshake,
        link: Arc<Link>,
        incoming: bool,
    ) -> Result<Vec<u8>, Hangup>;
    /// The connection ended.
    fn leave(&self, key: PeerKey, why: &Hangup);
    /// One message from the peer. An error ends the connection.
    fn on_message(self: Arc<Self>, key: PeerKey, msg: Message<'_>) -> Result<(), Hangup>;
    /// What the writer sends next.
    fn output(&self, key: PeerKey) -> Result<Output, Hangup>;
    /// A block the peer asked for, read from the store.
    fn read_block(
        &self,
        key: PeerKey,
        block: BlockRef,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, Hangup>> + Send + '_>>;
}

/// The swarm of this connection, by its interface (the name keeps the
/// signatures of [`dial`] and [`accepted`] as the transports know them).
pub type Swarm = dyn SwarmSide;

/// A byte stream to one peer, whatever carries it (TCP today; uTP and MSE
/// wrap the same two halves), so the wire protocol above it is one code path.
/// The halves are apart because a reader and a writer run at once, and an
/// encrypted stream keeps one cipher state per direction.
pub struct Conn {
    pub reader: Box<dyn AsyncRead + Send + Unpin>,
    pub writer: Box<dyn AsyncWrite + Send + Unpin>,
    pub addr: SocketAddr,
}

impl Conn {
    pub fn tcp(stream: TcpStream, addr: SocketAddr) -> Conn {
        // Requests are small and latency-bound: send them at once.
        let _ = stream.set_nodelay(true);
        Conn {
            reader: Box::new(stream.clone()),
            writer: Box::new(stream),
            addr,
        }
    }

    pub fn utp(stream: UtpStream) -> Conn {
        let addr = stream.peer_addr();
        Conn {
            reader: Box::new(stream.clone()),
            writer: Box::new(stream),
            addr,
        }
    }
}

/// Connects to `addr` over `only`, or else the way that reached it last,
/// or else over uTP and TCP at once, as libtorrent tries both: the first to
/// connect is kept (the other is dropped). Returns which one it was.
pub(super) async fn connect(
    shared: &Shared,
    addr: SocketAddr,
    only: Option<Transport>,
) -> Result<(Conn, Transport), Hangup> {
    let tcp = || async move {
        let s = TcpStream::connect(addr).await?;
        Ok::<_, std::io::Error>((Conn::tcp(s, addr), Transport::Tcp))
    };
    let utp = |sock: Arc<super::utp::UtpSocket>| async move {
        let s = sock.connect(addr).await?;
        Ok::<_, std::io::Error>((Conn::utp(s), Transport::Utp))
    };
    let attempt = async {
        match (
            only.or_else(|| shared.transport_of(addr)),
            shared.utp.clone(),
        ) {
            (Some(Transport::Tcp), _) | (_, None) => tcp().await,
            (Some(Transport::Utp), Some(sock)) => utp(sock).await,
            (None, Some(sock)) => {
                // The first success wins; an error waits for the other's result.
                let failed = std::sync::atomic::AtomicU8::new(0);
                let settle = |r: std::io::Result<(Conn, Transport)>| async {
                    match r {
                        Ok(ok) => Ok(ok),
                        Err(e) if failed.fetch_add(1, Ordering::Relaxed) == 1 => Err(e),
                        Err(_) => future::pending().await,
                    }
                };
                future::or(async { settle(utp(sock).await).await }, async {
                    settle(tcp().await).await
                })
                .await
            }
        }
    };
    let (conn, how) = within(CONNECT_TIMEOUT, "connecting", attempt).await?;
    log::debug!("[P2P] {addr}: reached over {how:?}");
    Ok((conn, how))
}

/// What the swarm tells a connection's writer: bytes to send, and a nudge.
pub struct Link {
    outbox: Mutex<Vec<u8>>,
    wake: Event,
    closed: AtomicBool,
}

impl Link {
    fn new() -> Arc<Link> {
        Arc::new(Link {
            outbox: Mutex::new(Vec::new()),
            wake: Event::new(),
            closed: AtomicBool::new(false),
        })
    }

    /// Queues a message for the writer.
    pub fn send(&self, msg: &Message<'_>) {
        let mut out = self.outbox.lock().unwrap();
        wire::encode(msg, &mut out);
        if out.len() > MAX_OUTBOX {
            self.closed.store(true, Ordering::Relaxed);
        }
        drop(out);
        self.wake();
    }

    pub fn wake(&self) {
        self.wake.notify(1);
    }

    /// Ends the connection at the writer's next turn.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.wake();
    }

    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.outbox.lock().unwrap())
    }
}

async fn within<T>(
    limit: Duration,
    what: &'static str,
    f: impl std::future::Future<Output = std::io::Result<T>>,
) -> Result<T, Hangup> {
    future::or(async { f.await.map_err(Hangup::Io) }, async {
        Timer::after(limit).await;
        Err(Hangup::TimedOut(what))
    })
    .await
}

/// Connects to `addr` for the swarm's torrent and runs the connection.
///
/// A transport counts as working once the peer's handshake arrived over it,
/// not when it connects: a libtorrent with incoming TCP off still has its
/// kernel accept the TCP connection, then hangs up. So when the race picked
/// a transport that then failed before the handshake, the other one is
/// tried once; the one that carried a handshake is remembered for the peer.
pub(super) async fn dial(
    swarm: &Arc<Swarm>,
    shared: &Shared,
    addr: SocketAddr,
    key: PeerKey,
) -> Result<(), Hangup> {
    let _slot = swarm.slot();
    let ours = Handshake::new(swarm.info_hash(), swarm.peer_id());
    let known = shared.transport_of(addr);
    let raced = known.is_none() && shared.utp.is_some();
    let mut opened = open_over(swarm, shared, addr, &ours, None).await;
    if let (
        true,
        Err((e @ (Hangup::Io(_) | Hangup::TimedOut(_) | Hangup::Protocol(_)), Some(how))),
    ) = (raced, &opened)
    {
        let other = match how {
            Transport::Tcp => Transport::Utp,
            Transport::Utp => Transport::Tcp,
        };
        log::debug!("[P2P] {addr}: over {how:?}: {e}; trying {other:?}");
        opened = open_over(swarm, shared, addr, &ours, Some(other)).await;
    }
    match opened {
        Ok((conn, theirs, how)) => {
            shared.remember_transport(addr, Some(how));
            run(swarm, conn, &theirs, key, false).await;
            Ok(())
        }
        Err((e, _)) => {
            // A transport that carried a handshake is kept when the peer is
            // away: forgotten, the next dial raced again, and a TCP-only
            // peer's refusal sent it on to uTP, which held the redial for
            // the connect timeout (the WAN rig's leaving seeder stayed away
            // for the rest of the run).
            if known.is_none() {
                shared.remember_transport(addr, None);
            }
            Err(e)
        }
    }
}

/// Connects (over `only`, or as [`connect`] chooses), opens under
/// `ENCRYPTION` and reads the peer's handshake. A failure says which
/// transport it happened on, if one connected.
async fn open_over(
    swarm: &Arc<Swarm>,
    shared: &Shared,
    addr: SocketAddr,
    ours: &Handshake,
    only: Option<Transport>,
) -> Result<(Conn, Handshake, Transport), (Hangup, Option<Transport>)> {
    let used = std::sync::Mutex::new(None);
    let reach = || async {
        // The plaintext retry after a failed MSE goes the way the MSE went.
        let pinned = only.or(*used.lock().unwrap());
        let (conn, how) = connect(shared, addr, pinned).await?;
        *used.lock().unwrap() = Some(how);
        Ok(conn)
    };
    let opened = async {
        let mut conn = opening::open_outgoing(addr, swarm.encryption(), ours, reach).await?;
        let theirs = read_handshake(&mut conn.reader).await?;
        if theirs.info_hash != swarm.info_hash() {
            return Err(Hangup::Protocol(
                "the handshake names another torrent".into(),
            ));
        }
        Ok((conn, theirs))
    }
    .await;
    let how = *used.lock().unwrap();
    match (opened, how) {
        // `reach` names the transport before a connection exists.
        (Ok((conn, theirs)), how) => Ok((conn, theirs, how.unwrap_or(Transport::Tcp))),
        (Err(e), how) => Err((e, how)),
    }
}

async fn send_handshake(conn: &mut Conn, ours: &Handshake) -> Result<(), Hangup> {
    within(HANDSHAKE_TIMEOUT, "sending the handshake", async {
        conn.writer.write_all(&ours.encode()).await?;
        conn.writer.flush().await
    })
    .await
}

/// Reads the 68-byte handshake.
pub(super) async fn read_handshake(
    stream: &mut (impl AsyncRead + Unpin),
) -> Result<Handshake, Hangup> {
    let mut buf = [0u8; HANDSHAKE_LEN];
    within(
        HANDSHAKE_TIMEOUT,
        "waiting for the handshake",
        stream.read_exact(&mut buf),
    )
    .await?;
    Ok(Handshake::parse(&buf)?)
}

/// An incoming connection whose handshake we read: answer, then run it.
pub(super) async fn accepted(
    swarm: &Arc<Swarm>,
    mut conn: Conn,
    theirs: Handshake,
    key: PeerKey,
) -> Result<(), Hangup> {
    let _slot = swarm.slot();
    let ours = Handshake::new(swarm.info_hash(), swarm.peer_id());
    send_handshake(&mut conn, &ours).await?;
    run(swarm, conn, &theirs, key, true).await;
    Ok(())
}

async fn run(swarm: &Arc<Swarm>, conn: Conn, theirs: &Handshake, key: PeerKey, incoming: bool) {
    let link = Link::new();
    let Conn {
        reader,
        writer,
        addr,
    } = conn;
    let why = match swarm.join(key, addr, theirs, link.clone(), incoming) {
        Ok(first) => {
            let reader = read_loop(swarm, key, reader);
            let writer = write_loop(swarm, key, &link, writer, first);
            future::or(reader, writer).await
        }
        Err(why) => why,
    };
    swarm.leave(key, &why);
}

/// Reads messages until the peer hangs up, breaks the protocol, or sends
/// nothing for [`IDLE_TIMEOUT`].
///
/// The deadline is one watchdog per connection, not a timer per read: every
/// timer async-io registers wakes its reactor thread, and a timer around each
/// read of a 16 KiB block made that a context switch per block.
async fn read_loop(
    swarm: &Arc<Swarm>,
    key: PeerKey,
    stream: Box<dyn AsyncRead + Send + Unpin>,
) -> Hangup {
    let start = Instant::now();
    // When the last message (or its length prefix) arrived, in ms since
    // `start`, and whether a message was under way then.
    let (heard, partial) = (AtomicU64::new(0), AtomicBool::new(false));
    let heard_now = |mid_message: bool| {
        heard.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
        partial.store(mid_message, Ordering::Relaxed);
    };
    let watchdog = async {
        loop {
            let quiet = start
                .elapsed()
                .saturating_sub(Duration::from_millis(heard.load(Ordering::Relaxed)));
            if quiet >= IDLE_TIMEOUT {
                return Hangup::TimedOut(if partial.load(Ordering::Relaxed) {
                    "reading a message"
                } else {
                    "waiting for a message"
                });
            }
            Timer::after(IDLE_TIMEOUT - quiet).await;
        }
    };
    future::or(read_messages(swarm, key, stream, heard_now), watchdog).await
}

async fn read_messages(
    swarm: &Arc<Swarm>,
    key: PeerKey,
    stream: Box<dyn AsyncRead + Send + Unpin>,
    heard: impl Fn(bool),
) -> Hangup {
    let mut reader = BufReader::with_capacity(READ_BUFFER, stream);
    let mut body = Vec::new();
    loop {
        let mut prefix = [0u8; 4];
        if let Err(e) = reader.read_exact(&mut prefix).await {
            return Hangup::Io(e);
        }
        heard(true);
        let len = u32::from_be_bytes(prefix) as usize;
        if len > wire::MAX_MESSAGE_LEN {
            // Refused before buffering: a peer cannot make us hold more than this.
            return Hangup::Protocol(format!(
                "a message of {len} bytes (at most {})",
                wire::MAX_MESSAGE_LEN
            ));
        }
        // Grown (and zeroed) only past the longest message so far, not cleared
        // and zeroed again for every 16 KiB block.
        if body.len() < 4 + len {
            body.resize(4 + len, 0);
        }
        body[..4].copy_from_slice(&prefix);
        if let Err(e) = reader.read_exact(&mut body[4..4 + len]).await {
            return Hangup::Io(e);
        }
        heard(false);
        let msg = match wire::parse_message(&body[..4 + len]) {
            Ok(Some((msg, _))) => msg,
            Ok(None) => return Hangup::Protocol("a truncated message".into()),
            Err(e) => return e.into(),
        };
        if let Err(e) = swarm.clone().on_message(key, msg) {
            return e;
        }
        // One large bitfield must not pin its buffer for the connection's life.
        if body.capacity() > 2 * READ_BUFFER {
            body = Vec::new();
        }
    }
}

async fn write_loop(
    swarm: &Arc<Swarm>,
    key: PeerKey,
    link: &Link,
    mut stream: Box<dyn AsyncWrite + Send + Unpin>,
    first: Vec<u8>,
) -> Hangup {
    let mut last_sent = std::time::Instant::now();
    let mut pending = first;
    // A look at least once a second (keep-alives, requests whose wake was
    // missed). One interval for the connection's life: a new timer per pass
    // would wake async-io's reactor thread per pass, and a pass runs per
    // block received.
    let mut tick = Timer::interval(Duration::from_secs(1));
    loop {
        let listener = link.wake.listen();
        if link.closed.load(Ordering::Relaxed) {
            return Hangup::Unwanted("closed by the swarm");
        }
        let out = match swarm.output(key) {
            Ok(out) => out,
            Err(e) => return e,
        };
        pending.extend_from_slice(&out.bytes);
        if let Some(block) = out.upload {
            match swarm.read_block(key, block).await {
                Ok(data) => wire::encode(
                    &Message::Piece {
                        piece: block.piece,
                        offset: block.offset,
                        data: &data,
                    },
                    &mut pending,
                ),
                Err(e) => return e,
            }
        }
        if pending.is_empty() && last_sent.elapsed() >= KEEPALIVE_EVERY {
            wire::encode(&Message::KeepAlive, &mut pending);
        }
        if !pending.is_empty() {
            // Flushed too: a transport may buffer (uTP packs packets, MSE may batch).
            let sent = async {
                stream.write_all(&pending).await?;
                stream.flush().await
            };
            if let Err(e) = within(WRITE_TIMEOUT, "sending", sent).await {
                return e;
            }
            pending.clear();
            last_sent = std::time::Instant::now();
            if out.upload.is_some() {
                // More uploads may be queued: look again at once.
                continue;
            }
        }
        future::or(
            async {
                listener.await;
            },
            async {
                (&mut tick).await;
            },
        )
        .await;
    }
}
