//! The in-memory state of the cache: per-torrent bitfields and segment
//! records, the byte charge of every file and directory, LRU order and pins.
//!
//! Owns the arithmetic that keeps the quota a ceiling. Must never do I/O (the
//! state sits behind a mutex that is never held across I/O or an await), and
//! must never charge less than `du -sB1` could count.
//!
//! # Charging
//! A segment is charged as if its file were not sparse (exFAT has no holes):
//! its length rounded up to allocation units, plus one unit of file-system
//! metadata (indirect or extent blocks) per 1024 units. A directory is charged
//! one unit plus a generous 320 bytes per entry it can ever hold (ext4 entries
//! are at most 264 bytes, exFAT entries for our short names 96–160) because
//! directories rarely shrink. The index is charged twice, for the old file and
//! the temp file that coexist during its atomic replacement.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::disk::{self, Disk, Limit};
use super::index::Bitfield;
use super::segment::Geometry;
use crate::format::InfoHash;

const DIRENT_BYTES: u64 = 320;
/// Smallest allocation unit assumed; ext4, tmpfs and most SD-card file systems use 4 KiB.
pub const MIN_UNIT: u64 = 4096;

/// Conservative sizes, in bytes, of what the file system allocates.
#[derive(Debug, Clone, Copy)]
pub struct Charges {
    /// Allocation unit: at least 4 KiB, or the cluster size the file system
    /// reports (exFAT reports its cluster as `st_blksize`).
    pub unit: u64,
}

impl Charges {
    pub fn file(&self, len: u64) -> u64 {
        let units = len.div_ceil(self.unit);
        (units + units.div_ceil(1024)) * self.unit
    }

    pub fn dir(&self, entries: u64) -> u64 {
        self.unit + (entries * DIRENT_BYTES).div_ceil(self.unit) * self.unit
    }
}

/// One segment of one torrent. Exists for every segment of the torrent (a
/// few dozen bytes each), whether or not its file exists.
#[derive(Debug, Default, Clone)]
pub struct Segment {
    /// The file length charged: the furthest byte written or reserved. Never
    /// lowered while the file exists, because the file never shrinks.
    pub charged_len: u64,
    /// LRU clock value of the last read or write.
    pub last_use: u64,
    /// Live `PinGuard`s covering it.
    pub pins: u32,
    /// Reads and writes in flight; a busy segment is never evicted.
    pub busy: u32,
    /// Holds verified pieces not yet fdatasync'ed.
    pub dirty: bool,
    /// The index on disk may list pieces in it, so eviction must rewrite the
    /// index before deleting the file.
    pub listed: bool,
    /// An eviction has claimed it.
    pub evicting: bool,
}

impl Segment {
    fn evictable(&self) -> bool {
        self.charged_len > 0 && self.pins == 0 && self.busy == 0 && !self.evicting
    }
}

pub struct Torrent {
    /// Distinguishes registrations of the same info hash, so a guard from a
    /// removed registration cannot unpin a newer one.
    pub id: u64,
    pub geometry: Geometry,
    /// SHA-1 of every piece. `None` for a torrent loaded from the index until
    /// the caller re-adds its metainfo: it can then be read but not written.
    pub hashes: Option<Vec<[u8; 20]>>,
    /// Readable: hash checked and bytes written.
    pub verified: Bitfield,
    /// Verified and fdatasync'ed; exactly what the next index will list.
    pub durable: Bitfield,
    pub segments: Vec<Segment>,
    pub dir_charge: u64,
    /// Charge of the `.torrent` file (reserved before it is written).
    pub meta_charge: u64,
    /// The `.torrent` file is durably on disk, so the index may list the torrent.
    pub meta_on_disk: bool,
    /// The directory vanished; the next write recreates it.
    pub needs_dir: bool,
    /// File I/O holds it for reading; removal takes it for writing and sets
    /// it, so no write can recreate a directory that removal just deleted.
    pub gate: Arc<RwLock<bool>>,
}

impl Torrent {
    pub fn new(id: u64, geometry: Geometry, charges: &Charges) -> Torrent {
        let n = geometry.piece_count();
        Torrent {
            id,
            geometry,
            hashes: None,
            verified: Bitfield::new(n),
            durable: Bitfield::new(n),
            segments: vec![Segment::default(); geometry.segment_count() as usize],
            // Every segment, the .torrent file and its temp file.
            dir_charge: charges.dir(u64::from(geometry.segment_count()) + 2),
            meta_charge: 0,
            meta_on_disk: false,
            needs_dir: false,
            gate: Arc::new(RwLock::new(false)),
        }
    }

    pub fn charge(&self, charges: &Charges) -> u64 {
        self.dir_charge
            + self.meta_charge
            + self
                .segments
                .iter()
                .map(|s| charges.file(s.charged_len))
                .sum::<u64>()
    }
}

/// A segment chosen for eviction.
#[derive(Debug, Clone, Copy)]
pub struct Victim {
    pub info_hash: InfoHash,
    pub id: u64,
    pub segment: u32,
}

pub struct State {
    /// `CACHE_MAX_DISK_MB`; the ceiling is lower when the disk is smaller (`ceiling`).
    pub quota: u64,
    /// The last reading of the file system under the cache (`None` until one succeeded).
    pub disk: Option<Disk>,
    pub charges: Charges,
    pub torrents: HashMap<InfoHash, Torrent>,
    /// LRU clock; bumped on every use.
    pub clock: u64,
    pub next_id: u64,
    /// What the root directory measured at open (directories never shrink).
    pub root_floor: u64,
    /// Most torrents registered at once since open: the root directory's entries.
    pub torrents_high_water: u64,
    /// Longest index encoded since open.
    pub index_high_water: u64,
    /// Files in the cache dir that the store does not own, counted, never touched.
    pub foreign: u64,
    /// Bytes that could not be deleted (removal failed half-way); charged until restart.
    pub leaked: u64,
    /// Verified bytes written since the last flush.
    pub unflushed: u64,
    /// The last index write failed: the next flush rewrites it even with nothing new.
    pub index_stale: bool,
}

impl State {
    /// The effective ceiling on `used`, and which of quota or disk sets it.
    pub fn ceiling(&self) -> (u64, Limit) {
        disk::ceiling(self.quota, self.disk.as_ref())
    }

    /// Records a reading of the file system, with what the cache is charged now.
    pub fn note_disk(&mut self, sample: disk::Sample) {
        self.disk = Some(Disk {
            sample,
            charged_then: self.used(),
        });
    }

    pub fn used(&self) -> u64 {
        let root = self
            .root_floor
            .max(self.charges.dir(2 + self.torrents_high_water));
        root + 2 * self.charges.file(self.index_high_water)
            + self.foreign
            + self.leaked
            + self
                .torrents
                .values()
                .map(|t| t.charge(&self.charges))
                .sum::<u64>()
    }

    pub fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// The least recently used segment that holds bytes and is neither pinned,
    /// busy nor already being evicted, over all torrents.
    pub fn pick_victim(&self) -> Option<Victim> {
        self.pick_victim_where(|_| true)
    }

    /// Like `pick_victim`, but among segments the index on disk does not list
    /// first: deleting one needs no index rewrite, which a full disk refuses.
    pub fn pick_victim_on_full_disk(&self) -> Option<Victim> {
        self.pick_victim_where(|s| !s.listed)
            .or_else(|| self.pick_victim())
    }

    fn pick_victim_where(&self, keep: impl Fn(&Segment) -> bool + Copy) -> Option<Victim> {
        self.torrents
            .iter()
            .flat_map(|(ih, t)| {
                t.segments
                    .iter()
                    .enumerate()
                    .filter(move |(_, s)| s.evictable() && keep(s))
                    .map(move |(i, s)| {
                        (
                            s.last_use,
                            Victim {
                                info_hash: *ih,
                                id: t.id,
                                segment: i as u32,
                            },
                        )
                    })
            })
            .min_by_key(|(used, _)| *used)
            .map(|(_, v)| v)
    }

    pub fn torrent_by_id(&mut self, ih: &InfoHash, id: u64) -> Option<&mut Torrent> {
        self.torrents.get_mut(ih).filter(|t| t.id == id)
    }

    /// Raises the index high-water mark to cover the current torrent set.
    pub fn note_index_len(&mut self) {
        let len =
            super::index::encoded_len(self.torrents.values().map(|t| t.geometry.piece_count()));
        self.index_high_water = self.index_high_water.max(len);
        self.torrents_high_water = self.torrents_high_water.max(self.torrents.len() as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_charge_rounds_up_and_adds_metadata() {
        let c = Charges { unit: 4096 };
        assert_eq!(c.file(0), 0);
        assert_eq!(c.file(1), 2 * 4096);
        assert_eq!(c.file(4096 * 1024), 1025 * 4096);
        assert_eq!(c.file(4096 * 1024 + 1), 1027 * 4096);
        assert_eq!(c.dir(0), 4096);
        assert_eq!(c.dir(12), 2 * 4096);
        assert_eq!(c.dir(13), 3 * 4096);
    }

    #[test]
    fn victim_is_least_recently_used_unpinned_segment() {
        let charges = Charges { unit: 4096 };
        let g = Geometry::new(16384, 16384 * 8, 8, 2).unwrap();
        let mut t = Torrent::new(1, g, &charges);
        for (i, s) in t.segments.iter_mut().enumerate() {
            s.charged_len = 100;
            s.last_use = 10 - i as u64;
        }
        t.segments[3].pins = 1; // the oldest, but pinned
        let ih = InfoHash([1; 20]);
        let mut state = State {
            quota: 1 << 30,
            disk: None,
            charges,
            torrents: HashMap::from([(ih, t)]),
            clock: 0,
            next_id: 2,
            root_floor: 0,
            torrents_high_water: 1,
            index_high_water: 0,
            foreign: 0,
            leaked: 0,
            unflushed: 0,
            index_stale: false,
        };
        assert_eq!(state.pick_victim().unwrap().segment, 2);
        state.torrents.get_mut(&ih).unwrap().segments[2].busy = 1;
        assert_eq!(state.pick_victim().unwrap().segment, 1);
    }
}
