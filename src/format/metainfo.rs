//! Metainfo (BEP 3 v1 .torrent files), with BEP 47 padding files, BEP 12
//! announce-list and BEP 19 url-list.
//!
//! Owns validation of everything a torrent claims. Must never turn a name from
//! a torrent into a file-system path: `FileEntry::path` is a list of checked
//! segments for display and URL building only.

use super::InfoHash;

/// One file of a torrent, placed in torrent space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path segments below the torrent's name (for a single-file torrent: just
    /// the name). Each segment is non-empty, not `.`/`..`, and has no `/` or NUL.
    pub path: Vec<String>,
    pub length: u64,
    /// Byte offset of the file's first byte in torrent space.
    pub offset: u64,
    /// BEP 47 padding file (`attr` contains `p`): zeros, never shown or fetched.
    pub padding: bool,
}

/// A validated v1 torrent.
#[derive(Debug, Clone)]
pub struct Metainfo {
    pub info_hash: InfoHash,
    pub name: String,
    pub piece_length: u64,
    /// SHA-1 of each piece; `pieces.len()` equals the piece count.
    pub pieces: Vec<[u8; 20]>,
    pub files: Vec<FileEntry>,
    /// Sum of all file lengths, padding included.
    pub total_length: u64,
    /// Announce tiers (BEP 12); a lone `announce` becomes one tier.
    pub trackers: Vec<Vec<String>>,
    /// Web seeds (BEP 19 `url-list`).
    pub web_seeds: Vec<String>,
    pub private: bool,
    /// The raw bytes of the info dict exactly as they appeared; the info hash
    /// is their SHA-1.
    pub info_bytes: Vec<u8>,
}
