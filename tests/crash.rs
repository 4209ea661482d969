//! Crash safety: `kill -9` an import mid-way, then a server on the same cache serves only
//! verified bytes (every byte it sends is compared with the source), refuses the pieces that
//! never made it with a clean error, and a second import completes the cache.

mod common;

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::fixture;
use common::http;
use common::server::{self, base_env, streme_command, Server};
use common::{file_bytes, sha256_hex, TestDir};

const FILE_BYTES: u64 = 100 * 1024 * 1024;
/// 1 MiB pieces: 100 of them, few enough to probe each one.
const PIECE_LOG2: u32 = 20;
const PIECE_LEN: u64 = 1 << PIECE_LOG2;
const PIECES: u64 = FILE_BYTES / PIECE_LEN;
/// The kill comes once this much has landed under CACHE_DIR: late enough that the store has
/// made a batch durable (it flushes every 64 MiB, `FLUSH_EVERY_BYTES`), early enough that the
/// import is still running. So the restart finds both durable pieces and a lost tail.
const KILL_AFTER_BYTES: u64 = 80 * 1024 * 1024;

/// What the server did with a request for one whole piece.
enum Answer {
    /// 206 with exactly the source bytes.
    Served,
    /// A clean refusal: an error status, or a connection cut before any byte.
    Refused,
}

fn probe_piece(addr: std::net::SocketAddr, path: &str, source: &[u8], piece: u64) -> Answer {
    let first = piece * PIECE_LEN;
    let last = (first + PIECE_LEN).min(source.len() as u64) - 1;
    let r = http::get(addr, path, &[&format!("Range: bytes={first}-{last}")]);
    assert!(
        r.elapsed < Duration::from_secs(30),
        "piece {piece} took {:?} to answer",
        r.elapsed
    );
    let expected = &source[first as usize..=last as usize];
    match r.status {
        206 => {
            // Whatever was sent must be the true bytes, even when cut short.
            assert!(
                r.body.len() <= expected.len(),
                "piece {piece}: more bytes than asked"
            );
            assert!(
                r.body == expected[..r.body.len()],
                "piece {piece}: WRONG BYTES served after a crash"
            );
            if r.complete {
                Answer::Served
            } else {
                assert!(
                    r.body.is_empty(),
                    "piece {piece}: a partial piece was served ({} bytes)",
                    r.body.len()
                );
                Answer::Refused
            }
        }
        503 => {
            assert!(
                !r.error_text().is_empty(),
                "piece {piece}: 503 without an error text"
            );
            Answer::Refused
        }
        _ => panic!("piece {piece}: unexpected answer {}", r.head()),
    }
}

#[test]
fn kill_9_during_import_then_restart_serves_only_verified_bytes() {
    fixture::require_fixture_tools();
    let dir = TestDir::new("crash_import");
    let data = dir.sub("data");
    let cache = dir.sub("cache");
    let file = fixture::random_file(&data.join("big.bin"), FILE_BYTES);
    let torrent = fixture::mktorrent(&file, &dir.path().join("big.torrent"), PIECE_LOG2);
    let env = base_env(&cache, 1000);

    let mut import = streme_command(&env)
        .args([
            "import",
            &torrent.file.display().to_string(),
            &data.display().to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start streme import");
    let started = Instant::now();
    loop {
        if let Some(status) = import.try_wait().expect("wait on import") {
            panic!(
                "the import ended ({status}) before {KILL_AFTER_BYTES} bytes were seen in the cache; \
                 the crash test needs it still running"
            );
        }
        if file_bytes(&cache) >= KILL_AFTER_BYTES {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the import wrote too little in 120 s"
        );
        thread::sleep(Duration::from_millis(1));
    }
    // Child::kill is SIGKILL on Unix: the `kill -9` of the promise, no chance to clean up.
    import.kill().expect("kill -9 the import");
    import.wait().expect("reap the import");

    let source = std::fs::read(&file).unwrap();
    let srv = Server::start(&env);
    // The metadata may or may not have reached the cache before the kill; adding the torrent
    // makes it known either way.
    let added = http::post(
        srv.addr(),
        "/api/torrents",
        "application/x-bittorrent",
        &torrent.bytes(),
    );
    assert!(
        matches!(added.status, 200 | 201),
        "{}\n{}",
        added.head(),
        added.text()
    );
    let path = format!("/stream/proxy/{}", torrent.info_hash);

    let served = AtomicU64::new(0);
    let next = AtomicU64::new(0);
    thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let piece = next.fetch_add(1, Ordering::Relaxed);
                if piece >= PIECES {
                    return;
                }
                if let Answer::Served = probe_piece(srv.addr(), &path, &source, piece) {
                    served.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    let served = served.into_inner();
    // Pieces verified since the last flush count as in flight and may be lost; the ones
    // flushed before the kill must be there, or the check of every served byte above would
    // have checked nothing.
    println!("after kill -9: {served}/{PIECES} pieces served");
    assert!(
        served > 0,
        "no piece survived a kill after {KILL_AFTER_BYTES} bytes, though the store flushes every 64 MiB"
    );
    assert!(
        served < PIECES,
        "every piece was served, so the kill did not interrupt the import"
    );
    http::assert_healthy(srv.addr(), "probing a crashed import");

    let cache_json = http::get(srv.addr(), "/api/cache", &[]).json();
    let entry = cache_json["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["infoHash"] == torrent.info_hash.as_str())
        .cloned();
    let verified = entry
        .as_ref()
        .and_then(|e| e["verifiedPieces"].as_u64())
        .unwrap_or(0);
    assert_eq!(
        verified, served,
        "the index disagrees with what is served: {cache_json}"
    );
    srv.stop();

    // A second import completes what the first could not.
    let imported = server::import(&env, &torrent.file, &data);
    assert_eq!((imported.verified, imported.total), (PIECES, PIECES));
    let srv = Server::start(&env);
    let r = http::get(srv.addr(), &path, &[]);
    assert_eq!(r.status, 200, "{}", r.head());
    assert!(r.complete);
    assert_eq!(sha256_hex(&r.body), sha256_hex(&source));
}
