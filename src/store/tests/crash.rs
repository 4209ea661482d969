//! Crash points on a simulated disk (`sim`): the store's workload of imports,
//! stream writes with reads, evictions under a small quota, and a removal is
//! cut by a power failure after every single write, fdatasync, rename, delete
//! and directory sync, with several seeds for what the disk happens to keep.
//! After each restart on the surviving disk:
//! - the store opens, and the index it leaves agrees with what it serves;
//! - every piece it lists reads back with the right SHA-1;
//! - every piece a completed flush made durable (and that was not evicted or
//!   removed since) is still there;
//! - the quota held all along (the disk's peak) and holds after the restart.
//!
//! A `kill -9` keeps the page cache, so it cannot show a missing fsync; this
//! disk forgets every write that was not made durable, so it can.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::store::sim::SimDisk;

const ROOT: &str = "/sim/cache";
/// About six segments: the stream's writes evict the import's.
const QUOTA: u64 = 256 * 1024;
/// Outcomes of the disk's coins per crash point. Fewer under qemu (the
/// boards' unit-test step): the store's logic does not depend on the target,
/// and emulation is ten times slower.
const SEEDS: u64 = if cfg!(target_arch = "x86_64") { 16 } else { 2 };

fn open_sim(sim: &Arc<SimDisk>) -> Result<Store, StoreError> {
    Store::open_on(sim.clone(), None, Path::new(ROOT), QUOTA, Some(TARGET))
}

/// What a completed flush made durable, per torrent.
type Promised = HashMap<InfoHash, index::Bitfield>;

fn durable_now(store: &Store) -> Promised {
    store
        .state()
        .torrents
        .iter()
        .map(|(ih, t)| (*ih, t.durable.clone()))
        .collect()
}

/// Runs the workload until the disk loses power (or to the end). Returns
/// the pieces the store promised are durable at that moment.
fn workload(sim: &Arc<SimDisk>, fx: &[Fixture]) -> Promised {
    let Ok(store) = open_sim(sim) else {
        return Promised::new();
    };
    let mut promised = Promised::new();
    // Call after each step: on a crash, what survives must be what the last
    // completed flush promised and the store still holds (evictions since
    // took some away).
    let settle = |store: &Store, promised: &Promised| -> Option<Promised> {
        if !sim.crashed() {
            return None;
        }
        let now = durable_now(store);
        let mut kept = Promised::new();
        for (ih, bits) in promised {
            if let Some(cur) = now.get(ih) {
                let mut both = bits.clone();
                for p in 0..fx[0].meta.pieces.len().max(64) as u32 {
                    both.set(p, bits.get(p) && cur.get(p));
                }
                kept.insert(*ih, both);
            }
        }
        Some(kept)
    };
    let flush = |store: &Store, promised: &mut Promised| {
        if store.flush().is_ok() && !sim.crashed() {
            *promised = durable_now(store);
        }
    };
    macro_rules! step {
        ($e:expr) => {{
            let _ = $e;
            if let Some(kept) = settle(&store, &promised) {
                return kept;
            }
        }};
    }
    let (a, b, c) = (&fx[0], &fx[1], &fx[2]);
    // An import: the whole torrent, then a flush.
    step!(store.add_torrent(&a.meta, &a.torrent));
    for (i, p) in a.pieces.iter().enumerate() {
        step!(smol::block_on(store.write_piece(
            &a.ih(),
            i as u32,
            p.clone(),
            NOW
        )));
    }
    step!(flush(&store, &mut promised));
    // A stream: writes in order with reads behind them and a flush now and
    // then; the quota makes it evict the import's segments.
    step!(store.add_torrent(&b.meta, &b.torrent));
    for (i, p) in b.pieces.iter().enumerate() {
        step!(smol::block_on(store.write_piece(
            &b.ih(),
            i as u32,
            p.clone(),
            NOW
        )));
        step!(read(&store, b, i as u64 * PL, PL as usize));
        if i % 3 == 2 {
            step!(flush(&store, &mut promised));
        }
    }
    step!(flush(&store, &mut promised));
    // A removal: its pieces are no longer promised, whatever happens.
    promised.remove(&a.ih());
    step!(store.remove_torrent(&a.ih()));
    // Added again at once (issue 12): its segment files come back under the
    // same names, piece 1 without piece 0, so an index that still listed the
    // old pieces would serve zeros for piece 0.
    step!(store.add_torrent(&a.meta, &a.torrent));
    for i in [1u32, 5] {
        step!(smol::block_on(store.write_piece(
            &a.ih(),
            i,
            a.pieces[i as usize].clone(),
            NOW
        )));
    }
    step!(store.add_torrent(&c.meta, &c.torrent));
    for (i, p) in c.pieces.iter().enumerate() {
        step!(smol::block_on(store.write_piece(
            &c.ih(),
            i as u32,
            p.clone(),
            NOW
        )));
    }
    step!(flush(&store, &mut promised));
    promised
}

/// The checks after a restart; `Err` says what broke.
fn check_restart(sim: &Arc<SimDisk>, fx: &[Fixture], promised: &Promised) -> Result<(), String> {
    let store = open_sim(sim).map_err(|e| format!("open after the crash failed: {e}"))?;
    let by_hash: HashMap<InfoHash, &Fixture> = fx.iter().map(|f| (f.ih(), f)).collect();
    // Promised pieces survived.
    for (ih, bits) in promised {
        for p in (0..by_hash[ih].pieces.len() as u32).filter(|p| bits.get(*p)) {
            if !store.has_piece(ih, p) {
                return Err(format!("piece {p} of {ih} was durable but is gone"));
            }
        }
    }
    // Everything listed is right.
    let usage = store.usage();
    for t in &usage.torrents {
        let f = by_hash
            .get(&t.info_hash)
            .ok_or_else(|| format!("a torrent nobody added: {}", t.info_hash))?;
        for p in (0..t.piece_count).filter(|p| store.has_piece(&t.info_hash, *p)) {
            let got =
                read(&store, f, u64::from(p) * PL, f.pieces[p as usize].len()).map_err(|e| {
                    format!("piece {p} of {} is listed but unreadable: {e}", t.info_hash)
                })?;
            if Sha1::digest(&got)[..] != f.meta.pieces[p as usize][..] {
                return Err(format!(
                    "piece {p} of {} is listed with wrong bytes",
                    t.info_hash
                ));
            }
        }
    }
    // The index on disk agrees with what the store serves, and names only
    // torrents whose .torrent is there, byte-exact.
    let entries = match sim.read(&Path::new(ROOT).join("index")) {
        Ok(bytes) => index::decode(&bytes).map_err(|e| format!("index after open: {e:?}"))?,
        // A cache that never wrote an index is empty.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(format!("index after open: {e}")),
    };
    for e in &entries {
        for p in 0..e.geometry.piece_count() {
            if e.durable.get(p) != store.has_piece(&e.info_hash, p) {
                return Err(format!(
                    "index and store disagree on piece {p} of {}",
                    e.info_hash
                ));
            }
        }
    }
    let mut listed: Vec<Vec<u8>> = entries
        .iter()
        .map(|e| by_hash[&e.info_hash].torrent.clone())
        .collect();
    listed.sort();
    let mut torrents = store.torrents();
    torrents.sort();
    if torrents != listed {
        return Err("the .torrent files do not match the index".into());
    }
    // The quota held during the run and holds now; the charge covers the disk.
    if sim.peak() > QUOTA {
        return Err(format!(
            "the disk held {} bytes, over the quota {QUOTA}",
            sim.peak()
        ));
    }
    if usage.used > QUOTA || sim.allocated() > usage.used {
        return Err(format!(
            "after the restart: charged {}, on disk {}, quota {QUOTA}",
            usage.used,
            sim.allocated()
        ));
    }
    // And the cache works on: a write and a flush after the restart.
    let c = &fx[2];
    store
        .add_torrent(&c.meta, &c.torrent)
        .map_err(|e| format!("re-add: {e}"))?;
    smol::block_on(store.write_piece(&c.ih(), 0, c.pieces[0].clone(), NOW))
        .map_err(|e| format!("write after the restart: {e}"))?;
    store
        .flush()
        .map_err(|e| format!("flush after the restart: {e}"))?;
    Ok(())
}

#[test]
fn every_crash_point_leaves_a_consistent_cache() {
    let fx: Vec<Fixture> = vec![
        fixture(200, PL, 8 * PL),
        fixture(201, PL, 8 * PL - 100),
        fixture(202, PL, 3 * PL),
    ];
    // A run without a crash counts the crash points, and must keep its promises too.
    let sim = Arc::new(SimDisk::new(Path::new(ROOT), 0));
    let promised = workload(&sim, &fx);
    let points = sim.ops();
    assert!(points >= 60, "only {points} crash points");
    assert!(
        promised.values().any(|b| b.count() > 0),
        "the workload promised nothing"
    );
    let started = std::time::Instant::now();
    let mut runs = 0;
    let mut failures = Vec::new();
    for seed in 0..SEEDS {
        for k in 1..=points {
            let sim = Arc::new(SimDisk::new(Path::new(ROOT), seed * 7919 + k));
            sim.crash_after(k);
            let promised = workload(&sim, &fx);
            assert!(sim.crashed(), "crash point {k} not reached");
            sim.restart();
            if let Err(e) = check_restart(&sim, &fx, &promised) {
                failures.push(format!("seed {seed}, crash after op {k}: {e}"));
            }
            runs += 1;
        }
    }
    eprintln!(
        "{runs} crash points ({points} per seed) in {:?}",
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {runs} crash points broke the cache, first ones:\n{}",
        failures.len(),
        failures[..failures.len().min(8)].join("\n")
    );
}
