//! The rig shared by the integration tests: fixtures made by real tools at test time
//! ([`fixture`]), the real `streme` binary on an ephemeral loopback port ([`server`]), an
//! exact-bytes HTTP/1.1 client ([`http`]), and for the HTTP tier a real nginx ([`nginx`]), a
//! misbehaving source ([`fault_server`]) and the tier's settings and API calls ([`hybrid`]).
//!
//! # Design
//! Every test gets its own [`TestDir`] and its own server, so tests run in parallel without
//! sharing a cache. The rig never skips: a missing tool fails the test with the tool's name,
//! because a silently skipped test is a test that lies. Every child process is killed when its
//! handle drops, so a failing assertion never leaves a server behind.
#![allow(dead_code)] // each tests/*.rs crate uses a different subset of the rig

pub mod cached;
pub mod evil_peer;
pub mod fault_server;
pub mod fixture;
pub mod http;
pub mod hybrid;
pub mod nginx;
pub mod server;
pub mod swarm;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use sha2::{Digest, Sha256};

/// A fresh directory under the system temp dir, removed on drop unless
/// `STREME_KEEP_TEST_DIRS` is set (to look at a failing test's cache afterwards).
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    pub fn new(test_name: &str) -> TestDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "streme-test-{test_name}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create test dir {}: {e}", path.display()));
        TestDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A sub-directory, created.
    pub fn sub(&self, name: &str) -> PathBuf {
        let p = self.path.join(name);
        std::fs::create_dir_all(&p)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", p.display()));
        p
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::env::var_os("STREME_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.path);
        } else {
            eprintln!("keeping test dir {}", self.path.display());
        }
    }
}

/// The path of `tool` on PATH, or a panic that names it. Never a skip.
pub fn require_tool(tool: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "required tool `{tool}` is missing from PATH; `scripts/test` installs it \
                 (run it as root on Debian), or install it by hand"
            )
        })
}

/// Runs a tool to completion with no stdin, and panics with its stderr if it fails.
pub fn run(cmd: &mut Command) -> Output {
    let program = cmd.get_program().to_string_lossy().into_owned();
    require_tool(&program);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{program}`: {e}"));
    assert!(
        out.status.success(),
        "`{program}` failed ({}): {:?}\nstderr:\n{}",
        out.status,
        cmd.get_args().collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A small deterministic PRNG (xorshift64*), so a failing random range can be replayed: the
/// seed is printed by the tests that use it.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Bytes under `dir` as `du -sB1` counts them (allocated blocks, directories included): the
/// measure the quota promise is stated in. A directory that does not exist yet counts 0.
pub fn du_bytes(dir: &Path) -> u64 {
    require_tool("du");
    let out = Command::new("du")
        .arg("-sB1")
        .arg(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("cannot run du");
    // du exits 1 when a file vanishes during its walk (eviction at work), yet still prints the
    // total of what it saw, which is what we want.
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Sum of the lengths of the regular files under `dir` (cheaper than `du`, for polling).
pub fn file_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => file_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// Samples `du -sB1 dir` on a background thread until [`DuSampler::finish`].
pub struct DuSampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<DuSamples>,
}

#[derive(Debug, Clone, Copy)]
pub struct DuSamples {
    pub max: u64,
    pub count: usize,
}

impl DuSampler {
    pub fn start(dir: &Path, every: Duration) -> DuSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let dir = dir.to_path_buf();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = DuSamples { max: 0, count: 0 };
            while !flag.load(Ordering::Relaxed) {
                samples.max = samples.max.max(du_bytes(&dir));
                samples.count += 1;
                std::thread::sleep(every);
            }
            samples
        });
        DuSampler { stop, thread }
    }

    pub fn finish(self) -> DuSamples {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("du sampler panicked")
    }
}
