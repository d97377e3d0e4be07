//! The room core: the directory of rooms (which node and worker hosts each, its peers and
//! what each peer owns) and every decision on it, as a plain state machine without locks,
//! async or sending. Inputs are what happened (`handle_*`: a join admitted, a node's answer,
//! a node event, a node lost, a peer gone); outputs wait in a queue ([`RoomCore::poll_output`]):
//! notifications per peer, monitor events, metric changes and node requests nobody waits
//! for (closing what is left). A request whose answer a client waits for is built by a
//! `begin_*` method and its node's answer comes back through the matching `handle_*`, which
//! checks the peer is still there. [`super::Rooms`] performs the calls and delivers the outputs.

mod media;
mod membership;
mod node_events;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use ipc::calls as call;
use ipc::messages::{ConsumerId, Json, MediaKind, ProducerId, RoomId, TransportId};
use monitor_api::EventKind;
use serde_json::Value;

use crate::node_link::NodeId;
use crate::notification::Notification;
use crate::protocol::{ClientError, ClientErrorCode, Direction, Kind, PeerId};

pub use membership::JoinStep;

/// Limits on what clients may do.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Peers in one room.
    pub max_peers_per_room: usize,
    /// Producers of one peer.
    pub max_producers_per_peer: usize,
    /// Token a `join` must carry, if any.
    pub join_token: Option<String>,
    /// Consumers one mediasoup worker takes before it counts as full.
    pub max_consumers_per_worker: u32,
    /// Node processes the pool may grow to.
    pub max_nodes: u32,
}

/// A room: where it lives and who is in it.
pub(crate) struct Room {
    pub(crate) node: NodeId,
    pub(crate) worker: u32,
    rtp_capabilities: Value,
    pub(crate) created_at: Instant,
    pub(crate) peers: BTreeMap<PeerId, Peer>,
}

/// A joined peer and what it owns.
pub(crate) struct Peer {
    pub(crate) display_name: String,
    pub(crate) joined_at: Instant,
    pub(crate) transports: HashMap<TransportId, Direction>,
    pub(crate) producers: HashMap<ProducerId, ProducerEntry>,
    pub(crate) consumers: HashMap<ConsumerId, ConsumerEntry>,
}

/// A producer as the directory knows it.
#[derive(Clone, Debug)]
pub(crate) struct ProducerEntry {
    pub(crate) kind: Kind,
    pub(crate) transport: TransportId,
    /// MIME type of the first codec of its RTP parameters (what it sends).
    pub(crate) codec: String,
}

/// A consumer as the directory knows it.
#[derive(Clone, Debug)]
pub(crate) struct ConsumerEntry {
    pub(crate) producer: ProducerId,
    pub(crate) transport: TransportId,
    pub(crate) kind: MediaKind,
}

/// Where a request goes: the node hosting the room, and the room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The node.
    pub node: NodeId,
    /// The room on it.
    pub room: RoomId,
}

/// A metric the core changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricChange {
    /// A peer joined a room.
    Joined,
}

/// A request to a node nobody waits for: it closes what is no longer wanted.
#[derive(Clone, Debug, PartialEq)]
pub enum Cleanup {
    /// A room is empty.
    CloseRouter(call::CloseRouter),
    /// A peer left or a transport's answer came after its peer left.
    CloseTransport(call::CloseTransport),
    /// A producer's answer came after its peer left.
    CloseProducer(call::CloseProducer),
    /// A consumer's answer came after its peer left.
    CloseConsumer(call::CloseConsumer),
}

/// What the core asks its caller to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
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
}

/// The rooms of the SFU and the rules they follow.
pub struct RoomCore {
    limits: Limits,
    shutting_down: bool,
    rooms: HashMap<RoomId, Room>,
    peer_room: HashMap<PeerId, RoomId>,
    outputs: VecDeque<Output>,
}

pub(crate) fn not_joined() -> ClientError {
    ClientError::new(ClientErrorCode::NotJoined, "join a room first")
}

fn not_found(what: &str, id: impl std::fmt::Display) -> ClientError {
    ClientError::new(ClientErrorCode::NotFound, format!("no {what} {id}"))
}

fn json_value(json: &Json) -> Result<Value, ClientError> {
    serde_json::from_str(&json.0).map_err(|e| {
        ClientError::new(
            ClientErrorCode::Internal,
            format!("node sent invalid JSON: {e}"),
        )
    })
}

impl RoomCore {
    /// No rooms yet.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            shutting_down: false,
            rooms: HashMap::new(),
            peer_room: HashMap::new(),
            outputs: VecDeque::new(),
        }
    }

    /// The next thing to do, oldest first.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The rooms as they are now.
    pub(crate) fn rooms(&self) -> &HashMap<RoomId, Room> {
        &self.rooms
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether `peer` is in a room.
    pub fn is_joined(&self, peer: PeerId) -> bool {
        self.peer_room.contains_key(&peer)
    }

    /// The room `peer` is in.
    pub fn room_of(&self, peer: PeerId) -> Option<&RoomId> {
        self.peer_room.get(&peer)
    }

    /// The SFU is stopping: every joined peer is told, and joins are refused from now on.
    pub fn handle_shutdown(&mut self) {
        self.shutting_down = true;
        let to: Vec<PeerId> = self.peer_room.keys().copied().collect();
        self.notify(to, Notification::ShuttingDown {});
    }

    fn notify(&mut self, to: Vec<PeerId>, notification: Notification) {
        if !to.is_empty() {
            self.outputs.push_back(Output::Notify { to, notification });
        }
    }

    fn monitor(&mut self, event: EventKind) {
        self.outputs.push_back(Output::Monitor(event));
    }

    fn cleanup(&mut self, node: NodeId, cleanup: Cleanup) {
        self.outputs.push_back(Output::Node { node, cleanup });
    }

    /// Where `peer`'s requests go.
    fn target(&self, peer: PeerId) -> Result<Target, ClientError> {
        let room = self.peer_room.get(&peer).ok_or_else(not_joined)?;
        let node = self.rooms.get(room).ok_or_else(not_joined)?.node;
        Ok(Target {
            node,
            room: room.clone(),
        })
    }

    fn peer(&self, peer: PeerId) -> Result<(Target, &Peer), ClientError> {
        let target = self.target(peer)?;
        let state = self
            .rooms
            .get(&target.room)
            .and_then(|r| r.peers.get(&peer))
            .ok_or_else(not_joined)?;
        Ok((target, state))
    }

    fn peer_mut(&mut self, peer: PeerId) -> Result<(Target, &mut Peer), ClientError> {
        let target = self.target(peer)?;
        let state = self
            .rooms
            .get_mut(&target.room)
            .and_then(|r| r.peers.get_mut(&peer))
            .ok_or_else(not_joined)?;
        Ok((target, state))
    }

    /// `peer`, if it is still where a request was sent: an answer arriving after the peer
    /// left (or after its room was lost and re-created elsewhere) finds nothing.
    fn peer_still_at(&mut self, peer: PeerId, at: &Target) -> Option<&mut Peer> {
        if self.target(peer).ok().as_ref() != Some(at) {
            return None;
        }
        self.rooms.get_mut(&at.room)?.peers.get_mut(&peer)
    }

    /// A producer is gone (closed by its peer, with its transport, or with its peer): the
    /// monitor hears it and every consumer of it is closed, its owner told. The node closes
    /// those consumers on its own; its later `consumerClosed` events then find nothing.
    fn producer_gone(&mut self, room_id: &RoomId, owner: PeerId, producer: ProducerId) {
        self.monitor(EventKind::ProducerClosed {
            room: room_id.0.clone(),
            peer_id: owner.to_string(),
            producer_id: producer.to_string(),
        });
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let mut told = Vec::new();
        for (id, peer) in room.peers.iter_mut() {
            let closed: Vec<ConsumerId> = peer
                .consumers
                .iter()
                .filter(|(_, c)| c.producer == producer)
                .map(|(c, _)| *c)
                .collect();
            for consumer in closed {
                peer.consumers.remove(&consumer);
                told.push((*id, consumer));
            }
        }
        for (id, consumer) in told {
            self.notify(
                vec![id],
                Notification::ConsumerClosed {
                    consumer_id: consumer,
                    producer_id: producer,
                },
            );
        }
    }
}
