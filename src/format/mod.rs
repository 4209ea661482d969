//! Pure formats: bytes in, values out. No I/O, no async, everything here is
//! fuzzable and must treat its input as hostile.

pub mod bencode;
pub mod magnet;
pub mod media;
pub mod metainfo;
pub mod template;

use std::fmt;

/// A BitTorrent v1 info hash: the SHA-1 of the raw bytes of the info dict.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHash(pub [u8; 20]);

impl InfoHash {
    /// Parses 40 hex characters, in either case.
    pub fn from_hex(s: &str) -> Option<InfoHash> {
        let bytes = s.as_bytes();
        if bytes.len() != 40 {
            return None;
        }
        let mut out = [0u8; 20];
        for (i, pair) in bytes.chunks(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            out[i] = (hi * 16 + lo) as u8;
        }
        Some(InfoHash(out))
    }

    /// Lower-case hex, the form used in URLs, file names and logs.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_accepts_upper_case() {
        let h = InfoHash::from_hex("DD8255ECDC7CA55FB0BBF81323D87062DB1F6D1C").unwrap();
        assert_eq!(h.to_hex(), "dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c");
        assert!(InfoHash::from_hex("zz8255ecdc7ca55fb0bbf81323d87062db1f6d1c").is_none());
        assert!(InfoHash::from_hex("dd82").is_none());
    }
}
