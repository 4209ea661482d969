//! KRPC, the DHT's message format (BEP 5): bencoded dicts over UDP.
//!
//! Owns the four queries (ping, find_node, get_peers, announce_peer), the
//! one response shape they share, and errors, both ways: [`parse`] reads a
//! hostile datagram into a [`Message`], [`Message::encode`] writes one. Pure:
//! bytes in, values out; it must never do I/O, keep state, or trust a length
//! or count the sender claims.
//!
//! # Design
//! A response does not say which query it answers, so [`Response`] holds every
//! field any of them may carry, and the engine picks what its query expects.
//! Bounds are part of the grammar: ids are exactly 20 bytes, a response lists
//! at most [`MAX_NODES`] nodes and [`MAX_VALUES`] peers, a token is at most
//! [`MAX_TOKEN`] bytes. Anything beyond is not truncated but rejected, so a
//! liar costs one parse and no memory. Keys we do not use (`v`, `ip`,
//! `nodes6`, BEP 33's `scrape`...) are skipped, so a parsed message re-encodes
//! to a message that parses to the same value (the fuzz target's invariant).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

use nom::bytes::complete::take;
use nom::combinator::{all_consuming, map};
use nom::multi::many0;
use nom::number::complete::be_u16;
use nom::{Finish, IResult, Parser};

use crate::format::bencode::{self, Bencode, Node};
use crate::format::InfoHash;

/// Bytes in a node id and an info hash.
pub const ID_LEN: usize = 20;
/// Bytes of one compact node: id, IPv4 address, port.
pub const COMPACT_NODE_LEN: usize = 26;
/// Bytes of one compact peer: IPv4 address, port.
pub const COMPACT_PEER_LEN: usize = 6;
/// Most nodes accepted in one response. BEP 5 says 8 (k); some clients send
/// a few more, and 16 still bounds the parse at 416 bytes.
pub const MAX_NODES: usize = 16;
/// Most peers accepted in one `values` list. libtorrent sends up to 100; a
/// full list is 800 bytes of a datagram.
pub const MAX_VALUES: usize = 100;
/// Longest token accepted. libtorrent sends 4 bytes, we send 20 (a SHA-1).
pub const MAX_TOKEN: usize = 64;
/// Longest transaction id accepted. Clients use 2 to 4 bytes.
pub const MAX_TID: usize = 16;
/// Longest error message kept; error texts are for logs only.
pub const MAX_ERROR_TEXT: usize = 256;
/// Largest datagram parsed. Real KRPC fits an Ethernet MTU; the largest
/// message we accept (100 values, a token, ids) is under 1 KiB.
pub const MAX_DATAGRAM: usize = 1500;

/// BEP 5 error codes.
pub const ERROR_GENERIC: i64 = 201;
pub const ERROR_SERVER: i64 = 202;
pub const ERROR_PROTOCOL: i64 = 203;
pub const ERROR_METHOD_UNKNOWN: i64 = 204;

/// A 160-bit node id (also the key space of info hashes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub [u8; ID_LEN]);

impl NodeId {
    pub fn random() -> NodeId {
        let mut id = [0u8; ID_LEN];
        id.iter_mut().for_each(|b| *b = fastrand::u8(..));
        NodeId(id)
    }

    /// The XOR metric; compared as big-endian numbers, smaller is closer.
    pub fn distance(&self, other: &NodeId) -> [u8; ID_LEN] {
        let mut d = [0u8; ID_LEN];
        for (i, b) in d.iter_mut().enumerate() {
            *b = self.0[i] ^ other.0[i];
        }
        d
    }

    /// Leading bits this id shares with `other` (160 when equal).
    pub fn common_prefix_len(&self, other: &NodeId) -> usize {
        let d = self.distance(other);
        d.iter()
            .position(|&b| b != 0)
            .map_or(ID_LEN * 8, |i| i * 8 + d[i].leading_zeros() as usize)
    }
}

impl From<InfoHash> for NodeId {
    fn from(h: InfoHash) -> NodeId {
        NodeId(h.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId(")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))?;
        write!(f, ")")
    }
}

/// A node as `find_node` and `get_peers` return it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CompactNode {
    pub id: NodeId,
    pub addr: SocketAddrV4,
}

/// One KRPC message: the transaction id and what it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Echoed by the responder; how we match responses to queries.
    pub tid: Vec<u8>,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Query(Query),
    Response(Response),
    Error { code: i64, text: Vec<u8> },
}

/// A query, with the querying node's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    Ping {
        id: NodeId,
    },
    FindNode {
        id: NodeId,
        target: NodeId,
    },
    GetPeers {
        id: NodeId,
        info_hash: InfoHash,
    },
    AnnouncePeer {
        id: NodeId,
        info_hash: InfoHash,
        port: u16,
        /// Use the UDP source port instead of `port` (for peers behind NAT).
        implied_port: bool,
        token: Vec<u8>,
    },
}

impl Query {
    pub fn sender(&self) -> NodeId {
        match self {
            Query::Ping { id }
            | Query::FindNode { id, .. }
            | Query::GetPeers { id, .. }
            | Query::AnnouncePeer { id, .. } => *id,
        }
    }

    fn method(&self) -> &'static [u8] {
        match self {
            Query::Ping { .. } => b"ping",
            Query::FindNode { .. } => b"find_node",
            Query::GetPeers { .. } => b"get_peers",
            Query::AnnouncePeer { .. } => b"announce_peer",
        }
    }
}

/// A response to any query. Empty `nodes`/`values` are the same as absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub id: NodeId,
    pub nodes: Vec<CompactNode>,
    pub values: Vec<SocketAddrV4>,
    pub token: Option<Vec<u8>>,
}

impl Response {
    pub fn id_only(id: NodeId) -> Response {
        Response {
            id,
            nodes: Vec::new(),
            values: Vec::new(),
            token: None,
        }
    }
}

/// Why a datagram is not a KRPC message we accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KrpcError {
    TooLarge {
        len: usize,
        max: usize,
    },
    Bencode(bencode::BencodeError),
    NotADict,
    /// A required key is missing or has the wrong type.
    Missing(&'static str),
    BadTid {
        len: usize,
    },
    UnknownType(Vec<u8>),
    UnknownMethod(Vec<u8>),
    BadIdLength {
        key: &'static str,
        len: usize,
    },
    BadCompactLength {
        key: &'static str,
        len: usize,
    },
    TooManyNodes {
        count: usize,
        max: usize,
    },
    TooManyValues {
        count: usize,
        max: usize,
    },
    TokenTooLong {
        len: usize,
        max: usize,
    },
    BadPort(i64),
    ErrorTextTooLong {
        len: usize,
    },
}

impl fmt::Display for KrpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use KrpcError::*;
        match self {
            TooLarge { len, max } => write!(f, "krpc: datagram of {len} bytes exceeds {max}"),
            Bencode(e) => write!(f, "krpc: {e}"),
            NotADict => f.write_str("krpc: message is not a dict"),
            Missing(key) => write!(f, "krpc: missing or mistyped key {key:?}"),
            BadTid { len } => write!(f, "krpc: transaction id of {len} bytes"),
            UnknownType(y) => write!(f, "krpc: unknown message type {:?}", lossy(y)),
            UnknownMethod(q) => write!(f, "krpc: unknown method {:?}", lossy(q)),
            BadIdLength { key, len } => write!(f, "krpc: {key} of {len} bytes, not 20"),
            BadCompactLength { key, len } => {
                write!(
                    f,
                    "krpc: {key} of {len} bytes is not a whole number of entries"
                )
            }
            TooManyNodes { count, max } => write!(f, "krpc: {count} nodes, more than {max}"),
            TooManyValues { count, max } => write!(f, "krpc: {count} peers, more than {max}"),
            TokenTooLong { len, max } => write!(f, "krpc: token of {len} bytes, more than {max}"),
            BadPort(p) => write!(f, "krpc: port {p} out of range"),
            ErrorTextTooLong { len } => write!(f, "krpc: error text of {len} bytes"),
        }
    }
}

impl std::error::Error for KrpcError {}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(32)]).into_owned()
}

/// Parses one datagram.
pub fn parse(datagram: &[u8]) -> Result<Message, KrpcError> {
    if datagram.len() > MAX_DATAGRAM {
        return Err(KrpcError::TooLarge {
            len: datagram.len(),
            max: MAX_DATAGRAM,
        });
    }
    let root = bencode::parse(datagram).map_err(KrpcError::Bencode)?;
    if root.as_dict().is_none() {
        return Err(KrpcError::NotADict);
    }
    let tid = bytes(&root, "t")?;
    if tid.is_empty() || tid.len() > MAX_TID {
        return Err(KrpcError::BadTid { len: tid.len() });
    }
    let body = match bytes(&root, "y")? {
        b"q" => Body::Query(parse_query(&root)?),
        b"r" => Body::Response(parse_response(dict(&root, "r")?)?),
        b"e" => parse_error(&root)?,
        other => return Err(KrpcError::UnknownType(other.to_vec())),
    };
    Ok(Message {
        tid: tid.to_vec(),
        body,
    })
}

fn parse_query(root: &Node<'_>) -> Result<Query, KrpcError> {
    let method = bytes(root, "q")?;
    let args = dict(root, "a")?;
    let id = node_id(args, "id")?;
    Ok(match method {
        b"ping" => Query::Ping { id },
        b"find_node" => Query::FindNode {
            id,
            target: node_id(args, "target")?,
        },
        b"get_peers" => Query::GetPeers {
            id,
            info_hash: InfoHash(node_id(args, "info_hash")?.0),
        },
        b"announce_peer" => {
            let port = int(args, "port")?;
            let port = u16::try_from(port).map_err(|_| KrpcError::BadPort(port))?;
            let implied_port = match args.get(b"implied_port") {
                None => false,
                Some(v) => v.as_int().ok_or(KrpcError::Missing("implied_port"))? != 0,
            };
            Query::AnnouncePeer {
                id,
                info_hash: InfoHash(node_id(args, "info_hash")?.0),
                port,
                implied_port,
                token: token(bytes(args, "token")?)?.to_vec(),
            }
        }
        other => return Err(KrpcError::UnknownMethod(other.to_vec())),
    })
}

fn parse_response(r: &Node<'_>) -> Result<Response, KrpcError> {
    let nodes = match r.get(b"nodes") {
        None => Vec::new(),
        Some(v) => compact_nodes(v.as_bytes().ok_or(KrpcError::Missing("nodes"))?)?,
    };
    let values = match r.get(b"values") {
        None => Vec::new(),
        Some(v) => {
            let list = v.as_list().ok_or(KrpcError::Missing("values"))?;
            if list.len() > MAX_VALUES {
                return Err(KrpcError::TooManyValues {
                    count: list.len(),
                    max: MAX_VALUES,
                });
            }
            list.iter()
                .map(|peer| {
                    let b = peer.as_bytes().ok_or(KrpcError::Missing("values"))?;
                    if b.len() != COMPACT_PEER_LEN {
                        return Err(KrpcError::BadCompactLength {
                            key: "values",
                            len: b.len(),
                        });
                    }
                    Ok(compact_peer(b))
                })
                .collect::<Result<_, _>>()?
        }
    };
    let token = match r.get(b"token") {
        None => None,
        Some(v) => Some(token(v.as_bytes().ok_or(KrpcError::Missing("token"))?)?.to_vec()),
    };
    Ok(Response {
        id: node_id(r, "id")?,
        nodes,
        values,
        token,
    })
}

fn parse_error(root: &Node<'_>) -> Result<Body, KrpcError> {
    let list = root
        .get(b"e")
        .and_then(Node::as_list)
        .ok_or(KrpcError::Missing("e"))?;
    let [code, text] = list else {
        return Err(KrpcError::Missing("e"));
    };
    let code = code.as_int().ok_or(KrpcError::Missing("e"))?;
    let text = text.as_bytes().ok_or(KrpcError::Missing("e"))?;
    if text.len() > MAX_ERROR_TEXT {
        return Err(KrpcError::ErrorTextTooLong { len: text.len() });
    }
    Ok(Body::Error {
        code,
        text: text.to_vec(),
    })
}

fn bytes<'a>(dict: &Node<'a>, key: &'static str) -> Result<&'a [u8], KrpcError> {
    dict.get(key.as_bytes())
        .and_then(Node::as_bytes)
        .ok_or(KrpcError::Missing(key))
}

fn int(dict: &Node<'_>, key: &'static str) -> Result<i64, KrpcError> {
    dict.get(key.as_bytes())
        .and_then(Node::as_int)
        .ok_or(KrpcError::Missing(key))
}

fn dict<'n, 'a>(dict: &'n Node<'a>, key: &'static str) -> Result<&'n Node<'a>, KrpcError> {
    dict.get(key.as_bytes())
        .filter(|v| v.as_dict().is_some())
        .ok_or(KrpcError::Missing(key))
}

fn node_id(dict: &Node<'_>, key: &'static str) -> Result<NodeId, KrpcError> {
    let b = bytes(dict, key)?;
    let id: [u8; ID_LEN] = b
        .try_into()
        .map_err(|_| KrpcError::BadIdLength { key, len: b.len() })?;
    Ok(NodeId(id))
}

fn token(b: &[u8]) -> Result<&[u8], KrpcError> {
    if b.len() > MAX_TOKEN {
        return Err(KrpcError::TokenTooLong {
            len: b.len(),
            max: MAX_TOKEN,
        });
    }
    Ok(b)
}

/// Reads BEP 5's compact node info: 26-byte entries back to back.
pub fn compact_nodes(b: &[u8]) -> Result<Vec<CompactNode>, KrpcError> {
    if !b.len().is_multiple_of(COMPACT_NODE_LEN) {
        return Err(KrpcError::BadCompactLength {
            key: "nodes",
            len: b.len(),
        });
    }
    let count = b.len() / COMPACT_NODE_LEN;
    if count > MAX_NODES {
        return Err(KrpcError::TooManyNodes {
            count,
            max: MAX_NODES,
        });
    }
    compact_node_list(b)
}

/// Reads any number of compact nodes (the saved table; callers bound the length).
pub(crate) fn compact_node_list(b: &[u8]) -> Result<Vec<CompactNode>, KrpcError> {
    let parsed: IResult<&[u8], Vec<CompactNode>> = all_consuming(many0(compact_node)).parse(b);
    parsed
        .finish()
        .map(|(_, nodes)| nodes)
        .map_err(|_| KrpcError::BadCompactLength {
            key: "nodes",
            len: b.len(),
        })
}

fn compact_node(input: &[u8]) -> IResult<&[u8], CompactNode> {
    map((take(ID_LEN), take(4usize), be_u16), |(id, ip, port)| {
        let id: &[u8] = id;
        let ip: &[u8] = ip;
        CompactNode {
            id: NodeId(id.try_into().expect("took 20 bytes")),
            addr: SocketAddrV4::new(Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]), port),
        }
    })
    .parse(input)
}

fn compact_peer(b: &[u8]) -> SocketAddrV4 {
    SocketAddrV4::new(
        Ipv4Addr::new(b[0], b[1], b[2], b[3]),
        u16::from_be_bytes([b[4], b[5]]),
    )
}

pub fn encode_compact_node(node: &CompactNode, out: &mut Vec<u8>) {
    out.extend_from_slice(&node.id.0);
    encode_compact_peer(&node.addr, out);
}

fn encode_compact_peer(addr: &SocketAddrV4, out: &mut Vec<u8>) {
    out.extend_from_slice(&addr.ip().octets());
    out.extend_from_slice(&addr.port().to_be_bytes());
}

fn key(k: &str) -> Vec<u8> {
    k.as_bytes().to_vec()
}

impl Message {
    /// The datagram. Keys come out sorted, as bencode requires.
    pub fn encode(&self) -> Vec<u8> {
        let mut root = BTreeMap::new();
        root.insert(key("t"), Bencode::Bytes(self.tid.clone()));
        match &self.body {
            Body::Query(q) => {
                root.insert(key("y"), Bencode::Bytes(b"q".to_vec()));
                root.insert(key("q"), Bencode::Bytes(q.method().to_vec()));
                root.insert(key("a"), Bencode::Dict(query_args(q)));
            }
            Body::Response(r) => {
                root.insert(key("y"), Bencode::Bytes(b"r".to_vec()));
                root.insert(key("r"), Bencode::Dict(response_fields(r)));
            }
            Body::Error { code, text } => {
                root.insert(key("y"), Bencode::Bytes(b"e".to_vec()));
                root.insert(
                    key("e"),
                    Bencode::List(vec![Bencode::Int(*code), Bencode::Bytes(text.clone())]),
                );
            }
        }
        Bencode::Dict(root).to_bytes()
    }
}

fn query_args(q: &Query) -> BTreeMap<Vec<u8>, Bencode> {
    let mut a = BTreeMap::new();
    a.insert(key("id"), Bencode::Bytes(q.sender().0.to_vec()));
    match q {
        Query::Ping { .. } => {}
        Query::FindNode { target, .. } => {
            a.insert(key("target"), Bencode::Bytes(target.0.to_vec()));
        }
        Query::GetPeers { info_hash, .. } => {
            a.insert(key("info_hash"), Bencode::Bytes(info_hash.0.to_vec()));
        }
        Query::AnnouncePeer {
            info_hash,
            port,
            implied_port,
            token,
            ..
        } => {
            a.insert(key("info_hash"), Bencode::Bytes(info_hash.0.to_vec()));
            a.insert(key("port"), Bencode::Int(i64::from(*port)));
            if *implied_port {
                a.insert(key("implied_port"), Bencode::Int(1));
            }
            a.insert(key("token"), Bencode::Bytes(token.clone()));
        }
    }
    a
}

fn response_fields(r: &Response) -> BTreeMap<Vec<u8>, Bencode> {
    let mut f = BTreeMap::new();
    f.insert(key("id"), Bencode::Bytes(r.id.0.to_vec()));
    if !r.nodes.is_empty() {
        let mut nodes = Vec::with_capacity(r.nodes.len() * COMPACT_NODE_LEN);
        r.nodes
            .iter()
            .for_each(|n| encode_compact_node(n, &mut nodes));
        f.insert(key("nodes"), Bencode::Bytes(nodes));
    }
    if !r.values.is_empty() {
        let values = r
            .values
            .iter()
            .map(|p| {
                let mut b = Vec::with_capacity(COMPACT_PEER_LEN);
                encode_compact_peer(p, &mut b);
                Bencode::Bytes(b)
            })
            .collect();
        f.insert(key("values"), Bencode::List(values));
    }
    if let Some(token) = &r.token {
        f.insert(key("token"), Bencode::Bytes(token.clone()));
    }
    f
}

#[cfg(test)]
mod tests;
