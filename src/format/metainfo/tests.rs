//! Torrents are built with the encoder here; real mktorrent and
//! transmission-create files are checked by the integration tests and seed
//! the fuzz corpus.

use super::*;
use crate::format::bencode::BencodeErrorKind;

fn s(text: &str) -> Bencode {
    Bencode::Bytes(text.as_bytes().to_vec())
}

fn dict(entries: Vec<(&str, Bencode)>) -> Bencode {
    Bencode::Dict(
        entries
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v))
            .collect(),
    )
}

fn pieces(count: usize) -> Bencode {
    Bencode::Bytes((0..count * 20).map(|i| i as u8).collect())
}

fn file(path: &[&str], length: i64) -> Bencode {
    dict(vec![
        ("length", Bencode::Int(length)),
        ("path", Bencode::List(path.iter().map(|p| s(p)).collect())),
    ])
}

/// A multi-file info dict with 16-byte pieces.
fn multi(files: Vec<Bencode>, piece_count: usize) -> Bencode {
    dict(vec![
        ("name", s("show")),
        ("piece length", Bencode::Int(16)),
        ("pieces", pieces(piece_count)),
        ("files", Bencode::List(files)),
    ])
}

fn torrent(info: Bencode, extra: Vec<(&str, Bencode)>) -> Vec<u8> {
    let mut entries = extra;
    entries.push(("info", info));
    dict(entries).to_bytes()
}

fn parse_info(info: Bencode) -> Result<Metainfo, MetainfoError> {
    Metainfo::from_torrent_bytes(&torrent(info, vec![]))
}

#[test]
fn single_file_torrent_parses_with_hash_of_raw_info() {
    let info = dict(vec![
        ("length", Bencode::Int(40)),
        ("name", s("movie.mkv")),
        ("piece length", Bencode::Int(16)),
        ("pieces", pieces(3)),
        ("private", Bencode::Int(1)),
    ]);
    let info_bytes = info.to_bytes();
    let m =
        Metainfo::from_torrent_bytes(&torrent(info, vec![("announce", s("http://t/a"))])).unwrap();
    assert_eq!(m.info_hash, InfoHash(Sha1::digest(&info_bytes).into()));
    assert_eq!(m.info_bytes, info_bytes);
    assert_eq!(
        (m.display_name(), m.total_length, m.piece_count()),
        ("movie.mkv", 40, 3)
    );
    assert_eq!(
        (m.piece_size(0), m.piece_size(2), m.piece_size(3)),
        (16, 8, 0)
    );
    assert_eq!(
        m.files,
        vec![FileEntry {
            path: vec!["movie.mkv".into()],
            length: 40,
            offset: 0,
            padding: false
        }]
    );
    assert_eq!(m.trackers, vec![vec!["http://t/a".to_string()]]);
    assert!(m.private);
    assert_eq!(m.pieces[1][0], 20);
}

#[test]
fn multi_file_offsets_and_padding() {
    let pad = dict(vec![
        ("attr", s("p")),
        ("length", Bencode::Int(6)),
        ("path", Bencode::List(vec![s(".pad"), s("6")])),
    ]);
    let files = vec![
        file(&["a", "one.mp4"], 10),
        pad,
        file(&["_____padding_file_0"], 0),
        file(&["two.srt"], 20),
    ];
    let m = parse_info(multi(files, 3)).unwrap();
    let summary: Vec<_> = m
        .files
        .iter()
        .map(|f| (f.path.join("/"), f.offset, f.padding))
        .collect();
    assert_eq!(
        summary,
        [
            ("a/one.mp4".to_string(), 0, false),
            (".pad/6".to_string(), 10, true),
            ("_____padding_file_0".to_string(), 16, true),
            ("two.srt".to_string(), 16, false),
        ]
    );
    assert_eq!((m.total_length, m.files[0].file_name()), (36, "one.mp4"));
    assert!(!m.private);
}

#[test]
fn info_hash_covers_unsorted_keys_as_written() {
    let unsorted =
        b"d4:infod6:lengthi5e12:piece lengthi16e4:name1:x6:pieces20:aaaaaaaaaaaaaaaaaaaaee";
    let m = Metainfo::from_torrent_bytes(unsorted).unwrap();
    let raw = &unsorted[7..unsorted.len() - 1];
    assert_eq!(m.info_bytes, raw);
    assert_eq!(m.info_hash, InfoHash(Sha1::digest(raw).into()));
    let re_encoded = bencode::parse(raw).unwrap().to_bencode().to_bytes();
    assert_ne!(m.info_hash, InfoHash(Sha1::digest(&re_encoded).into()));
}

#[test]
fn announce_list_wins_and_is_deduplicated() {
    let tiers = Bencode::List(vec![
        Bencode::List(vec![s("udp://a"), s(" udp://b "), s("udp://a")]),
        Bencode::List(vec![s("udp://b"), s("")]),
        Bencode::List(vec![s("http://c"), Bencode::Int(3)]),
        s("not a tier"),
    ]);
    let bytes = torrent(
        multi(vec![file(&["x"], 1)], 1),
        vec![
            ("announce", s("http://lone")),
            ("announce-list", tiers),
            ("url-list", s("http://ws/")),
        ],
    );
    let m = Metainfo::from_torrent_bytes(&bytes).unwrap();
    assert_eq!(
        m.trackers,
        vec![
            vec!["udp://a".to_string(), "udp://b".into()],
            vec!["http://c".into()]
        ]
    );
    assert_eq!(m.web_seeds, vec!["http://ws/".to_string()]);

    let seeds = Bencode::List(vec![s("http://1/"), s("http://2/"), s("http://1/")]);
    let bytes = torrent(multi(vec![file(&["x"], 1)], 1), vec![("url-list", seeds)]);
    let m = Metainfo::from_torrent_bytes(&bytes).unwrap();
    assert_eq!(
        m.web_seeds,
        vec!["http://1/".to_string(), "http://2/".into()]
    );
    assert!(m.trackers.is_empty());
}

#[test]
fn to_torrent_bytes_keeps_the_info_hash() {
    let unsorted =
        b"d4:infod6:lengthi5e12:piece lengthi16e4:name1:x6:pieces20:aaaaaaaaaaaaaaaaaaaaee";
    let mut m = Metainfo::from_torrent_bytes(unsorted).unwrap();
    m.trackers = vec![
        vec!["udp://a".into(), "udp://b".into()],
        vec!["http://c".into()],
    ];
    m.web_seeds = vec!["http://ws/".into()];
    let again = Metainfo::from_torrent_bytes(&m.to_torrent_bytes()).unwrap();
    assert_eq!(again.info_hash, m.info_hash);
    assert_eq!(again.info_bytes, m.info_bytes);
    assert_eq!((again.trackers, again.web_seeds), (m.trackers, m.web_seeds));
}

#[test]
fn from_info_bytes_takes_trackers_from_outside() {
    let info = multi(vec![file(&["x"], 17)], 2).to_bytes();
    let trackers = vec![vec!["udp://a".into(), "udp://a".into()], vec![]];
    let m = Metainfo::from_info_bytes(&info, trackers, vec!["http://w/".into()]).unwrap();
    assert_eq!(m.info_hash, InfoHash(Sha1::digest(&info).into()));
    assert_eq!(
        (m.trackers, m.web_seeds),
        (
            vec![vec!["udp://a".to_string()]],
            vec!["http://w/".to_string()]
        )
    );
    let err = Metainfo::from_info_bytes(b"i1e", vec![], vec![]).unwrap_err();
    assert_eq!(
        err,
        MetainfoError::WrongType {
            key: "info",
            expected: "a dict"
        }
    );
}

#[test]
fn pieces_must_match_the_length() {
    let mut info = multi(vec![file(&["x"], 40)], 3);
    if let Bencode::Dict(d) = &mut info {
        d.insert(b"pieces".to_vec(), Bencode::Bytes(vec![0; 59]));
    }
    assert_eq!(
        parse_info(info).unwrap_err(),
        MetainfoError::PiecesLength { len: 59 }
    );
    let err = parse_info(multi(vec![file(&["x"], 40)], 2)).unwrap_err();
    assert_eq!(
        err,
        MetainfoError::PieceCount {
            expected: 3,
            got: 2
        }
    );
    let err = parse_info(multi(vec![file(&["x"], 32)], 3)).unwrap_err();
    assert_eq!(
        err,
        MetainfoError::PieceCount {
            expected: 2,
            got: 3
        }
    );
}

#[test]
fn piece_length_must_be_sane() {
    for bad in [0, -16, MAX_PIECE_LENGTH as i64 + 1] {
        let mut info = multi(vec![file(&["x"], 1)], 1);
        if let Bencode::Dict(d) = &mut info {
            d.insert(b"piece length".to_vec(), Bencode::Int(bad));
        }
        assert_eq!(
            parse_info(info).unwrap_err(),
            MetainfoError::PieceLength { value: bad }
        );
    }
}

#[test]
fn unsafe_paths_are_refused() {
    let cases: [&[&str]; 7] = [
        &["..", "etc", "passwd"],
        &["/etc/passwd"],
        &["a", "", "b"],
        &["."],
        &["a\\..\\b"],
        &["nul\0"],
        &[],
    ];
    for path in cases {
        let err = parse_info(multi(vec![file(path, 1)], 1)).unwrap_err();
        assert_eq!(
            err,
            MetainfoError::UnsafePath {
                path: path.join("/")
            },
            "{path:?}"
        );
    }
    for name in ["..", "a/b", ""] {
        let info = dict(vec![
            ("length", Bencode::Int(1)),
            ("name", s(name)),
            ("piece length", Bencode::Int(16)),
            ("pieces", pieces(1)),
        ]);
        assert_eq!(
            parse_info(info).unwrap_err(),
            MetainfoError::UnsafePath { path: name.into() }
        );
    }
}

#[test]
fn non_utf8_names_need_a_utf8_twin() {
    let latin1 = Bencode::Bytes(b"caf\xe9".to_vec());
    let info = |twin: Option<&str>| {
        let mut entries = vec![
            ("length", Bencode::Int(1)),
            ("name", latin1.clone()),
            ("piece length", Bencode::Int(16)),
            ("pieces", pieces(1)),
        ];
        entries.extend(twin.map(|t| ("name.utf-8", s(t))));
        dict(entries)
    };
    let err = parse_info(info(None)).unwrap_err();
    assert_eq!(
        err,
        MetainfoError::NotUtf8 {
            key: "name",
            lossy: "caf\u{fffd}".into()
        }
    );
    assert_eq!(parse_info(info(Some("café"))).unwrap().name, "café");

    let bad_path = dict(vec![
        ("length", Bencode::Int(1)),
        ("path", Bencode::List(vec![latin1.clone()])),
    ]);
    assert!(matches!(
        parse_info(multi(vec![bad_path], 1)),
        Err(MetainfoError::NotUtf8 { key: "path", .. })
    ));
    let twin = dict(vec![
        ("length", Bencode::Int(1)),
        ("path", Bencode::List(vec![latin1])),
        ("path.utf-8", Bencode::List(vec![s("é.mp4")])),
    ]);
    assert_eq!(
        parse_info(multi(vec![twin], 1)).unwrap().files[0].path,
        ["é.mp4"]
    );
}

#[test]
fn file_lists_are_checked() {
    assert_eq!(
        parse_info(multi(vec![], 0)).unwrap_err(),
        MetainfoError::NoFiles
    );
    let err = parse_info(multi(vec![file(&["a"], 1), file(&["b"], -1)], 1)).unwrap_err();
    assert_eq!(
        err,
        MetainfoError::FileLength {
            index: 1,
            value: -1
        }
    );
    let huge = vec![
        file(&["a"], i64::MAX),
        file(&["b"], i64::MAX),
        file(&["c"], 2),
    ];
    assert_eq!(
        parse_info(multi(huge, 1)).unwrap_err(),
        MetainfoError::TotalLengthOverflow
    );
    assert_eq!(
        parse_info(multi(vec![file(&["a"], 0)], 0)).unwrap_err(),
        MetainfoError::NoContent
    );

    let mut both = multi(vec![file(&["a"], 1)], 1);
    if let Bencode::Dict(d) = &mut both {
        d.insert(b"length".to_vec(), Bencode::Int(1));
    }
    assert_eq!(parse_info(both).unwrap_err(), MetainfoError::LengthAndFiles);
    let neither = dict(vec![
        ("name", s("x")),
        ("piece length", Bencode::Int(16)),
        ("pieces", pieces(1)),
    ]);
    assert_eq!(
        parse_info(neither).unwrap_err(),
        MetainfoError::Missing("length or files")
    );
}

#[test]
fn broken_containers_are_refused_with_the_reason() {
    let err = Metainfo::from_torrent_bytes(b"d4:infod4:name").unwrap_err();
    assert!(matches!(
        err,
        MetainfoError::Bencode(BencodeError {
            kind: BencodeErrorKind::Truncated,
            pos: 14
        })
    ));
    assert_eq!(
        err.to_string(),
        "torrent: bencode: unexpected end of input at byte 14"
    );
    assert_eq!(
        Metainfo::from_torrent_bytes(b"d1:xi1ee").unwrap_err(),
        MetainfoError::Missing("info")
    );
    assert_eq!(
        Metainfo::from_torrent_bytes(b"le").unwrap_err(),
        MetainfoError::WrongType {
            key: "torrent",
            expected: "a dict"
        }
    );
    let depth_bomb = vec![b'l'; 100_000];
    assert!(matches!(
        Metainfo::from_torrent_bytes(&depth_bomb),
        Err(MetainfoError::Bencode(BencodeError {
            kind: BencodeErrorKind::TooDeep { .. },
            ..
        }))
    ));
}

/// A BEP 52 v2-only info dict: `file tree` and `meta version`, no `pieces`.
fn v2_only_info() -> Bencode {
    let leaf = dict(vec![(
        "",
        dict(vec![
            ("length", Bencode::Int(40)),
            ("pieces root", Bencode::Bytes(vec![7; 32])),
        ]),
    )]);
    dict(vec![
        ("file tree", dict(vec![("movie.mkv", leaf)])),
        ("meta version", Bencode::Int(2)),
        ("name", s("movie.mkv")),
        ("piece length", Bencode::Int(16384)),
    ])
}

#[test]
fn v2_only_torrent_is_named_with_its_sha256_hash() {
    let info = v2_only_info();
    let expected: String = Sha256::digest(info.to_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let err = parse_info(info).unwrap_err();
    assert_eq!(
        err,
        MetainfoError::V2Only {
            v2_hash: expected.clone()
        }
    );
    let text = err.to_string();
    assert!(
        text.contains("BitTorrent v2-only torrents are not supported yet"),
        "{text}"
    );
    assert!(text.contains(&expected), "{text}");
}

#[test]
fn hybrid_torrent_parses_by_its_v1_hash() {
    // A hybrid carries both: v1 `length`/`pieces` and v2 `file tree`.
    let Bencode::Dict(mut info) = v2_only_info() else {
        unreachable!()
    };
    info.insert(b"length".to_vec(), Bencode::Int(40));
    info.insert(b"piece length".to_vec(), Bencode::Int(16));
    info.insert(b"pieces".to_vec(), pieces(3));
    let info = Bencode::Dict(info);
    let raw = info.to_bytes();
    let m = parse_info(info).unwrap();
    assert_eq!(m.info_hash, InfoHash(Sha1::digest(&raw).into()));
    assert_eq!(m.piece_count(), 3);
}

#[test]
fn missing_pieces_without_v2_marks_is_still_missing_pieces() {
    let info = dict(vec![
        ("length", Bencode::Int(40)),
        ("name", s("movie.mkv")),
        ("piece length", Bencode::Int(16)),
    ]);
    assert_eq!(
        parse_info(info).unwrap_err(),
        MetainfoError::Missing("pieces")
    );
}
