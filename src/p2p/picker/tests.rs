use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;
use std::time::{Duration, Instant};

use super::*;

const PIECE: u64 = 4 * BLOCK_LEN as u64;

fn ip(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

fn want(waiting: &[u32], playhead: Option<u32>, readahead: u32, file: Range<u32>) -> Want {
    Want {
        waiting: waiting.to_vec(),
        playhead,
        readahead,
        file: Some(file),
        background: true,
    }
}

#[test]
fn order_is_waits_then_readahead_then_file_ends_then_the_rest() {
    let w = want(&[7, 3], Some(5), 3, 0..20);
    let order = wanted(&w, |_| true);
    assert_eq!(&order[..7], &[7, 3, 5, 6, 0, 19, 18]);
    // Then the rest from the playhead on, then from the start; each piece once.
    assert_eq!(
        &order[7..],
        &[8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 1, 2, 4]
    );
}

#[test]
fn a_seek_moves_the_window_and_had_pieces_are_skipped() {
    let before = wanted(&want(&[], Some(2), 2, 0..100), |_| true);
    assert_eq!(&before[..2], &[2, 3]);
    let after = wanted(&want(&[60], Some(60), 3, 0..100), |p| p != 61);
    assert_eq!(&after[..3], &[60, 62, 0]);
}

#[test]
fn without_background_only_the_window_and_the_ends_are_wanted() {
    let mut w = want(&[], Some(10), 2, 0..50);
    w.background = false;
    assert_eq!(wanted(&w, |_| true), vec![10, 11, 0, 49, 48]);
    w.file = None;
    assert!(wanted(&w, |_| true).is_empty());
}

fn asker<'a>(
    key: PeerKey,
    has: &'a dyn Fn(u32) -> bool,
    asked: &'a dyn Fn(&BlockRef) -> bool,
    fast: bool,
) -> Asker<'a> {
    // A fast peer brings a block in ~50 ms; a slow one needs 1.6 s, later
    // than the half second within which urgent blocks must arrive.
    let rate = if fast { 1e7 } else { 1e4 };
    Asker {
        ip: ip(key as u8),
        has,
        asked,
        waited: &|_| false,
        others_by: &|_, _| 0,
        speed: Speed {
            rtt: 0.05,
            rate,
            queued: 0,
        },
        urgent_within: 0.5,
    }
}

#[test]
fn blocks_are_handed_out_in_order_and_assemble_a_piece() {
    let mut p = Picker::new(PIECE, 10 * PIECE, 1 << 20);
    let now = Instant::now();
    let all = |_: u32| true;
    let none = |_: &BlockRef| false;
    let blocks = p.pick(&[2, 1], 0, &asker(1, &all, &none, true), 6, now);
    assert_eq!(blocks.len(), 6);
    assert_eq!((blocks[0].piece, blocks[0].offset), (2, 0));
    assert_eq!((blocks[4].piece, blocks[4].offset), (1, 0));
    let data = vec![7u8; BLOCK_LEN as usize];
    for b in &blocks[..3] {
        assert_eq!(p.receive(ip(1), b.piece, b.offset, &data), Received::Kept);
    }
    // A wrong size or an unasked piece is dropped.
    assert_eq!(
        p.receive(ip(1), 2, 3 * BLOCK_LEN, &data[..10]),
        Received::Unwanted
    );
    assert_eq!(p.receive(ip(1), 9, 0, &data), Received::Unwanted);
    let more = p.pick(&[2, 1], 0, &asker(1, &all, &none, true), 10, now);
    assert_eq!((more[0].piece, more[0].offset), (1, 2 * BLOCK_LEN));
    match p.receive(ip(2), 2, 3 * BLOCK_LEN, &data) {
        Received::Complete { data, senders } => {
            assert_eq!(data.len() as u64, PIECE);
            assert_eq!(senders.peers, vec![ip(1), ip(2)]);
            assert_eq!(
                senders.blocks,
                vec![0, 0, 0, 1],
                "block 3 came from the second"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(!p.is_in_flight(2));
    // While the store checks it, the piece is not handed out again.
    let again = p.pick(&[2], 0, &asker(3, &all, &none, true), 10, now);
    assert!(again.is_empty(), "{again:?}");
    p.verified(2);
    assert_eq!(
        p.pick(&[2], 0, &asker(3, &all, &none, true), 10, now).len(),
        4
    );
}

#[test]
fn the_last_piece_is_short_and_its_blocks_fit_it() {
    let total = 2 * PIECE + 20_000;
    let mut p = Picker::new(PIECE, total, 1 << 20);
    let all = |_: u32| true;
    let none = |_: &BlockRef| false;
    let blocks = p.pick(&[2], 0, &asker(1, &all, &none, true), 10, Instant::now());
    let lens: Vec<u32> = blocks.iter().map(|b| b.length).collect();
    assert_eq!(lens, vec![BLOCK_LEN, 20_000 - BLOCK_LEN]);
}

#[test]
fn the_budget_limits_new_pieces_but_not_urgent_ones() {
    // Room for two pieces of buffers.
    let mut p = Picker::new(PIECE, 10 * PIECE, 2 * PIECE);
    let all = |_: u32| true;
    let none = |_: &BlockRef| false;
    let now = Instant::now();
    let got = p.pick(&[0, 1, 2], 0, &asker(1, &all, &none, true), 100, now);
    assert_eq!(p.in_flight().collect::<Vec<_>>(), vec![0, 1]);
    assert_eq!(got.len(), 8);
    let got = p.pick(&[5], 1, &asker(1, &all, &none, true), 100, now);
    assert_eq!(got.len(), 4);
    assert!(p.is_in_flight(5));
}

#[test]
fn a_slow_peer_does_not_start_urgent_pieces() {
    let mut p = Picker::new(PIECE, 10 * PIECE, 1 << 20);
    let all = |_: u32| true;
    let none = |_: &BlockRef| false;
    let now = Instant::now();
    let got = p.pick(&[4, 5], 1, &asker(1, &all, &none, false), 100, now);
    assert!(got.iter().all(|b| b.piece == 5), "{got:?}");
    let got = p.pick(&[4, 5], 1, &asker(2, &all, &none, true), 100, now);
    assert!(got.iter().any(|b| b.piece == 4));
}

#[test]
fn urgent_blocks_are_asked_twice_when_the_first_peer_is_late() {
    let mut p = Picker::new(PIECE, 10 * PIECE, 1 << 20);
    let all = |_: u32| true;
    let none = |_: &BlockRef| false;
    let t0 = Instant::now();
    let first = p.pick(&[3], 1, &asker(1, &all, &none, true), 100, t0);
    assert_eq!(first.len(), 4);
    // Soon after, a second peer gets nothing: the first is not late yet.
    let soon = p.pick(&[3], 1, &asker(2, &all, &none, true), 100, t0);
    assert!(soon.is_empty());
    let late = t0 + Duration::from_secs(2);
    let mine: Vec<BlockRef> = first.clone();
    let asked_by_1 = |b: &BlockRef| mine.contains(b);
    // Never the same peer twice.
    assert!(p
        .pick(&[3], 1, &asker(1, &all, &asked_by_1, true), 100, late)
        .is_empty());
    let dup = p.pick(&[3], 1, &asker(2, &all, &none, true), 100, late);
    assert_eq!(dup, first);
    // At most two peers per block.
    assert!(p
        .pick(&[3], 1, &asker(3, &all, &none, true), 100, late)
        .is_empty());
}

#[test]
fn given_back_blocks_go_to_the_next_peer_and_idle_pieces_can_be_dropped() {
    let mut p = Picker::new(PIECE, 10 * PIECE, 1 << 20);
    let all = |_: u32| true;
    let none = |_: &BlockRef| false;
    let now = Instant::now();
    let got = p.pick(&[1], 0, &asker(1, &all, &none, true), 2, now);
    assert!(p.idle().is_empty());
    for b in &got {
        p.give_back(b);
    }
    assert_eq!(p.idle(), vec![1]);
    let again = p.pick(&[1], 0, &asker(2, &all, &none, true), 2, now);
    assert_eq!(again, got);
    p.drop_piece(1);
    assert_eq!(p.buffered(), 0);
}

#[test]
fn peers_are_asked_only_for_pieces_they_have() {
    let mut p = Picker::new(PIECE, 10 * PIECE, 1 << 20);
    let only_7 = |x: u32| x == 7;
    let none = |_: &BlockRef| false;
    let got = p.pick(
        &[1, 2, 7],
        0,
        &asker(1, &only_7, &none, true),
        100,
        Instant::now(),
    );
    assert!(got.iter().all(|b| b.piece == 7));
    assert!(!p.is_in_flight(1));
}

#[test]
fn a_liars_partial_pieces_are_dropped_so_no_honest_peer_completes_them() {
    let mut p = Picker::new(PIECE, 10 * PIECE, 1 << 20);
    let all = |_: u32| true;
    let none = |_: &BlockRef| false;
    let now = Instant::now();
    let blocks = p.pick(&[0, 1], 0, &asker(1, &all, &none, true), 8, now);
    let data = vec![1u8; BLOCK_LEN as usize];
    // The liar sent one block of piece 0; an honest peer one of piece 1.
    p.receive(ip(2), blocks[0].piece, blocks[0].offset, &data);
    p.receive(ip(1), blocks[4].piece, blocks[4].offset, &data);
    p.drop_from(ip(2));
    assert_eq!(p.in_flight().collect::<Vec<_>>(), vec![1]);
}

#[test]
fn pieces_waiting_for_the_store_count_against_the_budget() {
    let mut p = Picker::new(PIECE, 10 * PIECE, 2 * PIECE);
    let all = |_: u32| true;
    let none = |_: &BlockRef| false;
    let now = Instant::now();
    let data = vec![0u8; BLOCK_LEN as usize];
    for b in p.pick(&[0, 1], 0, &asker(1, &all, &none, true), 8, now) {
        p.receive(ip(1), b.piece, b.offset, &data);
    }
    // Both complete and handed to the store: no new piece until it judged one.
    assert!(p
        .pick(&[2, 3], 0, &asker(1, &all, &none, true), 8, now)
        .is_empty());
    p.verified(0);
    assert_eq!(
        p.pick(&[2, 3], 0, &asker(1, &all, &none, true), 8, now)
            .len(),
        4
    );
}

fn at_speed<'a>(
    has: &'a dyn Fn(u32) -> bool,
    asked: &'a dyn Fn(&BlockRef) -> bool,
    rate: f64,
    queued: usize,
    urgent_within: f64,
) -> Asker<'a> {
    Asker {
        ip: ip(1),
        has,
        asked,
        // A reader is blocked on every piece these tests name.
        waited: &|_| true,
        others_by: &|_, _| 0,
        speed: Speed {
            rtt: 0.05,
            rate,
            queued,
        },
        urgent_within,
    }
}

#[test]
fn a_slow_peer_never_joins_the_playhead_piece_but_gets_background_blocks() {
    let mut p = Picker::new(PIECE, 10 * PIECE, 1 << 20);
    let all = |_: u32| true;
    let none = |_: &BlockRef| false;
    let now = Instant::now();
    // A peer at 1 MB/s takes the three blocks of urgent piece 3 it brings within 0.1 s...
    let fast = p.pick(&[3, 4], 1, &at_speed(&all, &none, 1e6, 0, 0.1), 0, now);
    assert_eq!(fast.len(), 3, "{fast:?}");
    // ...and a peer at 50 KB/s, which would need 0.3 s a block, joins only the background piece.
    let slow = p.pick(&[3, 4], 1, &at_speed(&all, &none, 5e4, 0, 0.1), 4, now);
    assert!(
        !slow.is_empty() && slow.iter().all(|b| b.piece == 4),
        "{slow:?}"
    );
}

#[test]
fn a_playhead_block_held_by_a_slow_peer_is_asked_of_a_faster_one_at_once() {
    let mut p = Picker::new(PIECE, 10 * PIECE, 1 << 20);
    let all = |_: u32| true;
    let none = |_: &BlockRef| false;
    let t0 = Instant::now();
    // Piece 2 began as background at a slow peer: due in seconds.
    let slow = p.pick(&[2], 0, &at_speed(&all, &none, 1e4, 0, 0.0), 4, t0);
    assert_eq!(slow.len(), 4);
    // Now a reader needs it: a fast peer is asked for the same blocks, not after a timeout.
    let fast = p.pick(&[2], 1, &at_speed(&all, &none, 1e7, 0, 0.5), 0, t0);
    assert_eq!(fast, slow);
}

#[test]
fn an_urgent_piece_only_slow_peers_have_goes_to_them_after_a_second() {
    let mut p = Picker::new(PIECE, 10 * PIECE, 1 << 20);
    let all = |_: u32| true;
    let none = |_: &BlockRef| false;
    let t0 = Instant::now();
    let first = p.pick(&[6], 1, &at_speed(&all, &none, 1e4, 0, 0.2), 4, t0);
    assert!(first.is_empty());
    let later = p.pick(
        &[6],
        1,
        &at_speed(&all, &none, 1e4, 0, 0.2),
        4,
        t0 + Duration::from_millis(1100),
    );
    assert_eq!(later.len(), 4);
}

#[test]
fn a_seeks_blocks_go_in_order_to_the_peers_that_bring_them_first() {
    // An urgent piece of 16 blocks; two peers at 1 MB/s, a near one (20 ms) and a far one (300 ms).
    let blocks = 16;
    let len = blocks * BLOCK_LEN as u64;
    let near = Speed {
        rtt: 0.02,
        rate: 1e6,
        queued: 0,
    };
    let far = Speed { rtt: 0.3, ..near };
    let all = |_: u32| true;
    let none = |_: &BlockRef| false;
    let ask = |speed: Speed, others: &dyn Fn(u32, f64) -> usize, p: &mut Picker| {
        let asker = Asker {
            ip: ip(1),
            has: &all,
            asked: &none,
            waited: &|_| true,
            others_by: others,
            speed,
            urgent_within: 10.0,
        };
        p.pick(&[0], 1, &asker, 0, Instant::now())
    };
    // The far peer's writer runs first: the near one brings all 16 before the far one's first
    // would arrive, so it takes none of them...
    let mut p = Picker::new(len, 4 * len, 1 << 24);
    assert!(ask(far, &|_, t| near.within(t), &mut p).is_empty());
    // ...and the near one takes them all.
    assert_eq!(ask(near, &|_, t| far.within(t), &mut p).len(), 16);

    // Two near peers alike share the piece block by block: the first one leaves every other
    // block (after the slack's first few) to the second one's arrivals.
    let mut p = Picker::new(len, 4 * len, 1 << 24);
    let first = ask(near, &|_, t| near.within(t), &mut p);
    assert!(
        (8..=11).contains(&first.len()),
        "the first peer took {} of 16: {first:?}",
        first.len()
    );
    let twin = Speed { queued: 0, ..near };
    let second = ask(
        twin,
        &|_, t| {
            Speed {
                queued: first.len(),
                ..near
            }
            .within(t)
        },
        &mut p,
    );
    assert_eq!(first.len() + second.len(), 16, "{second:?}");
}

#[test]
fn an_overdue_urgent_block_is_asked_of_a_second_peer_before_it_is_late() {
    let mut p = Picker::new(PIECE, 10 * PIECE, 1 << 20);
    let all = |_: u32| true;
    let none = |_: &BlockRef| false;
    let t0 = Instant::now();
    // Taken for a fast peer (due in ~57 ms), it turns out slower: nothing by 60 ms past due.
    let first = p.pick(&[3], 1, &asker(1, &all, &none, true), 100, t0);
    assert_eq!(first.len(), 4);
    // Not yet overdue: no copy (nobody waits on piece 3, so 'sooner' does not apply).
    let early = t0 + Duration::from_millis(60);
    assert!(p
        .pick(&[3], 1, &asker(2, &all, &none, true), 100, early)
        .is_empty());
    // Overdue (past due + 50 ms) though far from late (2x expected + 0.2 s = 0.3 s).
    let overdue = t0 + Duration::from_millis(150);
    let dup = p.pick(&[3], 1, &asker(2, &all, &none, true), 100, overdue);
    assert_eq!(dup, first);
}

#[test]
fn in_the_endgame_an_idle_fast_peer_copies_what_a_slow_one_holds() {
    let mut p = Picker::new(PIECE, 10 * PIECE, 1 << 20);
    let all = |_: u32| true;
    let none = |_: &BlockRef| false;
    let t0 = Instant::now();
    // The last piece went to a slow peer (1.6 s a block): background, nobody waits.
    let slow = p.pick(&[2, 3], 0, &at_speed(&all, &none, 1e4, 0, 0.0), 4, t0);
    assert!(
        slow.iter().all(|b| b.piece == 2) && slow.len() == 4,
        "{slow:?}"
    );
    // While there is fresh work (piece 3), a fast peer takes that and copies nothing.
    let fresh = p.pick(&[2, 3], 0, &asker(2, &all, &none, true), 4, t0);
    assert!(
        fresh.iter().all(|b| b.piece == 3) && fresh.len() == 4,
        "{fresh:?}"
    );
    // Everything is asked for: a third, fast peer brings piece 2 long before the slow one would.
    let dup = p.pick(&[2, 3], 0, &asker(3, &all, &none, true), 4, t0);
    assert_eq!(dup, slow);
}

#[test]
fn a_piece_that_failed_with_several_senders_is_fetched_from_one_peer_alone() {
    let mut p = Picker::new(PIECE, 10 * PIECE, 1 << 20);
    let t0 = Instant::now();
    let all = |_: u32| true;
    let none = |_: &BlockRef| false;
    let data = vec![7u8; BLOCK_LEN as usize];
    p.fetch_alone(3);
    // Peer 1 is asked two blocks (its room); peer 2, with room to spare, gets none of piece 3
    // though two of its blocks are still open, urgent or not.
    let first = p.pick(&[3], 0, &asker(1, &all, &none, true), 2, t0);
    assert_eq!(first.len(), 2);
    assert!(p
        .pick(&[3], 0, &asker(2, &all, &none, true), 10, t0)
        .is_empty());
    assert!(p
        .pick(&[3], 1, &asker(2, &all, &none, true), 10, t0)
        .is_empty());
    // A block of it from another peer is not taken.
    assert_eq!(p.receive(ip(2), 3, 0, &data), Received::Unwanted);
    for b in &first {
        assert_eq!(p.receive(ip(1), b.piece, b.offset, &data), Received::Kept);
    }
    // Its owner idles (it choked) long enough: peer 2 takes the piece over, from scratch,
    // and the copy that completes is peer 2's alone.
    let later = t0 + OWNER_IDLE;
    assert!(p
        .pick(&[3], 0, &asker(2, &all, &none, true), 10, t0)
        .is_empty());
    let over = p.pick(&[3], 0, &asker(2, &all, &none, true), 10, later);
    assert_eq!(
        over.len(),
        4,
        "all four blocks, the owner's two dropped: {over:?}"
    );
    let mut done = None;
    for b in &over {
        if let Received::Complete { senders, .. } = p.receive(ip(2), b.piece, b.offset, &data) {
            done = Some(senders);
        }
    }
    assert_eq!(done.expect("complete").peers, vec![ip(2)]);
    // Once complete, the next copy (were it to fail again) is fetched as any other.
    p.verified(3);
    assert_eq!(
        p.pick(&[3], 0, &asker(1, &all, &none, true), 2, later)
            .len(),
        2
    );
    assert_eq!(
        p.pick(&[3], 0, &asker(2, &all, &none, true), 2, later)
            .len(),
        2
    );
}

#[test]
fn pieces_fetched_alone_are_bounded() {
    let mut p = Picker::new(PIECE, 1 << 40, 1 << 20);
    for piece in 0..100_000 {
        p.fetch_alone(piece);
    }
    assert_eq!(p.alone.len(), MAX_SUSPECTS);
}

#[test]
fn an_owner_sitting_on_its_requests_loses_the_piece_it_fetches_alone() {
    let mut p = Picker::new(PIECE, 10 * PIECE, 1 << 20);
    let t0 = Instant::now();
    let all = |_: u32| true;
    let none = |_: &BlockRef| false;
    p.fetch_alone(3);
    // Peer 1 is asked all four blocks (due within a second) and answers none.
    assert_eq!(
        p.pick(&[3], 0, &asker(1, &all, &none, true), 4, t0).len(),
        4
    );
    let before = t0 + OWNER_IDLE;
    assert!(p
        .pick(&[3], 0, &asker(2, &all, &none, true), 4, before)
        .is_empty());
    let after = t0 + 2 * OWNER_IDLE;
    assert_eq!(
        p.pick(&[3], 0, &asker(2, &all, &none, true), 4, after)
            .len(),
        4
    );
}
