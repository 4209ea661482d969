//! Hostile input is normal input: bad magnets, truncated and evil .torrent files (bad piece
//! hashes, path traversal, absolute paths, a bencode depth bomb) and absurd Range headers each
//! get a clear answer, and the server stays up after every one.

mod common;

use common::cached::{CachedVideo, ROOMY_QUOTA_MB};
use common::fixture::{self, Media};
use common::http::{self, multipart_parts, parse_content_range};
use common::server::{base_env, streme, Server};
use common::{sha256_hex, TestDir};
use serde_json::json;

/// A 400 whose JSON error mentions one of `keywords` (case-insensitive), then a healthy server.
fn assert_rejected(srv: &Server, what: &str, r: &http::Response, keywords: &[&str]) {
    assert_eq!(r.status, 400, "{what}: {}\n{}", r.head(), r.text());
    let error = r.error_text().to_ascii_lowercase();
    assert!(
        keywords
            .iter()
            .any(|k| error.contains(&k.to_ascii_lowercase())),
        "{what}: the error {error:?} names none of {keywords:?}"
    );
    http::assert_healthy(srv.addr(), what);
}

fn bstr(bytes: &[u8]) -> Vec<u8> {
    let mut out = format!("{}:", bytes.len()).into_bytes();
    out.extend_from_slice(bytes);
    out
}

fn bint(n: u64) -> Vec<u8> {
    format!("i{n}e").into_bytes()
}

/// `d4:info<info>e`: a torrent around a hand-made info dict.
fn torrent_around(info: &[u8]) -> Vec<u8> {
    [b"d4:info".as_slice(), info, b"e"].concat()
}

/// A single-file info dict (keys in sorted order, as bencode requires).
fn single_info(name: &[u8], length: u64, piece_length: u64, pieces: &[u8]) -> Vec<u8> {
    [
        b"d6:length".to_vec(),
        bint(length),
        b"4:name".to_vec(),
        bstr(name),
        b"12:piece length".to_vec(),
        bint(piece_length),
        b"6:pieces".to_vec(),
        bstr(pieces),
        b"e".to_vec(),
    ]
    .concat()
}

/// A multi-file info dict with one file at `path` (segments as given).
fn multi_info(path: &[&[u8]], length: u64) -> Vec<u8> {
    let segments: Vec<u8> = path.iter().flat_map(|s| bstr(s)).collect();
    let file = [
        b"d6:length".to_vec(),
        bint(length),
        b"4:pathl".to_vec(),
        segments,
        b"ee".to_vec(),
    ]
    .concat();
    let pieces = vec![0xabu8; 20 * length.div_ceil(16384) as usize];
    [
        b"d5:filesl".to_vec(),
        file,
        b"e".to_vec(),
        b"4:name".to_vec(),
        bstr(b"evil"),
        b"12:piece length".to_vec(),
        bint(16384),
        b"6:pieces".to_vec(),
        bstr(&pieces),
        b"e".to_vec(),
    ]
    .concat()
}

/// The evil torrents, each with the words its error may use. The words are specific to the
/// problem (the offending value, or the rule broken), so that a generic "bad torrent" message
/// does not pass.
fn evil_torrents() -> Vec<(&'static str, Vec<u8>, &'static [&'static str])> {
    vec![
        (
            "pieces length not a multiple of 20",
            torrent_around(&single_info(b"a.bin", 1000, 16384, &[7u8; 21])),
            &["multiple of 20", "21"],
        ),
        (
            "piece count not matching the length",
            torrent_around(&single_info(b"a.bin", 100_000, 16384, &[7u8; 20])),
            &["piece count", "piece hashes", "7"],
        ),
        (
            "a `..` path segment",
            torrent_around(&multi_info(&[b"..", b"evil.txt"], 1000)),
            &["..", "unsafe", "traversal"],
        ),
        (
            "an absolute path",
            torrent_around(&multi_info(&[b"/etc", b"passwd"], 1000)),
            &["/etc", "absolute", "unsafe"],
        ),
        (
            "an empty path segment",
            torrent_around(&multi_info(&[b"", b"passwd"], 1000)),
            &["empty", "unsafe", "segment"],
        ),
        (
            "a `..` name",
            torrent_around(&single_info(b"..", 1000, 16384, &[7u8; 20])),
            &["..", "unsafe"],
        ),
        (
            "a depth bomb of 100000 `l`",
            vec![b'l'; 100_000],
            &["depth", "nest", "deep"],
        ),
        (
            "not bencode at all",
            b"hello, I am not a torrent".to_vec(),
            &["bencode", "unexpected byte", "invalid"],
        ),
        (
            "an empty body",
            Vec::new(),
            &["empty", "end of input", "truncat", "eof"],
        ),
    ]
}

#[test]
fn bad_magnets_are_rejected_with_their_problem_named() {
    let dir = TestDir::new("bad_magnets");
    let srv = Server::start(&base_env(&dir.sub("cache"), ROOMY_QUOTA_MB));
    // The API may prefix every magnet error with the same words ("bad magnet or info
    // hash"), so each case looks for what only its own problem would say: mostly the
    // offending value echoed back.
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "wrong-length hash",
            "magnet:?xt=urn:btih:abcdef0123",
            &["abcdef0123"],
        ),
        (
            "bad base32",
            "magnet:?xt=urn:btih:11111111111111111111111111111111",
            &["11111111111111111111111111111111"],
        ),
        (
            "bad hex",
            "magnet:?xt=urn:btih:zz23456789abcdef0123456789abcdef01234567",
            &["zz23456789abcdef"],
        ),
        (
            "missing xt",
            "magnet:?dn=Some%20Show&tr=udp%3A%2F%2F127.0.0.1%3A1",
            &["xt", "btih"],
        ),
        (
            "not a magnet",
            "http://127.0.0.1/some.torrent",
            &["http://127.0.0.1/some.torrent", "not a magnet", "neither"],
        ),
        ("empty", "", &["empty", "\"\"", "neither"]),
    ];
    for (what, magnet, keywords) in cases {
        let r = http::post_json(srv.addr(), "/api/torrents", &json!({ "magnetUri": magnet }));
        assert_rejected(&srv, what, &r, keywords);
    }
    // The control: the well-formed forms of the same fields are accepted, so the rejections
    // above are about the input, not about the route.
    let hex = "0123456789abcdef0123456789abcdef01234567";
    let bare = http::post_json(srv.addr(), "/api/torrents", &json!({ "magnetUri": hex }));
    assert!(
        matches!(bare.status, 200 | 201),
        "a bare 40-hex hash is a magnet: {}",
        bare.head()
    );
    // The same kind of hash in base32 (Python's base64.b32encode of fedcba9876543210fedcba9876543210fedcba98).
    let base32 = "magnet:?xt=urn:btih:73OLVGDWKQZBB7W4XKMHMVBSCD7NZOUY";
    let b32 = http::post_json(srv.addr(), "/api/torrents", &json!({ "magnetUri": base32 }));
    assert!(
        matches!(b32.status, 200 | 201),
        "a base32 magnet: {}",
        b32.head()
    );
    assert_eq!(
        b32.json()["infoHash"],
        "fedcba9876543210fedcba9876543210fedcba98"
    );
}

#[test]
fn bad_json_bodies_are_rejected_with_their_problem_named() {
    let dir = TestDir::new("bad_json");
    let srv = Server::start(&base_env(&dir.sub("cache"), ROOMY_QUOTA_MB));
    let r = http::post(
        srv.addr(),
        "/api/torrents",
        "application/json",
        b"{\"magnetUri\": ",
    );
    assert_rejected(&srv, "truncated JSON", &r, &["json"]);
    let r = http::post_json(srv.addr(), "/api/torrents", &json!({ "infoHash": "1234" }));
    assert_rejected(&srv, "short info hash", &r, &["1234"]);
    let r = http::post_json(srv.addr(), "/api/torrents", &json!({ "colour": "blue" }));
    assert_rejected(
        &srv,
        "neither magnetUri nor infoHash",
        &r,
        &["magnetUri", "infoHash"],
    );
    let r = http::post_json(srv.addr(), "/api/torrents", &json!({ "magnetUri": 42 }));
    assert_rejected(&srv, "a number for magnetUri", &r, &["magnetUri", "string"]);
}

#[test]
fn truncated_torrent_is_rejected() {
    fixture::require_fixture_tools();
    let dir = TestDir::new("truncated_torrent");
    let file = fixture::random_file(&dir.sub("data").join("a.bin"), 200_000);
    let torrent = fixture::mktorrent(&file, &dir.path().join("a.torrent"), 15).bytes();
    let srv = Server::start(&base_env(&dir.sub("cache"), ROOMY_QUOTA_MB));
    for cut in [torrent.len() / 2, torrent.len() - 1, 1] {
        let r = http::post(
            srv.addr(),
            "/api/torrents",
            "application/x-bittorrent",
            &torrent[..cut],
        );
        assert_rejected(
            &srv,
            &format!("a torrent cut at {cut} of {} bytes", torrent.len()),
            &r,
            &[
                "end of input",
                "unexpected end",
                "past the end",
                "truncat",
                "eof",
                "incomplete",
            ],
        );
    }
}

#[test]
fn evil_torrents_are_rejected_over_http_and_by_the_cli() {
    let dir = TestDir::new("evil_torrents");
    let cache = dir.sub("cache");
    let env = base_env(&cache, ROOMY_QUOTA_MB);
    for (what, bytes, keywords) in evil_torrents() {
        let path = dir.path().join("evil.torrent");
        std::fs::write(&path, &bytes).unwrap();
        let path_text = path.display().to_string();
        let out = streme(&env, &["info", &path_text]);
        assert!(
            !out.status.success(),
            "streme info accepted {what}: {}",
            out.describe()
        );
        // The message may quote the file's path; its words must not count as the reason.
        let stderr = out
            .stderr
            .replace(&path_text, "<file>")
            .to_ascii_lowercase();
        assert!(
            keywords
                .iter()
                .any(|k| stderr.contains(&k.to_ascii_lowercase())),
            "streme info on {what}: stderr names none of {keywords:?}: {}",
            out.describe()
        );
    }
    let srv = Server::start(&env);
    for (what, bytes, keywords) in evil_torrents() {
        let r = http::post(
            srv.addr(),
            "/api/torrents",
            "application/x-bittorrent",
            &bytes,
        );
        assert_rejected(&srv, what, &r, keywords);
    }
    // Names from a torrent never became paths: nothing named after them exists anywhere
    // under the test dir.
    for name in ["evil.txt", "passwd", "evil"] {
        assert!(
            !find_named(dir.path(), name),
            "a file named {name} appeared under the test dir"
        );
    }
}

fn find_named(dir: &std::path::Path, name: &str) -> bool {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            e.file_name() == name
                || (e.file_type().map(|t| t.is_dir()).unwrap_or(false)
                    && find_named(&e.path(), name))
        })
}

/// What a Range header that a server "MAY ignore or reject" (RFC 9110 §14.2) may get: the
/// whole file as a 200, a 416 naming the length, or a 206 whose every byte is right. Never
/// wrong bytes, never a 5xx, never a hang.
fn assert_ignored_or_rejected(c: &CachedVideo, spec: &str) {
    let r = http::get(
        c.server.addr(),
        &c.proxy_path(),
        &[&format!("Range: {spec}")],
    );
    assert!(r.elapsed.as_secs() < 30, "{spec:.80}: took {:?}", r.elapsed);
    match r.status {
        200 => assert_eq!(
            sha256_hex(&r.body),
            sha256_hex(&c.source),
            "{spec:.80}: 200 with wrong bytes"
        ),
        416 => assert_eq!(
            r.header("Content-Range"),
            Some(format!("bytes */{}", c.len()).as_str()),
            "{spec:.80}"
        ),
        206 if r
            .header("Content-Type")
            .is_some_and(|t| t.starts_with("multipart/")) =>
        {
            for part in multipart_parts(&r) {
                assert!(
                    part.body == c.slice(part.range.0, part.range.1),
                    "{spec:.80}: part with wrong bytes"
                );
            }
        }
        206 => {
            let (first, last, len) = r
                .header("Content-Range")
                .and_then(parse_content_range)
                .unwrap_or_else(|| panic!("{spec:.80}: 206 without a Content-Range: {}", r.head()));
            assert_eq!(len, c.len(), "{spec:.80}");
            assert!(
                r.body == c.slice(first, last),
                "{spec:.80}: 206 with wrong bytes"
            );
        }
        _ => panic!("{spec:.80}: unexpected {}", r.head()),
    }
    http::assert_healthy(c.server.addr(), spec);
}

#[test]
fn absurd_range_headers_get_rfc_answers_and_the_server_stays_up() {
    let c = CachedVideo::start("absurd_ranges", Media::Mp4Faststart);
    let len = c.len();
    let addr = c.server.addr();
    let path = c.proxy_path();

    // A first position past any file, even past u64: unsatisfiable (nginx agrees). Ignoring
    // it with a 200 would send a player the whole file when it asked for the end.
    let r = http::get(addr, &path, &["Range: bytes=999999999999999999999-"]);
    assert_eq!(r.status, 416, "{}", r.head());
    assert_eq!(
        r.header("Content-Range"),
        Some(format!("bytes */{len}").as_str())
    );
    http::assert_healthy(addr, "a 21-digit first position");

    // A last position past u64: RFC 9110 would clamp it to the last byte (a 206 of the whole
    // file); servers that cannot parse it ignore or reject it (nginx answers 416). Any of
    // these, with the right bytes.
    assert_ignored_or_rejected(&c, "bytes=0-999999999999999999999");

    // A zero-length suffix selects nothing: unsatisfiable.
    let r = http::get(addr, &path, &["Range: bytes=-0"]);
    assert_eq!(r.status, 416, "{}", r.head());
    http::assert_healthy(addr, "bytes=-0");

    // An unknown range unit MUST be ignored: the whole file.
    let r = http::get(addr, &path, &["Range: items=0-1"]);
    assert_eq!(r.status, 200, "{}", r.head());
    assert_eq!(sha256_hex(&r.body), sha256_hex(&c.source));
    http::assert_healthy(addr, "items=0-1");

    // Invalid specs: ignored (200) or rejected (416).
    for spec in [
        "bytes=5-1",
        "bytes=",
        "bytes=abc-def",
        "bytes=1-2-3",
        "bytes=--5",
        "bytes= , ,",
    ] {
        assert_ignored_or_rejected(&c, spec);
    }
    // A thousand parts: the server may serve, ignore or reject them, but answers quickly.
    // They are short and overlapping so that the header (4 KB) stays under async-h1's 8 KiB
    // head limit: this is about the range parser, the limit is the next case.
    assert_ignored_or_rejected(&c, &format!("bytes={}", vec!["0-0"; 1000].join(",")));
    // A hundred distinct ranges, unsorted: served exactly, or ignored, or rejected.
    let scattered: Vec<String> = (0..100u64)
        .rev()
        .map(|i| format!("{}-{}", i * 1000, i * 1000 + 9))
        .collect();
    assert_ignored_or_rejected(&c, &format!("bytes={}", scattered.join(",")));
    // A header far past any sane size: any refusal (or a closed connection), then healthy.
    let huge = format!("Range: bytes={}", "0-0,".repeat(20_000));
    let raw = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{huge}\r\n\r\n");
    let answer = http::send_raw(addr, raw.as_bytes());
    assert!(
        !answer.starts_with(b"HTTP/1.1 2"),
        "an 80 KB Range header was served"
    );
    http::assert_healthy(addr, "an 80 KB Range header");
}

#[test]
fn unknown_and_malformed_stream_targets_get_clear_errors() {
    let c = CachedVideo::start("bad_targets", Media::Mp4Faststart);
    let addr = c.server.addr();
    let ih = c.torrent.info_hash.clone();
    let unknown = http::get(
        addr,
        "/stream/proxy/0123456789abcdef0123456789abcdef01234567",
        &[],
    );
    assert_eq!(unknown.status, 404, "{}", unknown.head());
    assert!(!unknown.error_text().is_empty());
    let r = http::get(addr, "/stream/proxy/not-a-hash", &[]);
    assert!(matches!(r.status, 400 | 404), "{}", r.head());
    assert!(!r.error_text().is_empty());
    let r = http::get(addr, &format!("/stream/{ih}/99"), &[]);
    assert!(
        matches!(r.status, 400 | 404),
        "file index out of range: {}",
        r.head()
    );
    assert!(
        r.error_text().contains("99"),
        "the error does not name the index: {}",
        r.text()
    );
    let r = http::get(addr, &format!("/stream/proxy/{ih}?fileIndex=abc"), &[]);
    assert!(
        matches!(r.status, 400 | 404),
        "a non-numeric file index: {}",
        r.head()
    );
    assert!(
        r.error_text().contains("abc"),
        "the error does not name the index: {}",
        r.text()
    );
    let r = http::get(
        addr,
        "/api/torrents/0123456789abcdef0123456789abcdef01234567",
        &[],
    );
    assert_eq!(r.status, 404, "{}", r.head());
    // Garbage instead of HTTP: any refusal or a closed connection, then healthy.
    let answer = http::send_raw(addr, b"\x00\x01\x02 GARBAGE\r\n\r\n");
    assert!(
        !answer.starts_with(b"HTTP/1.1 2"),
        "garbage got a success: {:?}",
        String::from_utf8_lossy(&answer)
    );
    http::assert_healthy(addr, "garbage bytes");
}
