//! A simulated disk for the crash tests: it remembers what a real disk would
//! have made durable, and after a power cut forgets the rest.
//!
//! # The model
//! Every file and directory is an inode with a volatile state (what the
//! running process sees) and a durable state (what is on the medium).
//! - A file's bytes *and its length* become durable only by `sync_data` of
//!   that file (fdatasync covers the size; `create_with` + `sync_data` is how
//!   the store writes its small files).
//! - A directory's entries (creating, renaming or deleting a name in it)
//!   become durable only by `sync_dir` of that directory. A new directory is
//!   an entry of its parent.
//! - The cache directory itself always exists (it is the mount point).
//!
//! At a crash each inode, independently and by a seeded coin, comes back as:
//! - files: its durable state (the default); or its durable bytes zero-filled
//!   to its volatile length (ext4 `data=writeback`: the size reached the
//!   journal, the data did not); or its volatile state (it happened to be
//!   written back);
//! - directories: its durable entries; or its volatile entries (the journal
//!   happened to commit).
//!
//! So nothing not made durable can be relied on, and what was made durable
//! always survives. Every mutating operation is a crash point: after the
//! `crash_after`-th one, every later operation fails, as on a machine that
//! lost power.

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use super::disk::Sample;
use super::files::{Files, Meta};

const BLOCK: u64 = 4096;

#[derive(Clone)]
enum Node {
    File {
        vol: Vec<u8>,
        dur: Vec<u8>,
    },
    Dir {
        vol: BTreeMap<String, usize>,
        dur: BTreeMap<String, usize>,
    },
}

struct Sim {
    root: PathBuf,
    nodes: Vec<Node>,
    mtimes: Vec<u64>,
    ops: u64,
    crash_after: Option<u64>,
    crashed: bool,
    rng: u64,
    /// Most bytes allocated at once, over the whole run.
    peak: u64,
}

/// The simulated disk (cheap to share: the store holds it as `Arc<dyn Files>`).
pub struct SimDisk(Mutex<Sim>);

fn power_cut() -> io::Error {
    io::Error::other("simulated power cut")
}

fn not_found() -> io::Error {
    io::Error::from(io::ErrorKind::NotFound)
}

impl Sim {
    fn components(&self, path: &Path) -> io::Result<Vec<String>> {
        let rest = path.strip_prefix(&self.root).map_err(|_| not_found())?;
        Ok(rest
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect())
    }

    fn resolve(&self, path: &Path) -> io::Result<usize> {
        let mut at = 0;
        for name in self.components(path)? {
            match &self.nodes[at] {
                Node::Dir { vol, .. } => at = *vol.get(&name).ok_or_else(not_found)?,
                Node::File { .. } => return Err(not_found()),
            }
        }
        Ok(at)
    }

    fn parent(&self, path: &Path) -> io::Result<(usize, String)> {
        let mut parts = self.components(path)?;
        let name = parts.pop().ok_or_else(not_found)?;
        let mut at = 0;
        for p in parts {
            match &self.nodes[at] {
                Node::Dir { vol, .. } => at = *vol.get(&p).ok_or_else(not_found)?,
                Node::File { .. } => return Err(not_found()),
            }
        }
        match self.nodes[at] {
            Node::Dir { .. } => Ok((at, name)),
            Node::File { .. } => Err(not_found()),
        }
    }

    fn entries(&mut self, dir: usize) -> &mut BTreeMap<String, usize> {
        match &mut self.nodes[dir] {
            Node::Dir { vol, .. } => vol,
            Node::File { .. } => unreachable!("parent() returns directories"),
        }
    }

    fn add(&mut self, node: Node) -> usize {
        self.nodes.push(node);
        self.mtimes.push(self.ops);
        self.nodes.len() - 1
    }

    fn check(&self) -> io::Result<()> {
        if self.crashed {
            Err(power_cut())
        } else {
            Ok(())
        }
    }

    /// Counts a mutating operation; the crash point may be here.
    fn done(&mut self) {
        self.ops += 1;
        if Some(self.ops) == self.crash_after {
            self.crashed = true;
        }
        let used = self.allocated(0);
        self.peak = self.peak.max(used);
    }

    fn allocated(&self, at: usize) -> u64 {
        match &self.nodes[at] {
            Node::File { vol, .. } => (vol.len() as u64).div_ceil(BLOCK) * BLOCK,
            Node::Dir { vol, .. } => BLOCK + vol.values().map(|n| self.allocated(*n)).sum::<u64>(),
        }
    }

    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic per seed.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

impl SimDisk {
    /// An empty disk whose cache directory is `root`; `seed` picks the crash outcomes.
    pub fn new(root: &Path, seed: u64) -> SimDisk {
        SimDisk(Mutex::new(Sim {
            root: root.to_path_buf(),
            nodes: vec![Node::Dir {
                vol: BTreeMap::new(),
                dur: BTreeMap::new(),
            }],
            mtimes: vec![0],
            ops: 0,
            crash_after: None,
            crashed: false,
            rng: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            peak: 0,
        }))
    }

    fn sim(&self) -> std::sync::MutexGuard<'_, Sim> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Power fails right after the `n`-th mutating operation from now on (1-based, counted from 0).
    pub fn crash_after(&self, n: u64) {
        self.sim().crash_after = Some(n);
    }

    pub fn ops(&self) -> u64 {
        self.sim().ops
    }

    pub fn crashed(&self) -> bool {
        self.sim().crashed
    }

    pub fn peak(&self) -> u64 {
        self.sim().peak
    }

    /// What `du` would count now.
    pub fn allocated(&self) -> u64 {
        self.sim().allocated(0)
    }

    /// The power comes back: every inode returns to what the model lets survive.
    pub fn restart(&self) {
        let mut sim = self.sim();
        for i in 0..sim.nodes.len() {
            let coin = sim.next() % 4;
            match &mut sim.nodes[i] {
                Node::File { vol, dur } => match coin {
                    0 => {
                        let len = vol.len();
                        *vol = dur.clone();
                        vol.resize(len, 0);
                        *dur = vol.clone();
                    }
                    1 => *dur = vol.clone(),
                    _ => *vol = dur.clone(),
                },
                Node::Dir { vol, dur } => {
                    if coin == 1 {
                        *dur = vol.clone();
                    } else {
                        *vol = dur.clone();
                    }
                }
            }
        }
        sim.crashed = false;
        sim.crash_after = None;
    }
}

impl Files for SimDisk {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut sim = self.sim();
        sim.check()?;
        let mut at = 0;
        let mut created = false;
        for name in sim.components(path)? {
            let next = match &sim.nodes[at] {
                Node::Dir { vol, .. } => vol.get(&name).copied(),
                Node::File { .. } => return Err(io::Error::from(io::ErrorKind::AlreadyExists)),
            };
            at = match next {
                Some(n) => n,
                None => {
                    let n = sim.add(Node::Dir {
                        vol: BTreeMap::new(),
                        dur: BTreeMap::new(),
                    });
                    sim.entries(at).insert(name, n);
                    created = true;
                    n
                }
            };
        }
        if created {
            sim.done();
        }
        Ok(())
    }

    fn write_at(&self, path: &Path, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let mut sim = self.sim();
        sim.check()?;
        let at = match sim.resolve(path) {
            Ok(n) => n,
            Err(_) => {
                let (dir, name) = sim.parent(path)?;
                let n = sim.add(Node::File {
                    vol: Vec::new(),
                    dur: Vec::new(),
                });
                sim.entries(dir).insert(name, n);
                n
            }
        };
        let ops = sim.ops;
        sim.mtimes[at] = ops;
        match &mut sim.nodes[at] {
            Node::File { vol, .. } => {
                let end = offset as usize + bytes.len();
                if vol.len() < end {
                    vol.resize(end, 0);
                }
                vol[offset as usize..end].copy_from_slice(bytes);
            }
            Node::Dir { .. } => return Err(io::Error::from(io::ErrorKind::IsADirectory)),
        }
        sim.done();
        Ok(())
    }

    fn create_with(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut sim = self.sim();
        sim.check()?;
        match sim.resolve(path) {
            Ok(n) => match &mut sim.nodes[n] {
                Node::File { vol, .. } => *vol = bytes.to_vec(),
                Node::Dir { .. } => return Err(io::Error::from(io::ErrorKind::IsADirectory)),
            },
            Err(_) => {
                let (dir, name) = sim.parent(path)?;
                let n = sim.add(Node::File {
                    vol: bytes.to_vec(),
                    dur: Vec::new(),
                });
                sim.entries(dir).insert(name, n);
            }
        }
        sim.done();
        Ok(())
    }

    fn read_at(&self, path: &Path, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let sim = self.sim();
        sim.check()?;
        match &sim.nodes[sim.resolve(path)?] {
            Node::File { vol, .. } => {
                let end = offset as usize + buf.len();
                let got = vol
                    .get(offset as usize..end)
                    .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
                buf.copy_from_slice(got);
                Ok(())
            }
            Node::Dir { .. } => Err(io::Error::from(io::ErrorKind::IsADirectory)),
        }
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let sim = self.sim();
        sim.check()?;
        match &sim.nodes[sim.resolve(path)?] {
            Node::File { vol, .. } => Ok(vol.clone()),
            Node::Dir { .. } => Err(io::Error::from(io::ErrorKind::IsADirectory)),
        }
    }

    fn sync_data(&self, path: &Path) -> io::Result<()> {
        let mut sim = self.sim();
        sim.check()?;
        let n = sim.resolve(path)?;
        if let Node::File { vol, dur } = &mut sim.nodes[n] {
            *dur = vol.clone();
        }
        sim.done();
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut sim = self.sim();
        sim.check()?;
        let n = sim.resolve(path)?;
        if let Node::Dir { vol, dur } = &mut sim.nodes[n] {
            *dur = vol.clone();
        }
        sim.done();
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut sim = self.sim();
        sim.check()?;
        let (fdir, fname) = sim.parent(from)?;
        let (tdir, tname) = sim.parent(to)?;
        let n = sim.entries(fdir).remove(&fname).ok_or_else(not_found)?;
        sim.entries(tdir).insert(tname, n);
        sim.done();
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut sim = self.sim();
        sim.check()?;
        let (dir, name) = sim.parent(path)?;
        let n = *sim.entries(dir).get(&name).ok_or_else(not_found)?;
        if matches!(sim.nodes[n], Node::Dir { .. }) {
            return Err(io::Error::from(io::ErrorKind::IsADirectory));
        }
        sim.entries(dir).remove(&name);
        sim.done();
        Ok(())
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut sim = self.sim();
        sim.check()?;
        let (dir, name) = sim.parent(path)?;
        sim.entries(dir).remove(&name).ok_or_else(not_found)?;
        sim.done();
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let sim = self.sim();
        sim.check()?;
        match &sim.nodes[sim.resolve(dir)?] {
            Node::Dir { vol, .. } => Ok(vol.keys().cloned().collect()),
            Node::File { .. } => Err(io::Error::from(io::ErrorKind::NotADirectory)),
        }
    }

    fn metadata(&self, path: &Path) -> io::Result<Meta> {
        let sim = self.sim();
        sim.check()?;
        let n = sim.resolve(path)?;
        let (is_dir, len) = match &sim.nodes[n] {
            Node::File { vol, .. } => (false, vol.len() as u64),
            Node::Dir { .. } => (true, BLOCK),
        };
        Ok(Meta {
            is_dir,
            is_file: !is_dir,
            len,
            allocated: len.div_ceil(BLOCK) * BLOCK,
            blksize: BLOCK,
            modified: SystemTime::UNIX_EPOCH + Duration::from_secs(sim.mtimes[n]),
        })
    }

    fn space(&self, _path: &Path) -> io::Result<Sample> {
        // A roomy disk: the quota is the ceiling the crash tests check.
        Ok(Sample {
            free: 1 << 40,
            total: 1 << 41,
        })
    }
}
