//! The common starting point of the streaming tests: a real video, a real torrent of it, an
//! import into a private cache, and a server on that cache.
//!
//! Must never share anything between tests: each call makes its own dir, cache and server.

use std::path::PathBuf;

use super::fixture::{self, Media, Torrent};
use super::server::{self, base_env, Imported, Server};
use super::TestDir;

/// Quota for the streaming tests: far above what they cache, so it never interferes.
pub const ROOMY_QUOTA_MB: u64 = 200;

/// 2^15 = 32 KiB pieces: a ~3.5 MB video gives about a hundred of them.
pub const PIECE_LOG2: u32 = 15;
pub const PIECE_LEN: u64 = 1 << PIECE_LOG2;

/// A single-file torrent of a video, imported, with a server running on its cache.
pub struct CachedVideo {
    pub server: Server,
    pub torrent: Torrent,
    pub imported: Imported,
    /// The source file's bytes: the truth every served byte is compared with.
    pub source: Vec<u8>,
    pub source_path: PathBuf,
    pub env: Vec<(String, String)>,
    /// Last, so the server is killed before its cache dir is removed.
    pub dir: TestDir,
}

impl CachedVideo {
    /// `movie.mp4` or `movie.mkv` in `data/`, a mktorrent torrent with 32 KiB pieces, an
    /// import of `data/` (the download dir that holds the file), and a server.
    pub fn start(test: &str, media: Media) -> CachedVideo {
        fixture::require_fixture_tools();
        let dir = TestDir::new(test);
        let data = dir.sub("data");
        let name = match media {
            Media::Mkv => "movie.mkv",
            Media::Mp4Faststart | Media::Mp4IndexAtEnd => "movie.mp4",
        };
        let source_path = fixture::video(&data.join(name), media);
        let torrent =
            fixture::mktorrent(&source_path, &dir.path().join("movie.torrent"), PIECE_LOG2);
        let env = base_env(&dir.sub("cache"), ROOMY_QUOTA_MB);
        let imported = server::import(&env, &torrent.file, &data);
        let server = Server::start(&env);
        let source = std::fs::read(&source_path).expect("read the source video");
        CachedVideo {
            server,
            torrent,
            imported,
            source,
            source_path,
            env,
            dir,
        }
    }

    /// `/stream/proxy/<infohash>`.
    pub fn proxy_path(&self) -> String {
        format!("/stream/proxy/{}", self.torrent.info_hash)
    }

    pub fn len(&self) -> u64 {
        self.source.len() as u64
    }

    /// The source bytes `first..=last`.
    pub fn slice(&self, first: u64, last: u64) -> &[u8] {
        &self.source[first as usize..=last as usize]
    }
}

/// A multi-file torrent (`Show/{sample.txt, video.mkv, extras/notes.txt}`), imported, with a
/// server running on its cache.
pub struct CachedShow {
    pub server: Server,
    pub torrent: Torrent,
    pub content: fixture::MultiFile,
    /// Last, so the server is killed before its cache dir is removed.
    pub dir: TestDir,
}

impl CachedShow {
    pub fn start(test: &str) -> CachedShow {
        fixture::require_fixture_tools();
        let dir = TestDir::new(test);
        let data = dir.sub("data");
        let content = fixture::multi_file_content(&data, "Show");
        let torrent =
            fixture::mktorrent(&content.root, &dir.path().join("show.torrent"), PIECE_LOG2);
        let env = base_env(&dir.sub("cache"), ROOMY_QUOTA_MB);
        // `data/` is the download dir that holds `Show/`, as a BitTorrent client keeps it.
        server::import(&env, &torrent.file, &data);
        let server = Server::start(&env);
        CachedShow {
            server,
            torrent,
            content,
            dir,
        }
    }
}
