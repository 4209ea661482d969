//! A torrent's life against the real binary: a delete while a player streams ends the
//! stream, every task of the torrent and its tracker announces, and the same magnet added
//! again streams at once; a magnet whose sources are down fails clearly, and streams once
//! they come back, with no restart.
//!
//! Everything runs on loopback: nginx as the .torrent and content source, opentracker as the
//! tracker, and streme with the DHT and LSD off.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::fixture;
use common::http;
use common::hybrid::{self, hybrid_env, set};
use common::nginx::{self, Nginx};
use common::server::Server;
use common::swarm;
use common::{sha256_hex, TestDir};

const QUOTA_MB: u64 = 512;

fn magnet_with_tracker(info_hash: &str, tracker: &str) -> String {
    format!(
        "magnet:?xt=urn:btih:{info_hash}&tr={}",
        tracker.replace(':', "%3A").replace('/', "%2F")
    )
}

fn add(srv: &Server, uri: &str) {
    let r = http::post_json(
        srv.addr(),
        "/api/torrents",
        &serde_json::json!({ "magnetUri": uri }),
    );
    assert!((200..300).contains(&r.status), "{} {}", r.head(), r.text());
}

/// Delete while a slow player is mid-stream: its response ends, the torrent's tasks end, the
/// tracker hears `stopped`; then the same magnet added again streams byte-exact.
#[test]
fn delete_during_a_stream_ends_everything_and_a_re_add_streams() {
    fixture::require_fixture_tools();
    let dir = TestDir::new("life_delete");
    let nginx = Nginx::start(&dir.sub("nginx"));
    // 24 MiB: far more than the socket buffers between streme and the paused reader hold,
    // so a response that did not end would still owe most of its bytes.
    let file = fixture::random_file(&dir.sub("data").join("movie.mkv"), 24 << 20);
    let port = swarm::free_port();
    let tracker_url = swarm::announce_url_on(port);
    let torrent =
        swarm::torrent_with_tracker(&file, &dir.path().join("movie.torrent"), 18, &tracker_url);
    let _tracker = swarm::opentracker(dir.path(), port, &[&torrent.info_hash]);
    let hash = torrent.info_hash.clone();
    nginx.publish_torrent(&torrent);
    nginx.publish(&format!("content/{hash}"), &file);
    let source = std::fs::read(&file).unwrap();

    let env = hybrid_env(
        &dir.sub("cache"),
        QUOTA_MB,
        &nginx.url("/torrents/{HASH}.torrent"),
        &nginx.url("/content/{hash}/{name}"),
    );
    let srv = Server::start(&env);
    let uri = magnet_with_tracker(&hash, &tracker_url);
    add(&srv, &uri);

    // The slow player: asks for the whole file, reads a little, then pauses.
    let mut player = TcpStream::connect(srv.addr()).unwrap();
    player
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        player,
        "GET /stream/proxy/{hash} HTTP/1.1\r\nHost: {}\r\n\r\n",
        srv.addr()
    )
    .unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 << 10];
    while got < 256 << 10 {
        let n = player.read(&mut buf).expect("the stream's first bytes");
        assert!(n > 0, "the stream ended before the delete: {}", srv.logs());
        got += n;
    }
    swarm::wait_announced(port, &hash, 1);

    let r = http::delete(srv.addr(), &format!("/api/torrents/{hash}"));
    assert_eq!(r.status, 200, "{} {}", r.head(), r.text());

    // The response ends: EOF or a reset, well before the file's end.
    let started = Instant::now();
    loop {
        match player.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
        assert!(
            started.elapsed() < Duration::from_secs(45),
            "the stream went on after the delete ({got} bytes)"
        );
    }
    assert!(
        got < source.len(),
        "the whole file was sent though the torrent was deleted mid-stream ({got} bytes)"
    );
    assert!(
        srv.wait_for_log(
            &format!("{hash}: every task of the torrent ended"),
            Duration::from_secs(10)
        ),
        "the torrent's controller (swarm, announces, HTTP workers) did not end: {}",
        srv.logs()
    );
    // `stopped` took us off the tracker.
    swarm::wait_count(port, &hash, |n| n == 0, "0");

    // The same magnet again: a new torrent, streamed byte-exact.
    add(&srv, &uri);
    let r = http::get(srv.addr(), &format!("/stream/proxy/{hash}"), &[]);
    assert_eq!(r.status, 200, "{} {}", r.head(), r.text());
    assert_eq!(
        sha256_hex(&r.body),
        sha256_hex(&source),
        "the re-added torrent streamed other bytes ({} of {})",
        r.body.len(),
        source.len()
    );
    http::assert_healthy(srv.addr(), "a delete mid-stream and a re-add");
}

/// A magnet added while its HTTP source is down fails clearly; nginx then starts on that
/// port; a later request streams byte-exact with no restart, and the API shows the retry.
#[test]
fn sources_down_then_up_a_later_request_streams_without_a_restart() {
    fixture::require_fixture_tools();
    let dir = TestDir::new("life_sources");
    let file = fixture::random_file(&dir.sub("data").join("movie.mkv"), 3 << 20);
    let torrent = fixture::mktorrent(&file, &dir.path().join("movie.torrent"), 16);
    let hash = torrent.info_hash.clone();
    let source = std::fs::read(&file).unwrap();
    // Nothing listens here yet.
    let port = nginx::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut env = hybrid_env(
        &dir.sub("cache"),
        QUOTA_MB,
        &format!("{base}/torrents/{{HASH}}.torrent"),
        &format!("{base}/content/{{hash}}/{{name}}"),
    );
    // Peers get 2 s after the sources failed: the failure comes quickly.
    set(&mut env, "TORRENT_TIMEOUT", "2000");
    let srv = Server::start(&env);
    hybrid::add_magnet(srv.addr(), &hash);

    let r = http::get(srv.addr(), &format!("/stream/proxy/{hash}"), &[]);
    assert_eq!(r.status, 503, "{} {}", r.head(), r.text());
    assert!(
        r.text().contains("metadata"),
        "the error does not say what is missing: {}",
        r.text()
    );
    let failed = hybrid::wait_for_status(srv.addr(), &hash, Duration::from_secs(30), |s| {
        s["lifecycle"]["state"] == "failed"
    })
    .unwrap_or_else(|s| panic!("the torrent did not fail: {s}"));
    let reason = failed["lifecycle"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(".torrent") && reason.contains(&port.to_string()),
        "the reason does not name the source that failed: {failed}"
    );
    assert!(
        failed["lifecycle"]["retryInMs"].as_u64().is_some(),
        "no next try: {failed}"
    );
    assert_eq!(failed["error"], failed["lifecycle"]["reason"], "{failed}");

    // The source comes up on that port.
    let nginx = Nginx::start_on(&dir.sub("nginx"), port);
    nginx.publish_torrent(&torrent);
    nginx.publish(&format!("content/{hash}"), &file);

    // A player asks again: the retry starts at once, without waiting for the backoff.
    let r = http::get(srv.addr(), &format!("/stream/proxy/{hash}"), &[]);
    assert_eq!(r.status, 200, "{} {}\n{}", r.head(), r.text(), srv.logs());
    assert_eq!(
        sha256_hex(&r.body),
        sha256_hex(&source),
        "streamed bytes differ from the source"
    );
    let s = hybrid::status(srv.addr(), &hash);
    assert!(
        s["lifecycle"]["retries"].as_u64().unwrap_or(0) >= 1,
        "the API does not show the retry: {s}"
    );
    assert_ne!(s["lifecycle"]["state"], "failed", "{s}");
    assert!(
        !nginx.requests_for(".torrent").is_empty(),
        "the .torrent did not come from the source that came back"
    );
}
