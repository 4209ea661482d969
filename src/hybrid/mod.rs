//! The per-torrent lifecycle owner: the controller that runs a torrent's
//! tiers, the P2P_TIMEOUT handover both ways, and the HTTP workers that fill
//! the store.
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
//! The tiers get the store, the torrent's [`Demand`] and a channel for the
//! metadata they find, never the registry: this room sits above the tiers and
//! below [`crate::session`], and imports neither the session nor the server.
//!
//! This module owns every deadline of the tiers; it never serves bytes.
//! - `torrent`: one torrent as the owner holds it;
//! - `control`: the controller and the handover;
//! - `resolve`: a magnet's metadata, from peers or from the .torrent sources;
//! - `worker`: the HTTP workers' scheduling (which piece, which source, how big a request);
//! - `progress`: the seed's progress log lines.

use std::sync::Arc;
use std::time::Duration;

use async_io::Timer;
use futures_lite::future;

mod control;
pub mod lifecycle;
mod progress;
mod resolve;
mod torrent;
mod worker;

pub use crate::demand::{file_pieces, Demand, DemandView, Phase, Waiting};
pub use lifecycle::State;
pub use torrent::{AddError, Torrent};

use crate::config::Config;
use crate::http::Client;
use crate::p2p::P2p;
use crate::store::Store;

/// The tiers beyond the cache, shared by every torrent.
#[derive(Clone)]
pub struct Tiers {
    pub config: Arc<Config>,
    pub client: Client,
    pub p2p: P2p,
}

impl Tiers {
    /// Starts the torrent's controller once; later calls do nothing, but
    /// that a failed torrent is tried again at once (a player asks for it),
    /// and a removed one is never started again. The controller writes into
    /// `store` (the registry passes itself).
    pub fn engage(&self, store: &impl AsRef<Store>, torrent: &Arc<Torrent>) {
        let mut life = torrent.life.lock().unwrap();
        match life.state {
            State::Removed => return,
            State::Failed { .. } => {
                drop(life);
                torrent.retry_now();
                return;
            }
            _ if life.controller.is_some() => return,
            _ => {}
        }
        // The controller holds the torrent only while it runs: removal drops
        // this task, which ends the cycle.
        let (tiers, store, t) = (self.clone(), store.as_ref().clone(), torrent.clone());
        life.controller = Some(smol::spawn(async move { tiers.control(&store, &t).await }));
    }
}

/// `f` if it finishes within `limit`.
async fn within<T>(limit: Duration, f: impl std::future::Future<Output = T>) -> Option<T> {
    future::or(async { Some(f.await) }, async {
        Timer::after(limit).await;
        None
    })
    .await
}

/// Sizes in the seed's log form.
fn mb(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{} MB", bytes >> 20)
    }
}
