//! A tiny HTTP/1.1 client over `std::net::TcpStream` that sends exactly the bytes a test wrote
//! (lines joined with `\r\n`), so odd and hostile requests reach the server unchanged.
//!
//! Must never hang a test: every read has a generous deadline, and a body cut short is
//! reported as incomplete rather than padded or retried.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long one read may block before the test calls it a hang. Generous on purpose: it is a
/// hang detector, not a performance assertion.
pub const READ_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Response {
    /// E.g. `HTTP/1.1 206 Partial Content`.
    pub status_line: String,
    pub status: u16,
    /// In the order received, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// False when the connection ended before the framing said the body was done: the way a
    /// server must end a response whose later bytes it cannot produce.
    pub complete: bool,
    /// From the first byte written to the last byte read.
    pub elapsed: Duration,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON, or a panic showing it.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {} {}",
                self.status_line,
                self.text()
            )
        })
    }

    /// The `error` string of a JSON error body.
    pub fn error_text(&self) -> String {
        match self.json().get("error") {
            Some(serde_json::Value::String(s)) => s.clone(),
            other => panic!("no string `error` in the body ({other:?}): {}", self.text()),
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Status line and headers, for assertion messages.
    pub fn head(&self) -> String {
        let mut s = self.status_line.clone();
        for (k, v) in &self.headers {
            s.push_str(&format!("\n{k}: {v}"));
        }
        s
    }
}

/// Sends `lines` joined with `\r\n`, then an empty line, then `body`; reads one response.
/// A request whose first line starts with `HEAD ` reads no body.
pub fn request(addr: SocketAddr, lines: &[&str], body: &[u8]) -> Response {
    let mut bytes = lines.join("\r\n").into_bytes();
    bytes.extend_from_slice(b"\r\n\r\n");
    bytes.extend_from_slice(body);
    let is_head = lines.first().is_some_and(|l| l.starts_with("HEAD "));
    exchange(addr, &bytes, is_head)
}

/// Sends `raw` as is and reads one response (`head_request`: no body follows the headers).
pub fn exchange(addr: SocketAddr, raw: &[u8], head_request: bool) -> Response {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(READ_DEADLINE))
        .expect("read timeout");
    stream
        .set_write_timeout(Some(READ_DEADLINE))
        .expect("write timeout");
    let started = Instant::now();
    stream
        .write_all(raw)
        .unwrap_or_else(|e| panic!("write to {addr}: {e}"));
    read_response(&mut stream, head_request, started)
}

/// Sends `raw` and returns whatever comes back until the server closes (or a reset), without
/// parsing it: for garbage and oversized requests, where any refusal, even a closed
/// connection, is a fine answer. Still bounded by [`READ_DEADLINE`].
pub fn send_raw(addr: SocketAddr, raw: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(READ_DEADLINE))
        .expect("read timeout");
    stream
        .set_write_timeout(Some(READ_DEADLINE))
        .expect("write timeout");
    // The server may close before reading everything; a failed write is an answer too.
    let _ = stream.write_all(raw);
    let mut answer = Vec::new();
    while fill(&mut stream, &mut answer) > 0 {}
    answer
}

/// `GET path` with `Connection: close` and `extra` header lines.
pub fn get(addr: SocketAddr, path: &str, extra: &[&str]) -> Response {
    simple(addr, "GET", path, extra)
}

pub fn head(addr: SocketAddr, path: &str, extra: &[&str]) -> Response {
    simple(addr, "HEAD", path, extra)
}

pub fn delete(addr: SocketAddr, path: &str) -> Response {
    simple(addr, "DELETE", path, &[])
}

pub fn options(addr: SocketAddr, path: &str, extra: &[&str]) -> Response {
    simple(addr, "OPTIONS", path, extra)
}

fn simple(addr: SocketAddr, method: &str, path: &str, extra: &[&str]) -> Response {
    let first = format!("{method} {path} HTTP/1.1");
    let host = format!("Host: {addr}");
    let mut lines = vec![first.as_str(), host.as_str(), "Connection: close"];
    lines.extend_from_slice(extra);
    request(addr, &lines, b"")
}

/// `POST path` with a body of `content_type`.
pub fn post(addr: SocketAddr, path: &str, content_type: &str, body: &[u8]) -> Response {
    let first = format!("POST {path} HTTP/1.1");
    let host = format!("Host: {addr}");
    let ct = format!("Content-Type: {content_type}");
    let len = format!("Content-Length: {}", body.len());
    request(addr, &[&first, &host, "Connection: close", &ct, &len], body)
}

/// `POST path` with a JSON body.
pub fn post_json(addr: SocketAddr, path: &str, json: &serde_json::Value) -> Response {
    post(addr, path, "application/json", json.to_string().as_bytes())
}

/// `GET /health` answers 200: the check made after every hostile request.
pub fn assert_healthy(addr: SocketAddr, after: &str) {
    let r = get(addr, "/health", &[]);
    assert_eq!(
        r.status,
        200,
        "server unhealthy after {after}: {}",
        r.head()
    );
}

pub fn read_response(stream: &mut TcpStream, head_request: bool, started: Instant) -> Response {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(pos) = find(&buf, b"\r\n\r\n") {
            break pos;
        }
        if fill(stream, &mut buf) == 0 {
            panic!(
                "connection closed before a complete response head; got {:?}",
                String::from_utf8_lossy(&buf)
            );
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut rest = buf[head_end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default().to_string();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut response = Response {
        status_line,
        status,
        headers,
        body: Vec::new(),
        complete: true,
        elapsed: Duration::ZERO,
    };
    let no_body = head_request || status < 200 || status == 204 || status == 304;
    if !no_body {
        let chunked = response
            .header("Transfer-Encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let length = response
            .header("Content-Length")
            .and_then(|v| v.parse::<usize>().ok());
        let (body, complete) = if chunked {
            read_chunked(stream, rest)
        } else if let Some(length) = length {
            while rest.len() < length {
                if fill(stream, &mut rest) == 0 {
                    break;
                }
            }
            let complete = rest.len() >= length;
            rest.truncate(length);
            (rest, complete)
        } else {
            while fill(stream, &mut rest) > 0 {}
            (rest, true)
        };
        response.body = body;
        response.complete = complete;
    }
    response.elapsed = started.elapsed();
    response
}

/// Decodes a chunked body; `complete` is false when the stream ends before the last chunk.
fn read_chunked(stream: &mut TcpStream, mut buf: Vec<u8>) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(pos) = find(&buf, b"\r\n") {
                break pos;
            }
            if fill(stream, &mut buf) == 0 {
                return (body, false);
            }
        };
        let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        let size_hex = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .unwrap_or_else(|_| panic!("bad chunk size line {size_text:?}"));
        buf.drain(..line_end + 2);
        if size == 0 {
            // Trailers are not used by streme; the final CRLF may or may not have arrived.
            return (body, true);
        }
        while buf.len() < size + 2 {
            if fill(stream, &mut buf) == 0 {
                let take = buf.len().min(size);
                body.extend_from_slice(&buf[..take]);
                return (body, false);
            }
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
    }
}

/// Reads more bytes into `buf`; 0 at end of stream or on a reset (a cut connection).
fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> usize {
    let mut chunk = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return n;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("no byte from the server within {READ_DEADLINE:?}: a hang")
            }
            Err(_) => return 0,
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One part of a `multipart/byteranges` body.
#[derive(Debug, Clone)]
pub struct Part {
    pub content_type: Option<String>,
    /// `(first, last, complete_length)` from the part's `Content-Range: bytes a-b/len`.
    pub range: (u64, u64, u64),
    pub body: Vec<u8>,
}

/// Parses a `multipart/byteranges` body (RFC 9110 §14.6). Each part's length is taken from
/// its Content-Range, so binary data that happens to contain the boundary cannot confuse it.
pub fn multipart_parts(response: &Response) -> Vec<Part> {
    let content_type = response.header("Content-Type").unwrap_or_default();
    assert!(
        content_type.starts_with("multipart/byteranges"),
        "not multipart/byteranges: {}",
        response.head()
    );
    let boundary = content_type
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .unwrap_or_else(|| panic!("no boundary in {content_type:?}"))
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    let body = &response.body;
    let mut pos = find(body, delimiter.as_bytes()).expect("no first boundary in the body");
    let mut parts = Vec::new();
    loop {
        pos += delimiter.len();
        if body[pos..].starts_with(b"--") {
            return parts;
        }
        assert!(body[pos..].starts_with(b"\r\n"), "no CRLF after a boundary");
        pos += 2;
        let head_end = pos + find(&body[pos..], b"\r\n\r\n").expect("part head not terminated");
        let head = String::from_utf8_lossy(&body[pos..head_end]).into_owned();
        pos = head_end + 4;
        let mut part_type = None;
        let mut range = None;
        for line in head.split("\r\n") {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            if k.trim().eq_ignore_ascii_case("content-type") {
                part_type = Some(v.trim().to_string());
            }
            if k.trim().eq_ignore_ascii_case("content-range") {
                range = Some(parse_content_range(v.trim()).expect("bad part Content-Range"));
            }
        }
        let range = range.unwrap_or_else(|| panic!("part without Content-Range: {head:?}"));
        let len = (range.1 - range.0 + 1) as usize;
        parts.push(Part {
            content_type: part_type,
            range,
            body: body[pos..pos + len].to_vec(),
        });
        pos += len;
        assert!(
            body[pos..].starts_with(b"\r\n"),
            "no CRLF after a part's data"
        );
        pos += 2;
        assert!(
            body[pos..].starts_with(delimiter.as_bytes()),
            "no boundary after a part"
        );
    }
}

/// `bytes a-b/len` → `(a, b, len)`.
pub fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let rest = value.strip_prefix("bytes ")?;
    let (span, len) = rest.split_once('/')?;
    let (a, b) = span.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?, len.parse().ok()?))
}
