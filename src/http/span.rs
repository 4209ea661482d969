//! From pieces to byte ranges of files: what an HTTP source must be asked
//! for so that a run of pieces can be assembled and verified.
//!
//! Owns the mapping from torrent space to file space. Must never produce a
//! span in a padding file (BEP 47): those bytes are zeros by definition and
//! the assembler fills them in without asking anyone.

use std::ops::Range;

use crate::format::metainfo::Metainfo;

/// A run of bytes within one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSpan {
    /// Index into `Metainfo::files`.
    pub file: usize,
    /// Offset of the first byte within the file.
    pub offset: u64,
    pub length: u64,
}

impl FileSpan {
    /// Where the span starts in torrent space.
    pub fn torrent_offset(&self, meta: &Metainfo) -> u64 {
        meta.files[self.file].offset + self.offset
    }
}

/// The bytes of `pieces` in torrent space, clamped to the torrent.
pub fn piece_bytes(meta: &Metainfo, pieces: &Range<u32>) -> Range<u64> {
    let start = (u64::from(pieces.start) * meta.piece_length).min(meta.total_length);
    let end = (u64::from(pieces.end) * meta.piece_length).min(meta.total_length);
    start..end.max(start)
}

/// The file spans that hold `pieces`, in torrent order, including the bytes
/// that edge pieces take from neighbouring files, and without padding files
/// or empty files.
pub fn piece_spans(meta: &Metainfo, pieces: Range<u32>) -> Vec<FileSpan> {
    let bytes = piece_bytes(meta, &pieces);
    // Files are sorted by offset; skip those that end before the range.
    let first = meta
        .files
        .partition_point(|f| f.offset + f.length <= bytes.start);
    meta.files[first..]
        .iter()
        .enumerate()
        .take_while(|(_, f)| f.offset < bytes.end)
        .filter(|(_, f)| !f.padding && f.length > 0)
        .map(|(i, f)| {
            let start = bytes.start.max(f.offset);
            let end = bytes.end.min(f.offset + f.length);
            FileSpan {
                file: first + i,
                offset: start - f.offset,
                length: end - start,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::source::tests::torrent;

    fn span(file: usize, offset: u64, length: u64) -> FileSpan {
        FileSpan {
            file,
            offset,
            length,
        }
    }

    #[test]
    fn edge_pieces_reach_into_neighbouring_files() {
        // Files of 10, 20 and 5 bytes; pieces of 8: piece 1 is 8..16, which
        // is 2 bytes of file 0 and 6 of file 1.
        let meta = torrent(
            "t",
            &[(&["a"], 10, false), (&["b"], 20, false), (&["c"], 5, false)],
            8,
            false,
            &[],
            None,
        );
        assert_eq!(piece_spans(&meta, 1..2), [span(0, 8, 2), span(1, 0, 6)]);
        // Piece 3 is 24..32: the end of b and the start of c.
        assert_eq!(piece_spans(&meta, 3..4), [span(1, 14, 6), span(2, 0, 2)]);
        // The last piece is short: 32..35.
        assert_eq!(piece_spans(&meta, 4..5), [span(2, 2, 3)]);
        // A run covers everything between, each file once.
        assert_eq!(
            piece_spans(&meta, 0..5),
            [span(0, 0, 10), span(1, 0, 20), span(2, 0, 5)]
        );
        assert_eq!(piece_bytes(&meta, &(4..9)), 32..35);
        assert!(piece_spans(&meta, 5..6).is_empty());
    }

    #[test]
    fn padding_and_empty_files_are_never_spans() {
        // a (6) + padding (2) aligns b on piece 1; an empty file sits between.
        let meta = torrent(
            "t",
            &[
                (&["a"], 6, false),
                (&[".pad", "2"], 2, true),
                (&["empty"], 0, false),
                (&["b"], 12, false),
            ],
            8,
            false,
            &[],
            None,
        );
        assert_eq!(piece_spans(&meta, 0..1), [span(0, 0, 6)]);
        assert_eq!(piece_spans(&meta, 0..2), [span(0, 0, 6), span(3, 0, 8)]);
        assert_eq!(piece_spans(&meta, 1..3), [span(3, 0, 12)]);
        assert_eq!(span(3, 4, 1).torrent_offset(&meta), 12);
    }
}
