//! The keys streme reads, in the order `streme config` prints them, and the
//! built-in default of each.
//!
//! Owns the list of names and the default text of every setting, so one place
//! answers "what is there and what is it out of the box". Must never parse or
//! validate a value: that is `value`, applied when the config loads.

use std::net::{Ipv4Addr, SocketAddrV4};

/// BEP 14's IPv4 group and port, the default of `LSD_GROUP`. It lives here,
/// at the bottom of the house, so the config need not import the P2P tier.
pub const LSD_GROUP: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(239, 192, 152, 143), 6771);

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
pub(super) const DEFAULT_ALLOWED_ORIGINS: &str =
    "https://web.stremio.com,https://web.strem.io,https://app.strem.io";

/// The public .torrent cache the seed used.
pub(super) const DEFAULT_TORRENT_SOURCES: &str = "https://itorrents.org/torrent/{HASH}.torrent";

/// Well-known open trackers that have answered for years; added to magnets
/// that name no tracker (`tr=`).
pub(super) const DEFAULT_TRACKERS: &str = "udp://tracker.opentrackr.org:1337/announce,udp://open.stealth.si:80/announce,udp://tracker.torrent.eu.org:451/announce,udp://exodus.desync.com:6969/announce";

/// The mainline DHT's public bootstrap routers (BitTorrent, Transmission,
/// libtorrent).
pub(super) const DEFAULT_DHT_BOOTSTRAP: &str =
    "router.bittorrent.com:6881,dht.transmissionbt.com:6881,dht.libtorrent.org:25401";

/// One MB of `CACHE_MAX_DISK_MB`: a MiB, the unit `du -m` counts in.
pub(super) const MIB: u64 = 1024 * 1024;
