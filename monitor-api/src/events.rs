//! Events pushed to subscribers: what happened in rooms and to nodes, and, for a subscriber
//! that asked, the quality of participants' media.

use serde::{Deserialize, Serialize};

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
    /// A peer's signaling connection dropped without `leave`: it stays in its room (media
    /// flowing) and may resume within `resumable_secs`.
    PeerDisconnected {
        /// The room.
        room: String,
        /// The peer.
        peer_id: String,
        /// How long it may take to come back.
        resumable_secs: u64,
    },
    /// A disconnected peer came back on a new connection.
    PeerResumed {
        /// The room.
        room: String,
        /// The peer.
        peer_id: String,
    },
    /// A disconnected peer did not come back in time: it leaves (a `PeerLeft` follows).
    ResumeExpired {
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
    /// Something of a participant went bad: a consumer's score below 5 for 5 s, a producer
    /// silent for 5 s, a transport's ICE `disconnected` or DTLS `failed`. Sent only to
    /// subscribers that asked for quality events.
    QualityDegraded {
        /// The room.
        room: String,
        /// The participant.
        peer_id: String,
        /// Its name.
        display_name: String,
        /// `consumer`, `producer` or `transport`.
        subject: String,
        /// The consumer's, producer's or transport's id.
        id: String,
        /// What is wrong, for a person ("score 2 for 6 s", "ICE disconnected", …).
        reason: String,
    },
    /// What went bad is good again (or gone).
    QualityRecovered {
        /// The room.
        room: String,
        /// The participant.
        peer_id: String,
        /// Its name.
        display_name: String,
        /// `consumer`, `producer` or `transport`.
        subject: String,
        /// The id.
        id: String,
        /// What it is now.
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
    /// An operator drains a node: its peers move to other routers, make before break.
    NodeDraining {
        /// The node.
        node: String,
        /// Peers to move.
        peers: u32,
    },
    /// A peer's media moved off a drained node (`mediaMoving` sent; it switches by itself).
    PeerMoved {
        /// The room.
        room: String,
        /// The peer.
        peer_id: String,
        /// The node it left.
        from: String,
        /// The node it went to.
        to: String,
    },
    /// A drained node has nothing left on it and stops.
    NodeDrained {
        /// The node.
        node: String,
        /// How long the drain took.
        ms: u64,
        /// Whether its deadline came first (peers still there lost what they had on it).
        forced: bool,
    },
    /// A drained host has no node left (or its deadline came): it may stop.
    HostDrained {
        /// The host.
        host: String,
        /// How long the drain took.
        ms: u64,
        /// Nodes still running (0 unless the deadline came first).
        nodes_left: u32,
        /// Rooms it still owns (0 unless one could not be handed over).
        #[serde(default)]
        rooms_left: u32,
    },
    /// A drained host handed a room to another host, live (its peers resume there).
    RoomHandedOver {
        /// The room.
        room: String,
        /// The host that serves it now.
        to: String,
        /// Its peers.
        peers: u32,
        /// How long the handoff took.
        ms: u64,
    },
    /// This host adopted the room of a host that died: what survived on other hosts goes
    /// on (its peers resume here), the peers whose routers died with it join again.
    RoomAdopted {
        /// The room.
        room: String,
        /// The dead host.
        from: String,
        /// Its peers as last known.
        peers: u32,
        /// Its routers that died with the host.
        routers_lost: u32,
        /// From the loss of the host (its link) to the room served here again.
        #[serde(default)]
        ms: u64,
    },
    /// A room of a lost host is served by this host now, claimed anew (nothing to adopt):
    /// its peers join again here.
    RoomFailedOver {
        /// The room.
        room: String,
        /// The lost host.
        from: String,
        /// From the lost host leaving the directory (its lease ended) to this host's claim.
        ms: u64,
    },
    /// A host left the cluster without a drain (its lease expired: it died, or it was cut
    /// off from etcd); the rooms it owned are taken over or adopted by others.
    HostLost {
        /// The host.
        host: String,
        /// The rooms it owned, as this host last knew.
        rooms: u32,
    },
    /// This host took a room over from a drained host.
    RoomTakenOver {
        /// The room.
        room: String,
        /// The drained host.
        from: String,
        /// Its peers.
        peers: u32,
    },
    /// A room's recording started (by the monitor or a participant with `canRecord`).
    RecordingStarted {
        /// The room.
        room: String,
        /// Where its files go.
        folder: String,
    },
    /// A room's recording ended: stopped, the room closed, or a failure (`error`: the
    /// recorder died, a file could not be written) — the calls go on either way.
    RecordingStopped {
        /// The room.
        room: String,
        /// Track files written.
        tracks: u32,
        /// Why it ended early, if it did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// An event of a newer supervisor than this program knows: shown as such, so that a
    /// monitor keeps following a supervisor that was upgraded before it.
    #[serde(other)]
    Unknown,
}

impl EventKind {
    /// The room the event is about, if it is about one.
    pub fn room(&self) -> Option<&str> {
        match self {
            EventKind::RoomCreated { room, .. }
            | EventKind::RoomClosed { room, .. }
            | EventKind::PeerJoined { room, .. }
            | EventKind::PeerLeft { room, .. }
            | EventKind::PeerDisconnected { room, .. }
            | EventKind::PeerResumed { room, .. }
            | EventKind::ResumeExpired { room, .. }
            | EventKind::ProducerAdded { room, .. }
            | EventKind::ProducerClosed { room, .. }
            | EventKind::QualityDegraded { room, .. }
            | EventKind::QualityRecovered { room, .. }
            | EventKind::PeerMoved { room, .. }
            | EventKind::RoomHandedOver { room, .. }
            | EventKind::RoomTakenOver { room, .. }
            | EventKind::RoomAdopted { room, .. }
            | EventKind::RoomFailedOver { room, .. }
            | EventKind::RecordingStarted { room, .. }
            | EventKind::RecordingStopped { room, .. } => Some(room),
            EventKind::NodeSpawned { .. }
            | EventKind::NodeRespawned { .. }
            | EventKind::NodeExited { .. }
            | EventKind::WorkerDied { .. }
            | EventKind::NodeDraining { .. }
            | EventKind::NodeDrained { .. }
            | EventKind::HostDrained { .. }
            | EventKind::HostLost { .. }
            | EventKind::Unknown => None,
        }
    }
}
