//! The swarm's tick, once a second and on every change: the peers' rates
//! (the picker's expected arrival times and pipeline depths come from them),
//! snubs, choking, PEX, and the numbers for the status APIs.
//!
//! Must never block or hold the swarm's lock across an `.await` (it has none).

use std::time::Instant;

use super::{Swarm, BLOCK_LEN, CHOKE_EVERY, PEAK_DECAY, RATE_EVERY, SNUB_AFTER};

impl Swarm {
    /// Once a second: rates, snubs, choking, PEX, and the numbers.
    pub(super) fn tick(&self) {
        let now = Instant::now();
        self.release_claims();
        let mut st = self.state();
        let st = &mut *st;
        // Evictions and the other tier's progress change what is missing.
        st.dirty = true;
        let dt = now.duration_since(st.last_rates).as_secs_f64();
        let rates = dt >= RATE_EVERY;
        if rates {
            st.last_rates = now;
        }
        for peer in st.peers.values_mut() {
            if rates {
                // A peer's first sample is taken whole: starting from zero
                // would halve its rate (and its pipeline) for seconds.
                let got = (peer.got - peer.got_at_tick) as f64 / dt;
                // Whether it brought about all its pipeline let it (the
                // depth and the round trip of this interval): still ramping.
                if let (Some(rtt), false, true) = (peer.rtt, peer.peer_choking, got > 0.0) {
                    let allowed = super::outgoing::depth(peer) as f64 * BLOCK_LEN as f64 / rtt;
                    peer.ramping = got >= super::outgoing::RAMP_FILL * allowed;
                }
                let sent = (peer.sent - peer.sent_at_tick) as f64 / dt;
                peer.rate_in = if peer.got_at_tick == 0 {
                    got
                } else if peer.peer_choking && got == 0.0 {
                    // Choked all along: it says nothing of how fast the peer
                    // sends once it unchokes, which is what the rate is for.
                    peer.rate_in
                } else if got > peer.rate_in {
                    // Bytes delivered are proof: a rise is taken at once (a
                    // ramping pipeline's rate lagged seconds behind otherwise).
                    got
                } else {
                    0.6 * peer.rate_in + 0.4 * got
                };
                peer.rate_peak = peer.rate_in.max(PEAK_DECAY * peer.rate_peak);
                peer.rate_out = 0.6 * peer.rate_out + 0.4 * sent;
                peer.got_at_tick = peer.got;
                peer.sent_at_tick = peer.sent;
                log::trace!(
                    "[P2P] {}: {} in {:.0} B/s, rtt {:?}, {} asked{}",
                    self.info_hash,
                    peer.addr,
                    peer.rate_in,
                    peer.rtt,
                    peer.asked.len(),
                    if peer.peer_choking {
                        ", choking us"
                    } else {
                        ""
                    }
                );
            }
            if !peer.peer_choking
                && !peer.asked.is_empty()
                && now.duration_since(peer.last_block) > SNUB_AFTER
                && !peer.snubbed
            {
                log::debug!("[P2P] {}: {} is snubbing us", self.info_hash, peer.addr);
                peer.snubbed = true;
                if let Some(picker) = st.picker.as_mut() {
                    for (b, _) in std::mem::take(&mut peer.asked) {
                        picker.give_back(&b);
                        peer.cancel(b);
                    }
                }
            }
        }
        if st
            .last_choke
            .is_none_or(|t| now.duration_since(t) >= CHOKE_EVERY)
        {
            self.choke(st, now);
        }
        self.pex(st, now);
        let unchoked = st.peers.values().filter(|p| !p.peer_choking).count() as u32;
        let stats = SwarmStats {
            peers: st.peers.len() as u32,
            unchoked,
            queued: st.queue.len() as u32,
            unique: st.known.len() as u32,
            connection_tries: st.connection_tries,
            peer_search_running: true,
            swarm_size: self
                .announcer
                .lock()
                .unwrap()
                .as_ref()
                .and_then(|a| a.swarm_size())
                .unwrap_or(st.known.len() as u32),
            download_speed: st.peers.values().map(|p| p.rate_in).sum(),
            upload_speed: st.peers.values().map(|p| p.rate_out).sum(),
            downloaded: st.downloaded,
            uploaded: st.uploaded,
        };
        *self.stats.lock().unwrap() = stats;
        for p in st.peers.values() {
            p.link.wake();
        }
    }
}

/// What the P2P tier knows about one torrent's swarm, for the status APIs.
/// All zero while the torrent has no swarm.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SwarmStats {
    /// Peers connected now.
    pub peers: u32,
    /// Connected peers that unchoke us.
    pub unchoked: u32,
    /// Addresses known and not connected, waiting for a slot.
    pub queued: u32,
    /// Distinct peer addresses learned from any source.
    pub unique: u32,
    /// Outgoing connection attempts so far.
    pub connection_tries: u32,
    /// Whether trackers, the DHT or LSD are still being asked for peers.
    pub peer_search_running: bool,
    /// The swarm's size as the trackers report it (seeders + leechers), or
    /// the addresses known when no tracker says.
    pub swarm_size: u32,
    /// Bytes per second received from peers (a few seconds' average).
    pub download_speed: f64,
    /// Bytes per second sent to peers.
    pub upload_speed: f64,
    /// Bytes of verified pieces received from peers.
    pub downloaded: u64,
    /// Bytes of pieces sent to peers.
    pub uploaded: u64,
}
