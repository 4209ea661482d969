//! The bencoded payloads of extended messages: the BEP 10 handshake, BEP 9
//! ut_metadata and BEP 11 ut_pex.
//!
//! Owns their dict layouts and bounds. Must never trust a size a peer claims
//! (metadata_size, piece lengths, peer counts) beyond the limits here, and
//! never read the framing: `wire` hands over the payload after the extended
//! id. Everything is parsed with `crate::format::bencode` and encoded with its
//! `Bencode`, whose sorted dicts are what BEP 3 asks of a sender.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{array, WireError, MAX_METADATA_SIZE};
use crate::format::bencode::{self, Bencode, Node};

/// BEP 9: metadata travels in 16 KiB pieces; only the last may be shorter.
pub const METADATA_PIECE_LEN: usize = 16 * 1024;
/// Most peers read from each of a PEX message's lists (added, dropped).
/// libtorrent sends at most 50 added per message and transmission about as
/// many; 200 leaves room and bounds what one message can make us queue.
pub const MAX_PEX_PEERS: usize = 200;
/// The client name (`v`) is for logs; a peer cannot make it longer than this.
const MAX_CLIENT_CHARS: usize = 64;

/// A bencoded payload that must be a dict.
fn dict(node: &Node<'_>) -> Result<(), WireError> {
    node.as_dict().map(|_| ()).ok_or(WireError::NotADict)
}

/// An optional integer key; a key of another type is an error.
fn int(node: &Node<'_>, key: &'static str) -> Result<Option<i64>, WireError> {
    match node.get(key.as_bytes()) {
        None => Ok(None),
        Some(v) => v.as_int().map(Some).ok_or(WireError::WrongType(key)),
    }
}

/// An optional integer key that must lie in `range`.
fn int_in(
    node: &Node<'_>,
    key: &'static str,
    range: std::ops::RangeInclusive<i64>,
) -> Result<Option<i64>, WireError> {
    match int(node, key)? {
        Some(value) if !range.contains(&value) => Err(WireError::BadValue { key, value }),
        other => Ok(other),
    }
}

/// An optional byte-string key.
fn bytes<'a>(node: &Node<'a>, key: &'static str) -> Result<Option<&'a [u8]>, WireError> {
    match node.get(key.as_bytes()) {
        None => Ok(None),
        Some(v) => v.as_bytes().map(Some).ok_or(WireError::WrongType(key)),
    }
}

fn metadata_size(value: i64) -> Result<u32, WireError> {
    if !(0..=MAX_METADATA_SIZE as i64).contains(&value) {
        return Err(WireError::MetadataTooLarge { size: value });
    }
    Ok(value as u32)
}

fn entry(map: &mut BTreeMap<Vec<u8>, Bencode>, key: &str, value: Bencode) {
    map.insert(key.as_bytes().to_vec(), value);
}

/// BEP 10 handshake dict (message id 20, extended id 0).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtHandshake {
    /// The peer's id for ut_metadata, from `m`; 0 means disabled → None.
    pub ut_metadata: Option<u8>,
    pub ut_pex: Option<u8>,
    /// > MAX_METADATA_SIZE → WireError.
    pub metadata_size: Option<u32>,
    /// `v`, lossy UTF-8, capped at 64 chars.
    pub client: Option<String>,
    /// `p`; 0 is read as absent.
    pub listen_port: Option<u16>,
    /// The peer's request queue depth.
    pub reqq: Option<u32>,
}

impl ExtHandshake {
    pub fn parse(payload: &[u8]) -> Result<ExtHandshake, WireError> {
        let root = bencode::parse(payload)?;
        dict(&root)?;
        let (ut_metadata, ut_pex) = match root.get(b"m") {
            None => (None, None),
            Some(m) => {
                dict(m).map_err(|_| WireError::WrongType("m"))?;
                // BEP 10: an id of 0 means the extension is disabled.
                let id = |key| int_in(m, key, 0..=255).map(|v| v.filter(|&v| v != 0));
                (
                    id("ut_metadata")?.map(|v| v as u8),
                    id("ut_pex")?.map(|v| v as u8),
                )
            }
        };
        let metadata_size = int(&root, "metadata_size")?
            .map(metadata_size)
            .transpose()?;
        let client = bytes(&root, "v")?.map(|v| {
            String::from_utf8_lossy(v)
                .chars()
                .take(MAX_CLIENT_CHARS)
                .collect()
        });
        let listen_port = int_in(&root, "p", 0..=u16::MAX as i64)?
            .filter(|&p| p != 0)
            .map(|p| p as u16);
        let reqq = int_in(&root, "reqq", 0..=u32::MAX as i64)?.map(|v| v as u32);
        Ok(ExtHandshake {
            ut_metadata,
            ut_pex,
            metadata_size,
            client,
            listen_port,
            reqq,
        })
    }

    /// The bencoded payload (not framed). `m` is always present, as BEP 10
    /// requires, even when it names no extension.
    pub fn encode(&self) -> Vec<u8> {
        let mut m = BTreeMap::new();
        let ids = [("ut_metadata", self.ut_metadata), ("ut_pex", self.ut_pex)];
        for (name, id) in ids {
            if let Some(id) = id {
                entry(&mut m, name, Bencode::Int(id.into()));
            }
        }
        let mut root = BTreeMap::new();
        entry(&mut root, "m", Bencode::Dict(m));
        if let Some(size) = self.metadata_size {
            entry(&mut root, "metadata_size", Bencode::Int(size.into()));
        }
        if let Some(client) = &self.client {
            entry(&mut root, "v", Bencode::Bytes(client.as_bytes().to_vec()));
        }
        if let Some(port) = self.listen_port {
            entry(&mut root, "p", Bencode::Int(port.into()));
        }
        if let Some(reqq) = self.reqq {
            entry(&mut root, "reqq", Bencode::Int(reqq.into()));
        }
        Bencode::Dict(root).to_bytes()
    }
}

const METADATA_REQUEST: i64 = 0;
const METADATA_DATA: i64 = 1;
const METADATA_REJECT: i64 = 2;

/// BEP 9.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetadataMessage<'a> {
    Request {
        piece: u32,
    },
    Data {
        piece: u32,
        total_size: u32,
        data: &'a [u8],
    },
    Reject {
        piece: u32,
    },
}

impl<'a> MetadataMessage<'a> {
    /// The dict, then (for Data) the raw piece bytes after it. Data longer
    /// than 16 KiB, or a total_size > MAX_METADATA_SIZE, is an error; so are
    /// bytes after a Request or Reject dict. Whether the piece index and the
    /// data length agree with total_size is the metadata assembler's check.
    pub fn parse(payload: &'a [u8]) -> Result<MetadataMessage<'a>, WireError> {
        let (root, used) = bencode::parse_prefix(payload)?;
        dict(&root)?;
        let rest = &payload[used..];
        let msg_type = int(&root, "msg_type")?.ok_or(WireError::MissingKey("msg_type"))?;
        let piece = int_in(&root, "piece", 0..=u32::MAX as i64)?
            .ok_or(WireError::MissingKey("piece"))? as u32;
        let no_trailing = || match rest.len() {
            0 => Ok(()),
            count => Err(WireError::TrailingBytes { count }),
        };
        match msg_type {
            METADATA_REQUEST => no_trailing().map(|_| MetadataMessage::Request { piece }),
            METADATA_REJECT => no_trailing().map(|_| MetadataMessage::Reject { piece }),
            METADATA_DATA => {
                let total_size = int(&root, "total_size")?
                    .ok_or(WireError::MissingKey("total_size"))
                    .and_then(metadata_size)?;
                if rest.len() > METADATA_PIECE_LEN {
                    return Err(WireError::MetadataPieceTooLong { len: rest.len() });
                }
                Ok(MetadataMessage::Data {
                    piece,
                    total_size,
                    data: rest,
                })
            }
            msg_type => Err(WireError::UnknownMetadataType { msg_type }),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut root = BTreeMap::new();
        let (msg_type, piece, data) = match *self {
            MetadataMessage::Request { piece } => (METADATA_REQUEST, piece, None),
            MetadataMessage::Reject { piece } => (METADATA_REJECT, piece, None),
            MetadataMessage::Data {
                piece,
                total_size,
                data,
            } => {
                entry(&mut root, "total_size", Bencode::Int(total_size.into()));
                (METADATA_DATA, piece, Some(data))
            }
        };
        entry(&mut root, "msg_type", Bencode::Int(msg_type));
        entry(&mut root, "piece", Bencode::Int(piece.into()));
        let mut out = Bencode::Dict(root).to_bytes();
        out.extend_from_slice(data.unwrap_or_default());
        out
    }
}

/// BEP 11: compact IPv4 (6 bytes) and IPv6 (18 bytes) lists in added/added6
/// and dropped/dropped6.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pex {
    pub added: Vec<SocketAddr>,
    pub dropped: Vec<SocketAddr>,
}

impl Pex {
    /// At most MAX_PEX_PEERS of each list are read (IPv4 first, then IPv6);
    /// the rest is ignored. The `.f` flag strings are not read.
    pub fn parse(payload: &[u8]) -> Result<Pex, WireError> {
        let root = bencode::parse(payload)?;
        dict(&root)?;
        let list = |v4: &'static str, v6: &'static str| -> Result<Vec<SocketAddr>, WireError> {
            let mut peers = compact(bytes(&root, v4)?, v4, 6)?;
            peers.extend(compact(bytes(&root, v6)?, v6, 18)?);
            peers.truncate(MAX_PEX_PEERS);
            Ok(peers)
        };
        Ok(Pex {
            added: list("added", "added6")?,
            dropped: list("dropped", "dropped6")?,
        })
    }

    /// `added` and `dropped` are always written (libtorrent does too); the
    /// IPv6 keys only when they hold peers.
    pub fn encode(&self) -> Vec<u8> {
        let mut root = BTreeMap::new();
        for (peers, v4, v6) in [
            (&self.added, "added", "added6"),
            (&self.dropped, "dropped", "dropped6"),
        ] {
            let (mut four, mut six) = (Vec::new(), Vec::new());
            for peer in peers {
                let port = peer.port().to_be_bytes();
                let (list, ip) = match peer.ip() {
                    IpAddr::V4(ip) => (&mut four, ip.octets().to_vec()),
                    IpAddr::V6(ip) => (&mut six, ip.octets().to_vec()),
                };
                list.extend_from_slice(&ip);
                list.extend_from_slice(&port);
            }
            entry(&mut root, v4, Bencode::Bytes(four));
            if !six.is_empty() {
                entry(&mut root, v6, Bencode::Bytes(six));
            }
        }
        Bencode::Dict(root).to_bytes()
    }
}

/// A compact peer list: `size` is 6 (IPv4 + port) or 18 (IPv6 + port). Only
/// the first MAX_PEX_PEERS entries become addresses.
fn compact(
    bytes: Option<&[u8]>,
    key: &'static str,
    size: usize,
) -> Result<Vec<SocketAddr>, WireError> {
    let bytes = bytes.unwrap_or_default();
    if !bytes.len().is_multiple_of(size) {
        return Err(WireError::BadCompactLength {
            key,
            len: bytes.len(),
        });
    }
    let peer = |chunk: &[u8]| {
        let (ip, port) = chunk.split_at(size - 2);
        let ip = match size {
            6 => IpAddr::V4(Ipv4Addr::from(array::<4>(ip))),
            _ => IpAddr::V6(Ipv6Addr::from(array::<16>(ip))),
        };
        SocketAddr::new(ip, u16::from_be_bytes(array(port)))
    };
    Ok(bytes
        .chunks_exact(size)
        .take(MAX_PEX_PEERS)
        .map(peer)
        .collect())
}
