//! One stream from a swarm of three kinds of libtorrent seeder at once (issue 13, "Mixed"): a
//! plain TCP seeder (uTP off, encryption disabled), a uTP-only seeder (TCP off both ways,
//! encryption disabled) and an encryption-required seeder (TCP, RC4 forced). streme, with uTP on
//! and `ENCRYPTION=prefer`, gets all three as `x.pe=` of one magnet and streams the file
//! byte-exact; each seeder's own counters (tests/peers/lt_tuned_peer.py: its total `up=` and
//! its per-peer `enc=`/`utp=` lines) show it uploaded to streme, over the transport and
//! encryption it allows.
//!
//! Everything is on loopback: streme has TRACKERS, DHT and LSD off; the seeders have DHT, LSD,
//! UPnP and NAT-PMP off.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::hybrid::{self, set};
use common::server::{base_env, Server};
use common::swarm::{self, Process};
use common::{fixture, http, TestDir};
use serde_json::json;

/// 24 MiB in 64 KiB pieces: 384 pieces, enough for the picker to spread over three peers.
const SIZE: u64 = 24 << 20;
const PIECE_LOG2: u32 = 16;

/// A seeder's lines: its torrent's payload `up=` total (the last status line) and the
/// per-peer lines of the peers that moved payload.
fn lt_up(log: &str) -> u64 {
    log.lines()
        .filter(|l| l.starts_with("seed "))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("up="))
                .and_then(|n| n.parse::<u64>().ok())
        })
        .max()
        .unwrap_or(0)
}

fn lt_moving_peers(log: &str) -> Vec<String> {
    let mut peers: Vec<String> = log
        .lines()
        .filter(|l| l.starts_with("peer ") && !l.contains(" up=0 "))
        .map(|l| {
            // "peer ADDR enc=E utp=U up=N down=N" minus the counts, which move.
            l.split_whitespace().take(4).collect::<Vec<_>>().join(" ")
        })
        .collect();
    peers.sort();
    peers.dedup();
    peers
}

/// Waits until the seeder's `up=` reaches `at_least` (its lines come once a second).
fn wait_up(p: &Process, at_least: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let up = lt_up(&p.log_text());
        if up >= at_least || Instant::now() > deadline {
            return up;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn one_stream_gets_bytes_from_tcp_utp_and_encrypted_seeders_at_once() {
    fixture::require_fixture_tools();
    let dir = TestDir::new("mixed_swarm");
    let content = fixture::random_file(&dir.sub("data").join("movie.mkv"), SIZE);
    // A tracker URL nobody listens on: the seeders come from the magnet's x.pe only.
    let torrent = swarm::torrent_with_tracker(
        &content,
        &dir.path().join("content.torrent"),
        PIECE_LOG2,
        &swarm::announce_url_on(swarm::free_port()),
    );
    let source = std::fs::read(&content).unwrap();
    let data: PathBuf = content.parent().unwrap().to_path_buf();
    // Each seeder capped at 4 MB/s (local peers included): uncapped, a fast machine moves the
    // whole file in well under a second, and a seeder can then upload its share and see streme
    // leave (both seeding) between two of its 50 ms peer polls, so its peer lines show nothing.
    let plain = json!({
        "out_enc_policy": "pe_disabled",
        "in_enc_policy": "pe_disabled",
        "torrent_upload_limit": 4_000_000,
    });
    let mut utp_only = plain.clone();
    for (k, v) in [
        ("enable_outgoing_utp", true),
        ("enable_incoming_utp", true),
        ("enable_outgoing_tcp", false),
        ("enable_incoming_tcp", false),
    ] {
        utp_only[k] = json!(v);
    }
    let forced = json!({
        "torrent_upload_limit": 4_000_000,
        "out_enc_policy": "pe_forced",
        "in_enc_policy": "pe_forced",
        "allowed_enc_level": "pe_rc4",
        "prefer_rc4": true,
    });
    let tcp_seeder = swarm::tuned_libtorrent(dir.path(), true, &torrent.file, &data, &plain);
    let utp_seeder = swarm::tuned_libtorrent(dir.path(), true, &torrent.file, &data, &utp_only);
    let rc4_seeder = swarm::tuned_libtorrent(dir.path(), true, &torrent.file, &data, &forced);
    let seeders = [
        ("plain TCP", &tcp_seeder),
        ("uTP-only", &utp_seeder),
        ("encryption-required", &rc4_seeder),
    ];

    // A seeder still checking its files hangs up on every peer of the torrent: wait for all
    // three to seed before streme dials them.
    for (kind, p) in &seeders {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !p.log_text().contains("state=seeding") {
            assert!(
                Instant::now() < deadline,
                "the {kind} seeder never started seeding:\n{}",
                p.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    let mut env = base_env(&dir.sub("cache"), 200);
    set(&mut env, "ENABLE_UTP", "true");
    set(&mut env, "ENCRYPTION", "prefer");
    set(&mut env, "P2P_TIMEOUT", "5000");
    set(&mut env, "TORRENT_TIMEOUT", "30000");
    set(&mut env, "TORRENT_MAX_RETRIES", "1");
    set(&mut env, "PIECE_TIMEOUT", "60000");
    let srv = Server::start(&env);
    let pe: String = seeders
        .iter()
        .map(|(_, p)| format!("&x.pe=127.0.0.1:{}", p.port))
        .collect();
    let uri = format!("magnet:?xt=urn:btih:{}{pe}", torrent.info_hash);
    let r = http::post_json(srv.addr(), "/api/torrents", &json!({ "magnetUri": uri }));
    assert!((200..300).contains(&r.status), "adding {uri}: {}", r.text());

    hybrid::assert_streams_byte_exact(&srv, &torrent.info_hash, &source);

    // Each seeder uploaded a share (at least one piece), and together the whole file.
    let piece = 1u64 << PIECE_LOG2;
    let mut total = 0;
    let mut report = String::new();
    for (kind, p) in &seeders {
        let up = wait_up(p, piece);
        total += up;
        report += &format!(
            "{kind} seeder (port {}): up={up}, peers {:?}\n",
            p.port,
            lt_moving_peers(&p.log_text())
        );
    }
    eprintln!("{report}");
    for (kind, p) in &seeders {
        let up = lt_up(&p.log_text());
        assert!(
            up >= piece,
            "the {kind} seeder uploaded {up} bytes (less than a {piece}-byte piece):\n{report}\
             streme's log:\n{}\n{kind} seeder's log:\n{}",
            srv.logs(),
            p.log_text()
        );
    }
    // The totals come once a second: wait for the lines after the last bytes.
    let deadline = Instant::now() + Duration::from_secs(10);
    while total < SIZE && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        total = seeders.iter().map(|(_, p)| lt_up(&p.log_text())).sum();
    }
    assert!(
        total >= SIZE,
        "the seeders uploaded {total} of {SIZE}:\n{report}"
    );
    // The transports and encryption each seeder's moving peers used, on its side.
    let moving = |p: &Process| lt_moving_peers(&p.log_text());
    let tcp = moving(&tcp_seeder);
    assert!(
        !tcp.is_empty() && tcp.iter().all(|l| l.ends_with("enc=none utp=0")),
        "the plain seeder's peers: {tcp:?}"
    );
    let utp = moving(&utp_seeder);
    assert!(
        !utp.is_empty() && utp.iter().all(|l| l.ends_with(" utp=1")),
        "the uTP-only seeder's peers: {utp:?}"
    );
    let rc4 = moving(&rc4_seeder);
    assert!(
        !rc4.is_empty() && rc4.iter().all(|l| l.ends_with("enc=rc4 utp=0")),
        "the encryption-required seeder's peers: {rc4:?}"
    );
}
