//! A magnet's metadata: from peers over ut_metadata within `P2P_TIMEOUT`,
//! else from the .torrent sources while peers keep trying; and the metadata
//! the swarm found, adopted (stored) by the torrent.
//!
//! Must never block the executor: storing the .torrent runs on the blocking pool.

use std::sync::Arc;
use std::time::Instant;

use super::{mb, within, Tiers, Torrent};
use crate::demand::Phase;
use crate::format::metainfo::Metainfo;
use crate::http;
use crate::p2p::Swarm;
use crate::store::Store;
use futures_lite::future;

impl Tiers {
    /// The metadata of a magnet: from peers within `P2P_TIMEOUT`, else from
    /// the .torrent sources while peers keep trying. Returns it, and whether
    /// P2P missed its deadline (then HTTP takes over the pieces at once).
    pub(super) async fn resolve(
        &self,
        store: &Store,
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
        let from_http = self.fetch_metadata(store, torrent);
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

    /// Steps 1 to 3 of the seed's flow: the .torrent by info hash, parsed, its file chosen.
    async fn fetch_metadata(
        &self,
        store: &Store,
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
        let (s, t) = (store.clone(), torrent.clone());
        let meta = smol::unblock(move || t.adopt_meta(&s, meta))
            .await
            .map_err(|e| e.to_string())?;
        log::info!(
            "[Hybrid] Parsed torrent: {name}   Files: {files}   Total size: {}",
            mb(total)
        );
        if let Some(i) = Torrent::default_file(&meta) {
            log::info!(
                "[Hybrid] Step 3: Finding video file...   Selected: {} ({})",
                meta.files[i].path.join("/"),
                mb(meta.files[i].length)
            );
        }
        Ok(meta)
    }

    /// Verified metadata from peers becomes the torrent's (stored off the
    /// executor), and the swarm's.
    pub(super) async fn adopt_from_peers(
        &self,
        store: &Store,
        torrent: &Arc<Torrent>,
        swarm: &Swarm,
        meta: Metainfo,
    ) {
        let (s, t) = (store.clone(), torrent.clone());
        match smol::unblock(move || t.adopt_meta(&s, meta)).await {
            Ok(meta) => {
                log::info!(
                    "[P2P] Metadata from peers: {} ({} pieces of {} KiB)",
                    meta.name,
                    meta.piece_count(),
                    meta.piece_length / 1024
                );
                swarm.set_meta(meta);
            }
            Err(e) => log::warn!("[P2P] {}: cannot keep the metadata: {e}", torrent.info_hash),
        }
    }
}
