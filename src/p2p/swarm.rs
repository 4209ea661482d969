//! One torrent's swarm: the peers we are connected to, the addresses we could
//! connect to, the picker, choking, the metadata exchange, and the writes of
//! verified pieces into the store.
//!
//! # Design
//! All of a torrent's peer state sits in one [`State`] behind a mutex that is
//! never held across an `.await`. Each connection runs as a task of its own
//! (`peer.rs`): its reader hands every message to [`Swarm::on_message`], its
//! writer asks [`Swarm::output`] what to send next. So the picker sees every
//! peer at once, and a block that arrives from one peer cancels the copy asked
//! of another. A completed piece is verified and written off the loop by the
//! store; a hash failure is traced to the peers that sent its blocks.
//!
//! [`Swarm::run`] owns the rest: discovery (trackers, DHT, LSD, PEX add
//! addresses), connecting up to `MAX_PEERS`, choking every 10 s, and the
//! numbers for the status API. Dropping its future ends every connection.
//!
//! This file holds the state and the torrent-wide calls; `connections` the
//! peers' arrivals and departures (dialing, accepting, joining, leaving);
//! `incoming` what peers send, `outgoing` what we send (and the picker's inputs: each
//! peer's expected arrivals and pipeline depth), `tick` the once-a-second
//! rates, snubs, choking and numbers.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_io::Timer;
use event_listener::Event;
use futures_lite::future;

use super::blame::Blame;
use super::metadata::Assembly;
use super::peer::{self, Link};
pub use super::peer::{Hangup, Output};
use super::picker::{PeerKey, Picker};
use super::shared::Shared;
use super::tracker::{self, Announcer};
use super::wire::{self, BlockRef, ExtHandshake, Message, BLOCK_LEN};
use crate::demand::Demand;
use crate::format::magnet::Magnet;
use crate::format::metainfo::Metainfo;
use crate::format::InfoHash;
use crate::store::Store;
use unanswered::Unanswered;

mod connections;
mod incoming;
mod known;
mod outgoing;
mod tick;
mod unanswered;

use known::{make_room, Known};

pub use tick::SwarmStats;

/// Bytes of piece buffers per torrent: 8 pieces of 1 MiB, or 32 of 256 KiB.
/// Sized for a Pi Zero 2 W (512 MB) streaming one film with RAM to spare.
const PIECE_BUDGET: u64 = 8 << 20;

/// Requests a peer may have queued with us; BEP 3 clients keep ~250.
const MAX_QUEUED_UPLOADS: usize = 250;

/// Peers unchoked by the choker, plus one optimistic slot.
const UPLOAD_SLOTS: usize = 4;

/// Seconds between updates of the peers' rates (at least).
const RATE_EVERY: f64 = 0.9;

/// What a peer's peak rate keeps of itself per rate update: after a 3 s
/// pause (a choke on the WAN rig) its pipeline is still 60 % of what it was.
const PEAK_DECAY: f64 = 0.85;

const CHOKE_EVERY: Duration = Duration::from_secs(10);
const OPTIMISTIC_EVERY: Duration = Duration::from_secs(30);

/// A peer that unchoked us and sent nothing asked of it for this long is
/// snubbed: its requests go to others, and it gets one at a time.
const SNUB_AFTER: Duration = Duration::from_secs(15);

/// Requests outstanding per peer: a starting depth, and bounds. The depth
/// follows the peer's measured bandwidth-delay product (`outgoing::depth`).
const PIPELINE_START: usize = 16;
const PIPELINE_MIN: usize = 4;
const PIPELINE_MAX: usize = 256;

/// Failed connection attempts before an address is forgotten.
const MAX_DIAL_FAILURES: u32 = 3;

/// Waited pieces whose requests and blocks the debug log times at once.
const MAX_TRACED: usize = 16;

/// How often PEX messages go out (BEP 11: at most once a minute).
const PEX_EVERY: Duration = Duration::from_secs(60);

/// What a swarm is given by the torrent's owner: the few handles it needs,
/// never the torrent or the registry.
pub struct SwarmCtx {
    pub info_hash: InfoHash,
    /// Where verified pieces go, and where uploads are read from.
    pub store: Store,
    /// What readers wait for; the swarm claims the pieces it fetches there.
    pub demand: Arc<Demand>,
    /// The magnet's peers and trackers, if the torrent came from one.
    pub magnet: Option<Magnet>,
    /// The metadata, if known at the start.
    pub meta: Option<Arc<Metainfo>>,
    /// Metadata that peers sent and that hashes right goes here; the owner
    /// stores it and answers with [`Swarm::set_meta`].
    pub found: smol::channel::Sender<Metainfo>,
}

/// One torrent's swarm.
pub struct Swarm {
    pub info_hash: InfoHash,
    shared: Arc<Shared>,
    store: Store,
    demand: Arc<Demand>,
    magnet: Option<Magnet>,
    found: smol::channel::Sender<Metainfo>,
    /// The latest numbers, for the status APIs (refreshed every tick).
    stats: Mutex<SwarmStats>,
    state: Mutex<State>,
    /// New addresses, a peer left, the metadata arrived: `run` looks again.
    changed: Event,
    /// The connection tasks; dropped (cancelled) with the swarm's run.
    tasks: Mutex<HashMap<PeerKey, smol::Task<()>>>,
    announcer: Mutex<Option<Arc<Announcer>>>,
}

/// How we know an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Tracker,
    Dht,
    Pex,
    Lsd,
    Magnet,
    Incoming,
}

struct Peer {
    addr: SocketAddr,
    link: Arc<Link>,
    fast: bool,
    ext: ExtHandshake,
    /// Their pieces (raw bitfield bytes; sized once the metadata is known).
    bits: Vec<u8>,
    have_all: bool,
    peer_choking: bool,
    peer_interested: bool,
    am_choking: bool,
    am_interested: bool,
    /// Blocks asked of this peer, oldest first.
    asked: VecDeque<(BlockRef, Instant)>,
    /// When a batch of requests went out with nothing else outstanding: the
    /// first of its blocks to arrive times the round trip (plus a block or
    /// two), with no queue ahead of it at the peer. Any block of the batch
    /// will do, since a cancel (a copy came from elsewhere) or a choke may
    /// take the first one away; the batch's blocks are the ones asked at
    /// exactly this instant.
    probe: Option<Instant>,
    /// Blocks given up at this peer whose answer may still come: an
    /// arrival of one asked again since is not a round trip.
    unanswered: Unanswered,
    /// The measured round trip, seconds (from the probes).
    rtt: Option<f64>,
    /// When its first block arrived: its rate until the first tick measures it.
    first_block: Option<Instant>,
    /// Blocks they asked of us, in order.
    uploads: VecDeque<BlockRef>,
    allowed_fast: HashSet<u32>,
    /// Bytes of blocks received and sent, and their recent rates (bytes/s).
    got: u64,
    sent: u64,
    rate_in: f64,
    rate_out: f64,
    /// The highest `rate_in` lately, decaying by [`PEAK_DECAY`] a tick: the
    /// pipeline depth follows it, so that after a pause (a stall, a choke)
    /// the peer resumes with the pipeline it had, not one sized by the pause.
    rate_peak: f64,
    /// Whether its last rate was bound by the pipeline (it brought about all
    /// the pipeline allowed): the depth grows fast until it is not.
    ramping: bool,
    got_at_tick: u64,
    sent_at_tick: u64,
    last_block: Instant,
    snubbed: bool,
    /// Addresses last told to this peer over PEX, and when.
    pex_told: HashSet<SocketAddr>,
    pex_at: Option<Instant>,
    /// When we unchoked it (for the optimistic slot).
    optimistic: bool,
    /// The address it accepts connections on, if it told us (its ext
    /// handshake's listen port) and that differs from `addr`.
    listen: Option<SocketAddr>,
}

impl Peer {
    /// Cancels a block asked of this peer (already out of `asked`), and
    /// remembers it until its answer comes.
    fn cancel(&mut self, block: BlockRef) {
        self.link.send(&Message::Cancel(block));
        self.unanswered.note(block);
    }
}

struct State {
    meta: Option<Arc<Metainfo>>,
    picker: Option<Picker>,
    metadata: Option<Assembly>,
    peers: HashMap<PeerKey, Peer>,
    next_key: PeerKey,
    known: HashMap<SocketAddr, Known>,
    queue: VecDeque<SocketAddr>,
    dialing: usize,
    /// Bans and suspects, bounded (see `blame`).
    blame: Blame,
    /// The wanted pieces in order, rebuilt when `dirty`.
    order: Vec<u32>,
    /// How many of `order`'s first pieces are time-critical (a reader waits
    /// on them, or they sit at the playhead).
    urgent: usize,
    /// The pieces readers are blocked on now (all among the urgent ones).
    waited: HashSet<u32>,
    /// Pieces a reader blocked on, and when the swarm first saw the wait:
    /// the debug log times their requests and blocks from it (a seek's
    /// path), until the piece is complete. Bounded by [`MAX_TRACED`].
    traced: HashMap<u32, Instant>,
    dirty: bool,
    downloaded: u64,
    uploaded: u64,
    connection_tries: u32,
    last_choke: Option<Instant>,
    /// When the peers' rates were last updated: `tick` also runs on every
    /// change, so the rates are bytes over the time that really passed.
    last_rates: Instant,
    last_optimistic: Option<Instant>,
    /// Pieces delivered by peers in the last tick, for the handover.
    delivered: u64,
    /// Our own addresses as others see them (to never dial ourselves).
    selves: HashSet<SocketAddr>,
}

impl Swarm {
    pub(super) fn new(shared: Arc<Shared>, ctx: SwarmCtx) -> Arc<Swarm> {
        let meta = ctx.meta;
        let picker = meta.as_ref().map(|m| new_picker(m, &ctx.store));
        if let Some(m) = &meta {
            ctx.demand.set_piece_length(m.piece_length);
        }
        Arc::new(Swarm {
            info_hash: ctx.info_hash,
            shared,
            store: ctx.store,
            demand: ctx.demand,
            magnet: ctx.magnet,
            found: ctx.found,
            stats: Mutex::new(SwarmStats::default()),
            state: Mutex::new(State {
                meta,
                picker,
                metadata: None,
                peers: HashMap::new(),
                next_key: 1,
                known: HashMap::new(),
                queue: VecDeque::new(),
                dialing: 0,
                blame: Blame::default(),
                order: Vec::new(),
                urgent: 0,
                waited: HashSet::new(),
                traced: HashMap::new(),
                dirty: true,
                downloaded: 0,
                uploaded: 0,
                connection_tries: 0,
                last_choke: None,
                last_rates: Instant::now(),
                last_optimistic: None,
                delivered: 0,
                selves: HashSet::new(),
            }),
            changed: Event::new(),
            tasks: Mutex::new(HashMap::new()),
            announcer: Mutex::new(None),
        })
    }

    /// The latest numbers, for the status APIs.
    pub fn stats(&self) -> SwarmStats {
        self.stats.lock().unwrap().clone()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    pub fn meta(&self) -> Option<Arc<Metainfo>> {
        self.state().meta.clone()
    }

    /// Resolves once the metadata is known (from the store or from peers).
    pub async fn metadata(&self) -> Arc<Metainfo> {
        loop {
            let listener = self.changed.listen();
            if let Some(meta) = self.meta() {
                return meta;
            }
            listener.await;
        }
    }

    /// Pieces verified from peers since the last call (for the handover).
    pub fn take_delivered(&self) -> u64 {
        std::mem::take(&mut self.state().delivered)
    }

    /// Peers connected now.
    pub fn connected(&self) -> usize {
        self.state().peers.len()
    }

    /// Peers that unchoke us now.
    pub fn unchoking(&self) -> usize {
        self.state()
            .peers
            .values()
            .filter(|p| !p.peer_choking)
            .count()
    }

    /// The torrent's metadata is known (from peers, or the HTTP tier's .torrent).
    pub fn set_meta(&self, meta: Arc<Metainfo>) {
        let mut st = self.state();
        if st.meta.is_none() {
            let n = meta.piece_count();
            self.demand.set_piece_length(meta.piece_length);
            st.picker = Some(new_picker(&meta, &self.store));
            st.meta = Some(meta);
            st.metadata = None;
            st.dirty = true;
            // Peers' bitfields were taken on trust before the size was known.
            for p in st.peers.values() {
                if !p.bits.is_empty() && !wire::bitfield_fits(&p.bits, n) {
                    p.link.close();
                }
            }
            drop(st);
            self.changed.notify(usize::MAX);
            self.wake_all();
        }
    }

    /// Demand changed: rebuild the order, wake the writers.
    pub fn demand_changed(&self) {
        self.state().dirty = true;
        self.wake_all();
    }

    fn wake_all(&self) {
        for p in self.state().peers.values() {
            p.link.wake();
        }
    }

    /// Addresses learned from anywhere; new ones are queued for dialing.
    pub fn add_peers(&self, addrs: impl IntoIterator<Item = SocketAddr>, origin: Origin) {
        let mut added = 0;
        {
            let mut guard = self.state();
            let st = &mut *guard;
            for addr in addrs {
                if addr.port() == 0
                    || st.blame.is_banned(addr.ip())
                    || st.selves.contains(&addr)
                    || st.known.contains_key(&addr)
                    || !make_room(&mut st.known, &mut st.queue)
                {
                    continue;
                }
                st.known.insert(
                    addr,
                    Known {
                        failures: 0,
                        drops: 0,
                        retry_at: None,
                        connected: false,
                    },
                );
                st.queue.push_back(addr);
                added += 1;
            }
        }
        if added > 0 {
            log::debug!(
                "[P2P] {}: {added} new peer address(es) from {origin:?}",
                self.info_hash
            );
            self.changed.notify(usize::MAX);
        }
    }

    /// Runs discovery, dialing, choking and the numbers, until dropped.
    pub async fn run(self: Arc<Swarm>) {
        // Dropping this future (the torrent went away) ends every connection.
        struct Stop(Arc<Swarm>);
        impl std::ops::Drop for Stop {
            fn drop(&mut self) {
                self.0.tasks.lock().unwrap().clear();
            }
        }
        let _stop = Stop(self.clone());
        if let Some(m) = &self.magnet {
            let peers = m.peers.iter().filter_map(|p| p.parse().ok());
            self.add_peers(peers.collect::<Vec<_>>(), Origin::Magnet);
        }
        let discovery = self.discover();
        let swarm = self.clone();
        let announce = async move { swarm.announce().await };
        let main = async {
            loop {
                let listener = self.changed.listen();
                self.dial();
                self.tick();
                future::or(
                    async {
                        listener.await;
                    },
                    async {
                        Timer::after(Duration::from_secs(1)).await;
                    },
                )
                .await;
            }
        };
        future::or(main, future::or(announce, discovery)).await;
    }

    /// Peer discovery beyond trackers, until dropped: a DHT lookup (repeated,
    /// and announcing us) and LSD announces. Private torrents (BEP 27) use
    /// their trackers only.
    fn discover(self: &Arc<Swarm>) -> impl std::future::Future<Output = ()> + 'static {
        let ih = self.info_hash;
        let private = self.meta().is_some_and(|m| m.private);
        let lookups = (!private)
            .then(|| {
                self.shared
                    .dht
                    .as_ref()
                    .map(|d| d.get_peers(ih, Some(self.shared.port())))
            })
            .flatten();
        let lsd = (!private).then(|| self.shared.clone());
        if let Some(shared) = &lsd {
            if let Some(l) = &shared.lsd {
                l.announce(&[ih]);
            }
        }
        let swarm = Arc::downgrade(self);
        async move {
            // Forgotten by LSD when the swarm's run ends (this future is dropped).
            struct Forget(Option<Arc<Shared>>, InfoHash);
            impl Drop for Forget {
                fn drop(&mut self) {
                    if let Some(l) = self.0.as_ref().and_then(|s| s.lsd.as_ref()) {
                        l.forget(self.1);
                    }
                }
            }
            let _forget = Forget(lsd, ih);
            match lookups {
                Some(rx) => {
                    while let Ok(peers) = rx.recv().await {
                        let Some(s) = swarm.upgrade() else { return };
                        s.add_peers(peers, Origin::Dht);
                    }
                    future::pending().await
                }
                None => future::pending().await,
            }
        }
    }

    /// Trackers: the torrent's, else the magnet's, else `TRACKERS`.
    async fn announce(self: Arc<Swarm>) {
        let tiers = self.tracker_tiers();
        if tiers.is_empty() {
            return future::pending().await;
        }
        let announcer = Arc::new(Announcer::new(
            self.shared.client(),
            tiers,
            self.info_hash,
            self.shared.peer_id().0,
            self.shared.port(),
        ));
        *self.announcer.lock().unwrap() = Some(announcer.clone());
        let (tx, rx) = smol::channel::bounded::<Vec<SocketAddr>>(16);
        let swarm = self.clone();
        let feed = async move {
            while let Ok(peers) = rx.recv().await {
                swarm.add_peers(peers, Origin::Tracker);
            }
        };
        let progress = || self.progress();
        let wants = || self.wants_peers();
        future::or(announcer.run(&progress, &wants, &tx), feed).await;
    }

    fn tracker_tiers(&self) -> Vec<Vec<String>> {
        let from_meta = self.meta().map(|m| m.trackers.clone()).unwrap_or_default();
        if !from_meta.iter().all(Vec::is_empty) {
            return from_meta;
        }
        let from_magnet = self
            .magnet
            .as_ref()
            .map(|m| m.trackers.clone())
            .unwrap_or_default();
        if !from_magnet.is_empty() {
            return vec![from_magnet];
        }
        // Each default tracker in a tier of its own: all of them are asked.
        self.shared
            .config()
            .trackers
            .iter()
            .map(|t| vec![t.clone()])
            .collect()
    }

    /// Tells the trackers we stop (at shutdown), within a few seconds.
    pub async fn stop_announcing(&self) {
        let announcer = self.announcer.lock().unwrap().clone();
        if let Some(a) = announcer {
            a.stop(self.progress()).await;
        }
    }

    pub fn progress(&self) -> tracker::Progress {
        let st = self.state();
        let left = st.meta.as_ref().map_or(0, |m| {
            let have = self.store.verified(&m.info_hash).map_or(0, |v| v.1);
            m.total_length.saturating_sub(have)
        });
        tracker::Progress {
            uploaded: st.uploaded,
            downloaded: st.downloaded,
            left,
        }
    }

    fn wants_peers(&self) -> bool {
        let st = self.state();
        st.peers.len() < self.shared.config().max_peers as usize / 2 && st.queue.is_empty()
    }
}

fn new_picker(meta: &Metainfo, store: &Store) -> Picker {
    Picker::new(meta.piece_length, meta.total_length, PIECE_BUDGET).with_buffers(store.piece_pool())
}

fn block_fits(meta: &Metainfo, b: &BlockRef) -> bool {
    b.piece < meta.piece_count()
        && b.length > 0
        && b.length <= BLOCK_LEN
        && b.offset as u64 + b.length as u64 <= meta.piece_size(b.piece)
}

fn get_bit(bits: &[u8], p: u32) -> bool {
    bits.get(p as usize / 8)
        .is_some_and(|b| b & (0x80 >> (p % 8)) != 0)
}

fn set_bit(bits: &mut Vec<u8>, p: u32) {
    let i = p as usize / 8;
    if bits.len() <= i {
        bits.resize(i + 1, 0);
    }
    bits[i] |= 0x80 >> (p % 8);
}

/// The narrow interface a connection (`peer.rs`) talks through.
impl peer::SwarmSide for Swarm {
    fn info_hash(&self) -> InfoHash {
        self.info_hash
    }

    fn peer_id(&self) -> wire::PeerId {
        self.shared.peer_id()
    }

    fn encryption(&self) -> crate::config::Encryption {
        self.shared.config().encryption
    }

    fn slot(&self) -> super::shared::Slot {
        self.shared.slot()
    }

    fn join(
        &self,
        key: PeerKey,
        addr: SocketAddr,
        theirs: &wire::Handshake,
        link: Arc<Link>,
        incoming: bool,
    ) -> Result<Vec<u8>, Hangup> {
        Swarm::join(self, key, addr, theirs, link, incoming)
    }

    fn leave(&self, key: PeerKey, why: &Hangup) {
        Swarm::leave(self, key, why)
    }

    fn on_message(self: Arc<Self>, key: PeerKey, msg: Message<'_>) -> Result<(), Hangup> {
        Swarm::on_message(&self, key, msg)
    }

    fn output(&self, key: PeerKey) -> Result<Output, Hangup> {
        Swarm::output(self, key)
    }

    fn read_block(
        &self,
        key: PeerKey,
        block: BlockRef,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<u8>, Hangup>> + Send + '_>>
    {
        Box::pin(Swarm::read_block(self, key, block))
    }
}
