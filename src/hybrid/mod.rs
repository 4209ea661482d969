//! The per-torrent state machine: demand, the P2P_TIMEOUT handover, and the
//! HTTP workers that fill the store.
//!
//! # Design
//! Readers never fetch. They say which piece they wait for and where their
//! playhead is ([`Demand`]), then wait on the store. One controller task per
//! torrent ([`Tiers::engage`]) watches that demand: when P2P has not delivered
//! the metadata or a waited-for piece within `P2P_TIMEOUT` (until the P2P tier
//! exists it never does), it hands over to HTTP, which runs `HTTP_CONNECTIONS`
//! workers. Each worker claims a short run of missing pieces in order of need
//! (waited-for, then readahead after the playhead, then the rest of the file
//! while it fits the quota), fetches it from the healthiest source, and writes
//! each piece through [`crate::store::Store::write_piece`], which verifies it. A source that
//! sends a piece failing its hash is dropped for the torrent.
//!
//! This module owns every deadline of the tiers; it never serves bytes. The
//! workers' scheduling (which piece, which source, how big a request) is in
//! `worker`.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_io::Timer;
use event_listener::Event;

mod worker;

use crate::config::Config;
use crate::format::metainfo::Metainfo;
use crate::http::{self, Client, Source};
use crate::session::{Session, Tier, Torrent};

/// How often progress is logged while HTTP downloads.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Which tier is working on a torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Nothing asked for yet.
    Idle,
    /// Demand exists; P2P has until the deadline.
    P2p { since: Instant },
    /// HTTP workers run.
    Http,
    /// No tier can serve this torrent; the reason is for the user.
    Failed(String),
}

/// What readers want of one torrent, and which pieces workers are fetching.
pub struct Demand {
    state: Mutex<DemandState>,
    /// Notified when demand, claims or the phase change.
    changed: Event,
    /// Bytes fetched per tier, for the API.
    pub fetched_http: AtomicU64,
}

struct DemandState {
    phase: Phase,
    /// Pieces that readers block on: how many readers, and when the last began.
    waiting: BTreeMap<u32, (u32, Instant)>,
    /// The last torrent-space offset a reader asked for.
    playhead: Option<u64>,
    /// The pieces of the file being played.
    file: Option<Range<u32>>,
    /// Pieces a worker is fetching right now.
    claimed: BTreeSet<u32>,
    /// Workers busy with readahead or background pieces.
    non_urgent: usize,
    /// False once the quota stopped background completion.
    background: bool,
    sources: Vec<SourceState>,
    /// Pieces the HTTP tier fetched in this run, one bit each, so bytes served
    /// later from the store are still credited to the tier that fetched them.
    fetched: Vec<u64>,
}

/// One HTTP source, as this torrent sees it.
struct SourceState {
    source: Source,
    failures: u32,
    retry_at: Option<Instant>,
    dropped: Option<String>,
    bytes: u64,
    /// Bytes per second one request of this source delivered (moving average).
    rate: Option<f64>,
}

impl Default for Demand {
    fn default() -> Demand {
        Demand {
            state: Mutex::new(DemandState {
                phase: Phase::Idle,
                waiting: BTreeMap::new(),
                playhead: None,
                file: None,
                claimed: BTreeSet::new(),
                non_urgent: 0,
                background: true,
                sources: Vec::new(),
                fetched: Vec::new(),
            }),
            changed: Event::new(),
            fetched_http: AtomicU64::new(0),
        }
    }
}

/// Removes a reader's wait when it ends, however it ends.
pub struct Waiting<'a> {
    demand: &'a Demand,
    piece: u32,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut st = self.demand.state.lock().unwrap();
        if let Some((n, _)) = st.waiting.get_mut(&self.piece) {
            *n -= 1;
            if *n == 0 {
                st.waiting.remove(&self.piece);
            }
        }
    }
}

impl Demand {
    pub fn phase(&self) -> Phase {
        self.state.lock().unwrap().phase.clone()
    }

    /// A reader waits for `piece` of `file`, reading at `offset`.
    pub fn wait_for(&self, piece: u32, offset: u64, file: Range<u32>) -> Waiting<'_> {
        {
            let mut st = self.state.lock().unwrap();
            let entry = st.waiting.entry(piece).or_insert((0, Instant::now()));
            *entry = (entry.0 + 1, Instant::now());
            st.playhead = Some(offset);
            st.file = Some(file);
        }
        self.changed.notify(usize::MAX);
        Waiting {
            demand: self,
            piece,
        }
    }

    /// A reader moved on to `offset` (its readahead moves with it).
    pub fn playhead(&self, offset: u64, file: Range<u32>) {
        let mut st = self.state.lock().unwrap();
        st.playhead = Some(offset);
        st.file = Some(file);
        drop(st);
        self.changed.notify(usize::MAX);
    }

    /// The tier that put `piece` in the store: HTTP if it fetched it in this run.
    pub fn origin(&self, piece: u32) -> Tier {
        let st = self.state.lock().unwrap();
        let bit = st
            .fetched
            .get(piece as usize / 64)
            .is_some_and(|w| w & (1 << (piece % 64)) != 0);
        if bit {
            Tier::Http
        } else {
            Tier::Cache
        }
    }

    fn mark_fetched(&self, piece: u32) {
        let mut st = self.state.lock().unwrap();
        let word = piece as usize / 64;
        if st.fetched.len() <= word {
            st.fetched.resize(word + 1, 0);
        }
        st.fetched[word] |= 1 << (piece % 64);
    }

    /// Resolves on the next change of demand, claims or phase.
    pub fn listen(&self) -> event_listener::EventListener {
        self.changed.listen()
    }

    fn set_phase(&self, phase: Phase) {
        self.state.lock().unwrap().phase = phase;
        self.changed.notify(usize::MAX);
    }

    fn record_rate(&self, source: usize, rate: f64) {
        let mut st = self.state.lock().unwrap();
        let s = &mut st.sources[source];
        s.rate = Some(s.rate.map_or(rate, |old| 0.7 * old + 0.3 * rate));
    }

    /// Per-source status for the API.
    pub fn sources(&self) -> Vec<serde_json::Value> {
        let st = self.state.lock().unwrap();
        st.sources
            .iter()
            .map(|s| {
                serde_json::json!({
                    "source": s.source.label(),
                    "bytes": s.bytes,
                    "failures": s.failures,
                    "dropped": s.dropped,
                    "bytesPerSecond": s.rate.map(|r| r as u64),
                })
            })
            .collect()
    }
}

/// The tiers beyond the cache, shared by every torrent.
#[derive(Clone)]
pub struct Tiers {
    pub config: Arc<Config>,
    pub client: Client,
}

impl Tiers {
    /// Starts the torrent's controller once; later calls do nothing.
    pub fn engage(&self, session: &Session, torrent: &Arc<Torrent>) {
        let mut task = torrent.controller.lock().unwrap();
        if task.is_some() {
            return;
        }
        let (tiers, session, t) = (self.clone(), session.clone(), torrent.clone());
        *task = Some(smol::spawn(
            async move { tiers.control(&session, &t).await },
        ));
    }

    async fn control(&self, session: &Session, torrent: &Arc<Torrent>) {
        let ih = torrent.info_hash;
        let demand = &torrent.demand;
        log::info!(
            "[Hybrid] Trying P2P (timeout: {}ms)...",
            self.config.p2p_timeout.as_millis()
        );
        demand.set_phase(Phase::P2p {
            since: Instant::now(),
        });
        // The P2P tier is not built yet: it has no peers, so it never delivers
        // within the timeout. This is the real timeout path, not a shortcut.
        Timer::after(self.config.p2p_timeout).await;
        log::info!("[Hybrid] P2P failed: P2P timeout");
        if !self.config.enable_http_fallback {
            log::warn!("[Hybrid] {ih}: P2P timed out and ENABLE_HTTP_FALLBACK is off");
            demand.set_phase(Phase::Failed(
                "P2P found no peers within P2P_TIMEOUT, and the HTTP fallback is off (ENABLE_HTTP_FALLBACK=false)".into(),
            ));
            return;
        }
        log::info!("[Hybrid] Falling back to HTTP download...");
        let meta = match torrent.meta() {
            Some(meta) => meta,
            None => match self.fetch_metadata(session, torrent).await {
                Ok(meta) => meta,
                Err(reason) => {
                    log::warn!("[Hybrid] {ih}: {reason}");
                    demand.set_phase(Phase::Failed(reason));
                    return;
                }
            },
        };
        let extra: Vec<String> = torrent
            .magnet
            .as_ref()
            .map(|m| m.web_seeds.clone())
            .unwrap_or_default();
        let sources = http::sources_for(&meta, &self.config.http_sources, &extra);
        if sources.is_empty() {
            let reason = format!(
                "no HTTP source for {}: set HTTP_SOURCES, or use a torrent with web seeds",
                meta.name
            );
            log::warn!("[Hybrid] {ih}: {reason}");
            demand.set_phase(Phase::Failed(reason));
            return;
        }
        {
            let mut st = demand.state.lock().unwrap();
            st.sources = sources
                .into_iter()
                .map(|source| SourceState {
                    source,
                    failures: 0,
                    retry_at: None,
                    dropped: None,
                    bytes: 0,
                    rate: None,
                })
                .collect();
            if st.file.is_none() {
                st.file = Torrent::default_file(&meta).map(|i| file_pieces(&meta, i));
            }
        }
        log::info!("[Hybrid] Step 4: Downloading video file via HTTP (each piece verified, then cached)...");
        demand.set_phase(Phase::Http);
        // The workers live as long as this controller: dropping it (the torrent
        // was deleted) cancels them.
        let _workers: Vec<smol::Task<()>> = (0..self.config.http_connections)
            .map(|_| {
                let (tiers, session, t, meta) =
                    (self.clone(), session.clone(), torrent.clone(), meta.clone());
                smol::spawn(async move { tiers.work(&session, &t, &meta).await })
            })
            .collect();
        self.progress(session, torrent, &meta).await;
    }

    /// Steps 1 to 3 of the seed's flow: the .torrent by info hash, parsed, its file chosen.
    async fn fetch_metadata(
        &self,
        session: &Session,
        torrent: &Arc<Torrent>,
    ) -> Result<Arc<Metainfo>, String> {
        log::info!("[Hybrid] Step 1: Downloading .torrent file...");
        let (meta, bytes) = http::fetch_torrent(
            &self.client,
            torrent.info_hash,
            &self.config.torrent_sources,
        )
        .await
        .map_err(|e| format!("no .torrent for {}: {e}", torrent.info_hash))?;
        log::info!("[Hybrid] Downloaded .torrent ({} bytes)", bytes.len());
        log::info!("[Hybrid] Step 2: Parsing torrent metadata...");
        let total = meta.total_length;
        let (name, files) = (meta.name.clone(), meta.files.len());
        let s = session.clone();
        smol::unblock(move || s.add_metainfo(meta))
            .await
            .map_err(|e| e.to_string())?;
        log::info!(
            "[Hybrid] Parsed torrent: {name}   Files: {files}   Total size: {}",
            mb(total)
        );
        let meta = torrent
            .meta()
            .ok_or("the metadata vanished while being stored")?;
        if let Some(i) = Torrent::default_file(&meta) {
            log::info!(
                "[Hybrid] Step 3: Finding video file...   Selected: {} ({})",
                meta.files[i].path.join("/"),
                mb(meta.files[i].length)
            );
        }
        Ok(meta)
    }

    /// Logs progress of the played file in the seed's form, every few seconds.
    async fn progress(&self, session: &Session, torrent: &Torrent, meta: &Metainfo) {
        let mut last = torrent.demand.fetched_http.load(Ordering::Relaxed);
        let mut reported_done = false;
        loop {
            Timer::after(PROGRESS_EVERY).await;
            let now = torrent.demand.fetched_http.load(Ordering::Relaxed);
            let Some(file) = torrent.demand.state.lock().unwrap().file.clone() else {
                continue;
            };
            let have = file
                .clone()
                .filter(|p| session.store.has_piece(&meta.info_hash, *p))
                .map(|p| meta.piece_size(p))
                .sum::<u64>();
            let total = file.map(|p| meta.piece_size(p)).sum::<u64>().max(1);
            if now != last {
                let speed = (now - last) as f64 / PROGRESS_EVERY.as_secs_f64();
                log::info!(
                    "[Hybrid] Progress: {:.1}% ({}/{}) @ {:.1} MB/s",
                    100.0 * have as f64 / total as f64,
                    mb(have),
                    mb(total),
                    speed / 1e6
                );
                reported_done = false;
            } else if have >= total && !reported_done {
                log::info!("[Hybrid] Download complete: {}", mb(total));
                log::info!("[Hybrid] HTTP download complete! Ready to stream.");
                reported_done = true;
            }
            last = now;
        }
    }
}

/// The pieces that hold file `index`.
pub fn file_pieces(meta: &Metainfo, index: usize) -> Range<u32> {
    let f = &meta.files[index];
    let first = (f.offset / meta.piece_length) as u32;
    let end = if f.length == 0 {
        first
    } else {
        ((f.offset + f.length - 1) / meta.piece_length) as u32 + 1
    };
    first..end
}

fn file_bytes(meta: &Metainfo, pieces: &Range<u32>) -> u64 {
    pieces.clone().map(|p| meta.piece_size(p)).sum()
}

/// Sizes in the seed's log form.
fn mb(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{} MB", bytes >> 20)
    }
}
