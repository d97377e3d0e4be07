//! `recorder`: writes the SFU's recorded tracks to files, for the supervisor, which starts
//! it; not meant to be run by hand. See `recorder --help`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// The SFU's recorder process: the supervisor starts it when a recording starts and sends it
/// tracks to write (each from a mediasoup plain RTP transport, to its own file).
#[derive(Debug, Parser)]
#[command(name = "recorder", version)]
struct Args {
    /// The supervisor's Unix socket to connect to.
    #[arg(long)]
    socket: PathBuf,
    /// `text` or `json` logs.
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    log_format: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr);
    if args.log_format == "json" {
        logs.json().init();
    } else {
        logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
    let _recorder = tracing::info_span!("recorder").entered();
    if let Err(e) = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL) {
        tracing::warn!("cannot ask to die with the supervisor: {e}");
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("recorder: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(recorder::service::serve(&args.socket)) {
        Ok(()) => {
            tracing::info!("supervisor gone or asked to stop; every file ended");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
