//! BitTorrent v2 (BEP 52) gets clear answers: a v2-only .torrent and a `urn:btmh:`-only magnet
//! are 400s that say so and name the v2 hash, a magnet with both topics uses the v1 hash, and a
//! hybrid torrent made by libtorrent 2.0 streams byte-exact from a libtorrent seeder by its v1
//! hash. Everything is on loopback: the seeder is named in the magnet's `x.pe`, and every
//! default that reaches outside is overridden by the rig.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::cached::ROOMY_QUOTA_MB;
use common::hybrid;
use common::server::{base_env, Server};
use common::swarm::{self, Client};
use common::{fixture, http, run, TestDir};
use serde_json::json;

/// libtorrent's own hashes of a torrent it made: (v1 or "none", v2).
fn lt_make(kind: &str, content: &Path, out: &Path) -> (String, String) {
    Client::Libtorrent.require();
    let out = run(Command::new("/usr/bin/python3")
        .arg(swarm::LT_TUNED_PEER)
        .args(["make", kind])
        .arg(content)
        .arg(out));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |name: &str| {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {text:?}"))
            .to_string()
    };
    (field("v1="), field("v2="))
}

fn assert_v2_refusal(srv: &Server, what: &str, r: &http::Response, v2_hash: &str) {
    assert_eq!(r.status, 400, "{what}: {}\n{}", r.head(), r.text());
    let error = r.error_text();
    assert!(
        error.contains("BitTorrent v2-only torrents are not supported yet"),
        "{what}: {error:?}"
    );
    assert!(
        error.contains(v2_hash),
        "{what}: {error:?} does not name {v2_hash}"
    );
    http::assert_healthy(srv.addr(), what);
}

#[test]
fn v2_only_torrent_and_btmh_magnet_are_refused_naming_the_v2_hash() {
    let dir = TestDir::new("v2_only");
    let content = fixture::random_file(&dir.sub("data").join("movie.mkv"), 300_000);
    let torrent = dir.path().join("v2.torrent");
    let (v1, v2) = lt_make("v2", &content, &torrent);
    assert_eq!(v1, "none", "libtorrent made a v1 part");
    assert_eq!(v2.len(), 64);
    let srv = Server::start(&base_env(&dir.sub("cache"), ROOMY_QUOTA_MB));
    let bytes = std::fs::read(&torrent).unwrap();
    let r = http::post(
        srv.addr(),
        "/api/torrents",
        "application/x-bittorrent",
        &bytes,
    );
    assert_v2_refusal(&srv, "a v2-only .torrent", &r, &v2);
    let magnet = format!("magnet:?xt=urn:btmh:1220{v2}&dn=movie.mkv");
    let r = http::post_json(srv.addr(), "/api/torrents", &json!({ "magnetUri": magnet }));
    assert_v2_refusal(&srv, "a btmh-only magnet", &r, &v2);
}

#[test]
fn hybrid_torrent_and_two_topic_magnet_stream_by_the_v1_hash() {
    let dir = TestDir::new("v2_hybrid");
    let content = fixture::random_file(&dir.sub("data").join("movie.mkv"), 3 << 20);
    let source = std::fs::read(&content).unwrap();
    let torrent = dir.path().join("hybrid.torrent");
    let (v1, v2) = lt_make("hybrid", &content, &torrent);
    assert_eq!(v1.len(), 40, "libtorrent made no v1 part: {v1}");
    let seeder = swarm::tuned_libtorrent(dir.path(), true, &torrent, &dir.sub("data"), &json!({}));
    let mut env = base_env(&dir.sub("cache"), ROOMY_QUOTA_MB);
    hybrid::set(&mut env, "P2P_TIMEOUT", "5000");
    hybrid::set(&mut env, "TORRENT_TIMEOUT", "30000");
    let srv = Server::start(&env);
    // A magnet naming both (btmh first): the same torrent, by v1, with the seeder as x.pe.
    let magnet = format!(
        "magnet:?xt=urn:btmh:1220{v2}&xt=urn:btih:{v1}&x.pe=127.0.0.1:{}",
        seeder.port
    );
    let r = http::post_json(srv.addr(), "/api/torrents", &json!({ "magnetUri": magnet }));
    assert!((200..300).contains(&r.status), "{}\n{}", r.head(), r.text());
    assert_eq!(r.json()["infoHash"], v1.as_str());
    hybrid::assert_streams_byte_exact(&srv, &v1, &source);
    let status = hybrid::wait_for_status(srv.addr(), &v1, Duration::from_secs(10), |s| {
        s["bytesFetched"]["p2p"].as_u64() == Some(source.len() as u64)
    })
    .unwrap_or_else(|s| panic!("not all from the seeder: {s}"));
    assert_eq!(status["bytesFetched"]["http"].as_u64(), Some(0), "{status}");
    // The hybrid .torrent itself names the same torrent: its v1 hash.
    let r = http::post(
        srv.addr(),
        "/api/torrents",
        "application/x-bittorrent",
        &std::fs::read(&torrent).unwrap(),
    );
    assert!((200..300).contains(&r.status), "{}\n{}", r.head(), r.text());
    assert_eq!(r.json()["infoHash"], v1.as_str());
}
