//! A local BitTorrent swarm of real clients, on loopback only: Debian's `opentracker` as the
//! tracker, and python3-libtorrent, transmission-cli and aria2c as seeders or leechers.
//!
//! Every client is started with its DHT, local peer discovery, UPnP and NAT-PMP off, bound to
//! 127.0.0.1 where the client allows it, and knows no tracker but the test's opentracker, so
//! nothing leaves the machine. Each handle kills its process on drop.

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::require_tool;

/// The libtorrent peer script, run with Debian's `/usr/bin/python3`.
const LT_PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/lt_peer.py");

/// A loopback port free for TCP and UDP at the time of the call.
pub fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind a loopback port")
            .local_addr()
            .expect("local addr")
            .port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`, or panics naming `what`.
pub fn wait_listening(port: u16, what: &str, child: &mut Child) {
    if let Err(why) = try_listening(port, child) {
        panic!("{what} {why}");
    }
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`; says why not when the
/// process exited first or 20 s passed.
fn try_listening(port: u16, child: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait().expect("wait") {
            return Err(format!("exited ({status}) before listening on port {port}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("did not listen on port {port} within 20 s"))
}

/// A process killed (and reaped) on drop.
pub struct Process {
    pub name: &'static str,
    child: Child,
    /// The peer port it listens on.
    pub port: u16,
    pub log: PathBuf,
}

impl Process {
    fn spawn(name: &'static str, cmd: &mut Command, port: u16, log: PathBuf) -> Process {
        let out = std::fs::File::create(&log).expect("create a client log");
        let err = out.try_clone().expect("clone the log handle");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Process {
            name,
            child,
            port,
            log,
        }
    }

    /// Kills it now (the "seeder dies" fault).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Debian's opentracker on loopback `port` (HTTP and UDP), whitelisting `hashes`.
pub fn opentracker(dir: &Path, port: u16, hashes: &[&str]) -> Process {
    require_tool("opentracker");
    // opentracker changes into / before it reads the whitelist: the path must be absolute.
    let whitelist = dir.join("opentracker.whitelist");
    std::fs::write(&whitelist, hashes.join("\n") + "\n").expect("write the whitelist");
    let mut p = Process::spawn(
        "opentracker",
        Command::new("opentracker")
            .args([
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-P",
                &port.to_string(),
            ])
            .arg("-w")
            .arg(&whitelist)
            .current_dir(dir),
        port,
        dir.join("opentracker.log"),
    );
    wait_listening(port, "opentracker", &mut p.child);
    p
}

/// The HTTP announce URL of an opentracker on `port`.
pub fn announce_url_on(port: u16) -> String {
    format!("http://127.0.0.1:{port}/announce")
}

pub fn announce_url(tracker: &Process) -> String {
    announce_url_on(tracker.port)
}

pub fn udp_announce_url(tracker: &Process) -> String {
    format!("udp://127.0.0.1:{}/announce", tracker.port)
}

/// The real clients of the interop tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    Libtorrent,
    Transmission,
    Aria2,
}

impl Client {
    pub const ALL: [Client; 3] = [Client::Libtorrent, Client::Transmission, Client::Aria2];

    pub fn name(self) -> &'static str {
        match self {
            Client::Libtorrent => "libtorrent",
            Client::Transmission => "transmission",
            Client::Aria2 => "aria2c",
        }
    }

    /// Checks the client is installed, naming its apt package if not.
    pub fn require(self) {
        match self {
            Client::Libtorrent => {
                let ok = Command::new("/usr/bin/python3")
                    .args(["-c", "import libtorrent"])
                    .status()
                    .is_ok_and(|s| s.success());
                assert!(
                    ok,
                    "required tool 'python3-libtorrent' is missing (apt package python3-libtorrent, for /usr/bin/python3)"
                );
            }
            Client::Transmission => {
                require_tool("transmission-cli");
            }
            Client::Aria2 => {
                require_tool("aria2c");
            }
        }
    }
}

/// `client` seeding `torrent` from `data_dir` (which holds the complete content), announcing
/// to the torrent's tracker.
pub fn seeder(client: Client, dir: &Path, torrent: &Path, data_dir: &Path) -> Process {
    start(client, dir, torrent, data_dir, Mode::Seed, None)
}

/// An aria2c seeder that uploads at most `limit` per second (aria2's syntax: `1M`), so that a
/// test can act in the middle of a stream.
pub fn slow_seeder(dir: &Path, torrent: &Path, data_dir: &Path, limit: &str) -> Process {
    start(
        Client::Aria2,
        dir,
        torrent,
        data_dir,
        Mode::Seed,
        Some(limit),
    )
}

/// `client` downloading `torrent` into `data_dir`, from peers the tracker names.
pub fn leecher(client: Client, dir: &Path, torrent: &Path, data_dir: &Path) -> Process {
    start(client, dir, torrent, data_dir, Mode::Leech, None)
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Seed,
    Leech,
}

fn start(
    client: Client,
    dir: &Path,
    torrent: &Path,
    data_dir: &Path,
    mode: Mode,
    upload_limit: Option<&str>,
) -> Process {
    client.require();
    std::fs::create_dir_all(data_dir).expect("create the client's data dir");
    // free_port's port can be taken by a parallel test before the client binds it; a seeder that
    // exits before it listens gets a second and a third port, and its log if all fail.
    let mut failures = Vec::new();
    for _ in 0..3 {
        let mut p = spawn_client(client, dir, torrent, data_dir, mode, upload_limit);
        if mode == Mode::Leech {
            return p;
        }
        match try_listening(p.port, &mut p.child) {
            Ok(()) => return p,
            Err(why) => failures.push(format!(
                "{} {why}; its log:\n{}",
                client.name(),
                p.log_text()
            )),
        }
    }
    panic!("{}", failures.join("\n"));
}

fn spawn_client(
    client: Client,
    dir: &Path,
    torrent: &Path,
    data_dir: &Path,
    mode: Mode,
    upload_limit: Option<&str>,
) -> Process {
    let port = free_port();
    let log = dir.join(format!("{}-{port}.log", client.name()));
    match client {
        Client::Libtorrent => Process::spawn(
            "libtorrent",
            Command::new("/usr/bin/python3")
                .arg(LT_PEER)
                .arg(if mode == Mode::Seed { "seed" } else { "leech" })
                .arg(torrent)
                .arg(data_dir)
                .arg(port.to_string()),
            port,
            log,
        ),
        Client::Transmission => {
            let config = dir.join(format!("transmission-{port}"));
            std::fs::create_dir_all(&config).expect("transmission config dir");
            // transmission-cli has no flags for these: its settings.json does.
            let settings = serde_json::json!({
                "dht-enabled": false,
                "lpd-enabled": false,
                "utp-enabled": false,
                "pex-enabled": true,
                "port-forwarding-enabled": false,
                "bind-address-ipv4": "127.0.0.1",
                "bind-address-ipv6": "::1",
                "peer-port": port,
                "peer-port-random-on-start": false,
                "ratio-limit-enabled": false,
                "idle-seeding-limit-enabled": false,
                "speed-limit-up-enabled": false,
                "speed-limit-down-enabled": false,
                "encryption": 0,
                "blocklist-enabled": false,
                "message-level": 2,
            });
            std::fs::write(config.join("settings.json"), settings.to_string())
                .expect("write transmission settings");
            let mut cmd = Command::new("transmission-cli");
            cmd.arg("-g").arg(&config).arg("-w").arg(data_dir).args([
                "-p",
                &port.to_string(),
                "-M",
                "-U",
                "-D",
                "-et",
            ]);
            Process::spawn("transmission", cmd.arg(torrent), port, log)
        }
        Client::Aria2 => {
            let mut cmd = Command::new("aria2c");
            cmd.args([
                "--enable-dht=false",
                "--enable-dht6=false",
                "--bt-enable-lpd=false",
                "--disable-ipv6=true",
                "--bt-external-ip=127.0.0.1",
                "--console-log-level=warn",
                "--summary-interval=0",
                "--bt-tracker-connect-timeout=5",
                "--follow-torrent=mem",
                "--file-allocation=none",
            ])
            .arg(format!("--listen-port={port}"))
            .arg(format!("--dir={}", data_dir.display()));
            if let Some(limit) = upload_limit {
                cmd.arg(format!("--max-upload-limit={limit}"));
            }
            match mode {
                // Seed forever, after checking the data is complete.
                Mode::Seed => cmd.args(["--check-integrity=true", "--seed-ratio=0.0"]),
                // Exit once complete.
                Mode::Leech => cmd.args(["--seed-time=0"]),
            };
            Process::spawn("aria2c", cmd.arg(torrent), port, log)
        }
    }
}

/// Waits until `path` holds exactly `expected` (a leecher finished), or panics with the log.
pub fn wait_for_file(path: &Path, expected: &[u8], within: Duration, client: &Process) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if std::fs::read(path).is_ok_and(|b| b == expected) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "{} did not download {} within {within:?}; its log:\n{}",
        client.name,
        path.display(),
        client.log_text()
    );
}

/// `mktorrent -l piece_log2 -a announce -o out content`.
pub fn torrent_with_tracker(
    content: &Path,
    out: &Path,
    piece_log2: u32,
    announce: &str,
) -> super::fixture::Torrent {
    super::run(
        Command::new("mktorrent")
            .arg("-l")
            .arg(piece_log2.to_string())
            .arg("-a")
            .arg(announce)
            .arg("-o")
            .arg(out)
            .arg(content),
    );
    super::fixture::Torrent {
        file: out.to_path_buf(),
        info_hash: super::fixture::info_hash_of(out),
    }
}

/// Seeders plus leechers the tracker on `port` counts for `info_hash`, from its scrape.
pub fn scrape_count(port: u16, info_hash: &str) -> Option<u64> {
    use std::io::{Read, Write};
    let escaped: String = (0..20)
        .map(|i| format!("%{}", &info_hash[2 * i..2 * i + 2]))
        .collect();
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "GET /scrape?info_hash={escaped} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
    )
    .ok()?;
    let mut body = Vec::new();
    s.read_to_end(&mut body).ok()?;
    let text = String::from_utf8_lossy(&body);
    let count = |key: &str| -> Option<u64> {
        let rest = &text[text.find(key)? + key.len()..];
        rest[..rest.find('e')?].parse().ok()
    };
    Some(count("8:completei")? + count("10:incompletei")?)
}

/// Waits until the tracker on `port` counts at least `peers` peers for `info_hash`, so that a
/// peer that asks next is told of them all.
pub fn wait_announced(port: u16, info_hash: &str, peers: u64) {
    wait_count(
        port,
        info_hash,
        |n| n >= peers,
        &format!("at least {peers}"),
    );
}

/// Waits until the count of peers for `info_hash` satisfies `ok`, for up to 60 s.
pub fn wait_count(port: u16, info_hash: &str, ok: impl Fn(u64) -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = None;
    while Instant::now() < deadline {
        last = scrape_count(port, info_hash);
        if last.is_some_and(&ok) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "the tracker on port {port} never counted {what} peer(s) for {info_hash} (last: {last:?})"
    );
}

/// The tuned libtorrent peer script (extra settings, per-peer encryption lines, torrent making).
pub const LT_TUNED_PEER: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/lt_tuned_peer.py");

/// A libtorrent peer (`seed` waits until it listens; `leech` downloads into `data_dir`) with
/// `settings` on top of the loopback-only ones of tests/peers/lt_tuned_peer.py.
pub fn tuned_libtorrent(
    dir: &Path,
    seed: bool,
    torrent: &Path,
    data_dir: &Path,
    settings: &serde_json::Value,
) -> Process {
    Client::Libtorrent.require();
    std::fs::create_dir_all(data_dir).expect("create the client's data dir");
    let port = free_port();
    let log = dir.join(format!("libtorrent-tuned-{port}.log"));
    let mut p = Process::spawn(
        "libtorrent",
        Command::new("/usr/bin/python3")
            .arg(LT_TUNED_PEER)
            .arg(if seed { "seed" } else { "leech" })
            .arg(torrent)
            .arg(data_dir)
            .arg(port.to_string())
            .arg(settings.to_string()),
        port,
        log,
    );
    if seed {
        wait_listening(port, "libtorrent", &mut p.child);
    }
    p
}

const LT_UTP_PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/lt_utp_peer.py");

/// A libtorrent peer with TCP off both ways (uTP only), seeding `torrent` from `data_dir` or
/// (with `seed` false) downloading it there. It has no TCP port to wait on: the caller waits
/// for the tracker to list it, or for the file.
pub fn utp_only_libtorrent(dir: &Path, torrent: &Path, data_dir: &Path, seed: bool) -> Process {
    Client::Libtorrent.require();
    std::fs::create_dir_all(data_dir).expect("create the client's data dir");
    let port = free_port();
    let log = dir.join(format!("libtorrent-utp-{port}.log"));
    Process::spawn(
        "libtorrent (uTP only)",
        Command::new("/usr/bin/python3")
            .arg(LT_UTP_PEER)
            .arg(if seed { "seed" } else { "leech" })
            .arg(torrent)
            .arg(data_dir)
            .arg(port.to_string()),
        port,
        log,
    )
}

/// transmission-cli seeding `torrent` from `data_dir` with its uTP on (its default, which the
/// other tests turn off), DHT, LSD and port forwarding off, on loopback.
pub fn transmission_with_utp(dir: &Path, torrent: &Path, data_dir: &Path) -> Process {
    Client::Transmission.require();
    let port = free_port();
    let config = dir.join(format!("transmission-utp-{port}"));
    std::fs::create_dir_all(&config).expect("transmission config dir");
    let settings = serde_json::json!({
        "dht-enabled": false,
        "lpd-enabled": false,
        "utp-enabled": true,
        "pex-enabled": true,
        "port-forwarding-enabled": false,
        "bind-address-ipv4": "127.0.0.1",
        "bind-address-ipv6": "::1",
        "peer-port": port,
        "peer-port-random-on-start": false,
        "ratio-limit-enabled": false,
        "idle-seeding-limit-enabled": false,
        "speed-limit-up-enabled": false,
        "speed-limit-down-enabled": false,
        "encryption": 0,
        "blocklist-enabled": false,
        "message-level": 2,
    });
    std::fs::write(config.join("settings.json"), settings.to_string())
        .expect("write transmission settings");
    let log = dir.join(format!("transmission-utp-{port}.log"));
    let mut cmd = Command::new("transmission-cli");
    cmd.arg("-g").arg(&config).arg("-w").arg(data_dir).args([
        "-p",
        &port.to_string(),
        "-M",
        "-U",
        "-D",
        "-et",
    ]);
    let mut p = Process::spawn("transmission (uTP on)", cmd.arg(torrent), port, log);
    wait_listening(port, "transmission", &mut p.child);
    p
}
