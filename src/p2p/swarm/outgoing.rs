//! What a swarm sends its peers: interest, requests from the picker in the
//! order of need, uploads read from the cache, choking, and PEX.
//!
//! Must never request a piece HTTP is fetching unless a reader waits on it,
//! and never upload to a peer it chokes.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Instant;

use super::{
    get_bit, set_bit, Hangup, Output, Peer, State, Swarm, BLOCK_LEN, OPTIMISTIC_EVERY, PEX_EVERY,
    PIPELINE_MAX, PIPELINE_MIN, PIPELINE_START, UPLOAD_SLOTS,
};
use crate::p2p::picker::{self, Asker, PeerKey, Speed, Want};

/// Seconds past the swarm's best next arrival within which a peer may still
/// be given an urgent block: a slower peer that would bring it later does not.
const URGENT_SLACK: f64 = 0.2;

/// What a peer not yet measured is taken for: a rate and round trip that let
/// the first urgent window go out at once over every peer (8 peers take 12
/// blocks each); 256 KB/s and 250 ms cost the first MiB 0.3 s on the WAN rig.
const UNMEASURED_RATE: f64 = 1024.0 * 1024.0;
const UNMEASURED_RTT: f64 = 0.1;

/// Seconds after its first block from which a peer's rate is its bytes over the time.
const EARLY_RATE_AFTER: f64 = 0.2;

/// The pipeline holds this many bandwidth-delay products while the peer's
/// rate is bound by the pipeline (it brought about all the pipeline let it):
/// one keeps the link busy; the second is room for the rate to grow into (the
/// rate is measured through the pipeline, so a depth of exactly one could
/// never rise), so the depth doubles per tick, like a slow start.
const BDP_RAMP: f64 = 2.0;

/// ...and this many once the peer, not the pipeline, bounds the rate: the
/// quarter beyond one is slack for a rate that wobbles. Every request beyond
/// the link's own bandwidth-delay product waits in the peer's queue, where a
/// seek's first requests wait behind it: at 2x, a round trip's worth
/// (0.4 s at the WAN rig's farthest peer); at 1.25x, a quarter of that.
const BDP_STEADY: f64 = 1.25;

/// A peer that brought this share of what its pipeline allowed in a tick is
/// bound by the pipeline (still ramping).
pub(super) const RAMP_FILL: f64 = 0.8;

/// Bytes of playback around the playhead that are time-critical (a reader
/// is about to block on them): at least two pieces. Urgent blocks go out
/// beyond the pipeline depth, so this much waits in the peers' queues after
/// a seek, ahead of the next seek's requests: 2 MiB cost the WAN rig's
/// back-to-back seeks 0.1-0.2 s each.
const CRITICAL_BYTES: u64 = 1 << 20;

/// The readahead is this many seconds at the swarm's measured rate, or
/// `STREAM_READAHEAD_MB` if more, and at most a quarter of the quota.
const READAHEAD_SECS: f64 = 30.0;

/// A peer's speed as measured so far: its rate from the ticks, or before
/// the first tick that saw its blocks, the bytes since its first block (a
/// slow peer must not pass for a fast one for a second after it starts).
fn speed(p: &Peer) -> Speed {
    let early = early_rate(p);
    // Not measured yet: at least as long as its oldest request has waited
    // (a far peer must not pass for a near one while its first blocks are
    // still on the way: it took a seek's first blocks on the WAN rig).
    let waited = p
        .asked
        .front()
        .map_or(0.0, |(_, at)| at.elapsed().as_secs_f64());
    Speed {
        rtt: p.rtt.unwrap_or(UNMEASURED_RTT.max(waited)),
        rate: match (p.got_at_tick > 0 && p.rate_in > 0.0, early) {
            (true, _) => p.rate_in,
            (false, Some(r)) => r,
            (false, None) => UNMEASURED_RATE,
        },
        queued: p.asked.len(),
    }
}

/// Logs (debug) the requests for waited pieces: which peer, how long after
/// the wait, and what the picker expected of it.
fn trace_requests(
    traced: &std::collections::HashMap<u32, Instant>,
    peer: &Peer,
    blocks: &[BlockRef],
    now: Instant,
) {
    let s = speed(peer);
    let mut i = 0;
    while i < blocks.len() {
        let piece = blocks[i].piece;
        let n = blocks[i..].iter().take_while(|b| b.piece == piece).count();
        if let Some(since) = traced.get(&piece) {
            log::debug!(
                "[P2P] piece {piece}: {n} block(s) from {} asked at +{} ms ({} queued before; \
                 rtt {:.0} ms, {:.0} KB/s, first due in {:.0} ms)",
                peer.addr,
                now.duration_since(*since).as_millis(),
                s.queued + i,
                s.rtt * 1e3,
                s.rate / 1e3,
                s.eta(i + 1) * 1e3,
            );
        }
        i += n;
    }
}

/// A peer's rate from the bytes since its first block, once that is long
/// enough ago to mean something.
fn early_rate(p: &Peer) -> Option<f64> {
    p.first_block.and_then(|t| {
        let s = t.elapsed().as_secs_f64();
        (s >= EARLY_RATE_AFTER).then(|| p.got.saturating_sub(BLOCK_LEN as u64).max(1) as f64 / s)
    })
}

/// Whether both a peer's round trip and its rate are measured, not taken
/// for [`UNMEASURED_RTT`] and [`UNMEASURED_RATE`].
fn measured(p: &Peer) -> bool {
    p.rtt.is_some() && ((p.got_at_tick > 0 && p.rate_in > 0.0) || early_rate(p).is_some())
}

/// Requests to keep outstanding at a peer: its bandwidth-delay product
/// (its recent peak rate × measured round trip) times [`BDP_RAMP`] or
/// [`BDP_STEADY`], in blocks, bounded.
pub(super) fn depth(p: &Peer) -> usize {
    match p.rtt {
        Some(rtt) if p.got > 0 && p.rate_peak > 0.0 => {
            let bdp = p.rate_peak * rtt / BLOCK_LEN as f64;
            let factor = if p.ramping { BDP_RAMP } else { BDP_STEADY };
            ((factor * bdp).ceil() as usize + PIPELINE_MIN).clamp(PIPELINE_MIN, PIPELINE_MAX)
        }
        _ => PIPELINE_START,
    }
}
use crate::p2p::wire::{self, BlockRef, Message, MetadataMessage, Pex};
use crate::store::StoreError;

impl Swarm {
    /// What peer `key`'s writer sends next: queued messages, new requests,
    /// and one upload if it may have one.
    pub(in crate::p2p) fn output(&self, key: PeerKey) -> Result<Output, Hangup> {
        let mut st = self.state();
        self.refresh_order(&mut st);
        let st = &mut *st;
        let now = Instant::now();
        // Urgent blocks go to measured peers once there are any: a peer whose
        // first blocks are still on the way may be 400 ms away (on the WAN
        // rig a fresh one took a seek's first blocks, taken for 150 ms).
        // Until one is measured, they all race for the first MiB.
        let any_measured = st
            .peers
            .values()
            .any(|p| !p.peer_choking && !p.snubbed && measured(p));
        let racer = |p: &Peer| !p.peer_choking && !p.snubbed && (!any_measured || measured(p));
        // The swarm's best next arrival: urgent blocks go to peers that come close to it.
        let best = st
            .peers
            .values()
            .filter(|p| racer(p))
            .map(|p| speed(p).eta(1))
            .fold(f64::INFINITY, f64::min);
        // The other peers urgent blocks may go to, for the deadline order
        // (none needed while nothing is urgent).
        let racers: Vec<(Speed, bool, Vec<u8>)> = if st.urgent == 0 {
            Vec::new()
        } else {
            st.peers
                .iter()
                .filter(|(k, p)| **k != key && racer(p))
                .map(|(_, p)| (speed(p), p.have_all, p.bits.clone()))
                .collect()
        };
        let others_by = |piece: u32, t: f64| -> usize {
            racers
                .iter()
                .filter(|(_, all, bits)| *all || get_bit(bits, piece))
                .map(|(s, _, _)| s.within(t))
                .sum()
        };
        let peer = st.peers.get_mut(&key).ok_or(Hangup::Unwanted("gone"))?;
        let mut bytes = peer.link.take();
        // Interest follows what it has that we want. It is never said before
        // the peer's handshake: `interested` sent right behind ours would save
        // the round trip to an unchoke, but aria2c hangs up on a connection
        // whose first message is not a bitfield (tests/p2p.rs caught it).
        let has = |p: u32| peer.have_all || get_bit(&peer.bits, p);
        let interesting = st.order.iter().any(|p| has(*p));
        if interesting != peer.am_interested {
            peer.am_interested = interesting;
            let msg = if interesting {
                Message::Interested
            } else {
                Message::NotInterested
            };
            wire::encode(&msg, &mut bytes);
        }
        // Metadata first: nothing else can be asked without it.
        if let (Some(a), Some(id)) = (st.metadata.as_mut(), peer.ext.ut_metadata) {
            if !a.asked(key) {
                if let Some(piece) = a.next_request(key, now) {
                    let payload = MetadataMessage::Request { piece }.encode();
                    wire::encode(
                        &Message::Extended {
                            id,
                            payload: &payload,
                        },
                        &mut bytes,
                    );
                }
            }
        }
        if let Some(picker) = st.picker.as_mut() {
            let unchoked = !peer.peer_choking;
            if unchoked || !peer.allowed_fast.is_empty() {
                let depth = if peer.snubbed { 1 } else { depth(peer) };
                let depth = depth.min(peer.ext.reqq.map_or(PIPELINE_MAX, |q| q.max(2) as usize));
                let room = depth.saturating_sub(peer.asked.len());
                let allowed = |p: u32| has(p) && (unchoked || peer.allowed_fast.contains(&p));
                // Only a copy of a block already asked needs this: built then.
                let asked_set = std::cell::OnceCell::new();
                let asked = |b: &BlockRef| {
                    asked_set
                        .get_or_init(|| peer.asked.iter().map(|(b, _)| *b).collect::<HashSet<_>>())
                        .contains(b)
                };
                let waited = |p: u32| st.waited.contains(&p);
                let asker = Asker {
                    ip: peer.addr.ip(),
                    has: &allowed,
                    asked: &asked,
                    waited: &waited,
                    others_by: &others_by,
                    speed: speed(peer),
                    urgent_within: if !racer(peer) {
                        0.0
                    } else {
                        best + URGENT_SLACK
                    },
                };
                let blocks = picker.pick(&st.order, st.urgent, &asker, room, now);
                if log::log_enabled!(log::Level::Debug) {
                    trace_requests(&st.traced, peer, &blocks, now);
                }
                let mut claimed = None;
                if peer.asked.is_empty() && !blocks.is_empty() {
                    peer.probe = Some(now);
                }
                for b in &blocks {
                    wire::encode(&Message::Request(*b), &mut bytes);
                    peer.asked.push_back((*b, now));
                    if claimed != Some(b.piece) {
                        self.demand.claim_p2p(b.piece);
                        claimed = Some(b.piece);
                    }
                }
            }
        }
        let upload = if peer.am_choking {
            None
        } else {
            peer.uploads.pop_front()
        };
        Ok(Output { bytes, upload })
    }

    /// Rebuilds the wanted order from the demand, if it changed; requests
    /// for pieces no longer wanted (a seek moved away, another tier fetched
    /// them) are cancelled, so the peers' pipelines carry only what is.
    fn refresh_order(&self, st: &mut State) {
        if !st.dirty {
            return;
        }
        st.dirty = false;
        let Some(meta) = st.meta.clone() else {
            st.order.clear();
            return;
        };
        let ih = meta.info_hash;
        // A complete torrent wants nothing: no walk over its pieces.
        if self
            .store
            .verified(&ih)
            .is_some_and(|(n, _)| n >= meta.piece_count())
        {
            st.order.clear();
            st.urgent = 0;
            self.cancel_unwanted(st);
            return;
        }
        let config = self.shared.config();
        let view = self.demand.view();
        let file = view.file.or_else(|| {
            crate::demand::default_file(&meta).map(|i| crate::demand::file_pieces(&meta, i))
        });
        let playhead = view.playhead.map(|o| (o / meta.piece_length) as u32);
        let file_bytes: u64 = file
            .clone()
            .map_or(0, |f| f.map(|p| meta.piece_size(p)).sum());
        let quota = config.cache_max_disk_bytes();
        // Seconds of playback at the rate the swarm delivers now, bounded by the quota.
        let rate: f64 = st.peers.values().map(|p| p.rate_in).sum();
        let readahead_bytes = ((rate * READAHEAD_SECS) as u64)
            .max(config.readahead_bytes())
            .min(quota / 4);
        // The time-critical pieces are the readahead's first ones, so that
        // they lead the order (the picker takes the urgent ones as a prefix).
        let critical = CRITICAL_BYTES.div_ceil(meta.piece_length).max(2) as u32;
        let readahead = (readahead_bytes.div_ceil(meta.piece_length) as u32).max(critical);
        // Nothing is wanted until a reader shows up; a seeding box just seeds.
        let active = !view.waiting.is_empty() || view.playhead.is_some();
        let want = Want {
            waiting: view.waiting.clone(),
            playhead,
            readahead,
            file: if active { file.clone() } else { None },
            background: active && view.background && file_bytes <= quota / 10 * 9,
        };
        // One copy of the store's bits, not a lock and a map lookup per piece of the file.
        let have = self.store.verified_bitfield(&ih);
        let http = &view.http_claimed;
        let waiting: HashSet<u32> = view.waiting.iter().copied().collect();
        st.order = picker::wanted(&want, |p| {
            !have.as_ref().is_some_and(|h| h.get(p))
                && (http.is_empty() || !http.contains(&p) || waiting.contains(&p))
        });
        st.traced.retain(|p, _| waiting.contains(p));
        for &p in &waiting {
            if st.traced.len() < super::MAX_TRACED && !st.traced.contains_key(&p) {
                st.traced.insert(p, Instant::now());
                log::debug!("[P2P] {ih}: a reader waits on piece {p}");
            }
        }
        st.waited = waiting;
        // Time-critical: what readers wait on, and the first pieces at the
        // playhead; `wanted` puts them first, in that order.
        let at_head = match (active, playhead, file) {
            (true, Some(head), Some(file)) => {
                head.max(file.start)..head.saturating_add(critical).min(file.end)
            }
            _ => 0..0,
        };
        st.urgent = st
            .order
            .iter()
            .take_while(|p| st.waited.contains(p) || at_head.contains(p))
            .count();
        self.cancel_unwanted(st);
    }

    /// Cancels the requests for pieces not in the order, and drops the
    /// buffers of pieces nobody works on and nobody wants any more.
    fn cancel_unwanted(&self, st: &mut State) {
        let Some(picker) = st.picker.as_mut() else {
            return;
        };
        // A bit per wanted piece: a hash per piece of the order cost more.
        let mut bits = Vec::new();
        for &p in &st.order {
            set_bit(&mut bits, p);
        }
        let wanted = |p: u32| get_bit(&bits, p);
        for peer in st.peers.values_mut() {
            let mut kept = std::collections::VecDeque::with_capacity(peer.asked.len());
            for (b, at) in std::mem::take(&mut peer.asked) {
                if wanted(b.piece) {
                    kept.push_back((b, at));
                } else {
                    picker.give_back(&b);
                    peer.cancel(b);
                }
            }
            peer.asked = kept;
        }
        for p in picker.idle() {
            if !wanted(p) {
                picker.drop_piece(p);
                self.demand.release_p2p(p);
            }
        }
    }

    /// Gives back the claims of pieces no peer is fetching now (their peers
    /// left or choked us), so that HTTP may take them; a partial buffer stays
    /// in case a peer comes back first.
    pub(super) fn release_claims(&self) {
        let working: HashSet<u32> = self
            .state()
            .picker
            .as_ref()
            .map(|p| {
                let idle: HashSet<u32> = p.idle().into_iter().collect();
                p.in_flight().filter(|x| !idle.contains(x)).collect()
            })
            .unwrap_or_default();
        self.demand.retain_p2p(|p| working.contains(&p));
    }

    /// A block the peer asked for, read from the store; counted as uploaded.
    pub(in crate::p2p) async fn read_block(
        &self,
        key: PeerKey,
        block: BlockRef,
    ) -> Result<Vec<u8>, Hangup> {
        let meta = self.meta().ok_or(Hangup::Unwanted("no metadata"))?;
        let offset = block.piece as u64 * meta.piece_length + block.offset as u64;
        let data = self
            .store
            .read(&self.info_hash, offset, vec![0; block.length as usize])
            .await
            .map_err(|e| {
                Hangup::Unwanted(if matches!(e, StoreError::NotVerified { .. }) {
                    "asked for a piece we no longer have"
                } else {
                    "cannot read the cache"
                })
            })?;
        self.shared.throttle_upload(data.len() as u64).await;
        let mut st = self.state();
        st.uploaded += data.len() as u64;
        if let Some(p) = st.peers.get_mut(&key) {
            p.sent += data.len() as u64;
        }
        self.shared.count_upload(data.len() as u64);
        Ok(data)
    }

    /// Unchokes the interested peers that give us most (or, seeding, take
    /// most), plus one optimistic unchoke that rotates.
    pub(super) fn choke(&self, st: &mut State, now: Instant) {
        st.last_choke = Some(now);
        let mut ranked: Vec<(PeerKey, f64)> = st
            .peers
            .iter()
            .filter(|(_, p)| p.peer_interested)
            .map(|(k, p)| (*k, p.rate_in.max(p.rate_out)))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut unchoke: HashSet<PeerKey> =
            ranked.iter().take(UPLOAD_SLOTS).map(|(k, _)| *k).collect();
        let rotate = st
            .last_optimistic
            .is_none_or(|t| now.duration_since(t) >= OPTIMISTIC_EVERY);
        let current = st.peers.iter().find(|(_, p)| p.optimistic).map(|(k, _)| *k);
        let rest: Vec<PeerKey> = ranked.iter().skip(UPLOAD_SLOTS).map(|(k, _)| *k).collect();
        let optimistic = match current {
            Some(k) if !rotate && rest.contains(&k) => Some(k),
            _ if rest.is_empty() => None,
            _ => {
                st.last_optimistic = Some(now);
                Some(rest[fastrand::usize(..rest.len())])
            }
        };
        unchoke.extend(optimistic);
        for (k, p) in st.peers.iter_mut() {
            p.optimistic = Some(*k) == optimistic;
            let choke = !unchoke.contains(k);
            if choke != p.am_choking {
                p.am_choking = choke;
                p.link.send(if choke {
                    &Message::Choke
                } else {
                    &Message::Unchoke
                });
                if choke {
                    for b in p.uploads.drain(..) {
                        if p.fast {
                            p.link.send(&Message::Reject(b));
                        }
                    }
                }
            }
        }
    }

    /// Tells each peer that speaks ut_pex about the others, once a minute.
    pub(super) fn pex(&self, st: &mut State, now: Instant) {
        let listening: HashSet<SocketAddr> = st
            .peers
            .values()
            .map(|p| match p.ext.listen_port {
                Some(port) => SocketAddr::new(p.addr.ip(), port),
                None => p.addr,
            })
            .collect();
        for p in st.peers.values_mut() {
            let Some(id) = p.ext.ut_pex else { continue };
            if p.pex_at.is_some_and(|t| now.duration_since(t) < PEX_EVERY) {
                continue;
            }
            p.pex_at = Some(now);
            let others: HashSet<SocketAddr> = listening
                .iter()
                .filter(|a| a.ip() != p.addr.ip() || **a != p.addr)
                .copied()
                .collect();
            let pex = Pex {
                added: others.difference(&p.pex_told).take(50).copied().collect(),
                dropped: p.pex_told.difference(&others).take(50).copied().collect(),
            };
            if pex.added.is_empty() && pex.dropped.is_empty() {
                continue;
            }
            p.pex_told = others;
            let payload = pex.encode();
            p.link.send(&Message::Extended {
                id,
                payload: &payload,
            });
        }
    }
}
