//! What a swarm sends its peers: interest, requests from the picker in the
//! order of need, uploads read from the cache, choking, and PEX.
//!
//! Must never request a piece HTTP is fetching unless a reader waits on it,
//! and never upload to a peer it chokes.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Instant;

use super::{
    get_bit, Hangup, Output, State, Swarm, BLOCK_LEN, OPTIMISTIC_EVERY, PEX_EVERY, PIPELINE_MAX,
    PIPELINE_START, UPLOAD_SLOTS,
};
use crate::p2p::picker::{self, Asker, PeerKey, Want};
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
        let best = st
            .peers
            .values()
            .filter(|p| !p.peer_choking)
            .map(|p| p.rate_in)
            .fold(0.0, f64::max);
        let peer = st.peers.get_mut(&key).ok_or(Hangup::Unwanted("gone"))?;
        let mut bytes = peer.link.take();
        // Interest follows what it has that we want.
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
                let depth = if peer.snubbed {
                    1
                } else {
                    ((peer.rate_in / BLOCK_LEN as f64) as usize).clamp(PIPELINE_START, PIPELINE_MAX)
                };
                let depth = depth.min(peer.ext.reqq.map_or(PIPELINE_MAX, |q| q.max(2) as usize));
                let room = depth.saturating_sub(peer.asked.len());
                let allowed = |p: u32| has(p) && (unchoked || peer.allowed_fast.contains(&p));
                let asked_set: HashSet<BlockRef> = peer.asked.iter().map(|(b, _)| *b).collect();
                let asked = |b: &BlockRef| asked_set.contains(b);
                let asker = Asker {
                    has: &allowed,
                    asked: &asked,
                    fast: best == 0.0 || peer.rate_in >= best / 4.0,
                };
                let urgent = |p: u32| st.urgent.contains(&p);
                let blocks = picker.pick(&st.order, &urgent, &asker, room, now);
                let mut claimed = None;
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

    /// Rebuilds the wanted order from the demand, if it changed.
    fn refresh_order(&self, st: &mut State) {
        if !st.dirty {
            return;
        }
        st.dirty = false;
        let Some(meta) = st.meta.clone() else {
            st.order.clear();
            return;
        };
        let config = self.shared.config();
        let view = self.demand.view();
        let file = view.file.or_else(|| {
            crate::demand::default_file(&meta).map(|i| crate::demand::file_pieces(&meta, i))
        });
        let playhead = view.playhead.map(|o| (o / meta.piece_length) as u32);
        let readahead = config.readahead_bytes().div_ceil(meta.piece_length) as u32;
        let file_bytes: u64 = file
            .clone()
            .map_or(0, |f| f.map(|p| meta.piece_size(p)).sum());
        let quota = config.cache_max_disk_bytes();
        // Nothing is wanted until a reader shows up; a seeding box just seeds.
        let active = !view.waiting.is_empty() || view.playhead.is_some();
        let want = Want {
            waiting: view.waiting.clone(),
            playhead,
            readahead,
            file: if active { file } else { None },
            background: active && view.background && file_bytes <= quota / 10 * 9,
        };
        let store = &self.store;
        let ih = meta.info_hash;
        let http = &view.http_claimed;
        let waiting: HashSet<u32> = view.waiting.iter().copied().collect();
        st.order = picker::wanted(&want, |p| {
            !store.has_piece(&ih, p) && (!http.contains(&p) || waiting.contains(&p))
        });
        st.urgent = waiting;
        // Buffers of pieces nobody works on and nobody wants any more go.
        if let Some(picker) = st.picker.as_mut() {
            let wanted: HashSet<u32> = st.order.iter().copied().collect();
            for p in picker.idle() {
                if !wanted.contains(&p) {
                    picker.drop_piece(p);
                    self.demand.release_p2p(p);
                }
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
