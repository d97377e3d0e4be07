//! One participant in depth (`monitor peer ROOM NAME`): its transports, what it sends and what
//! it receives from whom, as the worker sees them now. What a person needs to answer "why
//! can't Alice see Bob?".

use serde::{Deserialize, Serialize};

/// The answer to `peer`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerDiagnostics {
    /// The room.
    pub room: String,
    /// The peer's id.
    pub peer_id: String,
    /// Its name.
    pub display_name: String,
    /// Who its join token says it is (the token's `sub`); absent without join tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The node of its router, as `node-N`.
    pub node: String,
    /// The worker of its router.
    pub worker: u32,
    /// Its WebRTC transports.
    pub transports: Vec<TransportDiagnostics>,
    /// What it sends.
    pub producers: Vec<ProducerDiagnostics>,
    /// What it receives.
    pub consumers: Vec<ConsumerDiagnostics>,
}

/// A WebRTC transport.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransportDiagnostics {
    /// Its id.
    pub id: String,
    /// `send` or `recv`.
    pub direction: String,
    /// `new`, `connected`, `completed`, `disconnected` or `closed`.
    pub ice_state: String,
    /// The candidate pair in use, `local ⇄ remote (protocol)`.
    pub selected_tuple: Option<String>,
    /// How the client's media comes: `udp`, `tcp` (ICE-TCP) or `relayed` (through one of the
    /// SFU's TURN servers); absent before ICE connects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `new`, `connecting`, `connected`, `failed` or `closed`.
    pub dtls_state: String,
    /// Bytes received.
    pub bytes_received: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// What the congestion controller allows towards the client, in bits per second.
    pub available_outgoing_bitrate: Option<u32>,
}

/// An RTP stream's counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamDiagnostics {
    /// SSRC.
    pub ssrc: u32,
    /// Simulcast RID (a producer's layer).
    pub rid: Option<String>,
    /// Score, 0–10.
    pub score: u8,
    /// Bits per second.
    pub bitrate_bps: u32,
    /// Packets lost.
    pub packets_lost: u64,
    /// NACKs.
    pub nack_count: u64,
    /// PLIs.
    pub pli_count: u64,
    /// FIRs.
    pub fir_count: u64,
    /// Round-trip time, when RTCP gave one.
    pub round_trip_time_ms: Option<f32>,
}

/// Something the participant sends.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProducerDiagnostics {
    /// Its id.
    pub id: String,
    /// `audio` or `video`.
    pub kind: String,
    /// The codec, e.g. `video/VP8`.
    pub codec: String,
    /// Paused by the participant.
    pub paused: bool,
    /// Its streams (one per simulcast layer).
    pub streams: Vec<StreamDiagnostics>,
}

/// Something the participant receives.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerDiagnostics {
    /// Its id.
    pub id: String,
    /// `audio` or `video`.
    pub kind: String,
    /// The producer it forwards.
    pub producer_id: String,
    /// Whose it is (display name), when that peer is still in the room.
    pub from: Option<String>,
    /// Score, 0–10, of what it sends to the participant.
    pub score: u8,
    /// Score of the producer's stream.
    pub producer_score: u8,
    /// Why it is paused, if it is: `by the participant` (never resumed, or paused),
    /// `producer paused` (the sender paused it).
    pub paused: Option<String>,
    /// Spatial and temporal layers it forwards (simulcast, SVC).
    pub current_layers: Option<(u8, u8)>,
    /// The layers the participant asked for.
    pub preferred_layers: Option<(u8, u8)>,
    /// The stream sent to the participant.
    pub stream: Option<StreamDiagnostics>,
}
