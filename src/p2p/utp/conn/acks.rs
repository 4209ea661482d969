//! What an ack does to a [`Connection`]: the cumulative and selective ack,
//! RTT samples, loss detection and recovery (BEP 29's "three past it" rule,
//! duplicate acks, the tail-loss probe), and LEDBAT's window.
//!
//! The rules are described in the parent module's design notes; this is the
//! half of the state machine that reads acks, while [`super::send`] builds and
//! sends packets and [`super::receive`] delivers bytes. Like the parent, it
//! never touches a socket or the wall clock.

use super::*;

impl Connection {
    /// The ack part of any packet: cumulative ack, SACK, window, delay.
    pub(super) fn on_ack(&mut self, h: &Header, now: Instant) {
        self.peer_wnd = h.wnd_size as usize;
        let newly = h.ack_nr.wrapping_sub(self.acked_seq) as usize;
        let mut acked_bytes = 0usize;
        let mut rtt_sample = None;
        let before_flight = self.in_flight;
        if newly >= 1 && newly <= self.unacked.len() {
            for _ in 0..newly {
                let p = self.unacked.pop_front().expect("counted");
                self.unacked_bytes -= p.payload.len();
                if p.counted {
                    self.in_flight -= p.payload.len();
                }
                if !p.sacked {
                    acked_bytes += p.payload.len();
                    self.overtaken_by(&p);
                }
                // Karn: only a packet sent once measures the RTT, and only
                // if no resend went out before its ack could.
                if p.transmissions == 1 && self.last_resend.is_none_or(|t| p.sent_at > t) {
                    let sample = now.duration_since(p.sent_at);
                    rtt_sample = Some(rtt_sample.map_or(sample, |s: Duration| s.min(sample)));
                }
            }
            self.acked_seq = h.ack_nr;
            self.timeouts = 0;
            self.probes = 0;
            self.progress_at = now;
            self.dup_acks = 0;
            self.rto_at = (!self.unacked.is_empty()).then(|| now + self.rto());
        } else if newly == 0
            && h.kind == Type::State
            && self.unacked.front().is_some_and(|p| p.counted)
        {
            self.dup_acks += 1;
            if self.dup_acks == DUP_ACKS {
                self.stats.dup_ack_resends += 1;
                let seq = self.acked_seq.wrapping_add(1);
                self.lose(0, seq, now);
            }
        }
        if let Some(mask) = h.sack() {
            // Bit i is seq ack_nr + 2 + i, which sits at unacked[i + 1] once
            // the cumulative ack is applied (only when it matches ours).
            if h.ack_nr == self.acked_seq {
                for (byte_i, byte) in mask.iter().enumerate() {
                    for bit in 0..8 {
                        if byte & (1 << bit) == 0 {
                            continue;
                        }
                        let idx = 1 + byte_i * 8 + bit;
                        let Some(p) = self.unacked.get_mut(idx) else {
                            break;
                        };
                        if p.sacked || p.transmissions == 0 {
                            continue;
                        }
                        p.sacked = true;
                        // Arrived: a resend it was waiting for is moot.
                        p.need_send = false;
                        if p.counted {
                            p.counted = false;
                            self.in_flight -= p.payload.len();
                        }
                        if p.transmissions == 1 && self.last_resend.is_none_or(|t| p.sent_at > t) {
                            let sample = now.duration_since(p.sent_at);
                            rtt_sample =
                                Some(rtt_sample.map_or(sample, |s: Duration| s.min(sample)));
                        }
                        acked_bytes += p.payload.len();
                        let (order, transmissions) = (p.order, p.transmissions);
                        if transmissions == 1 {
                            self.highest_acked_order = self.highest_acked_order.max(order);
                        }
                    }
                }
            }
        }
        if let Some(sample) = rtt_sample {
            self.update_rtt(sample);
        }
        if acked_bytes > 0 {
            self.detect_losses(now);
            if h.timestamp_difference != 0 {
                self.on_delay_sample(h.timestamp_difference, now);
            }
            self.grow(acked_bytes, before_flight);
        }
    }

    /// An acked packet shows that every packet sent before it was
    /// overtaken, but only if it was sent once: the ack of a resend may be
    /// the first copy's, and taking the resend's place in the order then
    /// declared lost every packet sent between the copies (a spurious probe
    /// on a loaded machine cascaded into 88 needless resends of 50 000).
    fn overtaken_by(&mut self, p: &Sent) {
        if p.transmissions == 1 {
            self.highest_acked_order = self.highest_acked_order.max(p.order);
        }
    }

    fn update_rtt(&mut self, sample: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(sample);
                self.rttvar = sample / 2;
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(sample);
                self.rttvar = (self.rttvar * 3 + delta) / 4;
                self.srtt = Some((srtt * 7 + sample) / 8);
            }
        }
    }

    /// Declares lost every packet that a later send overtook: by three
    /// sends, or (with too few packets in flight for three, as when the
    /// window is small after losses) by more than an RTT and a quarter,
    /// as RACK does, rather than waiting half a second for the timeout.
    pub(super) fn detect_losses(&mut self, now: Instant) {
        // Without an RTT estimate only the count of later sends decides.
        let reorder_wait = self.srtt.map_or(Duration::MAX, |srtt| {
            srtt + srtt / 4 + Duration::from_millis(2)
        });
        let mut lost = Vec::new();
        for (i, p) in self.unacked.iter().enumerate() {
            if !p.counted || p.sacked || p.order >= self.highest_acked_order {
                continue;
            }
            if p.order + REORDER_THRESHOLD <= self.highest_acked_order
                || now.duration_since(p.sent_at) > reorder_wait
            {
                lost.push(i);
            }
        }
        self.stats.detected_lost += lost.len() as u64;
        for i in lost {
            let seq = self.acked_seq.wrapping_add(1 + i as u16);
            self.lose(i, seq, now);
        }
    }

    /// A tail-loss probe: when the newest packets of a flight are lost, no
    /// later send is acked to reveal it, and with a small window (as after
    /// losses) that is most losses; waiting for the 500 ms timeout kept a
    /// 5 %-loss transfer at 0.3 MB/s. So when no ack has moved for
    /// [`PROBE_WAIT`] or two RTTs, the oldest packet in flight goes again,
    /// without a window cut (it may only be late). A probe lost too (or its
    /// ack: the receiver acks a burst once, and that one ack is all the
    /// sender gets) is probed again after twice the wait, and so on: with
    /// one probe only, 28 of the 8 MiB at 10 % loss ended in a timeout
    /// (0.5–1.5 s each, nearly all of the 19 s the transfer took).
    pub(super) fn probe_tail(&mut self, now: Instant) {
        if self.srtt.is_none() || self.state != State::Connected {
            return;
        }
        let base = self.probe_base();
        let wait = self.probe_wait();
        if now.duration_since(self.progress_at) < wait || now.duration_since(self.last_recv) < base
        {
            return;
        }
        // The oldest packet not known to have arrived: in flight, or lost
        // and waiting for room in a window that the packets still counted
        // in flight (lost too, or their acks) hold shut.
        let Some(p) = self
            .unacked
            .iter_mut()
            .find(|p| !p.sacked && (p.counted || p.need_send) && p.transmissions > 0)
        else {
            return;
        };
        if now.duration_since(p.sent_at) < base {
            return;
        }
        if p.counted {
            p.counted = false;
            self.in_flight -= p.payload.len();
        }
        p.need_send = true;
        // It goes whatever the window says, as a timeout's resend would.
        self.probe_due = true;
        self.probes += 1;
        self.stats.probes += 1;
    }

    /// Marks `unacked[i]` (seq `seq`) for a resend and cuts the window once
    /// per window of data.
    fn lose(&mut self, i: usize, seq: u16, now: Instant) {
        let Some(p) = self.unacked.get_mut(i) else {
            return;
        };
        if p.sacked || p.need_send {
            return;
        }
        if p.counted {
            p.counted = false;
            self.in_flight -= p.payload.len();
        }
        p.need_send = true;
        // Once per window of data, and (as libtorrent's cwnd_reduce_timer)
        // once per CUT_INTERVAL: on a LAN a window is a millisecond, and a
        // cut per window at 10 % loss held it near two packets.
        if seq_after(seq, self.loss_seq_nr) && self.next_cut_at.is_none_or(|t| now >= t) {
            self.next_cut_at = Some(now + CUT_INTERVAL);
            self.stats.window_cuts += 1;
            self.cwnd = (self.cwnd * 0.5).max(MIN_CWND);
            self.slow_start = false;
            self.ssthresh = self.cwnd;
            self.loss_seq_nr = self.seq_nr.wrapping_sub(1);
        }
    }

    pub(super) fn on_delay_sample(&mut self, sample: u32, now: Instant) {
        if now.duration_since(self.base_minute_start) >= Duration::from_secs(60)
            || self.base_delays.is_empty()
        {
            self.base_minute_start = now;
            self.base_delays.push_back(sample);
            while self.base_delays.len() > BASE_DELAY_MINUTES {
                self.base_delays.pop_front();
            }
        }
        let newest = self.base_delays.back_mut().expect("pushed");
        // The clocks are unrelated, so samples wrap: compare differences.
        if (sample.wrapping_sub(*newest) as i32) < 0 {
            *newest = sample;
        }
        let base = self
            .base_delays
            .iter()
            .copied()
            .reduce(|a, b| if (b.wrapping_sub(a) as i32) < 0 { b } else { a })
            .expect("non-empty");
        let delay = (sample.wrapping_sub(base) as i32).max(0) as u64;
        self.last_delay = Duration::from_micros(delay);
    }

    /// LEDBAT: grow (or shrink) the window by how far the delay is from
    /// the target, scaled by the share of the window just acked.
    pub(super) fn grow(&mut self, acked: usize, flight_before: usize) {
        let target = TARGET_DELAY.as_secs_f64();
        let delay = self.last_delay.as_secs_f64();
        let off_target = (target - delay) / target;
        // An application that does not fill the window says nothing about it.
        let saturated = flight_before + acked + MAX_PAYLOAD > self.cwnd as usize;
        if delay >= target && self.slow_start {
            self.slow_start = false;
            self.ssthresh = self.cwnd / 2.0;
        }
        if !saturated {
            return;
        }
        if self.slow_start && off_target > 0.0 {
            self.cwnd += acked as f64;
            if self.cwnd > self.ssthresh {
                self.slow_start = false;
            }
        } else {
            self.cwnd += GAIN * off_target * acked as f64 / self.cwnd.max(1.0);
        }
        self.cwnd = self.cwnd.clamp(MIN_CWND, SEND_BUFFER as f64);
    }
}
