//! What the HTTP-tier tests share: the settings that turn the tier on against loopback
//! sources only, the API calls that add a torrent and read its status, and a stream read that
//! notes when its first body byte arrived (and what the API said at that moment).
//!
//! Must never point streme at anything but the loopback servers a test started: every source
//! list is passed in by the test.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::http::{self, Response, READ_DEADLINE};
use super::server::{base_env, Server};

/// `P2P_TIMEOUT` for the tests that do not measure it: short, so each test waits little, but
/// not 0, so the timeout path is the one taken.
pub const QUICK_P2P_TIMEOUT_MS: u64 = 500;

/// The environment for a server with the HTTP tier on: [`base_env`], then
/// `ENABLE_HTTP_FALLBACK=true`, a short P2P timeout, roomy tier deadlines, and the given
/// source lists (each a comma-separated list of loopback URL templates, or empty).
pub fn hybrid_env(
    cache_dir: &Path,
    quota_mb: u64,
    torrent_sources: &str,
    http_sources: &str,
) -> Vec<(String, String)> {
    let mut env = base_env(cache_dir, quota_mb);
    set(&mut env, "ENABLE_HTTP_FALLBACK", "true");
    set(&mut env, "P2P_TIMEOUT", &QUICK_P2P_TIMEOUT_MS.to_string());
    set(&mut env, "TORRENT_TIMEOUT", "20000");
    set(&mut env, "HTTP_TIMEOUT", "5000");
    set(&mut env, "PIECE_TIMEOUT", "60000");
    set(&mut env, "TORRENT_SOURCES", torrent_sources);
    set(&mut env, "HTTP_SOURCES", http_sources);
    env
}

/// Sets `key` to `value`, replacing an earlier value.
pub fn set(env: &mut Vec<(String, String)>, key: &str, value: &str) {
    env.retain(|(k, _)| k != key);
    env.push((key.to_string(), value.to_string()));
}

/// `POST /api/torrents {"magnetUri": "magnet:?xt=urn:btih:<hash>"}`, which must succeed.
pub fn add_magnet(addr: SocketAddr, info_hash: &str) -> Response {
    let magnet = format!("magnet:?xt=urn:btih:{info_hash}");
    let r = http::post_json(
        addr,
        "/api/torrents",
        &serde_json::json!({ "magnetUri": magnet }),
    );
    assert!(
        (200..300).contains(&r.status),
        "adding {magnet}: {} {}",
        r.head(),
        r.text()
    );
    r
}

/// `POST /api/torrents` with the .torrent as the raw body, which must succeed.
pub fn add_torrent(addr: SocketAddr, torrent: &[u8]) -> Response {
    let r = http::post(addr, "/api/torrents", "application/x-bittorrent", torrent);
    assert!(
        (200..300).contains(&r.status),
        "adding a .torrent: {} {}",
        r.head(),
        r.text()
    );
    r
}

/// `GET /api/torrents/<hash>` as JSON (200 required).
pub fn status(addr: SocketAddr, info_hash: &str) -> Value {
    let r = http::get(addr, &format!("/api/torrents/{info_hash}"), &[]);
    assert_eq!(
        r.status,
        200,
        "status of {info_hash}: {} {}",
        r.head(),
        r.text()
    );
    r.json()
}

/// Polls the status until `done` holds; the last status either way (`Err` on timeout).
pub fn wait_for_status(
    addr: SocketAddr,
    info_hash: &str,
    timeout: Duration,
    done: impl Fn(&Value) -> bool,
) -> Result<Value, Value> {
    let started = Instant::now();
    loop {
        let s = status(addr, info_hash);
        if done(&s) {
            return Ok(s);
        }
        if started.elapsed() > timeout {
            return Err(s);
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// `bytesFetched.http` of a status (0 when absent).
pub fn http_bytes_fetched(status: &Value) -> u64 {
    status["bytesFetched"]["http"].as_u64().unwrap_or(0)
}

/// Streams `/stream/proxy/<info_hash>` to its end and checks it byte for byte against `source`;
/// any failure shows streme's log.
pub fn assert_streams_byte_exact(srv: &Server, info_hash: &str, source: &[u8]) {
    let path = format!("/stream/proxy/{info_hash}");
    let r = std::panic::catch_unwind(|| get_observed(srv.addr(), &path, &[], || Value::Null))
        .unwrap_or_else(|_| panic!("the stream failed; streme's log:\n{}", srv.logs()))
        .response;
    assert_eq!(r.status, 200, "{}\n{}", r.head(), srv.logs());
    assert!(r.complete, "ended early at {} bytes", r.body.len());
    assert_eq!(
        super::sha256_hex(&r.body),
        super::sha256_hex(source),
        "stream differs"
    );
}

/// A stream read whose first body byte was timed.
#[derive(Debug)]
pub struct Observed {
    pub response: Response,
    /// From the request's first byte written to the first body byte read; None without body.
    pub first_byte: Option<Duration>,
    /// What `at_first_byte` returned, called the moment the first body byte arrived.
    pub seen_at_first_byte: Option<Value>,
}

/// `GET path` (`Connection: close`, `extra` header lines), reading the body to the end;
/// `at_first_byte` runs as soon as the first body byte is in, before the rest is read.
/// Handles Content-Length and close-delimited bodies (what a stream answer uses).
pub fn get_observed(
    addr: SocketAddr,
    path: &str,
    extra: &[&str],
    at_first_byte: impl FnOnce() -> Value,
) -> Observed {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(READ_DEADLINE))
        .expect("read timeout");
    let mut raw = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for line in extra {
        raw.push_str(line);
        raw.push_str("\r\n");
    }
    raw.push_str("\r\n");
    let started = Instant::now();
    stream.write_all(raw.as_bytes()).expect("write the request");

    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        let n = read_some(&mut stream, &mut chunk);
        assert!(
            n > 0,
            "closed before a response head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut body = buf[head_end + 4..].to_vec();
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
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    assert!(
        !header("Transfer-Encoding").is_some_and(|v| v.contains("chunked")),
        "get_observed reads no chunked bodies: {head}"
    );
    let length = header("Content-Length").and_then(|v| v.parse::<usize>().ok());
    let mut at_first_byte = Some(at_first_byte);
    let mut first_byte = None;
    let mut seen = None;
    loop {
        if !body.is_empty() && first_byte.is_none() {
            first_byte = Some(started.elapsed());
            seen = at_first_byte.take().map(|f| f());
        }
        if length.is_some_and(|l| body.len() >= l) {
            break;
        }
        let n = read_some(&mut stream, &mut chunk);
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let complete = length.is_none_or(|l| body.len() >= l);
    if let Some(l) = length {
        body.truncate(l);
    }
    Observed {
        response: Response {
            status_line,
            status,
            headers,
            body,
            complete,
            elapsed: started.elapsed(),
        },
        first_byte,
        seen_at_first_byte: seen,
    }
}

fn read_some(stream: &mut TcpStream, chunk: &mut [u8]) -> usize {
    loop {
        match stream.read(chunk) {
            Ok(n) => return n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("no byte from the server within {READ_DEADLINE:?}: a hang")
            }
            Err(_) => return 0,
        }
    }
}
