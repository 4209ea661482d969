//! Stremio streaming-server compatibility against the real binary: every route answers in the
//! shape stremio-core's types define (every field present, non-null, of the right JSON type),
//! and `/{infoHash}/{fileIdx}` streams the same bytes as the source file.

mod common;

use common::cached::{CachedShow, CachedVideo, ROOMY_QUOTA_MB};
use common::fixture::Media;
use common::http;
use serde_json::{json, Value};

/// stremio-core's `Statistics` (src/types/streaming_server/statistics.rs), with JSON types.
const STATISTICS: &[(&str, Kind)] = &[
    ("name", Kind::Str),
    ("infoHash", Kind::Str),
    ("files", Kind::Array),
    ("sources", Kind::Array),
    ("opts", Kind::Object),
    ("downloadSpeed", Kind::Float),
    ("uploadSpeed", Kind::Float),
    ("downloaded", Kind::Uint),
    ("uploaded", Kind::Uint),
    ("peers", Kind::Uint),
    ("unchoked", Kind::Uint),
    ("queued", Kind::Uint),
    ("unique", Kind::Uint),
    ("connectionTries", Kind::Uint),
    ("peerSearchRunning", Kind::Bool),
    ("streamLen", Kind::Uint),
    ("streamName", Kind::Str),
    ("streamProgress", Kind::Float),
    ("swarmConnections", Kind::Uint),
    ("swarmPaused", Kind::Bool),
    ("swarmSize", Kind::Uint),
];

#[derive(Debug, Clone, Copy)]
enum Kind {
    Str,
    Array,
    Object,
    /// serde's f64 reads any JSON number.
    Float,
    Uint,
    Bool,
}

fn assert_shape(what: &str, v: &Value, fields: &[(&str, Kind)]) {
    for (name, kind) in fields {
        let field = v
            .get(*name)
            .unwrap_or_else(|| panic!("{what}: no field {name} in {v}"));
        let ok = match kind {
            Kind::Str => field.is_string(),
            Kind::Array => field.is_array(),
            Kind::Object => field.is_object(),
            Kind::Float => field.is_number(),
            Kind::Uint => field.is_u64(),
            Kind::Bool => field.is_boolean(),
        };
        assert!(ok, "{what}: {name} is not {kind:?}: {field}");
    }
}

fn assert_statistics(what: &str, v: &Value) {
    assert_shape(what, v, STATISTICS);
    for f in v["files"].as_array().unwrap() {
        assert_shape(
            what,
            f,
            &[
                ("name", Kind::Str),
                ("path", Kind::Str),
                ("length", Kind::Uint),
                ("offset", Kind::Uint),
            ],
        );
    }
    let opts = &v["opts"];
    assert_shape(
        what,
        opts,
        &[
            ("connections", Kind::Uint),
            ("dht", Kind::Bool),
            ("growler", Kind::Object),
            ("handshakeTimeout", Kind::Uint),
            ("path", Kind::Str),
            ("peerSearch", Kind::Object),
            ("swarmCap", Kind::Object),
            ("timeout", Kind::Uint),
            ("tracker", Kind::Bool),
            ("virtual", Kind::Bool),
        ],
    );
    assert_shape(
        what,
        &opts["peerSearch"],
        &[
            ("max", Kind::Uint),
            ("min", Kind::Uint),
            ("sources", Kind::Array),
        ],
    );
    assert_shape(
        what,
        &opts["growler"],
        &[("flood", Kind::Uint), ("pulse", Kind::Uint)],
    );
    assert_shape(
        what,
        &opts["swarmCap"],
        &[("maxSpeed", Kind::Float), ("minPeers", Kind::Uint)],
    );
}

#[test]
fn stats_json_routes_carry_every_statistics_field_with_real_values() {
    let c = CachedVideo::start("stremio_stats", Media::Mp4Faststart);
    let ih = &c.torrent.info_hash;
    let addr = c.server.addr();

    let one = http::get(addr, &format!("/{ih}/stats.json"), &[]);
    assert_eq!(one.status, 200, "{}", one.text());
    let v = one.json();
    assert_statistics("/{ih}/stats.json", &v);
    assert_eq!(v["infoHash"], ih.as_str());
    assert_eq!(v["name"], "movie.mp4");
    assert_eq!(v["files"][0]["length"], c.len());
    assert_eq!(v["streamName"], "movie.mp4");
    assert_eq!(v["streamLen"], c.len());
    assert_eq!(v["streamProgress"], 1.0, "every piece was imported");

    let file = http::get(addr, &format!("/{ih}/0/stats.json"), &[]);
    assert_eq!(file.status, 200, "{}", file.text());
    assert_statistics("/{ih}/0/stats.json", &file.json());

    let all = http::get(addr, "/stats.json", &[]);
    assert_eq!(all.status, 200, "{}", all.text());
    let all = all.json();
    assert_statistics("/stats.json entry", &all[ih.as_str()]);

    let missing = http::get(addr, &format!("/{ih}/7/stats.json"), &[]);
    assert_eq!(missing.status, 404, "{}", missing.text());
    assert!(
        missing.error_text().contains("no file 7"),
        "{}",
        missing.text()
    );
}

#[test]
fn create_answers_statistics_with_the_guessed_file() {
    let c = CachedVideo::start("stremio_create", Media::Mp4Faststart);
    let ih = &c.torrent.info_hash;
    let body = json!({
        "torrent": {"infoHash": ih},
        "peerSearch": {"min": 40, "max": 200, "sources": [format!("dht:{ih}"), "tracker:udp://127.0.0.1:9/announce"]},
        "guessFileIdx": {},
    });
    let r = http::post_json(c.server.addr(), &format!("/{ih}/create"), &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_statistics("create", &v);
    assert_eq!(v["guessedFileIdx"], 0, "{v}");

    let no_guess = json!({"torrent": {"infoHash": ih}, "guessFileIdx": false});
    let r = http::post_json(c.server.addr(), &format!("/{ih}/create"), &no_guess);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["guessedFileIdx"].is_null(), "{}", r.text());

    let other = json!({"torrent": {"infoHash": "0".repeat(40)}});
    let r = http::post_json(c.server.addr(), &format!("/{ih}/create"), &other);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.error_text().contains("is not the"), "{}", r.text());
}

#[test]
fn settings_and_device_routes_answer_core_shapes() {
    let c = CachedVideo::start("stremio_settings", Media::Mp4Faststart);
    let addr = c.server.addr();
    let r = http::get(addr, "/settings", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["baseUrl"], format!("http://{addr}"));
    assert!(v["options"].is_array(), "{v}");
    let values = &v["values"];
    assert_shape(
        "settings.values",
        values,
        &[
            ("appPath", Kind::Str),
            ("cacheRoot", Kind::Str),
            ("serverVersion", Kind::Str),
            ("proxyStreamsEnabled", Kind::Bool),
            ("btMaxConnections", Kind::Uint),
            ("btHandshakeTimeout", Kind::Uint),
            ("btRequestTimeout", Kind::Uint),
            ("btDownloadSpeedSoftLimit", Kind::Float),
            ("btDownloadSpeedHardLimit", Kind::Float),
            ("btMinPeersForStable", Kind::Uint),
        ],
    );
    // Option<f64> / Option<String> in stremio-core: present, and a float or a string or null.
    assert!(values["cacheSize"].is_f64(), "{values}");
    let quota = values["cacheSize"].as_f64().unwrap() as u64;
    assert!(
        quota == ROOMY_QUOTA_MB * 1_000_000 || quota == ROOMY_QUOTA_MB << 20,
        "{values}"
    );
    for key in ["remoteHttps", "transcodeProfile"] {
        assert!(
            values
                .get(key)
                .is_some_and(|v| v.is_null() || v.is_string()),
            "{key}: {values}"
        );
    }

    let posted = http::post_json(addr, "/settings", &json!({"cacheSize": 1.0}));
    assert_eq!(posted.status, 200, "{}", posted.text());
    assert_eq!(posted.json()["success"], true);
    let refused = http::post_json(addr, "/settings", &json!([1]));
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(
        refused.error_text().contains("JSON object"),
        "{}",
        refused.text()
    );

    let net = http::get(addr, "/network-info", &[]).json();
    let interfaces = net["availableInterfaces"]
        .as_array()
        .expect("availableInterfaces");
    let mut listed: Vec<std::net::Ipv4Addr> = interfaces
        .iter()
        .map(|ip| ip.as_str().unwrap().parse().expect("an IPv4 address"))
        .collect();
    // The kernel's own answer, read by another tool: `hostname -I` (every address but loopback).
    let out = common::run(std::process::Command::new("hostname").arg("-I"));
    let mut expected: Vec<std::net::Ipv4Addr> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|a| a.parse().ok())
        .collect();
    listed.sort();
    expected.sort();
    expected.dedup();
    assert_eq!(listed, expected, "{net}");
    let device = http::get(addr, "/device-info", &[]).json();
    assert_eq!(device["availableHardwareAccelerations"], json!([]));
    assert_eq!(http::get(addr, "/casting", &[]).json(), json!([]));
    assert_eq!(http::get(addr, "/heartbeat", &[]).json()["success"], true);

    let started = std::time::Instant::now();
    let probe = http::get(
        addr,
        &format!(
            "/hlsv2/probe?mediaURL=http://{addr}/{}/0",
            c.torrent.info_hash
        ),
        &[],
    );
    assert_eq!(probe.status, 404, "{}", probe.text());
    assert!(probe.error_text().contains("transcode"), "{}", probe.text());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the probe must answer at once"
    );
}

#[test]
fn minus_one_streams_the_largest_video_byte_exact_with_head_and_extra_segments() {
    let c = CachedVideo::start("stremio_stream", Media::Mp4Faststart);
    let ih = &c.torrent.info_hash;
    let addr = c.server.addr();

    let head = http::head(addr, &format!("/{ih}/-1"), &[]);
    assert_eq!(head.status, 200, "{}", head.head());
    assert_eq!(
        head.header("Content-Length"),
        Some(c.len().to_string().as_str())
    );
    assert_eq!(head.header("Accept-Ranges"), Some("bytes"));
    assert_eq!(head.header("Content-Type"), Some("video/mp4"));
    assert!(head.body.is_empty());

    let full = http::get(addr, &format!("/{ih}/-1"), &[]);
    assert_eq!(full.status, 200, "{}", full.head());
    assert!(full.complete);
    assert_eq!(
        common::sha256_hex(&full.body),
        common::sha256_hex(&c.source)
    );

    // Stremio appends the file name (and more) after the index; they change nothing.
    let path = format!("/{ih}/0/movie.mp4/extra?tr=tracker:udp://127.0.0.1:9/announce&tr=dht:{ih}");
    let part = http::get(addr, &path, &["Range: bytes=1000-99999"]);
    assert_eq!(part.status, 206, "{}", part.head());
    assert_eq!(part.body, c.slice(1000, 99_999));
    assert_eq!(
        part.header("Content-Range"),
        Some(format!("bytes 1000-99999/{}", c.len()).as_str())
    );
}

#[test]
fn bad_hash_and_bad_index_are_clear_json_errors() {
    let c = CachedVideo::start("stremio_errors", Media::Mp4Faststart);
    let ih = &c.torrent.info_hash;
    let addr = c.server.addr();

    let bad_hash = http::get(addr, "/not-a-hash/0", &[]);
    assert_eq!(bad_hash.status, 400, "{}", bad_hash.text());
    assert!(
        bad_hash.error_text().contains("not an info hash"),
        "{}",
        bad_hash.text()
    );

    let short = http::get(addr, "/abcdef/-1", &[]);
    assert_eq!(short.status, 400, "{}", short.text());

    let past = http::get(addr, &format!("/{ih}/5"), &[]);
    assert_eq!(past.status, 404, "{}", past.text());
    assert!(
        past.error_text().contains("file index 5 does not exist"),
        "{}",
        past.text()
    );

    let negative = http::get(addr, &format!("/{ih}/-2"), &[]);
    assert_eq!(negative.status, 400, "{}", negative.text());
    assert!(negative.error_text().contains("-1"), "{}", negative.text());

    let bad_regex = http::get(addr, &format!("/{ih}/-1?f=%28unclosed"), &[]);
    assert_eq!(bad_regex.status, 400, "{}", bad_regex.text());
    assert!(
        bad_regex.error_text().contains("not a regex"),
        "{}",
        bad_regex.text()
    );

    http::assert_healthy(addr, "Stremio errors");
}

#[test]
fn f_regex_chooses_the_file_of_a_multi_file_torrent() {
    let show = CachedShow::start("stremio_f");
    let (srv, ih, content) = (&show.server, &show.torrent.info_hash, &show.content);

    let video = std::fs::read(&content.video).unwrap();
    let notes = std::fs::read(&content.notes).unwrap();
    let sample = std::fs::read(&content.sample).unwrap();

    // No f=: the video, the only one.
    let r = http::get(srv.addr(), &format!("/{ih}/-1"), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, video);
    // f= narrows the choice to matching paths; without a video among them, the largest.
    let r = http::get(srv.addr(), &format!("/{ih}/-1?f=notes%5C.txt%24"), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, notes);
    let r = http::get(srv.addr(), &format!("/{ih}/-1?f=%5Esample&f=nomatch"), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, sample);
    let r = http::get(srv.addr(), &format!("/{ih}/-1?f=S09E09"), &[]);
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.error_text().contains("matches the f="), "{}", r.text());
}

#[test]
fn cors_preflight_allows_private_network_access() {
    let c = CachedVideo::start("stremio_cors", Media::Mp4Faststart);
    let ih = &c.torrent.info_hash;
    let r = http::options(
        c.server.addr(),
        &format!("/{ih}/-1"),
        &[
            "Origin: https://web.stremio.com",
            "Access-Control-Request-Method: GET",
            "Access-Control-Request-Headers: range",
            "Access-Control-Request-Private-Network: true",
        ],
    );
    assert!(r.status == 204 || r.status == 200, "{}", r.head());
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("*"),
        "{}",
        r.head()
    );
    assert_eq!(
        r.header("Access-Control-Allow-Private-Network"),
        Some("true"),
        "{}",
        r.head()
    );
    let methods = r.header("Access-Control-Allow-Methods").unwrap_or_default();
    assert!(
        methods.contains("GET") && methods.contains("HEAD"),
        "{}",
        r.head()
    );
    let headers = r.header("Access-Control-Allow-Headers").unwrap_or_default();
    assert!(
        headers.to_ascii_lowercase().contains("range"),
        "{}",
        r.head()
    );

    let stats = http::get(
        c.server.addr(),
        &format!("/{ih}/stats.json"),
        &["Origin: https://web.stremio.com"],
    );
    assert_eq!(stats.header("Access-Control-Allow-Origin"), Some("*"));
}
