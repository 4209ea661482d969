//! The uTP packet header (BEP 29): 20 fixed bytes, then a chain of
//! extensions (selective ACK is the one we speak), then the payload.
//!
//! A pure codec: bytes in, a [`Packet`] borrowing the payload out, and
//! [`Header::encode`] back. It never touches a socket or a clock. Unknown
//! extensions are kept as raw bytes, so parse → encode → parse agrees
//! (the fuzz target `utp_header` checks exactly that).
//!
//! # Layout (network byte order)
//! ```text
//! 0       4       8               16              24              32
//! | type  | ver   | extension     | connection_id                 |
//! | timestamp_microseconds                                        |
//! | timestamp_difference_microseconds                             |
//! | wnd_size                                                      |
//! | seq_nr                        | ack_nr                        |
//! ```
//! Each extension is `next: u8, len: u8, len bytes`; the header's
//! `extension` byte names the first, each `next` the one after, 0 ends.

use nom::bytes::complete::take;
use nom::number::complete::{be_u16, be_u32, u8 as byte};
use nom::{Finish, IResult, Parser};

/// The fixed part of every packet.
pub const HEADER_LEN: usize = 20;
/// The only version of uTP there is.
pub const VERSION: u8 = 1;
/// Extension ids (BEP 29): 1 is the selective ACK bitmask.
pub const EXT_NONE: u8 = 0;
pub const EXT_SACK: u8 = 1;
/// A header with more extensions than this is hostile: libtorrent sends at
/// most two (SACK and its close reason), and each costs a loop turn here.
pub const MAX_EXTENSIONS: usize = 8;

/// The five packet types, by their number on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Data = 0,
    Fin = 1,
    State = 2,
    Reset = 3,
    Syn = 4,
}

impl Type {
    fn from_nibble(n: u8) -> Option<Type> {
        Some(match n {
            0 => Type::Data,
            1 => Type::Fin,
            2 => Type::State,
            3 => Type::Reset,
            4 => Type::Syn,
            _ => return None,
        })
    }
}

/// One extension of the chain. `Sack` holds the bitmask: bit `i` (LSB
/// first within each byte) says packet `ack_nr + 2 + i` arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extension {
    Sack(Vec<u8>),
    Other { id: u8, bytes: Vec<u8> },
}

impl Extension {
    fn id(&self) -> u8 {
        match self {
            Extension::Sack(_) => EXT_SACK,
            Extension::Other { id, .. } => *id,
        }
    }
    fn bytes(&self) -> &[u8] {
        match self {
            Extension::Sack(b) | Extension::Other { bytes: b, .. } => b,
        }
    }
}

/// The header of one packet, extensions included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub kind: Type,
    pub connection_id: u16,
    pub timestamp: u32,
    pub timestamp_difference: u32,
    pub wnd_size: u32,
    pub seq_nr: u16,
    pub ack_nr: u16,
    pub extensions: Vec<Extension>,
}

/// A parsed datagram: the header and the payload after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<'a> {
    pub header: Header,
    pub payload: &'a [u8],
}

/// Why a datagram is not a uTP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer bytes than a header and its extensions need.
    Short { got: usize },
    /// The version nibble is not 1.
    Version(u8),
    /// The type nibble is past ST_SYN (4).
    Type(u8),
    /// More than [`MAX_EXTENSIONS`] in the chain.
    TooManyExtensions,
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::Short { got } => write!(f, "a uTP packet of {got} bytes is cut short"),
            HeaderError::Version(v) => write!(f, "uTP version {v} (only 1 exists)"),
            HeaderError::Type(t) => write!(f, "uTP packet type {t} (at most 4)"),
            HeaderError::TooManyExtensions => {
                write!(f, "more than {MAX_EXTENSIONS} uTP header extensions")
            }
        }
    }
}

impl std::error::Error for HeaderError {}

/// Whether a datagram's first byte looks like uTP (version 1, type 0..=4):
/// the dispatcher's test, cheap and without parsing. A KRPC message starts
/// with `d` (0x64: type 6), so the two never collide.
pub fn looks_like_utp(datagram: &[u8]) -> bool {
    datagram.len() >= HEADER_LEN
        && datagram[0] & 0x0f == VERSION
        && datagram[0] >> 4 <= Type::Syn as u8
}

/// The 20-byte header's fields in wire order: type/version, extension,
/// connection id, timestamp, timestamp difference, window, seq, ack.
type Fixed = (u8, u8, u16, u32, u32, u32, u16, u16);

fn fixed(input: &[u8]) -> IResult<&[u8], Fixed> {
    (byte, byte, be_u16, be_u32, be_u32, be_u32, be_u16, be_u16).parse(input)
}

fn extension(input: &[u8]) -> IResult<&[u8], (u8, &[u8])> {
    let (input, (next, len)) = (byte, byte).parse(input)?;
    let (input, bytes) = take(len as usize).parse(input)?;
    Ok((input, (next, bytes)))
}

/// Parses one datagram.
pub fn parse(datagram: &[u8]) -> Result<Packet<'_>, HeaderError> {
    let short = HeaderError::Short {
        got: datagram.len(),
    };
    let (mut rest, (type_ver, first, connection_id, timestamp, diff, wnd, seq, ack)) =
        fixed(datagram).finish().map_err(|_| short.clone())?;
    if type_ver & 0x0f != VERSION {
        return Err(HeaderError::Version(type_ver & 0x0f));
    }
    let kind = Type::from_nibble(type_ver >> 4).ok_or(HeaderError::Type(type_ver >> 4))?;
    let mut extensions = Vec::new();
    let mut id = first;
    while id != EXT_NONE {
        if extensions.len() == MAX_EXTENSIONS {
            return Err(HeaderError::TooManyExtensions);
        }
        let (after, (next, bytes)) = extension(rest).finish().map_err(|_| short.clone())?;
        extensions.push(match id {
            EXT_SACK => Extension::Sack(bytes.to_vec()),
            _ => Extension::Other {
                id,
                bytes: bytes.to_vec(),
            },
        });
        rest = after;
        id = next;
    }
    Ok(Packet {
        header: Header {
            kind,
            connection_id,
            timestamp,
            timestamp_difference: diff,
            wnd_size: wnd,
            seq_nr: seq,
            ack_nr: ack,
            extensions,
        },
        payload: rest,
    })
}

impl Packet<'_> {
    /// One line for a trace: the header's fields and the payload's length.
    pub fn describe(&self) -> String {
        let h = &self.header;
        let ext: Vec<String> = h
            .extensions
            .iter()
            .map(|e| match e {
                Extension::Sack(m) => format!("sack {m:02x?}"),
                Extension::Other { id, bytes } => format!("ext {id} {bytes:02x?}"),
            })
            .collect();
        format!(
            "{:?} id {} seq {} ack {} wnd {} ts {} tsdiff {} len {} {}",
            h.kind,
            h.connection_id,
            h.seq_nr,
            h.ack_nr,
            h.wnd_size,
            h.timestamp,
            h.timestamp_difference,
            self.payload.len(),
            ext.join(" ")
        )
    }
}

impl Header {
    /// The selective ACK bitmask, if the packet carries one.
    pub fn sack(&self) -> Option<&[u8]> {
        self.extensions.iter().find_map(|e| match e {
            Extension::Sack(b) => Some(b.as_slice()),
            _ => None,
        })
    }

    /// Bytes [`Header::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN
            + self
                .extensions
                .iter()
                .map(|e| 2 + e.bytes().len())
                .sum::<usize>()
    }

    /// Appends the header and its extensions to `out`. An extension longer
    /// than 255 bytes cannot be written and is cut to 255 (ours are ≤ 32).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(((self.kind as u8) << 4) | VERSION);
        out.push(self.extensions.first().map_or(EXT_NONE, Extension::id));
        out.extend_from_slice(&self.connection_id.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.timestamp_difference.to_be_bytes());
        out.extend_from_slice(&self.wnd_size.to_be_bytes());
        out.extend_from_slice(&self.seq_nr.to_be_bytes());
        out.extend_from_slice(&self.ack_nr.to_be_bytes());
        for (i, e) in self.extensions.iter().enumerate() {
            let next = self.extensions.get(i + 1).map_or(EXT_NONE, Extension::id);
            let bytes = &e.bytes()[..e.bytes().len().min(255)];
            out.push(next);
            out.push(bytes.len() as u8);
            out.extend_from_slice(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            kind: Type::Data,
            connection_id: 0xBEEF,
            timestamp: 0x0102_0304,
            timestamp_difference: 77,
            wnd_size: 1 << 20,
            seq_nr: 0xFFFF,
            ack_nr: 3,
            extensions: vec![Extension::Sack(vec![0b101, 0, 0, 0x80])],
        }
    }

    #[test]
    fn round_trip_with_sack_and_payload() {
        let h = sample();
        let mut bytes = Vec::new();
        h.encode(&mut bytes);
        assert_eq!(bytes.len(), h.encoded_len());
        bytes.extend_from_slice(b"payload");
        let p = parse(&bytes).unwrap();
        assert_eq!(p.header, h);
        assert_eq!(p.payload, b"payload");
        assert_eq!(p.header.sack(), Some(&[0b101, 0, 0, 0x80][..]));
    }

    #[test]
    fn exact_bytes_of_a_syn() {
        // The SYN libtorrent sends: type 4 version 1, no extension.
        let h = Header {
            kind: Type::Syn,
            connection_id: 0x1234,
            timestamp: 1,
            timestamp_difference: 0,
            wnd_size: 0,
            seq_nr: 0x00AA,
            ack_nr: 0,
            extensions: vec![],
        };
        let mut bytes = Vec::new();
        h.encode(&mut bytes);
        assert_eq!(
            bytes,
            [0x41, 0, 0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xAA, 0, 0]
        );
        assert!(looks_like_utp(&bytes));
        assert_eq!(parse(&bytes).unwrap().header, h);
    }

    #[test]
    fn unknown_extensions_survive_a_round_trip() {
        let mut h = sample();
        h.extensions.push(Extension::Other {
            id: 2,
            bytes: vec![9; 8],
        });
        let mut bytes = Vec::new();
        h.encode(&mut bytes);
        assert_eq!(parse(&bytes).unwrap().header, h);
    }

    #[test]
    fn refuses_what_is_not_utp() {
        assert_eq!(parse(&[0x41; 5]), Err(HeaderError::Short { got: 5 }));
        let mut bytes = Vec::new();
        sample().encode(&mut bytes);
        bytes[0] = 0x42;
        assert_eq!(parse(&bytes), Err(HeaderError::Version(2)));
        bytes[0] = 0x51;
        assert_eq!(parse(&bytes), Err(HeaderError::Type(5)));
        // A SACK that claims 4 bytes but the datagram ends first.
        let mut cut = Vec::new();
        sample().encode(&mut cut);
        cut.truncate(HEADER_LEN + 3);
        assert!(matches!(parse(&cut), Err(HeaderError::Short { .. })));
        // A KRPC query is not uTP.
        assert!(!looks_like_utp(
            b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"
        ));
    }

    #[test]
    fn a_long_extension_chain_is_refused() {
        let mut bytes = vec![0x01, 7];
        bytes.extend_from_slice(&[0; 18]);
        for _ in 0..MAX_EXTENSIONS + 1 {
            bytes.extend_from_slice(&[7, 0]);
        }
        assert_eq!(parse(&bytes), Err(HeaderError::TooManyExtensions));
    }
}
