//! The HTTP tier against sources that misbehave on purpose ([`common::fault_server`]): a
//! corrupt piece is caught by its SHA-1 and its source dropped, a cut body resumes, 503 with
//! Retry-After is waited out, a source that ignores Range still works, and a .torrent source
//! that answers with an HTML page or the wrong torrent is passed over.
//!
//! Whatever the fault, the bytes streamed must equal the source's: a corrupt byte is never
//! served.

mod common;

use std::time::{Duration, Instant};

use common::fault_server::{Fault, FaultServer, Hit};
use common::fixture::{self, Torrent};
use common::hybrid::{self, add_magnet, add_torrent, hybrid_env};
use common::server::Server;
use common::{http, sha256_hex, TestDir};

const QUOTA_MB: u64 = 200;
const PIECE_LOG2: u32 = 15;
const PIECE_LEN: u64 = 1 << PIECE_LOG2;
/// 46 pieces of 32 KiB, the last one short.
const FILE_BYTES: u64 = 1_500_001;

/// A random `movie.mkv` and its torrent.
struct Movie {
    torrent: Torrent,
    bytes: Vec<u8>,
}

impl Movie {
    fn make(dir: &TestDir, name: &str) -> Movie {
        fixture::require_fixture_tools();
        let data = dir.sub(&format!("data-{name}"));
        let file = fixture::random_file(&data.join("movie.mkv"), FILE_BYTES);
        let torrent = fixture::mktorrent(
            &file,
            &dir.path().join(format!("{name}.torrent")),
            PIECE_LOG2,
        );
        Movie {
            torrent,
            bytes: std::fs::read(&file).unwrap(),
        }
    }

    fn hash(&self) -> &str {
        &self.torrent.info_hash
    }

    /// Where the fault servers serve its content: `/content/<hash>/movie.mkv`.
    fn content_path(&self) -> String {
        format!("/content/{}/movie.mkv", self.hash())
    }
}

/// The content template every fault server is named by.
const CONTENT_TEMPLATE: &str = "/content/{hash}/{name}";

/// Streams the movie whole and checks it byte for byte.
fn stream_and_check(srv: &Server, movie: &Movie) {
    let r = http::get(srv.addr(), &format!("/stream/proxy/{}", movie.hash()), &[]);
    assert_eq!(r.status, 200, "{}\n{}", r.head(), r.text());
    assert!(
        r.complete,
        "the stream ended early: {} of {} bytes",
        r.body.len(),
        movie.bytes.len()
    );
    assert_eq!(
        sha256_hex(&r.body),
        sha256_hex(&movie.bytes),
        "streamed bytes differ from the source"
    );
}

/// `bytes=a-b` / `bytes=a-` of a hit → `(a, b)` (b = None when open).
fn range_of(hit: &Hit) -> Option<(u64, Option<u64>)> {
    let spec = hit.range.as_deref()?.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()))
}

fn covers(hit: &Hit, offset: u64) -> bool {
    match range_of(hit) {
        Some((a, b)) => a <= offset && b.is_none_or(|b| offset <= b),
        None => true,
    }
}

#[test]
fn a_corrupt_piece_drops_its_source_and_the_next_source_gives_correct_bytes() {
    let dir = TestDir::new("fault_corrupt");
    let movie = Movie::make(&dir, "movie");
    // Piece 1 (bytes 32768..65535) is wrong in 16 bytes on the first source only.
    let corrupt = (PIECE_LEN + 7_000, PIECE_LEN + 7_015);
    let bad = FaultServer::start();
    bad.route(
        &movie.content_path(),
        movie.bytes.clone(),
        "video/x-matroska",
        Fault::Corrupt {
            first: corrupt.0,
            last: corrupt.1,
        },
    );
    let good = FaultServer::start();
    good.route(
        &movie.content_path(),
        movie.bytes.clone(),
        "video/x-matroska",
        Fault::None,
    );

    let sources = format!(
        "{},{}",
        bad.url(CONTENT_TEMPLATE),
        good.url(CONTENT_TEMPLATE)
    );
    let env = hybrid_env(&dir.sub("cache"), QUOTA_MB, "", &sources);
    let srv = Server::start(&env);
    add_torrent(srv.addr(), &movie.torrent.bytes());
    stream_and_check(&srv, &movie);

    assert!(
        bad.hits()
            .iter()
            .any(|h| h.status / 100 == 2 && covers(h, corrupt.0)),
        "the first source was never asked for piece 1, so its corruption was never met: {:?}",
        bad.hits()
    );
    assert!(
        srv.wait_for_log("[Hybrid] Dropping source", Duration::from_secs(5)),
        "no `Dropping source` log line:\n{}",
        srv.logs()
    );
    let logs = srv.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("[Hybrid] Dropping source"))
        .unwrap();
    assert!(
        line.contains(&bad.addr().to_string())
            && line.contains("piece 1 ")
            && line.contains("SHA-1"),
        "the drop line does not name the source, piece 1 and the SHA-1 check: {line}"
    );
    assert!(
        !logs.lines().any(|l| l.contains("[Hybrid] Dropping source") && l.contains(&good.addr().to_string())),
        "the good source was dropped:\n{logs}"
    );

    let status = hybrid::status(srv.addr(), movie.hash());
    let list = status["sources"].as_array().expect("sources array");
    let entry = |server: &FaultServer| {
        list.iter()
            .find(|s| {
                s["source"]
                    .as_str()
                    .is_some_and(|u| u.contains(&server.addr().to_string()))
            })
            .unwrap_or_else(|| panic!("no source entry for {}: {status}", server.addr()))
            .clone()
    };
    let (bad_entry, good_entry) = (entry(&bad), entry(&good));
    assert!(
        bad_entry["dropped"].is_string(),
        "the corrupt source is not marked dropped: {bad_entry}"
    );
    assert!(
        bad_entry["failures"].as_u64().unwrap_or(0) >= 1,
        "{bad_entry}"
    );
    assert!(
        good_entry["dropped"].is_null(),
        "the good source is marked dropped: {good_entry}"
    );
    assert!(
        good_entry["bytes"].as_u64().unwrap_or(0) > 0,
        "{good_entry}"
    );
}

#[test]
fn a_body_cut_in_the_middle_resumes() {
    let dir = TestDir::new("fault_cut");
    let movie = Movie::make(&dir, "movie");
    let src = FaultServer::start();
    src.route(
        &movie.content_path(),
        movie.bytes.clone(),
        "video/x-matroska",
        Fault::CutHalf { times: 2 },
    );
    let env = hybrid_env(&dir.sub("cache"), QUOTA_MB, "", &src.url(CONTENT_TEMPLATE));
    let srv = Server::start(&env);
    add_torrent(srv.addr(), &movie.torrent.bytes());
    stream_and_check(&srv, &movie);

    let hits = src.hits_for(&movie.content_path());
    // The cut bodies are those that sent less than their range asked for. Hits are
    // recorded as connections finish, so list order is not the order of the cuts.
    let was_cut = |h: &Hit| match range_of(h) {
        Some((a, Some(b))) => h.sent < b - a + 1,
        _ => false,
    };
    let cuts: Vec<&Hit> = hits
        .iter()
        .filter(|h| h.status / 100 == 2 && was_cut(h))
        .collect();
    assert_eq!(cuts.len(), 2, "not exactly two bodies were cut: {hits:?}");
    // Each cut left bytes missing at `start + sent`: a later request fetched them again.
    for cut in cuts {
        let (start, _) = range_of(cut).unwrap_or((0, None));
        let missing = start + cut.sent;
        assert!(
            hits.iter()
                .any(|h| h.at > cut.at && h.status / 100 == 2 && covers(h, missing)),
            "nothing re-fetched byte {missing} after the cut {cut:?}: {hits:?}"
        );
    }
}

#[test]
fn a_503_with_retry_after_is_waited_out_then_the_download_succeeds() {
    let dir = TestDir::new("fault_503");
    let movie = Movie::make(&dir, "movie");
    let src = FaultServer::start();
    src.route(
        &movie.content_path(),
        movie.bytes.clone(),
        "video/x-matroska",
        Fault::Busy {
            times: 2,
            retry_after_secs: 1,
        },
    );
    let mut env = hybrid_env(&dir.sub("cache"), QUOTA_MB, "", &src.url(CONTENT_TEMPLATE));
    // One connection, so the requests are in sequence and each wait can be seen.
    hybrid::set(&mut env, "HTTP_CONNECTIONS", "1");
    let srv = Server::start(&env);
    add_torrent(srv.addr(), &movie.torrent.bytes());
    stream_and_check(&srv, &movie);

    let hits = src.hits_for(&movie.content_path());
    let busy: Vec<&Hit> = hits.iter().filter(|h| h.status == 503).collect();
    assert_eq!(busy.len(), 2, "{hits:?}");
    for b in busy {
        let next = hits
            .iter()
            .find(|h| h.at > b.at)
            .unwrap_or_else(|| panic!("no request after the 503 at {:?}: {hits:?}", b.at));
        assert!(
            next.at - b.at >= Duration::from_millis(900),
            "asked again {:?} after a 503 with Retry-After: 1: {hits:?}",
            next.at - b.at
        );
    }
}

#[test]
fn a_source_that_ignores_range_is_read_in_order_and_still_verified() {
    let dir = TestDir::new("fault_norange");
    let movie = Movie::make(&dir, "movie");
    let src = FaultServer::start();
    src.route(
        &movie.content_path(),
        movie.bytes.clone(),
        "video/x-matroska",
        Fault::IgnoreRange,
    );
    let env = hybrid_env(&dir.sub("cache"), QUOTA_MB, "", &src.url(CONTENT_TEMPLATE));
    let srv = Server::start(&env);
    add_torrent(srv.addr(), &movie.torrent.bytes());
    stream_and_check(&srv, &movie);
    let hits = src.hits_for(&movie.content_path());
    assert!(
        !hits.is_empty() && hits.iter().all(|h| h.status != 206),
        "{hits:?}"
    );
}

/// A fault server with the movie's content, its .torrent at `/torrents/<hash>.torrent`, and
/// whatever `decoy` puts at `/decoy/<HASH>.torrent`.
fn torrent_sources_with_decoy(movie: &Movie, decoy: Vec<u8>, decoy_type: &str) -> FaultServer {
    let src = FaultServer::start();
    src.route(
        &movie.content_path(),
        movie.bytes.clone(),
        "video/x-matroska",
        Fault::None,
    );
    src.route(
        &format!("/torrents/{}.torrent", movie.hash()),
        movie.torrent.bytes(),
        "application/x-bittorrent",
        Fault::None,
    );
    src.route(
        &format!("/decoy/{}.torrent", movie.hash().to_ascii_uppercase()),
        decoy,
        decoy_type,
        Fault::None,
    );
    src
}

/// Adds the bare magnet with the decoy source first and the good one second, and streams.
fn magnet_past_a_decoy(dir: &TestDir, movie: &Movie, src: &FaultServer) {
    let sources = format!(
        "{},{}",
        src.url("/decoy/{HASH}.torrent"),
        src.url("/torrents/{hash}.torrent")
    );
    let env = hybrid_env(
        &dir.sub("cache"),
        QUOTA_MB,
        &sources,
        &src.url(CONTENT_TEMPLATE),
    );
    let srv = Server::start(&env);
    add_magnet(srv.addr(), movie.hash());
    stream_and_check(&srv, movie);
    let decoy = src.hits_for(&format!(
        "/decoy/{}.torrent",
        movie.hash().to_ascii_uppercase()
    ));
    let good = src.hits_for(&format!("/torrents/{}.torrent", movie.hash()));
    assert!(
        !decoy.is_empty(),
        "the first .torrent source was never tried: {:?}",
        src.hits()
    );
    assert!(
        !good.is_empty(),
        "the second .torrent source was never tried: {:?}",
        src.hits()
    );
    assert!(
        decoy[0].at <= good[0].at,
        "the sources were not tried in order: {:?}",
        src.hits()
    );
}

#[test]
fn an_html_page_instead_of_a_torrent_is_passed_over() {
    let dir = TestDir::new("fault_html");
    let movie = Movie::make(&dir, "movie");
    let page =
        b"<!DOCTYPE html><html><body><h1>Please solve this captcha</h1></body></html>".to_vec();
    let src = torrent_sources_with_decoy(&movie, page, "text/html");
    magnet_past_a_decoy(&dir, &movie, &src);
}

#[test]
fn a_torrent_with_the_wrong_info_hash_is_passed_over() {
    let dir = TestDir::new("fault_wronghash");
    let movie = Movie::make(&dir, "movie");
    let other = Movie::make(&dir, "other");
    let src = torrent_sources_with_decoy(&movie, other.torrent.bytes(), "application/x-bittorrent");
    magnet_past_a_decoy(&dir, &movie, &src);
}

#[test]
fn only_a_torrent_with_the_wrong_info_hash_fails_clearly() {
    let dir = TestDir::new("fault_wrongonly");
    let movie = Movie::make(&dir, "movie");
    let other = Movie::make(&dir, "other");
    let src = torrent_sources_with_decoy(&movie, other.torrent.bytes(), "application/x-bittorrent");
    let mut env = hybrid_env(
        &dir.sub("cache"),
        QUOTA_MB,
        &src.url("/decoy/{HASH}.torrent"),
        &src.url(CONTENT_TEMPLATE),
    );
    hybrid::set(&mut env, "TORRENT_TIMEOUT", "5000");
    let srv = Server::start(&env);
    add_magnet(srv.addr(), movie.hash());
    let started = Instant::now();
    let r = http::get(srv.addr(), &format!("/stream/proxy/{}", movie.hash()), &[]);
    let took = started.elapsed();
    println!("answer after {took:?}: {} {}", r.head(), r.text());
    assert!(
        r.status >= 400,
        "the wrong torrent was streamed: {}",
        r.head()
    );
    assert!(
        took < Duration::from_secs(30),
        "the request waited {took:?}"
    );
    let status = hybrid::wait_for_status(srv.addr(), movie.hash(), Duration::from_secs(20), |s| {
        s["state"] == "failed"
    })
    .unwrap_or_else(|s| panic!("the torrent never failed: {s}"));
    let error = status["error"].as_str().unwrap_or_default();
    assert!(
        !error.is_empty(),
        "a failed torrent without an error: {status}"
    );
    assert!(
        src.hits_for(&movie.content_path()).is_empty(),
        "content was fetched for a torrent whose metadata never matched: {:?}",
        src.hits()
    );
    http::assert_healthy(srv.addr(), "a failed metadata fetch");
}
