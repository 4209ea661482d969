//! The blocks given up at one peer (cancelled, rejected, or dropped by a
//! choke) whose answer may still come: a cancel cannot reach what the peer
//! already wrote to its socket, behind a slow uplink that is seconds of data,
//! and a libtorrent seeder on the WAN rig sent blocks it had been asked for
//! before a request was given up.
//!
//! What it is for: a block asked again after that may come back as the
//! answer to the first request, moments after the second, and must not be
//! timed as a round trip (timed, it gave the WAN rig's 4 MB/s seeder a round
//! trip of 0.4 ms instead of 160, a pipeline of 8 blocks, and 1 MB/s for
//! 11 s). Bounded; pure bookkeeping, no I/O.

use std::collections::VecDeque;

use super::{BlockRef, PIPELINE_MAX};

/// Given-up blocks remembered per peer: no more than [`PIPELINE_MAX`] can be
/// outstanding at once, so no more can be answered late (12 bytes each, 3 KB
/// per peer at most). The oldest is forgotten first.
const MAX_UNANSWERED: usize = PIPELINE_MAX;

/// Given-up blocks not yet seen arriving, oldest first.
#[derive(Default)]
pub(super) struct Unanswered(VecDeque<BlockRef>);

impl Unanswered {
    /// A block asked of the peer was given up.
    pub(super) fn note(&mut self, block: BlockRef) {
        if self.0.len() >= MAX_UNANSWERED {
            self.0.pop_front();
        }
        self.0.push_back(block);
    }

    /// Whether an arriving block may answer a given-up request; it is
    /// forgotten either way (one request, at most one late answer).
    pub(super) fn answers(&mut self, block: &BlockRef) -> bool {
        if self.0.is_empty() {
            return false;
        }
        match self.0.iter().position(|b| b == block) {
            Some(i) => {
                self.0.remove(i);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(piece: u32) -> BlockRef {
        BlockRef {
            piece,
            offset: 0,
            length: 16384,
        }
    }

    #[test]
    fn a_cancelled_block_answers_once() {
        let mut u = Unanswered::default();
        u.note(block(7));
        assert!(!u.answers(&block(8)), "never cancelled");
        assert!(u.answers(&block(7)), "the late answer to the cancel");
        assert!(
            !u.answers(&block(7)),
            "a second copy answers the new request"
        );
    }

    #[test]
    fn a_flood_of_cancels_keeps_the_newest_within_the_bound() {
        let mut u = Unanswered::default();
        let n = 10 * MAX_UNANSWERED as u32;
        for p in 0..n {
            u.note(block(p));
        }
        assert_eq!(u.0.len(), MAX_UNANSWERED);
        assert!(u.answers(&block(n - 1)), "the newest is remembered");
        assert!(!u.answers(&block(0)), "the oldest is forgotten");
    }
}
