//! Fetching a .torrent over HTTP: by info hash from the `TORRENT_SOURCES`
//! templates, or from a URL a user gave.
//!
//! Owns what counts as a good answer: status 200, at most
//! `HTTP_MAX_TORRENT_KB`, a valid torrent, and (by hash) the very info hash
//! asked for. Must never return anything else: public caches answer with
//! HTML error pages, captchas and the occasional wrong torrent.

use super::client::{Client, SendError, StallClock};
use super::error::{TorrentFetchError, TorrentProblem};
use crate::format::metainfo::Metainfo;
use crate::format::template::Template;
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
    let mut clock = StallClock::new(client.timeout);
    loop {
        let room = (cap + 1 - bytes.len() as u64).min(buf.len() as u64) as usize;
        if room == 0 {
            return Err(TorrentProblem::TooLarge { cap });
        }
        match clock.read(body, &mut buf[..room]).await {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(None) => return Err(stalled()),
            Err(Some(reason)) => return Err(TorrentProblem::Transport(reason)),
        }
    }
    // Parsing hashes the info dict (up to the cap): on the blocking pool,
    // never on the executor that serves every peer and stream.
    let (parsed, bytes) =
        smol::unblock(move || (Metainfo::from_torrent_bytes(&bytes), bytes)).await;
    match parsed {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::format::template::Placeholder;
    use crate::http::source::tests::torrent;
    use crate::http::test_server::{response, Reply, Server};

    fn templates(list: &[String]) -> Vec<Template> {
        list.iter()
            .map(|t| Template::parse(t, Placeholder::TORRENT).unwrap())
            .collect()
    }

    fn client(cap: u64) -> Client {
        Client::new(Duration::from_millis(2000), cap).unwrap()
    }

    /// Serves `/html/…` an HTML page, `/wrong/…` another torrent, `/big/…`
    /// a torrent larger than the test cap and `/good/<HASH>.torrent` the
    /// right one.
    fn server(good: Vec<u8>, wrong: Vec<u8>) -> Server {
        Server::start(move |req, _| {
            let ok = |body: &[u8]| response("200 OK", &[], body);
            Reply::Bytes(if req.path.starts_with("/html/") {
                ok(b"<!DOCTYPE html><html><body>captcha</body></html>")
            } else if req.path.starts_with("/wrong/") {
                ok(&wrong)
            } else if req.path.starts_with("/big/") {
                ok(&[b'x'; 5000])
            } else if req.path.starts_with("/good/") {
                ok(&good)
            } else {
                response("404 Not Found", &[], b"")
            })
        })
    }

    /// The torrent a test asks for, and a different one a lying source serves.
    fn film_and_other() -> (Metainfo, Metainfo) {
        let single = |name: &str| torrent(name, &[(&[name], 100, false)], 64, true, &[], None);
        (single("film.mkv"), single("other.mkv"))
    }

    #[test]
    fn refusals_are_skipped_until_the_right_torrent() {
        let (meta, other) = film_and_other();
        let good = meta.to_torrent_bytes();
        let server = server(good.clone(), other.to_torrent_bytes());
        let base = &server.base;
        let list = templates(&[
            format!("{base}/html/{{hash}}"),
            format!("{base}/wrong/{{hash}}"),
            format!("{base}/missing/{{hash}}"),
            format!("{base}/good/{{HASH}}.torrent"),
        ]);
        let (found, bytes) =
            smol::block_on(fetch_torrent(&client(4096), meta.info_hash, &list)).unwrap();
        assert_eq!(found.info_hash, meta.info_hash);
        assert_eq!(bytes, good);
        let upper = meta.info_hash.to_hex().to_ascii_uppercase();
        assert_eq!(
            server.seen().last().unwrap().path,
            format!("/good/{upper}.torrent")
        );
        assert_eq!(server.seen().len(), 4);
    }

    #[test]
    fn the_error_lists_every_source_and_its_reason() {
        let (meta, other) = film_and_other();
        let server = server(meta.to_torrent_bytes(), other.to_torrent_bytes());
        let base = &server.base;
        let list = templates(&[
            format!("{base}/html/{{hash}}"),
            format!("{base}/wrong/{{hash}}"),
            format!("{base}/missing/{{hash}}"),
            format!("{base}/big/{{hash}}"),
        ]);
        let error =
            smol::block_on(fetch_torrent(&client(4096), meta.info_hash, &list)).unwrap_err();
        let hash = meta.info_hash;
        let problems: Vec<&TorrentProblem> = error.attempts.iter().map(|(_, p)| p).collect();
        assert!(matches!(
            problems[0],
            TorrentProblem::NotATorrent { starts, .. } if starts.starts_with("<!DOCTYPE html>")
        ));
        assert_eq!(
            problems[1],
            &TorrentProblem::WrongHash {
                expected: hash,
                got: other.info_hash
            }
        );
        assert_eq!(problems[2], &TorrentProblem::Status(404));
        assert_eq!(problems[3], &TorrentProblem::TooLarge { cap: 4096 });
        let text = error.to_string();
        for (url, _) in &error.attempts {
            assert!(text.contains(url.as_str()), "{text}");
        }
        assert!(
            text.contains(&format!("{base}/missing/{hash}: status 404")),
            "{text}"
        );
    }

    #[test]
    fn no_template_is_an_error_that_says_so() {
        let ih = InfoHash([7; 20]);
        let error = smol::block_on(fetch_torrent(&client(4096), ih, &[])).unwrap_err();
        assert!(error.attempts.is_empty());
        assert!(error.to_string().contains("TORRENT_SOURCES is empty"));
    }

    #[test]
    fn a_torrent_url_takes_any_valid_torrent_but_no_html() {
        let meta = torrent(
            "film.mkv",
            &[(&["film.mkv"], 100, false)],
            64,
            true,
            &[],
            None,
        );
        let server = server(meta.to_torrent_bytes(), Vec::new());
        let url = format!("{}/good/x.torrent", server.base);
        let (found, _) = smol::block_on(fetch_torrent_url(&client(4096), &url)).unwrap();
        assert_eq!(found.info_hash, meta.info_hash);
        let url = format!("{}/html/x.torrent", server.base);
        let error = smol::block_on(fetch_torrent_url(&client(4096), &url)).unwrap_err();
        assert_eq!(error.attempts[0].0, url);
        assert!(matches!(
            error.attempts[0].1,
            TorrentProblem::NotATorrent { .. }
        ));
    }
}
