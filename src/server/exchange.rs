//! One HTTP/1.1 exchange on a client connection: async-h1 reads the request
//! head, the handler answers, and the answer is written here.
//!
//! # Design
//! async-h1's own `Server::accept_one` writes a response through
//! `futures_lite::io::copy`, whose buffer is 8 KiB: streaming a GiB from the
//! cache took 131072 `send` calls and a copy of every byte out of the
//! stream's buffer into the copy's (issue 14's profile; on a quarter-core
//! board that is CPU the stream does not have). Here async-h1 still parses
//! the request ([`async_h1::server::decode`]) and encodes the head (its
//! [`Encoder`] with the HEAD method, which stops after the head), and a body
//! of known length is written straight out of its own buffer (`fill_buf`): a
//! stream's whole chunk per `write`, no copy in between. A body of unknown
//! length (chunked framing, such as a file over 4 GiB on a 32-bit board) and
//! the answer to a HEAD request still go through async-h1's encoder.
//!
//! A stream's body ([`stream::Body`], in the response's extensions) goes
//! further: given the client's socket, it is sent by sendfile(2) from the
//! cache's files, with no copy through user space at all (issue 14: the
//! read into the buffer and the send out of it were each ~20 % of the cache
//! tier's samples, and nginx makes neither).
//!
//! Must never change what goes on the wire: the same head as async-h1 would
//! send, then exactly Content-Length body bytes, or the connection ends with
//! an error (a body that ends early is never followed by another response).

use futures_lite::io::{self, AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt};
use http_types::headers::{CONNECTION, CONTENT_TYPE};
use http_types::{Body, Method, Request, Response};

use async_h1::server::Encoder;
use std::future::Future;

use crate::stream::{self, Socket};

/// What the connection does after an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    KeepAlive,
    Close,
}

/// Reads one request from `io`, answers it with `endpoint`, and writes the
/// answer. `Close` when the client closed before a request, or either side
/// asked for `Connection: close`. Errors are async-h1's (a bad head) or the
/// socket's.
pub async fn exchange<IO, F, Fut>(
    io: IO,
    socket: Option<&Socket<'_>>,
    endpoint: F,
) -> http_types::Result<Status>
where
    IO: AsyncRead + AsyncWrite + Clone + Send + Sync + Unpin + 'static,
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = http_types::Result<Response>>,
{
    let Some((req, mut request_body)) = async_h1::server::decode(io.clone()).await? else {
        return Ok(Status::Close);
    };
    let asks_close = |v: Option<&http_types::headers::HeaderValues>| {
        v.is_some_and(|c| c.as_str().eq_ignore_ascii_case("close"))
    };
    let mut close = asks_close(req.header(CONNECTION));
    let method = req.method();
    let res = endpoint(req).await?;
    close |= asks_close(res.header(CONNECTION));
    let mut out = io.clone();
    write_response(&mut out, res, method, socket).await?;
    // What the handler left of the request body, so the next head starts clean.
    io::copy(&mut request_body, &mut io::sink()).await?;
    Ok(if close {
        Status::Close
    } else {
        Status::KeepAlive
    })
}

/// Writes `res` as the answer to a `method` request. A stream's body rides
/// in the response's extensions ([`stream::Body`], with an empty stand-in of
/// its length as the http-types body): with a `socket` it is sent by
/// sendfile, without one it is read like any other body.
async fn write_response<W>(
    out: &mut W,
    mut res: Response,
    method: Method,
    socket: Option<&Socket<'_>>,
) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let stream_body = res.ext_mut().remove::<stream::Body>();
    let Some(len) = res.len().filter(|_| method != Method::Head) else {
        io::copy(Encoder::new(res, method), &mut *out).await?;
        return out.flush().await;
    };
    // The head alone: a body-less stand-in of the same length, encoded as for
    // HEAD. Swapping bodies sets a Content-Type when there was none; take it
    // off again, so that the head is the one async-h1 would have sent.
    let had_type = res.header(CONTENT_TYPE).is_some();
    let mut body = Body::from_reader(io::empty(), Some(len));
    res.swap_body(&mut body);
    if !had_type {
        res.remove_header(CONTENT_TYPE);
    }
    let mut head = Vec::with_capacity(512);
    io::copy(Encoder::new(res, Method::Head), &mut head).await?;
    out.write_all(&head).await?;
    let len = len as u64;
    let sent = match (stream_body, socket) {
        (Some(stream_body), Some(socket)) => stream_body.send_to(out, socket).await?,
        (Some(stream_body), None) => copy_exact(stream_body, out, len).await?,
        (None, _) => copy_exact(body, out, len).await?,
    };
    if sent != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "the body ended {} bytes short of its length {len}",
                len - sent
            ),
        ));
    }
    out.flush().await
}

/// Writes `len` bytes of `body` straight out of its own buffer, one whole
/// chunk per `write`; fewer if it ends early. Returns how many.
async fn copy_exact<R, W>(mut body: R, out: &mut W, len: u64) -> io::Result<u64>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut left = len;
    while left > 0 {
        let bytes = body.fill_buf().await?;
        if bytes.is_empty() {
            break;
        }
        let n = bytes.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        out.write_all(&bytes[..n]).await?;
        body.consume(n);
        left -= n as u64;
    }
    Ok(len - left)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_types::StatusCode;

    /// Encodes `res` the way async-h1's server does, for comparison.
    fn async_h1_bytes(res: Response, method: Method) -> Vec<u8> {
        smol::block_on(async {
            let mut out = Vec::new();
            io::copy(Encoder::new(res, method), &mut out).await.unwrap();
            out
        })
    }

    fn ours(res: Response, method: Method) -> Vec<u8> {
        smol::block_on(async {
            let mut out = Vec::new();
            write_response(&mut out, res, method, None).await.unwrap();
            out
        })
    }

    /// The Date header differs by the second; everything else must match.
    fn without_date(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes)
            .split("\r\n")
            .filter(|l| !l.starts_with("date:"))
            .collect::<Vec<_>>()
            .join("\r\n")
    }

    fn responses() -> Vec<Response> {
        let mut json = Response::new(StatusCode::Ok);
        json.set_body(Body::from_string("{\"a\":1}".into()));
        let mut typed = Response::new(StatusCode::PartialContent);
        typed.insert_header("Content-Type", "video/mp4");
        typed.insert_header("Content-Range", "bytes 0-9/100");
        typed.set_body(Body::from_reader(
            io::BufReader::new(io::Cursor::new(vec![7u8; 10])),
            Some(10),
        ));
        let bare = Response::new(StatusCode::NoContent);
        let mut chunked = Response::new(StatusCode::Ok);
        chunked.set_body(Body::from_reader(
            io::BufReader::new(io::Cursor::new(b"abc".to_vec())),
            None,
        ));
        vec![json, typed, bare, chunked]
    }

    #[test]
    fn answers_are_byte_identical_to_async_h1s() {
        for method in [Method::Get, Method::Head] {
            for (a, b) in responses().into_iter().zip(responses()) {
                let want = without_date(&async_h1_bytes(a, method));
                let got = without_date(&ours(b, method));
                assert_eq!(got, want, "{method}");
            }
        }
    }

    #[test]
    fn a_body_short_of_its_length_is_an_error_not_a_short_answer() {
        let mut res = Response::new(StatusCode::Ok);
        res.set_body(Body::from_reader(
            io::BufReader::new(io::Cursor::new(vec![1u8; 5])),
            Some(8),
        ));
        let err = smol::block_on(async {
            let mut out = Vec::new();
            write_response(&mut out, res, Method::Get, None)
                .await
                .unwrap_err()
        });
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn a_body_longer_than_its_length_is_cut_at_the_length() {
        let mut res = Response::new(StatusCode::Ok);
        res.set_body(Body::from_reader(
            io::BufReader::new(io::Cursor::new(vec![1u8; 9])),
            Some(4),
        ));
        let out = ours(res, Method::Get);
        assert!(out.ends_with(b"\r\n\r\n\x01\x01\x01\x01"), "{out:?}");
    }
}
