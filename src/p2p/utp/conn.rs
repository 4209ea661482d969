//! One uTP connection as a state machine without I/O: packets and the
//! clock go in, datagrams to send and bytes for the reader come out.
//!
//! Owns the sequence numbers, the send queue and the packets in flight,
//! the reordering buffer, RTT/RTO, and LEDBAT's congestion window. It never
//! touches a socket, a task or the wall clock: `now` is always passed in,
//! so the tests drive it deterministically and the socket layer
//! ([`super::socket`]) decides when to call it.
//!
//! # Design (facts from BEP 29 and libtorrent's `utp_stream.cpp`)
//! - The dialer picks `recv_id` and sends the SYN with it; it sends on
//!   `recv_id + 1`. The answerer sends on the SYN's id and receives on id + 1.
//! - The SYN's `seq_nr` is random and consumes one number. The answerer
//!   replies ST_STATE with `ack_nr` = the SYN's `seq_nr` and its own random
//!   `seq_nr` (the next it will send), so the dialer's `ack_nr` becomes
//!   `seq_nr - 1`. ST_STATE never consumes a sequence number; ST_FIN does.
//! - `wnd_size` is the receive buffer's free room (libtorrent: capacity
//!   minus buffered bytes); we never send more than the peer's window.
//! - Every packet carries `timestamp_difference`: our clock at arrival of
//!   the peer's last packet minus its timestamp. The peer's value for our
//!   packets, minus its minimum over two minutes (the base delay), is the
//!   queuing delay LEDBAT keeps under [`TARGET_DELAY`].
//! - Acks: one ST_STATE per batch of received datagrams (the socket calls
//!   [`Connection::transmit`] after a batch), carrying a selective ACK when
//!   packets wait in the reordering buffer.
//! - Loss: a packet is declared lost when a packet sent at least three
//!   sends after it has been acked (cumulatively or selectively): this is
//!   BEP 29's "three packets past it acked" rule, and it also finds a lost
//!   retransmission, which duplicate acks alone cannot. Three duplicate
//!   acks resend the oldest packet. The window halves at most once per
//!   window of data and once per 100 ms (libtorrent's `cwnd_reduce_timer`).
//!   When no ack moves for two RTTs (10 ms at least), a tail-loss probe
//!   resends the oldest packet whatever the window, again after twice the
//!   wait while unanswered. A timeout resends everything unacked with the
//!   window at its minimum, and the timeout doubles until an ack comes.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::header::{Extension, Header, Type};

mod acks;

/// The largest datagram we send: below the 1500-byte Ethernet MTU with
/// room for IP/UDP and tunnels (libtorrent starts its MTU search near it).
pub const PACKET_SIZE: usize = 1400;
/// The SACK we write covers at most this many bytes (256 packets).
const MAX_SACK_BYTES: usize = 32;
/// Payload per packet: room left for the header and the largest SACK.
pub const MAX_PAYLOAD: usize = PACKET_SIZE - 20 - 2 - MAX_SACK_BYTES;

/// Bytes a connection holds for its reader (in order and reordered): its
/// advertised window. 1 MiB keeps a loopback peer at full speed (RTT
/// ~1 ms) and a 100 ms path at ~10 MB/s; 40 peers on a Pi 3 fit 40 MiB,
/// and the socket's budget ([`super::socket::Limits`]) caps the total below that.
pub const RECV_BUFFER: usize = 1 << 20;
/// Bytes a connection holds from its writer, queued or in flight.
pub const SEND_BUFFER: usize = 1 << 20;
/// Room kept free of reordered packets, per connection and over the
/// socket: the packet that fills the gap must always fit, or a window full
/// of packets past a gap would wait for it forever.
pub const REORDER_RESERVE: usize = 64 * 1024;
/// Packets in flight or held for reordering, at most: half the sequence
/// space would be ambiguous, and this bounds the bookkeeping per packet.
const MAX_PACKETS: usize = 2048;

/// LEDBAT's target queuing delay (BEP 29, libtorrent's `utp_target_delay`).
pub const TARGET_DELAY: Duration = Duration::from_millis(100);
/// Window growth per RTT at zero delay (libtorrent's `utp_gain_factor`).
const GAIN: f64 = 3000.0;
const MIN_CWND: f64 = 2.0 * MAX_PAYLOAD as f64;
/// The initial window: libtorrent starts at two packets and slow-starts.
const INITIAL_CWND: f64 = 2.0 * MAX_PAYLOAD as f64;
/// The base delay is the minimum over this many one-minute periods.
const BASE_DELAY_MINUTES: usize = 2;

/// BEP 29: the timeout is never below 500 ms; the SYN's, without an RTT
/// estimate, is a conservative second.
const MIN_RTO: Duration = Duration::from_millis(500);
const SYN_RTO: Duration = Duration::from_secs(1);
const MAX_RTO: Duration = Duration::from_secs(60);
/// Consecutive timeouts without an ack before the peer is gone (SYNs: 5
/// tries over ~31 s; data: ~2 min of doubling).
const MAX_SYN_TIMEOUTS: u32 = 5;
const MAX_TIMEOUTS: u32 = 7;
/// An ST_STATE goes out after this long without sending (libtorrent's 29 s
/// keeps NAT mappings open); a peer silent for `IDLE` is gone.
const KEEPALIVE: Duration = Duration::from_secs(29);
const IDLE: Duration = Duration::from_secs(120);
/// The least a packet waits unacked before a tail-loss probe resends it:
/// above a loaded machine's scheduling stalls, far below the 500 ms RTO.
const PROBE_WAIT: Duration = Duration::from_millis(10);
/// A probe unanswered waits twice as long for the next, up to 2^this times
/// [`PROBE_WAIT`]; the timeout still runs beside the probes.
const MAX_PROBE_DOUBLINGS: u32 = 5;
/// The socket ticks every 20 ms; a gap since the last tick longer than this
/// is a stall of our own, after which acks may wait unread.
const TICK_STALL: Duration = Duration::from_millis(45);
/// Packets sent after one, and acked, before it counts as lost.
const REORDER_THRESHOLD: u64 = 3;
const DUP_ACKS: u32 = 3;
/// At most one window cut per this long (libtorrent's `cwnd_reduce_timer`).
const CUT_INTERVAL: Duration = Duration::from_millis(100);

/// `a` comes after `b` in the 16-bit sequence space.
pub fn seq_after(a: u16, b: u16) -> bool {
    (a.wrapping_sub(b) as i16) > 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Our SYN is out; no answer yet.
    SynSent,
    Connected,
    /// Ended: by a reset, a timeout, or both FINs acked.
    Closed,
}

/// Why a connection ended abnormally, as the reader and writer see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Reset,
    TimedOut,
}

impl Failure {
    pub fn io(self) -> std::io::Error {
        match self {
            Failure::Reset => std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "the uTP peer reset the connection",
            ),
            Failure::TimedOut => std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the uTP peer stopped answering",
            ),
        }
    }
}

/// A packet we sent (or will send) and the peer has not acked.
struct Sent {
    kind: Type,
    payload: Vec<u8>,
    /// Waiting for its first send, or declared lost and waiting to go again.
    need_send: bool,
    /// Acked by a selective ACK (it stays until the cumulative ack passes).
    sacked: bool,
    /// Counted in `in_flight`: sent and neither acked nor declared lost.
    counted: bool,
    transmissions: u32,
    sent_at: Instant,
    /// Position of its last send in the connection's order of sends.
    order: u64,
}

/// A packet received ahead of a gap.
struct Held {
    fin: bool,
    payload: Vec<u8>,
}

pub struct Connection {
    pub state: State,
    pub failure: Option<Failure>,
    pub recv_id: u16,
    pub send_id: u16,
    epoch: Instant,

    // Sending.
    /// The next sequence number we send.
    seq_nr: u16,
    /// Bytes from the writer not yet in a packet.
    queue: VecDeque<u8>,
    /// Unacked packets; `unacked[i]` has seq `acked_seq + 1 + i`.
    unacked: VecDeque<Sent>,
    acked_seq: u16,
    /// Payload bytes of packets counted in flight.
    in_flight: usize,
    /// Payload bytes of `unacked`.
    unacked_bytes: usize,
    sends: u64,
    /// Packets sent again (lost, or presumed lost at a timeout).
    resent: u64,
    /// How recovery went, for logs and the loss tests' printout.
    pub stats: Stats,
    /// Tail-loss probes sent since the last ack that moved.
    probes: u32,
    /// A probe is marked: the next send goes out whatever the window.
    probe_due: bool,
    /// When the cumulative ack last moved, and when `tick` last ran.
    progress_at: Instant,
    ticked_at: Instant,
    highest_acked_order: u64,
    dup_acks: u32,
    peer_wnd: usize,
    /// The writer is done: a FIN follows the queue.
    closing: bool,
    fin_queued: bool,

    // Receiving.
    /// The last sequence number received in order.
    ack_nr: u16,
    /// Bytes in order for the reader.
    readable: VecDeque<u8>,
    /// `reorder[j]` holds seq `ack_nr + 1 + j` if it arrived.
    reorder: VecDeque<Option<Held>>,
    reorder_bytes: usize,
    /// The peer's FIN arrived in order: the reader gets EOF after `readable`.
    eof: bool,
    need_ack: bool,
    /// The socket's budget left at the last packet, for the advertised window.
    room: usize,
    /// Our clock minus the peer's timestamp, at its last packet.
    reply_micro: u32,
    last_advertised: usize,

    // Timing and congestion.
    srtt: Option<Duration>,
    rttvar: Duration,
    /// When we last resent a packet: a packet sent before it may have
    /// waited for the resend to be acked, so it cannot measure the RTT.
    last_resend: Option<Instant>,
    timeouts: u32,
    rto_at: Option<Instant>,
    last_recv: Instant,
    last_send: Instant,
    cwnd: f64,
    slow_start: bool,
    ssthresh: f64,
    /// A loss of a packet at or before this seq belongs to the last window cut.
    loss_seq_nr: u16,
    /// No window cut for a loss before this.
    next_cut_at: Option<Instant>,
    /// Minimum delay sample per minute, the newest last.
    base_delays: VecDeque<u32>,
    base_minute_start: Instant,
    /// The last queuing delay measured, for tests and logs.
    pub last_delay: Duration,
}

/// Counts of the recovery events, for logs and the loss tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub timeouts: u64,
    /// Resends triggered by three duplicate acks.
    pub dup_ack_resends: u64,
    /// Packets declared lost by later sends acked, or by the reorder wait.
    pub detected_lost: u64,
    pub probes: u64,
    pub window_cuts: u64,
    /// Data packets we received and dropped for want of buffer room.
    pub dropped_no_room: u64,
    /// Data packets we received twice (a resend not needed, or the path's).
    pub duplicates: u64,
}

/// What the caller must allow beyond this connection's own bounds: the
/// socket's budget left for buffered bytes over every connection.
#[derive(Debug, Clone, Copy)]
pub struct Room(pub usize);

impl Connection {
    fn new(recv_id: u16, send_id: u16, seq_nr: u16, now: Instant) -> Connection {
        Connection {
            state: State::SynSent,
            failure: None,
            recv_id,
            send_id,
            epoch: now,
            seq_nr,
            queue: VecDeque::new(),
            unacked: VecDeque::new(),
            acked_seq: seq_nr.wrapping_sub(1),
            in_flight: 0,
            unacked_bytes: 0,
            sends: 0,
            resent: 0,
            stats: Stats::default(),
            probes: 0,
            probe_due: false,
            progress_at: now,
            ticked_at: now,
            highest_acked_order: 0,
            dup_acks: 0,
            peer_wnd: RECV_BUFFER,
            closing: false,
            fin_queued: false,
            ack_nr: 0,
            readable: VecDeque::new(),
            reorder: VecDeque::new(),
            reorder_bytes: 0,
            eof: false,
            need_ack: false,
            room: usize::MAX,
            reply_micro: 0,
            last_advertised: RECV_BUFFER,
            srtt: None,
            rttvar: Duration::ZERO,
            last_resend: None,
            timeouts: 0,
            rto_at: None,
            last_recv: now,
            last_send: now,
            cwnd: INITIAL_CWND,
            slow_start: true,
            ssthresh: f64::MAX,
            loss_seq_nr: seq_nr.wrapping_sub(1),
            next_cut_at: None,
            base_delays: VecDeque::new(),
            base_minute_start: now,
            last_delay: Duration::ZERO,
        }
    }

    /// A connection we dial, receiving on `recv_id`: the SYN is queued.
    pub fn dial(recv_id: u16, now: Instant) -> Connection {
        let mut c = Connection::new(recv_id, recv_id.wrapping_add(1), fastrand::u16(..), now);
        c.push(Type::Syn, Vec::new());
        c
    }

    /// A connection a peer's SYN opens: connected at once, the ST_STATE
    /// answering the SYN is queued.
    pub fn answer(syn: &Header, now: Instant) -> Connection {
        let mut c = Connection::new(
            syn.connection_id.wrapping_add(1),
            syn.connection_id,
            fastrand::u16(..),
            now,
        );
        c.state = State::Connected;
        c.ack_nr = syn.seq_nr;
        c.reply_micro = c.micros(now).wrapping_sub(syn.timestamp);
        c.need_ack = true;
        c
    }

    fn micros(&self, now: Instant) -> u32 {
        now.duration_since(self.epoch).as_micros() as u32
    }

    /// Bytes this connection holds (its share of the socket's budget).
    pub fn held(&self) -> usize {
        self.queue.len() + self.unacked_bytes + self.readable.len() + self.reorder_bytes
    }

    /// Whether the reader has bytes or an end to see.
    pub fn readable(&self) -> bool {
        !self.readable.is_empty() || self.eof || self.failure.is_some()
    }

    /// Whether the connection is over for good and may be forgotten: failed,
    /// or both directions closed and our FIN acked.
    pub fn finished(&self) -> bool {
        self.state == State::Closed || (self.fin_queued && self.unacked.is_empty() && self.eof)
    }

    /// Whether our FIN went out and was acked (the peer may still send).
    pub fn fin_acked(&self) -> bool {
        self.fin_queued && self.unacked.is_empty()
    }

    /// Copies in-order bytes to `buf`; 0 at EOF or when nothing is there
    /// (the caller checks [`Connection::readable`]).
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.readable.len());
        let (a, b) = self.readable.as_slices();
        let from_a = n.min(a.len());
        buf[..from_a].copy_from_slice(&a[..from_a]);
        buf[from_a..n].copy_from_slice(&b[..n - from_a]);
        self.readable.drain(..n);
        self.window_update();
        n
    }

    /// The socket's budget left, which also bounds our advertised window.
    pub fn set_room(&mut self, room: Room) {
        self.room = room.0;
        self.window_update();
    }

    /// A window that reopens must be told, or a peer stalled on a closed
    /// window waits for its next probe.
    fn window_update(&mut self) {
        if self.last_advertised < RECV_BUFFER / 2 && self.advertised() >= RECV_BUFFER / 2 {
            self.need_ack = true;
        }
    }

    fn advertised(&self) -> usize {
        self.window().min(self.room)
    }

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

    fn window(&self) -> usize {
        RECV_BUFFER.saturating_sub(self.readable.len() + self.reorder_bytes)
    }

    fn fail(&mut self, why: Failure) {
        self.state = State::Closed;
        self.failure = Some(why);
        self.rto_at = None;
    }

    /// Puts a new packet at the end of the unacked queue.
    fn push(&mut self, kind: Type, payload: Vec<u8>) {
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

    fn rto(&self) -> Duration {
        let base = match self.srtt {
            None => SYN_RTO,
            Some(srtt) => (srtt + 4 * self.rttvar).max(MIN_RTO),
        };
        (base * (1u32 << self.timeouts.min(7))).min(MAX_RTO)
    }

    /// One received packet, addressed to this connection.
    pub fn on_packet(&mut self, h: &Header, payload: &[u8], now: Instant, room: Room) {
        if self.state == State::Closed {
            return;
        }
        self.room = room.0;
        if h.kind == Type::Reset {
            return self.fail(Failure::Reset);
        }
        self.last_recv = now;
        self.reply_micro = self.micros(now).wrapping_sub(h.timestamp);
        if h.kind == Type::Syn {
            // A repeated SYN: our answer was lost. Ack it again.
            self.need_ack = true;
            return;
        }
        if self.state == State::SynSent {
            if h.ack_nr != self.acked_seq.wrapping_add(1) {
                return;
            }
            self.state = State::Connected;
            self.ack_nr = h.seq_nr.wrapping_sub(1);
        }
        self.on_ack(h, now);
        if matches!(h.kind, Type::Data | Type::Fin) {
            self.on_data(h.seq_nr, h.kind == Type::Fin, payload, room);
        }
    }

    /// A data or FIN packet: into the reader's bytes, or the reorder buffer.
    fn on_data(&mut self, seq: u16, fin: bool, payload: &[u8], room: Room) {
        self.need_ack = true;
        let ahead = seq.wrapping_sub(self.ack_nr) as usize;
        if ahead == 0 || ahead > MAX_PACKETS || self.eof {
            // A duplicate (the ack is repeated), or beyond anything sane.
            self.stats.duplicates += 1;
            return;
        }
        let j = ahead - 1;
        // Past a gap, leave the reserve free for the packet that fills it.
        let reserve = if j == 0 { 0 } else { REORDER_RESERVE };
        if payload.len() + reserve > self.window() || payload.len() + reserve > room.0 {
            // No room: dropped (and acked), resent once the reader drains.
            self.stats.dropped_no_room += 1;
            return;
        }
        if j >= self.reorder.len() {
            self.reorder.resize_with(j + 1, || None);
        }
        if self.reorder[j].is_some() {
            self.stats.duplicates += 1;
            return;
        }
        self.reorder_bytes += payload.len();
        self.reorder[j] = Some(Held {
            fin,
            payload: payload.to_vec(),
        });
        while let Some(Some(_)) = self.reorder.front() {
            let held = self.reorder.pop_front().flatten().expect("checked");
            self.reorder_bytes -= held.payload.len();
            self.ack_nr = self.ack_nr.wrapping_add(1);
            self.readable.extend(&held.payload);
            if held.fin {
                self.eof = true;
                self.reorder.clear();
                self.reorder_bytes = 0;
                break;
            }
        }
    }

    /// The selective ACK for the reorder buffer: bit i is `ack_nr + 2 + i`.
    fn sack(&self) -> Option<Vec<u8>> {
        if self.reorder.len() < 2 {
            return None;
        }
        let bits = (self.reorder.len() - 1).min(MAX_SACK_BYTES * 8);
        let mut mask = vec![0u8; bits.div_ceil(32) * 4];
        for i in 0..bits {
            if self.reorder[i + 1].is_some() {
                mask[i / 8] |= 1 << (i % 8);
            }
        }
        Some(mask)
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
    fn probe_wait(&self) -> Duration {
        self.probe_base() * (1u32 << self.probes.min(MAX_PROBE_DOUBLINGS))
    }

    fn probe_base(&self) -> Duration {
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

    /// A datagram that resets this connection (when we drop it unfinished).
    pub fn reset_packet(&mut self, now: Instant) -> Vec<u8> {
        let h = self.header(Type::Reset, self.seq_nr, now);
        let mut d = Vec::new();
        h.encode(&mut d);
        d
    }

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

#[cfg(test)]
mod tests;
