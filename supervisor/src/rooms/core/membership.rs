//! Joining and leaving, decided: admission (validation, token, limits, capacity), where a new
//! room goes, announcing peers, and closing a room with its last peer.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use ipc::calls as call;
use ipc::messages::{Json, RoomId};
use monitor_api::EventKind;

use super::{json_value, not_joined, Cleanup, MetricChange, Peer, Room, RoomCore};
use crate::node_link::NodeId;
use crate::notification::Notification;
use crate::placement::{place_room, NodeView, Placement, WorkerView};
use crate::protocol::{
    validate_display_name, validate_room, ClientError, ClientErrorCode, JoinArgs, Joined, PeerId,
    PeerInfo, ProducerInfo,
};

/// What a join needs next.
#[derive(Debug, PartialEq)]
pub enum JoinStep {
    /// The peer is in: answer it.
    Joined(Joined),
    /// The room does not exist: place it ([`RoomCore::place_room`]), create its router, report
    /// it ([`RoomCore::handle_room_created`]) and join again.
    NeedsRoom,
}

impl RoomCore {
    /// `peer` asks to join; admitted, it is in the room and the others are told.
    pub fn handle_join(
        &mut self,
        peer: PeerId,
        args: &JoinArgs,
        now: Instant,
    ) -> Result<JoinStep, ClientError> {
        validate_room(&args.room)?;
        let display_name = validate_display_name(&args.display_name)?;
        if self.shutting_down {
            return Err(ClientError::new(
                ClientErrorCode::ShuttingDown,
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
                    ClientErrorCode::Unauthorized,
                    "wrong or missing token",
                ));
            }
        }
        if self.peer_room.contains_key(&peer) {
            return Err(ClientError::new(
                ClientErrorCode::AlreadyJoined,
                "this connection is already in a room; leave first",
            ));
        }
        let room_id = RoomId(args.room.clone());
        let Some(room) = self.rooms.get(&room_id) else {
            return Ok(JoinStep::NeedsRoom);
        };
        if let Err(refusal) = self.admit(&room_id, room) {
            // A room created for this join and refused stays empty: close it.
            if room.peers.is_empty() {
                self.close_room(&room_id, "its first join was refused");
            }
            return Err(refusal);
        }
        let room = self.rooms.get_mut(&room_id).ok_or_else(not_joined)?;
        let others: Vec<PeerId> = room.peers.keys().copied().collect();
        let answer = Joined {
            peer_id: peer,
            room: room_id.0.clone(),
            router_rtp_capabilities: room.rtp_capabilities.clone(),
            peers: room
                .peers
                .iter()
                .map(|(id, p)| PeerInfo {
                    peer_id: *id,
                    display_name: p.display_name.clone(),
                    producers: p
                        .producers
                        .iter()
                        .map(|(producer, e)| ProducerInfo {
                            producer_id: *producer,
                            kind: e.kind,
                        })
                        .collect(),
                })
                .collect(),
        };
        room.peers.insert(
            peer,
            Peer {
                display_name: display_name.clone(),
                joined_at: now,
                transports: HashMap::new(),
                producers: HashMap::new(),
                consumers: HashMap::new(),
            },
        );
        self.peer_room.insert(peer, room_id.clone());
        self.notify(
            others,
            Notification::PeerJoined {
                peer_id: peer,
                display_name: display_name.clone(),
            },
        );
        tracing::info!(room = %room_id, %peer, name = %display_name, "peer joined");
        self.outputs
            .push_back(super::Output::Metric(MetricChange::Joined));
        self.monitor(EventKind::PeerJoined {
            room: room_id.0,
            peer_id: peer.to_string(),
            display_name,
        });
        Ok(JoinStep::Joined(answer))
    }

    /// Whether one more peer fits in `room`: its worker below its consumer cap, the room
    /// below its peer cap.
    fn admit(&self, room_id: &RoomId, room: &Room) -> Result<(), ClientError> {
        let worker_consumers: usize = self
            .rooms
            .values()
            .filter(|r| r.node == room.node && r.worker == room.worker)
            .flat_map(|r| r.peers.values())
            .map(|p| p.consumers.len())
            .sum();
        if worker_consumers >= self.limits.max_consumers_per_worker as usize {
            return Err(ClientError::new(
                ClientErrorCode::Capacity,
                format!("the worker hosting room {room_id} is full"),
            ));
        }
        if room.peers.len() >= self.limits.max_peers_per_room {
            return Err(ClientError::new(
                ClientErrorCode::RoomFull,
                format!(
                    "room {room_id} has {} peers, the limit",
                    self.limits.max_peers_per_room
                ),
            ));
        }
        Ok(())
    }

    /// Where a new room goes, given the ready nodes (id and worker count) and how many nodes
    /// run or start: the worker with the fewest consumers as this directory counts them
    /// (exact and immediate, unlike the periodic load reports), else a new node, else full.
    pub fn place_room(&self, ready: &[(NodeId, u32)], running: u32) -> Placement {
        let views: Vec<NodeView> = ready
            .iter()
            .map(|&(id, workers)| NodeView {
                id,
                workers: (0..workers)
                    .map(|index| {
                        let on = self
                            .rooms
                            .values()
                            .filter(|r| r.node == id && r.worker == index);
                        WorkerView {
                            index,
                            consumers: on
                                .clone()
                                .flat_map(|r| r.peers.values())
                                .map(|p| p.consumers.len() as u32)
                                .sum(),
                            rooms: on.count() as u32,
                        }
                    })
                    .collect(),
            })
            .collect();
        place_room(
            &views,
            self.limits.max_consumers_per_worker,
            running,
            self.limits.max_nodes,
        )
    }

    /// The router of `room` exists on `worker` of `node`.
    pub fn handle_room_created(
        &mut self,
        room: RoomId,
        node: NodeId,
        worker: u32,
        rtp_capabilities: &Json,
        now: Instant,
    ) -> Result<(), ClientError> {
        let rtp_capabilities = match json_value(rtp_capabilities) {
            Ok(caps) => caps,
            Err(e) => {
                self.cleanup(node, Cleanup::CloseRouter(call::CloseRouter { room }));
                return Err(e);
            }
        };
        tracing::info!(%room, %node, worker, "room created");
        self.monitor(EventKind::RoomCreated {
            room: room.0.clone(),
            node: node.to_string(),
            worker,
        });
        self.rooms.insert(
            room,
            Room {
                node,
                worker,
                rtp_capabilities,
                created_at: now,
                peers: BTreeMap::new(),
            },
        );
        Ok(())
    }

    /// `peer` leaves (it asked, or its connection dropped): what it produced is closed for
    /// everyone, the others are told, and the room closes with its last peer.
    pub fn handle_leave(&mut self, peer: PeerId) -> Result<(), ClientError> {
        let room_id = self.peer_room.remove(&peer).ok_or_else(not_joined)?;
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return Ok(());
        };
        let Some(gone) = room.peers.remove(&peer) else {
            return Ok(());
        };
        let node = room.node;
        let others: Vec<PeerId> = room.peers.keys().copied().collect();
        let empty = others.is_empty();
        // As before the core existed (and as mediasoup's demo does): `peerLeft` first, then
        // `consumerClosed` for what it sent.
        self.notify(others, Notification::PeerLeft { peer_id: peer });
        for producer in gone.producers.keys() {
            self.producer_gone(&room_id, peer, *producer);
        }
        tracing::info!(room = %room_id, %peer, "peer left");
        self.monitor(EventKind::PeerLeft {
            room: room_id.0.clone(),
            peer_id: peer.to_string(),
        });
        if empty {
            self.close_room(&room_id, "its last peer left");
        } else {
            for transport in gone.transports.into_keys() {
                let room = room_id.clone();
                self.cleanup(
                    node,
                    Cleanup::CloseTransport(call::CloseTransport { room, transport }),
                );
            }
        }
        Ok(())
    }

    /// Forgets an empty room and closes its router (which closes every transport in it).
    fn close_room(&mut self, room_id: &RoomId, reason: &str) {
        let Some(room) = self.rooms.remove(room_id) else {
            return;
        };
        tracing::info!(room = %room_id, "room closed: {reason}");
        self.monitor(EventKind::RoomClosed {
            room: room_id.0.clone(),
            reason: reason.into(),
        });
        let room_id = room_id.clone();
        self.cleanup(
            room.node,
            Cleanup::CloseRouter(call::CloseRouter { room: room_id }),
        );
    }
}
