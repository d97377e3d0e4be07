//! Joining and leaving: validation, admission (token, limits, capacity), placing a new room
//! on a worker and creating its router, announcing peers, and closing a room with its last
//! peer. Joins and leaves of one room are ordered by its lock; other rooms go on.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::time::Instant;

use ipc::calls as call;
use ipc::messages::RoomId;
use monitor_api::EventKind;
use serde_json::{json, Value};

use super::{
    broadcast, json_value, link_error, not_joined, Directory, Outbox, Peer, PeerId, Room, Rooms,
    NODE_WAIT,
};
use crate::node_lifecycle::SpawnOrigin;
use crate::node_link::NodeLink;
use crate::notification::Notification;
use crate::placement::{place_room, NodeView, Placement, WorkerView};
use crate::protocol::{validate_display_name, validate_room, ClientError, ErrorCode, JoinArgs};

impl Rooms {
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
