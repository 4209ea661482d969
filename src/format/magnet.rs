//! Magnet links (BEP 9 `magnet:?xt=urn:btih:...`) and bare info hashes.
//!
//! Owns turning the text a user pastes into an info hash plus hints (name,
//! trackers, web seeds, peers), and writing a magnet back out. Must never
//! fetch or resolve anything: the hints are untrusted strings for the tiers
//! to try.
//!
//! # Implementation
//! Small nom parsers for the query (`&`-separated `key=value`) and for
//! percent-escapes; the info hash is 40 hex or 32 RFC 4648 base32 characters.
//! Unknown parameters are ignored, as BEP 9 expects clients to do.

use std::collections::HashSet;
use std::fmt;

use nom::bytes::complete::{tag_no_case, take_till};
use nom::character::complete::char;
use nom::combinator::{all_consuming, opt};
use nom::multi::separated_list0;
use nom::sequence::preceded;
use nom::{Finish, IResult, Parser};

use super::InfoHash;

/// Longest magnet accepted. Real ones with a dozen trackers are under 2 KiB;
/// 8 KiB bounds the work for one pasted string or API body field.
pub const MAX_MAGNET_LEN: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Magnet {
    pub info_hash: InfoHash,
    /// `dn`, when given and non-empty.
    pub display_name: Option<String>,
    /// `tr` (and `tr.N`), in order, each once.
    pub trackers: Vec<String>,
    /// `ws` web seeds (BEP 19), in order, each once.
    pub web_seeds: Vec<String>,
    /// `x.pe` peer addresses (`host:port`), in order, each once.
    pub peers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MagnetError {
    TooLong {
        len: usize,
        max: usize,
    },
    /// Neither `magnet:?...` nor a bare info hash.
    NotAMagnet {
        input: String,
    },
    MissingInfoHash,
    /// An `xt` that is neither `urn:btih:` nor `urn:btmh:`.
    UnsupportedTopic {
        xt: String,
    },
    /// A BitTorrent v2 `urn:btmh:` topic without a v1 `urn:btih:` one: streme
    /// speaks v1 only. `hash` is the SHA-256 in hex (the multihash's digest),
    /// or the topic as given when it is not a sha2-256 multihash.
    V2Only {
        hash: String,
    },
    BadInfoHash {
        value: String,
    },
    /// A bad percent-escape or a value that is not UTF-8 once decoded.
    BadEncoding {
        param: String,
        value: String,
    },
}

impl fmt::Display for MagnetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use MagnetError::*;
        match self {
            TooLong { len, max } => write!(f, "magnet: {len} bytes is longer than {max}"),
            NotAMagnet { input } => {
                write!(
                    f,
                    "magnet: {input:?} is neither a magnet link nor an info hash"
                )
            }
            MissingInfoHash => f.write_str("magnet: no xt=urn:btih: info hash"),
            UnsupportedTopic { xt } => write!(f, "magnet: unsupported xt {xt:?}"),
            V2Only { hash } => write!(
                f,
                "magnet: BitTorrent v2-only torrents are not supported yet (v2 info hash {hash}; a magnet that also has xt=urn:btih: works)"
            ),
            BadInfoHash { value } => {
                write!(
                    f,
                    "magnet: info hash {value:?} is not 40 hex or 32 base32 characters"
                )
            }
            BadEncoding { param, value } => write!(f, "magnet: bad encoding in {param}={value:?}"),
        }
    }
}

impl std::error::Error for MagnetError {}

impl Magnet {
    /// Parses `magnet:?xt=urn:btih:...&dn=...&tr=...` or a bare info hash.
    pub fn parse(input: &str) -> Result<Magnet, MagnetError> {
        if input.len() > MAX_MAGNET_LEN {
            return Err(MagnetError::TooLong {
                len: input.len(),
                max: MAX_MAGNET_LEN,
            });
        }
        let input = input.trim();
        if let Some(info_hash) = parse_info_hash(input) {
            return Ok(Magnet::bare(info_hash));
        }
        let Ok((_, params)) = all_consuming(query).parse(input).finish() else {
            let input = input.chars().take(80).collect();
            return Err(MagnetError::NotAMagnet { input });
        };
        let mut info_hash = None;
        let mut first_topic = None;
        let mut v2_topic = None;
        let mut magnet = Magnet::bare(InfoHash([0; 20]));
        let mut seen = HashSet::new();
        for (key, raw) in params {
            let key = String::from_utf8_lossy(&percent_decode(key, false).unwrap_or_default())
                .into_owned();
            let Some(value) =
                percent_decode(raw, key == "dn").and_then(|v| String::from_utf8(v).ok())
            else {
                return Err(MagnetError::BadEncoding {
                    param: key,
                    value: raw.to_string(),
                });
            };
            if value.is_empty() {
                continue;
            }
            match key.as_str() {
                "xt" => {
                    first_topic.get_or_insert_with(|| value.clone());
                    if let Ok((hash, _)) =
                        tag_no_case::<_, _, ()>("urn:btmh:").parse(value.as_str())
                    {
                        v2_topic.get_or_insert_with(|| v2_digest(hash));
                        continue;
                    }
                    if info_hash.is_some() {
                        continue;
                    }
                    if let Ok((hash, _)) =
                        tag_no_case::<_, _, ()>("urn:btih:").parse(value.as_str())
                    {
                        let parsed = parse_info_hash(hash);
                        info_hash =
                            Some(parsed.ok_or(MagnetError::BadInfoHash { value: hash.into() })?);
                    }
                }
                "dn" => {
                    magnet.display_name.get_or_insert(value);
                }
                "ws" => push_once(&mut magnet.web_seeds, &mut seen, "ws", value),
                "x.pe" => push_once(&mut magnet.peers, &mut seen, "x.pe", value),
                _ if is_tracker_key(&key) => {
                    push_once(&mut magnet.trackers, &mut seen, "tr", value)
                }
                _ => {}
            }
        }
        // A hybrid's magnet names both hashes: the v1 one is ours.
        magnet.info_hash = match (info_hash, v2_topic, first_topic) {
            (Some(hash), _, _) => hash,
            (None, Some(hash), _) => return Err(MagnetError::V2Only { hash }),
            (None, None, Some(xt)) => return Err(MagnetError::UnsupportedTopic { xt }),
            (None, None, None) => return Err(MagnetError::MissingInfoHash),
        };
        Ok(magnet)
    }

    /// A magnet with nothing but the info hash.
    pub fn bare(info_hash: InfoHash) -> Magnet {
        Magnet {
            info_hash,
            display_name: None,
            trackers: Vec::new(),
            web_seeds: Vec::new(),
            peers: Vec::new(),
        }
    }

    /// `magnet:?xt=urn:btih:<hex>` with every hint, percent-encoded.
    pub fn to_uri(&self) -> String {
        let mut uri = format!("magnet:?xt=urn:btih:{}", self.info_hash.to_hex());
        let hints = self.display_name.iter().map(|name| ("dn", name));
        let hints = hints
            .chain(self.trackers.iter().map(|t| ("tr", t)))
            .chain(self.web_seeds.iter().map(|w| ("ws", w)))
            .chain(self.peers.iter().map(|p| ("x.pe", p)));
        for (key, value) in hints {
            uri.push('&');
            uri.push_str(key);
            uri.push('=');
            percent_encode(value, &mut uri);
        }
        uri
    }
}

/// The SHA-256 named by a BEP 52 `urn:btmh:` multihash (`1220` then 64 hex),
/// lowercased; anything else is echoed (cut to 80 characters) so the user
/// still sees what was given.
fn v2_digest(multihash: &str) -> String {
    let digest = multihash
        .get(..4)
        .filter(|code| *code == "1220")
        .and_then(|_| multihash.get(4..))
        .filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
    match digest {
        Some(hex) => hex.to_ascii_lowercase(),
        None => multihash.chars().take(80).collect(),
    }
}

/// 40 hex or 32 base32 characters, either case.
fn parse_info_hash(text: &str) -> Option<InfoHash> {
    match text.len() {
        40 => InfoHash::from_hex(text),
        32 => base32(text.as_bytes()).map(InfoHash),
        _ => None,
    }
}

/// RFC 4648 base32 without padding: 32 characters are exactly 160 bits.
fn base32(text: &[u8]) -> Option<[u8; 20]> {
    let mut out = [0u8; 20];
    let (mut acc, mut bits, mut at) = (0u64, 0, 0);
    for &c in text {
        let v = match c.to_ascii_uppercase() {
            c @ b'A'..=b'Z' => c - b'A',
            c @ b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        acc = (acc << 5) | u64::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out[at] = (acc >> bits) as u8;
            at += 1;
        }
    }
    (at == 20).then_some(out)
}

/// `magnet:?` then `&`-separated `key[=value]`.
fn query(input: &str) -> IResult<&str, Vec<(&str, &str)>, ()> {
    let param = (
        take_till(|c| c == '=' || c == '&'),
        opt(preceded(char('='), take_till(|c| c == '&'))),
    );
    let param = param.map(|(key, value)| (key, value.unwrap_or("")));
    preceded(tag_no_case("magnet:?"), separated_list0(char('&'), param)).parse(input)
}

/// `tr`, or the `tr.1`, `tr.2` some generators write.
fn is_tracker_key(key: &str) -> bool {
    key == "tr"
        || key
            .strip_prefix("tr.")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn push_once(
    list: &mut Vec<String>,
    seen: &mut HashSet<(&'static str, String)>,
    kind: &'static str,
    value: String,
) {
    if seen.insert((kind, value.clone())) {
        list.push(value);
    }
}

/// Decodes `%XX` escapes (and `+` as a space when `plus_is_space`); `None`
/// on a malformed escape.
fn percent_decode(text: &str, plus_is_space: bool) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Escapes everything but RFC 3986 unreserved characters and the few
/// delimiters that mean nothing to [`Magnet::parse`] inside a value (so URLs
/// stay readable); `&`, `=`, `+`, `%`, `#` and spaces are always escaped.
fn percent_encode(text: &str, out: &mut String) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/?@!$'()*,;".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c";

    fn hash() -> InfoHash {
        InfoHash::from_hex(HEX).unwrap()
    }

    #[test]
    fn full_magnet_parses() {
        let m = Magnet::parse(&format!(
            "magnet:?xt=urn:btih:{HEX}&dn=Big+Buck%20Bunny&tr=udp%3A%2F%2Ft.example%3A80&tr=http://b/a\
             &tr=udp%3A%2F%2Ft.example%3A80&ws=https%3A%2F%2Fw%2Ff%2B&x.pe=10.0.0.1:6881&so=0-3&xl=12"
        ))
        .unwrap();
        assert_eq!(m.info_hash, hash());
        assert_eq!(m.display_name.as_deref(), Some("Big Buck Bunny"));
        assert_eq!(m.trackers, ["udp://t.example:80", "http://b/a"]);
        assert_eq!(m.web_seeds, ["https://w/f+"]);
        assert_eq!(m.peers, ["10.0.0.1:6881"]);
    }

    #[test]
    fn base32_and_bare_hashes_are_accepted() {
        // The same hash in base32, upper and lower case.
        let b32 = "3WBFL3G4PSSV7MF37AJSHWDQMLNR63I4";
        assert_eq!(
            Magnet::parse(&format!("magnet:?xt=urn:btih:{b32}"))
                .unwrap()
                .info_hash,
            hash()
        );
        let lower = format!("MAGNET:?xt=URN:BTIH:{}", b32.to_lowercase());
        assert_eq!(Magnet::parse(&lower).unwrap().info_hash, hash());
        assert_eq!(
            Magnet::parse(&format!(" {} \n", HEX.to_uppercase())).unwrap(),
            Magnet::bare(hash())
        );
        assert_eq!(Magnet::parse(b32).unwrap(), Magnet::bare(hash()));
    }

    #[test]
    fn bad_hashes_name_the_value() {
        let bad_hex = "zz8255ecdc7ca55fb0bbf81323d87062db1f6d1c";
        let err = Magnet::parse(&format!("magnet:?xt=urn:btih:{bad_hex}")).unwrap_err();
        assert_eq!(
            err,
            MagnetError::BadInfoHash {
                value: bad_hex.into()
            }
        );
        let bad_b32 = "3WBFL3G4PSSV7MF37AJSHWDQMLNR63I1";
        let err = Magnet::parse(&format!("magnet:?xt=urn:btih:{bad_b32}")).unwrap_err();
        assert_eq!(
            err,
            MagnetError::BadInfoHash {
                value: bad_b32.into()
            }
        );
        let err = Magnet::parse("magnet:?xt=urn:btih:abc").unwrap_err();
        assert_eq!(
            err.to_string(),
            "magnet: info hash \"abc\" is not 40 hex or 32 base32 characters"
        );
        assert!(matches!(
            Magnet::parse(&HEX[1..]),
            Err(MagnetError::NotAMagnet { .. })
        ));
    }

    #[test]
    fn topics_are_required_and_first_btih_wins() {
        assert_eq!(
            Magnet::parse("magnet:?dn=x&tr=udp://t").unwrap_err(),
            MagnetError::MissingInfoHash
        );
        assert_eq!(
            Magnet::parse("magnet:?").unwrap_err(),
            MagnetError::MissingInfoHash
        );
        let v2 = "urn:btmh:1220caf1e1c30e81cb361b9ee167c4aa64228a7fa4fa9f6105232b28ad099f3a302e";
        let err = Magnet::parse(&format!("magnet:?xt={v2}")).unwrap_err();
        let digest = "caf1e1c30e81cb361b9ee167c4aa64228a7fa4fa9f6105232b28ad099f3a302e";
        assert_eq!(
            err,
            MagnetError::V2Only {
                hash: digest.into()
            }
        );
        let text = err.to_string();
        assert!(text.contains("BitTorrent v2-only torrents are not supported yet"));
        assert!(text.contains(digest), "{text}");
        // Not a sha2-256 multihash: echoed, still answered as v2.
        let odd = Magnet::parse("magnet:?xt=urn:btmh:1114abcd").unwrap_err();
        assert_eq!(
            odd,
            MagnetError::V2Only {
                hash: "1114abcd".into()
            }
        );
        let other_topic = Magnet::parse("magnet:?xt=urn:sha1:abc").unwrap_err();
        assert_eq!(
            other_topic,
            MagnetError::UnsupportedTopic {
                xt: "urn:sha1:abc".into()
            }
        );
        // btmh first, btih after: the v1 hash, whichever order.
        let v2_first = format!("magnet:?xt={v2}&xt=urn:btih:{HEX}");
        assert_eq!(Magnet::parse(&v2_first).unwrap().info_hash, hash());
        let other = "0000000000000000000000000000000000000000";
        let both = format!("magnet:?xt={v2}&xt=urn:btih:{HEX}&xt=urn:btih:{other}");
        assert_eq!(Magnet::parse(&both).unwrap().info_hash, hash());
        assert!(matches!(
            Magnet::parse("http://x/?xt=1"),
            Err(MagnetError::NotAMagnet { .. })
        ));
    }

    #[test]
    fn hostile_inputs_are_refused() {
        let long = format!(
            "magnet:?xt=urn:btih:{HEX}&dn={}",
            "a".repeat(MAX_MAGNET_LEN)
        );
        assert!(matches!(
            Magnet::parse(&long),
            Err(MagnetError::TooLong { .. })
        ));
        let err = Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX}&tr=%zz")).unwrap_err();
        assert_eq!(
            err,
            MagnetError::BadEncoding {
                param: "tr".into(),
                value: "%zz".into()
            }
        );
        assert!(Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX}&dn=%ff%fe")).is_err());
        assert!(Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX}&dn=%4")).is_err());
        assert!(Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX}&dn=%e9%")).is_err());
    }

    #[test]
    fn to_uri_round_trips_awkward_values() {
        let m = Magnet {
            info_hash: hash(),
            display_name: Some("a+b & c=d 100% é".into()),
            trackers: vec!["udp://t:1/announce?x=1&y=2".into(), "tr.2".into()],
            web_seeds: vec!["http://w/ f".into()],
            peers: vec!["[::1]:6881".into()],
        };
        let uri = m.to_uri();
        assert!(
            uri.starts_with(&format!("magnet:?xt=urn:btih:{HEX}&dn=a%2Bb%20%26")),
            "{uri}"
        );
        assert!(
            uri.contains("&tr=udp://t:1/announce?x%3D1%26y%3D2&"),
            "{uri}"
        );
        assert_eq!(Magnet::parse(&uri).unwrap(), m);
        assert_eq!(
            Magnet::parse(&Magnet::bare(hash()).to_uri()).unwrap(),
            Magnet::bare(hash())
        );
    }

    #[test]
    fn indexed_tracker_keys_count_as_trackers() {
        let m = Magnet::parse(&format!(
            "magnet:?xt=urn:btih:{HEX}&tr.1=udp://a&tr.2=udp://b&tr.x=udp://c"
        ))
        .unwrap();
        assert_eq!(m.trackers, ["udp://a", "udp://b"]);
    }
}
