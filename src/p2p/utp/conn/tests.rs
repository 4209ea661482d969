//! The state machine against itself, in memory, on a simulated clock: no
//! sockets, so loss, reordering and wrap-around are exact and repeatable.

use super::*;
use crate::p2p::utp::header;

const ROOM: Room = Room(usize::MAX);

fn deliver(c: &mut Connection, d: &[u8], now: Instant) {
    let p = header::parse(d).expect("we send valid packets");
    c.on_packet(&p.header, p.payload, now, ROOM);
}

fn sent(c: &mut Connection, now: Instant) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    c.transmit(now, &mut out);
    out
}

/// Dials and answers; returns (dialer, answerer) connected.
fn pair(now: Instant) -> (Connection, Connection) {
    let mut a = Connection::dial(100, now);
    let syn = sent(&mut a, now);
    assert_eq!(syn.len(), 1);
    let p = header::parse(&syn[0]).unwrap();
    assert_eq!(p.header.kind, Type::Syn);
    assert_eq!(
        p.header.connection_id, 100,
        "the SYN carries the dialer's recv id"
    );
    let mut b = Connection::answer(&p.header, now);
    assert_eq!((b.recv_id, b.send_id), (101, 100));
    let state = sent(&mut b, now);
    let s = header::parse(&state[0]).unwrap();
    assert_eq!(s.header.kind, Type::State);
    assert_eq!(s.header.connection_id, 100);
    assert_eq!(
        s.header.ack_nr, p.header.seq_nr,
        "the answer acks the SYN's seq_nr"
    );
    deliver(&mut a, &state[0], now);
    assert_eq!(a.state, State::Connected);
    assert_eq!(a.ack_nr, s.header.seq_nr.wrapping_sub(1));
    (a, b)
}

/// A simulated link: one-way `latency`, loss and duplication rates, and a
/// jitter that reorders.
struct Link {
    in_flight: Vec<(Instant, bool, Vec<u8>)>,
    loss: f64,
    rng: fastrand::Rng,
}

impl Link {
    fn carry(&mut self, from_a: bool, ds: Vec<Vec<u8>>, now: Instant) {
        for d in ds {
            if self.rng.f64() < self.loss {
                continue;
            }
            let jitter = Duration::from_micros(self.rng.u64(0..3000));
            let at = now + Duration::from_millis(5) + jitter;
            if self.rng.f64() < self.loss / 2.0 {
                self.in_flight.push((at + jitter, from_a, d.clone()));
            }
            self.in_flight.push((at, from_a, d));
        }
    }
}

/// Moves `total` bytes from a to b over a lossy link; returns the
/// simulated time it took and what b read.
fn transfer(total: usize, loss: f64, seed: u64, wrap: bool) -> (Duration, Vec<u8>) {
    let start = Instant::now();
    let mut now = start;
    let (mut a, mut b) = pair(now);
    if wrap {
        // Start both directions near the end of the sequence space.
        assert!(a.unacked.is_empty());
        a.seq_nr = 0xFFF0;
        a.acked_seq = 0xFFEF;
        a.loss_seq_nr = 0xFFEF;
        b.ack_nr = 0xFFEF;
    }
    let data: Vec<u8> = (0..total).map(|i| (i * 7 + i / 1000) as u8).collect();
    let mut written = 0;
    let mut got = Vec::with_capacity(total);
    let mut link = Link {
        in_flight: Vec::new(),
        loss,
        rng: fastrand::Rng::with_seed(seed),
    };
    let mut buf = vec![0u8; 64 * 1024];
    while got.len() < total {
        assert!(
            now.duration_since(start) < Duration::from_secs(600),
            "stalled at {} of {total} bytes",
            got.len()
        );
        written += a.write(&data[written..], ROOM);
        if written == total {
            a.close();
        }
        let out = sent(&mut a, now);
        link.carry(true, out, now);
        let out = sent(&mut b, now);
        link.carry(false, out, now);
        now += Duration::from_millis(1);
        let (due, later): (Vec<_>, Vec<_>) =
            link.in_flight.drain(..).partition(|(at, _, _)| *at <= now);
        link.in_flight = later;
        for (_, to_b, d) in due {
            if to_b {
                deliver(&mut b, &d, now);
            } else {
                deliver(&mut a, &d, now);
            }
            assert!(b.held() <= RECV_BUFFER + SEND_BUFFER);
        }
        a.tick(now);
        b.tick(now);
        a.check();
        b.check();
        loop {
            let n = b.read(&mut buf);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
    }
    assert!(got == data, "the bytes differ");
    (now.duration_since(start), got)
}

#[test]
fn ids_and_sequence_numbers_of_the_handshake() {
    let now = Instant::now();
    let (mut a, mut b) = pair(now);
    a.write(b"hello", ROOM);
    let d = sent(&mut a, now);
    let p = header::parse(&d[0]).unwrap();
    assert_eq!(p.header.kind, Type::Data);
    assert_eq!(
        p.header.connection_id, 101,
        "the dialer sends on recv id + 1"
    );
    deliver(&mut b, &d[0], now);
    let mut buf = [0u8; 16];
    assert_eq!(b.read(&mut buf), 5);
    assert_eq!(&buf[..5], b"hello");
    let ack = sent(&mut b, now);
    let s = header::parse(&ack[0]).unwrap();
    assert_eq!(
        (s.header.kind, s.header.ack_nr),
        (Type::State, p.header.seq_nr)
    );
}

#[test]
fn clean_transfer_across_the_sequence_wrap() {
    let (_, got) = transfer(4 << 20, 0.0, 1, true);
    assert_eq!(got.len(), 4 << 20);
}

#[test]
fn lossy_reordering_duplicating_link_delivers_exactly() {
    for (loss, seed) in [(0.01, 2), (0.05, 3), (0.10, 4)] {
        transfer(2 << 20, loss, seed, true);
    }
}

#[test]
fn sack_names_the_packets_past_a_gap_and_the_sender_resends_only_the_gap() {
    let now = Instant::now();
    let (mut a, mut b) = pair(now);
    a.write(&vec![1u8; MAX_PAYLOAD * 6], ROOM);
    a.cwnd = 1e6;
    let d = sent(&mut a, now);
    assert_eq!(d.len(), 6);
    // The first is lost; the other five arrive.
    for p in &d[1..] {
        deliver(&mut b, p, now);
    }
    let ack = sent(&mut b, now);
    let s = header::parse(&ack[0]).unwrap();
    let first = header::parse(&d[0]).unwrap().header.seq_nr;
    assert_eq!(s.header.ack_nr, first.wrapping_sub(1));
    // Bit i is seq first + 1 + i: the five that arrived.
    assert_eq!(s.header.sack(), Some(&[0b11111, 0, 0, 0][..]));
    deliver(&mut a, &ack[0], now);
    let again = sent(&mut a, now);
    assert_eq!(again.len(), 1, "only the gap is resent");
    assert_eq!(header::parse(&again[0]).unwrap().header.seq_nr, first);
    deliver(&mut b, &again[0], now);
    let mut buf = vec![0u8; MAX_PAYLOAD * 6];
    assert_eq!(b.read(&mut buf), MAX_PAYLOAD * 6);
}

#[test]
fn three_duplicate_acks_resend_the_oldest() {
    let now = Instant::now();
    let (mut a, mut b) = pair(now);
    a.write(&vec![1u8; MAX_PAYLOAD], ROOM);
    let first = sent(&mut a, now);
    // Lost. The peer repeats its last ack three times (keepalives, say).
    b.need_ack = true;
    let dup = sent(&mut b, now);
    for _ in 0..2 {
        deliver(&mut a, &dup[0], now);
        assert!(sent(&mut a, now).is_empty());
    }
    deliver(&mut a, &dup[0], now);
    let again = sent(&mut a, now);
    assert_eq!(again.len(), 1, "the third duplicate ack resends");
    assert_eq!(
        header::parse(&again[0]).unwrap().header.seq_nr,
        header::parse(&first[0]).unwrap().header.seq_nr
    );
}

#[test]
fn the_peer_window_is_honoured_and_ours_is_advertised() {
    let now = Instant::now();
    let (mut a, mut b) = pair(now);
    a.cwnd = 1e9;
    a.write(&vec![0u8; SEND_BUFFER], ROOM);
    // b never reads: a may fill b's window and no more.
    let mut t = now;
    for _ in 0..200 {
        for d in sent(&mut a, t) {
            deliver(&mut b, &d, t);
        }
        for d in sent(&mut b, t) {
            let p = header::parse(&d).unwrap();
            assert_eq!(p.header.wnd_size as usize, RECV_BUFFER - b.readable.len());
            deliver(&mut a, &d, t);
        }
        assert!(a.in_flight <= RECV_BUFFER + MAX_PAYLOAD);
        t += Duration::from_millis(1);
    }
    assert!(b.readable.len() <= RECV_BUFFER);
    assert!(
        b.readable.len() >= RECV_BUFFER - MAX_PAYLOAD,
        "the window was filled"
    );
    // Once b reads, it announces the reopened window unasked.
    let mut buf = vec![0u8; RECV_BUFFER];
    b.read(&mut buf);
    let update = sent(&mut b, t);
    assert_eq!(
        header::parse(&update[0]).unwrap().header.wnd_size as usize,
        RECV_BUFFER
    );
}

#[test]
fn timeouts_double_and_end_the_connection() {
    let now = Instant::now();
    let (mut a, _b) = pair(now);
    a.srtt = Some(Duration::from_millis(10));
    a.write(b"x", ROOM);
    sent(&mut a, now);
    let mut t = now;
    let mut gaps = Vec::new();
    let mut last = now;
    while a.failure.is_none() {
        t += Duration::from_millis(10);
        // Keep it from idling out: the peer "is there" but acks nothing.
        a.last_recv = t;
        let before = a.timeouts;
        a.tick(t);
        if a.timeouts > before {
            gaps.push(t.duration_since(last));
            last = t;
            if a.failure.is_none() {
                assert_eq!(sent(&mut a, t).len(), 1, "a timeout resends");
            }
        }
    }
    assert_eq!(a.failure, Some(Failure::TimedOut));
    assert_eq!(gaps.len() as u32, MAX_TIMEOUTS + 1);
    for w in gaps.windows(2).skip(1) {
        // 10 ms of tick granularity on top of an exact doubling.
        let ratio = w[1].as_secs_f64() / w[0].as_secs_f64();
        assert!((1.9..=2.1).contains(&ratio) || w[1] >= MAX_RTO, "{gaps:?}");
    }
    assert!(gaps[0] >= MIN_RTO);
}

#[test]
fn ledbat_grows_below_the_target_and_shrinks_above_it() {
    let now = Instant::now();
    let (mut a, _b) = pair(now);
    a.slow_start = false;
    a.cwnd = 100_000.0;
    // Base delay 1000 µs, then samples 10 ms above it: below the target.
    a.on_delay_sample(1000, now);
    a.on_delay_sample(11_000, now);
    assert_eq!(a.last_delay, Duration::from_millis(10));
    a.grow(50_000, 100_000);
    let grown = a.cwnd;
    assert!(grown > 100_000.0);
    // 200 ms above the base: twice the target, the window shrinks.
    a.on_delay_sample(201_000, now);
    a.grow(50_000, 100_000);
    assert!(a.cwnd < grown);
    // A wrapped clock difference is still a small delay above the base.
    let mut c = pair(now).0;
    c.on_delay_sample(u32::MAX - 500, now);
    c.on_delay_sample(1500, now);
    assert_eq!(c.last_delay, Duration::from_micros(2001));
}

#[test]
fn a_reset_fails_both_directions() {
    let now = Instant::now();
    let (mut a, mut b) = pair(now);
    let r = b.reset_packet(now);
    let p = header::parse(&r).unwrap();
    assert_eq!(p.header.kind, Type::Reset);
    deliver(&mut a, &r, now);
    assert_eq!(a.failure, Some(Failure::Reset));
    assert_eq!(a.write(b"x", ROOM), 0);
}

#[test]
fn fin_ends_the_stream_after_every_byte() {
    let now = Instant::now();
    let (mut a, mut b) = pair(now);
    a.write(b"last words", ROOM);
    a.close();
    let d = sent(&mut a, now);
    assert_eq!(d.len(), 2);
    assert_eq!(header::parse(&d[1]).unwrap().header.kind, Type::Fin);
    // The FIN overtakes the data: EOF waits for the data.
    deliver(&mut b, &d[1], now);
    assert!(!b.readable());
    deliver(&mut b, &d[0], now);
    let mut buf = [0u8; 32];
    assert_eq!(b.read(&mut buf), 10);
    assert!(b.readable() && b.eof);
    for ack in sent(&mut b, now) {
        deliver(&mut a, &ack, now);
    }
    assert!(a.fin_acked());
}
