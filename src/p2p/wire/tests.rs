//! Golden bytes written by hand from BEP 3, 6, 9, 10 and 11, round trips,
//! every split point of every frame, and hostile inputs.

use std::net::{Ipv4Addr, SocketAddr};

use super::*;

fn hash(byte: u8) -> InfoHash {
    InfoHash([byte; 20])
}

fn framed(message: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode(message, &mut out);
    out
}

fn parse_all(bytes: &[u8]) -> (Message<'_>, usize) {
    parse_message(bytes)
        .expect("golden frame must parse")
        .expect("golden frame is complete")
}

/// Every message with the bytes BEP 3/6/10 give it, written out by hand.
fn golden() -> Vec<(Message<'static>, Vec<u8>)> {
    let block = BlockRef {
        piece: 1,
        offset: 0x4000,
        length: 0x4000,
    };
    let block_bytes = [0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0];
    let with = |prefix: &[u8], rest: &[u8]| [prefix, rest].concat();
    vec![
        (Message::KeepAlive, vec![0, 0, 0, 0]),
        (Message::Choke, vec![0, 0, 0, 1, 0]),
        (Message::Unchoke, vec![0, 0, 0, 1, 1]),
        (Message::Interested, vec![0, 0, 0, 1, 2]),
        (Message::NotInterested, vec![0, 0, 0, 1, 3]),
        (Message::Have(0x0102_0304), vec![0, 0, 0, 5, 4, 1, 2, 3, 4]),
        (
            Message::Bitfield(&[0b1010_0000, 0xff]),
            vec![0, 0, 0, 3, 5, 0b1010_0000, 0xff],
        ),
        (
            Message::Request(block),
            with(&[0, 0, 0, 13, 6], &block_bytes),
        ),
        (
            Message::Piece {
                piece: 7,
                offset: 0x8000,
                data: b"abc",
            },
            vec![0, 0, 0, 12, 7, 0, 0, 0, 7, 0, 0, 0x80, 0, b'a', b'b', b'c'],
        ),
        (
            Message::Cancel(block),
            with(&[0, 0, 0, 13, 8], &block_bytes),
        ),
        (Message::Port(6881), vec![0, 0, 0, 3, 9, 0x1a, 0xe1]),
        (Message::Suggest(9), vec![0, 0, 0, 5, 13, 0, 0, 0, 9]),
        (Message::HaveAll, vec![0, 0, 0, 1, 14]),
        (Message::HaveNone, vec![0, 0, 0, 1, 15]),
        (
            Message::Reject(block),
            with(&[0, 0, 0, 13, 16], &block_bytes),
        ),
        (Message::AllowedFast(300), vec![0, 0, 0, 5, 17, 0, 0, 1, 44]),
        (
            Message::Extended {
                id: 0,
                payload: b"de",
            },
            vec![0, 0, 0, 4, 20, 0, b'd', b'e'],
        ),
        (Message::Unknown { id: 42 }, vec![0, 0, 0, 1, 42]),
    ]
}

#[test]
fn every_message_round_trips_byte_exact() {
    for (message, bytes) in golden() {
        assert_eq!(framed(&message), bytes, "encode {message:?}");
        assert_eq!(parse_all(&bytes), (message, bytes.len()));
    }
}

#[test]
fn incomplete_input_is_none_at_every_split_point() {
    for (message, bytes) in golden() {
        for cut in 0..bytes.len() {
            assert_eq!(
                parse_message(&bytes[..cut]),
                Ok(None),
                "{message:?} cut {cut}"
            );
        }
        // Followed by the next message: exactly one frame is consumed.
        let mut stream = bytes.clone();
        stream.extend_from_slice(&[0, 0, 0, 1, 1]);
        assert_eq!(parse_all(&stream), (message, bytes.len()));
    }
}

#[test]
fn message_len_reads_only_the_prefix() {
    assert_eq!(message_len(&[0, 0, 0]), Ok(None));
    assert_eq!(message_len(&[0, 0, 0, 0]), Ok(Some(4)));
    assert_eq!(message_len(&[0, 0, 0x40, 9, 7]), Ok(Some(4 + 0x4009)));
}

#[test]
fn max_message_len_is_the_largest_bitfield() {
    assert_eq!(MAX_PIECES, 838_860);
    assert_eq!(MAX_MESSAGE_LEN, 1 + 104_858);
    let bits = vec![0u8; 104_858];
    let bytes = framed(&Message::Bitfield(&bits));
    assert_eq!(parse_all(&bytes).1, 4 + MAX_MESSAGE_LEN);
    // A full 16 KiB block and a full metadata piece both fit.
    const { assert!(9 + BLOCK_LEN as usize <= MAX_MESSAGE_LEN) };
    const { assert!(2 + 100 + METADATA_PIECE_LEN <= MAX_MESSAGE_LEN) };
}

#[test]
fn a_huge_length_prefix_is_refused_before_buffering() {
    let too_long = (MAX_MESSAGE_LEN as u32 + 1).to_be_bytes();
    let expected = WireError::TooLong {
        len: MAX_MESSAGE_LEN + 1,
        max: MAX_MESSAGE_LEN,
    };
    // The prefix alone is enough to refuse: no body was sent.
    assert_eq!(message_len(&too_long), Err(expected.clone()));
    assert_eq!(parse_message(&too_long), Err(expected));
    let max = [0xff; 4];
    assert!(matches!(
        parse_message(&max),
        Err(WireError::TooLong {
            len: 0xffff_ffff,
            ..
        })
    ));
}

#[test]
fn fixed_size_messages_with_the_wrong_length_are_refused() {
    let cases: [(u8, usize); 13] = [
        (MSG_CHOKE, 1),
        (MSG_UNCHOKE, 1),
        (MSG_INTERESTED, 1),
        (MSG_NOT_INTERESTED, 1),
        (MSG_HAVE, 5),
        (MSG_REQUEST, 13),
        (MSG_CANCEL, 13),
        (MSG_PORT, 3),
        (MSG_SUGGEST, 5),
        (MSG_HAVE_ALL, 1),
        (MSG_HAVE_NONE, 1),
        (MSG_REJECT, 13),
        (MSG_ALLOWED_FAST, 5),
    ];
    for (id, expected) in cases {
        for got in [expected - 1, expected + 1] {
            if got == 0 {
                continue; // length 0 is a keep-alive, not this id
            }
            let mut frame = (got as u32).to_be_bytes().to_vec();
            frame.push(id);
            // A valid-looking block length, so only the size is wrong.
            frame.extend([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0][..got - 1].iter());
            assert_eq!(
                parse_message(&frame),
                Err(WireError::BadLength { id, expected, got }),
                "id {id} length {got}"
            );
        }
    }
}

#[test]
fn short_piece_and_extended_messages_are_refused() {
    let piece = [0, 0, 0, 8, 7, 0, 0, 0, 1, 0, 0, 0];
    assert_eq!(
        parse_message(&piece),
        Err(WireError::TooShort {
            id: 7,
            min: 9,
            got: 8
        })
    );
    assert_eq!(
        parse_message(&[0, 0, 0, 1, 20]),
        Err(WireError::TooShort {
            id: 20,
            min: 2,
            got: 1
        })
    );
    // An empty block is odd but well formed, and so is an empty bitfield.
    assert!(parse_message(&[0, 0, 0, 9, 7, 0, 0, 0, 1, 0, 0, 0, 0])
        .unwrap()
        .is_some());
    assert_eq!(parse_all(&[0, 0, 0, 1, 5]).0, Message::Bitfield(&[]),);
}

#[test]
fn a_piece_longer_than_a_block_is_refused() {
    let data = vec![0u8; BLOCK_LEN as usize + 1];
    let bytes = framed(&Message::Piece {
        piece: 0,
        offset: 0,
        data: &data,
    });
    assert_eq!(
        parse_message(&bytes),
        Err(WireError::BlockTooLong {
            len: BLOCK_LEN as usize + 1
        })
    );
    let data = vec![0u8; BLOCK_LEN as usize];
    let bytes = framed(&Message::Piece {
        piece: 0,
        offset: 0,
        data: &data,
    });
    assert_eq!(parse_all(&bytes).1, bytes.len());
}

#[test]
fn requests_for_zero_or_more_than_a_block_are_refused() {
    for id in [MSG_REQUEST, MSG_CANCEL, MSG_REJECT] {
        for len in [0, BLOCK_LEN + 1, u32::MAX] {
            let mut frame = vec![0, 0, 0, 13, id, 0, 0, 0, 1, 0, 0, 0, 0];
            frame.extend_from_slice(&len.to_be_bytes());
            assert_eq!(
                parse_message(&frame),
                Err(WireError::BadBlockLength { id, len }),
                "id {id} len {len}"
            );
        }
    }
}

#[test]
fn unknown_ids_skip_their_payload() {
    // BEP 3: ignore what you do not know. Id 10 with a 3-byte payload, then a Choke.
    let stream = [0, 0, 0, 4, 10, 1, 2, 3, 0, 0, 0, 1, 0];
    assert_eq!(parse_all(&stream), (Message::Unknown { id: 10 }, 8));
    assert_eq!(parse_all(&stream[8..]), (Message::Choke, 5));
}

/// A peer's 68 handshake bytes, written out field by field as BEP 3 lays them.
fn handshake_bytes(reserved: [u8; 8], hash: u8, peer_id: &[u8; 20]) -> Vec<u8> {
    [
        &[19u8][..],
        b"BitTorrent protocol",
        &reserved,
        &[hash; 20],
        peer_id,
    ]
    .concat()
}

/// libtorrent 2.0 (`-LT2000-`) sets 0x18 at byte 5 (extension protocol +
/// BEP 52 v2) and 0x05 at byte 7 (DHT + fast); Transmission 3.00
/// (`-TR3000-`) has no fast extension.
#[test]
fn parses_libtorrent_and_transmission_handshakes() {
    let peers: [([u8; 8], u8, &[u8; 20], bool); 2] = [
        (
            [0, 0, 0, 0, 0, 0x18, 0, 0x05],
            0xab,
            b"-LT2000-p3Xq9k1ZbN7w",
            true,
        ),
        (
            [0, 0, 0, 0, 0, 0x10, 0, 0x01],
            0x11,
            b"-TR3000-0cqk2jffzlut",
            false,
        ),
    ];
    for (reserved, info_hash, peer_id, fast) in peers {
        let bytes = handshake_bytes(reserved, info_hash, peer_id);
        assert_eq!(bytes.len(), HANDSHAKE_LEN);
        let shake = Handshake::parse(&bytes).unwrap();
        assert_eq!(shake.info_hash, hash(info_hash));
        assert_eq!(&shake.peer_id.0, peer_id);
        assert!(shake.supports_extensions() && shake.supports_dht());
        assert_eq!(shake.supports_fast(), fast);
        assert_eq!(shake.encode().to_vec(), bytes);
    }
}

#[test]
fn our_handshake_sets_extensions_fast_and_dht() {
    let shake = Handshake::new(hash(1), PeerId([b'x'; 20]));
    let bytes = shake.encode();
    assert_eq!(&bytes[..20], b"\x13BitTorrent protocol");
    assert_eq!(&bytes[20..28], &[0, 0, 0, 0, 0, 0x10, 0, 0x05]);
    assert_eq!(&bytes[28..48], &[1; 20]);
    assert_eq!(&bytes[48..], &[b'x'; 20]);
    assert_eq!(Handshake::parse(&bytes), Ok(shake));
}

#[test]
fn bad_handshakes_are_refused() {
    let good = Handshake::new(hash(1), PeerId([b'x'; 20])).encode();
    let mut pstrlen = good;
    pstrlen[0] = 18;
    assert_eq!(Handshake::parse(&pstrlen), Err(WireError::BadProtocol));
    let mut name = good;
    name[1] = b'b';
    assert_eq!(Handshake::parse(&name), Err(WireError::BadProtocol));
    assert_eq!(
        Handshake::parse(&good[..67]),
        Err(WireError::HandshakeLength { got: 67 })
    );
    assert_eq!(
        Handshake::parse(&[good.as_slice(), &[0]].concat()),
        Err(WireError::HandshakeLength { got: 69 })
    );
}

#[test]
fn peer_ids_are_azureus_style_and_random() {
    let a = PeerId::generate();
    let b = PeerId::generate();
    assert_eq!(&a.0[..8], b"-SM0100-");
    assert!(a.0[8..].iter().all(u8::is_ascii_alphanumeric));
    assert_ne!(a, b);
    assert_eq!(&client_prefix("1.12.3-rc1"), b"-SM1C30-");
    assert_eq!(&client_prefix("40"), b"-SM0000-");
}

#[test]
fn bitfield_fits_checks_length_and_spare_bits() {
    assert!(bitfield_fits(&[], 0));
    assert!(!bitfield_fits(&[0], 0));
    assert!(bitfield_fits(&[0xff], 8));
    assert!(!bitfield_fits(&[0xff, 0], 8));
    assert!(bitfield_fits(&[0xff, 0x80], 9));
    assert!(!bitfield_fits(&[0xff, 0x40], 9)); // piece 10 of 9
    assert!(!bitfield_fits(&[0xff], 9)); // too short
    assert!(bitfield_fits(&[0b1110_0000], 3));
    assert!(!bitfield_fits(&[0b1111_0000], 3));
    assert!(!bitfield_fits(&[0b0000_0001], 7));
    assert!(bitfield_fits(&[0b1111_1110], 7));
}

#[test]
fn ext_handshake_reads_a_libtorrent_dict() {
    let payload =
        b"d1:md11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei31235e1:pi6881e1:v14:libtorrent 2.0e";
    let shake = ExtHandshake::parse(payload).unwrap();
    assert_eq!(
        shake,
        ExtHandshake {
            ut_metadata: Some(2),
            ut_pex: Some(1),
            metadata_size: Some(31235),
            client: Some("libtorrent 2.0".into()),
            listen_port: Some(6881),
            reqq: None,
        }
    );
    assert_eq!(ExtHandshake::parse(&shake.encode()), Ok(shake));
}

#[test]
fn ext_handshake_encodes_sorted_keys() {
    let ours = ExtHandshake {
        ut_metadata: Some(UT_METADATA_ID),
        ut_pex: Some(UT_PEX_ID),
        metadata_size: Some(1000),
        client: Some("streme 0.1.0".into()),
        listen_port: Some(6881),
        reqq: Some(250),
    };
    assert_eq!(
        ours.encode(),
        b"d1:md11:ut_metadatai1e6:ut_pexi2ee13:metadata_sizei1000e1:pi6881e4:reqqi250e1:v12:streme 0.1.0e"
    );
    assert_eq!(ExtHandshake::default().encode(), b"d1:mdee");
}

#[test]
fn ext_handshake_disabled_ids_and_odd_values() {
    // 0 disables an extension; `v` is lossy and capped; unknown keys are ignored.
    let long = "x".repeat(100);
    let payload = format!("d1:md11:ut_metadatai0e6:ut_pexi3ee1:pi0e1:v100:{long}6:yourip4:abcde");
    let shake = ExtHandshake::parse(payload.as_bytes()).unwrap();
    assert_eq!(shake.ut_metadata, None);
    assert_eq!(shake.ut_pex, Some(3));
    assert_eq!(shake.listen_port, None);
    assert_eq!(shake.client.unwrap().chars().count(), 64);
    let lossy = ExtHandshake::parse(b"d1:v3:a\xffbe").unwrap();
    assert_eq!(lossy.client.as_deref(), Some("a\u{fffd}b"));
}

#[test]
fn ext_handshake_refuses_hostile_values() {
    let parse = |s: &str| ExtHandshake::parse(s.as_bytes());
    assert_eq!(
        parse("d13:metadata_sizei8388609ee"),
        Err(WireError::MetadataTooLarge { size: 8_388_609 })
    );
    assert_eq!(
        parse("d13:metadata_sizei-1ee"),
        Err(WireError::MetadataTooLarge { size: -1 })
    );
    assert_eq!(
        parse("d1:md11:ut_metadatai256eee"),
        Err(WireError::BadValue {
            key: "ut_metadata",
            value: 256
        })
    );
    assert_eq!(
        parse("d1:pi65536ee"),
        Err(WireError::BadValue {
            key: "p",
            value: 65536
        })
    );
    assert_eq!(parse("d1:m3:abce"), Err(WireError::WrongType("m")));
    assert_eq!(parse("d1:vi5ee"), Err(WireError::WrongType("v")));
    assert_eq!(parse("li1ee"), Err(WireError::NotADict));
    assert!(matches!(
        parse("d1:md11:ut_metadatai2e"),
        Err(WireError::BadBencode(_))
    ));
    assert!(matches!(parse(""), Err(WireError::BadBencode(_))));
    assert!(matches!(parse("d1:pi1eeXX"), Err(WireError::BadBencode(_))));
    // A string length one short (`13:` before 14 bytes) leaves `0e` after the dict.
    assert!(matches!(
        parse("d1:md6:ut_pexi1ee1:v13:libtorrent 2.0e"),
        Err(WireError::BadBencode(_))
    ));
}

#[test]
fn metadata_messages_round_trip_byte_exact() {
    let cases: [(MetadataMessage<'_>, &[u8]); 3] = [
        (
            MetadataMessage::Request { piece: 0 },
            b"d8:msg_typei0e5:piecei0ee",
        ),
        (
            MetadataMessage::Reject { piece: 3 },
            b"d8:msg_typei2e5:piecei3ee",
        ),
        (
            MetadataMessage::Data {
                piece: 1,
                total_size: 20000,
                data: b"the info dict bytes",
            },
            b"d8:msg_typei1e5:piecei1e10:total_sizei20000eethe info dict bytes",
        ),
    ];
    for (message, bytes) in cases {
        assert_eq!(message.encode(), bytes, "{message:?}");
        assert_eq!(MetadataMessage::parse(bytes), Ok(message));
    }
}

#[test]
fn metadata_data_keeps_the_trailing_piece_and_bounds_it() {
    // BEP 9's example order (unsorted keys, as some clients send) with a
    // piece that itself looks like bencode.
    let payload = b"d8:msg_typei1e10:total_sizei16385e5:piecei1eed5:evil!e";
    assert_eq!(
        MetadataMessage::parse(payload),
        Ok(MetadataMessage::Data {
            piece: 1,
            total_size: 16385,
            data: b"d5:evil!e",
        })
    );
    let mut long = b"d8:msg_typei1e5:piecei0e10:total_sizei40000ee".to_vec();
    long.extend(vec![0u8; METADATA_PIECE_LEN + 1]);
    assert_eq!(
        MetadataMessage::parse(&long),
        Err(WireError::MetadataPieceTooLong {
            len: METADATA_PIECE_LEN + 1
        })
    );
    assert_eq!(
        MetadataMessage::parse(b"d8:msg_typei1e5:piecei0e10:total_sizei99999999ee"),
        Err(WireError::MetadataTooLarge { size: 99_999_999 })
    );
}

#[test]
fn metadata_messages_refuse_hostile_dicts() {
    fn parse(s: &[u8]) -> Result<MetadataMessage<'_>, WireError> {
        MetadataMessage::parse(s)
    }
    assert_eq!(
        parse(b"d5:piecei0ee"),
        Err(WireError::MissingKey("msg_type"))
    );
    assert_eq!(
        parse(b"d8:msg_typei0ee"),
        Err(WireError::MissingKey("piece"))
    );
    assert_eq!(
        parse(b"d8:msg_typei1e5:piecei0ee"),
        Err(WireError::MissingKey("total_size"))
    );
    assert_eq!(
        parse(b"d8:msg_typei7e5:piecei0ee"),
        Err(WireError::UnknownMetadataType { msg_type: 7 })
    );
    assert_eq!(
        parse(b"d8:msg_typei0e5:piecei-1ee"),
        Err(WireError::BadValue {
            key: "piece",
            value: -1
        })
    );
    assert_eq!(
        parse(b"d8:msg_typei0e5:piecei0eexx"),
        Err(WireError::TrailingBytes { count: 2 })
    );
    assert_eq!(parse(b"i5e"), Err(WireError::NotADict));
    assert!(matches!(
        parse(b"d8:msg_typei0e5:piecei0"),
        Err(WireError::BadBencode(_))
    ));
    assert!(matches!(
        parse(b"d8:msg_type99999999999:"),
        Err(WireError::BadBencode(_))
    ));
}

#[test]
fn pex_reads_v4_and_v6() {
    let v4 = [10, 0, 0, 1, 0x1a, 0xe1, 192, 168, 1, 2, 0, 80];
    let v6 = [
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1,
    ];
    let dropped = [127, 0, 0, 1, 0, 2];
    // As libtorrent sends it: flags in `added.f`, every key present.
    let payload = [
        &b"d5:added12:"[..],
        &v4,
        b"7:added.f2:\x00\x10",
        b"6:added618:",
        &v6,
        b"7:dropped6:",
        &dropped,
        b"8:dropped60:e",
    ]
    .concat();
    let pex = Pex::parse(&payload).unwrap();
    let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
    assert_eq!(
        pex.added,
        vec![
            addr("10.0.0.1:6881"),
            addr("192.168.1.2:80"),
            addr("[2001:db8::1]:1")
        ]
    );
    assert_eq!(pex.dropped, vec![addr("127.0.0.1:2")]);
    let encoded = pex.encode();
    // Sorted keys; `added.f` and the empty `dropped6` are not written.
    let expected = [
        &b"d5:added12:"[..],
        &v4,
        b"6:added618:",
        &v6,
        b"7:dropped6:",
        &dropped,
        b"e",
    ]
    .concat();
    assert_eq!(encoded, expected);
    assert_eq!(Pex::parse(&encoded), Ok(pex));
    assert_eq!(Pex::default().encode(), b"d5:added0:7:dropped0:e");
    assert_eq!(Pex::parse(b"de"), Ok(Pex::default()));
}

#[test]
fn pex_caps_each_list_and_refuses_ragged_lists() {
    let many: Vec<SocketAddr> = (0..300u32)
        .map(|i| SocketAddr::from((Ipv4Addr::from(0x0a00_0000 + i), 7)))
        .collect();
    let pex = Pex {
        added: many.clone(),
        dropped: many.clone(),
    };
    let parsed = Pex::parse(&pex.encode()).unwrap();
    assert_eq!(parsed.added, many[..MAX_PEX_PEERS]);
    assert_eq!(parsed.dropped, many[..MAX_PEX_PEERS]);
    assert_eq!(
        Pex::parse(b"d5:added5:abcdee"),
        Err(WireError::BadCompactLength {
            key: "added",
            len: 5
        })
    );
    assert_eq!(
        Pex::parse(b"d8:dropped66:abcdefe"),
        Err(WireError::BadCompactLength {
            key: "dropped6",
            len: 6
        })
    );
    assert_eq!(
        Pex::parse(b"d5:addedi1ee"),
        Err(WireError::WrongType("added"))
    );
    assert!(matches!(
        Pex::parse(b"d5:added999999:"),
        Err(WireError::BadBencode(_))
    ));
}

/// The test vector printed in BEP 6.
#[test]
fn allowed_fast_set_matches_bep_6() {
    let ip = Ipv4Addr::new(80, 4, 4, 200);
    let hash = hash(0xaa);
    assert_eq!(
        allowed_fast_set(ip, &hash, 1313, 7),
        [1059, 431, 808, 1217, 287, 376, 1188]
    );
    assert_eq!(
        allowed_fast_set(ip, &hash, 1313, 9),
        [1059, 431, 808, 1217, 287, 376, 1188, 353, 508]
    );
    // The last octet is masked off.
    assert_eq!(
        allowed_fast_set(Ipv4Addr::new(80, 4, 4, 1), &hash, 1313, 9),
        allowed_fast_set(ip, &hash, 1313, 9)
    );
    // Fewer pieces than k: every piece, and no endless loop.
    let mut small = allowed_fast_set(ip, &hash, 3, 10);
    small.sort();
    assert_eq!(small, [0, 1, 2]);
    assert!(allowed_fast_set(ip, &hash, 0, 10).is_empty());
}

#[test]
fn errors_name_the_numbers() {
    let e = WireError::BadLength {
        id: 4,
        expected: 5,
        got: 9,
    };
    assert_eq!(
        e.to_string(),
        "peer wire: message id 4 has length 9, expected 5"
    );
    let e = WireError::TooLong {
        len: 1 << 30,
        max: MAX_MESSAGE_LEN,
    };
    assert!(e.to_string().contains("1073741824") && e.to_string().contains("104859"));
}
