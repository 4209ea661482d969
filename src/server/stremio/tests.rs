use std::net::Ipv4Addr;

use serde_json::{json, Value};

use super::*;
use crate::format::metainfo::FileEntry;
use crate::format::InfoHash;
use crate::p2p::SwarmStats;

/// stremio-core's `Statistics` fields with the JSON type each must have.
const STATISTICS_FIELDS: &[(&str, &str)] = &[
    ("name", "string"),
    ("infoHash", "string"),
    ("files", "array"),
    ("sources", "array"),
    ("opts", "object"),
    ("downloadSpeed", "number"),
    ("uploadSpeed", "number"),
    ("downloaded", "integer"),
    ("uploaded", "integer"),
    ("unchoked", "integer"),
    ("peers", "integer"),
    ("queued", "integer"),
    ("unique", "integer"),
    ("connectionTries", "integer"),
    ("peerSearchRunning", "bool"),
    ("streamLen", "integer"),
    ("streamName", "string"),
    ("streamProgress", "number"),
    ("swarmConnections", "integer"),
    ("swarmPaused", "bool"),
    ("swarmSize", "integer"),
];

fn has_type(v: &Value, kind: &str) -> bool {
    match kind {
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "number" => v.is_number(),
        "integer" => v.is_u64(),
        "bool" => v.is_boolean(),
        "null-or-string" => v.is_null() || v.is_string(),
        _ => unreachable!("{kind}"),
    }
}

fn assert_fields(v: &Value, fields: &[(&str, &str)]) {
    for (name, kind) in fields {
        let field = v.get(*name).unwrap_or_else(|| panic!("no {name} in {v}"));
        assert!(has_type(field, kind), "{name} is not {kind}: {field}");
    }
}

fn file(path: &str, length: u64) -> FileEntry {
    FileEntry {
        path: path.split('/').map(String::from).collect(),
        length,
        offset: 0,
        padding: false,
    }
}

fn view() -> StatsView {
    StatsView {
        name: "movie".into(),
        info_hash: InfoHash::from_hex("dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c").unwrap(),
        files: vec![("movie.mp4".into(), "movie/movie.mp4".into(), 100, 0)],
        sources: vec!["tracker:udp://127.0.0.1:6969/announce".into()],
        opts: Opts {
            connections: 200,
            dht: false,
            tracker: true,
            handshake_timeout_ms: 2000,
            timeout_ms: 30000,
            path: "/var/cache/streme".into(),
            peer_search_min: 0,
            peer_search_max: 50,
        },
        swarm: SwarmStats {
            peers: 3,
            download_speed: 1.5,
            ..SwarmStats::default()
        },
        downloaded: 42,
        stream: Some((100, "movie.mp4".into(), 0.5)),
    }
}

#[test]
fn statistics_has_every_core_field_typed_as_core() {
    let v = statistics_json(&view());
    assert_fields(&v, STATISTICS_FIELDS);
    assert_eq!(v["peers"], 3);
    assert_eq!(v["swarmConnections"], 3);
    assert_eq!(v["downloaded"], 42);
    assert_eq!(v["streamProgress"], 0.5);
    assert_fields(
        &v["files"][0],
        &[
            ("name", "string"),
            ("path", "string"),
            ("length", "integer"),
            ("offset", "integer"),
        ],
    );
    assert_fields(
        &v["sources"][0],
        &[
            ("lastStarted", "string"),
            ("numFound", "integer"),
            ("numFoundUniq", "integer"),
            ("numRequests", "integer"),
            ("url", "string"),
        ],
    );
    let opts = &v["opts"];
    assert_fields(
        opts,
        &[
            ("connections", "integer"),
            ("dht", "bool"),
            ("growler", "object"),
            ("handshakeTimeout", "integer"),
            ("path", "string"),
            ("peerSearch", "object"),
            ("swarmCap", "object"),
            ("timeout", "integer"),
            ("tracker", "bool"),
            ("virtual", "bool"),
        ],
    );
    assert_fields(
        &opts["growler"],
        &[("flood", "integer"), ("pulse", "integer")],
    );
    assert_fields(
        &opts["peerSearch"],
        &[("max", "integer"), ("min", "integer"), ("sources", "array")],
    );
    assert_fields(
        &opts["swarmCap"],
        &[("maxSpeed", "number"), ("minPeers", "integer")],
    );
}

#[test]
fn statistics_without_metadata_is_still_complete() {
    let mut v = view();
    v.files.clear();
    v.stream = None;
    let json = statistics_json(&v);
    assert_fields(&json, STATISTICS_FIELDS);
    assert_eq!(json["streamName"], "");
    assert_eq!(json["streamLen"], 0);
}

#[test]
fn settings_values_are_typed_as_core_settings() {
    let v = settings_json(&SettingsView {
        base_url: "http://192.168.1.5:11470".into(),
        cache_root: "/var/cache/streme".into(),
        cache_bytes: 10 << 30,
        max_connections: 200,
        handshake_timeout_ms: 10000,
        request_timeout_ms: 30000,
        download_limit_bytes_per_s: 0.0,
        min_peers: 0,
    });
    assert_eq!(v["baseUrl"], "http://192.168.1.5:11470");
    assert!(v["options"].is_array());
    let values = &v["values"];
    assert_fields(
        values,
        &[
            ("appPath", "string"),
            ("cacheRoot", "string"),
            ("serverVersion", "string"),
            ("remoteHttps", "null-or-string"),
            ("transcodeProfile", "null-or-string"),
            ("proxyStreamsEnabled", "bool"),
            ("btMaxConnections", "integer"),
            ("btHandshakeTimeout", "integer"),
            ("btRequestTimeout", "integer"),
            ("btDownloadSpeedSoftLimit", "number"),
            ("btDownloadSpeedHardLimit", "number"),
            ("btMinPeersForStable", "integer"),
        ],
    );
    // Option<f64> in core: a float, so 10 GiB must not come out as an integer that f64 rounds.
    assert!(values["cacheSize"].is_f64(), "{}", values["cacheSize"]);
    assert_eq!(values["cacheSize"].as_f64(), Some((10u64 << 30) as f64));
}

#[test]
fn sources_become_trackers_and_dht_adds_none() {
    let trackers = trackers_from_sources([
        "tracker:udp://127.0.0.1:6969/announce",
        "dht:dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c",
        "http://127.0.0.1:8000/announce",
        "tracker:udp://127.0.0.1:6969/announce",
        "ftp://nope",
    ]);
    assert_eq!(
        trackers,
        [
            "udp://127.0.0.1:6969/announce",
            "http://127.0.0.1:8000/announce"
        ]
    );
}

#[test]
fn minus_one_picks_the_largest_video_that_matches() {
    let files = [
        file("show/sample.mkv", 10),
        file("show/Show.S01E02.mkv", 500),
        file("show/Show.S01E01.mkv", 400),
        file("show/cover.jpg", 9000),
    ];
    assert_eq!(pick_file(&files, -1, &[]), Ok(1));
    let e01 = regex_lite::Regex::new("S01E01").unwrap();
    assert_eq!(pick_file(&files, -1, std::slice::from_ref(&e01)), Ok(2));
    assert_eq!(pick_file(&files, 2, std::slice::from_ref(&e01)), Ok(2));
    assert!(pick_file(&files, 1, std::slice::from_ref(&e01))
        .unwrap_err()
        .contains("does not match"));
    assert!(pick_file(&files, 9, &[])
        .unwrap_err()
        .contains("does not exist"));
    let none = regex_lite::Regex::new("S09").unwrap();
    assert!(pick_file(&files, -1, &[none])
        .unwrap_err()
        .contains("no file"));
    // Without a video, the largest matching file.
    let jpg = regex_lite::Regex::new(r"\.jpg$").unwrap();
    assert_eq!(pick_file(&files, -1, &[jpg]), Ok(3));
}

#[test]
fn guess_finds_the_episode_or_the_largest_video() {
    let files = [
        file("show/Show.S01E02.mkv", 500),
        file("show/Show.S01E01.mkv", 400),
    ];
    assert_eq!(guess_file(&files, &json!(false)), None);
    assert_eq!(guess_file(&files, &json!({})), Some(0));
    assert_eq!(
        guess_file(&files, &json!({"season": 1, "episode": 1})),
        Some(1)
    );
    assert_eq!(
        guess_file(&files, &json!({"season": 3, "episode": 1})),
        Some(0)
    );
}

#[test]
fn fib_trie_gives_the_hosts_own_addresses() {
    let table = "Main:
  +-- 0.0.0.0/0 3 0 5
     +-- 127.0.0.0/8 2 0 2
           |-- 127.0.0.1
              /32 host LOCAL
     +-- 192.168.1.0/24 2 0 2
           |-- 192.168.1.0
              /24 link UNICAST
           |-- 192.168.1.5
              /32 host LOCAL
        |-- 192.168.1.255
           /32 link BROADCAST
Local:
           |-- 192.168.1.5
              /32 host LOCAL
           |-- 10.0.0.7
              /32 host LOCAL
";
    assert_eq!(
        local_ipv4s(table),
        [Ipv4Addr::new(192, 168, 1, 5), Ipv4Addr::new(10, 0, 0, 7)]
    );
    assert!(local_ipv4s("garbage\n|-- x\n/32 host LOCAL").is_empty());
}

#[test]
fn hex_blobs_decode_or_refuse() {
    assert_eq!(hex_bytes("00ff10"), Some(vec![0, 255, 16]));
    assert_eq!(hex_bytes("0"), None);
    assert_eq!(hex_bytes("zz"), None);
}
