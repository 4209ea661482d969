//! Building a [`Config`]: each key looked up in the environment, then the env
//! file, then its default, and validated as it is read.
//!
//! Owns the precedence (default < env file < environment), the record of where
//! each value came from, and the defaults that depend on the environment
//! (`CACHE_DIR`, `STATE_DIR`). Must never look up a variable that is not one of
//! the keys (the process environment is full of unrelated ones) and never
//! touch `CACHE_DIR` on disk: see [`Config::check_cache_dir`].

use std::collections::HashMap;
use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::keys::{
    DEFAULT_ALLOWED_ORIGINS, DEFAULT_DHT_BOOTSTRAP, DEFAULT_TORRENT_SOURCES, DEFAULT_TRACKERS, MIB,
};
use super::{
    closest_key, envfile, value, Config, ConfigError, Encryption, Source, Warning, ENV_FILE_VAR,
    KEYS, LSD_GROUP,
};
use crate::format::template::{Placeholder, Template};

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
