//! Rate limits on incoming queries: a token bucket per source IP and one for
//! everyone, so one host cannot make us its amplifier and a crowd cannot
//! take the board's CPU.
//!
//! Owns the buckets, bounded at [`MAX_SOURCES`] addresses; when that many are
//! tracked, idle ones are dropped, and if none is idle a new address is
//! refused (the global bucket still guards the total). Pure: time is passed in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// Queries per second one IP may send, with a burst of as many.
pub const PER_IP_PER_SEC: f64 = 20.0;
/// Queries per second we answer in all. A busy libtorrent node sees ~50/s;
/// 200/s of KRPC is a few percent of a Pi 3's core.
pub const GLOBAL_PER_SEC: f64 = 200.0;
/// Source addresses tracked at once (~40 bytes each).
pub const MAX_SOURCES: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(rate: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: rate,
            at: now,
        }
    }

    fn take(&mut self, rate: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn is_full(&self, rate: f64, now: Instant) -> bool {
        self.tokens + now.saturating_duration_since(self.at).as_secs_f64() * rate >= rate
    }
}

#[derive(Debug)]
pub struct QueryLimit {
    global: Bucket,
    sources: HashMap<IpAddr, Bucket>,
}

impl QueryLimit {
    pub fn new(now: Instant) -> QueryLimit {
        QueryLimit {
            global: Bucket::full(GLOBAL_PER_SEC, now),
            sources: HashMap::new(),
        }
    }

    /// Whether a query from `ip` may be answered now.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        if !self.sources.contains_key(&ip) && self.sources.len() >= MAX_SOURCES {
            self.sources.retain(|_, b| !b.is_full(PER_IP_PER_SEC, now));
            if self.sources.len() >= MAX_SOURCES {
                return false;
            }
        }
        let mine = self
            .sources
            .entry(ip)
            .or_insert_with(|| Bucket::full(PER_IP_PER_SEC, now));
        mine.take(PER_IP_PER_SEC, now) && self.global.take(GLOBAL_PER_SEC, now)
    }

    pub fn tracked(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(n))
    }

    #[test]
    fn one_source_gets_its_burst_then_its_rate() {
        let now = Instant::now();
        let mut l = QueryLimit::new(now);
        let allowed = (0..100).filter(|_| l.allow(ip(1), now)).count();
        assert_eq!(allowed, PER_IP_PER_SEC as usize);
        assert!(l.allow(ip(2), now), "another source is not affected");
        let later = now + Duration::from_millis(500);
        let allowed = (0..100).filter(|_| l.allow(ip(1), later)).count();
        assert_eq!(allowed, 10, "half a second refills half the bucket");
    }

    #[test]
    fn many_sources_hit_the_global_cap_and_the_map_stays_bounded() {
        let now = Instant::now();
        let mut l = QueryLimit::new(now);
        let allowed = (0..10_000).filter(|n| l.allow(ip(*n), now)).count();
        assert_eq!(allowed, GLOBAL_PER_SEC as usize);
        assert!(l.tracked() <= MAX_SOURCES);
        // A minute later every bucket is idle again and new sources are tracked.
        let later = now + Duration::from_secs(60);
        assert!(l.allow(ip(20_000), later));
        assert!(l.tracked() <= MAX_SOURCES);
    }
}
