//! The per-torrent state machine: demand, the P2P_TIMEOUT handover both
//! ways, and the HTTP workers that fill the store.
//!
//! # Design
//! Readers never fetch. They say which piece they wait for and where their
//! playhead is ([`Demand`]), then wait on the store. One controller task per
//! torrent ([`Tiers::engage`]) runs its P2P swarm from the start (seeding,
//! and fetching what the demand wants) and watches the demand: when P2P has
//! not delivered the metadata or a waited-for piece within `P2P_TIMEOUT`, it
//! hands over to HTTP, which runs `HTTP_CONNECTIONS` workers, and when P2P
//! delivers steadily again it takes the bulk back. Both tiers claim the pieces
//! they fetch in the demand, so a piece is fetched twice only when a reader
//! has waited on it longer than `P2P_TIMEOUT`. Each HTTP worker claims a short
//! run of missing pieces in order of need (waited-for, then readahead after
//! the playhead, then the rest of the file while it fits the quota), fetches
//! it from the healthiest source, and writes each piece through
//! [`crate::store::Store::write_piece`], which verifies it. A source that
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
use futures_lite::future;

mod worker;

use crate::config::Config;
use crate::format::metainfo::Metainfo;
use crate::http::{self, Client, Source};
use crate::p2p::{P2p, Swarm};
use crate::session::{Session, Tier, Torrent};

/// How often progress is logged while a tier downloads.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// How long P2P must deliver steadily, with no reader stalled, before HTTP
/// steps back: long enough that one lucky piece does not flap the tiers.
const TAKE_BACK_AFTER: Duration = Duration::from_secs(10);

/// The HTTP tier of one torrent, once a handover started it.
#[derive(Default)]
struct HttpTier {
    /// How many sources it has; None until the first handover.
    sources: Option<usize>,
    workers: Vec<smol::Task<()>>,
}

/// `f` if it finishes within `limit`.
async fn within<T>(limit: Duration, f: impl std::future::Future<Output = T>) -> Option<T> {
    future::or(async { Some(f.await) }, async {
        Timer::after(limit).await;
        None
    })
    .await
}

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
    pub fetched_p2p: AtomicU64,
}

struct DemandState {
    phase: Phase,
    /// Pieces that readers block on: how many readers, when the first and
    /// the last wait began.
    waiting: BTreeMap<u32, Wait>,
    /// The last torrent-space offset a reader asked for.
    playhead: Option<u64>,
    /// The pieces of the file being played.
    file: Option<Range<u32>>,
    /// Pieces an HTTP worker is fetching right now.
    claimed: BTreeSet<u32>,
    /// Pieces the P2P tier is fetching right now.
    p2p_claimed: BTreeSet<u32>,
    /// Workers busy with readahead or background pieces.
    non_urgent: usize,
    /// False once the quota stopped background completion.
    background: bool,
    sources: Vec<SourceState>,
    /// Pieces the HTTP and the P2P tier fetched in this run, one bit each, so
    /// bytes served later from the store are still credited to their tier.
    fetched: Vec<u64>,
    p2p_fetched: Vec<u64>,
}

#[derive(Clone, Copy)]
struct Wait {
    readers: u32,
    first: Instant,
    last: Instant,
}

/// A copy of the demand, for the P2P picker.
#[derive(Debug, Clone, Default)]
pub struct DemandView {
    /// Pieces readers block on, newest wait first.
    pub waiting: Vec<u32>,
    pub playhead: Option<u64>,
    pub file: Option<Range<u32>>,
    /// Whether completing the file is still allowed (the quota did not stop it).
    pub background: bool,
    /// Pieces HTTP workers are fetching.
    pub http_claimed: BTreeSet<u32>,
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
                p2p_claimed: BTreeSet::new(),
                non_urgent: 0,
                background: true,
                sources: Vec::new(),
                fetched: Vec::new(),
                p2p_fetched: Vec::new(),
            }),
            changed: Event::new(),
            fetched_http: AtomicU64::new(0),
            fetched_p2p: AtomicU64::new(0),
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
        if let Some(w) = st.waiting.get_mut(&self.piece) {
            w.readers -= 1;
            if w.readers == 0 {
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
            let now = Instant::now();
            let w = st.waiting.entry(piece).or_insert(Wait {
                readers: 0,
                first: now,
                last: now,
            });
            w.readers += 1;
            w.last = now;
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

    /// The tier that put `piece` in the store: HTTP or P2P if one fetched it
    /// in this run, else the cache.
    pub fn origin(&self, piece: u32) -> Tier {
        let st = self.state.lock().unwrap();
        if get_bit(&st.fetched, piece) {
            Tier::Http
        } else if get_bit(&st.p2p_fetched, piece) {
            Tier::P2p
        } else {
            Tier::Cache
        }
    }

    fn mark_fetched(&self, piece: u32) {
        set_bit(&mut self.state.lock().unwrap().fetched, piece);
    }

    /// The P2P tier verified and stored `piece` (`bytes` long).
    pub fn mark_p2p(&self, piece: u32, bytes: u64) {
        set_bit(&mut self.state.lock().unwrap().p2p_fetched, piece);
        self.fetched_p2p.fetch_add(bytes, Ordering::Relaxed);
        self.changed.notify(usize::MAX);
    }

    /// The P2P tier started fetching `piece`: HTTP workers leave it alone
    /// unless a reader has waited on it longer than `P2P_TIMEOUT`.
    pub fn claim_p2p(&self, piece: u32) {
        self.state.lock().unwrap().p2p_claimed.insert(piece);
    }

    pub fn release_p2p(&self, piece: u32) {
        self.state.lock().unwrap().p2p_claimed.remove(&piece);
        self.changed.notify(usize::MAX);
    }

    /// Keeps only the P2P claims `keep` says are still in flight.
    pub fn retain_p2p(&self, keep: impl Fn(u32) -> bool) {
        self.state.lock().unwrap().p2p_claimed.retain(|p| keep(*p));
        self.changed.notify(usize::MAX);
    }

    /// The quota is full: no tier completes the file in the background any more.
    pub fn stop_background(&self) {
        self.state.lock().unwrap().background = false;
    }

    /// A copy of what readers want, for the P2P picker.
    pub fn view(&self) -> DemandView {
        let st = self.state.lock().unwrap();
        let mut waiting: Vec<(u32, Instant)> =
            st.waiting.iter().map(|(p, w)| (*p, w.last)).collect();
        waiting.sort_by_key(|(_, at)| std::cmp::Reverse(*at));
        DemandView {
            waiting: waiting.into_iter().map(|(p, _)| p).collect(),
            playhead: st.playhead,
            file: st.file.clone(),
            background: st.background,
            http_claimed: st.claimed.clone(),
        }
    }

    /// Whether a reader is waiting or playing.
    fn active(&self) -> bool {
        let st = self.state.lock().unwrap();
        !st.waiting.is_empty() || st.playhead.is_some()
    }

    /// Whether a reader has waited longer than `limit` for a piece.
    fn stalled(&self, limit: Duration) -> bool {
        let st = self.state.lock().unwrap();
        let now = Instant::now();
        st.waiting
            .values()
            .any(|w| now.saturating_duration_since(w.first) >= limit)
    }

    /// Wakes everyone waiting on this torrent (its metadata arrived).
    pub fn notify(&self) {
        self.changed.notify(usize::MAX);
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
    pub p2p: P2p,
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
        // The swarm runs as long as this controller: seeding, and fetching
        // alongside HTTP, and it takes the work back when peers show up.
        let swarm = self.p2p.swarm(session, torrent);
        let _swarm = smol::spawn(swarm.clone().run());
        let (meta, p2p_failed) = match torrent.meta() {
            Some(meta) => (meta, false),
            None => match self.resolve(session, torrent, &swarm).await {
                Ok(found) => found,
                Err(reason) => {
                    log::warn!("[Hybrid] {ih}: {reason}");
                    demand.set_phase(Phase::Failed(reason));
                    return;
                }
            },
        };
        swarm.set_meta(meta.clone());
        {
            let mut st = demand.state.lock().unwrap();
            if st.file.is_none() {
                st.file = Torrent::default_file(&meta).map(|i| file_pieces(&meta, i));
            }
        }
        let mut http = HttpTier::default();
        if p2p_failed {
            self.hand_over(session, torrent, &meta, &swarm, &mut http);
        }
        let supervise = async {
            // When P2P last failed to deliver a piece a reader waited for, and
            // since when it has delivered steadily.
            let mut delivering_since: Option<Instant> = None;
            let mut reported = false;
            loop {
                let changed = demand.listen();
                swarm.demand_changed();
                let stalled = demand.stalled(self.config.p2p_timeout);
                reported &= stalled;
                let delivered = swarm.take_delivered() > 0 && swarm.unchoking() > 0;
                match demand.phase() {
                    Phase::Idle if demand.active() => {
                        log::info!(
                            "[Hybrid] Trying P2P (timeout: {}ms)...",
                            self.config.p2p_timeout.as_millis()
                        );
                        demand.set_phase(Phase::P2p {
                            since: Instant::now(),
                        });
                    }
                    Phase::P2p { .. } if stalled && !reported => {
                        log::info!("[Hybrid] P2P failed: P2P timeout");
                        self.hand_over(session, torrent, &meta, &swarm, &mut http);
                        delivering_since = None;
                        // Once per stall: with the fallback off the phase stays P2P.
                        reported = true;
                    }
                    Phase::Http if !stalled && delivered => {
                        let since = *delivering_since.get_or_insert_with(Instant::now);
                        if since.elapsed() >= TAKE_BACK_AFTER {
                            log::info!("[Hybrid] P2P is delivering again: it takes the work back from HTTP");
                            demand.set_phase(Phase::P2p {
                                since: Instant::now(),
                            });
                        }
                    }
                    Phase::Http if stalled => delivering_since = None,
                    Phase::Failed(_) if swarm.connected() > 0 => {
                        log::info!("[Hybrid] {ih}: peers showed up, P2P resumes");
                        demand.set_phase(Phase::P2p {
                            since: Instant::now(),
                        });
                    }
                    _ => {}
                }
                future::or(
                    async {
                        changed.await;
                    },
                    async {
                        Timer::after(Duration::from_millis(500)).await;
                    },
                )
                .await;
            }
        };
        future::or(supervise, self.progress(session, torrent, &meta)).await;
    }

    /// The metadata of a magnet: from peers within `P2P_TIMEOUT`, else from
    /// the .torrent sources while peers keep trying. Returns it, and whether
    /// P2P missed its deadline (then HTTP takes over the pieces at once).
    async fn resolve(
        &self,
        session: &Session,
        torrent: &Arc<Torrent>,
        swarm: &Swarm,
    ) -> Result<(Arc<Metainfo>, bool), String> {
        let config = &self.config;
        log::info!(
            "[Hybrid] Trying P2P (timeout: {}ms)...",
            config.p2p_timeout.as_millis()
        );
        torrent.demand.set_phase(Phase::P2p {
            since: Instant::now(),
        });
        if !config.enable_http_fallback {
            // TORRENT_TIMEOUT per attempt, TORRENT_MAX_RETRIES more attempts.
            let attempts = config.torrent_max_retries + 1;
            for attempt in 1..=attempts {
                if let Some(meta) = within(config.torrent_timeout, swarm.metadata()).await {
                    return Ok((meta, false));
                }
                log::info!(
                    "[P2P] Metadata attempt {attempt}/{attempts} timed out after {} ms ({} peers)",
                    config.torrent_timeout.as_millis(),
                    torrent.swarm_stats().peers
                );
            }
            return Err(format!(
                "no peer sent the metadata in {attempts} attempt(s) of TORRENT_TIMEOUT={} ms, and the HTTP fallback is off (ENABLE_HTTP_FALLBACK=false)",
                config.torrent_timeout.as_millis()
            ));
        }
        if let Some(meta) = within(config.p2p_timeout, swarm.metadata()).await {
            return Ok((meta, false));
        }
        log::info!("[Hybrid] P2P failed: P2P timeout");
        log::info!("[Hybrid] Falling back to HTTP download...");
        let from_peers = async { Ok::<_, String>(swarm.metadata().await) };
        let from_http = self.fetch_metadata(session, torrent);
        match future::or(from_peers, from_http).await {
            Ok(meta) => Ok((meta, true)),
            Err(http_failed) => {
                // Peers may still answer: they get the rest of TORRENT_TIMEOUT.
                log::info!("[Hybrid] {http_failed}; still asking peers");
                within(config.torrent_timeout, swarm.metadata())
                    .await
                    .map(|meta| (meta, true))
                    .ok_or_else(|| format!("{http_failed}, and no peer sent the metadata"))
            }
        }
    }

    /// P2P missed `P2P_TIMEOUT`: the HTTP workers start (once) and take the bulk.
    fn hand_over(
        &self,
        session: &Session,
        torrent: &Arc<Torrent>,
        meta: &Arc<Metainfo>,
        swarm: &Swarm,
        http: &mut HttpTier,
    ) {
        let ih = torrent.info_hash;
        let demand = &torrent.demand;
        // Peers that are connected may still unchoke us (transmission rechokes every 10 s):
        // only a swarm with no peer at all is a dead end.
        let no_peers = swarm.connected() == 0;
        if !self.config.enable_http_fallback {
            if no_peers {
                demand.set_phase(Phase::Failed(
                    "P2P found no peers within P2P_TIMEOUT, and the HTTP fallback is off (ENABLE_HTTP_FALLBACK=false)".into(),
                ));
            }
            return;
        }
        if http.sources.is_none() {
            let extra: Vec<String> = torrent
                .magnet
                .as_ref()
                .map(|m| m.web_seeds.clone())
                .unwrap_or_default();
            let sources = http::sources_for(meta, &self.config.http_sources, &extra);
            {
                let mut st = demand.state.lock().unwrap();
                st.sources = sources
                    .iter()
                    .cloned()
                    .map(|source| SourceState {
                        source,
                        failures: 0,
                        retry_at: None,
                        dropped: None,
                        bytes: 0,
                        rate: None,
                    })
                    .collect();
            }
            http.sources = Some(sources.len());
            if sources.is_empty() {
                log::info!(
                    "[Hybrid] {ih}: no HTTP source for {} (set HTTP_SOURCES, or use a torrent with web seeds)",
                    meta.name
                );
            } else {
                log::info!("[Hybrid] Step 4: Downloading video file via HTTP (each piece verified, then cached)...");
                // The workers live as long as this controller: dropping it (the
                // torrent was deleted) cancels them.
                http.workers = (0..self.config.http_connections)
                    .map(|_| {
                        let (tiers, session, t, meta) =
                            (self.clone(), session.clone(), torrent.clone(), meta.clone());
                        smol::spawn(async move { tiers.work(&session, &t, &meta).await })
                    })
                    .collect();
            }
        }
        if http.sources == Some(0) {
            if no_peers {
                let reason = format!(
                    "no peer delivered within P2P_TIMEOUT and there is no HTTP source for {}: set HTTP_SOURCES, or use a torrent with web seeds",
                    meta.name
                );
                log::warn!("[Hybrid] {ih}: {reason}");
                demand.set_phase(Phase::Failed(reason));
            }
            return;
        }
        if demand.phase() != Phase::Http {
            log::info!("[Hybrid] Falling back to HTTP download...");
            demand.set_phase(Phase::Http);
        }
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
        let fetched = || {
            torrent.demand.fetched_http.load(Ordering::Relaxed)
                + torrent.demand.fetched_p2p.load(Ordering::Relaxed)
        };
        let mut last = fetched();
        let mut reported_done = false;
        loop {
            Timer::after(PROGRESS_EVERY).await;
            let now = fetched();
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
                log::info!("[Hybrid] Download complete! Ready to stream.");
                reported_done = true;
            }
            last = now;
        }
    }
}

fn get_bit(bits: &[u64], piece: u32) -> bool {
    bits.get(piece as usize / 64)
        .is_some_and(|w| w & (1 << (piece % 64)) != 0)
}

fn set_bit(bits: &mut Vec<u64>, piece: u32) {
    let word = piece as usize / 64;
    if bits.len() <= word {
        bits.resize(word + 1, 0);
    }
    bits[word] |= 1 << (piece % 64);
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
