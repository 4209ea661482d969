//! A cache directory on a disk smaller than the quota (issue 12): the test
//! mounts a 40 MB tmpfs of its own, sets `CACHE_MAX_DISK_MB` fifty times
//! above it, and streams a file several times the disk's size from the HTTP
//! tier (a real nginx on loopback). Before the fix the stream ended after
//! ~41 MB, when writes failed with ENOSPC while evictable space was there.
//!
//! The test needs root (or CAP_SYS_ADMIN) for `mount`; without it, it fails
//! and says so: a skipped test would prove nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::fixture;
use common::hybrid::{add_torrent, hybrid_env};
use common::nginx::Nginx;
use common::server::Server;
use common::{http, sha256_hex, TestDir};

const DISK_MB: u64 = 40;
/// Far above the disk: only the disk can be the ceiling.
const QUOTA_MB: u64 = 2000;

/// A tmpfs mounted on a directory the test made; unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, mb: u64) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(at)
            .output()
            .unwrap_or_else(|e| panic!("mount (util-linux) must be installed: {e}"));
        assert!(
            out.status.success(),
            "cannot mount a {mb} MB tmpfs on {} (the test needs root): {}",
            at.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: the server may still be exiting with files open.
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_stream_several_times_a_small_disk_completes_and_the_server_stays_up() {
    fixture::require_fixture_tools();
    let dir = TestDir::new("disk_small");
    let nginx = Nginx::start(&dir.sub("nginx"));
    let size = 3 * DISK_MB * 1024 * 1024 + 12345;
    let file = fixture::random_file(&dir.sub("data").join("big.mkv"), size);
    let torrent = fixture::mktorrent(&file, &dir.path().join("big.torrent"), 18);
    let hash = torrent.info_hash.clone();
    nginx.publish(&format!("content/{hash}"), &file);
    let source = std::fs::read(&file).unwrap();

    let disk = Tmpfs::mount(&dir.path().join("disk"), DISK_MB);
    let cache = disk.0.join("cache");
    let env = hybrid_env(&cache, QUOTA_MB, "", &nginx.url("/content/{hash}/{name}"));
    let srv = Server::start(&env);
    add_torrent(srv.addr(), &torrent.bytes());

    let r = http::get(srv.addr(), &format!("/stream/proxy/{hash}"), &[]);
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

    // The stream comes first: a check of the API before it would hide a stream that breaks.
    let shown = http::get(srv.addr(), "/api/cache", &[]).json();
    assert_eq!(shown["ceilingSetBy"], "disk", "{shown}");
    let ceiling = shown["ceilingBytes"].as_u64().expect("ceilingBytes");
    assert!(
        ceiling < DISK_MB * 1024 * 1024 && ceiling > DISK_MB * 1024 * 1024 / 2,
        "ceiling {ceiling} for a {DISK_MB} MB disk"
    );
    assert_eq!(shown["quotaBytes"].as_u64(), Some(QUOTA_MB * 1024 * 1024));

    // The server stays up and the cache stays under what the disk can hold.
    http::assert_healthy(srv.addr(), "a stream three times the disk");
    let after = http::get(srv.addr(), "/api/cache", &[]).json();
    let used = after["usedBytes"].as_u64().unwrap();
    let total = after["diskTotalBytes"].as_u64().unwrap();
    // Not `used <= ceiling`: the ceiling follows the disk down after an
    // ENOSPC, and the cache evicts down to it on its next write.
    assert!(
        used <= total && used <= QUOTA_MB * 1024 * 1024,
        "the cache charges {used} bytes on a {total}-byte disk: {after}"
    );
    assert_eq!(after["ceilingSetBy"], "disk", "{after}");
    // A second pass (a seek back to the start) still works after the disk filled up.
    let r = http::get(
        srv.addr(),
        &format!("/stream/proxy/{hash}"),
        &["Range: bytes=0-999999"],
    );
    assert_eq!(r.status, 206, "{}\n{}", r.head(), r.text());
    assert_eq!(r.body, source[..1_000_000]);
    drop(srv);
}
