//! Streaming responses: one file of one torrent, with RFC 9110 ranges.
//!
//! # Design
//! The answer is decided before any byte is sent: the range is parsed, the
//! first piece is checked, and only then does a 200/206 go out. A missing first
//! piece is a 503 with a JSON reason; a piece that goes missing mid-body ends
//! the connection (HTTP/1.1 has no way to report it after the head).

use std::sync::Arc;
use std::time::Instant;

use async_io::Timer;
use futures_lite::future;

use http_types::{Body, Method, Request, Response, StatusCode};

use super::range::{self, RangeRequest};
use super::{error, App};
use crate::format::media;
use crate::format::metainfo::Metainfo;
use crate::hybrid::{self, Phase};
use crate::session::{Tier, Torrent};
use crate::stream::{self, Part};

use super::dlna::DLNA_FEATURES;

impl App {
    pub(super) async fn stream(&self, req: &Request, ih: &str, file: Option<&str>) -> Response {
        let torrent = match self.known(ih) {
            Ok(t) => t,
            Err(res) => return *res,
        };
        let meta = match self.metadata(&torrent).await {
            Ok(meta) => meta,
            Err(res) => return *res,
        };
        let index = match file {
            None => Torrent::default_file(&meta),
            Some(text) => text.parse::<usize>().ok(),
        };
        let Some(index) = index.filter(|i| meta.files.get(*i).is_some_and(|f| !f.padding)) else {
            return error(
                StatusCode::NotFound,
                format!(
                    "no file {} in {} (it has {} files)",
                    file.unwrap_or("to play"),
                    meta.name,
                    meta.files.len()
                ),
            );
        };
        self.respond(req, torrent, meta, index).await
    }

    /// The torrent's metadata, waiting for the tiers to find it if need be.
    pub(super) async fn metadata(
        &self,
        torrent: &Arc<Torrent>,
    ) -> Result<Arc<Metainfo>, Box<Response>> {
        let unavailable = |reason: String| {
            let mut res = error(StatusCode::ServiceUnavailable, reason);
            res.insert_header("Retry-After", "5");
            Box::new(res)
        };
        let ih = torrent.info_hash;
        let Some(tiers) = &self.session.tiers else {
            return torrent.meta().ok_or_else(|| {
                unavailable(format!(
                    "the metadata of {ih} is not known, and no tier can fetch it"
                ))
            });
        };
        tiers.engage(&self.session, torrent);
        let patience = tiers.config.p2p_timeout + tiers.config.torrent_timeout;
        let deadline = Instant::now() + patience;
        loop {
            let changed = torrent.demand.listen();
            if let Some(meta) = torrent.meta() {
                return Ok(meta);
            }
            if let Phase::Failed(reason) = torrent.demand.phase() {
                return Err(unavailable(format!(
                    "cannot get the metadata of {ih}: {reason}"
                )));
            }
            if Instant::now() >= deadline {
                return Err(unavailable(format!(
                    "the metadata of {ih} did not arrive within {} ms",
                    patience.as_millis()
                )));
            }
            future::or(
                async {
                    changed.await;
                },
                async {
                    Timer::at(deadline).await;
                },
            )
            .await;
        }
    }

    pub(super) async fn respond(
        &self,
        req: &Request,
        torrent: Arc<Torrent>,
        meta: Arc<Metainfo>,
        index: usize,
    ) -> Response {
        let file = &meta.files[index];
        let pieces = hybrid::file_pieces(&meta, index);
        let name = file.path.last().map(String::as_str).unwrap_or(&meta.name);
        let content_type = media::content_type(name);
        // Content under an info hash never changes, so the hash names it strongly.
        let etag = format!("\"{}-{index}\"", meta.info_hash);
        let header = |n: &str| req.header(n).map(|v| v.as_str().to_string());
        let ranges = match header("Range") {
            Some(r) if range::if_range_allows(header("If-Range").as_deref(), &etag) => {
                range::parse_range(Some(&r), file.length)
            }
            _ => RangeRequest::Full,
        };

        let (status, parts, mut res) = match ranges {
            RangeRequest::Unsatisfiable => {
                let mut res = error(
                    StatusCode::RequestedRangeNotSatisfiable,
                    format!("range outside the file's {} bytes", file.length),
                );
                res.insert_header("Content-Range", format!("bytes */{}", file.length));
                return res;
            }
            RangeRequest::Full => {
                let parts = vec![Part::Range {
                    start: file.offset,
                    len: file.length,
                }];
                let mut res = Response::new(StatusCode::Ok);
                res.insert_header("Content-Type", content_type);
                (StatusCode::Ok, parts, res)
            }
            RangeRequest::Ranges(list) if list.len() == 1 => {
                let r = list[0];
                let mut res = Response::new(StatusCode::PartialContent);
                res.insert_header("Content-Type", content_type);
                res.insert_header(
                    "Content-Range",
                    format!("bytes {}-{}/{}", r.start, r.end, file.length),
                );
                (
                    StatusCode::PartialContent,
                    vec![Part::Range {
                        start: file.offset + r.start,
                        len: r.len(),
                    }],
                    res,
                )
            }
            RangeRequest::Ranges(list) => {
                let boundary = range::multipart_boundary(boundary_seed());
                let mut parts = Vec::with_capacity(list.len() * 2 + 1);
                for r in &list {
                    parts.push(Part::Bytes(
                        range::part_header(&boundary, content_type, *r, file.length).into_bytes(),
                    ));
                    parts.push(Part::Range {
                        start: file.offset + r.start,
                        len: r.len(),
                    });
                }
                parts.push(Part::Bytes(range::closing(&boundary).into_bytes()));
                let mut res = Response::new(StatusCode::PartialContent);
                res.insert_header("Content-Type", range::multipart_content_type(&boundary));
                (StatusCode::PartialContent, parts, res)
            }
        };
        res.insert_header("Accept-Ranges", "bytes");
        res.insert_header("ETag", etag.as_str());
        dlna_headers(req, &mut res);

        let length = stream::body_len(&parts);
        if req.method() == Method::Head {
            res.set_body(Body::from_reader(
                futures_lite::io::empty(),
                framed_length(length),
            ));
            return res;
        }

        // Decide before the head goes out: is the first byte to send there?
        let first = parts.iter().find_map(|p| match p {
            Part::Range { start, len } if *len > 0 => Some(*start),
            _ => None,
        });
        let mut tier = Tier::Cache;
        if let Some(start) = first {
            let piece = stream::piece_at(&meta, start);
            match stream::ensure_piece(
                &self.session,
                &torrent,
                &meta,
                piece,
                start,
                pieces.clone(),
                self.stream,
            )
            .await
            {
                Ok(t) => tier = t,
                Err(e) => {
                    log::warn!("[Hybrid] {}: cannot stream {name}: {e}", meta.info_hash);
                    return error(
                        StatusCode::ServiceUnavailable,
                        format!("cannot stream {name}: {e}"),
                    );
                }
            }
        }
        let begins_playback = parts
            .iter()
            .any(|p| matches!(p, Part::Range { start, .. } if *start == file.offset));
        if begins_playback {
            log::info!("[Hybrid] Getting stream for {}", meta.info_hash);
            if tier == Tier::Cache {
                log::info!("[Hybrid] Cache hit");
            }
            log::info!(
                "[API] Streaming {name} ({}) via {}",
                file.length,
                tier.name()
            );
        }
        log::debug!(
            "[Stream] {} file {index}: {status} {length} bytes",
            meta.info_hash
        );
        let body = stream::Body::new(
            self.session.clone(),
            torrent,
            meta.clone(),
            pieces,
            parts,
            self.stream,
        );
        match framed_length(length) {
            // The exchange sends it (by sendfile where it can): the body
            // rides in the extensions, and a stand-in of its length sets the head.
            Some(len) => {
                res.set_body(Body::from_reader(futures_lite::io::empty(), Some(len)));
                res.ext_mut().insert(body);
            }
            None => res.set_body(Body::from_reader(body, None)),
        }
        res
    }
}

/// The length handed to http-types, whose bodies count in `usize`: the exact
/// length, or `None` (chunked transfer encoding, which async-h1 picks for a
/// body of unknown length) when it does not fit, as for a file over 4 GiB on
/// a 32-bit board. Never a truncated length: `length as usize` sent a
/// Content-Length of `length mod 2^32` on armv7, and players stopped there.
pub(super) fn framed_length(length: u64) -> Option<usize> {
    usize::try_from(length).ok()
}

/// DLNA renderers (TVs) seek only when told they may: every stream answer
/// carries the features (`OP=01`, byte seeks), as streme always sent them,
/// whether or not the request asked with `getcontentFeatures.dlna.org: 1`
/// (some renderers never ask and still read them); `transferMode.dlna.org`
/// is echoed (`Streaming` when not asked, the mode of a video). Sent on HEAD
/// as on GET, as TVs HEAD first.
fn dlna_headers(req: &Request, res: &mut Response) {
    res.insert_header("contentFeatures.dlna.org", DLNA_FEATURES);
    let mode = req
        .header("transferMode.dlna.org")
        .map(|v| v.as_str().trim().to_string())
        .filter(|m| matches!(m.as_str(), "Streaming" | "Interactive" | "Background"))
        .unwrap_or_else(|| "Streaming".into());
    res.insert_header("transferMode.dlna.org", mode);
}

/// A boundary seed that differs per response, so a boundary never matches
/// bytes of an earlier answer a client may have spliced in.
fn boundary_seed() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn framed_length_is_exact_or_chunked_never_truncated() {
        for length in [
            0,
            1,
            4 * GIB - 1,
            4 * GIB,
            4 * GIB + 1,
            5 * GIB + 3,
            u64::MAX,
        ] {
            match framed_length(length) {
                Some(n) => assert_eq!(n as u64, length, "a Content-Length must be exact"),
                None => assert!(length > usize::MAX as u64, "{length} fits a usize"),
            }
        }
        #[cfg(target_pointer_width = "32")]
        assert_eq!(
            framed_length(5 * GIB + 3),
            None,
            "chunked on a 32-bit board"
        );
        #[cfg(target_pointer_width = "64")]
        assert_eq!(framed_length(5 * GIB + 3), Some((5 * GIB + 3) as usize));
    }

    #[test]
    fn a_range_past_4_gib_is_a_206_with_the_right_numbers() {
        let file_len = 6 * GIB + 1000;
        let r = match range::parse_range(Some("bytes=4294967296-4294968295"), file_len) {
            RangeRequest::Ranges(r) => r,
            other => panic!("{other:?}"),
        };
        assert_eq!(r[0].len(), 1000);
        assert_eq!(
            r[0].content_range(file_len),
            "bytes 4294967296-4294968295/6442451944"
        );
        // An open range from 5 GiB covers the rest of the file, in u64.
        let open = match range::parse_range(Some("bytes=5368709120-"), file_len) {
            RangeRequest::Ranges(r) => r[0],
            other => panic!("{other:?}"),
        };
        assert_eq!(open.len(), GIB + 1000);
        let parts = vec![Part::Range {
            start: open.start,
            len: open.len(),
        }];
        assert_eq!(stream::body_len(&parts), GIB + 1000);
    }
}
