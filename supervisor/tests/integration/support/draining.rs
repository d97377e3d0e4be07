//! Drains as the tests start them: `monitor drain TARGET` run in the background (it returns
//! once the drain is over, printing each move), and the wait for a drained node to exit.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::process::wait_output_within;
use super::{monitor_binary, Sfu};

/// Starts `monitor --url URL --token TOKEN drain TARGET` (a node, or a host's id).
pub fn start_drain(url: &str, token: &str, target: &str) -> Child {
    Command::new(monitor_binary())
        .args(["--url", url, "--token", token, "drain", target])
        .env_remove("MONITOR_TOKEN")
        .env_remove("MONITOR_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("monitor drain")
}

/// Waits (at most `within`) for a drain [`start_drain`] started: what it printed. Fails the
/// test if the monitor failed.
pub async fn drain_output(drain: Child, within: Duration) -> String {
    let out =
        tokio::task::spawn_blocking(move || wait_output_within(drain, within, "monitor drain"))
            .await
            .expect("monitor drain ran");
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{printed}");
    assert!(out.status.success(), "{out:?}");
    printed
}

/// Waits (at most 10 s) until none of `pids` is among `sfu`'s node processes.
pub async fn wait_nodes_gone(sfu: &Sfu, pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| sfu.node_pids().contains(p)) {
        assert!(Instant::now() < deadline, "drained nodes {pids:?} run on");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
