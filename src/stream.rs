//! Reading a byte range of one torrent, in order, through a fixed buffer.
//!
//! # Design
//! A [`Body`] is what the HTTP server sends. Behind it, one small task walks
//! the requested parts: for each chunk it makes sure the pieces are in the
//! store (raising demand and waiting with a deadline) under a pin, reads them
//! from the store, drops the pin, and hands the chunk over a channel of
//! capacity one, when the body asks for it. A reader pins only while it
//! reads, and reads only when asked, so a paused client holds the one chunk
//! it is being sent, and no cache segment. The
//! asking is the backpressure: a slow client leaves the task parked before
//! its next read, so a stream holds at most two buffers (one being sent, one
//! being read) whatever the file size. Dropping the body cancels the task.
//!
//! A reader never talks to a peer or a source: it only reads the store, which
//! holds nothing but verified pieces.

use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_lite::{future, AsyncBufRead, AsyncRead, Stream};

use crate::format::metainfo::Metainfo;
use crate::hybrid::Phase;
use crate::session::{Session, Tier, Torrent};
use crate::store::StoreError;

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
    /// Boxed because the receiver is `!Unpin`, and the body must be `Unpin`.
    rx: Pin<Box<smol::channel::Receiver<io::Result<Vec<u8>>>>>,
    /// Asks the producer for the next chunk. The producer reads a chunk only
    /// when asked, so a paused client holds the one chunk it is being sent
    /// and nothing more, and none of the cache.
    ask: smol::channel::Sender<()>,
    /// Whether the next chunk was asked for and not yet received.
    asked: bool,
    chunk: Vec<u8>,
    pos: usize,
    _producer: smol::Task<()>,
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
        let (tx, rx) = smol::channel::bounded(1);
        let (ask, asks) = smol::channel::bounded(1);
        let producer = smol::spawn(async move {
            let out = Out { tx, asks };
            if let Err(e) = produce(&session, &torrent, &meta, file, parts, opts, &out).await {
                log::warn!("[Stream] {}: stream ended early: {e}", meta.info_hash);
                let _ = out.tx.send(Err(io::Error::other(e.to_string()))).await;
            }
        });
        Body {
            rx: Box::pin(rx),
            ask,
            asked: false,
            chunk: Vec::new(),
            pos: 0,
            _producer: producer,
        }
    }
}

/// The producer's side of a [`Body`]: chunks out, requests for them in.
struct Out {
    tx: smol::channel::Sender<io::Result<Vec<u8>>>,
    asks: smol::channel::Receiver<()>,
}

impl Out {
    /// Waits until the body asks for the next chunk; false once it is gone.
    async fn asked(&self) -> bool {
        self.asks.recv().await.is_ok()
    }

    /// Hands a chunk over; false once the body is gone. Never waits long: the
    /// body asked, so the channel is empty.
    async fn send(&self, chunk: Vec<u8>) -> bool {
        self.tx.send(Ok(chunk)).await.is_ok()
    }
}

async fn produce(
    session: &Session,
    torrent: &Arc<Torrent>,
    meta: &Metainfo,
    file: Range<u32>,
    parts: Vec<Part>,
    opts: StreamOptions,
    out: &Out,
) -> Result<(), FetchError> {
    let ih = meta.info_hash;
    for part in parts {
        let (mut offset, end) = match part {
            Part::Bytes(bytes) => {
                if !out.asked().await || !out.send(bytes).await {
                    return Ok(());
                }
                continue;
            }
            Part::Range { start, len } => (start, start + len),
        };
        while offset < end {
            // At most the buffer, a usize: the chunk's `n as usize` below is lossless.
            let n = (end - offset).min(opts.buffer as u64);
            if !out.asked().await {
                log::debug!("[Stream] {ih}: client went away at byte {offset}");
                return Ok(());
            }
            let mut tier = Tier::Cache;
            // Pinned before the pieces are awaited, so that an earlier piece of
            // this chunk is not evicted while a later one is fetched; released
            // before the send, so that a paused client pins nothing.
            let pin = session.store.pin(&ih, offset..offset + n);
            for piece in piece_at(meta, offset)..=piece_at(meta, offset + n - 1) {
                tier =
                    ensure_piece(session, torrent, meta, piece, offset, file.clone(), opts).await?;
            }
            let chunk = session
                .store
                .read(&ih, offset, vec![0; n as usize])
                .await
                .map_err(FetchError::Store)?;
            drop(pin);
            torrent.record_served(tier, n);
            if !out.send(chunk).await {
                log::debug!("[Stream] {ih}: client went away at byte {offset}");
                return Ok(());
            }
            offset += n;
        }
    }
    Ok(())
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
        let this = self.get_mut();
        while this.pos >= this.chunk.len() {
            if !this.asked {
                // The chunk is sent: free it before waiting, and ask for the next.
                this.chunk = Vec::new();
                this.pos = 0;
                // Fails only when the producer is done, and then rx ends too.
                let _ = this.ask.try_send(());
                this.asked = true;
            }
            match this.rx.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    this.chunk = chunk;
                    this.pos = 0;
                    this.asked = false;
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                // The producer finished: end of body.
                Poll::Ready(None) => return Poll::Ready(Ok(&[])),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(&this.chunk[this.pos..]))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        this.pos = (this.pos + amt).min(this.chunk.len());
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
