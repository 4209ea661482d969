//! Local Service Discovery between two instances on this host: loopback
//! multicast (interface 127.0.0.1, TTL 1) on a group and port the test picks,
//! so nothing reaches the LAN. Linux delivers loopback multicast without the
//! MULTICAST flag on `lo`, so the test changes nothing on the machine.

mod common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use async_io::Timer;
use futures_lite::future;
use smol::channel::Receiver;
use streme::format::InfoHash;
use streme::p2p::lsd::Lsd;

/// A group in the organisation-local scope, and a port no one else uses.
fn test_group() -> SocketAddrV4 {
    let port = 20_000 + (std::process::id() % 20_000) as u16;
    SocketAddrV4::new(Ipv4Addr::new(239, 255, 14, 1), port)
}

async fn next(
    rx: &Receiver<(InfoHash, SocketAddr)>,
    within: Duration,
) -> Option<(InfoHash, SocketAddr)> {
    future::or(async { rx.recv().await.ok() }, async {
        Timer::after(within).await;
        None
    })
    .await
}

#[test]
fn two_instances_find_each_other_and_ignore_themselves() {
    smol::block_on(async {
        let group = test_group();
        let a = Lsd::start(group, Ipv4Addr::LOCALHOST, 7001)
            .await
            .expect("start A");
        let b = Lsd::start(group, Ipv4Addr::LOCALHOST, 7002)
            .await
            .expect("start B");
        let (from_a, from_b) = (b.incoming(), a.incoming());
        let hash = InfoHash([0x5a; 20]);

        a.announce(&[hash]);
        let heard = next(&from_a, Duration::from_secs(10)).await;
        assert_eq!(
            heard,
            Some((hash, SocketAddr::from((Ipv4Addr::LOCALHOST, 7001)))),
            "B hears A's hash and A's announced port"
        );

        // Within a minute, a second announce of the same torrent is not sent.
        a.announce(&[hash]);
        assert_eq!(
            next(&from_a, Duration::from_secs(2)).await,
            None,
            "rate limited"
        );
        // And A never hears itself.
        assert_eq!(from_b.try_recv().ok(), None);

        // Several torrents in one message, the other way.
        let (h1, h2) = (InfoHash([1; 20]), InfoHash([2; 20]));
        b.announce(&[h1, h2]);
        let mut got = vec![
            next(&from_b, Duration::from_secs(10)).await,
            next(&from_b, Duration::from_secs(10)).await,
        ];
        got.sort_by_key(|g| g.map(|(h, _)| h));
        let b_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 7002));
        assert_eq!(got, vec![Some((h1, b_addr)), Some((h2, b_addr))]);
        assert_eq!(
            next(&from_a, Duration::from_millis(500)).await,
            None,
            "B ignores itself"
        );
    });
}

#[test]
fn garbage_on_the_group_is_dropped_and_the_service_keeps_working() {
    smol::block_on(async {
        let mut group = test_group();
        group.set_port(group.port() + 1);
        let listener = Lsd::start(group, Ipv4Addr::LOCALHOST, 7003)
            .await
            .expect("start");
        let heard = listener.incoming();
        // Sent through lo only (IP_MULTICAST_IF 127.0.0.1, TTL 1): without
        // the interface the kernel would pick the default route's.
        let sender =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        sender.set_multicast_if_v4(&Ipv4Addr::LOCALHOST).unwrap();
        sender.set_multicast_ttl_v4(1).unwrap();
        sender
            .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
            .unwrap();
        let sender: std::net::UdpSocket = sender.into();
        for i in 0..2_000u32 {
            let junk: Vec<u8> = match i % 3 {
                0 => (0..fastrand::usize(0..2000))
                    .map(|_| fastrand::u8(..))
                    .collect(),
                1 => b"BT-SEARCH * HTTP/1.1\r\nHost: x\r\nPort: 99999\r\nInfohash: 00\r\n\r\n"
                    .to_vec(),
                _ => "BT-SEARCH * HTTP/1.1\r\n".repeat(100).into_bytes(),
            };
            let _ = sender.send_to(&junk, group);
        }
        let valid = b"BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\n\
            Infohash: 0123456789abcdef0123456789abcdef01234567\r\n\r\n\r\n";
        // UDP may drop a datagram when the flood filled the socket's buffer (a loaded CI
        // machine does): the valid announce is repeated until heard, as LSD itself repeats.
        let expected = InfoHash::from_hex("0123456789abcdef0123456789abcdef01234567").unwrap();
        let mut got = None;
        for _ in 0..20 {
            sender.send_to(valid, group).unwrap();
            got = next(&heard, Duration::from_millis(500)).await;
            if got.is_some() {
                break;
            }
        }
        assert_eq!(
            got,
            Some((expected, SocketAddr::from((Ipv4Addr::LOCALHOST, 6881))))
        );
        // Whatever else came through is that same announce, repeated: no garbage.
        while let Ok(other) = heard.try_recv() {
            assert_eq!(
                other,
                (expected, SocketAddr::from((Ipv4Addr::LOCALHOST, 6881)))
            );
        }
    });
}

/// Two streme boxes on one "LAN" (loopback multicast on the test's own group): the first has a
/// film in its cache, the second gets a bare magnet and no tracker, DHT or HTTP source, finds
/// the first by LSD, and streams the film from its cache byte-exact.
#[test]
fn a_second_streme_streams_from_the_first_ones_cache_found_by_lsd() {
    use common::fixture;
    use common::hybrid::{add_magnet, get_observed, set};
    use common::server::{base_env, import, Server};

    fixture::require_fixture_tools();
    let dir = common::TestDir::new("lsd-two-boxes");
    let film = fixture::random_file(&dir.sub("data").join("film.mkv"), 3 << 20);
    let torrent = fixture::mktorrent(&film, &dir.path().join("film.torrent"), 16);
    let group = SocketAddrV4::new(Ipv4Addr::new(239, 255, 14, 2), test_group().port() + 1);
    let lan = |cache: &str| {
        let mut env = base_env(&dir.sub(cache), 64);
        set(&mut env, "ENABLE_LSD", "true");
        set(&mut env, "LSD_GROUP", &group.to_string());
        set(&mut env, "LSD_INTERFACE", "127.0.0.1");
        set(&mut env, "P2P_TIMEOUT", "10000");
        set(&mut env, "PIECE_TIMEOUT", "60000");
        env
    };
    let first_env = lan("first");
    import(&first_env, &torrent.file, &film);
    let first = Server::start(&first_env);
    let second = Server::start(&lan("second"));
    add_magnet(second.addr(), &torrent.info_hash);
    let r = get_observed(
        second.addr(),
        &format!("/stream/proxy/{}", torrent.info_hash),
        &[],
        || serde_json::Value::Null,
    )
    .response;
    assert_eq!(r.status, 200, "{}\n{}", r.head(), second.logs());
    assert_eq!(r.body, std::fs::read(&film).unwrap(), "not the film");
    let logs = format!("{}{}", first.logs(), second.logs());
    assert!(
        logs.contains("from Lsd"),
        "the boxes did not meet by LSD:\n{logs}"
    );
    // The numbers are refreshed once a second.
    common::hybrid::wait_for_status(
        first.addr(),
        &torrent.info_hash,
        Duration::from_secs(5),
        |s| s["peers"]["uploaded"].as_u64() >= Some(3 << 20),
    )
    .unwrap_or_else(|s| panic!("the first box did not upload the film: {s}"));
}
