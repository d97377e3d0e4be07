//! The monitor API of the SFU: what the supervisor's `/monitor` WebSocket speaks, shared by
//! the supervisor (which answers) and the `monitor` CLI (which asks). See
//! `docs/monitor-api.md` for the wire format with examples.
//!
//! A client sends [`Request`]s; the supervisor answers each with an [`Answer`] carrying the
//! same id, and, after a `subscribe`, pushes [`EventMessage`]s and [`LaggedMessage`]s.
//! Field names are camelCase on the wire.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// HTTP header carrying the admin token on the WebSocket upgrade: `Authorization: Bearer …`.
pub const AUTHORIZATION_SCHEME: &str = "Bearer";

/// What a client may ask.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "method", content = "data", rename_all = "camelCase")]
pub enum Query {
    /// SFU-wide counts and load: answered with a [`Summary`].
    Summary,
    /// Every node with its workers: answered with `Vec<`[`NodeInfo`]`>`.
    Nodes,
    /// Every room: answered with `Vec<`[`RoomInfo`]`>`.
    Rooms,
    /// One room in detail: answered with a [`RoomDetail`], or `not_found`.
    Room {
        /// The room's name.
        room: String,
    },
    /// Starts the event stream (answered with `{}`); with `room`, only that room's events.
    Subscribe {
        /// Only events of this room.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
    },
    /// Stops the event stream.
    Unsubscribe,
}

impl Query {
    /// The method name on the wire.
    pub fn method(&self) -> &'static str {
        match self {
            Query::Summary => "summary",
            Query::Nodes => "nodes",
            Query::Rooms => "rooms",
            Query::Room { .. } => "room",
            Query::Subscribe { .. } => "subscribe",
            Query::Unsubscribe => "unsubscribe",
        }
    }
}

/// A request: `{"id": 1, "method": "room", "data": {"room": "demo"}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Request {
    /// Chosen by the client, echoed in the answer.
    pub id: u64,
    /// What is asked.
    #[serde(flatten)]
    pub query: Query,
}

#[derive(Deserialize)]
struct RoomArgs {
    room: String,
}

#[derive(Deserialize)]
struct SubscribeArgs {
    #[serde(default)]
    room: Option<String>,
}

impl Request {
    /// Reads a request off the wire (the envelope as on `/ws`, see the `envelope` crate). On
    /// error, the id to answer with (when it could be read) and why.
    pub fn parse(text: &str) -> Result<Request, (Option<u64>, ApiError)> {
        let envelope::Envelope { id, method, data } = envelope::Envelope::parse(text)
            .map_err(|e| (e.id, ApiError::new(ApiErrorCode::BadRequest, e.message)))?;
        fn args<T: serde::de::DeserializeOwned>(
            id: u64,
            method: &str,
            data: Value,
        ) -> Result<T, (Option<u64>, ApiError)> {
            serde_json::from_value(data).map_err(|e| {
                let message = format!("{method}: {e}");
                (Some(id), ApiError::new(ApiErrorCode::BadRequest, message))
            })
        }
        let query = match method.as_str() {
            "summary" => Query::Summary,
            "nodes" => Query::Nodes,
            "rooms" => Query::Rooms,
            "room" => {
                let RoomArgs { room } = args(id, &method, data)?;
                Query::Room { room }
            }
            "subscribe" => {
                let SubscribeArgs { room } = args(id, &method, data)?;
                Query::Subscribe { room }
            }
            "unsubscribe" => Query::Unsubscribe,
            _ => {
                return Err((
                    Some(id),
                    ApiError::new(
                        ApiErrorCode::UnknownMethod,
                        format!("unknown method {method:?} (see docs/monitor-api.md)"),
                    ),
                ))
            }
        };
        Ok(Request { id, query })
    }
}

/// Classes of errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiErrorCode {
    /// Not JSON, not an object, a missing or mistyped field.
    BadRequest,
    /// No such method.
    UnknownMethod,
    /// No such room.
    NotFound,
    /// The supervisor has no `MONITOR_TOKEN`: the API is off.
    Disabled,
}

/// Why a request failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// The class of failure.
    pub code: ApiErrorCode,
    /// What went wrong, for a person.
    pub message: String,
}

impl ApiError {
    /// An error of class `code`.
    pub fn new(code: ApiErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let code = serde_json::to_value(self.code).unwrap_or(Value::Null);
        write!(f, "{}: {}", code.as_str().unwrap_or("error"), self.message)
    }
}

/// The answer to one request: `{"id":1,"ok":true,"data":{…}}` or
/// `{"id":1,"ok":false,"error":{"code":"…","message":"…"}}` (`id` is `null` when the request
/// could not be read).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The request's id.
    pub id: Option<u64>,
    /// Whether it succeeded.
    pub ok: bool,
    /// The result when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// The reason when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

impl Answer {
    /// A success carrying `data`.
    pub fn ok(id: u64, data: Value) -> Self {
        Self {
            id: Some(id),
            ok: true,
            data: Some(data),
            error: None,
        }
    }

    /// A failure.
    pub fn error(id: Option<u64>, error: ApiError) -> Self {
        Self {
            id,
            ok: false,
            data: None,
            error: Some(error),
        }
    }
}

/// An event pushed to a subscriber: `{"event":{"at":…,"type":"peerJoined",…}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventMessage {
    /// The event.
    pub event: Event,
}

/// Pushed instead of events a subscriber was too slow to take: `{"lagged":{"missed":12}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaggedMessage {
    /// What was lost.
    pub lagged: Lagged,
}

/// Events lost by a slow subscriber.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lagged {
    /// How many events were dropped.
    pub missed: u64,
}

/// Anything the supervisor sends on `/monitor`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ServerMessage {
    /// An answer.
    Answer(Answer),
    /// An event.
    Event(EventMessage),
    /// Events were dropped.
    Lagged(LaggedMessage),
}

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
}

/// One router of a room.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouterDetail {
    /// The node hosting it, as `node-N`.
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
    /// Seconds since it joined.
    pub joined_secs: u64,
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
}

/// A producer. Score, pause state and bitrate come from the node's periodic statistics
/// and are absent until the first report after the producer was created.
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

/// A consumer. The statistics fields are absent until the first report, as for producers.
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

/// Something that happened, with when (milliseconds since the Unix epoch).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When, in milliseconds since the Unix epoch.
    pub at: u64,
    /// What.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum EventKind {
    /// A room was opened on a worker.
    RoomCreated {
        /// The room.
        room: String,
        /// Its node.
        node: String,
        /// Its worker.
        worker: u32,
    },
    /// A room closed: its last peer left, or its node was lost.
    RoomClosed {
        /// The room.
        room: String,
        /// Why.
        reason: String,
    },
    /// A peer joined a room.
    PeerJoined {
        /// The room.
        room: String,
        /// The peer.
        peer_id: String,
        /// Its name.
        display_name: String,
    },
    /// A peer left a room (or was dropped with its node).
    PeerLeft {
        /// The room.
        room: String,
        /// The peer.
        peer_id: String,
    },
    /// A peer started sending media.
    ProducerAdded {
        /// The room.
        room: String,
        /// The peer.
        peer_id: String,
        /// The producer.
        producer_id: String,
        /// `audio` or `video`.
        kind: String,
    },
    /// A producer closed.
    ProducerClosed {
        /// The room.
        room: String,
        /// The peer.
        peer_id: String,
        /// The producer.
        producer_id: String,
    },
    /// A node process started (at startup or because capacity filled).
    NodeSpawned {
        /// The node.
        node: String,
        /// Its process id.
        pid: u32,
        /// `warm` (keeping the configured count) or `capacity` (every worker was full).
        reason: String,
    },
    /// A node process started to replace one that was lost.
    NodeRespawned {
        /// The node.
        node: String,
        /// Its process id.
        pid: u32,
    },
    /// A node process exited or was lost.
    NodeExited {
        /// The node.
        node: String,
        /// Why.
        reason: String,
    },
    /// A mediasoup worker died (its node exits and is replaced).
    WorkerDied {
        /// The node.
        node: String,
        /// The worker.
        worker: u32,
        /// What mediasoup said.
        message: String,
    },
}

impl EventKind {
    /// The room the event is about, if it is about one.
    pub fn room(&self) -> Option<&str> {
        match self {
            EventKind::RoomCreated { room, .. }
            | EventKind::RoomClosed { room, .. }
            | EventKind::PeerJoined { room, .. }
            | EventKind::PeerLeft { room, .. }
            | EventKind::ProducerAdded { room, .. }
            | EventKind::ProducerClosed { room, .. } => Some(room),
            EventKind::NodeSpawned { .. }
            | EventKind::NodeRespawned { .. }
            | EventKind::NodeExited { .. }
            | EventKind::WorkerDied { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_have_the_documented_shape() {
        let cases = [
            (json!({"id": 1, "method": "summary"}), Query::Summary),
            (json!({"id": 1, "method": "nodes"}), Query::Nodes),
            (json!({"id": 1, "method": "rooms"}), Query::Rooms),
            (
                json!({"id": 1, "method": "room", "data": {"room": "demo"}}),
                Query::Room {
                    room: "demo".into(),
                },
            ),
            (
                json!({"id": 1, "method": "subscribe"}),
                Query::Subscribe { room: None },
            ),
            (
                json!({"id": 1, "method": "subscribe", "data": {"room": "demo"}}),
                Query::Subscribe {
                    room: Some("demo".into()),
                },
            ),
            (
                json!({"id": 1, "method": "unsubscribe"}),
                Query::Unsubscribe,
            ),
        ];
        for (wire, query) in cases {
            let request = Request::parse(&wire.to_string()).unwrap();
            assert_eq!(request, Request { id: 1, query });
            // What the CLI sends parses back to the same request.
            let sent = serde_json::to_string(&request).unwrap();
            assert_eq!(Request::parse(&sent).unwrap(), request);
        }
    }

    #[test]
    fn bad_requests_get_the_right_error() {
        let code = |text: &str| {
            let (id, error) = Request::parse(text).unwrap_err();
            (id, error.code)
        };
        assert_eq!(
            code(r#"{"id":1,"method":"drop tables"}"#),
            (Some(1), ApiErrorCode::UnknownMethod)
        );
        assert_eq!(
            code(r#"{"id":2,"method":"room"}"#),
            (Some(2), ApiErrorCode::BadRequest)
        );
        assert_eq!(
            code(r#"{"id":3,"method":"room","data":{"room":7}}"#),
            (Some(3), ApiErrorCode::BadRequest)
        );
        assert_eq!(
            code(r#"{"id":4,"method":7}"#),
            (Some(4), ApiErrorCode::BadRequest)
        );
        for text in [
            r#"{"method":"summary"}"#,
            r#"{"id":"1","method":"summary"}"#,
            r#"{"id":-1,"method":"summary"}"#,
            "[1]",
            "summary",
        ] {
            assert_eq!(code(text), (None, ApiErrorCode::BadRequest), "{text}");
        }
    }

    #[test]
    fn server_messages_are_told_apart() {
        let answer = Answer::ok(3, json!({"rooms": 1}));
        let text = serde_json::to_string(&answer).unwrap();
        assert_eq!(
            serde_json::from_str::<ServerMessage>(&text).unwrap(),
            ServerMessage::Answer(answer)
        );
        let error = Answer::error(None, ApiError::new(ApiErrorCode::Disabled, "off"));
        assert_eq!(
            serde_json::to_value(&error).unwrap(),
            json!({"id": null, "ok": false, "error": {"code": "disabled", "message": "off"}})
        );
        let event = EventMessage {
            event: Event {
                at: 5,
                kind: EventKind::PeerLeft {
                    room: "r".into(),
                    peer_id: "p".into(),
                },
            },
        };
        assert_eq!(
            serde_json::to_value(&event).unwrap(),
            json!({"event": {"at": 5, "type": "peerLeft", "room": "r", "peerId": "p"}})
        );
        let text = serde_json::to_string(&event).unwrap();
        assert_eq!(
            serde_json::from_str::<ServerMessage>(&text).unwrap(),
            ServerMessage::Event(event)
        );
        let lagged: ServerMessage = serde_json::from_str(r#"{"lagged":{"missed":4}}"#).unwrap();
        assert_eq!(
            lagged,
            ServerMessage::Lagged(LaggedMessage {
                lagged: Lagged { missed: 4 }
            })
        );
    }

    #[test]
    fn events_know_their_room() {
        let joined = EventKind::PeerJoined {
            room: "a".into(),
            peer_id: "p".into(),
            display_name: "n".into(),
        };
        assert_eq!(joined.room(), Some("a"));
        let exited = EventKind::NodeExited {
            node: "node-1".into(),
            reason: "killed".into(),
        };
        assert_eq!(exited.room(), None);
    }
}
