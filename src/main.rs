//! The `streme` command: parse the CLI, load the config, run one command.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use async_io::Timer;

use streme::cli::{Cli, Command, USAGE};
use streme::config::Config;
use streme::format::magnet::Magnet;
use streme::format::media;
use streme::format::metainfo::Metainfo;
use streme::http;
use streme::hybrid::Tiers;
use streme::import;
use streme::p2p::P2p;
use streme::server::{self, App};
use streme::service::{self, Stop};
use streme::session::{Session, Torrent};
use streme::store::Store;
use streme::stream::StreamOptions;

/// Executor threads: one per core, at most four (a Pi 3/4/5 has four; a
/// Pi Zero 2 W four slow ones). Hashing and file I/O are not on them.
const MAX_EXECUTOR_THREADS: usize = 4;

/// Threads for blocking file I/O and hashing: two per core (one hashes while
/// the other waits on the SD card), at most eight; more would only queue on
/// the card.
const MAX_BLOCKING_THREADS: usize = 8;

/// The executor and blocking pool sizes for this board's cores.
fn thread_counts() -> (usize, usize) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (
        cores.clamp(1, MAX_EXECUTOR_THREADS),
        (2 * cores).clamp(2, MAX_BLOCKING_THREADS),
    )
}

/// How often verified pieces are made durable in the index; what a power
/// cut can cost in re-downloads.
const FLUSH_EVERY: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    let cli = match Cli::parse(std::env::args().skip(1)) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("streme: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Help => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            println!("streme {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Command::Info { target } => return report(info(&target)),
        _ => {}
    }
    let (config, warnings) = match Config::from_process(cli.env_file.as_deref()) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("streme: {e}");
            return ExitCode::from(2);
        }
    };
    if let Command::Config = cli.command {
        for w in &warnings {
            eprintln!("warning: {w}");
        }
        print!("{}", config.describe());
        return ExitCode::SUCCESS;
    }
    simple_logger::SimpleLogger::new()
        .with_level(config.log_level)
        .init()
        .expect("the logger is set once");
    for w in &warnings {
        log::warn!("[Config] {w}");
    }
    if let Err(e) = config.check_cache_dir() {
        log::error!("{e}");
        return ExitCode::from(2);
    }
    // Read by smol's global executor and the `blocking` pool on first use,
    // which is after this line (nothing is spawned before it).
    let (executor, blocking) = thread_counts();
    std::env::set_var("SMOL_THREADS", executor.to_string());
    std::env::set_var("BLOCKING_MAX_THREADS", blocking.to_string());
    let store = match Store::open(&config.cache_dir, config.cache_max_disk_bytes()) {
        Ok(store) => store,
        Err(e) => {
            log::error!(
                "[Cache] cannot open the cache at {}: {e}",
                config.cache_dir.display()
            );
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Import { torrent, data } => report(smol::block_on(async {
            // Import verifies local data: only the cache tier.
            let session = Session::new(store, None);
            let r = import::import(&session, &torrent, &data)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "imported {}: {}/{} pieces verified ({} bytes)",
                r.info_hash, r.verified, r.total, r.verified_bytes
            );
            Ok(())
        })),
        _ => {
            let client = match http::Client::from_config(&config) {
                Ok(client) => client,
                Err(e) => {
                    log::error!("[Server] cannot start the HTTP client: {}", e.0);
                    return ExitCode::FAILURE;
                }
            };
            let config = Arc::new(config);
            let p2p = match smol::block_on(P2p::start(config.clone(), client.clone())) {
                Ok(p2p) => p2p,
                Err(e) => {
                    log::error!(
                        "[P2P] cannot listen for peers on {}:{}: {e}",
                        config.host,
                        config.torrent_port
                    );
                    return ExitCode::FAILURE;
                }
            };
            let session = Session::new(
                store,
                Some(Tiers {
                    config: config.clone(),
                    client,
                    p2p,
                }),
            );
            report(serve(&config, session))
        }
    }
}

fn report(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("streme: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: &Config, session: Session) -> Result<(), String> {
    // Caught before READY=1, so a stop request right after start-up is graceful too.
    let mut signals =
        service::StopSignals::new().map_err(|e| format!("cannot catch SIGTERM: {e}"))?;
    let notifier = service::Notifier::from_env();
    let listener = smol::block_on(smol::net::TcpListener::bind((config.host, config.port)))
        .map_err(|e| format!("cannot listen on {}:{}: {e}", config.host, config.port))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    log::info!("[Server] Listening on http://{addr}");
    let store = session.store.clone();
    smol::spawn(async move {
        loop {
            Timer::after(FLUSH_EVERY).await;
            let store = store.clone();
            if let Err(e) = smol::unblock(move || store.flush()).await {
                log::error!("[Cache] cannot make the index durable: {e}");
            }
        }
    })
    .detach();
    let store = session.store.clone();
    let app = App {
        session: session.clone(),
        stream: StreamOptions {
            buffer: config.stream_buffer_kb as usize * 1024,
            piece_timeout: config.piece_wait,
        },
        limits: server::conn::Limits {
            max: config.client_max as usize,
            per_addr: config.client_max_per_addr as usize,
            head: config.client_head_timeout,
            idle: config.client_idle_timeout,
            body: config.client_body_timeout,
            stall: config.client_stall_timeout,
        },
        guard: Arc::new(server::guard::Guard {
            allowed_origins: config.allowed_origins.clone(),
            allowed_hosts: config.allowed_hosts.clone(),
            hostname: server::guard::kernel_hostname(),
            token: config.api_token.clone(),
        }),
        dlna: config
            .enable_dlna
            .then(|| std::sync::Arc::new(server::dlna::Device::new(config))),
    };
    let ssdp = app
        .dlna
        .as_ref()
        .and_then(|d| start_ssdp(config, d, addr.port()));
    // Every torrent in the cache is seeded: its swarm announces and accepts peers.
    session.engage_all();
    let server = server::serve(listener, app);
    match smol::block_on(service::run(&notifier, &mut signals, &session, server)) {
        Stop::Signal(signal) => {
            // TVs drop the box from their lists at once, not after max-age.
            if let Some(ssdp) = ssdp {
                ssdp.shut_down();
            }
            if let Some(tiers) = &session.tiers {
                // The trackers hear `stopped`, so they stop handing out our address.
                smol::block_on(tiers.p2p.shut_down());
            }
            service::shut_down(&notifier, &store, signal)
                .map_err(|e| format!("cannot flush the cache index on shutdown: {e}"))
        }
        Stop::Server(Ok(())) => Ok(()),
        Stop::Server(Err(e)) => Err(format!("the server stopped: {e}")),
    }
}

/// Starts the SSDP responder; a box whose UDP 1900 is taken still streams.
fn start_ssdp(
    config: &Config,
    device: &server::dlna::Device,
    port: u16,
) -> Option<server::dlna::Ssdp> {
    use server::dlna::Interfaces;
    let selection = match (config.dlna_interface.parse(), config.host) {
        (Ok(ip), _) => Interfaces::Address(ip),
        (Err(_), _) if !config.dlna_interface.is_empty() => {
            Interfaces::Named(config.dlna_interface.clone())
        }
        // A box listening on one address is reachable only there.
        (Err(_), std::net::IpAddr::V4(ip)) if !ip.is_unspecified() => Interfaces::Address(ip),
        _ => Interfaces::AllLan,
    };
    match server::dlna::Ssdp::start(device.uuid.clone(), port, selection) {
        Ok(ssdp) => {
            log::info!(
                "[DLNA] MediaServer {:?} (uuid:{})",
                device.friendly_name,
                device.uuid
            );
            Some(ssdp)
        }
        Err(e) => {
            log::warn!("[DLNA] cannot listen on UDP 1900 ({e}); TVs will not find the box");
            None
        }
    }
}

/// `streme info`: what a torrent or magnet holds, and which file would play.
fn info(target: &str) -> Result<(), String> {
    if target.starts_with("magnet:") || !std::path::Path::new(target).exists() {
        let m = Magnet::parse(target)
            .map_err(|e| format!("{target:?} is neither a readable file nor a magnet: {e}"))?;
        println!("info hash: {}", m.info_hash);
        println!(
            "name:      {}",
            m.display_name
                .as_deref()
                .unwrap_or("(unknown until the metadata arrives)")
        );
        for t in &m.trackers {
            println!("tracker:   {t}");
        }
        return Ok(());
    }
    let bytes = import::read_torrent_file(target.as_ref()).map_err(|e| e.to_string())?;
    let meta = Metainfo::from_torrent_bytes(&bytes).map_err(|e| format!("{target}: {e}"))?;
    println!("name:      {}", meta.name);
    println!("info hash: {}", meta.info_hash);
    println!(
        "pieces:    {} x {} bytes",
        meta.piece_count(),
        meta.piece_length
    );
    println!("files:");
    for (i, f) in meta.files.iter().enumerate().filter(|(_, f)| !f.padding) {
        let path = f.path.join("/");
        let tag = if media::is_video(&path) {
            "  [video]"
        } else {
            ""
        };
        println!("  {i:>4}  {:>14}  {path}{tag}", f.length);
    }
    match Torrent::default_file(&meta) {
        Some(i) => println!("chosen:    {i} ({})", meta.files[i].path.join("/")),
        None => println!("chosen:    none"),
    }
    Ok(())
}
