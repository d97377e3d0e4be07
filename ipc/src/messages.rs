//! What travels between the supervisor and a node.
//!
//! The connection starts with each side sending its hello ([`ToNode::Hello`],
//! [`FromNode::Hello`]); both check [`PROTOCOL_VERSION`] and close on a mismatch. Then the
//! supervisor sends [`ToNode::Request`]s, each answered exactly once by a
//! [`FromNode::Answer`] with the same id, and the node pushes [`FromNode::Event`]s and a
//! [`FromNode::Load`] report every [`LOAD_REPORT_INTERVAL`], which doubles as its heartbeat.
//! Media statistics travel only when asked ([`crate::calls::GetMediaStats`],
//! [`crate::calls::Diagnose`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::calls::{Request, Response};
pub use crate::stats::{
    ConsumerDiagnostics, ConsumerStats, DataProducerStats, Diagnostics, ProducerDiagnostics,
    ProducerStats, RouterStats, StreamDiagnostics, TransportDiagnostics, TransportStats,
};

/// Version of this wire protocol; bump it on any change to the types of this module.
pub const PROTOCOL_VERSION: u32 = 8;

/// How often a node sends its load report. The supervisor treats silence of several
/// intervals as a hung node.
pub const LOAD_REPORT_INTERVAL: Duration = Duration::from_millis(500);

pub use ids::{
    ConsumerId, DataConsumerId, DataProducerId, ProducerId, RoomId, RouterId, TransportId,
};

/// A mediasoup structure (RTP parameters or capabilities, ICE or DTLS parameters, scores)
/// serialised as JSON in mediasoup's own shape. The supervisor relays it to and from clients
/// untouched; the node parses it with mediasoup's types.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Json(pub String);

/// Audio or video.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MediaKind {
    /// Audio.
    Audio,
    /// Video.
    Video,
}

impl MediaKind {
    /// `"audio"` or `"video"`, as mediasoup and browsers spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        }
    }
}

/// Supervisor → node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ToNode {
    /// First message of the supervisor.
    Hello {
        /// [`PROTOCOL_VERSION`] of the supervisor.
        protocol_version: u32,
    },
    /// A request, to be answered once with the same id.
    Request {
        /// Chosen by the supervisor, unique on this connection.
        id: u64,
        /// What to do.
        request: Request,
    },
    /// Close every room and exit.
    Shutdown,
}

/// Node → supervisor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FromNode {
    /// First message of the node.
    Hello(NodeHello),
    /// The answer to the request `id`.
    Answer {
        /// Id of the request.
        id: u64,
        /// What happened.
        result: Result<Response, NodeError>,
    },
    /// Something happened in a room without being asked.
    Event(NodeEvent),
    /// Periodic load (and heartbeat).
    Load(LoadReport),
}

/// A node introduces itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeHello {
    /// [`PROTOCOL_VERSION`] of the node.
    pub protocol_version: u32,
    /// Process id of the node.
    pub pid: u32,
    /// Number of mediasoup workers running.
    pub workers: u32,
    /// Version of the node binary and of its mediasoup worker.
    pub version: String,
}

/// Why a node refused a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct NodeError {
    /// The class of failure.
    pub code: NodeErrorCode,
    /// What happened, for the log and the client.
    pub message: String,
}

impl NodeError {
    /// An error of class `code`.
    pub fn new(code: NodeErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Classes of [`NodeError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeErrorCode {
    /// No such room, transport, producer or consumer.
    NotFound,
    /// A parameter could not be parsed or is not acceptable.
    InvalidArgument,
    /// mediasoup refused the request.
    Media,
    /// The node is out of order (a worker died, a bug).
    Internal,
}

/// What a node reports without being asked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum NodeEvent {
    /// A consumer closed because its producer or transport went away.
    ConsumerClosed {
        /// The router.
        router: RouterId,
        /// The consumer.
        consumer: ConsumerId,
        /// Its producer.
        producer: ProducerId,
    },
    /// A consumer's producer was paused.
    ConsumerPaused {
        /// The router.
        router: RouterId,
        /// The consumer.
        consumer: ConsumerId,
    },
    /// A consumer's producer was resumed.
    ConsumerResumed {
        /// The router.
        router: RouterId,
        /// The consumer.
        consumer: ConsumerId,
    },
    /// A consumer's score changed.
    ConsumerScore {
        /// The router.
        router: RouterId,
        /// The consumer.
        consumer: ConsumerId,
        /// mediasoup `ConsumerScore`.
        score: Json,
    },
    /// A consumer switched simulcast/SVC layers (`None`: no layer is being sent).
    ConsumerLayersChanged {
        /// The router.
        router: RouterId,
        /// The consumer.
        consumer: ConsumerId,
        /// Spatial layer.
        spatial_layer: Option<u8>,
        /// Temporal layer.
        temporal_layer: Option<u8>,
    },
    /// A producer's score changed.
    ProducerScore {
        /// The router.
        router: RouterId,
        /// The producer.
        producer: ProducerId,
        /// mediasoup `Vec<ProducerScore>`.
        score: Json,
    },
    /// The loudest audio producer of a router changed.
    ActiveSpeaker {
        /// The router.
        router: RouterId,
        /// The producer.
        producer: ProducerId,
    },
    /// A data consumer closed because its data producer went away.
    DataConsumerClosed {
        /// The router.
        router: RouterId,
        /// The data consumer.
        data_consumer: DataConsumerId,
        /// Its data producer.
        data_producer: DataProducerId,
    },
    /// A client's data producer sent more messages in a second than the node allows: it is
    /// paused (what it sends meanwhile is dropped) and resumes on its own after `paused_ms`.
    DataProducerThrottled {
        /// The router.
        router: RouterId,
        /// The data producer.
        data_producer: DataProducerId,
        /// The limit it broke.
        max_messages_per_sec: u32,
        /// How long it stays paused.
        paused_ms: u32,
    },
    /// A client's WebRTC transport connected (DTLS up, or ICE back after a loss), lost its
    /// client (ICE consent expired), or failed or closed at the DTLS level.
    TransportState {
        /// The router.
        router: RouterId,
        /// The transport.
        transport: TransportId,
        /// What happened.
        state: TransportState,
    },
    /// A mediasoup worker died; its rooms are gone and the node exits.
    WorkerDied {
        /// Index of the worker.
        worker: u32,
        /// What mediasoup said.
        message: String,
    },
}

/// What became of a client's transport ([`NodeEvent::TransportState`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransportState {
    /// Media can flow: DTLS connected, or ICE came back after a loss.
    Connected,
    /// The client went silent: no ICE consent checks for the consent timeout.
    Disconnected,
    /// DTLS failed (a bad fingerprint, an alert).
    Failed,
    /// The client closed DTLS.
    Closed,
}

impl NodeEvent {
    /// The router the event is about (a worker's death is about the whole node).
    pub fn router(&self) -> Option<RouterId> {
        match self {
            Self::ConsumerClosed { router, .. }
            | Self::ConsumerPaused { router, .. }
            | Self::ConsumerResumed { router, .. }
            | Self::ConsumerScore { router, .. }
            | Self::ConsumerLayersChanged { router, .. }
            | Self::ProducerScore { router, .. }
            | Self::ActiveSpeaker { router, .. }
            | Self::DataConsumerClosed { router, .. }
            | Self::DataProducerThrottled { router, .. }
            | Self::TransportState { router, .. } => Some(*router),
            Self::WorkerDied { .. } => None,
        }
    }
}

/// Periodic load of a node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// One entry per worker, by index.
    pub workers: Vec<WorkerLoad>,
}

/// Load of one mediasoup worker.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerLoad {
    /// Index of the worker in its node.
    pub worker: u32,
    /// Routers (rooms) on the worker.
    pub routers: u32,
    /// WebRTC transports.
    pub transports: u32,
    /// Producers.
    pub producers: u32,
    /// Consumers.
    pub consumers: u32,
    /// CPU time the worker used, user + system, in milliseconds (mediasoup resource usage).
    pub cpu_time_ms: u64,
}
