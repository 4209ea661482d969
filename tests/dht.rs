//! The DHT against a real one: three python3-libtorrent nodes on 127.0.0.1,
//! one of them seeding a torrent that no tracker knows. Our node, started
//! from loopback routers only, finds the seeder through get_peers; then,
//! restarted with no routers at all, it finds nodes and the seeder again from
//! its saved table alone. Our announce_peer, made with libtorrent's tokens,
//! is stored by libtorrent and found by a second node of ours.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_io::Timer;
use futures_lite::future;
use streme::format::InfoHash;
use streme::p2p::dht::Dht;

use common::TestDir;

const PYTHON: &str = "/usr/bin/python3";

/// The libtorrent swarm, killed on drop.
struct Swarm {
    child: Child,
    dht_ports: Vec<u16>,
    seeder: SocketAddr,
    info_hash: InfoHash,
}

impl Drop for Swarm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_swarm(work: &Path) -> Swarm {
    let check = Command::new(PYTHON)
        .args(["-c", "import libtorrent"])
        .output();
    assert!(
        check.is_ok_and(|o| o.status.success()),
        "required tool `{PYTHON}` with the libtorrent module is missing (apt package \
         python3-libtorrent; `scripts/test` installs it)"
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dht/libtorrent_swarm.py");
    let mut child = Command::new(PYTHON)
        .arg(script)
        .arg(work)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("the swarm's JSON line");
    let v: serde_json::Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("bad line from the swarm script {line:?}: {e}"));
    let port = |v: &serde_json::Value| v.as_u64().and_then(|p| u16::try_from(p).ok()).unwrap();
    Swarm {
        dht_ports: v["dht_ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(port)
            .collect(),
        seeder: SocketAddr::from((Ipv4Addr::LOCALHOST, port(&v["seeder"]))),
        info_hash: InfoHash::from_hex(v["info_hash"].as_str().unwrap()).unwrap(),
        child,
    }
}

/// Waits for `peer` among the peers `dht` finds for `info_hash`, asking again
/// every few seconds (the seeder announces only once its own DHT is up), at
/// most `bound`.
async fn find_peer(dht: &Dht, info_hash: InfoHash, peer: SocketAddr, bound: Duration) -> Duration {
    let start = Instant::now();
    let peers = dht.get_peers(info_hash, None);
    loop {
        let left = bound.saturating_sub(start.elapsed());
        assert!(
            !left.is_zero(),
            "{peer} not found through the DHT within {bound:?} ({} nodes in our table)",
            dht.node_count()
        );
        let batch = future::or(async { peers.recv().await.ok() }, async {
            Timer::after(left.min(Duration::from_secs(3))).await;
            None
        })
        .await;
        match batch {
            Some(batch) if batch.contains(&peer) => return start.elapsed(),
            Some(_) => {}
            None => dht.again(info_hash),
        }
    }
}

async fn until(what: &str, bound: Duration, check: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < bound, "{what}: not within {bound:?}");
        Timer::after(Duration::from_millis(100)).await;
    }
    start.elapsed()
}

#[test]
fn finds_a_libtorrent_seeder_announces_to_libtorrent_and_restarts_without_routers() {
    let dir = TestDir::new("dht-libtorrent");
    let swarm = start_swarm(&dir.sub("swarm"));
    let state_file = dir.path().join("cache/dht.dat");
    let loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let routers: Vec<String> = swarm
        .dht_ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();

    smol::block_on(async {
        let dht = Dht::start(loopback, routers.clone(), state_file.clone())
            .await
            .expect("start the DHT");
        let took = find_peer(
            &dht,
            swarm.info_hash,
            swarm.seeder,
            Duration::from_secs(120),
        )
        .await;
        eprintln!("found the seeder in {took:?}, {} nodes", dht.node_count());
        until(
            "the libtorrent nodes in our table",
            Duration::from_secs(30),
            || dht.node_count() >= 2,
        )
        .await;

        // Our announce, with a token from libtorrent, is stored by libtorrent:
        // a second node of ours, knowing only the libtorrent nodes, finds it.
        let ours = InfoHash([0x42; 20]);
        let _announcing = dht.get_peers(ours, Some(7777));
        let probe = Dht::start(loopback, routers.clone(), dir.path().join("probe.dat"))
            .await
            .expect("start a second node");
        let me = SocketAddr::from((Ipv4Addr::LOCALHOST, 7777));
        let took = find_peer(&probe, ours, me, Duration::from_secs(120)).await;
        eprintln!("our announce found through libtorrent in {took:?}");
        drop(probe);

        dht.save().await.expect("save the table");
        drop(dht);
        assert!(state_file.is_file());

        // No routers: only the saved table can lead anywhere.
        let dht = Dht::start(loopback, Vec::new(), state_file.clone())
            .await
            .expect("restart the DHT");
        let took = until(
            "nodes from the saved table",
            Duration::from_secs(30),
            || dht.node_count() > 0,
        )
        .await;
        eprintln!("restart: {} nodes after {took:?}", dht.node_count());
        let took = find_peer(
            &dht,
            swarm.info_hash,
            swarm.seeder,
            Duration::from_secs(120),
        )
        .await;
        eprintln!("restart: found the seeder again in {took:?}");
    });
}

/// The whole path through the real binary: a bare magnet (no tracker, no HTTP source, no
/// peer address) resolves through the DHT alone, bootstrapped from the libtorrent nodes on
/// loopback, and streams the seeder's bytes; a SIGTERM saves the table, and a restart with
/// no bootstrap routers starts from it.
#[test]
fn a_bare_magnet_streams_through_the_dht_alone_and_a_restart_uses_the_saved_table() {
    use common::hybrid::set;
    use common::server::{base_env, Server};

    let dir = TestDir::new("dht-streme");
    let swarm = start_swarm(&dir.sub("swarm"));
    let source = std::fs::read(dir.sub("swarm").join("seed.bin")).unwrap();
    let routers: Vec<String> = swarm
        .dht_ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let mut env = base_env(&dir.sub("cache"), 64);
    set(&mut env, "ENABLE_DHT", "true");
    set(&mut env, "DHT_BOOTSTRAP", &routers.join(","));
    set(&mut env, "P2P_TIMEOUT", "5000");
    set(&mut env, "TORRENT_TIMEOUT", "60000");
    set(&mut env, "PIECE_TIMEOUT", "60000");
    let mut srv = Server::start(&env);
    let hash = swarm.info_hash.to_hex();
    common::hybrid::add_magnet(srv.addr(), &hash);
    let r = common::hybrid::get_observed(srv.addr(), &format!("/stream/proxy/{hash}"), &[], || {
        serde_json::Value::Null
    })
    .response;
    assert_eq!(r.status, 200, "{}\n{}", r.head(), srv.logs());
    assert_eq!(r.body, source, "the stream differs from the seeder's file");
    let logs = srv.logs();
    assert!(logs.contains("new peer address(es) from Dht"), "{logs}");
    assert!(!logs.contains("from Tracker"), "{logs}");
    let status = srv
        .signal_and_wait("TERM")
        .expect("streme stops on SIGTERM");
    assert_eq!(status.code(), Some(0));
    assert!(
        dir.sub("cache").join("dht.dat").is_file(),
        "no saved DHT table"
    );

    set(&mut env, "DHT_BOOTSTRAP", "");
    let srv = Server::start(&env);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !srv.logs().contains("saved nodes)") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let logs = srv.logs();
    let saved = logs
        .lines()
        .find_map(|l| l.split(" (").nth(1)?.strip_suffix(" saved nodes)"))
        .and_then(|n| n.parse::<u32>().ok());
    assert!(
        saved.is_some_and(|n| n > 0),
        "the restart did not load the table: {logs}"
    );
}
