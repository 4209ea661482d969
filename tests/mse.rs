//! MSE/PE against real libtorrent on loopback: a seeder that forces encryption streams a
//! magnet byte-exact, a leecher that forces it downloads a cached torrent from streme (under
//! `ENCRYPTION=prefer` and `off`), `ENCRYPTION=require` refuses a plaintext-only peer and says
//! why, and `prefer` falls back to plaintext for that peer.
//!
//! libtorrent's `out_enc_policy`/`in_enc_policy` are `pe_forced` (or `pe_disabled` for the
//! plaintext-only peer) and `allowed_enc_level` `pe_rc4`, so a connection with it is RC4 or
//! nothing; its per-peer lines (tests/peers/lt_tuned_peer.py) show `enc=rc4` and the bytes
//! moved, so the test checks the encryption on the other side too, not only streme's log.
//! Every streme has TRACKERS, DHT and LSD off but the test's own opentracker.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::hybrid::{self, get_observed, set};
use common::server::{base_env, Server};
use common::swarm::{self, Process};
use common::{fixture, http, sha256_hex, TestDir};
use serde_json::json;

const QUOTA_MB: u64 = 200;

/// An RC4-only libtorrent. Its upload is capped at 4 MB/s (a torrent limit, which binds local
/// peers): uncapped, a fast machine moves the file between two of its 50 ms peer polls, and its
/// peer lines, which the RC4 check reads, would show no bytes moved.
fn forced() -> serde_json::Value {
    json!({
        "torrent_upload_limit": 4_000_000,
        "out_enc_policy": "pe_forced",
        "in_enc_policy": "pe_forced",
        "allowed_enc_level": "pe_rc4",
        "prefer_rc4": true,
    })
}

fn plaintext_only() -> serde_json::Value {
    json!({
        "out_enc_policy": "pe_disabled",
        "in_enc_policy": "pe_disabled",
    })
}

struct Fixture {
    dir: TestDir,
    tracker: Process,
    content: PathBuf,
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

impl Fixture {
    fn env(&self, encryption: &str) -> Vec<(String, String)> {
        let mut env = base_env(&self.dir.sub("cache"), QUOTA_MB);
        set(&mut env, "P2P_TIMEOUT", "5000");
        set(&mut env, "TORRENT_TIMEOUT", "30000");
        set(&mut env, "TORRENT_MAX_RETRIES", "1");
        set(&mut env, "PIECE_TIMEOUT", "60000");
        set(&mut env, "ENCRYPTION", encryption);
        env
    }

    fn seeder(&self, settings: serde_json::Value) -> Process {
        swarm::tuned_libtorrent(
            self.dir.path(),
            true,
            &self.torrent.file,
            self.content.parent().unwrap(),
            &settings,
        )
    }

    /// A magnet naming only the seeder (no tracker): streme dials it, and gets the metadata
    /// from it over ut_metadata too.
    fn magnet_to(&self, seeder: &Process) -> String {
        format!(
            "magnet:?xt=urn:btih:{}&x.pe=127.0.0.1:{}",
            self.torrent.info_hash, seeder.port
        )
    }
}

fn add_magnet(srv: &Server, uri: &str) {
    let r = http::post_json(srv.addr(), "/api/torrents", &json!({ "magnetUri": uri }));
    assert!((200..300).contains(&r.status), "adding {uri}: {}", r.text());
}

/// What libtorrent's log says: the torrent's payload bytes `up=`/`down=` (its status lines,
/// the last count), and the `enc=` of every peer line. The per-peer lines are sampled once a
/// second, so a short connection may not show its last bytes; the totals are exact.
fn lt_total(log: &str, field: &str) -> u64 {
    let prefix = format!("{field}=");
    log.lines()
        .filter(|l| l.starts_with("seed ") || l.starts_with("leech "))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix(prefix.as_str()))
                .and_then(|n| n.parse::<u64>().ok())
        })
        .max()
        .unwrap_or(0)
}

/// The `enc=` of the peers that moved payload (a peer still in its handshake shows
/// `enc=none` until the MSE exchange ends).
fn lt_peer_encs(log: &str) -> std::collections::BTreeSet<String> {
    log.lines()
        .filter(|l| l.starts_with("peer "))
        .filter(|l| !(l.contains(" up=0 ") && l.ends_with(" down=0")))
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("enc=")))
        .map(str::to_string)
        .collect()
}

/// libtorrent moved `len` bytes (`field` of its totals), and every peer it moved them with
/// was RC4.
fn assert_lt_moved_over_rc4(p: &Process, field: &str, len: u64) {
    let ok = wait_log(p, Duration::from_secs(10), |log| {
        lt_total(log, field) >= len
    });
    let log = p.log_text();
    assert!(ok, "libtorrent's {field}= never reached {len}:\n{log}");
    let encs = lt_peer_encs(&log);
    assert!(
        encs.len() == 1 && encs.contains("enc=rc4"),
        "libtorrent's peers were {encs:?}, not all RC4:\n{log}"
    );
}

/// Waits until `pred` holds on the client's log, or `within` passes.
fn wait_log(p: &Process, within: Duration, pred: impl Fn(&str) -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if pred(&p.log_text()) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    pred(&p.log_text())
}

#[test]
fn a_magnet_streams_from_a_libtorrent_seeder_that_forces_encryption() {
    let f = fixture("mse_seed", 6 << 20);
    let seeder = f.seeder(forced());
    let srv = Server::start(&f.env("prefer"));
    add_magnet(&srv, &f.magnet_to(&seeder));
    hybrid::assert_streams_byte_exact(&srv, &f.torrent.info_hash, &f.source);
    assert!(
        srv.logs().contains("MSE established (rc4)"),
        "streme did not log an RC4 connection:\n{}",
        srv.logs()
    );
    // The seeder's side: it uploaded the file, over RC4 connections only.
    assert_lt_moved_over_rc4(&seeder, "up", f.source.len() as u64);
}

/// A leecher forcing RC4 finds streme through the tracker and downloads the cached torrent.
fn encrypted_leecher_downloads_from(encryption: &str, name: &str) {
    let f = fixture(name, 6 << 20);
    let env = f.env(encryption);
    common::server::import(&env, &f.torrent.file, &f.content);
    let srv = Server::start(&env);
    swarm::wait_announced(f.tracker.port, &f.torrent.info_hash, 1);
    let into = f.dir.sub("lt-download");
    // Capped at 2 MB/s, so the 6 MiB take about 3 s: uncapped, streme delivered them within
    // one 50 ms poll of libtorrent's peer list, and the list never showed the RC4 peer moving.
    let mut settings = forced();
    settings["torrent_download_limit"] = json!(2_000_000);
    let leecher = swarm::tuned_libtorrent(f.dir.path(), false, &f.torrent.file, &into, &settings);
    swarm::wait_for_file(
        &into.join("movie.mkv"),
        &f.source,
        Duration::from_secs(120),
        &leecher,
    );
    let len = f.source.len() as u64;
    assert_lt_moved_over_rc4(&leecher, "down", len);
    let status = hybrid::status(srv.addr(), &f.torrent.info_hash);
    assert!(
        status["peers"]["uploaded"].as_u64() >= Some(len),
        "streme did not upload the file: {status}\n{}",
        srv.logs()
    );
    assert!(
        srv.logs().contains("MSE established (rc4)"),
        "{}",
        srv.logs()
    );
}

#[test]
fn a_leecher_that_forces_encryption_downloads_a_cached_torrent() {
    encrypted_leecher_downloads_from("prefer", "mse_leech");
}

#[test]
fn encryption_off_still_answers_an_encrypted_leecher() {
    encrypted_leecher_downloads_from("off", "mse_leech_off");
}

#[test]
fn require_refuses_a_plaintext_only_peer_and_says_why() {
    let f = fixture("mse_require", 2 << 20);
    let seeder = f.seeder(plaintext_only());
    let srv = Server::start(&f.env("require"));
    // Both ways: streme dials the seeder (x.pe), and the seeder dials streme (the tracker).
    let uri = format!(
        "{}&tr={}",
        f.magnet_to(&seeder),
        swarm::announce_url(&f.tracker)
            .replace(':', "%3A")
            .replace('/', "%2F")
    );
    add_magnet(&srv, &uri);
    let outgoing = "no plaintext fallback because ENCRYPTION=require";
    let incoming = "a plaintext handshake, refused because ENCRYPTION=require";
    assert!(
        srv.wait_for_log(outgoing, Duration::from_secs(30)),
        "no refusal of the dial in streme's log:\n{}",
        srv.logs()
    );
    assert!(
        srv.wait_for_log(incoming, Duration::from_secs(60)),
        "no refusal of the seeder's own connection in streme's log:\n{}",
        srv.logs()
    );
    let status = hybrid::status(srv.addr(), &f.torrent.info_hash);
    assert_eq!(
        status["bytesFetched"]["p2p"].as_u64().unwrap_or(0),
        0,
        "bytes came from a refused peer: {status}"
    );
    assert_eq!(
        lt_total(&seeder.log_text(), "up"),
        0,
        "the plaintext seeder uploaded to us:\n{}",
        seeder.log_text()
    );
}

#[test]
fn prefer_falls_back_to_plaintext_for_a_plaintext_only_seeder() {
    let f = fixture("mse_fallback", 2 << 20);
    let seeder = f.seeder(plaintext_only());
    let srv = Server::start(&f.env("prefer"));
    add_magnet(&srv, &f.magnet_to(&seeder));
    let path = format!("/stream/proxy/{}", f.torrent.info_hash);
    let r = std::panic::catch_unwind(|| {
        get_observed(srv.addr(), &path, &[], || serde_json::Value::Null)
    })
    .unwrap_or_else(|_| panic!("the stream failed; streme's log:\n{}", srv.logs()))
    .response;
    assert_eq!(r.status, 200, "{}\n{}", r.head(), srv.logs());
    assert_eq!(sha256_hex(&r.body), sha256_hex(&f.source), "stream differs");
    assert!(
        srv.logs().contains("trying plaintext"),
        "no fallback in streme's log:\n{}",
        srv.logs()
    );
}
