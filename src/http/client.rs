//! The one outgoing HTTP client: a shared isahc agent and the timeouts every
//! request gets.
//!
//! Owns how a request is sent and how its body is read against the stall
//! timeout. Must never buffer a whole body: callers read it in pieces.
//!
//! # Implementation
//! isahc runs libcurl on its own agent thread; `HttpClient` is a handle to it,
//! so cloning a [`Client`] shares the agent and its connection pool. Stalls
//! are caught by a timer around each wait (the headers, then every read of
//! the body, by one [`StallClock`] per body), not by curl's low-speed limit: a reader that stops reading because its
//! piece channel is full must not look like a stalled server.
//!
//! HTTPS: libcurl is built with rustls (see Cargo.toml), which trusts only the
//! CA bundle it is given. The bundle is found as OpenSSL would find it
//! (`SSL_CERT_FILE`, then Debian's and other distributions' usual paths), once
//! per agent; with none found, every https:// request fails verification.

use std::time::{Duration, Instant};

use async_io::Timer;
use futures_lite::{future, AsyncRead, AsyncReadExt};
use isahc::config::{CaCertificate, Configurable, RedirectPolicy};
use isahc::{AsyncBody, HttpClient, Request, Response};

use crate::config::Config;

/// Redirects followed: .torrent caches and mirrors redirect to a CDN once or
/// twice; more is a loop.
const MAX_REDIRECTS: u32 = 5;

/// curl's receive buffer per transfer, which is also the most one write into
/// a body's pipe carries. At curl's default of 16 KiB the pipe (four writes
/// deep) was full whenever the tier's reader lagged, so every 16 KiB cost a
/// pause, a wake-up of the agent thread and a resume: context switches were
/// the largest item of the tier's profile. 128 KiB makes them an eighth. The
/// memory is this per connection in curl, plus each body's pipe
/// (patches/isahc/src/body_pipe.rs): up to 512 KiB buffered and as much again
/// being read, about 5 MiB at `HTTP_CONNECTIONS=4` at most.
const RECEIVE_BUFFER: usize = 128 * 1024;

/// A handle on the shared HTTP agent.
#[derive(Clone, Debug)]
pub struct Client {
    agent: HttpClient,
    /// `HTTP_TIMEOUT`: connecting, waiting for headers, and each wait for body
    /// bytes.
    pub(super) timeout: Duration,
    /// `HTTP_MAX_TORRENT_KB` in bytes.
    pub(super) max_torrent_bytes: u64,
}

/// The agent could not start (curl failed to initialise).
#[derive(Debug)]
pub struct ClientError(pub String);

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot start the HTTP client: {}", self.0)
    }
}

impl std::error::Error for ClientError {}

/// How a request ended before its body could be read.
pub(super) enum SendError {
    Stalled,
    Transport(String),
}

impl Client {
    /// Starts the agent thread.
    pub fn new(timeout: Duration, max_torrent_bytes: u64) -> Result<Client, ClientError> {
        let mut builder = HttpClient::builder()
            .connect_timeout(timeout)
            .redirect_policy(RedirectPolicy::Limit(MAX_REDIRECTS))
            .receive_buffer_size(RECEIVE_BUFFER)
            // Byte offsets must be those of the file, never of a gzip stream.
            .automatic_decompression(false);
        // The curl crate used to set this on every handle through the same probe, while its
        // (unused) OpenSSL feature was on; curl's rustls backend has no default bundle of its own.
        if let Some(bundle) = openssl_probe::probe().cert_file {
            builder = builder.ssl_ca_certificate(CaCertificate::file(bundle));
        }
        let agent = builder.build().map_err(|e| ClientError(e.to_string()))?;
        Ok(Client {
            agent,
            timeout,
            max_torrent_bytes,
        })
    }

    /// [`Client::new`] with `HTTP_TIMEOUT` and `HTTP_MAX_TORRENT_KB`.
    pub fn from_config(config: &Config) -> Result<Client, ClientError> {
        Client::new(config.http_timeout, config.http_max_torrent_kb * 1024)
    }

    /// A GET of `url` with `range` (`bytes=a-b`) if given, up to its headers.
    pub(super) async fn get(
        &self,
        url: &str,
        range: Option<&str>,
    ) -> Result<Response<AsyncBody>, SendError> {
        let mut request = Request::get(url);
        if let Some(range) = range {
            request = request.header("Range", range);
        }
        let request = request
            .body(())
            .map_err(|e| SendError::Transport(format!("bad URL: {e}")))?;
        let sent = self.agent.send_async(request);
        match within(self.timeout, sent).await {
            None => Err(SendError::Stalled),
            Some(Ok(response)) => Ok(response),
            Some(Err(e)) if e.is_timeout() => Err(SendError::Stalled),
            Some(Err(e)) => Err(SendError::Transport(e.to_string())),
        }
    }
}

/// Why [`Client::get_small`] got no body.
#[derive(Debug)]
pub enum SmallGetError {
    /// No headers or no body bytes within `HTTP_TIMEOUT`.
    Stalled(Duration),
    Transport(String),
    /// The body is longer than the cap.
    TooLarge {
        cap: usize,
    },
}

impl Client {
    /// A plain GET of `url`: its status and its whole body, refused past
    /// `cap` bytes (tracker announces and other small answers).
    pub async fn get_small(&self, url: &str, cap: usize) -> Result<(u16, Vec<u8>), SmallGetError> {
        let mut response = self.get(url, None).await.map_err(|e| match e {
            SendError::Stalled => SmallGetError::Stalled(self.timeout),
            SendError::Transport(reason) => SmallGetError::Transport(reason),
        })?;
        let mut bytes = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        let mut clock = StallClock::new(self.timeout);
        loop {
            // One byte past the cap proves the body too large without reading the rest.
            let room = (cap + 1 - bytes.len()).min(buf.len());
            if room == 0 {
                return Err(SmallGetError::TooLarge { cap });
            }
            match clock.read(response.body_mut(), &mut buf[..room]).await {
                Ok(0) => return Ok((response.status().as_u16(), bytes)),
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
                Err(None) => return Err(SmallGetError::Stalled(self.timeout)),
                Err(Some(reason)) => return Err(SmallGetError::Transport(reason)),
            }
        }
    }
}

/// `fut`, or `None` if it takes longer than `timeout`.
pub(super) async fn within<T>(
    timeout: Duration,
    fut: impl std::future::Future<Output = T>,
) -> Option<T> {
    future::or(async { Some(fut.await) }, async {
        Timer::after(timeout).await;
        None
    })
    .await
}

/// A body's stall deadline: every wait for its bytes may last `timeout`,
/// measured by one timer for the whole body instead of one per read.
///
/// # Why
/// async-io wakes the thread in the reactor each time a timer is armed (so
/// that it sees the new deadline). A fresh timer per wait cost the HTTP tier
/// one such wake-up, with its context switches, per chunk curl hands over:
/// the executor threads made about two eventfd writes per 128 KiB of body.
/// Here the timer is armed once, at the first wait's deadline, and moved
/// only when it goes off early (the wait it was set for ended, a later one
/// still runs): at most once per `timeout` of reading. A wait's deadline is
/// never earlier than the timer's, since waits come one after another.
pub(super) struct StallClock {
    timer: Timer,
    timeout: Duration,
}

impl StallClock {
    pub(super) fn new(timeout: Duration) -> StallClock {
        StallClock {
            timer: Timer::after(timeout),
            timeout,
        }
    }

    /// One read into `buf`: `Ok(0)` at the end of the body, `Err(None)` when
    /// no byte came for `timeout`, `Err(Some(reason))` on a transport error.
    pub(super) async fn read(
        &mut self,
        body: &mut (impl AsyncRead + Unpin),
        buf: &mut [u8],
    ) -> Result<usize, Option<String>> {
        self.wait(body.read(buf)).await
    }

    /// One wait for a body's bytes (a read, or an [`AsyncBody::fill`]), with
    /// the errors of [`StallClock::read`].
    pub(super) async fn wait<T>(
        &mut self,
        mut read: impl std::future::Future<Output = std::io::Result<T>> + Unpin,
    ) -> Result<T, Option<String>> {
        // A body read mostly finds bytes waiting: no clock for those.
        let done = match future::poll_once(&mut read).await {
            Some(done) => done,
            None => {
                let deadline = Instant::now() + self.timeout;
                loop {
                    let timer = &mut self.timer;
                    let step = future::or(async { Some((&mut read).await) }, async {
                        timer.await;
                        None
                    })
                    .await;
                    match step {
                        Some(done) => break done,
                        None if Instant::now() >= deadline => return Err(None),
                        None => self.timer.set_at(deadline),
                    }
                }
            }
        };
        done.map_err(|e| Some(e.to_string()))
    }
}
