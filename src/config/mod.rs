//! Configuration: one [`Config`], built once at start-up from the built-in
//! defaults, an optional env file and the environment, and validated then.
//!
//! Owns every setting's name, default, unit and validation, and the record of
//! where each value came from. Everyone else reads a `Config`; nothing else in
//! streme may read the environment.
//!
//! # Design
//! Precedence is default < env file < environment, so `PORT=0 streme` beats
//! the file a unit points at. The env file uses systemd's `EnvironmentFile=`
//! syntax (`envfile`), so the same file serves `systemd` and the command
//! line. The environment is passed in as a function, so tests never touch the
//! process environment; only the keys below are ever looked up, because the
//! process environment is full of unrelated variables. A key in the env file
//! that streme does not know is a [`Warning`] naming it (a typo must not pass
//! silently); a bad value is a [`ConfigError`] that stops start-up with one line
//! naming the key and the value.

mod envfile;
mod error;
mod value;

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::format::template::{Placeholder, Template};

/// BEP 14's IPv4 group and port, the default of `LSD_GROUP`. It lives here,
/// at the bottom of the house, so the config need not import the P2P tier.
pub const LSD_GROUP: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(239, 192, 152, 143), 6771);

pub use envfile::{Problem as EnvFileProblem, SyntaxError as EnvFileSyntaxError};
use error::closest_key;
pub use error::{ConfigError, Warning};

/// The variable that names the env file when `--env-file` is not given.
pub const ENV_FILE_VAR: &str = "STREME_ENV_FILE";

/// Every key streme reads, with its default as an env file would spell it, in
/// the order `streme config` prints them.
pub const KEYS: [(&str, &str); 42] = [
    ("HOST", "0.0.0.0"),
    ("PORT", "11470"),
    ("CACHE_DIR", "$CACHE_DIRECTORY, else $HOME/.cache/streme"),
    ("CACHE_MAX_DISK_MB", "5000"),
    ("LOG_LEVEL", "info"),
    ("P2P_TIMEOUT", "20000"),
    ("ENABLE_HTTP_FALLBACK", "true"),
    ("TORRENT_TIMEOUT", "60000"),
    ("TORRENT_MAX_RETRIES", "3"),
    ("PIECE_TIMEOUT", "30000"),
    ("STREAM_BUFFER_KB", "256"),
    ("TORRENT_SOURCES", DEFAULT_TORRENT_SOURCES),
    ("HTTP_SOURCES", ""),
    ("HTTP_CONNECTIONS", "4"),
    ("HTTP_TIMEOUT", "15000"),
    ("HTTP_MAX_TORRENT_KB", "8192"),
    ("TRACKERS", DEFAULT_TRACKERS),
    ("TORRENT_PORT", "6881"),
    ("STREAM_READAHEAD_MB", "16"),
    ("MAX_PEERS", "40"),
    ("MAX_CONNECTIONS", "120"),
    ("MAX_UPLOAD_KBPS", "0"),
    ("ENABLE_DHT", "true"),
    ("DHT_BOOTSTRAP", DEFAULT_DHT_BOOTSTRAP),
    ("ENABLE_LSD", "true"),
    ("LSD_GROUP", "239.192.152.143:6771"),
    ("LSD_INTERFACE", "0.0.0.0"),
    ("ENABLE_UTP", "true"),
    ("CLIENT_MAX", "256"),
    ("CLIENT_MAX_PER_ADDR", "64"),
    ("CLIENT_HEAD_TIMEOUT", "10000"),
    ("CLIENT_IDLE_TIMEOUT", "120000"),
    ("CLIENT_BODY_TIMEOUT", "60000"),
    ("CLIENT_STALL_TIMEOUT", "7200000"),
    ("ALLOWED_ORIGINS", DEFAULT_ALLOWED_ORIGINS),
    ("ALLOWED_HOSTS", ""),
    ("API_TOKEN", ""),
    (
        "STATE_DIR",
        "$STATE_DIRECTORY, else $HOME/.local/state/streme",
    ),
    ("ENABLE_DLNA", "true"),
    ("DLNA_NAME", ""),
    ("DLNA_INTERFACE", ""),
    ("ENCRYPTION", "prefer"),
];

/// The origins of Stremio's web app, which calls the streaming server's
/// `create` and `settings` routes from the browser.
const DEFAULT_ALLOWED_ORIGINS: &str =
    "https://web.stremio.com,https://web.strem.io,https://app.strem.io";

/// The public .torrent cache the seed used.
const DEFAULT_TORRENT_SOURCES: &str = "https://itorrents.org/torrent/{HASH}.torrent";

/// Well-known open trackers that have answered for years; added to magnets
/// that name no tracker (`tr=`).
const DEFAULT_TRACKERS: &str = "udp://tracker.opentrackr.org:1337/announce,udp://open.stealth.si:80/announce,udp://tracker.torrent.eu.org:451/announce,udp://exodus.desync.com:6969/announce";

/// The mainline DHT's public bootstrap routers (BitTorrent, Transmission,
/// libtorrent).
const DEFAULT_DHT_BOOTSTRAP: &str =
    "router.bittorrent.com:6881,dht.transmissionbt.com:6881,dht.libtorrent.org:25401";

/// One MB of `CACHE_MAX_DISK_MB`: a MiB, the unit `du -m` counts in.
const MIB: u64 = 1024 * 1024;

/// The effective configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `HOST`: the address the HTTP server listens on. Default `0.0.0.0`, every
    /// IPv4 interface, because the players are elsewhere on the LAN. An IP
    /// address, not a host name (no resolver runs before the socket binds).
    pub host: IpAddr,
    /// `PORT`: the HTTP port. Default 11470, the port Stremio's streaming
    /// server uses, so existing players find streme where they look. 0 asks
    /// the kernel for a free port (the tests use it).
    pub port: u16,
    /// `CACHE_DIR`: where verified pieces and the index live. Default
    /// `$CACHE_DIRECTORY` when systemd sets it (`CacheDirectory=` in the unit;
    /// the first entry if it lists several), else `$HOME/.cache/streme`, else
    /// `/var/cache/streme` (a system service without `User=` has no `HOME`).
    pub cache_dir: PathBuf,
    /// `CACHE_MAX_DISK_MB`: the ceiling on the bytes under `cache_dir`, in MiB
    /// (`du -m`). Default 5000: about 5 GB, room for a few films while leaving
    /// most of a 32 GB SD card or a shared NAS disk alone. At least 1.
    pub cache_max_disk_mb: u64,
    /// `LOG_LEVEL`: error, warn, info, debug, trace or off, in any case.
    /// Default info: one line per step of the hybrid flow, which the journal
    /// on an SD card can afford; debug adds per-stream lines.
    pub log_level: log::LevelFilter,
    /// `P2P_TIMEOUT`, in ms: how long P2P may make no progress on a piece a
    /// reader waits for before the HTTP tier takes over. Default 20000, the
    /// seed's value: long enough for a cold swarm to connect on a Pi's slow
    /// start-up, short enough that a player does not give up. 0 hands over at
    /// once.
    pub p2p_timeout: Duration,
    /// `ENABLE_HTTP_FALLBACK`: whether the HTTP tier may be used at all.
    /// Default true (the seed's); accepts true/false, 1/0, yes/no, on/off.
    pub enable_http_fallback: bool,
    /// `TORRENT_TIMEOUT`, in ms: how long resolving a torrent (its metadata)
    /// may take before an attempt fails. Default 60000, the seed's: a magnet
    /// with few peers can take tens of seconds. At least 1.
    pub torrent_timeout: Duration,
    /// `TORRENT_MAX_RETRIES`: attempts after the first failed one. Default 3,
    /// the seed's. 0 means no retry.
    pub torrent_max_retries: u32,
    /// `PIECE_TIMEOUT`, in ms: how long a stream waits for a missing piece
    /// before its request ends with an error instead of hanging. Default
    /// 30000: above `P2P_TIMEOUT` so that the HTTP tier gets its turn, and
    /// below the minute after which players give up on a stalled read.
    /// At least 1.
    pub piece_wait: Duration,
    /// `STREAM_BUFFER_KB`, in KiB: the fixed read buffer of each stream.
    /// Default 256: 8 streams cost 2 MiB, well inside the 16 MB RSS budget
    /// sized for a Pi, and a 40 Mbit/s stream still needs only ~20 reads per
    /// second. From 4 to 4096.
    pub stream_buffer_kb: u32,
    /// `TORRENT_SOURCES`: URL templates for a .torrent by info hash, tried in
    /// order (`{hash}` lower-case hex, `{HASH}` upper case). Default the
    /// public cache the seed used, `https://itorrents.org/torrent/{HASH}.torrent`.
    /// May be set empty: then only peers can give the metadata.
    pub torrent_sources: Vec<Template>,
    /// `HTTP_SOURCES`: URL templates for file content (`{hash}`, `{HASH}`,
    /// `{name}`, `{path}`, `{file}`, `{index}`), tried before web seeds.
    /// Default none: a content mirror is something the user runs or trusts.
    pub http_sources: Vec<Template>,
    /// `HTTP_CONNECTIONS`: parallel HTTP downloads per torrent. Default 4:
    /// enough to fill a 100 Mbit/s line from servers that cap each
    /// connection, few enough that a Pi holds 4 pieces in flight. 1 to 32.
    pub http_connections: u32,
    /// `HTTP_TIMEOUT`, in ms: connecting, waiting for headers, and any wait
    /// for body bytes; a source silent that long is cut. Default 15000: a
    /// slow mirror under load still answers, a dead one is dropped before a
    /// player gives up. At least 1.
    pub http_timeout: Duration,
    /// `HTTP_MAX_TORRENT_KB`, in KiB: the largest .torrent accepted from a
    /// source. Default 8192: the biggest real torrents (many small files)
    /// are a few MiB; the cap bounds what a hostile source can make us
    /// buffer. 1 to 16384, the bencode parser's own limit.
    pub http_max_torrent_kb: u64,
    /// `TRACKERS`: announce URLs (`http://`, `https://`, `udp://`) added to a
    /// magnet that names no tracker. Default a few long-lived open trackers
    /// ([`DEFAULT_TRACKERS`]); may be set empty, then such a magnet finds peers
    /// through the DHT, PEX and LSD only.
    pub trackers: Vec<String>,
    /// `TORRENT_PORT`: the TCP port for incoming peers (and the UDP port of
    /// the DHT). Default 6881, the conventional BitTorrent port; 0 picks a
    /// free one (the tests use it).
    pub torrent_port: u16,
    /// `STREAM_READAHEAD_MB`, in MiB: how far past each playhead P2P fetches
    /// before anything else. Default 16: about 30 s of a 4 Mbit/s film, and
    /// on a Pi Zero 2 W (512 MB) a window the page cache can hold. 1 to 1024;
    /// never more than a quarter of the quota, so readahead cannot evict what
    /// the reader is about to read.
    pub stream_readahead_mb: u64,
    /// `MAX_PEERS`: connections per torrent. Default 40: enough to find the
    /// fast peers of a big swarm, and each connection costs a Pi ~40 KiB of
    /// buffers. 1 to 500.
    pub max_peers: u32,
    /// `MAX_CONNECTIONS`: peer connections over all torrents. Default 120,
    /// sized for a 512 MB Pi Zero 2 W (about 5 MB of buffers at most). 1 to 2000.
    pub max_connections: u32,
    /// `MAX_UPLOAD_KBPS`, in KiB/s: the cap on seeding. Default 0, no cap: a
    /// box on a LAN shares what it has; set it on a slow uplink.
    pub max_upload_kbps: u64,
    /// `ENABLE_DHT`: look peers up in the mainline DHT (BEP 5) and answer
    /// its queries. Default true: a bare magnet has no other way to peers.
    pub enable_dht: bool,
    /// `DHT_BOOTSTRAP`: `host:port` routers the DHT starts from when its
    /// saved table is empty. Default the public mainline routers; may be set
    /// empty (then only the saved table and peers' DHT ports are used).
    pub dht_bootstrap: Vec<String>,
    /// `ENABLE_LSD`: Local Service Discovery (BEP 14), multicast announces on
    /// the LAN so that boxes and desktop clients find each other. Default true.
    pub enable_lsd: bool,
    /// `LSD_GROUP`: the IPv4 multicast group:port of LSD announces. Default
    /// BEP 14's 239.192.152.143:6771; another group makes a private set of
    /// boxes (and lets tests stay off the LAN's group).
    pub lsd_group: SocketAddrV4,
    /// `LSD_INTERFACE`: the IPv4 address of the interface LSD joins and
    /// sends on. Default 0.0.0.0, the default route's interface; 127.0.0.1
    /// keeps LSD on this host.
    pub lsd_interface: Ipv4Addr,
    /// `ENABLE_UTP`: uTP (BEP 29) on the UDP port of `TORRENT_PORT`, in and
    /// out, raced against TCP on each dial. Default true: libtorrent- and
    /// Transmission-based peers try uTP first, and some take nothing else.
    /// Off, nothing listens for uTP and every dial is TCP.
    pub enable_utp: bool,
    /// `CLIENT_MAX`: HTTP client connections held at once. Default 256: an
    /// idle or paused client costs a few KiB plus at most its stream's
    /// channel buffers, so a few hundred fit a 512 MB Pi Zero 2 W. When
    /// full, the connection that moved no byte for longest is closed to
    /// admit the new one. 2 to 4096.
    pub client_max: u32,
    /// `CLIENT_MAX_PER_ADDR`: connections one IP address may hold. Default
    /// 64: a TV or a Stremio app opens a handful; one device cannot take
    /// all of `CLIENT_MAX`. Over it, that address's quietest connection is
    /// closed. 1 to `CLIENT_MAX`.
    pub client_max_per_addr: u32,
    /// `CLIENT_HEAD_TIMEOUT`, in ms: the whole time a client may take to send
    /// a request head once its first byte arrived. Default 10000: a player
    /// sends its head in one packet; a slowloris trickle is cut. At least 1.
    pub client_head_timeout: Duration,
    /// `CLIENT_IDLE_TIMEOUT`, in ms: how long a keep-alive connection may sit
    /// between requests. Default 120000: players reconnect when the server
    /// closed an idle keep-alive (HTTP lets it at any time), and two minutes
    /// covers the gap between a player's range requests. At least 1.
    pub client_idle_timeout: Duration,
    /// `CLIENT_BODY_TIMEOUT`, in ms: the whole time to read a request body
    /// (a .torrent or a JSON add). Default 60000: 16 MiB over a weak Wi-Fi
    /// link. At least 1.
    pub client_body_timeout: Duration,
    /// `CLIENT_STALL_TIMEOUT`, in ms: how long a response may go without the
    /// client accepting one byte. Default 7200000 (2 h): a paused player is
    /// a stalled response, and a film paused for an hour must still resume
    /// on the same connection. A cap that needs the slot closes it sooner.
    /// At least 1.
    pub client_stall_timeout: Duration,
    /// `ALLOWED_ORIGINS`: web origins (`scheme://host[:port]`) whose pages may
    /// call the mutating routes, besides the box's own pages. Default the
    /// Stremio web app's origins ([`DEFAULT_ALLOWED_ORIGINS`]); may be empty.
    pub allowed_origins: Vec<String>,
    /// `ALLOWED_HOSTS`: extra `Host` names the API and pages answer to, on
    /// top of IP literals, `localhost`, single-label names, `.local`,
    /// `.lan`, `.home.arpa`, `.internal` and the box's hostname (a defence
    /// against DNS rebinding). Default none. A leading `.` allows a domain
    /// and its subdomains.
    pub allowed_hosts: Vec<String>,
    /// `API_TOKEN`: when set, mutating routes need `Authorization: Bearer
    /// TOKEN` or `?token=TOKEN`. Default empty: off.
    pub api_token: Option<String>,
    /// `STATE_DIR`: what must survive a cache wipe (the DLNA device UUID, which
    /// TVs remember the box by). Default `$STATE_DIRECTORY` when systemd sets it
    /// (`StateDirectory=` in the unit), else `$HOME/.local/state/streme`, else
    /// `/var/lib/streme`.
    pub state_dir: PathBuf,
    /// `ENABLE_DLNA`: a DLNA/UPnP MediaServer, so TVs and consoles on the LAN
    /// find the box by SSDP (multicast on 239.255.255.250:1900) and browse its
    /// torrents. Default true: this is a LAN media box.
    pub enable_dlna: bool,
    /// `DLNA_NAME`: the friendly name TVs list. Empty (the default) means
    /// `streme on <hostname>`.
    pub dlna_name: String,
    /// `DLNA_INTERFACE`: the one interface SSDP joins, by name (`eth0`) or
    /// IPv4 address. Empty (the default) means every interface with an IPv4
    /// address, followed as they come and go.
    pub dlna_interface: String,
    /// `ENCRYPTION`: MSE/PE on peer connections. Default `prefer`.
    pub encryption: Encryption,
    /// Where each key's value came from, in the order of [`KEYS`].
    sources: Vec<Source>,
}

/// `ENCRYPTION`: whether peer connections use MSE/PE (Message Stream
/// Encryption, RC4 after a Diffie-Hellman exchange).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    /// The default. Outgoing connections try MSE first, then a plaintext
    /// handshake; incoming ones may be either.
    Prefer,
    /// Only RC4-encrypted connections, both ways: a plaintext peer (or one
    /// that offers MSE with a plaintext payload only) is refused.
    Require,
    /// Outgoing connections are plaintext. An incoming MSE handshake is still
    /// answered (with a plaintext payload when the peer offers it): refusing
    /// it would only lose peers, and costs nothing when none come.
    Off,
}

impl Encryption {
    pub fn name(self) -> &'static str {
        match self {
            Encryption::Prefer => "prefer",
            Encryption::Require => "require",
            Encryption::Off => "off",
        }
    }
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    EnvFile(PathBuf),
    Environment,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::EnvFile(path) => write!(f, "env file {}", path.display()),
            Source::Environment => f.write_str("environment"),
        }
    }
}

impl Config {
    /// Builds the configuration from the defaults, the env file (`env_file`,
    /// else `$STREME_ENV_FILE`) and `environ`, which looks one variable up.
    /// Does not touch `CACHE_DIR`: see [`Config::check_cache_dir`].
    pub fn load(
        env_file: Option<&Path>,
        environ: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(Config, Vec<Warning>), ConfigError> {
        let file = env_file.map(Path::to_path_buf).or_else(|| {
            environ(ENV_FILE_VAR)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        let mut warnings = Vec::new();
        let mut from_file: HashMap<String, String> = HashMap::new();
        if let Some(path) = &file {
            let text = fs::read_to_string(path).map_err(|e| ConfigError::EnvFileUnreadable {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let assignments =
                envfile::parse(&text).map_err(|error| ConfigError::EnvFileSyntax {
                    path: path.clone(),
                    error,
                })?;
            for a in assignments {
                if KEYS.iter().any(|(k, _)| *k == a.key) {
                    // A later line wins, as under systemd.
                    from_file.insert(a.key, a.value);
                } else {
                    let suggestion = closest_key(&a.key);
                    warnings.push(Warning::UnknownKey {
                        file: path.clone(),
                        line: a.line,
                        key: a.key,
                        suggestion,
                    });
                }
            }
        }

        // Where each key came from, by name: settings are read in whatever
        // order their parsing needs, and `sources` is put in KEYS order below.
        let mut found_in: Vec<(&'static str, Source)> = Vec::with_capacity(KEYS.len());
        let mut setting = |key: &'static str| -> Option<String> {
            let found = match environ(key) {
                Some(v) => Some((v, Source::Environment)),
                None => from_file
                    .get(key)
                    .map(|v| (v.clone(), Source::EnvFile(file.clone().unwrap_or_default()))),
            };
            found_in.push((
                key,
                found.as_ref().map_or(Source::Default, |(_, s)| s.clone()),
            ));
            found.map(|(v, _)| v)
        };

        let host = setting("HOST").map_or(Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), |v| {
            value::ip("HOST", &v)
        })?;
        let port = setting("PORT").map_or(Ok(11470), |v| value::port("PORT", &v))?;
        let cache_dir = match setting("CACHE_DIR") {
            Some(v) if v.is_empty() => {
                return Err(ConfigError::BadValue {
                    key: "CACHE_DIR",
                    value: v,
                    expected: "a directory path",
                })
            }
            Some(v) => PathBuf::from(v),
            None => default_cache_dir(environ),
        };
        // Capped so that the quota in bytes fits a u64.
        let cache_max_disk_mb = setting("CACHE_MAX_DISK_MB").map_or(Ok(5000), |v| {
            value::integer("CACHE_MAX_DISK_MB", &v, 1, u64::MAX / MIB)
        })?;
        let log_level = setting("LOG_LEVEL").map_or(Ok(log::LevelFilter::Info), |v| {
            value::log_level("LOG_LEVEL", &v)
        })?;
        let p2p_timeout = setting("P2P_TIMEOUT")
            .map_or(Ok(ms(20_000)), |v| value::millis("P2P_TIMEOUT", &v, 0))?;
        let enable_http_fallback = setting("ENABLE_HTTP_FALLBACK")
            .map_or(Ok(true), |v| value::boolean("ENABLE_HTTP_FALLBACK", &v))?;
        let torrent_timeout = setting("TORRENT_TIMEOUT")
            .map_or(Ok(ms(60_000)), |v| value::millis("TORRENT_TIMEOUT", &v, 1))?;
        let torrent_max_retries = setting("TORRENT_MAX_RETRIES").map_or(Ok(3), |v| {
            value::integer("TORRENT_MAX_RETRIES", &v, 0, u32::MAX.into())
        })? as u32;
        let piece_wait = setting("PIECE_TIMEOUT")
            .map_or(Ok(ms(30_000)), |v| value::millis("PIECE_TIMEOUT", &v, 1))?;
        // Below 4 KiB a stream costs a syscall per few packets; above 4 MiB
        // eight streams alone would blow the Pi's memory budget.
        let stream_buffer_kb = setting("STREAM_BUFFER_KB")
            .map_or(Ok(256), |v| value::integer("STREAM_BUFFER_KB", &v, 4, 4096))?
            as u32;
        let templates = |key: &'static str, text: &str, allowed| {
            Template::parse_list(text, allowed)
                .map_err(|error| ConfigError::BadTemplate { key, error })
        };
        let torrent_sources = templates(
            "TORRENT_SOURCES",
            &setting("TORRENT_SOURCES").unwrap_or_else(|| DEFAULT_TORRENT_SOURCES.to_string()),
            Placeholder::TORRENT,
        )?;
        let http_sources = templates(
            "HTTP_SOURCES",
            &setting("HTTP_SOURCES").unwrap_or_default(),
            Placeholder::CONTENT,
        )?;
        let http_connections = setting("HTTP_CONNECTIONS")
            .map_or(Ok(4), |v| value::integer("HTTP_CONNECTIONS", &v, 1, 32))?
            as u32;
        let http_timeout = setting("HTTP_TIMEOUT")
            .map_or(Ok(ms(15_000)), |v| value::millis("HTTP_TIMEOUT", &v, 1))?;
        let http_max_torrent_kb = setting("HTTP_MAX_TORRENT_KB").map_or(Ok(8192), |v| {
            value::integer(
                "HTTP_MAX_TORRENT_KB",
                &v,
                1,
                (crate::format::bencode::MAX_INPUT / 1024) as u64,
            )
        })?;

        let trackers = value::list(&setting("TRACKERS").unwrap_or_else(|| DEFAULT_TRACKERS.into()))
            .into_iter()
            .map(|t| value::tracker_url("TRACKERS", &t))
            .collect::<Result<Vec<_>, _>>()?;
        let torrent_port =
            setting("TORRENT_PORT").map_or(Ok(6881), |v| value::port("TORRENT_PORT", &v))?;
        let stream_readahead_mb = setting("STREAM_READAHEAD_MB").map_or(Ok(16), |v| {
            value::integer("STREAM_READAHEAD_MB", &v, 1, 1024)
        })?;
        let max_peers = setting("MAX_PEERS")
            .map_or(Ok(40), |v| value::integer("MAX_PEERS", &v, 1, 500))?
            as u32;
        let max_connections = setting("MAX_CONNECTIONS")
            .map_or(Ok(120), |v| value::integer("MAX_CONNECTIONS", &v, 1, 2000))?
            as u32;
        let max_upload_kbps = setting("MAX_UPLOAD_KBPS").map_or(Ok(0), |v| {
            value::integer("MAX_UPLOAD_KBPS", &v, 0, u64::MAX / 1024)
        })?;
        let enable_dht =
            setting("ENABLE_DHT").map_or(Ok(true), |v| value::boolean("ENABLE_DHT", &v))?;
        let dht_bootstrap =
            value::list(&setting("DHT_BOOTSTRAP").unwrap_or_else(|| DEFAULT_DHT_BOOTSTRAP.into()))
                .into_iter()
                .map(|t| value::host_port("DHT_BOOTSTRAP", &t))
                .collect::<Result<Vec<_>, _>>()?;
        let enable_lsd =
            setting("ENABLE_LSD").map_or(Ok(true), |v| value::boolean("ENABLE_LSD", &v))?;
        let lsd_group = setting("LSD_GROUP")
            .map_or(Ok(LSD_GROUP), |v| value::multicast_group("LSD_GROUP", &v))?;
        let lsd_interface = setting("LSD_INTERFACE").map_or(Ok(Ipv4Addr::UNSPECIFIED), |v| {
            value::ipv4("LSD_INTERFACE", &v)
        })?;
        let enable_utp =
            setting("ENABLE_UTP").map_or(Ok(true), |v| value::boolean("ENABLE_UTP", &v))?;
        let state_dir = match setting("STATE_DIR") {
            Some(v) if v.is_empty() => {
                return Err(ConfigError::BadValue {
                    key: "STATE_DIR",
                    value: v,
                    expected: "a directory path",
                })
            }
            Some(v) => PathBuf::from(v),
            None => default_state_dir(environ),
        };
        let enable_dlna =
            setting("ENABLE_DLNA").map_or(Ok(true), |v| value::boolean("ENABLE_DLNA", &v))?;
        let dlna_name = setting("DLNA_NAME")
            .map_or(Ok(String::new()), |v| value::friendly_name("DLNA_NAME", &v))?;
        let dlna_interface = setting("DLNA_INTERFACE").map_or(Ok(String::new()), |v| {
            value::interface("DLNA_INTERFACE", &v)
        })?;

        let client_max = setting("CLIENT_MAX")
            .map_or(Ok(256), |v| value::integer("CLIENT_MAX", &v, 2, 4096))?
            as u32;
        let client_max_per_addr = setting("CLIENT_MAX_PER_ADDR").map_or(Ok(64), |v| {
            value::integer("CLIENT_MAX_PER_ADDR", &v, 1, 4096)
        })? as u32;
        let client_max_per_addr = client_max_per_addr.min(client_max);
        let client_head_timeout = setting("CLIENT_HEAD_TIMEOUT").map_or(Ok(ms(10_000)), |v| {
            value::millis("CLIENT_HEAD_TIMEOUT", &v, 1)
        })?;
        let client_idle_timeout = setting("CLIENT_IDLE_TIMEOUT").map_or(Ok(ms(120_000)), |v| {
            value::millis("CLIENT_IDLE_TIMEOUT", &v, 1)
        })?;
        let client_body_timeout = setting("CLIENT_BODY_TIMEOUT").map_or(Ok(ms(60_000)), |v| {
            value::millis("CLIENT_BODY_TIMEOUT", &v, 1)
        })?;
        let client_stall_timeout = setting("CLIENT_STALL_TIMEOUT")
            .map_or(Ok(ms(7_200_000)), |v| {
                value::millis("CLIENT_STALL_TIMEOUT", &v, 1)
            })?;
        let allowed_origins = value::list(
            &setting("ALLOWED_ORIGINS").unwrap_or_else(|| DEFAULT_ALLOWED_ORIGINS.into()),
        )
        .into_iter()
        .map(|o| value::origin("ALLOWED_ORIGINS", &o))
        .collect::<Result<Vec<_>, _>>()?;
        let allowed_hosts = value::list(&setting("ALLOWED_HOSTS").unwrap_or_default())
            .into_iter()
            .map(|h| value::host_name("ALLOWED_HOSTS", &h))
            .collect::<Result<Vec<_>, _>>()?;
        let api_token = setting("API_TOKEN").filter(|t| !t.is_empty());

        let encryption = setting("ENCRYPTION").map_or(Ok(Encryption::Prefer), |v| {
            value::encryption("ENCRYPTION", &v)
        })?;

        let sources: Vec<Source> = KEYS
            .iter()
            .map(|(key, _)| {
                found_in
                    .iter()
                    .find(|(k, _)| k == key)
                    .map_or(Source::Default, |(_, s)| s.clone())
            })
            .collect();
        let config = Config {
            host,
            port,
            cache_dir,
            cache_max_disk_mb,
            log_level,
            p2p_timeout,
            enable_http_fallback,
            torrent_timeout,
            torrent_max_retries,
            piece_wait,
            stream_buffer_kb,
            torrent_sources,
            http_sources,
            http_connections,
            http_timeout,
            http_max_torrent_kb,
            trackers,
            torrent_port,
            stream_readahead_mb,
            max_peers,
            max_connections,
            max_upload_kbps,
            enable_dht,
            dht_bootstrap,
            enable_lsd,
            lsd_group,
            lsd_interface,
            enable_utp,
            client_max,
            client_max_per_addr,
            client_head_timeout,
            client_idle_timeout,
            client_body_timeout,
            client_stall_timeout,
            allowed_origins,
            allowed_hosts,
            api_token,
            state_dir,
            enable_dlna,
            dlna_name,
            dlna_interface,
            encryption,
            sources,
        };
        Ok((config, warnings))
    }

    /// [`Config::load`] with the process environment.
    pub fn from_process(env_file: Option<&Path>) -> Result<(Config, Vec<Warning>), ConfigError> {
        Config::load(env_file, &|key| {
            std::env::var_os(key).map(|v| {
                v.into_string()
                    .unwrap_or_else(|v| v.to_string_lossy().into_owned())
            })
        })
    }

    /// The readahead window in bytes: `STREAM_READAHEAD_MB`, at most a
    /// quarter of the quota.
    pub fn readahead_bytes(&self) -> u64 {
        (self.stream_readahead_mb * MIB).min(self.cache_max_disk_bytes() / 4)
    }

    /// The quota in bytes.
    pub fn cache_max_disk_bytes(&self) -> u64 {
        self.cache_max_disk_mb * MIB
    }

    /// Where `key` (one of [`KEYS`]) got its value.
    pub fn source(&self, key: &str) -> Option<&Source> {
        KEYS.iter()
            .position(|(k, _)| *k == key)
            .map(|i| &self.sources[i])
    }

    /// Creates `CACHE_DIR` if needed and proves it writable by writing and
    /// deleting a probe file. Apart from [`Config::load`] so that
    /// `streme config` can print a configuration whose directory is broken.
    pub fn check_cache_dir(&self) -> Result<(), ConfigError> {
        let unusable = |e: std::io::Error| ConfigError::CacheDirUnusable {
            path: self.cache_dir.clone(),
            reason: e.to_string(),
        };
        fs::create_dir_all(&self.cache_dir).map_err(unusable)?;
        let probe = self.cache_dir.join(".streme-write-probe");
        fs::write(&probe, b"probe").map_err(unusable)?;
        fs::remove_file(&probe).map_err(unusable)
    }

    /// The effective configuration, one `KEY=value  (source)` line per key.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (((key, _), value), source) in KEYS.iter().zip(self.values()).zip(&self.sources) {
            out.push_str(&format!("{key}={value}  ({source})\n"));
        }
        out
    }

    /// Each value as an env file would spell it, in the order of [`KEYS`].
    fn values(&self) -> [String; KEYS.len()] {
        [
            self.host.to_string(),
            self.port.to_string(),
            self.cache_dir.display().to_string(),
            self.cache_max_disk_mb.to_string(),
            self.log_level.to_string().to_ascii_lowercase(),
            self.p2p_timeout.as_millis().to_string(),
            self.enable_http_fallback.to_string(),
            self.torrent_timeout.as_millis().to_string(),
            self.torrent_max_retries.to_string(),
            self.piece_wait.as_millis().to_string(),
            self.stream_buffer_kb.to_string(),
            join(&self.torrent_sources),
            join(&self.http_sources),
            self.http_connections.to_string(),
            self.http_timeout.as_millis().to_string(),
            self.http_max_torrent_kb.to_string(),
            self.trackers.join(","),
            self.torrent_port.to_string(),
            self.stream_readahead_mb.to_string(),
            self.max_peers.to_string(),
            self.max_connections.to_string(),
            self.max_upload_kbps.to_string(),
            self.enable_dht.to_string(),
            self.dht_bootstrap.join(","),
            self.enable_lsd.to_string(),
            self.lsd_group.to_string(),
            self.lsd_interface.to_string(),
            self.enable_utp.to_string(),
            self.client_max.to_string(),
            self.client_max_per_addr.to_string(),
            self.client_head_timeout.as_millis().to_string(),
            self.client_idle_timeout.as_millis().to_string(),
            self.client_body_timeout.as_millis().to_string(),
            self.client_stall_timeout.as_millis().to_string(),
            self.allowed_origins.join(","),
            self.allowed_hosts.join(","),
            // A secret: `streme config` says whether it is set, never what it is.
            if self.api_token.is_some() {
                "(set)".into()
            } else {
                String::new()
            },
            self.state_dir.display().to_string(),
            self.enable_dlna.to_string(),
            self.dlna_name.clone(),
            self.dlna_interface.clone(),
            self.encryption.name().to_string(),
        ]
    }
}

/// A template list as the config spells it.
fn join(templates: &[Template]) -> String {
    let texts: Vec<&str> = templates.iter().map(Template::as_str).collect();
    texts.join(",")
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn default_cache_dir(environ: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    // systemd joins several CacheDirectory= entries with ':'; ours is the first.
    if let Some(first) =
        environ("CACHE_DIRECTORY").and_then(|v| v.split(':').next().map(str::to_string))
    {
        if !first.is_empty() {
            return PathBuf::from(first);
        }
    }
    match environ("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Path::new(&home).join(".cache").join("streme"),
        None => PathBuf::from("/var/cache/streme"),
    }
}

fn default_state_dir(environ: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    // systemd joins several StateDirectory= entries with ':'; ours is the first.
    if let Some(first) =
        environ("STATE_DIRECTORY").and_then(|v| v.split(':').next().map(str::to_string))
    {
        if !first.is_empty() {
            return PathBuf::from(first);
        }
    }
    match environ("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Path::new(&home).join(".local").join("state").join("streme"),
        None => PathBuf::from("/var/lib/streme"),
    }
}

#[cfg(test)]
mod tests;
