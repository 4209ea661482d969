//! The ContentDirectory's tree, read from the session's registry, written as
//! DIDL-Lite.
//!
//! # The tree
//! - `0`: the root, one container per torrent, in info-hash order (stable
//!   across calls, so paging with StartingIndex lists each torrent once).
//! - `<info hash>`: a torrent, holding its video and audio files as items.
//! - `<info hash>/<file index>`: an item, whose `res` is the file's stream URL.
//!
//! IDs carry the info hash and the file index, so every ID resolves without
//! any table of our own, and stays valid across restarts.
//!
//! Must never touch the store: what it knows comes from the registry, and
//! what it hands out are stream URLs.

use std::fmt::Write;
use std::sync::Arc;

use super::xml::{self, escape};
use crate::format::media;
use crate::format::metainfo::Metainfo;
use crate::format::InfoHash;
use crate::session::{Session, Torrent};

/// The `DLNA.ORG_*` fields of a stream: byte seeks (`OP=01`), not transcoded
/// (`CI=0`), and the flags of streaming transfer, background transfer,
/// connection stall and DLNA 1.5 (`01700000`, then 24 zero digits).
pub const DLNA_FEATURES: &str =
    "DLNA.ORG_OP=01;DLNA.ORG_CI=0;DLNA.ORG_FLAGS=01700000000000000000000000000000";

/// An object of the tree.
#[derive(Clone)]
pub enum Object {
    Root,
    Torrent(Arc<Torrent>),
    Item {
        torrent: Arc<Torrent>,
        meta: Arc<Metainfo>,
        index: usize,
    },
}

/// The object an ID names, if it exists now.
pub fn resolve(session: &Session, id: &str) -> Option<Object> {
    if id == "0" {
        return Some(Object::Root);
    }
    let (hash, index) = match id.split_once('/') {
        Some((h, i)) => (h, Some(i)),
        None => (id, None),
    };
    let torrent = session.get(&InfoHash::from_hex(hash)?)?;
    match index {
        None => Some(Object::Torrent(torrent)),
        Some(i) => {
            // Only the canonical spelling: "01" is not item 1.
            let index: usize = i.parse().ok().filter(|n: &usize| n.to_string() == i)?;
            let meta = torrent.meta()?;
            media_files(&meta).contains(&index).then_some(Object::Item {
                torrent,
                meta,
                index,
            })
        }
    }
}

/// The children of a container, in a stable order; none for an item.
pub fn children(session: &Session, object: &Object) -> Vec<Object> {
    match object {
        Object::Root => session.list().into_iter().map(Object::Torrent).collect(),
        Object::Torrent(t) => match t.meta() {
            Some(meta) => media_files(&meta)
                .into_iter()
                .map(|index| Object::Item {
                    torrent: t.clone(),
                    meta: meta.clone(),
                    index,
                })
                .collect(),
            None => Vec::new(),
        },
        Object::Item { .. } => Vec::new(),
    }
}

/// The files a TV can play: video and audio, by extension.
fn media_files(meta: &Metainfo) -> Vec<usize> {
    meta.files
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.padding && mime(f.file_name()).is_some())
        .map(|(i, _)| i)
        .collect()
}

/// The MIME type TVs are told, for video and audio only.
fn mime(name: &str) -> Option<&'static str> {
    let ct = media::content_type(name);
    (ct.starts_with("video/") || ct.starts_with("audio/")).then_some(ct)
}

/// A subtitle file beside a video: same directory, name starting with the
/// video's stem (`film.srt`, `film.en.srt`).
fn subtitle_for(meta: &Metainfo, index: usize) -> Option<usize> {
    let video = &meta.files[index];
    let name = video.file_name();
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    let dir = &video.path[..video.path.len().saturating_sub(1)];
    meta.files.iter().position(|f| {
        let n = f.file_name();
        !f.padding
            && f.path[..f.path.len().saturating_sub(1)] == *dir
            && n.len() > 4
            && n[n.len() - 4..].eq_ignore_ascii_case(".srt")
            && n.starts_with(stem)
    })
}

/// Which optional properties a Browse asked for: `*`, or a comma list such
/// as `dc:title,res,res@size`. Required ones (`id`, `parentID`, `restricted`,
/// `dc:title`, `upnp:class`) always go out.
pub struct Filter(Option<Vec<String>>);

impl Filter {
    pub fn parse(text: &str) -> Filter {
        if text.trim() == "*" {
            return Filter(None);
        }
        Filter(Some(
            text.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .take(64)
                .collect(),
        ))
    }

    fn wants(&self, property: &str) -> bool {
        match &self.0 {
            None => true,
            Some(list) => list.iter().any(|p| {
                p == property
                    // Asking for `res@size` asks for `res` too.
                    || (property == "res" && p.starts_with("res@"))
            }),
        }
    }
}

/// DIDL-Lite for `objects`, with `base` (`http://host:port`) in the URLs.
pub fn didl(
    session: &Session,
    objects: &[Object],
    filter: &Filter,
    base: &str,
    root_title: &str,
) -> String {
    let mut out = String::from(
        "<DIDL-Lite xmlns=\"urn:schemas-upnp-org:metadata-1-0/DIDL-Lite/\" \
         xmlns:dc=\"http://purl.org/dc/elements/1.1/\" \
         xmlns:upnp=\"urn:schemas-upnp-org:metadata-1-0/upnp/\" \
         xmlns:dlna=\"urn:schemas-dlna-org:metadata-1-0/\" xmlns:sec=\"http://www.sec.co.kr/\">",
    );
    for object in objects {
        match object {
            Object::Root => container(
                &mut out,
                "0",
                "-1",
                root_title,
                session.list().len(),
                filter,
            ),
            Object::Torrent(t) => {
                let title = t.name().unwrap_or_else(|| t.info_hash.to_hex());
                let count = t.meta().map_or(0, |m| media_files(&m).len());
                container(&mut out, &t.info_hash.to_hex(), "0", &title, count, filter)
            }
            Object::Item {
                torrent,
                meta,
                index,
            } => item(&mut out, torrent, meta, *index, filter, base),
        }
    }
    out.push_str("</DIDL-Lite>");
    out
}

fn container(out: &mut String, id: &str, parent: &str, title: &str, count: usize, filter: &Filter) {
    let _ = write!(
        out,
        "<container id=\"{}\" parentID=\"{}\" restricted=\"1\" searchable=\"0\"",
        escape(id),
        escape(parent)
    );
    if filter.wants("@childCount") || filter.wants("childCount") {
        let _ = write!(out, " childCount=\"{count}\"");
    }
    out.push('>');
    xml::element(out, "dc:title", title);
    out.push_str("<upnp:class>object.container.storageFolder</upnp:class></container>");
}

/// The stream URL of one file: the server's `/stream/<hash>/<index>` route,
/// with the extension after it, which some TVs read the format from.
pub fn stream_url(base: &str, ih: &InfoHash, index: usize, name: &str) -> String {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e)
        .filter(|e| e.len() <= 5 && e.bytes().all(|b| b.is_ascii_alphanumeric()))
        .unwrap_or("bin");
    format!(
        "{base}/stream/{}/{index}/file.{}",
        ih.to_hex(),
        ext.to_ascii_lowercase()
    )
}

fn item(out: &mut String, t: &Torrent, meta: &Metainfo, index: usize, filter: &Filter, base: &str) {
    let file = &meta.files[index];
    let name = file.file_name();
    let mime = mime(name).unwrap_or(media::DEFAULT_CONTENT_TYPE);
    let class = if mime.starts_with("audio/") {
        "object.item.audioItem.musicTrack"
    } else {
        "object.item.videoItem"
    };
    let hex = t.info_hash.to_hex();
    let _ = write!(
        out,
        "<item id=\"{hex}/{index}\" parentID=\"{hex}\" restricted=\"1\">"
    );
    xml::element(out, "dc:title", name);
    let _ = write!(out, "<upnp:class>{class}</upnp:class>");
    let subtitle = subtitle_for(meta, index)
        .map(|s| stream_url(base, &t.info_hash, s, meta.files[s].file_name()));
    if let (Some(url), true) = (&subtitle, filter.wants("sec:CaptionInfoEx")) {
        let _ = write!(
            out,
            "<sec:CaptionInfoEx sec:type=\"srt\">{}</sec:CaptionInfoEx>",
            escape(url)
        );
    }
    if filter.wants("res") {
        let _ = write!(
            out,
            "<res protocolInfo=\"http-get:*:{mime}:{DLNA_FEATURES}\""
        );
        if filter.wants("res@size") {
            let _ = write!(out, " size=\"{}\"", file.length);
        }
        let _ = write!(
            out,
            ">{}</res>",
            escape(&stream_url(base, &t.info_hash, index, name))
        );
        if let Some(url) = &subtitle {
            let _ = write!(
                out,
                "<res protocolInfo=\"http-get:*:text/srt:*\">{}</res>",
                escape(url)
            );
        }
    }
    out.push_str("</item>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_reads_star_and_lists() {
        assert!(Filter::parse("*").wants("res@size"));
        let f = Filter::parse("dc:title, res@size");
        assert!(f.wants("res") && f.wants("res@size") && !f.wants("@childCount"));
        assert!(!Filter::parse("").wants("res"));
    }

    #[test]
    fn stream_urls_carry_a_safe_extension() {
        let ih = InfoHash([0xab; 20]);
        assert_eq!(
            stream_url("http://h:1", &ih, 3, "A Film.MKV"),
            format!("http://h:1/stream/{}/3/file.mkv", ih.to_hex())
        );
        assert!(stream_url("http://h:1", &ih, 0, "x.<bad>").ends_with("/file.bin"));
    }
}
