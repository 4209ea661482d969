//! The HTTP server: routes, the JSON API, and Range streaming.
//!
//! # Design
//! One async-h1 connection task per client on the smol executor, capped by
//! [`App::max_clients`] so that memory stays a budget: each client costs a few
//! stream buffers and async-h1's 8 KiB head buffer. Handlers never fail with a
//! bare status: every error is JSON `{"error": "..."}` whose text names what
//! was wrong, and CORS headers go on every answer so that browser players on
//! other origins can read them.
//!
//! The server never reads content from anywhere but [`crate::stream`].

mod api;
mod page;
mod playlist;
pub mod range;
pub mod status;
mod stream;
mod stremio;

use std::sync::Arc;

use http_types::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use smol::lock::Semaphore;
use smol::net::TcpListener;

use crate::session::Session;
use crate::stream::StreamOptions;

/// What every handler can reach.
#[derive(Clone)]
pub struct App {
    pub session: Session,
    pub stream: StreamOptions,
    /// Clients served at once; more wait in the listen backlog. Sized so that
    /// a 512 MB Pi Zero 2 W keeps its stream buffers under a few MB.
    pub max_clients: usize,
}

/// Accepts clients until the listener fails.
pub async fn serve(listener: TcpListener, app: App) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(app.max_clients));
    loop {
        let permit = slots.acquire_arc().await;
        let (stream, peer) = listener.accept().await?;
        let app = app.clone();
        smol::spawn(async move {
            let served = async_h1::accept(stream, |req| {
                let app = app.clone();
                async move { Ok(app.handle(req).await) }
            });
            if let Err(e) = served.await {
                log::debug!("[Server] connection from {peer} ended: {e}");
            }
            drop(permit);
        })
        .detach();
    }
}

impl App {
    async fn handle(&self, req: Request) -> Response {
        let method = req.method();
        let path = req.url().path().to_string();
        log::debug!("[Server] {method} {path}");
        let mut res = self.route(req, method, &path).await;
        cors(&mut res);
        res
    }

    async fn route(&self, req: Request, method: Method, path: &str) -> Response {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (method, segments.as_slice()) {
            (Method::Options, _) => preflight(),
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
            _ => match self.stremio(req, method, &segments).await {
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

/// CORS for any origin: players on the LAN load streams from pages served
/// elsewhere, and need to read the range headers.
fn cors(res: &mut Response) {
    res.insert_header("Access-Control-Allow-Origin", "*");
    res.insert_header(
        "Access-Control-Expose-Headers",
        "Content-Range, Content-Length, Accept-Ranges, Content-Type, ETag",
    );
}

fn preflight() -> Response {
    let mut res = Response::new(StatusCode::NoContent);
    res.insert_header(
        "Access-Control-Allow-Methods",
        "GET, HEAD, POST, DELETE, OPTIONS",
    );
    res.insert_header(
        "Access-Control-Allow-Headers",
        "Range, If-Range, Content-Type",
    );
    // Chrome's private network access: a public page may call a LAN box.
    res.insert_header("Access-Control-Allow-Private-Network", "true");
    res.insert_header("Access-Control-Max-Age", "86400");
    res
}
