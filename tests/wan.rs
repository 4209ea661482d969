//! The slim WAN rig (issue 14): a seek must not wait behind the slowest peer.
//!
//! Three libtorrent seeders (tests/peers/lt_wan_seed.py), each on its own 127.0.0.X address and
//! each behind a user-space relay (tests/peers/wan_relay.py) that delays both directions and caps
//! the seeder's upload: two fast ones (3 and 2 MB/s, 25 and 60 ms one-way) and one at 40 KB/s,
//! which needs 0.4 s for one block and 13 s for one 512 KiB piece. streme gets a magnet with the
//! three relays as `x.pe` peers (no tracker, no DHT, no LSD: nothing leaves loopback), reads the
//! first MiB, then seeks around the file, 1 MiB each time. Every seek must complete well under
//! what a block queued at the slow peer would take, and the slow peer must have delivered
//! something (it was in the swarm, with background pieces).

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::fixture;
use common::hybrid::set;
use common::server::{base_env, Server};
use common::swarm::free_port;
use common::{http, require_tool, TestDir};

const PEERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers");

/// A file of 48 MiB in 512 KiB pieces: large enough that the background fill (about 5 MB/s)
/// is still under way while the seeks run, so they land on pieces nobody has yet.
const FILE_MIB: u64 = 48;
const PIECE_LOG2: u32 = 19;
const MIB: u64 = 1 << 20;

/// (upload cap in bytes/s, one-way delay in ms).
const SEEDERS: [(u64, u64); 3] = [(3_000_000, 25), (2_000_000, 60), (40_000, 30)];
const SLOW: usize = 2;

/// Where the seeks land, as fractions of the file, each far from the previous one.
const SEEKS: [f64; 7] = [0.5, 0.25, 0.75, 0.12, 0.62, 0.37, 0.87];

/// A seek of 1 MiB from the fast peers takes a few round trips and 0.2 s of transfer (0.4-0.9 s
/// measured at a load average of 11). 4 s is generous for a release suite run two tests at a
/// time, and far under a block queued at the slow peer (0.4 s each, behind a pipeline of them:
/// several seconds) or one of its pieces (13 s): with the picker broken on purpose (any peer
/// may take urgent blocks, nothing is asked twice) a seek took 20.6 s.
const SEEK_BOUND: Duration = Duration::from_secs(4);

/// A child process killed (and reaped) on drop.
struct Kid(Child, std::path::PathBuf);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str], log: &Path) -> Kid {
    let out = std::fs::File::create(log).expect("create a log");
    let err = out.try_clone().expect("clone the log handle");
    let child = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", args.join(" ")));
    Kid(child, log.to_path_buf())
}

fn wait_log(kid: &mut Kid, what: &str, done: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&kid.1).unwrap_or_default();
        if done(&text) {
            return;
        }
        if let Some(status) = kid.0.try_wait().expect("wait") {
            panic!("{what} exited ({status}): {text}");
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not ready in 60 s: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn read_range(srv: &Server, path: &str, start: u64, source: &[u8]) -> Duration {
    let range = format!("Range: bytes={}-{}", start, start + MIB - 1);
    let t = Instant::now();
    let r = http::get(srv.addr(), path, &[&range]);
    let took = t.elapsed();
    assert_eq!(r.status, 206, "{}\n{}", r.head(), srv.logs());
    assert!(
        r.body == source[start as usize..(start + MIB) as usize],
        "the MiB at {start} differs from the source ({} bytes came)",
        r.body.len()
    );
    took
}

#[test]
fn a_seek_does_not_wait_behind_the_slowest_peer() {
    fixture::require_fixture_tools();
    require_tool("/usr/bin/python3");
    let lt = Command::new("/usr/bin/python3")
        .args(["-c", "import libtorrent"])
        .status()
        .expect("run /usr/bin/python3");
    assert!(
        lt.success(),
        "python3-libtorrent is missing (apt-get install python3-libtorrent)"
    );
    let dir = TestDir::new("wan_seek");
    let content = fixture::random_file(&dir.sub("data").join("movie.mkv"), FILE_MIB * MIB);
    let torrent = fixture::mktorrent(&content, &dir.path().join("movie.torrent"), PIECE_LOG2);
    let source = std::fs::read(&content).unwrap();
    let torrent_path = torrent.file.display().to_string();
    let data_dir = content.parent().unwrap().display().to_string();

    let mut specs = Vec::new();
    let mut seeders = Vec::new();
    for (i, (rate, delay)) in SEEDERS.iter().enumerate() {
        let host = format!("127.0.0.{}", i + 2);
        let (seed_port, relay_port) = (free_port(), free_port());
        let log = dir.path().join(format!("seed-{i}.log"));
        seeders.push(spawn(
            &[
                "/usr/bin/python3",
                &format!("{PEERS}/lt_wan_seed.py"),
                &torrent_path,
                &data_dir,
                &host,
                &seed_port.to_string(),
            ],
            &log,
        ));
        specs.push((
            relay_port,
            format!("{relay_port}:{host}:{seed_port}:{delay}:{rate}"),
        ));
    }
    let mut relay_args = vec![
        "/usr/bin/python3".to_string(),
        format!("{PEERS}/wan_relay.py"),
    ];
    relay_args.extend(specs.iter().map(|(_, s)| s.clone()));
    let relay_args: Vec<&str> = relay_args.iter().map(String::as_str).collect();
    let mut relays = spawn(&relay_args, &dir.path().join("relays.log"));
    wait_log(&mut relays, "the relays", |t| {
        t.matches("ready").count() == SEEDERS.len()
    });
    for (i, s) in seeders.iter_mut().enumerate() {
        wait_log(s, &format!("seeder {i}"), |t| t.contains("state=seeding"));
    }

    let mut env = base_env(&dir.sub("cache"), 200);
    set(&mut env, "P2P_TIMEOUT", "30000");
    set(&mut env, "TORRENT_TIMEOUT", "30000");
    set(&mut env, "PIECE_TIMEOUT", "60000");
    set(&mut env, "LOG_LEVEL", "info");
    let srv = Server::start(&env);
    let mut uri = format!("magnet:?xt=urn:btih:{}", torrent.info_hash);
    for (port, _) in &specs {
        uri.push_str(&format!("&x.pe=127.0.0.1:{port}"));
    }
    let r = http::post_json(
        srv.addr(),
        "/api/torrents",
        &serde_json::json!({ "magnetUri": uri }),
    );
    assert!((200..300).contains(&r.status), "adding {uri}: {}", r.text());
    let path = format!("/stream/proxy/{}", torrent.info_hash);

    let first = read_range(&srv, &path, 0, &source);
    assert!(
        first < Duration::from_secs(20),
        "the first MiB took {first:?}\n{}",
        srv.logs()
    );
    let size = FILE_MIB * MIB;
    let mut took = Vec::new();
    for f in SEEKS {
        let start = (size as f64 * f) as u64;
        took.push((f, read_range(&srv, &path, start, &source)));
    }
    eprintln!("first MiB {first:?}; seeks {took:?}");
    for (f, t) in &took {
        assert!(
            *t <= SEEK_BOUND,
            "the seek to {:.0} % took {t:?} (bound {SEEK_BOUND:?}): it waited behind the slow peer?\nall: {took:?}\nrelays: {}",
            f * 100.0,
            std::fs::read_to_string(&relays.1).unwrap_or_default()
        );
    }
    // The slow peer took part (background pieces), so the seeks were made with it in the swarm.
    std::thread::sleep(Duration::from_millis(1100));
    let log = std::fs::read_to_string(&relays.1).unwrap_or_default();
    let slow_port = specs[SLOW].0;
    let slow_down: u64 = log
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("relay {slow_port}: up=")))
        .filter_map(|l| l.split("down=").nth(1)?.split(' ').next()?.parse().ok())
        .max()
        .unwrap_or(0);
    assert!(
        slow_down > 16 * 1024,
        "the slow peer delivered {slow_down} bytes: it was not part of the swarm\n{log}"
    );
}
