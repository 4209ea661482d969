//! Tracker clients: one announce to an HTTP(S) or UDP tracker ([`announce`]),
//! and the [`Announcer`] that keeps announcing one torrent to its BEP 12
//! tiers for as long as the swarm runs.
//!
//! Owns the trackers' protocols (BEP 3, 7, 12, 15, 23), their timing
//! (interval, min interval, retransmits, backoff of dead trackers) and their
//! status for the API. Must never wait without a deadline, never trust what a
//! tracker says beyond the caps in [`parse`], and never connect to a peer: it
//! only hands addresses to the swarm.
//!
//! # Implementation
//! [`parse`] is pure (bytes in, values out); [`http`] and [`udp`] do the I/O
//! of one announce, each under a deadline; [`Announcer`] runs one loop per
//! tier, all polled together by `run`, and keeps per-tracker state behind a
//! mutex that is never held across an `.await`.

mod announcer;
mod http;
pub mod parse;
#[cfg(test)]
mod tests;
mod udp;

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

pub use announcer::{Announcer, TierOrder};
pub use parse::ParseError;

use crate::format::InfoHash;

/// What the swarm reports at each announce.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
}

/// The `event` of an announce (BEP 3; BEP 15 numbers them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Started,
    Completed,
    Stopped,
    /// A regular re-announce.
    None,
}

impl Event {
    /// The HTTP `event=` value; `None` sends no parameter.
    fn http_name(self) -> Option<&'static str> {
        match self {
            Event::Started => Some("started"),
            Event::Completed => Some("completed"),
            Event::Stopped => Some("stopped"),
            Event::None => None,
        }
    }

    /// The BEP 15 event number.
    fn udp_code(self) -> u32 {
        match self {
            Event::None => 0,
            Event::Completed => 1,
            Event::Started => 2,
            Event::Stopped => 3,
        }
    }
}

/// One announce's answer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reply {
    pub peers: Vec<SocketAddr>,
    pub interval: Duration,
    pub min_interval: Option<Duration>,
    pub seeders: Option<u32>,
    pub leechers: Option<u32>,
}

/// One announce to send.
#[derive(Clone, Debug)]
pub struct Request {
    pub info_hash: InfoHash,
    pub peer_id: [u8; 20],
    /// Our listening port (`TORRENT_PORT`).
    pub port: u16,
    pub progress: Progress,
    pub event: Event,
    pub num_want: u32,
    /// BEP 15 / BEP 3 `key`: lets the tracker recognise us when our address
    /// changes. Random per torrent, stable for its life.
    pub key: u32,
}

/// Why one announce got no peers. Each names the tracker's URL.
#[derive(Debug)]
pub enum TrackerError {
    /// A scheme other than http, https or udp, or no host and port.
    BadUrl { url: String },
    /// The host name did not resolve.
    Resolve { url: String, reason: String },
    /// A socket or HTTP transport error.
    Transport { url: String, reason: String },
    /// No answer within the deadline (for UDP, after every retransmit).
    Timeout { url: String, after: Duration },
    /// An HTTP status other than 200.
    Status { url: String, status: u16 },
    /// An HTTP body past [`parse::MAX_HTTP_BODY`].
    TooLarge { url: String, cap: usize },
    /// The tracker refused: `failure reason`, or a UDP error message.
    Refused { url: String, reason: String },
    /// The answer could not be parsed.
    BadReply { url: String, problem: ParseError },
}

impl TrackerError {
    /// The tracker's URL.
    pub fn url(&self) -> &str {
        match self {
            TrackerError::BadUrl { url }
            | TrackerError::Resolve { url, .. }
            | TrackerError::Transport { url, .. }
            | TrackerError::Timeout { url, .. }
            | TrackerError::Status { url, .. }
            | TrackerError::TooLarge { url, .. }
            | TrackerError::Refused { url, .. }
            | TrackerError::BadReply { url, .. } => url,
        }
    }

    /// What went wrong, without the URL (for the status API).
    pub fn reason(&self) -> String {
        match self {
            TrackerError::BadUrl { .. } => "not an http, https or udp tracker URL".to_string(),
            TrackerError::Resolve { reason, .. } => format!("cannot resolve: {reason}"),
            TrackerError::Transport { reason, .. } => reason.clone(),
            TrackerError::Timeout { after, .. } => format!("no answer within {after:?}"),
            TrackerError::Status { status, .. } => format!("HTTP status {status}"),
            TrackerError::TooLarge { cap, .. } => format!("reply larger than {cap} bytes"),
            TrackerError::Refused { reason, .. } => format!("refused: {reason}"),
            TrackerError::BadReply { problem, .. } => problem.to_string(),
        }
    }
}

impl fmt::Display for TrackerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tracker {}: {}", self.url(), self.reason())
    }
}

impl std::error::Error for TrackerError {}

/// One announce to one tracker URL (http, https or udp).
pub async fn announce(
    client: &crate::http::Client,
    url: &str,
    req: &Request,
) -> Result<Reply, TrackerError> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("http") | Some("https") => http::announce(client, url, req).await,
        Some("udp") => udp::announce(url, req).await,
        _ => Err(TrackerError::BadUrl {
            url: url.to_string(),
        }),
    }
}
