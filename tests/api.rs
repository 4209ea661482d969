//! The JSON API: adding a torrent by .torrent body, magnet or info hash (201 new, 200 known),
//! listing, status, deleting, and the cache listing with its quota.

mod common;

use common::cached::{CachedVideo, ROOMY_QUOTA_MB};
use common::fixture::{self, Media};
use common::http;
use common::server::{base_env, Server};
use common::TestDir;
use serde_json::json;

/// A torrent the server has never seen: a random file's mktorrent torrent.
fn fresh_torrent(dir: &TestDir) -> fixture::Torrent {
    let file = fixture::random_file(&dir.sub("data").join("notes.bin"), 300_000);
    fixture::mktorrent(&file, &dir.path().join("notes.torrent"), 15)
}

/// Quotas may be counted in MB or MiB; either is an honest reading of `CACHE_MAX_DISK_MB`.
fn is_quota_of(bytes: u64, mb: u64) -> bool {
    bytes == mb * 1_000_000 || bytes == mb * 1024 * 1024
}

#[test]
fn post_torrent_body_answers_201_then_200_with_the_torrent_shape() {
    let dir = TestDir::new("api_post");
    let torrent = fresh_torrent(&dir);
    let srv = Server::start(&base_env(&dir.sub("cache"), ROOMY_QUOTA_MB));
    let first = http::post(
        srv.addr(),
        "/api/torrents",
        "application/x-bittorrent",
        &torrent.bytes(),
    );
    assert_eq!(first.status, 201, "{}\n{}", first.head(), first.text());
    let json = first.json();
    assert_eq!(json["infoHash"], torrent.info_hash.as_str());
    assert_eq!(json["name"], "notes.bin");
    assert!(json["state"].is_string(), "state: {json}");
    let files = json["files"].as_array().expect("files");
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["index"], 0);
    assert_eq!(files[0]["length"], 300_000);
    assert_eq!(json["selectedFile"], 0, "a lone file is the chosen one");
    assert!(
        json["streamUrl"]
            .as_str()
            .is_some_and(|u| u.contains(&torrent.info_hash)),
        "{json}"
    );

    let again = http::post(
        srv.addr(),
        "/api/torrents",
        "application/x-bittorrent",
        &torrent.bytes(),
    );
    assert_eq!(again.status, 200, "a known torrent: {}", again.head());
    assert_eq!(again.json()["infoHash"], torrent.info_hash.as_str());
}

#[test]
fn post_magnet_or_info_hash_of_a_known_torrent_answers_200() {
    let dir = TestDir::new("api_magnet");
    let torrent = fresh_torrent(&dir);
    let srv = Server::start(&base_env(&dir.sub("cache"), ROOMY_QUOTA_MB));
    let added = http::post(
        srv.addr(),
        "/api/torrents",
        "application/x-bittorrent",
        &torrent.bytes(),
    );
    assert_eq!(added.status, 201, "{}", added.head());
    let magnet = format!("magnet:?xt=urn:btih:{}&dn=notes.bin", torrent.info_hash);
    let by_magnet = http::post_json(srv.addr(), "/api/torrents", &json!({ "magnetUri": magnet }));
    assert_eq!(
        by_magnet.status,
        200,
        "{}\n{}",
        by_magnet.head(),
        by_magnet.text()
    );
    assert_eq!(by_magnet.json()["infoHash"], torrent.info_hash.as_str());
    // Upper-case hex names the same torrent.
    let upper = torrent.info_hash.to_ascii_uppercase();
    let by_hash = http::post_json(srv.addr(), "/api/torrents", &json!({ "infoHash": upper }));
    assert_eq!(
        by_hash.status,
        200,
        "{}\n{}",
        by_hash.head(),
        by_hash.text()
    );
    assert_eq!(by_hash.json()["infoHash"], torrent.info_hash.as_str());
}

#[test]
fn post_magnet_of_an_unknown_torrent_answers_201_without_metadata() {
    let dir = TestDir::new("api_unknown_magnet");
    let srv = Server::start(&base_env(&dir.sub("cache"), ROOMY_QUOTA_MB));
    let hash = "0123456789abcdef0123456789abcdef01234567";
    let r = http::post_json(
        srv.addr(),
        "/api/torrents",
        &json!({ "magnetUri": format!("magnet:?xt=urn:btih:{hash}&dn=Some%20Show") }),
    );
    assert_eq!(r.status, 201, "{}\n{}", r.head(), r.text());
    assert_eq!(r.json()["infoHash"], hash);
    http::assert_healthy(srv.addr(), "a magnet without metadata");
}

#[test]
fn list_get_and_delete_follow_the_torrent() {
    let dir = TestDir::new("api_lifecycle");
    let torrent = fresh_torrent(&dir);
    let srv = Server::start(&base_env(&dir.sub("cache"), ROOMY_QUOTA_MB));
    let ih = torrent.info_hash.as_str();
    assert_eq!(
        http::get(srv.addr(), &format!("/api/torrents/{ih}"), &[]).status,
        404
    );
    let added = http::post(
        srv.addr(),
        "/api/torrents",
        "application/x-bittorrent",
        &torrent.bytes(),
    );
    assert_eq!(added.status, 201);

    let list = http::get(srv.addr(), "/api/torrents", &[]);
    assert_eq!(list.status, 200, "{}", list.head());
    let list = list.json();
    let entries = list
        .as_array()
        .or_else(|| list["torrents"].as_array())
        .expect("a list of torrents");
    assert!(
        entries.iter().any(|t| t["infoHash"] == ih),
        "{ih} not listed: {list}"
    );

    let one = http::get(srv.addr(), &format!("/api/torrents/{ih}"), &[]);
    assert_eq!(one.status, 200, "{}", one.head());
    assert_eq!(one.json()["infoHash"], ih);
    assert!(one.json()["state"].is_string());

    let deleted = http::delete(srv.addr(), &format!("/api/torrents/{ih}"));
    assert!(matches!(deleted.status, 200 | 204), "{}", deleted.head());
    assert_eq!(
        http::get(srv.addr(), &format!("/api/torrents/{ih}"), &[]).status,
        404
    );
    let list = http::get(srv.addr(), "/api/torrents", &[]).json();
    let entries = list
        .as_array()
        .or_else(|| list["torrents"].as_array())
        .expect("a list of torrents");
    assert!(
        !entries.iter().any(|t| t["infoHash"] == ih),
        "{ih} still listed: {list}"
    );
}

#[test]
fn cache_lists_an_imported_torrent_with_every_piece_verified() {
    let c = CachedVideo::start("api_cache", Media::Mp4Faststart);
    let r = http::get(c.server.addr(), "/api/cache", &[]);
    assert_eq!(r.status, 200, "{}", r.head());
    let cache = r.json();
    let quota = cache["quotaBytes"].as_u64().expect("quotaBytes");
    let used = cache["usedBytes"].as_u64().expect("usedBytes");
    assert!(
        is_quota_of(quota, ROOMY_QUOTA_MB),
        "quotaBytes {quota} for {ROOMY_QUOTA_MB} MB"
    );
    assert!(
        used >= c.len(),
        "usedBytes {used} < the {} bytes imported",
        c.len()
    );
    assert!(used <= quota);
    let entries = cache["entries"].as_array().expect("entries");
    let entry = entries
        .iter()
        .find(|e| e["infoHash"] == c.torrent.info_hash.as_str())
        .unwrap_or_else(|| panic!("no cache entry for the import: {cache}"));
    assert_eq!(entry["pieces"].as_u64(), Some(c.imported.total));
    assert_eq!(entry["verifiedPieces"].as_u64(), Some(c.imported.total));
    assert!(
        entry["bytes"].as_u64().is_some_and(|b| b >= c.len()),
        "{entry}"
    );
}

#[test]
fn delete_frees_the_cache_and_the_stream_is_gone() {
    let c = CachedVideo::start("api_delete", Media::Mp4Faststart);
    let ih = c.torrent.info_hash.as_str();
    let before = http::get(c.server.addr(), "/api/cache", &[]).json()["usedBytes"]
        .as_u64()
        .unwrap();
    // The server learns of the torrent from the cache; deleting it frees the cached pieces.
    let deleted = http::delete(c.server.addr(), &format!("/api/torrents/{ih}"));
    assert!(matches!(deleted.status, 200 | 204), "{}", deleted.head());
    let cache = http::get(c.server.addr(), "/api/cache", &[]).json();
    let after = cache["usedBytes"].as_u64().unwrap();
    assert!(
        after + c.len() <= before,
        "usedBytes went from {before} to {after} only"
    );
    assert!(
        !cache["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["infoHash"] == ih),
        "entry still listed: {cache}"
    );
    let r = http::get(c.server.addr(), &c.proxy_path(), &["Range: bytes=0-9"]);
    assert_eq!(r.status, 404, "{}", r.head());
}

#[test]
fn health_answers_200() {
    let dir = TestDir::new("api_health");
    let srv = Server::start(&base_env(&dir.sub("cache"), ROOMY_QUOTA_MB));
    let r = http::get(srv.addr(), "/health", &[]);
    assert_eq!(r.status, 200, "{}", r.head());
}

/// The dashboard's data: the piece map of a file (every piece of an imported video verified,
/// none after a delete of the cache), and the cache card's ceiling and next eviction.
#[test]
fn piece_map_and_cache_card_describe_an_imported_video() {
    let c = CachedVideo::start("api_pieces", Media::Mp4Faststart);
    let ih = &c.torrent.info_hash;
    let r = http::get(c.server.addr(), &format!("/api/torrents/{ih}/pieces"), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let m = r.json();
    let count = m["pieceCount"].as_u64().unwrap();
    assert_eq!(count, c.len().div_ceil(common::cached::PIECE_LEN), "{m}");
    assert_eq!(m["file"], json!(0));
    let hex = m["verified"].as_str().unwrap();
    assert_eq!(hex.len() as u64, count.div_ceil(8) * 2, "{m}");
    let set: u32 = (0..hex.len() / 2)
        .map(|i| {
            u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .unwrap()
                .count_ones()
        })
        .sum();
    assert_eq!(u64::from(set), count, "every piece is verified: {m}");
    assert_eq!(
        http::get(
            c.server.addr(),
            &format!("/api/torrents/{ih}/pieces?file=9"),
            &[]
        )
        .status,
        404
    );

    let cache = http::get(c.server.addr(), "/api/cache", &[]).json();
    let ceiling = cache["ceilingBytes"].as_u64().expect("ceilingBytes");
    let quota = cache["quotaBytes"].as_u64().unwrap();
    assert!(ceiling <= quota && ceiling > quota / 2, "{cache}");
    assert!(
        cache["contentBytes"].as_u64().unwrap() >= c.len(),
        "{cache}"
    );
    let next = &cache["nextEviction"];
    assert_eq!(next["infoHash"], json!(ih), "{cache}");
    assert!(next["bytes"].as_u64().unwrap() > 0, "{cache}");
    assert!(
        next["endPiece"].as_u64() > next["firstPiece"].as_u64(),
        "{cache}"
    );
}
