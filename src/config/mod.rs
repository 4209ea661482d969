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
mod keys;
mod load;
mod value;

use std::fmt;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use crate::format::template::Template;

pub use envfile::{Problem as EnvFileProblem, SyntaxError as EnvFileSyntaxError};
use error::closest_key;
pub use error::{ConfigError, Warning};
use keys::MIB;
pub use keys::{ENV_FILE_VAR, KEYS, LSD_GROUP};
// For the intra-doc links in `Config`'s field docs.
#[cfg(doc)]
use keys::{DEFAULT_ALLOWED_ORIGINS, DEFAULT_TRACKERS};

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

#[cfg(test)]
mod tests;
