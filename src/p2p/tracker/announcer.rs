//! The [`Announcer`]: one torrent announced to its BEP 12 tiers for as long as
//! its swarm runs.
//!
//! Owns the order of the trackers in each tier, the events each one has been
//! sent, when each tier announces again, and the backoff of trackers that do
//! not answer. Must never hold its lock across an `.await`, and never ask a
//! tracker more often than it allows (`min interval`, and 30 s at least).
//!
//! # Implementation
//! One loop per tier, polled together by [`Announcer::run`]. A tier announces
//! to its trackers in order until one answers; that one moves to the front
//! (BEP 12), and the tier sleeps for its interval. A tracker that failed is
//! skipped until its backoff ends (60 s, doubling, 30 min at most); when every
//! tracker of a tier is backing off, the tier sleeps until the first one may
//! be tried again.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::task::Poll;
use std::time::{Duration, Instant};

use async_io::Timer;
use futures_lite::future;
use serde_json::json;

use super::{announce, Event, Progress, Reply, Request, TrackerError};
use crate::format::InfoHash;
use crate::http::Client;

/// Peers asked for in each announce. Enough to fill `MAX_PEERS` twice over on
/// the boards (50 to 80), with room for the ones that do not answer.
const NUM_WANT: u32 = 100;

/// The soonest a tier announces again, whatever the tracker says: a tracker
/// that answers `interval 1` must not make us hammer it.
const MIN_REANNOUNCE: Duration = Duration::from_secs(30);

/// The latest a tier announces again: a tracker that answers a day keeps its
/// peer list fresh enough for the status API and for new peers.
const MAX_REANNOUNCE: Duration = Duration::from_secs(2 * 3600);

/// The first wait after a tracker fails, doubled at each further failure.
const BACKOFF_FIRST: Duration = Duration::from_secs(60);

/// The longest wait before a failed tracker is tried again.
const BACKOFF_MAX: Duration = Duration::from_secs(30 * 60);

/// Each `stopped` at shutdown: the service has a few seconds to exit.
const STOP_DEADLINE: Duration = Duration::from_secs(3);

/// How often a sleeping tier looks at `wants_peers()` and at the channel.
const TICK: Duration = Duration::from_secs(1);

/// The order trackers of a tier are tried in first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TierOrder {
    /// Shuffled once, as BEP 12 asks, so the load spreads over the trackers.
    #[default]
    Shuffled,
    /// As given (tests, and callers that already shuffled).
    AsGiven,
}

/// Announces one torrent to its tracker tiers for as long as it runs.
pub struct Announcer {
    client: Client,
    info_hash: InfoHash,
    peer_id: [u8; 20],
    port: u16,
    /// Random per torrent: the tracker recognises us by it if our address
    /// changes.
    key: u32,
    /// `completed()` was called: the next announce of each tier says so.
    completed: AtomicBool,
    /// Per tier, its trackers in the order they are tried. Locked only
    /// between awaits.
    tiers: Mutex<Vec<Tier>>,
}

#[derive(Debug)]
struct Tier {
    trackers: Vec<Tracker>,
    /// `completed` went to this tier (once per tier, BEP 3).
    completed_sent: bool,
}

#[derive(Debug)]
struct Tracker {
    url: String,
    /// It answered a `started` and has not been sent `stopped`.
    started: bool,
    last_error: Option<String>,
    last_peers: Option<usize>,
    seeders: Option<u32>,
    leechers: Option<u32>,
    /// Failures in a row.
    failures: u32,
    /// Not tried before this instant after a failure.
    retry_at: Option<Instant>,
}

/// When a tier announces again after an answer.
#[derive(Clone, Copy)]
struct Schedule {
    last: Instant,
    interval: Duration,
    min_interval: Duration,
}

impl Announcer {
    /// `tiers`: BEP 12 announce-list (or [[announce]]), already merged with
    /// TRACKERS by the caller. Each tier is shuffled once.
    pub fn new(
        client: Client,
        tiers: Vec<Vec<String>>,
        info_hash: InfoHash,
        peer_id: [u8; 20],
        port: u16,
    ) -> Announcer {
        Announcer::with_order(client, tiers, info_hash, peer_id, port, TierOrder::Shuffled)
    }

    /// [`Announcer::new`] with the first order of each tier chosen.
    pub fn with_order(
        client: Client,
        tiers: Vec<Vec<String>>,
        info_hash: InfoHash,
        peer_id: [u8; 20],
        port: u16,
        order: TierOrder,
    ) -> Announcer {
        let tiers = tiers
            .into_iter()
            .filter(|urls| !urls.is_empty())
            .map(|mut urls| {
                if order == TierOrder::Shuffled {
                    fastrand::shuffle(&mut urls);
                }
                Tier {
                    trackers: urls.into_iter().map(Tracker::new).collect(),
                    completed_sent: false,
                }
            })
            .collect();
        Announcer {
            client,
            info_hash,
            peer_id,
            port,
            key: fastrand::u32(..),
            completed: AtomicBool::new(false),
            tiers: Mutex::new(tiers),
        }
    }

    /// Announces `started` to the first answering tracker of each tier, then
    /// again at each tracker's interval (sooner, at min interval but at least
    /// 30 s, when `wants_peers()` is true); every peer list goes to `found`.
    /// Runs until dropped; never returns while the channel is open. Records
    /// per-tracker state for `status()`.
    pub async fn run(
        &self,
        progress: &(dyn Fn() -> Progress + Sync),
        wants_peers: &(dyn Fn() -> bool + Sync),
        found: &smol::channel::Sender<Vec<std::net::SocketAddr>>,
    ) {
        let count = self.lock().len();
        if count == 0 {
            while !found.is_closed() {
                Timer::after(TICK).await;
            }
            return;
        }
        let loops = (0..count).map(|tier| self.tier_loop(tier, progress, wants_peers, found));
        join_all(loops.collect()).await;
    }

    /// Sends `completed` (once) at the next announce.
    pub fn completed(&self) {
        self.completed.store(true, Ordering::Relaxed);
    }

    /// `stopped` to every tracker that got `started`, all in parallel, each
    /// within 3 s.
    pub async fn stop(&self, progress: Progress) {
        let urls: Vec<String> = self
            .lock()
            .iter()
            .flat_map(|tier| tier.trackers.iter())
            .filter(|t| t.started)
            .map(|t| t.url.clone())
            .collect();
        let stops = urls.iter().map(|url| async move {
            let req = self.request(progress, Event::Stopped, 0);
            let sent = future::or(
                async { Some(announce(&self.client, url, &req).await) },
                async {
                    Timer::after(STOP_DEADLINE).await;
                    None
                },
            )
            .await;
            match sent {
                Some(Ok(_)) => log::debug!("[P2P] tracker {url}: stopped"),
                Some(Err(e)) => log::info!("[P2P] {e} (stopped)"),
                None => {
                    log::info!("[P2P] tracker {url}: no answer to stopped within {STOP_DEADLINE:?}")
                }
            }
        });
        join_all(stops.collect()).await;
        for tracker in self.lock().iter_mut().flat_map(|t| t.trackers.iter_mut()) {
            tracker.started = false;
        }
    }

    /// Seeders + leechers from the latest replies (max over tiers), for
    /// `SwarmStats::swarm_size`.
    pub fn swarm_size(&self) -> Option<u32> {
        self.lock()
            .iter()
            .flat_map(|tier| tier.trackers.iter())
            .filter_map(|t| match (t.seeders, t.leechers) {
                (None, None) => None,
                (s, l) => Some(s.unwrap_or(0).saturating_add(l.unwrap_or(0))),
            })
            .max()
    }

    /// Per tracker: url, tier, last error, last peer count, seeders and
    /// leechers, for the status API.
    pub fn status(&self) -> serde_json::Value {
        let tiers = self.lock();
        let trackers: Vec<_> = tiers
            .iter()
            .enumerate()
            .flat_map(|(n, tier)| {
                tier.trackers.iter().map(move |t| {
                    json!({
                        "url": t.url,
                        "tier": n,
                        "last_error": t.last_error,
                        "last_peers": t.last_peers,
                        "seeders": t.seeders,
                        "leechers": t.leechers,
                    })
                })
            })
            .collect();
        serde_json::Value::Array(trackers)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Tier>> {
        // A panic elsewhere cannot leave the tracker list half-written in a
        // way that matters: every write is a whole field.
        self.tiers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn request(&self, progress: Progress, event: Event, num_want: u32) -> Request {
        Request {
            info_hash: self.info_hash,
            peer_id: self.peer_id,
            port: self.port,
            progress,
            event,
            num_want,
            key: self.key,
        }
    }

    /// Announces tier `tier` until `found` closes.
    async fn tier_loop(
        &self,
        tier: usize,
        progress: &(dyn Fn() -> Progress + Sync),
        wants_peers: &(dyn Fn() -> bool + Sync),
        found: &smol::channel::Sender<Vec<std::net::SocketAddr>>,
    ) {
        let mut schedule: Option<Schedule> = None;
        loop {
            if found.is_closed() {
                return;
            }
            match self.announce_tier(tier, progress()).await {
                Some(reply) => {
                    schedule = Some(Schedule::after(&reply));
                    if !reply.peers.is_empty() && found.send(reply.peers).await.is_err() {
                        return;
                    }
                }
                None => {
                    // Every tracker failed or is backing off: wait for the
                    // first that may be tried again, but keep the schedule of
                    // the last answer if that comes sooner.
                    let retry = self.next_retry(tier);
                    let due = match schedule {
                        Some(s) => retry.min(s.last + s.interval),
                        None => retry,
                    };
                    if !sleep_until(|| due, found).await {
                        return;
                    }
                    continue;
                }
            }
            let Some(s) = schedule else { continue };
            let due = || {
                let wait = if wants_peers() {
                    s.min_interval
                } else {
                    s.interval
                };
                s.last + wait
            };
            if !sleep_until(due, found).await {
                return;
            }
        }
    }

    /// The first instant a tracker of `tier` may be tried again.
    fn next_retry(&self, tier: usize) -> Instant {
        let now = Instant::now();
        self.lock()[tier]
            .trackers
            .iter()
            .map(|t| t.retry_at.unwrap_or(now))
            .min()
            .unwrap_or(now + BACKOFF_FIRST)
            .max(now + TICK)
    }

    /// One announce to the first answering tracker of `tier`, skipping those
    /// backing off. The one that answers moves to the front.
    async fn announce_tier(&self, tier: usize, progress: Progress) -> Option<Reply> {
        let now = Instant::now();
        let urls: Vec<String> = self.lock()[tier]
            .trackers
            .iter()
            .filter(|t| t.retry_at.is_none_or(|at| at <= now))
            .map(|t| t.url.clone())
            .collect();
        for url in urls {
            let event = self.next_event(tier, &url);
            let req = self.request(progress, event, NUM_WANT);
            let result = announce(&self.client, &url, &req).await;
            if let Some(reply) = self.record(tier, &url, event, result) {
                return Some(reply);
            }
        }
        None
    }

    /// `started` for a tracker that has not had it, then `completed` once per
    /// tier after [`Announcer::completed`].
    fn next_event(&self, tier: usize, url: &str) -> Event {
        let tiers = self.lock();
        let started = tiers[tier]
            .trackers
            .iter()
            .any(|t| t.url == url && t.started);
        if !started {
            Event::Started
        } else if self.completed.load(Ordering::Relaxed) && !tiers[tier].completed_sent {
            Event::Completed
        } else {
            Event::None
        }
    }

    /// Writes one announce's outcome into the tracker's state and logs it.
    fn record(
        &self,
        tier: usize,
        url: &str,
        event: Event,
        result: Result<Reply, TrackerError>,
    ) -> Option<Reply> {
        let mut tiers = self.lock();
        let tier = &mut tiers[tier];
        let pos = tier.trackers.iter().position(|t| t.url == url)?;
        let tracker = &mut tier.trackers[pos];
        match result {
            Ok(reply) => {
                log::debug!("[P2P] tracker {url}: {} peers", reply.peers.len());
                tracker.started = true;
                tracker.failures = 0;
                tracker.retry_at = None;
                tracker.last_error = None;
                tracker.last_peers = Some(reply.peers.len());
                tracker.seeders = reply.seeders;
                tracker.leechers = reply.leechers;
                // `started` while complete says so already (BEP 3: no
                // `completed` for a download complete at start).
                if event == Event::Completed
                    || (event == Event::Started && self.completed.load(Ordering::Relaxed))
                {
                    tier.completed_sent = true;
                }
                // BEP 12: the tracker that answered goes to the front.
                let answered = tier.trackers.remove(pos);
                tier.trackers.insert(0, answered);
                Some(reply)
            }
            Err(e) => {
                log::info!("[P2P] {e}");
                tracker.failures = tracker.failures.saturating_add(1);
                tracker.retry_at = Some(Instant::now() + backoff(tracker.failures));
                tracker.last_error = Some(e.reason());
                None
            }
        }
    }
}

impl Schedule {
    /// The tracker's interval and min interval, within [`MIN_REANNOUNCE`]
    /// and [`MAX_REANNOUNCE`]. Without a min interval, the interval is the
    /// soonest: the tracker said nothing that allows more.
    fn after(reply: &Reply) -> Schedule {
        let interval = reply.interval.clamp(MIN_REANNOUNCE, MAX_REANNOUNCE);
        Schedule {
            last: Instant::now(),
            interval,
            min_interval: reply
                .min_interval
                .unwrap_or(interval)
                .clamp(MIN_REANNOUNCE, interval),
        }
    }
}

/// The wait before a tracker that failed `failures` times in a row is tried
/// again: 60 s, doubling, 30 min at most.
fn backoff(failures: u32) -> Duration {
    BACKOFF_FIRST
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(BACKOFF_MAX)
}

impl Tracker {
    fn new(url: String) -> Tracker {
        Tracker {
            url,
            started: false,
            last_error: None,
            last_peers: None,
            seeders: None,
            leechers: None,
            failures: 0,
            retry_at: None,
        }
    }
}

/// Sleeps until `due()` (asked again at every tick, as `wants_peers` can
/// change it); `false` if `found` closed meanwhile.
async fn sleep_until(
    due: impl Fn() -> Instant,
    found: &smol::channel::Sender<Vec<std::net::SocketAddr>>,
) -> bool {
    loop {
        if found.is_closed() {
            return false;
        }
        let now = Instant::now();
        let due = due();
        if now >= due {
            return true;
        }
        Timer::after((due - now).min(TICK)).await;
    }
}

/// Polls every future to completion, together, on the caller's task: no
/// executor handle is needed, and dropping the result drops them all.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    future::poll_fn(|cx| {
        let mut pending = false;
        for (fut, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if out.is_none() {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(value) => *out = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announcer(tiers: Vec<Vec<&str>>) -> Announcer {
        let tiers = tiers
            .into_iter()
            .map(|t| t.into_iter().map(String::from).collect())
            .collect();
        let client = Client::new(Duration::from_secs(1), 1024).unwrap();
        let hash = InfoHash([1; 20]);
        Announcer::with_order(client, tiers, hash, [2; 20], 6881, TierOrder::AsGiven)
    }

    fn reply(seeders: u32, leechers: u32) -> Result<Reply, TrackerError> {
        Ok(Reply {
            interval: Duration::from_secs(1800),
            seeders: Some(seeders),
            leechers: Some(leechers),
            ..Reply::default()
        })
    }

    fn dead(url: &str) -> Result<Reply, TrackerError> {
        Err(TrackerError::Timeout {
            url: url.to_string(),
            after: Duration::from_secs(10),
        })
    }

    #[test]
    fn events_are_started_then_completed_once_then_none() {
        let a = announcer(vec![vec!["udp://a:1"]]);
        assert_eq!(a.next_event(0, "udp://a:1"), Event::Started);
        a.record(0, "udp://a:1", Event::Started, reply(0, 1));
        assert_eq!(a.next_event(0, "udp://a:1"), Event::None);
        a.completed();
        assert_eq!(a.next_event(0, "udp://a:1"), Event::Completed);
        a.record(0, "udp://a:1", Event::Completed, reply(1, 0));
        assert_eq!(a.next_event(0, "udp://a:1"), Event::None);
    }

    #[test]
    fn started_while_complete_counts_as_completed() {
        let a = announcer(vec![vec!["udp://a:1"]]);
        a.completed();
        a.record(0, "udp://a:1", Event::Started, reply(1, 0));
        assert_eq!(a.next_event(0, "udp://a:1"), Event::None);
    }

    #[test]
    fn a_failed_tracker_backs_off_and_the_answering_one_moves_first() {
        let a = announcer(vec![vec!["udp://a:1", "udp://b:1"], vec!["udp://c:1"]]);
        assert!(a
            .record(0, "udp://a:1", Event::Started, dead("udp://a:1"))
            .is_none());
        assert!(a
            .record(0, "udp://b:1", Event::Started, reply(4, 6))
            .is_some());
        a.record(1, "udp://c:1", Event::Started, reply(1, 2));
        let status = a.status();
        assert_eq!(status[0]["url"], "udp://b:1", "{status}");
        assert_eq!(status[1]["url"], "udp://a:1", "{status}");
        assert_eq!(status[1]["last_error"], "no answer within 10s", "{status}");
        assert!(
            a.lock()[0].trackers[1].retry_at.unwrap() > Instant::now() + Duration::from_secs(50)
        );
        // The largest tier's count, not a sum over tiers that see the same peers.
        assert_eq!(a.swarm_size(), Some(10));
        // Only b has had `started`: a never answered it, and c is in another tier.
        assert!(a.lock()[0].trackers[0].started && !a.lock()[0].trackers[1].started);
    }

    #[test]
    fn backoff_doubles_from_a_minute_to_half_an_hour() {
        let secs: Vec<u64> = (1..=7).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [60, 120, 240, 480, 960, 1800, 1800]);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }

    #[test]
    fn reannounce_respects_the_tracker_within_bounds() {
        let of = |interval: u64, min: Option<u64>| {
            let s = Schedule::after(&Reply {
                interval: Duration::from_secs(interval),
                min_interval: min.map(Duration::from_secs),
                ..Reply::default()
            });
            (s.interval.as_secs(), s.min_interval.as_secs())
        };
        assert_eq!(of(1800, Some(900)), (1800, 900));
        assert_eq!(of(1800, None), (1800, 1800));
        // A tracker asking for hammering, or for silence, is bounded.
        assert_eq!(of(1, Some(1)), (30, 30));
        assert_eq!(of(86_400, Some(5)), (7200, 30));
        assert_eq!(of(600, Some(3600)), (600, 600));
    }
}
