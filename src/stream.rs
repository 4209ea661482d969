//! Reading a byte range of one torrent, in order, through a fixed buffer.
//!
//! # Design
//! A [`Body`] is what the HTTP server sends. It walks the requested parts
//! itself, when the server asks it for bytes: for each chunk it makes sure
//! the pieces are in the store (raising demand and waiting with a deadline)
//! under a pin, reads them from the store into its one buffer, drops the pin,
//! and hands the buffer out until it is sent. A reader pins only while it
//! reads, and reads only when asked, so a paused client holds the one chunk
//! it is being sent, and no cache segment. The asking is the backpressure:
//! a slow client leaves the body parked before its next read, so a stream
//! holds one buffer whatever the file size, reused from chunk to chunk.
//! Dropping the body cancels the read in progress.
//!
//! Sent whole to a client socket ([`Body::send_to`]), the body does not read
//! at all where it can help it: each range goes from the segment files to
//! the socket by sendfile(2) ([`crate::store::Store::send`]), one run of
//! verified pieces per socket-full, under the same pin and the same
//! verified check as a read, taken before the send. Such a body holds no
//! buffer, and a paused client then holds nothing but its socket.
//!
//! Why no task of its own: the read runs in the connection's task, so a
//! chunk costs one hop to the blocking pool and back, not also two channel
//! wake-ups between tasks (a quarter-core board felt each of them, issue 14).
//!
//! A reader never talks to a peer or a source: it only reads the store, which
//! holds nothing but verified pieces.

use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use std::future::Future;

use std::net::TcpStream;

use async_io::Async;
use futures_lite::{future, AsyncBufRead, AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::format::metainfo::Metainfo;
use crate::hybrid::Phase;
use crate::session::{Session, Tier, Torrent};
use crate::store::{Sent, StoreError};

/// What one response sends, in order.
pub enum Part {
    /// Literal bytes, such as a multipart header.
    Bytes(Vec<u8>),
    /// A range of torrent space, `len` bytes from `start`.
    Range { start: u64, len: u64 },
}

impl Part {
    /// How many bytes the part puts on the wire; u64, since a part of a file
    /// over 4 GiB is longer than a `usize` on a 32-bit board.
    pub fn wire_len(&self) -> u64 {
        match self {
            Part::Bytes(b) => b.len() as u64,
            Part::Range { len, .. } => *len,
        }
    }
}

/// The body length of a response made of `parts`, in u64.
pub fn body_len(parts: &[Part]) -> u64 {
    parts.iter().map(Part::wire_len).sum()
}

/// Why a piece could not be had.
#[derive(Debug)]
pub enum FetchError {
    /// The piece is not cached and no tier can fetch it.
    NoTier {
        piece: u32,
    },
    /// Every tier gave up on this torrent.
    Failed {
        piece: u32,
        reason: String,
    },
    /// The tiers are working on it, but it did not arrive in time.
    Timeout {
        piece: u32,
        waited: Duration,
    },
    Store(StoreError),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::NoTier { piece } => {
                write!(
                    f,
                    "piece {piece} is not in the cache and no other tier can fetch it"
                )
            }
            FetchError::Failed { piece, reason } => {
                write!(f, "piece {piece} cannot be fetched: {reason}")
            }
            FetchError::Timeout { piece, waited } => {
                write!(
                    f,
                    "piece {piece} did not arrive within {} ms",
                    waited.as_millis()
                )
            }
            FetchError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for FetchError {}

/// How a stream reads: its buffer and its patience.
#[derive(Debug, Clone, Copy)]
pub struct StreamOptions {
    /// Bytes per read from the store; the unit of backpressure.
    pub buffer: usize,
    /// How long a reader waits for a missing piece once a tier works on it.
    pub piece_timeout: Duration,
}

/// Makes sure `piece` is verified in the store, or says why it cannot be;
/// returns the tier it came from. A reader at `offset` of the file whose
/// pieces are `file` raises demand and waits, with a deadline, on the store.
pub async fn ensure_piece(
    session: &Session,
    torrent: &Arc<Torrent>,
    meta: &Metainfo,
    piece: u32,
    offset: u64,
    file: Range<u32>,
    opts: StreamOptions,
) -> Result<Tier, FetchError> {
    let ih = meta.info_hash;
    if session.store.has_piece(&ih, piece) {
        torrent.demand.playhead(offset, file);
        return Ok(torrent.demand.origin(piece));
    }
    let Some(tiers) = &session.tiers else {
        return Err(FetchError::NoTier { piece });
    };
    let _waiting = torrent.demand.wait_for(piece, offset, file);
    tiers.engage(session, torrent);
    // Before the handover, P2P gets its full timeout on top of the reader's patience.
    let mut patience = opts.piece_timeout;
    if torrent.demand.phase() != Phase::Http {
        patience += tiers.config.p2p_timeout;
    }
    let deadline = Instant::now() + patience;
    loop {
        let changed = torrent.demand.listen();
        if session.store.has_piece(&ih, piece) {
            return Ok(torrent.demand.origin(piece));
        }
        if let Phase::Failed(reason) = torrent.demand.phase() {
            return Err(FetchError::Failed { piece, reason });
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(FetchError::Timeout {
                piece,
                waited: patience,
            });
        }
        let arrived = async {
            session.store.wait_piece(&ih, piece, left).await;
        };
        future::or(arrived, changed).await;
    }
}

/// The piece holding a torrent-space offset.
pub fn piece_at(meta: &Metainfo, offset: u64) -> u32 {
    (offset / meta.piece_length) as u32
}

/// A streaming response body. See the module docs.
pub struct Body {
    /// Behind a mutex only because http-types wants a `Sync` body; it is
    /// reached through `get_mut`, so it is never locked.
    state: std::sync::Mutex<BodyState>,
}

struct BodyState {
    next: Next,
    /// The chunk being sent, and how much of it is.
    chunk: Vec<u8>,
    pos: usize,
}

/// What comes after the chunk being sent.
enum Next {
    /// Nothing asked yet: the cursor waits for the chunk to be sent.
    Idle(Box<Cursor>),
    /// The next chunk is being read (or its pieces awaited).
    Reading(Pin<Box<dyn Future<Output = Read> + Send>>),
    Done,
}

/// A finished read: the cursor back, and the chunk or the end.
type Read = (Box<Cursor>, Option<Result<Vec<u8>, FetchError>>);

/// What a body sends next.
enum Step {
    Bytes(Vec<u8>),
    /// The rest of a range part: the next offset and the end.
    Range(u64, u64),
}

/// The client's socket, for a body sent by sendfile(2) ([`Body::send_to`]).
pub struct Socket<'a> {
    pub stream: Arc<Async<TcpStream>>,
    /// Called whenever bytes went out by sendfile, for the connection's
    /// stall deadline (writes through `out` stamp it themselves).
    pub moved: &'a (dyn Fn() + Sync),
}

impl Body {
    /// Streams `parts` of the file whose pieces are `file`.
    pub fn new(
        session: Session,
        torrent: Arc<Torrent>,
        meta: Arc<Metainfo>,
        file: Range<u32>,
        parts: Vec<Part>,
        opts: StreamOptions,
    ) -> Body {
        let cursor = Box::new(Cursor {
            session,
            torrent,
            meta,
            file,
            parts: parts.into_iter(),
            range: None,
            opts,
            told: None,
        });
        Body {
            state: std::sync::Mutex::new(BodyState {
                next: Next::Idle(cursor),
                chunk: Vec::new(),
                pos: 0,
            }),
        }
    }

    /// Sends the whole body to the client: the cache's bytes by sendfile to
    /// `socket`, kernel to kernel (no buffer, so a paused client holds none),
    /// and literal parts through `out`, the same socket's writer. Where the
    /// files cannot be sent that way (a simulated disk, a file system
    /// without splice) the body reads chunks into its buffer and writes them
    /// through `out`, as [`AsyncBufRead`] does. Returns the bytes sent; an
    /// error ends the body (the connection must then close).
    pub async fn send_to<W>(self, out: &mut W, socket: &Socket<'_>) -> io::Result<u64>
    where
        W: AsyncWrite + Unpin,
    {
        let state = self.state.into_inner().unwrap_or_else(|e| e.into_inner());
        let Next::Idle(mut cursor) = state.next else {
            return Err(io::Error::other("a body is sent whole or read, not both"));
        };
        let ended = |cursor: &Cursor, e: FetchError| {
            log::warn!(
                "[Stream] {}: stream ended early: {e}",
                cursor.meta.info_hash
            );
            io::Error::other(e.to_string())
        };
        let (mut total, mut direct, mut buf) = (0, true, Vec::new());
        while let Some(step) = cursor.step() {
            let bytes = match step {
                Step::Bytes(bytes) => bytes,
                Step::Range(offset, end) if direct => {
                    match cursor.send(offset, end, &socket.stream).await {
                        Ok(Some(sent)) => {
                            total += sent.bytes;
                            if sent.bytes > 0 {
                                (socket.moved)();
                            }
                            if sent.socket_full {
                                socket.stream.writable().await?;
                            }
                            continue;
                        }
                        Ok(None) => {
                            direct = false;
                            continue;
                        }
                        Err(e) => return Err(ended(&cursor, e)),
                    }
                }
                Step::Range(offset, end) => {
                    let chunk = cursor.chunk(offset, end, std::mem::take(&mut buf)).await;
                    chunk.map_err(|e| ended(&cursor, e))?
                }
            };
            out.write_all(&bytes).await?;
            total += bytes.len() as u64;
            buf = bytes;
        }
        Ok(total)
    }
}

/// Where a body is in its parts, and what it needs to read them. Moves into
/// each read and back, so that a read owns everything it touches.
struct Cursor {
    session: Session,
    torrent: Arc<Torrent>,
    meta: Arc<Metainfo>,
    file: Range<u32>,
    parts: std::vec::IntoIter<Part>,
    /// The range part being read: the next offset and the end.
    range: Option<(u64, u64)>,
    opts: StreamOptions,
    /// The piece the demand was last told the reader is in. A reader moving
    /// through a cached piece tells the demand once per piece, not once per
    /// chunk: every telling wakes the tiers' schedulers.
    told: Option<u32>,
}

impl Cursor {
    /// The next chunk, read into `buf` (the chunk just sent, reused so that
    /// a stream allocates its buffer once); `None` at the end.
    async fn next(&mut self, buf: Vec<u8>) -> Option<Result<Vec<u8>, FetchError>> {
        match self.step()? {
            Step::Bytes(bytes) => Some(Ok(bytes)),
            Step::Range(offset, end) => Some(self.chunk(offset, end, buf).await),
        }
    }

    /// What comes next: literal bytes, or the rest of the range being read.
    fn step(&mut self) -> Option<Step> {
        loop {
            match self.range {
                Some((offset, end)) if offset < end => return Some(Step::Range(offset, end)),
                _ => {}
            }
            match self.parts.next()? {
                Part::Bytes(bytes) => {
                    self.range = None;
                    return Some(Step::Bytes(bytes));
                }
                Part::Range { start, len } => self.range = Some((start, start + len)),
            }
        }
    }

    /// Reads the next chunk of the range at `offset..end` into `buf`, and
    /// moves past it.
    async fn chunk(
        &mut self,
        offset: u64,
        end: u64,
        mut buf: Vec<u8>,
    ) -> Result<Vec<u8>, FetchError> {
        // At most the buffer, a usize: `n as usize` below is lossless.
        let n = (end - offset).min(self.opts.buffer as u64);
        let result = self.read(offset, n, {
            buf.resize(n as usize, 0);
            buf
        });
        let result = result.await;
        let chunk = self.ended_on_error(result)?;
        self.range = Some((offset + n, end));
        Ok(chunk)
    }

    /// After an error nothing more is sent.
    fn ended_on_error<T>(&mut self, result: Result<T, FetchError>) -> Result<T, FetchError> {
        if result.is_err() {
            self.range = None;
            self.parts = Vec::new().into_iter();
        }
        result
    }

    /// Sends what it can of the range at `offset..end` straight from the
    /// cache's files to `socket` (one [`Store::send`]), once the piece at
    /// `offset` is verified, and moves past what was sent. `None`: the files
    /// cannot be sent this way, and nothing was.
    ///
    /// [`Store::send`]: crate::store::Store::send
    async fn send(
        &mut self,
        offset: u64,
        end: u64,
        socket: &Arc<Async<TcpStream>>,
    ) -> Result<Option<Sent>, FetchError> {
        let (session, meta) = (&self.session, &*self.meta);
        let ih = meta.info_hash;
        let piece = piece_at(meta, offset);
        // Pinned while the piece is awaited and sent, as a read is; released
        // before the socket is waited on, so that a paused client pins nothing.
        let pin = session.store.pin(&ih, offset..offset + 1);
        let tier = if self.told == Some(piece) && session.store.has_piece(&ih, piece) {
            self.torrent.demand.origin(piece)
        } else {
            let ensured = ensure_piece(
                session,
                &self.torrent,
                meta,
                piece,
                offset,
                self.file.clone(),
                self.opts,
            )
            .await;
            self.ended_on_error(ensured)?
        };
        self.told = Some(piece);
        let sent = self
            .session
            .store
            .send(&ih, offset, end - offset, socket.clone())
            .await
            .map_err(FetchError::Store);
        drop(pin);
        let sent = self.ended_on_error(sent)?;
        if let Some(s) = sent {
            self.torrent.record_served(tier, s.bytes);
            self.range = Some((offset + s.bytes, end));
        }
        Ok(sent)
    }

    /// Reads `n` bytes at `offset` into `buf` once every piece under them is
    /// verified in the store.
    async fn read(&mut self, offset: u64, n: u64, buf: Vec<u8>) -> Result<Vec<u8>, FetchError> {
        let (session, torrent, meta) = (&self.session, &self.torrent, &*self.meta);
        let ih = meta.info_hash;
        let mut tier = Tier::Cache;
        // Pinned before the pieces are awaited, so that an earlier piece of
        // this chunk is not evicted while a later one is fetched; released
        // before the chunk is sent, so that a paused client pins nothing.
        let pin = session.store.pin(&ih, offset..offset + n);
        let first = piece_at(meta, offset);
        for piece in first..=piece_at(meta, offset + n - 1) {
            tier = if self.told == Some(first) && session.store.has_piece(&ih, piece) {
                torrent.demand.origin(piece)
            } else {
                ensure_piece(
                    session,
                    torrent,
                    meta,
                    piece,
                    offset,
                    self.file.clone(),
                    self.opts,
                )
                .await?
            };
            self.told = Some(first);
        }
        let chunk = session
            .store
            .read(&ih, offset, buf)
            .await
            .map_err(FetchError::Store)?;
        drop(pin);
        torrent.record_served(tier, n);
        Ok(chunk)
    }
}

impl AsyncRead for Body {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let available = match self.as_mut().poll_fill_buf(cx) {
            Poll::Ready(Ok(bytes)) => bytes,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Poll::Ready(Ok(n))
    }
}

impl AsyncBufRead for Body {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let st = self
            .get_mut()
            .state
            .get_mut()
            .unwrap_or_else(|e| e.into_inner());
        while st.pos >= st.chunk.len() {
            match std::mem::replace(&mut st.next, Next::Done) {
                Next::Idle(mut cursor) => {
                    // The chunk is sent: its buffer takes the next read.
                    let spent = std::mem::take(&mut st.chunk);
                    st.pos = 0;
                    st.next = Next::Reading(Box::pin(async move {
                        let got = cursor.next(spent).await;
                        (cursor, got)
                    }));
                }
                Next::Reading(mut read) => match read.as_mut().poll(cx) {
                    Poll::Pending => {
                        st.next = Next::Reading(read);
                        return Poll::Pending;
                    }
                    Poll::Ready((cursor, Some(Ok(chunk)))) => {
                        st.chunk = chunk;
                        st.pos = 0;
                        st.next = Next::Idle(cursor);
                    }
                    Poll::Ready((cursor, Some(Err(e)))) => {
                        let ih = cursor.meta.info_hash;
                        log::warn!("[Stream] {ih}: stream ended early: {e}");
                        return Poll::Ready(Err(io::Error::other(e.to_string())));
                    }
                    // The last part is sent: end of body.
                    Poll::Ready((_, None)) => return Poll::Ready(Ok(&[])),
                },
                Next::Done => return Poll::Ready(Ok(&[])),
            }
        }
        Poll::Ready(Ok(&st.chunk[st.pos..]))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let st = self
            .get_mut()
            .state
            .get_mut()
            .unwrap_or_else(|e| e.into_inner());
        st.pos = (st.pos + amt).min(st.chunk.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn body_length_adds_parts_past_4_gib_in_u64() {
        let parts = vec![
            Part::Bytes(b"head".to_vec()),
            Part::Range {
                start: 4 * GIB + 7,
                len: 3 * GIB,
            },
            Part::Range {
                start: 0,
                len: 2 * GIB,
            },
        ];
        assert_eq!(body_len(&parts), 5 * GIB + 4);
        assert_eq!(parts[1].wire_len(), 3 * GIB);
    }
}
