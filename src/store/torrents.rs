//! The torrents the cache knows: adding one (its .torrent persisted and
//! charged), listing them for start-up, and removing one with all its bytes.
//!
//! Owns a torrent's registration and its metadata's share of the quota. Must
//! never let the index list a torrent whose directory may be gone: removal
//! rewrites the index first, so a crash in between leaves only orphans.

use std::io;

use super::files;
use super::quota::Torrent;
use super::segment::{self, Geometry};
use super::write::claim;
use super::{io_err, lock, Store, StoreError};
use crate::format::metainfo::Metainfo;
use crate::format::InfoHash;

impl Store {
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
}
