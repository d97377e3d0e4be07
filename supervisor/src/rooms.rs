//! The rooms the supervisor knows: which node hosts each, its peers and what each peer owns
//! (transports, producers, consumers). Every client method lands here, is checked against
//! this directory, and is forwarded to the room's node; node events come back here and are
//! relayed to the peers concerned.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use ipc::calls as call;
use ipc::messages::{
    ConsumerId, Json, MediaKind, NodeErrorCode, NodeEvent, ProducerId, RoomId, TransportId,
};
use monitor_api::EventKind;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::event_bus::EventBus;
use crate::metrics::Metrics;
use crate::node_lifecycle::SpawnOrigin;
use crate::node_link::{LinkError, NodeId, NodeLink};
use crate::node_pool::NodePool;
use crate::notification::Notification;
use crate::placement::{place_room, NodeView, Placement, WorkerView};
use crate::protocol::{
    parse_id, validate_display_name, validate_room, ClientError, ConsumeArgs, Direction, ErrorCode,
    JoinArgs, Kind, ProduceArgs,
};

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

    /// Joins `peer` to a room, creating the room on the least-loaded worker if needed.
    pub async fn join(
        &self,
        peer: PeerId,
        outbox: Outbox,
        args: JoinArgs,
    ) -> Result<Value, ClientError> {
        validate_room(&args.room)?;
        let display_name = validate_display_name(&args.display_name)?;
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(ClientError::new(
                ErrorCode::ShuttingDown,
                "the SFU is stopping",
            ));
        }
        if let Some(expected) = &self.limits.join_token {
            let given = args.token.as_deref().unwrap_or("");
            // Constant time: the comparison must not tell how much of a guess was right.
            let same: bool =
                subtle::ConstantTimeEq::ct_eq(given.as_bytes(), expected.as_bytes()).into();
            if !same {
                tracing::warn!(room = %args.room, "join refused: wrong or missing token");
                return Err(ClientError::new(
                    ErrorCode::Unauthorized,
                    "wrong or missing token",
                ));
            }
        }
        let room_id = RoomId(args.room.clone());
        let room_lock = self.room_lock(&room_id);
        let _membership = room_lock.lock().await;
        if self.directory().peer_room.contains_key(&peer) {
            return Err(ClientError::new(
                ErrorCode::AlreadyJoined,
                "this connection is already in a room; leave first",
            ));
        }
        let exists = self.directory().rooms.contains_key(&room_id);
        if !exists {
            self.create_room(&room_id).await?;
        }
        let mut directory = self.directory();
        let lost = || {
            ClientError::new(
                ErrorCode::NodeUnavailable,
                "the room's node failed while joining; retry",
            )
        };
        let (node, worker) = directory
            .rooms
            .get(&room_id)
            .map(|r| (r.node, r.worker))
            .ok_or_else(lost)?;
        let worker_consumers: usize = directory
            .rooms
            .values()
            .filter(|r| r.node == node && r.worker == worker)
            .flat_map(|r| r.peers.values())
            .map(|p| p.consumers.len())
            .sum();
        let room = directory.rooms.get_mut(&room_id).ok_or_else(lost)?;
        if worker_consumers >= self.limits.max_consumers_per_worker as usize {
            return Err(ClientError::new(
                ErrorCode::Capacity,
                format!("the worker hosting room {room_id} is full"),
            ));
        }
        if room.peers.len() >= self.limits.max_peers_per_room {
            return Err(ClientError::new(
                ErrorCode::RoomFull,
                format!(
                    "room {} has {} peers, the limit",
                    room_id, self.limits.max_peers_per_room
                ),
            ));
        }
        let others: Vec<Value> = room
            .peers
            .iter()
            .map(|(id, p)| {
                json!({
                    "peerId": id,
                    "displayName": p.display_name,
                    "producers": p.producers.iter().map(|(pid, e)| json!({"producerId": pid, "kind": e.kind})).collect::<Vec<_>>(),
                })
            })
            .collect();
        broadcast(
            room.peers.values(),
            Notification::PeerJoined {
                peer_id: peer,
                display_name: display_name.clone(),
            },
        );
        room.peers.insert(
            peer,
            Peer {
                display_name: display_name.clone(),
                joined_at: Instant::now(),
                outbox,
                transports: HashMap::new(),
                producers: HashMap::new(),
                consumers: HashMap::new(),
            },
        );
        let answer = json!({
            "peerId": peer,
            "room": room_id.0,
            "routerRtpCapabilities": room.rtp_capabilities,
            "peers": others,
        });
        directory.peer_room.insert(peer, room_id.clone());
        tracing::info!(room = %room_id, %peer, name = %display_name, "peer joined");
        self.metrics.joined();
        self.monitor.publish(EventKind::PeerJoined {
            room: room_id.0,
            peer_id: peer.to_string(),
            display_name,
        });
        Ok(answer)
    }

    async fn create_room(&self, room_id: &RoomId) -> Result<(), ClientError> {
        // Right after a node died its replacement may still be starting: wait for it.
        let mut links = self.pool.ready_within(NODE_WAIT).await;
        let placement = {
            let directory = self.directory();
            let views: Vec<NodeView> = links.iter().map(|l| worker_views(&directory, l)).collect();
            place_room(
                &views,
                self.limits.max_consumers_per_worker,
                self.pool.running(),
                self.limits.max_nodes,
            )
        };
        let (node, worker) = match placement {
            Placement::Worker(node, worker) => (node, worker),
            Placement::SpawnNode => {
                tracing::info!(room = %room_id, "every worker is full: starting another node");
                let link = self.pool.spawn(SpawnOrigin::Placement).await.map_err(|e| {
                    ClientError::new(ErrorCode::NodeUnavailable, format!("cannot start a media node: {e:#}"))
                })?;
                let node = link.id;
                links.push(link);
                (node, 0)
            }
            Placement::Full => {
                return Err(ClientError::new(
                    ErrorCode::Capacity,
                    format!(
                        "every media worker is full ({} consumers each) and the pool is at --max-nodes {}",
                        self.limits.max_consumers_per_worker, self.limits.max_nodes
                    ),
                ))
            }
        };
        let link = links
            .into_iter()
            .find(|l| l.id == node)
            .ok_or_else(|| ClientError::new(ErrorCode::Internal, "placed on an unknown node"))?;
        let call::RouterCreated { rtp_capabilities } = link
            .call(call::CreateRouter {
                room: room_id.clone(),
                worker,
            })
            .await
            .map_err(link_error)?;
        let rtp_capabilities = json_value(&rtp_capabilities)?;
        tracing::info!(room = %room_id, %node, worker, "room created");
        self.directory().rooms.insert(
            room_id.clone(),
            Room {
                node,
                link,
                worker,
                rtp_capabilities,
                created_at: Instant::now(),
                peers: BTreeMap::new(),
            },
        );
        self.monitor.publish(EventKind::RoomCreated {
            room: room_id.0.clone(),
            node: node.to_string(),
            worker,
        });
        Ok(())
    }

    /// Takes `peer` out of its room: closes its transports (and so its producers and
    /// consumers), tells the others, and closes the room when it is empty.
    pub async fn leave(&self, peer: PeerId) -> Result<Value, ClientError> {
        // A connection's requests come one at a time, so its room cannot change meanwhile.
        let room_id = self
            .directory()
            .peer_room
            .get(&peer)
            .cloned()
            .ok_or_else(not_joined)?;
        let room_lock = self.room_lock(&room_id);
        let _membership = room_lock.lock().await;
        let (room_id, link, transports, empty) = {
            let mut directory = self.directory();
            let room_id = directory.peer_room.remove(&peer).ok_or_else(not_joined)?;
            let Some(room) = directory.rooms.get_mut(&room_id) else {
                return Ok(json!({}));
            };
            let Some(gone) = room.peers.remove(&peer) else {
                return Ok(json!({}));
            };
            broadcast(
                room.peers.values(),
                Notification::PeerLeft { peer_id: peer },
            );
            let empty = room.peers.is_empty();
            let link = room.link.clone();
            if empty {
                directory.rooms.remove(&room_id);
            }
            (
                room_id,
                link,
                gone.transports.into_keys().collect::<Vec<_>>(),
                empty,
            )
        };
        tracing::info!(room = %room_id, %peer, "peer left");
        self.monitor.publish(EventKind::PeerLeft {
            room: room_id.0.clone(),
            peer_id: peer.to_string(),
        });
        if empty {
            self.monitor.publish(EventKind::RoomClosed {
                room: room_id.0.clone(),
                reason: "its last peer left".into(),
            });
            // Closing the router closes every transport in it.
            if let Err(e) = link
                .call(call::CloseRouter {
                    room: room_id.clone(),
                })
                .await
            {
                tracing::warn!(room = %room_id, "closing the room on its node failed: {e}");
            } else {
                tracing::info!(room = %room_id, "room closed");
            }
        } else {
            for transport in transports {
                let request = call::CloseTransport {
                    room: room_id.clone(),
                    transport,
                };
                if let Err(e) = link.call(request).await {
                    tracing::warn!(room = %room_id, %transport, "closing a transport failed: {e}");
                }
            }
        }
        Ok(json!({}))
    }

    /// The router RTP capabilities of the peer's room.
    pub fn router_rtp_capabilities(&self, peer: PeerId) -> Result<Value, ClientError> {
        let directory = self.directory();
        let room_id = directory.peer_room.get(&peer).ok_or_else(not_joined)?;
        let room = directory.rooms.get(room_id).ok_or_else(not_joined)?;
        Ok(json!({"routerRtpCapabilities": room.rtp_capabilities}))
    }

    /// Creates a WebRTC transport for `peer`.
    pub async fn create_transport(
        &self,
        peer: PeerId,
        direction: Direction,
    ) -> Result<Value, ClientError> {
        let (room, link, ()) = self.with_peer(peer, |_| Ok(()))?;
        let call::TransportCreated {
            transport,
            ice_parameters,
            ice_candidates,
            dtls_parameters,
        } = link
            .call(call::CreateWebRtcTransport { room: room.clone() })
            .await
            .map_err(link_error)?;
        let answer = json!({
            "transportId": transport,
            "iceParameters": json_value(&ice_parameters)?,
            "iceCandidates": json_value(&ice_candidates)?,
            "dtlsParameters": json_value(&dtls_parameters)?,
        });
        let recorded = self.with_peer(peer, |p| {
            p.transports.insert(transport, direction);
            Ok(())
        });
        if recorded.is_err() {
            // The peer left meanwhile: do not leak the transport.
            let _ = link.call(call::CloseTransport { room, transport }).await;
            return Err(not_joined());
        }
        Ok(answer)
    }

    fn own_transport(
        p: &Peer,
        id: TransportId,
        want: Option<Direction>,
    ) -> Result<(), ClientError> {
        match p.transports.get(&id) {
            None => Err(not_found("transport", id)),
            Some(d) if want.is_some_and(|w| w != *d) => Err(ClientError::new(
                ErrorCode::InvalidArgument,
                format!("transport {id} is a {d:?} transport"),
            )),
            Some(_) => Ok(()),
        }
    }

    /// Gives the transport the client's DTLS parameters.
    pub async fn connect_transport(
        &self,
        peer: PeerId,
        transport: &str,
        dtls_parameters: serde_json::Map<String, Value>,
    ) -> Result<Value, ClientError> {
        let transport: TransportId = parse_id("transport", transport)?;
        let (room, link, ()) = self.with_peer(peer, |p| Self::own_transport(p, transport, None))?;
        let dtls_parameters = Json(Value::Object(dtls_parameters).to_string());
        link.call(call::ConnectWebRtcTransport {
            room,
            transport,
            dtls_parameters,
        })
        .await
        .map_err(link_error)?;
        Ok(json!({}))
    }

    /// New ICE credentials for a transport.
    pub async fn restart_ice(&self, peer: PeerId, transport: &str) -> Result<Value, ClientError> {
        let transport: TransportId = parse_id("transport", transport)?;
        let (room, link, ()) = self.with_peer(peer, |p| Self::own_transport(p, transport, None))?;
        let call::IceRestarted { ice_parameters } = link
            .call(call::RestartIce { room, transport })
            .await
            .map_err(link_error)?;
        Ok(json!({"iceParameters": json_value(&ice_parameters)?}))
    }

    /// Closes one of the peer's transports.
    pub async fn close_transport(
        &self,
        peer: PeerId,
        transport: &str,
    ) -> Result<Value, ClientError> {
        let transport: TransportId = parse_id("transport", transport)?;
        let (room, link, closed) = self.with_peer(peer, |p| {
            Self::own_transport(p, transport, None)?;
            p.transports.remove(&transport);
            let closed: Vec<ProducerId> = p
                .producers
                .iter()
                .filter(|(_, e)| e.transport == transport)
                .map(|(id, _)| *id)
                .collect();
            for id in &closed {
                p.producers.remove(id);
            }
            p.consumers.retain(|_, e| e.transport != transport);
            Ok(closed)
        })?;
        for producer in closed {
            self.producer_closed(&room, peer, producer);
        }
        link.call(call::CloseTransport { room, transport })
            .await
            .map_err(link_error)?;
        Ok(json!({}))
    }

    /// Creates a producer and tells the other peers.
    pub async fn produce(&self, peer: PeerId, args: ProduceArgs) -> Result<Value, ClientError> {
        let transport: TransportId = parse_id("transport", &args.transport_id)?;
        let max = self.limits.max_producers_per_peer;
        let (room, link, ()) = self.with_peer(peer, |p| {
            Self::own_transport(p, transport, Some(Direction::Send))?;
            if p.producers.len() >= max {
                return Err(ClientError::new(
                    ErrorCode::TooManyProducers,
                    format!("a peer may have at most {max} producers"),
                ));
            }
            Ok(())
        })?;
        let kind = match args.kind {
            Kind::Audio => MediaKind::Audio,
            Kind::Video => MediaKind::Video,
        };
        let codec = args
            .rtp_parameters
            .get("codecs")
            .and_then(|codecs| codecs.get(0)?.get("mimeType")?.as_str())
            .unwrap_or_default()
            .to_string();
        let rtp_parameters = Json(Value::Object(args.rtp_parameters).to_string());
        let call::Produced { producer } = link
            .call(call::Produce {
                room: room.clone(),
                transport,
                kind,
                rtp_parameters,
            })
            .await
            .map_err(link_error)?;
        let mut directory = self.directory();
        let Some(r) = directory.rooms.get_mut(&room) else {
            return Err(not_joined());
        };
        let Some(p) = r.peers.get_mut(&peer) else {
            return Err(not_joined());
        };
        p.producers.insert(
            producer,
            ProducerEntry {
                kind: args.kind,
                transport,
                codec,
            },
        );
        self.monitor.publish(EventKind::ProducerAdded {
            room: room.0.clone(),
            peer_id: peer.to_string(),
            producer_id: producer.to_string(),
            kind: kind.as_str().into(),
        });
        broadcast(
            r.peers
                .iter()
                .filter(|(id, _)| **id != peer)
                .map(|(_, p)| p),
            Notification::NewProducer {
                peer_id: peer,
                producer_id: producer,
                kind: args.kind,
            },
        );
        Ok(json!({"producerId": producer}))
    }

    /// Creates a paused consumer of another peer's producer.
    pub async fn consume(&self, peer: PeerId, args: ConsumeArgs) -> Result<Value, ClientError> {
        let transport: TransportId = parse_id("transport", &args.transport_id)?;
        let producer: ProducerId = parse_id("producer", &args.producer_id)?;
        let (room, link, ()) = self.with_peer(peer, |p| {
            Self::own_transport(p, transport, Some(Direction::Recv))
        })?;
        {
            let directory = self.directory();
            let owner = directory.rooms.get(&room).and_then(|r| {
                r.peers
                    .iter()
                    .find(|(_, p)| p.producers.contains_key(&producer))
                    .map(|(id, _)| *id)
            });
            match owner {
                None => return Err(not_found("producer", producer)),
                Some(owner) if owner == peer => {
                    return Err(ClientError::new(
                        ErrorCode::InvalidArgument,
                        "a peer does not consume its own producer",
                    ))
                }
                Some(_) => {}
            }
        }
        let rtp_capabilities = Json(Value::Object(args.rtp_capabilities).to_string());
        let call::Consumed {
            consumer,
            kind,
            rtp_parameters,
            consumer_type,
            producer_paused,
        } = link
            .call(call::Consume {
                room: room.clone(),
                transport,
                producer,
                rtp_capabilities,
            })
            .await
            .map_err(link_error)?;
        let answer = json!({
            "consumerId": consumer,
            "producerId": producer,
            "kind": kind.as_str(),
            "rtpParameters": json_value(&rtp_parameters)?,
            "type": consumer_type,
            "producerPaused": producer_paused,
        });
        let recorded = self.with_peer(peer, |p| {
            let entry = ConsumerEntry {
                producer,
                transport,
                kind,
            };
            p.consumers.insert(consumer, entry);
            Ok(())
        });
        if recorded.is_err() {
            let _ = link.call(call::CloseConsumer { room, consumer }).await;
            return Err(not_joined());
        }
        Ok(answer)
    }

    /// Pauses, resumes or closes one of the peer's producers.
    pub async fn producer_action(
        &self,
        peer: PeerId,
        producer: &str,
        action: ProducerAction,
    ) -> Result<Value, ClientError> {
        let producer: ProducerId = parse_id("producer", producer)?;
        let (room, link, ()) = self.with_peer(peer, |p| {
            if !p.producers.contains_key(&producer) {
                return Err(not_found("producer", producer));
            }
            if action == ProducerAction::Close {
                p.producers.remove(&producer);
            }
            Ok(())
        })?;
        if action == ProducerAction::Close {
            self.producer_closed(&room, peer, producer);
        }
        match action {
            ProducerAction::Pause => link.call(call::PauseProducer { room, producer }).await,
            ProducerAction::Resume => link.call(call::ResumeProducer { room, producer }).await,
            ProducerAction::Close => link.call(call::CloseProducer { room, producer }).await,
        }
        .map_err(link_error)?;
        Ok(json!({}))
    }

    /// Pauses, resumes or closes one of the peer's consumers, or sets its preferred layers.
    pub async fn consumer_action(
        &self,
        peer: PeerId,
        consumer: &str,
        action: ConsumerAction,
    ) -> Result<Value, ClientError> {
        let consumer: ConsumerId = parse_id("consumer", consumer)?;
        let (room, link, ()) = self.with_peer(peer, |p| {
            if !p.consumers.contains_key(&consumer) {
                return Err(not_found("consumer", consumer));
            }
            if action == ConsumerAction::Close {
                p.consumers.remove(&consumer);
            }
            Ok(())
        })?;
        match action {
            ConsumerAction::Pause => link.call(call::PauseConsumer { room, consumer }).await,
            ConsumerAction::Resume => link.call(call::ResumeConsumer { room, consumer }).await,
            ConsumerAction::Close => link.call(call::CloseConsumer { room, consumer }).await,
            ConsumerAction::PreferredLayers { spatial, temporal } => {
                link.call(call::SetConsumerPreferredLayers {
                    room,
                    consumer,
                    spatial_layer: spatial,
                    temporal_layer: temporal,
                })
                .await
            }
        }
        .map_err(link_error)?;
        Ok(json!({}))
    }

    /// Relays what a node reported to the peers it concerns.
    pub fn on_node_event(&self, node: NodeId, event: NodeEvent) {
        let mut directory = self.directory();
        let room_id = match &event {
            NodeEvent::ConsumerClosed { room, .. }
            | NodeEvent::ConsumerPaused { room, .. }
            | NodeEvent::ConsumerResumed { room, .. }
            | NodeEvent::ConsumerScore { room, .. }
            | NodeEvent::ConsumerLayersChanged { room, .. }
            | NodeEvent::ProducerScore { room, .. }
            | NodeEvent::ActiveSpeaker { room, .. } => room.clone(),
            NodeEvent::WorkerDied { worker, message } => {
                tracing::error!(%node, worker, "mediasoup worker died: {message}");
                self.monitor.publish(EventKind::WorkerDied {
                    node: node.to_string(),
                    worker: *worker,
                    message: message.clone(),
                });
                return;
            }
        };
        let Some(room) = directory.rooms.get_mut(&room_id) else {
            return;
        };
        if room.node != node {
            return;
        }
        match event {
            NodeEvent::ConsumerClosed {
                consumer, producer, ..
            } => {
                if let Some(p) = consumer_owner(room, consumer) {
                    p.consumers.remove(&consumer);
                    notify(
                        p,
                        Notification::ConsumerClosed {
                            consumer_id: consumer,
                            producer_id: producer,
                        },
                    );
                }
            }
            NodeEvent::ConsumerPaused { consumer, .. } => {
                if let Some(p) = consumer_owner(room, consumer) {
                    notify(
                        p,
                        Notification::ConsumerPaused {
                            consumer_id: consumer,
                        },
                    );
                }
            }
            NodeEvent::ConsumerResumed { consumer, .. } => {
                if let Some(p) = consumer_owner(room, consumer) {
                    notify(
                        p,
                        Notification::ConsumerResumed {
                            consumer_id: consumer,
                        },
                    );
                }
            }
            NodeEvent::ConsumerScore {
                consumer, score, ..
            } => {
                if let (Some(p), Ok(score)) = (consumer_owner(room, consumer), json_value(&score)) {
                    notify(
                        p,
                        Notification::ConsumerScore {
                            consumer_id: consumer,
                            score,
                        },
                    );
                }
            }
            NodeEvent::ConsumerLayersChanged {
                consumer,
                spatial_layer,
                temporal_layer,
                ..
            } => {
                if let Some(p) = consumer_owner(room, consumer) {
                    notify(
                        p,
                        Notification::ConsumerLayersChanged {
                            consumer_id: consumer,
                            spatial_layer,
                            temporal_layer,
                        },
                    );
                }
            }
            NodeEvent::ProducerScore {
                producer, score, ..
            } => {
                let owner = room
                    .peers
                    .values()
                    .find(|p| p.producers.contains_key(&producer));
                if let (Some(p), Ok(score)) = (owner, json_value(&score)) {
                    notify(
                        p,
                        Notification::ProducerScore {
                            producer_id: producer,
                            score,
                        },
                    );
                }
            }
            NodeEvent::ActiveSpeaker { producer, .. } => {
                let owner = room
                    .peers
                    .iter()
                    .find(|(_, p)| p.producers.contains_key(&producer))
                    .map(|(id, _)| *id);
                if let Some(owner) = owner {
                    broadcast(
                        room.peers.values(),
                        Notification::ActiveSpeaker {
                            peer_id: owner,
                            producer_id: producer,
                        },
                    );
                }
            }
            NodeEvent::WorkerDied { .. } => {}
        }
    }

    /// A node is gone: every room on it is lost. Its peers are told (`roomMoved`) and are no
    /// longer joined; re-joining re-creates the room on a healthy node.
    pub fn on_node_lost(&self, node: NodeId, reason: &str) {
        let mut directory = self.directory();
        let lost: Vec<RoomId> = directory
            .rooms
            .iter()
            .filter(|(_, r)| r.node == node)
            .map(|(id, _)| id.clone())
            .collect();
        for room_id in lost {
            if let Some(room) = directory.rooms.remove(&room_id) {
                tracing::warn!(room = %room_id, %node, peers = room.peers.len(), "room lost with its node");
                for (peer, p) in &room.peers {
                    directory.peer_room.remove(peer);
                    notify(
                        p,
                        Notification::RoomMoved {
                            room: room_id.0.clone(),
                            reason: format!("media node failed: {reason}"),
                        },
                    );
                    self.monitor.publish(EventKind::PeerLeft {
                        room: room_id.0.clone(),
                        peer_id: peer.to_string(),
                    });
                }
                self.monitor.publish(EventKind::RoomClosed {
                    room: room_id.0.clone(),
                    reason: format!("its node {node} was lost: {reason}"),
                });
            }
        }
    }

    fn producer_closed(&self, room: &RoomId, peer: PeerId, producer: ProducerId) {
        self.monitor.publish(EventKind::ProducerClosed {
            room: room.0.clone(),
            peer_id: peer.to_string(),
            producer_id: producer.to_string(),
        });
    }

    /// Runs `f` on the rooms as they are now (under the directory's lock: keep it short,
    /// never a call to a node).
    pub(crate) fn inspect<T>(&self, f: impl FnOnce(&HashMap<RoomId, Room>) -> T) -> T {
        f(&self.directory().rooms)
    }

    /// Sends `name` to every joined peer (used at shutdown).
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

/// What placement sees of `link`'s workers: consumers and rooms as this directory counts
/// them (exact and immediate, unlike the periodic load reports).
fn worker_views(directory: &Directory, link: &NodeLink) -> NodeView {
    let on = |index: u32| {
        directory
            .rooms
            .values()
            .filter(move |r| r.node == link.id && r.worker == index)
    };
    NodeView {
        id: link.id,
        workers: (0..link.hello.workers)
            .map(|index| WorkerView {
                index,
                consumers: on(index)
                    .flat_map(|r| r.peers.values())
                    .map(|p| p.consumers.len() as u32)
                    .sum(),
                rooms: on(index).count() as u32,
            })
            .collect(),
    }
}

fn consumer_owner(room: &mut Room, consumer: ConsumerId) -> Option<&mut Peer> {
    room.peers
        .values_mut()
        .find(|p| p.consumers.contains_key(&consumer))
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
