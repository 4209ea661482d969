//! The persistent index: which pieces of which torrent are verified AND durable.
//!
//! Owns the byte format of `<dir>/index` and the piece bitfield. Must never list
//! a piece whose bytes have not been fdatasync'ed (the store guarantees that by
//! only encoding its `durable` bits) and never trusts the file it reads back:
//! a bad checksum or impossible geometry is a corrupt index, not a panic.
//!
//! # Format (big-endian)
//! ```text
//! "STREMEIDX1\n"  u32 torrent_count
//! per torrent: info_hash[20] piece_length:u64 total_length:u64 piece_count:u32
//!              pieces_per_segment:u32 bitfield[ceil(piece_count/8)]  (MSB first)
//! sha1[20] of everything before
//! ```
//! The file is small (a bit per piece) and always replaced atomically, so a
//! rewrite per flush costs far less than the bytes it makes durable.

use nom::bytes::complete::{tag, take};
use nom::number::complete::{be_u32, be_u64};
use nom::{IResult, Parser};
use sha1::{Digest, Sha1};

use super::segment::Geometry;
use crate::format::InfoHash;

const MAGIC: &[u8] = b"STREMEIDX1\n";
const HEADER_LEN: u64 = MAGIC.len() as u64 + 4;
const ENTRY_FIXED_LEN: u64 = 20 + 8 + 8 + 4 + 4;
const TRAILER_LEN: u64 = 20;

/// One bit per piece. Memory is piece_count / 8 bytes, independent of piece size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitfield {
    bits: Vec<u8>,
    len: u32,
}

impl Bitfield {
    pub fn new(len: u32) -> Bitfield {
        Bitfield {
            bits: vec![0; (len as usize).div_ceil(8)],
            len,
        }
    }

    fn from_bytes(bytes: &[u8], len: u32) -> Bitfield {
        let mut field = Bitfield {
            bits: bytes.to_vec(),
            len,
        };
        // Spare bits past `len` are ignored, so a set spare bit cannot count as a piece.
        if len % 8 != 0 {
            if let Some(last) = field.bits.last_mut() {
                *last &= 0xffu8 << (8 - len % 8);
            }
        }
        field
    }

    pub fn get(&self, i: u32) -> bool {
        i < self.len && self.bits[(i / 8) as usize] & (0x80 >> (i % 8)) != 0
    }

    pub fn set(&mut self, i: u32, on: bool) {
        if i >= self.len {
            return;
        }
        let mask = 0x80 >> (i % 8);
        if on {
            self.bits[(i / 8) as usize] |= mask;
        } else {
            self.bits[(i / 8) as usize] &= !mask;
        }
    }

    pub fn count(&self) -> u32 {
        self.bits.iter().map(|b| b.count_ones()).sum()
    }

    pub fn any_in(&self, range: std::ops::Range<u32>) -> bool {
        range.into_iter().any(|i| self.get(i))
    }

    pub fn clear(&mut self) {
        self.bits.fill(0);
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bits
    }
}

/// What the index says about one torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub info_hash: InfoHash,
    pub geometry: Geometry,
    pub durable: Bitfield,
}

/// The encoded length of an index over torrents with these piece counts, so
/// the quota can be charged before the file is written.
pub fn encoded_len(piece_counts: impl Iterator<Item = u32>) -> u64 {
    HEADER_LEN
        + piece_counts
            .map(|n| ENTRY_FIXED_LEN + u64::from(n).div_ceil(8))
            .sum::<u64>()
        + TRAILER_LEN
}

pub fn encode<'a>(
    entries: impl Iterator<Item = (&'a InfoHash, &'a Geometry, &'a Bitfield)>,
) -> Vec<u8> {
    let mut body = Vec::new();
    let mut count = 0u32;
    for (ih, g, durable) in entries {
        body.extend_from_slice(&ih.0);
        body.extend_from_slice(&g.piece_length().to_be_bytes());
        body.extend_from_slice(&g.total_length().to_be_bytes());
        body.extend_from_slice(&g.piece_count().to_be_bytes());
        body.extend_from_slice(&g.pieces_per_segment().to_be_bytes());
        body.extend_from_slice(durable.as_bytes());
        count += 1;
    }
    let mut out = Vec::with_capacity(body.len() + 40);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&body);
    let sum: [u8; 20] = Sha1::digest(&out).into();
    out.extend_from_slice(&sum);
    out
}

/// Why an index file was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum IndexError {
    Checksum,
    Malformed,
}

pub fn decode(bytes: &[u8]) -> Result<Vec<Entry>, IndexError> {
    if bytes.len() < TRAILER_LEN as usize {
        return Err(IndexError::Malformed);
    }
    let (body, sum) = bytes.split_at(bytes.len() - TRAILER_LEN as usize);
    let computed: [u8; 20] = Sha1::digest(body).into();
    if computed[..] != *sum {
        return Err(IndexError::Checksum);
    }
    match index(body) {
        Ok((&[], entries)) => Ok(entries),
        _ => Err(IndexError::Malformed),
    }
}

fn index(input: &[u8]) -> IResult<&[u8], Vec<Entry>> {
    let (mut input, (_, count)) = (tag(MAGIC), be_u32).parse(input)?;
    // No `with_capacity(count)`: the count is untrusted until the entries parse.
    let mut entries = Vec::new();
    for _ in 0..count {
        let (rest, e) = entry(input)?;
        entries.push(e);
        input = rest;
    }
    Ok((input, entries))
}

fn entry(input: &[u8]) -> IResult<&[u8], Entry> {
    let (input, (ih, piece_length, total_length, piece_count, per)) =
        (take(20usize), be_u64, be_u64, be_u32, be_u32).parse(input)?;
    let geometry =
        Geometry::new(piece_length, total_length, piece_count, per).ok_or_else(|| {
            nom::Err::Failure(nom::error::Error::new(input, nom::error::ErrorKind::Verify))
        })?;
    let (input, bits) = take((piece_count as usize).div_ceil(8)).parse(input)?;
    let mut hash = [0u8; 20];
    hash.copy_from_slice(ih);
    Ok((
        input,
        Entry {
            info_hash: InfoHash(hash),
            geometry,
            durable: Bitfield::from_bytes(bits, piece_count),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (InfoHash, Geometry, Bitfield) {
        let g = Geometry::new(16384, 16384 * 10 - 5, 10, 4).unwrap();
        let mut b = Bitfield::new(10);
        b.set(0, true);
        b.set(9, true);
        (InfoHash([7; 20]), g, b)
    }

    #[test]
    fn round_trip_and_length_is_predicted() {
        let (ih, g, b) = sample();
        let bytes = encode(std::iter::once((&ih, &g, &b)));
        assert_eq!(bytes.len() as u64, encoded_len(std::iter::once(10)));
        let back = decode(&bytes).unwrap();
        assert_eq!(
            back,
            vec![Entry {
                info_hash: ih,
                geometry: g,
                durable: b
            }]
        );
        assert_eq!(back[0].durable.count(), 2);
    }

    #[test]
    fn flipped_byte_or_truncation_is_refused() {
        let (ih, g, b) = sample();
        let mut bytes = encode(std::iter::once((&ih, &g, &b)));
        bytes[20] ^= 1;
        assert_eq!(decode(&bytes), Err(IndexError::Checksum));
        let bytes = encode(std::iter::once((&ih, &g, &b)));
        assert!(decode(&bytes[..bytes.len() - 3]).is_err());
    }

    #[test]
    fn impossible_geometry_with_valid_checksum_is_malformed() {
        let (ih, _, b) = sample();
        let bad = Geometry::new(16384, 16384 * 10, 10, 4).unwrap();
        let mut bytes = encode(std::iter::once((&ih, &bad, &b)));
        // Claim 11 pieces for a 10-piece length, then re-checksum so only the geometry is wrong.
        let at = MAGIC.len() + 4 + 20 + 16;
        bytes[at..at + 4].copy_from_slice(&11u32.to_be_bytes());
        let n = bytes.len() - 20;
        let sum: [u8; 20] = Sha1::digest(&bytes[..n]).into();
        bytes[n..].copy_from_slice(&sum);
        assert_eq!(decode(&bytes), Err(IndexError::Malformed));
    }

    #[test]
    fn spare_bits_do_not_count() {
        let b = Bitfield::from_bytes(&[0xff, 0xff], 10);
        assert_eq!(b.count(), 10);
        assert!(!b.get(10));
    }
}
