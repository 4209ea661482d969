//! The torrents this box knows, and what the API says about each.
//!
//! A [`Session`] owns the registry of torrents: those added by magnet (which
//! may not have metadata yet) and those whose .torrent is in the store. It
//! never touches bytes of content: reads go through [`crate::stream`], and
//! writes come from tiers into [`crate::store`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::format::magnet::Magnet;
use crate::format::media;
use crate::format::metainfo::{Metainfo, MetainfoError};
use crate::format::InfoHash;
use crate::hybrid::{Demand, Phase, Tiers};
use crate::p2p::SwarmStats;
use crate::store::{Store, StoreError};

/// Why a torrent could not be added.
#[derive(Debug)]
pub enum AddError {
    Metainfo(MetainfoError),
    Store(StoreError),
}

impl std::fmt::Display for AddError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddError::Metainfo(e) => write!(f, "invalid .torrent: {e}"),
            AddError::Store(e) => write!(f, "cannot store the torrent: {e}"),
        }
    }
}

impl std::error::Error for AddError {}

/// Which tier delivered bytes. Counters per tier feed the status API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Cache,
    P2p,
    Http,
}

impl Tier {
    pub fn name(self) -> &'static str {
        match self {
            Tier::Cache => "cache",
            Tier::P2p => "p2p",
            Tier::Http => "http",
        }
    }
}

/// One torrent: its identity, its metadata once known, and its counters.
pub struct Torrent {
    pub info_hash: InfoHash,
    /// The magnet it was added with, if any: trackers and web seeds for later tiers.
    pub magnet: Option<Magnet>,
    /// Set once the info dict is known (from a .torrent, or later from peers).
    meta: Mutex<Option<Arc<Metainfo>>>,
    /// Bytes served to players, per tier they came from; the cache is the only tier today.
    served: [AtomicU64; 3],
    /// The last tier that served a read, for the status API.
    serving: Mutex<Option<Tier>>,
    /// What readers wait for, and the tiers' progress on it.
    pub demand: Demand,
    /// The task that runs the tiers for this torrent, once engaged; dropping it stops them.
    pub controller: Mutex<Option<smol::Task<()>>>,
    /// The P2P swarm's latest numbers.
    swarm: Mutex<SwarmStats>,
}

impl Torrent {
    fn new(info_hash: InfoHash, magnet: Option<Magnet>, meta: Option<Arc<Metainfo>>) -> Torrent {
        Torrent {
            info_hash,
            magnet,
            meta: Mutex::new(meta),
            served: Default::default(),
            serving: Mutex::new(None),
            demand: Demand::default(),
            controller: Mutex::new(None),
            swarm: Mutex::new(SwarmStats::default()),
        }
    }

    pub fn meta(&self) -> Option<Arc<Metainfo>> {
        self.meta.lock().unwrap().clone()
    }

    pub fn name(&self) -> Option<String> {
        match self.meta() {
            Some(m) => Some(m.name.clone()),
            None => self.magnet.as_ref().and_then(|m| m.display_name.clone()),
        }
    }

    /// The swarm's numbers for the status APIs (zero until P2P runs for it).
    pub fn swarm_stats(&self) -> SwarmStats {
        self.swarm.lock().unwrap().clone()
    }

    /// The swarm reports its numbers (once a second).
    pub fn set_swarm_stats(&self, stats: SwarmStats) {
        *self.swarm.lock().unwrap() = stats;
    }

    pub fn record_served(&self, tier: Tier, bytes: u64) {
        self.served[tier as usize].fetch_add(bytes, Ordering::Relaxed);
        *self.serving.lock().unwrap() = Some(tier);
    }

    /// The file a player gets when it does not name one: the largest video, or
    /// the largest file when the torrent holds no video.
    pub fn default_file(meta: &Metainfo) -> Option<usize> {
        media::choose_file(&meta.files, None)
            .ok()
            .or_else(|| media::largest_file(&meta.files))
    }
}

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
            if t.meta().is_some() {
                return Ok((t, false));
            }
        }
        // Store the canonical form around the original info bytes, so a re-parse
        // at the next start yields the same info hash.
        self.store
            .add_torrent(&meta, &meta.to_torrent_bytes())
            .map_err(AddError::Store)?;
        let meta = Arc::new(meta);
        let mut torrents = self.torrents.lock().unwrap();
        match torrents.get(&ih) {
            Some(t) => {
                *t.meta.lock().unwrap() = Some(meta);
                // Streams wait for the metadata on the demand's event.
                t.demand.notify();
                Ok((t.clone(), false))
            }
            None => {
                let t = Arc::new(Torrent::new(ih, None, Some(meta)));
                torrents.insert(ih, t.clone());
                drop(torrents);
                // Its swarm starts now: peers connect before the first read, and it seeds.
                if let Some(tiers) = &self.tiers {
                    tiers.engage(self, &t);
                }
                Ok((t, true))
            }
        }
    }

    /// Forgets a torrent and frees its cache. Returns false if it was unknown.
    pub fn remove(&self, ih: &InfoHash) -> Result<bool, StoreError> {
        let removed = self.torrents.lock().unwrap().remove(ih);
        if let Some(t) = &removed {
            // The controller holds the torrent; dropping it ends the cycle and the tiers' work.
            t.controller.lock().unwrap().take();
        }
        let known = removed.is_some();
        let stored = self.store.verified(ih).is_some();
        if stored {
            self.store.remove_torrent(ih)?;
        }
        Ok(known || stored)
    }

    /// The JSON the API answers for one torrent.
    pub fn status(&self, t: &Torrent) -> Value {
        let ih = t.info_hash.to_hex();
        let per_tier = |counters: [u64; 3]| -> Value {
            let tiers = [Tier::Cache, Tier::P2p, Tier::Http];
            tiers
                .iter()
                .map(|tier| (tier.name().to_string(), json!(counters[*tier as usize])))
                .collect()
        };
        let served = per_tier(t.served.each_ref().map(|c| c.load(Ordering::Relaxed)));
        let fetched = per_tier([
            0,
            t.demand.fetched_p2p.load(Ordering::Relaxed),
            t.demand.fetched_http.load(Ordering::Relaxed),
        ]);
        let swarm = t.swarm_stats();
        let phase = t.demand.phase();
        let (tier, error) = match &phase {
            Phase::Idle => (Value::Null, Value::Null),
            Phase::P2p { .. } => (json!("p2p"), Value::Null),
            Phase::Http => (json!("http"), Value::Null),
            Phase::Failed(reason) => (Value::Null, json!(reason)),
        };
        let mut status = json!({
            "infoHash": ih,
            "name": t.name(),
            "state": "waiting for metadata",
            "files": [],
            "selectedFile": null,
            "streamUrl": format!("/stream/proxy/{ih}"),
            "servingTier": t.serving.lock().unwrap().map(Tier::name),
            "workingTier": tier,
            "error": error,
            "bytesServed": served,
            "bytesFetched": fetched,
            "sources": t.demand.sources(),
            "peers": {
                "connected": swarm.peers,
                "unchoked": swarm.unchoked,
                "queued": swarm.queued,
                "known": swarm.unique,
                "downloadSpeed": swarm.download_speed as u64,
                "uploadSpeed": swarm.upload_speed as u64,
                "downloaded": swarm.downloaded,
                "uploaded": swarm.uploaded,
            },
        });
        let Some(meta) = t.meta() else {
            if matches!(phase, Phase::Failed(_)) {
                status["state"] = json!("failed");
            }
            return status;
        };
        let selected = Torrent::default_file(&meta);
        let files: Vec<Value> = meta
            .files
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.padding)
            .map(|(i, f)| json!({"index": i, "path": f.path.join("/"), "length": f.length}))
            .collect();
        let (verified_pieces, verified_bytes) = self.store.verified(&t.info_hash).unwrap_or((0, 0));
        let file_progress = selected.map(|i| self.file_progress(&meta, i));
        let state = match (file_progress, &phase) {
            (Some(p), _) if p >= 1.0 => "cached",
            (_, Phase::Failed(_)) => "failed",
            (_, Phase::Http) => "downloading",
            _ => "ready",
        };
        let extra = json!({
            "name": meta.name,
            "state": state,
            "files": files,
            "selectedFile": selected,
            "totalLength": meta.total_length,
            "pieces": meta.piece_count(),
            "verifiedPieces": verified_pieces,
            "verifiedBytes": verified_bytes,
            "progress": file_progress,
        });
        for (k, v) in extra.as_object().into_iter().flatten() {
            status[k] = v.clone();
        }
        status
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
