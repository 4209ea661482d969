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
//!
//! # Layout
//! This module holds the connection's bounds, its fields, its construction
//! and the packet dispatch ([`Connection::on_packet`]); each half of the
//! work is a submodule over the same struct: [`send`] (the writer's queue
//! and the packets out), [`receive`] (reordering and the reader's bytes),
//! [`acks`] (RTT, loss recovery, LEDBAT's window), [`timers`] (the RTO,
//! probes' deadline, idle limit) and [`report`] (logs and checks).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::header::{Extension, Header, Type};

mod acks;
mod receive;
mod report;
mod send;
mod timers;

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

    fn fail(&mut self, why: Failure) {
        self.state = State::Closed;
        self.failure = Some(why);
        self.rto_at = None;
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
}

#[cfg(test)]
mod tests;
