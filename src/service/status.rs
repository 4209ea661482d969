//! The `STATUS=` line that `systemctl status` shows: torrents, streams, the
//! serving rate and the cache's fill. Reads counters only; never changes them.

use std::time::Instant;

use crate::session::{Session, Torrent};

/// The one-line `STATUS=`: torrents, streams, cache use against the quota.
/// A torrent counts as streaming when players were served bytes of it since
/// the last refresh; the server keeps no count of open streams to read.
pub(super) struct StatusLine {
    session: Session,
    /// Total bytes served at the last refresh, and when, for the rate.
    last: Option<(u64, Instant)>,
    /// Bytes served per torrent at the last refresh: a torrent whose count
    /// moved since is being streamed.
    served: Vec<(crate::format::InfoHash, u64)>,
}

impl StatusLine {
    pub(super) fn new(session: &Session) -> StatusLine {
        StatusLine {
            session: session.clone(),
            last: None,
            served: Vec::new(),
        }
    }

    pub(super) fn refresh(&mut self) -> String {
        let now = Instant::now();
        let served: Vec<_> = self
            .session
            .list()
            .iter()
            .map(|t| (t.info_hash, bytes_served(t)))
            .collect();
        let streaming = served
            .iter()
            .filter(|(ih, bytes)| {
                let before = self.served.iter().find(|(b, _)| b == ih).map_or(0, |b| b.1);
                *bytes > before
            })
            .count();
        let total: u64 = served.iter().map(|(_, b)| b).sum();
        let rate = match self.last {
            Some((before, at)) if now > at => {
                total.saturating_sub(before) as f64 / now.duration_since(at).as_secs_f64()
            }
            _ => 0.0,
        };
        self.last = Some((total, now));
        self.served = served;
        let usage = self.session.store.usage();
        format_status(self.served.len(), streaming, rate, usage.used, usage.quota)
    }
}

/// Bytes served to players from every tier, as the API reports them.
fn bytes_served(torrent: &Torrent) -> u64 {
    torrent.served().iter().sum()
}

/// `2 torrents, 1 streaming at 3.1 MB/s, cache 1200/5000 MB (24%)`.
fn format_status(torrents: usize, streaming: usize, rate: f64, used: u64, quota: u64) -> String {
    const MB: f64 = 1024.0 * 1024.0;
    let percent = if quota == 0 {
        0
    } else {
        (used as u128 * 100 / quota as u128) as u64
    };
    format!(
        "{torrents} torrent{}, {streaming} streaming at {:.1} MB/s, cache {}/{} MB ({percent}%)",
        if torrents == 1 { "" } else { "s" },
        rate / MB,
        used / (1024 * 1024),
        quota / (1024 * 1024),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_counts_and_percent() {
        let mb = 1024 * 1024;
        assert_eq!(
            format_status(2, 1, 3.3 * mb as f64, 1200 * mb, 5000 * mb),
            "2 torrents, 1 streaming at 3.3 MB/s, cache 1200/5000 MB (24%)"
        );
        assert_eq!(
            format_status(1, 0, 0.0, 0, 0),
            "1 torrent, 0 streaming at 0.0 MB/s, cache 0/0 MB (0%)"
        );
    }
}
