//! A tiny HTTP/1.1 server on 127.0.0.1 for the tests: one thread, one
//! connection at a time, answers written by hand so that faults (a cut
//! body, a wrong Content-Range, a stall) are exact.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// A request as the handler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub path: String,
    /// `(first, last)` from `Range: bytes=first-last`.
    pub range: Option<(u64, u64)>,
}

/// What to do with a connection.
pub enum Reply {
    /// Write these bytes, then close.
    Bytes(Vec<u8>),
    /// Write these bytes, wait, then close: a stalled body.
    Stall(Vec<u8>, Duration),
    /// Write the head, then the body a byte at a time, waiting between bytes.
    Trickle(Vec<u8>, Vec<u8>, Duration),
}

pub struct Server {
    pub base: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    /// Serves every connection with `handler(request, how many came before)`.
    pub fn start(handler: impl Fn(&Seen, usize) -> Reply + Send + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let Some(request) = read_request(&stream) else {
                    continue;
                };
                let count = {
                    let mut log = log.lock().unwrap();
                    log.push(request.clone());
                    log.len() - 1
                };
                let mut stream = stream;
                match handler(&request, count) {
                    Reply::Bytes(bytes) => {
                        let _ = stream.write_all(&bytes);
                    }
                    Reply::Stall(bytes, wait) => {
                        let _ = stream.write_all(&bytes);
                        let _ = stream.flush();
                        thread::sleep(wait);
                    }
                    Reply::Trickle(head, body, gap) => {
                        let _ = stream.write_all(&head);
                        for byte in body {
                            let _ = stream.flush();
                            thread::sleep(gap);
                            let _ = stream.write_all(&[byte]);
                        }
                    }
                }
            }
        });
        Server { base, seen }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn read_request(stream: &TcpStream) -> Option<Seen> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split(' ').nth(1)?.to_string();
    let mut range = None;
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        if name.eq_ignore_ascii_case("range") {
            let (a, b) = value.trim().strip_prefix("bytes=")?.split_once('-')?;
            range = Some((a.parse().ok()?, b.parse().ok()?));
        }
    }
    Some(Seen { path, range })
}

/// A response with `status`, extra header lines and `body`, closing after.
pub fn response(status: &str, headers: &[String], body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// A correct answer for `file`: 206 with the asked range, or 200 without one.
pub fn ranged(request: &Seen, file: &[u8]) -> Vec<u8> {
    match request.range {
        Some((a, b)) => response(
            "206 Partial Content",
            &[format!("Content-Range: bytes {a}-{b}/{}", file.len())],
            &file[a as usize..=b as usize],
        ),
        None => response("200 OK", &[], file),
    }
}
