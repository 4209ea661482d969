//! One torrent as the lifecycle owner holds it: its identity, its metadata
//! once known, its demand, its counters, and the handles of its tasks.
//!
//! Must never reach the registry ([`crate::session`] sits above it): adopting
//! metadata goes through the store handle it is given, and the registry
//! decides whether a torrent exists.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use event_listener::Event;

use super::lifecycle::Life;
use crate::demand::{self, Demand, Tier};
use crate::format::magnet::Magnet;
use crate::format::metainfo::{Metainfo, MetainfoError};
use crate::format::InfoHash;
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

/// One torrent: its identity, its metadata once known, and its counters.
pub struct Torrent {
    pub info_hash: InfoHash,
    /// The magnet it was added with, if any: trackers and web seeds for later tiers.
    pub magnet: Option<Magnet>,
    /// Set once the info dict is known (from a .torrent, or later from peers).
    meta: Mutex<Option<Arc<Metainfo>>>,
    /// Bytes served to players, per tier they came from.
    served: [AtomicU64; 3],
    /// The last tier that served a read, for the status API.
    serving: Mutex<Option<Tier>>,
    /// What readers wait for, and the tiers' progress on it. Shared with the
    /// tiers by handle, never by a reference to this torrent.
    pub demand: Arc<Demand>,
    /// Its state and the handles of every task it owns (see `lifecycle`).
    pub(super) life: Mutex<Life>,
    /// Notified at every change of state: a failed torrent's controller waits on it.
    pub(super) retry: Event,
}

impl Torrent {
    pub fn new(
        info_hash: InfoHash,
        magnet: Option<Magnet>,
        meta: Option<Arc<Metainfo>>,
    ) -> Torrent {
        Torrent {
            info_hash,
            magnet,
            meta: Mutex::new(meta),
            served: Default::default(),
            serving: Mutex::new(None),
            demand: Arc::new(Demand::default()),
            life: Mutex::new(Life::default()),
            retry: Event::new(),
        }
    }

    pub fn meta(&self) -> Option<Arc<Metainfo>> {
        self.meta.lock().unwrap().clone()
    }

    /// Stores the metadata and makes it this torrent's; a torrent that has it
    /// already keeps its own. Blocking (the store writes the .torrent): call
    /// it off the executor.
    pub fn adopt_meta(&self, store: &Store, meta: Metainfo) -> Result<Arc<Metainfo>, AddError> {
        if let Some(m) = self.meta() {
            return Ok(m);
        }
        // Store the canonical form around the original info bytes, so a re-parse
        // at the next start yields the same info hash.
        store
            .add_torrent(&meta, &meta.to_torrent_bytes())
            .map_err(AddError::Store)?;
        let meta = Arc::new(meta);
        *self.meta.lock().unwrap() = Some(meta.clone());
        // Streams wait for the metadata on the demand's event.
        self.demand.notify();
        Ok(meta)
    }

    pub fn name(&self) -> Option<String> {
        match self.meta() {
            Some(m) => Some(m.name.clone()),
            None => self.magnet.as_ref().and_then(|m| m.display_name.clone()),
        }
    }

    /// The swarm's numbers for the status APIs (zero until P2P runs for it).
    pub fn swarm_stats(&self) -> SwarmStats {
        match &self.life.lock().unwrap().swarm {
            Some(s) => s.stats(),
            None => SwarmStats::default(),
        }
    }

    pub fn record_served(&self, tier: Tier, bytes: u64) {
        self.served[tier as usize].fetch_add(bytes, Ordering::Relaxed);
        *self.serving.lock().unwrap() = Some(tier);
    }

    /// Bytes served to players, per tier (cache, p2p, http).
    pub fn served(&self) -> [u64; 3] {
        self.served.each_ref().map(|c| c.load(Ordering::Relaxed))
    }

    /// The last tier that served a read.
    pub fn serving(&self) -> Option<Tier> {
        *self.serving.lock().unwrap()
    }

    /// The file a player gets when it does not name one: the largest video, or
    /// the largest file when the torrent holds no video.
    pub fn default_file(meta: &Metainfo) -> Option<usize> {
        demand::default_file(meta)
    }
}
