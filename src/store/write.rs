//! The write path: hash off the loop, reserve quota (evicting least-recently
//! used unpinned segments), write, then make the piece readable.
//!
//! Owns the order that keeps both promises: a piece is readable only after its
//! SHA-1 matched and its bytes are in the file, and no byte reaches the disk
//! before its space is charged. Must never hold the state lock across I/O or
//! an await, and never delete a segment the on-disk index still lists.

use std::io;
use std::ops::Range;
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};

use super::disk::Limit;
use super::error::is_no_space;
use super::quota::{State, Victim};
use super::segment::Geometry;
use super::{io_err, lock, wait_until, Busy, Store, StoreError, FLUSH_EVERY_BYTES};
use crate::format::InfoHash;

impl Store {
    /// Verifies SHA-1 (off the event loop) against `meta.pieces[piece]`, reserves quota (evicting
    /// least-recently-used unpinned segments of any torrent), writes, then makes the piece readable
    /// and wakes waiters. `wait`: how long to wait for space when everything evictable is pinned;
    /// `Duration::ZERO` fails at once with `QuotaExceeded`. Writing an already-verified piece is Ok
    /// and writes nothing. `data` goes to the [`Store::piece_pool`] afterwards, whatever the outcome.
    pub async fn write_piece(
        &self,
        ih: &InfoHash,
        piece: u32,
        data: Vec<u8>,
        wait: Duration,
    ) -> Result<(), StoreError> {
        let (result, failed) = self.write_piece_keeping_failed(ih, piece, data, wait).await;
        if let Some(buf) = failed {
            self.inner.pool.put(buf);
        }
        result
    }

    /// [`Store::write_piece`], except that a piece failing its hash comes back
    /// with the error: the swarm hashes its blocks per sender to find out whose
    /// were wrong. Any other buffer goes back to the pool.
    pub async fn write_piece_keeping_failed(
        &self,
        ih: &InfoHash,
        piece: u32,
        data: Vec<u8>,
        wait: Duration,
    ) -> (Result<(), StoreError>, Option<Vec<u8>>) {
        let mut data = Some(data);
        let result = self.write_piece_from(ih, piece, &mut data, wait).await;
        let failed = match (&result, data) {
            (Err(StoreError::HashMismatch { .. }), Some(buf)) => Some(buf),
            (_, Some(buf)) => {
                self.inner.pool.put(buf);
                None
            }
            (_, None) => None,
        };
        (result, failed)
    }

    /// [`Store::write_piece`], leaving the buffer in `slot` when it returns (it is
    /// away only while the blocking pool hashes or writes it, and a dropped future
    /// loses it then).
    async fn write_piece_from(
        &self,
        ih: &InfoHash,
        piece: u32,
        slot: &mut Option<Vec<u8>>,
        wait: Duration,
    ) -> Result<(), StoreError> {
        let len = slot.as_ref().map_or(0, Vec::len);
        let (expected, geometry) = {
            let st = self.state();
            let t = st.torrents.get(ih).ok_or(StoreError::UnknownTorrent(*ih))?;
            let hashes = t.hashes.as_ref().ok_or(StoreError::UnknownTorrent(*ih))?;
            check_piece(&t.geometry, piece)?;
            let want = t.geometry.piece_len(piece);
            if len as u64 != want {
                return Err(StoreError::BadLength {
                    piece,
                    expected: want,
                    got: len as u64,
                });
            }
            if t.verified.get(piece) {
                return Ok(());
            }
            (hashes[piece as usize], t.geometry)
        };
        let data = slot.take().expect("the buffer is in its slot");
        let (data, digest) = smol::unblock(move || {
            let digest: [u8; 20] = Sha1::digest(&data).into();
            (data, digest)
        })
        .await;
        *slot = Some(data);
        if digest != expected {
            return Err(StoreError::HashMismatch { piece });
        }
        let segment = geometry.segment_of(piece);
        let busy = self.busy(&mut self.state(), ih, segment..segment + 1)?;
        self.reserve(&busy, segment, geometry.end_in_segment(piece), wait)
            .await?;
        let (path, tdir, gate, needs_dir) = {
            let st = self.state();
            let t = st
                .torrents
                .get(ih)
                .filter(|t| t.id == busy.id)
                .ok_or(StoreError::UnknownTorrent(*ih))?;
            if t.verified.get(piece) {
                return Ok(());
            }
            let layout = &self.inner.layout;
            (
                layout.segment(ih, segment),
                layout.torrent_dir(ih),
                t.gate.clone(),
                t.needs_dir,
            )
        };
        let offset = geometry.piece_offset(piece) - u64::from(segment) * geometry.span();
        loop {
            let data = slot.take().expect("the buffer is in its slot");
            let (store, path, tdir, gate) =
                (self.clone(), path.clone(), tdir.clone(), gate.clone());
            let unknown = StoreError::UnknownTorrent(*ih);
            let (back, written) = smol::unblock(move || {
                let removed = gate.read().unwrap_or_else(|e| e.into_inner());
                if *removed {
                    return (data, Err(unknown));
                }
                let files = &*store.inner.files;
                let written = if needs_dir {
                    files
                        .create_dir_all(&tdir)
                        .map_err(io_err(&tdir, "create directory"))
                } else {
                    Ok(())
                }
                .and_then(|()| {
                    files
                        .write_at(&path, offset, &data)
                        .map_err(io_err(&path, "write"))
                });
                // The disk moves as this cache and other programs write: a new
                // reading after every write keeps the ceiling honest.
                store.sample_disk();
                (data, written)
            })
            .await;
            *slot = Some(back);
            match written {
                Ok(()) => break,
                Err(e) if is_no_space(&e) => {
                    // The disk holds less than the charge said (other programs
                    // wrote, or the file system's own overhead): evict and retry.
                    if !self.evict_one().await? {
                        let (free, used) = {
                            let st = self.state();
                            (st.disk.map_or(0, |d| d.sample.free), st.used())
                        };
                        drop(busy);
                        return Err(StoreError::DiskFull {
                            needed: len as u64,
                            free,
                            used,
                        });
                    }
                    log::info!("cache disk full writing piece {piece} of {ih}: evicted a segment, retrying");
                }
                Err(e) => {
                    drop(busy);
                    self.after_io_error(&e).await;
                    return Err(e);
                }
            }
        }
        let flush_due = {
            let mut st = self.state();
            let tick = st.tick();
            let len = geometry.piece_len(piece);
            let Some(t) = st.torrent_by_id(ih, busy.id) else {
                return Err(StoreError::UnknownTorrent(*ih));
            };
            t.needs_dir &= !needs_dir;
            t.verified.set(piece, true);
            let seg = &mut t.segments[segment as usize];
            seg.dirty = true;
            seg.last_use = tick;
            st.unflushed += len;
            st.unflushed >= FLUSH_EVERY_BYTES
        };
        drop(busy);
        self.inner.pieces.notify(usize::MAX);
        if flush_due {
            let store = self.clone();
            if let Err(e) = smol::unblock(move || store.flush()).await {
                // The piece is written and readable; only its durability is late.
                log::warn!("cache flush failed: {e}");
            }
        }
        Ok(())
    }

    /// Marks `segments` busy. The returned guard must be dropped after `st`
    /// (its drop takes the lock).
    pub(super) fn busy(
        &self,
        st: &mut State,
        ih: &InfoHash,
        segments: Range<u32>,
    ) -> Result<Busy, StoreError> {
        let tick = st.tick();
        let t = st
            .torrents
            .get_mut(ih)
            .ok_or(StoreError::UnknownTorrent(*ih))?;
        for s in segments.clone() {
            let seg = &mut t.segments[s as usize];
            seg.busy += 1;
            seg.last_use = tick;
        }
        Ok(Busy {
            inner: self.inner.clone(),
            info_hash: *ih,
            id: t.id,
            segments,
        })
    }

    /// Charges the growth of `segment` to at least `end` bytes before anything is written.
    pub(super) async fn reserve(
        &self,
        busy: &Busy,
        segment: u32,
        end: u64,
        wait: Duration,
    ) -> Result<(), StoreError> {
        let ih = &busy.info_hash;
        let deadline = Instant::now().checked_add(wait);
        let mut resampled = false;
        loop {
            let listener = self.inner.space.listen();
            let (victim, needed, free, limit) = {
                let mut st = self.state();
                let (charges, used, (ceiling, limit)) = (st.charges, st.used(), st.ceiling());
                let t = st
                    .torrent_by_id(ih, busy.id)
                    .ok_or(StoreError::UnknownTorrent(*ih))?;
                let seg = &mut t.segments[segment as usize];
                let grown = seg.charged_len.max(end);
                let needed = charges.file(grown) - charges.file(seg.charged_len);
                if used + needed <= ceiling {
                    seg.charged_len = grown;
                    return Ok(());
                }
                (
                    st.pick_victim().map(|v| claim(&mut st, v)),
                    needed,
                    ceiling.saturating_sub(used),
                    limit,
                )
            };
            match victim {
                Some(v) => {
                    let store = self.clone();
                    smol::unblock(move || {
                        let _p = lock(&store.inner.persist);
                        store.evict_claimed(v)
                    })
                    .await?;
                }
                // The disk may have room again (another program freed some):
                // read it once more before waiting on an unpin.
                None if limit == Limit::Disk && !resampled => {
                    resampled = true;
                    let store = self.clone();
                    smol::unblock(move || store.sample_disk()).await;
                }
                None => {
                    if !wait_until(listener, deadline).await {
                        return Err(StoreError::QuotaExceeded { needed, free });
                    }
                }
            }
        }
    }

    /// After ENOSPC: evicts the least recently used evictable segment, one
    /// the index does not list if there is one, off the loop. Returns false
    /// when nothing can be evicted.
    pub(super) async fn evict_one(&self) -> Result<bool, StoreError> {
        let victim = {
            let mut st = self.state();
            st.pick_victim_on_full_disk().map(|v| claim(&mut st, v))
        };
        let Some(v) = victim else {
            return Ok(false);
        };
        let store = self.clone();
        smol::unblock(move || {
            let _p = lock(&store.inner.persist);
            store.evict_claimed(v)
        })
        .await?;
        Ok(true)
    }

    /// Deletes a claimed segment: index first, then the file, then the charge.
    /// Caller holds `persist`.
    pub(super) fn evict_claimed(&self, v: Victim) -> Result<(), StoreError> {
        let listed = {
            let mut st = self.state();
            let Some(t) = st.torrent_by_id(&v.info_hash, v.id) else {
                return Ok(());
            };
            for p in t.geometry.pieces_in(v.segment) {
                t.durable.set(p, false);
            }
            t.segments[v.segment as usize].listed
        };
        let unclaim = |store: &Store| {
            if let Some(t) = store.state().torrent_by_id(&v.info_hash, v.id) {
                t.segments[v.segment as usize].evicting = false;
            }
            store.inner.space.notify(usize::MAX);
        };
        if listed {
            match self.persist_index(None) {
                Ok(()) => {}
                // The disk is too full for the new index: drop the old one
                // instead, which also stops it listing the victim.
                Err(e) if is_no_space(&e) => {
                    if let Err(e) = self.drop_index_for_space() {
                        unclaim(self);
                        return Err(e);
                    }
                }
                Err(e) => {
                    unclaim(self);
                    return Err(e);
                }
            }
        }
        let path = self.inner.layout.segment(&v.info_hash, v.segment);
        match self.inner.files.remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                unclaim(self);
                return Err(io_err(&path, "delete")(e));
            }
            _ => log::debug!("evicted {}", path.display()),
        }
        if let Some(t) = self.state().torrent_by_id(&v.info_hash, v.id) {
            let seg = &mut t.segments[v.segment as usize];
            (seg.charged_len, seg.dirty, seg.listed, seg.evicting) = (0, false, false, false);
        }
        self.sample_disk();
        self.inner.space.notify(usize::MAX);
        Ok(())
    }
}

impl Store {
    /// On a disk too full to rewrite the index: deletes it (durably), so that
    /// no segment is listed any more and any can be deleted. A crash before
    /// the next flush then finds an empty cache, never a wrong byte; the next
    /// flush writes a whole index again. Caller holds `persist`.
    fn drop_index_for_space(&self) -> Result<(), StoreError> {
        let layout = &self.inner.layout;
        let files = &*self.inner.files;
        let index = layout.index();
        match files.remove_file(&index) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io_err(&index, "delete")(e))
            }
            _ => {}
        }
        files
            .sync_dir(&layout.root)
            .map_err(io_err(&layout.root, "sync"))?;
        log::warn!(
            "cache disk full: {} dropped until the next flush, to make room",
            index.display()
        );
        let mut st = self.state();
        st.index_stale = true;
        for t in st.torrents.values_mut() {
            for seg in t.segments.iter_mut() {
                seg.listed = false;
            }
        }
        Ok(())
    }
}

/// Claims `v` for eviction: its pieces stop being readable at once (no new
/// reader can start on it), and no other writer picks it.
pub(super) fn claim(st: &mut State, v: Victim) -> Victim {
    if let Some(t) = st.torrent_by_id(&v.info_hash, v.id) {
        t.segments[v.segment as usize].evicting = true;
        for p in t.geometry.pieces_in(v.segment) {
            t.verified.set(p, false);
        }
    }
    v
}

pub(super) fn check_piece(g: &Geometry, piece: u32) -> Result<(), StoreError> {
    if piece >= g.piece_count() {
        return Err(StoreError::PieceOutOfRange {
            piece,
            count: g.piece_count(),
        });
    }
    Ok(())
}
