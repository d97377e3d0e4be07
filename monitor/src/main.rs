//! `monitor`: the SFU's monitoring CLI. Not written yet: the issue "Monitor: stats
//! aggregation, the monitor API over TLS, the monitor CLI, Prometheus metrics" builds it.
use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("monitor: not available yet in this version of the SFU (see README.md)");
    ExitCode::from(2)
}
