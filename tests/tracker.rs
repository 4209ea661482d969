//! The tracker clients against a real tracker: Debian's `opentracker` on
//! loopback, in whitelist mode (`-w`), and a silent UDP socket standing in
//! for a dead tracker.
//!
//! What Debian's opentracker (0~git20210823) does, found while writing these:
//! it is built IPv4 only ("V4 Tracker is V4 only!" on `-i ::1`), so IPv6 is
//! covered by the parsers' unit tests alone; it records a peer under the
//! datagram's or connection's source address and ignores `ip=`; it answers
//! `compact=0` with an HTML "Invalid Request" (we always send `compact=1`);
//! it lists the announcing peer itself; and for a hash missing from the
//! whitelist it answers HTTP with a `failure reason` but UDP with a bare
//! 8-byte announce header.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{require_tool, TestDir};
use streme::format::InfoHash;
use streme::http::Client;
use streme::p2p::tracker::{
    announce, Announcer, Event, ParseError, Progress, Request, TierOrder, TrackerError,
};

const WHITELISTED: InfoHash = InfoHash([0x5a; 20]);
const NOT_WHITELISTED: InfoHash = InfoHash([0xa5; 20]);

/// A real opentracker on free loopback ports, killed on drop.
struct OpenTracker {
    child: Child,
    http_port: u16,
    udp_port: u16,
}

impl OpenTracker {
    fn start(dir: &Path) -> OpenTracker {
        require_tool("opentracker");
        let whitelist = dir.join("whitelist");
        std::fs::write(&whitelist, format!("{}\n", WHITELISTED.to_hex())).unwrap();
        // Ports found by binding port 0 and releasing them can be taken in
        // between: a start that does not come up is retried on new ones.
        for _ in 0..5 {
            let http_port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let udp_port = UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new("opentracker")
                .args(["-i", "127.0.0.1", "-p", &http_port.to_string()])
                .args(["-P", &udp_port.to_string(), "-w"])
                .arg(&whitelist)
                .current_dir(dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("cannot start opentracker (apt package opentracker)");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                if whitelist_loaded(http_port) {
                    return OpenTracker {
                        child,
                        http_port,
                        udp_port,
                    };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("opentracker did not start on loopback");
    }

    fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}/announce", self.http_port)
    }

    fn udp_url(&self) -> String {
        format!("udp://127.0.0.1:{}/announce", self.udp_port)
    }
}

/// Whether the tracker on `port` answers and accepts [`WHITELISTED`]: it
/// reads its whitelist on a thread of its own after it starts listening, and
/// refuses every hash until then. Asked with `stopped`, which lists no one.
fn whitelist_loaded(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let hash: String = WHITELISTED.0.iter().map(|b| format!("%{b:02X}")).collect();
    let request = format!(
        "GET /announce?info_hash={hash}&peer_id=READYREADYREADYREADY&port=1&uploaded=0\
&downloaded=0&left=0&event=stopped&compact=1 HTTP/1.0\r\n\r\n"
    );
    let mut answer = String::new();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut answer).is_ok()
        && answer.contains("interval")
}

impl Drop for OpenTracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A UDP "tracker" that reads every datagram and never answers.
struct DeadTracker {
    addr: SocketAddr,
    received: Arc<AtomicUsize>,
}

impl DeadTracker {
    fn start() -> DeadTracker {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let received = Arc::new(AtomicUsize::new(0));
        let count = received.clone();
        // The thread ends with the test process; it holds nothing else.
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while socket.recv_from(&mut buf).is_ok() {
                count.fetch_add(1, Ordering::SeqCst);
            }
        });
        DeadTracker { addr, received }
    }

    fn url(&self) -> String {
        format!("udp://{}/announce", self.addr)
    }
}

fn client() -> Client {
    Client::new(Duration::from_secs(5), 1 << 20).unwrap()
}

fn request(info_hash: InfoHash, id: u8, port: u16, event: Event) -> Request {
    Request {
        info_hash,
        peer_id: [id; 20],
        port,
        progress: Progress {
            uploaded: 0,
            downloaded: 0,
            left: 1000,
        },
        event,
        num_want: 50,
        key: u32::from(id),
    }
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn http_peer_is_listed_over_udp_until_it_stops() {
    let dir = TestDir::new("tracker_http_udp");
    let tracker = OpenTracker::start(dir.path());
    let client = client();
    smol::block_on(async {
        let a = request(WHITELISTED, b'A', 40001, Event::Started);
        announce(&client, &tracker.http_url(), &a)
            .await
            .expect("A over HTTP");

        let b = request(WHITELISTED, b'B', 40002, Event::Started);
        let reply = announce(&client, &tracker.udp_url(), &b)
            .await
            .expect("B over UDP");
        assert!(
            reply.peers.contains(&local(40001)),
            "A missing from {:?}",
            reply.peers
        );
        assert_eq!(reply.leechers, Some(2), "{reply:?}");
        assert!(reply.interval >= Duration::from_secs(60), "{reply:?}");

        let a = request(WHITELISTED, b'A', 40001, Event::Stopped);
        announce(&client, &tracker.http_url(), &a)
            .await
            .expect("A stops");
        let b = request(WHITELISTED, b'B', 40002, Event::None);
        let reply = announce(&client, &tracker.udp_url(), &b)
            .await
            .expect("B again");
        assert!(
            !reply.peers.contains(&local(40001)),
            "A still listed: {:?}",
            reply.peers
        );
        assert_eq!(reply.leechers, Some(1), "{reply:?}");
    });
}

#[test]
fn unwhitelisted_hash_is_a_clear_error() {
    let dir = TestDir::new("tracker_refused");
    let tracker = OpenTracker::start(dir.path());
    let client = client();
    smol::block_on(async {
        let req = request(NOT_WHITELISTED, b'C', 40003, Event::Started);
        let url = tracker.http_url();
        match announce(&client, &url, &req).await {
            Err(e @ TrackerError::Refused { .. }) => {
                let line = e.to_string();
                assert!(
                    line.contains(&url) && line.contains("not authorized"),
                    "{line}"
                );
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        let url = tracker.udp_url();
        match announce(&client, &url, &req).await {
            Err(
                e @ TrackerError::BadReply {
                    problem: ParseError::Short { len: 8, need: 20 },
                    ..
                },
            ) => {
                assert!(e.to_string().contains(&url), "{e}");
            }
            other => panic!("expected a short reply, got {other:?}"),
        }
    });
}

#[test]
fn dead_udp_tracker_is_retried_then_given_up() {
    let dead = DeadTracker::start();
    let started = Instant::now();
    let result = smol::block_on(announce(
        &client(),
        &dead.url(),
        &request(WHITELISTED, b'D', 40004, Event::Started),
    ));
    let took = started.elapsed();
    assert!(
        matches!(result, Err(TrackerError::Timeout { .. })),
        "{result:?}"
    );
    assert!(took < Duration::from_secs(30), "gave up after {took:?}");
    // The connect request, then two retransmits (2 s + 3 s + 5 s).
    assert!(took >= Duration::from_secs(9), "gave up too soon: {took:?}");
    let sent = dead.received.load(Ordering::SeqCst);
    assert!(sent >= 2, "only {sent} datagrams");
}

#[test]
fn announcer_moves_past_a_dead_tracker_and_stops() {
    let dir = TestDir::new("tracker_announcer");
    let tracker = OpenTracker::start(dir.path());
    let dead = DeadTracker::start();
    let client = client();
    smol::block_on(async {
        let seeder = request(WHITELISTED, b'S', 40005, Event::Started);
        announce(&client, &tracker.http_url(), &seeder)
            .await
            .expect("seeder");

        // One tier, the dead tracker first: the announcer must try it, give
        // up, and get the peers from the real one behind it.
        let tiers = vec![
            vec![dead.url(), tracker.udp_url()],
            vec![tracker.http_url()],
        ];
        let announcer = Announcer::with_order(
            client.clone(),
            tiers,
            WHITELISTED,
            [b'E'; 20],
            40006,
            TierOrder::AsGiven,
        );
        let (found_tx, found_rx) = smol::channel::unbounded();
        let progress = || Progress {
            uploaded: 0,
            downloaded: 0,
            left: 1000,
        };
        let wants_peers = || true;
        let started = Instant::now();
        let mut from_dead_tier = false;
        let run = announcer.run(&progress, &wants_peers, &found_tx);
        let watch = async {
            // The second tier answers at once; the first only after the
            // dead tracker's 10 s, with the same peers.
            let mut lists = 0;
            while lists < 2 {
                let peers = found_rx.recv().await.unwrap();
                assert!(
                    peers.contains(&local(40005)),
                    "seeder missing from {peers:?}"
                );
                lists += 1;
            }
            from_dead_tier = true;
        };
        futures_lite::future::or(run, async {
            futures_lite::future::or(watch, async {
                async_io::Timer::after(Duration::from_secs(40)).await;
            })
            .await
        })
        .await;
        assert!(from_dead_tier, "no peers from both tiers within 40 s");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(9),
            "the dead tracker was not waited for: {took:?}"
        );
        assert!(dead.received.load(Ordering::SeqCst) >= 2);

        let status = announcer.status();
        let rows = status.as_array().unwrap();
        assert_eq!(rows.len(), 3, "{status}");
        let row = |url: &str| rows.iter().find(|r| r["url"] == url).unwrap().clone();
        assert!(
            row(&dead.url())["last_error"]
                .as_str()
                .unwrap()
                .contains("no answer"),
            "{status}"
        );
        assert!(
            row(&tracker.udp_url())["last_peers"].as_u64().unwrap() >= 1,
            "{status}"
        );
        // BEP 12: the tracker that answered is now first in its tier.
        assert_eq!(rows[0]["url"], tracker.udp_url().as_str(), "{status}");
        assert_eq!(announcer.swarm_size(), Some(2));

        // `stopped` takes us off the tracker: another peer saw us, and no
        // longer does.
        let probe = request(WHITELISTED, b'P', 40007, Event::Started);
        let reply = announce(&client, &tracker.http_url(), &probe)
            .await
            .unwrap();
        assert!(
            reply.peers.contains(&local(40006)),
            "never listed: {:?}",
            reply.peers
        );
        announcer.stop(progress()).await;
        let probe = request(WHITELISTED, b'P', 40007, Event::None);
        let reply = announce(&client, &tracker.http_url(), &probe)
            .await
            .unwrap();
        assert!(
            !reply.peers.contains(&local(40006)),
            "still listed: {:?}",
            reply.peers
        );
        assert!(reply.peers.contains(&local(40005)), "{:?}", reply.peers);
    });
}

/// An HTTP "tracker" that answers every request with `response`, as is.
fn canned_tracker(response: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/announce", listener.local_addr().unwrap());
    // The thread ends with the test process; it holds nothing else.
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut head = [0u8; 4096];
            let _ = stream.read(&mut head);
            let _ = stream.write_all(&response);
        }
    });
    url
}

fn http_response(status: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[test]
fn hostile_http_trackers_cost_a_clear_error() {
    let client = client();
    let req = request(WHITELISTED, b'H', 40008, Event::Started);
    smol::block_on(async {
        let huge = canned_tracker(http_response("200 OK", &vec![b'x'; 300 * 1024]));
        let got = announce(&client, &huge, &req).await;
        assert!(
            matches!(got, Err(TrackerError::TooLarge { cap: 262_144, .. })),
            "{got:?}"
        );

        let html = canned_tracker(http_response("200 OK", b"<html>captcha</html>"));
        let got = announce(&client, &html, &req).await;
        assert!(
            matches!(
                got,
                Err(TrackerError::BadReply {
                    problem: ParseError::Bencode(_),
                    ..
                })
            ),
            "{got:?}"
        );

        let missing = canned_tracker(http_response("404 Not Found", b"no"));
        match announce(&client, &missing, &req).await {
            Err(e @ TrackerError::Status { status: 404, .. }) => {
                assert_eq!(e.to_string(), format!("tracker {missing}: HTTP status 404"));
            }
            other => panic!("{other:?}"),
        }

        let refused = b"d14:failure reason6:bannede";
        let refused = canned_tracker(http_response("403 Forbidden", refused));
        let got = announce(&client, &refused, &req).await;
        assert!(
            matches!(&got, Err(TrackerError::Refused { reason, .. }) if reason == "banned"),
            "{got:?}"
        );
    });
}
