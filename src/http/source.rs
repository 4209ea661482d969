//! Content sources: a template from `HTTP_SOURCES`, or a web seed (the
//! torrent's `url-list`, a magnet's `ws=`), and the URL each gives for a file.
//!
//! Owns the BEP 19 URL rules. Must never trust a web seed's scheme: only
//! http:// and https:// become sources, anything else is skipped.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::format::bencode;
use crate::format::metainfo::Metainfo;
use crate::format::template::{encode_segment, hash_value, Placeholder, Template};

/// Where a source's URLs come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A content template from `HTTP_SOURCES`.
    Template(Template),
    /// A BEP 19 web seed, as given.
    WebSeed(String),
}

/// One content source for one torrent.
#[derive(Debug)]
pub struct Source {
    pub origin: Origin,
    /// Whether the torrent is single-file, which BEP 19 URLs depend on. Read
    /// from the info dict once: `Metainfo::files` cannot tell a single-file
    /// torrent from a multi-file one holding one file named like the torrent.
    single_file: bool,
    /// Set once the source has answered 200 to a ranged request, so that
    /// the fact is logged once per source rather than once per request.
    pub(super) ignores_range: AtomicBool,
}

impl Clone for Source {
    fn clone(&self) -> Source {
        Source {
            origin: self.origin.clone(),
            single_file: self.single_file,
            ignores_range: AtomicBool::new(self.ignores_range.load(Ordering::Relaxed)),
        }
    }
}

impl Source {
    fn new(origin: Origin, single_file: bool) -> Source {
        Source {
            origin,
            single_file,
            ignores_range: AtomicBool::new(false),
        }
    }

    /// The URL of file `file_index` of `meta` (the torrent this source was
    /// made for by [`sources_for`]).
    pub fn url(&self, meta: &Metainfo, file_index: usize) -> String {
        let file = &meta.files[file_index];
        match &self.origin {
            Origin::Template(t) => t.expand(|p| match p {
                Placeholder::Hash | Placeholder::HashUpper => hash_value(p, meta.info_hash),
                Placeholder::Name => encode_segment(&meta.name),
                Placeholder::Path => bep19_path(meta, file_index, self.single_file),
                Placeholder::File => encode_segment(file.file_name()),
                Placeholder::Index => file_index.to_string(),
            }),
            Origin::WebSeed(base) if self.single_file => {
                // BEP 19: a URL ending in `/` names a directory holding the file.
                if base.ends_with('/') {
                    format!("{base}{}", encode_segment(&meta.name))
                } else {
                    base.clone()
                }
            }
            Origin::WebSeed(base) => {
                let slash = if base.ends_with('/') { "" } else { "/" };
                format!(
                    "{base}{slash}{}",
                    bep19_path(meta, file_index, self.single_file)
                )
            }
        }
    }

    /// What to call the source in logs and the API.
    pub fn label(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::Template(t) => write!(f, "template {t}"),
            Origin::WebSeed(url) => write!(f, "web seed {url}"),
        }
    }
}

/// The name, then (multi-file only) the file's segments, each encoded.
fn bep19_path(meta: &Metainfo, file_index: usize, single_file: bool) -> String {
    let mut path = encode_segment(&meta.name);
    if !single_file {
        for segment in &meta.files[file_index].path {
            path.push('/');
            path.push_str(&encode_segment(segment));
        }
    }
    path
}

/// The sources for `meta`, in order: the configured templates, then the
/// torrent's web seeds, then `extra_web_seeds` (a magnet's `ws=`), each URL
/// once. Web seeds that are not http(s) are skipped.
pub fn sources_for(
    meta: &Metainfo,
    templates: &[Template],
    extra_web_seeds: &[String],
) -> Vec<Source> {
    let single_file = bencode::parse(&meta.info_bytes)
        .map(|info| info.get(b"files").is_none())
        .unwrap_or(meta.files.len() == 1);
    let mut out: Vec<Source> = templates
        .iter()
        .map(|t| Source::new(Origin::Template(t.clone()), single_file))
        .collect();
    let mut seen = HashSet::new();
    for seed in meta.web_seeds.iter().chain(extra_web_seeds) {
        let seed = seed.trim();
        let lower = seed.to_ascii_lowercase();
        let http = lower.starts_with("http://") || lower.starts_with("https://");
        if http && seen.insert(seed.to_string()) {
            out.push(Source::new(Origin::WebSeed(seed.to_string()), single_file));
        } else if !http {
            log::debug!("[Hybrid] web seed {seed:?} skipped: not http(s)");
        }
    }
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::format::bencode::Bencode;
    use std::collections::BTreeMap;

    fn bytes(s: &str) -> Bencode {
        Bencode::Bytes(s.as_bytes().to_vec())
    }

    /// A torrent from `(path, length, padding)` files; one path segment and
    /// `single` makes it single-file. Piece hashes are of `content`, when given.
    pub fn torrent(
        name: &str,
        files: &[(&[&str], u64, bool)],
        piece_length: u64,
        single: bool,
        web_seeds: &[&str],
        content: Option<&[u8]>,
    ) -> Metainfo {
        use sha1::{Digest, Sha1};
        let total: u64 = files.iter().map(|f| f.1).sum();
        let mut info = BTreeMap::new();
        info.insert(b"name".to_vec(), bytes(name));
        info.insert(b"piece length".to_vec(), Bencode::Int(piece_length as i64));
        let pieces: Vec<u8> = match content {
            Some(c) => c
                .chunks(piece_length as usize)
                .flat_map(|p| Sha1::digest(p).to_vec())
                .collect(),
            None => vec![0; 20 * total.div_ceil(piece_length) as usize],
        };
        info.insert(b"pieces".to_vec(), Bencode::Bytes(pieces));
        if single {
            info.insert(b"length".to_vec(), Bencode::Int(files[0].1 as i64));
        } else {
            let list = files
                .iter()
                .map(|(path, len, pad)| {
                    let mut f = BTreeMap::new();
                    f.insert(b"length".to_vec(), Bencode::Int(*len as i64));
                    f.insert(
                        b"path".to_vec(),
                        Bencode::List(path.iter().map(|s| bytes(s)).collect()),
                    );
                    if *pad {
                        f.insert(b"attr".to_vec(), bytes("p"));
                    }
                    Bencode::Dict(f)
                })
                .collect();
            info.insert(b"files".to_vec(), Bencode::List(list));
        }
        let mut root = BTreeMap::new();
        root.insert(b"info".to_vec(), Bencode::Dict(info));
        if !web_seeds.is_empty() {
            root.insert(
                b"url-list".to_vec(),
                Bencode::List(web_seeds.iter().map(|s| bytes(s)).collect()),
            );
        }
        Metainfo::from_torrent_bytes(&Bencode::Dict(root).to_bytes()).unwrap()
    }

    fn multi() -> Metainfo {
        torrent(
            "My Show #1",
            &[
                (&["Season 1", "é 01?.mkv"], 10, false),
                (&["b.txt"], 5, false),
            ],
            16,
            false,
            &[
                "http://ws.example/base",
                "ftp://no.example/",
                "http://ws.example/base",
            ],
            None,
        )
    }

    #[test]
    fn template_path_encodes_every_segment() {
        let meta = multi();
        let t = Template::parse(
            "http://h/{hash}/{path}?f={file}&i={index}&n={name}",
            Placeholder::CONTENT,
        )
        .unwrap();
        let sources = sources_for(&meta, &[t], &[]);
        assert_eq!(
            sources[0].url(&meta, 0),
            format!(
                "http://h/{}/My%20Show%20%231/Season%201/%C3%A9%2001%3F.mkv\
                 ?f=%C3%A9%2001%3F.mkv&i=0&n=My%20Show%20%231",
                meta.info_hash.to_hex()
            )
        );
    }

    #[test]
    fn multi_file_web_seed_gets_name_and_path_and_bad_seeds_are_skipped() {
        let meta = multi();
        let sources = sources_for(
            &meta,
            &[],
            &["http://ws.example/base".into(), "https://x/".into()],
        );
        let labels: Vec<String> = sources.iter().map(Source::label).collect();
        assert_eq!(
            labels,
            ["web seed http://ws.example/base", "web seed https://x/"]
        );
        assert_eq!(
            sources[0].url(&meta, 1),
            "http://ws.example/base/My%20Show%20%231/b.txt"
        );
        assert_eq!(
            sources[1].url(&meta, 0),
            "https://x/My%20Show%20%231/Season%201/%C3%A9%2001%3F.mkv"
        );
    }

    #[test]
    fn single_file_web_seed_appends_the_name_only_after_a_slash() {
        let meta = torrent(
            "a film.mkv",
            &[(&["a film.mkv"], 10, false)],
            16,
            true,
            &[],
            None,
        );
        let seeds = [
            "http://w/dir/".to_string(),
            "http://w/exact.mkv".to_string(),
        ];
        let sources = sources_for(&meta, &[], &seeds);
        assert_eq!(sources[0].url(&meta, 0), "http://w/dir/a%20film.mkv");
        assert_eq!(sources[1].url(&meta, 0), "http://w/exact.mkv");
        // {path} of a single-file torrent is the name alone.
        let t = Template::parse("http://h/{path}", Placeholder::CONTENT).unwrap();
        assert_eq!(
            sources_for(&meta, &[t], &[])[0].url(&meta, 0),
            "http://h/a%20film.mkv"
        );
    }

    #[test]
    fn one_file_multi_file_torrent_still_uses_multi_file_urls() {
        let meta = torrent("x", &[(&["x"], 10, false)], 16, false, &[], None);
        let sources = sources_for(&meta, &[], &["http://w/".into()]);
        assert_eq!(sources[0].url(&meta, 0), "http://w/x/x");
    }
}
