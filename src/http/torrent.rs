//! Fetching a .torrent over HTTP: by info hash from the `TORRENT_SOURCES`
//! templates, or from a URL a user gave.
//!
//! Owns what counts as a good answer: status 200, at most
//! `HTTP_MAX_TORRENT_KB`, a valid torrent, and (by hash) the very info hash
//! asked for. Must never return anything else: public caches answer with
//! HTML error pages, captchas and the occasional wrong torrent.

use super::client::{read_some, Client, SendError};
use super::error::{TorrentFetchError, TorrentProblem};
use super::template::Template;
use crate::format::metainfo::Metainfo;
use crate::format::InfoHash;

/// How much of a refused body goes into the log line.
const SNIPPET_CHARS: usize = 60;

/// Tries each template in order and returns the first torrent whose info
/// hash is `ih`, with the bytes as fetched. Every refusal is logged; the
/// error lists each source's reason.
pub async fn fetch_torrent(
    client: &Client,
    ih: InfoHash,
    templates: &[Template],
) -> Result<(Metainfo, Vec<u8>), TorrentFetchError> {
    let mut attempts = Vec::new();
    for template in templates {
        let url = template.torrent_url(ih);
        let result = fetch_one(client, &url).await.and_then(|(meta, bytes)| {
            if meta.info_hash == ih {
                Ok((meta, bytes))
            } else {
                Err(TorrentProblem::WrongHash {
                    expected: ih,
                    got: meta.info_hash,
                })
            }
        });
        match result {
            Ok(found) => {
                log::info!("[Hybrid] .torrent for {ih} from {url}");
                return Ok(found);
            }
            Err(problem) => {
                log::warn!("[Hybrid] .torrent source {url}: {problem}");
                attempts.push((url, problem));
            }
        }
    }
    Err(TorrentFetchError { attempts })
}

/// Fetches the torrent at `url` (`{"torrentUrl": …}`): there is no hash to
/// check it against, so any valid torrent counts.
pub async fn fetch_torrent_url(
    client: &Client,
    url: &str,
) -> Result<(Metainfo, Vec<u8>), TorrentFetchError> {
    fetch_one(client, url).await.map_err(|problem| {
        log::warn!("[Hybrid] .torrent source {url}: {problem}");
        TorrentFetchError {
            attempts: vec![(url.to_string(), problem)],
        }
    })
}

async fn fetch_one(client: &Client, url: &str) -> Result<(Metainfo, Vec<u8>), TorrentProblem> {
    let stalled = || TorrentProblem::Stalled {
        after: client.timeout,
    };
    let mut response = client.get(url, None).await.map_err(|e| match e {
        SendError::Stalled => stalled(),
        SendError::Transport(reason) => TorrentProblem::Transport(reason),
    })?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(TorrentProblem::Status(status));
    }
    let cap = client.max_torrent_bytes;
    // Read at most cap + 1 bytes: one more than allowed proves it too large
    // without reading the rest.
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let body = response.body_mut();
    loop {
        let room = (cap + 1 - bytes.len() as u64).min(buf.len() as u64) as usize;
        if room == 0 {
            return Err(TorrentProblem::TooLarge { cap });
        }
        match read_some(body, &mut buf[..room], client.timeout).await {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(None) => return Err(stalled()),
            Err(Some(reason)) => return Err(TorrentProblem::Transport(reason)),
        }
    }
    match Metainfo::from_torrent_bytes(&bytes) {
        Ok(meta) => Ok((meta, bytes)),
        Err(error) => Err(TorrentProblem::NotATorrent {
            error,
            starts: String::from_utf8_lossy(&bytes)
                .chars()
                .take(SNIPPET_CHARS)
                .collect(),
        }),
    }
}
