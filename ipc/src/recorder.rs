//! What travels between the supervisor and its recorder process (one per host), over the same
//! framed Unix socket as the nodes' wire. The connection starts with each side's hello
//! ([`ToRecorder::Hello`], [`FromRecorder::Hello`], checked against
//! [`RECORDER_PROTOCOL_VERSION`]); then the supervisor sends requests, each answered once
//! with the same id, and the recorder reports a track that stopped on its own
//! ([`RecorderEvent::TrackFailed`]: disk full, unwritable file).

use serde::{Deserialize, Serialize};

/// Version of this wire protocol; bump it on any change to the types of this module.
pub const RECORDER_PROTOCOL_VERSION: u32 = 1;

/// Supervisor → recorder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ToRecorder {
    /// First message of the supervisor.
    Hello {
        /// [`RECORDER_PROTOCOL_VERSION`] of the supervisor.
        protocol_version: u32,
    },
    /// A request, to be answered once with the same id.
    Request {
        /// Chosen by the supervisor, unique on this connection.
        id: u64,
        /// What to do.
        request: RecorderRequest,
    },
    /// End every file and exit.
    Shutdown,
}

/// Recorder → supervisor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FromRecorder {
    /// First message of the recorder.
    Hello {
        /// [`RECORDER_PROTOCOL_VERSION`] of the recorder.
        protocol_version: u32,
        /// Its process id.
        pid: u32,
    },
    /// The answer to the request `id`.
    Answer {
        /// Id of the request.
        id: u64,
        /// What happened, or why not.
        result: Result<RecorderAnswer, String>,
    },
    /// Something happened without being asked.
    Event(RecorderEvent),
}

/// What the supervisor asks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RecorderRequest {
    /// Open a UDP socket on `ip` for a track and write what arrives there to `path`.
    OpenTrack {
        /// The supervisor's name for the track.
        track: u64,
        /// Its codec (`audio/opus`, `video/VP8`, `video/VP9`, `video/H264`).
        mime_type: String,
        /// Its payload type.
        payload_type: u8,
        /// Its RTP clock rate.
        clock_rate: u32,
        /// Where the socket listens (the nodes' pipe address).
        ip: String,
        /// The file to write (its folder exists).
        path: String,
    },
    /// End a track's file.
    CloseTrack {
        /// The track.
        track: u64,
    },
}

/// What the recorder answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RecorderAnswer {
    /// The track's socket listens on `port`.
    TrackOpened {
        /// The UDP port.
        port: u16,
    },
    /// The track's file is complete.
    TrackClosed(TrackSummary),
}

/// What the recorder reports without being asked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RecorderEvent {
    /// A track stopped on its own; its file holds what came before.
    TrackFailed {
        /// The track.
        track: u64,
        /// What was written, and the error.
        summary: TrackSummary,
    },
}

/// What a track's file holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrackSummary {
    /// The file.
    pub path: String,
    /// Media time written, in milliseconds.
    pub duration_ms: u64,
    /// RTP packets written.
    pub packets: u64,
    /// RTP packets lost for good (after NACKs).
    pub lost: u64,
    /// When its first packet was sent, in Unix milliseconds (the SFU's sender-report clock
    /// when `synced`, else the packet's arrival).
    pub started_unix_ms: Option<i64>,
    /// Whether a sender report gave `started_unix_ms`.
    pub synced: bool,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
}
