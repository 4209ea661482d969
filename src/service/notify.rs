//! The sd_notify socket: where `$NOTIFY_SOCKET` points, and the datagrams
//! sent there. Must never block: the socket is non-blocking.

use std::fmt;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

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
    pub(super) fn tell(&self, message: &str) {
        if let Err(e) = self.send(message) {
            log::warn!("[Service] {e}");
        }
    }

    /// A second handle on the same socket, for a task that outlives a borrow.
    pub(super) fn clone_socket(&self) -> Notifier {
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
}
