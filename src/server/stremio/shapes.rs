//! The JSON shapes and the pure choices of the Stremio routes: stremio-core's
//! `Statistics` and `Settings` built from plain values, which file a URL asks
//! for, which sources are trackers, and this host's addresses from the
//! kernel's table. No I/O: the routes in the parent module gather the values.

use std::net::Ipv4Addr;

use serde_json::{json, Value};

use crate::format::media;
use crate::format::metainfo::FileEntry;
use crate::format::InfoHash;
use crate::p2p::SwarmStats;

/// What stremio-core's `Statistics` says about one torrent and one of its
/// files, in plain values.
#[derive(Debug, Clone)]
pub struct StatsView {
    pub name: String,
    pub info_hash: InfoHash,
    /// (name, path, length, offset) of each file that is not padding.
    pub files: Vec<(String, String, u64, u64)>,
    /// `tracker:URL` and `dht:HASH` source URLs, as Stremio writes them.
    pub sources: Vec<String>,
    pub opts: Opts,
    pub swarm: SwarmStats,
    /// Bytes fetched by every tier beyond the cache (P2P and HTTP).
    pub downloaded: u64,
    /// The chosen file: its length, name and verified fraction.
    pub stream: Option<(u64, String, f64)>,
}

/// The engine options Stremio shows (`Statistics.opts`).
#[derive(Debug, Clone)]
pub struct Opts {
    pub connections: u64,
    pub dht: bool,
    pub tracker: bool,
    pub handshake_timeout_ms: u64,
    pub timeout_ms: u64,
    pub path: String,
    pub peer_search_min: u64,
    pub peer_search_max: u64,
}

/// stremio-core's `Statistics`, every field present and typed as there
/// (u64 as integers, speeds and progress as floats, never null).
pub fn statistics_json(v: &StatsView) -> Value {
    let files: Vec<Value> = v
        .files
        .iter()
        .map(|(name, path, length, offset)| {
            json!({"name": name, "path": path, "length": length, "offset": offset})
        })
        .collect();
    let sources: Vec<Value> = v
        .sources
        .iter()
        .map(|url| {
            // streme counts peers per swarm, not per source: the per-source counts are zero.
            json!({"lastStarted": "", "numFound": 0, "numFoundUniq": 0, "numRequests": 0, "url": url})
        })
        .collect();
    let (stream_len, stream_name, stream_progress) = v.stream.clone().unwrap_or_default();
    let s = &v.swarm;
    json!({
        "name": v.name,
        "infoHash": v.info_hash.to_hex(),
        "files": files,
        "sources": sources,
        "opts": {
            "connections": v.opts.connections,
            "dht": v.opts.dht,
            "growler": {"flood": 0, "pulse": 0},
            "handshakeTimeout": v.opts.handshake_timeout_ms,
            "path": v.opts.path,
            "peerSearch": {
                "max": v.opts.peer_search_max,
                "min": v.opts.peer_search_min,
                "sources": v.sources,
            },
            "swarmCap": {"maxSpeed": 0.0, "minPeers": v.opts.peer_search_min},
            "timeout": v.opts.timeout_ms,
            "tracker": v.opts.tracker,
            "virtual": true,
        },
        "downloadSpeed": s.download_speed,
        "uploadSpeed": s.upload_speed,
        "downloaded": v.downloaded,
        "uploaded": s.uploaded,
        "unchoked": s.unchoked,
        "peers": s.peers,
        "queued": s.queued,
        "unique": s.unique,
        "connectionTries": s.connection_tries,
        "peerSearchRunning": s.peer_search_running,
        "streamLen": stream_len,
        "streamName": stream_name,
        "streamProgress": stream_progress,
        "swarmConnections": s.peers,
        "swarmPaused": false,
        "swarmSize": s.swarm_size,
    })
}

/// The settings Stremio reads, typed exactly as stremio-core's `Settings`:
/// `cacheSize` a float (bytes), `remoteHttps` and `transcodeProfile` null,
/// the bt* limits as integers or floats as there.
#[derive(Debug, Clone)]
pub struct SettingsView {
    pub base_url: String,
    pub cache_root: String,
    pub cache_bytes: u64,
    pub max_connections: u64,
    pub handshake_timeout_ms: u64,
    pub request_timeout_ms: u64,
    pub download_limit_bytes_per_s: f64,
    pub min_peers: u64,
}

pub fn settings_json(v: &SettingsView) -> Value {
    json!({
        "baseUrl": v.base_url,
        "values": {
            "appPath": v.cache_root,
            "cacheRoot": v.cache_root,
            "serverVersion": env!("CARGO_PKG_VERSION"),
            "remoteHttps": null,
            "transcodeProfile": null,
            "cacheSize": v.cache_bytes as f64,
            "proxyStreamsEnabled": false,
            "btMaxConnections": v.max_connections,
            "btHandshakeTimeout": v.handshake_timeout_ms,
            "btRequestTimeout": v.request_timeout_ms,
            "btDownloadSpeedSoftLimit": v.download_limit_bytes_per_s,
            "btDownloadSpeedHardLimit": v.download_limit_bytes_per_s,
            "btMinPeersForStable": v.min_peers,
        },
        // Stremio renders these as its settings form; streme's settings live in its env file,
        // so the only choice offered is the one in force.
        "options": [
            {
                "id": "cacheSize",
                "label": "CACHING",
                "type": "select",
                "class": "caching",
                "icon": true,
                "selections": [{"name": format!("{} MB", v.cache_bytes >> 20), "val": v.cache_bytes}],
            },
        ],
    })
}

/// Trackers named by Stremio sources (`tr=` values and `peerSearch.sources`):
/// `tracker:URL` and bare `http(s)://`/`udp://` URLs are trackers; `dht:HASH`
/// asks for the DHT, which the config switches, so it adds nothing here.
pub fn trackers_from_sources<'a>(sources: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut trackers: Vec<String> = Vec::new();
    for source in sources {
        let url = source.strip_prefix("tracker:").unwrap_or(source);
        let is_tracker = ["http://", "https://", "udp://"]
            .iter()
            .any(|scheme| url.starts_with(scheme));
        if is_tracker && !trackers.iter().any(|t| t == url) {
            trackers.push(url.to_string());
        }
    }
    trackers
}

/// The file a Stremio URL asks for: `-1` is the largest video among the
/// files whose path matches one of the `f=` patterns (every file when there
/// are none); an explicit index must exist and match.
pub fn pick_file(
    files: &[FileEntry],
    index: i64,
    patterns: &[regex_lite::Regex],
) -> Result<usize, String> {
    let matches = |f: &FileEntry| {
        patterns.is_empty() || patterns.iter().any(|re| re.is_match(&f.path.join("/")))
    };
    if index >= 0 {
        let i = index as usize;
        let count = files.len();
        let file = files.get(i).filter(|f| !f.padding).ok_or(format!(
            "file index {i} does not exist (the torrent has {count} files)"
        ))?;
        if !matches(file) {
            return Err(format!(
                "file {i} ({}) does not match the f= pattern(s)",
                file.path.join("/")
            ));
        }
        return Ok(i);
    }
    let largest = |video_only: bool| {
        files
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                !f.padding && matches(f) && (!video_only || media::is_video(f.file_name()))
            })
            .rev()
            .max_by_key(|(_, f)| f.length)
            .map(|(i, _)| i)
    };
    largest(true)
        .or_else(|| largest(false))
        .ok_or_else(|| "no file of the torrent matches the f= pattern(s)".to_string())
}

/// stremio-core's `guessFileIdx`: `false` (or absent) asks for no guess; an
/// object, possibly with `season` and `episode`, asks for the episode's file,
/// else the largest video.
pub fn guess_file(files: &[FileEntry], guess: &Value) -> Option<usize> {
    if !guess.is_object() {
        return None;
    }
    let number = |key: &str| guess.get(key).and_then(Value::as_u64);
    if let (Some(season), Some(episode)) = (number("season"), number("episode")) {
        let tags = [
            format!("s{season:02}e{episode:02}"),
            format!("{season}x{episode:02}"),
        ];
        let episode_file = files
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.padding && media::is_video(f.file_name()))
            .find(|(_, f)| {
                let name = f.file_name().to_ascii_lowercase();
                tags.iter().any(|t| name.contains(t.as_str()))
            });
        if let Some((i, _)) = episode_file {
            return Some(i);
        }
    }
    // As [`Torrent::default_file`]: the largest video, else the largest file.
    media::choose_file(files, None)
        .ok()
        .or_else(|| media::largest_file(files))
}

/// The IPv4 addresses the kernel's `/proc/net/fib_trie` lists as this host's
/// own (`/32 host LOCAL`), loopback left out, in order and without repeats.
pub fn local_ipv4s(fib_trie: &str) -> Vec<Ipv4Addr> {
    let mut found = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in fib_trie.lines() {
        let line = line.trim();
        if let Some(addr) = line.strip_prefix("|-- ") {
            last = addr.parse().ok();
        } else if line.starts_with("/32 host LOCAL") {
            if let Some(ip) = last.take() {
                if !ip.is_loopback() && !found.contains(&ip) {
                    found.push(ip);
                }
            }
        }
    }
    found
}

pub fn hex_bytes(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}
