use std::collections::HashMap;
use std::path::Path;

use super::error::edit_distance;
use super::*;

/// A fake environment from `KEY=VALUE` pairs.
fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |key| map.get(key).cloned()
}

/// A fresh directory for one test under the temp dir (never the real cache).
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("streme-config-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_env_file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("streme.env");
    fs::write(&path, text).unwrap();
    path
}

#[test]
fn defaults_without_any_source() {
    let (c, warnings) = Config::load(None, &env(&[("HOME", "/home/pi")])).unwrap();
    assert!(warnings.is_empty());
    assert_eq!(c.host, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    assert_eq!(c.port, 11470);
    assert_eq!(c.cache_dir, PathBuf::from("/home/pi/.cache/streme"));
    assert_eq!(c.cache_max_disk_mb, 5000);
    assert_eq!(c.cache_max_disk_bytes(), 5000 * 1024 * 1024);
    assert_eq!(c.log_level, log::LevelFilter::Info);
    assert_eq!(c.p2p_timeout, Duration::from_millis(20_000));
    assert!(c.enable_http_fallback);
    assert_eq!(c.torrent_timeout, Duration::from_millis(60_000));
    assert_eq!(c.torrent_max_retries, 3);
    assert_eq!(c.piece_wait, Duration::from_millis(30_000));
    assert_eq!(c.stream_buffer_kb, 256);
    assert_eq!(c.client_max, 256);
    assert_eq!(c.client_max_per_addr, 64);
    assert_eq!(c.client_stall_timeout, Duration::from_secs(7200));
    assert!(c
        .allowed_origins
        .contains(&"https://web.stremio.com".to_string()));
    assert!(c.allowed_hosts.is_empty());
    assert_eq!(c.api_token, None);
    // uTP is on: libtorrent and Transmission peers try it first.
    assert!(c.enable_utp);
    for (key, _) in KEYS {
        assert_eq!(c.source(key), Some(&Source::Default), "{key}");
    }
}

#[test]
fn enable_utp_false_turns_utp_off() {
    let (c, _) = Config::load(None, &env(&[("ENABLE_UTP", "false")])).unwrap();
    assert!(!c.enable_utp);
    assert_eq!(c.source("ENABLE_UTP"), Some(&Source::Environment));
}

#[test]
fn keys_table_defaults_match_the_loaded_defaults() {
    let (c, _) = Config::load(None, &env(&[])).unwrap();
    for ((key, default), value) in KEYS.iter().zip(c.values()) {
        if *key != "CACHE_DIR" && *key != "STATE_DIR" {
            assert_eq!(*default, value, "{key}");
        }
    }
}

#[test]
fn state_dir_prefers_systemd_state_directory_and_is_not_the_cache() {
    let (c, _) = Config::load(
        None,
        &env(&[
            ("STATE_DIRECTORY", "/var/lib/streme"),
            ("CACHE_DIRECTORY", "/var/cache/streme"),
        ]),
    )
    .unwrap();
    assert_eq!(c.state_dir, PathBuf::from("/var/lib/streme"));
    let (c, _) = Config::load(None, &env(&[("HOME", "/home/u")])).unwrap();
    assert_eq!(c.state_dir, PathBuf::from("/home/u/.local/state/streme"));
    assert_ne!(c.state_dir, c.cache_dir);
    let (c, _) = Config::load(None, &env(&[])).unwrap();
    assert_eq!(c.state_dir, PathBuf::from("/var/lib/streme"));
    assert!(c.enable_dlna);
    let (c, _) = Config::load(
        None,
        &env(&[("DLNA_NAME", " Living room "), ("DLNA_INTERFACE", "eth0")]),
    )
    .unwrap();
    assert_eq!(c.dlna_name, "Living room");
    assert_eq!(c.dlna_interface, "eth0");
}

#[test]
fn cache_dir_prefers_systemd_cache_directory() {
    let (c, _) = Config::load(
        None,
        &env(&[
            ("CACHE_DIRECTORY", "/var/cache/streme:/var/cache/other"),
            ("HOME", "/root"),
        ]),
    )
    .unwrap();
    assert_eq!(c.cache_dir, PathBuf::from("/var/cache/streme"));
    let (c, _) = Config::load(None, &env(&[])).unwrap();
    assert_eq!(c.cache_dir, PathBuf::from("/var/cache/streme"));
    let (c, _) = Config::load(
        None,
        &env(&[("CACHE_DIRECTORY", "/a"), ("CACHE_DIR", "/b")]),
    )
    .unwrap();
    assert_eq!(c.cache_dir, PathBuf::from("/b"));
}

#[test]
fn environment_overrides_env_file_which_overrides_defaults() {
    let dir = scratch("precedence");
    let file = write_env_file(&dir, "PORT=8080\nP2P_TIMEOUT = 5000\nLOG_LEVEL=\"DEBUG\"\n");
    let (c, warnings) = Config::load(Some(&file), &env(&[("PORT", "0")])).unwrap();
    assert!(warnings.is_empty());
    assert_eq!(c.port, 0);
    assert_eq!(c.source("PORT"), Some(&Source::Environment));
    assert_eq!(c.p2p_timeout, Duration::from_millis(5000));
    assert_eq!(
        c.source("P2P_TIMEOUT"),
        Some(&Source::EnvFile(file.clone()))
    );
    assert_eq!(c.log_level, log::LevelFilter::Debug);
    assert_eq!(c.source("HOST"), Some(&Source::Default));
}

#[test]
fn env_file_from_streme_env_file_variable() {
    let dir = scratch("variable");
    let file = write_env_file(&dir, "TORRENT_MAX_RETRIES=7\n");
    let (c, _) = Config::load(None, &env(&[("STREME_ENV_FILE", file.to_str().unwrap())])).unwrap();
    assert_eq!(c.torrent_max_retries, 7);
    // --env-file wins over the variable.
    let other = dir.join("other.env");
    fs::write(&other, "TORRENT_MAX_RETRIES=1\n").unwrap();
    let (c, _) = Config::load(
        Some(&other),
        &env(&[("STREME_ENV_FILE", file.to_str().unwrap())]),
    )
    .unwrap();
    assert_eq!(c.torrent_max_retries, 1);
}

#[test]
fn later_line_in_env_file_wins() {
    let dir = scratch("later");
    let file = write_env_file(&dir, "PORT=1\nPORT=2\n");
    let (c, _) = Config::load(Some(&file), &env(&[])).unwrap();
    assert_eq!(c.port, 2);
}

#[test]
fn unknown_env_file_key_warns_with_suggestion() {
    let dir = scratch("unknown");
    let file = write_env_file(&dir, "# x\nP2P_TIMOUT=5\nport=9\nWHATEVER=1\n");
    let (c, warnings) = Config::load(Some(&file), &env(&[])).unwrap();
    // The misspelt key is ignored, not applied.
    assert_eq!(c.p2p_timeout, Duration::from_millis(20_000));
    assert_eq!(c.port, 11470);
    assert_eq!(
        warnings,
        vec![
            Warning::UnknownKey {
                file: file.clone(),
                line: 2,
                key: "P2P_TIMOUT".into(),
                suggestion: Some("P2P_TIMEOUT")
            },
            Warning::UnknownKey {
                file: file.clone(),
                line: 3,
                key: "port".into(),
                suggestion: Some("PORT")
            },
            Warning::UnknownKey {
                file: file.clone(),
                line: 4,
                key: "WHATEVER".into(),
                suggestion: None
            },
        ]
    );
    assert_eq!(
        warnings[0].to_string(),
        format!(
            "{}:2: unknown key P2P_TIMOUT, ignored (did you mean P2P_TIMEOUT?)",
            file.display()
        )
    );
}

#[test]
fn unrelated_environment_variables_are_ignored() {
    let (c, warnings) = Config::load(
        None,
        &env(&[("PATH", "/bin"), ("P2P_TIMEOUTS", "x"), ("PORTS", "x")]),
    )
    .unwrap();
    assert!(warnings.is_empty());
    assert_eq!(c.port, 11470);
}

#[test]
fn bad_values_name_key_and_value() {
    let cases = [
        ("P2P_TIMEOUT", "20s", "P2P_TIMEOUT: expected milliseconds (a non-negative integer), got \"20s\""),
        ("TORRENT_TIMEOUT", "-1", "TORRENT_TIMEOUT: expected milliseconds (a non-negative integer), got \"-1\""),
        ("TORRENT_TIMEOUT", "0", "TORRENT_TIMEOUT: expected at least 1, got \"0\""),
        ("ENABLE_HTTP_FALLBACK", "maybe", "ENABLE_HTTP_FALLBACK: expected a boolean (true/false, 1/0, yes/no, on/off), got \"maybe\""),
        ("CACHE_MAX_DISK_MB", "0", "CACHE_MAX_DISK_MB: expected 1 to 17592186044415, got \"0\""),
        ("TORRENT_MAX_RETRIES", "4294967296", "TORRENT_MAX_RETRIES: expected 0 to 4294967295, got \"4294967296\""),
        ("PORT", "http", "PORT: expected a port number (0-65535, 0 picks a free port), got \"http\""),
        ("HOST", "localhost", "HOST: expected an IP address such as 0.0.0.0, 127.0.0.1 or ::, got \"localhost\""),
        ("LOG_LEVEL", "loud", "LOG_LEVEL: expected one of error, warn, info, debug, trace, off, got \"loud\""),
        ("STREAM_BUFFER_KB", "1", "STREAM_BUFFER_KB: expected 4 to 4096, got \"1\""),
        ("PIECE_TIMEOUT", "", "PIECE_TIMEOUT: expected milliseconds (a non-negative integer), got \"\""),
        ("CACHE_DIR", "", "CACHE_DIR: expected a directory path, got \"\""),
        ("LSD_GROUP", "10.0.0.1:6771", "LSD_GROUP: expected an IPv4 multicast group:port such as 239.192.152.143:6771, got \"10.0.0.1:6771\""),
        ("LSD_GROUP", "239.192.152.143:0", "LSD_GROUP: expected an IPv4 multicast group:port such as 239.192.152.143:6771, got \"239.192.152.143:0\""),
        ("LSD_INTERFACE", "::1", "LSD_INTERFACE: expected an IPv4 address such as 0.0.0.0 or 127.0.0.1, got \"::1\""),
        ("CLIENT_MAX", "1", "CLIENT_MAX: expected 2 to 4096, got \"1\""),
        ("CLIENT_IDLE_TIMEOUT", "0", "CLIENT_IDLE_TIMEOUT: expected at least 1, got \"0\""),
        ("ALLOWED_ORIGINS", "https://a.example/path", "ALLOWED_ORIGINS: expected origins such as https://web.stremio.com or http://192.168.1.5:8080 (no path), got \"https://a.example/path\""),
        ("ALLOWED_HOSTS", "a b", "ALLOWED_HOSTS: expected host names such as streme.example.com or .example.com, got \"a b\""),
        ("STATE_DIR", "", "STATE_DIR: expected a directory path, got \"\""),
        ("ENABLE_UTP", "maybe", "ENABLE_UTP: expected a boolean (true/false, 1/0, yes/no, on/off), got \"maybe\""),
        ("ENABLE_DLNA", "sure", "ENABLE_DLNA: expected a boolean (true/false, 1/0, yes/no, on/off), got \"sure\""),
        ("DLNA_NAME", "a\u{7}b", "DLNA_NAME: expected a name of at most 64 characters without control characters, got \"a\\u{7}b\""),
        ("DLNA_INTERFACE", "eth0; rm", "DLNA_INTERFACE: expected an interface name such as eth0, an IPv4 address, or empty for every interface, got \"eth0; rm\""),
        ("ENCRYPTION", "forced", "ENCRYPTION: expected one of prefer, require, off, got \"forced\""),
    ];
    for (key, value, message) in cases {
        let e = Config::load(None, &env(&[(key, value)])).unwrap_err();
        assert_eq!(e.to_string(), message);
        assert!(!e.to_string().contains('\n'));
    }
}

#[test]
fn bad_value_in_env_file_is_reported_too() {
    let dir = scratch("badfile");
    let file = write_env_file(&dir, "P2P_TIMEOUT=20s\n");
    let e = Config::load(Some(&file), &env(&[])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "P2P_TIMEOUT: expected milliseconds (a non-negative integer), got \"20s\""
    );
}

#[test]
fn env_file_syntax_error_names_file_and_line() {
    let dir = scratch("syntax");
    let file = write_env_file(&dir, "PORT=1\nexport HOST=::\n");
    let e = Config::load(Some(&file), &env(&[])).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:2: `export HOST=…` is shell syntax that systemd's EnvironmentFile does not accept; write `HOST=…`",
            file.display()
        )
    );
}

#[test]
fn missing_env_file_is_an_error() {
    let missing = scratch("missing").join("nope.env");
    let e = Config::load(Some(&missing), &env(&[])).unwrap_err();
    assert!(
        matches!(&e, ConfigError::EnvFileUnreadable { path, .. } if *path == missing),
        "{e}"
    );
}

#[test]
fn describe_lists_every_key_with_its_source() {
    let dir = scratch("describe");
    let file = write_env_file(&dir, "PORT=8080\n");
    let (c, _) = Config::load(Some(&file), &env(&[("LOG_LEVEL", "WARN"), ("HOME", "/h")])).unwrap();
    let text = c.describe();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), KEYS.len());
    assert_eq!(lines[0], "HOST=0.0.0.0  (default)");
    assert_eq!(
        lines[1],
        format!("PORT=8080  (env file {})", file.display())
    );
    assert_eq!(lines[2], "CACHE_DIR=/h/.cache/streme  (default)");
    assert_eq!(lines[4], "LOG_LEVEL=warn  (environment)");
    assert_eq!(lines[5], "P2P_TIMEOUT=20000  (default)");
}

#[test]
fn check_cache_dir_creates_and_probes() {
    let dir = scratch("cachedir").join("nested").join("cache");
    let (c, _) = Config::load(None, &env(&[("CACHE_DIR", dir.to_str().unwrap())])).unwrap();
    c.check_cache_dir().unwrap();
    assert!(dir.is_dir());
    // The probe is gone again.
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
}

#[test]
fn check_cache_dir_reports_an_unusable_dir() {
    // A regular file where a directory component should be: fails even as root.
    let base = scratch("unusable");
    let blocker = base.join("file");
    fs::write(&blocker, b"x").unwrap();
    let dir = blocker.join("cache");
    let (c, _) = Config::load(None, &env(&[("CACHE_DIR", dir.to_str().unwrap())])).unwrap();
    let e = c.check_cache_dir().unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "CACHE_DIR: cannot use {:?}: ",
            dir.display().to_string()
        )),
        "{text}"
    );
    assert!(!text.contains('\n'));
}

#[test]
fn edit_distance_counts_edits() {
    assert_eq!(edit_distance("PORT", "PORT"), 0);
    assert_eq!(edit_distance("PROT", "PORT"), 2);
    assert_eq!(edit_distance("HOSTS", "HOST"), 1);
    assert_eq!(edit_distance("", "ABC"), 3);
    assert_eq!(closest_key("CACHE_MAX_DISK"), None);
    assert_eq!(closest_key("cache_dri"), Some("CACHE_DIR"));
}

#[test]
fn http_keys_default_and_parse() {
    let (c, _) = Config::load(None, &env(&[])).unwrap();
    let torrent: Vec<&str> = c.torrent_sources.iter().map(|t| t.as_str()).collect();
    assert_eq!(torrent, ["https://itorrents.org/torrent/{HASH}.torrent"]);
    assert!(c.http_sources.is_empty());
    assert_eq!(c.http_connections, 4);
    assert_eq!(c.http_timeout, Duration::from_millis(15_000));
    assert_eq!(c.http_max_torrent_kb, 8192);

    let (c, _) = Config::load(
        None,
        &env(&[
            ("TORRENT_SOURCES", ""),
            (
                "HTTP_SOURCES",
                "http://127.0.0.1:8080/{hash}/{path}, https://m.example/{index}/{file}",
            ),
            ("HTTP_CONNECTIONS", "32"),
            ("HTTP_TIMEOUT", "250"),
            ("HTTP_MAX_TORRENT_KB", "1"),
        ]),
    )
    .unwrap();
    assert!(c.torrent_sources.is_empty());
    assert_eq!(c.http_sources.len(), 2);
    assert_eq!(c.http_connections, 32);
    assert_eq!(c.http_timeout, Duration::from_millis(250));
    assert_eq!(c.http_max_torrent_kb, 1);
    assert!(c.describe().contains(
        "HTTP_SOURCES=http://127.0.0.1:8080/{hash}/{path},https://m.example/{index}/{file}  (environment)"
    ));
    assert!(c.describe().contains("TORRENT_SOURCES=  (environment)"));
}

#[test]
fn bad_templates_name_the_key_and_the_template() {
    let error = |pairs: &[(&str, &str)]| Config::load(None, &env(pairs)).unwrap_err().to_string();
    assert_eq!(
        error(&[("HTTP_SOURCES", "http://m/{hash}/{x}")]),
        "HTTP_SOURCES: \"http://m/{hash}/{x}\" has an unknown placeholder {x}"
    );
    assert_eq!(
        error(&[("TORRENT_SOURCES", "http://ok/{hash},http://c/{HASH}/{path}")]),
        "TORRENT_SOURCES: \"http://c/{HASH}/{path}\" has an unknown placeholder {path}"
    );
    assert_eq!(
        error(&[("TORRENT_SOURCES", "file:///t/{hash}")]),
        "TORRENT_SOURCES: \"file:///t/{hash}\" is not an http:// or https:// URL"
    );
    assert_eq!(
        error(&[("HTTP_CONNECTIONS", "0")]),
        "HTTP_CONNECTIONS: expected 1 to 32, got \"0\""
    );
    assert_eq!(
        error(&[("HTTP_MAX_TORRENT_KB", "16385")]),
        "HTTP_MAX_TORRENT_KB: expected 1 to 16384, got \"16385\""
    );
}

#[test]
fn client_caps_and_security_settings_parse() {
    let (c, _) = Config::load(
        None,
        &env(&[
            ("CLIENT_MAX", "10"),
            ("CLIENT_MAX_PER_ADDR", "50"),
            (
                "ALLOWED_ORIGINS",
                "HTTP://192.168.1.5:8080, https://x.example",
            ),
            ("ALLOWED_HOSTS", "box.example.com,.home.example"),
            ("API_TOKEN", "s3cret"),
        ]),
    )
    .unwrap();
    assert_eq!(c.client_max, 10);
    // The per-address cap never exceeds the total.
    assert_eq!(c.client_max_per_addr, 10);
    assert_eq!(
        c.allowed_origins,
        ["http://192.168.1.5:8080", "https://x.example"]
    );
    assert_eq!(c.allowed_hosts, ["box.example.com", ".home.example"]);
    assert_eq!(c.api_token.as_deref(), Some("s3cret"));
    assert!(!c.describe().contains("s3cret"));
}

#[test]
fn encryption_defaults_to_prefer_and_parses_each_mode() {
    let (c, _) = Config::load(None, &env(&[])).unwrap();
    assert_eq!(c.encryption, Encryption::Prefer);
    for (text, mode) in [
        ("prefer", Encryption::Prefer),
        ("REQUIRE", Encryption::Require),
        ("off", Encryption::Off),
    ] {
        let (c, _) = Config::load(None, &env(&[("ENCRYPTION", text)])).unwrap();
        assert_eq!(c.encryption, mode, "{text}");
    }
}
