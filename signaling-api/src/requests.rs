//! The requests of the client protocol (`/ws`, docs/protocol.md), typed: [`Method`] names
//! them, [`Request`] carries each one's arguments. Ids the server handed out stay strings here:
//! a client that is not in a room is told `not_joined` before its ids are looked at, and an id
//! that is not one of ours is `not_found` (see [`super::parse_id`]), not a malformed request.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ClientError, ClientErrorCode};

/// The methods, as named on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Method {
    /// Join (and create) a room.
    Join,
    /// Take back a peer whose connection dropped, with its resume token.
    Resume,
    /// Leave the room.
    Leave,
    /// The room's router RTP capabilities.
    GetRouterRtpCapabilities,
    /// A new WebRTC transport.
    CreateWebRtcTransport,
    /// The client's DTLS parameters for a transport.
    ConnectWebRtcTransport,
    /// New ICE credentials.
    RestartIce,
    /// Close a transport.
    CloseTransport,
    /// Send a track.
    Produce,
    /// Receive another peer's track.
    Consume,
    /// Pause one of the peer's producers.
    PauseProducer,
    /// Resume one of the peer's producers.
    ResumeProducer,
    /// Close one of the peer's producers.
    CloseProducer,
    /// Pause one of the peer's consumers.
    PauseConsumer,
    /// Resume one of the peer's consumers.
    ResumeConsumer,
    /// Close one of the peer's consumers.
    CloseConsumer,
    /// Choose a consumer's simulcast/SVC layers.
    SetConsumerPreferredLayers,
    /// Send on a data channel (chat).
    ProduceData,
    /// Receive another peer's data channel.
    ConsumeData,
    /// How many videos to receive (last-N) and which to keep regardless (pins).
    SetLastN,
    /// Record the room (a join token with `canRecord`).
    StartRecording,
    /// Stop recording the room (a join token with `canRecord`).
    StopRecording,
}

impl Method {
    /// Every method (a test holds it to docs/protocol.md).
    pub const ALL: [Method; 22] = [
        Method::Join,
        Method::Resume,
        Method::Leave,
        Method::GetRouterRtpCapabilities,
        Method::CreateWebRtcTransport,
        Method::ConnectWebRtcTransport,
        Method::RestartIce,
        Method::CloseTransport,
        Method::Produce,
        Method::Consume,
        Method::PauseProducer,
        Method::ResumeProducer,
        Method::CloseProducer,
        Method::PauseConsumer,
        Method::ResumeConsumer,
        Method::CloseConsumer,
        Method::SetConsumerPreferredLayers,
        Method::ProduceData,
        Method::ConsumeData,
        Method::SetLastN,
        Method::StartRecording,
        Method::StopRecording,
    ];

    /// The method named `name`, or `unknown_method`.
    pub fn from_name(name: &str) -> Result<Method, ClientError> {
        serde_json::from_value(Value::String(name.to_string())).map_err(|_| {
            ClientError::new(
                ClientErrorCode::UnknownMethod,
                format!(
                    "unknown method {} (see docs/protocol.md)",
                    super::echo(name)
                ),
            )
        })
    }

    /// The name on the wire.
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// Whether the method needs a joined room (every one but `join`, `resume` and `leave`).
    pub fn needs_room(self) -> bool {
        !matches!(self, Method::Join | Method::Resume | Method::Leave)
    }
}

/// A request with its arguments.
#[derive(Debug)]
pub enum Request {
    /// `join`.
    Join(JoinArgs),
    /// `resume`.
    Resume(ResumeArgs),
    /// `leave`.
    Leave,
    /// `getRouterRtpCapabilities`.
    GetRouterRtpCapabilities,
    /// `createWebRtcTransport`.
    CreateWebRtcTransport(CreateTransportArgs),
    /// `connectWebRtcTransport`.
    ConnectWebRtcTransport(ConnectTransportArgs),
    /// `restartIce`.
    RestartIce(TransportArgs),
    /// `closeTransport`.
    CloseTransport(TransportArgs),
    /// `produce`.
    Produce(ProduceArgs),
    /// `consume`.
    Consume(ConsumeArgs),
    /// `produceData`.
    ProduceData(ProduceDataArgs),
    /// `consumeData`.
    ConsumeData(ConsumeDataArgs),
    /// `pauseProducer`, `resumeProducer`, `closeProducer`.
    Producer {
        /// Which producer.
        producer_id: String,
        /// What to do.
        action: ProducerAction,
    },
    /// `setLastN`.
    SetLastN(LastNArgs),
    /// `startRecording`.
    StartRecording(StartRecordingArgs),
    /// `stopRecording`.
    StopRecording,
    /// `pauseConsumer`, `resumeConsumer`, `closeConsumer`, `setConsumerPreferredLayers`.
    Consumer {
        /// Which consumer.
        consumer_id: String,
        /// What to do.
        action: ConsumerAction,
    },
}

impl Request {
    /// Reads `method`'s arguments from `data` (an object; `{}` when the frame had none).
    /// Missing or mistyped fields are `bad_request`.
    pub fn from_data(method: Method, data: Value) -> Result<Request, ClientError> {
        fn args<T: serde::de::DeserializeOwned>(
            method: Method,
            data: Value,
        ) -> Result<T, ClientError> {
            serde_json::from_value(data).map_err(|e| {
                ClientError::new(
                    ClientErrorCode::BadRequest,
                    format!("{}: {e}", method.name()),
                )
            })
        }
        let producer = |action, data| {
            let ProducerArgs { producer_id } = args(method, data)?;
            Ok(Request::Producer {
                producer_id,
                action,
            })
        };
        let consumer = |action, data| {
            let ConsumerArgs { consumer_id } = args(method, data)?;
            Ok(Request::Consumer {
                consumer_id,
                action,
            })
        };
        match method {
            Method::Join => Ok(Request::Join(args(method, data)?)),
            Method::Resume => Ok(Request::Resume(args(method, data)?)),
            Method::Leave => Ok(Request::Leave),
            Method::GetRouterRtpCapabilities => Ok(Request::GetRouterRtpCapabilities),
            Method::CreateWebRtcTransport => {
                Ok(Request::CreateWebRtcTransport(args(method, data)?))
            }
            Method::ConnectWebRtcTransport => {
                Ok(Request::ConnectWebRtcTransport(args(method, data)?))
            }
            Method::RestartIce => Ok(Request::RestartIce(args(method, data)?)),
            Method::CloseTransport => Ok(Request::CloseTransport(args(method, data)?)),
            Method::Produce => Ok(Request::Produce(args(method, data)?)),
            Method::Consume => Ok(Request::Consume(args(method, data)?)),
            Method::ProduceData => Ok(Request::ProduceData(args(method, data)?)),
            Method::ConsumeData => Ok(Request::ConsumeData(args(method, data)?)),
            Method::SetLastN => Ok(Request::SetLastN(args(method, data)?)),
            Method::StartRecording => Ok(Request::StartRecording(args(method, data)?)),
            Method::StopRecording => Ok(Request::StopRecording),
            Method::PauseProducer => producer(ProducerAction::Pause, data),
            Method::ResumeProducer => producer(ProducerAction::Resume, data),
            Method::CloseProducer => producer(ProducerAction::Close, data),
            Method::PauseConsumer => consumer(ConsumerAction::Pause, data),
            Method::ResumeConsumer => consumer(ConsumerAction::Resume, data),
            Method::CloseConsumer => consumer(ConsumerAction::Close, data),
            Method::SetConsumerPreferredLayers => {
                let PreferredLayersArgs {
                    consumer_id,
                    spatial_layer,
                    temporal_layer,
                } = args(method, data)?;
                Ok(Request::Consumer {
                    consumer_id,
                    action: ConsumerAction::PreferredLayers {
                        spatial: spatial_layer,
                        temporal: temporal_layer,
                    },
                })
            }
        }
    }
}

/// What to do to a producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProducerAction {
    /// Pause.
    Pause,
    /// Resume.
    Resume,
    /// Close.
    Close,
}

/// What to do to a consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumerAction {
    /// Pause.
    Pause,
    /// Resume.
    Resume,
    /// Close.
    Close,
    /// Prefer these layers.
    PreferredLayers {
        /// Spatial layer.
        spatial: u8,
        /// Temporal layer.
        temporal: Option<u8>,
    },
}

/// Arguments of `join`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinArgs {
    /// Room name.
    pub room: String,
    /// Name shown to the others.
    pub display_name: String,
    /// Join token (a JWT), when the SFU requires one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Only watches (a webinar's audience): publishes nothing (`produce` is refused
    /// `forbidden`), so no publishing room is reserved for it on the worker.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub watch_only: bool,
    /// How many others' videos to receive: the most recent speakers' (see `setLastN`).
    /// Absent: every video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_n: Option<u32>,
}

/// Arguments of `setLastN`: receive the videos of the `lastN` most recent speakers plus
/// those of `pinned`; the others' video consumers are paused by the SFU (no bandwidth) and
/// the client is told which peers' videos it gets (`forwardedVideos`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastNArgs {
    /// How many speakers' videos; absent (`null`): every video.
    #[serde(default)]
    pub last_n: Option<u32>,
    /// Peers whose video is received whether they speak or not (at most
    /// [`MAX_PINNED`]).
    #[serde(default)]
    pub pinned: Vec<super::PeerId>,
    /// Audio of this many most recent speakers only (plus the pinned), for rooms where
    /// everyone may speak but few do; absent (`null`): every audio. A peer is heard once the
    /// room finds it speaking (its first syllables are not), so meetings keep the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loudest: Option<u32>,
}

/// Arguments of `startRecording`: every track of the room, or only `peer`'s.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartRecordingArgs {
    /// Record only this participant (its peer id or display name); absent: everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
}

/// At most this many pins in `setLastN`.
pub const MAX_PINNED: usize = 16;

/// Arguments of `resume`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResumeArgs {
    /// The token of the last `join` or `resume` answer.
    pub resume_token: String,
}

/// Direction of a WebRTC transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Carries this peer's producers.
    Send,
    /// Carries this peer's consumers.
    Recv,
}

/// Arguments of `createWebRtcTransport`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateTransportArgs {
    /// `send` or `recv`.
    pub direction: Direction,
    /// `true`: the transport carries data channels too (an SCTP association); the SFU
    /// chooses the number of streams.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub data: bool,
}

/// Arguments of `connectWebRtcTransport`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectTransportArgs {
    /// The transport.
    pub transport_id: String,
    /// mediasoup-client's DTLS parameters.
    pub dtls_parameters: serde_json::Map<String, Value>,
}

/// Arguments naming one transport.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransportArgs {
    /// The transport.
    pub transport_id: String,
}

/// Kind of a producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Audio.
    Audio,
    /// Video.
    Video,
}

/// Arguments of `produce`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProduceArgs {
    /// The send transport.
    pub transport_id: String,
    /// `audio` or `video`.
    pub kind: Kind,
    /// mediasoup-client's RTP parameters.
    pub rtp_parameters: serde_json::Map<String, Value>,
    /// What the others are told of it (`newProducer`, `consume`): an object of at most
    /// [`MAX_APP_DATA_BYTES`], e.g. `{"source":"screen"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_data: Option<serde_json::Map<String, Value>>,
}

/// The largest `appData` a producer may carry, serialized.
pub const MAX_APP_DATA_BYTES: usize = 1024;

/// Arguments of `consume`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumeArgs {
    /// The receive transport.
    pub transport_id: String,
    /// The producer to receive.
    pub producer_id: String,
    /// The device's RTP capabilities.
    pub rtp_capabilities: serde_json::Map<String, Value>,
}

/// Arguments of `produceData`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProduceDataArgs {
    /// The send transport.
    pub transport_id: String,
    /// mediasoup-client's SCTP stream parameters (`streamId`, `ordered`, …).
    pub sctp_stream_parameters: serde_json::Map<String, Value>,
    /// The data channel's label (e.g. `chat`).
    #[serde(default)]
    pub label: String,
    /// The data channel's sub-protocol.
    #[serde(default)]
    pub protocol: String,
    /// What the others are told of it, as for `produce`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_data: Option<serde_json::Map<String, Value>>,
}

/// Arguments of `consumeData`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumeDataArgs {
    /// The receive transport.
    pub transport_id: String,
    /// The data producer to receive.
    pub data_producer_id: String,
}

/// Arguments naming one producer.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProducerArgs {
    /// The producer.
    pub producer_id: String,
}

/// Arguments naming one consumer.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerArgs {
    /// The consumer.
    pub consumer_id: String,
}

/// Arguments of `setConsumerPreferredLayers`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreferredLayersArgs {
    /// The consumer.
    pub consumer_id: String,
    /// Spatial layer.
    pub spatial_layer: u8,
    /// Temporal layer (highest when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporal_layer: Option<u8>,
}
