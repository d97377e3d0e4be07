//! The success answers of the client protocol (`/ws`, docs/protocol.md), typed: one struct per
//! shape, gathered in [`Answer`] so a session serializes whichever its request produced.

use ids::{ConsumerId, DataConsumerId, DataProducerId, ProducerId, TransportId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Direction, Kind, PeerId};

/// What a successful request answers (`data` of `{"id","ok":true,"data"}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Answer {
    /// `join`.
    Joined(Joined),
    /// `resume`.
    Resumed(Resumed),
    /// `getRouterRtpCapabilities`.
    RouterCapabilities(RouterCapabilities),
    /// `createWebRtcTransport`.
    TransportCreated(TransportCreated),
    /// `restartIce`.
    IceRestarted(IceRestarted),
    /// `produce`.
    Produced(Produced),
    /// `consume`.
    Consumed(Consumed),
    /// `produceData`.
    DataProduced(DataProduced),
    /// `consumeData`.
    DataConsumed(DataConsumed),
    /// Everything else: `{}`.
    Done(Done),
}

/// `{}`: the request was carried out.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Done {}

/// The answer to `join`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Joined {
    /// This connection's peer id.
    pub peer_id: PeerId,
    /// The room joined.
    pub room: String,
    /// For `device.load`.
    pub router_rtp_capabilities: Value,
    /// The peers already there, with what they produce (in a room larger than the SFU lists
    /// watchers in, those who only watch are counted in `watching` instead).
    pub peers: Vec<PeerInfo>,
    /// How many peers only watch, uncounted in `peers` (in large rooms only; else absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watching: Option<u32>,
    /// The room's most recent speaker, as the last `activeSpeaker` told it (absent until
    /// someone spoke): whose video to show first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_speaker: Option<PeerId>,
    /// Presented by `resume` on a new connection after this one drops; single-use.
    pub resume_token: String,
    /// In a cluster: every host's signaling URL, where to reconnect (and `resume`) when this
    /// connection's host goes away; kept current by `hostsChanged`. Absent on a single host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// STUN/TURN servers for the client's transports (`RTCPeerConnection`'s `iceServers`),
    /// with credentials of this peer's that expire (absent when the SFU has none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ice_servers: Vec<IceServer>,
}

/// A STUN/TURN server as `RTCIceServer` takes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IceServer {
    /// `turn:`, `turns:` or `stun:` URLs of one server.
    pub urls: Vec<String>,
    /// TURN username: `expiry:peerId` (the expiry in Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password, valid until the username's expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// The answer to `resume`: the peer as it is now, for the client to reconcile with what it
/// had (what changed while it was away was not notified).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resumed {
    /// The peer this connection now speaks for.
    pub peer_id: PeerId,
    /// Its room.
    pub room: String,
    /// `false` when its room moved while it was away (a `roomMoved` follows: join again).
    pub joined: bool,
    /// For the next `resume` (absent when not joined).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resume_token: Option<String>,
    /// The room's router RTP capabilities (null when not joined).
    pub router_rtp_capabilities: Value,
    /// The other peers now, with the producers it can consume.
    pub peers: Vec<PeerInfo>,
    /// Its transports.
    pub transports: Vec<TransportInfo>,
    /// Its producers.
    pub producers: Vec<ProducerInfo>,
    /// Its consumers (those of producers closed meanwhile are gone).
    pub consumers: Vec<ConsumerInfo>,
    /// Its data producers.
    pub data_producers: Vec<DataProducerInfo>,
    /// Its data consumers (those of data producers closed meanwhile are gone).
    pub data_consumers: Vec<DataConsumerInfo>,
    /// In a cluster: every host's signaling URL (as in [`Joined::hosts`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}

/// A data consumer of the resumed peer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataConsumerInfo {
    /// Its id.
    pub data_consumer_id: DataConsumerId,
    /// What it receives.
    pub data_producer_id: DataProducerId,
}

/// A data producer of a peer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataProducerInfo {
    /// Its id.
    pub data_producer_id: DataProducerId,
    /// Its label.
    pub label: String,
    /// Its sub-protocol.
    pub protocol: String,
    /// What its peer said of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_data: Option<Value>,
}

/// A transport of the resumed peer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransportInfo {
    /// Its id.
    pub transport_id: TransportId,
    /// `send` or `recv`.
    pub direction: Direction,
}

/// A consumer of the resumed peer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsumerInfo {
    /// Its id.
    pub consumer_id: ConsumerId,
    /// What it receives.
    pub producer_id: ProducerId,
    /// Audio or video.
    pub kind: Kind,
}

/// A peer already in the room.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerInfo {
    /// Its id.
    pub peer_id: PeerId,
    /// Its name.
    pub display_name: String,
    /// Its producers.
    pub producers: Vec<ProducerInfo>,
    /// Its data producers.
    pub data_producers: Vec<DataProducerInfo>,
}

/// A producer of a peer already in the room.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProducerInfo {
    /// Its id.
    pub producer_id: ProducerId,
    /// Audio or video.
    pub kind: Kind,
    /// What its peer said of it (`appData` of `produce`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_data: Option<Value>,
}

/// The answer to `getRouterRtpCapabilities`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouterCapabilities {
    /// For `device.load`.
    pub router_rtp_capabilities: Value,
}

/// The answer to `createWebRtcTransport`: what `device.createSendTransport` (or
/// `createRecvTransport`) takes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransportCreated {
    /// Its id.
    pub transport_id: TransportId,
    /// mediasoup's ICE parameters.
    pub ice_parameters: Value,
    /// mediasoup's ICE candidates.
    pub ice_candidates: Value,
    /// mediasoup's DTLS parameters.
    pub dtls_parameters: Value,
    /// mediasoup's SCTP parameters, when it was asked for with `data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sctp_parameters: Option<Value>,
}

/// The answer to `restartIce`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IceRestarted {
    /// The new ICE parameters.
    pub ice_parameters: Value,
}

/// The answer to `produce`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Produced {
    /// The new producer.
    pub producer_id: ProducerId,
}

/// The answer to `consume`: what `transport.consume` takes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Consumed {
    /// The new consumer (paused).
    pub consumer_id: ConsumerId,
    /// What it receives.
    pub producer_id: ProducerId,
    /// Audio or video.
    pub kind: Kind,
    /// mediasoup's RTP parameters of the consumer.
    pub rtp_parameters: Value,
    /// `simple`, `simulcast`, `svc` or `pipe`.
    #[serde(rename = "type")]
    pub consumer_type: String,
    /// Whether the producer is paused.
    pub producer_paused: bool,
    /// What the producer's peer said of it (`appData` of `produce`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_data: Option<Value>,
}

/// The answer to `produceData`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataProduced {
    /// The new data producer.
    pub data_producer_id: DataProducerId,
}

/// The answer to `consumeData`: what `transport.consumeData` takes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataConsumed {
    /// The new data consumer.
    pub data_consumer_id: DataConsumerId,
    /// What it receives.
    pub data_producer_id: DataProducerId,
    /// mediasoup's SCTP stream parameters of the data consumer.
    pub sctp_stream_parameters: Value,
    /// The data producer's label.
    pub label: String,
    /// The data producer's sub-protocol.
    pub protocol: String,
    /// What the data producer's peer said of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_data: Option<Value>,
}
