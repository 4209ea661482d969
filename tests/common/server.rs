//! The real `streme` binary, as a server on an ephemeral loopback port or as a one-shot CLI
//! command, with a clean environment: only PATH, HOME, empty source lists and what the test
//! sets reach it, so a developer's own settings never change a test's outcome, and no test
//! ever reaches a public address.
//!
//! Must never leave a process behind: [`Server`] kills its child on drop, and CLI runs have a
//! deadline.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long a server gets to print its `Listening on` line. Generous: CI has 2 shared cores.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long one CLI command may run before the test calls it a hang.
const CLI_DEADLINE: Duration = Duration::from_secs(300);

/// The settings every test starts from: loopback, an ephemeral port, a private cache dir and
/// quota, debug logs, and short tier deadlines so a missing piece fails fast. The HTTP
/// fallback is off because tests never leave loopback.
pub fn base_env(cache_dir: &Path, quota_mb: u64) -> Vec<(String, String)> {
    vec![
        ("PORT".into(), "0".into()),
        ("HOST".into(), "127.0.0.1".into()),
        ("CACHE_DIR".into(), cache_dir.display().to_string()),
        ("CACHE_MAX_DISK_MB".into(), quota_mb.to_string()),
        ("LOG_LEVEL".into(), "debug".into()),
        ("P2P_TIMEOUT".into(), "2000".into()),
        ("TORRENT_TIMEOUT".into(), "4000".into()),
        ("ENABLE_HTTP_FALLBACK".into(), "false".into()),
    ]
}

/// Settings whose defaults reach outside the machine (`TORRENT_SOURCES` defaults to a public
/// .torrent cache, `TRACKERS` to public trackers, `DHT_BOOTSTRAP` to the public routers, LSD
/// multicasts on the LAN, so does DLNA's SSDP), overridden for every run so that no test ever tries a public
/// address. The peer port is the kernel's choice, so parallel tests never collide. A test that
/// wants sources passes its own loopback values in `env`, which come later and win.
pub const OFFLINE_ENV: [(&str, &str); 8] = [
    ("TORRENT_SOURCES", ""),
    ("HTTP_SOURCES", ""),
    ("TRACKERS", ""),
    ("DHT_BOOTSTRAP", ""),
    ("ENABLE_DHT", "false"),
    ("ENABLE_LSD", "false"),
    ("ENABLE_DLNA", "false"),
    ("TORRENT_PORT", "0"),
];

/// `streme` with `env_clear()`, then PATH, HOME, [`OFFLINE_ENV`] and `env`.
pub fn streme_command(env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_streme"));
    cmd.env_clear();
    for key in ["PATH", "HOME"] {
        if let Some(v) = std::env::var_os(key) {
            cmd.env(key, v);
        }
    }
    for (k, v) in OFFLINE_ENV {
        cmd.env(k, v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// What a finished CLI command left.
#[derive(Debug)]
pub struct CliOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    pub fn describe(&self) -> String {
        format!(
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `streme args...` to completion (with a deadline), whatever its exit status.
pub fn streme(env: &[(String, String)], args: &[&str]) -> CliOutput {
    streme_within(env, args, CLI_DEADLINE)
}

/// [`streme`] with a custom deadline: for commands that must stop quickly, such as a start-up
/// that has to refuse a bad setting instead of serving.
pub fn streme_within(env: &[(String, String)], args: &[&str], deadline: Duration) -> CliOutput {
    let mut cmd = streme_command(env);
    cmd.args(args);
    run_with_deadline(cmd, deadline)
}

fn run_with_deadline(mut cmd: Command, deadline: Duration) -> CliOutput {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start the streme binary");
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait on streme") {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "streme {:?} did not finish within {deadline:?}",
                cmd.get_args()
            );
        }
        thread::sleep(Duration::from_millis(10));
    };
    CliOutput {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// The result of `streme import`: its line `imported <infohash>: <verified>/<total> pieces
/// verified`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub info_hash: String,
    pub verified: u64,
    pub total: u64,
}

/// Finds and parses the `imported ...` line in `stdout` (anything after `pieces verified`,
/// such as a byte count, is ignored).
pub fn parse_import_line(stdout: &str) -> Option<Imported> {
    let line = stdout.lines().find(|l| l.starts_with("imported "))?;
    let rest = line.strip_prefix("imported ")?;
    let (hash, rest) = rest.split_once(": ")?;
    let (counts, _) = rest.split_once(" pieces verified")?;
    let (verified, total) = counts.split_once('/')?;
    Some(Imported {
        info_hash: hash.to_string(),
        verified: verified.parse().ok()?,
        total: total.parse().ok()?,
    })
}

/// `streme import torrent data_path`, which must exit 0 and print its `imported` line.
pub fn import(env: &[(String, String)], torrent: &Path, data_path: &Path) -> Imported {
    let out = streme(
        env,
        &[
            "import",
            &torrent.display().to_string(),
            &data_path.display().to_string(),
        ],
    );
    assert!(
        out.status.success(),
        "streme import failed: {}",
        out.describe()
    );
    parse_import_line(&out.stdout).unwrap_or_else(|| {
        panic!(
            "no `imported <ih>: N/M pieces verified` line: {}",
            out.describe()
        )
    })
}

/// A running `streme serve`. Its stdout and stderr are drained into one log buffer that the
/// test can search; the child is killed on drop.
pub struct Server {
    child: Child,
    addr: SocketAddr,
    logs: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `streme serve` with `env` and waits for `Listening on http://ADDR`.
    pub fn start(env: &[(String, String)]) -> Server {
        Server::start_with_args(env, &["serve"])
    }

    pub fn start_with_args(env: &[(String, String)], args: &[&str]) -> Server {
        let mut cmd = streme_command(env);
        let mut child = cmd
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start the streme binary");
        let logs = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        // The log line may go to either stream (simple_logger writes to stdout unless told
        // otherwise), so both are watched for it.
        collect_lines(
            child.stdout.take().expect("stdout"),
            logs.clone(),
            tx.clone(),
        );
        collect_lines(child.stderr.take().expect("stderr"), logs.clone(), tx);
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            logs,
        };
        let started = Instant::now();
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(addr) => {
                    server.addr = addr;
                    return server;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("streme exited before listening:\n{}", server.logs())
                }
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                // Give the readers a moment to collect the last lines for the message.
                thread::sleep(Duration::from_millis(200));
                panic!(
                    "streme exited ({status}) before listening:\n{}",
                    server.logs()
                );
            }
            if started.elapsed() > START_DEADLINE {
                panic!(
                    "streme printed no `Listening on http://` within {START_DEADLINE:?}:\n{}",
                    server.logs()
                );
            }
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's process id, for its RSS (/proc/PID/status).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Everything the server logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().expect("log buffer").clone()
    }

    /// Waits until the logs contain `needle`; false after `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if self.logs().contains(needle) {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Whether the process is still alive.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends a signal (`TERM`, `INT`, ...) with `kill`, and waits up to 10 s for the exit.
    pub fn signal_and_wait(&mut self, signal: &str) -> Option<ExitStatus> {
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Kills the server (SIGKILL) and waits for it, releasing its cache lock.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!(
                "--- streme logs ---\n{}\n--- end of streme logs ---",
                self.logs()
            );
        }
    }
}

fn collect_lines(
    pipe: impl Read + Send + 'static,
    logs: Arc<Mutex<String>>,
    listening: mpsc::Sender<SocketAddr>,
) {
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut raw = Vec::new();
        loop {
            raw.clear();
            match reader.read_until(b'\n', &mut raw) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let line = String::from_utf8_lossy(&raw);
            logs.lock().expect("log buffer").push_str(&line);
            if let Some(addr) = listening_addr(&line) {
                let _ = listening.send(addr);
            }
        }
    });
}

/// The address in `... Listening on http://127.0.0.1:PORT`.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once("Listening on http://")?;
    let addr = rest.split(|c: char| c.is_whitespace() || c == '/').next()?;
    addr.parse().ok()
}
