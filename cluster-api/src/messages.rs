//! The link between two supervisors: after the handshake, every frame is one
//! [`LinkMessage`], sealed. One link per pair of hosts carries every session relayed between
//! them, multiplexed by [`SessionId`].
//!
//! A relayed session: a client's connection reached host A for a room host B owns. A opens a
//! session on the link ([`LinkMessage::Open`]), then forwards the client's signaling frames
//! verbatim ([`LinkMessage::Frame`]); B serves the session as one of its own connections and
//! sends back every frame it would have written to the client. Either side ends it with
//! [`LinkMessage::Close`]. The protocol the client speaks is unchanged: A does not interpret
//! the frames it relays, beyond the first `join` or `resume` that tells it where to go.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Version of the link's messages; both ends must agree (checked in the handshake).
pub const LINK_VERSION: u32 = 4;

/// A relayed session on a link, numbered by the host that opened it: the dialing side of the
/// link uses odd numbers, the accepting side even ones, so both may open sessions at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SessionId(pub u64);

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s{}", self.0)
    }
}

/// One message on an open link.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LinkMessage {
    /// A client's connection on the sender is relayed to the receiver, which serves it as a
    /// connection of its own.
    Open {
        /// The session.
        session: SessionId,
        /// The client's address, as the sender saw it (behind a trusted proxy, the one it
        /// forwarded): per-address limits apply on the host that serves it.
        client: IpAddr,
    },
    /// One text frame of the session: the client's request (to the serving host) or what
    /// the serving host writes to the client (an answer or a notification).
    Frame {
        /// The session.
        session: SessionId,
        /// The frame, verbatim.
        text: String,
    },
    /// The session is over. From the relaying host: the client's connection closed. From the
    /// serving host: close the client's connection with this WebSocket close code and reason.
    Close {
        /// The session.
        session: SessionId,
        /// WebSocket close code (1000: normal).
        code: u16,
        /// Why, for the client.
        reason: String,
    },
    /// A monitor request (docs/monitor-api.md, JSON) for the receiver to answer about itself
    /// alone: how `summary` and `room` asked of one host answer for the cluster.
    Ask {
        /// Chosen by the asker, given back with the answer.
        id: u64,
        /// The request.
        query: String,
    },
    /// The answer to [`LinkMessage::Ask`] `id` (JSON, as the monitor API answers).
    Told {
        /// The ask's id.
        id: u64,
        /// The answer.
        answer: String,
    },
    /// A node call from the host that owns a room to a node of the receiver (the room
    /// spans both hosts): the receiver sends `request` to its node `node` and answers with
    /// [`LinkMessage::NodeAnswer`]. The receiver serves only routers the sender created on
    /// it.
    NodeCall {
        /// Chosen by the caller, given back with the answer.
        id: u64,
        /// The node, as the receiver numbers its own nodes (its record's `lent`).
        node: u32,
        /// The request, as the node takes it.
        request: ipc::messages::Request,
    },
    /// The answer to [`LinkMessage::NodeCall`] `id`: the node's, or the receiving host's
    /// refusal.
    NodeAnswer {
        /// The call's id.
        id: u64,
        /// What the node (or its host) answered.
        answer: Result<ipc::messages::Response, ipc::messages::NodeError>,
    },
    /// An event of a node of the sender about a router the receiver created there.
    NodeEvent {
        /// The node, as the sender numbers it.
        node: u32,
        /// The event.
        event: ipc::messages::NodeEvent,
    },
    /// A node of the sender the receiver has routers on is gone, and those routers with it.
    NodeGone {
        /// The node, as the sender numbers it.
        node: u32,
        /// Why.
        reason: String,
    },
    /// The sender drains these nodes of its own (an operator's drain, or the host stops):
    /// the receiver moves its rooms' peers off its routers there, make before break, and
    /// places nothing new on them.
    Draining {
        /// The nodes, as the sender numbers them.
        nodes: Vec<u32>,
    },
    /// The sender, drained, hands its room `room` to the receiver, whole: `export` is the
    /// room's state (room-core's `RoomExport`, JSON, each router's node named by its host),
    /// `revision` the create revision of the room's key. Answered with
    /// [`LinkMessage::HandoffDone`] once the receiver owns the room (or why not).
    Handoff {
        /// Chosen by the sender, given back with the answer.
        id: u64,
        /// The room.
        room: String,
        /// The create revision of the room's key (its release is fenced by it).
        revision: i64,
        /// The room's state.
        export: String,
    },
    /// The answer to [`LinkMessage::Handoff`] `id`.
    HandoffDone {
        /// The handoff's id.
        id: u64,
        /// Taken, or why not.
        result: Result<(), String>,
    },
    /// The sender owns `room`, which has routers on the receiver's nodes: the room's latest
    /// state (as in [`LinkMessage::Handoff`]), for the receiver to adopt the room should the
    /// sender die. Sent when it changed, at most every second.
    Standby {
        /// The room.
        room: String,
        /// Its state.
        export: String,
    },
    /// Routers the receiver created on its nodes for the sender's rooms belong to host
    /// `to`'s rooms now (the sender handed them over): only `to` may drive them from now on.
    LentMoved {
        /// The routers.
        routers: Vec<ipc::messages::RouterId>,
        /// Their rooms' new host.
        to: ids::HostId,
    },
    /// Peers that resumed through the sender are served by host `to` now (their room was
    /// handed over): a `resume` with one of these tokens goes there.
    Forward {
        /// The resume tokens.
        tokens: Vec<String>,
        /// Where they go now.
        to: ids::HostId,
    },
    /// Record `producer` of `router`, which the sender created on the receiver's node `node`
    /// (the room spans both hosts), with the receiver's own recorder into the receiver's
    /// `RECORD_DIR`: `<room>/<folder>/<name>.<extension>` there, the names made safe by the
    /// receiver. Answered with [`LinkMessage::TrackRecording`].
    RecordTrack {
        /// The sender's number for the track (the receiver keeps it apart from its own).
        track: u64,
        /// The node, as the receiver numbers its own nodes.
        node: u32,
        /// The router.
        router: ipc::messages::RouterId,
        /// The producer to record.
        producer: ipc::messages::ProducerId,
        /// The room (its folder).
        room: String,
        /// The recording's folder, under the room's.
        folder: String,
        /// The file's name, without its extension (the codec decides it).
        name: String,
    },
    /// The answer to [`LinkMessage::RecordTrack`] `track`: the file's name and the track's
    /// codec, or why not.
    TrackRecording {
        /// The sender's number for the track.
        track: u64,
        /// The file (in the recording's folder) and the codec, or why not.
        result: Result<(String, String), String>,
    },
    /// End the file of the track the sender asked the receiver to record: answered with
    /// [`LinkMessage::TrackEnded`].
    EndTrack {
        /// The track.
        track: u64,
    },
    /// The answer to [`LinkMessage::EndTrack`]: what the file holds, or why not.
    TrackEnded {
        /// The track.
        track: u64,
        /// What the recorder wrote.
        result: Result<ipc::recorder::TrackSummary, String>,
    },
    /// A track the receiver asked the sender to record stopped on its own (the sender's disk
    /// failed it): its file holds what came before.
    RecordedTrackFailed {
        /// The receiver's number for the track.
        track: u64,
        /// What was written, and the error.
        summary: ipc::recorder::TrackSummary,
    },
    /// Whether the sender has no lease (it cannot reach etcd): sent when the link comes up and
    /// whenever it changes. When every host is fenced nobody can move a room, so joins into
    /// rooms with a known owner may go on.
    Fenced(bool),
    /// Liveness and the link's round trip: answered with [`LinkMessage::Pong`].
    Ping(u64),
    /// The answer to [`LinkMessage::Ping`] with the same number.
    Pong(u64),
}

impl LinkMessage {
    /// Bytes this message holds (what a bounded queue counts).
    pub fn weight(&self) -> usize {
        64 + match self {
            Self::Frame { text, .. } => text.len(),
            Self::Close { reason, .. } => reason.len(),
            Self::Ask { query, .. } => query.len(),
            Self::Told { answer, .. } => answer.len(),
            // Node calls carry SDP-sized JSON at most: their postcard size is what counts.
            Self::NodeCall { .. } | Self::NodeAnswer { .. } | Self::NodeEvent { .. } => {
                postcard::experimental::serialized_size(self).unwrap_or(0)
            }
            Self::NodeGone { reason, .. } => reason.len(),
            Self::Handoff { export, room, .. } | Self::Standby { export, room } => {
                export.len() + room.len()
            }
            Self::HandoffDone { result, .. } => result.as_ref().err().map_or(0, String::len),
            Self::LentMoved { routers, .. } => routers.len() * 16,
            Self::Forward { tokens, .. } => tokens.iter().map(String::len).sum(),
            Self::RecordTrack {
                room, folder, name, ..
            } => room.len() + folder.len() + name.len(),
            Self::TrackRecording { result, .. } => match result {
                Ok((file, codec)) => file.len() + codec.len(),
                Err(e) => e.len(),
            },
            Self::TrackEnded { result, .. } => match result {
                Ok(summary) => summary.path.len() + summary.error.as_ref().map_or(0, String::len),
                Err(e) => e.len(),
            },
            Self::RecordedTrackFailed { summary, .. } => {
                summary.path.len() + summary.error.as_ref().map_or(0, String::len)
            }
            _ => 0,
        }
    }
}
