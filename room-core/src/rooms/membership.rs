//! Joining and leaving, decided: admission (validation, limits, the rights a token grants), which of the room's
//! routers a peer goes to or whether it needs a new one, announcing peers, and closing a
//! router with its last peer (and the room with its last router).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use ipc::calls as call;
use ipc::messages::{Json, RoomId, RouterId};
use monitor_api::EventKind;

use super::{
    not_joined, Cleanup, Credentials, Link, LinkOrder, MetricChange, Output, Peer, Room, RoomCore,
    RouterState, Target,
};
use crate::placement::{place_router, NodeView, Placement, RouterAsk, WorkerView};
use crate::NodeId;
use signaling_api::{
    validate_display_name, validate_room, ClientError, ClientErrorCode, JoinArgs, Joined, PeerId,
};

/// Producers a peer is assumed to add (audio and video) while it has not produced yet.
pub const ASSUMED_PRODUCERS: u32 = 2;

/// How long after joining a peer without producers still counts as a publisher to come.
pub const PUBLISH_GRACE: Duration = Duration::from_secs(5);

/// What a join needs next.
#[derive(Debug, PartialEq)]
pub enum JoinStep {
    /// The peer is in: answer it.
    Joined(Joined),
    /// No router of the room can take the peer (or the room does not exist): place a new one
    /// ([`RoomCore::place_router`]), create it, report it ([`RoomCore::handle_router_created`]),
    /// carry out the links and pipes that follow, and join again.
    NeedsRouter,
}

impl RoomCore {
    /// `peer` asks to join with `credentials` (its token checked by the caller); admitted, it is in
    /// the room on one of its routers and the others are told.
    pub(crate) fn handle_join(
        &mut self,
        peer: PeerId,
        args: &JoinArgs,
        credentials: impl Into<Credentials>,
        now: Instant,
    ) -> Result<JoinStep, ClientError> {
        let mut credentials = credentials.into();
        // A viewer that said so publishes nothing, and is reserved no room for it.
        if args.watch_only {
            credentials.rights.publish = false;
        }
        validate_room(&args.room)?;
        let display_name = validate_display_name(&args.display_name)?;
        if self.shutting_down {
            return Err(ClientError::new(
                ClientErrorCode::ShuttingDown,
                "the SFU is stopping",
            ));
        }
        if self.peer_room.contains_key(&peer) {
            return Err(ClientError::new(
                ClientErrorCode::AlreadyJoined,
                "this connection is already in a room; leave first",
            ));
        }
        let room_id = RoomId(args.room.clone());
        let Some(room) = self.rooms.get(&room_id) else {
            return Ok(JoinStep::NeedsRouter);
        };
        if room.peers.len() >= self.limits.max_peers_per_room {
            return Err(ClientError::new(
                ClientErrorCode::RoomFull,
                format!(
                    "room {room_id} has {} peers, the limit",
                    self.limits.max_peers_per_room
                ),
            ));
        }
        let publishes = credentials.rights.publish;
        let Some(router) = self.router_for_newcomer(room, now, publishes) else {
            return Ok(JoinStep::NeedsRouter);
        };
        let room = self.rooms.get(&room_id).ok_or_else(not_joined)?;
        let listed = self.listed_on_join(room.peers.len(), publishes);
        let watching = room.watching_told();
        // What can be consumed on the newcomer's router now; the rest is announced
        // (`newProducer`) as its pipe completes.
        let peers = Self::peer_infos(room, peer, router);
        let router_rtp_capabilities = serde_json::Value::clone(&room.rtp_capabilities);
        let active_speaker = room.speakers.first().copied();
        let resume_token = self.issue_resume_token(peer);
        let answer = Joined {
            peer_id: peer,
            room: room_id.0.clone(),
            router_rtp_capabilities,
            peers,
            watching,
            active_speaker,
            resume_token,
            // The driver fills these: every host in a cluster, the TURN servers.
            hosts: Vec::new(),
            ice_servers: Vec::new(),
        };
        let seq = self.next_announce_seq();
        let room = self.rooms.get_mut(&room_id).ok_or_else(not_joined)?;
        room.peers.insert(
            peer,
            Peer {
                router,
                display_name: display_name.clone(),
                rights: credentials.rights,
                identity: credentials.identity,
                token_expires_at: credentials.expires_at,
                via: credentials.via,
                joined_at: now,
                detached_until: None,
                epoch: 0,
                transports: HashMap::new(),
                moved_from: HashMap::new(),
                producers: HashMap::new(),
                consumers: HashMap::new(),
                data_producers: HashMap::new(),
                data_consumers: HashMap::new(),
                view: super::last_n::VideoView::new(args.last_n, Vec::new(), None),
                listed,
                announce_seq: seq,
            },
        );
        self.peer_room.insert(peer, room_id.clone());
        if args.last_n.is_some() {
            self.last_n_dirty.insert(room_id.clone());
        }
        self.announce_join(&room_id, peer, &display_name, seq);
        tracing::info!(room = %room_id, %peer, %router, name = %display_name, "peer joined");
        self.outputs.push_back(Output::Metric(MetricChange::Joined));
        self.monitor(EventKind::PeerJoined {
            room: room_id.0,
            peer_id: peer.to_string(),
            display_name,
        });
        Ok(JoinStep::Joined(answer))
    }

    /// Producers a newcomer to `room` will consume: every peer's, counting a recent peer
    /// that has not produced yet, and may, as [`ASSUMED_PRODUCERS`] (a viewer: none).
    fn expected_producers(room: &Room, now: Instant) -> u32 {
        room.peers
            .values()
            .map(|p| {
                let recent = now.saturating_duration_since(p.joined_at) < PUBLISH_GRACE;
                match p.producers.len() as u32 {
                    0 if recent && p.rights.publish => ASSUMED_PRODUCERS,
                    n => n,
                }
            })
            .sum()
    }

    /// Producers a newcomer that `publishes` (or not: a viewer) is assumed to add.
    fn assumed(publishes: bool) -> u32 {
        if publishes {
            ASSUMED_PRODUCERS
        } else {
            0
        }
    }

    /// Consumers a newcomer adds on the worker of a router with `mates` peers: its own, of
    /// every producer, and its mates' of its own producers (none for a viewer).
    fn newcomer_load(room: &Room, mates: u32, now: Instant, publishes: bool) -> u32 {
        Self::expected_producers(room, now) + mates * Self::assumed(publishes)
    }

    /// The ready router of `room` whose worker keeps the most headroom once the newcomer's
    /// consumers are counted there; a router without peers was opened for this join and
    /// takes it.
    pub(super) fn router_for_newcomer(
        &self,
        room: &Room,
        now: Instant,
        publishes: bool,
    ) -> Option<RouterId> {
        let cap = self.limits.max_consumers_per_worker;
        room.routers
            .iter()
            .filter(|(_, r)| r.ready && !self.draining.contains_key(&r.node))
            .filter_map(|(id, r)| {
                let mates = Self::peers_on(room, *id).len() as u32;
                let load = self.worker_load(r.node, r.worker);
                let after = load + Self::newcomer_load(room, mates, now, publishes);
                let fits = mates == 0 || (load < cap && after <= cap);
                fits.then_some((
                    i64::from(cap) - i64::from(after),
                    std::cmp::Reverse(r.seq),
                    *id,
                ))
            })
            .max()
            .map(|(_, _, id)| id)
    }

    /// Where a new router of `room` goes (a new room's first, or one more for a room whose
    /// routers are full), given the ready nodes (id and worker count) and how many nodes run
    /// or start: a worker of the room's node first, then the least loaded, then a new node.
    #[cfg(test)]
    pub(crate) fn place_router(
        &self,
        room: &RoomId,
        ready: &[(NodeId, u32)],
        running: u32,
        now: Instant,
    ) -> Placement {
        self.place_router_spilling(room, ready, &[], running, now)
    }

    /// [`Self::place_router`], with other hosts' nodes (`remote`, each worker's consumers as
    /// its host reports them) to spill to when this host is full.
    pub(crate) fn place_router_spilling(
        &self,
        room: &RoomId,
        ready: &[(NodeId, u32)],
        remote: &[(NodeId, Vec<u32>)],
        running: u32,
        now: Instant,
    ) -> Placement {
        let existing = self.rooms.get(room);
        let hosts = |node: NodeId, worker: u32| {
            existing.is_some_and(|r| {
                r.routers
                    .values()
                    .any(|s| s.node == node && s.worker == worker)
            })
        };
        let worker = |id: NodeId, index: u32, reported: u32| WorkerView {
            index,
            // The host's report includes this host's routers there, but lags: the larger.
            consumers: self.worker_load(id, index).max(reported),
            routers: self
                .rooms
                .values()
                .flat_map(|r| r.routers.values())
                .filter(|s| s.node == id && s.worker == index)
                .count() as u32,
            hosts_room: hosts(id, index),
        };
        // Nothing new goes to a node being drained; it does not count against --max-nodes
        // either, so that its replacement may start (a rolling upgrade).
        let open = |id: &NodeId| !self.draining.contains_key(id);
        let drained = ready.iter().filter(|(id, _)| !open(id)).count() as u32;
        let running = match self.leaving {
            true => self.limits.max_nodes,
            false => running.saturating_sub(drained),
        };
        let views: Vec<NodeView> = ready
            .iter()
            .filter(|(id, _)| open(id))
            .map(|&(id, workers)| NodeView {
                id,
                workers: (0..workers).map(|index| worker(id, index, 0)).collect(),
                remote: false,
            })
            .chain(
                remote
                    .iter()
                    .filter(|(id, _)| open(id))
                    .map(|(id, consumers)| NodeView {
                        id: *id,
                        workers: consumers
                            .iter()
                            .enumerate()
                            .map(|(index, &reported)| worker(*id, index as u32, reported))
                            .collect(),
                        remote: true,
                    }),
            )
            .collect();
        // Its first peer's consumers, and a pipe consumer of each of its producers per
        // router of the room.
        let publishes = self.first_waiting_publishes(room);
        let needed = existing.map_or(0, |r| {
            Self::expected_producers(r, now) + Self::assumed(publishes) * r.routers.len() as u32
        });
        let prefer = existing
            .and_then(|r| {
                r.routers
                    .values()
                    .filter(|s| open(&s.node))
                    .min_by_key(|s| s.seq)
            })
            .map(|s| s.node);
        place_router(
            &views,
            RouterAsk {
                needed,
                prefer,
                max_consumers: self.limits.max_consumers_per_worker,
                nodes_running: running,
                max_nodes: self.limits.max_nodes,
            },
        )
    }

    /// A router of `room` exists on `worker` of `node` (the room too, if it is its first).
    /// Links to the room's routers on other nodes are ordered; once they are up, every
    /// producer of the room is piped to it and peers may join it.
    pub(crate) fn handle_router_created(
        &mut self,
        room_id: RoomId,
        router: RouterId,
        at: (NodeId, u32),
        rtp_capabilities: &Json,
        now: Instant,
    ) -> Result<(), ClientError> {
        let (node, worker) = at;
        let rtp_capabilities = match self.router_caps(rtp_capabilities) {
            Ok(caps) => caps,
            Err(e) => {
                self.cleanup(node, Cleanup::CloseRouter(call::CloseRouter { router }));
                return Err(e);
            }
        };
        if !self.rooms.contains_key(&room_id) {
            tracing::info!(room = %room_id, %node, worker, "room created");
            self.monitor(EventKind::RoomCreated {
                room: room_id.0.clone(),
                node: node.to_string(),
                worker,
            });
            self.rooms.insert(
                room_id.clone(),
                Room {
                    routers: BTreeMap::new(),
                    links: BTreeMap::new(),
                    rtp_capabilities,
                    created_at: now,
                    peers: BTreeMap::new(),
                    speakers: Vec::new(),
                    announce: Default::default(),
                    consumer_owners: Default::default(),
                },
            );
        } else {
            tracing::info!(room = %room_id, %node, worker, %router, "room spans one more worker");
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return Err(not_joined());
        };
        let new = Target { node, router };
        let mut orders = Vec::new();
        for (other, state) in &room.routers {
            if state.node != node {
                let other = Target {
                    node: state.node,
                    router: *other,
                };
                let (low, high) = if other.router < router {
                    (other, new)
                } else {
                    (new, other)
                };
                room.links.insert((low.router, high.router), Link::Pending);
                orders.push(LinkOrder { low, high });
            }
        }
        room.routers.insert(
            router,
            RouterState {
                node,
                worker,
                seq,
                ready: false,
            },
        );
        self.router_room.insert(router, room_id.clone());
        if orders.is_empty() {
            self.router_ready(&room_id, router);
        }
        self.outputs.extend(orders.into_iter().map(Output::Link));
        Ok(())
    }

    /// `peer` leaves (it asked, or its connection dropped): what it produced is closed for
    /// everyone, the others are told, its router closes if it was its last peer, and the
    /// room with its last peer.
    pub(crate) fn handle_leave(&mut self, peer: PeerId) -> Result<(), ClientError> {
        let room_id = self.peer_room.remove(&peer).ok_or_else(not_joined)?;
        self.resumption.forget(peer);
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return Ok(());
        };
        let Some(gone) = room.peers.remove(&peer) else {
            return Ok(());
        };
        // Its router, and those it left transports on in a drain.
        let mut routers: BTreeMap<RouterId, Vec<ipc::messages::TransportId>> = BTreeMap::new();
        for transport in gone.transports.keys() {
            (routers.entry(gone.router_of(*transport)).or_default()).push(*transport);
        }
        routers.entry(gone.router).or_default();
        // Told with the tick's other joins and leaves; `consumerClosed` for what it sent, now.
        self.announce_leave(&room_id, peer, gone.listed);
        for (producer, entry) in &gone.producers {
            self.producer_gone(&room_id, peer, *producer, &entry.copies);
        }
        self.data_producers_gone(&room_id, peer, &gone.data_producers);
        tracing::info!(room = %room_id, %peer, "peer left");
        self.monitor(EventKind::PeerLeft {
            room: room_id.0.clone(),
            peer_id: peer.to_string(),
        });
        for (router, transports) in routers {
            let Some(room) = self.rooms.get(&room_id) else {
                break;
            };
            let Some(node) = room.routers.get(&router).map(|r| r.node) else {
                continue;
            };
            if Self::router_unused(room, router) {
                self.close_router(&room_id, router);
                continue;
            }
            for transport in transports {
                let close = call::CloseTransport { router, transport };
                self.cleanup(node, Cleanup::CloseTransport(close));
            }
        }
        self.drain_progress();
        if self.rooms.get(&room_id).is_some_and(|r| r.peers.is_empty()) {
            self.close_room(&room_id, "its last peer left");
        }
        Ok(())
    }

    /// Whether no peer of `room` is on `router` (as its router, or with transports it left
    /// there in a drain).
    pub(super) fn router_unused(room: &Room, router: RouterId) -> bool {
        !room
            .peers
            .values()
            .any(|p| p.router == router || p.moved_from.values().any(|r| *r == router))
    }

    /// Closes a router of a room (which closes everything in it) and the other sides of its
    /// links; producers piped to it forget that copy.
    pub(super) fn close_router(&mut self, room_id: &RoomId, router: RouterId) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let Some(state) = room.routers.remove(&router) else {
            return;
        };
        self.router_room.remove(&router);
        let mut cleanups = vec![(
            state.node,
            Cleanup::CloseRouter(call::CloseRouter { router }),
        )];
        let links: Vec<((RouterId, RouterId), Link)> = room
            .links
            .iter()
            .filter(|((low, high), _)| *low == router || *high == router)
            .map(|(k, l)| (*k, *l))
            .collect();
        for ((low, high), link) in links {
            room.links.remove(&(low, high));
            let (other, other_transport) = match link {
                Link::Ready(_, ht) if low == router => (high, ht),
                Link::Ready(lt, _) => (low, lt),
                Link::Pending => continue,
            };
            if let Some(o) = room.routers.get(&other) {
                let close = call::CloseTransport {
                    router: other,
                    transport: other_transport,
                };
                cleanups.push((o.node, Cleanup::CloseTransport(close)));
            }
        }
        for peer in room.peers.values_mut() {
            for entry in peer.producers.values_mut() {
                entry.copies.remove(&router);
            }
            for entry in peer.data_producers.values_mut() {
                entry.copies.remove(&router);
            }
        }
        for (node, cleanup) in cleanups {
            self.cleanup(node, cleanup);
        }
    }

    /// Forgets a room without peers, closing the routers it still has.
    pub(super) fn close_room(&mut self, room_id: &RoomId, reason: &str) {
        let routers: Vec<RouterId> = self
            .rooms
            .get(room_id)
            .map(|r| r.routers.keys().copied().collect())
            .unwrap_or_default();
        for router in routers {
            self.close_router(room_id, router);
        }
        if self.rooms.remove(room_id).is_none() {
            return;
        }
        tracing::info!(room = %room_id, "room closed: {reason}");
        self.monitor(EventKind::RoomClosed {
            room: room_id.0.clone(),
            reason: reason.into(),
        });
    }
}
