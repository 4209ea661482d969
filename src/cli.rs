//! The command line: `streme [serve|import|info|config] [--env-file PATH]`.
//!
//! Owns turning arguments into a [`Cli`] and the usage text. Never runs a
//! command, never reads the environment or a file: `main` does that with the
//! [`Cli`] it gets back. Hand-written rather than clap, because every 100 KB
//! of binary counts on the board.

use std::fmt;
use std::path::PathBuf;

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the server (also what a bare `streme` does).
    Serve,
    /// Verify existing data against a .torrent and add its good pieces to the cache.
    Import {
        torrent: PathBuf,
        data: PathBuf,
    },
    /// Print a torrent's name, info hash, files and chosen file.
    Info {
        target: String,
    },
    /// Print the effective configuration and where each value came from.
    Config,
    Help,
    Version,
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cli {
    /// `--env-file PATH`, which wins over `$STREME_ENV_FILE`.
    pub env_file: Option<PathBuf>,
    pub command: Command,
}

/// Why the command line is refused. Each names what it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    UnknownFlag(String),
    /// A flag that takes a value, given none.
    MissingValue(&'static str),
    UnknownCommand(String),
    /// A command's positional argument that is missing.
    MissingArgument {
        command: &'static str,
        argument: &'static str,
    },
    /// An argument past the ones the command takes.
    UnexpectedArgument {
        command: &'static str,
        argument: String,
    },
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::UnknownFlag(flag) => write!(f, "unknown option {flag:?}"),
            CliError::MissingValue(flag) => write!(f, "{flag} needs a value"),
            CliError::UnknownCommand(name) => write!(f, "unknown command {name:?}"),
            CliError::MissingArgument { command, argument } => {
                write!(f, "{command}: missing {argument}")
            }
            CliError::UnexpectedArgument { command, argument } => {
                write!(f, "{command}: unexpected argument {argument:?}")
            }
        }
    }
}

impl std::error::Error for CliError {}

/// `streme --help`. The config keys and defaults match `config::KEYS` (a test
/// checks it).
pub const USAGE: &str = "\
streme: stream torrents over HTTP from a small board

Usage:
  streme [OPTIONS] [COMMAND]

Commands:
  serve                    run the server (the default)
  import TORRENT DATA_PATH verify existing data against a .torrent and add the
                           verified pieces to the cache
  info TORRENT|MAGNET      print the name, info hash, files and chosen file
  config                   print the effective configuration and its sources
  help                     print this text

Options:
  --env-file PATH          read settings from PATH (systemd EnvironmentFile
                           syntax); default $STREME_ENV_FILE
  -h, --help               print this text
  -V, --version            print the version

Settings (environment variables or env file keys; the environment wins):
  HOST                     listen address (default 0.0.0.0)
  PORT                     listen port, 0 for any free one (default 11470)
  CACHE_DIR                cache directory (default $CACHE_DIRECTORY, else
                           $HOME/.cache/streme)
  CACHE_MAX_DISK_MB        disk quota of the cache, MiB (default 5000)
  LOG_LEVEL                error|warn|info|debug|trace|off (default info)
  P2P_TIMEOUT              ms without P2P progress before the HTTP fallback
                           (default 20000)
  ENABLE_HTTP_FALLBACK     true|false (default true)
  TORRENT_TIMEOUT          ms to resolve a torrent (default 60000)
  TORRENT_MAX_RETRIES      retries after a failed attempt (default 3)
  PIECE_TIMEOUT            ms a stream waits for a missing piece (default 30000)
  STREAM_BUFFER_KB         read buffer per stream, KiB (default 256)
  TORRENT_SOURCES          comma-separated .torrent URL templates, {hash} or
                           {HASH} (default
                           https://itorrents.org/torrent/{HASH}.torrent)
  HTTP_SOURCES             comma-separated content URL templates: {hash}
                           {HASH} {name} {path} {file} {index} (default none)
  HTTP_CONNECTIONS         parallel HTTP downloads per torrent, 1-32
                           (default 4)
  HTTP_TIMEOUT             ms an HTTP source may stay silent (default 15000)
  HTTP_MAX_TORRENT_KB      largest .torrent fetched, KiB (default 8192)
  TRACKERS                 comma-separated announce URLs added to magnets
                           without trackers; empty for none (default
                           udp://tracker.opentrackr.org:1337/announce,udp://open.stealth.si:80/announce,udp://tracker.torrent.eu.org:451/announce,udp://exodus.desync.com:6969/announce)
  TORRENT_PORT             TCP port for incoming peers and UDP port of the
                           DHT (and uTP), 0 for any free one (default 6881)
  STREAM_READAHEAD_MB      MiB fetched ahead of each playhead, at most a
                           quarter of the quota (default 16)
  MAX_PEERS                peer connections per torrent (default 40)
  MAX_CONNECTIONS          peer connections in all (default 120)
  MAX_UPLOAD_KBPS          seeding cap, KiB/s, 0 for none (default 0)
  ENABLE_DHT               true|false: the mainline DHT (default true)
  DHT_BOOTSTRAP            comma-separated host:port DHT routers (default
                           router.bittorrent.com:6881,dht.transmissionbt.com:6881,dht.libtorrent.org:25401)
  ENABLE_LSD               true|false: Local Service Discovery, multicast on
                           the LAN (default true)
  LSD_GROUP                IPv4 multicast group:port of LSD announces
                           (default 239.192.152.143:6771)
  LSD_INTERFACE            IPv4 address of the interface LSD joins and sends
                           on; 127.0.0.1 keeps it on this host (default 0.0.0.0)
  ENABLE_UTP               true|false: uTP peers (in and out) on the UDP
                           TORRENT_PORT, raced against TCP (default true)
  CLIENT_MAX               HTTP client connections held; when full, the
                           quietest is closed (default 256)
  CLIENT_MAX_PER_ADDR      HTTP connections per client address (default 64)
  CLIENT_HEAD_TIMEOUT      ms to send a request head (default 10000)
  CLIENT_IDLE_TIMEOUT      ms a keep-alive connection may idle (default 120000)
  CLIENT_BODY_TIMEOUT      ms to send a request body (default 60000)
  CLIENT_STALL_TIMEOUT     ms a response may go without the client taking a
                           byte, e.g. a paused player (default 7200000)
  ALLOWED_ORIGINS          comma-separated web origins that may change the box
                           (default
                           https://web.stremio.com,https://web.strem.io,https://app.strem.io)
  ALLOWED_HOSTS            extra Host names the API and pages answer to
                           (default none)
  API_TOKEN                when set, mutating routes need it as a Bearer
                           token or ?token= (default none)
  STATE_DIR                what survives a cache wipe: the DLNA UUID (default
                           $STATE_DIRECTORY, else $HOME/.local/state/streme)
  ENABLE_DLNA              true|false: DLNA MediaServer for TVs, SSDP multicast
                           on the LAN (default true)
  DLNA_NAME                the name TVs list; empty is \"streme on <hostname>\"
                           (default none)
  DLNA_INTERFACE           interface name or IPv4 address SSDP uses; empty is
                           every LAN interface (default none)
  ENCRYPTION               prefer|require|off: MSE/PE on peer connections;
                           off still answers encrypted peers (default prefer)
";

impl Cli {
    /// Parses the arguments after the program name (`std::env::args().skip(1)`).
    /// `--env-file` may stand anywhere; `--` ends the options, so a path that
    /// starts with `-` can still be given.
    pub fn parse(args: impl Iterator<Item = String>) -> Result<Cli, CliError> {
        let mut args = args;
        let mut env_file = None;
        let mut words = Vec::new();
        let mut options_done = false;
        while let Some(arg) = args.next() {
            if options_done || !arg.starts_with('-') || arg == "-" {
                words.push(arg);
                continue;
            }
            match arg.as_str() {
                "--" => options_done = true,
                "-h" | "--help" => {
                    return Ok(Cli {
                        env_file,
                        command: Command::Help,
                    })
                }
                "-V" | "--version" => {
                    return Ok(Cli {
                        env_file,
                        command: Command::Version,
                    })
                }
                "--env-file" => match args.next() {
                    Some(path) if !path.is_empty() => env_file = Some(PathBuf::from(path)),
                    _ => return Err(CliError::MissingValue("--env-file")),
                },
                _ => match arg.strip_prefix("--env-file=") {
                    Some("") => return Err(CliError::MissingValue("--env-file")),
                    Some(path) => env_file = Some(PathBuf::from(path)),
                    None => return Err(CliError::UnknownFlag(arg)),
                },
            }
        }
        let command = command(words)?;
        Ok(Cli { env_file, command })
    }
}

/// The command from the positional words, checking its argument count.
fn command(words: Vec<String>) -> Result<Command, CliError> {
    let mut words = words.into_iter();
    let Some(name) = words.next() else {
        return Ok(Command::Serve);
    };
    let (name, command) = match name.as_str() {
        "serve" => ("serve", Command::Serve),
        "import" => {
            let torrent = required(&mut words, "import", "TORRENT")?;
            let data = required(&mut words, "import", "DATA_PATH")?;
            (
                "import",
                Command::Import {
                    torrent: torrent.into(),
                    data: data.into(),
                },
            )
        }
        "info" => (
            "info",
            Command::Info {
                target: required(&mut words, "info", "TORRENT|MAGNET")?,
            },
        ),
        "config" => ("config", Command::Config),
        "help" => ("help", Command::Help),
        _ => return Err(CliError::UnknownCommand(name)),
    };
    match words.next() {
        Some(argument) => Err(CliError::UnexpectedArgument {
            command: name,
            argument,
        }),
        None => Ok(command),
    }
}

fn required(
    words: &mut impl Iterator<Item = String>,
    command: &'static str,
    argument: &'static str,
) -> Result<String, CliError> {
    words
        .next()
        .ok_or(CliError::MissingArgument { command, argument })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KEYS;

    fn parse(args: &[&str]) -> Result<Cli, CliError> {
        Cli::parse(args.iter().map(|s| s.to_string()))
    }

    fn command(args: &[&str]) -> Command {
        parse(args).unwrap().command
    }

    #[test]
    fn no_subcommand_serves() {
        assert_eq!(
            parse(&[]).unwrap(),
            Cli {
                env_file: None,
                command: Command::Serve
            }
        );
        assert_eq!(command(&["serve"]), Command::Serve);
    }

    #[test]
    fn import_takes_torrent_and_data_path() {
        assert_eq!(
            command(&["import", "a.torrent", "/srv/data"]),
            Command::Import {
                torrent: "a.torrent".into(),
                data: "/srv/data".into()
            }
        );
        assert_eq!(
            parse(&["import", "a.torrent"]).unwrap_err(),
            CliError::MissingArgument {
                command: "import",
                argument: "DATA_PATH"
            }
        );
        assert_eq!(
            parse(&["import"]).unwrap_err().to_string(),
            "import: missing TORRENT"
        );
    }

    #[test]
    fn info_takes_one_target() {
        let magnet = "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            command(&["info", magnet]),
            Command::Info {
                target: magnet.into()
            }
        );
        assert_eq!(
            parse(&["info", "a", "b"]).unwrap_err().to_string(),
            "info: unexpected argument \"b\""
        );
        assert_eq!(
            parse(&["config", "x"]).unwrap_err(),
            CliError::UnexpectedArgument {
                command: "config",
                argument: "x".into()
            }
        );
    }

    #[test]
    fn env_file_anywhere_in_both_spellings() {
        let expected = Some(PathBuf::from("/etc/streme.env"));
        assert_eq!(
            parse(&["--env-file", "/etc/streme.env", "config"])
                .unwrap()
                .env_file,
            expected
        );
        let cli = parse(&["config", "--env-file=/etc/streme.env"]).unwrap();
        assert_eq!(
            cli,
            Cli {
                env_file: expected.clone(),
                command: Command::Config
            }
        );
        let cli = parse(&["import", "--env-file", "/etc/streme.env", "t", "d"]).unwrap();
        assert_eq!(cli.env_file, expected);
        assert_eq!(
            cli.command,
            Command::Import {
                torrent: "t".into(),
                data: "d".into()
            }
        );
    }

    #[test]
    fn env_file_without_value_is_an_error() {
        assert_eq!(
            parse(&["--env-file"]).unwrap_err(),
            CliError::MissingValue("--env-file")
        );
        assert_eq!(
            parse(&["--env-file="]).unwrap_err().to_string(),
            "--env-file needs a value"
        );
    }

    #[test]
    fn help_and_version_flags() {
        assert_eq!(command(&["-h"]), Command::Help);
        assert_eq!(command(&["import", "--help"]), Command::Help);
        assert_eq!(command(&["help"]), Command::Help);
        assert_eq!(command(&["-V"]), Command::Version);
        assert_eq!(command(&["--version"]), Command::Version);
    }

    #[test]
    fn unknown_flag_and_command_are_named() {
        assert_eq!(
            parse(&["--port", "1"]).unwrap_err().to_string(),
            "unknown option \"--port\""
        );
        assert_eq!(
            parse(&["-x"]).unwrap_err(),
            CliError::UnknownFlag("-x".into())
        );
        assert_eq!(
            parse(&["sevre"]).unwrap_err().to_string(),
            "unknown command \"sevre\""
        );
    }

    #[test]
    fn double_dash_ends_options() {
        assert_eq!(
            command(&["import", "--", "-odd.torrent", "-"]),
            Command::Import {
                torrent: "-odd.torrent".into(),
                data: "-".into()
            }
        );
    }

    #[test]
    fn usage_lists_commands_and_every_config_key_with_its_default() {
        for command in [
            "serve",
            "import TORRENT DATA_PATH",
            "info TORRENT|MAGNET",
            "config",
            "--env-file PATH",
        ] {
            assert!(USAGE.contains(command), "{command}");
        }
        for (key, default) in KEYS {
            let start = USAGE
                .find(&format!("\n  {key} "))
                .unwrap_or_else(|| panic!("{key} missing"))
                + 1;
            // An entry may wrap onto deeper-indented lines.
            let entry: Vec<&str> = USAGE[start..]
                .lines()
                .enumerate()
                .take_while(|(i, line)| *i == 0 || line.starts_with("    "))
                .map(|(_, line)| line.trim())
                .collect();
            let entry = entry.join(" ");
            // An empty default reads as "none".
            let default = if default.is_empty() { "none" } else { default };
            assert!(
                entry.contains(&format!("(default {default})")),
                "{key}: {entry}"
            );
        }
    }
}
