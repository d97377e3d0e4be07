//! `supervisor`: the SFU's public entry point. See `supervisor --help` and the design page.

use std::process::ExitCode;

use clap::Parser;
use supervisor::config::{Command, LogFormat};
use supervisor::{join_tokens, Config};

fn main() -> ExitCode {
    let mut config = Config::parse();
    if let Err(e) = config.load_secrets() {
        eprintln!("supervisor: error: {e}");
        return ExitCode::from(2);
    }
    if let Some(Command::EnvFile) = &config.command {
        print!("{}", supervisor::config::env_file::env_file());
        return ExitCode::SUCCESS;
    }
    if let Some(Command::Token(args)) = &config.command {
        let token = join_tokens::token_command(
            config.join_secret.as_deref(),
            args,
            join_tokens::unix_now(),
        );
        return match token {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("supervisor token: error: {e}");
                ExitCode::from(2)
            }
        };
    }
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr);
    match config.log_format {
        // One JSON object per line, fields (room, peer, node, …) as keys: for log shippers.
        LogFormat::Json => logs.json().init(),
        // Colours for a person at a terminal, plain text for log files and journals.
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    if let Err(e) = config.validate() {
        eprintln!("supervisor: error: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("supervisor: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(supervisor::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("supervisor: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
