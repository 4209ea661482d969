//! Where pieces live on disk: the geometry of torrent space cut into segments,
//! the paths of every file the store owns, and the blocking file operations.
//!
//! # Layout
//! ```text
//! <dir>/index               persistent index of durable verified pieces
//! <dir>/index.tmp           the next index, before its atomic rename
//! <dir>/<hex>/torrent       the raw .torrent bytes
//! <dir>/<hex>/torrent.tmp   the same, before its atomic rename
//! <dir>/<hex>/<n>           segment n: torrent space [n*span, (n+1)*span)
//! ```
//! Only hex info hashes and decimal segment numbers ever become path
//! components; names from a torrent never touch the file system.
//!
//! Pure arithmetic and names: the file operations are in `files`.

use std::ops::Range;
use std::path::PathBuf;

use crate::format::InfoHash;

/// The span a segment aims for. Sized for a Raspberry Pi on an SD card or an
/// exFAT USB disk: a 5 GB quota holds ~300 segments, so LRU eviction frees
/// space in steps small next to the quota, a torrent directory stays at a few
/// hundred entries, and one flush issues one fdatasync per touched segment.
/// It is also a few SD erase blocks (4–8 MiB), so streaming writes into one
/// segment stay sequential. Rounded up to whole pieces so that no piece
/// straddles two segment files.
pub const SEGMENT_TARGET_BYTES: u64 = 16 * 1024 * 1024;

pub const INDEX_FILE: &str = "index";
pub const INDEX_TMP: &str = "index.tmp";
/// Held with an exclusive lock by the one process that owns the cache; empty.
pub const LOCK_FILE: &str = "lock";
pub const TORRENT_FILE: &str = "torrent";
pub const TORRENT_TMP: &str = "torrent.tmp";

/// How a torrent's space is cut into pieces and segments. Validated once, so
/// the arithmetic below cannot overflow or divide by zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    piece_length: u64,
    total_length: u64,
    piece_count: u32,
    pieces_per_segment: u32,
}

impl Geometry {
    /// `None` when the numbers do not describe a torrent: zero piece length,
    /// a piece count that disagrees with the total length, or absurd sizes.
    pub fn new(
        piece_length: u64,
        total_length: u64,
        piece_count: u32,
        pieces_per_segment: u32,
    ) -> Option<Geometry> {
        if piece_length == 0 || pieces_per_segment == 0 || total_length == 0 {
            return None;
        }
        if total_length.div_ceil(piece_length) != u64::from(piece_count) {
            return None;
        }
        // Keeps every offset below comfortably inside u64.
        piece_length.checked_mul(u64::from(pieces_per_segment))?;
        total_length.checked_add(piece_length.checked_mul(u64::from(pieces_per_segment))?)?;
        Some(Geometry {
            piece_length,
            total_length,
            piece_count,
            pieces_per_segment,
        })
    }

    /// The geometry for a new torrent: `target` bytes rounded up to whole pieces.
    pub fn for_torrent(
        piece_length: u64,
        total_length: u64,
        piece_count: u32,
        target: u64,
    ) -> Option<Geometry> {
        if piece_length == 0 {
            return None;
        }
        let per = target.div_ceil(piece_length).clamp(1, u64::from(u32::MAX));
        Geometry::new(piece_length, total_length, piece_count, per as u32)
    }

    pub fn piece_length(&self) -> u64 {
        self.piece_length
    }
    pub fn total_length(&self) -> u64 {
        self.total_length
    }
    pub fn piece_count(&self) -> u32 {
        self.piece_count
    }
    pub fn pieces_per_segment(&self) -> u32 {
        self.pieces_per_segment
    }

    pub fn span(&self) -> u64 {
        self.piece_length * u64::from(self.pieces_per_segment)
    }

    pub fn segment_count(&self) -> u32 {
        self.piece_count.div_ceil(self.pieces_per_segment)
    }

    pub fn piece_offset(&self, piece: u32) -> u64 {
        u64::from(piece) * self.piece_length
    }

    /// Length of `piece`; the last piece is usually short.
    pub fn piece_len(&self, piece: u32) -> u64 {
        let start = self.piece_offset(piece);
        self.piece_length
            .min(self.total_length.saturating_sub(start))
    }

    pub fn piece_at(&self, offset: u64) -> u32 {
        (offset / self.piece_length) as u32
    }

    pub fn segment_of(&self, piece: u32) -> u32 {
        piece / self.pieces_per_segment
    }

    pub fn segment_at(&self, offset: u64) -> u32 {
        (offset / self.span()) as u32
    }

    pub fn pieces_in(&self, segment: u32) -> Range<u32> {
        let start = segment
            .saturating_mul(self.pieces_per_segment)
            .min(self.piece_count);
        let end = start
            .saturating_add(self.pieces_per_segment)
            .min(self.piece_count);
        start..end
    }

    /// Where `piece` ends inside its segment file: the file length needed to hold it.
    pub fn end_in_segment(&self, piece: u32) -> u64 {
        let first = self.segment_of(piece) * self.pieces_per_segment;
        u64::from(piece - first) * self.piece_length + self.piece_len(piece)
    }
}

/// The paths of one cache directory.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn index(&self) -> PathBuf {
        self.root.join(INDEX_FILE)
    }
    pub fn index_tmp(&self) -> PathBuf {
        self.root.join(INDEX_TMP)
    }
    pub fn torrent_dir(&self, ih: &InfoHash) -> PathBuf {
        self.root.join(ih.to_hex())
    }
    pub fn torrent_file(&self, ih: &InfoHash) -> PathBuf {
        self.torrent_dir(ih).join(TORRENT_FILE)
    }
    pub fn segment(&self, ih: &InfoHash, segment: u32) -> PathBuf {
        self.torrent_dir(ih).join(segment.to_string())
    }
}

/// Parses a segment file name: canonical decimal only, so `007` or `+7` are strangers.
pub fn parse_segment_name(name: &str) -> Option<u32> {
    let n: u32 = name.parse().ok()?;
    (n.to_string() == name).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_hold_whole_pieces_and_last_piece_is_short() {
        // 10 pieces of 16 KiB, the last one 1000 bytes; 40 KiB target -> 3 pieces a segment.
        let total = 9 * 16384 + 1000;
        let g = Geometry::for_torrent(16384, total, 10, 40 * 1024).unwrap();
        assert_eq!(g.pieces_per_segment(), 3);
        assert_eq!(g.span(), 3 * 16384);
        assert_eq!(g.segment_count(), 4);
        assert_eq!(g.pieces_in(3), 9..10);
        assert_eq!(g.piece_len(9), 1000);
        assert_eq!(g.end_in_segment(9), 1000);
        assert_eq!(g.end_in_segment(5), 3 * 16384);
        assert_eq!(g.segment_of(5), 1);
        assert!(
            Geometry::new(16384, total, 11, 3).is_none(),
            "piece count must match length"
        );
        assert!(Geometry::new(0, total, 10, 3).is_none());
    }

    #[test]
    fn segment_names_are_canonical_decimals() {
        assert_eq!(parse_segment_name("0"), Some(0));
        assert_eq!(parse_segment_name("12"), Some(12));
        assert_eq!(parse_segment_name("012"), None);
        assert_eq!(parse_segment_name("+1"), None);
        assert_eq!(parse_segment_name("torrent"), None);
    }
}
