//! Invariants of the tracker reply parsers on hostile bytes: every reply
//! accepted keeps at most `MAX_PEERS_PER_REPLY` peers, none with port 0 or an
//! unspecified address, and a positive interval; and a reply encoded back
//! (HTTP: bencode with compact `peers` and `peers6`; UDP: the BEP 15
//! datagram) parses to the same reply.
#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use streme::p2p::tracker::parse::{self, Answer, MAX_PEERS_PER_REPLY};
use streme::p2p::tracker::Reply;

fn check(reply: &Reply) {
    assert!(reply.peers.len() <= MAX_PEERS_PER_REPLY, "{}", reply.peers.len());
    assert!(reply.interval.as_secs() > 0);
    for peer in &reply.peers {
        assert!(peer.port() != 0 && !peer.ip().is_unspecified(), "{peer}");
    }
}

fn compact(peers: &[SocketAddr], v6: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for peer in peers.iter().filter(|p| p.is_ipv6() == v6) {
        match peer {
            SocketAddr::V4(a) => out.extend_from_slice(&a.ip().octets()),
            SocketAddr::V6(a) => out.extend_from_slice(&a.ip().octets()),
        }
        out.extend_from_slice(&peer.port().to_be_bytes());
    }
    out
}

fn bytes(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.extend_from_slice(format!("{}:{key}{}:", key.len(), value.len()).as_bytes());
    out.extend_from_slice(value);
}

fn int(out: &mut Vec<u8>, key: &str, value: u64) {
    out.extend_from_slice(format!("{}:{key}i{value}e", key.len()).as_bytes());
}

/// The HTTP body of `reply`, keys sorted as bencode wants.
fn http_body(reply: &Reply) -> Vec<u8> {
    let mut out = b"d".to_vec();
    if let Some(n) = reply.seeders {
        int(&mut out, "complete", n.into());
    }
    if let Some(n) = reply.leechers {
        int(&mut out, "incomplete", n.into());
    }
    int(&mut out, "interval", reply.interval.as_secs());
    if let Some(d) = reply.min_interval {
        int(&mut out, "min interval", d.as_secs());
    }
    bytes(&mut out, "peers", &compact(&reply.peers, false));
    bytes(&mut out, "peers6", &compact(&reply.peers, true));
    out.push(b'e');
    out
}

fn family(peers: &[SocketAddr], v6: bool) -> Vec<SocketAddr> {
    peers.iter().copied().filter(|p| p.is_ipv6() == v6).collect()
}

fuzz_target!(|data: &[u8]| {
    if let Ok(Answer::Ok(http)) = parse::http_reply(data) {
        let reply = http.reply;
        check(&reply);
        let again = match parse::http_reply(&http_body(&reply)) {
            Ok(Answer::Ok(again)) => again.reply,
            other => panic!("our own encoding of {reply:?} gave {other:?}"),
        };
        // The dict form may mix families; the compact form splits them.
        for v6 in [false, true] {
            assert_eq!(family(&again.peers, v6), family(&reply.peers, v6));
        }
        assert_eq!(
            (again.interval, again.min_interval, again.seeders, again.leechers),
            (reply.interval, reply.min_interval, reply.seeders, reply.leechers)
        );
    }
    let Some((&flags, datagram)) = data.split_first() else {
        return;
    };
    let v6 = flags & 1 == 1;
    let tid = datagram
        .get(4..8)
        .map_or(0, |t| u32::from_be_bytes([t[0], t[1], t[2], t[3]]));
    if let Ok(Answer::Ok(id)) = parse::udp_connect(datagram, tid) {
        let mut again = vec![0, 0, 0, 0];
        again.extend_from_slice(&tid.to_be_bytes());
        again.extend_from_slice(&id.to_be_bytes());
        assert_eq!(parse::udp_connect(&again, tid), Ok(Answer::Ok(id)));
    }
    if let Ok(Answer::Ok(reply)) = parse::udp_announce(datagram, tid, v6) {
        check(&reply);
        let mut again = vec![0, 0, 0, 1];
        again.extend_from_slice(&tid.to_be_bytes());
        again.extend_from_slice(&(reply.interval.as_secs() as u32).to_be_bytes());
        again.extend_from_slice(&reply.leechers.unwrap().to_be_bytes());
        again.extend_from_slice(&reply.seeders.unwrap().to_be_bytes());
        again.extend_from_slice(&compact(&reply.peers, v6));
        assert_eq!(parse::udp_announce(&again, tid, v6), Ok(Answer::Ok(reply)));
    }
});
