//! The recorder's side of its connection to the supervisor: hello, then `OpenTrack` and
//! `CloseTrack` requests, each answered once, and a `TrackFailed` event for a track that
//! stopped on its own. Returns when the supervisor goes away or asks it to stop; every open
//! file is ended first.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use ipc::recorder::{
    FromRecorder, RecorderAnswer, RecorderEvent, RecorderRequest, ToRecorder, TrackSummary,
    RECORDER_PROTOCOL_VERSION,
};
use tokio::sync::mpsc;

use crate::track::{Track, TrackReport};
use crate::writer::{Codec, TrackFormat};

/// Answers and events that may wait for the supervisor; more and the recorder exits rather
/// than grow.
const OUT_QUEUE: usize = 4_096;
/// How often tracks are checked for having stopped on their own.
const WATCH_INTERVAL: Duration = Duration::from_millis(250);

fn summary(report: TrackReport) -> TrackSummary {
    TrackSummary {
        path: report.path.display().to_string(),
        duration_ms: report.duration.as_millis() as u64,
        packets: report.packets,
        lost: report.lost,
        started_unix_ms: report.started_unix.map(|s| (s * 1000.0) as i64),
        synced: report.synced_by_sender_report,
        error: report.error,
    }
}

fn open_track(
    mime_type: &str,
    payload_type: u8,
    clock_rate: u32,
    ip: &str,
    path: &str,
) -> Result<Track, String> {
    let codec = Codec::from_mime(mime_type).ok_or_else(|| format!("cannot record {mime_type}"))?;
    let ip: IpAddr = ip
        .parse()
        .map_err(|e| format!("recorder address {ip:?}: {e}"))?;
    let format = TrackFormat {
        codec,
        payload_type,
        clock_rate,
    };
    Track::start(ip, format, PathBuf::from(path)).map_err(|e| e.to_string())
}

/// Carries out request `id`, answering through `out`. Ending a file (a few milliseconds to
/// seconds) happens on a task of its own, so that other tracks' requests do not wait for it.
fn handle(
    tracks: &mut HashMap<u64, Track>,
    id: u64,
    request: RecorderRequest,
    out: &mpsc::Sender<FromRecorder>,
) -> Result<(), mpsc::error::TrySendError<FromRecorder>> {
    let result = match request {
        RecorderRequest::OpenTrack {
            track,
            mime_type,
            payload_type,
            clock_rate,
            ip,
            path,
        } => match tracks.entry(track) {
            Entry::Occupied(_) => Err(format!("track {track} is open already")),
            Entry::Vacant(slot) => {
                match open_track(&mime_type, payload_type, clock_rate, &ip, &path) {
                    Ok(opened) => {
                        let port = opened.local_addr().port();
                        tracing::info!(track, %path, port, "recording a track");
                        slot.insert(opened);
                        Ok(RecorderAnswer::TrackOpened { port })
                    }
                    Err(e) => {
                        tracing::warn!(track, %path, "cannot record: {e}");
                        Err(e)
                    }
                }
            }
        },
        RecorderRequest::CloseTrack { track } => match tracks.remove(&track) {
            Some(open) => {
                let out = out.clone();
                tokio::spawn(async move {
                    let result = match tokio::task::spawn_blocking(move || open.stop()).await {
                        Ok(report) => {
                            tracing::info!(
                                track,
                                path = %report.path.display(),
                                packets = report.packets,
                                lost = report.lost,
                                "track ended"
                            );
                            Ok(RecorderAnswer::TrackClosed(summary(report)))
                        }
                        Err(e) => Err(format!("ending track {track} failed: {e}")),
                    };
                    // A supervisor that stopped reading is noticed by the main loop.
                    let _ = out.try_send(FromRecorder::Answer { id, result });
                });
                return Ok(());
            }
            None => Err(format!("no track {track}")),
        },
    };
    out.try_send(FromRecorder::Answer { id, result })
}

/// Serves the supervisor on `socket` until it goes away.
pub async fn serve(socket: &std::path::Path) -> anyhow::Result<()> {
    let (mut reader, mut writer) = ipc::socket::connect(socket)
        .await
        .with_context(|| format!("cannot connect to the supervisor at {}", socket.display()))?;
    writer
        .send(&FromRecorder::Hello {
            protocol_version: RECORDER_PROTOCOL_VERSION,
            pid: std::process::id(),
        })
        .await?;
    match reader.recv::<ToRecorder>().await? {
        Some(ToRecorder::Hello { protocol_version })
            if protocol_version == RECORDER_PROTOCOL_VERSION => {}
        Some(ToRecorder::Hello { protocol_version }) => bail!(
            "supervisor speaks recorder protocol {protocol_version}, this recorder \
             {RECORDER_PROTOCOL_VERSION}: run a supervisor and recorder of the same build"
        ),
        Some(other) => bail!("supervisor sent {other:?} before its hello"),
        None => return Ok(()),
    }
    let (out_tx, mut out_rx) = mpsc::channel::<FromRecorder>(OUT_QUEUE);
    let writer_task = tokio::spawn(async move {
        while let Some(message) = out_rx.recv().await {
            if let Err(e) = writer.send(&message).await {
                tracing::warn!("cannot write to the supervisor: {e}");
                break;
            }
        }
    });
    let mut tracks: HashMap<u64, Track> = HashMap::new();
    let mut watch = tokio::time::interval(WATCH_INTERVAL);
    let outcome = loop {
        tokio::select! {
            message = reader.recv::<ToRecorder>() => {
                let request = match message {
                    Ok(Some(ToRecorder::Request { id, request })) => (id, request),
                    Ok(Some(ToRecorder::Shutdown)) | Ok(None) => break Ok(()),
                    Ok(Some(ToRecorder::Hello { .. })) => continue,
                    Err(e) => break Err(anyhow::Error::from(e)),
                };
                let (id, request) = request;
                if handle(&mut tracks, id, request, &out_tx).is_err() {
                    break Err(anyhow::anyhow!("the supervisor stopped reading"));
                }
            }
            _ = watch.tick() => {
                let ended: Vec<u64> = tracks.iter().filter(|(_, t)| t.has_ended()).map(|(id, _)| *id).collect();
                for track in ended {
                    let Some(open) = tracks.remove(&track) else { continue };
                    let report = tokio::task::spawn_blocking(move || open.stop())
                        .await
                        .context("a track's end panicked")?;
                    tracing::error!(track, path = %report.path.display(), error = ?report.error, "track stopped on its own");
                    let event = FromRecorder::Event(RecorderEvent::TrackFailed { track, summary: summary(report) });
                    if out_tx.try_send(event).is_err() {
                        break;
                    }
                }
            }
        }
    };
    // Every file gets its end, whatever stopped the loop.
    let open: Vec<Track> = tracks.into_values().collect();
    let _ =
        tokio::task::spawn_blocking(move || open.into_iter().for_each(|t| drop(t.stop()))).await;
    drop(out_tx);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer_task).await;
    outcome
}
