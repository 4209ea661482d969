//! Typed values from the text of one setting: milliseconds, counts,
//! booleans, addresses and log levels.
//!
//! Owns the exact grammar of each kind of value and the one-line error that
//! names the key and the text it got. Never supplies a default: a value that
//! does not parse stops start-up rather than falling back silently.

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::str::FromStr;
use std::time::Duration;

use super::ConfigError;

fn bad(key: &'static str, value: &str, expected: &'static str) -> ConfigError {
    ConfigError::BadValue {
        key,
        value: value.to_string(),
        expected,
    }
}

/// Digits only: Rust's integer parsers also take a leading `+`, which no one
/// writes on purpose in a config file.
fn digits(key: &'static str, value: &str, expected: &'static str) -> Result<u64, ConfigError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(key, value, expected));
    }
    value.parse().map_err(|_| bad(key, value, expected))
}

/// A whole number in `min..=max`.
pub fn integer(key: &'static str, value: &str, min: u64, max: u64) -> Result<u64, ConfigError> {
    let n = digits(key, value, "a non-negative integer")?;
    if n < min || n > max {
        return Err(ConfigError::OutOfRange {
            key,
            value: value.to_string(),
            min,
            max,
        });
    }
    Ok(n)
}

/// Milliseconds, at least `min_ms`.
pub fn millis(key: &'static str, value: &str, min_ms: u64) -> Result<Duration, ConfigError> {
    let ms = digits(key, value, "milliseconds (a non-negative integer)")?;
    if ms < min_ms {
        return Err(ConfigError::OutOfRange {
            key,
            value: value.to_string(),
            min: min_ms,
            max: u64::MAX,
        });
    }
    Ok(Duration::from_millis(ms))
}

pub fn boolean(key: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(bad(
            key,
            value,
            "a boolean (true/false, 1/0, yes/no, on/off)",
        )),
    }
}

pub fn port(key: &'static str, value: &str) -> Result<u16, ConfigError> {
    let expected = "a port number (0-65535, 0 picks a free port)";
    let n = digits(key, value, expected)?;
    u16::try_from(n).map_err(|_| bad(key, value, expected))
}

pub fn ip(key: &'static str, value: &str) -> Result<IpAddr, ConfigError> {
    IpAddr::from_str(value)
        .map_err(|_| bad(key, value, "an IP address such as 0.0.0.0, 127.0.0.1 or ::"))
}

pub fn ipv4(key: &'static str, value: &str) -> Result<Ipv4Addr, ConfigError> {
    Ipv4Addr::from_str(value)
        .map_err(|_| bad(key, value, "an IPv4 address such as 0.0.0.0 or 127.0.0.1"))
}

/// An IPv4 multicast group and a non-zero port, `239.192.152.143:6771`.
pub fn multicast_group(key: &'static str, value: &str) -> Result<SocketAddrV4, ConfigError> {
    SocketAddrV4::from_str(value)
        .ok()
        .filter(|g| g.ip().is_multicast() && g.port() != 0)
        .ok_or_else(|| {
            bad(
                key,
                value,
                "an IPv4 multicast group:port such as 239.192.152.143:6771",
            )
        })
}

/// A DLNA friendly name: UPnP allows 64 characters, and a control character
/// would only garble a TV's menu.
pub fn friendly_name(key: &'static str, value: &str) -> Result<String, ConfigError> {
    if value.chars().count() > 64 || value.chars().any(char::is_control) {
        return Err(bad(
            key,
            value,
            "a name of at most 64 characters without control characters",
        ));
    }
    Ok(value.trim().to_string())
}

/// An interface name (`eth0`, at most 15 characters as Linux allows) or an
/// IPv4 address; empty for every interface.
pub fn interface(key: &'static str, value: &str) -> Result<String, ConfigError> {
    let name_ok = value.len() <= 15
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-@".contains(&b));
    if value.parse::<Ipv4Addr>().is_ok() || name_ok {
        Ok(value.to_string())
    } else {
        Err(bad(
            key,
            value,
            "an interface name such as eth0, an IPv4 address, or empty for every interface",
        ))
    }
}

/// A comma-separated list; blanks around entries and empty entries are dropped,
/// so an empty value is an empty list.
pub fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// A tracker announce URL: `http://`, `https://` or `udp://`, with a host.
pub fn tracker_url(key: &'static str, value: &str) -> Result<String, ConfigError> {
    let expected = "tracker URLs (http://, https:// or udp://host:port/...)";
    let rest = ["http://", "https://", "udp://"]
        .iter()
        .find_map(|scheme| value.strip_prefix(scheme))
        .ok_or_else(|| bad(key, value, expected))?;
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() || authority.contains(char::is_whitespace) {
        return Err(bad(key, value, expected));
    }
    Ok(value.to_string())
}

/// `host:port`, the host a name or an address (IPv6 in brackets).
pub fn host_port(key: &'static str, value: &str) -> Result<String, ConfigError> {
    let expected = "host:port entries such as router.bittorrent.com:6881";
    let (host, port) = value
        .rsplit_once(':')
        .ok_or_else(|| bad(key, value, expected))?;
    let port_ok = !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|p| p != 0);
    if host.is_empty() || host.contains(char::is_whitespace) || !port_ok {
        return Err(bad(key, value, expected));
    }
    Ok(value.to_string())
}

pub fn log_level(key: &'static str, value: &str) -> Result<log::LevelFilter, ConfigError> {
    // `LevelFilter::from_str` already ignores case and knows `off`.
    log::LevelFilter::from_str(value)
        .map_err(|_| bad(key, value, "one of error, warn, info, debug, trace, off"))
}

/// A web origin as browsers send it: `http://` or `https://`, a host, an
/// optional port, no path. Kept lower-case, as browsers serialize it.
pub fn origin(key: &'static str, value: &str) -> Result<String, ConfigError> {
    let expected = "origins such as https://web.stremio.com or http://192.168.1.5:8080 (no path)";
    let lower = value.to_ascii_lowercase();
    let rest = ["http://", "https://"]
        .iter()
        .find_map(|scheme| lower.strip_prefix(scheme))
        .ok_or_else(|| bad(key, value, expected))?;
    let host_ok = !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    if !host_ok {
        return Err(bad(key, value, expected));
    }
    Ok(lower)
}

/// A DNS name (letters, digits, `-`, `.`), optionally with a leading `.`
/// meaning "and every subdomain". Kept lower-case.
pub fn host_name(key: &'static str, value: &str) -> Result<String, ConfigError> {
    let expected = "host names such as streme.example.com or .example.com";
    let name = value.strip_prefix('.').unwrap_or(value);
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !ok {
        return Err(bad(key, value, expected));
    }
    Ok(value.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_trackers_and_routers_are_checked_entry_by_entry() {
        assert_eq!(list(" a , ,b,"), vec!["a", "b"]);
        assert!(list("").is_empty());
        assert!(tracker_url("TRACKERS", "udp://127.0.0.1:6969/announce").is_ok());
        assert!(tracker_url("TRACKERS", "https://t.example/announce").is_ok());
        assert_eq!(
            tracker_url("TRACKERS", "ftp://x/a").unwrap_err().to_string(),
            "TRACKERS: expected tracker URLs (http://, https:// or udp://host:port/...), got \"ftp://x/a\""
        );
        assert!(tracker_url("TRACKERS", "udp:///announce").is_err());
        assert!(host_port("DHT_BOOTSTRAP", "router.bittorrent.com:6881").is_ok());
        assert!(host_port("DHT_BOOTSTRAP", "[::1]:6881").is_ok());
        for bad in ["router", "router:", ":6881", "r:0", "r:70000", "r:+1"] {
            assert!(host_port("DHT_BOOTSTRAP", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn millis_rejects_units_signs_and_blanks() {
        assert_eq!(
            millis("P2P_TIMEOUT", "1500", 0).unwrap(),
            Duration::from_millis(1500)
        );
        for text in [
            "20s",
            "-5",
            "+5",
            " 5",
            "",
            "1.5",
            "99999999999999999999999",
        ] {
            let e = millis("P2P_TIMEOUT", text, 0).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!(
                    "P2P_TIMEOUT: expected milliseconds (a non-negative integer), got {text:?}"
                )
            );
        }
    }

    #[test]
    fn millis_enforces_its_minimum() {
        assert_eq!(millis("PIECE_TIMEOUT", "0", 0).unwrap(), Duration::ZERO);
        assert_eq!(
            millis("PIECE_TIMEOUT", "0", 1).unwrap_err().to_string(),
            "PIECE_TIMEOUT: expected at least 1, got \"0\""
        );
    }

    #[test]
    fn integer_range() {
        assert_eq!(integer("CACHE_MAX_DISK_MB", "1", 1, 10).unwrap(), 1);
        assert_eq!(
            integer("CACHE_MAX_DISK_MB", "0", 1, 10)
                .unwrap_err()
                .to_string(),
            "CACHE_MAX_DISK_MB: expected 1 to 10, got \"0\""
        );
        assert_eq!(
            integer("X", "-1", 0, 10).unwrap_err().to_string(),
            "X: expected a non-negative integer, got \"-1\""
        );
    }

    #[test]
    fn booleans_in_every_spelling() {
        for t in ["true", "TRUE", "1", "yes", "On"] {
            assert!(boolean("B", t).unwrap(), "{t}");
        }
        for f in ["false", "False", "0", "no", "OFF"] {
            assert!(!boolean("B", f).unwrap(), "{f}");
        }
        assert_eq!(
            boolean("ENABLE_HTTP_FALLBACK", "maybe").unwrap_err().to_string(),
            "ENABLE_HTTP_FALLBACK: expected a boolean (true/false, 1/0, yes/no, on/off), got \"maybe\""
        );
    }

    #[test]
    fn ports_and_addresses() {
        assert_eq!(port("PORT", "0").unwrap(), 0);
        assert_eq!(port("PORT", "65535").unwrap(), 65535);
        assert!(port("PORT", "65536").is_err());
        assert_eq!(ip("HOST", "::").unwrap().to_string(), "::");
        assert!(ip("HOST", "localhost").is_err());
    }

    #[test]
    fn log_levels_ignore_case() {
        assert_eq!(
            log_level("LOG_LEVEL", "DeBuG").unwrap(),
            log::LevelFilter::Debug
        );
        assert_eq!(
            log_level("LOG_LEVEL", "off").unwrap(),
            log::LevelFilter::Off
        );
        assert!(log_level("LOG_LEVEL", "verbose").is_err());
    }
}
