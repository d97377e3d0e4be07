//! The success answers of the client protocol (`/ws`, docs/protocol.md), typed: one struct per
//! shape, gathered in [`Answer`] so a session serializes whichever its request produced.

use ipc::messages::{ConsumerId, ProducerId, TransportId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Kind, PeerId};

/// What a successful request answers (`data` of `{"id","ok":true,"data"}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Answer {
    /// `join`.
    Joined(Joined),
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
    /// The peers already there, with what they produce.
    pub peers: Vec<PeerInfo>,
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
}

/// A producer of a peer already in the room.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProducerInfo {
    /// Its id.
    pub producer_id: ProducerId,
    /// Audio or video.
    pub kind: Kind,
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
}
