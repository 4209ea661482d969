//! The HTTP workers of one torrent: which run of pieces to fetch next, from
//! which source, how large a request, and what a failure does to a source.
//!
//! Must never serve bytes or decide the handover; it only fills the store
//! once [`super::Tiers`] has put the torrent in the HTTP phase.

use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_io::Timer;
use futures_lite::future;

use super::{Tiers, Torrent};
use crate::demand::{file_bytes, Demand, DemandState, Phase};
use crate::format::metainfo::Metainfo;
use crate::http::{self, Source, SourceError};
use crate::store::{Store, StoreError};

/// Bytes one request asks for (at least one piece). Small enough that the
/// pieces near a playhead spread over all connections instead of queueing
/// behind one slow request; large enough to keep a keep-alive connection busy.
/// One worker holds at most one piece of it in memory at a time.
const SPAN: u64 = 1 << 20;

/// How long one request should last. A request is never interrupted, so this
/// bounds how long a seek can wait for a busy connection on a slow source.
const SPAN_TIME: f64 = 2.0;

/// The request size for a source whose speed is not known yet.
const FIRST_SPAN: u64 = 256 << 10;

/// Consecutive failures after which a source is dropped for the torrent.
const MAX_SOURCE_FAILURES: u32 = 5;

/// How often an idle worker looks for a wait that P2P let go stale.
const STALE_CHECK: Duration = Duration::from_millis(250);

/// The longest backoff between retries of one source.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl Tiers {
    /// One HTTP connection's worth of work, until the torrent goes away.
    pub(super) async fn work(
        &self,
        store: &Store,
        torrent: &Arc<Torrent>,
        meta: &Arc<Metainfo>,
        sources: &[Source],
    ) {
        let demand = &torrent.demand;
        loop {
            let listener = demand.changed.listen();
            let quota = self.config.cache_max_disk_bytes();
            let Some(job) = next_job(
                store,
                demand,
                meta,
                quota,
                self.config.http_connections as usize,
                self.config.p2p_timeout,
                self.config.readahead_bytes(),
            ) else {
                // A wait turns stale (P2P_TIMEOUT passes) without any event: look again soon.
                future::or(
                    async {
                        listener.await;
                    },
                    async {
                        Timer::after(STALE_CHECK).await;
                    },
                )
                .await;
                continue;
            };
            if let Some(until) = job.wait_until {
                // Every live source is backing off: sleep until the first may retry.
                release(demand, &job);
                future::or(
                    async {
                        Timer::at(until).await;
                    },
                    listener,
                )
                .await;
                continue;
            }
            let started = Instant::now();
            let outcome = self
                .fetch_span(store, torrent, meta, &sources[job.source], &job)
                .await;
            release(demand, &job);
            if outcome.is_ok() {
                let bytes: u64 = job.span.clone().map(|p| meta.piece_size(p)).sum();
                demand.record_rate(
                    job.source,
                    bytes as f64 / started.elapsed().as_secs_f64().max(1e-3),
                );
            }
            self.judge(demand, job.source, outcome);
        }
    }

    /// Fetches `span` from one source and writes each piece as it completes.
    async fn fetch_span(
        &self,
        store: &Store,
        torrent: &Torrent,
        meta: &Metainfo,
        source: &Source,
        job: &Job,
    ) -> Result<(), SpanError> {
        let (span, source_index) = (job.span.clone(), job.source);
        let (tx, rx) = smol::channel::bounded(1);
        let pool = store.piece_pool();
        let fetch = async {
            let result =
                http::fetch_pieces(&self.client, source, meta, span.clone(), &pool, &tx).await;
            drop(tx);
            result
        };
        // The receiver moves in, so that when writing fails it is dropped, and
        // the fetch's next send fails instead of waiting forever.
        let write = async move {
            while let Ok((piece, bytes)) = rx.recv().await {
                let len = bytes.len() as u64;
                match store
                    .write_piece(&meta.info_hash, piece, bytes, self.config.piece_wait)
                    .await
                {
                    Ok(()) => {
                        torrent.demand.mark_fetched(piece);
                        torrent
                            .demand
                            .fetched_http
                            .fetch_add(len, Ordering::Relaxed);
                        torrent.demand.lock().sources[source_index].bytes += len;
                    }
                    Err(StoreError::HashMismatch { piece }) => {
                        return Err(SpanError::Corrupt { piece })
                    }
                    Err(e) => return Err(SpanError::Store(e)),
                }
            }
            Ok(())
        };
        // Whichever fails first ends both: dropping the receiver stops the fetch.
        let (fetched, written) = future::zip(fetch, write).await;
        written?;
        fetched.map_err(SpanError::Source)
    }

    /// Updates a source's health after a request.
    fn judge(&self, demand: &Demand, source_index: usize, outcome: Result<(), SpanError>) {
        let mut st = demand.lock();
        let s = &mut st.sources[source_index];
        let label = s.label.clone();
        match outcome {
            // A request already in flight when the source was dropped may still
            // succeed; the record of why it was dropped stays.
            Ok(()) if s.dropped.is_some() => {}
            Ok(()) => {
                s.failures = 0;
                s.retry_at = None;
            }
            Err(SpanError::Corrupt { piece }) => {
                s.failures += 1;
                log::warn!(
                    "[Hybrid] Dropping source {label}: piece {piece} failed its SHA-1 check"
                );
                s.dropped = Some(format!("piece {piece} failed its SHA-1 check"));
            }
            Err(SpanError::Store(StoreError::QuotaExceeded { needed, free })) => {
                log::info!("[Hybrid] Cache full ({needed} bytes needed, {free} free): background download stops");
                st.background = false;
            }
            Err(SpanError::Store(e)) => log::warn!("[Hybrid] cannot store a piece: {e}"),
            Err(SpanError::Source(e)) => {
                s.failures += 1;
                let backoff = match &e {
                    SourceError::RetryAfter { after, .. } => *after,
                    _ => Duration::from_secs(1 << s.failures.min(5)).min(MAX_BACKOFF),
                };
                if matches!(e, SourceError::Gone { .. }) || s.failures >= MAX_SOURCE_FAILURES {
                    log::warn!("[Hybrid] Dropping source {label}: {e}");
                    s.dropped = Some(e.to_string());
                } else {
                    log::info!(
                        "[Hybrid] Source {label} failed ({e}); retrying in {} ms",
                        backoff.as_millis()
                    );
                    s.retry_at = Some(Instant::now() + backoff);
                }
            }
        }
        if st.sources.iter().all(|s| s.dropped.is_some()) {
            let reasons: Vec<String> = st
                .sources
                .iter()
                .map(|s| format!("{}: {}", s.label, s.dropped.as_deref().unwrap_or("")))
                .collect();
            st.phase = Phase::Failed(format!("every HTTP source failed ({})", reasons.join("; ")));
        }
        drop(st);
        demand.changed.notify(usize::MAX);
    }
}

/// Why a span stopped.
enum SpanError {
    Corrupt { piece: u32 },
    Store(StoreError),
    Source(SourceError),
}

/// A run of pieces claimed by one worker.
struct Job {
    span: Range<u32>,
    source: usize,
    /// Set when every live source backs off: sleep until then, then pick again.
    wait_until: Option<Instant>,
    /// A reader waits for the first piece; otherwise readahead or background.
    urgent: bool,
}

/// Picks the next run of pieces and a source for it, claiming the pieces.
/// With several connections, one is kept free of readahead and background
/// work, so that a seek never queues behind a slow request.
fn next_job(
    store: &Store,
    demand: &Demand,
    meta: &Metainfo,
    quota: u64,
    connections: usize,
    p2p_timeout: Duration,
    readahead: u64,
) -> Option<Job> {
    let ih = meta.info_hash;
    let missing = |p: u32, st: &DemandState| {
        !st.claimed.contains(&p) && !st.p2p_claimed.contains(&p) && !store.has_piece(&ih, p)
    };
    let mut st = demand.lock();
    let bulk = match st.phase {
        Phase::Http => true,
        // P2P does the bulk; HTTP only rescues pieces a reader waited on too long.
        Phase::P2p { .. } => false,
        Phase::Idle | Phase::Failed(_) => return None,
    };
    let count = meta.piece_count();
    let file = st.file.clone().unwrap_or(0..count);
    // The newest wait first: after a seek, the player's new request matters,
    // not the old one it abandoned while its socket buffer still drains. A
    // piece P2P is fetching is fetched here too if the reader has waited on it
    // longer than P2P_TIMEOUT: that is the one case where both tiers fetch.
    let now = Instant::now();
    let urgent = st
        .waiting
        .iter()
        .filter(|(p, w)| {
            let stale = now.saturating_duration_since(w.first) >= p2p_timeout;
            !st.claimed.contains(p)
                && !store.has_piece(&ih, **p)
                && (stale || (bulk && !st.p2p_claimed.contains(p)))
        })
        .max_by_key(|(_, w)| w.last)
        .map(|(p, _)| *p);
    let spare = bulk && (connections <= 1 || st.non_urgent + 1 < connections);
    let ahead = || {
        let from = st.playhead.map(|o| (o / meta.piece_length) as u32)?;
        // A quarter of the quota at most, or readahead evicts what the reader is about to read.
        let window = readahead;
        let to = ((st.playhead? + window) / meta.piece_length).min(file.end as u64) as u32;
        (from..to).find(|p| missing(*p, &st))
    };
    // Completing the file only makes sense if it fits: otherwise the tail
    // would evict the head, and a reread would fetch it again.
    let fits = file_bytes(meta, &file) <= quota / 10 * 9;
    let background = || {
        (st.background && fits)
            .then(|| file.clone().find(|p| missing(*p, &st)))
            .flatten()
    };
    let first = match urgent {
        Some(p) => p,
        None if spare => ahead().or_else(background)?,
        None => return None,
    };

    let live: Vec<usize> = (0..st.sources.len())
        .filter(|i| st.sources[*i].dropped.is_none())
        .collect();
    let ready = live
        .iter()
        .copied()
        .find(|i| st.sources[*i].retry_at.is_none_or(|t| t <= now));
    let wait_until = match ready {
        Some(_) => None,
        None => Some(live.iter().filter_map(|i| st.sources[*i].retry_at).min()?),
    };
    let source = ready.unwrap_or(0);
    let bytes = st
        .sources
        .get(source)
        .and_then(|s| s.rate)
        .map_or(FIRST_SPAN, |r| (r * SPAN_TIME) as u64);
    let max = (bytes.min(SPAN) / meta.piece_length).max(1) as u32;
    let mut end = first + 1;
    while bulk && end < count.min(first + max) && missing(end, &st) {
        end += 1;
    }
    st.claimed.extend(first..end);
    let urgent = urgent.is_some();
    if !urgent {
        st.non_urgent += 1;
    }
    Some(Job {
        span: first..end,
        source,
        wait_until,
        urgent,
    })
}

/// Gives a job's pieces back; those that arrived are in the store now.
fn release(demand: &Demand, job: &Job) {
    let mut st = demand.lock();
    for p in job.span.clone() {
        st.claimed.remove(&p);
    }
    if !job.urgent {
        st.non_urgent -= 1;
    }
}
