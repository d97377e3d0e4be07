//! The room core: the directory of rooms (which node and worker hosts each, its peers and
//! what each peer owns) and every decision on it, as a plain state machine without locks,
//! async or sending, on str0m's contract: [`RoomCore::handle`] takes one [`Input`] (a client's
//! request, a node's answer to a ticket, a node event, a lost node, a dropped connection, a
//! timeout) with the time, and [`RoomCore::poll_output`] gives what to do, oldest first:
//! replies, notifications, node calls with their tickets, router placement and node starts,
//! monitor events, metrics, and last the next [`Output::Timeout`]. A join that needs a new
//! router is core state ([`joins`]); so is every request waiting for its node
//! ([`contract`]). A room spans several routers when one worker cannot carry it: links and
//! pipes between them are orders too ([`Output::Link`], [`Output::Pipe`]), whose results
//! come back as inputs. The supervisor's driver performs the outputs.

mod announce;
mod contract;
mod data;
mod drain;
mod handoff;
mod joins;
mod last_n;
mod media;
mod membership;
mod node_events;
mod outputs;
mod pipes;
mod requests;
mod resume;
mod rights;
#[cfg(test)]
mod tests;
mod view;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipc::calls as call;
use ipc::messages::{
    ConsumerId, DataConsumerId, DataProducerId, Json, MediaKind, ProducerId, RoomId, RouterId,
    TransportId,
};
use monitor_api::EventKind;
use serde_json::Value;

use crate::NodeId;
use signaling_api::notifications::Notification;
use signaling_api::{ClientError, ClientErrorCode, Direction, Kind, PeerId, MAX_APP_DATA_BYTES};

pub use announce::ANNOUNCE_TICK;
pub use contract::{Input, Ticket};
pub use data::{PendingConsumeData, PendingProduceData};
pub use drain::DRAIN_DEADLINE;
pub use handoff::{HandoffError, RoomExport, RouterExport};
pub use media::{PendingConsume, PendingProduce};
pub use membership::JoinStep;
pub use outputs::{Cleanup, LinkOrder, MetricChange, Output, PipeOrder, Relayed};
pub use pipes::PipeError;
pub use resume::{Resume, TokenSource};
pub use rights::{Credentials, Limits, Rights, Via};
pub use view::{ConsumerView, DataProducerView, PeerView, ProducerView, RoomView, RouterView};

/// A room: its routers (one per worker it spans, piped together) and who is in it.
pub(crate) struct Room {
    pub(crate) routers: BTreeMap<RouterId, RouterState>,
    /// Pipe transport pairs between its routers on different nodes, by (lower, higher) id.
    pub(crate) links: BTreeMap<(RouterId, RouterId), Link>,
    /// Shared by every room whose routers have the same (see [`RoomCore::router_caps`]).
    rtp_capabilities: Arc<Value>,
    pub(crate) created_at: Instant,
    pub(crate) peers: BTreeMap<PeerId, Peer>,
    /// Who spoke, the most recent first (see [`last_n`]).
    pub(crate) speakers: Vec<PeerId>,
    /// Joins and leaves not yet told (see [`announce`]).
    pub(crate) announce: announce::Announcements,
    /// Whose consumer each consumer id was last found to be: a node's consumer events name
    /// only the consumer, and looking through every peer for it made each event cost the
    /// room's size (a 1,000-viewer webinar spent more on it than on anything else). Checked
    /// on every use, so it is never wrong, only sometimes missing.
    pub(crate) consumer_owners: std::collections::HashMap<ConsumerId, PeerId>,
}

/// One router of a room.
pub(crate) struct RouterState {
    pub(crate) node: NodeId,
    pub(crate) worker: u32,
    /// Order of creation: the oldest router is the room's primary (its active speaker is the
    /// room's).
    pub(crate) seq: u64,
    /// Linked to every other router of the room and given every producer: peers may join it.
    ready: bool,
}

/// A pipe transport pair between two routers of a room on different nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Link {
    /// Being created and connected.
    Pending,
    /// Both sides connected: `low`'s transport and `high`'s (the pair's order).
    Ready(TransportId, TransportId),
}

/// A joined peer and what it owns.
pub(crate) struct Peer {
    pub(crate) router: RouterId,
    pub(crate) display_name: String,
    pub(crate) rights: Rights,
    /// Its join token's identity (`sub`), when join tokens are on.
    pub(crate) identity: Option<String>,
    /// When its join token expires (Unix seconds): no resume after that.
    pub(crate) token_expires_at: Option<u64>,
    /// How it came.
    pub(crate) via: Via,
    pub(crate) joined_at: Instant,
    /// Set while its signaling connection is gone: when its resume grace period ends.
    pub(crate) detached_until: Option<Instant>,
    /// Which of its connections this is: bumped when one drops or another resumes it, so that
    /// an answer to an older connection's request is not taken as this one's.
    pub(crate) epoch: u32,
    pub(crate) transports: HashMap<TransportId, Direction>,
    /// Its transports left on the router it moved from in a drain (every other transport is
    /// on `router`): the client closes them once it works on the new ones.
    pub(crate) moved_from: HashMap<TransportId, RouterId>,
    pub(crate) producers: HashMap<ProducerId, ProducerEntry>,
    pub(crate) consumers: HashMap<ConsumerId, ConsumerEntry>,
    pub(crate) data_producers: HashMap<DataProducerId, data::DataProducerEntry>,
    pub(crate) data_consumers: HashMap<DataConsumerId, data::DataConsumerEntry>,
    /// Its last-N choice.
    pub(crate) view: last_n::VideoView,
    /// Announced to the others (else counted among those `watching`).
    pub(crate) listed: bool,
    /// The announcement sequence number of its join: it is told what came after.
    pub(crate) announce_seq: u64,
}

impl Peer {
    /// Its producers on its current router (not those left behind in a drain).
    pub(crate) fn producers_here(&self) -> usize {
        let moved = |e: &&ProducerEntry| self.moved_from.contains_key(&e.transport);
        self.producers.values().filter(|e| !moved(e)).count()
    }

    /// Its data producers on its current router.
    pub(crate) fn data_producers_here(&self) -> usize {
        let moved = |e: &&data::DataProducerEntry| self.moved_from.contains_key(&e.transport);
        self.data_producers.values().filter(|e| !moved(e)).count()
    }

    /// The router `transport` of this peer is on.
    pub(crate) fn router_of(&self, transport: TransportId) -> RouterId {
        self.moved_from
            .get(&transport)
            .copied()
            .unwrap_or(self.router)
    }

    /// Whether this peer's producer (or data producer) sent on `transport` can be consumed on
    /// `router`: it is there, or piped there already.
    pub(crate) fn offers_on(
        &self,
        transport: TransportId,
        copies: &BTreeMap<RouterId, bool>,
        router: RouterId,
    ) -> bool {
        self.router_of(transport) == router || copies.get(&router) == Some(&true)
    }
}

/// A producer as the directory knows it.
#[derive(Clone, Debug)]
pub(crate) struct ProducerEntry {
    pub(crate) kind: Kind,
    pub(crate) transport: TransportId,
    /// MIME type of the first codec of its RTP parameters (what it sends).
    pub(crate) codec: String,
    /// What its peer said of it, for the others.
    pub(crate) app_data: Option<Value>,
    /// The room's other routers it is piped to (`true` once there); each is a pipe consumer
    /// on its own router's worker.
    pub(crate) copies: BTreeMap<RouterId, bool>,
}

/// A consumer as the directory knows it.
#[derive(Clone, Debug)]
pub(crate) struct ConsumerEntry {
    pub(crate) producer: ProducerId,
    pub(crate) transport: TransportId,
    pub(crate) kind: MediaKind,
    /// Its client paused it (a consumer is created paused, until the client resumes it).
    pub(crate) client_paused: bool,
    /// Last-N holds it: paused at the node whatever its client wants.
    pub(crate) held: bool,
}

/// Where a request goes: a router and its node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// The node.
    pub node: NodeId,
    /// The router on it.
    pub router: RouterId,
}

/// The rooms of the SFU and the rules they follow.
pub struct RoomCore {
    limits: Limits,
    resumption: resume::Resumption,
    tokens: TokenSource,
    shutting_down: bool,
    rooms: HashMap<RoomId, Room>,
    peer_room: HashMap<PeerId, RoomId>,
    router_room: HashMap<RouterId, RoomId>,
    next_seq: u64,
    outputs: VecDeque<Output>,
    /// How long a dropped connection's peer may be resumed (zero: it leaves at once).
    resume_grace: Duration,
    /// Requests waiting for a node's answer, by ticket.
    tickets: HashMap<Ticket, contract::Pending>,
    next_ticket: u64,
    /// Joins waiting for a new router of their room.
    joins: HashMap<RoomId, joins::Joining>,
    /// When resume grace periods end (some may have been resumed since: checked then).
    deadlines: BTreeSet<Instant>,
    /// The time of the last input.
    now: Instant,
    /// Whether the last drain ended with its [`Output::Timeout`].
    timeout_told: bool,
    /// Nodes being drained: no new router goes there, their peers move away.
    draining: BTreeMap<NodeId, drain::Draining>,
    /// This host stops: no node starts for a new router.
    leaving: bool,
    /// Rooms whose last-N forwarded sets may have changed.
    last_n_dirty: BTreeSet<RoomId>,
    /// The last announcement sequence number.
    announce_seq: u64,
    /// The last routers' RTP capabilities, as the node sent them and parsed.
    router_caps: Option<(String, Arc<Value>)>,
    /// When the rooms in `announcing` tell what they gathered.
    announce_at: Option<Instant>,
    announcing: BTreeSet<RoomId>,
}

/// The refusal of a request that needs a room, from a peer in none.
pub fn not_joined() -> ClientError {
    ClientError::new(ClientErrorCode::NotJoined, "join a room first")
}

fn not_found(what: &str, id: impl std::fmt::Display) -> ClientError {
    ClientError::new(ClientErrorCode::NotFound, format!("no {what} {id}"))
}

/// Whether `peer`'s join token lets it produce (media or data).
fn may_publish(peer: &Peer) -> Result<(), ClientError> {
    if peer.rights.publish {
        return Ok(());
    }
    Err(ClientError::new(
        ClientErrorCode::Forbidden,
        "the join token does not allow publishing (canPublish)",
    ))
}

/// Whether `peer`'s join token lets it consume (media or data).
fn may_subscribe(peer: &Peer) -> Result<(), ClientError> {
    if peer.rights.subscribe {
        return Ok(());
    }
    Err(ClientError::new(
        ClientErrorCode::Forbidden,
        "the join token does not allow subscribing (canSubscribe)",
    ))
}

/// Whether `peer` may have one more consumer: its consumers and data consumers together stay
/// within `max` (`--max-consumers-per-peer`).
fn may_consume_more(peer: &Peer, max: usize) -> Result<(), ClientError> {
    // What it still has on the router it moved from in a drain does not count: it goes.
    let here = |t: &TransportId| !peer.moved_from.contains_key(t);
    let media = peer
        .consumers
        .values()
        .filter(|c| here(&c.transport))
        .count();
    let data = (peer.data_consumers.values())
        .filter(|c| here(&c.transport))
        .count();
    if media + data < max {
        return Ok(());
    }
    Err(ClientError::new(
        ClientErrorCode::TooManyConsumers,
        format!("a peer may have at most {max} consumers, data consumers included"),
    ))
}

/// What a client said of its producer or data producer, for the others: at most
/// [`MAX_APP_DATA_BYTES`] serialized.
fn bounded_app_data(
    data: Option<serde_json::Map<String, Value>>,
) -> Result<Option<Value>, ClientError> {
    let Some(data) = data else {
        return Ok(None);
    };
    let data = Value::Object(data);
    if data.to_string().len() > MAX_APP_DATA_BYTES {
        return Err(ClientError::new(
            ClientErrorCode::InvalidArgument,
            format!("appData is larger than {MAX_APP_DATA_BYTES} bytes"),
        ));
    }
    Ok(Some(data))
}

impl RoomCore {
    /// The routers' RTP capabilities in `json`, parsed once: routers made with the same codecs
    /// (every one of a deployment) have the same, and a parsed copy per room (~30 KB) was a
    /// tenth of an idle peer's memory in rooms of ten.
    fn router_caps(&mut self, json: &Json) -> Result<Arc<Value>, ClientError> {
        if let Some((text, caps)) = &self.router_caps {
            if *text == json.0 {
                return Ok(caps.clone());
            }
        }
        let caps = Arc::new(json_value(json)?);
        self.router_caps = Some((json.0.clone(), caps.clone()));
        Ok(caps)
    }

    /// `caps` as a room taken over from another host has them: the shared copy when they
    /// are the same.
    fn shared_caps(&self, caps: Value) -> Arc<Value> {
        match &self.router_caps {
            Some((_, shared)) if **shared == caps => shared.clone(),
            _ => Arc::new(caps),
        }
    }
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
    /// No rooms yet; resume tokens come from `tokens`; resume is off.
    pub fn new(limits: Limits, tokens: TokenSource) -> Self {
        Self::with_resume_grace(limits, tokens, Duration::ZERO)
    }

    /// [`RoomCore::new`], a peer whose connection drops staying resumable for `grace`.
    pub fn with_resume_grace(limits: Limits, tokens: TokenSource, grace: Duration) -> Self {
        Self {
            limits,
            resumption: resume::Resumption::default(),
            tokens,
            shutting_down: false,
            rooms: HashMap::new(),
            peer_room: HashMap::new(),
            router_room: HashMap::new(),
            next_seq: 0,
            outputs: VecDeque::new(),
            resume_grace: grace,
            tickets: HashMap::new(),
            next_ticket: 0,
            joins: HashMap::new(),
            deadlines: BTreeSet::new(),
            now: Instant::now(),
            timeout_told: false,
            draining: BTreeMap::new(),
            leaving: false,
            last_n_dirty: BTreeSet::new(),
            announce_seq: 0,
            router_caps: None,
            announce_at: None,
            announcing: BTreeSet::new(),
        }
    }

    /// The next thing to do, oldest first; once nothing else is queued, [`Output::Timeout`]
    /// (then `None` until the next input): the caller waits for that instant or the next
    /// input.
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(output) = self.outputs.pop_front() {
            return Some(output);
        }
        if std::mem::replace(&mut self.timeout_told, true) {
            return None;
        }
        Some(Output::Timeout(self.next_timeout()))
    }

    /// Queued outputs, without the final timeout (the scenario tests' view).
    #[cfg(test)]
    pub(crate) fn poll_queued(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The rooms as they are now.
    #[cfg(test)]
    pub(crate) fn rooms(&self) -> &HashMap<RoomId, Room> {
        &self.rooms
    }

    /// Whether `peer` is in a room.
    pub fn is_joined(&self, peer: PeerId) -> bool {
        self.peer_room.contains_key(&peer)
    }

    /// The SFU is stopping: every joined peer is told, and joins are refused from now on.
    pub(crate) fn handle_shutdown(&mut self) {
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

    /// Closes what an answer created after its peer left, unless its router is gone too (which
    /// took it along).
    fn cleanup_if_router(&mut self, at: &Target, cleanup: Cleanup) {
        if self.router_room.contains_key(&at.router) {
            self.cleanup(at.node, cleanup);
        }
    }

    fn cleanup(&mut self, node: NodeId, cleanup: Cleanup) {
        self.outputs.push_back(Output::Node { node, cleanup });
    }

    /// Where `peer`'s requests go.
    fn target(&self, peer: PeerId) -> Result<Target, ClientError> {
        let (_, room) = self.room_of_peer(peer)?;
        let router = room.peers.get(&peer).ok_or_else(not_joined)?.router;
        let node = room.routers.get(&router).ok_or_else(not_joined)?.node;
        Ok(Target { node, router })
    }

    fn room_of_peer(&self, peer: PeerId) -> Result<(&RoomId, &Room), ClientError> {
        let id = self.peer_room.get(&peer).ok_or_else(not_joined)?;
        Ok((id, self.rooms.get(id).ok_or_else(not_joined)?))
    }

    fn peer(&self, peer: PeerId) -> Result<(Target, &Peer), ClientError> {
        let target = self.target(peer)?;
        let (_, room) = self.room_of_peer(peer)?;
        Ok((target, room.peers.get(&peer).ok_or_else(not_joined)?))
    }

    fn peer_mut(&mut self, peer: PeerId) -> Result<(Target, RoomId, &mut Peer), ClientError> {
        let target = self.target(peer)?;
        let room_id = self.peer_room.get(&peer).cloned().ok_or_else(not_joined)?;
        let state = self
            .rooms
            .get_mut(&room_id)
            .and_then(|r| r.peers.get_mut(&peer))
            .ok_or_else(not_joined)?;
        Ok((target, room_id, state))
    }

    /// `peer`, if it is still where a request was sent: an answer arriving after the peer
    /// left (or after its router was lost and it joined again elsewhere) finds nothing.
    /// A peer that moved in a drain is still at the router it moved from, for what it has
    /// there.
    fn peer_still_at(&mut self, peer: PeerId, at: &Target) -> Option<(RoomId, &mut Peer)> {
        let here = self.target(peer).ok().as_ref() == Some(at);
        let room_id = self.peer_room.get(&peer)?.clone();
        let room = self.rooms.get_mut(&room_id)?;
        let placed = room
            .routers
            .get(&at.router)
            .is_some_and(|r| r.node == at.node);
        let peer = room.peers.get_mut(&peer)?;
        let before = placed && peer.moved_from.values().any(|r| *r == at.router);
        (here || before).then_some((room_id, peer))
    }

    /// Consumers on `worker` of `node`: its routers' clients' consumers, and a pipe consumer
    /// for every copy of one of their producers in another router.
    fn worker_load(&self, node: NodeId, worker: u32) -> u32 {
        self.rooms
            .values()
            .map(|room| {
                room.peers
                    .values()
                    .filter(|p| {
                        room.routers
                            .get(&p.router)
                            .is_some_and(|r| r.node == node && r.worker == worker)
                    })
                    .map(|p| {
                        // Data consumers forward as media consumers do: they count the same.
                        let pipes: usize = p.producers.values().map(|e| e.copies.len()).sum();
                        let data_pipes: usize =
                            p.data_producers.values().map(|e| e.copies.len()).sum();
                        (p.consumers.len() + pipes + p.data_consumers.len() + data_pipes) as u32
                    })
                    .sum::<u32>()
            })
            .sum()
    }

    /// The peers of `room` on `router`.
    fn peers_on(room: &Room, router: RouterId) -> Vec<PeerId> {
        room.peers
            .iter()
            .filter(|(_, p)| p.router == router)
            .map(|(id, _)| *id)
            .collect()
    }

    /// A producer is gone (closed by its peer, with its transport, or with its peer): the
    /// monitor hears it, its copies in the room's other routers are closed, and every consumer
    /// of it is closed, its owner told. The nodes close those consumers on their own; their
    /// later `consumerClosed` events then find nothing.
    fn producer_gone(
        &mut self,
        room_id: &RoomId,
        owner: PeerId,
        producer: ProducerId,
        copies: &BTreeMap<RouterId, bool>,
    ) {
        self.monitor(EventKind::ProducerClosed {
            room: room_id.0.clone(),
            peer_id: owner.to_string(),
            producer_id: producer.to_string(),
        });
        self.last_n_dirty.insert(room_id.clone());
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
        let copies: Vec<(NodeId, RouterId)> = copies
            .keys()
            .filter_map(|r| room.routers.get(r).map(|state| (state.node, *r)))
            .collect();
        for (id, consumer) in told {
            self.notify(
                vec![id],
                Notification::ConsumerClosed {
                    consumer_id: consumer,
                    producer_id: producer,
                },
            );
        }
        for (node, router) in copies {
            self.cleanup(
                node,
                Cleanup::CloseProducer(call::CloseProducer { router, producer }),
            );
        }
    }
}
