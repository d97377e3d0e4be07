//! `loadgen`: see the library's documentation and `loadgen --help`.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use client_tls::Trust;
use loadgen::cli::Args;
use loadgen::report;

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOADGEN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colours for a person at a terminal, plain text for log files and journals.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Err(e) = args.validate() {
        eprintln!("loadgen: error: {e}");
        return ExitCode::from(2);
    }
    let trust = match (&args.ca, args.insecure) {
        (_, true) => Trust::Insecure,
        (Some(ca), false) => Trust::Ca(ca.clone()),
        (None, false) => Trust::SystemRoots,
    };
    let tls = match client_tls::client_config(&trust) {
        Ok(config) => Arc::new(config),
        Err(e) => {
            eprintln!("loadgen: error: {e}");
            return ExitCode::from(2);
        }
    };
    // On one core (the benchmarks pin the loadgen to one) a single-threaded runtime wakes a
    // task for less than the work-stealing one does, and the loadgen wakes one per datagram.
    let one_core = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let built = if one_core {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Runtime::new()
    };
    let runtime = match built {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("loadgen: error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let summary = match runtime.block_on(loadgen::run::run(&args, tls)) {
        Ok(summary) => summary,
        Err(e) => {
            eprintln!("loadgen: error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&summary) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("loadgen: error: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", report::table(&summary));
    }
    // Participants' tasks may still hold sockets; do not wait for them.
    runtime.shutdown_background();
    if summary.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
