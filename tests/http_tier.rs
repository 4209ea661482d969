//! The HTTP fallback tier against a real nginx on loopback: a bare magnet streams byte-exact
//! while it downloads, a multi-file torrent's edge pieces are fetched with their neighbours'
//! bytes, a web seed alone is enough, the P2P timeout is real, a disabled fallback fails
//! clearly, ffmpeg seeks into a file still downloading, and the disk quota holds while a file
//! larger than it streams.
//!
//! No test reaches past loopback: every source list names the test's own nginx.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::fixture::{self, Media};
use common::hybrid::{self, add_magnet, add_torrent, get_observed, http_bytes_fetched, hybrid_env};
use common::nginx::Nginx;
use common::server::Server;
use common::{http, run, sha256_hex, DuSampler, TestDir};

/// Far above what these tests cache, except where the quota is the point.
const ROOMY_QUOTA_MB: u64 = 200;

fn stream_path(info_hash: &str) -> String {
    format!("/stream/proxy/{info_hash}")
}

#[test]
fn a_bare_magnet_streams_byte_exact_while_it_downloads() {
    fixture::require_fixture_tools();
    let dir = TestDir::new("http_magnet");
    let nginx = Nginx::start(&dir.sub("nginx"));
    // 6 MiB through /slow/ (about 1 MB/s over 4 connections) takes seconds, while the first
    // 64 KiB piece takes a fraction of one: a stream that waited for the whole download would
    // see everything fetched at its first byte.
    let file = fixture::random_file(&dir.sub("data").join("movie.mkv"), 6 * 1024 * 1024);
    let torrent = fixture::mktorrent(&file, &dir.path().join("movie.torrent"), 16);
    let hash = torrent.info_hash.clone();
    nginx.publish_torrent(&torrent);
    nginx.publish(&format!("content/{hash}"), &file);
    let source = std::fs::read(&file).unwrap();

    let env = hybrid_env(
        &dir.sub("cache"),
        ROOMY_QUOTA_MB,
        &nginx.url("/torrents/{HASH}.torrent"),
        &nginx.url("/slow/content/{hash}/{name}"),
    );
    let srv = Server::start(&env);
    add_magnet(srv.addr(), &hash);
    let addr = srv.addr();
    let seen = get_observed(addr, &stream_path(&hash), &[], || {
        hybrid::status(addr, &hash)
    });
    let r = &seen.response;
    assert_eq!(r.status, 200, "{}\n{}", r.head(), r.text());
    assert!(
        r.complete,
        "the stream ended early: {} of {} bytes",
        r.body.len(),
        source.len()
    );
    assert_eq!(
        sha256_hex(&r.body),
        sha256_hex(&source),
        "streamed bytes differ from the source"
    );

    let at_first = seen.seen_at_first_byte.expect("a status at the first byte");
    println!(
        "status at the first byte ({:?}): {at_first}",
        seen.first_byte
    );
    assert!(
        http_bytes_fetched(&at_first) < source.len() as u64,
        "the whole file was fetched before the first byte went out: not streaming: {at_first}"
    );
    assert_eq!(at_first["state"], "downloading", "{at_first}");
    assert_eq!(at_first["workingTier"], "http", "{at_first}");

    // The .torrent came from nginx, by the upper-case hash, once.
    let fetched = nginx.requests_for(&format!("/torrents/{}.torrent", hash.to_ascii_uppercase()));
    assert!(
        fetched.iter().any(|l| l.starts_with("200 ")),
        "nginx served no .torrent: {fetched:?}"
    );
    assert!(!nginx
        .requests_for(&format!("/slow/content/{hash}/movie.mkv"))
        .is_empty());

    let done = hybrid::wait_for_status(addr, &hash, Duration::from_secs(60), |s| {
        s["state"] == "cached"
    })
    .unwrap_or_else(|s| panic!("the download never completed: {s}"));
    assert!(http_bytes_fetched(&done) >= source.len() as u64, "{done}");
    assert!(
        done["bytesServed"]["http"].as_u64().unwrap_or(0) > 0,
        "no bytes served via http: {done}"
    );
    let sources = done["sources"].as_array().expect("sources array");
    assert!(
        sources.iter().any(|s| s["source"]
            .as_str()
            .is_some_and(|u| u.contains(&nginx.addr().to_string()))
            && s["bytes"].as_u64().unwrap_or(0) > 0),
        "no source entry for nginx with bytes: {done}"
    );

    let logs = srv.logs();
    for needle in [
        "[Hybrid] P2P failed: P2P timeout",
        "[Hybrid] Falling back to HTTP download",
        "[Hybrid] Step 1: Downloading .torrent file",
        "[Hybrid] Progress: ",
    ] {
        assert!(
            logs.contains(needle),
            "no log line with {needle:?}:\n{logs}"
        );
    }
}

#[test]
fn a_multi_file_torrent_fetches_edge_pieces_with_their_neighbours_bytes() {
    fixture::require_fixture_tools();
    let dir = TestDir::new("http_multi");
    let nginx = Nginx::start(&dir.sub("nginx"));
    // Odd sizes and 32 KiB pieces: the video's first and last pieces hold bytes of the files
    // before and after it. Spaces in the names exercise {path}'s percent-encoding.
    let root = dir.sub("data").join("Show Name");
    std::fs::create_dir_all(root.join("extras")).unwrap();
    fixture::random_file(&root.join("1 intro.bin"), 100_003);
    let movie = fixture::random_file(&root.join("2 movie.mkv"), 1_000_037);
    fixture::random_file(&root.join("extras").join("3 notes.bin"), 70_001);
    let torrent = fixture::mktorrent(&root, &dir.path().join("show.torrent"), 15);
    let hash = torrent.info_hash.clone();
    nginx.publish(&format!("content/{hash}"), &root);
    let source = std::fs::read(&movie).unwrap();

    let env = hybrid_env(
        &dir.sub("cache"),
        ROOMY_QUOTA_MB,
        "",
        &nginx.url("/content/{hash}/{path}"),
    );
    let srv = Server::start(&env);
    add_torrent(srv.addr(), &torrent.bytes());
    let r = http::get(srv.addr(), &stream_path(&hash), &[]);
    assert_eq!(r.status, 200, "{}\n{}", r.head(), r.text());
    assert_eq!(r.body.len(), source.len());
    assert_eq!(
        sha256_hex(&r.body),
        sha256_hex(&source),
        "the middle file differs from the source"
    );

    // Its edge pieces could only be verified with the neighbours' bytes: the tier asked nginx
    // for them, as ranges of those files, at the right (encoded) paths.
    for neighbour in ["1%20intro.bin", "extras/3%20notes.bin"] {
        let asked = nginx.requests_for(&format!("/content/{hash}/Show%20Name/{neighbour}"));
        assert!(
            asked.iter().any(|l| l.starts_with("206 ")),
            "no ranged 206 request for the neighbour {neighbour}: {asked:?}\naccess log:\n{}",
            nginx.access_log()
        );
    }
}

#[test]
fn a_web_seed_alone_is_enough() {
    fixture::require_fixture_tools();
    let dir = TestDir::new("http_webseed");
    let nginx = Nginx::start(&dir.sub("nginx"));
    let file = fixture::random_file(&dir.sub("data").join("clip.mkv"), 2_000_003);
    // BEP 19: a url-list entry ending in '/' gets the torrent's name appended.
    let torrent = fixture::mktorrent_web_seed(
        &file,
        &dir.path().join("clip.torrent"),
        15,
        &nginx.url("/seed/"),
    );
    let hash = torrent.info_hash.clone();
    nginx.publish("seed", &file);
    let source = std::fs::read(&file).unwrap();

    // No TORRENT_SOURCES, no HTTP_SOURCES: only the web seed in the torrent.
    let env = hybrid_env(&dir.sub("cache"), ROOMY_QUOTA_MB, "", "");
    let srv = Server::start(&env);
    add_torrent(srv.addr(), &torrent.bytes());
    let r = http::get(srv.addr(), &stream_path(&hash), &[]);
    assert_eq!(r.status, 200, "{}\n{}", r.head(), r.text());
    assert_eq!(
        sha256_hex(&r.body),
        sha256_hex(&source),
        "bytes from the web seed differ"
    );
    assert!(
        nginx
            .requests_for("/seed/clip.mkv")
            .iter()
            .any(|l| l.starts_with("206 ")),
        "the web seed was not asked with Range:\n{}",
        nginx.access_log()
    );
    let status = hybrid::status(srv.addr(), &hash);
    let sources = status["sources"].as_array().expect("sources array");
    assert!(
        sources
            .iter()
            .any(|s| s["source"].as_str().is_some_and(|u| u.contains("/seed/"))),
        "the web seed is not listed among the sources: {status}"
    );
}

#[test]
fn the_first_byte_waits_for_the_p2p_timeout_and_not_much_more() {
    fixture::require_fixture_tools();
    let dir = TestDir::new("http_ttfb");
    let nginx = Nginx::start(&dir.sub("nginx"));
    let file = fixture::random_file(&dir.sub("data").join("movie.mkv"), 1_000_000);
    let torrent = fixture::mktorrent(&file, &dir.path().join("movie.torrent"), 15);
    let hash = torrent.info_hash.clone();
    nginx.publish(&format!("content/{hash}"), &file);
    let source = std::fs::read(&file).unwrap();

    let mut env = hybrid_env(
        &dir.sub("cache"),
        ROOMY_QUOTA_MB,
        "",
        &nginx.url("/content/{hash}/{name}"),
    );
    hybrid::set(&mut env, "P2P_TIMEOUT", "2000");
    let srv = Server::start(&env);
    add_torrent(srv.addr(), &torrent.bytes());
    let seen = get_observed(
        srv.addr(),
        &stream_path(&hash),
        &["Range: bytes=0-"],
        || serde_json::Value::Null,
    );
    let r = &seen.response;
    assert_eq!(r.status, 206, "{}\n{}", r.head(), r.text());
    assert_eq!(sha256_hex(&r.body), sha256_hex(&source));
    let ttfb = seen.first_byte.expect("a first byte");
    println!("time to first byte with P2P_TIMEOUT=2000: {ttfb:?}");
    // No P2P exists, so HTTP may start only when the timeout has really run out...
    assert!(
        ttfb >= Duration::from_millis(1900),
        "first byte after {ttfb:?}: the P2P timeout was skipped"
    );
    // ...and then promptly (loosely: 2 shared cores; the bench measures it exactly).
    assert!(
        ttfb < Duration::from_secs(10),
        "first byte only after {ttfb:?}"
    );
    assert!(
        srv.logs().contains("[Hybrid] P2P failed: P2P timeout"),
        "{}",
        srv.logs()
    );
}

#[test]
fn with_the_fallback_disabled_a_missing_piece_fails_clearly_and_the_server_stays_up() {
    fixture::require_fixture_tools();
    let dir = TestDir::new("http_disabled");
    let nginx = Nginx::start(&dir.sub("nginx"));
    let file = fixture::random_file(&dir.sub("data").join("movie.mkv"), 500_000);
    let torrent = fixture::mktorrent(&file, &dir.path().join("movie.torrent"), 15);
    let hash = torrent.info_hash.clone();
    nginx.publish(&format!("content/{hash}"), &file);

    // A working source is configured on purpose: the switch alone must keep it unused.
    let mut env = hybrid_env(
        &dir.sub("cache"),
        ROOMY_QUOTA_MB,
        "",
        &nginx.url("/content/{hash}/{name}"),
    );
    hybrid::set(&mut env, "ENABLE_HTTP_FALLBACK", "false");
    hybrid::set(&mut env, "P2P_TIMEOUT", "2000");
    let srv = Server::start(&env);
    add_torrent(srv.addr(), &torrent.bytes());
    let started = Instant::now();
    let r = http::get(srv.addr(), &stream_path(&hash), &[]);
    let took = started.elapsed();
    println!("answer after {took:?}: {} {}", r.head(), r.text());
    assert_eq!(r.status, 503, "{}\n{}", r.head(), r.text());
    assert!(
        r.error_text().contains("ENABLE_HTTP_FALLBACK"),
        "the error does not say the fallback is off: {}",
        r.text()
    );
    assert!(
        took >= Duration::from_millis(1900),
        "gave up after {took:?}, before P2P_TIMEOUT"
    );
    assert!(
        took < Duration::from_secs(10),
        "the request hung for {took:?}"
    );
    http::assert_healthy(srv.addr(), "a stream refused with the fallback off");
    assert!(
        nginx.requests_for("/content/").is_empty(),
        "the disabled tier fetched content:\n{}",
        nginx.access_log()
    );
}

#[test]
fn ffmpeg_seeks_into_a_file_that_is_still_downloading() {
    fixture::require_fixture_tools();
    let dir = TestDir::new("http_seek");
    let nginx = Nginx::start(&dir.sub("nginx"));
    let file = fixture::video(&dir.sub("data").join("movie.mp4"), Media::Mp4Faststart);
    let torrent = fixture::mktorrent(&file, &dir.path().join("movie.torrent"), 15);
    let hash = torrent.info_hash.clone();
    nginx.publish(&format!("content/{hash}"), &file);
    let len = std::fs::metadata(&file).unwrap().len();

    // /slower/: about 256 KB/s over 4 connections, so the ~3.5 MB file takes over 10 s.
    let env = hybrid_env(
        &dir.sub("cache"),
        ROOMY_QUOTA_MB,
        "",
        &nginx.url("/slower/content/{hash}/{name}"),
    );
    let srv = Server::start(&env);
    add_torrent(srv.addr(), &torrent.bytes());

    let expected = frame_at_5s(
        &file.display().to_string(),
        &dir.path().join("expected.rgb"),
    );
    let started = Instant::now();
    let got = frame_at_5s(&srv.url(&stream_path(&hash)), &dir.path().join("got.rgb"));
    let status = hybrid::status(srv.addr(), &hash);
    println!(
        "ffmpeg seek over the stream took {:?}; status then: {status}",
        started.elapsed()
    );
    assert!(!expected.is_empty());
    assert!(
        got == expected,
        "the frame at 5 s differs from the one decoded from the source"
    );
    assert!(
        http_bytes_fetched(&status) < len && status["state"] == "downloading",
        "the file was complete before ffmpeg finished: the seek did not happen mid-download: {status}"
    );
}

/// One decoded frame at 5 s of `input`, as raw RGB.
fn frame_at_5s(input: &str, out: &Path) -> Vec<u8> {
    run(Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-ss",
            "5",
            "-i",
        ])
        .arg(input)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24"])
        .arg(out));
    std::fs::read(out).expect("ffmpeg wrote no frame")
}

#[test]
fn the_quota_holds_while_a_larger_http_download_streams() {
    fixture::require_fixture_tools();
    const QUOTA_MB: u64 = 16;
    let dir = TestDir::new("http_quota");
    let nginx = Nginx::start(&dir.sub("nginx"));
    let file = fixture::random_file(&dir.sub("data").join("big.mkv"), 40 * 1024 * 1024);
    let torrent = fixture::mktorrent(&file, &dir.path().join("big.torrent"), 18);
    let hash = torrent.info_hash.clone();
    nginx.publish(&format!("content/{hash}"), &file);
    let source = std::fs::read(&file).unwrap();

    let cache = dir.sub("cache");
    let env = hybrid_env(&cache, QUOTA_MB, "", &nginx.url("/content/{hash}/{name}"));
    let srv = Server::start(&env);
    add_torrent(srv.addr(), &torrent.bytes());
    let sampler = DuSampler::start(&cache, Duration::from_millis(5));
    let r = http::get(srv.addr(), &stream_path(&hash), &[]);
    // Keep sampling a little: the background completion may still be writing.
    std::thread::sleep(Duration::from_secs(2));
    let samples = sampler.finish();
    println!("du samples: {}, max {} bytes", samples.count, samples.max);
    assert_eq!(r.status, 200, "{}\n{}", r.head(), r.text());
    assert!(
        r.complete,
        "the stream ended early: {} of {} bytes",
        r.body.len(),
        source.len()
    );
    assert_eq!(
        sha256_hex(&r.body),
        sha256_hex(&source),
        "streamed bytes differ from the source"
    );
    assert!(
        samples.count >= 20,
        "too few du samples ({})",
        samples.count
    );
    assert!(
        samples.max <= QUOTA_MB * 1024 * 1024,
        "du saw {} bytes under CACHE_DIR, over the {QUOTA_MB} MiB quota",
        samples.max
    );
}
