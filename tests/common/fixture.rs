//! Fixtures made by real tools at test time: H.264/AAC media from `ffmpeg -f lavfi`, random
//! files from `head -c /dev/urandom`, and .torrent files from `mktorrent` and
//! `transmission-create`. The info hash of each torrent comes from `transmission-show`, a tool
//! independent of the code under test.
//!
//! Must never reuse a fixture across tests: each one is made inside the test's own dir.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{require_tool, run};

/// Length of the media fixtures, in seconds; the ffprobe test checks it comes back.
pub const VIDEO_SECONDS: u64 = 10;

/// What `ffmpeg` writes.
#[derive(Debug, Clone, Copy)]
pub enum Media {
    /// MP4 with the `moov` index at the front (`-movflags +faststart`), as web players like.
    Mp4Faststart,
    /// MP4 with the index at the end (ffmpeg's default), so a player must seek to the tail first.
    Mp4IndexAtEnd,
    /// Matroska.
    Mkv,
}

/// A ~10 s 640x360 H.264 + AAC file of about 3.5 MB at `path`. `-qp 12` keeps the bitrate high
/// so that a 32 KiB piece size gives about a hundred pieces.
pub fn video(path: &Path, media: Media) -> PathBuf {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i"])
        .arg(format!(
            "testsrc2=duration={VIDEO_SECONDS}:size=640x360:rate=25"
        ))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:duration={VIDEO_SECONDS}"))
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-qp",
            "12",
            "-g",
            "25",
        ])
        .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"]);
    if let Media::Mp4Faststart = media {
        cmd.args(["-movflags", "+faststart"]);
    }
    run(cmd.arg(path));
    path.to_path_buf()
}

/// `bytes` random bytes at `path`, from `head -c N /dev/urandom`.
pub fn random_file(path: &Path, bytes: u64) -> PathBuf {
    let file = std::fs::File::create(path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
    run(Command::new("head")
        .arg("-c")
        .arg(bytes.to_string())
        .arg("/dev/urandom")
        .stdout(file));
    path.to_path_buf()
}

/// A torrent file made by a real tool, with its info hash as `transmission-show` reads it.
#[derive(Debug, Clone)]
pub struct Torrent {
    pub file: PathBuf,
    /// 40 lower-case hex characters.
    pub info_hash: String,
}

impl Torrent {
    pub fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.file).expect("cannot read the torrent fixture")
    }
}

/// `mktorrent -l piece_log2 -o out content` (no tracker: loopback tests never announce).
pub fn mktorrent(content: &Path, out: &Path, piece_log2: u32) -> Torrent {
    run(Command::new("mktorrent")
        .arg("-l")
        .arg(piece_log2.to_string())
        .arg("-o")
        .arg(out)
        .arg(content));
    Torrent {
        file: out.to_path_buf(),
        info_hash: info_hash_of(out),
    }
}

/// `mktorrent -l piece_log2 -w web_seed -o out content`: a torrent whose `url-list` names an
/// HTTP web seed (BEP 19).
pub fn mktorrent_web_seed(content: &Path, out: &Path, piece_log2: u32, web_seed: &str) -> Torrent {
    run(Command::new("mktorrent")
        .arg("-l")
        .arg(piece_log2.to_string())
        .arg("-w")
        .arg(web_seed)
        .arg("-o")
        .arg(out)
        .arg(content));
    Torrent {
        file: out.to_path_buf(),
        info_hash: info_hash_of(out),
    }
}

/// `transmission-create -s piece_kib -o out content`.
pub fn transmission_create(content: &Path, out: &Path, piece_kib: u32) -> Torrent {
    run(Command::new("transmission-create")
        .arg("-s")
        .arg(piece_kib.to_string())
        .arg("-o")
        .arg(out)
        .arg(content));
    Torrent {
        file: out.to_path_buf(),
        info_hash: info_hash_of(out),
    }
}

/// The `Hash:` line of `transmission-show`.
pub fn info_hash_of(torrent: &Path) -> String {
    let out = run(Command::new("transmission-show").arg(torrent));
    let text = String::from_utf8_lossy(&out.stdout);
    let hash = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Hash:"))
        .unwrap_or_else(|| panic!("no Hash: line in transmission-show output:\n{text}"))
        .trim()
        .to_ascii_lowercase();
    assert_eq!(
        hash.len(),
        40,
        "odd info hash from transmission-show: {hash}"
    );
    hash
}

/// The content of a multi-file torrent named `name` under `data_dir`, laid out as a client's
/// download dir would hold it: `data_dir/name/{sample.txt, video.mkv, extras/notes.txt}`.
pub struct MultiFile {
    /// `data_dir/name`: what mktorrent hashes.
    pub root: PathBuf,
    pub sample: PathBuf,
    pub video: PathBuf,
    pub notes: PathBuf,
}

pub fn multi_file_content(data_dir: &Path, name: &str) -> MultiFile {
    let root = data_dir.join(name);
    std::fs::create_dir_all(root.join("extras")).expect("cannot create the multi-file layout");
    let sample = root.join("sample.txt");
    // Long enough to span several 32 KiB pieces, so a piece straddles two files.
    let line = "streme multi-file fixture: a text file that shares pieces with the video.\n";
    std::fs::write(&sample, line.repeat(1500)).expect("cannot write sample.txt");
    let video = video(&root.join("video.mkv"), Media::Mkv);
    let notes = root.join("extras").join("notes.txt");
    std::fs::write(&notes, "notes in a sub-directory\n".repeat(40)).expect("cannot write notes");
    MultiFile {
        root,
        sample,
        video,
        notes,
    }
}

/// Checks up front that the tools the fixtures use are present, naming the first missing one.
pub fn require_fixture_tools() {
    for tool in [
        "ffmpeg",
        "mktorrent",
        "transmission-create",
        "transmission-show",
        "head",
    ] {
        require_tool(tool);
    }
}
