//! Range requests (RFC 9110 §14): which bytes of a file a `Range` header asks
//! for, whether `If-Range` lets us honour it, and the framing of a
//! `multipart/byteranges` body.
//!
//! Owns the header grammar and the arithmetic against the file's length. Never
//! reads the file or writes to a socket: the streaming code does that with the
//! [`ByteRange`]s it gets here.
//!
//! # Design
//! The outcome is an enum, not an `Option` chain, so that `bytes=-500` can
//! never fall through to a 200 by accident: [`RangeRequest::Full`] is the
//! answer to no header and to an invalid one (RFC 9110 §14.2: a server
//! ignores a Range it cannot parse), [`RangeRequest::Unsatisfiable`] is the
//! 416 for a valid header of which no part fits in the file.
//!
//! Multiple parts are bounded twice, against range-request amplification
//! (CVE-2011-3192, "Apache Killer": `bytes=0-,5-,5-1,…` made Apache send the
//! same file hundreds of times over in one response): a header with more than
//! [`MAX_RANGE_PARTS`] parts is ignored, and the parts we keep are sorted and
//! coalesced where they overlap or touch (§14.2 allows both). So a response
//! body never exceeds the file plus 16 part headers. Sorting departs from the
//! §14.6 SHOULD to send parts in the order asked; players ask in order anyway.

use nom::branch::alt;
use nom::bytes::complete::tag_no_case;
use nom::character::complete::{char, digit1, space0};
use nom::combinator::{all_consuming, opt, verify};
use nom::multi::many_m_n;
use nom::sequence::preceded;
use nom::{IResult, Parser};

/// The most parts of a `Range` header we honour; a header with more is
/// ignored (full response). Players send one, a few at most; more is a
/// scanner or an amplification attempt.
pub const MAX_RANGE_PARTS: usize = 16;

/// A satisfiable byte range of a file: `start..=end`, both inclusive, as in
/// `Content-Range: bytes start-end/len`. Never empty, `end` is below the length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    /// The offset of the last byte (inclusive).
    pub end: u64,
}

impl ByteRange {
    /// The number of bytes, at least 1.
    #[allow(clippy::len_without_is_empty)] // never empty: `end` is inclusive
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// The `Content-Range` value for this range of a file of `total_len` bytes.
    pub fn content_range(&self, total_len: u64) -> String {
        format!("bytes {}-{}/{total_len}", self.start, self.end)
    }
}

/// The `Content-Range` value of a 416 response.
pub fn unsatisfied_content_range(total_len: u64) -> String {
    format!("bytes */{total_len}")
}

/// What to send for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeRequest {
    /// 200 with the whole file: no `Range`, or one we ignore.
    Full,
    /// 206 with these ranges, sorted, disjoint and not touching; one range is
    /// a plain 206, several are `multipart/byteranges`.
    Ranges(Vec<ByteRange>),
    /// 416: a valid `Range` of which no part lies within the file.
    Unsatisfiable,
}

/// One `range-spec` as written, before it meets the file's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// `first-last` or `first-` (`last` already checked to be ≥ `first`).
    From { first: u64, last: Option<u64> },
    /// `-n`: the last n bytes.
    Suffix(u64),
}

impl Spec {
    /// The bytes of a `len`-byte file this spec covers, if any.
    fn within(self, len: u64) -> Option<ByteRange> {
        let last_byte = len.checked_sub(1)?;
        match self {
            Spec::From { first, .. } if first > last_byte => None,
            Spec::From { first, last } => Some(ByteRange {
                start: first,
                end: last.map_or(last_byte, |l| l.min(last_byte)),
            }),
            Spec::Suffix(0) => None,
            Spec::Suffix(n) => Some(ByteRange {
                start: len.saturating_sub(n),
                end: last_byte,
            }),
        }
    }
}

/// Reads a `Range` header against a file of `len` bytes.
pub fn parse_range(header: Option<&str>, len: u64) -> RangeRequest {
    let Some(header) = header else {
        return RangeRequest::Full;
    };
    let Ok((_, specs)) = all_consuming(ranges_specifier).parse(header.trim_matches([' ', '\t']))
    else {
        return RangeRequest::Full;
    };
    let specs: Vec<Spec> = specs.into_iter().flatten().collect();
    if specs.is_empty() {
        // Only empty list elements (`bytes=` or `bytes=,`): not a valid range-set.
        return RangeRequest::Full;
    }
    let mut ranges: Vec<ByteRange> = specs.into_iter().filter_map(|s| s.within(len)).collect();
    if ranges.is_empty() {
        return RangeRequest::Unsatisfiable;
    }
    coalesce(&mut ranges);
    RangeRequest::Ranges(ranges)
}

/// Sorts `ranges` and merges those that overlap or touch.
fn coalesce(ranges: &mut Vec<ByteRange>) {
    ranges.sort_unstable_by_key(|r| r.start);
    let mut merged: Vec<ByteRange> = Vec::with_capacity(ranges.len());
    for r in ranges.drain(..) {
        match merged.last_mut() {
            Some(last) if r.start <= last.end.saturating_add(1) => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    *ranges = merged;
}

/// `bytes=` then a comma list of at most [`MAX_RANGE_PARTS`] elements, which
/// may be empty (RFC 9110 §5.6.1 asks recipients to accept `a, ,b`).
fn ranges_specifier(input: &str) -> IResult<&str, Vec<Option<Spec>>> {
    // The unit is case-insensitive (§14.1); no blanks around `=` (§14.2).
    let (input, _) = (tag_no_case("bytes"), char('=')).parse(input)?;
    let separator = (space0, char(','), space0);
    let (input, (first, rest)) = (
        opt(range_spec),
        many_m_n(0, MAX_RANGE_PARTS - 1, preceded(separator, opt(range_spec))),
    )
        .parse(input)?;
    let mut specs = rest;
    specs.insert(0, first);
    Ok((input, specs))
}

fn range_spec(input: &str) -> IResult<&str, Spec> {
    let int_range = verify((position, char('-'), opt(position)), |(first, _, last)| {
        last.is_none_or(|l| l >= *first)
    })
    .map(|(first, _, last)| Spec::From { first, last });
    let suffix_range = preceded(char('-'), position).map(Spec::Suffix);
    alt((int_range, suffix_range)).parse(input)
}

/// A byte position. The grammar allows any number of digits; one too large
/// for a u64 is still a position, just past the end of any file, so it
/// saturates (nginx answers `bytes=99999999999999999999-` with a 416 too).
fn position(input: &str) -> IResult<&str, u64> {
    digit1
        .map(|digits: &str| digits.parse::<u64>().unwrap_or(u64::MAX))
        .parse(input)
}

/// Whether a range request may be honoured given its `If-Range` value and
/// our (strong, quoted) `etag`. No `If-Range`: yes. Otherwise only a strong
/// ETag equal to ours (§13.1.5 requires the strong comparison). A weak tag or
/// an HTTP date gives false, the full response: we issue only strong ETags,
/// and a date cannot prove the bytes unchanged, so the safe answer is all.
pub fn if_range_allows(if_range: Option<&str>, etag: &str) -> bool {
    let Some(value) = if_range else {
        return true;
    };
    let value = value.trim_matches([' ', '\t']);
    is_strong_etag(value) && is_strong_etag(etag) && value == etag
}

/// `"…"` with no quote inside (weak tags start with `W/`).
fn is_strong_etag(s: &str) -> bool {
    s.len() >= 2 && s.starts_with('"') && s.ends_with('"') && !s[1..s.len() - 1].contains('"')
}

/// A `multipart/byteranges` boundary from `seed`. The seed should differ per
/// response (e.g. the clock mixed with a counter): a boundary must not occur
/// in the content, and a fixed one could be planted in a torrent.
pub fn multipart_boundary(seed: u64) -> String {
    format!("streme-{seed:016x}")
}

/// The `Content-Type` of a multipart response with this boundary.
pub fn multipart_content_type(boundary: &str) -> String {
    format!("multipart/byteranges; boundary={boundary}")
}

/// What precedes the bytes of one part. The leading CRLF ends the previous
/// part (or is an empty preamble, RFC 2046 §5.1.1, before the first).
pub fn part_header(boundary: &str, content_type: &str, range: ByteRange, total_len: u64) -> String {
    format!(
        "\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: {}\r\n\r\n",
        range.content_range(total_len)
    )
}

/// What follows the last part.
pub fn closing(boundary: &str) -> String {
    format!("\r\n--{boundary}--\r\n")
}

/// The exact length of the multipart body for `ranges`, so that the response
/// carries a `Content-Length` rather than chunked encoding.
pub fn multipart_length(
    boundary: &str,
    content_type: &str,
    ranges: &[ByteRange],
    total_len: u64,
) -> u64 {
    let parts: u64 = ranges
        .iter()
        .map(|r| part_header(boundary, content_type, *r, total_len).len() as u64 + r.len())
        .sum();
    parts + closing(boundary).len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(header: &str, len: u64) -> Vec<(u64, u64)> {
        match parse_range(Some(header), len) {
            RangeRequest::Ranges(r) => r.into_iter().map(|r| (r.start, r.end)).collect(),
            other => panic!("{header:?} against {len}: {other:?}"),
        }
    }

    fn full(header: &str) {
        assert_eq!(
            parse_range(Some(header), 10_000),
            RangeRequest::Full,
            "{header:?}"
        );
    }

    #[test]
    fn no_header_is_full() {
        assert_eq!(parse_range(None, 10), RangeRequest::Full);
    }

    #[test]
    fn closed_range() {
        assert_eq!(ranges("bytes=0-499", 10_000), [(0, 499)]);
        assert_eq!(ranges("bytes=5-5", 10), [(5, 5)]);
    }

    #[test]
    fn range_suffix_returns_last_bytes() {
        assert_eq!(ranges("bytes=-500", 10_000), [(9500, 9999)]);
        // A suffix longer than the file is the whole file.
        assert_eq!(ranges("bytes=-20000", 10_000), [(0, 9999)]);
    }

    #[test]
    fn suffix_of_zero_is_unsatisfiable() {
        assert_eq!(
            parse_range(Some("bytes=-0"), 10),
            RangeRequest::Unsatisfiable
        );
    }

    #[test]
    fn open_range_to_end() {
        assert_eq!(ranges("bytes=9500-", 10_000), [(9500, 9999)]);
        assert_eq!(ranges("bytes=0-", 1), [(0, 0)]);
    }

    #[test]
    fn end_past_eof_is_clamped() {
        assert_eq!(ranges("bytes=100-99999", 10_000), [(100, 9999)]);
    }

    #[test]
    fn range_past_eof_is_unsatisfiable() {
        assert_eq!(
            parse_range(Some("bytes=10000-"), 10_000),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(
            parse_range(Some("bytes=10000-20000"), 10_000),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(
            parse_range(Some("bytes=10000-,20000-"), 10_000),
            RangeRequest::Unsatisfiable
        );
    }

    #[test]
    fn unsatisfiable_parts_are_dropped_from_a_satisfiable_set() {
        assert_eq!(ranges("bytes=20000-,0-1,-0", 10_000), [(0, 1)]);
    }

    #[test]
    fn zero_length_resource_is_unsatisfiable() {
        for header in ["bytes=0-", "bytes=0-0", "bytes=-1"] {
            assert_eq!(
                parse_range(Some(header), 0),
                RangeRequest::Unsatisfiable,
                "{header}"
            );
        }
        assert_eq!(parse_range(Some("pages=1-2"), 0), RangeRequest::Full);
    }

    #[test]
    fn invalid_unit_is_ignored() {
        for header in [
            "items=0-1",
            "bytes 0-1",
            "bytes=",
            "bytes=,",
            "bytes=-",
            "bytes=abc",
            "bytes=1-2-3",
            "bytes = 0-1",
            "bytes=0x10-",
            "bytes=+1-2",
            "0-1",
            "",
        ] {
            full(header);
        }
    }

    #[test]
    fn unit_is_case_insensitive() {
        assert_eq!(ranges("Bytes=0-1", 10), [(0, 1)]);
        assert_eq!(ranges("BYTES=0-1", 10), [(0, 1)]);
    }

    #[test]
    fn reversed_range_is_ignored() {
        full("bytes=5-3");
        // One invalid part invalidates the whole header.
        full("bytes=0-1,5-3");
    }

    #[test]
    fn huge_numbers_are_positions_past_the_end() {
        assert_eq!(ranges("bytes=0-99999999999999999999999", 10), [(0, 9)]);
        assert_eq!(
            parse_range(Some("bytes=99999999999999999999999-"), 10),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(ranges("bytes=-99999999999999999999999", 10), [(0, 9)]);
        // u64::MAX itself is a number, just far past the end.
        assert_eq!(ranges("bytes=0-18446744073709551615", 10), [(0, 9)]);
        assert_eq!(
            parse_range(Some("bytes=18446744073709551615-"), 10),
            RangeRequest::Unsatisfiable
        );
    }

    #[test]
    fn multiple_parts_with_optional_whitespace() {
        assert_eq!(
            ranges("bytes=0-0 , 10-19,\t-5", 10_000),
            [(0, 0), (10, 19), (9995, 9999)]
        );
        assert_eq!(ranges("  bytes=0-0,10-19  ", 10_000), [(0, 0), (10, 19)]);
    }

    #[test]
    fn empty_list_elements_are_accepted() {
        assert_eq!(ranges("bytes=0-1,,5-6, ,", 10), [(0, 1), (5, 6)]);
    }

    #[test]
    fn overlapping_parts_are_coalesced() {
        assert_eq!(
            ranges("bytes=0-99,50-149,150-199,300-", 1000),
            [(0, 199), (300, 999)]
        );
        // Out of order and nested.
        assert_eq!(
            ranges("bytes=500-600,0-10,520-530,-10", 1000),
            [(0, 10), (500, 600), (990, 999)]
        );
    }

    #[test]
    fn apache_killer_collapses_to_one_range() {
        let header = format!(
            "bytes=0-,{}",
            (1..MAX_RANGE_PARTS)
                .map(|i| format!("{i}-"))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert_eq!(ranges(&header, 1_000_000), [(0, 999_999)]);
    }

    #[test]
    fn too_many_parts_are_ignored() {
        let parts = |n: usize| {
            (0..n)
                .map(|i| format!("{}-{}", i * 10, i * 10 + 1))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(
            ranges(&format!("bytes={}", parts(MAX_RANGE_PARTS)), 10_000).len(),
            MAX_RANGE_PARTS
        );
        full(&format!("bytes={}", parts(MAX_RANGE_PARTS + 1)));
    }

    #[test]
    fn ranges_past_4_gib_keep_every_bit() {
        const GIB: u64 = 1 << 30;
        let len = 9 * GIB + 17;
        assert_eq!(ranges("bytes=-10", len), [(len - 10, len - 1)]);
        assert_eq!(
            ranges("bytes=4294967295-4294967296", len),
            [(4 * GIB - 1, 4 * GIB)]
        );
        assert_eq!(ranges("bytes=4294967296-", len), [(4 * GIB, len - 1)]);
        assert_eq!(
            parse_range(Some("bytes=9663676433-"), len),
            RangeRequest::Unsatisfiable
        );
        let RangeRequest::Ranges(parts) = parse_range(Some("bytes=0-0,4294967296-"), len) else {
            panic!("expected ranges");
        };
        let boundary = multipart_boundary(1);
        let body = multipart_length(&boundary, "video/mp4", &parts, len);
        let headers: u64 = parts
            .iter()
            .map(|r| part_header(&boundary, "video/mp4", *r, len).len() as u64)
            .sum();
        assert_eq!(
            body,
            headers + 1 + (5 * GIB + 17) + closing(&boundary).len() as u64
        );
        assert!(
            body > u64::from(u32::MAX),
            "the length is not cut to 32 bits"
        );
    }

    #[test]
    fn byte_range_length_and_content_range() {
        let r = ByteRange { start: 10, end: 19 };
        assert_eq!(r.len(), 10);
        assert_eq!(r.content_range(100), "bytes 10-19/100");
        assert_eq!(unsatisfied_content_range(100), "bytes */100");
    }

    #[test]
    fn if_range_with_matching_strong_etag_allows() {
        assert!(if_range_allows(None, "\"abc\""));
        assert!(if_range_allows(Some("\"abc\""), "\"abc\""));
        assert!(if_range_allows(Some(" \"abc\" "), "\"abc\""));
    }

    #[test]
    fn if_range_with_other_etag_weak_tag_or_date_refuses() {
        assert!(!if_range_allows(Some("\"abd\""), "\"abc\""));
        assert!(!if_range_allows(Some("W/\"abc\""), "\"abc\""));
        assert!(!if_range_allows(Some("W/\"abc\""), "W/\"abc\""));
        assert!(!if_range_allows(
            Some("Sun, 06 Nov 1994 08:49:37 GMT"),
            "\"abc\""
        ));
        assert!(!if_range_allows(Some("abc"), "abc"));
        assert!(!if_range_allows(Some(""), "\"abc\""));
    }

    #[test]
    fn multipart_length_matches_the_body() {
        let file: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let boundary = multipart_boundary(0xfeed);
        assert_eq!(boundary, "streme-000000000000feed");
        let RangeRequest::Ranges(parts) = parse_range(Some("bytes=0-9,-5,100-"), 120) else {
            panic!("expected ranges");
        };
        let total = 120;
        let mut body = Vec::new();
        for r in &parts {
            body.extend_from_slice(part_header(&boundary, "video/mp4", *r, total).as_bytes());
            body.extend_from_slice(&file[r.start as usize..=r.end as usize]);
        }
        body.extend_from_slice(closing(&boundary).as_bytes());
        assert_eq!(
            multipart_length(&boundary, "video/mp4", &parts, total),
            body.len() as u64
        );
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with(
            "\r\n--streme-000000000000feed\r\nContent-Type: video/mp4\r\nContent-Range: bytes 0-9/120\r\n\r\n"
        ));
        assert!(text.ends_with("\r\n--streme-000000000000feed--\r\n"));
        assert_eq!(
            multipart_content_type(&boundary),
            "multipart/byteranges; boundary=streme-000000000000feed"
        );
    }
}
