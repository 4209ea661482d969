//! What readers wait for, and which tier claims which piece: one torrent's
//! demand, shared by the readers, the lifecycle owner and both tiers.
//!
//! # Design
//! A reader says which piece it blocks on and where its playhead is; the P2P
//! tier and the HTTP workers claim the pieces they fetch here, so a piece is
//! fetched twice only when a reader waited on it longer than `P2P_TIMEOUT`.
//! Every change wakes the listeners of [`Demand::listen`], except a playhead
//! that moves within the piece it was in: a reader moves it with every chunk
//! it serves, and what the tiers want changes only piece by piece, so a
//! wake-up per chunk (of the supervisor and of every peer writer) would be
//! work for nothing. This room is a
//! leaf of the house: it imports only formats, so the tiers above it and the
//! lifecycle owner above them can share it without importing each other.
//!
//! It must never fetch, read the store, or hold a lock across an `.await`.
//! The HTTP sources' health lives here by index and label only; the sources
//! themselves belong to the HTTP tier.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use event_listener::Event;

use crate::format::media;
use crate::format::metainfo::Metainfo;

/// The step of a playhead that wakes listeners while the piece length is unknown.
const PLAYHEAD_UNIT: u64 = 1 << 20;

/// Which tier delivered bytes. Counters per tier feed the status API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Cache,
    P2p,
    Http,
}

impl Tier {
    pub fn name(self) -> &'static str {
        match self {
            Tier::Cache => "cache",
            Tier::P2p => "p2p",
            Tier::Http => "http",
        }
    }
}

/// Which tier is working on a torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Nothing asked for yet.
    Idle,
    /// Demand exists; P2P has until the deadline.
    P2p { since: Instant },
    /// HTTP workers run.
    Http,
    /// No tier can serve this torrent; the reason is for the user.
    Failed(String),
}

/// What readers want of one torrent, and which pieces workers are fetching.
pub struct Demand {
    state: Mutex<DemandState>,
    /// Notified when demand, claims or the phase change.
    pub(crate) changed: Event,
    /// The torrent's piece length once known (0 before): the unit in which
    /// a moving playhead wakes the listeners.
    piece_length: AtomicU64,
    /// Bytes fetched per tier, for the API.
    pub fetched_http: AtomicU64,
    pub fetched_p2p: AtomicU64,
}

/// The HTTP workers schedule over these fields directly (`hybrid::worker`).
pub(crate) struct DemandState {
    pub(crate) phase: Phase,
    /// Pieces that readers block on: how many readers, when the first and
    /// the last wait began.
    pub(crate) waiting: BTreeMap<u32, Wait>,
    /// The last torrent-space offset a reader asked for.
    pub(crate) playhead: Option<u64>,
    /// The pieces of the file being played.
    pub(crate) file: Option<Range<u32>>,
    /// Pieces an HTTP worker is fetching right now.
    pub(crate) claimed: BTreeSet<u32>,
    /// Pieces the P2P tier is fetching right now.
    pub(crate) p2p_claimed: BTreeSet<u32>,
    /// Workers busy with readahead or background pieces.
    pub(crate) non_urgent: usize,
    /// False once the quota stopped background completion.
    pub(crate) background: bool,
    pub(crate) sources: Vec<SourceState>,
    /// Pieces the HTTP and the P2P tier fetched in this run, one bit each, so
    /// bytes served later from the store are still credited to their tier.
    pub(crate) fetched: Vec<u64>,
    pub(crate) p2p_fetched: Vec<u64>,
}

#[derive(Clone, Copy)]
pub(crate) struct Wait {
    pub(crate) readers: u32,
    pub(crate) first: Instant,
    pub(crate) last: Instant,
}

/// A copy of the demand, for the P2P picker.
#[derive(Debug, Clone, Default)]
pub struct DemandView {
    /// Pieces readers block on, newest wait first.
    pub waiting: Vec<u32>,
    pub playhead: Option<u64>,
    pub file: Option<Range<u32>>,
    /// Whether completing the file is still allowed (the quota did not stop it).
    pub background: bool,
    /// Pieces HTTP workers are fetching.
    pub http_claimed: BTreeSet<u32>,
}

/// One HTTP source's health, as this torrent sees it (the source itself is
/// the HTTP tier's, at the same index).
pub(crate) struct SourceState {
    pub(crate) label: String,
    pub(crate) failures: u32,
    pub(crate) retry_at: Option<Instant>,
    pub(crate) dropped: Option<String>,
    pub(crate) bytes: u64,
    /// Bytes per second one request of this source delivered (moving average).
    pub(crate) rate: Option<f64>,
}

impl Default for Demand {
    fn default() -> Demand {
        Demand {
            state: Mutex::new(DemandState {
                phase: Phase::Idle,
                waiting: BTreeMap::new(),
                playhead: None,
                file: None,
                claimed: BTreeSet::new(),
                p2p_claimed: BTreeSet::new(),
                non_urgent: 0,
                background: true,
                sources: Vec::new(),
                fetched: Vec::new(),
                p2p_fetched: Vec::new(),
            }),
            changed: Event::new(),
            piece_length: AtomicU64::new(0),
            fetched_http: AtomicU64::new(0),
            fetched_p2p: AtomicU64::new(0),
        }
    }
}

/// Removes a reader's wait when it ends, however it ends.
pub struct Waiting<'a> {
    demand: &'a Demand,
    piece: u32,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut st = self.demand.state.lock().unwrap();
        if let Some(w) = st.waiting.get_mut(&self.piece) {
            w.readers -= 1;
            if w.readers == 0 {
                st.waiting.remove(&self.piece);
            }
        }
    }
}

impl Demand {
    /// The state, for the HTTP workers' scheduling; never held across an `.await`.
    pub(crate) fn lock(&self) -> MutexGuard<'_, DemandState> {
        self.state.lock().unwrap()
    }

    pub fn phase(&self) -> Phase {
        self.state.lock().unwrap().phase.clone()
    }

    /// A reader waits for `piece` of `file`, reading at `offset`.
    pub fn wait_for(&self, piece: u32, offset: u64, file: Range<u32>) -> Waiting<'_> {
        {
            let mut st = self.state.lock().unwrap();
            let now = Instant::now();
            let w = st.waiting.entry(piece).or_insert(Wait {
                readers: 0,
                first: now,
                last: now,
            });
            w.readers += 1;
            w.last = now;
            st.playhead = Some(offset);
            st.file = Some(file);
        }
        self.changed.notify(usize::MAX);
        Waiting {
            demand: self,
            piece,
        }
    }

    /// A reader moved on to `offset` (its readahead moves with it). The
    /// listeners wake only when it enters another piece (another MiB while
    /// the piece length is unknown) or another file.
    pub fn playhead(&self, offset: u64, file: Range<u32>) {
        let unit = match self.piece_length.load(Ordering::Relaxed) {
            0 => PLAYHEAD_UNIT,
            n => n,
        };
        let mut st = self.state.lock().unwrap();
        let moved = st.playhead.is_none_or(|old| old / unit != offset / unit)
            || st.file.as_ref() != Some(&file);
        st.playhead = Some(offset);
        st.file = Some(file);
        drop(st);
        if moved {
            self.changed.notify(usize::MAX);
        }
    }

    /// The torrent's piece length, once its metadata is known.
    pub fn set_piece_length(&self, bytes: u64) {
        self.piece_length.store(bytes, Ordering::Relaxed);
    }

    /// The tier that put `piece` in the store: HTTP or P2P if one fetched it
    /// in this run, else the cache.
    pub fn origin(&self, piece: u32) -> Tier {
        let st = self.state.lock().unwrap();
        if get_bit(&st.fetched, piece) {
            Tier::Http
        } else if get_bit(&st.p2p_fetched, piece) {
            Tier::P2p
        } else {
            Tier::Cache
        }
    }

    pub(crate) fn mark_fetched(&self, piece: u32) {
        set_bit(&mut self.state.lock().unwrap().fetched, piece);
    }

    /// The P2P tier verified and stored `piece` (`bytes` long).
    pub fn mark_p2p(&self, piece: u32, bytes: u64) {
        set_bit(&mut self.state.lock().unwrap().p2p_fetched, piece);
        self.fetched_p2p.fetch_add(bytes, Ordering::Relaxed);
        self.changed.notify(usize::MAX);
    }

    /// The P2P tier started fetching `piece`: HTTP workers leave it alone
    /// unless a reader has waited on it longer than `P2P_TIMEOUT`.
    pub fn claim_p2p(&self, piece: u32) {
        self.state.lock().unwrap().p2p_claimed.insert(piece);
    }

    pub fn release_p2p(&self, piece: u32) {
        self.state.lock().unwrap().p2p_claimed.remove(&piece);
        self.changed.notify(usize::MAX);
    }

    /// Keeps only the P2P claims `keep` says are still in flight.
    pub fn retain_p2p(&self, keep: impl Fn(u32) -> bool) {
        self.state.lock().unwrap().p2p_claimed.retain(|p| keep(*p));
        self.changed.notify(usize::MAX);
    }

    /// The quota is full: no tier completes the file in the background any more.
    pub fn stop_background(&self) {
        self.state.lock().unwrap().background = false;
    }

    /// A copy of what readers want, for the P2P picker.
    pub fn view(&self) -> DemandView {
        let st = self.state.lock().unwrap();
        let mut waiting: Vec<(u32, Instant)> =
            st.waiting.iter().map(|(p, w)| (*p, w.last)).collect();
        waiting.sort_by_key(|(_, at)| std::cmp::Reverse(*at));
        DemandView {
            waiting: waiting.into_iter().map(|(p, _)| p).collect(),
            playhead: st.playhead,
            file: st.file.clone(),
            background: st.background,
            http_claimed: st.claimed.clone(),
        }
    }

    /// Whether a reader is waiting or playing.
    pub(crate) fn active(&self) -> bool {
        let st = self.state.lock().unwrap();
        !st.waiting.is_empty() || st.playhead.is_some()
    }

    /// Whether a reader has waited longer than `limit` for a piece.
    pub(crate) fn stalled(&self, limit: Duration) -> bool {
        let st = self.state.lock().unwrap();
        let now = Instant::now();
        st.waiting
            .values()
            .any(|w| now.saturating_duration_since(w.first) >= limit)
    }

    /// Wakes everyone waiting on this torrent (its metadata arrived).
    pub fn notify(&self) {
        self.changed.notify(usize::MAX);
    }

    /// Resolves on the next change of demand, claims or phase.
    pub fn listen(&self) -> event_listener::EventListener {
        self.changed.listen()
    }

    pub(crate) fn set_phase(&self, phase: Phase) {
        self.state.lock().unwrap().phase = phase;
        self.changed.notify(usize::MAX);
    }

    pub(crate) fn record_rate(&self, source: usize, rate: f64) {
        let mut st = self.state.lock().unwrap();
        let s = &mut st.sources[source];
        s.rate = Some(s.rate.map_or(rate, |old| 0.7 * old + 0.3 * rate));
    }

    /// Per-source status for the API.
    pub fn sources(&self) -> Vec<serde_json::Value> {
        let st = self.state.lock().unwrap();
        st.sources
            .iter()
            .map(|s| {
                serde_json::json!({
                    "source": s.label,
                    "bytes": s.bytes,
                    "failures": s.failures,
                    "dropped": s.dropped,
                    "bytesPerSecond": s.rate.map(|r| r as u64),
                })
            })
            .collect()
    }
}

fn get_bit(bits: &[u64], piece: u32) -> bool {
    bits.get(piece as usize / 64)
        .is_some_and(|w| w & (1 << (piece % 64)) != 0)
}

fn set_bit(bits: &mut Vec<u64>, piece: u32) {
    let word = piece as usize / 64;
    if bits.len() <= word {
        bits.resize(word + 1, 0);
    }
    bits[word] |= 1 << (piece % 64);
}

/// The pieces that hold file `index`.
pub fn file_pieces(meta: &Metainfo, index: usize) -> Range<u32> {
    let f = &meta.files[index];
    let first = (f.offset / meta.piece_length) as u32;
    let end = if f.length == 0 {
        first
    } else {
        ((f.offset + f.length - 1) / meta.piece_length) as u32 + 1
    };
    first..end
}

pub fn file_bytes(meta: &Metainfo, pieces: &Range<u32>) -> u64 {
    pieces.clone().map(|p| meta.piece_size(p)).sum()
}

/// The file a player gets when it does not name one: the largest video, or
/// the largest file when the torrent holds no video.
pub fn default_file(meta: &Metainfo) -> Option<usize> {
    media::choose_file(&meta.files, None)
        .ok()
        .or_else(|| media::largest_file(&meta.files))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `listener` has been notified (without waiting).
    fn notified(listener: event_listener::EventListener) -> bool {
        futures_lite::future::block_on(futures_lite::future::poll_once(listener)).is_some()
    }

    #[test]
    fn a_playhead_wakes_the_listeners_only_when_it_enters_another_piece() {
        let d = Demand::default();
        d.set_piece_length(256 * 1024);
        let l = d.listen();
        d.playhead(0, 0..10);
        assert!(notified(l), "the first playhead is news");
        // The chunks a reader serves within one piece wake nobody...
        let l = d.listen();
        for offset in (64 * 1024..256 * 1024).step_by(64 * 1024) {
            d.playhead(offset, 0..10);
        }
        assert!(
            !notified(l),
            "a playhead moving within its piece woke the listeners"
        );
        // ...but the next piece, a seek or another file does.
        for (offset, file) in [(256 * 1024, 0..10), (2 << 20, 0..10), (2 << 20, 10..20)] {
            let l = d.listen();
            d.playhead(offset, file.clone());
            assert!(
                notified(l),
                "a playhead at {offset} of {file:?} woke nobody"
            );
        }
        assert_eq!(d.view().playhead, Some(2 << 20));
    }
}
