//! Persistence across reopens: flushed and unflushed pieces, truncated or
//! vanished files, an idle flush, and the lock against a second owner.

use super::*;

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
