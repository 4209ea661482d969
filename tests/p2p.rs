//! The P2P tier against real clients on loopback: streme streams from libtorrent, transmission
//! and aria2c (each alone, and all three at once), resolves magnets over ut_metadata from each
//! of them, seeds a cached torrent to aria2c and libtorrent, bans a peer that sends corrupt
//! blocks, hands over to the HTTP tier when the only seeder dies, and lets ffmpeg seek into a
//! video that is still arriving from peers.
//!
//! The tracker is Debian's opentracker on loopback; every client runs with its DHT, LSD, UPnP
//! and NAT-PMP off (tests/common/swarm.rs), and every streme has TRACKERS, DHT and LSD off
//! except the test's own tracker, so nothing leaves the machine.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::evil_peer::{EvilPeer, PexPeer};
use common::fixture::{self, Media};
use common::hybrid::{self, add_torrent, get_observed, set};
use common::nginx::Nginx;
use common::server::{base_env, Server};
use common::swarm::{self, Client, Process};
use common::{http, sha256_hex, TestDir};

const QUOTA_MB: u64 = 200;

/// P2P only (the HTTP fallback off) with deadlines that suit a loopback swarm.
fn p2p_env(dir: &TestDir) -> Vec<(String, String)> {
    let mut env = base_env(&dir.sub("cache"), QUOTA_MB);
    set(&mut env, "P2P_TIMEOUT", "3000");
    set(&mut env, "TORRENT_TIMEOUT", "30000");
    set(&mut env, "TORRENT_MAX_RETRIES", "1");
    set(&mut env, "PIECE_TIMEOUT", "60000");
    env
}

fn magnet(info_hash: &str, tracker: &str, peers: &[String]) -> String {
    let mut m = format!(
        "magnet:?xt=urn:btih:{info_hash}&tr={}",
        tracker.replace(':', "%3A").replace('/', "%2F")
    );
    for p in peers {
        m.push_str(&format!("&x.pe={p}"));
    }
    m
}

fn add_magnet_uri(srv: &Server, uri: &str) {
    let r = http::post_json(
        srv.addr(),
        "/api/torrents",
        &serde_json::json!({ "magnetUri": uri }),
    );
    assert!((200..300).contains(&r.status), "adding {uri}: {}", r.text());
}

fn stream_path(info_hash: &str) -> String {
    format!("/stream/proxy/{info_hash}")
}

/// A swarm fixture: random content of `bytes` under `data/`, a torrent announcing to a fresh
/// opentracker.
struct Fixture {
    dir: TestDir,
    tracker: Process,
    content: std::path::PathBuf,
    torrent: fixture::Torrent,
    source: Vec<u8>,
}

fn fixture(name: &str, bytes: u64, piece_log2: u32) -> Fixture {
    fixture::require_fixture_tools();
    let dir = TestDir::new(name);
    let content = fixture::random_file(&dir.sub("data").join("movie.mkv"), bytes);
    let (tracker, torrent) = tracked_torrent(&dir, &content, piece_log2);
    let source = std::fs::read(&content).unwrap();
    Fixture {
        dir,
        tracker,
        content,
        torrent,
        source,
    }
}

/// A torrent of `content` announcing to a fresh opentracker, which whitelists it.
fn tracked_torrent(dir: &TestDir, content: &Path, piece_log2: u32) -> (Process, fixture::Torrent) {
    let port = swarm::free_port();
    let torrent = swarm::torrent_with_tracker(
        content,
        &dir.path().join("content.torrent"),
        piece_log2,
        &swarm::announce_url_on(port),
    );
    let tracker = swarm::opentracker(dir.path(), port, &[&torrent.info_hash]);
    (tracker, torrent)
}

impl Fixture {
    fn data_dir(&self) -> std::path::PathBuf {
        self.content.parent().unwrap().to_path_buf()
    }

    /// Starts a seeder and waits until the tracker lists it, with the `already` seeders before it.
    fn seed(&self, client: Client, already: u64) -> Process {
        let p = swarm::seeder(
            client,
            self.dir.path(),
            &self.torrent.file,
            &self.data_dir(),
        );
        swarm::wait_announced(self.tracker.port, &self.torrent.info_hash, already + 1);
        p
    }

    fn magnet(&self) -> String {
        magnet(
            &self.torrent.info_hash,
            &swarm::announce_url(&self.tracker),
            &[],
        )
    }
}

/// Streams the whole file and checks it against the source with sha256.
fn stream_whole(srv: &Server, f: &Fixture) {
    let addr = srv.addr();
    let path = stream_path(&f.torrent.info_hash);
    let r = std::panic::catch_unwind(|| get_observed(addr, &path, &[], || serde_json::Value::Null))
        .unwrap_or_else(|_| panic!("the stream failed; streme's log:\n{}", srv.logs()))
        .response;
    assert_eq!(r.status, 200, "{}\n{}", r.head(), srv.logs());
    assert!(
        r.complete,
        "the stream ended early: {} bytes\n{}",
        r.body.len(),
        srv.logs()
    );
    assert_eq!(
        sha256_hex(&r.body),
        sha256_hex(&f.source),
        "stream differs from the source"
    );
}

/// A magnet with only the tracker: streme gets the metadata over ut_metadata from `client`,
/// then streams the file from it.
fn magnet_streams_from(client: Client, name: &str) {
    let f = fixture(name, 6 << 20, 16);
    let _seeder = f.seed(client, 0);
    let srv = Server::start(&p2p_env(&f.dir));
    add_magnet_uri(&srv, &f.magnet());
    let status = hybrid::wait_for_status(
        srv.addr(),
        &f.torrent.info_hash,
        Duration::from_secs(60),
        |s| s["totalLength"].as_u64().is_some(),
    )
    .unwrap_or_else(|s| panic!("no metadata from {}: {s}\n{}", client.name(), srv.logs()));
    assert_eq!(status["totalLength"], f.source.len() as u64);
    assert!(
        srv.logs().contains("[P2P] Metadata from peers"),
        "the metadata did not come from peers:\n{}",
        srv.logs()
    );
    stream_whole(&srv, &f);
    let status = hybrid::status(srv.addr(), &f.torrent.info_hash);
    assert_eq!(
        status["bytesFetched"]["p2p"].as_u64(),
        Some(f.source.len() as u64),
        "{status}"
    );
    assert_eq!(status["bytesFetched"]["http"].as_u64(), Some(0), "{status}");
}

#[test]
fn a_magnet_streams_from_libtorrent_alone() {
    magnet_streams_from(Client::Libtorrent, "p2p_lt");
}

#[test]
fn a_magnet_streams_from_transmission_alone() {
    magnet_streams_from(Client::Transmission, "p2p_tr");
}

#[test]
fn a_magnet_streams_from_aria2c_alone() {
    magnet_streams_from(Client::Aria2, "p2p_aria2");
}

#[test]
fn a_torrent_streams_from_all_three_clients_at_once() {
    let f = fixture("p2p_all", 24 << 20, 16);
    let seeders: Vec<Process> = Client::ALL
        .iter()
        .enumerate()
        .map(|(i, c)| f.seed(*c, i as u64))
        .collect();
    let srv = Server::start(&p2p_env(&f.dir));
    add_torrent(srv.addr(), &f.torrent.bytes());
    // All three must be connected before the stream, so that the bytes come from all of them.
    hybrid::wait_for_status(
        srv.addr(),
        &f.torrent.info_hash,
        Duration::from_secs(60),
        |s| s["peers"]["connected"].as_u64() >= Some(3),
    )
    .unwrap_or_else(|s| panic!("not connected to all three seeders: {s}\n{}", srv.logs()));
    stream_whole(&srv, &f);
    // Each seeder uploaded part of it: read from their own counters where they print them.
    drop(seeders);
}

#[test]
fn a_cached_torrent_is_seeded_to_aria2c_and_libtorrent() {
    let f = fixture("p2p_seed", 8 << 20, 16);
    let env = p2p_env(&f.dir);
    common::server::import(&env, &f.torrent.file, &f.content);
    let srv = Server::start(&env);
    let aria2_dir = f.dir.sub("aria2-download");
    let lt_dir = f.dir.sub("lt-download");
    let aria2 = swarm::leecher(Client::Aria2, f.dir.path(), &f.torrent.file, &aria2_dir);
    let lt = swarm::leecher(Client::Libtorrent, f.dir.path(), &f.torrent.file, &lt_dir);
    swarm::wait_for_file(
        &aria2_dir.join("movie.mkv"),
        &f.source,
        Duration::from_secs(120),
        &aria2,
    );
    swarm::wait_for_file(
        &lt_dir.join("movie.mkv"),
        &f.source,
        Duration::from_secs(120),
        &lt,
    );
    let status = hybrid::status(srv.addr(), &f.torrent.info_hash);
    assert!(
        status["peers"]["uploaded"].as_u64() >= Some(f.source.len() as u64),
        "streme did not upload the file: {status}"
    );
}

#[test]
fn a_peer_sending_corrupt_blocks_is_banned_and_the_stream_stays_exact() {
    let f = fixture("p2p_evil", 6 << 20, 16);
    let pieces = (f.source.len() as u64).div_ceil(1 << 16) as u32;
    let evil = EvilPeer::start(&f.torrent.info_hash, pieces);
    stream_past_a_liar(&f, &evil);
}

/// A liar that sends one block of each piece, wrong by one byte, and leaves its other requests
/// unanswered never sends a piece alone: every piece it spoils is shared with the honest
/// seeder, which sends the blocks the liar sits on. A shared failure convicts neither; the
/// piece comes again from one peer, and that good copy convicts the liar alone.
#[test]
fn a_liar_hiding_in_shared_pieces_is_found_and_the_honest_seeder_is_kept() {
    let f = fixture("p2p_sneaky", 6 << 20, 16);
    let evil = EvilPeer::sneaky(&f.torrent.info_hash, f.source.clone(), 1 << 16, 1 << 14);
    stream_past_a_liar(&f, &evil);
}

/// Streams `f` from an honest aria2c seeder and `evil` (on 127.0.0.2, named first, in the
/// magnet itself): the stream is exact, the liar was asked and banned, the seeder was not.
fn stream_past_a_liar(f: &Fixture, evil: &EvilPeer) {
    let _seeder = f.seed(Client::Aria2, 0);
    let srv = Server::start(&p2p_env(&f.dir));
    let uri = magnet(
        &f.torrent.info_hash,
        &swarm::announce_url(&f.tracker),
        &[evil.addr.to_string()],
    );
    add_magnet_uri(&srv, &uri);
    add_torrent(srv.addr(), &f.torrent.bytes());
    stream_whole(&srv, f);
    let logs = srv.logs();
    assert!(
        evil.blocks_sent.load(Ordering::Relaxed) > 0,
        "the liar was never asked for a block\n{logs}"
    );
    assert!(
        logs.contains("banning 127.0.0.2"),
        "the liar was not banned:\n{logs}"
    );
    assert!(
        !logs.contains("banning 127.0.0.1"),
        "the honest seeder was banned with the liar:\n{logs}"
    );
}

#[test]
fn when_the_only_seeder_dies_http_finishes_without_a_long_stall() {
    let f = fixture("p2p_handover", 16 << 20, 16);
    let nginx = Nginx::start(&f.dir.sub("nginx"));
    nginx.publish(&format!("content/{}", f.torrent.info_hash), &f.content);
    // A slow seeder, so that it dies in the middle of the stream.
    let mut seeder = swarm::slow_seeder(f.dir.path(), &f.torrent.file, &f.data_dir(), "1M");
    swarm::wait_announced(f.tracker.port, &f.torrent.info_hash, 1);
    let p2p_timeout = Duration::from_millis(3000);
    let mut env = p2p_env(&f.dir);
    set(&mut env, "ENABLE_HTTP_FALLBACK", "true");
    set(
        &mut env,
        "HTTP_SOURCES",
        &nginx.url("/content/{hash}/{name}"),
    );
    let srv = Server::start(&env);
    add_torrent(srv.addr(), &f.torrent.bytes());

    let mut stream = std::net::TcpStream::connect(srv.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    use std::io::{Read, Write};
    write!(
        stream,
        "GET {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        stream_path(&f.torrent.info_hash)
    )
    .unwrap();
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut last = Instant::now();
    let mut longest = Duration::ZERO;
    let mut longest_at = 0;
    let mut killed = false;
    loop {
        let n = stream.read(&mut chunk).unwrap_or_else(|e| {
            panic!(
                "the stream stalled past 60 s ({e}) at {} bytes\n{}",
                got.len(),
                srv.logs()
            )
        });
        if n == 0 {
            break;
        }
        if last.elapsed() > longest {
            longest = last.elapsed();
            longest_at = got.len();
        }
        last = Instant::now();
        got.extend_from_slice(&chunk[..n]);
        if !killed && got.len() > 3 << 20 {
            seeder.kill();
            killed = true;
        }
    }
    assert!(killed, "the stream ended before the seeder could be killed");
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let body = &got[head_end..];
    assert_eq!(
        body.len(),
        f.source.len(),
        "the stream ended early\n{}",
        srv.logs()
    );
    assert_eq!(sha256_hex(body), sha256_hex(&f.source), "{}", srv.logs());
    assert!(
        longest <= p2p_timeout + Duration::from_secs(2),
        "the stream stalled {longest:?} at byte {longest_at} (P2P_TIMEOUT {p2p_timeout:?} + 2 s allowed)\n{}",
        srv.logs()
    );
    let logs = srv.logs();
    assert!(logs.contains("[Hybrid] P2P failed: P2P timeout"), "{logs}");
    assert!(
        logs.contains("[Hybrid] Falling back to HTTP download..."),
        "{logs}"
    );
    let status = hybrid::status(srv.addr(), &f.torrent.info_hash);
    assert!(status["bytesFetched"]["p2p"].as_u64() > Some(0), "{status}");
    assert!(
        status["bytesFetched"]["http"].as_u64() > Some(0),
        "{status}"
    );
}

#[test]
fn ffmpeg_seeks_into_a_video_streaming_over_p2p() {
    fixture::require_fixture_tools();
    let dir = TestDir::new("p2p_seek");
    let video = fixture::video(&dir.sub("data").join("video.mp4"), Media::Mp4IndexAtEnd);
    let (tracker, torrent) = tracked_torrent(&dir, &video, 15);
    let _seeder = swarm::slow_seeder(dir.path(), &torrent.file, &dir.sub("data"), "1M");
    swarm::wait_announced(tracker.port, &torrent.info_hash, 1);
    let srv = Server::start(&p2p_env(&dir));
    add_magnet_uri(
        &srv,
        &magnet(&torrent.info_hash, &swarm::announce_url(&tracker), &[]),
    );
    let url = srv.url(&stream_path(&torrent.info_hash));
    let frame = dir.path().join("frame.png");
    let out = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-ss",
            "7",
            "-i",
        ])
        .arg(&url)
        .args(["-frames:v", "1"])
        .arg(&frame)
        .output()
        .expect("ffmpeg (apt package ffmpeg)");
    assert!(
        out.status.success(),
        "ffmpeg failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        srv.logs()
    );
    assert!(
        Path::new(&frame).metadata().is_ok_and(|m| m.len() > 1000),
        "no frame decoded after the seek"
    );
    let status = hybrid::status(srv.addr(), &torrent.info_hash);
    assert!(status["bytesFetched"]["p2p"].as_u64() > Some(0), "{status}");
}

#[test]
fn a_stop_tells_the_tracker_and_the_swarm_forgets_us() {
    let f = fixture("p2p_stopped", 1 << 20, 16);
    let env = p2p_env(&f.dir);
    common::server::import(&env, &f.torrent.file, &f.content);
    let mut srv = Server::start(&env);
    // Seeding from the cache: streme announces `started` on its own.
    swarm::wait_announced(f.tracker.port, &f.torrent.info_hash, 1);
    let status = srv
        .signal_and_wait("TERM")
        .expect("streme did not stop within 10 s of SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", srv.logs());
    swarm::wait_count(f.tracker.port, &f.torrent.info_hash, |n| n == 0, "0");
}

/// PEX (BEP 11): streme knows one peer, a small test peer that has no piece and sends one
/// ut_pex message naming the seeder (aria2c); streme connects to the seeder it was told of
/// and the file comes from it. Neither streme nor the test peer asks a tracker.
#[test]
fn a_peer_known_only_through_pex_is_connected_and_used() {
    let f = fixture("p2p_pex", 6 << 20, 16);
    let seeder = f.seed(Client::Aria2, 0);
    let tipster = PexPeer::start(
        &f.torrent.info_hash,
        format!("127.0.0.1:{}", seeder.port).parse().unwrap(),
    );
    let srv = Server::start(&p2p_env(&f.dir));
    // Only the tipster's address, and no tracker: the metadata too comes from the seeder.
    let uri = format!(
        "magnet:?xt=urn:btih:{}&x.pe={}",
        f.torrent.info_hash, tipster.addr
    );
    add_magnet_uri(&srv, &uri);
    stream_whole(&srv, &f);
    let logs = srv.logs();
    let p2p_lines: Vec<&str> = logs.lines().filter(|l| l.contains("[P2P]")).collect();
    assert!(
        tipster.tips_sent.load(Ordering::Relaxed) > 0,
        "{}",
        p2p_lines.join("\n")
    );
    assert!(
        logs.contains("1 new peer address(es) from Pex"),
        "{}",
        p2p_lines.join("\n")
    );
    assert!(
        logs.contains(&format!("connected to 127.0.0.1:{}", seeder.port)),
        "{}",
        p2p_lines.join("\n")
    );
    assert!(
        !logs.contains("from Tracker"),
        "streme asked a tracker: {}",
        p2p_lines.join("\n")
    );
}
