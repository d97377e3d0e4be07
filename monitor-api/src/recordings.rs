//! Recordings as the monitor API shows them, and as each recording's `manifest.json` holds
//! them (the same types): which file holds which participant's track, and where each starts
//! relative to the others, so that tracks can be put back in sync.

use serde::{Deserialize, Serialize};

/// One recording of a room: a folder `RECORD_DIR/<room>/<started>/` with a file per track
/// and this as `manifest.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingManifest {
    /// The room.
    pub room: String,
    /// The folder.
    pub folder: String,
    /// When it started, RFC 3339 (UTC).
    pub started: String,
    /// When it stopped (absent while it records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// Only this participant's tracks (by display name), when asked so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// Why it stopped early, if it did (the recorder died, the disk filled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its tracks, in the order they started.
    pub tracks: Vec<RecordedTrack>,
}

/// One track's file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedTrack {
    /// The file's name, in the recording's folder.
    pub file: String,
    /// Whose track (display name).
    pub peer: String,
    /// `audio` or `video`.
    pub kind: String,
    /// The codec (`audio/opus`, `video/VP8`, …).
    pub codec: String,
    /// The producer it records.
    pub producer: String,
    /// In a cluster, the host whose `RECORD_DIR` holds the file (in the same folder under it)
    /// when it is not the host of this manifest: a track is recorded on the host of its
    /// router.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Where the track starts, in milliseconds after the recording's earliest track (from the
    /// RTP timestamps and the SFU's sender reports): play each file delayed by its offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_ms: Option<i64>,
    /// Media time in the file, in milliseconds (known once the track ended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Packets lost for good (after retransmissions), once the track ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_packets: Option<u64>,
    /// Why the track ended early, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
