//! The errors of the HTTP tier: one for a content source, one for fetching
//! a .torrent. Each names the URL it is about.
//!
//! Owns what a failure means for the caller (retry, back off, fail over).
//! Must never decide the retry itself: the scheduler owns retries, backoff
//! and failover; this module only says which kind of failure it was.

use std::fmt;
use std::time::Duration;

use crate::format::metainfo::MetainfoError;
use crate::format::InfoHash;

/// Why a content source stopped. Pieces completed before the error were
/// already sent, so a retry resumes after the last verified piece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceError {
    /// 429 or 503: come back after `after` (`Retry-After`, or a default).
    RetryAfter {
        url: String,
        status: u16,
        after: Duration,
    },
    /// 403, 404 or 410: this source does not have the file; fail over.
    Gone { url: String, status: u16 },
    /// Another 5xx: worth retrying with backoff.
    ServerError { url: String, status: u16 },
    /// Any other status (a 3xx left after redirects, 401, 416…): fail over.
    Refused { url: String, status: u16 },
    /// A 206 for other bytes than asked: the source cannot be trusted with
    /// offsets; fail over.
    WrongRange {
        url: String,
        asked: String,
        got: Option<String>,
    },
    /// No byte within the timeout, for the headers or the body: retry.
    Stalled { url: String, after: Duration },
    /// The body ended early: `got` of `expected` bytes of that request.
    Truncated {
        url: String,
        got: u64,
        expected: u64,
    },
    /// Connecting, TLS or the transfer failed below HTTP: retry.
    Transport { url: String, reason: String },
    /// The receiver of the pieces went away: the caller no longer wants them.
    Abandoned { url: String },
}

impl SourceError {
    /// The URL the error is about.
    pub fn url(&self) -> &str {
        use SourceError::*;
        match self {
            RetryAfter { url, .. }
            | Gone { url, .. }
            | ServerError { url, .. }
            | Refused { url, .. }
            | WrongRange { url, .. }
            | Stalled { url, .. }
            | Truncated { url, .. }
            | Transport { url, .. }
            | Abandoned { url } => url,
        }
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use SourceError::*;
        match self {
            RetryAfter { url, status, after } => {
                write!(f, "{url}: {status}, retry after {}s", after.as_secs_f32())
            }
            Gone { url, status } => write!(f, "{url}: {status}, the source does not have it"),
            ServerError { url, status } => write!(f, "{url}: server error {status}"),
            Refused { url, status } => write!(f, "{url}: unexpected status {status}"),
            WrongRange { url, asked, got } => {
                write!(f, "{url}: asked for {asked}, got Content-Range {got:?}")
            }
            Stalled { url, after } => {
                write!(f, "{url}: no data for {} ms", after.as_millis())
            }
            Truncated { url, got, expected } => {
                write!(f, "{url}: body ended after {got} of {expected} bytes")
            }
            Transport { url, reason } => write!(f, "{url}: {reason}"),
            Abandoned { url } => write!(f, "{url}: nobody wants the pieces any more"),
        }
    }
}

impl std::error::Error for SourceError {}

/// Why one .torrent source gave nothing usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TorrentProblem {
    Status(u16),
    /// More than `HTTP_MAX_TORRENT_KB`.
    TooLarge {
        cap: u64,
    },
    /// Not a torrent (an HTML error page, a captcha…); `starts` is the
    /// beginning of the body, for the log.
    NotATorrent {
        error: MetainfoError,
        starts: String,
    },
    /// A valid torrent, but another one.
    WrongHash {
        expected: InfoHash,
        got: InfoHash,
    },
    Stalled {
        after: Duration,
    },
    Transport(String),
}

impl fmt::Display for TorrentProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TorrentProblem::Status(status) => write!(f, "status {status}"),
            TorrentProblem::TooLarge { cap } => write!(f, "larger than {cap} bytes"),
            TorrentProblem::NotATorrent { error, starts } => {
                write!(f, "not a torrent ({error}); it starts with {starts:?}")
            }
            TorrentProblem::WrongHash { expected, got } => {
                write!(f, "info hash {got}, not {expected}")
            }
            TorrentProblem::Stalled { after } => write!(f, "no data for {} ms", after.as_millis()),
            TorrentProblem::Transport(reason) => f.write_str(reason),
        }
    }
}

/// No source gave the .torrent: every source tried, with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorrentFetchError {
    pub attempts: Vec<(String, TorrentProblem)>,
}

impl fmt::Display for TorrentFetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.attempts.is_empty() {
            return f.write_str("no .torrent source is configured (TORRENT_SOURCES is empty)");
        }
        f.write_str("no .torrent source gave the torrent: ")?;
        for (i, (url, problem)) in self.attempts.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{url}: {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TorrentFetchError {}
