//! The store's errors: one enum, carrying the numbers and paths a user needs.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::format::InfoHash;

#[derive(Debug)]
pub enum StoreError {
    QuotaExceeded {
        needed: u64,
        free: u64,
    },
    /// The file system is full (ENOSPC) and nothing can be evicted: every
    /// segment is pinned by a stream or busy.
    DiskFull {
        /// Bytes the write wanted.
        needed: u64,
        /// Free on the file system at the last reading.
        free: u64,
        /// What the cache holds, all of it in use.
        used: u64,
    },
    HashMismatch {
        piece: u32,
    },
    UnknownTorrent(InfoHash),
    NotVerified {
        piece: u32,
    },
    PieceOutOfRange {
        piece: u32,
        count: u32,
    },
    BadLength {
        piece: u32,
        expected: u64,
        got: u64,
    },
    /// The metainfo's numbers do not describe a torrent (zero piece length,
    /// or a piece count that disagrees with the length).
    BadGeometry {
        piece_length: u64,
        total_length: u64,
        piece_count: usize,
    },
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    /// Another process (a running server, or an import) has the cache.
    Locked {
        path: PathBuf,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::QuotaExceeded { needed, free } => write!(
                f,
                "cache full: {needed} more bytes needed but only {free} free under the ceiling (the quota, or less when the disk is smaller: see /api/cache), and everything evictable is in use"
            ),
            StoreError::DiskFull { needed, free, used } => write!(
                f,
                "the cache's disk is full: {needed} bytes to write, {free} bytes free on the file system, and the cache's {used} bytes are all in use by streams, so nothing can be evicted"
            ),
            StoreError::HashMismatch { piece } => {
                write!(f, "piece {piece} failed its SHA-1 check and was discarded")
            }
            StoreError::UnknownTorrent(ih) => write!(f, "torrent {ih} is not in the cache"),
            StoreError::NotVerified { piece } => write!(f, "piece {piece} is not verified in the cache yet"),
            StoreError::PieceOutOfRange { piece, count } => {
                write!(f, "piece {piece} is out of range: the torrent has {count} pieces")
            }
            StoreError::BadLength { piece, expected, got } => {
                write!(f, "piece {piece} should be {expected} bytes long, got {got}")
            }
            StoreError::BadGeometry { piece_length, total_length, piece_count } => write!(
                f,
                "torrent geometry is impossible: {piece_count} pieces of {piece_length} bytes for {total_length} bytes"
            ),
            StoreError::Io { path, op, source } => {
                write!(f, "cache {op} failed on {}: {source}", path.display())
            }
            StoreError::Locked { path } => write!(
                f,
                "the cache is in use by another streme process (lock {}); stop it first",
                path.display()
            ),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

pub(super) fn io_err(path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { path, op, source }
}

pub(super) fn is_not_found(e: &StoreError) -> bool {
    matches!(e, StoreError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
}

/// The file system is full: ENOSPC (or EDQUOT, a user quota on the disk).
pub(super) fn is_no_space(e: &StoreError) -> bool {
    matches!(e, StoreError::Io { source, .. }
        if matches!(source.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded))
}
