use std::time::Duration;

use smol::channel;

use super::*;
use crate::format::template::{Placeholder, Template};
use crate::http::source::{sources_for, tests::torrent};
use crate::http::test_server::{ranged, response, Reply, Seen, Server};

/// Files a (10 bytes), a padding file (6), `dir/b c.bin` (20) and `c#.bin`
/// (5), pieces of 16: piece 0 is a + zeros, piece 1 is inside b, piece 2
/// is the end of b and all of c.
struct Fixture {
    meta: Metainfo,
    files: [(String, Vec<u8>); 3],
    content: Vec<u8>,
}

fn fixture() -> Fixture {
    let a: Vec<u8> = (1..=10).collect();
    let b: Vec<u8> = (100..120).collect();
    let c: Vec<u8> = (200..205).collect();
    let content = [a.clone(), vec![0; 6], b.clone(), c.clone()].concat();
    let meta = torrent(
        "show",
        &[
            (&["a.bin"], 10, false),
            (&[".pad", "6"], 6, true),
            (&["dir", "b c.bin"], 20, false),
            (&["c#.bin"], 5, false),
        ],
        16,
        false,
        &[],
        Some(&content),
    );
    let hash = meta.info_hash.to_hex();
    let files = [
        (format!("/{hash}/show/a.bin"), a),
        (format!("/{hash}/show/dir/b%20c.bin"), b),
        (format!("/{hash}/show/c%23.bin"), c),
    ];
    Fixture {
        meta,
        files,
        content,
    }
}

impl Fixture {
    fn source(&self, server: &Server) -> Source {
        let t = Template::parse(
            &format!("{}/{{hash}}/{{path}}", server.base),
            Placeholder::CONTENT,
        )
        .unwrap();
        sources_for(&self.meta, &[t], &[]).remove(0)
    }

    fn piece(&self, index: u32) -> Vec<u8> {
        let start = index as usize * 16;
        self.content[start..(start + 16).min(self.content.len())].to_vec()
    }
}

/// A piece as it comes down the channel.
type Piece = (u32, Vec<u8>);

fn client() -> Client {
    Client::new(Duration::from_millis(2000), 1024 * 1024).unwrap()
}

/// A pool whose buffers are full of junk, as reused buffers are: a piece
/// built in one must still come out exact (padding zeros included).
fn dirty_pool() -> PiecePool {
    let pool = PiecePool::default();
    for _ in 0..4 {
        pool.put(vec![0xee; 64]);
    }
    pool
}

/// Runs `fetch_pieces` against a one-slot channel (so every piece waits for
/// the receiver) and collects what arrives.
fn run(
    client: &Client,
    source: &Source,
    meta: &Metainfo,
    pieces: Range<u32>,
) -> (Result<(), SourceError>, Vec<Piece>) {
    let pool = dirty_pool();
    smol::block_on(async {
        let (tx, rx) = channel::bounded(1);
        let fetch = async {
            let result = fetch_pieces(client, source, meta, pieces, &pool, &tx).await;
            drop(tx);
            result
        };
        let collect = async {
            let mut got = Vec::new();
            while let Ok(piece) = rx.recv().await {
                got.push(piece);
            }
            got
        };
        futures_lite::future::zip(fetch, collect).await
    })
}

/// A server that serves the fixture's files correctly, with Range.
fn honest(f: &Fixture) -> Server {
    let files = f.files.clone();
    Server::start(
        move |req, _| match files.iter().find(|(p, _)| *p == req.path) {
            Some((_, file)) => Reply::Bytes(ranged(req, file)),
            None => Reply::Bytes(response("404 Not Found", &[], b"")),
        },
    )
}

#[test]
fn ranged_fetch_assembles_edge_pieces_and_never_asks_for_padding() {
    let f = fixture();
    let server = honest(&f);
    let (result, pieces) = run(&client(), &f.source(&server), &f.meta, 0..3);
    result.unwrap();
    let expected: Vec<(u32, Vec<u8>)> = (0..3).map(|i| (i, f.piece(i))).collect();
    assert_eq!(pieces, expected);
    let hash = f.meta.info_hash.to_hex();
    assert_eq!(
        server.seen(),
        [
            Seen {
                path: format!("/{hash}/show/a.bin"),
                range: Some((0, 9))
            },
            Seen {
                path: format!("/{hash}/show/dir/b%20c.bin"),
                range: Some((0, 19))
            },
            Seen {
                path: format!("/{hash}/show/c%23.bin"),
                range: Some((0, 4))
            },
        ]
    );
    // The pieces are the torrent's: each hashes to its piece hash.
    use sha1::{Digest, Sha1};
    for (i, piece) in &pieces {
        assert_eq!(
            <[u8; 20]>::from(Sha1::digest(piece)),
            f.meta.pieces[*i as usize]
        );
    }
}

#[test]
fn a_middle_piece_asks_only_for_its_bytes() {
    let f = fixture();
    let server = honest(&f);
    let (result, pieces) = run(&client(), &f.source(&server), &f.meta, 1..2);
    result.unwrap();
    assert_eq!(pieces, [(1, f.piece(1))]);
    let ranges: Vec<_> = server.seen().iter().map(|s| s.range).collect();
    assert_eq!(ranges, [Some((0, 15))]);
}

#[test]
fn a_source_that_ignores_range_is_read_from_the_start() {
    let f = fixture();
    let files = f.files.clone();
    let server = Server::start(move |req, _| {
        let file = &files.iter().find(|(p, _)| *p == req.path).unwrap().1;
        Reply::Bytes(response("200 OK", &[], file))
    });
    let source = f.source(&server);
    let (result, pieces) = run(&client(), &source, &f.meta, 2..3);
    result.unwrap();
    assert_eq!(pieces, [(2, f.piece(2))]);
    assert!(source.ignores_range.load(Ordering::Relaxed));
    // It was asked for bytes 16..19 of b; it sent all 20 and we skipped 16.
    assert_eq!(server.seen()[0].range, Some((16, 19)));
}

#[test]
fn busy_503_gives_retry_after_then_the_retry_succeeds() {
    let f = fixture();
    let files = f.files.clone();
    let server = Server::start(move |req, count| {
        if count == 0 {
            Reply::Bytes(response(
                "503 Service Unavailable",
                &["Retry-After: 1".into()],
                b"busy",
            ))
        } else {
            let file = &files.iter().find(|(p, _)| *p == req.path).unwrap().1;
            Reply::Bytes(ranged(req, file))
        }
    });
    let source = f.source(&server);
    let client = client();
    let (result, pieces) = run(&client, &source, &f.meta, 1..2);
    assert_eq!(
        result.unwrap_err(),
        SourceError::RetryAfter {
            url: format!(
                "{}/{}/show/dir/b%20c.bin",
                server.base,
                f.meta.info_hash.to_hex()
            ),
            status: 503,
            after: Duration::from_secs(1),
        }
    );
    assert!(pieces.is_empty());
    let (result, pieces) = run(&client, &source, &f.meta, 1..2);
    result.unwrap();
    assert_eq!(pieces, [(1, f.piece(1))]);
}

#[test]
fn a_cut_body_delivers_the_pieces_before_the_cut_then_truncated() {
    // One 40-byte file, pieces of 8; the server promises 40 and sends 20.
    let content: Vec<u8> = (0..40).collect();
    let meta = torrent(
        "f.bin",
        &[(&["f.bin"], 40, false)],
        8,
        true,
        &[],
        Some(&content),
    );
    let body = content.clone();
    let server = Server::start(move |_, _| {
        let mut bytes = response(
            "206 Partial Content",
            &["Content-Range: bytes 0-39/40".into()],
            &body,
        );
        bytes.truncate(bytes.len() - 20);
        Reply::Bytes(bytes)
    });
    let seeds = [format!("{}/f.bin", server.base)];
    let source = sources_for(&meta, &[], &seeds).remove(0);
    let (result, pieces) = run(&client(), &source, &meta, 0..5);
    assert_eq!(
        pieces,
        [(0, content[0..8].to_vec()), (1, content[8..16].to_vec())]
    );
    assert_eq!(
        result.unwrap_err(),
        SourceError::Truncated {
            url: seeds[0].clone(),
            got: 20,
            expected: 40
        }
    );
}

#[test]
fn missing_files_are_gone_and_other_statuses_are_classified() {
    let f = fixture();
    for (status, expect) in [
        ("404 Not Found", "Gone"),
        ("410 Gone", "Gone"),
        ("403 Forbidden", "Gone"),
        ("500 Internal Server Error", "ServerError"),
        ("429 Too Many Requests", "RetryAfter"),
        ("401 Unauthorized", "Refused"),
    ] {
        let server = Server::start(move |_, _| Reply::Bytes(response(status, &[], b"no")));
        let (result, pieces) = run(&client(), &f.source(&server), &f.meta, 0..1);
        let error = result.unwrap_err();
        assert!(pieces.is_empty());
        assert!(
            format!("{error:?}").starts_with(expect),
            "{status}: {error:?}"
        );
        assert!(error.url().starts_with(&server.base), "{error}");
        if let SourceError::RetryAfter { after, .. } = error {
            assert_eq!(after, crate::http::DEFAULT_RETRY_AFTER);
        }
    }
}

#[test]
fn a_206_for_other_bytes_is_refused() {
    let f = fixture();
    let server = Server::start(move |_, _| {
        Reply::Bytes(response(
            "206 Partial Content",
            &["Content-Range: bytes 1-10/10".into()],
            &[7; 10],
        ))
    });
    let (result, pieces) = run(&client(), &f.source(&server), &f.meta, 0..1);
    assert!(pieces.is_empty());
    match result.unwrap_err() {
        SourceError::WrongRange { asked, got, .. } => {
            assert_eq!(asked, "bytes=0-9");
            assert_eq!(got.as_deref(), Some("bytes 1-10/10"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_silent_body_is_cut_as_stalled() {
    let f = fixture();
    let server = Server::start(move |_, _| {
        let head = b"HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\n\
            Content-Range: bytes 0-9/10\r\n\r\n\x01\x02"
            .to_vec();
        Reply::Stall(head, Duration::from_secs(3))
    });
    let client = Client::new(Duration::from_millis(300), 1024).unwrap();
    let started = std::time::Instant::now();
    let (result, _) = run(&client, &f.source(&server), &f.meta, 0..1);
    assert!(
        matches!(result, Err(SourceError::Stalled { .. })),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// The stall timeout bounds each wait for a byte, not the body: a body that
/// keeps moving, however slowly, is read to its end. (isahc's body pipe wakes
/// a reader only once it holds what was asked for; the stall clock's wake-up
/// must still find the few bytes that came.)
#[test]
fn a_slow_body_that_keeps_moving_is_not_a_stall() {
    let f = fixture();
    let a = f.files[0].1.clone();
    let server = Server::start(move |_, _| {
        let head = b"HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\n\
            Content-Range: bytes 0-9/10\r\n\r\n"
            .to_vec();
        Reply::Trickle(head, a.clone(), Duration::from_millis(100))
    });
    // Ten bytes 100 ms apart: the body takes three timeouts, no wait takes one.
    let client = Client::new(Duration::from_millis(300), 1024).unwrap();
    let (result, pieces) = run(&client, &f.source(&server), &f.meta, 0..1);
    result.unwrap();
    assert_eq!(pieces, [(0, f.piece(0))]);
}

#[test]
fn content_range_must_match_exactly() {
    assert!(content_range_matches(Some("bytes 0-9/10"), 0, 9));
    assert!(content_range_matches(Some("bytes 5-9/*"), 5, 9));
    assert!(!content_range_matches(Some("bytes 0-9/"), 0, 9));
    assert!(!content_range_matches(Some("bytes 0-8/10"), 0, 9));
    assert!(!content_range_matches(Some("items 0-9/10"), 0, 9));
    assert!(!content_range_matches(None, 0, 9));
}
