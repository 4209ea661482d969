//! What counts as a video, content types by extension, and which file to play.
//!
//! Owns the decision "which file of this torrent does a player get" and the
//! Content-Type the server sends for it. Judges by name only: must never open
//! or sniff a file, since the bytes may not be fetched (or verified) yet.

use std::fmt;

use super::metainfo::FileEntry;

/// Extensions that count as video when choosing the file to stream.
pub const VIDEO_EXTENSIONS: &[&str] = &[
    "mp4", "mkv", "avi", "webm", "mov", "m4v", "wmv", "flv", "ts", "m2ts", "mpg", "mpeg", "ogv",
    "3gp",
];

/// Content types by lower-case extension. Subtitles matter because players
/// fetch `.srt`/`.vtt` beside the video from the same server.
const CONTENT_TYPES: &[(&str, &str)] = &[
    ("mp4", "video/mp4"),
    ("m4v", "video/x-m4v"),
    ("mkv", "video/x-matroska"),
    ("webm", "video/webm"),
    ("avi", "video/x-msvideo"),
    ("mov", "video/quicktime"),
    ("wmv", "video/x-ms-wmv"),
    ("flv", "video/x-flv"),
    ("ts", "video/mp2t"),
    ("m2ts", "video/mp2t"),
    ("mpg", "video/mpeg"),
    ("mpeg", "video/mpeg"),
    ("ogv", "video/ogg"),
    ("3gp", "video/3gpp"),
    ("mp3", "audio/mpeg"),
    ("m4a", "audio/mp4"),
    ("aac", "audio/aac"),
    ("flac", "audio/flac"),
    ("ogg", "audio/ogg"),
    ("opus", "audio/opus"),
    ("wav", "audio/wav"),
    ("srt", "application/x-subrip"),
    ("vtt", "text/vtt"),
    ("ass", "text/x-ssa"),
    ("ssa", "text/x-ssa"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("png", "image/png"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("txt", "text/plain; charset=utf-8"),
    ("nfo", "text/plain; charset=utf-8"),
];

/// Sent when the extension says nothing we know.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChoiceError {
    NoSuchFile {
        index: usize,
        count: usize,
    },
    PaddingFile {
        index: usize,
    },
    /// No file has a video extension; the caller may fall back to
    /// [`largest_file`].
    NoVideo,
}

impl fmt::Display for ChoiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChoiceError::NoSuchFile { index, count } => {
                write!(
                    f,
                    "file index {index} does not exist (the torrent has {count} files)"
                )
            }
            ChoiceError::PaddingFile { index } => write!(f, "file index {index} is a padding file"),
            ChoiceError::NoVideo => f.write_str("the torrent has no video file"),
        }
    }
}

impl std::error::Error for ChoiceError {}

/// The extension after the last dot of the last path segment, if any.
fn extension(name: &str) -> Option<&str> {
    let file = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let (stem, ext) = file.rsplit_once('.')?;
    (!stem.is_empty() && !ext.is_empty()).then_some(ext)
}

/// Whether the name has a video extension, in any case.
pub fn is_video(name: &str) -> bool {
    extension(name).is_some_and(|ext| VIDEO_EXTENSIONS.iter().any(|v| v.eq_ignore_ascii_case(ext)))
}

/// The Content-Type for a file name, by extension.
pub fn content_type(name: &str) -> &'static str {
    extension(name)
        .and_then(|ext| {
            CONTENT_TYPES
                .iter()
                .find(|(e, _)| e.eq_ignore_ascii_case(ext))
        })
        .map_or(DEFAULT_CONTENT_TYPE, |(_, ct)| ct)
}

/// The file to play: `requested` if it exists and is not padding, otherwise
/// the largest video (the lowest index on a tie).
pub fn choose_file(files: &[FileEntry], requested: Option<usize>) -> Result<usize, ChoiceError> {
    if let Some(index) = requested {
        let file = files.get(index).ok_or(ChoiceError::NoSuchFile {
            index,
            count: files.len(),
        })?;
        if file.padding {
            return Err(ChoiceError::PaddingFile { index });
        }
        return Ok(index);
    }
    largest(files, |f| is_video(f.file_name())).ok_or(ChoiceError::NoVideo)
}

/// The largest non-padding file (the lowest index on a tie), for torrents
/// without a video.
pub fn largest_file(files: &[FileEntry]) -> Option<usize> {
    largest(files, |_| true)
}

fn largest(files: &[FileEntry], wanted: impl Fn(&FileEntry) -> bool) -> Option<usize> {
    files
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.padding && wanted(f))
        // `max_by_key` keeps the last of equals; reversing keeps the first.
        .rev()
        .max_by_key(|(_, f)| f.length)
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, length: u64, padding: bool) -> FileEntry {
        FileEntry {
            path: vec!["dir".into(), name.into()],
            length,
            offset: 0,
            padding,
        }
    }

    #[test]
    fn video_extensions_are_case_insensitive() {
        for name in ["a.mp4", "A.MKV", "x.y.M2ts", "clip.3gp", "dir/b.Webm"] {
            assert!(is_video(name), "{name}");
        }
        for name in [
            "mp4",
            ".mkv",
            "a.mp4.txt",
            "a.",
            "a.srt",
            "tsfile",
            "a.mp4/readme",
        ] {
            assert!(!is_video(name), "{name}");
        }
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(content_type("Movie.MKV"), "video/x-matroska");
        assert_eq!(content_type("a.mp4"), "video/mp4");
        assert_eq!(content_type("a.srt"), "application/x-subrip");
        assert_eq!(content_type("a.vtt"), "text/vtt");
        assert_eq!(content_type("cover.JPG"), "image/jpeg");
        assert_eq!(content_type("a.flac"), "audio/flac");
        assert_eq!(content_type("a.exe"), DEFAULT_CONTENT_TYPE);
        assert_eq!(content_type("README"), DEFAULT_CONTENT_TYPE);
        for ext in VIDEO_EXTENSIONS {
            assert!(
                content_type(&format!("x.{ext}")).starts_with("video/"),
                "{ext}"
            );
        }
    }

    #[test]
    fn largest_video_wins_skipping_padding() {
        let files = [
            file("sample.mkv", 50, false),
            file("big.iso", 900, false),
            file("pad.mp4", 800, true),
            file("movie.mp4", 700, false),
            file("also.avi", 700, false),
        ];
        assert_eq!(choose_file(&files, None), Ok(3));
        assert_eq!(largest_file(&files), Some(1));
    }

    #[test]
    fn requested_index_must_exist_and_not_be_padding() {
        let files = [
            file("a.mp4", 1, false),
            file("pad", 5, true),
            file("b.txt", 2, false),
        ];
        assert_eq!(choose_file(&files, Some(2)), Ok(2));
        assert_eq!(
            choose_file(&files, Some(1)),
            Err(ChoiceError::PaddingFile { index: 1 })
        );
        assert_eq!(
            choose_file(&files, Some(3)),
            Err(ChoiceError::NoSuchFile { index: 3, count: 3 })
        );
    }

    #[test]
    fn no_video_is_an_error_with_a_fallback() {
        let files = [
            file("a.txt", 5, false),
            file("b.iso", 9, false),
            file("c.iso", 9, false),
        ];
        assert_eq!(choose_file(&files, None), Err(ChoiceError::NoVideo));
        assert_eq!(largest_file(&files), Some(1));
        assert_eq!(largest_file(&[file("p", 9, true)]), None);
        assert_eq!(choose_file(&[], None), Err(ChoiceError::NoVideo));
    }
}
