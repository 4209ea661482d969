//! The BitTorrent peer-wire codec: the handshake and the framed messages of
//! BEP 3, with the fast extension (BEP 6) and the extension protocol (BEP 10).
//! The bencoded payloads carried inside extended messages (BEP 10 handshake,
//! BEP 9 ut_metadata, BEP 11 ut_pex) live in [`ext`] and are re-exported here.
//!
//! Owns the byte layout of every message, both ways, and the size limits a
//! peer's bytes must fit. Must never do I/O, keep state between calls, or
//! allocate in proportion to a length a peer merely claims: the engine reads
//! the length prefix with [`message_len`], refuses anything over
//! [`MAX_MESSAGE_LEN`] before buffering, and hands complete frames to
//! [`parse_message`], whose messages borrow from its buffer.
//!
//! # Implementation
//! A frame is `<u32 length><u8 id><payload>`. The length is checked first by
//! hand (it decides "need more bytes" versus "too long"); the body is then a
//! complete slice, read with nom's complete big-endian parsers. Fixed-size
//! messages must have exactly their size: BEP 3 leaves no room for padding,
//! and accepting slack would break the byte-exact round trip the fuzz target
//! checks.

mod ext;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::Ipv4Addr;

use nom::bytes::complete::{tag, take};
use nom::number::complete::{be_u16, be_u32, u8 as byte};
use nom::{Finish, IResult, Parser};
use sha1::{Digest, Sha1};

use crate::format::bencode;
use crate::format::InfoHash;

pub use ext::{ExtHandshake, MetadataMessage, Pex, MAX_PEX_PEERS, METADATA_PIECE_LEN};

pub const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";
/// pstrlen (1) + pstr (19) + reserved (8) + info hash (20) + peer id (20).
pub const HANDSHAKE_LEN: usize = 68;
/// The block size every client uses; we request and serve at most this.
pub const BLOCK_LEN: u32 = 16 * 1024;

/// Most pieces a torrent we accept can have: the metainfo parser takes at
/// most `bencode::MAX_INPUT` bytes, and each piece costs 20 bytes of
/// `pieces`, so no torrent we hold has more (838,860 pieces).
pub const MAX_PIECES: u32 = (bencode::MAX_INPUT / 20) as u32;

/// Room for the bencoded dict in front of a ut_metadata data piece. Ours is
/// under 60 bytes (`d8:msg_typei1e5:piecei511e10:total_sizei8388608ee`);
/// 1 KiB leaves room for the extra keys other clients add.
const METADATA_DICT_SLACK: usize = 1024;

/// Largest message body accepted (length prefix value), derived from the
/// largest legal message: a bitfield of MAX_PIECES pieces (id + 104,858
/// bytes), or a ut_metadata data message (id + extended id + dict + 16 KiB).
/// A Piece message (id + 8 + BLOCK_LEN) is smaller than both.
pub const MAX_MESSAGE_LEN: usize = max(
    1 + (MAX_PIECES as usize).div_ceil(8),
    2 + METADATA_DICT_SLACK + METADATA_PIECE_LEN,
);

const fn max(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

/// Our local extension ids, advertised in our extended handshake's `m`.
pub const UT_METADATA_ID: u8 = 1;
pub const UT_PEX_ID: u8 = 2;
/// ut_metadata pieces are 16 KiB; metadata_size above this is refused (BEP 9
/// DoS bound). An info dict of 8 MiB holds 400k piece hashes, far beyond
/// any torrent worth streaming, and its buffer must fit a 512 MiB board.
pub const MAX_METADATA_SIZE: u32 = 8 * 1024 * 1024;

// Message ids, BEP 3 then BEP 6 then BEP 10.
pub const MSG_CHOKE: u8 = 0;
pub const MSG_UNCHOKE: u8 = 1;
pub const MSG_INTERESTED: u8 = 2;
pub const MSG_NOT_INTERESTED: u8 = 3;
pub const MSG_HAVE: u8 = 4;
pub const MSG_BITFIELD: u8 = 5;
pub const MSG_REQUEST: u8 = 6;
pub const MSG_PIECE: u8 = 7;
pub const MSG_CANCEL: u8 = 8;
pub const MSG_PORT: u8 = 9;
pub const MSG_SUGGEST: u8 = 13;
pub const MSG_HAVE_ALL: u8 = 14;
pub const MSG_HAVE_NONE: u8 = 15;
pub const MSG_REJECT: u8 = 16;
pub const MSG_ALLOWED_FAST: u8 = 17;
pub const MSG_EXTENDED: u8 = 20;
/// The extended message id of the BEP 10 handshake.
pub const EXT_HANDSHAKE_ID: u8 = 0;

/// Reserved-byte bits of the handshake (byte index, mask).
const RESERVED_EXTENSIONS: (usize, u8) = (5, 0x10);
const RESERVED_FAST: (usize, u8) = (7, 0x04);
const RESERVED_DHT: (usize, u8) = (7, 0x01);

/// What was wrong with a peer's bytes. Every variant carries the numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The handshake does not start with 19 "BitTorrent protocol".
    BadProtocol,
    /// A handshake buffer that is not exactly HANDSHAKE_LEN bytes.
    HandshakeLength {
        got: usize,
    },
    /// A length prefix over MAX_MESSAGE_LEN.
    TooLong {
        len: usize,
        max: usize,
    },
    /// A fixed-size message whose length prefix is not its size.
    BadLength {
        id: u8,
        expected: usize,
        got: usize,
    },
    /// A variable-size message shorter than its fixed header.
    TooShort {
        id: u8,
        min: usize,
        got: usize,
    },
    /// A Piece whose data is longer than BLOCK_LEN.
    BlockTooLong {
        len: usize,
    },
    /// A Request, Cancel or Reject for 0 bytes or more than BLOCK_LEN.
    BadBlockLength {
        id: u8,
        len: u32,
    },
    BadBencode(String),
    /// A bencoded payload that is not a dict.
    NotADict,
    MissingKey(&'static str),
    /// A key holding the wrong bencode type.
    WrongType(&'static str),
    /// An integer out of the range its key allows.
    BadValue {
        key: &'static str,
        value: i64,
    },
    MetadataTooLarge {
        size: i64,
    },
    /// A ut_metadata data piece longer than 16 KiB.
    MetadataPieceTooLong {
        len: usize,
    },
    /// A ut_metadata msg_type other than 0, 1, 2.
    UnknownMetadataType {
        msg_type: i64,
    },
    /// Bytes after a ut_metadata request or reject dict.
    TrailingBytes {
        count: usize,
    },
    /// A compact peer list whose length is not a multiple of its entry size.
    BadCompactLength {
        key: &'static str,
        len: usize,
    },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use WireError::*;
        match self {
            BadProtocol => f.write_str("peer wire: handshake is not \"BitTorrent protocol\""),
            HandshakeLength { got } => {
                write!(
                    f,
                    "peer wire: handshake of {got} bytes, not {HANDSHAKE_LEN}"
                )
            }
            TooLong { len, max } => {
                write!(
                    f,
                    "peer wire: message of {len} bytes exceeds the {max}-byte limit"
                )
            }
            BadLength { id, expected, got } => write!(
                f,
                "peer wire: message id {id} has length {got}, expected {expected}"
            ),
            TooShort { id, min, got } => write!(
                f,
                "peer wire: message id {id} has length {got}, at least {min} needed"
            ),
            BlockTooLong { len } => {
                write!(
                    f,
                    "peer wire: piece block of {len} bytes exceeds {BLOCK_LEN}"
                )
            }
            BadBlockLength { id, len } => write!(
                f,
                "peer wire: message id {id} asks for a block of {len} bytes (1..={BLOCK_LEN})"
            ),
            BadBencode(e) => write!(f, "peer wire: {e}"),
            NotADict => f.write_str("peer wire: extended payload is not a bencoded dict"),
            MissingKey(key) => write!(f, "peer wire: missing key `{key}`"),
            WrongType(key) => write!(f, "peer wire: key `{key}` has the wrong type"),
            BadValue { key, value } => write!(f, "peer wire: `{key}` = {value} is out of range"),
            MetadataTooLarge { size } => write!(
                f,
                "peer wire: metadata of {size} bytes exceeds the {MAX_METADATA_SIZE}-byte limit"
            ),
            MetadataPieceTooLong { len } => write!(
                f,
                "peer wire: metadata piece of {len} bytes exceeds {METADATA_PIECE_LEN}"
            ),
            UnknownMetadataType { msg_type } => {
                write!(f, "peer wire: unknown ut_metadata msg_type {msg_type}")
            }
            TrailingBytes { count } => {
                write!(f, "peer wire: {count} bytes after a ut_metadata dict")
            }
            BadCompactLength { key, len } => write!(
                f,
                "peer wire: compact list `{key}` of {len} bytes is not a whole number of peers"
            ),
        }
    }
}

impl std::error::Error for WireError {}

impl From<bencode::BencodeError> for WireError {
    fn from(e: bencode::BencodeError) -> Self {
        WireError::BadBencode(e.to_string())
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PeerId(pub [u8; 20]);

impl PeerId {
    /// Azureus-style: `-SM0100-` (SM = streme, then major, minor and patch of
    /// CARGO_PKG_VERSION and a 0) then 12 random alphanumerics, so peers'
    /// logs show the client and the id stays printable.
    pub fn generate() -> PeerId {
        let mut id = [0u8; 20];
        id[..8].copy_from_slice(&client_prefix(env!("CARGO_PKG_VERSION")));
        for b in &mut id[8..] {
            *b = fastrand::alphanumeric() as u8;
        }
        PeerId(id)
    }
}

/// `-SMabc0-` for version a.b.c; a component over 9 becomes a letter (10 =
/// A … 35 = Z), as Azureus-style clients do, and anything else a `0`.
fn client_prefix(version: &str) -> [u8; 8] {
    let mut prefix = *b"-SM0000-";
    for (slot, part) in prefix[3..6].iter_mut().zip(version.split('.')) {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        *slot = match digits.parse::<u32>() {
            Ok(n @ 0..=9) => b'0' + n as u8,
            Ok(n @ 10..=35) => b'A' + (n - 10) as u8,
            _ => b'0',
        };
    }
    prefix
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshake {
    pub reserved: [u8; 8],
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
}

impl Handshake {
    /// Ours: extension protocol (reserved[5] & 0x10), fast extension
    /// (reserved[7] & 0x04) and DHT (reserved[7] & 0x01) bits set.
    pub fn new(info_hash: InfoHash, peer_id: PeerId) -> Handshake {
        let mut reserved = [0u8; 8];
        for (i, mask) in [RESERVED_EXTENSIONS, RESERVED_FAST, RESERVED_DHT] {
            reserved[i] |= mask;
        }
        Handshake {
            reserved,
            info_hash,
            peer_id,
        }
    }

    pub fn encode(&self) -> [u8; HANDSHAKE_LEN] {
        let mut out = [0u8; HANDSHAKE_LEN];
        out[0] = PROTOCOL.len() as u8;
        out[1..20].copy_from_slice(PROTOCOL);
        out[20..28].copy_from_slice(&self.reserved);
        out[28..48].copy_from_slice(&self.info_hash.0);
        out[48..68].copy_from_slice(&self.peer_id.0);
        out
    }

    /// Exactly HANDSHAKE_LEN bytes; a wrong pstrlen/protocol is
    /// WireError::BadProtocol.
    pub fn parse(bytes: &[u8]) -> Result<Handshake, WireError> {
        if bytes.len() != HANDSHAKE_LEN {
            return Err(WireError::HandshakeLength { got: bytes.len() });
        }
        let parsed: IResult<&[u8], _> = (
            tag(&[PROTOCOL.len() as u8][..]),
            tag(&PROTOCOL[..]),
            take(8usize),
            take(20usize),
            take(20usize),
        )
            .parse(bytes);
        // The length is checked, so only the two tags can fail.
        let (_, (_, _, reserved, info_hash, peer_id)) =
            parsed.finish().map_err(|_| WireError::BadProtocol)?;
        Ok(Handshake {
            reserved: array(reserved),
            info_hash: InfoHash(array(info_hash)),
            peer_id: PeerId(array(peer_id)),
        })
    }

    pub fn supports_extensions(&self) -> bool {
        self.bit(RESERVED_EXTENSIONS)
    }

    pub fn supports_fast(&self) -> bool {
        self.bit(RESERVED_FAST)
    }

    pub fn supports_dht(&self) -> bool {
        self.bit(RESERVED_DHT)
    }

    fn bit(&self, (i, mask): (usize, u8)) -> bool {
        self.reserved[i] & mask != 0
    }
}

/// A slice whose length the parser already fixed, as an array.
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct BlockRef {
    pub piece: u32,
    pub offset: u32,
    pub length: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    KeepAlive,
    Choke,
    Unchoke,
    Interested,
    NotInterested,
    Have(u32),
    Bitfield(&'a [u8]),
    Request(BlockRef),
    Piece {
        piece: u32,
        offset: u32,
        data: &'a [u8],
    },
    Cancel(BlockRef),
    Port(u16),
    // BEP 6
    Suggest(u32),
    HaveAll,
    HaveNone,
    Reject(BlockRef),
    AllowedFast(u32),
    // BEP 10: id 0 is the extended handshake
    Extended {
        id: u8,
        payload: &'a [u8],
    },
    /// An id we do not know: BEP 3 says ignore it (the caller does). Its
    /// payload is skipped; `encode` writes the id alone.
    Unknown {
        id: u8,
    },
}

/// Just the length prefix, to size the read buffer: Ok(None) if < 4 bytes.
/// The total includes the 4-byte prefix; a prefix over MAX_MESSAGE_LEN is
/// TooLong, so the caller can refuse before buffering.
pub fn message_len(buf: &[u8]) -> Result<Option<usize>, WireError> {
    let Some(prefix) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(array(prefix)) as usize;
    if len > MAX_MESSAGE_LEN {
        return Err(WireError::TooLong {
            len,
            max: MAX_MESSAGE_LEN,
        });
    }
    Ok(Some(4 + len))
}

/// One message from the front of `buf` (which starts at a length prefix).
/// Ok(None): need more bytes. Ok(Some((message, consumed))).
/// Errors: length prefix > MAX_MESSAGE_LEN (TooLong, so the caller can
/// refuse before buffering), a fixed-size message with the wrong length
/// (BadLength{id, expected, got}, lengths as the prefix counts them: id
/// included), a Piece whose data is longer than BLOCK_LEN, a
/// Request/Cancel/Reject whose length is 0 or > BLOCK_LEN.
pub fn parse_message(buf: &[u8]) -> Result<Option<(Message<'_>, usize)>, WireError> {
    let Some(total) = message_len(buf)? else {
        return Ok(None);
    };
    let Some(frame) = buf.get(4..total) else {
        return Ok(None);
    };
    let Some((&id, body)) = frame.split_first() else {
        return Ok(Some((Message::KeepAlive, total)));
    };
    Ok(Some((parse_body(id, body)?, total)))
}

/// The message of one complete frame, without its prefix and id.
fn parse_body(id: u8, body: &[u8]) -> Result<Message<'_>, WireError> {
    // Length as the prefix counts it, for the errors.
    let got = 1 + body.len();
    let exact = |expected: usize| {
        if got == expected {
            Ok(())
        } else {
            Err(WireError::BadLength { id, expected, got })
        }
    };
    let at_least = |min: usize| {
        if got >= min {
            Ok(())
        } else {
            Err(WireError::TooShort { id, min, got })
        }
    };
    let message = match id {
        MSG_CHOKE | MSG_UNCHOKE | MSG_INTERESTED | MSG_NOT_INTERESTED | MSG_HAVE_ALL
        | MSG_HAVE_NONE => {
            exact(1)?;
            match id {
                MSG_CHOKE => Message::Choke,
                MSG_UNCHOKE => Message::Unchoke,
                MSG_INTERESTED => Message::Interested,
                MSG_NOT_INTERESTED => Message::NotInterested,
                MSG_HAVE_ALL => Message::HaveAll,
                _ => Message::HaveNone,
            }
        }
        MSG_HAVE | MSG_SUGGEST | MSG_ALLOWED_FAST => {
            exact(5)?;
            let piece = read(be_u32, body);
            match id {
                MSG_HAVE => Message::Have(piece),
                MSG_SUGGEST => Message::Suggest(piece),
                _ => Message::AllowedFast(piece),
            }
        }
        MSG_BITFIELD => Message::Bitfield(body),
        MSG_REQUEST | MSG_CANCEL | MSG_REJECT => {
            exact(13)?;
            let (piece, offset, length) = read((be_u32, be_u32, be_u32), body);
            if length == 0 || length > BLOCK_LEN {
                return Err(WireError::BadBlockLength { id, len: length });
            }
            let block = BlockRef {
                piece,
                offset,
                length,
            };
            match id {
                MSG_REQUEST => Message::Request(block),
                MSG_CANCEL => Message::Cancel(block),
                _ => Message::Reject(block),
            }
        }
        MSG_PIECE => {
            at_least(9)?;
            let (piece, offset) = read((be_u32, be_u32), body);
            let data = &body[8..];
            if data.len() > BLOCK_LEN as usize {
                return Err(WireError::BlockTooLong { len: data.len() });
            }
            Message::Piece {
                piece,
                offset,
                data,
            }
        }
        MSG_PORT => {
            exact(3)?;
            Message::Port(read(be_u16, body))
        }
        MSG_EXTENDED => {
            at_least(2)?;
            Message::Extended {
                id: read(byte, body),
                payload: &body[1..],
            }
        }
        _ => Message::Unknown { id },
    };
    Ok(message)
}

/// Runs a fixed-width nom parser over a body whose length was checked.
fn read<'a, O, P>(mut parser: P, body: &'a [u8]) -> O
where
    P: Parser<&'a [u8], Output = O, Error = nom::error::Error<&'a [u8]>>,
{
    match parser.parse(body) {
        Ok((_, out)) => out,
        // Unreachable: every caller checked the body is long enough.
        Err(e) => panic!("peer wire: fixed-width read on a checked body failed: {e:?}"),
    }
}

/// Appends the framed message (length prefix included).
pub fn encode(message: &Message<'_>, out: &mut Vec<u8>) {
    let frame = |out: &mut Vec<u8>, id: u8, parts: &[&[u8]]| {
        let len = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
        out.extend_from_slice(&(len as u32).to_be_bytes());
        out.push(id);
        parts.iter().for_each(|p| out.extend_from_slice(p));
    };
    let block = |b: &BlockRef| {
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&b.piece.to_be_bytes());
        bytes[4..8].copy_from_slice(&b.offset.to_be_bytes());
        bytes[8..].copy_from_slice(&b.length.to_be_bytes());
        bytes
    };
    match message {
        Message::KeepAlive => out.extend_from_slice(&[0; 4]),
        Message::Choke => frame(out, MSG_CHOKE, &[]),
        Message::Unchoke => frame(out, MSG_UNCHOKE, &[]),
        Message::Interested => frame(out, MSG_INTERESTED, &[]),
        Message::NotInterested => frame(out, MSG_NOT_INTERESTED, &[]),
        Message::HaveAll => frame(out, MSG_HAVE_ALL, &[]),
        Message::HaveNone => frame(out, MSG_HAVE_NONE, &[]),
        Message::Have(piece) => frame(out, MSG_HAVE, &[&piece.to_be_bytes()]),
        Message::Suggest(piece) => frame(out, MSG_SUGGEST, &[&piece.to_be_bytes()]),
        Message::AllowedFast(piece) => frame(out, MSG_ALLOWED_FAST, &[&piece.to_be_bytes()]),
        Message::Bitfield(bits) => frame(out, MSG_BITFIELD, &[bits]),
        Message::Request(b) => frame(out, MSG_REQUEST, &[&block(b)]),
        Message::Cancel(b) => frame(out, MSG_CANCEL, &[&block(b)]),
        Message::Reject(b) => frame(out, MSG_REJECT, &[&block(b)]),
        Message::Piece {
            piece,
            offset,
            data,
        } => frame(
            out,
            MSG_PIECE,
            &[&piece.to_be_bytes(), &offset.to_be_bytes(), data],
        ),
        Message::Port(port) => frame(out, MSG_PORT, &[&port.to_be_bytes()]),
        Message::Extended { id, payload } => frame(out, MSG_EXTENDED, &[&[*id], payload]),
        Message::Unknown { id } => frame(out, *id, &[]),
    }
}

/// A received bitfield is valid for `piece_count` pieces: exact length
/// ceil(n/8) and the spare bits zero (BEP 3 says drop the peer otherwise).
pub fn bitfield_fits(bits: &[u8], piece_count: u32) -> bool {
    if bits.len() != (piece_count as usize).div_ceil(8) {
        return false;
    }
    let spare = (8 - piece_count % 8) % 8;
    match bits.last() {
        // Bit 7 of byte 0 is piece 0, so the spare bits are the low ones.
        Some(&last) => last & ((1u8 << spare) - 1) == 0,
        None => true,
    }
}

/// The BEP 6 canonical allowed-fast set: up to `k` distinct piece indexes
/// that a peer at `ip` may request while choked, derived from SHA-1 over
/// (ip & 0xffffff00) ‖ info hash so both sides compute the same set. BEP 6
/// defines it for IPv4 only. Fewer than `k` come back only when the torrent
/// has fewer pieces.
pub fn allowed_fast_set(
    ip: Ipv4Addr,
    info_hash: &InfoHash,
    piece_count: u32,
    k: usize,
) -> Vec<u32> {
    // Without the cap a torrent of fewer than k pieces would loop forever.
    let k = k.min(piece_count as usize);
    let mut set = Vec::with_capacity(k);
    let masked = u32::from(ip) & 0xffff_ff00;
    let mut x = Vec::with_capacity(24);
    x.extend_from_slice(&masked.to_be_bytes());
    x.extend_from_slice(&info_hash.0);
    while set.len() < k {
        x = Sha1::digest(&x).to_vec();
        for word in x.chunks_exact(4) {
            if set.len() == k {
                break;
            }
            let index = u32::from_be_bytes(array(word)) % piece_count;
            if !set.contains(&index) {
                set.push(index);
            }
        }
    }
    set
}
