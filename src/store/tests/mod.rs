//! Behaviour of the store against a real directory, checked with the real `du`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sha1::{Digest, Sha1};

use super::*;
use crate::format::metainfo::{FileEntry, Metainfo};

mod crash;
mod eviction;
mod reopen;
mod rw;

const PL: u64 = 16 * 1024;
/// Two 16 KiB pieces a segment.
const TARGET: u64 = 32 * 1024;
const NOW: Duration = Duration::ZERO;

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let path =
            std::env::temp_dir().join(format!("streme-store-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        TempDir(path)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

struct Fixture {
    meta: Metainfo,
    pieces: Vec<Vec<u8>>,
    content: Vec<u8>,
    torrent: Vec<u8>,
}

impl Fixture {
    fn ih(&self) -> InfoHash {
        self.meta.info_hash
    }
}

fn fixture(seed: u8, piece_length: u64, total: u64) -> Fixture {
    let content: Vec<u8> = (0..total)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 ^ seed.wrapping_mul(31))
        .collect();
    let pieces: Vec<Vec<u8>> = content
        .chunks(piece_length as usize)
        .map(<[u8]>::to_vec)
        .collect();
    let hashes = pieces.iter().map(|p| Sha1::digest(p).into()).collect();
    let info_hash = InfoHash(Sha1::digest([seed, 0xab]).into());
    // Hostile names: they must never show up on disk.
    let meta = Metainfo {
        info_hash,
        name: "../../evil".into(),
        piece_length,
        pieces: hashes,
        files: vec![FileEntry {
            path: vec!["..".into(), "evil.mkv".into()],
            length: total,
            offset: 0,
            padding: false,
        }],
        total_length: total,
        trackers: Vec::new(),
        web_seeds: Vec::new(),
        private: false,
        info_bytes: Vec::new(),
    };
    let torrent = format!("d4:infod4:name10:../../evil{seed}ee").into_bytes();
    Fixture {
        meta,
        pieces,
        content,
        torrent,
    }
}

fn du(path: &Path) -> u64 {
    let out = Command::new("du")
        .arg("-sB1")
        .arg(path)
        .output()
        .expect("du runs");
    assert!(
        out.status.success(),
        "du failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// `du` while the store works: a file deleted mid-walk makes `du` complain,
/// and that sample is skipped.
fn du_sample(path: &Path) -> Option<u64> {
    let out = Command::new("du").arg("-sB1").arg(path).output().ok()?;
    out.status.success().then_some(())?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn open(dir: &TempDir, quota: u64) -> Store {
    Store::open_with_segment_target(dir.path(), quota, TARGET).unwrap()
}

fn write_all(store: &Store, f: &Fixture) {
    smol::block_on(async {
        for (i, p) in f.pieces.iter().enumerate() {
            store
                .write_piece(&f.ih(), i as u32, p.clone(), NOW)
                .await
                .unwrap();
        }
    })
}

/// The pieces the index on disk lists for `f`.
fn listed(dir: &TempDir, f: &Fixture) -> Vec<u32> {
    let entries = index::decode(&fs::read(dir.path().join("index")).unwrap()).unwrap();
    let e = entries.iter().find(|e| e.info_hash == f.ih()).unwrap();
    (0..e.geometry.piece_count())
        .filter(|p| e.durable.get(*p))
        .collect()
}

fn read(store: &Store, f: &Fixture, offset: u64, len: usize) -> Result<Vec<u8>, StoreError> {
    smol::block_on(store.read(&f.ih(), offset, vec![0; len]))
}
