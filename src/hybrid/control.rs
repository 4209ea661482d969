//! The controller of one torrent: it runs the swarm, adopts the metadata the
//! swarm finds, watches the demand, and hands the work over between the
//! tiers (P2P first; HTTP after `P2P_TIMEOUT` without delivery; back to P2P
//! when peers deliver steadily).
//!
//! Must never serve bytes, and never hold a lock across an `.await`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_io::Timer;
use futures_lite::future;

use super::{State, Tiers, Torrent};
use crate::demand::{file_pieces, Phase, SourceState};
use crate::format::metainfo::Metainfo;
use crate::format::InfoHash;
use crate::http::{self, Source};
use crate::p2p::{Swarm, SwarmCtx};
use crate::store::Store;

/// How long P2P must deliver steadily, with no reader stalled, before HTTP
/// steps back: long enough that one lucky piece does not flap the tiers.
const TAKE_BACK_AFTER: Duration = Duration::from_secs(10);

/// The HTTP tier of one torrent, once a handover started it.
#[derive(Default)]
pub(super) struct HttpTier {
    /// How many sources it has; None until the first handover.
    sources: Option<usize>,
    workers: Vec<smol::Task<()>>,
}

impl Tiers {
    pub(super) async fn control(&self, store: &Store, torrent: &Arc<Torrent>) {
        let ih = torrent.info_hash;
        // Dropped with this future, after (declared before) everything it owns.
        struct Ended(InfoHash);
        impl Drop for Ended {
            fn drop(&mut self) {
                log::info!("[Hybrid] {}: every task of the torrent ended", self.0);
            }
        }
        let _ended = Ended(ih);
        // The swarm runs as long as this controller: seeding, and fetching
        // alongside HTTP, and it takes the work back when peers show up. The
        // metadata it finds comes back over `found`.
        let (found, found_rx) = smol::channel::bounded(1);
        let swarm = self.p2p.swarm(SwarmCtx {
            info_hash: ih,
            store: store.clone(),
            demand: torrent.demand.clone(),
            magnet: torrent.magnet.clone(),
            meta: torrent.meta(),
            found,
        });
        torrent.life.lock().unwrap().swarm = Some(swarm.clone());
        // Kept here, so that dropping the controller (removal) ends the swarm.
        let _run = smol::spawn(swarm.clone().run());
        let adopt = async {
            while let Ok(meta) = found_rx.recv().await {
                self.adopt_from_peers(store, torrent, &swarm, meta).await;
            }
            future::pending::<()>().await
        };
        // Each try runs the tiers until no tier can serve the torrent; then it
        // waits (backoff, or a player asking again) and tries again.
        let tries = async {
            loop {
                let reason = self.run_tiers(store, torrent, &swarm).await;
                let Some(at) = torrent.fail(reason) else {
                    return;
                };
                torrent.wait_retry(at).await;
                if !torrent.set_state(State::Resolving) {
                    return;
                }
            }
        };
        future::or(tries, adopt).await;
    }

    /// One try: resolves the metadata if need be, then supervises the tiers.
    /// Returns only when no tier can serve the torrent, with the reason.
    async fn run_tiers(&self, store: &Store, torrent: &Arc<Torrent>, swarm: &Arc<Swarm>) -> String {
        let ih = torrent.info_hash;
        let demand = &torrent.demand;
        let (meta, p2p_failed) = match torrent.meta() {
            Some(meta) => (meta, false),
            None => match self.resolve(store, torrent, swarm).await {
                Ok(found) => found,
                Err(reason) => {
                    log::warn!("[Hybrid] {ih}: {reason}");
                    return reason;
                }
            },
        };
        swarm.set_meta(meta.clone());
        torrent.set_state(State::Ready);
        {
            let mut st = demand.lock();
            if st.file.is_none() {
                st.file = Torrent::default_file(&meta).map(|i| file_pieces(&meta, i));
            }
        }
        let mut http = HttpTier::default();
        if p2p_failed {
            self.hand_over(store, torrent, &meta, swarm, &mut http);
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
                        self.hand_over(store, torrent, &meta, swarm, &mut http);
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
                    // No tier can serve it: this try ends, and the HTTP workers with it.
                    Phase::Failed(reason) => return reason,
                    _ => {}
                }
                let complete = store
                    .verified(&ih)
                    .is_some_and(|(n, _)| n >= meta.piece_count());
                torrent.set_state(if demand.active() {
                    State::Fetching
                } else if complete {
                    State::Seeding
                } else {
                    State::Ready
                });
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
        let progress = async {
            self.progress(store, torrent, &meta).await;
            future::pending().await
        };
        future::or(supervise, progress).await
    }

    /// P2P missed `P2P_TIMEOUT`: the HTTP workers start (once) and take the bulk.
    pub(super) fn hand_over(
        &self,
        store: &Store,
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
                let mut st = demand.lock();
                st.sources = sources
                    .iter()
                    .map(|source| SourceState {
                        label: source.label(),
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
                let sources: Arc<[Source]> = sources.into();
                http.workers = (0..self.config.http_connections)
                    .map(|_| {
                        let (tiers, store, t, meta, sources) = (
                            self.clone(),
                            store.clone(),
                            torrent.clone(),
                            meta.clone(),
                            sources.clone(),
                        );
                        smol::spawn(async move { tiers.work(&store, &t, &meta, &sources).await })
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
}
