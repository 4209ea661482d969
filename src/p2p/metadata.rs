//! A magnet's info dict, assembled from ut_metadata pieces (BEP 9).
//!
//! Owns the buffer of one torrent's metadata while it arrives in 16 KiB
//! pieces from peers, and the check that the whole hashes to the info hash.
//! It never trusts a peer's size beyond [`MAX_METADATA_SIZE`], and never
//! hands out bytes that failed the check.

use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};

use super::picker::PeerKey;
use super::wire::MAX_METADATA_SIZE;
use crate::format::InfoHash;

/// The piece size of ut_metadata, fixed by BEP 9.
pub const PIECE: u32 = 16 * 1024;

/// A piece asked of a peer that has not answered in this long is asked of another.
const ASK_AGAIN_AFTER: Duration = Duration::from_secs(5);

/// Why assembled metadata was thrown away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataError {
    /// A peer announced a size of 0 or above the cap.
    BadSize { size: u32 },
    /// A piece of the wrong length, or outside the metadata.
    BadPiece { piece: u32, len: usize },
    /// The assembled dict does not hash to the info hash.
    WrongHash,
}

impl std::fmt::Display for MetadataError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetadataError::BadSize { size } => write!(
                f,
                "metadata_size {size} is not between 1 and {MAX_METADATA_SIZE}"
            ),
            MetadataError::BadPiece { piece, len } => {
                write!(f, "metadata piece {piece} has a wrong length ({len} bytes)")
            }
            MetadataError::WrongHash => f.write_str("the metadata does not match the info hash"),
        }
    }
}

/// The metadata of one torrent, piece by piece.
pub struct Assembly {
    buf: Vec<u8>,
    /// Per piece: received, or asked of whom and when.
    pieces: Vec<Slot>,
    /// The peers that sent pieces, to blame if the hash fails.
    pub contributors: Vec<PeerKey>,
}

#[derive(Clone, Copy, PartialEq)]
enum Slot {
    Open,
    Asked(PeerKey, Instant),
    Done,
}

impl Assembly {
    pub fn new(size: u32) -> Result<Assembly, MetadataError> {
        if size == 0 || size > MAX_METADATA_SIZE {
            return Err(MetadataError::BadSize { size });
        }
        Ok(Assembly {
            buf: vec![0; size as usize],
            pieces: vec![Slot::Open; size.div_ceil(PIECE) as usize],
            contributors: Vec::new(),
        })
    }

    pub fn size(&self) -> u32 {
        self.buf.len() as u32
    }

    /// The next piece to ask `peer` for, if any is open or overdue.
    pub fn next_request(&mut self, peer: PeerKey, now: Instant) -> Option<u32> {
        let i = self.pieces.iter().position(|s| match s {
            Slot::Open => true,
            Slot::Asked(p, at) => *p != peer && now.duration_since(*at) >= ASK_AGAIN_AFTER,
            Slot::Done => false,
        })?;
        self.pieces[i] = Slot::Asked(peer, now);
        Some(i as u32)
    }

    /// Whether `peer` has a request outstanding.
    pub fn asked(&self, peer: PeerKey) -> bool {
        self.pieces
            .iter()
            .any(|s| matches!(s, Slot::Asked(p, _) if *p == peer))
    }

    /// A peer rejected or left: its pieces are open again.
    pub fn give_back(&mut self, peer: PeerKey) {
        for s in &mut self.pieces {
            if matches!(s, Slot::Asked(p, _) if *p == peer) {
                *s = Slot::Open;
            }
        }
    }

    /// A piece arrived. Returns true when every piece is in.
    pub fn receive(
        &mut self,
        peer: PeerKey,
        piece: u32,
        data: &[u8],
    ) -> Result<bool, MetadataError> {
        let i = piece as usize;
        let start = i * PIECE as usize;
        let want = (self.buf.len().saturating_sub(start)).min(PIECE as usize);
        if i >= self.pieces.len() || data.len() != want {
            return Err(MetadataError::BadPiece {
                piece,
                len: data.len(),
            });
        }
        if self.pieces[i] != Slot::Done {
            self.buf[start..start + want].copy_from_slice(data);
            self.pieces[i] = Slot::Done;
            if !self.contributors.contains(&peer) {
                self.contributors.push(peer);
            }
        }
        Ok(self.pieces.iter().all(|s| *s == Slot::Done))
    }

    /// The info dict, if it hashes to `info_hash`.
    pub fn finish(self, info_hash: &InfoHash) -> Result<Vec<u8>, MetadataError> {
        let digest: [u8; 20] = Sha1::digest(&self.buf).into();
        if digest != info_hash.0 {
            return Err(MetadataError::WrongHash);
        }
        Ok(self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_assemble_and_verify_against_the_info_hash() {
        let info: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        let ih = InfoHash(Sha1::digest(&info).into());
        let mut a = Assembly::new(info.len() as u32).unwrap();
        let now = Instant::now();
        assert_eq!(a.next_request(1, now), Some(0));
        assert_eq!(a.next_request(1, now), Some(1));
        assert_eq!(a.next_request(2, now), Some(2));
        // All asked and none overdue: nothing more to ask.
        assert_eq!(a.next_request(3, now), None);
        assert!(!a.receive(1, 0, &info[..16384]).unwrap());
        assert_eq!(
            a.receive(1, 2, &info[32768..40000 - 1]),
            Err(MetadataError::BadPiece {
                piece: 2,
                len: 7231
            })
        );
        assert!(!a.receive(1, 1, &info[16384..32768]).unwrap());
        assert!(a.receive(2, 2, &info[32768..]).unwrap());
        assert_eq!(a.contributors, vec![1, 2]);
        assert_eq!(a.finish(&ih).unwrap(), info);
    }

    #[test]
    fn a_wrong_dict_is_refused_and_sizes_are_capped() {
        let mut a = Assembly::new(3).unwrap();
        assert!(a.receive(7, 0, b"abc").unwrap());
        assert_eq!(a.finish(&InfoHash([0; 20])), Err(MetadataError::WrongHash));
        assert!(Assembly::new(0).is_err());
        assert!(Assembly::new(MAX_METADATA_SIZE + 1).is_err());
    }

    #[test]
    fn overdue_and_abandoned_pieces_are_asked_again() {
        let mut a = Assembly::new(PIECE).unwrap();
        let t0 = Instant::now();
        assert_eq!(a.next_request(1, t0), Some(0));
        assert_eq!(a.next_request(2, t0 + Duration::from_secs(1)), None);
        assert_eq!(a.next_request(2, t0 + ASK_AGAIN_AFTER), Some(0));
        a.give_back(2);
        assert!(!a.asked(2));
        assert_eq!(a.next_request(3, t0), Some(0));
    }
}
