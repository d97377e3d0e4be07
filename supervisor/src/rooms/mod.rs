//! The rooms the supervisor knows: which node hosts each, its peers and what each peer owns
//! (transports, producers, consumers). Every client method lands here, is checked against
//! this directory, and is forwarded to the room's node; node events come back here and are
//! relayed to the peers concerned. This module holds the directory and the helpers; joining
//! and leaving, media requests and node events each have their own.

mod media;
mod membership;
mod node_events;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use ipc::messages::{ConsumerId, Json, MediaKind, NodeErrorCode, ProducerId, RoomId, TransportId};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::event_bus::EventBus;
use crate::metrics::Metrics;
use crate::node_link::{LinkError, NodeId, NodeLink};
use crate::node_pool::NodePool;
use crate::notification::Notification;
use crate::protocol::{ClientError, Direction, ErrorCode, Kind};

/// How long a join waits for a media node when none is ready.
const NODE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

pub use crate::protocol::PeerId;

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

/// Where a session's outgoing frames go (bounded: a client that does not read loses
/// notifications rather than growing the supervisor's memory).
pub type Outbox = mpsc::Sender<String>;

pub(crate) struct Room {
    pub(crate) node: NodeId,
    pub(crate) link: Arc<NodeLink>,
    pub(crate) worker: u32,
    rtp_capabilities: Value,
    pub(crate) created_at: Instant,
    pub(crate) peers: BTreeMap<PeerId, Peer>,
}

pub(crate) struct Peer {
    pub(crate) display_name: String,
    pub(crate) joined_at: Instant,
    outbox: Outbox,
    pub(crate) transports: HashMap<TransportId, Direction>,
    pub(crate) producers: HashMap<ProducerId, ProducerEntry>,
    pub(crate) consumers: HashMap<ConsumerId, ConsumerEntry>,
}

pub(crate) struct ProducerEntry {
    pub(crate) kind: Kind,
    transport: TransportId,
    /// MIME type of the first codec of its RTP parameters (what it sends).
    pub(crate) codec: String,
}

pub(crate) struct ConsumerEntry {
    pub(crate) producer: ProducerId,
    transport: TransportId,
    pub(crate) kind: MediaKind,
}

#[derive(Default)]
struct Directory {
    rooms: HashMap<RoomId, Room>,
    peer_room: HashMap<PeerId, RoomId>,
}

/// The rooms of the SFU.
pub struct Rooms {
    pool: Arc<NodePool>,
    limits: Limits,
    directory: Mutex<Directory>,
    /// One lock per room: joins and leaves of a room are ordered (it is created once and
    /// closed when really empty) while other rooms go on, even when this one waits for a node.
    room_locks: Mutex<HashMap<RoomId, Weak<tokio::sync::Mutex<()>>>>,
    shutting_down: AtomicBool,
    monitor: EventBus,
    metrics: Metrics,
}

fn send(outbox: &Outbox, frame: String) {
    if outbox.try_send(frame).is_err() {
        tracing::warn!("dropping a notification for a client that does not keep up");
    }
}

fn notify(peer: &Peer, notification: Notification) {
    send(&peer.outbox, notification.to_frame());
}

/// Sends one notification to many peers, serialized once: a join notifies every peer of the
/// room, so this is quadratic in the room's size and dominates the supervisor under load.
fn broadcast<'a>(peers: impl IntoIterator<Item = &'a Peer>, notification: Notification) {
    let frame = notification.to_frame();
    for peer in peers {
        send(&peer.outbox, frame.clone());
    }
}

fn link_error(error: LinkError) -> ClientError {
    match error {
        LinkError::Rpc(e) => ClientError::new(ErrorCode::NodeUnavailable, e.to_string()),
        LinkError::Mismatched { .. } => ClientError::new(ErrorCode::Internal, error.to_string()),
        LinkError::Node(e) => {
            let code = match e.code {
                NodeErrorCode::NotFound => ErrorCode::NotFound,
                NodeErrorCode::InvalidArgument => ErrorCode::InvalidArgument,
                NodeErrorCode::Media => ErrorCode::MediaError,
                NodeErrorCode::Internal => ErrorCode::Internal,
            };
            ClientError::new(code, e.message)
        }
    }
}

fn json_value(json: &Json) -> Result<Value, ClientError> {
    serde_json::from_str(&json.0)
        .map_err(|e| ClientError::new(ErrorCode::Internal, format!("node sent invalid JSON: {e}")))
}

fn not_joined() -> ClientError {
    ClientError::new(ErrorCode::NotJoined, "join a room first")
}

fn not_found(what: &str, id: impl std::fmt::Display) -> ClientError {
    ClientError::new(ErrorCode::NotFound, format!("no {what} {id}"))
}

impl Rooms {
    /// No rooms yet; new ones go on the nodes of `pool`. What happens is published on
    /// `monitor` and counted in `metrics`.
    pub fn new(pool: Arc<NodePool>, limits: Limits, monitor: EventBus, metrics: Metrics) -> Self {
        Self {
            pool,
            limits,
            directory: Mutex::new(Directory::default()),
            room_locks: Mutex::new(HashMap::new()),
            shutting_down: AtomicBool::new(false),
            monitor,
            metrics,
        }
    }

    /// The lock ordering the joins and leaves of `room`.
    fn room_lock(&self, room: &RoomId) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.room_locks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lock) = locks.get(room).and_then(Weak::upgrade) {
            return lock;
        }
        // Forget the locks of rooms nobody is joining or leaving any more.
        locks.retain(|_, lock| lock.strong_count() > 0);
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(room.clone(), Arc::downgrade(&lock));
        lock
    }

    fn directory(&self) -> MutexGuard<'_, Directory> {
        self.directory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The room of `peer`, its node, and what `f` reads from the peer's state.
    fn with_peer<T>(
        &self,
        peer: PeerId,
        f: impl FnOnce(&mut Peer) -> Result<T, ClientError>,
    ) -> Result<(RoomId, Arc<NodeLink>, T), ClientError> {
        let mut directory = self.directory();
        let room_id = directory
            .peer_room
            .get(&peer)
            .cloned()
            .ok_or_else(not_joined)?;
        let room = directory.rooms.get_mut(&room_id).ok_or_else(not_joined)?;
        let link = room.link.clone();
        let peer_state = room.peers.get_mut(&peer).ok_or_else(not_joined)?;
        let value = f(peer_state)?;
        Ok((room_id, link, value))
    }

    /// Whether `peer` is in a room.
    pub fn is_joined(&self, peer: PeerId) -> bool {
        self.directory().peer_room.contains_key(&peer)
    }

    /// Refuses new joins from now on.
    pub fn start_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Runs `f` on the rooms as they are now (under the directory's lock: keep it short,
    /// never a call to a node).
    pub(crate) fn inspect<T>(&self, f: impl FnOnce(&HashMap<RoomId, Room>) -> T) -> T {
        f(&self.directory().rooms)
    }

    /// Sends `notification` to every joined peer (used at shutdown).
    pub fn notify_all(&self, notification: Notification) {
        let directory = self.directory();
        broadcast(
            directory
                .rooms
                .values()
                .flat_map(|room| room.peers.values()),
            notification,
        );
    }
}

/// What to do to a producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProducerAction {
    /// Pause.
    Pause,
    /// Resume.
    Resume,
    /// Close.
    Close,
}

/// What to do to a consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumerAction {
    /// Pause.
    Pause,
    /// Resume.
    Resume,
    /// Close.
    Close,
    /// Prefer these layers.
    PreferredLayers {
        /// Spatial layer.
        spatial: u8,
        /// Temporal layer.
        temporal: Option<u8>,
    },
}
