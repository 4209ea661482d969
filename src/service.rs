//! streme as a systemd service: the sd_notify messages (`READY=1`, `STATUS=`,
//! `WATCHDOG=1`, `STOPPING=1`) and the signals that ask it to stop.
//!
//! Owns the notify socket and the stop signals. It never touches content or
//! the cache's files: shutting down asks the [`Store`] to flush its index, and
//! the status line only reads counters.
//!
//! # Design
//! sd_notify is one datagram on the unix socket named by `$NOTIFY_SOCKET`
//! (a leading `@` means Linux's abstract namespace), so it is written by hand
//! here instead of pulling a crate. Without `$NOTIFY_SOCKET` (streme started
//! from a shell) every message is a no-op. `$NOTIFY_SOCKET`, `$WATCHDOG_USEC`
//! and `$WATCHDOG_PID` are systemd's protocol, not settings, which is why they
//! are read here and not by [`crate::config`].
//!
//! The watchdog pings come from a task on smol's executor, the one that runs
//! every client connection: if a connection task blocks that thread, the pings
//! stop and systemd restarts the process, which is the point of the watchdog.
//! A send never blocks (the socket is non-blocking), so a slow systemd cannot
//! stall the loop either.

use std::fmt;
use std::future::Future;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use async_io::Timer;
use async_signal::{Signal, Signals};
use futures_lite::{future, StreamExt};

use crate::session::{Session, Torrent};
use crate::store::{Store, StoreError};

/// How often `STATUS=` is refreshed: often enough for `systemctl status` to
/// look alive, rare enough to cost nothing on a Pi Zero.
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// Why a notify socket could not be used.
#[derive(Debug)]
pub enum NotifyError {
    /// `$NOTIFY_SOCKET` names neither a path nor an `@abstract` name.
    BadSocket { value: String },
    /// `$WATCHDOG_USEC` is not a positive number of microseconds.
    BadWatchdog { value: String },
    /// The datagram did not go out.
    Send { socket: String, error: io::Error },
}

impl fmt::Display for NotifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotifyError::BadSocket { value } => {
                write!(f, "NOTIFY_SOCKET={value:?} is not a socket path or @name")
            }
            NotifyError::BadWatchdog { value } => {
                write!(f, "WATCHDOG_USEC={value:?} is not a positive number")
            }
            NotifyError::Send { socket, error } => {
                write!(f, "cannot notify systemd on {socket}: {error}")
            }
        }
    }
}

impl std::error::Error for NotifyError {}

/// Where the notify datagrams go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Path(std::path::PathBuf),
    /// Linux abstract namespace: the name after the `@`.
    Abstract(Vec<u8>),
}

impl Target {
    fn parse(value: &str) -> Result<Target, NotifyError> {
        match value.strip_prefix('@') {
            Some(name) if !name.is_empty() => Ok(Target::Abstract(name.as_bytes().to_vec())),
            None if value.starts_with('/') => Ok(Target::Path(value.into())),
            _ => Err(NotifyError::BadSocket {
                value: value.to_string(),
            }),
        }
    }
}

/// The sd_notify side of systemd: a no-op when streme is not run by systemd
/// with `Type=notify`.
#[derive(Debug)]
pub struct Notifier {
    /// The socket and where it sends; None when `$NOTIFY_SOCKET` is unset.
    socket: Option<(UnixDatagram, Target)>,
    /// `$NOTIFY_SOCKET` as given, for error messages.
    name: String,
    /// Half of `$WATCHDOG_USEC` when the watchdog is on for this process.
    watchdog: Option<Duration>,
}

impl Notifier {
    /// From the process environment; problems are logged, and turn the
    /// offending part off rather than stop the server.
    pub fn from_env() -> Notifier {
        let (notifier, problems) =
            Notifier::from_vars(|k| std::env::var(k).ok(), std::process::id());
        for p in problems {
            log::warn!("[Service] {p}");
        }
        notifier
    }

    /// From `var` (the environment as a function, so tests never touch the
    /// process's) for process `pid`.
    fn from_vars(var: impl Fn(&str) -> Option<String>, pid: u32) -> (Notifier, Vec<NotifyError>) {
        let mut problems = Vec::new();
        let name = var("NOTIFY_SOCKET").unwrap_or_default();
        let socket = match Target::parse(&name) {
            _ if name.is_empty() => None,
            Ok(target) => match UnixDatagram::unbound().and_then(|s| {
                s.set_nonblocking(true)?;
                Ok(s)
            }) {
                Ok(s) => Some((s, target)),
                Err(error) => {
                    problems.push(NotifyError::Send {
                        socket: name.clone(),
                        error,
                    });
                    None
                }
            },
            Err(e) => {
                problems.push(e);
                None
            }
        };
        // systemd sets WATCHDOG_PID to the process it watches; a child that
        // inherited the variable must not ping for its parent.
        let for_us = var("WATCHDOG_PID").is_none_or(|p| p.trim() == pid.to_string());
        let watchdog = match var("WATCHDOG_USEC") {
            Some(v) if for_us => match v.trim().parse::<u64>() {
                Ok(usec) if usec > 0 => Some(Duration::from_micros(usec) / 2),
                _ => {
                    problems.push(NotifyError::BadWatchdog { value: v });
                    None
                }
            },
            _ => None,
        };
        let notifier = Notifier {
            socket,
            name,
            watchdog,
        };
        (notifier, problems)
    }

    /// Sends one message (`KEY=value` lines); Ok(()) and nothing sent when not
    /// under systemd.
    pub fn send(&self, message: &str) -> Result<(), NotifyError> {
        let Some((socket, target)) = &self.socket else {
            return Ok(());
        };
        let sent = match target {
            Target::Path(path) => socket.send_to(message.as_bytes(), path),
            Target::Abstract(name) => send_abstract(socket, name, message.as_bytes()),
        };
        sent.map(drop).map_err(|error| NotifyError::Send {
            socket: self.name.clone(),
            error,
        })
    }

    /// [`Notifier::send`], logging a failure: a lost notification must never
    /// take the server down (systemd's own timeouts deal with it).
    fn tell(&self, message: &str) {
        if let Err(e) = self.send(message) {
            log::warn!("[Service] {e}");
        }
    }

    /// A second handle on the same socket, for a task that outlives a borrow.
    fn clone_socket(&self) -> Notifier {
        Notifier {
            socket: self
                .socket
                .as_ref()
                .and_then(|(s, t)| s.try_clone().ok().map(|s| (s, t.clone()))),
            name: self.name.clone(),
            watchdog: self.watchdog,
        }
    }

    /// The interval between watchdog pings, when systemd asked for them.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn send_abstract(socket: &UnixDatagram, name: &[u8], message: &[u8]) -> io::Result<usize> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    socket.send_to_addr(message, &addr)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn send_abstract(_: &UnixDatagram, _: &[u8], _: &[u8]) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract unix sockets exist only on Linux",
    ))
}

/// Which signal asked streme to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    Term,
    Int,
}

impl fmt::Display for StopSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopSignal::Term => "SIGTERM",
            StopSignal::Int => "SIGINT",
        })
    }
}

/// SIGTERM and SIGINT, caught from the moment this exists (so create it
/// before telling systemd READY=1: a stop request can follow at once).
pub struct StopSignals(Signals);

impl StopSignals {
    pub fn new() -> io::Result<StopSignals> {
        Signals::new([Signal::Term, Signal::Int]).map(StopSignals)
    }

    async fn next(&mut self) -> io::Result<StopSignal> {
        loop {
            match self.0.next().await {
                Some(Ok(Signal::Term)) => return Ok(StopSignal::Term),
                Some(Ok(Signal::Int)) => return Ok(StopSignal::Int),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e),
                None => return Err(io::ErrorKind::UnexpectedEof.into()),
            }
        }
    }
}

/// Why [`run`] returned.
#[derive(Debug)]
pub enum Stop {
    /// A stop signal: shut down cleanly and exit 0.
    Signal(StopSignal),
    /// The server itself ended.
    Server(io::Result<()>),
}

/// Tells systemd the server is ready, then runs `server` with the watchdog
/// and status tasks beside it until a stop signal arrives or the server ends.
/// Dropping `server` on a signal drops its listener: no new client is accepted.
pub async fn run(
    notifier: &Notifier,
    signals: &mut StopSignals,
    session: &Session,
    server: impl Future<Output = io::Result<()>>,
) -> Stop {
    notifier.tell("READY=1");
    let mut status = StatusLine::new(session);
    notifier.tell(&format!("STATUS={}", status.refresh()));
    // Both tasks live on smol's executor next to the connection tasks (see the
    // module docs), and are cancelled when their handles drop at return.
    let _watchdog = notifier.watchdog_interval().map(|every| {
        let notifier = notifier.clone_socket();
        smol::spawn(async move {
            loop {
                notifier.tell("WATCHDOG=1");
                Timer::after(every).await;
            }
        })
    });
    let notifier_for_status = notifier.clone_socket();
    let _status = smol::spawn(async move {
        loop {
            Timer::after(STATUS_EVERY).await;
            notifier_for_status.tell(&format!("STATUS={}", status.refresh()));
        }
    });
    let signal = async {
        match signals.next().await {
            Ok(signal) => Stop::Signal(signal),
            Err(e) => Stop::Server(Err(e)),
        }
    };
    future::or(signal, async { Stop::Server(server.await) }).await
}

/// The shutdown after a stop signal: `STOPPING=1`, then the cache index made
/// durable, so that the next start finds every verified piece it had.
pub fn shut_down(notifier: &Notifier, store: &Store, signal: StopSignal) -> Result<(), StoreError> {
    notifier.tell("STOPPING=1\nSTATUS=Stopping: flushing the cache index");
    log::info!("[Server] {signal} received: stopped accepting, flushing the cache index");
    let started = Instant::now();
    store.flush()?;
    log::info!(
        "[Server] Shut down cleanly (index flushed in {} ms)",
        started.elapsed().as_millis()
    );
    Ok(())
}

/// The one-line `STATUS=`: torrents, streams, cache use against the quota.
/// A torrent counts as streaming when players were served bytes of it since
/// the last refresh; the server keeps no count of open streams to read.
struct StatusLine {
    session: Session,
    /// Total bytes served at the last refresh, and when, for the rate.
    last: Option<(u64, Instant)>,
    /// Bytes served per torrent at the last refresh: a torrent whose count
    /// moved since is being streamed.
    served: Vec<(crate::format::InfoHash, u64)>,
}

impl StatusLine {
    fn new(session: &Session) -> StatusLine {
        StatusLine {
            session: session.clone(),
            last: None,
            served: Vec::new(),
        }
    }

    fn refresh(&mut self) -> String {
        let now = Instant::now();
        let served: Vec<_> = self
            .session
            .list()
            .iter()
            .map(|t| (t.info_hash, bytes_served(t)))
            .collect();
        let streaming = served
            .iter()
            .filter(|(ih, bytes)| {
                let before = self.served.iter().find(|(b, _)| b == ih).map_or(0, |b| b.1);
                *bytes > before
            })
            .count();
        let total: u64 = served.iter().map(|(_, b)| b).sum();
        let rate = match self.last {
            Some((before, at)) if now > at => {
                total.saturating_sub(before) as f64 / now.duration_since(at).as_secs_f64()
            }
            _ => 0.0,
        };
        self.last = Some((total, now));
        self.served = served;
        let usage = self.session.store.usage();
        format_status(self.served.len(), streaming, rate, usage.used, usage.quota)
    }
}

/// Bytes served to players from every tier, as the API reports them.
fn bytes_served(torrent: &Torrent) -> u64 {
    torrent.served().iter().sum()
}

/// `2 torrents, 1 streaming at 3.1 MB/s, cache 1200/5000 MB (24%)`.
fn format_status(torrents: usize, streaming: usize, rate: f64, used: u64, quota: u64) -> String {
    const MB: f64 = 1024.0 * 1024.0;
    let percent = if quota == 0 {
        0
    } else {
        (used as u128 * 100 / quota as u128) as u64
    };
    format!(
        "{torrents} torrent{}, {streaming} streaming at {:.1} MB/s, cache {}/{} MB ({percent}%)",
        if torrents == 1 { "" } else { "s" },
        rate / MB,
        used / (1024 * 1024),
        quota / (1024 * 1024),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn socket_names_are_paths_or_abstract() {
        assert_eq!(
            Target::parse("/run/systemd/notify").unwrap(),
            Target::Path("/run/systemd/notify".into())
        );
        assert_eq!(
            Target::parse("@/org/freedesktop/systemd1/notify/123").unwrap(),
            Target::Abstract(b"/org/freedesktop/systemd1/notify/123".to_vec())
        );
        for bad in ["relative/path", "@"] {
            assert!(
                matches!(Target::parse(bad), Err(NotifyError::BadSocket { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn without_notify_socket_every_message_is_a_no_op() {
        let (n, problems) = Notifier::from_vars(vars(&[]), 7);
        assert!(problems.is_empty());
        assert!(n.socket.is_none());
        assert!(n.send("READY=1").is_ok());
        assert_eq!(n.watchdog_interval(), None);
    }

    #[test]
    fn watchdog_pings_at_half_the_timeout_and_only_for_its_pid() {
        let (n, _) = Notifier::from_vars(vars(&[("WATCHDOG_USEC", "30000000")]), 7);
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(15)));
        let (n, _) = Notifier::from_vars(
            vars(&[("WATCHDOG_USEC", "400000"), ("WATCHDOG_PID", "7")]),
            7,
        );
        assert_eq!(n.watchdog_interval(), Some(Duration::from_millis(200)));
        let (n, problems) = Notifier::from_vars(
            vars(&[("WATCHDOG_USEC", "400000"), ("WATCHDOG_PID", "8")]),
            7,
        );
        assert_eq!(n.watchdog_interval(), None);
        assert!(problems.is_empty());
        let (n, problems) = Notifier::from_vars(vars(&[("WATCHDOG_USEC", "soon")]), 7);
        assert_eq!(n.watchdog_interval(), None);
        assert!(matches!(&problems[..], [NotifyError::BadWatchdog { value }] if value == "soon"));
    }

    #[test]
    fn a_datagram_reaches_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("streme-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let receiver = UnixDatagram::bind(&path).unwrap();
        let value = path.display().to_string();
        let (n, problems) =
            Notifier::from_vars(move |k| (k == "NOTIFY_SOCKET").then(|| value.clone()), 7);
        assert!(problems.is_empty());
        n.send("READY=1").unwrap();
        let mut buf = [0u8; 64];
        let len = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_datagram_reaches_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("streme-test-notify-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let receiver = UnixDatagram::bind_addr(&addr).unwrap();
        let value = format!("@{name}");
        let (n, _) = Notifier::from_vars(move |k| (k == "NOTIFY_SOCKET").then(|| value.clone()), 7);
        n.send("WATCHDOG=1").unwrap();
        let mut buf = [0u8; 64];
        let len = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
    }

    #[test]
    fn a_missing_listener_is_an_error_naming_the_socket() {
        let (n, _) =
            Notifier::from_vars(vars(&[("NOTIFY_SOCKET", "/nonexistent/streme/notify")]), 7);
        let e = n.send("READY=1").unwrap_err().to_string();
        assert!(e.contains("/nonexistent/streme/notify"), "{e}");
    }

    #[test]
    fn status_line_counts_and_percent() {
        let mb = 1024 * 1024;
        assert_eq!(
            format_status(2, 1, 3.3 * mb as f64, 1200 * mb, 5000 * mb),
            "2 torrents, 1 streaming at 3.3 MB/s, cache 1200/5000 MB (24%)"
        );
        assert_eq!(
            format_status(1, 0, 0.0, 0, 0),
            "1 torrent, 0 streaming at 0.0 MB/s, cache 0/0 MB (0%)"
        );
    }
}
