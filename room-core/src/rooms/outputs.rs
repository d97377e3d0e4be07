//! What the core asks its caller to do ([`Output`], oldest first from
//! [`RoomCore::poll_output`]), with the orders it carries: node
//! cleanups nobody waits for, links and pipes between a room's routers, metrics.

use std::time::Instant;

use ipc::calls as call;
use ipc::messages::{DataProducerId, ProducerId, TransportId};
use monitor_api::EventKind;
use signaling_api::notifications::Notification;
use signaling_api::{Answer, ClientError, PeerId};

// `Input` and `RoomCore` for the documentation's links.
#[allow(unused_imports)]
use super::{Input, RoomCore};
use super::{Target, Ticket};
use crate::NodeId;

/// A metric the core changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricChange {
    /// A peer joined a room.
    Joined,
    /// A data producer was throttled.
    DataThrottled,
    /// A peer's media moved to another router in a drain.
    PeerMoved,
    /// A drained node has nothing left on it (`forced`: its deadline came first).
    NodeDrained {
        /// Whether peers were still on it when its deadline came.
        forced: bool,
    },
}

/// A request to a node nobody waits for: it closes what is no longer wanted.
#[derive(Clone, Debug, PartialEq)]
pub enum Cleanup {
    /// A router has no peer left.
    CloseRouter(call::CloseRouter),
    /// A peer left, a pipe's other side went away, or an answer came after its peer left.
    CloseTransport(call::CloseTransport),
    /// A producer (or one of its copies) is gone, or its answer came after its peer left.
    CloseProducer(call::CloseProducer),
    /// A consumer's answer came after its peer left.
    CloseConsumer(call::CloseConsumer),
    /// A data producer's copy is gone, or its answer came after its peer left.
    CloseDataProducer(call::CloseDataProducer),
    /// A data consumer's answer came after its peer left.
    CloseDataConsumer(call::CloseDataConsumer),
}

/// Pipe transports to create and connect between two routers of a room on different nodes;
/// the result goes to [`RoomCore::handle_linked`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkOrder {
    /// One side.
    pub low: Target,
    /// The other.
    pub high: Target,
}

/// A producer or data producer to make available in another router of its room; the result
/// goes to [`RoomCore::handle_piped`].
#[derive(Clone, Debug, PartialEq)]
pub struct PipeOrder {
    /// What is relayed.
    pub what: Relayed,
    /// Its router.
    pub from: Target,
    /// Where it is wanted.
    pub to: Target,
    /// `None` within one node (mediasoup pipes it); between nodes, the pipe transports of
    /// `from` and of `to`.
    pub via: Option<(TransportId, TransportId)>,
}

/// What a pipe carries to another router of the room: a producer (media) or a data producer
/// (chat). Both are relayed the same way: copies marked wanted, ordered once the routers are
/// linked, announced on the router once there, closed with the original.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relayed {
    /// A producer.
    Media(ProducerId),
    /// A data producer.
    Data(DataProducerId),
}

/// What the core asks its caller to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Answer request `id` of the connection `session`, before anything queued after this.
    Reply {
        /// The connection that asked.
        session: PeerId,
        /// The request's id.
        id: u64,
        /// The answer, or why not.
        result: Result<Answer, ClientError>,
    },
    /// The connection `session` speaks for `to` from now on (a resume), no more for `from`;
    /// `to`'s previous connection, if another, is closed.
    Attach {
        /// The connection.
        session: PeerId,
        /// The peer it spoke for.
        from: PeerId,
        /// The peer it speaks for now.
        to: PeerId,
    },
    /// Send `request` to `node`; its answer comes back as [`Input::Answer`] with `ticket`.
    Call {
        /// What the answer is for.
        ticket: Ticket,
        /// Which node.
        node: NodeId,
        /// What to ask.
        request: call::Request,
    },
    /// A room needs a new router: say which nodes are ready ([`Input::Nodes`], waiting a
    /// little for one if none is).
    FindNodes {
        /// What the answer is for.
        ticket: Ticket,
    },
    /// Every worker is full: start a node ([`Input::NodeStarted`]).
    SpawnNode {
        /// What the answer is for.
        ticket: Ticket,
    },
    /// Send `notification` to each of `to`.
    Notify {
        /// The peers told.
        to: Vec<PeerId>,
        /// What they are told.
        notification: Notification,
    },
    /// Publish a monitor event.
    Monitor(EventKind),
    /// Count something.
    Metric(MetricChange),
    /// Send a request to a node, in order, and log a failure.
    Node {
        /// Which node.
        node: NodeId,
        /// What to ask.
        cleanup: Cleanup,
    },
    /// Link two routers of a room.
    Link(LinkOrder),
    /// Pipe a producer or a data producer to another router of its room.
    Pipe(PipeOrder),
    /// A drained node has no router left: stop it.
    NodeDrained {
        /// The node.
        node: NodeId,
    },
    /// Nothing else to do now: give [`Input::Timeout`] at this instant (the end of a resume
    /// grace period), unless another input comes first.
    Timeout(Instant),
}
