use super::*;

const A: NodeId = NodeId(*b"abcdefghij0123456789");
const M: NodeId = NodeId(*b"mnopqrstuvwxyz123456");

/// Parses `bytes`, checks the value, and checks the encoder gives the same bytes back.
fn golden(bytes: &[u8], expected: Message) {
    assert_eq!(parse(bytes).expect("golden message parses"), expected);
    assert_eq!(
        String::from_utf8_lossy(&expected.encode()),
        String::from_utf8_lossy(bytes),
        "byte-exact encoding"
    );
}

fn msg(body: Body) -> Message {
    Message {
        tid: b"aa".to_vec(),
        body,
    }
}

// The examples of BEP 5, byte for byte.
#[test]
fn bep5_ping() {
    golden(
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe",
        msg(Body::Query(Query::Ping { id: A })),
    );
    golden(
        b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re",
        msg(Body::Response(Response::id_only(M))),
    );
}

#[test]
fn bep5_find_node_query() {
    golden(
        b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe",
        msg(Body::Query(Query::FindNode { id: A, target: M })),
    );
}

#[test]
fn bep5_get_peers_query_and_values_response() {
    golden(
        b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe",
        msg(Body::Query(Query::GetPeers {
            id: A,
            info_hash: InfoHash(M.0),
        })),
    );
    golden(
        b"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re",
        msg(Body::Response(Response {
            id: A,
            nodes: vec![],
            values: vec![compact_peer(b"axje.u"), compact_peer(b"idhtnm")],
            token: Some(b"aoeusnth".to_vec()),
        })),
    );
}

#[test]
fn bep5_announce_peer_with_implied_port() {
    golden(
        b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe",
        msg(Body::Query(Query::AnnouncePeer {
            id: A,
            info_hash: InfoHash(M.0),
            port: 6881,
            implied_port: true,
            token: b"aoeusnth".to_vec(),
        })),
    );
}

#[test]
fn bep5_error() {
    golden(
        b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee",
        msg(Body::Error {
            code: ERROR_GENERIC,
            text: b"A Generic Error Ocurred".to_vec(),
        }),
    );
}

/// BEP 5's find_node and get_peers response examples write `nodes` as the
/// placeholder `def456...`; this is the same message with one real node.
#[test]
fn nodes_response_with_a_real_compact_node() {
    let node = CompactNode {
        id: M,
        addr: SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 6881),
    };
    let mut bytes = b"d1:rd2:id20:0123456789abcdefghij5:nodes26:".to_vec();
    bytes.extend_from_slice(b"mnopqrstuvwxyz123456\x7f\x00\x00\x01\x1a\xe1");
    bytes.extend_from_slice(b"5:token8:aoeusnthe1:t2:aa1:y1:re");
    golden(
        &bytes,
        msg(Body::Response(Response {
            id: NodeId(*b"0123456789abcdefghij"),
            nodes: vec![node],
            values: vec![],
            token: Some(b"aoeusnth".to_vec()),
        })),
    );
    // The placeholder itself is 9 bytes, not a whole node: rejected.
    assert_eq!(
        parse(b"d1:rd2:id20:0123456789abcdefghij5:nodes9:def456...e1:t2:aa1:y1:re"),
        Err(KrpcError::BadCompactLength {
            key: "nodes",
            len: 9
        })
    );
}

#[test]
fn unknown_keys_are_skipped() {
    let m = parse(b"d1:ad2:id20:abcdefghij01234567894:wantl2:n4e5:extrai3ee1:q4:ping1:t2:aa1:v4:LT\x01\x021:y1:qe")
        .unwrap();
    assert_eq!(m, msg(Body::Query(Query::Ping { id: A })));
}

#[test]
fn hostile_messages_are_rejected_with_the_offending_numbers() {
    let e = |b: &[u8]| parse(b).expect_err("must be rejected");
    assert_eq!(
        e(b"d1:ad2:id19:abcdefghij012345678e1:q4:ping1:t2:aa1:y1:qe"),
        KrpcError::BadIdLength { key: "id", len: 19 }
    );
    assert_eq!(
        e(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t0:1:y1:qe"),
        KrpcError::BadTid { len: 0 }
    );
    assert_eq!(
        e(b"d1:ad2:id20:abcdefghij0123456789e1:q4:pong1:t2:aa1:y1:qe"),
        KrpcError::UnknownMethod(b"pong".to_vec())
    );
    assert_eq!(e(b"le"), KrpcError::NotADict);
    assert_eq!(e(b"d1:t2:aae"), KrpcError::Missing("y"));
    assert!(matches!(e(b"d1:t2:aa"), KrpcError::Bencode(_)));
    assert_eq!(
        e(b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti70000e5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe"),
        KrpcError::BadPort(70000)
    );

    let mut many_nodes = b"d1:rd2:id20:0123456789abcdefghij5:nodes442:".to_vec();
    many_nodes.extend(std::iter::repeat_n(b'n', 17 * COMPACT_NODE_LEN));
    many_nodes.extend_from_slice(b"e1:t2:aa1:y1:re");
    assert_eq!(
        e(&many_nodes),
        KrpcError::TooManyNodes { count: 17, max: 16 }
    );

    let mut many_values = b"d1:rd2:id20:0123456789abcdefghij6:valuesl".to_vec();
    (0..101).for_each(|_| many_values.extend_from_slice(b"6:peer01"));
    many_values.extend_from_slice(b"ee1:t2:aa1:y1:re");
    assert_eq!(
        e(&many_values),
        KrpcError::TooManyValues {
            count: 101,
            max: 100
        }
    );

    let mut long_token = b"d1:rd2:id20:0123456789abcdefghij5:token65:".to_vec();
    long_token.extend(std::iter::repeat_n(b't', 65));
    long_token.extend_from_slice(b"e1:t2:aa1:y1:re");
    assert_eq!(e(&long_token), KrpcError::TokenTooLong { len: 65, max: 64 });

    assert_eq!(
        e(&vec![b'x'; MAX_DATAGRAM + 1]),
        KrpcError::TooLarge {
            len: MAX_DATAGRAM + 1,
            max: MAX_DATAGRAM
        }
    );
}

#[test]
fn xor_metric_and_prefix() {
    let zero = NodeId([0; 20]);
    let mut one = [0u8; 20];
    one[19] = 1;
    assert_eq!(zero.common_prefix_len(&zero), 160);
    assert_eq!(zero.common_prefix_len(&NodeId(one)), 159);
    let mut top = [0u8; 20];
    top[0] = 0x80;
    assert_eq!(zero.common_prefix_len(&NodeId(top)), 0);
    assert!(zero.distance(&NodeId(one)) < zero.distance(&NodeId(top)));
}

/// The fuzz target's invariant on mutations of the golden messages, so it
/// runs with every `cargo test` too.
#[test]
fn mutated_messages_never_panic_and_what_parses_round_trips() {
    let seeds: [&[u8]; 4] = [
        b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe",
        b"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re",
        b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee",
        b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe",
    ];
    let mut parsed = 0;
    for _ in 0..20_000 {
        let mut m = seeds[fastrand::usize(..seeds.len())].to_vec();
        for _ in 0..fastrand::usize(1..3) {
            let at = fastrand::usize(..m.len());
            match fastrand::u8(..3) {
                0 => m[at] = fastrand::u8(..),
                1 => {
                    m.remove(at);
                }
                _ => m.insert(at, fastrand::u8(..)),
            }
        }
        if let Ok(message) = parse(&m) {
            parsed += 1;
            let encoded = message.encode();
            assert_eq!(parse(&encoded).as_ref(), Ok(&message), "{m:?}");
        }
    }
    assert!(
        parsed > 100,
        "the mutations reach the accepting paths: {parsed}"
    );
}
