//! Media statistics, collected only when the supervisor asks (a monitor looks at a room or a
//! participant): what mediasoup knows of a router's transports, producers and consumers. The
//! short form ([`RouterStats`]) is a room's table; the long one ([`Diagnostics`]) answers
//! "why can't Alice see Bob?".

use serde::{Deserialize, Serialize};

use crate::messages::{ConsumerId, DataProducerId, ProducerId, RouterId, TransportId};

/// Media statistics of one router.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RouterStats {
    /// The router.
    pub router: RouterId,
    /// Its producers.
    pub producers: Vec<ProducerStats>,
    /// Its consumers.
    pub consumers: Vec<ConsumerStats>,
    /// Its WebRTC transports.
    pub transports: Vec<TransportStats>,
    /// Its clients' data producers (not the copies piped in).
    pub data_producers: Vec<DataProducerStats>,
}

/// What one client data producer sent, as its node's message rate check saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataProducerStats {
    /// The data producer.
    pub data_producer: DataProducerId,
    /// Messages relayed to its data consumers.
    pub relayed: u64,
    /// Messages dropped for being over the rate.
    pub dropped: u64,
}

/// Statistics of one producer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProducerStats {
    /// The producer.
    pub producer: ProducerId,
    /// Paused by its client.
    pub paused: bool,
    /// Best score (0–10) of its RTP streams; `None` before any RTP arrived.
    pub score: Option<u8>,
    /// Bitrate received, all streams together, in bits per second.
    pub bitrate_bps: u64,
}

/// Statistics of one consumer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConsumerStats {
    /// The consumer.
    pub consumer: ConsumerId,
    /// Paused by its client (consumers start paused until the client resumes them).
    pub paused: bool,
    /// Its producer is paused.
    pub producer_paused: bool,
    /// Score (0–10) of the stream sent to the client.
    pub score: u8,
    /// Score (0–10) of the producer stream it forwards.
    pub producer_score: u8,
    /// Bitrate sent, in bits per second.
    pub bitrate_bps: u64,
}

/// States of one WebRTC transport (mediasoup keeps them: no worker request).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransportStats {
    /// The transport.
    pub transport: TransportId,
    /// `new`, `connected`, `completed`, `disconnected` or `closed`.
    pub ice_state: String,
    /// `new`, `connecting`, `connected`, `failed` or `closed`.
    pub dtls_state: String,
}

/// Everything the worker says of some of a router's objects (one participant's).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Diagnostics {
    /// The transports asked for that exist.
    pub transports: Vec<TransportDiagnostics>,
    /// The producers asked for that exist.
    pub producers: Vec<ProducerDiagnostics>,
    /// The consumers asked for that exist.
    pub consumers: Vec<ConsumerDiagnostics>,
}

/// One WebRTC transport.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransportDiagnostics {
    /// The transport.
    pub transport: TransportId,
    /// ICE state.
    pub ice_state: String,
    /// The pair in use, `local ⇄ remote (protocol)`, once ICE has one.
    pub selected_tuple: Option<String>,
    /// The client's address of that pair (a TURN server's when relayed).
    pub remote_ip: Option<std::net::IpAddr>,
    /// `udp` or `tcp`: that pair's protocol.
    pub protocol: Option<String>,
    /// DTLS state.
    pub dtls_state: String,
    /// Bytes received and sent.
    pub bytes_received: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bitrate the congestion controller allows towards the client, when it estimates one.
    pub available_outgoing_bitrate: Option<u32>,
}

/// One RTP stream (a producer has one per simulcast layer).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamDiagnostics {
    /// SSRC.
    pub ssrc: u32,
    /// Simulcast RID, if any.
    pub rid: Option<String>,
    /// Score (0–10).
    pub score: u8,
    /// Bitrate, in bits per second.
    pub bitrate_bps: u32,
    /// Packets lost.
    pub packets_lost: u64,
    /// NACKs, PLIs and FIRs (received by a producer's stream from its consumers' side, sent
    /// towards the client for a consumer's).
    pub nack_count: u64,
    /// PLIs.
    pub pli_count: u64,
    /// FIRs.
    pub fir_count: u64,
    /// Round-trip time in milliseconds, when RTCP gave one.
    pub round_trip_time_ms: Option<f32>,
}

/// One producer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProducerDiagnostics {
    /// The producer.
    pub producer: ProducerId,
    /// Paused by its client.
    pub paused: bool,
    /// Its streams, one per simulcast layer.
    pub streams: Vec<StreamDiagnostics>,
}

/// One consumer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConsumerDiagnostics {
    /// The consumer.
    pub consumer: ConsumerId,
    /// Paused by its client.
    pub paused: bool,
    /// Its producer is paused.
    pub producer_paused: bool,
    /// Score (0–10) of what it sends.
    pub score: u8,
    /// Score (0–10) of the producer stream it forwards.
    pub producer_score: u8,
    /// Spatial and temporal layer it forwards (simulcast and SVC).
    pub current_layers: Option<(u8, u8)>,
    /// Layers the client asked for.
    pub preferred_layers: Option<(u8, u8)>,
    /// The stream sent to the client.
    pub stream: Option<StreamDiagnostics>,
}
