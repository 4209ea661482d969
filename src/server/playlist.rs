//! M3U playlists of the torrents' videos, for VLC, Kodi and TVs on the LAN.
//!
//! # Design
//! Every entry is an absolute URL built from the `Host` the client used, so
//! the same playlist works from any box on the LAN that can reach this one.
//! The URL ends with the file's name, which the stream route ignores but
//! players show as the title and use to guess the container.
//!
//! Must never list a torrent whose metadata is unknown as playable: it has no
//! files yet, so it contributes no entry.

use http_types::{Request, Response, StatusCode};

use super::stremio::base_url;
use super::{error, App};
use crate::format::media;
use crate::format::metainfo::Metainfo;

/// One playlist entry: its title, its duration (-1: unknown) and its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub title: String,
    pub url: String,
}

/// The video files of a torrent as entries under `base` (`http://HOST`).
pub fn entries(base: &str, meta: &Metainfo) -> Vec<Entry> {
    meta.files
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.padding && media::is_video(f.file_name()))
        .map(|(i, f)| {
            let name = f.file_name();
            Entry {
                title: if meta.files.len() == 1 {
                    meta.name.clone()
                } else {
                    format!("{} / {}", meta.name, f.path.join("/"))
                },
                url: format!(
                    "{base}/stream/{}/{i}/{}",
                    meta.info_hash,
                    encode_segment(name)
                ),
            }
        })
        .collect()
}

/// An extended M3U file of the entries. Titles lose their line breaks, which
/// would end the `#EXTINF` line early.
pub fn render(entries: &[Entry]) -> String {
    let mut out = String::from("#EXTM3U\n");
    for e in entries {
        let title: String = e.title.chars().filter(|c| !c.is_control()).collect();
        out.push_str(&format!("#EXTINF:-1,{title}\n{}\n", e.url));
    }
    out
}

/// A path segment with everything but unreserved characters percent-encoded.
fn encode_segment(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn m3u(body: String) -> Response {
    let mut res = Response::new(StatusCode::Ok);
    res.insert_header("Content-Type", "audio/x-mpegurl; charset=utf-8");
    res.set_body(body);
    res
}

impl App {
    /// `/playlist.m3u`: every torrent's videos.
    pub(super) fn playlist_all(&self, req: &Request) -> Response {
        let base = base_url(req);
        let all: Vec<Entry> = self
            .session
            .list()
            .iter()
            .filter_map(|t| t.meta())
            .flat_map(|meta| entries(&base, &meta))
            .collect();
        m3u(render(&all))
    }

    /// `/playlist/{infoHash}.m3u`: one torrent's videos.
    pub(super) fn playlist_one(&self, req: &Request, file: &str) -> Response {
        let Some(ih) = file.strip_suffix(".m3u") else {
            return error(
                StatusCode::NotFound,
                format!("no playlist {file:?}; ask for /playlist/<infoHash>.m3u"),
            );
        };
        let torrent = match self.known(ih) {
            Ok(t) => t,
            Err(res) => return *res,
        };
        let Some(meta) = torrent.meta() else {
            return error(
                StatusCode::ServiceUnavailable,
                format!("the files of {ih} are not known yet; try again once its metadata is in"),
            );
        };
        m3u(render(&entries(&base_url(req), &meta)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::metainfo::FileEntry;
    use crate::format::InfoHash;

    fn meta(files: &[(&str, u64)]) -> Metainfo {
        let mut offset = 0;
        Metainfo {
            info_hash: InfoHash::from_hex("dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c").unwrap(),
            name: "Show".into(),
            piece_length: 1 << 15,
            pieces: Vec::new(),
            files: files
                .iter()
                .map(|(path, length)| {
                    let f = FileEntry {
                        path: path.split('/').map(String::from).collect(),
                        length: *length,
                        offset,
                        padding: false,
                    };
                    offset += length;
                    f
                })
                .collect(),
            total_length: offset,
            trackers: Vec::new(),
            web_seeds: Vec::new(),
            private: false,
            info_bytes: Vec::new(),
        }
    }

    #[test]
    fn lists_only_videos_with_absolute_encoded_urls() {
        let m = meta(&[("notes.txt", 5), ("Ep 1 #1.mkv", 10), ("extras/b.mp4", 7)]);
        let list = entries("http://192.168.1.5:11470", &m);
        assert_eq!(
            list,
            [
                Entry {
                    title: "Show / Ep 1 #1.mkv".into(),
                    url: "http://192.168.1.5:11470/stream/dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c/1/Ep%201%20%231.mkv".into(),
                },
                Entry {
                    title: "Show / extras/b.mp4".into(),
                    url: "http://192.168.1.5:11470/stream/dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c/2/b.mp4".into(),
                },
            ]
        );
    }

    #[test]
    fn render_is_extended_m3u_and_titles_stay_on_one_line() {
        let text = render(&[Entry {
            title: "a\nb".into(),
            url: "http://h/x".into(),
        }]);
        assert_eq!(text, "#EXTM3U\n#EXTINF:-1,ab\nhttp://h/x\n");
    }
}
