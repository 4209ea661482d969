//! The disk as it really is: how much the file system under the cache can
//! still take, so that a disk smaller than the quota works like a small quota.
//!
//! Owns the arithmetic of the effective ceiling: the smaller of the quota and
//! what the file system can hold for the cache (its free space, plus what the
//! cache already uses, minus a reserve). Must never do anything but read the
//! file system's counters (`statvfs`), and never run on the async loop.
//!
//! # Design
//! The free space is a sample, taken in the store's blocking sections (open,
//! after each segment write, each eviction and each flush), stored with what
//! the cache was charged at that moment. Between samples the ceiling is
//! `min(free_then + charged_then, total) - reserve`: what the cache may hold
//! in total. It moves as other programs fill or free the disk. The sample can
//! be stale or the charge can run ahead of the real bytes (reservations not
//! yet written), so an ENOSPC can still happen; the write path answers it by
//! taking a new sample, evicting, and trying again.

use std::io;
use std::path::Path;

/// Space kept free on the cache's file system, so that the index and the
/// `.torrent` temp files can always be rewritten, and other programs (logs,
/// the system on an SD card that boots the board) are not starved: 2% of the
/// file system, at least 1 MiB, at most 64 MiB (a 32 GB SD card keeps 64 MiB;
/// a 40 MB tmpfs in the tests keeps 1 MiB).
pub fn reserve_for(total: u64) -> u64 {
    (total / 50).clamp(1 << 20, 64 << 20)
}

/// One reading of the file system under the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Bytes an unprivileged writer may still allocate (`f_bavail`; the
    /// service runs as a dynamic user, so root's reserve is not ours).
    pub free: u64,
    /// Size of the file system.
    pub total: u64,
}

/// Reads the file system's counters for the file system holding `path`.
// `statvfs` fields are u64 on Linux's raw backend but `c_ulong` on some libc
// targets: the conversions are identities on this host, not on every board.
#[allow(clippy::useless_conversion)]
pub fn measure(path: &Path) -> io::Result<Sample> {
    let s = rustix::fs::statvfs(path).map_err(io::Error::from)?;
    let unit = u64::from(s.f_frsize).max(1);
    Ok(Sample {
        free: u64::from(s.f_bavail).saturating_mul(unit),
        total: u64::from(s.f_blocks).saturating_mul(unit),
    })
}

/// Why the effective ceiling is what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `CACHE_MAX_DISK_MB` is the smaller: the disk has room for all of it.
    Quota,
    /// The file system cannot hold the quota.
    Disk,
}

impl Limit {
    pub fn name(self) -> &'static str {
        match self {
            Limit::Quota => "quota",
            Limit::Disk => "disk",
        }
    }
}

/// The last sample, with what the cache was charged when it was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disk {
    pub sample: Sample,
    pub charged_then: u64,
}

impl Disk {
    /// What the cache may hold in total according to this sample, and never
    /// more than the whole file system less the reserve: the charge runs
    /// ahead of the bytes on disk (reservations not yet written, holes in a
    /// segment written out of order), and those bytes are in `free` too.
    pub fn limit(&self) -> u64 {
        (self.sample.free.saturating_add(self.charged_then))
            .min(self.sample.total)
            .saturating_sub(reserve_for(self.sample.total))
    }
}

/// The effective ceiling: the quota, or less when the disk is smaller.
pub fn ceiling(quota: u64, disk: Option<&Disk>) -> (u64, Limit) {
    match disk.map(Disk::limit) {
        Some(limit) if limit < quota => (limit, Limit::Disk),
        _ => (quota, Limit::Quota),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disk_smaller_than_the_quota_sets_the_ceiling() {
        let disk = Disk {
            sample: Sample {
                free: 30 << 20,
                total: 40 << 20,
            },
            charged_then: 5 << 20,
        };
        // 30 MiB free + 5 MiB already ours - 1 MiB reserve.
        assert_eq!(ceiling(2000 << 20, Some(&disk)), (34 << 20, Limit::Disk));
        assert_eq!(ceiling(10 << 20, Some(&disk)), (10 << 20, Limit::Quota));
        assert_eq!(ceiling(10 << 20, None), (10 << 20, Limit::Quota));
    }

    #[test]
    fn reserve_is_two_percent_within_bounds() {
        assert_eq!(reserve_for(40 << 20), 1 << 20);
        assert_eq!(reserve_for(1 << 30), (1 << 30) / 50);
        assert_eq!(reserve_for(32 << 30), 64 << 20);
    }

    #[test]
    fn a_full_disk_gives_a_ceiling_below_what_is_used() {
        let disk = Disk {
            sample: Sample {
                free: 0,
                total: 40 << 20,
            },
            charged_then: 20 << 20,
        };
        assert_eq!(disk.limit(), 19 << 20, "eviction must free the reserve");
    }

    #[test]
    fn a_charge_ahead_of_the_disk_never_lifts_the_ceiling_above_the_disk() {
        // Sampled while 3 MiB were charged but not written yet: they are
        // still free on the disk, so free + charged counts them twice.
        let disk = Disk {
            sample: Sample {
                free: 10 << 20,
                total: 40 << 20,
            },
            charged_then: 33 << 20,
        };
        assert_eq!(disk.limit(), 39 << 20, "40 MiB less the 1 MiB reserve");
    }

    #[test]
    fn measure_reads_this_file_system() {
        let s = measure(Path::new(".")).unwrap();
        assert!(s.total > 0 && s.free <= s.total, "{s:?}");
    }
}
