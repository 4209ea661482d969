//! The env file: `KEY=VALUE` lines in the syntax systemd's `EnvironmentFile=`
//! reads, so one file serves both the unit and `streme --env-file`.
//!
//! Owns turning text into numbered assignments. Never knows which keys streme
//! uses, never reads a file and never touches the process environment.
//!
//! # The syntax (as systemd's `src/basic/env-file.c` reads it)
//! - Blank lines are skipped, and so are lines whose first non-blank character
//!   is `#` or `;` (a comment runs to the end of its line; since systemd v254 a
//!   trailing backslash does not continue it).
//! - `KEY=VALUE`: blanks around the key and before the value are dropped.
//! - An unquoted value runs to the end of the line, its trailing blanks are
//!   dropped, `\x` stands for `x`, and a backslash before the newline continues
//!   the value on the next line.
//! - `'…'` is literal and may span lines. In `"…"`, `\"`, `\\`, `` \` `` and
//!   `\$` stand for the character, a backslash before the newline continues the
//!   value, and any other backslash stays. Quoted pieces join with what
//!   follows them: `"a" 'b'` and `"a"b` are both `ab`.
//!
//! Where systemd skips a line with a log message (no `=`, a key that is not a
//! variable name such as `export FOO`), this parser stops with an error naming
//! the line: a setting dropped without a word is the typo we want caught.

use std::fmt;

use nom::branch::alt;
use nom::bytes::complete::{take_till, take_till1};
use nom::character::complete::{anychar, char, space0};
use nom::combinator::opt;
use nom::error::{ErrorKind, ParseError};
use nom::multi::{fold_many0, many0};
use nom::sequence::preceded;
use nom::{IResult, Parser};

/// One `KEY=VALUE` line (or several, when the value continues).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// 1-based number of the line where the key stands.
    pub line: usize,
    pub key: String,
    pub value: String,
}

/// Why the file cannot be read as an env file, and on which line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A line that is neither blank, a comment nor an assignment.
    MissingEquals { text: String },
    /// `export KEY=…` is shell syntax that systemd does not accept.
    Export { key: String },
    /// A key that is not a variable name (`[A-Za-z_][A-Za-z0-9_]*`).
    InvalidKey { key: String },
    /// A quote that is still open at the end of the file.
    UnterminatedQuote { quote: char },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::MissingEquals { text } => {
                write!(f, "expected KEY=VALUE, got {text:?}")
            }
            Problem::Export { key } => write!(
                f,
                "`export {key}=…` is shell syntax that systemd's EnvironmentFile does not accept; write `{key}=…`"
            ),
            Problem::InvalidKey { key } => write!(
                f,
                "{key:?} is not a variable name (letters, digits and _, not starting with a digit)"
            ),
            Problem::UnterminatedQuote { quote } => {
                write!(f, "the value opens a {quote} quote that is never closed")
            }
        }
    }
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.problem)
    }
}

/// Reads every assignment of `text`, in order. A key that appears twice is
/// returned twice; the caller keeps the last, as systemd does.
pub fn parse(text: &str) -> Result<Vec<Assignment>, SyntaxError> {
    let mut assignments = Vec::new();
    let mut rest = text;
    let mut line = 1;
    loop {
        let start = rest.trim_start_matches([' ', '\t', '\n', '\r']);
        line += newlines(&rest[..rest.len() - start.len()]);
        rest = start;
        if rest.is_empty() {
            return Ok(assignments);
        }
        if rest.starts_with(['#', ';']) {
            rest = rest.trim_start_matches(|c| !is_newline(c));
            continue;
        }
        let (after, (key, value)) =
            assignment(rest).map_err(|problem| SyntaxError { line, problem })?;
        assignments.push(Assignment { line, key, value });
        line += newlines(&rest[..rest.len() - after.len()]);
        rest = after;
    }
}

fn newlines(s: &str) -> usize {
    s.bytes().filter(|&b| b == b'\n').count()
}

/// systemd ends a line at either of these (so a CRLF file works line by line).
fn is_newline(c: char) -> bool {
    c == '\n' || c == '\r'
}

fn is_variable_name(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `KEY=VALUE` at the start of `input`, which is not blank and not a comment.
fn assignment(input: &str) -> Result<(&str, (String, String)), Problem> {
    let key_end = input
        .find(|c| c == '=' || is_newline(c))
        .unwrap_or(input.len());
    let raw_key = input[..key_end].trim_end_matches([' ', '\t']);
    if !input[key_end..].starts_with('=') {
        return Err(Problem::MissingEquals {
            text: raw_key.to_string(),
        });
    }
    if let Some(key) = raw_key
        .strip_prefix("export")
        .filter(|k| k.starts_with([' ', '\t']))
    {
        return Err(Problem::Export {
            key: key.trim_start_matches([' ', '\t']).to_string(),
        });
    }
    if !is_variable_name(raw_key) {
        return Err(Problem::InvalidKey {
            key: raw_key.to_string(),
        });
    }
    match value(&input[key_end + 1..]) {
        Ok((rest, value)) => Ok((rest, (raw_key.to_string(), value))),
        Err(nom::Err::Failure(LexError::Unterminated(quote))) => {
            Err(Problem::UnterminatedQuote { quote })
        }
        // Every branch of `value` is optional, so only a quote can fail it.
        Err(_) => unreachable!("the value parser fails only on an open quote"),
    }
}

/// The parsers' error: nom's own, or a quote left open (which commits).
#[derive(Debug)]
enum LexError {
    Nom,
    Unterminated(char),
}

impl<I> ParseError<I> for LexError {
    fn from_error_kind(_: I, _: ErrorKind) -> Self {
        LexError::Nom
    }
    fn append(_: I, _: ErrorKind, other: Self) -> Self {
        other
    }
}

type Lex<'a, O> = IResult<&'a str, O, LexError>;

/// Everything after `=`: quoted pieces (each may be followed by blanks), then
/// an unquoted rest of the line. Stops before the newline.
fn value(input: &str) -> Lex<'_, String> {
    let quoted = preceded(space0, alt((single_quoted, double_quoted)));
    let (rest, (pieces, tail)) = (many0(quoted), preceded(space0, opt(unquoted))).parse(input)?;
    let mut value = pieces.concat();
    value.push_str(&tail.unwrap_or_default());
    Ok((rest, value))
}

fn closing(quote: char) -> impl Fn(&str) -> Lex<'_, char> {
    move |input| {
        char::<_, LexError>(quote)
            .parse(input)
            .map_err(|_| nom::Err::Failure(LexError::Unterminated(quote)))
    }
}

fn single_quoted(input: &str) -> Lex<'_, String> {
    let (rest, (_, body, _)) =
        (char('\''), take_till(|c| c == '\''), closing('\'')).parse(input)?;
    Ok((rest, body.to_string()))
}

fn double_quoted(input: &str) -> Lex<'_, String> {
    let body = fold_many0(
        alt((double_quoted_escape, take_till1(|c| c == '"' || c == '\\'))),
        String::new,
        |mut acc, piece| {
            acc.push_str(piece);
            acc
        },
    );
    let (rest, (_, body, _)) = (char('"'), body, closing('"')).parse(input)?;
    Ok((rest, body))
}

/// A backslash inside double quotes: unescapes what the shell would need
/// escaped, eats an escaped newline, and keeps any other backslash.
fn double_quoted_escape(input: &str) -> Lex<'_, &str> {
    let (rest, (_, c)) = (char('\\'), anychar).parse(input)?;
    let kept = match c {
        '"' | '\\' | '`' | '$' => &input[1..2],
        '\n' => "",
        _ => &input[..1 + c.len_utf8()],
    };
    Ok((rest, kept))
}

/// The unquoted rest of a line, up to the newline (escaped newlines continue
/// it). Blanks at its end are dropped unless a backslash protects them.
fn unquoted(input: &str) -> Lex<'_, String> {
    enum Piece<'a> {
        Plain(&'a str),
        Escaped(Option<char>),
    }
    let escaped =
        preceded(char('\\'), opt(anychar)).map(|c| Piece::Escaped(c.filter(|&c| !is_newline(c))));
    let plain = take_till1(|c| c == '\\' || is_newline(c)).map(Piece::Plain);
    let (rest, pieces) = nom::multi::many1(alt((escaped, plain))).parse(input)?;
    let mut value = String::new();
    let last = pieces.len() - 1;
    for (i, piece) in pieces.into_iter().enumerate() {
        match piece {
            Piece::Plain(s) if i == last => value.push_str(s.trim_end_matches([' ', '\t'])),
            Piece::Plain(s) => value.push_str(s),
            Piece::Escaped(c) => value.extend(c),
        }
    }
    Ok((rest, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(usize, String, String)> {
        parse(text)
            .unwrap()
            .into_iter()
            .map(|a| (a.line, a.key, a.value))
            .collect()
    }

    fn one(text: &str) -> String {
        let all = pairs(text);
        assert_eq!(all.len(), 1, "{all:?}");
        all[0].2.clone()
    }

    fn problem(text: &str) -> (usize, Problem) {
        let e = parse(text).unwrap_err();
        (e.line, e.problem)
    }

    #[test]
    fn plain_lines_with_comments_and_blanks() {
        let text = "# streme\n\nPORT=8080\n; other comment\n  HOST=::1\n";
        assert_eq!(
            pairs(text),
            vec![
                (3, "PORT".into(), "8080".into()),
                (5, "HOST".into(), "::1".into())
            ]
        );
    }

    #[test]
    fn whitespace_around_equals_is_trimmed() {
        assert_eq!(
            pairs("PORT = 8080   \n"),
            vec![(1, "PORT".into(), "8080".into())]
        );
        assert_eq!(one("A=\t x y \t"), "x y");
    }

    #[test]
    fn empty_value_is_empty() {
        assert_eq!(one("A=\n"), "");
        assert_eq!(one("A="), "");
    }

    #[test]
    fn hash_inside_a_value_is_kept() {
        assert_eq!(one("A=a#b ;c"), "a#b ;c");
    }

    #[test]
    fn single_quotes_are_literal_and_may_span_lines() {
        assert_eq!(one(r"A='a \n $x'"), r"a \n $x");
        assert_eq!(
            pairs("A='one\ntwo'\nB=3"),
            vec![
                (1, "A".into(), "one\ntwo".into()),
                (3, "B".into(), "3".into())
            ]
        );
    }

    #[test]
    fn double_quotes_unescape_what_the_shell_needs() {
        assert_eq!(one(r#"A="q\" b\\ t\` d\$ n\n""#), r#"q" b\ t` d$ n\n"#);
        assert_eq!(one("A=\"  keep blanks  \""), "  keep blanks  ");
    }

    #[test]
    fn quoted_pieces_join() {
        assert_eq!(one(r#"A="a" 'b'"#), "ab");
        assert_eq!(one(r#"A="a"b c"#), "ab c");
        // Once unquoted, quotes are literal characters.
        assert_eq!(one(r#"A=a"b""#), r#"a"b""#);
    }

    #[test]
    fn trailing_backslash_continues_the_value() {
        assert_eq!(
            pairs("A=one \\\ntwo\nB=2"),
            vec![
                (1, "A".into(), "one two".into()),
                (3, "B".into(), "2".into())
            ]
        );
        assert_eq!(one("A=\"one\\\ntwo\""), "onetwo");
    }

    #[test]
    fn backslash_escapes_in_unquoted_values() {
        assert_eq!(one(r"A=a\ \#\\"), r"a #\");
        // An escaped blank survives the trimming of trailing blanks.
        assert_eq!(one(r"A=a\ "), "a ");
    }

    #[test]
    fn comment_backslash_does_not_continue() {
        assert_eq!(pairs("# note \\\nA=1"), vec![(2, "A".into(), "1".into())]);
    }

    #[test]
    fn crlf_lines() {
        assert_eq!(
            pairs("A=1\r\nB=two words\r\n"),
            vec![
                (1, "A".into(), "1".into()),
                (2, "B".into(), "two words".into())
            ]
        );
    }

    #[test]
    fn export_is_rejected_with_its_line() {
        assert_eq!(
            problem("A=1\nexport PORT=1\n"),
            (2, Problem::Export { key: "PORT".into() })
        );
    }

    #[test]
    fn line_without_equals_is_rejected() {
        assert_eq!(
            problem("A=1\n\nPORT 8080\n"),
            (
                3,
                Problem::MissingEquals {
                    text: "PORT 8080".into()
                }
            )
        );
    }

    #[test]
    fn invalid_keys_are_rejected() {
        assert_eq!(
            problem("1A=1"),
            (1, Problem::InvalidKey { key: "1A".into() })
        );
        assert_eq!(problem("=1"), (1, Problem::InvalidKey { key: "".into() }));
        assert_eq!(
            problem("A-B=1"),
            (1, Problem::InvalidKey { key: "A-B".into() })
        );
    }

    #[test]
    fn unterminated_quotes_are_rejected() {
        assert_eq!(
            problem("A=1\nB=\"open\nC=2"),
            (2, Problem::UnterminatedQuote { quote: '"' })
        );
        assert_eq!(
            problem("B='open"),
            (1, Problem::UnterminatedQuote { quote: '\'' })
        );
        assert_eq!(
            problem("B=\"open\\"),
            (1, Problem::UnterminatedQuote { quote: '"' })
        );
    }

    #[test]
    fn error_messages_name_the_line() {
        let e = parse("\n\nexport A=1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 3: `export A=…` is shell syntax that systemd's EnvironmentFile does not accept; write `A=…`"
        );
    }

    #[test]
    fn every_short_input_parses_or_names_a_line() {
        // Exhaustive over the characters the grammar cares about: no input
        // may panic, and an error always points at a line that exists.
        let alphabet = ['A', '=', '"', '\'', '\\', '\n', ' ', '#', 'e'];
        let mut text = String::new();
        for n in 0..alphabet.len().pow(5) {
            text.clear();
            let mut k = n;
            for _ in 0..5 {
                text.push(alphabet[k % alphabet.len()]);
                k /= alphabet.len();
            }
            if let Err(e) = parse(&text) {
                assert!(
                    e.line >= 1 && e.line <= text.lines().count().max(1),
                    "{text:?}: {e}"
                );
            }
        }
    }
}
