//! What a monitor asks: [`Query`] and the [`Request`] envelope, read off the wire with the
//! same envelope parser as `/ws`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{ApiError, ApiErrorCode};

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
    /// Everything the worker says of one participant (by peer id or display name):
    /// answered with [`PeerDiagnostics`], or `not_found`.
    Peer {
        /// The room.
        room: String,
        /// Its peer id or display name.
        peer: String,
    },
    /// Starts the event stream (answered with `{}`); with `room`, only that room's events;
    /// with `quality`, also quality events, for which the rooms watched are sampled every
    /// 2 s while the subscription lasts.
    Subscribe {
        /// Only events of this room.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        /// Quality events too.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        quality: bool,
    },
    /// Stops the event stream.
    Unsubscribe,
    /// The hosts of the cluster: answered with `Vec<`[`HostView`]`>`; `unavailable` on a
    /// single host (no cluster).
    Hosts,
    /// Drains a node of this host (a rolling upgrade): its peers move to other nodes while
    /// their media goes on, then it stops. Answered with a [`DrainStarted`] at once (or
    /// `not_found`); the `peerMoved` and `nodeDrained` events follow.
    Drain {
        /// The node, as `monitor nodes` names it (`node-2`).
        node: String,
    },
    /// Starts recording a room (with `peer`, only that participant): every track to its own
    /// file under `RECORD_DIR`. Answered with the [`RecordingManifest`] as it starts, or
    /// `not_found` (no such room), `refused` (recording is off, or the folder unwritable).
    RecordStart {
        /// The room.
        room: String,
        /// Only this participant (display name or peer id).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<String>,
    },
    /// Stops recording a room: every file is ended. Answered with the final
    /// [`RecordingManifest`], or `not_found` (not recording).
    RecordStop {
        /// The room.
        room: String,
    },
    /// The recordings under `RECORD_DIR`, running and finished: `Vec<`[`RecordingManifest`]`>`.
    Recordings,
}

impl Query {
    /// The method name on the wire.
    pub fn method(&self) -> &'static str {
        match self {
            Query::Summary => "summary",
            Query::Nodes => "nodes",
            Query::Rooms => "rooms",
            Query::Room { .. } => "room",
            Query::Peer { .. } => "peer",
            Query::Subscribe { .. } => "subscribe",
            Query::Unsubscribe => "unsubscribe",
            Query::Hosts => "hosts",
            Query::Drain { .. } => "drain",
            Query::RecordStart { .. } => "recordStart",
            Query::RecordStop { .. } => "recordStop",
            Query::Recordings => "recordings",
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
struct DrainArgs {
    node: String,
}

#[derive(Deserialize)]
struct RecordArgs {
    room: String,
    #[serde(default)]
    peer: Option<String>,
}

#[derive(Deserialize)]
struct PeerArgs {
    room: String,
    peer: String,
}

#[derive(Deserialize)]
struct SubscribeArgs {
    #[serde(default)]
    room: Option<String>,
    #[serde(default)]
    quality: bool,
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
            "peer" => {
                let PeerArgs { room, peer } = args(id, &method, data)?;
                Query::Peer { room, peer }
            }
            "subscribe" => {
                let SubscribeArgs { room, quality } = args(id, &method, data)?;
                Query::Subscribe { room, quality }
            }
            "unsubscribe" => Query::Unsubscribe,
            "hosts" => Query::Hosts,
            "drain" => {
                let DrainArgs { node } = args(id, &method, data)?;
                Query::Drain { node }
            }
            "recordStart" => {
                let RecordArgs { room, peer } = args(id, &method, data)?;
                Query::RecordStart { room, peer }
            }
            "recordStop" => {
                let RoomArgs { room } = args(id, &method, data)?;
                Query::RecordStop { room }
            }
            "recordings" => Query::Recordings,
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
