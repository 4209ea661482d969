//! Fetching a run of pieces from one content source: ranged GETs per file
//! span, streamed into piece buffers that are sent as soon as each is whole.
//!
//! Owns the reading of bodies and the meaning of each status. Must never
//! verify or store a piece (the caller does, from the channel), never hold
//! more than one piece plus a read buffer, and never fetch a padding file.

use std::ops::Range;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use smol::channel::Sender;

use super::client::{read_some, Client, SendError};
use super::error::SourceError;
use super::retry_after::retry_after;
use super::source::Source;
use super::span::{piece_bytes, piece_spans, FileSpan};
use crate::format::metainfo::Metainfo;

/// Bytes per read from a body: large enough that curl's 16 KiB writes
/// arrive a few at a time, small next to a piece.
const READ_BUF: usize = 64 * 1024;

/// Fetches `pieces` from `source` and sends each piece on `out` as soon as
/// it is whole, zeros included for padding files. On an error, the pieces
/// before it have been sent; the piece being built is dropped.
pub async fn fetch_pieces(
    client: &Client,
    source: &Source,
    meta: &Metainfo,
    pieces: Range<u32>,
    out: &Sender<(u32, Vec<u8>)>,
) -> Result<(), SourceError> {
    let end = piece_bytes(meta, &pieces).end;
    let mut pieces_out = Assembler::new(meta, pieces.start, out);
    let mut buf = vec![0u8; READ_BUF];
    for span in piece_spans(meta, pieces) {
        let url = source.url(meta, span.file);
        pieces_out
            .zeros_until(span.torrent_offset(meta), &url)
            .await?;
        fetch_span(client, source, &url, &span, &mut buf, &mut pieces_out).await?;
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
    buf: &mut [u8],
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
    while got < span.length {
        let want = if skipped < skip {
            skip - skipped
        } else {
            span.length - got
        };
        let want = want.min(buf.len() as u64) as usize;
        match read_some(body, &mut buf[..want], client.timeout).await {
            Ok(n) if n > 0 && skipped < skip => skipped += n as u64,
            Ok(n) if n > 0 => {
                pieces_out.push(&buf[..n], url).await?;
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
    out: &'a Sender<(u32, Vec<u8>)>,
    /// The piece being built.
    piece: u32,
    /// Torrent offset of the next byte.
    pos: u64,
    buf: Vec<u8>,
}

impl<'a> Assembler<'a> {
    fn new(meta: &'a Metainfo, first: u32, out: &'a Sender<(u32, Vec<u8>)>) -> Assembler<'a> {
        Assembler {
            meta,
            out,
            piece: first,
            pos: u64::from(first) * meta.piece_length,
            buf: Vec::new(),
        }
    }

    /// Appends bytes, sending each piece as it completes (waiting while the
    /// channel is full: that is the backpressure).
    async fn push(&mut self, mut bytes: &[u8], url: &str) -> Result<(), SourceError> {
        while !bytes.is_empty() {
            let size = self.meta.piece_size(self.piece) as usize;
            if self.buf.capacity() == 0 {
                self.buf.reserve_exact(size);
            }
            let take = (size - self.buf.len()).min(bytes.len());
            self.buf.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            self.pos += take as u64;
            if self.buf.len() == size {
                let piece = std::mem::take(&mut self.buf);
                self.out
                    .send((self.piece, piece))
                    .await
                    .map_err(|_| SourceError::Abandoned {
                        url: url.to_string(),
                    })?;
                self.piece += 1;
            }
        }
        Ok(())
    }

    /// Zeros up to torrent offset `end`: padding files, never fetched.
    async fn zeros_until(&mut self, end: u64, url: &str) -> Result<(), SourceError> {
        const ZEROS: [u8; 4096] = [0; 4096];
        while self.pos < end {
            let n = (end - self.pos).min(ZEROS.len() as u64) as usize;
            self.push(&ZEROS[..n], url).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
