//! `node`: hosts mediasoup workers for the supervisor, which starts it; not meant to be run
//! by hand. See `node --help`.

mod media_config;
mod routers;
mod service;
mod workers;

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;

use crate::media_config::{DataLimits, MediaListen};
use crate::routers::Routers;
use crate::service::Stop;

const BUILD_INFO: &str = include_str!(concat!(env!("OUT_DIR"), "/build_info.txt"));

/// A media node of the SFU: runs mediasoup workers and does what the supervisor asks over
/// a Unix socket. Started by `supervisor`; exits when the supervisor goes away.
#[derive(Debug, Parser)]
#[command(name = "node", version = BUILD_INFO.lines().next().unwrap_or("unknown"), long_version = BUILD_INFO)]
struct Args {
    /// Unix socket of the supervisor to connect to.
    #[arg(long)]
    socket: PathBuf,
    /// Number of mediasoup workers (one per core the node is given).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    workers: u32,
    /// Local address media (UDP/TCP) sockets listen on.
    #[arg(long, env = "RTC_IP", default_value = "127.0.0.1")]
    rtc_ip: IpAddr,
    /// Address announced in ICE candidates, for a node behind NAT (defaults to --rtc-ip).
    #[arg(long, env = "PUBLIC_IP")]
    public_ip: Option<String>,
    /// Lowest port of media sockets.
    #[arg(long, env = "RTC_MIN_PORT", default_value_t = 40000)]
    rtc_min_port: u16,
    /// Highest port of media sockets.
    #[arg(long, env = "RTC_MAX_PORT", default_value_t = 49999)]
    rtc_max_port: u16,
    /// One port per worker: worker i listens on this port + i (UDP and TCP) and every
    /// transport on it shares them; without it each transport takes its own port from the
    /// range above.
    #[arg(long)]
    rtc_port: Option<u16>,
    /// Local address of pipe transports, which carry a room's media to its routers on other
    /// nodes (loopback while every node runs on this machine).
    #[arg(long, env = "PIPE_IP", default_value = "127.0.0.1")]
    pipe_ip: IpAddr,
    /// Seconds without ICE consent checks from a client before its transport is
    /// `disconnected` (mediasoup takes 10 to 60; 0 turns the check off).
    #[arg(long, env = "ICE_CONSENT_TIMEOUT_SECS", default_value_t = 30)]
    ice_consent_timeout_secs: u8,
    /// Largest data channel message (chat) a client may send, in bytes; larger ones are
    /// dropped by the SCTP stack.
    #[arg(long, env = "MAX_DATA_MESSAGE_BYTES", default_value_t = 16_384, value_parser = clap::value_parser!(u32).range(1024..=262_144))]
    max_data_message_bytes: u32,
    /// Data channel messages one data producer may send per second; past it, what it sends
    /// is dropped for a second and its peer is told.
    #[arg(long, env = "MAX_DATA_MESSAGES_PER_SEC", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    max_data_messages_per_sec: u32,
    /// The name the supervisor knows this node by (`node-N`), in every log line.
    #[arg(long, default_value = "node")]
    node_id: String,
    /// `text` or `json` (one object per line).
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    log_format: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,mediasoup=warn".into()),
        )
        .with_writer(std::io::stderr);
    if args.log_format == "json" {
        logs.json().init();
    } else {
        // Colours for a person at a terminal, plain text for log files and journals.
        logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
    // Every line of this process names the node.
    let _node = tracing::info_span!("node", node = %args.node_id).entered();
    if args.rtc_min_port > args.rtc_max_port {
        eprintln!(
            "node: error: --rtc-min-port {} is above --rtc-max-port {}",
            args.rtc_min_port, args.rtc_max_port
        );
        return ExitCode::from(2);
    }
    if let Some(port) = args.rtc_port {
        if u32::from(port) + args.workers - 1 > u32::from(u16::MAX) {
            eprintln!(
                "node: error: --rtc-port {port} leaves no port for {} workers",
                args.workers
            );
            return ExitCode::from(2);
        }
    }
    die_with_parent();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("node: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(Stop::SupervisorGone) => {
            tracing::info!("supervisor gone, exiting");
            ExitCode::SUCCESS
        }
        Ok(Stop::Shutdown) => {
            tracing::info!("shut down by the supervisor");
            ExitCode::SUCCESS
        }
        Ok(Stop::WorkerDied) => ExitCode::FAILURE,
        Ok(Stop::SupervisorStuck) => {
            tracing::error!(
                "{} frames wait for the supervisor, which stopped reading: exiting",
                service::OUT_QUEUE
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A node must not outlive its supervisor, even one killed with SIGKILL.
fn die_with_parent() {
    if let Err(e) = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL) {
        tracing::warn!("cannot ask to die with the supervisor: {e}");
    }
    // The supervisor may have died before the line above: then we are re-parented already.
    if nix::unistd::getppid().as_raw() == 1 {
        std::process::exit(1);
    }
}

async fn run(args: Args) -> anyhow::Result<Stop> {
    let manager = mediasoup::worker_manager::WorkerManager::new();
    let listen = MediaListen {
        ice_consent_timeout_secs: args.ice_consent_timeout_secs,
        ip: args.rtc_ip,
        announced_address: args.public_ip.clone(),
        ports: args.rtc_min_port..=args.rtc_max_port,
        port: args.rtc_port,
    };
    let workers = workers::start_workers(&manager, args.workers, &listen)
        .await
        .context("starting mediasoup workers")?;
    // The message stays "node started" (log searches rely on it); the ports are fields.
    let media = match args.rtc_port {
        Some(port) => format!(
            "worker ports {port}-{} (UDP and TCP), shared by every transport",
            u32::from(port) + args.workers - 1
        ),
        None => format!(
            "a port per transport in {}-{}",
            args.rtc_min_port, args.rtc_max_port
        ),
    };
    tracing::info!(
        pid = std::process::id(),
        workers = args.workers,
        media = %media,
        "node started"
    );
    // Unbounded because mediasoup's callbacks cannot wait; the service loop drains it without
    // ever waiting itself (it exits instead when the supervisor stops reading).
    let (events_tx, events_rx) = tokio::sync::mpsc::unbounded_channel();
    let data = DataLimits {
        max_message_bytes: args.max_data_message_bytes,
        max_messages_per_sec: args.max_data_messages_per_sec,
    };
    let routers = Arc::new(Routers::new(workers, listen, data, args.pipe_ip, events_tx));
    let version = BUILD_INFO.lines().next().unwrap_or("unknown").to_string();
    service::serve(&args.socket, routers, events_rx, version).await
}
