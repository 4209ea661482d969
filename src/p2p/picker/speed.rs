//! A peer's expected arrival times, from its measured round trip, rate and
//! queue: what the deadline order of urgent blocks is built from.
//!
//! Pure arithmetic.

use crate::p2p::wire::BLOCK_LEN;

/// How one peer delivers, as measured: what its expected arrival times come from.
#[derive(Debug, Clone, Copy)]
pub struct Speed {
    /// Round trip, seconds.
    pub rtt: f64,
    /// Bytes a second.
    pub rate: f64,
    /// Blocks asked of it and not yet received (served first: BitTorrent peers answer in order).
    pub queued: usize,
}

impl Speed {
    /// Seconds from now until the `k`-th next block asked of this peer arrives (1: the next).
    ///
    /// No sooner than a round trip and its own `k` blocks' time; and, since
    /// the peer answers in order at its rate, no sooner than everything
    /// queued before it plus those `k` (Little's law: `queued` requests at
    /// `rate` take `queued` blocks' time to come back, whatever part of that
    /// is still on the way). The larger of the two, not their sum: the
    /// queued blocks are partly in flight already, and adding a whole round
    /// trip to them made a busy near peer look later than a far idle one
    /// (measured on the WAN rig: blocks due in 316 ms came at 163 ms).
    pub fn eta(&self, k: usize) -> f64 {
        let block = BLOCK_LEN as f64 / self.rate.max(1.0);
        (self.rtt + k as f64 * block).max((self.queued + k) as f64 * block)
    }

    /// How many more blocks asked of this peer now would arrive within `t`
    /// seconds: the largest `k` with `eta(k) <= t`.
    pub fn within(&self, t: f64) -> usize {
        let block = BLOCK_LEN as f64 / self.rate.max(1.0);
        let k = ((t - self.rtt) / block).min(t / block - self.queued as f64);
        if k >= 1.0 {
            k.floor() as usize
        } else {
            0
        }
    }
}
