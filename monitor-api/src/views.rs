//! The answers' data: SFU-wide numbers, nodes, rooms, one room in detail.

use serde::{Deserialize, Serialize};

/// SFU-wide counts and load.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Version of the supervisor.
    pub version: String,
    /// Seconds since the supervisor started.
    pub uptime_secs: u64,
    /// Node processes ready.
    pub nodes: u32,
    /// mediasoup workers on them.
    pub workers: u32,
    /// Rooms open.
    pub rooms: u32,
    /// Peers joined.
    pub participants: u32,
    /// Producers (media sent by peers).
    pub producers: u32,
    /// Consumers: media forwarded to peers, and pipe consumers between the routers of a
    /// room (see `pipes`).
    pub consumers: u32,
    /// Consumers of every worker.
    pub consumers_per_worker: Vec<WorkerConsumers>,
    /// CPU use of the workers.
    pub load: Load,
    /// Joins since start.
    pub joins_total: u64,
    /// Nodes started to replace a lost one since start.
    pub node_restarts_total: u64,
    /// Pipes between routers of the same room.
    #[serde(default)]
    pub pipes: u32,
    /// Rooms spread over more than one worker.
    #[serde(default)]
    pub spanning_rooms: u32,
    /// In a cluster: hosts whose summary did not arrive in time (left out of the counts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts_missing: Vec<String>,
}

/// Consumers on one worker.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerConsumers {
    /// The node, as `node-N`.
    pub node: String,
    /// Worker index in its node.
    pub worker: u32,
    /// Its consumers.
    pub consumers: u32,
}

/// CPU use of the workers, in percent of one core, over the last 5 seconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Load {
    /// Mean over all workers.
    pub cpu_percent_mean: f64,
    /// The busiest worker.
    pub cpu_percent_max: f64,
}

/// One node process.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    /// The node, as `node-N` (a respawned node gets a new number).
    pub node: String,
    /// Its process id.
    pub pid: u32,
    /// Seconds since it connected.
    pub uptime_secs: u64,
    /// Its version and its mediasoup's.
    pub version: String,
    /// Its workers.
    pub workers: Vec<WorkerInfo>,
}

/// One mediasoup worker.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerInfo {
    /// Index in its node.
    pub worker: u32,
    /// CPU use in percent of one core, over the last 5 seconds.
    pub cpu_percent: f64,
    /// The rooms it hosts.
    pub rooms: Vec<String>,
    /// Peers in those rooms.
    pub participants: u32,
    /// WebRTC transports.
    pub transports: u32,
    /// Producers.
    pub producers: u32,
    /// Consumers.
    pub consumers: u32,
}

/// One room, in brief.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomInfo {
    /// Its name.
    pub room: String,
    /// The node hosting it.
    pub node: String,
    /// The worker hosting it.
    pub worker: u32,
    /// Peers joined.
    pub participants: u32,
    /// Their producers.
    pub producers: u32,
    /// Their consumers.
    pub consumers: u32,
    /// Seconds since it was created.
    pub age_secs: u64,
}

/// One room in detail.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomDetail {
    /// Its name.
    pub room: String,
    /// The node hosting it.
    pub node: String,
    /// The node's process id.
    pub node_pid: u32,
    /// The worker hosting it.
    pub worker: u32,
    /// Seconds since it was created.
    pub age_secs: u64,
    /// Its peers, in the order they joined.
    pub participants: Vec<Participant>,
    /// Its routers, oldest first (the first is `node`/`worker` above): a room spans more
    /// than one worker when one could not carry it.
    #[serde(default)]
    pub routers: Vec<RouterDetail>,
    /// Pipes between its routers: one per producer and router it is copied to.
    #[serde(default)]
    pub pipes: u32,
    /// Nodes whose media statistics did not arrive in time for this answer: the scores and
    /// bitrates of what they host are absent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stats_missing: Vec<String>,
}

/// One router of a room.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouterDetail {
    /// In a cluster: the host of its node (a room spans hosts when its owner is full).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The node hosting it, as `node-N` (numbered by its host).
    pub node: String,
    /// The worker hosting it.
    pub worker: u32,
    /// Peers placed on it.
    pub peers: u32,
    /// Its consumers: its peers' and its pipes'.
    pub consumers: u32,
    /// Pipe consumers sending its peers' producers to the room's other routers.
    pub pipes: u32,
}

/// A peer in a room.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    /// The peer's id.
    pub peer_id: String,
    /// The name it joined with.
    pub display_name: String,
    /// Who its join token says it is (the token's `sub`); absent without join tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// `whip` or `whep` for a session of those; absent for `/ws`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// Seconds since it joined.
    pub joined_secs: u64,
    /// Set while its signaling connection is gone: seconds left to resume before it leaves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumable_secs: Option<u64>,
    /// The node of its router, as `node-N`.
    #[serde(default)]
    pub node: String,
    /// The worker of its router.
    #[serde(default)]
    pub worker: u32,
    /// Its WebRTC transports.
    pub transports: u32,
    /// What it sends.
    pub producers: Vec<ProducerInfo>,
    /// What it receives.
    pub consumers: Vec<ConsumerInfo>,
    /// The data channels it sends on (the chat).
    #[serde(default)]
    pub data_producers: Vec<DataProducerInfo>,
    /// The data channels of others it receives.
    #[serde(default)]
    pub data_consumers: u32,
}

/// A data producer: a data channel a peer sends on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataProducerInfo {
    /// Its id.
    pub id: String,
    /// Its label (`chat` for the demo page).
    pub label: String,
    /// Messages relayed to the others so far (collected for the answer, as scores are).
    #[serde(default)]
    pub relayed: Option<u64>,
    /// Messages dropped for being over the message rate.
    #[serde(default)]
    pub dropped: Option<u64>,
}

/// A producer. Score, pause state and bitrate are collected from its node for the answer
/// (absent when the node did not answer in time: see `RoomDetail::stats_missing`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProducerInfo {
    /// Its id.
    pub id: String,
    /// `audio` or `video`.
    pub kind: String,
    /// The codec's MIME type, e.g. `video/VP8`.
    pub codec: String,
    /// Best score (0–10) of its streams.
    pub score: Option<u8>,
    /// Paused by its peer.
    pub paused: Option<bool>,
    /// Bitrate received, in bits per second.
    pub bitrate_bps: Option<u64>,
}

/// A consumer. The statistics fields are collected for the answer, as for producers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerInfo {
    /// Its id.
    pub id: String,
    /// The producer it forwards.
    pub producer_id: String,
    /// `audio` or `video`.
    pub kind: String,
    /// Score (0–10) of the stream sent to the peer.
    pub score: Option<u8>,
    /// Score (0–10) of the producer's stream.
    pub producer_score: Option<u8>,
    /// Paused by its peer (consumers start paused until the client resumes them).
    pub paused: Option<bool>,
    /// Its producer is paused.
    pub producer_paused: Option<bool>,
    /// Bitrate sent, in bits per second.
    pub bitrate_bps: Option<u64>,
}

/// The answer to `drain`: the drain began.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DrainStarted {
    /// The node.
    pub node: String,
    /// Peers on it, to move.
    pub peers: u32,
}
