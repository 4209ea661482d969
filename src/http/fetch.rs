//! Fetching a run of pieces from one content source: ranged GETs per file
//! span, streamed into piece buffers that are sent as soon as each is whole.
//!
//! Owns the reading of bodies and the meaning of each status. Must never
//! verify or store a piece (the caller does, from the channel), never hold
//! more than the piece being built, and never fetch a padding file.
//!
//! # Implementation
//! The piece being built (a buffer from the store's [`PiecePool`], given back
//! by the write) is lent to the body's pipe ([`isahc::AsyncBody::fill`]),
//! where curl's write callback appends to it: the one copy of every byte in
//! user space, one wake-up of this task per piece or span, and no fresh 1 MiB
//! to fault in per piece.

use std::ops::Range;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use smol::channel::Sender;

use super::client::{Client, SendError, StallClock};
use super::error::SourceError;
use super::retry_after::retry_after;
use super::source::Source;
use super::span::{piece_bytes, piece_spans, FileSpan};
use crate::format::metainfo::Metainfo;
use crate::store::PiecePool;

/// Fetches `pieces` from `source` and sends each piece on `out` as soon as
/// it is whole, zeros included for padding files, in buffers taken from
/// `pool`. On an error, the pieces before it have been sent; the piece being
/// built is dropped.
pub async fn fetch_pieces(
    client: &Client,
    source: &Source,
    meta: &Metainfo,
    pieces: Range<u32>,
    pool: &PiecePool,
    out: &Sender<(u32, Vec<u8>)>,
) -> Result<(), SourceError> {
    let end = piece_bytes(meta, &pieces).end;
    let mut pieces_out = Assembler::new(meta, pieces.start, pool, out);
    for span in piece_spans(meta, pieces) {
        let url = source.url(meta, span.file);
        pieces_out
            .zeros_until(span.torrent_offset(meta), &url)
            .await?;
        fetch_span(client, source, &url, &span, &mut pieces_out).await?;
    }
    // Trailing padding; the URL is only for an `Abandoned` error.
    let url = source.url(meta, meta.files.len() - 1);
    pieces_out.zeros_until(end, &url).await
}

async fn fetch_span(
    client: &Client,
    source: &Source,
    url: &str,
    span: &FileSpan,
    pieces_out: &mut Assembler<'_>,
) -> Result<(), SourceError> {
    let last = span.offset + span.length - 1;
    let asked = format!("bytes={}-{last}", span.offset);
    let url_owned = || url.to_string();
    let mut response = client.get(url, Some(&asked)).await.map_err(|e| match e {
        SendError::Stalled => SourceError::Stalled {
            url: url_owned(),
            after: client.timeout,
        },
        SendError::Transport(reason) => SourceError::Transport {
            url: url_owned(),
            reason,
        },
    })?;
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    // Bytes to read and drop before the span starts.
    let skip = match status {
        206 => {
            let got = header("Content-Range");
            if !content_range_matches(got.as_deref(), span.offset, last) {
                return Err(SourceError::WrongRange {
                    url: url_owned(),
                    asked,
                    got,
                });
            }
            0
        }
        200 => {
            if !source.ignores_range.swap(true, Ordering::Relaxed) {
                log::info!(
                    "[Hybrid] {} ignores Range: reading {url} from the start",
                    source.label()
                );
            }
            span.offset
        }
        429 | 503 => {
            let after = retry_after(header("Retry-After").as_deref(), SystemTime::now());
            return Err(SourceError::RetryAfter {
                url: url_owned(),
                status,
                after,
            });
        }
        403 | 404 | 410 => {
            return Err(SourceError::Gone {
                url: url_owned(),
                status,
            })
        }
        500..=599 => {
            return Err(SourceError::ServerError {
                url: url_owned(),
                status,
            })
        }
        _ => {
            return Err(SourceError::Refused {
                url: url_owned(),
                status,
            })
        }
    };

    let body = response.body_mut();
    let (mut skipped, mut got) = (0u64, 0u64);
    let mut clock = StallClock::new(client.timeout);
    while got < span.length {
        let skipping = skipped < skip;
        let want = if skipping {
            skip - skipped
        } else {
            span.length - got
        };
        // Bytes before the span (a source that ignores Range) land in the
        // piece's free room too, and are cut off again.
        let (buf, room) = pieces_out.buffer();
        let had = buf.len();
        let limit = had + want.min(room as u64) as usize;
        match clock.wait(body.fill(buf, limit)).await {
            Ok((mut buf, n)) if n > 0 && skipping => {
                buf.truncate(had);
                pieces_out.filled(buf, url).await?;
                skipped += n as u64;
            }
            Ok((buf, n)) if n > 0 => {
                pieces_out.filled(buf, url).await?;
                got += n as u64;
            }
            Err(None) => {
                return Err(SourceError::Stalled {
                    url: url_owned(),
                    after: client.timeout,
                })
            }
            // The end of the body, or curl giving up on it (a connection cut
            // under a Content-Length): either way the body was short.
            ended => {
                if let Err(Some(reason)) = ended {
                    log::debug!("[Hybrid] {url}: body cut: {reason}");
                }
                return Err(SourceError::Truncated {
                    url: url_owned(),
                    got,
                    expected: span.length,
                });
            }
        }
    }
    Ok(())
}

/// Whether `Content-Range` is `bytes first-last/total` (or `/*`).
fn content_range_matches(value: Option<&str>, first: u64, last: u64) -> bool {
    let Some(rest) = value.and_then(|v| v.trim().strip_prefix("bytes ")) else {
        return false;
    };
    let Some((range, total)) = rest.split_once('/') else {
        return false;
    };
    let total_ok = total == "*" || (!total.is_empty() && total.bytes().all(|b| b.is_ascii_digit()));
    total_ok && range == format!("{first}-{last}")
}

/// Builds pieces from bytes arriving in torrent order.
struct Assembler<'a> {
    meta: &'a Metainfo,
    pool: &'a PiecePool,
    out: &'a Sender<(u32, Vec<u8>)>,
    /// The piece being built.
    piece: u32,
    /// Torrent offset of the next byte.
    pos: u64,
    /// The piece's bytes so far, in a buffer with room for all of them (none
    /// before its first byte; out while [`Assembler::buffer`] lends it).
    buf: Vec<u8>,
}

impl<'a> Assembler<'a> {
    fn new(
        meta: &'a Metainfo,
        first: u32,
        pool: &'a PiecePool,
        out: &'a Sender<(u32, Vec<u8>)>,
    ) -> Assembler<'a> {
        Assembler {
            meta,
            pool,
            out,
            piece: first,
            pos: u64::from(first) * meta.piece_length,
            buf: Vec::new(),
        }
    }

    /// The piece being built, to append its next bytes to, and how many it
    /// still lacks: never 0 while a piece of the run is left. It must come
    /// back through [`Assembler::filled`].
    fn buffer(&mut self) -> (Vec<u8>, usize) {
        let size = self.meta.piece_size(self.piece) as usize;
        if self.buf.capacity() < size {
            // Between pieces: a pooled buffer, emptied (its room is kept).
            self.buf = self.pool.take(size);
            self.buf.clear();
        }
        let room = size - self.buf.len();
        (std::mem::take(&mut self.buf), room)
    }

    /// Takes back the buffer [`Assembler::buffer`] lent, with the bytes
    /// appended to it counted as the piece's, and sends the piece once it is
    /// whole (waiting while the channel is full: that is the backpressure).
    async fn filled(&mut self, buf: Vec<u8>, url: &str) -> Result<(), SourceError> {
        self.pos = u64::from(self.piece) * self.meta.piece_length + buf.len() as u64;
        self.buf = buf;
        if self.buf.len() == self.meta.piece_size(self.piece) as usize {
            let piece = std::mem::take(&mut self.buf);
            self.out
                .send((self.piece, piece))
                .await
                .map_err(|_| SourceError::Abandoned {
                    url: url.to_string(),
                })?;
            self.piece += 1;
        }
        Ok(())
    }

    /// Zeros up to torrent offset `end`: padding files, never fetched.
    async fn zeros_until(&mut self, end: u64, url: &str) -> Result<(), SourceError> {
        while self.pos < end {
            let (mut buf, room) = self.buffer();
            let n = (end - self.pos).min(room as u64) as usize;
            buf.resize(buf.len() + n, 0);
            self.filled(buf, url).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
