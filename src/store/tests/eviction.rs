//! The quota and eviction: `du` stays under the ceiling, LRU order, pins,
//! a lowered quota, charging for holes, and removal freeing bytes.

use super::*;

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
