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
//!
//! - `notify`: the sd_notify socket and its messages;
//! - `status`: the `STATUS=` line, from counters only;
//! - this file: the stop signals, the run loop, and the shutdown.

use std::fmt;
use std::future::Future;
use std::io;
use std::time::{Duration, Instant};

use async_io::Timer;
use async_signal::{Signal, Signals};
use futures_lite::{future, StreamExt};

mod notify;
mod status;

pub use notify::{Notifier, NotifyError};
use status::StatusLine;

use crate::session::Session;
use crate::store::{Store, StoreError};

/// How often `STATUS=` is refreshed: often enough for `systemctl status` to
/// look alive, rare enough to cost nothing on a Pi Zero.
const STATUS_EVERY: Duration = Duration::from_secs(5);

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
