//! One announce to an HTTP(S) tracker (BEP 3, with `compact=1`, BEP 23).
//!
//! Owns the query string and the mapping of HTTP outcomes to
//! [`TrackerError`]s. Must never read more than [`MAX_HTTP_BODY`] bytes or
//! wait past [`HTTP_DEADLINE`].

use std::fmt::Write;
use std::time::Duration;

use super::parse::{self, Answer, MAX_HTTP_BODY};
use super::{Reply, Request, TrackerError};
use crate::http::{Client, SmallGetError};

/// The whole announce, headers and body. `HTTP_TIMEOUT` bounds each wait;
/// this bounds a tracker that trickles its answer.
pub const HTTP_DEADLINE: Duration = Duration::from_secs(20);

pub(super) async fn announce(
    client: &Client,
    url: &str,
    req: &Request,
) -> Result<Reply, TrackerError> {
    let full = announce_url(url, req);
    let owned = || url.to_string();
    let deadline = async_io::Timer::after(HTTP_DEADLINE);
    let fetched = futures_lite::future::or(
        async { Some(client.get_small(&full, MAX_HTTP_BODY).await) },
        async {
            deadline.await;
            None
        },
    )
    .await;
    let (status, body) = match fetched {
        None => {
            return Err(TrackerError::Timeout {
                url: owned(),
                after: HTTP_DEADLINE,
            })
        }
        Some(Ok(answer)) => answer,
        Some(Err(SmallGetError::Stalled(after))) => {
            return Err(TrackerError::Timeout {
                url: owned(),
                after,
            })
        }
        Some(Err(SmallGetError::Transport(reason))) => {
            return Err(TrackerError::Transport {
                url: owned(),
                reason,
            })
        }
        Some(Err(SmallGetError::TooLarge { cap })) => {
            return Err(TrackerError::TooLarge { url: owned(), cap })
        }
    };
    if status != 200 {
        // A failure reason may come with a 4xx; say it if it parses.
        if let Ok(Answer::Refused(reason)) = parse::http_reply(&body) {
            return Err(TrackerError::Refused {
                url: owned(),
                reason,
            });
        }
        return Err(TrackerError::Status {
            url: owned(),
            status,
        });
    }
    match parse::http_reply(&body) {
        Ok(Answer::Ok(answer)) => {
            if let Some(warning) = answer.warning {
                log::info!("[P2P] tracker {url} warns: {warning}");
            }
            Ok(answer.reply)
        }
        Ok(Answer::Refused(reason)) => Err(TrackerError::Refused {
            url: owned(),
            reason,
        }),
        Err(problem) => Err(TrackerError::BadReply {
            url: owned(),
            problem,
        }),
    }
}

/// `url` with the announce parameters appended (after its own query, such as
/// a private tracker's passkey, if it has one).
pub(super) fn announce_url(url: &str, req: &Request) -> String {
    let mut out = String::with_capacity(url.len() + 200);
    out.push_str(url);
    out.push(if url.contains('?') { '&' } else { '?' });
    out.push_str("info_hash=");
    percent_encode(&req.info_hash.0, &mut out);
    out.push_str("&peer_id=");
    percent_encode(&req.peer_id, &mut out);
    let p = &req.progress;
    let _ = write!(
        out,
        "&port={}&uploaded={}&downloaded={}&left={}&compact=1&numwant={}&key={:08x}",
        req.port, p.uploaded, p.downloaded, p.left, req.num_want, req.key
    );
    if let Some(event) = req.event.http_name() {
        let _ = write!(out, "&event={event}");
    }
    out
}

/// Percent-encodes every byte but RFC 3986's unreserved characters: the info
/// hash and peer id are raw bytes, not text.
pub(super) fn percent_encode(bytes: &[u8], out: &mut String) {
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}
