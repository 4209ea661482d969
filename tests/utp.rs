//! uTP (BEP 29) against a real client on loopback: libtorrent with TCP disabled both ways, so
//! every byte it exchanges with streme goes over uTP. A magnet streams byte-exact from such a
//! seeder (the metadata too, over ut_metadata), and such a leecher downloads a cached torrent
//! from streme.
//!
//! The tracker is Debian's opentracker on loopback; libtorrent runs with DHT, LSD, UPnP and
//! NAT-PMP off, and streme with TRACKERS, DHT and LSD off but the test's tracker.

mod common;

use std::path::Path;
use std::time::Duration;

use common::fixture;
use common::hybrid::{self, get_observed, set};
use common::server::{base_env, Server};
use common::swarm::{self, Process};
use common::{http, sha256_hex, TestDir};

fn env(dir: &TestDir) -> Vec<(String, String)> {
    let mut env = base_env(&dir.sub("cache"), 200);
    set(&mut env, "P2P_TIMEOUT", "3000");
    set(&mut env, "TORRENT_TIMEOUT", "30000");
    set(&mut env, "TORRENT_MAX_RETRIES", "1");
    set(&mut env, "PIECE_TIMEOUT", "60000");
    // uTP is off by default (experimental until libtorrent interop works).
    set(&mut env, "ENABLE_UTP", "true");
    if std::env::var_os("UTP_TRACE").is_some() {
        set(&mut env, "LOG_LEVEL", "trace");
    }
    env
}

struct Fixture {
    dir: TestDir,
    tracker: Process,
    content: std::path::PathBuf,
    torrent: fixture::Torrent,
    source: Vec<u8>,
}

fn fixture(name: &str, bytes: u64) -> Fixture {
    fixture::require_fixture_tools();
    let dir = TestDir::new(name);
    let content = fixture::random_file(&dir.sub("data").join("movie.mkv"), bytes);
    let port = swarm::free_port();
    let torrent = swarm::torrent_with_tracker(
        &content,
        &dir.path().join("content.torrent"),
        16,
        &swarm::announce_url_on(port),
    );
    let tracker = swarm::opentracker(dir.path(), port, &[&torrent.info_hash]);
    let source = std::fs::read(&content).unwrap();
    Fixture {
        dir,
        tracker,
        content,
        torrent,
        source,
    }
}

/// The libtorrent peer's own counters, from its status lines: (the most uTP connections it
/// held at once, payload bytes uploaded). It prints them once a second, so this waits up to
/// 10 s for `done` to hold and returns the last values either way.
fn lt_counters(p: &Process, done: impl Fn(u64, u64) -> bool) -> (u64, u64) {
    let field = |line: &str, key: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let log = p.log_text();
        let utp = log.lines().map(|l| field(l, "utp=")).max().unwrap_or(0);
        let up = log.lines().map(|l| field(l, "up=")).max().unwrap_or(0);
        if done(utp, up) || std::time::Instant::now() > deadline {
            return (utp, up);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn data_dir(content: &Path) -> std::path::PathBuf {
    content.parent().unwrap().to_path_buf()
}

#[test]
fn a_magnet_streams_from_a_utp_only_libtorrent_seeder() {
    let f = fixture("utp_seeder", 6 << 20);
    let seeder =
        swarm::utp_only_libtorrent(f.dir.path(), &f.torrent.file, &data_dir(&f.content), true);
    swarm::wait_announced(f.tracker.port, &f.torrent.info_hash, 1);
    let srv = Server::start(&env(&f.dir));
    let tracker = swarm::announce_url(&f.tracker)
        .replace(':', "%3A")
        .replace('/', "%2F");
    let uri = format!("magnet:?xt=urn:btih:{}&tr={tracker}", f.torrent.info_hash);
    let r = http::post_json(
        srv.addr(),
        "/api/torrents",
        &serde_json::json!({ "magnetUri": uri }),
    );
    assert!((200..300).contains(&r.status), "{}", r.text());
    let status = hybrid::wait_for_status(
        srv.addr(),
        &f.torrent.info_hash,
        Duration::from_secs(60),
        |s| s["totalLength"].as_u64().is_some(),
    )
    .unwrap_or_else(|s| {
        panic!(
            "no metadata over uTP: {s}\n{}\nlibtorrent:\n{}",
            srv.logs(),
            seeder.log_text()
        )
    });
    assert_eq!(status["totalLength"], f.source.len() as u64);
    assert!(
        srv.logs().contains("[P2P] Metadata from peers"),
        "the metadata did not come from the peer:\n{}",
        srv.logs()
    );
    let path = format!("/stream/proxy/{}", f.torrent.info_hash);
    let r = std::panic::catch_unwind(|| {
        get_observed(srv.addr(), &path, &[], || serde_json::Value::Null)
    })
    .unwrap_or_else(|_| panic!("the stream failed; streme's log:\n{}", srv.logs()))
    .response;
    assert_eq!(r.status, 200, "{}\n{}", r.head(), srv.logs());
    assert!(r.complete, "the stream ended early\n{}", srv.logs());
    assert_eq!(sha256_hex(&r.body), sha256_hex(&f.source), "stream differs");
    let logs = srv.logs();
    let dials: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("reached over") || l.contains("; trying "))
        .collect();
    eprintln!("streme's dials: {dials:#?}");
    // TCP connects too (libtorrent's kernel accepts it, then libtorrent hangs up): the dial
    // must fall back to uTP rather than keep the transport that merely connected.
    let reached = format!("127.0.0.1:{}: reached over Utp", seeder.port);
    assert!(
        dials.iter().any(|l| l.contains(&reached)),
        "streme never reached the seeder over uTP by its own dial: {dials:#?}"
    );
    let (utp, up) = lt_counters(&seeder, |utp, up| utp >= 1 && up >= f.source.len() as u64);
    assert!(
        utp >= 1,
        "libtorrent saw no uTP connection:\n{}",
        seeder.log_text()
    );
    assert!(
        up >= f.source.len() as u64,
        "libtorrent uploaded {up} bytes of {}",
        f.source.len()
    );
}

#[test]
fn a_utp_only_libtorrent_leecher_downloads_a_cached_torrent() {
    let f = fixture("utp_leecher", 6 << 20);
    let env = env(&f.dir);
    common::server::import(&env, &f.torrent.file, &f.content);
    let srv = Server::start(&env);
    let into = f.dir.sub("lt-download");
    let leecher = swarm::utp_only_libtorrent(f.dir.path(), &f.torrent.file, &into, false);
    swarm::wait_for_file(
        &into.join("movie.mkv"),
        &f.source,
        Duration::from_secs(120),
        &leecher,
    );
    let status = hybrid::status(srv.addr(), &f.torrent.info_hash);
    assert!(
        status["peers"]["uploaded"].as_u64() >= Some(f.source.len() as u64),
        "streme did not upload the file: {status}\n{}",
        srv.logs()
    );
    let (utp, _) = lt_counters(&leecher, |utp, _| utp >= 1);
    assert!(
        utp >= 1,
        "libtorrent saw no uTP connection:\n{}",
        leecher.log_text()
    );
}

#[test]
fn transmission_with_utp_on_exchanges_data_with_streme() {
    let f = fixture("utp_transmission", 6 << 20);
    let seeder = swarm::transmission_with_utp(f.dir.path(), &f.torrent.file, &data_dir(&f.content));
    swarm::wait_announced(f.tracker.port, &f.torrent.info_hash, 1);
    let env = env(&f.dir);
    let srv = Server::start(&env);
    let tracker = swarm::announce_url(&f.tracker)
        .replace(':', "%3A")
        .replace('/', "%2F");
    let uri = format!("magnet:?xt=urn:btih:{}&tr={tracker}", f.torrent.info_hash);
    let r = http::post_json(
        srv.addr(),
        "/api/torrents",
        &serde_json::json!({ "magnetUri": uri }),
    );
    assert!((200..300).contains(&r.status), "{}", r.text());
    let path = format!("/stream/proxy/{}", f.torrent.info_hash);
    let r = std::panic::catch_unwind(|| {
        get_observed(srv.addr(), &path, &[], || serde_json::Value::Null)
    })
    .unwrap_or_else(|_| {
        panic!(
            "the stream failed; streme's log:\n{}\ntransmission:\n{}",
            srv.logs(),
            seeder.log_text()
        )
    })
    .response;
    assert_eq!(r.status, 200, "{}\n{}", r.head(), srv.logs());
    assert!(r.complete, "the stream ended early\n{}", srv.logs());
    assert_eq!(sha256_hex(&r.body), sha256_hex(&f.source), "stream differs");
    let logs = srv.logs();
    let transport: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("reached over"))
        .collect();
    eprintln!("streme reached transmission: {transport:?}");
    assert!(
        !transport.is_empty(),
        "no dial recorded its transport:\n{logs}"
    );
}
