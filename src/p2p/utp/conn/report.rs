//! The numbers that explain a [`Connection`]: a one-line description for
//! logs, the counts of sends, and the bookkeeping check the tests run after
//! every step.
//!
//! Apart because none of it changes the connection: it must never mutate
//! state, so that reading it cannot alter what it explains.

use super::*;

impl Connection {
    /// The numbers that explain a stall, for logs and failing tests.
    pub fn describe(&self) -> String {
        let need = self.unacked.iter().filter(|p| p.need_send).count();
        let sacked = self.unacked.iter().filter(|p| p.sacked).count();
        format!(
            "state {:?} seq {} acked {} ack_nr {} unacked {} (need_send {need}, sacked {sacked}) \
             in_flight {} queue {} cwnd {:.0} peer_wnd {} timeouts {} rto_at {:?} \
             readable {} reorder {} ({} B) room {} sent {} resent {} {:?}",
            self.state,
            self.seq_nr,
            self.acked_seq,
            self.ack_nr,
            self.unacked.len(),
            self.in_flight,
            self.queue.len(),
            self.cwnd,
            self.peer_wnd,
            self.timeouts,
            self.rto_at
                .map(|t| t.saturating_duration_since(Instant::now())),
            self.readable.len(),
            self.reorder.len(),
            self.reorder_bytes,
            self.room,
            self.sends,
            self.resent,
            self.stats,
        )
    }

    /// The bookkeeping agrees with the packets (the tests call it after
    /// every step: a drift here once stalled a lossy transfer for good).
    #[cfg(test)]
    pub fn check(&self) {
        let counted: usize = self
            .unacked
            .iter()
            .filter(|p| p.counted)
            .map(|p| p.payload.len())
            .sum();
        assert_eq!(self.in_flight, counted, "in_flight drifted");
        let all: usize = self.unacked.iter().map(|p| p.payload.len()).sum();
        assert_eq!(self.unacked_bytes, all);
        assert!(self
            .unacked
            .iter()
            .all(|p| !(p.sacked && (p.counted || p.need_send))));
        let held: usize = self.reorder.iter().flatten().map(|h| h.payload.len()).sum();
        assert_eq!(self.reorder_bytes, held);
    }

    /// Packets sent, and of them sent again.
    pub fn sends(&self) -> (u64, u64) {
        (self.sends, self.resent)
    }

    #[cfg(test)]
    pub fn cwnd(&self) -> usize {
        self.cwnd as usize
    }
}
