//! A small HTTP/1.1 server on a loopback port that misbehaves on purpose, for the HTTP tier's
//! fault tests: it serves in-memory bodies by path with Range and keep-alive, and each route
//! can corrupt bytes, cut bodies, answer 503, ignore Range or return a page instead of a file.
//! Every request is recorded ([`Hit`]) so a test can check what the tier asked for, and when.
//!
//! Must never hang a test or leak a thread forever: connections have read deadlines, and
//! the accept loop stops when the handle drops. Responses are written by hand, byte for byte,
//! so a fault is exactly the one the test asked for.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How a route misbehaves.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Serves the body as it is.
    None,
    /// Every response carries the body with the bytes `first..=last` (body offsets) inverted.
    Corrupt { first: u64, last: u64 },
    /// The first `times` responses with a body send half of it, then close the connection
    /// (Content-Length still promises the whole).
    CutHalf { times: usize },
    /// The first `times` requests get `503 Service Unavailable` with `Retry-After: secs`.
    Busy { times: usize, retry_after_secs: u32 },
    /// Range is ignored: every GET gets `200` and the whole body.
    IgnoreRange,
}

/// One request the server answered.
#[derive(Debug, Clone)]
pub struct Hit {
    pub path: String,
    /// The Range header as sent, if any.
    pub range: Option<String>,
    pub status: u16,
    /// Body bytes actually written (less than promised for a cut).
    pub sent: u64,
    /// Since the server started.
    pub at: Duration,
}

struct Route {
    body: Arc<Vec<u8>>,
    content_type: String,
    fault: Fault,
    /// Requests (for `Busy`) or bodies (for `CutHalf`) answered so far.
    count: usize,
}

#[derive(Default)]
struct State {
    routes: HashMap<String, Route>,
    hits: Vec<Hit>,
}

pub struct FaultServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl FaultServer {
    pub fn start() -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fault server");
        let addr = listener.local_addr().expect("fault server address");
        listener.set_nonblocking(true).expect("nonblocking accept");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, flag) = (state.clone(), stop.clone());
        let started = Instant::now();
        thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let st = st.clone();
                        thread::spawn(move || serve_connection(stream, st, started));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FaultServer { addr, state, stop }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Serves `body` at `path` (decoded form, e.g. `/content/ab/my movie.mkv`).
    pub fn route(&self, path: &str, body: Vec<u8>, content_type: &str, fault: Fault) {
        self.state
            .lock()
            .expect("fault server state")
            .routes
            .insert(
                path.to_string(),
                Route {
                    body: Arc::new(body),
                    content_type: content_type.to_string(),
                    fault,
                    count: 0,
                },
            );
    }

    /// Every request so far, in the order answered.
    pub fn hits(&self) -> Vec<Hit> {
        self.state.lock().expect("fault server state").hits.clone()
    }

    /// The requests for `path`.
    pub fn hits_for(&self, path: &str) -> Vec<Hit> {
        self.hits().into_iter().filter(|h| h.path == path).collect()
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if thread::panicking() {
            eprintln!("--- fault server {} hits ---", self.addr);
            for h in self.hits() {
                eprintln!("{h:?}");
            }
        }
    }
}

struct Request {
    method: String,
    path: String,
    range: Option<String>,
    close: bool,
}

fn serve_connection(mut stream: TcpStream, state: Arc<Mutex<State>>, started: Instant) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    loop {
        let Some(req) = read_request(&mut stream, &mut buf) else {
            return;
        };
        let keep = respond(&mut stream, &req, &state, started);
        if !keep || req.close {
            return;
        }
    }
}

fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Request> {
    let end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.drain(..end + 4);
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split_whitespace();
    let method = first.next()?.to_string();
    let target = first.next()?;
    let path = percent_decode(target.split('?').next().unwrap_or(target));
    let mut range = None;
    let mut close = false;
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("range") {
            range = Some(v.to_string());
        }
        if k.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close") {
            close = true;
        }
    }
    Some(Request {
        method,
        path,
        range,
        close,
    })
}

/// Writes one response; false when the connection must close afterwards.
fn respond(stream: &mut TcpStream, req: &Request, state: &Mutex<State>, started: Instant) -> bool {
    let at = started.elapsed();
    let mut st = state.lock().expect("fault server state");
    let Some(route) = st.routes.get_mut(&req.path) else {
        drop(st);
        let body = b"not found";
        let _ = write_head(
            stream,
            404,
            "Not Found",
            &[("Content-Type", "text/plain")],
            body.len() as u64,
        );
        let _ = stream.write_all(body);
        record(state, req, 404, body.len() as u64, at);
        return true;
    };
    let total = route.body.len() as u64;
    let body = route.body.clone();
    let content_type = route.content_type.clone();
    let fault = route.fault.clone();
    let head_only = req.method == "HEAD";
    if let Fault::Busy {
        times,
        retry_after_secs,
    } = fault
    {
        if route.count < times {
            route.count += 1;
            drop(st);
            let text = b"busy, come back later";
            let retry = retry_after_secs.to_string();
            let _ = write_head(
                stream,
                503,
                "Service Unavailable",
                &[
                    ("Retry-After", retry.as_str()),
                    ("Content-Type", "text/plain"),
                ],
                text.len() as u64,
            );
            if !head_only {
                let _ = stream.write_all(text);
            }
            record(state, req, 503, text.len() as u64, at);
            return true;
        }
    }
    let cut = match fault {
        Fault::CutHalf { times } if !head_only && route.count < times => {
            route.count += 1;
            true
        }
        _ => false,
    };
    drop(st);

    let ranged = match (&req.range, &fault) {
        (Some(r), f) if !matches!(f, Fault::IgnoreRange) => Some(parse_range(r, total)),
        _ => None,
    };
    let (status, reason, first, last) = match ranged {
        None => (200, "OK", 0, total.saturating_sub(1)),
        Some(Some((a, b))) => (206, "Partial Content", a, b),
        Some(None) => {
            let cr = format!("bytes */{total}");
            let _ = write_head(
                stream,
                416,
                "Range Not Satisfiable",
                &[("Content-Range", cr.as_str())],
                0,
            );
            record(state, req, 416, 0, at);
            return true;
        }
    };
    let len = if total == 0 { 0 } else { last - first + 1 };
    let content_range = format!("bytes {first}-{last}/{total}");
    let mut headers = vec![
        ("Content-Type", content_type.as_str()),
        ("Accept-Ranges", "bytes"),
    ];
    if status == 206 {
        headers.push(("Content-Range", content_range.as_str()));
    }
    if write_head(stream, status, reason, &headers, len).is_err() {
        return false;
    }
    if head_only {
        record(state, req, status, 0, at);
        return true;
    }
    let mut out = body[first as usize..(first + len) as usize].to_vec();
    if let Fault::Corrupt {
        first: cf,
        last: cl,
    } = fault
    {
        for (i, byte) in out.iter_mut().enumerate() {
            let at = first + i as u64;
            if at >= cf && at <= cl {
                *byte ^= 0xFF;
            }
        }
    }
    let send = if cut { out.len() / 2 } else { out.len() };
    // A peer that hangs up mid-body (the tier cancelling a request) is not a test failure.
    let written = write_counted(stream, &out[..send]);
    record(state, req, status, written, at);
    if cut {
        let _ = stream.flush();
        let _ = stream.shutdown(std::net::Shutdown::Both);
        return false;
    }
    written == send as u64
}

fn write_counted(stream: &mut TcpStream, bytes: &[u8]) -> u64 {
    let mut written = 0;
    for chunk in bytes.chunks(64 * 1024) {
        if stream.write_all(chunk).is_err() {
            return written;
        }
        written += chunk.len() as u64;
    }
    written
}

fn write_head(
    stream: &mut TcpStream,
    status: u16,
    reason: &str,
    headers: &[(&str, &str)],
    content_length: u64,
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {content_length}\r\n\r\n"));
    stream.write_all(head.as_bytes())
}

fn record(state: &Mutex<State>, req: &Request, status: u16, sent: u64, at: Duration) {
    state.lock().expect("fault server state").hits.push(Hit {
        path: req.path.clone(),
        range: req.range.clone(),
        status,
        sent,
        at,
    });
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` against `total` → `(first, last)`; None when it
/// cannot be satisfied. Only the first range of a list is honoured (the tier asks for one).
fn parse_range(value: &str, total: u64) -> Option<(u64, u64)> {
    let spec = value
        .trim()
        .strip_prefix("bytes=")?
        .split(',')
        .next()?
        .trim();
    let (a, b) = spec.split_once('-')?;
    if total == 0 {
        return None;
    }
    if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 {
            return None;
        }
        return Some((total.saturating_sub(n), total - 1));
    }
    let first: u64 = a.parse().ok()?;
    if first >= total {
        return None;
    }
    let last = if b.is_empty() {
        total - 1
    } else {
        b.parse::<u64>().ok()?.min(total - 1)
    };
    (last >= first).then_some((first, last))
}

/// `%XX` → the byte; the rest as is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
