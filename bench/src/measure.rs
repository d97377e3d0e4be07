//! One measured step: a fresh SFU under test on its core, the loadgen on the other, CPU
//! sampled over the media period (from the moment everyone has joined to the loadgen's last
//! progress line), memory at the end.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;

use crate::recording::{Recording, Written};
use crate::scenario::{Scenario, Step};
use crate::sut::{clock_ticks, Running, Setup, Sfu};

/// One row of a results table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Which scenario.
    pub scenario: Scenario,
    /// Which SFU.
    pub sfu: Sfu,
    /// The step.
    pub step: String,
    /// The chart's x.
    pub x: u32,
    /// Participants.
    pub peers: u64,
    /// Streams that flowed / were expected.
    pub streams: (u64, u64),
    /// Packets forwarded per second (received by the loadgen).
    pub packets_per_s: f64,
    /// CPU of the SFU under test, percent of one core, over the media period.
    pub cpu_pct: f64,
    /// The supervisor's part of it (ours only).
    pub supervisor_cpu_pct: Option<f64>,
    /// The supervisor's share of the SFU's CPU over the whole step, joins included (ours).
    pub supervisor_share_pct: Option<f64>,
    /// CPU per forwarded packet.
    pub cpu_us_per_packet: Option<f64>,
    /// Loss.
    pub loss_pct: f64,
    /// Join → first frame.
    pub first_frame_ms: Option<(f64, f64)>,
    /// Join answered.
    pub join_ms: Option<(f64, f64)>,
    /// Peak resident memory of the SFU's processes.
    pub peak_rss_mb: f64,
    /// Their resident memory once started, before anyone joined.
    pub rss_before_mb: f64,
    /// Their resident memory at the end of the media period, everyone still there.
    pub rss_joined_mb: Option<f64>,
    /// The loadgen's CPU (percent of one core).
    pub loadgen_cpu_pct: f64,
    /// The loadgen was the bottleneck.
    pub loadgen_saturated: bool,
    /// CPU of our recorder process alone, percent of one core (recording steps).
    pub recorder_cpu_pct: Option<f64>,
    /// What a recording step wrote.
    pub written: Option<Written>,
    /// Every stream flowed and nobody failed.
    pub passed: bool,
    /// The loadgen's summary, as printed.
    pub raw: Value,
}

struct Sample {
    at: Instant,
    root: u64,
    all: u64,
    recorder: u64,
}

fn pair(v: &Value) -> Option<(f64, f64)> {
    Some((v["p50"].as_f64()?, v["p99"].as_f64()?))
}

/// Runs `step` of `scenario` against `sfu`.
pub fn run_step(setup: &Setup, scenario: Scenario, sfu: Sfu, step: &Step) -> anyhow::Result<Row> {
    let rooms = step
        .args
        .iter()
        .position(|a| a == "--rooms")
        .and_then(|i| step.args.get(i + 1)?.parse::<u32>().ok())
        .unwrap_or(1);
    let prefix = format!("bench-{}", std::process::id());
    let room_names = (0..rooms).map(|r| format!("{prefix}-{r}")).collect();
    let recording = step
        .record
        .then(|| Recording::prepare(setup, sfu, &step.label, room_names))
        .transpose()?;
    let mut sfu_args = step.sfu_args.clone();
    let mut load_args = step.args.clone();
    if let Some(recording) = &recording {
        sfu_args.extend(recording.sfu_args.iter().cloned());
        load_args.extend(recording.loadgen_args.iter().cloned());
    }
    let mut running = Running::start(sfu, setup, &sfu_args)?;
    // Its workers settle (allocations of the first seconds) before the baseline is taken.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let rss_before = running.rss();
    let at_start = running.cpu_ticks();
    let target = match sfu {
        Sfu::Ours => "sfu",
        Sfu::Janus => "janus",
    };
    let mut child = Command::new("taskset")
        .args(["-c", &setup.load_core.to_string()])
        .arg(setup.bin_dir.join("loadgen"))
        .args(["--target", target, "--url", &running.url, "--json"])
        .args(["--room-prefix", &prefix])
        .args(&load_args)
        .env_remove("SFU_JOIN_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the loadgen")?;
    let stderr = child.stderr.take().context("loadgen stderr")?;
    let (lines_tx, lines) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    // Sample from the line that starts the media period, then at every progress line.
    let mut first: Option<Sample> = None;
    let mut last: Option<Sample> = None;
    let mut log = Vec::new();
    let mut recording_error = None;
    let mut rss_joined = None;
    for line in lines.iter() {
        if line.contains("media period of") {
            // Everyone joined: the rooms exist, and are recorded from now on.
            if let Some(Err(e)) = recording.as_ref().map(|r| r.start(&running.url)) {
                recording_error = Some(e);
            }
        }
        if line.contains("media period of") || (first.is_some() && line.starts_with('[')) {
            let (root, all) = running.cpu_ticks();
            let sample = Sample {
                at: Instant::now(),
                root,
                all,
                recorder: running.cpu_ticks_named("recorder"),
            };
            if first.is_none() {
                first = Some(sample);
            } else {
                last = Some(sample);
                rss_joined = Some(running.rss());
            }
        }
        log.push(line);
    }
    let _ = reader.join();
    let output = child
        .wait_with_output()
        .context("waiting for the loadgen")?;
    if let Some(Err(e)) = recording.as_ref().map(|r| r.stop(&running.url)) {
        recording_error.get_or_insert(e);
    }
    let peak_rss = running.peak_rss();
    let at_end = running.cpu_ticks();
    let supervisor_share_pct = (sfu == Sfu::Ours && at_end.1 > at_start.1)
        .then(|| (at_end.0 - at_start.0) as f64 * 100.0 / (at_end.1 - at_start.1) as f64);
    running.stop();
    if let Some(e) = recording_error {
        return Err(e.context("recording the rooms"));
    }
    let raw: Value = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "the loadgen printed no summary; its last lines:\n{}",
            log.iter()
                .rev()
                .take(5)
                .rev()
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    let ticks = clock_ticks();
    let (cpu_pct, supervisor_cpu_pct, recorder_cpu_pct) = match (&first, &last) {
        (Some(a), Some(b)) => {
            let secs = b.at.duration_since(a.at).as_secs_f64().max(1e-3);
            let pct = |t: u64| t as f64 / ticks / secs * 100.0;
            (
                pct(b.all.saturating_sub(a.all)),
                (sfu == Sfu::Ours).then(|| pct(b.root.saturating_sub(a.root))),
                (sfu == Sfu::Ours && recording.is_some())
                    .then(|| pct(b.recorder.saturating_sub(a.recorder))),
            )
        }
        _ => (0.0, None, None),
    };
    let written = recording.as_ref().map(|r| r.written(sfu));
    if let Some(recording) = &recording {
        recording.remove();
    }
    let packets_per_s = raw["packets_per_s"].as_f64().unwrap_or(0.0);
    let cpu_us_per_packet =
        (packets_per_s > 0.0 && cpu_pct > 0.0).then(|| cpu_pct / 100.0 / packets_per_s * 1e6);
    Ok(Row {
        scenario,
        sfu,
        step: step.label.clone(),
        x: step.x,
        peers: raw["peers"].as_u64().unwrap_or(0),
        streams: (
            raw["streams_received"].as_u64().unwrap_or(0),
            raw["streams_expected"].as_u64().unwrap_or(0),
        ),
        packets_per_s,
        cpu_pct,
        supervisor_cpu_pct,
        supervisor_share_pct,
        cpu_us_per_packet,
        loss_pct: raw["loss_pct"].as_f64().unwrap_or(0.0),
        first_frame_ms: pair(&raw["first_frame_ms"]),
        join_ms: pair(&raw["join_ms"]),
        peak_rss_mb: peak_rss as f64 / 1e6,
        rss_before_mb: rss_before as f64 / 1e6,
        rss_joined_mb: rss_joined.map(|b| b as f64 / 1e6),
        loadgen_cpu_pct: raw["loadgen_cpu_pct"].as_f64().unwrap_or(0.0),
        loadgen_saturated: raw["loadgen_saturated"].as_bool().unwrap_or(false),
        recorder_cpu_pct,
        written,
        passed: output.status.success(),
        raw,
    })
}
