//! `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP date.
//!
//! Owns the parse and the bounds on what a server may ask for. Must never
//! let a source park a torrent for longer than [`MAX_RETRY_AFTER`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while_m_n};
use nom::character::complete::{char, digit1};
use nom::combinator::{all_consuming, map_res};
use nom::{IResult, Parser};

/// When a 429/503 says nothing (or nonsense): long enough not to hammer a
/// struggling server, short enough for a player that is waiting.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// A hostile or confused server may ask for days; the scheduler would rather
/// fail over. Ten minutes is the longest we honour.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// The delay a `Retry-After` value asks for, measured from `now`, bounded by
/// [`MAX_RETRY_AFTER`]; [`DEFAULT_RETRY_AFTER`] when absent or unparsable.
pub fn retry_after(value: Option<&str>, now: SystemTime) -> Duration {
    let Some(value) = value.map(str::trim) else {
        return DEFAULT_RETRY_AFTER;
    };
    let delay = if let Ok((_, secs)) = all_consuming(seconds).parse(value) {
        Duration::from_secs(secs)
    } else if let Ok((_, at)) = all_consuming(imf_fixdate).parse(value) {
        // A date in the past means "now".
        at.duration_since(now).unwrap_or(Duration::ZERO)
    } else {
        return DEFAULT_RETRY_AFTER;
    };
    delay.min(MAX_RETRY_AFTER)
}

fn seconds(input: &str) -> IResult<&str, u64> {
    map_res(digit1, str::parse).parse(input)
}

fn number(n: usize) -> impl Fn(&str) -> IResult<&str, u64> {
    move |input| {
        map_res(
            take_while_m_n(n, n, |c: char| c.is_ascii_digit()),
            str::parse,
        )
        .parse(input)
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`, the only date form servers still send.
fn imf_fixdate(input: &str) -> IResult<&str, SystemTime> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let day_name = alt((
        tag("Mon"),
        tag("Tue"),
        tag("Wed"),
        tag("Thu"),
        tag("Fri"),
        tag("Sat"),
        tag("Sun"),
    ));
    let month = map_res(
        take_while_m_n(3, 3, |c: char| c.is_ascii_alphabetic()),
        |m| {
            MONTHS
                .iter()
                .position(|x| *x == m)
                .map(|i| i as u64 + 1)
                .ok_or(())
        },
    );
    let (rest, (_, _, day, _, month, _, year, _, h, _, m, _, s, _)) = (
        day_name,
        tag(", "),
        number(2),
        char(' '),
        month,
        char(' '),
        number(4),
        char(' '),
        number(2),
        char(':'),
        number(2),
        char(':'),
        number(2),
        tag(" GMT"),
    )
        .parse(input)?;
    if day == 0 || day > 31 || h > 23 || m > 59 || s > 60 {
        return Err(nom::Err::Error(nom::error::Error::new(
            input,
            nom::error::ErrorKind::Verify,
        )));
    }
    let secs = days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s;
    Ok((rest, UNIX_EPOCH + Duration::from_secs(secs)))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm), for years from 1970 on.
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).saturating_sub(719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn seconds_and_dates() {
        let now = at(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(retry_after(Some("1"), now), Duration::from_secs(1));
        assert_eq!(retry_after(Some(" 120 "), now), Duration::from_secs(120));
        assert_eq!(
            retry_after(Some("Sun, 06 Nov 1994 08:50:07 GMT"), now),
            Duration::from_secs(30)
        );
        assert_eq!(
            retry_after(Some("Sun, 06 Nov 1994 08:00:00 GMT"), now),
            Duration::ZERO
        );
        assert_eq!(
            retry_after(Some("Thu, 01 Jan 1970 00:00:10 GMT"), at(0)),
            Duration::from_secs(10)
        );
        assert_eq!(
            retry_after(Some("Sat, 29 Feb 2020 00:00:00 GMT"), at(1_582_934_400 - 3)),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn absent_garbage_and_huge_values_are_bounded() {
        let now = at(0);
        assert_eq!(retry_after(None, now), DEFAULT_RETRY_AFTER);
        for junk in ["", "-1", "soon", "1.5", "Sun, 06 Nov 1994 25:00:00 GMT"] {
            assert_eq!(retry_after(Some(junk), now), DEFAULT_RETRY_AFTER, "{junk}");
        }
        assert_eq!(retry_after(Some("999999"), now), MAX_RETRY_AFTER);
        assert_eq!(
            retry_after(Some("99999999999999999999999"), now),
            DEFAULT_RETRY_AFTER
        );
    }
}
