//! Reading and writing pieces: round trips, hash and length checks, waiting for a
//! piece, offsets past 4 GiB, and the only names that reach the file system.

use super::*;

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
