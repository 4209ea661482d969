//! The sending half of a [`Connection`]: the writer's queue, packets built
//! from it (with our ack, window and SACK in the header), and sending them
//! as the congestion and peer windows allow.
//!
//! Apart from the acks ([`super::acks`]) and the timers ([`super::timers`]),
//! which only mark packets for sending: this is the one place that puts
//! datagrams in `out`. It never reads a packet, a socket or the wall clock.

use super::*;

impl Connection {
    /// Queues what fits of `data` for sending; returns how much.
    pub fn write(&mut self, data: &[u8], room: Room) -> usize {
        if self.closing || self.failure.is_some() {
            return 0;
        }
        let free = SEND_BUFFER
            .saturating_sub(self.queue.len() + self.unacked_bytes)
            .min(room.0);
        let n = data.len().min(free);
        self.queue.extend(&data[..n]);
        n
    }

    /// The writer is done: a FIN goes after what is queued.
    pub fn close(&mut self) {
        self.closing = true;
    }

    /// Whether the writer closed (or the connection ended).
    pub fn closing(&self) -> bool {
        self.closing || self.state == State::Closed
    }

    /// Whether [`Connection::write`] would take a byte now.
    pub fn writable(&self) -> bool {
        self.failure.is_some()
            || self.closing
            || self.queue.len() + self.unacked_bytes < SEND_BUFFER
    }

    /// Puts a new packet at the end of the unacked queue.
    pub(super) fn push(&mut self, kind: Type, payload: Vec<u8>) {
        self.unacked_bytes += payload.len();
        self.unacked.push_back(Sent {
            kind,
            payload,
            need_send: true,
            sacked: false,
            counted: false,
            transmissions: 0,
            sent_at: self.epoch,
            order: 0,
        });
        self.seq_nr = self.seq_nr.wrapping_add(1);
    }

    fn header(&mut self, kind: Type, seq_nr: u16, now: Instant) -> Header {
        let window = self.advertised().min(u32::MAX as usize);
        self.last_advertised = window;
        Header {
            kind,
            connection_id: if kind == Type::Syn {
                self.recv_id
            } else {
                self.send_id
            },
            timestamp: self.micros(now),
            timestamp_difference: self.reply_micro,
            wnd_size: if kind == Type::Syn { 0 } else { window as u32 },
            seq_nr,
            ack_nr: if kind == Type::Syn { 0 } else { self.ack_nr },
            extensions: match (kind, self.sack()) {
                (Type::Syn, _) | (_, None) => Vec::new(),
                (_, Some(mask)) => vec![Extension::Sack(mask)],
            },
        }
    }

    /// The send window: the smaller of ours and the peer's; an empty pipe
    /// may always send one packet (it probes a zero window).
    fn may_send(&self, len: usize) -> bool {
        let limit = (self.cwnd as usize).min(self.peer_wnd);
        self.in_flight == 0 || self.in_flight + len <= limit
    }

    /// Datagrams due now: resends, new data, a FIN, and an ack if nothing
    /// else carries it.
    pub fn transmit(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        if self.state == State::Closed {
            return;
        }
        // Resends (and the SYN) first: they hold the oldest sequence numbers.
        let mut sent_any = self.send_due(now, out);
        if self.state == State::Connected {
            // New packets from the writer's queue, while the pipe has room.
            // Resends still waiting for room go before anything new.
            let resends_waiting = self.unacked.iter().any(|p| p.need_send);
            while !resends_waiting && !self.queue.is_empty() && self.unacked.len() < MAX_PACKETS {
                let n = self.queue.len().min(MAX_PAYLOAD);
                if !self.may_send(n) {
                    break;
                }
                let payload: Vec<u8> = self.queue.drain(..n).collect();
                self.push(Type::Data, payload);
                self.send_one(self.unacked.len() - 1, now, out);
                sent_any = true;
            }
            if self.closing && self.queue.is_empty() && !self.fin_queued {
                self.fin_queued = true;
                self.push(Type::Fin, Vec::new());
                self.send_one(self.unacked.len() - 1, now, out);
                sent_any = true;
            }
        }
        let quiet = now.duration_since(self.last_send) >= KEEPALIVE;
        if (self.need_ack || quiet) && !sent_any && self.state == State::Connected {
            let h = self.header(Type::State, self.seq_nr, now);
            let mut d = Vec::with_capacity(h.encoded_len());
            h.encode(&mut d);
            out.push(d);
            self.last_send = now;
        }
        self.need_ack = false;
    }

    /// Sends the unacked packets marked for sending, oldest first, while
    /// the window allows. True if any went.
    fn send_due(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) -> bool {
        let mut any = false;
        for i in 0..self.unacked.len() {
            let p = &self.unacked[i];
            if !p.need_send || p.sacked {
                continue;
            }
            if p.kind != Type::Syn && self.state != State::Connected {
                break;
            }
            if !self.may_send(p.payload.len()) && !self.probe_due {
                break;
            }
            self.probe_due = false;
            self.send_one(i, now, out);
            any = true;
        }
        any
    }

    /// Sends `unacked[i]` now.
    fn send_one(&mut self, i: usize, now: Instant, out: &mut Vec<Vec<u8>>) {
        let seq = self.acked_seq.wrapping_add(1 + i as u16);
        let h = self.header(self.unacked[i].kind, seq, now);
        if self.unacked[i].transmissions > 0 {
            self.last_resend = Some(now);
            self.resent += 1;
        }
        let p = &mut self.unacked[i];
        let mut d = Vec::with_capacity(h.encoded_len() + p.payload.len());
        h.encode(&mut d);
        d.extend_from_slice(&p.payload);
        out.push(d);
        p.need_send = false;
        p.counted = true;
        p.transmissions += 1;
        p.sent_at = now;
        self.sends += 1;
        p.order = self.sends;
        self.in_flight += p.payload.len();
        self.last_send = now;
        self.need_ack = false;
        if self.rto_at.is_none() {
            self.rto_at = Some(now + self.rto());
        }
    }

    /// A datagram that resets this connection (when we drop it unfinished).
    pub fn reset_packet(&mut self, now: Instant) -> Vec<u8> {
        let h = self.header(Type::Reset, self.seq_nr, now);
        let mut d = Vec::new();
        h.encode(&mut d);
        d
    }
}
