//! The HTTP server: the accept loop, the guards in front of every route,
//! CORS, and the routes (the JSON API, Range streaming, Stremio, playlists,
//! the pages).
//!
//! # Threat model
//! The box sits on a home LAN. It must hold against web pages in a LAN
//! browser (cross-site requests), DNS rebinding (a foreign name pointed at
//! the box), and other devices on the LAN (idle, slow or hostile clients).
//! [`guard`] holds the rules for the first two, [`conn`] the slots and
//! deadlines for the third.
//!
//! # Design
//! One exchange at a time per connection ([`exchange`]: async-h1 parses and
//! encodes the head, the body is written from its own buffer), on the smol
//! executor.
//! Every client is admitted at once ([`conn::Registry::admit`] closes the
//! quietest connection when a cap is reached), and every wait on a client
//! has a deadline from the config. Handlers never fail with a bare status:
//! every error is JSON `{"error": "..."}` whose text names what was wrong
//! (and a guard's refusal also names its `rule`). Streams and statistics
//! carry `Access-Control-Allow-Origin: *` so that players on any origin can
//! read them; mutating routes answer only the box's own pages and allowed
//! origins.
//!
//! The server never reads content from anywhere but [`crate::stream`].

mod api;
pub mod conn;
pub mod dlna;
mod exchange;
pub mod guard;
mod page;
mod playlist;
pub mod range;
pub mod status;
mod stream;
mod stremio;

use std::sync::Arc;
use std::time::Instant;

use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use http_types::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use smol::net::TcpListener;

use crate::session::Session;
use crate::stream::{Socket, StreamOptions};
use conn::{ConnIo, Limits, Registry, Shared};
use guard::{Class, Guard};

/// What every handler can reach.
#[derive(Clone)]
pub struct App {
    pub session: Session,
    pub stream: StreamOptions,
    /// The connection caps and deadlines.
    pub limits: Limits,
    /// The Host, Origin and token rules.
    pub guard: Arc<Guard>,
    /// The DLNA MediaServer's identity; None when `ENABLE_DLNA=false`.
    pub dlna: Option<Arc<dlna::Device>>,
}

/// The connection a request came on, put in its extensions so that body
/// readers can stop it.
#[derive(Clone)]
struct Client(Arc<Shared>);

/// Accepts clients until the listener fails. Never waits for a slot: see
/// [`conn::Registry::admit`].
pub async fn serve(listener: TcpListener, app: App) -> std::io::Result<()> {
    let registry = Registry::new(app.limits);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of file descriptors or a reset before accept: the listener is
            // fine, and the next client must still get in.
            Err(e) if is_transient(&e) => {
                log::warn!("[Server] accept failed: {e}");
                // Out of descriptors: a held client gives its one back, so that
                // the waiting one gets in instead of the listener spinning.
                if matches!(e.raw_os_error(), Some(23 | 24)) {
                    registry.close_quietest();
                }
                async_io::Timer::after(std::time::Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let _ = stream.set_nodelay(true);
        let slot = registry.admit(stream, peer.ip());
        let app = app.clone();
        smol::spawn(async move {
            let shared = slot.shared.clone();
            let exchange = app.connection(shared.clone());
            let stalled = async {
                shared.stalled(app.limits.stall).await;
                log::debug!(
                    "[Server] closing {peer}: no byte moved for {} ms",
                    app.limits.stall.as_millis()
                );
            };
            future::or(exchange, future::or(stalled, shared.closed())).await;
            // Shut down before the slot is given back, so the client sees the close.
            let _ = shared.stream().shutdown(std::net::Shutdown::Both);
            drop(slot);
        })
        .detach();
    }
}

/// Accept errors after which the listener still works.
fn is_transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::Interrupted
    ) || matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12)) // ENFILE, EMFILE, ENOBUFS, ENOMEM
}

impl App {
    /// Serves one connection's requests until it closes, idles out or fails.
    async fn connection(&self, shared: Arc<Shared>) {
        let io = ConnIo::new(shared.clone());
        let touch = || shared.touch();
        let socket = Socket {
            stream: shared.stream().clone().into(),
            moved: &touch,
        };
        loop {
            // Idle between requests: wait for the first byte of the next head.
            let mut probe = [0u8; 1];
            let first = future::or(
                async { shared.stream().peek(&mut probe).await.ok() },
                async {
                    async_io::Timer::after(self.limits.idle).await;
                    None
                },
            )
            .await;
            if !matches!(first, Some(n) if n > 0) {
                return;
            }
            shared.begin_head();
            let head_due = Instant::now() + self.limits.head;
            let endpoint = |req| {
                let shared = shared.clone();
                async move { Ok(self.handle(req, shared).await) }
            };
            let exchange =
                async { Some(exchange::exchange(io.clone(), Some(&socket), endpoint).await) };
            let head_deadline = async {
                async_io::Timer::at(head_due).await;
                if shared.in_head() {
                    return None;
                }
                future::pending().await
            };
            match future::or(exchange, head_deadline).await {
                Some(Ok(exchange::Status::KeepAlive)) => {
                    if shared.reading_stopped() {
                        return;
                    }
                }
                Some(Ok(exchange::Status::Close)) => return,
                Some(Err(e)) => {
                    let (status, message) = bad_head(&shared, &e);
                    log::debug!("[Server] bad request: {status}: {message}");
                    if shared.in_head() {
                        write_refusal(&io, status, &message).await;
                    }
                    return;
                }
                None => {
                    let message = format!(
                        "request head not complete within {} ms",
                        self.limits.head.as_millis()
                    );
                    write_refusal(&io, StatusCode::RequestTimeout, &message).await;
                    return;
                }
            }
        }
    }

    async fn handle(&self, mut req: Request, shared: Arc<Shared>) -> Response {
        shared.end_head();
        let method = req.method();
        let path = req.url().path().to_string();
        log::debug!("[Server] {method} {path}");
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let class = Guard::classify(method, &segments);
        let host = header(&req, "Host");
        let origin = req.header("Origin").map(|o| o.as_str().to_string());
        let trusted = origin
            .as_deref()
            .is_some_and(|o| self.guard.origin_allowed(o, &host));
        let has_body =
            req.len().is_some_and(|n| n > 0) || req.header("Transfer-Encoding").is_some();
        let mut res = match self.guard.check(&req, class) {
            Err(refusal) => {
                log::info!(
                    "[Server] refused {method} {path} (rule {}): {refusal}",
                    refusal.rule()
                );
                let mut res = json_response(
                    refusal.status(),
                    json!({"error": refusal.to_string(), "rule": refusal.rule()}),
                );
                res.insert_header("Vary", "Origin");
                res
            }
            Ok(()) if method == Method::Options => preflight(class, trusted, origin.as_deref()),
            Ok(()) => {
                req.ext_mut().insert(Client(shared.clone()));
                self.route(req, method, &path, &segments).await
            }
        };
        cors(&mut res, class, &segments, trusted, origin.as_deref());
        // A refused or failed request's body is not drained: a lying or huge
        // body must not keep the connection.
        if has_body && u16::from(res.status()) >= 400 {
            close_after(&mut res, &shared);
        }
        res
    }

    /// Reads a request body of at most `max` bytes within the body deadline;
    /// the refusal, otherwise, closes the connection.
    async fn read_body(&self, req: &mut Request, max: u64) -> Result<Vec<u8>, Box<Response>> {
        let shared = req.ext().get::<Client>().map(|c| c.0.clone());
        let refuse = |status, message: String| {
            let mut res = error(status, message);
            if let Some(shared) = &shared {
                close_after(&mut res, shared);
            }
            Box::new(res)
        };
        if let Some(len) = req.len() {
            if len as u64 > max {
                return Err(refuse(
                    StatusCode::PayloadTooLarge,
                    format!(
                        "request body of {len} bytes is over this route's limit of {max} bytes"
                    ),
                ));
            }
        }
        let mut body = Vec::new();
        let reader = req.take_body().into_reader();
        let read = future::or(
            async { Some(reader.take(max + 1).read_to_end(&mut body).await) },
            async {
                async_io::Timer::after(self.limits.body).await;
                None
            },
        )
        .await;
        match read {
            None => Err(refuse(
                StatusCode::RequestTimeout,
                format!(
                    "request body not complete within {} ms (does Content-Length lie?)",
                    self.limits.body.as_millis()
                ),
            )),
            Some(Err(e)) => Err(refuse(
                StatusCode::BadRequest,
                format!("could not read the request body: {e}"),
            )),
            Some(Ok(_)) if body.len() as u64 > max => Err(refuse(
                StatusCode::PayloadTooLarge,
                format!("request body is over this route's limit of {max} bytes"),
            )),
            Some(Ok(_)) => Ok(body),
        }
    }

    async fn route(&self, req: Request, method: Method, path: &str, segments: &[&str]) -> Response {
        match (method, segments) {
            (Method::Get, ["health"]) => json_response(
                StatusCode::Ok,
                json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}),
            ),
            (Method::Get, [""]) if page::wants_html(&req) => page::dashboard(),
            (Method::Get, ["test-torrent-streaming"]) => page::player(),
            (Method::Get, ["page", asset]) => page::asset(asset),
            (Method::Get, ["playlist.m3u"]) => self.playlist_all(&req),
            (Method::Get, ["playlist", file]) => self.playlist_one(&req, file),
            (Method::Get, [""]) => json_response(
                StatusCode::Ok,
                json!({"name": "streme", "version": env!("CARGO_PKG_VERSION"), "api": ["/api/torrents", "/api/cache", "/stream/proxy/:infoHash", "/health"]}),
            ),
            (_, ["api", rest @ ..]) => self.api(req, method, rest).await,
            (_, ["dlna", rest @ ..]) => self.dlna(req, method, rest).await,
            (Method::Get | Method::Head, ["stream", "proxy", ih]) => {
                let file = req
                    .url()
                    .query_pairs()
                    .find(|(k, _)| k == "fileIndex")
                    .map(|(_, v)| v.into_owned());
                self.stream(&req, ih, file.as_deref()).await
            }
            (Method::Get | Method::Head, ["stream", ih, file, ..]) => {
                let file = file.to_string();
                self.stream(&req, ih, Some(&file)).await
            }
            (_, ["stream", ..] | ["health"]) => error(
                StatusCode::MethodNotAllowed,
                format!("{method} is not allowed on {path}"),
            ),
            // Last: Stremio's routes start with an info hash, so they claim any path of the form.
            _ => match self.stremio(req, method, segments).await {
                Some(res) => res,
                None => error(
                    StatusCode::NotFound,
                    format!("no route for {method} {path}"),
                ),
            },
        }
    }
}

/// A JSON answer.
fn json_response(status: StatusCode, body: Value) -> Response {
    let mut res = Response::new(status);
    res.insert_header("Content-Type", "application/json");
    res.set_body(body.to_string());
    res
}

/// A JSON error whose text says what was wrong.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let message = message.into();
    log::debug!("[Server] {status}: {message}");
    json_response(status, json!({ "error": message }))
}

/// A header's value, or empty.
fn header(req: &Request, name: &str) -> String {
    req.header(name)
        .map(|h| h.as_str().to_string())
        .unwrap_or_default()
}

/// Marks a response as the last on its connection, and stops reading the
/// request body that is left.
fn close_after(res: &mut Response, shared: &Shared) {
    res.insert_header("Connection", "close");
    shared.stop_reading();
}

/// The status and message for a request async-h1 could not decode.
fn bad_head(shared: &Shared, e: &http_types::Error) -> (StatusCode, String) {
    let text = e.to_string();
    if shared.head_overflowed() || text.contains("Head byte length") {
        return (
            StatusCode::RequestHeaderFieldsTooLarge,
            "request head is over 8 KiB".to_string(),
        );
    }
    if text.contains("too many headers") {
        return (
            StatusCode::RequestHeaderFieldsTooLarge,
            "request has over 128 header fields".to_string(),
        );
    }
    let status = if e.status().is_client_error() {
        e.status()
    } else {
        StatusCode::BadRequest
    };
    (status, format!("bad request head: {text}"))
}

/// Answers a request that never reached a handler, then the connection closes.
async fn write_refusal(io: &ConnIo, status: StatusCode, message: &str) {
    let body = json!({ "error": message }).to_string();
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        u16::from(status),
        status.canonical_reason(),
        body.len()
    );
    let mut io = io.clone();
    let write = async {
        let _ = io.write_all(head.as_bytes()).await;
        let _ = io.write_all(body.as_bytes()).await;
        let _ = io.flush().await;
    };
    // A client that reads nothing must not hold the task.
    future::or(write, async {
        async_io::Timer::after(std::time::Duration::from_secs(2)).await;
    })
    .await;
}

/// Whether a read-only route's answer may be read by any origin: streams,
/// health, the Stremio statistics and settings, and playlists. The API and
/// the pages answer only the box's own pages and allowed origins.
fn open_to_any_origin(class: Class, segments: &[&str]) -> bool {
    match class {
        Class::Open => true,
        Class::Read => !matches!(
            segments,
            ["api", ..] | [""] | ["page", ..] | ["test-torrent-streaming"] | ["dlna", ..]
        ),
        Class::Mutating => false,
    }
}

/// CORS: streams and statistics for any origin, because players on the LAN
/// load them from pages served elsewhere; the rest for trusted origins only.
fn cors(res: &mut Response, class: Class, segments: &[&str], trusted: bool, origin: Option<&str>) {
    if open_to_any_origin(class, segments) {
        res.insert_header("Access-Control-Allow-Origin", "*");
    } else if let (true, Some(origin)) = (trusted, origin) {
        res.insert_header("Access-Control-Allow-Origin", origin);
        res.append_header("Vary", "Origin");
    }
    res.insert_header(
        "Access-Control-Expose-Headers",
        "Content-Range, Content-Length, Accept-Ranges, Content-Type, ETag",
    );
}

/// A preflight: reads for everyone; mutating methods and Chrome's private
/// network access (a public page calling a LAN box) only for trusted origins.
fn preflight(class: Class, trusted: bool, origin: Option<&str>) -> Response {
    let mut res = Response::new(StatusCode::NoContent);
    match (trusted, origin) {
        (true, Some(origin)) => {
            res.insert_header(
                "Access-Control-Allow-Methods",
                "GET, HEAD, POST, PUT, DELETE, OPTIONS",
            );
            res.insert_header(
                "Access-Control-Allow-Headers",
                "Range, If-Range, Content-Type, Authorization",
            );
            res.insert_header("Access-Control-Allow-Private-Network", "true");
            if class != Class::Open {
                res.insert_header("Access-Control-Allow-Origin", origin);
                res.insert_header("Vary", "Origin");
            }
        }
        _ => {
            res.insert_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS");
            res.insert_header("Access-Control-Allow-Headers", "Range, If-Range");
        }
    }
    res.insert_header("Access-Control-Max-Age", "600");
    res
}
