//! Invariants: the info hash is the SHA-1 of the kept info bytes; the piece
//! hashes, piece sizes and file offsets all account for exactly the total
//! length; every path segment is safe; `to_torrent_bytes` and
//! `from_info_bytes` both give back the same torrent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sha1::{Digest, Sha1};
use streme::format::metainfo::Metainfo;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Metainfo::from_torrent_bytes(data) else {
        return;
    };
    let hash: [u8; 20] = Sha1::digest(&m.info_bytes).into();
    assert_eq!(m.info_hash.0, hash);

    assert!(m.piece_length > 0 && m.total_length > 0);
    assert_eq!(
        m.pieces.len() as u64,
        m.total_length.div_ceil(m.piece_length)
    );
    assert_eq!(m.piece_count() as usize, m.pieces.len());
    let piece_sum: u64 = (0..m.piece_count()).map(|i| m.piece_size(i)).sum();
    assert_eq!(piece_sum, m.total_length);
    assert!((0..m.piece_count()).all(|i| m.piece_size(i) > 0));
    assert_eq!(m.piece_size(m.piece_count()), 0);

    let mut offset = 0;
    assert!(!m.files.is_empty());
    for file in &m.files {
        assert_eq!(file.offset, offset);
        offset += file.length;
        assert!(!file.path.is_empty());
        for seg in &file.path {
            assert!(!seg.is_empty() && seg != "." && seg != "..", "{seg:?}");
            assert!(!seg.contains(['/', '\\', '\0']), "{seg:?}");
        }
    }
    assert_eq!(offset, m.total_length);
    assert!(!m.name.is_empty() && !m.name.contains(['/', '\\', '\0']) && m.name != "..");

    let again = Metainfo::from_torrent_bytes(&m.to_torrent_bytes()).expect("our .torrent parses");
    assert_eq!(again.info_hash, m.info_hash);
    assert_eq!(again.info_bytes, m.info_bytes);
    assert_eq!(
        (&again.files, &again.trackers, &again.web_seeds),
        (&m.files, &m.trackers, &m.web_seeds)
    );

    let info_only =
        Metainfo::from_info_bytes(&m.info_bytes, m.trackers.clone(), m.web_seeds.clone())
            .expect("the info dict parses alone");
    assert_eq!(info_only.info_hash, m.info_hash);
    assert_eq!(
        (&info_only.files, &info_only.trackers),
        (&m.files, &m.trackers)
    );
});
