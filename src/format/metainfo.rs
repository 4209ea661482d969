//! Metainfo (BEP 3 v1 .torrent files), with BEP 47 padding files, BEP 12
//! announce-list and BEP 19 url-list.
//!
//! Owns validation of everything a torrent claims. Must never turn a name from
//! a torrent into a file-system path: `FileEntry::path` is a list of checked
//! segments for display and URL building only.
//!
//! # Implementation
//! The info dict is read from the borrowed bencode tree, and the info hash is
//! the SHA-1 of its raw span, never of a re-encoding: real torrents carry
//! unsorted keys and fields we drop, and either would change the hash. The
//! files list and its path rules live in `files`; this module holds the
//! torrent around them (pieces, trackers, web seeds) and writes it back out.

mod files;

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use sha1::{Digest, Sha1};
use sha2::Sha256;

use super::bencode::{self, Bencode, BencodeError, Node};
use super::InfoHash;

/// Largest piece length accepted. Real torrents stop at 16-32 MiB; a piece is
/// buffered whole while it is verified, so this bounds that buffer.
pub const MAX_PIECE_LENGTH: u64 = 64 * 1024 * 1024;

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

/// Why a torrent was refused, with the value that made it so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetainfoError {
    Bencode(BencodeError),
    Missing(&'static str),
    WrongType {
        key: &'static str,
        expected: &'static str,
    },
    /// A name or path segment that is not UTF-8 (and has no `.utf-8` twin).
    NotUtf8 {
        key: &'static str,
        lossy: String,
    },
    PieceLength {
        value: i64,
    },
    PiecesLength {
        len: usize,
    },
    PieceCount {
        expected: u64,
        got: usize,
    },
    FileLength {
        index: usize,
        value: i64,
    },
    /// A name or path with `..`, `.`, an empty segment, `/`, `\` or NUL.
    UnsafePath {
        path: String,
    },
    /// Both `length` (single-file) and `files` (multi-file).
    LengthAndFiles,
    NoFiles,
    TotalLengthOverflow,
    /// Every file is empty: nothing to stream or verify.
    NoContent,
    /// A BEP 52 v2-only info dict (`meta version` 2 or a `file tree`, and no
    /// v1 `pieces`). `v2_hash` is the SHA-256 of its raw span, in hex.
    V2Only {
        v2_hash: String,
    },
}

impl fmt::Display for MetainfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use MetainfoError::*;
        match self {
            Bencode(e) => write!(f, "torrent: {e}"),
            Missing(key) => write!(f, "torrent: missing `{key}`"),
            WrongType { key, expected } => write!(f, "torrent: `{key}` is not {expected}"),
            NotUtf8 { key, lossy } => write!(f, "torrent: `{key}` is not UTF-8: {lossy:?}"),
            PieceLength { value } => {
                write!(
                    f,
                    "torrent: piece length {value} is not in 1..={MAX_PIECE_LENGTH}"
                )
            }
            PiecesLength { len } => {
                write!(f, "torrent: `pieces` is {len} bytes, not a multiple of 20")
            }
            PieceCount { expected, got } => {
                write!(
                    f,
                    "torrent: {got} piece hashes for a length that needs {expected}"
                )
            }
            FileLength { index, value } => write!(f, "torrent: file {index} has length {value}"),
            UnsafePath { path } => write!(f, "torrent: unsafe file path {path:?}"),
            LengthAndFiles => f.write_str("torrent: has both `length` and `files`"),
            NoFiles => f.write_str("torrent: `files` is empty"),
            TotalLengthOverflow => f.write_str("torrent: total length overflows 64 bits"),
            NoContent => f.write_str("torrent: total length is 0"),
            V2Only { v2_hash } => write!(
                f,
                "torrent: BitTorrent v2-only torrents are not supported yet (v2 info hash {v2_hash}; a hybrid v1+v2 torrent works)"
            ),
        }
    }
}

impl std::error::Error for MetainfoError {}

impl From<BencodeError> for MetainfoError {
    fn from(e: BencodeError) -> Self {
        MetainfoError::Bencode(e)
    }
}

impl FileEntry {
    /// The last path segment: what the file is called.
    pub fn file_name(&self) -> &str {
        self.path.last().map_or("", String::as_str)
    }
}

impl Metainfo {
    /// Parses and validates a whole .torrent file.
    pub fn from_torrent_bytes(bytes: &[u8]) -> Result<Metainfo, MetainfoError> {
        let root = bencode::parse(bytes)?;
        if root.as_dict().is_none() {
            return Err(MetainfoError::WrongType {
                key: "torrent",
                expected: "a dict",
            });
        }
        let info = root.get(b"info").ok_or(MetainfoError::Missing("info"))?;
        from_info_node(info, announce_tiers(&root), url_list(&root))
    }

    /// Parses and validates an info dict on its own (BEP 9 metadata), with
    /// trackers and web seeds learnt elsewhere (a magnet).
    pub fn from_info_bytes(
        info: &[u8],
        trackers: Vec<Vec<String>>,
        web_seeds: Vec<String>,
    ) -> Result<Metainfo, MetainfoError> {
        let info = bencode::parse(info)?;
        let web_seeds = dedupe(web_seeds.into_iter(), &mut HashSet::new());
        from_info_node(&info, dedupe_tiers(trackers), web_seeds)
    }

    pub fn piece_count(&self) -> u32 {
        // Fits: `pieces` came from at most MAX_INPUT bytes, 20 per piece.
        self.pieces.len() as u32
    }

    /// Bytes in piece `index`: `piece_length`, less for the last piece, 0
    /// past the end.
    pub fn piece_size(&self, index: u32) -> u64 {
        let start = u64::from(index).saturating_mul(self.piece_length);
        self.total_length
            .saturating_sub(start)
            .min(self.piece_length)
    }

    /// The name to show for the torrent.
    pub fn display_name(&self) -> &str {
        &self.name
    }

    /// A .torrent around the original info bytes, so that parsing it back
    /// gives the same info hash, plus our trackers and web seeds.
    pub fn to_torrent_bytes(&self) -> Vec<u8> {
        let strings = |list: &[String]| {
            Bencode::List(
                list.iter()
                    .map(|s| Bencode::Bytes(s.as_bytes().to_vec()))
                    .collect(),
            )
        };
        let mut root = BTreeMap::new();
        if let Some(first) = self.trackers.first().and_then(|tier| tier.first()) {
            root.insert(
                b"announce".to_vec(),
                Bencode::Bytes(first.as_bytes().to_vec()),
            );
            let tiers = self.trackers.iter().map(|tier| strings(tier)).collect();
            root.insert(b"announce-list".to_vec(), Bencode::List(tiers));
        }
        if !self.web_seeds.is_empty() {
            root.insert(b"url-list".to_vec(), strings(&self.web_seeds));
        }
        root.insert(b"info".to_vec(), Bencode::Raw(self.info_bytes.clone()));
        Bencode::Dict(root).to_bytes()
    }
}

fn from_info_node(
    info: &Node<'_>,
    trackers: Vec<Vec<String>>,
    web_seeds: Vec<String>,
) -> Result<Metainfo, MetainfoError> {
    if info.as_dict().is_none() {
        return Err(MetainfoError::WrongType {
            key: "info",
            expected: "a dict",
        });
    }
    let name = files::name(info)?;
    let piece_length = int(info, "piece length")?;
    if piece_length <= 0 || piece_length as u64 > MAX_PIECE_LENGTH {
        return Err(MetainfoError::PieceLength {
            value: piece_length,
        });
    }
    let piece_length = piece_length as u64;
    if info.get(b"pieces").is_none() && is_v2(info) {
        // Hash the raw span, as for v1: BEP 52's info hash is its SHA-256.
        let v2_hash = Sha256::digest(info.raw)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        return Err(MetainfoError::V2Only { v2_hash });
    }
    let pieces = required(info, "pieces")?
        .as_bytes()
        .ok_or(MetainfoError::WrongType {
            key: "pieces",
            expected: "a string",
        })?;
    if pieces.len() % 20 != 0 {
        return Err(MetainfoError::PiecesLength { len: pieces.len() });
    }
    let files = files::files(info, &name)?;
    let last = files.last().ok_or(MetainfoError::NoFiles)?;
    let total_length = last.offset + last.length;
    if total_length == 0 {
        return Err(MetainfoError::NoContent);
    }
    let expected = total_length.div_ceil(piece_length);
    let got = pieces.len() / 20;
    if expected != got as u64 {
        return Err(MetainfoError::PieceCount { expected, got });
    }
    let pieces = pieces
        .chunks_exact(20)
        .map(|hash| <[u8; 20]>::try_from(hash).expect("chunks_exact gives 20 bytes"))
        .collect();
    Ok(Metainfo {
        // Hash the raw span: a re-encoding could sort keys or drop fields.
        info_hash: InfoHash(Sha1::digest(info.raw).into()),
        name,
        piece_length,
        pieces,
        files,
        total_length,
        trackers,
        web_seeds,
        private: info.get(b"private").and_then(Node::as_int) == Some(1),
        info_bytes: info.raw.to_vec(),
    })
}

/// BEP 52 marks: `meta version` 2, or the v2 `file tree`.
fn is_v2(info: &Node<'_>) -> bool {
    info.get(b"meta version").and_then(Node::as_int) == Some(2) || info.get(b"file tree").is_some()
}

fn required<'n, 'a>(dict: &'n Node<'a>, key: &'static str) -> Result<&'n Node<'a>, MetainfoError> {
    dict.get(key.as_bytes()).ok_or(MetainfoError::Missing(key))
}

fn int(dict: &Node<'_>, key: &'static str) -> Result<i64, MetainfoError> {
    required(dict, key)?
        .as_int()
        .ok_or(MetainfoError::WrongType {
            key,
            expected: "an integer",
        })
}

/// BEP 12 tiers, or the lone `announce` when there are none. Trackers are
/// hints, so malformed entries are dropped rather than refusing a torrent
/// whose pieces are fine.
fn announce_tiers(root: &Node<'_>) -> Vec<Vec<String>> {
    let tiers = root
        .get(b"announce-list")
        .and_then(Node::as_list)
        .unwrap_or_default();
    let tiers = tiers
        .iter()
        .filter_map(Node::as_list)
        .map(|tier| {
            tier.iter()
                .filter_map(Node::as_str)
                .map(String::from)
                .collect()
        })
        .collect();
    let tiers = dedupe_tiers(tiers);
    if !tiers.is_empty() {
        return tiers;
    }
    let lone = root
        .get(b"announce")
        .and_then(Node::as_str)
        .map(String::from);
    dedupe_tiers(lone.into_iter().map(|url| vec![url]).collect())
}

/// BEP 19 `url-list`: one string or a list of them.
fn url_list(root: &Node<'_>) -> Vec<String> {
    let Some(node) = root.get(b"url-list") else {
        return Vec::new();
    };
    let urls: Vec<&str> = match node.as_list() {
        Some(list) => list.iter().filter_map(Node::as_str).collect(),
        None => node.as_str().into_iter().collect(),
    };
    dedupe(urls.into_iter().map(String::from), &mut HashSet::new())
}

/// Trimmed, non-empty, each URL once across all tiers, no empty tiers.
fn dedupe_tiers(tiers: Vec<Vec<String>>) -> Vec<Vec<String>> {
    let mut seen = HashSet::new();
    tiers
        .into_iter()
        .map(|tier| dedupe(tier.into_iter(), &mut seen))
        .filter(|tier| !tier.is_empty())
        .collect()
}

fn dedupe(urls: impl Iterator<Item = String>, seen: &mut HashSet<String>) -> Vec<String> {
    urls.map(|url| url.trim().to_string())
        .filter(|url| !url.is_empty() && seen.insert(url.clone()))
        .collect()
}

#[cfg(test)]
mod tests;
