//! Start-up reconciliation: make the index agree with the files really on disk.
//!
//! Owns the rules that turn whatever a crash left behind into a consistent
//! cache: an index entry survives only if its `.torrent` file is there, a
//! piece only if its segment file is long enough to hold it; files the index
//! does not reference (orphans, temp files) are deleted; usage is measured
//! from the real files. Must never delete anything whose name the store did
//! not make: strangers in the cache dir are counted against the quota and left alone.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use super::files::Files;
use super::index::{self, Entry};
use super::quota::{Charges, State, Torrent, MIN_UNIT};
use super::segment::{self, Layout};
use super::{io_err, StoreError};
use crate::format::InfoHash;

/// What `scan` found.
pub struct Found {
    charges: Charges,
    torrents: HashMap<InfoHash, Torrent>,
    /// (mtime, torrent, segment) of every kept segment, for the initial LRU order.
    uses: Vec<(SystemTime, InfoHash, u32)>,
    root_floor: u64,
    index_len: u64,
    foreign: u64,
    /// The index on disk lists something that is gone: rewrite it.
    pub index_changed: bool,
}

impl Found {
    pub fn into_state(mut self, quota: u64) -> State {
        // Oldest modification first: the best guess of LRU order after a restart.
        self.uses.sort();
        let mut clock = 0;
        for (_, ih, s) in &self.uses {
            clock += 1;
            if let Some(t) = self.torrents.get_mut(ih) {
                t.segments[*s as usize].last_use = clock;
            }
        }
        let next_id = self.torrents.len() as u64;
        let mut state = State {
            quota,
            disk: None,
            charges: self.charges,
            torrents: self.torrents,
            clock,
            next_id,
            root_floor: self.root_floor,
            torrents_high_water: 0,
            index_high_water: self.index_len,
            foreign: self.foreign,
            leaked: 0,
            unflushed: 0,
            index_stale: false,
        };
        state.note_index_len();
        state
    }
}

/// `du` of a path the store does not own, without following links.
fn du(files: &dyn Files, path: &Path) -> u64 {
    let Ok(meta) = files.metadata(path) else {
        return 0;
    };
    let mut total = meta.allocated;
    if meta.is_dir {
        if let Ok(names) = files.list(path) {
            total += names.iter().map(|n| du(files, &path.join(n))).sum::<u64>();
        }
    }
    total
}

fn remove_any(files: &dyn Files, path: &Path) {
    let gone = match files.metadata(path) {
        Ok(m) if m.is_dir => files.remove_dir_all(path),
        Ok(_) => files.remove_file(path),
        Err(e) => Err(e),
    };
    match gone {
        Ok(()) => log::info!("removed orphan {}", path.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => log::warn!("cannot remove orphan {}: {e}", path.display()),
    }
}

pub fn scan(layout: &Layout, files: &dyn Files) -> Result<Found, StoreError> {
    let root = &layout.root;
    files
        .create_dir_all(root)
        .map_err(io_err(root, "create directory"))?;
    let root_meta = files.metadata(root).map_err(io_err(root, "stat"))?;
    let charges = Charges {
        unit: MIN_UNIT.max(root_meta.blksize),
    };
    let index_path = layout.index();
    let (mut entries, mut index_changed, index_len) = match files.read(&index_path) {
        Ok(bytes) => match index::decode(&bytes) {
            Ok(entries) => (entries, false, bytes.len() as u64),
            Err(e) => {
                log::warn!(
                    "cache index {} is unreadable ({e:?}); starting empty",
                    index_path.display()
                );
                (Vec::new(), true, bytes.len() as u64)
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => (Vec::new(), false, 0),
        Err(e) => return Err(io_err(&index_path, "read")(e)),
    };
    let mut found = Found {
        charges,
        torrents: HashMap::new(),
        uses: Vec::new(),
        root_floor: root_meta.allocated,
        index_len,
        foreign: 0,
        index_changed: false,
    };
    let listing = files.list(root).map_err(io_err(root, "list"))?;
    for name in listing {
        let path = root.join(&name);
        let name = name.as_str();
        if name == segment::INDEX_FILE || name == segment::LOCK_FILE {
            continue;
        }
        if name == segment::INDEX_TMP {
            remove_any(files, &path);
            continue;
        }
        match InfoHash::from_hex(name).filter(|ih| ih.to_hex() == name) {
            Some(ih) => match entries.iter().position(|e| e.info_hash == ih) {
                Some(at) => {
                    let entry = entries.swap_remove(at);
                    let id = found.torrents.len() as u64 + 1;
                    match load_torrent(layout, files, entry, id, &mut found) {
                        Some((t, changed)) => {
                            index_changed |= changed;
                            found.torrents.insert(ih, t);
                        }
                        None => {
                            index_changed = true;
                            remove_any(files, &path);
                        }
                    }
                }
                None => remove_any(files, &path),
            },
            None => {
                log::warn!(
                    "{} is not the cache's own; counting it against the quota",
                    path.display()
                );
                found.foreign += du(files, &path);
            }
        }
    }
    // Entries left had no directory at all.
    index_changed |= !entries.is_empty();
    found.index_changed = index_changed;
    Ok(found)
}

/// Rebuilds one torrent from its index entry and its directory. `None` when
/// its `.torrent` file is missing. The flag says the entry lost pieces.
fn load_torrent(
    layout: &Layout,
    files: &dyn Files,
    entry: Entry,
    id: u64,
    found: &mut Found,
) -> Option<(Torrent, bool)> {
    let ih = entry.info_hash;
    let g = entry.geometry;
    let charges = found.charges;
    let meta = files
        .metadata(&layout.torrent_file(&ih))
        .ok()
        .filter(|m| m.is_file && m.len > 0)?;
    let dir_meta = files.metadata(&layout.torrent_dir(&ih)).ok()?;
    let mut t = Torrent::new(id, g, &charges);
    t.dir_charge = t.dir_charge.max(dir_meta.allocated);
    t.meta_charge = charges.file(meta.len).max(meta.allocated);
    t.meta_on_disk = true;
    let mut durable = entry.durable;
    let mut changed = false;
    let mut present = vec![false; g.segment_count() as usize];
    let tdir = layout.torrent_dir(&ih);
    for name in files.list(&tdir).ok()? {
        let path = tdir.join(&name);
        let name = name.as_str();
        if name == segment::TORRENT_FILE {
            continue;
        }
        let seg = segment::parse_segment_name(name).filter(|s| *s < g.segment_count());
        let meta = files.metadata(&path).ok().filter(|m| m.is_file);
        let (Some(s), Some(meta)) = (seg, meta) else {
            remove_any(files, &path);
            continue;
        };
        // A piece the file is too short for was never made durable (or was truncated).
        for p in g.pieces_in(s) {
            if durable.get(p) && g.end_in_segment(p) > meta.len {
                durable.set(p, false);
                changed = true;
            }
        }
        if !durable.any_in(g.pieces_in(s)) {
            remove_any(files, &path);
            continue;
        }
        present[s as usize] = true;
        let seg = &mut t.segments[s as usize];
        // Charge at least what is allocated, should the file system have preallocated.
        seg.charged_len = meta.len.max(meta.allocated);
        seg.listed = true;
        found.uses.push((meta.modified, ih, s));
    }
    for s in (0..g.segment_count()).filter(|s| !present[*s as usize]) {
        for p in g.pieces_in(s) {
            changed |= durable.get(p);
            durable.set(p, false);
        }
    }
    t.verified = durable.clone();
    t.durable = durable;
    Some((t, changed))
}
