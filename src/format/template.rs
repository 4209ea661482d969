//! URL templates from `TORRENT_SOURCES` and `HTTP_SOURCES`, and the
//! percent-encoding of names that come from a torrent.
//!
//! Owns the placeholder grammar and its validation: a template is checked
//! once, when the configuration loads, so expanding it later cannot fail.
//! Must never put a torrent's name into a URL unencoded: names are hostile
//! input, and a `#` or `?` in one would cut the URL short.

use std::fmt;

use crate::format::InfoHash;

/// One `{…}` in a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// `{hash}`: the info hash in lower-case hex.
    Hash,
    /// `{HASH}`: the info hash in upper-case hex.
    HashUpper,
    /// `{name}`: the torrent's name, percent-encoded.
    Name,
    /// `{path}`: BEP 19 style, the name then the file's segments, each
    /// percent-encoded, joined by `/`.
    Path,
    /// `{file}`: the file's last segment, percent-encoded.
    File,
    /// `{index}`: the file's index in the torrent.
    Index,
}

impl Placeholder {
    /// What a .torrent template may use: it knows only the info hash.
    pub const TORRENT: &'static [Placeholder] = &[Placeholder::Hash, Placeholder::HashUpper];
    /// What a content template may use.
    pub const CONTENT: &'static [Placeholder] = &[
        Placeholder::Hash,
        Placeholder::HashUpper,
        Placeholder::Name,
        Placeholder::Path,
        Placeholder::File,
        Placeholder::Index,
    ];

    fn from_name(name: &str) -> Option<Placeholder> {
        Some(match name {
            "hash" => Placeholder::Hash,
            "HASH" => Placeholder::HashUpper,
            "name" => Placeholder::Name,
            "path" => Placeholder::Path,
            "file" => Placeholder::File,
            "index" => Placeholder::Index,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Slot(Placeholder),
}

/// A validated URL template: `http://` or `https://`, known placeholders only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    parts: Vec<Part>,
}

/// Why a template was refused, with the template's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    NotHttp {
        template: String,
    },
    /// `{x}` where `x` is not a placeholder this kind of template may use.
    UnknownPlaceholder {
        template: String,
        name: String,
    },
    /// A `{` with no `}` after it.
    Unclosed {
        template: String,
    },
    /// A .torrent template without `{hash}` or `{HASH}` would fetch the same
    /// file for every torrent.
    NoHash {
        template: String,
    },
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::NotHttp { template } => {
                write!(f, "{template:?} is not an http:// or https:// URL")
            }
            TemplateError::UnknownPlaceholder { template, name } => {
                write!(f, "{template:?} has an unknown placeholder {{{name}}}")
            }
            TemplateError::Unclosed { template } => write!(f, "{template:?} has a {{ without }}"),
            TemplateError::NoHash { template } => {
                write!(f, "{template:?} has neither {{hash}} nor {{HASH}}")
            }
        }
    }
}

impl std::error::Error for TemplateError {}

impl Template {
    /// Parses `text`, allowing only the placeholders in `allowed`
    /// ([`Placeholder::TORRENT`] or [`Placeholder::CONTENT`]). A .torrent
    /// template must contain the hash.
    pub fn parse(text: &str, allowed: &[Placeholder]) -> Result<Template, TemplateError> {
        let template = || text.to_string();
        let lower = text.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return Err(TemplateError::NotHttp {
                template: template(),
            });
        }
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| TemplateError::Unclosed {
                    template: template(),
                })?
                + open;
            let name = &rest[open + 1..close];
            match Placeholder::from_name(name).filter(|p| allowed.contains(p)) {
                Some(p) => parts.push(Part::Slot(p)),
                None => {
                    return Err(TemplateError::UnknownPlaceholder {
                        template: template(),
                        name: name.to_string(),
                    })
                }
            }
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        let has_hash = parts.iter().any(|p| {
            matches!(
                p,
                Part::Slot(Placeholder::Hash) | Part::Slot(Placeholder::HashUpper)
            )
        });
        if allowed == Placeholder::TORRENT && !has_hash {
            return Err(TemplateError::NoHash {
                template: template(),
            });
        }
        Ok(Template {
            text: text.to_string(),
            parts,
        })
    }

    /// A comma-separated list, as in the config; blank entries are skipped,
    /// so an empty value is an empty list.
    pub fn parse_list(text: &str, allowed: &[Placeholder]) -> Result<Vec<Template>, TemplateError> {
        text.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| Template::parse(t, allowed))
            .collect()
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The URL with every placeholder replaced by `value(placeholder)`.
    pub fn expand(&self, value: impl Fn(Placeholder) -> String) -> String {
        let mut url = String::with_capacity(self.text.len() + 64);
        for part in &self.parts {
            match part {
                Part::Literal(s) => url.push_str(s),
                Part::Slot(p) => url.push_str(&value(*p)),
            }
        }
        url
    }

    /// A .torrent template filled with `ih`.
    pub fn torrent_url(&self, ih: InfoHash) -> String {
        self.expand(|p| hash_value(p, ih))
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `{hash}` / `{HASH}`; empty for the others (unreachable for a torrent
/// template, which [`Template::parse`] limits to these two).
pub(crate) fn hash_value(p: Placeholder, ih: InfoHash) -> String {
    match p {
        Placeholder::Hash => ih.to_hex(),
        Placeholder::HashUpper => ih.to_hex().to_ascii_uppercase(),
        _ => String::new(),
    }
}

/// Percent-encodes one path segment: everything but RFC 3986 unreserved
/// characters, so `/`, `#`, `?`, `%`, spaces and non-ASCII all get encoded.
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for &b in segment.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const IH: &str = "dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c";

    #[test]
    fn torrent_template_fills_both_hash_cases() {
        let t = Template::parse(
            "https://cache.example/{HASH}.torrent?lc={hash}",
            Placeholder::TORRENT,
        )
        .unwrap();
        assert_eq!(
            t.torrent_url(InfoHash::from_hex(IH).unwrap()),
            format!(
                "https://cache.example/{}.torrent?lc={IH}",
                IH.to_ascii_uppercase()
            )
        );
    }

    #[test]
    fn unknown_placeholder_names_it_and_the_template() {
        let e = Template::parse("http://h/{hash}/{nope}", Placeholder::CONTENT).unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"http://h/{hash}/{nope}\" has an unknown placeholder {nope}"
        );
        // {path} is a content placeholder, not a .torrent one.
        assert!(matches!(
            Template::parse("http://h/{hash}/{path}", Placeholder::TORRENT),
            Err(TemplateError::UnknownPlaceholder { name, .. }) if name == "path"
        ));
    }

    #[test]
    fn refuses_other_schemes_unclosed_braces_and_hashless_torrent_templates() {
        assert!(matches!(
            Template::parse("ftp://h/{hash}", Placeholder::CONTENT),
            Err(TemplateError::NotHttp { .. })
        ));
        assert!(matches!(
            Template::parse("http://h/{hash", Placeholder::CONTENT),
            Err(TemplateError::Unclosed { .. })
        ));
        assert!(matches!(
            Template::parse("http://h/x.torrent", Placeholder::TORRENT),
            Err(TemplateError::NoHash { .. })
        ));
        assert!(Template::parse("HTTPS://h/{name}", Placeholder::CONTENT).is_ok());
    }

    #[test]
    fn list_skips_blanks_so_empty_means_none() {
        assert!(Template::parse_list("", Placeholder::TORRENT)
            .unwrap()
            .is_empty());
        let list =
            Template::parse_list(" http://a/{hash} ,, http://b/{HASH}", Placeholder::TORRENT)
                .unwrap();
        let texts: Vec<&str> = list.iter().map(Template::as_str).collect();
        assert_eq!(texts, ["http://a/{hash}", "http://b/{HASH}"]);
    }

    #[test]
    fn segments_encode_spaces_unicode_and_url_delimiters() {
        assert_eq!(encode_segment("a b"), "a%20b");
        assert_eq!(encode_segment("é"), "%C3%A9");
        assert_eq!(encode_segment("#1?x=y&z"), "%231%3Fx%3Dy%26z");
        assert_eq!(encode_segment("50%/"), "50%25%2F");
        assert_eq!(encode_segment("Movie-1.0_x~.mkv"), "Movie-1.0_x~.mkv");
    }
}
