//! The cache tier: verified pieces on disk, under a strict quota.
//!
//! Owns everything under the cache directory. Must never make a byte readable
//! before its SHA-1 matched, never let the bytes under the directory (as `du`
//! counts them) exceed the quota, never turn a name from a torrent into a
//! path, and never do file I/O or hashing on the async loop (a read the
//! kernel can answer from memory alone, `Files::read_cached`, is not I/O that
//! can wait: it runs in place). `send` gives the same bytes as `read`, by
//! sendfile to a socket, under the same guard.
//!
//! # Design
//! Pieces live in torrent space, cut into segment files (`segment`). A write
//! (`write`) hashes off the loop, reserves its bytes in the in-memory
//! accounting (`quota`) — evicting least-recently-used unpinned segments of any
//! torrent — and only then touches the disk, so the ceiling holds at every
//! moment. A piece is readable once written (`verified`); it is listed in the
//! persistent `index` only after its segment was fdatasync'ed (`durable`),
//! which `flush` does in batches to keep writes near 1× the bytes cached.
//! Eviction and removal rewrite the index before deleting files, so a crash
//! in between never leaves the index pointing at missing bytes; `open`
//! (`recover`) reconciles the index with the files that are really there.
//!
//! Lock order: `persist` (index changes and deletions) → a torrent's `gate`
//! (its directory's existence) → `state` (never held across I/O or await).

mod disk;
mod durable;
mod error;
mod files;
mod index;
mod open;
mod pool;
mod quota;
mod read;
mod recover;
mod segment;
mod send;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
mod torrents;
mod write;

use std::fs;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_io::Timer;
use event_listener::Event;
use futures_lite::future;

use crate::format::InfoHash;
use files::Files;
use quota::State;
use segment::Layout;

pub use disk::Limit;
pub use error::StoreError;
pub use index::Bitfield;
pub use pool::PiecePool;
pub use segment::SEGMENT_TARGET_BYTES;
pub use send::Sent;

use error::{io_err, is_not_found};

/// Verified bytes written between automatic flushes. On a power cut at most
/// this much is lost; one fdatasync and one index rewrite per 64 MiB keeps the
/// metadata writes under 0.01% of the data on an SD card.
const FLUSH_EVERY_BYTES: u64 = 64 * 1024 * 1024;

/// What the cache holds, for the API and the status page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    pub quota: u64,
    /// The effective ceiling: the quota, or less when the disk cannot hold it.
    pub ceiling: u64,
    /// Which of the two sets `ceiling`.
    pub limit: Limit,
    /// Free bytes on the cache's file system at the last reading.
    pub disk_free: Option<u64>,
    /// Size of the cache's file system.
    pub disk_total: Option<u64>,
    /// Bytes charged: what `du` would count, rounded up conservatively.
    pub used: u64,
    pub torrents: Vec<TorrentUsage>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorrentUsage {
    pub info_hash: InfoHash,
    pub bytes_on_disk: u64,
    pub verified_pieces: u32,
    pub piece_count: u32,
}

/// The segment eviction would take next (the least recently used one that
/// is not pinned), for the dashboard's cache card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextEviction {
    pub info_hash: InfoHash,
    pub pieces: Range<u32>,
    pub bytes: u64,
}

/// Handle to the cache; cheap to clone and shared by every task.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    layout: Layout,
    /// Every file operation goes through here: the real file system, or a
    /// simulated disk in the crash tests.
    files: Arc<dyn Files>,
    /// Segment span new torrents aim for; persisted per torrent, so changing it
    /// never reinterprets existing files.
    segment_target: u64,
    state: Mutex<State>,
    /// Serialises every rewrite of the index and every deletion that must
    /// follow one, so they reach the disk in the order crash safety needs.
    persist: Mutex<()>,
    /// Notified whenever quota may have freed up: unpins, evictions, removals, ends of I/O.
    space: Event,
    /// Notified whenever a piece becomes readable (or a torrent disappears).
    pieces: Event,
    /// Buffers of pieces written, for the tiers to assemble the next ones in.
    pool: PiecePool,
    /// An exclusive lock on `<dir>/lock` for the store's lifetime: two
    /// processes keeping their own accounts of one directory would break the
    /// quota and the index.
    /// `None` on a simulated disk.
    _lock: Option<fs::File>,
}

/// Marks segments busy (a read or write in flight) so they are not evicted.
struct Busy {
    inner: Arc<Inner>,
    info_hash: InfoHash,
    id: u64,
    segments: Range<u32>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut st = lock(&self.inner.state);
        if let Some(t) = st.torrent_by_id(&self.info_hash, self.id) {
            for s in self.segments.clone() {
                t.segments[s as usize].busy -= 1;
            }
        }
        drop(st);
        self.inner.space.notify(usize::MAX);
    }
}

/// Keeps the segments overlapping a byte range from being evicted while it lives.
pub struct PinGuard {
    inner: Arc<Inner>,
    info_hash: InfoHash,
    id: u64,
    segments: Range<u32>,
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        let mut st = lock(&self.inner.state);
        if let Some(t) = st.torrent_by_id(&self.info_hash, self.id) {
            for s in self.segments.clone() {
                t.segments[s as usize].pins -= 1;
            }
        }
        drop(st);
        self.inner.space.notify(usize::MAX);
    }
}

/// A poisoned lock only means another thread panicked mid-update of plain
/// counters; serving on beats taking the whole server down.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits for `listener` until `deadline` (`None`: no deadline). Returns false on timeout.
async fn wait_until(listener: event_listener::EventListener, deadline: Option<Instant>) -> bool {
    match deadline {
        None => {
            listener.await;
            true
        }
        Some(d) if Instant::now() >= d => false,
        Some(d) => {
            future::or(
                async {
                    listener.await;
                    true
                },
                async {
                    Timer::at(d).await;
                    false
                },
            )
            .await
        }
    }
}

impl Store {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.inner.state)
    }

    /// Takes a new reading of the disk under the cache. Blocking (a `statvfs`).
    pub(super) fn sample_disk(&self) {
        match self.inner.files.space(&self.inner.layout.root) {
            Ok(sample) => self.state().note_disk(sample),
            Err(e) => log::debug!("cannot measure the disk under the cache: {e}"),
        }
    }

    /// Where the tiers take buffers to assemble pieces in; [`Store::write_piece`] gives
    /// each one back when it is done with it.
    pub fn piece_pool(&self) -> PiecePool {
        self.inner.pool.clone()
    }

    /// A copy of which pieces are verified (a bit per piece): one lock for a walk over many
    /// pieces, where [`Store::has_piece`] takes it per piece.
    pub fn verified_bitfield(&self, ih: &InfoHash) -> Option<Bitfield> {
        self.state().torrents.get(ih).map(|t| t.verified.clone())
    }

    pub fn has_piece(&self, ih: &InfoHash, piece: u32) -> bool {
        self.state()
            .torrents
            .get(ih)
            .is_some_and(|t| t.verified.get(piece))
    }

    /// Verified piece count and verified bytes. A popcount of the bitfield, not a walk over
    /// the pieces: the swarm asks on every schedule, under the state lock.
    pub fn verified(&self, ih: &InfoHash) -> Option<(u32, u64)> {
        let st = self.state();
        let t = st.torrents.get(ih)?;
        let g = t.geometry;
        let count = t.verified.count();
        // Every piece is `piece_length` long but the last, which may be short.
        let bytes = match g.piece_count().checked_sub(1) {
            Some(last) if t.verified.get(last) => {
                u64::from(count - 1) * g.piece_length() + g.piece_len(last)
            }
            _ => u64::from(count) * g.piece_length(),
        };
        Some((count, bytes))
    }

    /// While the guard lives, segments overlapping the byte range (torrent space) are not evicted.
    pub fn pin(&self, ih: &InfoHash, range: Range<u64>) -> PinGuard {
        let mut st = self.state();
        let (id, segments) = match st.torrents.get_mut(ih) {
            Some(t) if range.start < range.end.min(t.geometry.total_length()) => {
                let end = range.end.min(t.geometry.total_length());
                let segments =
                    t.geometry.segment_at(range.start)..t.geometry.segment_at(end - 1) + 1;
                for s in segments.clone() {
                    t.segments[s as usize].pins += 1;
                }
                (t.id, segments)
            }
            _ => (0, 0..0),
        };
        PinGuard {
            inner: self.inner.clone(),
            info_hash: *ih,
            id,
            segments,
        }
    }

    /// Resolves when `piece` becomes verified or `timeout` passes; returns whether it is there.
    /// Returns false at once for a torrent the store does not know (or that is removed meanwhile).
    pub async fn wait_piece(&self, ih: &InfoHash, piece: u32, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let listener = self.inner.pieces.listen();
            if self.has_piece(ih, piece) {
                return true;
            }
            if !self.state().torrents.contains_key(ih) || !wait_until(listener, deadline).await {
                return self.has_piece(ih, piece);
            }
        }
    }

    /// What would be evicted next if a write needed room now; read-only.
    pub fn next_eviction(&self) -> Option<NextEviction> {
        let st = self.state();
        let v = st.pick_victim()?;
        let t = st.torrents.get(&v.info_hash)?;
        Some(NextEviction {
            info_hash: v.info_hash,
            pieces: t.geometry.pieces_in(v.segment),
            bytes: t.segments[v.segment as usize].charged_len,
        })
    }

    pub fn usage(&self) -> Usage {
        let st = self.state();
        let mut torrents: Vec<TorrentUsage> = st
            .torrents
            .iter()
            .map(|(ih, t)| TorrentUsage {
                info_hash: *ih,
                bytes_on_disk: t.charge(&st.charges),
                verified_pieces: t.verified.count(),
                piece_count: t.geometry.piece_count(),
            })
            .collect();
        torrents.sort_by_key(|t| t.info_hash);
        let (ceiling, limit) = st.ceiling();
        Usage {
            quota: st.quota,
            ceiling,
            limit,
            disk_free: st.disk.map(|d| d.sample.free),
            disk_total: st.disk.map(|d| d.sample.total),
            used: st.used(),
            torrents,
        }
    }
}
