//! A real nginx on a loopback port, as the HTTP tier's "good" server: it serves a test's
//! `.torrent` files and content trees with Range (sendfile on), from a private prefix with a
//! generated config, and records every request it answered in its access log.
//!
//! Must never touch the system's nginx: no file outside the test's dir is read or written
//! (config, pid, logs and temp paths are all under it), it runs in the foreground
//! (`daemon off`, `master_process off`) and is killed when its handle drops.
//!
//! # Layout
//! Everything is served from `www/`: `www/torrents/<HASH>.torrent`, `www/content/<hash>/...`
//! and `www/seed/...` by convention. The same tree is served throttled under `/slow/` and
//! `/slower/`, so a test can make a download last long enough to watch it.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::fixture::Torrent;
use super::require_tool;

/// Per connection, under `/slow/`: 4 connections give about 1 MB/s.
pub const SLOW_BYTES_PER_SEC: u64 = 256 * 1024;
/// Per connection, under `/slower/`: 4 connections give about 256 KB/s.
pub const SLOWER_BYTES_PER_SEC: u64 = 64 * 1024;

const START_DEADLINE: Duration = Duration::from_secs(20);

pub struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
    www: PathBuf,
}

impl Nginx {
    /// Starts nginx with its prefix in `dir` (created), on a free loopback port.
    pub fn start(dir: &Path) -> Nginx {
        // The port is found by binding port 0 and releasing it; another process could take it
        // in between, so a failed start is retried on a new port.
        let mut last_error = String::new();
        for _ in 0..5 {
            match Nginx::try_start(dir, free_port()) {
                Ok(nginx) => return nginx,
                Err(e) => last_error = e,
            }
        }
        panic!("nginx would not start: {last_error}");
    }

    /// Starts nginx on `port` (a test that pointed streme at that port before anything
    /// listened there, to bring a source up late).
    pub fn start_on(dir: &Path, port: u16) -> Nginx {
        Nginx::try_start(dir, port)
            .unwrap_or_else(|e| panic!("nginx would not start on port {port}: {e}"))
    }

    fn try_start(dir: &Path, port: u16) -> Result<Nginx, String> {
        require_tool("nginx");
        let www = dir.join("www");
        for sub in ["www/torrents", "www/content", "www/seed", "tmp"] {
            std::fs::create_dir_all(dir.join(sub))
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.join(sub).display()));
        }
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config(dir, &www, port)).expect("cannot write nginx.conf");
        let mut child = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start nginx");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
                return Err(format!("nginx exited ({status}):\n{stderr}\n{log}"));
            }
            if TcpStream::connect(addr).is_ok() {
                return Ok(Nginx {
                    child,
                    addr,
                    dir: dir.to_path_buf(),
                    www,
                });
            }
            if started.elapsed() > START_DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                panic!("nginx did not listen on {addr} within {START_DEADLINE:?}");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The served tree.
    pub fn www(&self) -> &Path {
        &self.www
    }

    /// Publishes `torrent` at `/torrents/<HASH>.torrent` (upper-case hex, as the default
    /// public source spells it).
    pub fn publish_torrent(&self, torrent: &Torrent) {
        let to = self.www.join("torrents").join(format!(
            "{}.torrent",
            torrent.info_hash.to_ascii_uppercase()
        ));
        std::fs::copy(&torrent.file, &to)
            .unwrap_or_else(|e| panic!("cannot publish {}: {e}", torrent.file.display()));
    }

    /// Copies `content` (a file or a directory tree) to `www/<under>/<content's name>`, so a
    /// single-file torrent named `movie.mkv` published under `content/<hash>` is served at
    /// `/content/<hash>/movie.mkv`, and a multi-file one at `/content/<hash>/<name>/<path>`.
    pub fn publish(&self, under: &str, content: &Path) {
        let dest_dir = self.www.join(under);
        std::fs::create_dir_all(&dest_dir).expect("cannot create a published dir");
        let name = content.file_name().expect("content has a name");
        copy_tree(content, &dest_dir.join(name));
    }

    /// The access log so far, one line per answered request:
    /// `<status> <bytes sent> "<request line>" range="<Range header>"`.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }

    /// Access log lines whose request line contains `needle`.
    pub fn requests_for(&self, needle: &str) -> Vec<String> {
        self.access_log()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!(
                "--- nginx access log ---\n{}--- end of nginx access log ---",
                self.access_log()
            );
        }
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("cannot find a free loopback port")
        .port()
}

fn config(dir: &Path, www: &Path, port: u16) -> String {
    let d = dir.display();
    let w = www.display();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
    log_format tier '$status $body_bytes_sent "$request" range="$http_range"';
    access_log {d}/access.log tier;
    client_body_temp_path {d}/tmp;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 30;
    types {{
        application/x-bittorrent torrent;
        video/mp4 mp4;
        video/x-matroska mkv;
    }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {w};
        location /slow/ {{
            alias {w}/;
            limit_rate {SLOW_BYTES_PER_SEC};
        }}
        location /slower/ {{
            alias {w}/;
            limit_rate {SLOWER_BYTES_PER_SEC};
        }}
    }}
}}
"#
    )
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("cannot create a published dir");
        for entry in std::fs::read_dir(from).expect("cannot list content") {
            let entry = entry.expect("cannot list content");
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        // A hard link costs no space for the 40 MB fixtures; a copy where links are refused.
        if std::fs::hard_link(from, to).is_err() {
            std::fs::copy(from, to)
                .unwrap_or_else(|e| panic!("cannot publish {}: {e}", from.display()));
        }
    }
}
