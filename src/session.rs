//! The torrents this box knows: the registry, and nothing else.
//!
//! A [`Session`] maps info hashes to torrents: those added by magnet (which
//! may not have metadata yet) and those whose .torrent is in the store. It
//! never touches bytes of content (reads go through [`crate::stream`], and
//! writes come from tiers into [`crate::store`]), never runs a torrent's
//! tasks (the lifecycle owner, [`crate::hybrid`], does), and never shapes
//! JSON (the API's shapes live in [`crate::server`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use crate::demand::Tier;
pub use crate::hybrid::{AddError, Torrent};

use async_io::Timer;
use futures_lite::future;

use crate::format::magnet::Magnet;
use crate::format::metainfo::Metainfo;
use crate::format::InfoHash;
use crate::hybrid::Tiers;
use crate::store::{Store, StoreError};

/// How long a removed torrent's trackers get to hear `stopped`: a tracker
/// that does not answer in this long is not waited for.
const STOP_ANNOUNCE: Duration = Duration::from_secs(4);

/// The registry of torrents, shared by the server and the CLI.
#[derive(Clone)]
pub struct Session {
    pub store: Store,
    /// The tiers beyond the cache; None where only the cache is wanted (`streme import`).
    pub tiers: Option<Tiers>,
    torrents: Arc<Mutex<HashMap<InfoHash, Arc<Torrent>>>>,
}

impl Session {
    /// Loads every torrent whose metadata is in the store. A .torrent that no
    /// longer parses is logged and skipped, never fatal: the box must start.
    pub fn new(store: Store, tiers: Option<Tiers>) -> Session {
        let mut torrents = HashMap::new();
        for bytes in store.torrents() {
            // Re-registering gives the store the piece hashes it verifies writes against.
            match Metainfo::from_torrent_bytes(&bytes)
                .map_err(AddError::Metainfo)
                .and_then(|meta| {
                    store.add_torrent(&meta, &bytes).map_err(AddError::Store)?;
                    Ok(meta)
                }) {
                Ok(meta) => {
                    let ih = meta.info_hash;
                    torrents.insert(ih, Arc::new(Torrent::new(ih, None, Some(Arc::new(meta)))));
                }
                Err(e) => {
                    log::warn!("[Cache] Skipping a stored .torrent that no longer parses: {e}")
                }
            }
        }
        log::info!("[Cache] {} torrent(s) known from the cache", torrents.len());
        Session {
            store,
            tiers,
            torrents: Arc::new(Mutex::new(torrents)),
        }
    }

    pub fn get(&self, ih: &InfoHash) -> Option<Arc<Torrent>> {
        self.torrents.lock().unwrap().get(ih).cloned()
    }

    pub fn list(&self) -> Vec<Arc<Torrent>> {
        let mut all: Vec<_> = self.torrents.lock().unwrap().values().cloned().collect();
        all.sort_by_key(|t| t.info_hash);
        all
    }

    /// Starts the tiers of every torrent known now, so the cache is seeded.
    pub fn engage_all(&self) {
        if let Some(tiers) = &self.tiers {
            for t in self.list() {
                tiers.engage(self, &t);
            }
        }
    }

    /// Adds a torrent known by magnet. Returns it, and whether it is new.
    pub fn add_magnet(&self, magnet: Magnet) -> (Arc<Torrent>, bool) {
        let mut torrents = self.torrents.lock().unwrap();
        if let Some(t) = torrents.get(&magnet.info_hash) {
            return (t.clone(), false);
        }
        let ih = magnet.info_hash;
        let t = Arc::new(Torrent::new(ih, Some(magnet), None));
        torrents.insert(ih, t.clone());
        drop(torrents);
        // Without metadata nothing can play: start finding it now, as the seed did.
        log::info!("[Hybrid] Getting stream for {ih}");
        if let Some(tiers) = &self.tiers {
            tiers.engage(self, &t);
        }
        (t, true)
    }

    /// Adds a torrent from .torrent bytes, persisting its metadata in the store.
    /// A torrent already known by magnet gains its metadata.
    pub fn add_torrent_bytes(&self, bytes: &[u8]) -> Result<(Arc<Torrent>, bool), AddError> {
        let meta = Metainfo::from_torrent_bytes(bytes).map_err(AddError::Metainfo)?;
        self.add_metainfo(meta)
    }

    pub fn add_metainfo(&self, meta: Metainfo) -> Result<(Arc<Torrent>, bool), AddError> {
        let ih = meta.info_hash;
        if let Some(t) = self.get(&ih) {
            // A torrent known by magnet gains its metadata; one that has it keeps its own.
            t.adopt_meta(&self.store, meta)?;
            return Ok((t, false));
        }
        let t = Arc::new(Torrent::new(ih, None, None));
        t.adopt_meta(&self.store, meta)?;
        let mut torrents = self.torrents.lock().unwrap();
        if let Some(known) = torrents.get(&ih) {
            // Added by someone else meanwhile: theirs stays.
            return Ok((known.clone(), false));
        }
        torrents.insert(ih, t.clone());
        drop(torrents);
        // Its swarm starts now: peers connect before the first read, and it seeds.
        if let Some(tiers) = &self.tiers {
            tiers.engage(self, &t);
        }
        Ok((t, true))
    }

    /// Forgets a torrent and frees its cache. Returns false if it was unknown.
    ///
    /// Removal is terminal ([`Torrent::remove`]): its tasks end now, its
    /// trackers hear `stopped` (within [`STOP_ANNOUNCE`]), and the cache is
    /// freed on the blocking pool, never on the executor. A torrent added
    /// again with the same hash is a new one, with a new demand and swarm.
    pub async fn remove(&self, ih: &InfoHash) -> Result<bool, StoreError> {
        let removed = self.torrents.lock().unwrap().remove(ih);
        let swarm = removed.as_ref().and_then(|t| t.remove());
        let known = removed.is_some();
        let stopped = async {
            if let Some(s) = swarm {
                future::or(s.stop_announcing(), async {
                    Timer::after(STOP_ANNOUNCE).await;
                })
                .await;
            }
        };
        let stored = self.store.verified(ih).is_some();
        let (store, ih) = (self.store.clone(), *ih);
        let freed = async move {
            if stored {
                smol::unblock(move || store.remove_torrent(&ih)).await
            } else {
                Ok(())
            }
        };
        let ((), freed) = future::zip(stopped, freed).await;
        freed?;
        Ok(known || stored)
    }

    /// The fraction of a file's pieces that are verified in the store.
    pub fn file_progress(&self, meta: &Metainfo, file: usize) -> f64 {
        let f = &meta.files[file];
        if f.length == 0 {
            return 1.0;
        }
        let first = (f.offset / meta.piece_length) as u32;
        let last = ((f.offset + f.length - 1) / meta.piece_length) as u32;
        let have = (first..=last)
            .filter(|p| self.store.has_piece(&meta.info_hash, *p))
            .count();
        have as f64 / (last - first + 1) as f64
    }
}

impl AsRef<Store> for Session {
    fn as_ref(&self) -> &Store {
        &self.store
    }
}
