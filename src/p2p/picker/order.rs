//! The priority list: which pieces the readers of one torrent want, in the
//! order a player needs the bytes (see the picker's design).
//!
//! Pure: no I/O, no state.

use std::ops::Range;

/// The longest priority list built at once. Peers rarely lack all of the
/// first thousand pieces a player needs next; the list is rebuilt as pieces
/// land, so the rest comes in time.
const MAX_WANTED: usize = 1024;

/// What the readers of one torrent want right now.
#[derive(Debug, Clone, Default)]
pub struct Want {
    /// Pieces readers block on, newest wait first.
    pub waiting: Vec<u32>,
    /// The piece under the playhead.
    pub playhead: Option<u32>,
    /// How many pieces after the playhead are readahead.
    pub readahead: u32,
    /// The pieces of the file being played.
    pub file: Option<Range<u32>>,
    /// Whether the rest of the file may be fetched (it fits the quota).
    pub background: bool,
}

/// The wanted pieces in priority order, each once, those `missing` says we
/// lack, at most [`MAX_WANTED`].
pub fn wanted(want: &Want, missing: impl Fn(u32) -> bool) -> Vec<u32> {
    let mut out = Vec::new();
    // A bit per piece, not a hash per piece: this runs per piece verified.
    let pieces = want.file.as_ref().map_or(0, |f| f.end);
    let pieces = want.waiting.iter().fold(pieces, |n, &p| n.max(p + 1));
    let mut seen = vec![0u64; (pieces as usize).div_ceil(64)];
    let mut push = |p: u32, out: &mut Vec<u32>| {
        let (word, bit) = (p as usize / 64, 1u64 << (p % 64));
        if out.len() < MAX_WANTED && seen[word] & bit == 0 && missing(p) {
            seen[word] |= bit;
            out.push(p);
        }
    };
    for &p in &want.waiting {
        push(p, &mut out);
    }
    let Some(file) = want.file.clone().filter(|f| !f.is_empty()) else {
        return out;
    };
    let head = want
        .playhead
        .filter(|p| file.contains(p))
        .unwrap_or(file.start);
    for p in head..head.saturating_add(want.readahead).min(file.end) {
        push(p, &mut out);
    }
    // Containers: the MP4 moov atom or the MKV cues sit at one end.
    for p in [
        file.start,
        file.end - 1,
        file.end.saturating_sub(2).max(file.start),
    ] {
        push(p, &mut out);
    }
    if want.background {
        for p in (head..file.end).chain(file.start..head) {
            if out.len() >= MAX_WANTED {
                break;
            }
            push(p, &mut out);
        }
    }
    out
}
