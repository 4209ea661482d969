//! M3U playlists against the real binary: the entries are the torrents' video files, as absolute
//! URLs built from the request's Host, and real players (`ffprobe`, `ffmpeg -ss`) open them.

mod common;

use std::process::Command;

use common::cached::{CachedShow, CachedVideo};
use common::fixture::{Media, VIDEO_SECONDS};
use common::{http, run};

/// The URL lines of an M3U text, after checking its header and `#EXTINF` lines.
fn urls(m3u: &str) -> Vec<String> {
    let mut lines = m3u.lines();
    assert_eq!(lines.next(), Some("#EXTM3U"), "not an extended M3U:\n{m3u}");
    let mut urls = Vec::new();
    while let Some(info) = lines.next() {
        assert!(info.starts_with("#EXTINF:-1,"), "{info:?} in\n{m3u}");
        urls.push(lines.next().expect("a URL after #EXTINF").to_string());
    }
    urls
}

#[test]
fn torrent_playlist_lists_its_videos_with_urls_from_the_host_header() {
    let show = CachedShow::start("playlist_multi");
    let (srv, ih, content) = (&show.server, &show.torrent.info_hash, &show.content);

    // A LAN name the client used: the URLs must carry it, not the loopback address.
    let r = http::request(
        srv.addr(),
        &[
            &format!("GET /playlist/{ih}.m3u HTTP/1.1"),
            "Host: streme.lan:11470",
            "Connection: close",
        ],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("Content-Type")
            .is_some_and(|t| t.contains("mpegurl")),
        "{}",
        r.head()
    );
    let list = urls(&r.text());
    assert_eq!(
        list.len(),
        1,
        "only the video of sample.txt, video.mkv, notes.txt:\n{}",
        r.text()
    );
    let url = &list[0];
    assert!(
        url.starts_with(&format!("http://streme.lan:11470/stream/{ih}/")),
        "{url}"
    );
    assert!(url.ends_with("/video.mkv"), "{url}");

    // The same path on the address the test can reach serves the video file byte for byte.
    let path = url.strip_prefix("http://streme.lan:11470").unwrap();
    let body = http::get(srv.addr(), path, &[]);
    assert_eq!(body.status, 200, "{}", body.head());
    assert_eq!(body.body, std::fs::read(&content.video).unwrap());

    let unknown = http::get(
        srv.addr(),
        &format!("/playlist/{}.m3u", "ab".repeat(20)),
        &[],
    );
    assert_eq!(unknown.status, 404, "{}", unknown.text());
    let bad = http::get(srv.addr(), "/playlist/nothing.m3u", &[]);
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(
        bad.error_text().contains("not an info hash"),
        "{}",
        bad.text()
    );
}

#[test]
fn ffprobe_and_ffmpeg_seek_play_the_playlist_entries() {
    let c = CachedVideo::start("playlist_players", Media::Mp4IndexAtEnd);
    let m3u = http::get(c.server.addr(), "/playlist.m3u", &[]);
    assert_eq!(m3u.status, 200, "{}", m3u.text());
    let list = urls(&m3u.text());
    assert_eq!(list.len(), 1, "{}", m3u.text());
    let url = &list[0];
    assert!(url.starts_with(&c.server.url("/stream/")), "{url}");

    // ffprobe opens the entry's URL and finds both streams and the duration.
    let out = run(Command::new("ffprobe")
        .args(["-v", "error", "-rw_timeout", "30000000"])
        .args([
            "-show_entries",
            "stream=codec_name:format=duration",
            "-of",
            "default=nw=1",
        ])
        .arg(url));
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.contains("codec_name=h264") && out.contains("codec_name=aac"),
        "{out}"
    );
    let duration: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("duration="))
        .and_then(|d| d.trim().parse().ok())
        .unwrap_or_else(|| panic!("no duration:\n{out}"));
    assert!(
        (duration - VIDEO_SECONDS as f64).abs() < 0.5,
        "duration {duration}"
    );

    // ffmpeg seeks into the middle and decodes two seconds from there.
    let out = run(Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-hide_banner",
            "-v",
            "error",
            "-rw_timeout",
            "30000000",
        ])
        .args(["-ss", "6", "-i"])
        .arg(url)
        .args(["-t", "2", "-map", "0:v", "-f", "framecrc", "-"]));
    let out = String::from_utf8_lossy(&out.stdout);
    // framecrc prints one line per decoded frame: two seconds at 25 fps.
    let frames = out.lines().filter(|l| l.starts_with("0,")).count();
    assert!(
        (45..=55).contains(&frames),
        "{frames} frames decoded after the seek:\n{out}"
    );
}
