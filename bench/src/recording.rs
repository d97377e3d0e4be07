//! The `recording` scenario's side of a step: a fresh folder, what the SFU and the loadgen
//! need to record into it (ours: `RECORD_DIR`, and every room's recording started and
//! stopped with the monitor as an operator would; Janus: rooms created with recording on),
//! and, once the recordings ended, what was written: tracks, bytes and (ours, from the
//! manifests) packets lost for good.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use monitor_api::RecordingManifest;
use serde::Serialize;

use crate::sut::{Setup, Sfu};

/// The monitor token of our SFU in recording steps.
const MONITOR_TOKEN: &str = "bench-recording-monitor-token-0123456789";

/// What a recorded step wrote.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Written {
    /// Track files.
    pub tracks: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Packets lost for good over every track (ours; Janus' `.mjr` files do not say).
    pub lost_packets: Option<u64>,
    /// Tracks whose recording failed or has no manifest entry (ours).
    pub failed_tracks: Option<u64>,
    /// Janus: the CPU `janus-pp-rec` takes to turn its `.mjr` dumps into files that play,
    /// percent of one core per track recorded continuously (CPU seconds over media seconds);
    /// ours writes playable files as it goes.
    pub postprocess_pct_per_track: Option<f64>,
}

/// A step's recordings folder and the arguments that fill it.
pub struct Recording {
    /// The folder.
    pub dir: PathBuf,
    /// The rooms to record.
    rooms: Vec<String>,
    /// Ours: the monitor binary, which starts and stops the recordings.
    monitor: Option<PathBuf>,
    /// Our SFU's extra arguments.
    pub sfu_args: Vec<String>,
    /// The loadgen's extra arguments.
    pub loadgen_args: Vec<String>,
}

impl Recording {
    /// A fresh folder for `label` of `sfu`, and how to record `rooms` into it.
    pub fn prepare(
        setup: &Setup,
        sfu: Sfu,
        label: &str,
        rooms: Vec<String>,
    ) -> anyhow::Result<Recording> {
        let name: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let dir = std::env::temp_dir().join(format!(
            "sfu-bench-rec-{}-{}-{name}",
            std::process::id(),
            sfu.label()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let folder = dir.display().to_string();
        Ok(match sfu {
            Sfu::Ours => Recording {
                sfu_args: vec![
                    "--record-dir".into(),
                    folder,
                    "--monitor-token".into(),
                    MONITOR_TOKEN.into(),
                ],
                loadgen_args: Vec::new(),
                dir,
                rooms,
                monitor: Some(setup.bin_dir.join("monitor")),
            },
            Sfu::Janus => Recording {
                sfu_args: Vec::new(),
                loadgen_args: vec!["--record".into(), "--janus-rec-dir".into(), folder],
                dir,
                rooms,
                monitor: None,
            },
        })
    }

    /// Ours: starts recording every room (`monitor record start`), once they all exist.
    pub fn start(&self, signaling_url: &str) -> anyhow::Result<()> {
        for room in &self.rooms {
            self.monitor(signaling_url, &["record", "start", room])?;
        }
        Ok(())
    }

    /// Ours: stops every recording (`monitor record stop`), which ends the files and writes
    /// the manifests, and waits (at most 20 s) until they say so.
    pub fn stop(&self, signaling_url: &str) -> anyhow::Result<()> {
        if self.monitor.is_none() {
            return Ok(());
        }
        for room in &self.rooms {
            // A room that closed already stopped its recording.
            let _ = self.monitor(signaling_url, &["record", "stop", room]);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let manifests = manifests(&self.dir);
            if !manifests.is_empty() && manifests.iter().all(|m| m.stopped.is_some()) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!("the recordings' manifests did not say they stopped within 20 s")
    }

    fn monitor(&self, signaling_url: &str, args: &[&str]) -> anyhow::Result<()> {
        let Some(monitor) = &self.monitor else {
            return Ok(());
        };
        let url = signaling_url.replace("/ws", "/monitor");
        let output = Command::new(monitor)
            .args(["--url", &url, "--token", MONITOR_TOKEN, "--json"])
            .args(args)
            .output()
            .context("running the monitor")?;
        if !output.status.success() {
            bail!(
                "monitor {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    /// What was written.
    pub fn written(&self, sfu: Sfu) -> Written {
        let mut written = Written::default();
        for file in files(&self.dir) {
            let is_track = matches!(
                file.extension().and_then(|e| e.to_str()),
                Some("webm" | "mkv" | "mjr")
            );
            if is_track {
                written.tracks += 1;
                written.bytes += std::fs::metadata(&file).map_or(0, |m| m.len());
            }
        }
        if sfu == Sfu::Janus {
            written.postprocess_pct_per_track = postprocess(&self.dir);
        }
        if sfu == Sfu::Ours {
            let tracks: Vec<_> = manifests(&self.dir)
                .into_iter()
                .flat_map(|m| m.tracks)
                .collect();
            written.lost_packets = Some(tracks.iter().filter_map(|t| t.lost_packets).sum());
            let failed = tracks
                .iter()
                .filter(|t| t.error.is_some() || t.lost_packets.is_none())
                .count() as u64;
            let unlisted = written.tracks.saturating_sub(tracks.len() as u64);
            written.failed_tracks = Some(failed + unlisted);
        }
        written
    }

    /// Removes the folder (recordings of a benchmark are not kept).
    pub fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Janus' post-processing of every `.mjr` below `dir` (`janus-pp-rec`, from Debian's
/// janus-tools): CPU seconds over the seconds of media it wrote, in percent; `None` when
/// janus-pp-rec is missing or wrote nothing.
fn postprocess(dir: &Path) -> Option<f64> {
    let (mut cpu, mut media) = (0.0, 0.0);
    for dump in files(dir)
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "mjr"))
    {
        let name = dump.file_name()?.to_string_lossy().into_owned();
        let out = dump.with_extension(if name.contains("audio") {
            "opus"
        } else {
            "webm"
        });
        let timed = Command::new("/usr/bin/time")
            .args(["-f", "cpu %U %S"])
            .arg("janus-pp-rec")
            .arg(&dump)
            .arg(&out)
            .output()
            .ok()?;
        let stderr = String::from_utf8_lossy(&timed.stderr);
        let line = stderr.lines().rev().find(|l| l.starts_with("cpu "))?;
        cpu += line
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse::<f64>().ok())
            .sum::<f64>();
        let probed = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "format=duration",
                "-of",
                "csv=p=0",
            ])
            .arg(&out)
            .output()
            .ok()?;
        media += String::from_utf8_lossy(&probed.stdout)
            .trim()
            .parse::<f64>()
            .unwrap_or(0.0);
    }
    (media > 0.0).then(|| cpu / media * 100.0)
}

/// Every file below `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// Every `manifest.json` below `dir`, read.
fn manifests(dir: &Path) -> Vec<RecordingManifest> {
    files(dir)
        .into_iter()
        .filter(|f| f.file_name().is_some_and(|n| n == "manifest.json"))
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .filter_map(|text| serde_json::from_str(&text).ok())
        .collect()
}
