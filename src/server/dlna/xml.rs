//! A tiny XML writer: escaping for text and attribute values, and its inverse
//! for the SOAP parser.
//!
//! # Design
//! Everything streme says in XML (the device description, SOAP envelopes,
//! DIDL-Lite) is a fixed shape with a few values from torrents in it, so a
//! writer is only `escape` plus string building. A crate (quick-xml, xml-rs)
//! would bring a parser and a writer we do not need for five replacements;
//! the tests below pin what the five replacements must do. Control
//! characters that XML 1.0 forbids are dropped rather than escaped: no
//! `&#1;` form is legal either, and a TV's parser would reject the document.
//!
//! Must never emit a value without passing it through [`escape`].

use std::borrow::Cow;
use std::fmt::Write;

/// `s` made safe for XML text and for attribute values in either quote.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_work) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if forbidden(c) => {}
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_work(c: char) -> bool {
    matches!(c, '&' | '<' | '>' | '"' | '\'') || forbidden(c)
}

/// Characters outside XML 1.0's `Char` production.
fn forbidden(c: char) -> bool {
    let n = c as u32;
    (n < 0x20 && !matches!(c, '\t' | '\n' | '\r')) || matches!(n, 0xFFFE | 0xFFFF)
}

/// Why escaped text could not be read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnescapeError {
    /// An `&` not followed by a known entity and `;` (at this byte offset).
    BadEntity { at: usize },
    /// A character reference to a code point XML does not allow.
    BadCharRef { code: u32 },
}

impl std::fmt::Display for UnescapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UnescapeError::BadEntity { at } => {
                write!(f, "unknown or unterminated entity at byte {at}")
            }
            UnescapeError::BadCharRef { code } => {
                write!(f, "character reference &#{code}; is not allowed")
            }
        }
    }
}

/// The text an escaped string stands for: the five predefined entities and
/// numeric character references, nothing else (no DTD, so no other entity
/// can be defined).
pub fn unescape(s: &str) -> Result<Cow<'_, str>, UnescapeError> {
    if !s.contains('&') {
        return Ok(Cow::Borrowed(s));
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let at = s.len() - rest.len() + amp;
        let tail = &rest[amp + 1..];
        // The longest entity is a character reference `#x10FFFF`.
        let semi = tail
            .find(';')
            .filter(|&i| i <= 8)
            .ok_or(UnescapeError::BadEntity { at })?;
        let name = &tail[..semi];
        let c = match name {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(hex) = name.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = name.strip_prefix('#') {
                    dec.parse::<u32>().ok()
                } else {
                    None
                }
                .ok_or(UnescapeError::BadEntity { at })?;
                char::from_u32(code)
                    .filter(|c| !forbidden(*c))
                    .ok_or(UnescapeError::BadCharRef { code })?
            }
        };
        out.push(c);
        rest = &tail[semi + 1..];
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

/// `<name>text</name>` with the text escaped.
pub fn element(out: &mut String, name: &str, text: &str) {
    let _ = write!(out, "<{name}>{}</{name}>", escape(text));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_the_five_and_drops_forbidden_controls() {
        assert_eq!(escape("plain"), Cow::Borrowed("plain"));
        assert_eq!(
            escape(r#"Tom & Jerry <1> "q" 'a'"#),
            "Tom &amp; Jerry &lt;1&gt; &quot;q&quot; &apos;a&apos;"
        );
        assert_eq!(escape("a\u{1}b\tc\u{FFFE}"), "ab\tc");
        assert_eq!(escape("Amélie 東京"), "Amélie 東京");
    }

    #[test]
    fn unescape_inverts_escape() {
        for s in ["", "x", "a & b < c > \"d\" 'e'", "&amp;", "Amélie 東京 &<"] {
            assert_eq!(unescape(&escape(s)).unwrap(), s);
        }
        assert_eq!(unescape("&#65;&#x42;&#x6771;").unwrap(), "AB東");
    }

    #[test]
    fn unescape_names_what_is_wrong() {
        assert_eq!(unescape("a & b"), Err(UnescapeError::BadEntity { at: 2 }));
        assert_eq!(unescape("&nbsp;"), Err(UnescapeError::BadEntity { at: 0 }));
        assert_eq!(unescape("&#1;"), Err(UnescapeError::BadCharRef { code: 1 }));
        assert_eq!(
            unescape("&#x110000;"),
            Err(UnescapeError::BadCharRef { code: 0x110000 })
        );
        assert_eq!(unescape("&amp"), Err(UnescapeError::BadEntity { at: 0 }));
    }
}
