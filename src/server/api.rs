//! The JSON API: add, list, inspect and forget torrents; cache usage.
//!
//! Request bodies are read up to [`MAX_BODY`] and never further, so a client
//! cannot make the box buffer more than that.

use http_types::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use super::{error, json_response, App};
use crate::format::magnet::Magnet;
use crate::format::InfoHash;
use crate::http;
use crate::session::AddError;

/// The largest request body accepted. A .torrent for a 100 GB release with
/// 4 MiB pieces carries 500 KB of hashes; 8 MiB leaves room for small pieces.
const MAX_BODY: u64 = 8 << 20;

impl App {
    pub(super) async fn api(&self, req: Request, method: Method, rest: &[&str]) -> Response {
        match (method, rest) {
            (Method::Post, ["torrents"]) => self.add(req).await,
            (Method::Get, ["torrents"]) => {
                let all: Vec<Value> = self
                    .session
                    .list()
                    .iter()
                    .map(|t| super::status::torrent(&self.session, t))
                    .collect();
                json_response(StatusCode::Ok, Value::Array(all))
            }
            (Method::Get, ["torrents", ih]) => match self.known(ih) {
                Ok(t) => json_response(StatusCode::Ok, super::status::torrent(&self.session, &t)),
                Err(res) => *res,
            },
            (Method::Get, ["torrents", ih, "pieces"]) => self.pieces(&req, ih),
            (Method::Delete, ["torrents", ih]) => self.forget(ih).await,
            (Method::Get, ["cache"]) => self.cache(),
            _ => error(
                StatusCode::NotFound,
                format!("no API route for {method} /api/{}", rest.join("/")),
            ),
        }
    }

    /// Looks up a torrent named in a path, or answers why not.
    pub(super) fn known(
        &self,
        ih: &str,
    ) -> Result<std::sync::Arc<crate::session::Torrent>, Box<Response>> {
        let Some(hash) = InfoHash::from_hex(ih) else {
            return Err(Box::new(error(
                StatusCode::BadRequest,
                format!("not an info hash (40 hex characters): {ih:?}"),
            )));
        };
        self.session.get(&hash).ok_or_else(|| {
            Box::new(error(
                StatusCode::NotFound,
                format!("unknown torrent {hash}; add it with POST /api/torrents"),
            ))
        })
    }

    async fn add(&self, mut req: Request) -> Response {
        let is_torrent = req
            .content_type()
            .is_some_and(|m| m.essence() == "application/x-bittorrent");
        let body = match self.read_body(&mut req, MAX_BODY).await {
            Ok(body) => body,
            Err(res) => return *res,
        };
        let added = if is_torrent {
            // Persisting the .torrent is file I/O: keep it off the event loop.
            let session = self.session.clone();
            smol::unblock(move || session.add_torrent_bytes(&body)).await
        } else {
            match parse_add_request(&body) {
                Ok(AddRequest::Magnet(magnet)) => Ok(self.session.add_magnet(magnet)),
                Ok(AddRequest::TorrentUrl(url)) => match self.fetch_torrent_url(&url).await {
                    Ok(meta) => {
                        let session = self.session.clone();
                        smol::unblock(move || session.add_metainfo(meta)).await
                    }
                    Err(res) => return *res,
                },
                Err(message) => return error(StatusCode::BadRequest, message),
            }
        };
        match added {
            Ok((t, new)) => {
                let status = if new {
                    StatusCode::Created
                } else {
                    StatusCode::Ok
                };
                log::info!(
                    "[API] {} torrent {}{}",
                    if new { "Added" } else { "Known" },
                    t.info_hash,
                    t.name().map(|n| format!(" ({n})")).unwrap_or_default()
                );
                let mut res = json_response(status, super::status::torrent(&self.session, &t));
                res.insert_header("Location", format!("/api/torrents/{}", t.info_hash));
                res
            }
            Err(e @ AddError::Metainfo(_)) => error(StatusCode::BadRequest, e.to_string()),
            Err(e @ AddError::Store(_)) => error(StatusCode::InsufficientStorage, e.to_string()),
        }
    }

    /// Fetches a .torrent a user pointed at, through the HTTP tier's client.
    async fn fetch_torrent_url(
        &self,
        url: &str,
    ) -> Result<crate::format::metainfo::Metainfo, Box<Response>> {
        let Some(tiers) = &self.session.tiers else {
            return Err(Box::new(error(
                StatusCode::ServiceUnavailable,
                "no HTTP client to fetch torrentUrl with",
            )));
        };
        log::info!("[API] Downloading .torrent from {url}");
        match http::fetch_torrent_url(&tiers.client, url).await {
            Ok((meta, _)) => Ok(meta),
            Err(e) => Err(Box::new(error(
                StatusCode::BadGateway,
                format!("cannot use torrentUrl {url}: {e}"),
            ))),
        }
    }

    async fn forget(&self, ih: &str) -> Response {
        let Some(hash) = InfoHash::from_hex(ih) else {
            return error(
                StatusCode::BadRequest,
                format!("not an info hash (40 hex characters): {ih:?}"),
            );
        };
        match self.session.remove(&hash).await {
            Ok(true) => {
                log::info!("[API] Forgot torrent {hash} and freed its cache");
                json_response(StatusCode::Ok, json!({ "deleted": hash.to_hex() }))
            }
            Ok(false) => error(StatusCode::NotFound, format!("unknown torrent {hash}")),
            Err(e) => error(
                StatusCode::InternalServerError,
                format!("could not free the cache of {hash}: {e}"),
            ),
        }
    }

    fn cache(&self) -> Response {
        let usage = self.session.store.usage();
        let entries: Vec<Value> = usage
            .torrents
            .iter()
            .map(|e| {
                json!({
                    "infoHash": e.info_hash.to_hex(),
                    "name": self.session.get(&e.info_hash).and_then(|t| t.name()),
                    "bytes": e.bytes_on_disk,
                    "verifiedPieces": e.verified_pieces,
                    "pieces": e.piece_count,
                })
            })
            .collect();
        // What content may fill: the quota less what the store's own files
        // (index, directories, foreign files) are charged.
        let content: u64 = usage.torrents.iter().map(|e| e.bytes_on_disk).sum();
        let overhead = usage.used.saturating_sub(content);
        let next = self.session.store.next_eviction().map(|n| {
            json!({
                "infoHash": n.info_hash.to_hex(),
                "name": self.session.get(&n.info_hash).and_then(|t| t.name()),
                "firstPiece": n.pieces.start,
                "endPiece": n.pieces.end,
                "bytes": n.bytes,
            })
        });
        json_response(
            StatusCode::Ok,
            json!({
                "quotaBytes": usage.quota,
                // What the cache may really hold: the quota, or less when the disk is smaller.
                "ceilingBytes": usage.ceiling,
                "ceilingSetBy": usage.limit.name(),
                "diskFreeBytes": usage.disk_free,
                "diskTotalBytes": usage.disk_total,
                "usedBytes": usage.used,
                // Of what is used, the pieces themselves; the rest is the index and directories.
                "contentBytes": content,
                "overheadBytes": overhead,
                "nextEviction": next,
                "entries": entries,
            }),
        )
    }

    /// The piece map of one file, for the dashboard: which of its pieces are
    /// verified (a hex bitmap, first piece in the high bit), where the
    /// playhead is, and the readahead window after it.
    fn pieces(&self, req: &Request, ih: &str) -> Response {
        let t = match self.known(ih) {
            Ok(t) => t,
            Err(res) => return *res,
        };
        let Some(meta) = t.meta() else {
            return error(
                StatusCode::Conflict,
                format!("{} has no metadata yet", t.info_hash),
            );
        };
        let asked = req
            .url()
            .query_pairs()
            .find(|(k, _)| k == "file")
            .map(|(_, v)| v.into_owned());
        let index = match asked {
            Some(text) => text.parse::<usize>().ok(),
            None => crate::session::Torrent::default_file(&meta),
        };
        let Some(index) = index.filter(|i| meta.files.get(*i).is_some_and(|f| !f.padding)) else {
            return error(
                StatusCode::NotFound,
                format!("no such file in {} ({} files)", meta.name, meta.files.len()),
            );
        };
        let range = crate::hybrid::file_pieces(&meta, index);
        let mut bits = vec![0u8; (range.len()).div_ceil(8)];
        for (i, p) in range.clone().enumerate() {
            if self.session.store.has_piece(&meta.info_hash, p) {
                bits[i / 8] |= 0x80 >> (i % 8);
            }
        }
        let hex: String = bits.iter().map(|b| format!("{b:02x}")).collect();
        let view = t.demand.view();
        let piece_of = |offset: u64| (offset / meta.piece_length) as u32;
        let playhead = view
            .playhead
            .map(piece_of)
            .filter(|p| range.contains(p) && view.file.as_ref() == Some(&range));
        let readahead = self
            .session
            .tiers
            .as_ref()
            .map_or(0, |tiers| tiers.config.readahead_bytes());
        let window = match (view.playhead, playhead) {
            (Some(offset), Some(first)) => {
                let last = piece_of(offset.saturating_add(readahead)).min(range.end - 1);
                json!([first, last + 1])
            }
            _ => Value::Null,
        };
        json_response(
            StatusCode::Ok,
            json!({
                "file": index,
                "firstPiece": range.start,
                "pieceCount": range.len(),
                "pieceLength": meta.piece_length,
                "verified": hex,
                "playheadPiece": playhead,
                "readahead": window,
                "waiting": view.waiting.iter().filter(|p| range.contains(p)).collect::<Vec<_>>(),
            }),
        )
    }
}

/// Reads `{"magnetUri": "..."}` or `{"infoHash": "..."}`, saying exactly what is wrong otherwise.
/// What a JSON add request names.
enum AddRequest {
    Magnet(Magnet),
    TorrentUrl(String),
}

/// Reads `{"magnetUri": ...}`, `{"infoHash": ...}` or `{"torrentUrl": "http..."}`,
/// saying exactly what is wrong otherwise.
fn parse_add_request(body: &[u8]) -> Result<AddRequest, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        format!("body is not JSON ({e}); send {{\"magnetUri\": \"magnet:?...\"}}, {{\"infoHash\": \"...\"}} or a .torrent with Content-Type: application/x-bittorrent")
    })?;
    let field = |name: &str| {
        value.get(name).map(|v| {
            v.as_str()
                .ok_or(format!("{name} must be a string, got {v}"))
        })
    };
    if let Some(url) = field("torrentUrl") {
        let url = url?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "torrentUrl must be an http:// or https:// URL, got {url:?}"
            ));
        }
        return Ok(AddRequest::TorrentUrl(url.to_string()));
    }
    let text = match (field("magnetUri"), field("infoHash")) {
        (Some(m), _) => m?,
        (None, Some(h)) => h?,
        (None, None) => {
            return Err(
                "expected a \"magnetUri\", \"infoHash\" or \"torrentUrl\" field".to_string(),
            )
        }
    };
    Magnet::parse(text)
        .map(AddRequest::Magnet)
        .map_err(|e| format!("bad magnet or info hash: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_request_names_what_is_wrong() {
        let err = |body: &str| parse_add_request(body.as_bytes()).err().unwrap();
        assert!(err("magnet:?xt=urn:btih:x").contains("not JSON"));
        assert!(err(r#"{"magnetUri": 5}"#).contains("magnetUri must be a string"));
        assert!(err(r#"{"torrentUrl": "ftp://x/a.torrent"}"#).contains("http:// or https://"));
        assert!(err(r#"{"other": 1}"#).contains("torrentUrl"));
        assert!(err(r#"{"infoHash": "abc"}"#).contains("bad magnet or info hash"));
    }

    #[test]
    fn add_request_accepts_each_form() {
        let hash = "dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c";
        let parse = |body: String| parse_add_request(body.as_bytes()).unwrap();
        assert!(
            matches!(parse(format!(r#"{{"infoHash": "{hash}"}}"#)), AddRequest::Magnet(m) if m.info_hash.to_hex() == hash)
        );
        let magnet = format!(r#"{{"magnetUri": "magnet:?xt=urn:btih:{hash}&dn=x"}}"#);
        assert!(
            matches!(parse(magnet), AddRequest::Magnet(m) if m.display_name.as_deref() == Some("x"))
        );
        let url = r#"{"torrentUrl": "http://127.0.0.1/a.torrent"}"#.to_string();
        assert!(
            matches!(parse(url), AddRequest::TorrentUrl(u) if u == "http://127.0.0.1/a.torrent")
        );
    }
}
