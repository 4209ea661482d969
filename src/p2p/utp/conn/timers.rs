//! What time does to a [`Connection`]: the retransmission timeout (and its
//! doubling), the deadline of the next tail-loss probe, the idle limit, and
//! the timeout's resend of everything unacked.
//!
//! Apart because these run from the socket's ticker, between packets; the
//! probe itself and loss detection are the acks' ([`super::acks`]). It never
//! reads the wall clock: `now` is passed in.

use super::*;

impl Connection {
    pub(super) fn rto(&self) -> Duration {
        let base = match self.srtt {
            None => SYN_RTO,
            Some(srtt) => (srtt + 4 * self.rttvar).max(MIN_RTO),
        };
        (base * (1u32 << self.timeouts.min(7))).min(MAX_RTO)
    }

    /// When [`Connection::tick`] has work next: the timeout, or the next
    /// tail-loss probe (a few ms away on a LAN, finer than the ticker).
    pub fn deadline(&self) -> Option<Instant> {
        let probe = match self.srtt {
            Some(_) if self.state == State::Connected && !self.unacked.is_empty() => {
                Some(self.progress_at + self.probe_wait())
            }
            _ => None,
        };
        match (self.rto_at, probe) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// How long after the last ack that moved the next probe goes.
    pub(super) fn probe_wait(&self) -> Duration {
        self.probe_base() * (1u32 << self.probes.min(MAX_PROBE_DOUBLINGS))
    }

    pub(super) fn probe_base(&self) -> Duration {
        (self.srtt.unwrap_or(SYN_RTO) * 2).max(PROBE_WAIT)
    }

    /// Timeouts: resends after an RTO, keepalives, and the idle limit.
    pub fn tick(&mut self, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        if now.duration_since(self.last_recv) >= IDLE {
            return self.fail(Failure::TimedOut);
        }
        // The time half of loss detection runs between acks too.
        self.detect_losses(now);
        // After a stall of our own (the ticker late), acks may wait unread
        // in the socket: no probe until the receive loop has caught up.
        if now.duration_since(self.ticked_at) < TICK_STALL {
            self.probe_tail(now);
        }
        self.ticked_at = now;
        let Some(at) = self.rto_at else { return };
        if now < at {
            return;
        }
        if self.unacked.is_empty() {
            self.rto_at = None;
            return;
        }
        self.timeouts += 1;
        self.stats.timeouts += 1;
        log::debug!("uTP timeout {}: {}", self.timeouts, self.describe());
        if self.peer_wnd < MAX_PAYLOAD && self.state == State::Connected {
            // A closed window is not a dead peer (it acks our probes):
            // probe every few seconds for as long as it keeps answering.
            self.timeouts = self.timeouts.min(3);
        }
        let limit = if self.state == State::SynSent {
            MAX_SYN_TIMEOUTS
        } else {
            MAX_TIMEOUTS
        };
        if self.timeouts > limit {
            return self.fail(Failure::TimedOut);
        }
        // Everything unacked is presumed lost; start again from one window.
        for p in self.unacked.iter_mut() {
            if p.sacked {
                continue;
            }
            if p.counted {
                p.counted = false;
                self.in_flight -= p.payload.len();
            }
            if p.transmissions > 0 {
                p.need_send = true;
            }
        }
        self.ssthresh = (self.cwnd / 2.0).max(MIN_CWND);
        self.cwnd = MIN_CWND;
        self.slow_start = true;
        self.loss_seq_nr = self.seq_nr.wrapping_sub(1);
        self.rto_at = Some(now + self.rto());
    }
}
