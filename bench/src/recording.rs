//! The `recording` scenario's side of a step: a fresh folder, what the SFU and the loadgen
//! need to record into it (ours: `RECORD_DIR` and a join token with `canRecord` for the
//! rooms' first publishers; Janus: rooms created with recording on), and, once the rooms
//! closed, what was written: tracks, bytes and (ours, from the manifests) packets lost for
//! good.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use monitor_api::RecordingManifest;
use serde::Serialize;

use crate::sut::{Setup, Sfu};

/// The secret of the bench's join tokens (the SFU runs with it only in recording steps).
const SECRET: &str = "bench-recording-join-secret-0123456789";

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
}

/// A step's recordings folder and the arguments that fill it.
pub struct Recording {
    /// The folder.
    pub dir: PathBuf,
    /// Our SFU's extra arguments.
    pub sfu_args: Vec<String>,
    /// The loadgen's extra arguments.
    pub loadgen_args: Vec<String>,
}

impl Recording {
    /// A fresh folder for `label` of `sfu`, and how to record into it.
    pub fn prepare(setup: &Setup, sfu: Sfu, label: &str) -> anyhow::Result<Recording> {
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
                    "--join-secret".into(),
                    SECRET.into(),
                ],
                loadgen_args: vec!["--record".into(), "--token".into(), token(setup)?],
                dir,
            },
            Sfu::Janus => Recording {
                sfu_args: Vec::new(),
                loadgen_args: vec!["--record".into(), "--janus-rec-dir".into(), folder],
                dir,
            },
        })
    }

    /// Ours: waits (at most 20 s) until every recording's manifest says it stopped, which it
    /// does once the loadgen left and the rooms closed.
    pub fn wait_finished(&self, sfu: Sfu) {
        if sfu != Sfu::Ours {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let manifests = manifests(&self.dir);
            if !manifests.is_empty() && manifests.iter().all(|m| m.stopped.is_some()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
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

/// A join token for any room that grants `canRecord`, from our supervisor.
fn token(setup: &Setup) -> anyhow::Result<String> {
    let output = Command::new(setup.bin_dir.join("supervisor"))
        .args([
            "token",
            "--room",
            "*",
            "--identity",
            "bench",
            "--can-record",
        ])
        .args(["--ttl", "2h"])
        .env("JOIN_SECRET", SECRET)
        .output()
        .context("supervisor token")?;
    if !output.status.success() {
        bail!(
            "supervisor token: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
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
