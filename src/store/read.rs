//! Reading verified bytes of torrent space: off the loop, or in place when the
//! kernel can answer from memory alone.
//!
//! Owns the path from a byte range to the segment files that hold it. Must
//! never return a byte of a piece that is not verified, and never wait on the
//! disk on the async loop.

use std::ops::Range;
use std::path::PathBuf;

use super::{io_err, Store, StoreError};
use crate::format::InfoHash;

impl Store {
    /// Reads `buf.len()` bytes of torrent space at `offset` (may cross pieces and segments), off
    /// the loop. Every byte must lie in verified pieces, else `NotVerified { piece }`. Returns the
    /// same allocation filled. Marks the segments used (LRU).
    pub async fn read(
        &self,
        ih: &InfoHash,
        offset: u64,
        mut buf: Vec<u8>,
    ) -> Result<Vec<u8>, StoreError> {
        let (geometry, gate) = {
            let st = self.state();
            let t = st.torrents.get(ih).ok_or(StoreError::UnknownTorrent(*ih))?;
            (t.geometry, t.gate.clone())
        };
        if buf.is_empty() {
            return Ok(buf);
        }
        let g = geometry;
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|e| *e <= g.total_length());
        let Some(end) = end else {
            let last = offset.saturating_add(buf.len() as u64 - 1) / g.piece_length();
            let piece = u32::try_from(last).unwrap_or(u32::MAX).max(g.piece_count());
            return Err(StoreError::PieceOutOfRange {
                piece,
                count: g.piece_count(),
            });
        };
        let segments = g.segment_at(offset)..g.segment_at(end - 1) + 1;
        let busy = {
            // Checking and marking busy under one lock: eviction cannot slip in between.
            let mut st = self.state();
            let t = st.torrents.get(ih).ok_or(StoreError::UnknownTorrent(*ih))?;
            if let Some(piece) =
                (g.piece_at(offset)..=g.piece_at(end - 1)).find(|p| !t.verified.get(*p))
            {
                return Err(StoreError::NotVerified { piece });
            }
            self.busy(&mut st, ih, segments.clone())?
        };
        let plan: Vec<(PathBuf, u64, Range<usize>)> = segments
            .map(|s| {
                let seg_start = u64::from(s) * g.span();
                let from = offset.max(seg_start);
                let to = end.min(seg_start + g.span());
                let at = (from - offset) as usize..(to - offset) as usize;
                (self.inner.layout.segment(ih, s), from - seg_start, at)
            })
            .collect();
        if self.read_cached(&gate, &plan, &mut buf) {
            drop(busy);
            return Ok(buf);
        }
        let unknown = StoreError::UnknownTorrent(*ih);
        let files = self.inner.files.clone();
        let result = smol::unblock(move || {
            let removed = gate.read().unwrap_or_else(|e| e.into_inner());
            if *removed {
                return Err(unknown);
            }
            for (path, at, range) in plan {
                files
                    .read_at(&path, at, &mut buf[range])
                    .map_err(io_err(&path, "read"))?;
            }
            Ok(buf)
        })
        .await;
        drop(busy);
        if let Err(e) = &result {
            self.after_io_error(e).await;
        }
        result
    }

    /// Reads `plan` into `buf` on the calling thread, but only when every
    /// byte is in the page cache and every path is in the dentry cache, so
    /// that the read cannot wait on the disk ([`Files::read_cached`]); false
    /// when any part is not, and then `buf` is to be read the blocking way.
    /// A stream mostly reads what a tier wrote a moment ago, so this spares
    /// the hop to the blocking pool and back for most chunks (issue 14: that
    /// hop was most of the cache tier's context switches).
    fn read_cached(
        &self,
        gate: &std::sync::RwLock<bool>,
        plan: &[(PathBuf, u64, Range<usize>)],
        buf: &mut [u8],
    ) -> bool {
        // A removal holds the gate while it deletes: never wait for it here.
        let Ok(removed) = gate.try_read() else {
            return false;
        };
        !*removed
            && plan.iter().all(|(path, at, range)| {
                matches!(
                    self.inner
                        .files
                        .read_cached(path, *at, &mut buf[range.clone()]),
                    Ok(true)
                )
            })
    }
}
