//! `streme import`: verify data the user already has and add it to the cache.
//!
//! A NAS often holds the very files a torrent describes, in a client's
//! download folder. Import reads them piece by piece, and the store keeps each
//! piece whose SHA-1 matches; the rest are simply not cached. This is the one
//! place where names from a torrent become paths, and only to *read* under the
//! folder the user named, after the metainfo parser has rejected `..`,
//! absolute paths and empty segments.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::format::metainfo::Metainfo;
use crate::format::InfoHash;
use crate::session::{AddError, Session};
use crate::store::StoreError;

/// The largest .torrent file read from disk; see the API's body limit.
const MAX_TORRENT_FILE: u64 = 8 << 20;

#[derive(Debug)]
pub enum ImportError {
    ReadTorrent {
        path: PathBuf,
        source: std::io::Error,
    },
    TorrentTooLarge {
        path: PathBuf,
        len: u64,
    },
    Add(AddError),
    NoData {
        path: PathBuf,
    },
    Store(StoreError),
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImportError::ReadTorrent { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            ImportError::TorrentTooLarge { path, len } => {
                write!(
                    f,
                    "{} is {len} bytes, over the {MAX_TORRENT_FILE}-byte limit for a .torrent",
                    path.display()
                )
            }
            ImportError::Add(e) => write!(f, "{e}"),
            ImportError::NoData { path } => {
                write!(f, "no data for this torrent at {}", path.display())
            }
            ImportError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ImportError {}

/// What an import found.
#[derive(Debug, Clone, Copy)]
pub struct ImportReport {
    pub info_hash: InfoHash,
    pub verified: u32,
    pub total: u32,
    pub verified_bytes: u64,
}

/// Reads a .torrent file from disk, refusing absurd sizes before reading.
pub fn read_torrent_file(path: &Path) -> Result<Vec<u8>, ImportError> {
    let err = |source| ImportError::ReadTorrent {
        path: path.to_path_buf(),
        source,
    };
    let len = std::fs::metadata(path).map_err(err)?.len();
    if len > MAX_TORRENT_FILE {
        return Err(ImportError::TorrentTooLarge {
            path: path.to_path_buf(),
            len,
        });
    }
    std::fs::read(path).map_err(err)
}

/// Where each file of the torrent lives under `data`: the client-style layout
/// `data/<name>/...`, or `data` itself being the torrent's folder or file.
fn locate(meta: &Metainfo, data: &Path) -> Result<Vec<PathBuf>, ImportError> {
    let single = meta.files.len() == 1 && meta.files[0].path == [meta.name.clone()];
    if single {
        let path = if data.is_file() {
            data.to_path_buf()
        } else {
            data.join(&meta.name)
        };
        return Ok(vec![path]);
    }
    let nested = data.join(&meta.name);
    let root = if nested.is_dir() {
        nested
    } else {
        data.to_path_buf()
    };
    if !root.is_dir() {
        return Err(ImportError::NoData {
            path: data.to_path_buf(),
        });
    }
    Ok(meta
        .files
        .iter()
        .map(|f| f.path.iter().fold(root.clone(), |p, seg| p.join(seg)))
        .collect())
}

/// Reads piece `index` from the user's files; None if any needed byte is absent.
fn read_piece(
    meta: &Metainfo,
    paths: &[PathBuf],
    files: &mut [Option<File>],
    index: u32,
) -> Option<Vec<u8>> {
    let start = index as u64 * meta.piece_length;
    let size = meta.piece_size(index);
    let end = start + size;
    let mut piece = vec![0u8; size as usize];
    for (i, f) in meta.files.iter().enumerate() {
        let (lo, hi) = (f.offset.max(start), (f.offset + f.length).min(end));
        if lo >= hi || f.padding {
            continue; // padding files are zeros, and the buffer already is
        }
        if files[i].is_none() {
            files[i] = File::open(&paths[i]).ok();
        }
        let file = files[i].as_ref()?;
        file.read_exact_at(
            &mut piece[(lo - start) as usize..(hi - start) as usize],
            lo - f.offset,
        )
        .ok()?;
    }
    Some(piece)
}

/// Verifies the data under `data` against the torrent and caches every piece that matches.
pub async fn import(
    session: &Session,
    torrent: &Path,
    data: &Path,
) -> Result<ImportReport, ImportError> {
    let bytes = read_torrent_file(torrent)?;
    let (t, _) = session
        .add_torrent_bytes(&bytes)
        .map_err(ImportError::Add)?;
    let meta = t.meta().expect("a torrent added from bytes has metadata");
    let paths = Arc::new(locate(&meta, data)?);
    if !paths.iter().any(|p| p.exists()) {
        return Err(ImportError::NoData {
            path: data.to_path_buf(),
        });
    }
    let ih = meta.info_hash;
    let total = meta.piece_count();
    log::info!(
        "[Import] Verifying {} ({} pieces of {} bytes) from {}",
        meta.name,
        total,
        meta.piece_length,
        data.display()
    );
    let mut files: Vec<Option<File>> = (0..meta.files.len()).map(|_| None).collect();
    let mut last_log = Instant::now();
    for index in 0..total {
        if session.store.has_piece(&ih, index) {
            continue;
        }
        let (m, p) = (meta.clone(), paths.clone());
        let (piece, back) = smol::unblock(move || {
            let piece = read_piece(&m, &p, &mut files, index);
            (piece, files)
        })
        .await;
        files = back;
        let Some(piece) = piece else { continue };
        match session
            .store
            .write_piece(&ih, index, piece, Duration::ZERO)
            .await
        {
            Ok(()) => {}
            Err(StoreError::HashMismatch { piece }) => {
                log::debug!("[Import] piece {piece} does not match, skipped")
            }
            Err(e) => return Err(ImportError::Store(e)),
        }
        if last_log.elapsed() > Duration::from_secs(3) {
            log::info!(
                "[Import] {:.1}% checked",
                100.0 * (index + 1) as f64 / total as f64
            );
            last_log = Instant::now();
        }
    }
    session.store.flush().map_err(ImportError::Store)?;
    let (verified, verified_bytes) = session.store.verified(&ih).unwrap_or((0, 0));
    Ok(ImportReport {
        info_hash: ih,
        verified,
        total,
        verified_bytes,
    })
}
