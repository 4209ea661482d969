//! A swarm's connections: dialing queued addresses, accepting incoming
//! peers, a handshaken peer joining (our first messages: the extension
//! handshake and what we have), and a peer leaving (its requests given back,
//! its address free to be dialled again).
//!
//! Must never hold the swarm's lock across an `.await`, and never keep a
//! banned or self-connected peer.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::known::Known;
use super::unanswered::Unanswered;
use super::{
    peer, wire, ExtHandshake, Hangup, Link, Message, Peer, PeerKey, State, Swarm,
    MAX_DIAL_FAILURES, MAX_QUEUED_UPLOADS,
};

impl Swarm {
    /// Dials queued addresses while there is room.
    pub(super) fn dial(self: &Arc<Swarm>) {
        let max = self.shared.config().max_peers as usize;
        let now = Instant::now();
        loop {
            let addr = {
                let mut st = self.state();
                if st.peers.len() + st.dialing >= max || !self.shared.has_room() {
                    return;
                }
                let Some(addr) = st.queue.pop_front() else {
                    return;
                };
                let Some(k) = st.known.get(&addr) else {
                    continue;
                };
                if k.connected || st.blame.is_banned(addr.ip()) {
                    continue;
                }
                if k.retry_at.is_some_and(|t| t > now) {
                    // Not yet: back of the queue, and stop scanning for now.
                    st.queue.push_back(addr);
                    return;
                }
                st.known.get_mut(&addr).expect("present").connected = true;
                st.dialing += 1;
                st.connection_tries += 1;
                addr
            };
            let swarm = self.clone();
            let key = self.reserve_key();
            let task = smol::spawn(async move {
                let wire: Arc<peer::Swarm> = swarm.clone();
                let outcome = peer::dial(&wire, &swarm.shared, addr, key).await;
                swarm.state().dialing -= 1;
                if let Err(e) = outcome {
                    log::debug!("[P2P] {addr}: connection failed: {e}");
                    swarm.dial_failed(addr);
                }
                swarm.tasks.lock().unwrap().remove(&key);
                swarm.changed.notify(usize::MAX);
            });
            self.tasks.lock().unwrap().insert(key, task);
        }
    }

    pub(super) fn reserve_key(&self) -> PeerKey {
        let mut st = self.state();
        st.next_key += 1;
        st.next_key
    }

    pub(super) fn dial_failed(&self, addr: SocketAddr) {
        let mut st = self.state();
        let Some(k) = st.known.get_mut(&addr) else {
            return;
        };
        k.connected = false;
        k.failures += 1;
        // A peer we had a connection with went away: it may well be back in
        // seconds (a restart, a flaky link: the WAN rig's leaving seeder is
        // away 6 s), so it is tried every 2 s for a while (a refused dial
        // costs a round trip), rather than after 20 s and 40 s as a
        // never-seen address is.
        let (limit, wait) = if k.drops > 0 {
            (MAX_DIAL_FAILURES * 3, Duration::from_secs(2))
        } else {
            (MAX_DIAL_FAILURES, Duration::from_secs(10 << k.failures))
        };
        if k.failures >= limit {
            st.known.remove(&addr);
        } else {
            k.retry_at = Some(Instant::now() + wait);
            st.queue.push_back(addr);
        }
    }

    /// An incoming connection whose handshake named this torrent.
    pub(in crate::p2p) fn accept(self: &Arc<Swarm>, conn: peer::Conn, theirs: wire::Handshake) {
        let addr = conn.addr;
        {
            let st = self.state();
            if st.blame.is_banned(addr.ip())
                || st.peers.len() >= self.shared.config().max_peers as usize
            {
                return;
            }
        }
        let swarm = self.clone();
        let key = self.reserve_key();
        let task = smol::spawn(async move {
            let wire: Arc<peer::Swarm> = swarm.clone();
            if let Err(e) = peer::accepted(&wire, conn, theirs, key).await {
                log::debug!("[P2P] incoming {addr}: {e}");
            }
            swarm.tasks.lock().unwrap().remove(&key);
            swarm.changed.notify(usize::MAX);
        });
        self.tasks.lock().unwrap().insert(key, task);
    }

    /// A handshake completed: the peer joins. Returns the first messages to send.
    pub(in crate::p2p) fn join(
        &self,
        key: PeerKey,
        addr: SocketAddr,
        theirs: &wire::Handshake,
        link: Arc<Link>,
        incoming: bool,
    ) -> Result<Vec<u8>, Hangup> {
        if theirs.peer_id == self.shared.peer_id() {
            self.state().selves.insert(addr);
            return Err(Hangup::Unwanted("connected to ourselves"));
        }
        let mut st = self.state();
        if st.blame.is_banned(addr.ip()) {
            return Err(Hangup::Banned);
        }
        if st.peers.values().any(|p| p.addr == addr) {
            return Err(Hangup::Unwanted("already connected"));
        }
        if incoming {
            st.known.entry(addr).or_insert(Known {
                failures: 0,
                drops: 0,
                retry_at: None,
                connected: true,
            });
        } else if let Some(k) = st.known.get_mut(&addr) {
            k.failures = 0;
        }
        let fast = theirs.supports_fast();
        let mut out = Vec::new();
        if theirs.supports_extensions() {
            let ours = ExtHandshake {
                ut_metadata: Some(wire::UT_METADATA_ID),
                ut_pex: Some(wire::UT_PEX_ID),
                metadata_size: st.meta.as_ref().map(|m| m.info_bytes.len() as u32),
                client: Some(format!("streme {}", env!("CARGO_PKG_VERSION"))),
                listen_port: Some(self.shared.port()),
                reqq: Some(MAX_QUEUED_UPLOADS as u32),
            };
            let payload = ours.encode();
            wire::encode(
                &Message::Extended {
                    id: 0,
                    payload: &payload,
                },
                &mut out,
            );
        }
        self.encode_have(&st, fast, &mut out);
        if theirs.supports_dht() {
            if let Some(port) = self.shared.dht_port() {
                wire::encode(&Message::Port(port), &mut out);
            }
        }
        st.peers.insert(
            key,
            Peer {
                addr,
                link,
                fast,
                ext: ExtHandshake::default(),
                bits: Vec::new(),
                have_all: false,
                peer_choking: true,
                peer_interested: false,
                am_choking: true,
                am_interested: false,
                asked: VecDeque::new(),
                probe: None,
                unanswered: Unanswered::default(),
                rtt: None,
                first_block: None,
                uploads: VecDeque::new(),
                allowed_fast: HashSet::new(),
                got: 0,
                sent: 0,
                rate_in: 0.0,
                rate_out: 0.0,
                rate_peak: 0.0,
                ramping: true,
                got_at_tick: 0,
                sent_at_tick: 0,
                last_block: Instant::now(),
                snubbed: false,
                pex_told: HashSet::new(),
                pex_at: None,
                optimistic: false,
                listen: None,
            },
        );
        log::debug!(
            "[P2P] {}: connected to {addr} ({} peers)",
            self.info_hash,
            st.peers.len()
        );
        Ok(out)
    }

    /// Our pieces, in the shortest form the peer understands.
    pub(super) fn encode_have(&self, st: &State, fast: bool, out: &mut Vec<u8>) {
        let Some(meta) = &st.meta else {
            if fast {
                wire::encode(&Message::HaveNone, out);
            }
            return;
        };
        let count = meta.piece_count();
        let mut bits = vec![0u8; count.div_ceil(8) as usize];
        let mut have = 0;
        for p in 0..count {
            if self.store.has_piece(&meta.info_hash, p) {
                bits[p as usize / 8] |= 0x80 >> (p % 8);
                have += 1;
            }
        }
        match (fast, have) {
            (true, 0) => wire::encode(&Message::HaveNone, out),
            (true, n) if n == count => wire::encode(&Message::HaveAll, out),
            (false, 0) => {}
            _ => wire::encode(&Message::Bitfield(&bits), out),
        }
    }

    /// A peer's connection ended: its requests go back to the pool.
    pub(in crate::p2p) fn leave(&self, key: PeerKey, why: &Hangup) {
        let mut st = self.state();
        let Some(peer) = st.peers.remove(&key) else {
            return;
        };
        log::debug!("[P2P] {}: {} left: {why}", self.info_hash, peer.addr);
        if let Some(picker) = st.picker.as_mut() {
            for (block, _) in &peer.asked {
                picker.give_back(block);
            }
        }
        if let Some(a) = st.metadata.as_mut() {
            a.give_back(key);
        }
        if let Some(k) = st.known.get_mut(&peer.addr) {
            k.connected = false;
            // Reconnect later, unless it was a protocol violation. Soon at first:
            // two clients that dial each other at once may both drop the pair
            // (aria2 does), and a stream is waiting.
            if !matches!(
                why,
                Hangup::Protocol(_) | Hangup::Banned | Hangup::Unwanted(_)
            ) {
                k.retry_at = Some(Instant::now() + Duration::from_secs(2 << k.drops.min(5)));
                k.drops += 1;
                st.queue.push_back(peer.addr);
            }
        }
        if matches!(why, Hangup::Protocol(_)) {
            st.known.remove(&peer.addr);
        }
        // Its listen address was held as connected while it was: free it, so
        // it may be dialed later (or evicted), never kept for good.
        if let Some(listen) = peer.listen {
            if let Some(k) = st.known.get_mut(&listen) {
                k.connected = false;
                k.retry_at = Some(Instant::now() + Duration::from_secs(2));
                st.queue.push_back(listen);
            }
        }
        st.dirty = true;
        drop(st);
        self.release_claims();
        self.changed.notify(usize::MAX);
        self.wake_all();
    }
}
