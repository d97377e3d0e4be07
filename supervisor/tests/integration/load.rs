//! The load generator as a test: real `loadgen` participants (str0m) against the real
//! supervisor and node; every subscriber must receive every publisher's audio and video,
//! every packet carrying its publisher's payload, and the loadgen must fail when forwarding
//! stops.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use crate::support::process::{lines_of, output_within, wait_output_within};
use crate::support::{signal, Sfu, TestCert};
use serde_json::Value;

fn loadgen_binary() -> PathBuf {
    let supervisor = PathBuf::from(env!("CARGO_BIN_EXE_supervisor"));
    let loadgen = supervisor.with_file_name("loadgen");
    assert!(
        loadgen.is_file(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        loadgen.display()
    );
    loadgen
}

pub(crate) fn loadgen(args: &[&str]) -> Command {
    let mut command = Command::new(loadgen_binary());
    command
        .args(args)
        .env_remove("SFU_JOIN_TOKEN")
        .stdin(Stdio::null());
    command
}

/// A loadgen run, at most a minute: a hung one fails the test instead of hanging it.
trait WithinAMinute {
    fn output_within_a_minute(&mut self) -> Output;
}

impl WithinAMinute for Command {
    fn output_within_a_minute(&mut self) -> Output {
        output_within(self, Duration::from_secs(60), "loadgen")
    }
}

pub(crate) fn summary(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "loadgen printed no JSON ({e}); stderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Every expected stream flowed, with at most `max_loss_pct` lost and only its publisher's
/// packets.
pub(crate) fn assert_complete(
    summary: &Value,
    peers: u64,
    streams: u64,
    max_loss_pct: f64,
    log: &str,
) {
    let context = format!("summary: {summary:#}\nsupervisor log:\n{log}");
    assert_eq!(summary["peers_joined"], peers, "{context}");
    assert_eq!(summary["streams_expected"], streams, "{context}");
    assert_eq!(summary["streams_received"], streams, "{context}");
    let loss = summary["loss_pct"].as_f64().unwrap_or(100.0);
    assert!(loss <= max_loss_pct, "loss {loss} %; {context}");
    assert_eq!(summary["foreign_packets"], 0, "{context}");
    assert_eq!(summary["errors"], serde_json::json!({}), "{context}");
    // 4 s of media: at least 3 s worth on each stream (audio 50/s, video ~90/s).
    let packets = summary["packets_received"].as_u64().unwrap_or(0);
    assert!(packets >= streams * 150, "{packets} packets; {context}");
    assert!(
        summary["first_frame_ms"]["max"].as_f64().is_some(),
        "{context}"
    );
}

#[test]
fn two_rooms_of_three_receive_every_stream_without_loss() {
    // Pings every second: the run outlasts several (a loadgen that took a ping for the end
    // of its connection once failed every run longer than the 15 s default interval).
    let sfu = Sfu::start(&[
        "--ws-ping-interval-secs",
        "1",
        "--ws-idle-timeout-secs",
        "3",
    ]);
    let output = loadgen(&[
        "--url",
        &sfu.ws_url(),
        "--rooms",
        "2",
        "--publishers",
        "3",
        "--duration",
        "4",
        "--json",
        "--quiet",
    ])
    .output_within_a_minute();
    let summary = summary(&output);
    // 2 rooms × 3 subscribers × 2 other publishers × (audio + video).
    assert_complete(&summary, 6, 24, 0.0, &sfu.log_text());
    assert!(output.status.success(), "loadgen failed: {summary:#}");
    println!(
        "loadgen: {} packets, join p99 {} ms, first frame p99 {} ms, loadgen CPU {:.0} %",
        summary["packets_received"],
        summary["join_ms"]["p99"],
        summary["first_frame_ms"]["p99"],
        summary["loadgen_cpu_pct"].as_f64().unwrap_or(0.0)
    );
}

#[test]
fn whip_publishers_reach_whep_viewers_over_tls_without_loss() {
    let cert = TestCert::new("load-whip");
    let sfu = Sfu::start_tls(&cert, &[]);
    let ca = cert.dir.join("cert.pem");
    let output = loadgen(&[
        "--url",
        &sfu.ws_url(),
        "--ca",
        &ca.to_string_lossy(),
        "--rooms",
        "2",
        "--publishers",
        "1",
        "--subscribers",
        "3",
        "--whip",
        "--whep",
        "--duration",
        "4",
        "--json",
        "--quiet",
    ])
    .output_within_a_minute();
    let summary = summary(&output);
    // 2 rooms × 3 WHEP viewers × (audio + video) of their room's WHIP publisher.
    assert_complete(&summary, 8, 12, 0.0, &sfu.log_text());
    assert!(output.status.success(), "loadgen failed: {summary:#}");
    // Every session was DELETEd at the end: the rooms are empty.
    assert!(
        !sfu.log_text().contains("session ended: "),
        "no session ended by itself"
    );
}

#[test]
fn subscribers_over_tls_receive_simulcast() {
    let cert = TestCert::new("load");
    let sfu = Sfu::start_tls(&cert, &[]);
    let ca = cert.dir.join("cert.pem");
    let output = loadgen(&[
        "--url",
        &sfu.ws_url(),
        "--ca",
        &ca.to_string_lossy(),
        "--publishers",
        "2",
        "--subscribers",
        "2",
        "--simulcast",
        "--duration",
        "4",
        "--json",
        "--quiet",
    ])
    .output_within_a_minute();
    let summary = summary(&output);
    // Publishers receive each other (2 × 1), subscribers both (2 × 2); audio and video.
    // mediasoup moves each consumer up the layers as its bandwidth estimate grows; a switch
    // can skip the rest of a frame of the old layer (seen: 2 packets of 2,740).
    assert_complete(&summary, 4, 12, 0.5, &sfu.log_text());
    assert!(output.status.success(), "loadgen failed: {summary:#}");
}

#[test]
fn the_loadgen_fails_when_forwarding_stops() {
    // A long heartbeat timeout: the stopped node stays stopped, nothing recovers.
    let sfu = Sfu::start(&["--node-heartbeat-timeout-ms", "60000"]);
    let mut child = loadgen(&[
        "--url",
        &sfu.ws_url(),
        "--publishers",
        "2",
        "--duration",
        "6",
        "--json",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("start loadgen");
    let progress = lines_of(child.stderr.take().expect("stderr"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match progress.recv_timeout(left) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!("media never flowed: {seen:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("loadgen ended early: {seen:?}"),
        };
        seen.push(line.clone());
        if line.contains("streams 4/4 flowing") {
            break;
        }
    }
    let nodes = sfu.node_pids();
    assert!(!nodes.is_empty(), "no node to stop");
    for &pid in &nodes {
        signal(pid, "STOP");
    }
    // Its stderr keeps being read by the lines_of thread: the loadgen never blocks on it.
    let output = wait_output_within(child, Duration::from_secs(60), "loadgen");
    for &pid in &nodes {
        signal(pid, "CONT");
    }
    let rest: Vec<String> = progress.try_iter().collect();
    let summary: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}); stderr: {rest:?}"));
    assert_eq!(output.status.code(), Some(1), "summary: {summary:#}");
    assert_eq!(summary["streams_expected"], 4, "{summary:#}");
    assert_eq!(summary["streams_received"], 0, "{summary:#}");
    let missing = summary["missing_streams"].to_string();
    assert!(missing.contains("stopped"), "{summary:#}");
}

#[test]
fn bad_arguments_are_refused_with_a_reason() {
    for (args, reason) in [
        (
            &["--publishers", "0"][..],
            "--publishers must be at least 1",
        ),
        (&["--ramp", "0"][..], "--ramp must be a positive"),
        (
            &["--url", "http://x/ws"][..],
            "--url must be ws:// or wss://",
        ),
        (
            &["--simulcast", "--audio-only"][..],
            "--simulcast needs video",
        ),
        (
            &["--whep", "--publishers", "2"][..],
            "--whip and --whep need --publishers 1",
        ),
    ] {
        let output = loadgen(args).output_within_a_minute();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
    }
    // Nobody listening: one error line per participant kind, exit 1, no hang.
    let port = crate::support::free_port();
    let output = loadgen(&[
        "--url",
        &format!("ws://127.0.0.1:{port}/ws"),
        "--duration",
        "1",
        "--flowing-window",
        "1",
        "--quiet",
    ])
    .output_within_a_minute();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("connection ×2"), "{stdout}");
    assert!(stdout.contains("FAIL"), "{stdout}");
}

/// A webinar's audience joins watching only (the loadgen's subscribers say so): no
/// publishing room is kept for them, so one worker of 64 consumers takes 30 viewers of one
/// publisher's two tracks (60 consumers), where viewers counted as publishers to come would
/// have been refused long before.
#[test]
fn a_webinar_audience_that_only_watches_fits_one_worker() {
    let sfu = Sfu::start(&[
        "--nodes",
        "1",
        "--max-nodes",
        "1",
        "--workers-per-node",
        "1",
        "--max-consumers-per-worker",
        "64",
    ]);
    let output = loadgen(&[
        "--url",
        &sfu.ws_url(),
        "--publishers",
        "1",
        "--subscribers",
        "30",
        "--duration",
        "4",
        "--json",
        "--quiet",
    ])
    .output_within_a_minute();
    let summary = summary(&output);
    // 30 viewers × (audio + video) of the one publisher.
    assert_complete(&summary, 31, 60, 0.0, &sfu.log_text());
    assert!(output.status.success(), "loadgen failed: {summary:#}");
}
