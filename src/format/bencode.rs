//! Bencode, parsed with nom into borrowed values that keep their raw spans.
//!
//! Owns the byte-level grammar of BEP 3 bencode, both ways: [`parse`] and
//! [`parse_prefix`] read hostile bytes into a [`Node`] tree that borrows from
//! the input, and [`Bencode`] encodes the messages we send. Every node keeps
//! `raw`, its exact span in the input, because the info hash is the SHA-1 of
//! the bytes as they came and a re-encoding can differ (unsorted keys).
//!
//! Must never allocate in proportion to a length the input merely claims, never
//! recurse deeper than [`MAX_DEPTH`], and never panic on any input.
//!
//! # Implementation
//! Complete nom parsers. A value parser returns a recoverable `Error` only when
//! the first byte cannot start a value (so `many0` can stop at the closing
//! `e`); once a prefix commits to a branch, every error is a `Failure`, which
//! keeps the position of the real fault instead of the list that contained it.

use std::collections::BTreeMap;
use std::fmt;

use nom::bytes::complete::take;
use nom::character::complete::{char, digit1};
use nom::combinator::{cut, opt};
use nom::multi::many0;
use nom::sequence::{preceded, terminated};
use nom::{Finish, IResult, Parser};

/// Deepest nesting of lists and dicts accepted. Real torrents nest 4 deep
/// (torrent, info, files, path) and KRPC about as much; 64 leaves room while
/// keeping the recursion's stack use small and fixed.
pub const MAX_DEPTH: usize = 64;

/// Largest input accepted. The biggest real .torrent files are a few MiB
/// (their `pieces` string: 8 MiB holds 400k pieces, 100 GiB at 256 KiB), so
/// 16 MiB accepts every sane torrent while bounding what a client can make us
/// parse and hold; BEP 9 metadata is capped lower by the peer layer.
pub const MAX_INPUT: usize = 16 * 1024 * 1024;

/// Most values in one parse. Without it 16 MiB of `i0e` would become 5.6M
/// nodes (about 250 MiB of tree on a 1 GiB board). A torrent with 150k files
/// needs about 800k values.
pub const MAX_VALUES: usize = 1 << 20;

/// A parsed value with its exact span in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node<'a> {
    pub value: Value<'a>,
    /// The bytes of this value exactly as they appeared in the input.
    pub raw: &'a [u8],
}

/// A parsed bencode value, borrowing its strings from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    Int(i64),
    Bytes(&'a [u8]),
    List(Vec<Node<'a>>),
    /// Entries in input order; keys are unique but may be unsorted, as some
    /// real torrents have them.
    Dict(Vec<(&'a [u8], Node<'a>)>),
}

/// Where parsing stopped and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BencodeError {
    /// Byte offset in the input where the fault starts.
    pub pos: usize,
    pub kind: BencodeErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BencodeErrorKind {
    InputTooLarge {
        len: usize,
        max: usize,
    },
    TooDeep {
        max: usize,
    },
    TooManyValues {
        max: usize,
    },
    /// The input ended inside a value.
    Truncated,
    UnexpectedByte(u8),
    /// `i-0e`, `i03e`, `ie`, `i-e` or a stray character.
    BadInteger,
    IntegerOverflow,
    /// A string length with leading zeros or too large to represent.
    BadStringLength,
    StringPastEnd {
        len: usize,
        remaining: usize,
    },
    KeyNotString,
    DuplicateKey,
    TrailingBytes {
        count: usize,
    },
}

impl fmt::Display for BencodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use BencodeErrorKind::*;
        match self {
            InputTooLarge { len, max } => {
                write!(f, "input of {len} bytes exceeds the {max}-byte limit")
            }
            TooDeep { max } => write!(f, "nesting deeper than {max}"),
            TooManyValues { max } => write!(f, "more than {max} values"),
            Truncated => f.write_str("unexpected end of input"),
            UnexpectedByte(b) => write!(f, "unexpected byte 0x{b:02x}"),
            BadInteger => f.write_str("bad integer"),
            IntegerOverflow => f.write_str("integer overflows 64 bits"),
            BadStringLength => f.write_str("bad string length"),
            StringPastEnd { len, remaining } => {
                write!(
                    f,
                    "string of {len} bytes runs past the end ({remaining} left)"
                )
            }
            KeyNotString => f.write_str("dict key is not a string"),
            DuplicateKey => f.write_str("duplicate dict key"),
            TrailingBytes { count } => write!(f, "{count} trailing bytes"),
        }
    }
}

impl fmt::Display for BencodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bencode: {} at byte {}", self.kind, self.pos)
    }
}

impl std::error::Error for BencodeError {}

/// Parses one value that must fill the whole buffer.
pub fn parse(input: &[u8]) -> Result<Node<'_>, BencodeError> {
    let (node, used) = parse_prefix(input)?;
    if used != input.len() {
        return Err(BencodeError {
            pos: used,
            kind: BencodeErrorKind::TrailingBytes {
                count: input.len() - used,
            },
        });
    }
    Ok(node)
}

/// Parses one value at the start of the buffer and says how many bytes it
/// used; whatever follows is the caller's (BEP 9 puts a piece after the dict).
pub fn parse_prefix(input: &[u8]) -> Result<(Node<'_>, usize), BencodeError> {
    if input.len() > MAX_INPUT {
        return Err(BencodeError {
            pos: MAX_INPUT,
            kind: BencodeErrorKind::InputTooLarge {
                len: input.len(),
                max: MAX_INPUT,
            },
        });
    }
    let mut budget = MAX_VALUES;
    match value(input, 0, &mut budget).finish() {
        Ok((rest, node)) => Ok((node, input.len() - rest.len())),
        Err(fault) => Err(BencodeError {
            pos: input.len() - fault.at.len(),
            kind: fault.kind,
        }),
    }
}

/// The parsers' error: the remaining input where the fault is, so the
/// position is `input.len() - at.len()` at the API edge.
#[derive(Debug)]
struct Fault<'a> {
    at: &'a [u8],
    kind: BencodeErrorKind,
}

impl<'a> nom::error::ParseError<&'a [u8]> for Fault<'a> {
    fn from_error_kind(at: &'a [u8], _: nom::error::ErrorKind) -> Self {
        let kind = match at.first() {
            None => BencodeErrorKind::Truncated,
            Some(&b) => BencodeErrorKind::UnexpectedByte(b),
        };
        Fault { at, kind }
    }

    fn append(_: &'a [u8], _: nom::error::ErrorKind, other: Self) -> Self {
        other
    }
}

type PResult<'a, O> = IResult<&'a [u8], O, Fault<'a>>;

fn failure<O>(at: &[u8], kind: BencodeErrorKind) -> PResult<'_, O> {
    Err(nom::Err::Failure(Fault { at, kind }))
}

/// One value; `depth` counts the containers around it.
fn value<'a>(input: &'a [u8], depth: usize, budget: &mut usize) -> PResult<'a, Node<'a>> {
    let (rest, value) = match input.first() {
        Some(b'i') => cut(integer).map(Value::Int).parse(input)?,
        Some(b'0'..=b'9') => cut(byte_string).map(Value::Bytes).parse(input)?,
        Some(b'l') => list(input, depth, budget)?,
        Some(b'd') => dict(input, depth, budget)?,
        // Recoverable: lets `many0` stop at a list's closing `e`.
        _ => {
            return Err(nom::Err::Error(nom::error::ParseError::from_error_kind(
                input,
                nom::error::ErrorKind::Alt,
            )))
        }
    };
    *budget = match budget.checked_sub(1) {
        Some(left) => left,
        None => return failure(input, BencodeErrorKind::TooManyValues { max: MAX_VALUES }),
    };
    Ok((
        rest,
        Node {
            value,
            raw: &input[..input.len() - rest.len()],
        },
    ))
}

/// `i<digits>e`: no `-0`, no leading zeros, fits in an i64.
fn integer(input: &[u8]) -> PResult<'_, i64> {
    let parsed = (char('i'), opt(char('-')), digit1, char('e')).parse(input);
    let (rest, (_, minus, digits, _)) = parsed.map_err(|e| {
        e.map(|fault: Fault| match fault.kind {
            BencodeErrorKind::Truncated => fault,
            _ => Fault {
                at: input,
                kind: BencodeErrorKind::BadInteger,
            },
        })
    })?;
    let negative = minus.is_some();
    if (digits.len() > 1 && digits[0] == b'0') || (negative && digits == b"0") {
        return failure(input, BencodeErrorKind::BadInteger);
    }
    // Accumulate towards the sign so that i64::MIN parses.
    let n = digits.iter().try_fold(0i64, |acc, d| {
        let d = i64::from(d - b'0');
        let acc = acc.checked_mul(10)?;
        if negative {
            acc.checked_sub(d)
        } else {
            acc.checked_add(d)
        }
    });
    match n {
        Some(n) => Ok((rest, n)),
        None => failure(input, BencodeErrorKind::IntegerOverflow),
    }
}

/// `<len>:<bytes>`; the length is checked against what is left before any
/// byte is taken.
fn byte_string(input: &[u8]) -> PResult<'_, &[u8]> {
    let (rest, digits) = digit1(input)?;
    if digits.len() > 1 && digits[0] == b'0' {
        return failure(input, BencodeErrorKind::BadStringLength);
    }
    let len = digits.iter().try_fold(0usize, |acc, d| {
        acc.checked_mul(10)?.checked_add(usize::from(d - b'0'))
    });
    let Some(len) = len else {
        return failure(input, BencodeErrorKind::BadStringLength);
    };
    let (rest, _) = char(':').parse(rest)?;
    if len > rest.len() {
        return failure(
            input,
            BencodeErrorKind::StringPastEnd {
                len,
                remaining: rest.len(),
            },
        );
    }
    take(len).parse(rest)
}

fn enter(input: &[u8], depth: usize) -> PResult<'_, ()> {
    if depth >= MAX_DEPTH {
        return failure(input, BencodeErrorKind::TooDeep { max: MAX_DEPTH });
    }
    Ok((input, ()))
}

fn list<'a>(input: &'a [u8], depth: usize, budget: &mut usize) -> PResult<'a, Value<'a>> {
    enter(input, depth)?;
    let items = many0(|i| value(i, depth + 1, budget));
    preceded(char('l'), cut(terminated(items, char('e'))))
        .map(Value::List)
        .parse(input)
}

fn dict<'a>(input: &'a [u8], depth: usize, budget: &mut usize) -> PResult<'a, Value<'a>> {
    enter(input, depth)?;
    let (mut rest, _) = char('d').parse(input)?;
    let mut entries: Vec<(&[u8], Node)> = Vec::new();
    let mut sorted = true;
    loop {
        match rest.first() {
            Some(b'e') => break,
            Some(b'0'..=b'9') => {}
            Some(_) => return failure(rest, BencodeErrorKind::KeyNotString),
            None => return failure(rest, BencodeErrorKind::Truncated),
        }
        let (after_key, key) = cut(byte_string).parse(rest)?;
        let (after_value, node) = cut(|i| value(i, depth + 1, budget)).parse(after_key)?;
        if let Some((last, _)) = entries.last() {
            sorted &= *last < key;
        }
        entries.push((key, node));
        rest = after_value;
    }
    if !sorted {
        if let Some(key) = first_duplicate(&entries) {
            // The key borrows from `input`, so its offset locates the fault.
            let offset = key.as_ptr() as usize - input.as_ptr() as usize;
            return failure(&input[offset..], BencodeErrorKind::DuplicateKey);
        }
    }
    Ok((&rest[1..], Value::Dict(entries)))
}

/// The later of two equal keys, found by sorting so that a hostile dict with
/// many keys costs n log n, not n².
fn first_duplicate<'a>(entries: &[(&'a [u8], Node<'a>)]) -> Option<&'a [u8]> {
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by(|&a, &b| entries[a].0.cmp(entries[b].0).then(a.cmp(&b)));
    let pair = order
        .windows(2)
        .find(|w| entries[w[0]].0 == entries[w[1]].0)?;
    Some(entries[pair[1]].0)
}

impl<'a> Node<'a> {
    /// The value under `key` if this is a dict that has it.
    pub fn get(&self, key: &[u8]) -> Option<&Node<'a>> {
        self.as_dict()?
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    pub fn as_int(&self) -> Option<i64> {
        match self.value {
            Value::Int(n) => Some(n),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self.value {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The string if it is a byte string holding valid UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.as_bytes()?).ok()
    }

    pub fn as_list(&self) -> Option<&[Node<'a>]> {
        match &self.value {
            Value::List(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_dict(&self) -> Option<&[(&'a [u8], Node<'a>)]> {
        match &self.value {
            Value::Dict(entries) => Some(entries),
            _ => None,
        }
    }

    /// An owned copy for the encoder. Keys are unique, so nothing is lost
    /// except their input order.
    pub fn to_bencode(&self) -> Bencode {
        match &self.value {
            Value::Int(n) => Bencode::Int(*n),
            Value::Bytes(b) => Bencode::Bytes(b.to_vec()),
            Value::List(items) => Bencode::List(items.iter().map(Node::to_bencode).collect()),
            Value::Dict(entries) => Bencode::Dict(
                entries
                    .iter()
                    .map(|(k, v)| (k.to_vec(), v.to_bencode()))
                    .collect(),
            ),
        }
    }
}

/// An owned value to send. Dicts are `BTreeMap`s so keys come out sorted, as
/// BEP 3 requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bencode {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Bencode>),
    Dict(BTreeMap<Vec<u8>, Bencode>),
    /// Bytes that are already one encoded value, written as they are: a
    /// .torrent is written around the original info dict so its hash holds.
    Raw(Vec<u8>),
}

impl Bencode {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Bencode::Int(n) => {
                out.push(b'i');
                out.extend_from_slice(n.to_string().as_bytes());
                out.push(b'e');
            }
            Bencode::Bytes(b) => {
                out.extend_from_slice(b.len().to_string().as_bytes());
                out.push(b':');
                out.extend_from_slice(b);
            }
            Bencode::List(items) => {
                out.push(b'l');
                items.iter().for_each(|item| item.encode(out));
                out.push(b'e');
            }
            Bencode::Dict(entries) => {
                out.push(b'd');
                for (key, value) in entries {
                    Bencode::Bytes(key.clone()).encode(out);
                    value.encode(out);
                }
                out.push(b'e');
            }
            Bencode::Raw(raw) => out.extend_from_slice(raw),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(input: &[u8]) -> BencodeError {
        parse(input).expect_err("must be rejected")
    }

    #[test]
    fn parses_every_kind_with_raw_spans() {
        let input = b"d3:agei-42e4:listl0:i0ee4:name4:spame";
        let node = parse(input).unwrap();
        assert_eq!(node.raw, &input[..]);
        assert_eq!(node.get(b"age").unwrap().as_int(), Some(-42));
        assert_eq!(node.get(b"age").unwrap().raw, b"i-42e");
        assert_eq!(node.get(b"name").unwrap().as_str(), Some("spam"));
        let list = node.get(b"list").unwrap();
        assert_eq!(list.raw, b"l0:i0ee");
        let items = list.as_list().unwrap();
        assert_eq!(items[0].as_bytes(), Some(&b""[..]));
        assert_eq!(items[1].as_int(), Some(0));
        assert!(node.get(b"missing").is_none());
        assert!(items[0].get(b"x").is_none());
    }

    #[test]
    fn integer_extremes_parse() {
        assert_eq!(
            parse(b"i9223372036854775807e").unwrap().as_int(),
            Some(i64::MAX)
        );
        assert_eq!(
            parse(b"i-9223372036854775808e").unwrap().as_int(),
            Some(i64::MIN)
        );
        assert_eq!(
            err(b"i9223372036854775808e").kind,
            BencodeErrorKind::IntegerOverflow
        );
        assert_eq!(
            err(b"i-9223372036854775809e").kind,
            BencodeErrorKind::IntegerOverflow
        );
    }

    #[test]
    fn malformed_integers_are_rejected_at_their_start() {
        for bad in [
            &b"i-0e"[..],
            b"i03e",
            b"i-03e",
            b"ie",
            b"i-e",
            b"i1-2e",
            b"i+1e",
            b"i 1e",
        ] {
            assert_eq!(
                err(bad),
                BencodeError {
                    pos: 0,
                    kind: BencodeErrorKind::BadInteger
                },
                "{bad:?}"
            );
        }
        let e = err(b"l4:spami03ee");
        assert_eq!((e.pos, &e.kind), (7, &BencodeErrorKind::BadInteger));
        assert_eq!(e.to_string(), "bencode: bad integer at byte 7");
    }

    #[test]
    fn string_lengths_are_checked() {
        assert_eq!(err(b"03:abc").kind, BencodeErrorKind::BadStringLength);
        // 4e9 fits a 32-bit usize too (armv7, board/qemu-unit), and is far past the end.
        assert_eq!(
            err(b"4000000000:abc"),
            BencodeError {
                pos: 0,
                kind: BencodeErrorKind::StringPastEnd {
                    len: 4000000000,
                    remaining: 3
                }
            }
        );
        assert_eq!(
            err(b"99999999999999999999999:x").kind,
            BencodeErrorKind::BadStringLength
        );
        assert_eq!(err(b"3abc").kind, BencodeErrorKind::UnexpectedByte(b'a'));
    }

    #[test]
    fn truncated_inputs_name_the_end() {
        for bad in [
            &b""[..],
            b"i12",
            b"4:ab",
            b"l",
            b"li1e",
            b"d3:key",
            b"d3:keyi1e",
            b"12",
        ] {
            let e = err(bad);
            assert!(
                e.kind == BencodeErrorKind::Truncated
                    || matches!(e.kind, BencodeErrorKind::StringPastEnd { .. }),
                "{bad:?}: {e}"
            );
        }
        assert_eq!(err(b"li1e").pos, 4);
    }

    #[test]
    fn depth_is_limited() {
        let ok = [vec![b'l'; MAX_DEPTH], vec![b'e'; MAX_DEPTH]].concat();
        assert!(parse(&ok).is_ok());
        let deep = [vec![b'l'; MAX_DEPTH + 1], vec![b'e'; MAX_DEPTH + 1]].concat();
        assert_eq!(
            err(&deep),
            BencodeError {
                pos: MAX_DEPTH,
                kind: BencodeErrorKind::TooDeep { max: MAX_DEPTH }
            }
        );
        let bomb = vec![b'l'; 100_000];
        assert_eq!(
            err(&bomb).kind,
            BencodeErrorKind::TooDeep { max: MAX_DEPTH }
        );
        let dict_bomb = b"d1:a".repeat(100_000);
        assert_eq!(
            err(&dict_bomb).kind,
            BencodeErrorKind::TooDeep { max: MAX_DEPTH }
        );
    }

    #[test]
    fn size_and_value_count_are_limited() {
        let big = vec![b'0'; MAX_INPUT + 1];
        assert_eq!(
            err(&big).kind,
            BencodeErrorKind::InputTooLarge {
                len: MAX_INPUT + 1,
                max: MAX_INPUT
            }
        );
        let many = [&b"l"[..], &b"0:".repeat(MAX_VALUES), b"e"].concat();
        assert_eq!(
            err(&many).kind,
            BencodeErrorKind::TooManyValues { max: MAX_VALUES }
        );
        let just_fits = [&b"l"[..], &b"0:".repeat(MAX_VALUES - 1), b"e"].concat();
        assert!(parse(&just_fits).is_ok());
    }

    #[test]
    fn dict_keys_must_be_unique_strings_but_may_be_unsorted() {
        let unsorted = parse(b"d1:bi1e1:ai2ee").unwrap();
        assert_eq!(unsorted.get(b"a").unwrap().as_int(), Some(2));
        assert_eq!(
            err(b"d1:ai1e1:ai2ee"),
            BencodeError {
                pos: 9,
                kind: BencodeErrorKind::DuplicateKey
            }
        );
        assert_eq!(
            err(b"d1:bi1e1:ai2e1:bi3ee").kind,
            BencodeErrorKind::DuplicateKey
        );
        assert_eq!(
            err(b"di1ei2ee"),
            BencodeError {
                pos: 1,
                kind: BencodeErrorKind::KeyNotString
            }
        );
        assert_eq!(err(b"d1:ae").kind, BencodeErrorKind::UnexpectedByte(b'e'));
    }

    #[test]
    fn trailing_bytes_fail_parse_but_not_parse_prefix() {
        assert_eq!(
            err(b"i1eXYZ"),
            BencodeError {
                pos: 3,
                kind: BencodeErrorKind::TrailingBytes { count: 3 }
            }
        );
        let (node, used) = parse_prefix(b"d8:msg_typei1ee\x00\x01piece").unwrap();
        assert_eq!(
            (node.get(b"msg_type").unwrap().as_int(), used),
            (Some(1), 15)
        );
        assert_eq!(err(b"x").kind, BencodeErrorKind::UnexpectedByte(b'x'));
    }

    #[test]
    fn encoder_round_trips_and_sorts_keys() {
        let mut dict = BTreeMap::new();
        dict.insert(b"z".to_vec(), Bencode::Int(-7));
        dict.insert(
            b"a".to_vec(),
            Bencode::List(vec![Bencode::Bytes(b"".to_vec()), Bencode::Int(0)]),
        );
        let value = Bencode::Dict(dict);
        let bytes = value.to_bytes();
        assert_eq!(bytes, b"d1:al0:i0ee1:zi-7ee");
        assert_eq!(parse(&bytes).unwrap().to_bencode(), value);
    }

    #[test]
    fn raw_is_embedded_verbatim() {
        let original = b"d1:bi1e1:ai2ee";
        let mut outer = BTreeMap::new();
        outer.insert(b"info".to_vec(), Bencode::Raw(original.to_vec()));
        let bytes = Bencode::Dict(outer).to_bytes();
        assert_eq!(bytes, b"d4:infod1:bi1e1:ai2eee");
        assert_eq!(parse(&bytes).unwrap().get(b"info").unwrap().raw, original);
    }

    #[test]
    fn unsorted_input_re_encodes_sorted_with_same_tree() {
        let node = parse(b"d1:bi1e1:ai2ee").unwrap();
        let again = node.to_bencode().to_bytes();
        assert_eq!(again, b"d1:ai2e1:bi1ee");
        assert_eq!(parse(&again).unwrap().to_bencode(), node.to_bencode());
    }
}
