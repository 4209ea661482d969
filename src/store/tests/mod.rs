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

#[test]
fn round_trip_across_pieces_and_segments() {
    let dir = TempDir::new("roundtrip");
    let store = open(&dir, 1 << 30);
    let f = fixture(1, PL, 6 * PL + 777);
    store.add_torrent(&f.meta, &f.torrent).unwrap();
    store.add_torrent(&f.meta, &f.torrent).unwrap(); // idempotent
    smol::block_on(async {
        // A full piece, then the short last one: the counts see the torrent with and without it.
        let (mut count, mut bytes) = (0, 0);
        for i in [2u32, 6, 0, 5, 1, 3, 4] {
            store
                .write_piece(&f.ih(), i, f.pieces[i as usize].clone(), NOW)
                .await
                .unwrap();
            (count, bytes) = (count + 1, bytes + f.pieces[i as usize].len() as u64);
            assert_eq!(
                store.verified(&f.ih()),
                Some((count, bytes)),
                "after piece {i}"
            );
        }
        // Rewriting a verified piece is Ok.
        store
            .write_piece(&f.ih(), 0, f.pieces[0].clone(), NOW)
            .await
            .unwrap();
    });
    let all = read(&store, &f, 0, f.content.len()).unwrap();
    assert!(all == f.content, "whole torrent reads back byte-exact");
    // Crosses the boundary of segments 0/1 and 1/2.
    let (at, len) = (TARGET - 100, TARGET as usize + 300);
    assert_eq!(
        read(&store, &f, at, len).unwrap(),
        &f.content[at as usize..at as usize + len]
    );
    assert_eq!(store.verified(&f.ih()), Some((7, f.content.len() as u64)));
    assert!(matches!(
        read(&store, &f, f.content.len() as u64 - 10, 11),
        Err(StoreError::PieceOutOfRange { count: 7, .. })
    ));
    assert_eq!(
        fs::read_dir(dir.path().join(f.ih().to_hex()))
            .unwrap()
            .count(),
        4 + 1,
        "4 segments + torrent"
    );
}

#[test]
fn hash_mismatch_is_rejected_and_nothing_is_readable() {
    let dir = TempDir::new("mismatch");
    let store = open(&dir, 1 << 30);
    let f = fixture(2, PL, 4 * PL);
    store.add_torrent(&f.meta, &f.torrent).unwrap();
    let mut bad = f.pieces[1].clone();
    bad[100] ^= 1;
    let got = smol::block_on(store.write_piece(&f.ih(), 1, bad, NOW));
    assert!(
        matches!(got, Err(StoreError::HashMismatch { piece: 1 })),
        "{got:?}"
    );
    assert!(!store.has_piece(&f.ih(), 1));
    assert!(matches!(
        read(&store, &f, PL, 10),
        Err(StoreError::NotVerified { piece: 1 })
    ));
    assert!(
        !dir.path().join(f.ih().to_hex()).join("0").exists(),
        "nothing written"
    );
    let short = smol::block_on(store.write_piece(&f.ih(), 1, vec![0; 10], NOW));
    assert!(matches!(
        short,
        Err(StoreError::BadLength {
            piece: 1,
            expected: PL,
            got: 10
        })
    ));
    let out = smol::block_on(store.write_piece(&f.ih(), 4, vec![0; 10], NOW));
    assert!(matches!(
        out,
        Err(StoreError::PieceOutOfRange { piece: 4, count: 4 })
    ));
    // A read that starts in a verified piece and runs into an unverified one is refused too.
    smol::block_on(store.write_piece(&f.ih(), 0, f.pieces[0].clone(), NOW)).unwrap();
    assert!(matches!(
        read(&store, &f, PL - 5, 10),
        Err(StoreError::NotVerified { piece: 1 })
    ));
}

#[test]
fn quota_holds_under_du_while_churning_several_torrents() {
    let dir = TempDir::new("quota");
    let quota = 256 * 1024;
    let store = open(&dir, quota);
    let fixtures: Vec<Fixture> = (0..3).map(|s| fixture(10 + s, PL, 8 * PL)).collect();
    for f in &fixtures {
        store.add_torrent(&f.meta, &f.torrent).unwrap();
    }
    // A sampler runs `du` all along, to catch the ceiling broken between two writes.
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, peak, path) = (stop.clone(), peak.clone(), dir.path().to_path_buf());
        std::thread::spawn(move || {
            let mut samples = 0u32;
            while !stop.load(Ordering::SeqCst) {
                if let Some(bytes) = du_sample(&path) {
                    peak.fetch_max(bytes, Ordering::SeqCst);
                    samples += 1;
                }
            }
            samples
        })
    };
    let mut writes = 0;
    for _round in 0..3 {
        for f in &fixtures {
            for (i, p) in f.pieces.iter().enumerate() {
                smol::block_on(store.write_piece(&f.ih(), i as u32, p.clone(), NOW)).unwrap();
                writes += 1;
                if writes % 5 == 0 {
                    store.flush().unwrap();
                }
                let (real, used) = (du(dir.path()), store.usage().used);
                assert!(real <= used, "charge {used} must cover du {real}");
                assert!(used <= quota, "used {used} over quota {quota}");
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    assert!(sampler.join().unwrap() > 10, "the sampler saw the run");
    assert!(
        peak.load(Ordering::SeqCst) <= quota,
        "du peaked at {}",
        peak.load(Ordering::SeqCst)
    );
    let held: u32 = fixtures
        .iter()
        .map(|f| store.verified(&f.ih()).unwrap().0)
        .sum();
    assert!(
        held < 24,
        "the churn must have evicted something (holds {held} of 24 pieces)"
    );
    // Whatever is still there reads back exactly.
    for f in &fixtures {
        for i in (0..8).filter(|i| store.has_piece(&f.ih(), *i)) {
            assert_eq!(
                read(&store, f, u64::from(i) * PL, PL as usize).unwrap(),
                f.pieces[i as usize]
            );
        }
    }
}

/// Writes pieces 0..6 (segments 0, 1, 2) of an 8-piece torrent, flushes, and
/// reopens with room for `slack` bytes more than that.
fn three_segments_then_reopen(dir: &TempDir, f: &Fixture, slack: u64) -> Store {
    let store = open(dir, 1 << 30);
    store.add_torrent(&f.meta, &f.torrent).unwrap();
    smol::block_on(async {
        for i in 0..6 {
            store
                .write_piece(&f.ih(), i, f.pieces[i as usize].clone(), NOW)
                .await
                .unwrap();
        }
    });
    store.flush().unwrap();
    let used = store.usage().used;
    drop(store);
    let store = open(dir, used + slack);
    assert_eq!(store.usage().used, used, "reopen measures the same usage");
    store.add_torrent(&f.meta, &f.torrent).unwrap();
    store
}

#[test]
fn lru_evicts_the_least_recently_read_segment_first() {
    let dir = TempDir::new("lru");
    let f = fixture(20, PL, 8 * PL);
    let store = three_segments_then_reopen(&dir, &f, 4096);
    for seg in [1u64, 0, 2] {
        read(&store, &f, seg * TARGET, 10).unwrap();
    }
    smol::block_on(store.write_piece(&f.ih(), 6, f.pieces[6].clone(), NOW)).unwrap();
    let present: Vec<bool> = (0..7).map(|i| store.has_piece(&f.ih(), i)).collect();
    assert_eq!(
        present,
        [true, true, false, false, true, true, true],
        "segment 1 was the least recently used"
    );
    assert!(!dir.path().join(f.ih().to_hex()).join("1").exists());
    assert_eq!(
        listed(&dir, &f),
        [0, 1, 4, 5],
        "the index forgot segment 1 before it was deleted"
    );
}

#[test]
fn pins_block_eviction_until_unpinned() {
    let dir = TempDir::new("pins");
    let f = fixture(30, PL, 8 * PL);
    let store = three_segments_then_reopen(&dir, &f, 8192);
    let pin = store.pin(&f.ih(), 0..8 * PL);
    let now = smol::block_on(store.write_piece(&f.ih(), 6, f.pieces[6].clone(), NOW));
    match now {
        Err(StoreError::QuotaExceeded { needed, free }) => {
            assert_eq!(free, 8192);
            assert!(needed > free, "needed {needed}");
        }
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
    // Waiting without an unpin still ends, with the same error.
    let waited = smol::block_on(store.write_piece(
        &f.ih(),
        6,
        f.pieces[6].clone(),
        Duration::from_millis(150),
    ));
    assert!(matches!(waited, Err(StoreError::QuotaExceeded { .. })));
    // A pin of just segment 2 keeps it while the big pin goes away.
    let keep = store.pin(&f.ih(), 2 * TARGET + 5..2 * TARGET + 6);
    let unpin_later = async {
        Timer::after(Duration::from_millis(100)).await;
        drop(pin);
    };
    let ih = f.ih();
    let write = store.write_piece(&ih, 6, f.pieces[6].clone(), Duration::from_secs(10));
    let (written, ()) = smol::block_on(future::zip(write, unpin_later));
    written.unwrap();
    assert!(store.has_piece(&f.ih(), 6));
    assert!(store.has_piece(&f.ih(), 4), "pinned segment 2 survived");
    assert!(!store.has_piece(&f.ih(), 0), "oldest unpinned segment went");
    drop(keep);
}

#[test]
fn reopen_after_flush_keeps_pieces_and_torrents() {
    let dir = TempDir::new("reopen");
    let f = fixture(40, PL, 5 * PL + 1);
    {
        let store = open(&dir, 1 << 30);
        store.add_torrent(&f.meta, &f.torrent).unwrap();
        write_all(&store, &f);
        store.flush().unwrap();
    }
    let store = open(&dir, 1 << 30);
    assert_eq!(store.torrents(), vec![f.torrent.clone()]);
    assert_eq!(store.verified(&f.ih()), Some((6, f.content.len() as u64)));
    assert_eq!(read(&store, &f, 0, f.content.len()).unwrap(), f.content);
    // Writes need the metainfo again: until then the hashes are unknown.
    let before = smol::block_on(store.write_piece(&f.ih(), 0, f.pieces[0].clone(), NOW));
    assert!(matches!(before, Err(StoreError::UnknownTorrent(_))));
    store.add_torrent(&f.meta, &f.torrent).unwrap();
    smol::block_on(store.write_piece(&f.ih(), 0, f.pieces[0].clone(), NOW)).unwrap();
}

#[test]
fn reopen_without_flush_loses_only_unflushed_pieces() {
    let dir = TempDir::new("crash");
    let f = fixture(50, PL, 8 * PL);
    {
        let store = open(&dir, 1 << 30);
        store.add_torrent(&f.meta, &f.torrent).unwrap();
        smol::block_on(async {
            for i in [0, 1, 2] {
                store
                    .write_piece(&f.ih(), i, f.pieces[i as usize].clone(), NOW)
                    .await
                    .unwrap();
            }
        });
        store.flush().unwrap();
        // Unflushed: one piece in a listed segment, one in a new segment.
        smol::block_on(async {
            for i in [3, 6] {
                store
                    .write_piece(&f.ih(), i, f.pieces[i as usize].clone(), NOW)
                    .await
                    .unwrap();
            }
        });
        // Something else rewrites the index: it still lists only fdatasync'ed pieces.
        let other = fixture(51, PL, PL);
        store.add_torrent(&other.meta, &other.torrent).unwrap();
        assert_eq!(listed(&dir, &f), [0, 1, 2]);
        // Dropped without flush, as after kill -9.
    }
    let store = open(&dir, 1 << 30);
    let present: Vec<u32> = (0..8).filter(|i| store.has_piece(&f.ih(), *i)).collect();
    assert_eq!(
        present,
        [0, 1, 2],
        "flushed pieces survive, unflushed ones are not listed"
    );
    for i in present {
        let got = read(&store, &f, u64::from(i) * PL, PL as usize).unwrap();
        assert_eq!(
            Sha1::digest(&got)[..],
            f.meta.pieces[i as usize][..],
            "piece {i} bytes are the verified ones"
        );
    }
    assert!(
        !dir.path().join(f.ih().to_hex()).join("3").exists(),
        "orphan segment deleted at open"
    );
    let used = store.usage().used;
    assert!(
        du(dir.path()) <= used,
        "usage recomputed from the real files"
    );
}

#[test]
fn truncated_segment_drops_the_pieces_it_no_longer_holds() {
    let dir = TempDir::new("truncated");
    let f = fixture(60, PL, 8 * PL);
    {
        let store = open(&dir, 1 << 30);
        store.add_torrent(&f.meta, &f.torrent).unwrap();
        write_all(&store, &f);
        store.flush().unwrap();
    }
    let seg1 = dir.path().join(f.ih().to_hex()).join("1");
    fs::OpenOptions::new()
        .write(true)
        .open(&seg1)
        .unwrap()
        .set_len(PL + 100)
        .unwrap();
    fs::remove_file(dir.path().join(f.ih().to_hex()).join("3")).unwrap();
    for _ in 0..2 {
        // Twice: the second open reads the index the first one rewrote.
        let store = open(&dir, 1 << 30);
        let present: Vec<u32> = (0..8).filter(|i| store.has_piece(&f.ih(), *i)).collect();
        assert_eq!(present, [0, 1, 2, 4, 5]);
        assert_eq!(read(&store, &f, 2 * PL, PL as usize).unwrap(), f.pieces[2]);
        assert!(matches!(
            read(&store, &f, 3 * PL, 1),
            Err(StoreError::NotVerified { piece: 3 })
        ));
    }
}

#[test]
fn remove_torrent_frees_its_bytes() {
    let dir = TempDir::new("remove");
    let store = open(&dir, 1 << 30);
    let (a, b) = (fixture(70, PL, 6 * PL), fixture(71, PL, 4 * PL));
    for f in [&a, &b] {
        store.add_torrent(&f.meta, &f.torrent).unwrap();
        write_all(&store, f);
    }
    store.flush().unwrap();
    let before = store.usage();
    let a_bytes = before
        .torrents
        .iter()
        .find(|t| t.info_hash == a.ih())
        .unwrap()
        .bytes_on_disk;
    let du_before = du(dir.path());
    store.remove_torrent(&a.ih()).unwrap();
    let after = store.usage();
    assert_eq!(after.used, before.used - a_bytes);
    assert_eq!(after.torrents.len(), 1);
    assert!(du(dir.path()) < du_before - 6 * PL);
    assert!(!dir.path().join(a.ih().to_hex()).exists());
    assert!(!store.has_piece(&a.ih(), 0));
    let again = smol::block_on(store.write_piece(&a.ih(), 0, a.pieces[0].clone(), NOW));
    assert!(matches!(again, Err(StoreError::UnknownTorrent(_))));
    drop(store);
    let store = open(&dir, 1 << 30);
    assert_eq!(store.torrents(), vec![b.torrent.clone()]);
    assert_eq!(read(&store, &b, 0, b.content.len()).unwrap(), b.content);
}

#[test]
fn vanished_directory_is_an_io_error_then_recovers() {
    let dir = TempDir::new("vanish");
    let store = open(&dir, 1 << 30);
    let (a, b) = (fixture(80, PL, 4 * PL), fixture(81, PL, 4 * PL));
    for f in [&a, &b] {
        store.add_torrent(&f.meta, &f.torrent).unwrap();
        smol::block_on(store.write_piece(&f.ih(), 0, f.pieces[0].clone(), NOW)).unwrap();
    }
    store.flush().unwrap();

    // One torrent's directory disappears: that torrent errors, the other one serves on.
    let a_dir = dir.path().join(a.ih().to_hex());
    fs::remove_dir_all(&a_dir).unwrap();
    match smol::block_on(store.write_piece(&a.ih(), 2, a.pieces[2].clone(), NOW)) {
        Err(StoreError::Io { path, .. }) => assert!(path.starts_with(&a_dir), "{}", path.display()),
        other => panic!("expected Io, got {other:?}"),
    }
    assert!(
        !store.has_piece(&a.ih(), 0),
        "bytes that vanished are not served"
    );
    assert_eq!(read(&store, &b, 0, PL as usize).unwrap(), b.pieces[0]);
    smol::block_on(store.write_piece(&a.ih(), 2, a.pieces[2].clone(), NOW)).unwrap();
    assert_eq!(read(&store, &a, 2 * PL, PL as usize).unwrap(), a.pieces[2]);

    // The whole cache dir disappears.
    fs::remove_dir_all(dir.path()).unwrap();
    let err = smol::block_on(store.read(&b.ih(), 0, vec![0; 10])).unwrap_err();
    assert!(
        matches!(&err, StoreError::Io { path, .. } if path.starts_with(dir.path())),
        "{err}"
    );
    assert!(
        err.to_string().contains(&b.ih().to_hex()),
        "the message names the path: {err}"
    );
    smol::block_on(store.write_piece(&b.ih(), 1, b.pieces[1].clone(), NOW)).unwrap();
    assert_eq!(read(&store, &b, PL, PL as usize).unwrap(), b.pieces[1]);
    // Re-adding re-persists the .torrent the vanished dir took with it.
    store.add_torrent(&b.meta, &b.torrent).unwrap();
    store.flush().unwrap();
    drop(store);
    let store = open(&dir, 1 << 30);
    assert_eq!(store.torrents(), vec![b.torrent.clone()]);
    assert_eq!(store.verified(&b.ih()), Some((1, PL)));
}

#[test]
fn wait_piece_wakes_on_write_and_times_out() {
    let dir = TempDir::new("wait");
    let store = open(&dir, 1 << 30);
    let f = fixture(90, PL, 2 * PL);
    store.add_torrent(&f.meta, &f.torrent).unwrap();
    assert!(!smol::block_on(store.wait_piece(
        &f.ih(),
        1,
        Duration::from_millis(50)
    )));
    let writer = async {
        Timer::after(Duration::from_millis(50)).await;
        store
            .write_piece(&f.ih(), 1, f.pieces[1].clone(), NOW)
            .await
            .unwrap();
    };
    let (seen, ()) = smol::block_on(future::zip(
        store.wait_piece(&f.ih(), 1, Duration::from_secs(10)),
        writer,
    ));
    assert!(seen);
}

#[test]
fn only_hex_hashes_and_segment_numbers_reach_the_file_system() {
    let dir = TempDir::new("names");
    let store = open(&dir, 1 << 30);
    let f = fixture(100, PL, 5 * PL);
    store.add_torrent(&f.meta, &f.torrent).unwrap();
    write_all(&store, &f);
    store.flush().unwrap();
    let hex = f.ih().to_hex();
    let mut names = Vec::new();
    for e in fs::read_dir(dir.path()).unwrap() {
        let e = e.unwrap();
        names.push(e.file_name().into_string().unwrap());
        if e.path().is_dir() {
            for s in fs::read_dir(e.path()).unwrap() {
                names.push(s.unwrap().file_name().into_string().unwrap());
            }
        }
    }
    names.sort();
    assert_eq!(
        names,
        ["0", "1", "2", hex.as_str(), "index", "lock", "torrent"]
    );
}

#[test]
fn lowered_quota_evicts_at_open() {
    let dir = TempDir::new("lowered");
    let f = fixture(110, PL, 8 * PL);
    {
        let store = open(&dir, 1 << 30);
        store.add_torrent(&f.meta, &f.torrent).unwrap();
        write_all(&store, &f);
        store.flush().unwrap();
    }
    let quota = 128 * 1024;
    let store = open(&dir, quota);
    assert!(store.usage().used <= quota);
    assert!(du(dir.path()) <= quota);
    assert!(store.verified(&f.ih()).unwrap().0 < 8);
}

#[test]
fn a_segment_is_charged_as_if_the_file_system_had_no_holes() {
    // exFAT fills the gap before a write with zeros; the charge must too.
    let dir = TempDir::new("sparse");
    let store = open(&dir, 1 << 30);
    let f = fixture(120, PL, 4 * PL);
    store.add_torrent(&f.meta, &f.torrent).unwrap();
    let before = store.usage().torrents[0].bytes_on_disk;
    smol::block_on(store.write_piece(&f.ih(), 1, f.pieces[1].clone(), NOW)).unwrap();
    let grown = store.usage().torrents[0].bytes_on_disk - before;
    assert!(
        grown >= 2 * PL,
        "charged {grown} for a piece written after a {PL}-byte hole"
    );
}

#[test]
fn an_idle_flush_writes_nothing() {
    use std::os::unix::fs::MetadataExt;
    let dir = TempDir::new("idle");
    let store = open(&dir, 1 << 30);
    let f = fixture(130, PL, 2 * PL);
    store.add_torrent(&f.meta, &f.torrent).unwrap();
    write_all(&store, &f);
    store.flush().unwrap();
    let inode = || fs::metadata(dir.path().join("index")).unwrap().ino();
    let first = inode();
    store.flush().unwrap();
    assert_eq!(inode(), first, "no new index was renamed into place");
}

#[test]
fn a_second_owner_of_the_cache_is_refused_by_the_lock() {
    let dir = TempDir::new("locked");
    let store = open(&dir, 1 << 30);
    match Store::open_with_segment_target(dir.path(), 1 << 30, TARGET) {
        Err(StoreError::Locked { path }) => assert_eq!(path, dir.path().join("lock")),
        other => panic!("expected Locked, got {:?}", other.map(|_| ())),
    }
    drop(store);
    open(&dir, 1 << 30);
}

#[test]
fn pieces_past_4_gib_are_written_and_read_at_u64_offsets() {
    // A 6 GiB torrent of 4 MiB pieces; only pieces past 4 GiB are written, so
    // the files stay small (one piece a segment, each its own file).
    const GIB: u64 = 1 << 30;
    let piece_length = 4 << 20;
    let total = 6 * GIB + 12345;
    let count = total.div_ceil(piece_length) as u32;
    let last = count - 1;
    let at_4g = (4 * GIB / piece_length) as u32;
    let body = |p: u32| -> Vec<u8> {
        let len = if p == last {
            total - u64::from(last) * piece_length
        } else {
            piece_length
        };
        (0..len).map(|i| (i as u8) ^ (p as u8)).collect()
    };
    let mut hashes = vec![[0u8; 20]; count as usize];
    for p in [at_4g - 1, at_4g, last] {
        hashes[p as usize] = Sha1::digest(body(p)).into();
    }
    let mut f = fixture(140, PL, PL);
    f.meta.piece_length = piece_length;
    f.meta.total_length = total;
    f.meta.pieces = hashes;
    let dir = TempDir::new("past4g");
    let store = open(&dir, 1 << 30);
    store.add_torrent(&f.meta, &f.torrent).unwrap();
    smol::block_on(async {
        for p in [at_4g - 1, at_4g, last] {
            store.write_piece(&f.ih(), p, body(p), NOW).await.unwrap();
        }
    });
    // Across the 4 GiB line, which a u32 offset would wrap to 0.
    let got = read(&store, &f, 4 * GIB - 100, 200).unwrap();
    let (before, after) = (body(at_4g - 1), body(at_4g));
    assert_eq!(&got[..100], &before[before.len() - 100..]);
    assert_eq!(&got[100..], &after[..100]);
    let tail = read(&store, &f, total - 10, 10).unwrap();
    let end = body(last);
    assert_eq!(tail, end[end.len() - 10..]);
    assert!(matches!(
        read(&store, &f, 0, 1),
        Err(StoreError::NotVerified { piece: 0 })
    ));
    store.flush().unwrap();
    drop(store);
    let store = open(&dir, 1 << 30);
    assert_eq!(store.verified(&f.ih()).map(|v| v.0), Some(3));
}
