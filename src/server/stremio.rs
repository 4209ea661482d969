//! Stremio streaming-server compatibility: the routes Stremio's apps call on
//! port 11470, answered in the shapes the open stremio-core types define
//! (`src/types/streaming_server/`: `Statistics`, `Settings`, `CreatedTorrent`,
//! `NetworkInfo`, `DeviceInfo`).
//!
//! # Design
//! Every route maps onto what the box already does: a stream URL
//! `/{infoHash}/{fileIdx}` is the same Range response as `/stream/...`
//! ([`App::respond`]), `create` is an add by magnet, and the statistics are
//! read from the session, the store and the P2P tier's [`crate::p2p::SwarmStats`]. The
//! JSON builders are plain functions of plain values (`shapes`), so the shapes
//! are unit tested without a server.
//!
//! Must never invent a number: a counter streme does not keep is reported as
//! the zero it is (sources' `numFound`), never as a guess. Must never reach
//! outside the machine to answer (`/network-info` reads the kernel's table).

use std::net::Ipv4Addr;
use std::sync::Arc;

use http_types::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use super::{error, json_response, App};
use crate::format::magnet::Magnet;
use crate::format::metainfo::Metainfo;
use crate::format::InfoHash;
use crate::session::Torrent;

/// The largest `create` body read: a JSON object with a few tracker URLs, or
/// a hex .torrent (`/create {blob}`), which is twice the .torrent's size.
const MAX_CREATE_BODY: u64 = 16 << 20;

/// The settings behind Stremio's numbers, read from the config.
#[derive(Debug, Clone, Default)]
struct Limits {
    connections: u64,
    handshake_ms: u64,
    timeout_ms: u64,
    max_peers: u64,
    dht: bool,
    /// Whether TRACKERS names any tracker for every torrent.
    trackers: bool,
    cache_root: String,
}

impl App {
    /// Routes under `/{infoHash}/...` and the Stremio server's own paths; None
    /// when the path is none of them.
    pub(super) async fn stremio(
        &self,
        req: Request,
        method: Method,
        segments: &[&str],
    ) -> Option<Response> {
        let res = match (method, segments) {
            (Method::Get, ["stats.json"]) => self.all_stats(),
            (Method::Get, ["settings"]) => self.settings(&req),
            (Method::Post, ["settings"]) => self.post_settings(req).await,
            (Method::Get, ["network-info"]) => self.network_info(&req).await,
            (Method::Get, ["device-info"]) => json_response(
                StatusCode::Ok,
                json!({"availableHardwareAccelerations": []}),
            ),
            (Method::Get, ["casting"]) => json_response(StatusCode::Ok, json!([])),
            (Method::Get, ["heartbeat"]) => json_response(StatusCode::Ok, json!({"success": true})),
            // No transcoding: a 404 at once sends players to direct play.
            (_, ["hlsv2", ..]) => error(
                StatusCode::NotFound,
                "streme does not transcode (no HLS); play the stream directly",
            ),
            (Method::Post, ["create"]) => self.create_from_blob(req).await,
            (Method::Post, [ih, "create"]) => self.create(req, ih).await,
            (Method::Get, [ih, "stats.json"]) => self.stats(ih, None),
            (Method::Get, [ih, idx, "stats.json"]) => self.stats(ih, Some(idx)),
            (Method::Get | Method::Head, [ih, idx, ..]) if idx.parse::<i64>().is_ok() => {
                self.stremio_stream(&req, ih, idx).await
            }
            _ => return None,
        };
        Some(res)
    }

    fn stats_view(&self, t: &Torrent, file: Option<usize>) -> StatsView {
        let meta = t.meta();
        let limits = self.limits();
        let files = meta
            .as_ref()
            .map(|m| {
                m.files
                    .iter()
                    .filter(|f| !f.padding)
                    .map(|f| {
                        let path = format!("{}/{}", m.name, f.path.join("/"));
                        (f.file_name().to_string(), path, f.length, f.offset)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut sources: Vec<String> = trackers_of(t, meta.as_deref())
            .into_iter()
            .map(|url| format!("tracker:{url}"))
            .collect();
        if limits.dht {
            sources.push(format!("dht:{}", t.info_hash));
        }
        let swarm = t.swarm_stats();
        let status = super::status::torrent(&self.session, t);
        let http = status["bytesFetched"]["http"].as_u64().unwrap_or(0);
        let stream = meta.as_ref().and_then(|m| {
            let i = file.or_else(|| Torrent::default_file(m))?;
            let f = m.files.get(i)?;
            Some((
                f.length,
                f.file_name().to_string(),
                self.session.file_progress(m, i),
            ))
        });
        StatsView {
            name: t.name().unwrap_or_else(|| t.info_hash.to_hex()),
            info_hash: t.info_hash,
            files,
            sources,
            opts: Opts {
                connections: limits.connections,
                dht: limits.dht,
                tracker: limits.trackers || !trackers_of(t, meta.as_deref()).is_empty(),
                handshake_timeout_ms: limits.handshake_ms,
                timeout_ms: limits.timeout_ms,
                path: limits.cache_root,
                peer_search_min: 0,
                peer_search_max: limits.max_peers,
            },
            downloaded: swarm.downloaded + http,
            swarm,
            stream,
        }
    }

    fn stats(&self, ih: &str, idx: Option<&str>) -> Response {
        let t = match self.known(ih) {
            Ok(t) => t,
            Err(res) => return *res,
        };
        let file = match idx.map(|i| (i, i.parse::<i64>())) {
            None => None,
            Some((_, Ok(i))) if i < 0 => None,
            Some((_, Ok(i))) => {
                let exists = t.meta().is_none_or(|m| m.files.get(i as usize).is_some());
                if !exists {
                    return error(
                        StatusCode::NotFound,
                        format!("no file {i} in {}", t.info_hash),
                    );
                }
                Some(i as usize)
            }
            Some((text, Err(_))) => {
                return error(
                    StatusCode::BadRequest,
                    format!("not a file index: {text:?}"),
                )
            }
        };
        json_response(StatusCode::Ok, statistics_json(&self.stats_view(&t, file)))
    }

    fn all_stats(&self) -> Response {
        let all: serde_json::Map<String, Value> = self
            .session
            .list()
            .iter()
            .map(|t| {
                (
                    t.info_hash.to_hex(),
                    statistics_json(&self.stats_view(t, None)),
                )
            })
            .collect();
        json_response(StatusCode::Ok, Value::Object(all))
    }

    /// The config's numbers that Stremio shows; zeros where no tiers run.
    fn limits(&self) -> Limits {
        let config = self.session.tiers.as_ref().map(|t| t.config.clone());
        let ms = |d: std::time::Duration| d.as_millis() as u64;
        match config.as_deref() {
            Some(c) => Limits {
                connections: c.max_connections.into(),
                handshake_ms: ms(c.p2p_timeout),
                timeout_ms: ms(c.piece_wait),
                max_peers: c.max_peers.into(),
                dht: c.enable_dht,
                trackers: !c.trackers.is_empty(),
                cache_root: c.cache_dir.display().to_string(),
            },
            None => Limits::default(),
        }
    }

    fn settings(&self, req: &Request) -> Response {
        let limits = self.limits();
        let view = SettingsView {
            base_url: base_url(req),
            cache_root: limits.cache_root,
            cache_bytes: self.session.store.usage().quota,
            max_connections: limits.connections,
            handshake_timeout_ms: limits.handshake_ms,
            request_timeout_ms: limits.timeout_ms,
            // streme limits uploads, not downloads: no download cap in force.
            download_limit_bytes_per_s: 0.0,
            min_peers: 0,
        };
        json_response(StatusCode::Ok, settings_json(&view))
    }

    /// streme's settings come from its env file; the apps' changes are acknowledged (as
    /// stremio-core's `SuccessResponse`) so that they do not retry, and logged.
    async fn post_settings(&self, mut req: Request) -> Response {
        match self.read_json(&mut req).await {
            Ok(Value::Object(changes)) => {
                let keys: Vec<&String> = changes.keys().collect();
                log::info!("[Stremio] Settings change asked for {keys:?}; streme keeps its env file's values");
                json_response(StatusCode::Ok, json!({"success": true}))
            }
            Ok(other) => error(
                StatusCode::BadRequest,
                format!("settings must be a JSON object, got {other}"),
            ),
            Err(res) => *res,
        }
    }

    async fn network_info(&self, req: &Request) -> Response {
        let table = smol::unblock(|| std::fs::read_to_string("/proc/net/fib_trie")).await;
        let mut addrs: Vec<String> = table
            .map(|t| local_ipv4s(&t).iter().map(Ipv4Addr::to_string).collect())
            .unwrap_or_default();
        // Where the kernel's table is hidden (some containers), the address the client reached
        // us on is still a true one.
        if let Some(host) = req.url().host_str() {
            if host.parse::<Ipv4Addr>().is_ok_and(|ip| !ip.is_loopback())
                && !addrs.iter().any(|a| a == host)
            {
                addrs.push(host.to_string());
            }
        }
        json_response(StatusCode::Ok, json!({"availableInterfaces": addrs}))
    }

    /// A torrent named by a Stremio URL: the known one, or a new one added by
    /// magnet with the trackers the URL names, so that the P2P tier asks them.
    fn known_or_added(
        &self,
        ih: &str,
        trackers: Vec<String>,
    ) -> Result<Arc<Torrent>, Box<Response>> {
        let Some(hash) = InfoHash::from_hex(ih) else {
            return Err(Box::new(error(
                StatusCode::BadRequest,
                format!("not an info hash (40 hex characters): {ih:?}"),
            )));
        };
        if let Some(t) = self.session.get(&hash) {
            if !trackers.is_empty() {
                log::debug!("[Stremio] {hash} is known; keeping its own trackers");
            }
            return Ok(t);
        }
        let mut magnet = Magnet::bare(hash);
        magnet.trackers = trackers;
        log::info!(
            "[Stremio] Adding {hash} with {} tracker(s)",
            magnet.trackers.len()
        );
        Ok(self.session.add_magnet(magnet).0)
    }

    async fn stremio_stream(&self, req: &Request, ih: &str, idx: &str) -> Response {
        let index: i64 = idx.parse().unwrap_or(-1);
        if index < -1 {
            return error(
                StatusCode::BadRequest,
                format!("bad file index {index}: use -1 (the largest video) or a file's index"),
            );
        }
        let pairs: Vec<(String, String)> = req.url().query_pairs().into_owned().collect();
        let trackers = trackers_from_sources(
            pairs
                .iter()
                .filter(|(k, _)| k == "tr")
                .map(|(_, v)| v.as_str()),
        );
        let mut patterns = Vec::new();
        for (_, text) in pairs.iter().filter(|(k, _)| k == "f") {
            match regex_lite::Regex::new(text) {
                Ok(re) => patterns.push(re),
                Err(e) => {
                    return error(
                        StatusCode::BadRequest,
                        format!("f={text:?} is not a regex: {e}"),
                    )
                }
            }
        }
        let torrent = match self.known_or_added(ih, trackers) {
            Ok(t) => t,
            Err(res) => return *res,
        };
        let meta = match self.metadata(&torrent).await {
            Ok(meta) => meta,
            Err(res) => return *res,
        };
        match pick_file(&meta.files, index, &patterns) {
            Ok(i) => self.respond(req, torrent, meta, i).await,
            Err(reason) => error(StatusCode::NotFound, format!("{}: {reason}", meta.name)),
        }
    }

    async fn read_json(&self, req: &mut Request) -> Result<Value, Box<Response>> {
        let body = self.read_body(req, MAX_CREATE_BODY).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(json!({}));
        }
        serde_json::from_slice(&body).map_err(|e| {
            Box::new(error(
                StatusCode::BadRequest,
                format!("body is not JSON: {e}"),
            ))
        })
    }

    /// `POST /{infoHash}/create {torrent: {infoHash}, peerSearch: {sources}, guessFileIdx}`.
    async fn create(&self, mut req: Request, ih: &str) -> Response {
        let body = match self.read_json(&mut req).await {
            Ok(v) => v,
            Err(res) => return *res,
        };
        if let Some(named) = body.pointer("/torrent/infoHash").and_then(Value::as_str) {
            if !named.eq_ignore_ascii_case(ih) {
                return error(
                    StatusCode::BadRequest,
                    format!("torrent.infoHash {named:?} is not the {ih} of the path"),
                );
            }
        }
        let sources: Vec<&str> = body
            .pointer("/peerSearch/sources")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let torrent = match self.known_or_added(ih, trackers_from_sources(sources)) {
            Ok(t) => t,
            Err(res) => return *res,
        };
        self.created(
            &torrent,
            body.get("guessFileIdx").unwrap_or(&Value::Bool(false)),
        )
        .await
    }

    /// `POST /create {blob: "<hex .torrent>"}`: the .torrent itself.
    async fn create_from_blob(&self, mut req: Request) -> Response {
        let body = match self.read_json(&mut req).await {
            Ok(v) => v,
            Err(res) => return *res,
        };
        let Some(bytes) = body.get("blob").and_then(Value::as_str).and_then(hex_bytes) else {
            return error(
                StatusCode::BadRequest,
                "expected {\"blob\": \"<the .torrent in hex>\"}",
            );
        };
        let session = self.session.clone();
        match smol::unblock(move || session.add_torrent_bytes(&bytes)).await {
            Ok((t, _)) => {
                self.created(&t, body.get("guessFileIdx").unwrap_or(&Value::Bool(false)))
                    .await
            }
            Err(e) => error(StatusCode::BadRequest, e.to_string()),
        }
    }

    /// The statistics plus `guessedFileIdx`, once the metadata is known.
    async fn created(&self, torrent: &Arc<Torrent>, guess: &Value) -> Response {
        let meta = match self.metadata(torrent).await {
            Ok(meta) => meta,
            Err(res) => return *res,
        };
        let guessed = guess_file(&meta.files, guess);
        let mut stats = statistics_json(&self.stats_view(torrent, guessed));
        stats["guessedFileIdx"] = json!(guessed);
        json_response(StatusCode::Ok, stats)
    }
}

/// The trackers of a torrent: its magnet's, then its .torrent's.
fn trackers_of(t: &Torrent, meta: Option<&Metainfo>) -> Vec<String> {
    let mut all: Vec<String> = t.magnet.iter().flat_map(|m| m.trackers.clone()).collect();
    for url in meta.iter().flat_map(|m| m.trackers.iter().flatten()) {
        if !all.contains(url) {
            all.push(url.clone());
        }
    }
    all
}

/// `http://HOST` as the client reached us, for URLs it can open.
pub fn base_url(req: &Request) -> String {
    let host = req
        .header("Host")
        .map(|h| h.as_str().to_string())
        .or_else(|| {
            let url = req.url();
            url.host_str().map(|h| {
                format!(
                    "{h}{}",
                    url.port().map(|p| format!(":{p}")).unwrap_or_default()
                )
            })
        })
        .unwrap_or_else(|| "127.0.0.1:11470".to_string());
    format!("http://{host}")
}

mod shapes;
#[cfg(test)]
mod tests;

pub use shapes::*;
