//! What peers send a swarm: every message of a connection, the metadata
//! exchange (BEP 9), and the complete pieces, verified and written by the
//! store, with the blame for a piece that fails its hash.
//!
//! Must never block: the store's work runs in tasks of its own, and the
//! swarm's lock is never held across an `.await`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use super::{block_fits, set_bit, Hangup, Known, Origin, State, Swarm, MAX_QUEUED_UPLOADS};
use crate::format::metainfo::Metainfo;
use crate::p2p::blame::{self, Failure, Senders};
use crate::p2p::metadata::{self, Assembly};
use crate::p2p::picker::{PeerKey, Received};
use crate::p2p::wire::{self, BlockRef, ExtHandshake, Message, MetadataMessage, Pex};
use crate::store::StoreError;

impl Swarm {
    /// One message from a peer. An error ends the connection.
    pub(in crate::p2p) fn on_message(
        self: &Arc<Swarm>,
        key: PeerKey,
        msg: Message<'_>,
    ) -> Result<(), Hangup> {
        let mut st = self.state();
        let st = &mut *st;
        let count = st.meta.as_ref().map(|m| m.piece_count());
        let peer = st.peers.get_mut(&key).ok_or(Hangup::Unwanted("gone"))?;
        let check_piece = |p: u32| -> Result<(), Hangup> {
            match count {
                Some(n) if p >= n => Err(Hangup::Protocol(format!("piece {p} of {n}"))),
                _ => Ok(()),
            }
        };
        match msg {
            Message::KeepAlive | Message::Unknown { .. } | Message::Suggest(_) => {}
            Message::Choke => {
                peer.peer_choking = true;
                let asked: Vec<_> = peer
                    .asked
                    .iter()
                    .filter(|(b, _)| !peer.allowed_fast.contains(&b.piece))
                    .map(|(b, _)| *b)
                    .collect();
                peer.asked
                    .retain(|(b, _)| peer.allowed_fast.contains(&b.piece));
                if let Some(picker) = st.picker.as_mut() {
                    asked.iter().for_each(|b| picker.give_back(b));
                }
                asked.into_iter().for_each(|b| peer.unanswered.note(b));
            }
            Message::Unchoke => {
                peer.peer_choking = false;
                peer.last_block = Instant::now();
                peer.link.wake();
            }
            Message::Interested => {
                peer.peer_interested = true;
                st.last_choke = None;
                self.changed.notify(1);
            }
            Message::NotInterested => peer.peer_interested = false,
            Message::Have(p) => {
                check_piece(p)?;
                set_bit(&mut peer.bits, p);
                peer.link.wake();
            }
            Message::Bitfield(bits) => {
                if let Some(n) = count {
                    if !wire::bitfield_fits(bits, n) {
                        return Err(Hangup::Protocol(format!(
                            "a bitfield of {} bytes for {n} pieces",
                            bits.len()
                        )));
                    }
                }
                peer.bits = bits.to_vec();
                peer.link.wake();
            }
            Message::HaveAll | Message::HaveNone if !peer.fast => {
                return Err(Hangup::Protocol(
                    "a fast-extension message without the fast bit".into(),
                ))
            }
            Message::HaveAll => {
                peer.have_all = true;
                peer.link.wake();
            }
            Message::HaveNone => peer.bits.clear(),
            Message::Request(block) => {
                let meta = st
                    .meta
                    .as_ref()
                    .ok_or(Hangup::Protocol("a request before we have metadata".into()))?;
                if !block_fits(meta, &block) {
                    return Err(Hangup::Protocol(format!(
                        "a request outside the torrent: {block:?}"
                    )));
                }
                let servable = !peer.am_choking
                    && peer.uploads.len() < MAX_QUEUED_UPLOADS
                    && self.store.has_piece(&meta.info_hash, block.piece);
                if servable {
                    peer.uploads.push_back(block);
                    peer.link.wake();
                } else if peer.fast {
                    peer.link.send(&Message::Reject(block));
                }
            }
            Message::Cancel(block) => peer.uploads.retain(|b| *b != block),
            Message::Piece {
                piece,
                offset,
                data,
            } => {
                let block = BlockRef {
                    piece,
                    offset,
                    length: data.len() as u32,
                };
                let stale = peer.unanswered.answers(&block);
                let Some(i) = peer.asked.iter().position(|(b, _)| *b == block) else {
                    // Not asked of this peer (cancelled, or a late copy): dropped.
                    return Ok(());
                };
                let (_, asked_at) = peer.asked.remove(i).expect("found");
                // A block asked again after a cancel, a reject or a choke may
                // be the answer to the first request: it times nothing.
                if peer.probe == Some(asked_at) && stale {
                    log::debug!(
                        "[P2P] {}: a block asked again after a cancel came {:.1} ms after the \
                         probe: not timed",
                        peer.addr,
                        asked_at.elapsed().as_secs_f64() * 1e3
                    );
                } else if peer.probe == Some(asked_at) {
                    let sample = asked_at.elapsed().as_secs_f64();
                    peer.rtt = Some(peer.rtt.map_or(sample, |r| 0.7 * r + 0.3 * sample));
                    peer.probe = None;
                }
                peer.got += data.len() as u64;
                peer.last_block = Instant::now();
                peer.first_block.get_or_insert(peer.last_block);
                peer.snubbed = false;
                peer.link.wake();
                st.downloaded += data.len() as u64;
                self.shared.count_download(data.len() as u64);
                let Some(picker) = st.picker.as_mut() else {
                    return Ok(());
                };
                let received = picker.receive(peer.addr.ip(), piece, offset, data);
                if let Some(since) = st.traced.get(&piece) {
                    log::debug!(
                        "[P2P] piece {piece}: block {} from {} at +{} ms{}",
                        offset / wire::BLOCK_LEN,
                        peer.addr,
                        since.elapsed().as_millis(),
                        if matches!(received, Received::Complete { .. }) {
                            ", complete"
                        } else {
                            ""
                        }
                    );
                }
                // Whoever else was asked for this block need not send it.
                for (k, other) in st.peers.iter_mut() {
                    if *k != key {
                        if let Some(i) = other.asked.iter().position(|(b, _)| *b == block) {
                            other.asked.remove(i);
                            other.cancel(block);
                        }
                    }
                }
                if let Received::Complete { data, senders } = received {
                    let swarm = self.clone();
                    smol::spawn(async move { swarm.store_piece(piece, data, senders).await })
                        .detach();
                }
            }
            Message::Port(port) => {
                let addr = SocketAddr::new(peer.addr.ip(), port);
                self.shared.dht_node(addr);
            }
            Message::Reject(block) => {
                if !peer.fast {
                    return Err(Hangup::Protocol("reject without the fast extension".into()));
                }
                if let Some(i) = peer.asked.iter().position(|(b, _)| *b == block) {
                    peer.asked.remove(i);
                    peer.unanswered.note(block);
                    if let Some(picker) = st.picker.as_mut() {
                        picker.give_back(&block);
                    }
                }
            }
            Message::AllowedFast(p) => {
                check_piece(p)?;
                if peer.allowed_fast.len() < 64 {
                    peer.allowed_fast.insert(p);
                }
            }
            Message::Extended { id: 0, payload } => {
                let ext = ExtHandshake::parse(payload)?;
                if let (Some(port), IpAddr::V4(_) | IpAddr::V6(_)) =
                    (ext.listen_port, peer.addr.ip())
                {
                    let listen = SocketAddr::new(peer.addr.ip(), port);
                    if listen != peer.addr
                        && peer.listen.is_none()
                        && !st.known.contains_key(&listen)
                        && super::make_room(&mut st.known, &mut st.queue)
                    {
                        // Held as connected while this peer is (so it is not
                        // dialed twice), and freed when it leaves.
                        peer.listen = Some(listen);
                        // The port it accepts connections on: worth telling others over PEX.
                        st.known.insert(
                            listen,
                            Known {
                                failures: 0,
                                drops: 0,
                                retry_at: None,
                                connected: true,
                            },
                        );
                    }
                }
                if st.meta.is_none() && st.metadata.is_none() {
                    if let Some(size) = ext.metadata_size {
                        match Assembly::new(size) {
                            Ok(a) => st.metadata = Some(a),
                            Err(e) => log::debug!("[P2P] {}: {e}", peer.addr),
                        }
                    }
                }
                peer.ext = ext;
                peer.link.wake();
            }
            Message::Extended {
                id: wire::UT_METADATA_ID,
                payload,
            } => {
                self.on_metadata(st, key, MetadataMessage::parse(payload)?)?;
            }
            Message::Extended {
                id: wire::UT_PEX_ID,
                payload,
            } => {
                let pex = Pex::parse(payload)?;
                let added = pex.added;
                let swarm = self.clone();
                // add_peers takes the lock: after this one is released.
                smol::spawn(async move { swarm.add_peers(added, Origin::Pex) }).detach();
            }
            Message::Extended { .. } => {}
        }
        Ok(())
    }

    fn on_metadata(
        self: &Arc<Swarm>,
        st: &mut State,
        key: PeerKey,
        msg: MetadataMessage<'_>,
    ) -> Result<(), Hangup> {
        let peer = st.peers.get_mut(&key).ok_or(Hangup::Unwanted("gone"))?;
        let Some(their_id) = peer.ext.ut_metadata else {
            return Err(Hangup::Protocol(
                "ut_metadata before an extended handshake".into(),
            ));
        };
        match msg {
            MetadataMessage::Request { piece } => {
                let reply = match &st.meta {
                    Some(meta) => {
                        let start = piece as usize * metadata::PIECE as usize;
                        match meta.info_bytes.get(start..) {
                            Some(rest) if !rest.is_empty() => MetadataMessage::Data {
                                piece,
                                total_size: meta.info_bytes.len() as u32,
                                data: &rest[..rest.len().min(metadata::PIECE as usize)],
                            },
                            _ => MetadataMessage::Reject { piece },
                        }
                    }
                    None => MetadataMessage::Reject { piece },
                };
                let payload = reply.encode();
                peer.link.send(&Message::Extended {
                    id: their_id,
                    payload: &payload,
                });
            }
            MetadataMessage::Reject { .. } => {
                if let Some(a) = st.metadata.as_mut() {
                    a.give_back(key);
                }
                // Ask this peer no more.
                peer.ext.ut_metadata = None;
            }
            MetadataMessage::Data {
                piece,
                total_size,
                data,
            } => {
                let Some(a) = st.metadata.as_mut() else {
                    return Ok(());
                };
                if total_size != a.size() {
                    return Err(Hangup::Protocol(format!(
                        "metadata total_size {total_size}, announced {}",
                        a.size()
                    )));
                }
                let complete = a
                    .receive(key, piece, data)
                    .map_err(|e| Hangup::Protocol(e.to_string()))?;
                peer.link.wake();
                if complete {
                    let a = st.metadata.take().expect("present");
                    // Hashing up to 8 MiB runs on the blocking pool, not
                    // under this lock on the executor.
                    let swarm = self.clone();
                    smol::spawn(async move { swarm.adopt_metadata(a).await }).detach();
                }
            }
        }
        Ok(())
    }

    /// A complete metadata download: hashed and parsed on the blocking pool;
    /// if it is the torrent's, it goes to the owner, which stores it and
    /// answers with [`Swarm::set_meta`]; if not, its senders are banned.
    async fn adopt_metadata(self: Arc<Swarm>, assembly: Assembly) {
        let (trackers, web_seeds) = match &self.magnet {
            Some(m) => (vec![m.trackers.clone()], m.web_seeds.clone()),
            None => (Vec::new(), Vec::new()),
        };
        let contributors = assembly.contributors.clone();
        let ih = self.info_hash;
        let checked = smol::unblock(move || {
            let info = assembly.finish(&ih)?;
            Ok(Metainfo::from_info_bytes(&info, trackers, web_seeds))
        })
        .await;
        match checked {
            Ok(Ok(meta)) => {
                // Full only if an earlier copy is still being stored: that one will do.
                let _ = self.found.try_send(meta);
            }
            Ok(Err(e)) => log::warn!(
                "[P2P] {}: the peers' metadata hashes right but is not a valid torrent: {e}",
                self.info_hash
            ),
            Err(e) => {
                let e: metadata::MetadataError = e;
                log::warn!("[P2P] {}: {e}; asking other peers", self.info_hash);
                let mut st = self.state();
                let mut banned = Vec::new();
                for k in contributors {
                    if let Some(p) = st.peers.get(&k) {
                        banned.push(p.addr.ip());
                        p.link.close();
                    }
                }
                for ip in banned {
                    st.blame.ban(ip);
                }
            }
        }
    }

    /// A complete piece: verified and written by the store, off the loop.
    /// A hash failure is traced to whoever sent the wrong blocks (see `blame`):
    /// a piece that failed before is judged by this copy if it passes.
    async fn store_piece(self: Arc<Swarm>, piece: u32, data: Vec<u8>, senders: Senders) {
        let len = data.len() as u64;
        let wait = self.shared.config().piece_wait;
        // What each earlier sender of a failed copy would have sent, were it honest.
        let earlier = self.state().blame.suspected(piece).cloned();
        let (data, judge) = match earlier {
            Some(earlier) => {
                smol::unblock(move || {
                    let good = blame::digests(&data, &earlier, wire::BLOCK_LEN as usize);
                    (data, Some(good))
                })
                .await
            }
            None => (data, None),
        };
        let (result, failed) = self
            .store
            .write_piece_keeping_failed(&self.info_hash, piece, data, wait)
            .await;
        self.demand.release_p2p(piece);
        // The failed copy hashed per sender, before the piece may be asked again.
        let shared = match (&result, failed) {
            (Err(StoreError::HashMismatch { .. }), Some(bad)) if senders.peers.len() > 1 => {
                let senders = senders.clone();
                Some(
                    smol::unblock(move || {
                        let d = blame::digests(&bad, &senders, wire::BLOCK_LEN as usize);
                        (senders, d)
                    })
                    .await,
                )
            }
            _ => None,
        };
        let mut guard = self.state();
        let st = &mut *guard;
        match result {
            Ok(()) => {
                self.demand.mark_p2p(piece, len);
                st.delivered += 1;
                st.dirty = true;
                for p in st.peers.values() {
                    p.link.send(&Message::Have(piece));
                }
                if let Some(good) = judge {
                    for ip in st.blame.piece_passed(piece, &good) {
                        self.banned(st, ip);
                    }
                }
            }
            Err(StoreError::HashMismatch { .. }) => {
                log::warn!(
                    "[P2P] {}: piece {piece} failed its SHA-1 check ({} senders)",
                    self.info_hash,
                    senders.peers.len()
                );
                match st.blame.piece_failed(&senders) {
                    Failure::Explained => {}
                    Failure::Liar(ip) => self.banned(st, ip),
                    Failure::Shared => {
                        if let Some((senders, digests)) = shared {
                            st.blame.suspect(piece, senders, digests);
                        }
                        if let Some(picker) = st.picker.as_mut() {
                            picker.fetch_alone(piece);
                        }
                    }
                }
                st.dirty = true;
            }
            Err(StoreError::QuotaExceeded { needed, free }) => {
                log::info!("[P2P] {}: cache full ({needed} bytes needed, {free} free); piece {piece} dropped", self.info_hash);
                self.demand.stop_background();
            }
            Err(e) => log::warn!("[P2P] {}: cannot store piece {piece}: {e}", self.info_hash),
        }
        if let Some(picker) = st.picker.as_mut() {
            picker.verified(piece);
        }
        drop(guard);
        self.wake_all();
    }

    /// `ip` was banned for corrupt data: its connections close, and pieces in
    /// flight that hold its blocks start over.
    fn banned(&self, st: &mut State, ip: IpAddr) {
        log::warn!(
            "[P2P] {}: banning {ip}: it sent corrupt data",
            self.info_hash
        );
        if let Some(picker) = st.picker.as_mut() {
            picker.drop_from(ip);
        }
        for p in st.peers.values().filter(|p| p.addr.ip() == ip) {
            p.link.close();
        }
    }
}
