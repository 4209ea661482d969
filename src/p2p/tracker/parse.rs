//! The trackers' answers, parsed: the bencoded HTTP announce reply (BEP 3,
//! 23, 7), the UDP connect and announce replies and the UDP error (BEP 15),
//! and compact peer lists.
//!
//! Pure: bytes in, values out, no I/O. Must never trust a length or a count
//! the tracker claims: at most [`MAX_PEERS_PER_REPLY`] peers are read from
//! one reply, and peers with port 0 or an unspecified address are dropped
//! (nobody can connect to them).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use nom::bytes::complete::take;
use nom::number::complete::{be_u32, be_u64};
use nom::{IResult, Parser};

use super::Reply;
use crate::format::bencode::{self, BencodeError, Node};

/// Peers kept from one reply. A tracker answers `numwant` (we ask 50 to 200);
/// 500 is more than any honest answer and bounds what a hostile one costs
/// (500 addresses are 16 KiB).
pub const MAX_PEERS_PER_REPLY: usize = 500;

/// Largest HTTP announce body read. 500 compact v4 and v6 peers fit in 12 KiB
/// and the dict form of 500 peers in about 40 KiB; 256 KiB leaves room for
/// chatty trackers while bounding the buffer.
pub const MAX_HTTP_BODY: usize = 256 * 1024;

/// BEP 15 actions.
pub const ACTION_CONNECT: u32 = 0;
pub const ACTION_ANNOUNCE: u32 = 1;
pub const ACTION_ERROR: u32 = 3;

/// BEP 15: the magic constant that opens a connect request.
pub const UDP_PROTOCOL_ID: u64 = 0x0417_2710_1980;

/// Bytes of one compact IPv4 peer (address, port) and one IPv6 peer.
const COMPACT_V4: usize = 6;
const COMPACT_V6: usize = 18;

/// What was wrong with a tracker's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The HTTP body is not bencode.
    Bencode(BencodeError),
    /// The HTTP body is bencode but not a dict.
    NotADict,
    /// No `interval`, or one that is not a positive integer.
    BadInterval(Option<i64>),
    /// A compact peer string whose length is not a multiple of the entry size.
    BadCompactLength { len: usize, entry: usize },
    /// `peers` is neither a string nor a list of dicts.
    BadPeers,
    /// A UDP datagram shorter than its fixed header.
    Short { len: usize, need: usize },
    /// A UDP reply with another action than the one asked for.
    BadAction { expected: u32, got: u32 },
    /// A UDP reply to another request (stale or forged).
    TransactionMismatch { expected: u32, got: u32 },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Bencode(e) => write!(f, "reply is not bencode ({e})"),
            ParseError::NotADict => f.write_str("reply is not a dict"),
            ParseError::BadInterval(None) => f.write_str("reply has no interval"),
            ParseError::BadInterval(Some(n)) => write!(f, "reply has a bad interval {n}"),
            ParseError::BadCompactLength { len, entry } => {
                write!(f, "compact peers of {len} bytes, not a multiple of {entry}")
            }
            ParseError::BadPeers => f.write_str("peers are neither compact nor a list"),
            ParseError::Short { len, need } => {
                write!(f, "datagram of {len} bytes, at least {need} expected")
            }
            ParseError::BadAction { expected, got } => {
                write!(f, "action {got} where {expected} was expected")
            }
            ParseError::TransactionMismatch { expected, got } => {
                write!(f, "transaction id {got:#010x}, expected {expected:#010x}")
            }
        }
    }
}

impl std::error::Error for ParseError {}

/// A tracker's answer to an announce: peers, or its refusal.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer<T> {
    Ok(T),
    /// `failure reason` (HTTP) or the message of a UDP error (action 3).
    Refused(String),
}

/// An HTTP announce reply and its `warning message`, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpReply {
    pub reply: Reply,
    pub warning: Option<String>,
}

/// Parses the body of an HTTP announce (BEP 3): `failure reason`, or
/// `interval`, `min interval`, `complete`, `incomplete`, `peers` (compact,
/// BEP 23, or the list of dicts) and `peers6` (BEP 7).
pub fn http_reply(body: &[u8]) -> Result<Answer<HttpReply>, ParseError> {
    let root = bencode::parse(body).map_err(ParseError::Bencode)?;
    if root.as_dict().is_none() {
        return Err(ParseError::NotADict);
    }
    if let Some(reason) = root.get(b"failure reason") {
        return Ok(Answer::Refused(text(reason)));
    }
    let interval = match root.get(b"interval").map(|n| n.as_int()) {
        Some(Some(n)) if n > 0 => Duration::from_secs(n as u64),
        Some(n) => return Err(ParseError::BadInterval(n)),
        None => return Err(ParseError::BadInterval(None)),
    };
    let mut peers = match root.get(b"peers") {
        None => Vec::new(),
        Some(node) => match (node.as_bytes(), node.as_list()) {
            (Some(bytes), _) => compact_v4(bytes)?,
            (_, Some(list)) => dict_peers(list),
            _ => return Err(ParseError::BadPeers),
        },
    };
    if let Some(bytes) = root.get(b"peers6").and_then(Node::as_bytes) {
        let room = MAX_PEERS_PER_REPLY - peers.len();
        peers.extend(compact_v6(bytes)?.into_iter().take(room));
    }
    Ok(Answer::Ok(HttpReply {
        reply: Reply {
            peers,
            interval,
            min_interval: seconds(root.get(b"min interval")),
            seeders: count(root.get(b"complete")),
            leechers: count(root.get(b"incomplete")),
        },
        warning: root.get(b"warning message").map(text),
    }))
}

/// A tracker's message, lossily decoded: it only goes into logs and errors,
/// and is cut so a hostile tracker cannot flood them.
fn text(node: &Node<'_>) -> String {
    const MAX_CHARS: usize = 200;
    match node.as_bytes() {
        Some(bytes) => String::from_utf8_lossy(bytes)
            .chars()
            .take(MAX_CHARS)
            .collect(),
        None => "(not a string)".to_string(),
    }
}

fn seconds(node: Option<&Node<'_>>) -> Option<Duration> {
    let n = node?.as_int()?;
    (n > 0).then(|| Duration::from_secs(n as u64))
}

fn count(node: Option<&Node<'_>>) -> Option<u32> {
    u32::try_from(node?.as_int()?).ok()
}

/// The dict form of `peers`: `ip` (a dotted quad, an IPv6 literal; host
/// names are skipped, resolving them would let a tracker make us query DNS
/// 500 times) and `port`. Malformed entries are skipped, not fatal.
fn dict_peers(list: &[Node<'_>]) -> Vec<SocketAddr> {
    list.iter()
        .filter_map(|entry| {
            let ip = entry.get(b"ip")?.as_str()?.parse().ok()?;
            let port = u16::try_from(entry.get(b"port")?.as_int()?).ok()?;
            usable(SocketAddr::new(ip, port))
        })
        .take(MAX_PEERS_PER_REPLY)
        .collect()
}

/// A peer one can connect to, or `None`.
fn usable(addr: SocketAddr) -> Option<SocketAddr> {
    (addr.port() != 0 && !addr.ip().is_unspecified()).then_some(addr)
}

/// BEP 23 compact IPv4 peers: 4 address bytes and 2 port bytes each.
pub fn compact_v4(bytes: &[u8]) -> Result<Vec<SocketAddr>, ParseError> {
    compact(bytes, COMPACT_V4)
}

/// BEP 7 compact IPv6 peers: 16 address bytes and 2 port bytes each.
pub fn compact_v6(bytes: &[u8]) -> Result<Vec<SocketAddr>, ParseError> {
    compact(bytes, COMPACT_V6)
}

fn compact(bytes: &[u8], entry: usize) -> Result<Vec<SocketAddr>, ParseError> {
    if !bytes.len().is_multiple_of(entry) {
        return Err(ParseError::BadCompactLength {
            len: bytes.len(),
            entry,
        });
    }
    Ok(bytes
        .chunks_exact(entry)
        .take(MAX_PEERS_PER_REPLY)
        .filter_map(|chunk| {
            let (ip, port) = chunk.split_at(entry - 2);
            let port = u16::from_be_bytes([port[0], port[1]]);
            let ip = match <[u8; 4]>::try_from(ip) {
                Ok(v4) => Ipv4Addr::from(v4).into(),
                Err(_) => Ipv6Addr::from(<[u8; 16]>::try_from(ip).ok()?).into(),
            };
            usable(SocketAddr::new(ip, port))
        })
        .collect())
}

type PResult<'a, O> = IResult<&'a [u8], O>;

/// Action and transaction id, the header of every UDP reply; an error
/// (action 3) is checked for the transaction id before its message is read.
fn udp_header(datagram: &[u8], tid: u32, need: usize) -> Result<(u32, &[u8]), ParseError> {
    let header: PResult<'_, (u32, u32)> = (be_u32, be_u32).parse(datagram);
    let Ok((rest, (action, got))) = header else {
        return Err(ParseError::Short {
            len: datagram.len(),
            need,
        });
    };
    if got != tid {
        return Err(ParseError::TransactionMismatch { expected: tid, got });
    }
    if action != ACTION_ERROR && datagram.len() < need {
        return Err(ParseError::Short {
            len: datagram.len(),
            need,
        });
    }
    Ok((action, rest))
}

/// The refusal in an error datagram, or a bad action.
fn udp_other<T>(action: u32, expected: u32, rest: &[u8]) -> Result<Answer<T>, ParseError> {
    if action == ACTION_ERROR {
        let message = String::from_utf8_lossy(rest).chars().take(200).collect();
        return Ok(Answer::Refused(message));
    }
    Err(ParseError::BadAction {
        expected,
        got: action,
    })
}

/// A UDP connect reply (16 bytes: action 0, transaction id, connection id).
pub fn udp_connect(datagram: &[u8], tid: u32) -> Result<Answer<u64>, ParseError> {
    let (action, rest) = udp_header(datagram, tid, 16)?;
    if action != ACTION_CONNECT {
        return udp_other(action, ACTION_CONNECT, rest);
    }
    let parsed: PResult<'_, u64> = be_u64(rest);
    let (_, connection_id) = parsed.map_err(|_| ParseError::Short {
        len: datagram.len(),
        need: 16,
    })?;
    Ok(Answer::Ok(connection_id))
}

/// A UDP announce reply: action 1, transaction id, interval, leechers,
/// seeders, then compact peers, IPv6 ones when the tracker was asked over
/// IPv6 (`v6`). A trailing partial entry is ignored, as trackers pad.
pub fn udp_announce(datagram: &[u8], tid: u32, v6: bool) -> Result<Answer<Reply>, ParseError> {
    let (action, rest) = udp_header(datagram, tid, 20)?;
    if action != ACTION_ANNOUNCE {
        return udp_other(action, ACTION_ANNOUNCE, rest);
    }
    let fields: PResult<'_, (u32, u32, u32)> = (be_u32, be_u32, be_u32).parse(rest);
    let (peers, (interval, leechers, seeders)) = fields.map_err(|_| ParseError::Short {
        len: datagram.len(),
        need: 20,
    })?;
    if interval == 0 {
        return Err(ParseError::BadInterval(Some(0)));
    }
    let entry = if v6 { COMPACT_V6 } else { COMPACT_V4 };
    let whole: PResult<'_, &[u8]> = take(peers.len() / entry * entry).parse(peers);
    let (_, whole) = whole.map_err(|_| ParseError::BadPeers)?;
    Ok(Answer::Ok(Reply {
        peers: compact(whole, entry)?,
        interval: Duration::from_secs(u64::from(interval)),
        min_interval: None,
        seeders: Some(seeders),
        leechers: Some(leechers),
    }))
}
