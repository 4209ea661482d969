//! The seed's progress log lines for the played file, every few seconds.

use std::sync::atomic::Ordering;
use std::time::Duration;

use async_io::Timer;

use super::{mb, Tiers, Torrent};
use crate::format::metainfo::Metainfo;
use crate::store::Store;

/// How often progress is logged while a tier downloads.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

impl Tiers {
    /// Logs progress of the played file in the seed's form, every few seconds.
    pub(super) async fn progress(&self, store: &Store, torrent: &Torrent, meta: &Metainfo) {
        let fetched = || {
            torrent.demand.fetched_http.load(Ordering::Relaxed)
                + torrent.demand.fetched_p2p.load(Ordering::Relaxed)
        };
        let mut last = fetched();
        let mut reported_done = false;
        loop {
            Timer::after(PROGRESS_EVERY).await;
            let now = fetched();
            let Some(file) = torrent.demand.lock().file.clone() else {
                continue;
            };
            let have = file
                .clone()
                .filter(|p| store.has_piece(&meta.info_hash, *p))
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
