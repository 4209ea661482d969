//! SSDP messages (HTTPU over UDP): reading M-SEARCH, writing answers and
//! NOTIFYs.
//!
//! Pure: bytes in, a [`Search`] out; no sockets. The datagram is bounded by
//! [`MAX_DATAGRAM`] before parsing and the header count by [`MAX_HEADERS`].
//! Fuzzed with the SOAP parser by `fuzz/fuzz_targets/soap.rs`.

use nom::bytes::complete::{tag, take_while, take_while1};
use nom::character::complete::char;
use nom::{IResult, Parser};

/// The SSDP multicast group and port.
pub const GROUP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(239, 255, 255, 250);
pub const PORT: u16 = 1900;
/// The largest M-SEARCH read. Real ones are 100-300 bytes; UPnP 1.1 says a
/// datagram should fit one Ethernet frame.
pub const MAX_DATAGRAM: usize = 1500;
const MAX_HEADERS: usize = 24;
/// UPnP 1.1: a control point's MX above 5 is treated as 5.
pub const MAX_MX: u8 = 5;

/// What a search asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    /// The ST header as sent.
    pub target: String,
    /// Seconds the answer may be delayed by, clamped to [`MAX_MX`]; 0 when
    /// absent (a unicast search wants an answer at once).
    pub mx: u8,
}

/// Why a datagram is not an M-SEARCH we answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SsdpError {
    TooLarge {
        len: usize,
    },
    /// Not `M-SEARCH * HTTP/1.1`: a NOTIFY, an answer, or garbage.
    NotSearch,
    /// A header line that is not `Name: value`, at this byte offset.
    BadHeader {
        at: usize,
    },
    TooManyHeaders,
    /// `MAN` is missing or not `"ssdp:discover"`.
    BadMan,
    NoSearchTarget,
    BadMx(String),
}

impl std::fmt::Display for SsdpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SsdpError::TooLarge { len } => {
                write!(f, "datagram of {len} bytes (limit {MAX_DATAGRAM})")
            }
            SsdpError::NotSearch => write!(f, "not an M-SEARCH"),
            SsdpError::BadHeader { at } => write!(f, "bad header line at byte {at}"),
            SsdpError::TooManyHeaders => write!(f, "more than {MAX_HEADERS} headers"),
            SsdpError::BadMan => write!(f, "MAN is not \"ssdp:discover\""),
            SsdpError::NoSearchTarget => write!(f, "no ST header"),
            SsdpError::BadMx(v) => write!(f, "MX {v:?} is not a number of seconds"),
        }
    }
}

fn request_line(i: &[u8]) -> IResult<&[u8], ()> {
    let (i, _) = (tag(&b"M-SEARCH * HTTP/1.1"[..]), tag(&b"\r\n"[..])).parse(i)?;
    Ok((i, ()))
}

fn header(i: &[u8]) -> IResult<&[u8], (&[u8], &[u8])> {
    let (i, name) =
        take_while1(|b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.').parse(i)?;
    let (i, _) = char(':').parse(i)?;
    let (i, value) = take_while(|b: u8| b != b'\r' && b != b'\n' && b != 0).parse(i)?;
    let (i, _) = tag(&b"\r\n"[..]).parse(i)?;
    Ok((i, (name, value)))
}

/// Reads an M-SEARCH datagram.
pub fn parse_search(datagram: &[u8]) -> Result<Search, SsdpError> {
    if datagram.len() > MAX_DATAGRAM {
        return Err(SsdpError::TooLarge {
            len: datagram.len(),
        });
    }
    let (mut i, ()) = request_line(datagram).map_err(|_| SsdpError::NotSearch)?;
    let (mut man, mut st, mut mx) = (None, None, None);
    let mut count = 0;
    while !i.starts_with(b"\r\n") {
        let at = datagram.len() - i.len();
        let (rest, (name, value)) = header(i).map_err(|_| SsdpError::BadHeader { at })?;
        count += 1;
        if count > MAX_HEADERS {
            return Err(SsdpError::TooManyHeaders);
        }
        let value = std::str::from_utf8(value)
            .map_err(|_| SsdpError::BadHeader { at })?
            .trim();
        match name.to_ascii_uppercase().as_slice() {
            b"MAN" => man = Some(value),
            b"ST" => st = Some(value),
            b"MX" => mx = Some(value),
            _ => {}
        }
        i = rest;
    }
    if man != Some("\"ssdp:discover\"") {
        return Err(SsdpError::BadMan);
    }
    let target = st
        .filter(|s| !s.is_empty())
        .ok_or(SsdpError::NoSearchTarget)?;
    let mx = match mx {
        None => 0,
        Some(v) => v
            .parse::<u32>()
            .map_err(|_| SsdpError::BadMx(v.chars().take(16).collect()))?
            .min(MAX_MX as u32) as u8,
    };
    Ok(Search {
        target: target.to_string(),
        mx,
    })
}

/// The answer to a search for `st`, naming the device at `location`.
pub fn response(st: &str, usn: &str, location: &str, max_age: u32, server: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age={max_age}\r\nDATE: {}\r\nEXT:\r\nLOCATION: {location}\r\nSERVER: {server}\r\nST: {st}\r\nUSN: {usn}\r\nContent-Length: 0\r\n\r\n",
        http_date(std::time::SystemTime::now())
    )
}

/// `ssdp:alive` for one notification type.
pub fn alive(nt: &str, usn: &str, location: &str, max_age: u32, server: &str) -> String {
    format!(
        "NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age={max_age}\r\nLOCATION: {location}\r\nNT: {nt}\r\nNTS: ssdp:alive\r\nSERVER: {server}\r\nUSN: {usn}\r\n\r\n"
    )
}

/// `ssdp:byebye` for one notification type.
pub fn byebye(nt: &str, usn: &str) -> String {
    format!("NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNT: {nt}\r\nNTS: ssdp:byebye\r\nUSN: {usn}\r\n\r\n")
}

/// An RFC 7231 IMF-fixdate.
fn http_date(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let (h, m, s) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(month - 1) as usize];
    format!("{weekday}, {day:02} {mon} {year} {h:02}:{m:02}:{s:02} GMT")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_search() {
        let d = b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 2\r\nST: urn:schemas-upnp-org:device:MediaServer:1\r\n\r\n";
        assert_eq!(
            parse_search(d),
            Ok(Search {
                target: "urn:schemas-upnp-org:device:MediaServer:1".into(),
                mx: 2
            })
        );
        let d = b"M-SEARCH * HTTP/1.1\r\nman: \"ssdp:discover\"\r\nst:ssdp:all\r\nmx: 120\r\n\r\n";
        assert_eq!(
            parse_search(d).unwrap(),
            Search {
                target: "ssdp:all".into(),
                mx: 5
            }
        );
    }

    #[test]
    fn names_what_is_wrong() {
        assert_eq!(
            parse_search(b"NOTIFY * HTTP/1.1\r\n\r\n"),
            Err(SsdpError::NotSearch)
        );
        assert_eq!(
            parse_search(&[b'x'; 2000]),
            Err(SsdpError::TooLarge { len: 2000 })
        );
        assert_eq!(
            parse_search(b"M-SEARCH * HTTP/1.1\r\nST: x\r\n\r\n"),
            Err(SsdpError::BadMan)
        );
        assert_eq!(
            parse_search(b"M-SEARCH * HTTP/1.1\r\nno colon\r\n\r\n"),
            Err(SsdpError::BadHeader { at: 21 })
        );
        assert_eq!(
            parse_search(
                b"M-SEARCH * HTTP/1.1\r\nMAN: \"ssdp:discover\"\r\nST: x\r\nMX: soon\r\n\r\n"
            ),
            Err(SsdpError::BadMx("soon".into()))
        );
        let many = format!("M-SEARCH * HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(30));
        assert_eq!(
            parse_search(many.as_bytes()),
            Err(SsdpError::TooManyHeaders)
        );
        assert_eq!(
            parse_search(b"M-SEARCH * HTTP/1.1\r\nMAN: \"ssdp:discover\"\r\n"),
            Err(SsdpError::BadHeader { at: 43 })
        );
    }

    #[test]
    fn dates_are_imf_fixdates() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(784_111_777);
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
