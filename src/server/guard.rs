//! Who may change the box: the `Host`, `Origin`, content-type and API token
//! rules that every request passes before it is routed.
//!
//! # Threat model
//! - A web page in a LAN browser (CSRF): any site a family member opens can
//!   make the browser send requests to the box, including "simple" POSTs that
//!   no preflight guards (`text/plain`, forms).
//! - DNS rebinding: a site can make its own name resolve to the box, so that
//!   its page becomes same-origin with it and can read and write.
//! - Other devices on the LAN: they may talk to the box directly; the
//!   optional `API_TOKEN` keeps them from changing it.
//!
//! # Design
//! One function, [`Guard::check`], sees every request before routing and
//! classifies it: a *stream* (GET/HEAD of a stream URL) passes under any
//! `Host` and `Origin`, because players only need the info hash; everything
//! else must come under an allowed `Host`; and a *mutating* request (any
//! method but GET, HEAD and OPTIONS, so new routes are guarded by default)
//! must also come from no origin (native players, apps, curl), the box's own
//! origin, or `ALLOWED_ORIGINS`, carry no form or `text/plain` body, and hold
//! the token when one is set. A refusal names its rule.
//!
//! Must never read a request body or touch the session: it only looks at the
//! head, so a refusal costs nothing.

use http_types::{Method, Request, StatusCode};

/// The settings the rules read, from the config.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// `ALLOWED_ORIGINS`, lower-case.
    pub allowed_origins: Vec<String>,
    /// `ALLOWED_HOSTS`, lower-case; a leading `.` allows a whole domain.
    pub allowed_hosts: Vec<String>,
    /// The box's own hostname, lower-case, if the kernel has one.
    pub hostname: Option<String>,
    /// `API_TOKEN`, when set.
    pub token: Option<String>,
}

/// What kind of request this is, for the rules and for CORS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// GET/HEAD of a stream URL or `/health`: open to any Host and Origin.
    Open,
    /// A read of the API, the pages or the Stremio statistics.
    Read,
    /// Anything that may change state.
    Mutating,
}

/// Why a request was refused: the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A `Host` that is not one of the box's names (DNS rebinding).
    ForeignHost(String),
    /// A mutating request from a web origin that is neither the box nor allowed.
    CrossOrigin(String),
    /// A form or `text/plain` body, which a page can send without a preflight.
    SimpleContentType(String),
    /// `API_TOKEN` is set and the request does not carry it.
    Token,
}

impl Refusal {
    /// The rule's name, as the JSON error carries it.
    pub fn rule(&self) -> &'static str {
        match self {
            Refusal::ForeignHost(_) => "host",
            Refusal::CrossOrigin(_) => "origin",
            Refusal::SimpleContentType(_) => "content-type",
            Refusal::Token => "api-token",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::ForeignHost(_) => StatusCode::MisdirectedRequest,
            Refusal::SimpleContentType(_) => StatusCode::UnsupportedMediaType,
            Refusal::CrossOrigin(_) | Refusal::Token => StatusCode::Forbidden,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::ForeignHost(host) => write!(
                f,
                "Host {host:?} is not a name of this box (IP, localhost, a single label, .local/.lan/.home.arpa/.internal, its hostname or ALLOWED_HOSTS); refused against DNS rebinding"
            ),
            Refusal::CrossOrigin(origin) => write!(
                f,
                "Origin {origin:?} may not change this box: only its own pages, native clients and ALLOWED_ORIGINS may"
            ),
            Refusal::SimpleContentType(ct) => write!(
                f,
                "Content-Type {ct:?} is not accepted on a mutating route; send application/json or application/x-bittorrent"
            ),
            Refusal::Token => f.write_str(
                "this box has an API_TOKEN: send Authorization: Bearer TOKEN or ?token=TOKEN",
            ),
        }
    }
}

/// The content types a browser sends cross-origin without a preflight.
const SIMPLE_CONTENT_TYPES: [&str; 3] = [
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "text/plain",
];

impl Guard {
    /// The class of a request by its method and path segments.
    pub fn classify(method: Method, segments: &[&str]) -> Class {
        match method {
            Method::Get | Method::Head => {
                if is_open_path(segments) {
                    Class::Open
                } else {
                    Class::Read
                }
            }
            // A preflight is answered by the CORS rules, never routed.
            Method::Options => {
                if is_open_path(segments) {
                    Class::Open
                } else {
                    Class::Read
                }
            }
            // DLNA's SOAP actions (Browse, GetProtocolInfo...) only read the
            // registry; TVs post them without an Origin or a token.
            Method::Post if matches!(segments, ["dlna", "control", _]) => Class::Read,
            _ => Class::Mutating,
        }
    }

    /// Checks `req` of `class`; Ok when it may be routed.
    pub fn check(&self, req: &Request, class: Class) -> Result<(), Refusal> {
        if class == Class::Open {
            return Ok(());
        }
        let host = req.header("Host").map(|h| h.as_str()).unwrap_or("");
        if !self.host_allowed(host) {
            return Err(Refusal::ForeignHost(host.to_string()));
        }
        if class != Class::Mutating {
            return Ok(());
        }
        if let Some(origin) = req.header("Origin").map(|o| o.as_str()) {
            if !self.origin_allowed(origin, host) {
                return Err(Refusal::CrossOrigin(origin.to_string()));
            }
        }
        if let Some(ct) = req.header("Content-Type").map(|c| c.as_str()) {
            let essence = ct.split(';').next().unwrap_or("").trim();
            if SIMPLE_CONTENT_TYPES
                .iter()
                .any(|s| s.eq_ignore_ascii_case(essence))
            {
                return Err(Refusal::SimpleContentType(ct.to_string()));
            }
        }
        if let Some(token) = &self.token {
            if !carries_token(req, token) {
                return Err(Refusal::Token);
            }
        }
        Ok(())
    }

    /// Whether a page of `origin` may call the mutating routes of the box
    /// reached as `host`.
    pub fn origin_allowed(&self, origin: &str, host: &str) -> bool {
        let origin = origin.trim().to_ascii_lowercase();
        let own = ["http://", "https://"]
            .iter()
            .filter_map(|scheme| origin.strip_prefix(scheme))
            .any(|authority| !host.is_empty() && authority.eq_ignore_ascii_case(host.trim()));
        own || self.allowed_origins.contains(&origin)
    }

    /// Whether `host` (a `Host` header, port included) names this box.
    pub fn host_allowed(&self, host: &str) -> bool {
        let name = strip_port(host.trim()).to_ascii_lowercase();
        let name = name.strip_suffix('.').unwrap_or(&name);
        if name.is_empty() {
            return false;
        }
        if name.parse::<std::net::IpAddr>().is_ok() {
            return true;
        }
        let dns_chars = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !dns_chars {
            return false;
        }
        // A single label resolves only through the LAN's own resolver or hosts file.
        if name == "localhost" || !name.contains('.') {
            return true;
        }
        if [".local", ".lan", ".home.arpa", ".internal", ".localhost"]
            .iter()
            .any(|suffix| name.ends_with(suffix))
        {
            return true;
        }
        if self.hostname.as_deref() == Some(name) {
            return true;
        }
        self.allowed_hosts
            .iter()
            .any(|allowed| match allowed.strip_prefix('.') {
                Some(domain) => name == domain || name.ends_with(allowed.as_str()),
                None => name == allowed,
            })
    }
}

/// The box's hostname, as the kernel knows it.
pub fn kernel_hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim().to_ascii_lowercase();
    (!name.is_empty()).then_some(name)
}

/// `Host` without its port: `[::1]:80` → `::1`, `box.lan:11470` → `box.lan`.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match host.rsplit_once(':') {
        // A bare IPv6 address has several colons and no brackets.
        Some((name, _)) if !name.contains(':') => name,
        Some(_) => host,
        None => host,
    }
}

/// GET/HEAD paths open to any Host and Origin: stream URLs and `/health`.
fn is_open_path(segments: &[&str]) -> bool {
    match segments {
        ["health"] => true,
        ["stream", ..] => true,
        // Stremio's stream URL: /{infoHash}/{fileIdx}[/name], not its stats.
        [ih, idx, rest @ ..] => {
            ih.len() == 40
                && ih.bytes().all(|b| b.is_ascii_hexdigit())
                && idx.parse::<i64>().is_ok()
                && rest.last() != Some(&"stats.json")
        }
        _ => false,
    }
}

/// Whether `req` carries `token` as a bearer token or a `token=` query.
fn carries_token(req: &Request, token: &str) -> bool {
    let bearer = req
        .header("Authorization")
        .and_then(|a| a.as_str().strip_prefix("Bearer "))
        .is_some_and(|t| constant_time_eq(t.trim().as_bytes(), token.as_bytes()));
    bearer
        || req
            .url()
            .query_pairs()
            .any(|(k, v)| k == "token" && constant_time_eq(v.as_bytes(), token.as_bytes()))
}

/// Compares without an early exit, so the time taken does not tell a LAN
/// device how many leading bytes of its guess were right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_types::Url;

    fn guard() -> Guard {
        Guard {
            allowed_origins: vec!["https://web.stremio.com".into()],
            allowed_hosts: vec!["box.example.com".into(), ".home.example".into()],
            hostname: Some("pibox".into()),
            token: None,
        }
    }

    fn request(method: Method, path: &str, headers: &[(&str, &str)]) -> Request {
        let mut req = Request::new(method, Url::parse(&format!("http://x{path}")).unwrap());
        for (k, v) in headers {
            req.insert_header(*k, *v);
        }
        req
    }

    #[test]
    fn host_classes_are_accepted_and_foreign_names_refused() {
        let g = guard();
        for ok in [
            "127.0.0.1:11470",
            "192.168.1.5",
            "[::1]:11470",
            "[fe80::1]",
            "localhost:11470",
            "streme",
            "streme.local",
            "tv.lan:80",
            "box.home.arpa",
            "nas.internal",
            "pibox",
            "box.example.com",
            "a.home.example",
            "home.example",
            "streme.local.",
        ] {
            assert!(g.host_allowed(ok), "{ok}");
        }
        for bad in [
            "rebind.evil.example",
            "evil.example:11470",
            "example.com",
            "",
            "box.example.com.evil.example",
            "a b.lan",
        ] {
            assert!(!g.host_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn mutating_requests_follow_the_origin_rules() {
        let g = guard();
        let host = ("Host", "192.168.1.5:11470");
        let post = |headers: &[(&str, &str)]| {
            let mut all = vec![host];
            all.extend_from_slice(headers);
            g.check(
                &request(Method::Post, "/api/torrents", &all),
                Class::Mutating,
            )
        };
        assert_eq!(post(&[]), Ok(()));
        assert_eq!(post(&[("Origin", "http://192.168.1.5:11470")]), Ok(()));
        assert_eq!(post(&[("Origin", "https://web.stremio.com")]), Ok(()));
        assert_eq!(
            post(&[("Origin", "https://evil.example")])
                .unwrap_err()
                .rule(),
            "origin"
        );
        assert_eq!(post(&[("Origin", "null")]).unwrap_err().rule(), "origin");
        assert_eq!(
            post(&[("Content-Type", "text/plain;charset=UTF-8")])
                .unwrap_err()
                .rule(),
            "content-type"
        );
        assert_eq!(
            post(&[("Content-Type", "application/x-www-form-urlencoded")])
                .unwrap_err()
                .rule(),
            "content-type"
        );
        assert_eq!(post(&[("Content-Type", "application/json")]), Ok(()));
    }

    #[test]
    fn streams_pass_under_any_host_and_reads_do_not() {
        let g = guard();
        let ih = "dd8255ecdc7ca55fb0bbf81323d87062db1f6d1c";
        let evil = [("Host", "rebind.evil.example")];
        for path in [
            format!("stream/{ih}/0"),
            format!("{ih}/0"),
            format!("{ih}/-1/a.mp4"),
            "health".into(),
        ] {
            let segments: Vec<&str> = path.split('/').collect();
            let class = Guard::classify(Method::Get, &segments);
            assert_eq!(class, Class::Open, "{path}");
            assert_eq!(g.check(&request(Method::Get, "/", &evil), class), Ok(()));
        }
        for path in [
            "api/torrents".to_string(),
            format!("{ih}/stats.json"),
            format!("{ih}/0/stats.json"),
            String::new(),
        ] {
            let segments: Vec<&str> = path.split('/').collect();
            assert_eq!(
                Guard::classify(Method::Get, &segments),
                Class::Read,
                "{path}"
            );
        }
        let read = g.check(&request(Method::Get, "/api/torrents", &evil), Class::Read);
        assert_eq!(read.unwrap_err().rule(), "host");
        assert_eq!(
            Guard::classify(Method::Delete, &["stream", ih]),
            Class::Mutating
        );
    }

    #[test]
    fn token_is_needed_when_set() {
        let g = Guard {
            token: Some("s3cret".into()),
            ..guard()
        };
        let host = ("Host", "127.0.0.1");
        let check = |path: &str, headers: &[(&str, &str)]| {
            let mut all = vec![host];
            all.extend_from_slice(headers);
            g.check(&request(Method::Delete, path, &all), Class::Mutating)
        };
        assert_eq!(
            check("/api/torrents/x", &[]).unwrap_err().rule(),
            "api-token"
        );
        assert_eq!(
            check("/api/torrents/x", &[("Authorization", "Bearer nope")])
                .unwrap_err()
                .rule(),
            "api-token"
        );
        assert_eq!(
            check("/api/torrents/x", &[("Authorization", "Bearer s3cret")]),
            Ok(())
        );
        assert_eq!(check("/api/torrents/x?token=s3cret", &[]), Ok(()));
    }
}
