//! Streaming from the cache tier: torrents made by mktorrent and transmission-create are
//! imported with `streme import`, then served over HTTP with RFC 9110 range semantics, and
//! every byte is compared with the source file.

mod common;

use common::cached::{CachedVideo, PIECE_LEN, PIECE_LOG2, ROOMY_QUOTA_MB};
use common::fixture::{self, Media};
use common::http::{self, multipart_parts};
use common::server::{self, base_env, Server};
use common::{sha256_hex, Rng, TestDir};

/// `bytes=first-last` must come back as a 206 holding exactly those source bytes.
fn assert_range(c: &CachedVideo, path: &str, first: u64, last: u64) {
    let range = format!("Range: bytes={first}-{last}");
    let r = http::get(c.server.addr(), path, &[&range]);
    assert_eq!(r.status, 206, "{range}: {}", r.head());
    assert_eq!(
        r.header("Content-Range"),
        Some(format!("bytes {first}-{last}/{}", c.len()).as_str()),
        "{range}"
    );
    assert_eq!(
        r.header("Content-Length"),
        Some((last - first + 1).to_string().as_str()),
        "{range}"
    );
    assert!(r.complete, "{range}: body cut short");
    assert!(
        r.body == c.slice(first, last),
        "{range}: served bytes differ from the source"
    );
}

#[test]
fn import_of_single_file_mp4_verifies_every_piece() {
    let c = CachedVideo::start("import_single", Media::Mp4IndexAtEnd);
    let pieces = c.len().div_ceil(PIECE_LEN);
    assert_eq!(
        c.imported.info_hash, c.torrent.info_hash,
        "import names another info hash"
    );
    assert_eq!(c.imported.total, pieces);
    assert_eq!(c.imported.verified, pieces);
}

#[test]
fn full_get_is_byte_exact_and_advertises_ranges() {
    let c = CachedVideo::start("full_get", Media::Mp4IndexAtEnd);
    let r = http::get(c.server.addr(), &c.proxy_path(), &[]);
    assert_eq!(r.status, 200, "{}", r.head());
    assert_eq!(
        r.header("Content-Length"),
        Some(c.len().to_string().as_str())
    );
    assert_eq!(r.header("Accept-Ranges"), Some("bytes"));
    assert_eq!(r.header("Content-Type"), Some("video/mp4"));
    let etag = r.header("ETag").expect("no ETag");
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "ETag is not strong: {etag}"
    );
    assert!(r.complete);
    assert_eq!(sha256_hex(&r.body), sha256_hex(&c.source));
}

#[test]
fn head_sends_length_without_body() {
    let c = CachedVideo::start("head", Media::Mp4IndexAtEnd);
    let r = http::head(c.server.addr(), &c.proxy_path(), &[]);
    assert_eq!(r.status, 200, "{}", r.head());
    assert_eq!(
        r.header("Content-Length"),
        Some(c.len().to_string().as_str())
    );
    assert_eq!(r.header("Accept-Ranges"), Some("bytes"));
    assert_eq!(r.header("Content-Type"), Some("video/mp4"));
    // The connection must not carry body bytes after a HEAD: the next request on a fresh
    // connection still works and the server is healthy.
    http::assert_healthy(c.server.addr(), "HEAD");
    let ranged = http::head(c.server.addr(), &c.proxy_path(), &["Range: bytes=10-19"]);
    assert_eq!(ranged.status, 206, "{}", ranged.head());
    assert_eq!(
        ranged.header("Content-Range"),
        Some(format!("bytes 10-19/{}", c.len()).as_str())
    );
    assert_eq!(ranged.header("Content-Length"), Some("10"));
}

#[test]
fn random_ranges_are_byte_exact() {
    let c = CachedVideo::start("random_ranges", Media::Mp4IndexAtEnd);
    let path = c.proxy_path();
    let len = c.len();
    // Edges first: the first and last byte, and ranges that straddle piece boundaries.
    assert_range(&c, &path, 0, 0);
    assert_range(&c, &path, len - 1, len - 1);
    assert_range(&c, &path, PIECE_LEN - 1, PIECE_LEN);
    assert_range(&c, &path, PIECE_LEN * 3 - 100, PIECE_LEN * 5 + 100);
    let seed = 0x5eed_0001;
    println!("random range seed {seed:#x}");
    let mut rng = Rng::new(seed);
    for _ in 0..60 {
        let first = rng.below(len);
        let span = 1 + rng.below((len - first).min(PIECE_LEN * 8));
        assert_range(&c, &path, first, first + span - 1);
    }
}

#[test]
fn range_end_past_eof_is_clamped_to_the_last_byte() {
    let c = CachedVideo::start("range_clamped", Media::Mp4IndexAtEnd);
    let len = c.len();
    let r = http::get(
        c.server.addr(),
        &c.proxy_path(),
        &[&format!("Range: bytes={}-{}", len - 10, len + 1000)],
    );
    assert_eq!(r.status, 206, "{}", r.head());
    assert_eq!(
        r.header("Content-Range"),
        Some(format!("bytes {}-{}/{len}", len - 10, len - 1).as_str())
    );
    assert!(r.body == c.slice(len - 10, len - 1));
}

#[test]
fn range_suffix_returns_last_bytes() {
    let c = CachedVideo::start("range_suffix", Media::Mp4IndexAtEnd);
    let len = c.len();
    let r = http::get(c.server.addr(), &c.proxy_path(), &["Range: bytes=-500"]);
    assert_eq!(r.status, 206, "{}", r.head());
    assert_eq!(
        r.header("Content-Range"),
        Some(format!("bytes {}-{}/{len}", len - 500, len - 1).as_str())
    );
    assert!(r.body == c.slice(len - 500, len - 1));
    // A suffix longer than the file is the whole file (RFC 9110 §14.1.3).
    let whole = http::get(
        c.server.addr(),
        &c.proxy_path(),
        &[&format!("Range: bytes=-{}", len + 7)],
    );
    assert_eq!(whole.status, 206, "{}", whole.head());
    assert_eq!(
        whole.header("Content-Range"),
        Some(format!("bytes 0-{}/{len}", len - 1).as_str())
    );
    assert_eq!(sha256_hex(&whole.body), sha256_hex(&c.source));
}

#[test]
fn range_open_ended_returns_to_the_end() {
    let c = CachedVideo::start("range_open", Media::Mp4IndexAtEnd);
    let len = c.len();
    let first = len / 2 + 123;
    let r = http::get(
        c.server.addr(),
        &c.proxy_path(),
        &[&format!("Range: bytes={first}-")],
    );
    assert_eq!(r.status, 206, "{}", r.head());
    assert_eq!(
        r.header("Content-Range"),
        Some(format!("bytes {first}-{}/{len}", len - 1).as_str())
    );
    assert!(r.complete);
    assert!(r.body == c.slice(first, len - 1));
}

#[test]
fn range_past_eof_is_416() {
    let c = CachedVideo::start("range_416", Media::Mp4IndexAtEnd);
    let len = c.len();
    for spec in [
        format!("bytes={len}-"),
        format!("bytes={}-{}", len + 5, len + 10),
    ] {
        let r = http::get(
            c.server.addr(),
            &c.proxy_path(),
            &[&format!("Range: {spec}")],
        );
        assert_eq!(r.status, 416, "{spec}: {}", r.head());
        assert_eq!(
            r.header("Content-Range"),
            Some(format!("bytes */{len}").as_str()),
            "{spec}"
        );
    }
    http::assert_healthy(c.server.addr(), "416");
}

#[test]
fn multiple_ranges_return_multipart_byteranges() {
    let c = CachedVideo::start("multipart", Media::Mp4IndexAtEnd);
    let len = c.len();
    let r = http::get(
        c.server.addr(),
        &c.proxy_path(),
        &["Range: bytes=0-99,40000-70000,-100"],
    );
    assert_eq!(r.status, 206, "{}", r.head());
    assert!(r.complete);
    let parts = multipart_parts(&r);
    let expected = [(0, 99), (40000, 70000), (len - 100, len - 1)];
    assert_eq!(
        parts.len(),
        expected.len(),
        "parts: {:?}",
        parts.iter().map(|p| p.range).collect::<Vec<_>>()
    );
    for (part, (first, last)) in parts.iter().zip(expected) {
        assert_eq!(part.range, (first, last, len));
        assert_eq!(part.content_type.as_deref(), Some("video/mp4"));
        assert!(
            part.body == c.slice(first, last),
            "part {first}-{last} differs from the source"
        );
    }
}

#[test]
fn if_range_with_matching_etag_gives_206_and_other_etag_gives_200() {
    let c = CachedVideo::start("if_range", Media::Mp4IndexAtEnd);
    let etag = http::head(c.server.addr(), &c.proxy_path(), &[])
        .header("ETag")
        .expect("no ETag")
        .to_string();
    let matching = http::get(
        c.server.addr(),
        &c.proxy_path(),
        &["Range: bytes=100-199", &format!("If-Range: {etag}")],
    );
    assert_eq!(matching.status, 206, "{}", matching.head());
    assert!(matching.body == c.slice(100, 199));
    let other = http::get(
        c.server.addr(),
        &c.proxy_path(),
        &["Range: bytes=100-199", "If-Range: \"not-the-etag\""],
    );
    assert_eq!(other.status, 200, "{}", other.head());
    assert_eq!(sha256_hex(&other.body), sha256_hex(&c.source));
}

#[test]
fn both_stream_routes_serve_the_same_file() {
    let c = CachedVideo::start("routes", Media::Mp4IndexAtEnd);
    let ih = &c.torrent.info_hash;
    for path in [
        format!("/stream/proxy/{ih}?fileIndex=0"),
        format!("/stream/{ih}/0"),
        format!("/stream/{ih}/0/movie.mp4"),
    ] {
        let r = http::get(c.server.addr(), &path, &["Range: bytes=1000-65999"]);
        assert_eq!(r.status, 206, "{path}: {}", r.head());
        assert_eq!(r.header("Content-Type"), Some("video/mp4"), "{path}");
        assert!(r.body == c.slice(1000, 65999), "{path}: bytes differ");
    }
}

#[test]
fn cors_allows_any_origin_and_preflight_exposes_range_headers() {
    let c = CachedVideo::start("cors", Media::Mp4IndexAtEnd);
    let r = http::get(
        c.server.addr(),
        &c.proxy_path(),
        &["Origin: http://player.example", "Range: bytes=0-9"],
    );
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("*"),
        "{}",
        r.head()
    );
    let preflight = http::options(
        c.server.addr(),
        &c.proxy_path(),
        &[
            "Origin: http://player.example",
            "Access-Control-Request-Method: GET",
            "Access-Control-Request-Headers: range",
        ],
    );
    assert!(
        (200..300).contains(&preflight.status),
        "{}",
        preflight.head()
    );
    assert_eq!(
        preflight.header("Access-Control-Allow-Origin"),
        Some("*"),
        "{}",
        preflight.head()
    );
    let methods = preflight
        .header("Access-Control-Allow-Methods")
        .unwrap_or_default();
    assert!(
        methods.contains("GET"),
        "preflight does not allow GET: {}",
        preflight.head()
    );
    for response in [&r, &preflight] {
        let exposed = response
            .header("Access-Control-Expose-Headers")
            .unwrap_or_default()
            .to_ascii_lowercase();
        for header in ["content-range", "content-length", "accept-ranges"] {
            assert!(
                exposed.contains(header),
                "{header} not exposed: {}",
                response.head()
            );
        }
    }
}

#[test]
fn dlna_headers_are_sent() {
    let c = CachedVideo::start("dlna", Media::Mp4IndexAtEnd);
    let r = http::get(c.server.addr(), &c.proxy_path(), &["Range: bytes=0-9"]);
    assert_eq!(
        r.header("transferMode.dlna.org"),
        Some("Streaming"),
        "{}",
        r.head()
    );
    let features = r.header("contentFeatures.dlna.org").unwrap_or_default();
    assert!(
        features.contains("DLNA.ORG_OP="),
        "contentFeatures.dlna.org: {features:?}"
    );
}

#[test]
fn stream_request_logs_the_hybrid_cache_hit() {
    let c = CachedVideo::start("hybrid_log", Media::Mp4IndexAtEnd);
    let r = http::get(c.server.addr(), &c.proxy_path(), &["Range: bytes=0-9"]);
    assert_eq!(r.status, 206);
    let ih = &c.torrent.info_hash;
    let getting = format!("[Hybrid] Getting stream for {ih}");
    assert!(
        c.server
            .wait_for_log(&getting, std::time::Duration::from_secs(10)),
        "no {getting:?} log"
    );
    assert!(c
        .server
        .wait_for_log("[Hybrid] Cache hit", std::time::Duration::from_secs(10)));
}

#[test]
fn multi_file_mkv_torrent_selects_and_streams_the_video() {
    fixture::require_fixture_tools();
    let dir = TestDir::new("multi_file");
    let data = dir.sub("downloads");
    let content = fixture::multi_file_content(&data, "Show");
    let torrent = fixture::mktorrent(&content.root, &dir.path().join("show.torrent"), PIECE_LOG2);
    let env = base_env(&dir.sub("cache"), ROOMY_QUOTA_MB);
    // DATA_PATH is the download dir that holds `Show/`, as a BitTorrent client keeps it.
    let imported = server::import(&env, &torrent.file, &data);
    assert_eq!(imported.info_hash, torrent.info_hash);
    assert_eq!(
        imported.verified, imported.total,
        "not every piece verified: {imported:?}"
    );
    let srv = Server::start(&env);

    let added = http::post(
        srv.addr(),
        "/api/torrents",
        "application/x-bittorrent",
        &torrent.bytes(),
    );
    assert!(
        matches!(added.status, 200 | 201),
        "{} {}",
        added.head(),
        added.text()
    );
    let json = added.json();
    assert_eq!(json["infoHash"], torrent.info_hash.as_str());
    assert_eq!(json["name"], "Show");
    let files = json["files"].as_array().expect("files is an array");
    assert_eq!(files.len(), 3, "files: {files:?}");
    let index_of = |suffix: &str| -> u64 {
        files
            .iter()
            .find(|f| file_path(&f["path"]).ends_with(suffix))
            .unwrap_or_else(|| panic!("no file ending in {suffix}: {files:?}"))["index"]
            .as_u64()
            .expect("index is a number")
    };
    let (video, sample, notes) = (
        index_of("video.mkv"),
        index_of("sample.txt"),
        index_of("extras/notes.txt"),
    );
    assert_eq!(
        json["selectedFile"].as_u64(),
        Some(video),
        "the video is the chosen file"
    );
    let stream_url = json["streamUrl"].as_str().expect("streamUrl");
    assert!(
        stream_url.contains(&torrent.info_hash),
        "streamUrl {stream_url}"
    );

    let mkv = std::fs::read(&content.video).unwrap();
    let r = http::get(
        srv.addr(),
        &format!("/stream/{}/{video}", torrent.info_hash),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.head());
    assert_eq!(r.header("Content-Type"), Some("video/x-matroska"));
    assert_eq!(sha256_hex(&r.body), sha256_hex(&mkv));
    // The proxy route without fileIndex serves the chosen file.
    let r = http::get(
        srv.addr(),
        &format!("/stream/proxy/{}", torrent.info_hash),
        &["Range: bytes=5000-90000"],
    );
    assert_eq!(r.status, 206, "{}", r.head());
    assert!(r.body == mkv[5000..=90000]);
    let mut rng = Rng::new(0x5eed_0002);
    let len = mkv.len() as u64;
    for _ in 0..20 {
        let first = rng.below(len);
        let last = (first + rng.below(PIECE_LEN * 4)).min(len - 1);
        let r = http::get(
            srv.addr(),
            &format!("/stream/{}/{video}/video.mkv", torrent.info_hash),
            &[&format!("Range: bytes={first}-{last}")],
        );
        assert_eq!(r.status, 206, "{}", r.head());
        assert!(
            r.body == mkv[first as usize..=last as usize],
            "mkv bytes {first}-{last} differ"
        );
    }
    // The other files are reachable by index, byte-exact, across piece boundaries shared
    // with their neighbours.
    for (index, path) in [(sample, &content.sample), (notes, &content.notes)] {
        let r = http::get(
            srv.addr(),
            &format!("/stream/proxy/{}?fileIndex={index}", torrent.info_hash),
            &[],
        );
        assert_eq!(r.status, 200, "{}", r.head());
        assert!(
            r.body == std::fs::read(path).unwrap(),
            "file {index} differs from {}",
            path.display()
        );
    }
}

#[test]
fn transmission_create_torrent_imports_from_the_file_itself_and_streams() {
    fixture::require_fixture_tools();
    let dir = TestDir::new("transmission");
    let data = dir.sub("data");
    let video = fixture::video(&data.join("clip.mp4"), Media::Mp4Faststart);
    let torrent = fixture::transmission_create(&video, &dir.path().join("clip.torrent"), 32);
    let env = base_env(&dir.sub("cache"), ROOMY_QUOTA_MB);
    // For a single-file torrent the file itself is accepted as DATA_PATH.
    let imported = server::import(&env, &torrent.file, &video);
    assert_eq!(imported.info_hash, torrent.info_hash);
    assert_eq!(imported.verified, imported.total);
    assert_eq!(
        imported.total,
        (std::fs::metadata(&video).unwrap().len()).div_ceil(32 * 1024)
    );
    let srv = Server::start(&env);
    let source = std::fs::read(&video).unwrap();
    let r = http::get(
        srv.addr(),
        &format!("/stream/proxy/{}", torrent.info_hash),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.head());
    assert_eq!(sha256_hex(&r.body), sha256_hex(&source));
    let len = source.len() as u64;
    let r = http::get(
        srv.addr(),
        &format!("/stream/proxy/{}", torrent.info_hash),
        &["Range: bytes=-70000"],
    );
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("Content-Range"),
        Some(format!("bytes {}-{}/{len}", len - 70000, len - 1).as_str())
    );
    assert!(r.body == source[source.len() - 70000..]);
}

#[test]
fn missing_piece_fails_fast_with_503_and_never_serves_wrong_bytes() {
    fixture::require_fixture_tools();
    let dir = TestDir::new("missing_piece");
    let data = dir.sub("data");
    let video = fixture::video(&data.join("movie.mp4"), Media::Mp4IndexAtEnd);
    let torrent = fixture::mktorrent(&video, &dir.path().join("movie.torrent"), PIECE_LOG2);
    let source = std::fs::read(&video).unwrap();
    // Corrupt one byte of piece 40 in the data handed to import: that piece cannot verify.
    let bad_piece = 40u64;
    let mut corrupted = source.clone();
    corrupted[(bad_piece * PIECE_LEN + 17) as usize] ^= 0xff;
    std::fs::write(&video, &corrupted).unwrap();
    let env = base_env(&dir.sub("cache"), ROOMY_QUOTA_MB);
    let imported = server::import(&env, &torrent.file, &data);
    assert_eq!(
        imported.verified,
        imported.total - 1,
        "exactly the corrupted piece fails: {imported:?}"
    );
    let srv = Server::start(&env);
    let path = format!("/stream/proxy/{}", torrent.info_hash);

    // A range inside the missing piece: nothing can be sent, so a 503 with a JSON error.
    let (first, last) = (bad_piece * PIECE_LEN + 100, bad_piece * PIECE_LEN + 200);
    let r = http::get(
        srv.addr(),
        &path,
        &[&format!("Range: bytes={first}-{last}")],
    );
    assert_eq!(r.status, 503, "{}\n{}", r.head(), r.text());
    assert!(!r.error_text().is_empty());
    assert!(
        r.elapsed.as_secs() < 30,
        "a missing piece took {:?} to fail",
        r.elapsed
    );

    // Verified pieces around it still serve exactly.
    let before = http::get(
        srv.addr(),
        &path,
        &[&format!("Range: bytes=0-{}", bad_piece * PIECE_LEN - 1)],
    );
    assert_eq!(before.status, 206);
    assert!(before.body == source[..(bad_piece * PIECE_LEN) as usize]);

    // A full GET either refuses up front (503), or sends and then stops at the hole: a
    // correct prefix, cut short. Never the missing bytes, never a body reported complete.
    let full = http::get(srv.addr(), &path, &[]);
    assert!(
        full.elapsed.as_secs() < 30,
        "the full GET took {:?}",
        full.elapsed
    );
    match full.status {
        503 => assert!(!full.error_text().is_empty()),
        200 => {
            assert!(
                !full.complete,
                "a body with a missing piece was reported complete"
            );
            assert!(
                full.body.len() as u64 <= bad_piece * PIECE_LEN,
                "bytes of the missing piece were sent"
            );
            assert!(
                full.body == source[..full.body.len()],
                "the prefix sent differs from the source"
            );
        }
        _ => panic!(
            "unexpected answer to a full GET over a hole: {}",
            full.head()
        ),
    }
    http::assert_healthy(srv.addr(), "a missing piece");
}

/// A JSON file path: a `/`-joined string, or a list of segments.
fn file_path(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(segments) => segments
            .iter()
            .map(|s| s.as_str().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("/"),
        other => panic!("odd file path {other:?}"),
    }
}
