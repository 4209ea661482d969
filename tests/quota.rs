//! The quota is a ceiling: with `CACHE_MAX_DISK_MB=3`, imports totalling far more churn
//! through the cache while a background thread samples `du -sB1 CACHE_DIR` every few
//! milliseconds, and no sample may exceed the quota. The server then reports the same.

mod common;

use std::time::Duration;

use common::fixture;
use common::http;
use common::server::{self, base_env, Server};
use common::{sha256_hex, DuSampler, TestDir};

const QUOTA_MB: u64 = 3;
/// Each torrent fits alone (so each import succeeds) but sixteen of them are over 5× the
/// quota.
const TORRENT_BYTES: u64 = 1_000_000;
const TORRENTS: usize = 16;
/// One torrent larger than the whole quota: whatever the import answers, the ceiling holds.
const OVERSIZED_BYTES: u64 = 5_000_000;

/// The quota in bytes as the server reports it, checked to be a reading of `QUOTA_MB`.
fn reported_quota(env: &[(String, String)]) -> u64 {
    let srv = Server::start(env);
    let quota = http::get(srv.addr(), "/api/cache", &[]).json()["quotaBytes"]
        .as_u64()
        .expect("quotaBytes");
    assert!(
        quota == QUOTA_MB * 1_000_000 || quota == QUOTA_MB * 1024 * 1024,
        "quotaBytes {quota} for CACHE_MAX_DISK_MB={QUOTA_MB}"
    );
    srv.stop();
    quota
}

#[test]
fn quota_holds_under_du_while_imports_churn_past_it() {
    fixture::require_fixture_tools();
    let dir = TestDir::new("quota_churn");
    let cache = dir.sub("cache");
    let env = base_env(&cache, QUOTA_MB);
    let quota = reported_quota(&env);

    let data = dir.sub("data");
    let mut torrents = Vec::new();
    let big = fixture::random_file(&data.join("oversized.bin"), OVERSIZED_BYTES);
    let big = fixture::mktorrent(&big, &dir.path().join("oversized.torrent"), 15);
    for i in 0..TORRENTS {
        let file = fixture::random_file(&data.join(format!("part{i}.bin")), TORRENT_BYTES);
        torrents.push((
            fixture::mktorrent(&file, &dir.path().join(format!("part{i}.torrent")), 15),
            file,
        ));
    }

    let sampler = DuSampler::start(&cache, Duration::from_millis(2));
    // The oversized one first, so the last small import is the most recently used entry.
    let oversized = server::streme(
        &env,
        &[
            "import",
            &big.file.display().to_string(),
            &data.display().to_string(),
        ],
    );
    println!("oversized import: {}", oversized.describe());
    for (torrent, _) in &torrents {
        let imported = server::import(&env, &torrent.file, &data);
        assert_eq!(imported.verified, imported.total, "{imported:?}");
    }

    // Streaming the last import while sampling: reading must not push the cache over either.
    let srv = Server::start(&env);
    let (last, last_file) = torrents.last().unwrap();
    let r = http::get(
        srv.addr(),
        &format!("/stream/proxy/{}", last.info_hash),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.head());
    assert_eq!(
        sha256_hex(&r.body),
        sha256_hex(&std::fs::read(last_file).unwrap()),
        "the newest import is served whole"
    );
    let cache_json = http::get(srv.addr(), "/api/cache", &[]).json();
    let samples = sampler.finish();

    println!(
        "du samples: {}, max {} bytes, quota {quota}",
        samples.count, samples.max
    );
    // Each sample is one `du` process, a few ms apiece: even a fast release run gets dozens.
    assert!(
        samples.count >= 20,
        "too few du samples ({}) to watch the run",
        samples.count
    );
    assert!(
        samples.max <= quota,
        "du saw {} bytes under CACHE_DIR, over the {quota}-byte quota",
        samples.max
    );
    let used = cache_json["usedBytes"].as_u64().expect("usedBytes");
    assert!(
        used <= quota,
        "usedBytes {used} over quotaBytes {quota}: {cache_json}"
    );
    assert_eq!(cache_json["quotaBytes"].as_u64(), Some(quota));
    let entries = cache_json["entries"].as_array().expect("entries");
    let held: u64 = entries.iter().filter_map(|e| e["bytes"].as_u64()).sum();
    assert!(
        held <= quota,
        "entries hold {held} bytes, over the quota: {cache_json}"
    );
}
