//! Real players against a cached torrent: `ffprobe` and `ffmpeg` read the HTTP URL, seek in
//! it, and decode it whole. The MP4 keeps its index at the end (no faststart), so a player must
//! jump to the tail first, as a real one does.

mod common;

use std::process::{Command, Stdio};

use common::cached::CachedVideo;
use common::fixture::{Media, VIDEO_SECONDS};
use common::require_tool;

/// Runs a player to completion; returns (success, stderr).
fn play(cmd: &mut Command) -> (bool, String) {
    let program = cmd.get_program().to_string_lossy().into_owned();
    require_tool(&program);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

fn probe(url: &str) -> String {
    let mut cmd = Command::new("ffprobe");
    cmd.args(["-v", "error", "-rw_timeout", "30000000"])
        .args([
            "-show_entries",
            "stream=codec_name:format=duration",
            "-of",
            "default=nw=1",
        ])
        .arg(url);
    let (ok, output) = play(&mut cmd);
    assert!(ok, "ffprobe failed on {url}:\n{output}");
    output
}

fn duration_of(probe_output: &str) -> f64 {
    probe_output
        .lines()
        .find_map(|l| l.strip_prefix("duration="))
        .and_then(|d| d.trim().parse().ok())
        .unwrap_or_else(|| panic!("no duration in ffprobe output:\n{probe_output}"))
}

#[test]
fn ffprobe_reports_h264_and_duration_over_http() {
    let c = CachedVideo::start("ffprobe_mp4", Media::Mp4IndexAtEnd);
    let output = probe(&c.server.url(&c.proxy_path()));
    assert!(
        output.contains("codec_name=h264"),
        "no h264 stream:\n{output}"
    );
    assert!(
        output.contains("codec_name=aac"),
        "no aac stream:\n{output}"
    );
    let duration = duration_of(&output);
    assert!(
        (duration - VIDEO_SECONDS as f64).abs() < 0.5,
        "duration {duration} s, expected {VIDEO_SECONDS}"
    );
}

#[test]
fn ffprobe_reads_the_mkv_over_the_indexed_route() {
    let c = CachedVideo::start("ffprobe_mkv", Media::Mkv);
    let output = probe(
        &c.server
            .url(&format!("/stream/{}/0/movie.mkv", c.torrent.info_hash)),
    );
    assert!(
        output.contains("codec_name=h264"),
        "no h264 stream:\n{output}"
    );
    let duration = duration_of(&output);
    assert!(
        (duration - VIDEO_SECONDS as f64).abs() < 0.5,
        "duration {duration} s, expected {VIDEO_SECONDS}"
    );
}

#[test]
fn ffmpeg_seek_reads_a_frame_mid_stream() {
    let c = CachedVideo::start("ffmpeg_seek", Media::Mp4IndexAtEnd);
    let url = c.server.url(&c.proxy_path());
    let frame = c.dir.path().join("frame.png");
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-rw_timeout",
        "30000000",
        "-ss",
        "5",
        "-i",
    ])
    .arg(&url)
    .args(["-frames:v", "1"])
    .arg(&frame);
    let (ok, output) = play(&mut cmd);
    assert!(ok, "ffmpeg -ss 5 failed on {url}:\n{output}");
    assert!(
        std::fs::metadata(&frame)
            .map(|m| m.len() > 0)
            .unwrap_or(false),
        "no frame written"
    );
}

#[test]
fn ffmpeg_decodes_the_whole_stream_without_errors() {
    let c = CachedVideo::start("ffmpeg_decode", Media::Mp4IndexAtEnd);
    let url = c.server.url(&c.proxy_path());
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-nostdin",
        "-v",
        "error",
        "-xerror",
        "-rw_timeout",
        "30000000",
        "-i",
    ])
    .arg(&url)
    .args(["-f", "null", "-"]);
    let (ok, output) = play(&mut cmd);
    assert!(ok, "ffmpeg failed to decode {url}:\n{output}");
    assert!(
        output.trim().is_empty(),
        "ffmpeg reported errors while decoding:\n{output}"
    );
}
