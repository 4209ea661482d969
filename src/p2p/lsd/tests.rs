use super::*;

fn hash(b: u8) -> InfoHash {
    InfoHash([b; 20])
}

#[test]
fn bep14_message_round_trips_byte_exact() {
    let a = Announce {
        host: "239.192.152.143:6771".into(),
        port: 6881,
        info_hashes: vec![hash(0xab), hash(0x01)],
        cookie: Some("c00k1e".into()),
    };
    let bytes = a.encode();
    let expected = "BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\n\
        Infohash: abababababababababababababababababababab\r\n\
        Infohash: 0101010101010101010101010101010101010101\r\ncookie: c00k1e\r\n\r\n\r\n";
    assert_eq!(String::from_utf8(bytes.clone()).unwrap(), expected);
    assert_eq!(parse(&bytes), Ok(a));
}

#[test]
fn other_clients_spellings_are_accepted() {
    // libtorrent: upper-case hex, no cookie, one blank line only, extra headers.
    let m = b"BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort:51413\r\n\
        Infohash: ABABABABABABABABABABABABABABABABABABABAB\r\nX-Extra: whatever\r\n\r\n";
    let a = parse(m).unwrap();
    assert_eq!(a.port, 51413);
    assert_eq!(a.info_hashes, vec![hash(0xab)]);
    assert_eq!(a.cookie, None);
}

#[test]
fn hostile_messages_are_rejected() {
    let base =
        |extra: &str| format!("BT-SEARCH * HTTP/1.1\r\nHost: h\r\n{extra}\r\n\r\n",).into_bytes();
    let ih = "Infohash: abababababababababababababababababababab\r\n";
    assert_eq!(parse(&base(ih)), Err(LsdError::Missing("Port")));
    assert_eq!(
        parse(&base("Port: 1\r\n")),
        Err(LsdError::Missing("Infohash"))
    );
    for bad in ["0", "65536", "+1", "-1", "1x", ""] {
        assert_eq!(
            parse(&base(&format!("Port: {bad}\r\n{ih}"))),
            Err(LsdError::BadPort(bad.into())),
            "port {bad:?}"
        );
    }
    assert_eq!(
        parse(&base(&format!("Port: 1\r\nPort: 2\r\n{ih}"))),
        Err(LsdError::Duplicate("Port"))
    );
    assert_eq!(
        parse(&base("Port: 1\r\nInfohash: abab\r\n")),
        Err(LsdError::BadInfoHash("abab".into()))
    );
    let many: String = (0..21).map(|_| ih).collect();
    assert_eq!(
        parse(&base(&format!("Port: 1\r\n{many}"))),
        Err(LsdError::TooManyInfoHashes { count: 21, max: 20 })
    );
    let cookie = format!("Port: 1\r\n{ih}cookie: {}\r\n", "c".repeat(65));
    assert_eq!(
        parse(&base(&cookie)),
        Err(LsdError::CookieTooLong { len: 65, max: 64 })
    );
    // Syntax: wrong request line, bare LF, a header without a colon,
    // bytes after the blank line, too many headers, binary junk.
    let syntax = |m: &[u8]| assert!(matches!(parse(m), Err(LsdError::Syntax { .. })), "{m:?}");
    syntax(b"M-SEARCH * HTTP/1.1\r\nHost: h\r\n\r\n");
    syntax(b"BT-SEARCH * HTTP/1.1\nHost: h\n\n");
    syntax(b"BT-SEARCH * HTTP/1.1\r\nHost h\r\n\r\n");
    syntax(format!("BT-SEARCH * HTTP/1.1\r\nPort: 1\r\n{ih}\r\nGET / HTTP/1.1\r\n").as_bytes());
    syntax(b"BT-SEARCH * HTTP/1.1\r\n");
    let headers: String = (0..33).map(|i| format!("X{i}: y\r\n")).collect();
    syntax(format!("BT-SEARCH * HTTP/1.1\r\n{headers}\r\n").as_bytes());
    syntax(b"\x00\xff\r\n\r\n");
    assert_eq!(
        parse(&vec![b'a'; MAX_MESSAGE + 1]),
        Err(LsdError::TooLarge {
            len: MAX_MESSAGE + 1,
            max: MAX_MESSAGE
        })
    );
}

#[test]
fn random_mutations_never_panic_and_what_parses_round_trips() {
    let seed = Announce {
        host: "239.192.152.143:6771".into(),
        port: 6881,
        info_hashes: vec![hash(1)],
        cookie: Some("x".into()),
    }
    .encode();
    for _ in 0..20_000 {
        let mut m = seed.clone();
        for _ in 0..fastrand::usize(1..4) {
            let at = fastrand::usize(..m.len());
            match fastrand::u8(..3) {
                0 => m[at] = fastrand::u8(..),
                1 => {
                    m.remove(at);
                }
                _ => m.insert(at, fastrand::u8(..)),
            }
        }
        if let Ok(a) = parse(&m) {
            assert_eq!(parse(&a.encode()), Ok(a));
        }
    }
}
