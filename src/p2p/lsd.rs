//! Local Service Discovery (BEP 14): finds peers on the LAN by multicast.
//!
//! Owns the `BT-SEARCH` message (both ways, parsed strictly with nom) and
//! one multicast socket that announces our torrents and hears the LAN's.
//! It only produces addresses: it never connects to a peer, never reads the
//! config, and never sends beyond the local link (TTL 1).
//!
//! # Design
//! Every torrent passed to [`Lsd::announce`] is announced at once, and then
//! every [`ANNOUNCE_EVERY`] with all the others (several `Infohash` headers per
//! message); an explicit announce of a torrent sent less than
//! [`MIN_INTERVAL`] ago is skipped, as BEP 14 asks. A random `cookie` header
//! lets us drop our own announces, which multicast loopback hands back (and
//! which two instances on one host need). Incoming announces go to a bounded
//! channel; when the consumer lags, new ones are dropped, not queued.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use nom::bytes::complete::{tag, tag_no_case, take_while, take_while1};
use nom::character::complete::space0;
use nom::combinator::all_consuming;
use nom::multi::{many0, many_m_n};
use nom::sequence::terminated;
use nom::{Finish, IResult, Parser};
use smol::channel;
use smol::Task;

use crate::format::InfoHash;

/// BEP 14's IPv4 group and port.
pub const GROUP: SocketAddrV4 = crate::config::LSD_GROUP;
/// Re-announce period of every torrent (BEP 14: "every 5 minutes").
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(5 * 60);
/// BEP 14: at most one announce per torrent per minute, besides the schedule.
pub const MIN_INTERVAL: Duration = Duration::from_secs(60);
/// Largest datagram sent or accepted: fits any LAN MTU without fragments.
pub const MAX_MESSAGE: usize = 1400;
/// Info hashes per message: 20 × 51-byte headers stay under [`MAX_MESSAGE`].
pub const MAX_HASHES: usize = 20;
/// Header lines accepted in one message (ours has 5).
pub const MAX_HEADERS: usize = 32;
/// Longest cookie accepted.
pub const MAX_COOKIE: usize = 64;
/// Torrents announced at once; more are not announced (a big library still
/// sends at most 50 messages per round).
pub const MAX_TORRENTS: usize = 1000;
/// Announces heard and not yet taken by the swarm.
pub const INCOMING_QUEUE: usize = 256;

const REQUEST_LINE: &str = "BT-SEARCH * HTTP/1.1\r\n";

/// One BT-SEARCH message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// The `Host` header, the group as `ip:port`.
    pub host: String,
    /// The announcer's BitTorrent port.
    pub port: u16,
    pub info_hashes: Vec<InfoHash>,
    pub cookie: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LsdError {
    TooLarge {
        len: usize,
        max: usize,
    },
    /// Not `BT-SEARCH * HTTP/1.1`, a malformed header line, too many
    /// headers, or bytes after the blank line; `at` is the byte offset.
    Syntax {
        at: usize,
    },
    Missing(&'static str),
    Duplicate(&'static str),
    BadPort(String),
    BadInfoHash(String),
    TooManyInfoHashes {
        count: usize,
        max: usize,
    },
    CookieTooLong {
        len: usize,
        max: usize,
    },
}

impl fmt::Display for LsdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use LsdError::*;
        match self {
            TooLarge { len, max } => write!(f, "lsd: message of {len} bytes exceeds {max}"),
            Syntax { at } => write!(f, "lsd: malformed message at byte {at}"),
            Missing(h) => write!(f, "lsd: no {h} header"),
            Duplicate(h) => write!(f, "lsd: {h} header twice"),
            BadPort(p) => write!(f, "lsd: bad port {p:?}"),
            BadInfoHash(h) => write!(f, "lsd: bad info hash {h:?}"),
            TooManyInfoHashes { count, max } => {
                write!(f, "lsd: {count} info hashes, more than {max}")
            }
            CookieTooLong { len, max } => write!(f, "lsd: cookie of {len} bytes, more than {max}"),
        }
    }
}

impl std::error::Error for LsdError {}

impl Announce {
    pub fn encode(&self) -> Vec<u8> {
        let mut m = format!(
            "{REQUEST_LINE}Host: {}\r\nPort: {}\r\n",
            self.host, self.port
        );
        for h in &self.info_hashes {
            m.push_str(&format!("Infohash: {h}\r\n"));
        }
        if let Some(cookie) = &self.cookie {
            m.push_str(&format!("cookie: {cookie}\r\n"));
        }
        // BEP 14 ends the message with two blank lines.
        m.push_str("\r\n\r\n");
        m.into_bytes()
    }
}

/// A header line: a token name, a colon, and a printable value.
fn header(input: &[u8]) -> IResult<&[u8], Header<'_>> {
    let name = take_while1(|b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let value = take_while(|b: u8| (0x20..0x7f).contains(&b) || b == b'\t');
    let (rest, (name, _, _, value, _)) =
        (name, tag(":"), space0, value, tag("\r\n")).parse(input)?;
    Ok((rest, (name, value)))
}

/// A header's name and value, borrowed from the datagram.
type Header<'a> = (&'a [u8], &'a [u8]);

fn message(input: &[u8]) -> IResult<&[u8], Vec<Header<'_>>> {
    let (rest, (_, headers, _, _)) = (
        tag_no_case(REQUEST_LINE.as_bytes()),
        many_m_n(0, MAX_HEADERS, header),
        tag("\r\n"),
        // Trailing blank lines (BEP 14 has one more); nothing else.
        all_consuming(many0(tag("\r\n"))),
    )
        .parse(input)?;
    Ok((rest, headers))
}

/// Parses one datagram strictly.
pub fn parse(datagram: &[u8]) -> Result<Announce, LsdError> {
    if datagram.len() > MAX_MESSAGE {
        return Err(LsdError::TooLarge {
            len: datagram.len(),
            max: MAX_MESSAGE,
        });
    }
    let (_, headers) = terminated(message, nom::combinator::eof)
        .parse(datagram)
        .finish()
        .map_err(|e: nom::error::Error<&[u8]>| LsdError::Syntax {
            at: datagram.len() - e.input.len(),
        })?;
    let text = |v: &[u8]| String::from_utf8_lossy(v).trim_end().to_string();
    let (mut host, mut port, mut cookie) = (None, None, None);
    let mut info_hashes = Vec::new();
    for (name, value) in headers {
        let value = text(value);
        let once = |slot: &mut Option<String>, key: &'static str| {
            if slot.is_some() {
                return Err(LsdError::Duplicate(key));
            }
            *slot = Some(value.clone());
            Ok(())
        };
        match name.to_ascii_lowercase().as_slice() {
            b"host" => once(&mut host, "Host")?,
            b"port" => once(&mut port, "Port")?,
            b"cookie" => once(&mut cookie, "cookie")?,
            b"infohash" => {
                if info_hashes.len() == MAX_HASHES {
                    return Err(LsdError::TooManyInfoHashes {
                        count: MAX_HASHES + 1,
                        max: MAX_HASHES,
                    });
                }
                let h = InfoHash::from_hex(&value).ok_or(LsdError::BadInfoHash(value))?;
                info_hashes.push(h);
            }
            _ => {}
        }
    }
    let port_text = port.ok_or(LsdError::Missing("Port"))?;
    let port = port_text
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0 && port_text.bytes().all(|b| b.is_ascii_digit()))
        .ok_or(LsdError::BadPort(port_text))?;
    if info_hashes.is_empty() {
        return Err(LsdError::Missing("Infohash"));
    }
    if let Some(c) = &cookie {
        if c.len() > MAX_COOKIE {
            return Err(LsdError::CookieTooLong {
                len: c.len(),
                max: MAX_COOKIE,
            });
        }
    }
    Ok(Announce {
        host: host.ok_or(LsdError::Missing("Host"))?,
        port,
        info_hashes,
        cookie,
    })
}

/// A running LSD service; it stops when dropped.
pub struct Lsd {
    shared: Arc<Shared>,
    incoming: channel::Receiver<(InfoHash, SocketAddr)>,
    _tasks: Vec<Task<()>>,
}

struct Shared {
    socket: Async<UdpSocket>,
    group: SocketAddrV4,
    our_port: u16,
    cookie: String,
    /// Torrents to announce on schedule, with when each was last sent.
    torrents: Mutex<HashMap<InfoHash, Option<Instant>>>,
}

impl Lsd {
    /// `group`: the multicast group:port (Lsd::GROUP by default; tests pass their own), `interface`:
    /// the IPv4 address of the interface to send on and join with (0.0.0.0 = default route).
    pub async fn start(group: SocketAddrV4, interface: Ipv4Addr, our_port: u16) -> io::Result<Lsd> {
        let socket = Async::new(multicast_socket(group, interface)?)?;
        let cookie = format!("{:016x}", fastrand::u64(..));
        let shared = Arc::new(Shared {
            socket,
            group,
            our_port,
            cookie,
            torrents: Mutex::new(HashMap::new()),
        });
        let (tx, incoming) = channel::bounded(INCOMING_QUEUE);
        let receive = smol::spawn(receive_loop(Arc::clone(&shared), tx));
        let schedule = smol::spawn(schedule(Arc::clone(&shared)));
        log::info!("lsd: announcing port {our_port} to {group} via {interface}");
        Ok(Lsd {
            shared,
            incoming,
            _tasks: vec![receive, schedule],
        })
    }

    /// Announces `info_hashes` now (those not sent in the last minute) and
    /// adds them to the 5-minute schedule, until [`Lsd::forget`].
    pub fn announce(&self, info_hashes: &[InfoHash]) {
        let now = Instant::now();
        let due: Vec<InfoHash> = {
            let mut torrents = self.shared.torrents.lock().expect("not poisoned");
            info_hashes
                .iter()
                .filter(|h| {
                    if !torrents.contains_key(*h) && torrents.len() >= MAX_TORRENTS {
                        log::debug!("lsd: {MAX_TORRENTS} torrents announced already; not {h}");
                        return false;
                    }
                    let last = torrents.entry(**h).or_insert(None);
                    let due = last.is_none_or(|t| now.saturating_duration_since(t) >= MIN_INTERVAL);
                    if due {
                        *last = Some(now);
                    }
                    due
                })
                .copied()
                .collect()
        };
        self.shared.send(&due);
    }

    /// Stops announcing `info_hash` on schedule.
    pub fn forget(&self, info_hash: InfoHash) {
        self.shared
            .torrents
            .lock()
            .expect("not poisoned")
            .remove(&info_hash);
    }

    /// Announces heard from other hosts: (info hash, peer address = sender IP + announced Port).
    pub fn incoming(&self) -> channel::Receiver<(InfoHash, SocketAddr)> {
        self.incoming.clone()
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.shared.socket.get_ref().local_addr()
    }
}

impl Shared {
    /// Sends `hashes` in as few messages as [`MAX_HASHES`] allows. The socket
    /// is non-blocking and a UDP send does not wait, so this is synchronous.
    fn send(&self, hashes: &[InfoHash]) {
        for chunk in hashes.chunks(MAX_HASHES) {
            let message = Announce {
                host: self.group.to_string(),
                port: self.our_port,
                info_hashes: chunk.to_vec(),
                cookie: Some(self.cookie.clone()),
            }
            .encode();
            if let Err(e) = self.socket.get_ref().send_to(&message, self.group) {
                log::debug!("lsd: send to {}: {e}", self.group);
            }
        }
    }
}

async fn schedule(shared: Arc<Shared>) {
    loop {
        Timer::after(ANNOUNCE_EVERY).await;
        let now = Instant::now();
        let all: Vec<InfoHash> = {
            let mut torrents = shared.torrents.lock().expect("not poisoned");
            torrents.values_mut().for_each(|t| *t = Some(now));
            torrents.keys().copied().collect()
        };
        shared.send(&all);
    }
}

async fn receive_loop(shared: Arc<Shared>, tx: channel::Sender<(InfoHash, SocketAddr)>) {
    let mut buf = vec![0u8; MAX_MESSAGE + 1];
    loop {
        let (len, from) = match shared.socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                log::debug!("lsd: receive: {e}");
                Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        let announce = match parse(&buf[..len]) {
            Ok(a) => a,
            Err(e) => {
                log::debug!("lsd: dropped a message from {from}: {e}");
                continue;
            }
        };
        if announce.cookie.as_deref() == Some(shared.cookie.as_str()) {
            continue;
        }
        let peer = SocketAddr::new(from.ip(), announce.port);
        for h in announce.info_hashes {
            // Full queue: the swarm is busy; this announce repeats in 5 min.
            let _ = tx.try_send((h, peer));
        }
    }
}

/// A UDP socket bound to the group's port and joined to it on `interface`,
/// sending with TTL 1 (BEP 14 traffic must not leave the link) and with
/// loopback on, so other instances on this host hear us.
fn multicast_socket(group: SocketAddrV4, interface: Ipv4Addr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    // Several listeners on one host (two instances, or a desktop client).
    socket.set_reuse_address(true)?;
    // Bound to the group address, not 0.0.0.0: the socket then receives only
    // this group's datagrams, not every group joined on this port.
    socket.bind(&SocketAddr::V4(group).into())?;
    socket.join_multicast_v4(group.ip(), &interface)?;
    socket.set_multicast_if_v4(&interface)?;
    socket.set_multicast_ttl_v4(1)?;
    socket.set_multicast_loop_v4(true)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests;
