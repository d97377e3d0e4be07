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
pub const LINK_VERSION: u32 = 1;

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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
            _ => 0,
        }
    }
}
