//! The command line: `serve` (the default), `import`, `info`, `config`, `--help`,
//! `--version`, the env file in systemd's syntax, and start-up refusing bad settings with one
//! line that names the key and the value.

mod common;

use std::time::Duration;

use common::cached::ROOMY_QUOTA_MB;
use common::fixture;
use common::http;
use common::server::{self, base_env, parse_import_line, streme, streme_within, Server};
use common::TestDir;

/// Every key the issue names; `streme config` prints each one.
const KEYS: [&str; 9] = [
    "HOST",
    "PORT",
    "CACHE_DIR",
    "CACHE_MAX_DISK_MB",
    "LOG_LEVEL",
    "P2P_TIMEOUT",
    "ENABLE_HTTP_FALLBACK",
    "TORRENT_TIMEOUT",
    "TORRENT_MAX_RETRIES",
];

/// A bad setting must stop start-up well within this; a server that starts anyway is caught.
const REFUSAL_DEADLINE: Duration = Duration::from_secs(20);

/// An environment with HOME inside the test dir, so defaults such as `~/.cache/streme` never
/// touch the developer's home.
fn home_env(dir: &TestDir) -> Vec<(String, String)> {
    vec![("HOME".into(), dir.sub("home").display().to_string())]
}

fn write_env_file(dir: &TestDir, text: &str) -> String {
    let path = dir.path().join("streme.env");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The `(value, source)` of `KEY=value  (source)` in `streme config` output.
fn config_entry(stdout: &str, key: &str) -> (String, String) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= line in:\n{stdout}"));
    let rest = &line[key.len() + 1..];
    let (value, source) = rest
        .rsplit_once("  (")
        .unwrap_or_else(|| panic!("{line:?} is not `KEY=value  (source)`"));
    (value.to_string(), source.trim_end_matches(')').to_string())
}

#[test]
fn version_prints_the_package_version() {
    let dir = TestDir::new("cli_version");
    let out = streme(&home_env(&dir), &["--version"]);
    assert!(out.status.success(), "{}", out.describe());
    assert!(
        out.stdout.contains(env!("CARGO_PKG_VERSION")),
        "{}",
        out.describe()
    );
}

#[test]
fn help_lists_every_command() {
    let dir = TestDir::new("cli_help");
    let out = streme(&home_env(&dir), &["--help"]);
    assert!(out.status.success(), "{}", out.describe());
    for word in ["serve", "import", "info", "config", "--env-file"] {
        assert!(
            out.stdout.contains(word),
            "--help does not mention {word}: {}",
            out.describe()
        );
    }
}

#[test]
fn unknown_command_fails_naming_it() {
    let dir = TestDir::new("cli_unknown");
    let out = streme(&home_env(&dir), &["frobnicate"]);
    assert!(!out.status.success(), "{}", out.describe());
    assert!(out.stderr.contains("frobnicate"), "{}", out.describe());
}

#[test]
fn config_prints_every_key_with_value_and_source() {
    let dir = TestDir::new("cli_config");
    let file = write_env_file(&dir, "LOG_LEVEL=warn\nPORT=1111\n");
    let mut env = home_env(&dir);
    env.push(("PORT".into(), "12345".into()));
    let out = streme(&env, &["--env-file", &file, "config"]);
    assert!(out.status.success(), "{}", out.describe());
    for key in KEYS {
        config_entry(&out.stdout, key);
    }
    // The real environment wins over the file.
    let (port, port_source) = config_entry(&out.stdout, "PORT");
    assert_eq!(port, "12345");
    assert!(
        port_source.to_ascii_lowercase().contains("env"),
        "PORT source {port_source:?}"
    );
    let (level, level_source) = config_entry(&out.stdout, "LOG_LEVEL");
    assert_eq!(level, "warn");
    assert!(
        level_source.contains(&file) || level_source.to_ascii_lowercase().contains("file"),
        "LOG_LEVEL source {level_source:?} does not name the env file"
    );
    assert_ne!(
        level_source, port_source,
        "the file and the environment are told apart"
    );
    // The documented defaults.
    for (key, default) in [
        ("P2P_TIMEOUT", "20000"),
        ("TORRENT_TIMEOUT", "60000"),
        ("TORRENT_MAX_RETRIES", "3"),
        ("CACHE_MAX_DISK_MB", "5000"),
        ("ENABLE_HTTP_FALLBACK", "true"),
        ("HOST", "0.0.0.0"),
    ] {
        let (value, source) = config_entry(&out.stdout, key);
        assert_eq!(value, default, "default of {key}");
        assert!(
            source.to_ascii_lowercase().contains("default"),
            "{key} source {source:?}"
        );
    }
    let (cache_dir, _) = config_entry(&out.stdout, "CACHE_DIR");
    assert!(
        cache_dir.ends_with(".cache/streme"),
        "default CACHE_DIR {cache_dir}"
    );
}

#[test]
fn env_file_uses_systemd_syntax_and_streme_env_file_finds_it() {
    let dir = TestDir::new("cli_env_file");
    let file = write_env_file(
        &dir,
        "# a comment\n; another comment\n\n  LOG_LEVEL=\"warn\"\nP2P_TIMEOUT='1500'\nPORT=2345\n",
    );
    let mut env = home_env(&dir);
    env.push(("STREME_ENV_FILE".into(), file));
    let out = streme(&env, &["config"]);
    assert!(out.status.success(), "{}", out.describe());
    assert_eq!(config_entry(&out.stdout, "LOG_LEVEL").0, "warn");
    assert_eq!(config_entry(&out.stdout, "P2P_TIMEOUT").0, "1500");
    assert_eq!(config_entry(&out.stdout, "PORT").0, "2345");
}

#[test]
fn unknown_key_in_env_file_warns_naming_it() {
    let dir = TestDir::new("cli_unknown_key");
    let file = write_env_file(&dir, "PORTT=8080\nLOG_LEVEL=info\n");
    let out = streme(&home_env(&dir), &["--env-file", &file, "config"]);
    assert!(
        out.status.success(),
        "an unknown key is a warning, not an error: {}",
        out.describe()
    );
    assert!(
        out.stderr.contains("PORTT"),
        "no warning naming PORTT: {}",
        out.describe()
    );
}

#[test]
fn bad_config_values_stop_startup_with_one_line_naming_key_and_value() {
    let dir = TestDir::new("cli_bad_values");
    let cases = [
        ("P2P_TIMEOUT", "abc"),
        ("P2P_TIMEOUT", "-5"),
        ("TORRENT_TIMEOUT", "-1"),
        ("ENABLE_HTTP_FALLBACK", "maybe"),
        ("CACHE_MAX_DISK_MB", "lots"),
        ("TORRENT_MAX_RETRIES", "3x"),
        ("PORT", "99999"),
        ("CACHE_DIR", "/proc/streme-cannot-write-here"),
    ];
    for (key, value) in cases {
        let mut env = base_env(&dir.sub("cache"), ROOMY_QUOTA_MB);
        env.retain(|(k, _)| k != key);
        env.push((key.into(), value.into()));
        let out = streme_within(&env, &["serve"], REFUSAL_DEADLINE);
        assert!(
            !out.status.success(),
            "{key}={value} was accepted: {}",
            out.describe()
        );
        assert!(
            out.stderr
                .lines()
                .any(|l| l.contains(key) && l.contains(value)),
            "no stderr line names both {key} and {value}: {}",
            out.describe()
        );
    }
    // The same from the env file.
    let file = write_env_file(&dir, "P2P_TIMEOUT=abc\n");
    let out = streme_within(
        &home_env(&dir),
        &["--env-file", &file, "config"],
        REFUSAL_DEADLINE,
    );
    assert!(!out.status.success(), "{}", out.describe());
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains("P2P_TIMEOUT") && l.contains("abc")),
        "{}",
        out.describe()
    );
}

#[test]
fn serve_is_the_default_command_and_reads_the_env_file() {
    let dir = TestDir::new("cli_default_serve");
    let cache = dir.sub("cache");
    let file = write_env_file(
        &dir,
        &format!(
            "PORT=0\nHOST=127.0.0.1\nCACHE_DIR={}\nCACHE_MAX_DISK_MB=50\n",
            cache.display()
        ),
    );
    let srv = Server::start_with_args(&home_env(&dir), &["--env-file", &file]);
    http::assert_healthy(srv.addr(), "start-up");
    assert_eq!(srv.addr().ip().to_string(), "127.0.0.1");
}

fn multi_file_torrent(dir: &TestDir) -> (fixture::Torrent, std::path::PathBuf) {
    fixture::require_fixture_tools();
    let downloads = dir.sub("downloads");
    let content = fixture::multi_file_content(&downloads, "Show");
    (
        fixture::mktorrent(&content.root, &dir.path().join("show.torrent"), 15),
        downloads,
    )
}

#[test]
fn info_prints_name_hash_files_and_the_chosen_file() {
    let dir = TestDir::new("cli_info");
    let (torrent, _) = multi_file_torrent(&dir);
    let out = streme(
        &home_env(&dir),
        &["info", &torrent.file.display().to_string()],
    );
    assert!(out.status.success(), "{}", out.describe());
    for needle in [
        "Show",
        torrent.info_hash.as_str(),
        "sample.txt",
        "video.mkv",
        "notes.txt",
    ] {
        assert!(
            out.stdout.contains(needle),
            "info does not print {needle}: {}",
            out.describe()
        );
    }
    let chosen = out.stdout.lines().any(|l| {
        let lower = l.to_ascii_lowercase();
        l.contains("video.mkv") && (lower.contains("chosen") || lower.contains("selected"))
    });
    assert!(
        chosen,
        "no line names video.mkv as the chosen file: {}",
        out.describe()
    );
}

#[test]
fn info_accepts_a_magnet_and_a_bare_hash() {
    let dir = TestDir::new("cli_info_magnet");
    let hash = "0123456789abcdef0123456789abcdef01234567";
    let out = streme(
        &home_env(&dir),
        &["info", &format!("magnet:?xt=urn:btih:{hash}&dn=Some+Show")],
    );
    assert!(out.status.success(), "{}", out.describe());
    assert!(out.stdout.contains(hash), "{}", out.describe());
    assert!(
        out.stdout.contains("Some Show"),
        "the dn is not printed: {}",
        out.describe()
    );
    let out = streme(&home_env(&dir), &["info", &hash.to_ascii_uppercase()]);
    assert!(out.status.success(), "{}", out.describe());
    assert!(out.stdout.contains(hash), "{}", out.describe());
}

#[test]
fn import_of_a_multi_file_download_dir_verifies_every_piece() {
    let dir = TestDir::new("cli_import_multi");
    let (torrent, downloads) = multi_file_torrent(&dir);
    let env = base_env(&dir.sub("cache"), ROOMY_QUOTA_MB);
    let out = streme(
        &env,
        &[
            "import",
            &torrent.file.display().to_string(),
            &downloads.display().to_string(),
        ],
    );
    assert!(out.status.success(), "{}", out.describe());
    let imported = parse_import_line(&out.stdout).unwrap_or_else(|| panic!("{}", out.describe()));
    assert_eq!(imported.info_hash, torrent.info_hash);
    assert!(
        imported.total > 50,
        "32 KiB pieces over ~3.5 MB: {imported:?}"
    );
    assert_eq!(imported.verified, imported.total);
}

#[test]
fn import_of_a_missing_path_fails_naming_it() {
    let dir = TestDir::new("cli_import_missing");
    let (torrent, _) = multi_file_torrent(&dir);
    let env = base_env(&dir.sub("cache"), ROOMY_QUOTA_MB);
    let missing = dir.path().join("no-such-dir");
    let out = streme(
        &env,
        &[
            "import",
            &torrent.file.display().to_string(),
            &missing.display().to_string(),
        ],
    );
    assert!(!out.status.success(), "{}", out.describe());
    assert!(
        out.stderr.contains("no-such-dir"),
        "stderr does not name the path: {}",
        out.describe()
    );
    let out = streme(
        &env,
        &[
            "import",
            "/nonexistent/x.torrent",
            &dir.path().display().to_string(),
        ],
    );
    assert!(!out.status.success(), "{}", out.describe());
    assert!(
        out.stderr.contains("x.torrent"),
        "stderr does not name the torrent: {}",
        out.describe()
    );
}

#[test]
fn import_refuses_while_a_server_holds_the_cache_lock() {
    let dir = TestDir::new("cli_import_lock");
    let (torrent, downloads) = multi_file_torrent(&dir);
    let env = base_env(&dir.sub("cache"), ROOMY_QUOTA_MB);
    let srv = Server::start(&env);
    let (torrent_arg, data_arg) = (
        torrent.file.display().to_string(),
        downloads.display().to_string(),
    );
    let out = streme(&env, &["import", &torrent_arg, &data_arg]);
    assert!(
        !out.status.success(),
        "import ran beside a server on the same cache: {}",
        out.describe()
    );
    assert!(
        out.stderr.to_ascii_lowercase().contains("lock"),
        "the error does not name the lock: {}",
        out.describe()
    );
    http::assert_healthy(srv.addr(), "a refused import");
    // A second server on the same cache is refused the same way.
    let out = streme_within(&env, &["serve"], REFUSAL_DEADLINE);
    assert!(
        !out.status.success(),
        "two servers on one cache: {}",
        out.describe()
    );
    assert!(
        out.stderr.to_ascii_lowercase().contains("lock"),
        "{}",
        out.describe()
    );
    srv.stop();
    // Once the server is gone the lock is free: a kill -9 must not leave it stuck.
    let imported = server::import(&env, &torrent.file, &downloads);
    assert_eq!(imported.verified, imported.total);
}
