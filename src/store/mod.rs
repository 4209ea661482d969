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
mod pool;
mod quota;
mod recover;
mod segment;
mod send;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
mod write;

use std::fs;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_io::Timer;
use event_listener::Event;
use futures_lite::future;

use crate::format::metainfo::Metainfo;
use crate::format::InfoHash;
use files::Files;
use quota::{State, Torrent};
use segment::{Geometry, Layout};

pub use disk::Limit;
pub use error::StoreError;
pub use index::Bitfield;
pub use pool::PiecePool;
pub use segment::SEGMENT_TARGET_BYTES;
pub use send::Sent;

use error::{io_err, is_not_found};
use write::claim;

/// How long `open` waits for another owner of the cache to let go.
const LOCK_PATIENCE: Duration = Duration::from_secs(2);

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
    /// Opens or creates the cache at `dir`, loads the index, removes orphans, computes usage.
    /// Blocking: call it before the executor starts, or through `smol::unblock`.
    ///
    /// Segments are at most a sixteenth of the ceiling (the quota, or what the
    /// disk can hold when that is less): a small ceiling must still hold the
    /// segment a reader is in, the ones workers are writing, and room to
    /// evict, or a stream larger than the ceiling would stall.
    pub fn open(dir: &Path, quota_bytes: u64) -> Result<Store, StoreError> {
        Store::open_inner(dir, quota_bytes, None)
    }

    /// Takes the cache's lock file, or says who has it.
    fn take_lock(dir: &Path) -> Result<fs::File, StoreError> {
        fs::create_dir_all(dir).map_err(io_err(dir, "create"))?;
        let path = dir.join(segment::LOCK_FILE);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(&path, "open"))?;
        // A previous owner may still be exiting (a restart, or the last clone
        // of a store being dropped on another thread): give it a moment.
        let deadline = Instant::now() + LOCK_PATIENCE;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(fs::TryLockError::WouldBlock) => return Err(StoreError::Locked { path }),
                Err(fs::TryLockError::Error(e)) => return Err(io_err(&path, "lock")(e)),
            }
        }
    }

    /// Like [`Store::open`], with another segment span for new torrents (tests use small ones).
    pub fn open_with_segment_target(
        dir: &Path,
        quota_bytes: u64,
        segment_target: u64,
    ) -> Result<Store, StoreError> {
        Store::open_inner(dir, quota_bytes, Some(segment_target))
    }

    fn open_inner(
        dir: &Path,
        quota_bytes: u64,
        segment_target: Option<u64>,
    ) -> Result<Store, StoreError> {
        let lock_file = Self::take_lock(dir)?;
        Store::open_on(
            Arc::new(files::Real),
            Some(lock_file),
            dir,
            quota_bytes,
            segment_target,
        )
    }

    /// Opens the cache on `files` (the real file system, or a simulated disk).
    fn open_on(
        files: Arc<dyn Files>,
        lock_file: Option<fs::File>,
        dir: &Path,
        quota_bytes: u64,
        segment_target: Option<u64>,
    ) -> Result<Store, StoreError> {
        let layout = Layout {
            root: dir.to_path_buf(),
        };
        let found = recover::scan(&layout, &*files)?;
        let rewrite = found.index_changed;
        let mut state = found.into_state(quota_bytes);
        match files.space(dir) {
            Ok(sample) => state.note_disk(sample),
            Err(e) => log::warn!(
                "cannot measure the disk under {}: {e}; the quota alone is the ceiling",
                dir.display()
            ),
        }
        let (ceiling, limit) = state.ceiling();
        if limit == Limit::Disk {
            log::info!(
                "the disk under {} holds less than the quota of {} bytes: the cache's ceiling is {ceiling} bytes",
                dir.display(),
                quota_bytes
            );
        }
        let segment_target =
            segment_target.unwrap_or_else(|| SEGMENT_TARGET_BYTES.min(ceiling / 16).max(64 * 1024));
        let store = Store {
            inner: Arc::new(Inner {
                layout,
                files,
                segment_target: segment_target.max(1),
                state: Mutex::new(state),
                persist: Mutex::new(()),
                space: Event::new(),
                pieces: Event::new(),
                pool: PiecePool::default(),
                _lock: lock_file,
            }),
        };
        let _p = lock(&store.inner.persist);
        if rewrite {
            store.persist_index(None)?;
        }
        // The quota may have been lowered since the last run.
        loop {
            let victim = {
                let mut st = lock(&store.inner.state);
                let (ceiling, limit) = st.ceiling();
                if st.used() <= ceiling {
                    break;
                }
                match st.pick_victim() {
                    Some(v) => claim(&mut st, v),
                    None => {
                        log::warn!("cache at {} holds {} bytes, over its ceiling of {ceiling} bytes (set by the {}), and nothing more can be evicted", dir.display(), st.used(), limit.name());
                        break;
                    }
                }
            };
            store.evict_claimed(victim)?;
        }
        drop(_p);
        Ok(store)
    }

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

    /// Registers a torrent and persists its .torrent bytes (counted against the quota). Idempotent.
    /// Blocking: call it through `smol::unblock` from async code.
    pub fn add_torrent(&self, meta: &Metainfo, torrent_bytes: &[u8]) -> Result<(), StoreError> {
        let ih = meta.info_hash;
        let bad = || StoreError::BadGeometry {
            piece_length: meta.piece_length,
            total_length: meta.total_length,
            piece_count: meta.pieces.len(),
        };
        let count = u32::try_from(meta.pieces.len()).map_err(|_| bad())?;
        let _p = lock(&self.inner.persist);
        let fresh = {
            let mut st = self.state();
            match st.torrents.get_mut(&ih) {
                Some(t) => {
                    if t.geometry.piece_length() != meta.piece_length
                        || t.geometry.total_length() != meta.total_length
                        || t.geometry.piece_count() != count
                    {
                        return Err(bad());
                    }
                    if t.meta_on_disk {
                        t.hashes.get_or_insert_with(|| meta.pieces.clone());
                        return Ok(());
                    }
                    false
                }
                None => {
                    let g = Geometry::for_torrent(
                        meta.piece_length,
                        meta.total_length,
                        count,
                        self.inner.segment_target,
                    )
                    .ok_or_else(bad)?;
                    st.next_id += 1;
                    let t = Torrent::new(st.next_id, g, &st.charges);
                    st.torrents.insert(ih, t);
                    true
                }
            }
        };
        let undo = |store: &Store| {
            let mut st = store.state();
            if fresh {
                st.torrents.remove(&ih);
            } else if let Some(t) = st.torrents.get_mut(&ih) {
                t.meta_charge = 0;
            }
        };
        if let Err(e) = self.reserve_metadata(&ih, torrent_bytes.len() as u64, fresh) {
            undo(self);
            return Err(e);
        }
        let layout = &self.inner.layout;
        let files = &*self.inner.files;
        let tdir = layout.torrent_dir(&ih);
        let file = layout.torrent_file(&ih);
        let written = files
            .create_dir_all(&tdir)
            .map_err(io_err(&tdir, "create directory"))
            .and_then(|()| {
                let tmp = tdir.join(segment::TORRENT_TMP);
                files::replace_atomically(files, &file, &tmp, torrent_bytes)
                    .map_err(io_err(&file, "write"))
            });
        // No fsync of the root for the new directory here: the index that
        // will list the torrent is renamed into the root, and that rename is
        // made durable by a sync of the root, which makes the directory's
        // entry durable with it (the crash tests found this sync redundant).
        if let Err(e) = written {
            undo(self);
            if fresh {
                let _ = files.remove_dir_all(&tdir);
            }
            return Err(e);
        }
        if let Some(t) = self.state().torrents.get_mut(&ih) {
            t.meta_on_disk = true;
            t.needs_dir = false;
            t.hashes = Some(meta.pieces.clone());
        }
        let persisted = self.persist_index(None);
        self.sample_disk();
        persisted
    }

    /// Charges the .torrent file (and, for a fresh torrent, its directory and
    /// index record), evicting if needed. Caller holds `persist`.
    fn reserve_metadata(&self, ih: &InfoHash, len: u64, fresh: bool) -> Result<(), StoreError> {
        loop {
            let victim = {
                let mut st = self.state();
                let before = {
                    let t = st.torrents.get(ih).ok_or(StoreError::UnknownTorrent(*ih))?;
                    st.used() - if fresh { t.charge(&st.charges) } else { 0 }
                };
                let (index_hw, torrents_hw) = (st.index_high_water, st.torrents_high_water);
                st.note_index_len();
                let charge = st.charges.file(len);
                st.torrents.get_mut(ih).expect("checked above").meta_charge = charge;
                let after = st.used();
                let ceiling = st.ceiling().0;
                if after <= ceiling {
                    return Ok(());
                }
                st.torrents.get_mut(ih).expect("checked above").meta_charge = 0;
                (st.index_high_water, st.torrents_high_water) = (index_hw, torrents_hw);
                match st.pick_victim() {
                    Some(v) => claim(&mut st, v),
                    None => {
                        return Err(StoreError::QuotaExceeded {
                            needed: after - before,
                            free: ceiling.saturating_sub(before),
                        })
                    }
                }
            };
            self.evict_claimed(victim)?;
        }
    }

    /// The raw .torrent bytes of every persisted torrent, so the caller can re-parse them at start-up.
    /// Blocking (reads the files).
    pub fn torrents(&self) -> Vec<Vec<u8>> {
        let mut hashes: Vec<InfoHash> = self
            .state()
            .torrents
            .iter()
            .filter(|(_, t)| t.meta_on_disk)
            .map(|(ih, _)| *ih)
            .collect();
        hashes.sort();
        hashes
            .iter()
            .filter_map(|ih| {
                let path = self.inner.layout.torrent_file(ih);
                self.inner
                    .files
                    .read(&path)
                    .map_err(|e| log::warn!("cannot read {}: {e}", path.display()))
                    .ok()
            })
            .collect()
    }

    /// Forgets a torrent and frees all its bytes. Blocking: call it through `smol::unblock`.
    pub fn remove_torrent(&self, ih: &InfoHash) -> Result<(), StoreError> {
        let _p = lock(&self.inner.persist);
        let gate = self
            .state()
            .torrents
            .get(ih)
            .ok_or(StoreError::UnknownTorrent(*ih))?
            .gate
            .clone();
        // Waits for reads and writes in flight; none can start after this.
        let mut removed = gate.write().unwrap_or_else(|e| e.into_inner());
        *removed = true;
        // The index forgets it first: a crash after this point leaves only orphans.
        if let Err(e) = self.persist_index(Some(ih)) {
            *removed = false;
            return Err(e);
        }
        let tdir = self.inner.layout.torrent_dir(ih);
        let deleted = match self.inner.files.remove_dir_all(&tdir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
        {
            let mut st = self.state();
            if let Some(t) = st.torrents.remove(ih) {
                if deleted.is_err() {
                    // Whatever is left stays charged until the next open deletes it.
                    st.leaked += t.charge(&st.charges);
                }
            }
        }
        self.inner.space.notify(usize::MAX);
        self.inner.pieces.notify(usize::MAX);
        deleted.map_err(io_err(&tdir, "remove directory"))
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
