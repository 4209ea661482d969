//! Golden bytes for the trackers' answers and our requests, and every hostile
//! case the parsers must refuse or bound.

use std::net::SocketAddr;
use std::time::Duration;

use super::parse::{self, Answer, HttpReply, ParseError, MAX_PEERS_PER_REPLY};
use super::{http, udp, Event, Progress, Reply, Request};
use crate::format::InfoHash;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn http_ok(body: &[u8]) -> HttpReply {
    match parse::http_reply(body) {
        Ok(Answer::Ok(reply)) => reply,
        other => panic!("expected a reply, got {other:?}"),
    }
}

#[test]
fn http_reply_with_compact_v4_and_v6_peers() {
    // What opentracker answers (captured from Debian's 0~git20210823), with
    // peers6 added as BEP 7 puts it.
    let mut body = b"d8:completei3e10:downloadedi0e10:incompletei2e8:intervali1750e\
12:min intervali875e5:peers12:"
        .to_vec();
    body.extend_from_slice(&[127, 0, 0, 1, 0x15, 0xb3, 10, 1, 2, 3, 0x1a, 0xe1]);
    body.extend_from_slice(b"6:peers618:");
    body.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    body.extend_from_slice(&[0x1a, 0xe1]);
    body.push(b'e');
    let got = http_ok(&body);
    assert_eq!(
        got.reply,
        Reply {
            peers: vec![
                addr("127.0.0.1:5555"),
                addr("10.1.2.3:6881"),
                addr("[2001:db8::1]:6881")
            ],
            interval: Duration::from_secs(1750),
            min_interval: Some(Duration::from_secs(875)),
            seeders: Some(3),
            leechers: Some(2),
        }
    );
    assert_eq!(got.warning, None);
}

#[test]
fn http_reply_with_dict_peers_skips_bad_entries() {
    let body = b"d8:intervali900e5:peersl\
d2:ip9:127.0.0.17:peer id20:AAAAAAAAAAAAAAAAAAAA4:porti6881ee\
d2:ip11:2001:db8::24:porti51413ee\
d2:ip11:example.com4:porti1ee\
d2:ip8:10.0.0.14:porti0ee\
d2:ip8:10.0.0.24:porti70000ee\
d4:porti5ee\
i7e\
ee";
    let got = http_ok(body);
    assert_eq!(
        got.reply.peers,
        vec![addr("127.0.0.1:6881"), addr("[2001:db8::2]:51413")]
    );
    assert_eq!(got.reply.min_interval, None);
    assert_eq!(got.reply.seeders, None);
}

#[test]
fn http_failure_reason_is_a_refusal() {
    let body =
        b"d14:failure reason63:Requested download is not authorized for use with this tracker.e";
    assert_eq!(
        parse::http_reply(body),
        Ok(Answer::Refused(
            "Requested download is not authorized for use with this tracker.".to_string()
        ))
    );
}

#[test]
fn http_warning_message_is_kept() {
    let got = http_ok(b"d8:intervali60e5:peers0:15:warning message4:slowe");
    assert_eq!(got.warning.as_deref(), Some("slow"));
    assert!(got.reply.peers.is_empty());
}

#[test]
fn http_hostile_replies_are_refused() {
    assert!(matches!(
        parse::http_reply(b"<title>Invalid Request</title>"),
        Err(ParseError::Bencode(_))
    ));
    assert_eq!(parse::http_reply(b"li1ee"), Err(ParseError::NotADict));
    assert_eq!(
        parse::http_reply(b"d5:peers0:e"),
        Err(ParseError::BadInterval(None))
    );
    assert_eq!(
        parse::http_reply(b"d8:intervali0e5:peers0:e"),
        Err(ParseError::BadInterval(Some(0)))
    );
    assert_eq!(
        parse::http_reply(b"d8:intervali-5e5:peers0:e"),
        Err(ParseError::BadInterval(Some(-5)))
    );
    assert_eq!(
        parse::http_reply(b"d8:intervali60e5:peers7:abcdefge"),
        Err(ParseError::BadCompactLength { len: 7, entry: 6 })
    );
    assert_eq!(
        parse::http_reply(b"d8:intervali60e5:peersi3ee"),
        Err(ParseError::BadPeers)
    );
    assert_eq!(
        parse::http_reply(b"d8:intervali60e5:peers0:6:peers65:abcdee"),
        Err(ParseError::BadCompactLength { len: 5, entry: 18 })
    );
}

#[test]
fn compact_peers_drop_port_zero_and_unspecified_addresses() {
    let bytes = [
        1, 2, 3, 4, 0, 0, // port 0
        0, 0, 0, 0, 0x1a, 0xe1, // 0.0.0.0
        5, 6, 7, 8, 0x1a, 0xe1,
    ];
    assert_eq!(parse::compact_v4(&bytes), Ok(vec![addr("5.6.7.8:6881")]));
    let mut v6 = [0u8; 18];
    v6[17] = 1; // [::]:1
    assert_eq!(parse::compact_v6(&v6), Ok(vec![]));
}

#[test]
fn compact_peers_are_capped() {
    let mut bytes = Vec::new();
    for n in 0..(MAX_PEERS_PER_REPLY as u32 + 100) {
        bytes.extend_from_slice(&(0x0a00_0000 + n).to_be_bytes());
        bytes.extend_from_slice(&6881u16.to_be_bytes());
    }
    let peers = parse::compact_v4(&bytes).unwrap();
    assert_eq!(peers.len(), MAX_PEERS_PER_REPLY);
    // peers + peers6 together stay under the cap too.
    let mut body = format!("d8:intervali60e5:peers{}:", bytes.len()).into_bytes();
    body.extend_from_slice(&bytes);
    body.extend_from_slice(b"6:peers618:");
    body.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1]);
    body.push(b'e');
    assert_eq!(http_ok(&body).reply.peers.len(), MAX_PEERS_PER_REPLY);
}

#[test]
fn udp_connect_reply() {
    let tid = 0x1234_5678;
    let datagram = [
        0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 7,
    ];
    assert_eq!(
        parse::udp_connect(&datagram, tid),
        Ok(Answer::Ok(0xdead_beef_0000_0007))
    );
    assert_eq!(
        parse::udp_connect(&datagram, tid + 1),
        Err(ParseError::TransactionMismatch {
            expected: tid + 1,
            got: tid
        })
    );
    assert_eq!(
        parse::udp_connect(&datagram[..15], tid),
        Err(ParseError::Short { len: 15, need: 16 })
    );
    assert_eq!(
        parse::udp_connect(&datagram[..3], tid),
        Err(ParseError::Short { len: 3, need: 16 })
    );
    let mut wrong = datagram;
    wrong[3] = 1;
    assert_eq!(
        parse::udp_connect(&wrong, tid),
        Err(ParseError::BadAction {
            expected: 0,
            got: 1
        })
    );
}

#[test]
fn udp_announce_reply_v4_and_v6() {
    let tid = 7;
    let mut v4 = vec![0, 0, 0, 1, 0, 0, 0, 7];
    v4.extend_from_slice(&[0, 0, 0x07, 0x08, 0, 0, 0, 2, 0, 0, 0, 5]); // 1800 s, 2 leechers, 5 seeders
    v4.extend_from_slice(&[127, 0, 0, 1, 0x15, 0xb3]);
    v4.extend_from_slice(&[127, 0, 0, 1, 0, 0]); // port 0: dropped
    v4.extend_from_slice(&[9, 9]); // a partial entry: ignored
    assert_eq!(
        parse::udp_announce(&v4, tid, false),
        Ok(Answer::Ok(Reply {
            peers: vec![addr("127.0.0.1:5555")],
            interval: Duration::from_secs(1800),
            min_interval: None,
            seeders: Some(5),
            leechers: Some(2),
        }))
    );
    let mut v6 = v4[..20].to_vec();
    v6.extend_from_slice(&[
        0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0x1a, 0xe1,
    ]);
    match parse::udp_announce(&v6, tid, true) {
        Ok(Answer::Ok(reply)) => assert_eq!(reply.peers, vec![addr("[2001:db8::3]:6881")]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn udp_announce_hostile_replies() {
    let tid = 9;
    let header = |action: u32, t: u32| {
        let mut d = action.to_be_bytes().to_vec();
        d.extend_from_slice(&t.to_be_bytes());
        d.extend_from_slice(&[0, 0, 0, 60, 0, 0, 0, 0, 0, 0, 0, 0]);
        d
    };
    assert_eq!(
        parse::udp_announce(&header(1, 10), tid, false),
        Err(ParseError::TransactionMismatch {
            expected: 9,
            got: 10
        })
    );
    assert_eq!(
        parse::udp_announce(&header(0, 9), tid, false),
        Err(ParseError::BadAction {
            expected: 1,
            got: 0
        })
    );
    assert_eq!(
        parse::udp_announce(&header(2, 9), tid, false),
        Err(ParseError::BadAction {
            expected: 1,
            got: 2
        })
    );
    assert_eq!(
        parse::udp_announce(&header(1, 9)[..19], tid, false),
        Err(ParseError::Short { len: 19, need: 20 })
    );
    let mut zero = header(1, 9);
    zero[8..12].copy_from_slice(&[0, 0, 0, 0]);
    assert_eq!(
        parse::udp_announce(&zero, tid, false),
        Err(ParseError::BadInterval(Some(0)))
    );
    // 600 peers: only the first 500 are read.
    let mut many = header(1, 9);
    for n in 0..600u32 {
        many.extend_from_slice(&(0x0a00_0000 + n).to_be_bytes());
        many.extend_from_slice(&[0x1a, 0xe1]);
    }
    match parse::udp_announce(&many, tid, false) {
        Ok(Answer::Ok(reply)) => assert_eq!(reply.peers.len(), MAX_PEERS_PER_REPLY),
        other => panic!("{other:?}"),
    }
}

#[test]
fn udp_error_reply_is_a_refusal_for_either_request() {
    let mut datagram = vec![0, 0, 0, 3, 0, 0, 0, 9];
    datagram.extend_from_slice(b"not whitelisted");
    let refused = Answer::Refused("not whitelisted".to_string());
    assert_eq!(parse::udp_connect(&datagram, 9), Ok(refused.clone()));
    assert_eq!(
        parse::udp_announce(&datagram, 9, false),
        Ok(Answer::Refused("not whitelisted".into()))
    );
    // An error for another transaction is not ours to believe.
    assert_eq!(
        parse::udp_connect(&datagram, 8),
        Err(ParseError::TransactionMismatch {
            expected: 8,
            got: 9
        })
    );
}

fn request(event: Event) -> Request {
    let mut info_hash = [0u8; 20];
    info_hash[0] = 0xaa;
    info_hash[1] = b'A';
    info_hash[2] = b' ';
    info_hash[3] = b'~';
    Request {
        info_hash: InfoHash(info_hash),
        peer_id: *b"-ST0001-abcdefghij%/",
        port: 6881,
        progress: Progress {
            uploaded: 1,
            downloaded: 2,
            left: 3,
        },
        event,
        num_want: 50,
        key: 0xcafe,
    }
}

#[test]
fn http_announce_url_encodes_bytes_and_keeps_the_passkey() {
    let url = http::announce_url("http://t.example/announce?pk=1", &request(Event::Started));
    assert_eq!(
        url,
        "http://t.example/announce?pk=1&info_hash=%AAA%20~%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00%00\
&peer_id=-ST0001-abcdefghij%25%2F&port=6881&uploaded=1&downloaded=2&left=3&compact=1&numwant=50\
&key=0000cafe&event=started"
    );
    let url = http::announce_url("http://t.example/announce", &request(Event::None));
    assert!(url.starts_with("http://t.example/announce?info_hash="));
    assert!(!url.contains("event="));
}

#[test]
fn udp_requests_have_the_bep15_layout() {
    assert_eq!(
        udp::connect_request(0x0102_0304),
        [0, 0, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0, 1, 2, 3, 4]
    );
    let req = request(Event::Stopped);
    let d = udp::announce_request(0x1122_3344_5566_7788, 5, &req);
    assert_eq!(d.len(), 98);
    assert_eq!(&d[..8], &0x1122_3344_5566_7788u64.to_be_bytes());
    assert_eq!(&d[8..16], &[0, 0, 0, 1, 0, 0, 0, 5]);
    assert_eq!(&d[16..36], &req.info_hash.0);
    assert_eq!(&d[36..56], &req.peer_id);
    assert_eq!(&d[56..64], &2u64.to_be_bytes()); // downloaded
    assert_eq!(&d[64..72], &3u64.to_be_bytes()); // left
    assert_eq!(&d[72..80], &1u64.to_be_bytes()); // uploaded
    assert_eq!(&d[80..84], &3u32.to_be_bytes()); // stopped
    assert_eq!(&d[84..88], &[0, 0, 0, 0]); // ip: the sender's
    assert_eq!(&d[88..92], &0xcafeu32.to_be_bytes());
    assert_eq!(&d[92..96], &50i32.to_be_bytes());
    assert_eq!(&d[96..98], &6881u16.to_be_bytes());
}
