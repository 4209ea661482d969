//! The states of one torrent, and the one function that moves it between
//! them ([`Torrent::set_state`]). What runs in each state:
//!
//! | state       | runs                                                              |
//! |-------------|-------------------------------------------------------------------|
//! | `Resolving` | the controller, the swarm (metadata over ut_metadata, announces), then the .torrent sources after `P2P_TIMEOUT` |
//! | `Ready`     | the controller and the swarm; no reader is active                 |
//! | `Fetching`  | the controller, the swarm, and the HTTP workers once P2P missed `P2P_TIMEOUT` |
//! | `Seeding`   | the controller and the swarm; every piece is verified in the store |
//! | `Failed`    | the controller waits for `retry_at` (or for a player to ask again); the swarm keeps looking for peers; no HTTP worker |
//! | `Removed`   | nothing: terminal                                                 |
//!
//! ```text
//!   Resolving ──metadata──▶ Ready ◀──▶ Fetching ──all verified──▶ Seeding
//!       │                     │           │
//!       └────── no tier ──────┴───────────┴──▶ Failed{reason, retry_at} ──retry──▶ Resolving
//!   any state ──delete──▶ Removed (terminal)
//! ```
//!
//! # Design
//! The owner of every task of a torrent is its [`Life`]: the controller
//! task (which holds the swarm's run, its announces and discovery, and the
//! HTTP workers) and the swarm handle. Removal takes the controller and drops
//! it, which cancels all of them at their next poll, and hands the swarm back
//! once so the trackers hear `stopped`. Nothing leaves `Removed`: the
//! transition function refuses, and [`super::Tiers::engage`] does nothing
//! for a removed torrent. A new torrent with the same hash gets a new
//! demand and a new swarm (the P2P registry replaces, never reuses).
//!
//! A failure waits with a backoff that doubles from [`RETRY_FIRST`] up to
//! [`RETRY_MAX`], and ends at once when a player asks again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Torrent;
use crate::demand::Phase;
use crate::p2p::Swarm;

/// The first wait after a failure: sources that were down for a moment
/// (a restarting mirror) are asked again soon.
pub const RETRY_FIRST: Duration = Duration::from_secs(10);

/// The longest wait between two tries: a few minutes, so a source that comes
/// back is used within that long even if no player asks.
pub const RETRY_MAX: Duration = Duration::from_secs(4 * 60);

/// Where one torrent is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Its metadata is being looked for.
    Resolving,
    /// Metadata known; no reader active.
    Ready,
    /// A reader is active; the tiers fetch what it needs.
    Fetching,
    /// Every piece is verified in the store.
    Seeding,
    /// No tier could serve it; tried again at `retry_at`.
    Failed { reason: String, retry_at: Instant },
    /// Deleted: terminal.
    Removed,
}

impl State {
    pub fn name(&self) -> &'static str {
        match self {
            State::Resolving => "resolving",
            State::Ready => "ready",
            State::Fetching => "fetching",
            State::Seeding => "seeding",
            State::Failed { .. } => "failed",
            State::Removed => "removed",
        }
    }
}

/// A torrent's state, and the handles of every task it owns.
pub(super) struct Life {
    pub(super) state: State,
    /// The controller task; dropping it ends the swarm, the announces and the HTTP workers.
    pub(super) controller: Option<smol::Task<()>>,
    /// The swarm while the controller runs it (for its numbers, and `stopped` at removal).
    pub(super) swarm: Option<Arc<Swarm>>,
    /// Failures in a row, for the backoff and the API.
    pub(super) failures: u32,
    /// Tries after a failure so far, for the API (never reset).
    pub(super) retries: u32,
}

impl Default for Life {
    fn default() -> Life {
        Life {
            state: State::Resolving,
            controller: None,
            swarm: None,
            failures: 0,
            retries: 0,
        }
    }
}

/// The wait after `failures` failures in a row.
pub fn backoff(failures: u32) -> Duration {
    RETRY_FIRST
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(RETRY_MAX)
}

impl Torrent {
    /// The one place a torrent changes state. Returns false (and changes
    /// nothing) when the torrent is removed: nothing leaves `Removed`.
    /// Entering `Failed` counts a failure; any state after it but a retry
    /// (`Resolving`) clears the count.
    pub fn set_state(&self, to: State) -> bool {
        let mut life = self.life.lock().unwrap();
        if life.state == State::Removed {
            return false;
        }
        if life.state == to {
            return true;
        }
        match &to {
            State::Failed { reason, retry_at } => {
                log::warn!(
                    "[Hybrid] {}: failed: {reason}; next try in {} s",
                    self.info_hash,
                    retry_at.saturating_duration_since(Instant::now()).as_secs()
                );
                self.demand.set_phase(Phase::Failed(reason.clone()));
            }
            State::Resolving if matches!(life.state, State::Failed { .. }) => {
                log::info!(
                    "[Hybrid] {}: trying again (attempt {})",
                    self.info_hash,
                    life.failures + 1
                );
                // Readers wait for the new try instead of failing on the old reason.
                self.demand.set_phase(Phase::Idle);
                life.retries += 1;
            }
            State::Removed => {
                // Readers waiting on a piece end now, with this reason.
                self.demand
                    .set_phase(Phase::Failed("the torrent was removed".into()));
                life.controller = None;
            }
            State::Ready | State::Fetching | State::Seeding => life.failures = 0,
            State::Resolving => {}
        }
        life.state = to;
        drop(life);
        self.retry.notify(usize::MAX);
        true
    }

    /// The state now.
    pub fn state(&self) -> State {
        self.life.lock().unwrap().state.clone()
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.life.lock().unwrap().failures
    }

    /// Tries after a failure so far.
    pub fn retries(&self) -> u32 {
        self.life.lock().unwrap().retries
    }

    /// A try failed: the torrent waits `backoff(failures)` before the next.
    /// Returns when the next try is due.
    pub(super) fn fail(&self, reason: String) -> Option<Instant> {
        let retry_at = {
            let mut life = self.life.lock().unwrap();
            if life.state == State::Removed {
                return None;
            }
            life.failures += 1;
            Instant::now() + backoff(life.failures)
        };
        self.set_state(State::Failed { reason, retry_at })
            .then_some(retry_at)
    }

    /// A player asks for a failed torrent: the next try starts now.
    pub(super) fn retry_now(&self) {
        if matches!(self.state(), State::Failed { .. }) {
            self.set_state(State::Resolving);
        }
    }

    /// Waits until `at`, or until the torrent leaves `Failed` (a player asked again).
    pub(super) async fn wait_retry(&self, at: Instant) {
        loop {
            let listener = self.retry.listen();
            if !matches!(self.state(), State::Failed { .. }) || Instant::now() >= at {
                return;
            }
            futures_lite::future::or(
                async {
                    listener.await;
                },
                async {
                    async_io::Timer::at(at).await;
                },
            )
            .await;
        }
    }

    /// Removal: terminal. Ends every task of the torrent (the controller is
    /// dropped, which cancels the swarm, its announces and the HTTP workers)
    /// and returns the swarm, so that its trackers can hear `stopped`.
    pub fn remove(&self) -> Option<Arc<Swarm>> {
        let (controller, swarm) = {
            let mut life = self.life.lock().unwrap();
            (life.controller.take(), life.swarm.take())
        };
        self.set_state(State::Removed);
        // Dropped outside the lock: cancelling runs the tasks' destructors.
        drop(controller);
        swarm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped_at_a_few_minutes() {
        assert_eq!(backoff(1), RETRY_FIRST);
        assert_eq!(backoff(2), RETRY_FIRST * 2);
        assert_eq!(backoff(3), RETRY_FIRST * 4);
        assert_eq!(backoff(100), RETRY_MAX);
        assert!(RETRY_MAX <= Duration::from_secs(5 * 60));
    }

    #[test]
    fn nothing_leaves_removed() {
        let t = Torrent::new(crate::format::InfoHash([7; 20]), None, None);
        assert_eq!(t.state(), State::Resolving);
        assert!(t.fail("no source".into()).is_some());
        assert!(matches!(t.state(), State::Failed { .. }));
        assert_eq!(t.failures(), 1);
        t.retry_now();
        assert_eq!(t.state(), State::Resolving);
        assert_eq!(t.demand.phase(), Phase::Idle);
        assert_eq!(t.retries(), 1);
        assert!(t.remove().is_none());
        assert_eq!(t.state(), State::Removed);
        for to in [
            State::Resolving,
            State::Ready,
            State::Fetching,
            State::Seeding,
        ] {
            assert!(!t.set_state(to));
            assert_eq!(t.state(), State::Removed);
        }
        assert!(t.fail("again".into()).is_none());
        t.retry_now();
        assert_eq!(t.state(), State::Removed);
        assert!(matches!(t.demand.phase(), Phase::Failed(_)));
    }
}
