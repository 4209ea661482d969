//! Opening the cache: the directory's lock, the index reconciled with the
//! files really there, and eviction down to a quota lowered since the last run.
//!
//! Owns how a [`Store`] comes to be, on the real file system or a simulated
//! disk. Must never share the directory with another process (two accounts of
//! one directory would break the quota and the index), and never hand out a
//! store that holds more than its ceiling while anything can still be evicted.

use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use event_listener::Event;

use super::files::{self, Files};
use super::segment::{self, Layout};
use super::write::claim;
use super::{
    io_err, lock, recover, Inner, Limit, PiecePool, Store, StoreError, SEGMENT_TARGET_BYTES,
};

/// How long `open` waits for another owner of the cache to let go.
const LOCK_PATIENCE: Duration = Duration::from_secs(2);

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
    pub(super) fn open_on(
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
}
