//! Recordings as tables: one recording's tracks (file, the host holding it in a cluster,
//! participant, codec, offset, length, loss), and the list of recordings.

use monitor_api::RecordingManifest;

use crate::tables::table;

/// A recording and its tracks.
pub fn recording(manifest: &RecordingManifest) -> String {
    let state = match (&manifest.stopped, &manifest.error) {
        (None, _) => "recording".to_string(),
        (Some(stopped), None) => format!("stopped {stopped}"),
        (Some(stopped), Some(error)) => format!("stopped {stopped}: {error}"),
    };
    let mut out = format!(
        "room {}{} — started {} — {state}\nfolder {}\n",
        manifest.room,
        manifest
            .peer
            .as_ref()
            .map(|p| format!(" (only {p})"))
            .unwrap_or_default(),
        manifest.started,
        manifest.folder
    );
    if manifest.tracks.is_empty() {
        out.push_str("no track ended yet (files appear as tracks are written)");
        return out;
    }
    let rows: Vec<Vec<String>> = manifest
        .tracks
        .iter()
        .map(|t| {
            vec![
                t.file.clone(),
                t.host.clone().unwrap_or_else(|| "-".into()),
                t.peer.clone(),
                t.codec.clone(),
                t.offset_ms.map_or("-".into(), |o| format!("{o} ms")),
                t.duration_ms
                    .map_or("-".into(), |d| format!("{:.1} s", d as f64 / 1000.0)),
                t.lost_packets.map_or("-".into(), |l| l.to_string()),
                t.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "FILE", "HOST", "PEER", "CODEC", "OFFSET", "LENGTH", "LOST", "ERROR",
        ],
        &rows,
    ));
    out
}

/// Every recording, one line each.
pub fn recordings(list: &[RecordingManifest]) -> String {
    if list.is_empty() {
        return "no recordings".into();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|m| {
            vec![
                m.room.clone(),
                m.started.clone(),
                m.stopped.clone().unwrap_or_else(|| "recording".into()),
                m.tracks.len().to_string(),
                m.folder.clone(),
                m.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &["ROOM", "STARTED", "STOPPED", "TRACKS", "FOLDER", "ERROR"],
        &rows,
    )
}
