//! The JSON API: add, list, inspect and forget torrents; cache usage.
//!
//! Request bodies are read up to [`MAX_BODY`] and never further, so a client
//! cannot make the box buffer more than that.

use futures_lite::AsyncReadExt;
use http_types::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use super::{error, json_response, App};
use crate::format::magnet::Magnet;
use crate::format::InfoHash;
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
                    .map(|t| self.session.status(t))
                    .collect();
                json_response(StatusCode::Ok, Value::Array(all))
            }
            (Method::Get, ["torrents", ih]) => match self.known(ih) {
                Ok(t) => json_response(StatusCode::Ok, self.session.status(&t)),
                Err(res) => res,
            },
            (Method::Delete, ["torrents", ih]) => self.forget(ih),
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
    ) -> Result<std::sync::Arc<crate::session::Torrent>, Response> {
        let Some(hash) = InfoHash::from_hex(ih) else {
            return Err(error(
                StatusCode::BadRequest,
                format!("not an info hash (40 hex characters): {ih:?}"),
            ));
        };
        self.session.get(&hash).ok_or_else(|| {
            error(
                StatusCode::NotFound,
                format!("unknown torrent {hash}; add it with POST /api/torrents"),
            )
        })
    }

    async fn add(&self, mut req: Request) -> Response {
        let is_torrent = req
            .content_type()
            .is_some_and(|m| m.essence() == "application/x-bittorrent");
        let mut body = Vec::new();
        if let Err(e) = req
            .take_body()
            .into_reader()
            .take(MAX_BODY + 1)
            .read_to_end(&mut body)
            .await
        {
            return error(
                StatusCode::BadRequest,
                format!("could not read the request body: {e}"),
            );
        }
        if body.len() as u64 > MAX_BODY {
            return error(
                StatusCode::PayloadTooLarge,
                format!("request body is over {MAX_BODY} bytes"),
            );
        }
        let added = if is_torrent {
            // Persisting the .torrent is file I/O: keep it off the event loop.
            let session = self.session.clone();
            smol::unblock(move || session.add_torrent_bytes(&body)).await
        } else {
            match parse_add_request(&body) {
                Ok(magnet) => Ok(self.session.add_magnet(magnet)),
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
                let mut res = json_response(status, self.session.status(&t));
                res.insert_header("Location", format!("/api/torrents/{}", t.info_hash));
                res
            }
            Err(e @ AddError::Metainfo(_)) => error(StatusCode::BadRequest, e.to_string()),
            Err(e @ AddError::Store(_)) => error(StatusCode::InsufficientStorage, e.to_string()),
        }
    }

    fn forget(&self, ih: &str) -> Response {
        let Some(hash) = InfoHash::from_hex(ih) else {
            return error(
                StatusCode::BadRequest,
                format!("not an info hash (40 hex characters): {ih:?}"),
            );
        };
        match self.session.remove(&hash) {
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
        json_response(
            StatusCode::Ok,
            json!({"quotaBytes": usage.quota, "usedBytes": usage.used, "entries": entries}),
        )
    }
}

/// Reads `{"magnetUri": "..."}` or `{"infoHash": "..."}`, saying exactly what is wrong otherwise.
fn parse_add_request(body: &[u8]) -> Result<Magnet, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        format!("body is not JSON ({e}); send {{\"magnetUri\": \"magnet:?...\"}}, {{\"infoHash\": \"...\"}} or a .torrent with Content-Type: application/x-bittorrent")
    })?;
    let field = |name: &str| {
        value.get(name).map(|v| {
            v.as_str()
                .ok_or(format!("{name} must be a string, got {v}"))
        })
    };
    let text = match (field("magnetUri"), field("infoHash")) {
        (Some(m), _) => m?,
        (None, Some(h)) => h?,
        (None, None) => return Err("expected a \"magnetUri\" or \"infoHash\" field".to_string()),
    };
    Magnet::parse(text).map_err(|e| format!("bad magnet or info hash: {e}"))
}
