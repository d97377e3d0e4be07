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

#[cfg(test)]
mod tests {
    use monitor_api::RecordedTrack;

    use super::*;

    fn track(peer: &str, host: Option<&str>) -> RecordedTrack {
        RecordedTrack {
            file: format!("{peer}-audio-6aff4e6c.webm"),
            peer: peer.into(),
            kind: "audio".into(),
            codec: "audio/opus".into(),
            producer: "6aff4e6c".into(),
            host: host.map(str::to_string),
            offset_ms: Some(0),
            duration_ms: Some(9980),
            lost_packets: Some(0),
            error: None,
        }
    }

    #[test]
    fn a_recording_spanning_hosts_says_which_host_holds_each_file() {
        let manifest = RecordingManifest {
            room: "rec".into(),
            folder: "/var/lib/sfu/recordings/rec/2026-12-07T09-18-19Z".into(),
            started: "2026-12-07T09:18:19Z".into(),
            stopped: Some("2026-12-07T09:18:29Z".into()),
            peer: None,
            error: None,
            tracks: vec![track("Alice", None), track("Carol", Some("h2"))],
        };
        let table = recording(&manifest);
        let line = |peer: &str| {
            (table.lines().find(|l| l.contains(peer)))
                .unwrap_or_else(|| panic!("{peer} in {table}"))
                .split_whitespace()
                .collect::<Vec<_>>()
        };
        assert!(table.contains("HOST"), "{table}");
        // The file, then where it is ("-": this host).
        assert_eq!(line("Carol")[..2], ["Carol-audio-6aff4e6c.webm", "h2"]);
        assert_eq!(line("Alice")[..2], ["Alice-audio-6aff4e6c.webm", "-"]);
    }
}
