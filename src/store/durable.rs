//! Durability: batched fdatasync, atomic index rewrites, and what to do when
//! the cache directory vanishes under the store.
//!
//! Owns the rule that the index lists a piece only after its segment was
//! fdatasync'ed. Must never list a torrent whose `.torrent` file is not on
//! disk, and never write the index when nothing changed (SD cards wear out).

use super::files;
use super::index;
use super::segment::Geometry;
use super::{io_err, is_not_found, lock, Busy, Store, StoreError};
use crate::format::InfoHash;

type Gate = std::sync::Arc<std::sync::RwLock<bool>>;

impl Store {
    /// Makes everything written so far durable: fdatasync of every segment
    /// written since the last flush, then an atomic rewrite of the index that
    /// lists their pieces. Blocking: call it through `smol::unblock`.
    ///
    /// The fdatasyncs (the slow part: seconds for 64 MiB on an SD card) run
    /// outside `persist`, so evictions, and the writers and readers waiting on
    /// them, do not queue behind a flush. The segments being synced are held
    /// busy meanwhile: one evicted and rewritten under the flush would
    /// otherwise be listed with bytes that were never synced.
    pub fn flush(&self) -> Result<(), StoreError> {
        let (work, busy) = {
            let mut st = self.state();
            st.unflushed = 0;
            let mut work: Vec<(InfoHash, u64, u32, Vec<u32>, Gate)> = Vec::new();
            for (ih, t) in st.torrents.iter_mut() {
                for (s, seg) in t
                    .segments
                    .iter_mut()
                    .enumerate()
                    .filter(|(_, seg)| seg.dirty && !seg.evicting)
                {
                    seg.dirty = false;
                    let pending: Vec<u32> = t
                        .geometry
                        .pieces_in(s as u32)
                        .filter(|p| t.verified.get(*p) && !t.durable.get(*p))
                        .collect();
                    if !pending.is_empty() {
                        seg.busy += 1;
                        work.push((*ih, t.id, s as u32, pending, t.gate.clone()));
                    }
                }
            }
            let busy: Vec<Busy> = work
                .iter()
                .map(|(ih, id, s, _, _)| Busy {
                    inner: self.inner.clone(),
                    info_hash: *ih,
                    id: *id,
                    segments: *s..*s + 1,
                })
                .collect();
            (work, busy)
        };
        let layout = &self.inner.layout;
        let files = &*self.inner.files;
        let synced = work.iter().try_for_each(|(ih, _, s, _, gate)| {
            // A removal in progress waits for the sync; a finished one leaves nothing to sync.
            let removed = gate.read().unwrap_or_else(|e| e.into_inner());
            if *removed {
                return Ok(());
            }
            let path = layout.segment(ih, *s);
            files.sync_data(&path).map_err(io_err(&path, "sync"))
        });
        let synced = synced.and_then(|()| {
            let mut dirs: Vec<&InfoHash> = work.iter().map(|w| &w.0).collect();
            dirs.dedup();
            dirs.into_iter().try_for_each(|ih| {
                let d = layout.torrent_dir(ih);
                if files.metadata(&d).is_err() {
                    // Removed meanwhile: nothing of it will be listed.
                    return Ok(());
                }
                files.sync_dir(&d).map_err(io_err(&d, "sync"))
            })
        });
        let _p = lock(&self.inner.persist);
        {
            let mut st = self.state();
            for (ih, id, s, pending, _) in &work {
                let Some(t) = st.torrent_by_id(ih, *id) else {
                    continue;
                };
                if synced.is_err() {
                    t.segments[*s as usize].dirty = true;
                    continue;
                }
                for p in pending.iter().filter(|p| t.verified.get(**p)) {
                    t.durable.set(*p, true);
                }
            }
        }
        // Busy guards take the state lock when they drop.
        drop(busy);
        if let Err(e) = synced {
            if is_not_found(&e) {
                self.forget_lost();
            }
            return Err(e);
        }
        // An idle cache does not rewrite its index: SD cards wear out.
        if work.is_empty() && !self.state().index_stale {
            return Ok(());
        }
        let persisted = self.persist_index(None);
        if persisted.as_ref().is_err_and(is_not_found) {
            self.forget_lost();
        }
        self.sample_disk();
        persisted
    }

    /// Writes the index of durable pieces atomically (skipping `exclude`), then
    /// records which segments it lists. Caller holds `persist`.
    pub(super) fn persist_index(&self, exclude: Option<&InfoHash>) -> Result<(), StoreError> {
        let snapshot: Vec<(InfoHash, u64, Geometry, index::Bitfield)> = {
            let st = self.state();
            let mut v: Vec<_> = st
                .torrents
                .iter()
                .filter(|(ih, t)| t.meta_on_disk && Some(*ih) != exclude)
                .map(|(ih, t)| (*ih, t.id, t.geometry, t.durable.clone()))
                .collect();
            v.sort_by_key(|e| e.0);
            v
        };
        let bytes = index::encode(snapshot.iter().map(|(ih, _, g, b)| (ih, g, b)));
        let layout = &self.inner.layout;
        let path = layout.index();
        let written =
            files::replace_atomically(&*self.inner.files, &path, &layout.index_tmp(), &bytes)
                .map_err(io_err(&path, "write"));
        let mut st = self.state();
        st.index_high_water = st.index_high_water.max(bytes.len() as u64);
        st.index_stale = written.is_err();
        for (ih, id, g, durable) in &snapshot {
            let Some(t) = st.torrent_by_id(ih, *id) else {
                continue;
            };
            for (s, seg) in t.segments.iter_mut().enumerate() {
                let in_snapshot = durable.any_in(g.pieces_in(s as u32));
                // After a failure either index may be on disk: keep both claims.
                seg.listed = in_snapshot || (written.is_err() && seg.listed);
            }
        }
        written
    }

    /// After an I/O error: if files vanished, forget what they held.
    pub(super) async fn after_io_error(&self, e: &StoreError) {
        if is_not_found(e) {
            let store = self.clone();
            smol::unblock(move || {
                let _p = lock(&store.inner.persist);
                store.forget_lost();
            })
            .await;
        }
    }

    /// Forgets every torrent whose directory (or the whole cache dir) vanished:
    /// its pieces are no longer readable, its next write recreates the
    /// directory. Caller holds `persist`.
    pub(super) fn forget_lost(&self) {
        let layout = &self.inner.layout;
        let is_dir = |p: &std::path::Path| self.inner.files.metadata(p).is_ok_and(|m| m.is_dir);
        let root_gone = !is_dir(&layout.root);
        let all: Vec<InfoHash> = self.state().torrents.keys().copied().collect();
        let lost: Vec<InfoHash> = all
            .into_iter()
            .filter(|ih| root_gone || !is_dir(&layout.torrent_dir(ih)))
            .collect();
        if lost.is_empty() {
            return;
        }
        {
            let mut st = self.state();
            for ih in &lost {
                log::warn!("cache directory for {ih} vanished; its pieces are forgotten");
                let Some(t) = st.torrents.get_mut(ih) else {
                    continue;
                };
                t.verified.clear();
                t.durable.clear();
                for seg in t.segments.iter_mut() {
                    if seg.busy == 0 {
                        seg.charged_len = 0;
                    }
                    (seg.dirty, seg.listed) = (false, false);
                }
                (t.meta_on_disk, t.meta_charge, t.needs_dir) = (false, 0, true);
            }
        }
        self.inner.space.notify(usize::MAX);
        self.inner.pieces.notify(usize::MAX);
        if !root_gone {
            if let Err(e) = self.persist_index(None) {
                log::warn!("{e}");
            }
        }
    }
}
