//! What nodes report, decided: which peer each event concerns (consumer closed, paused,
//! scores, layers, active speaker), and a lost node: its routers are gone, only the peers
//! placed on them are told to join again (`roomMoved`), and the room lives on in its other
//! routers.

use ipc::calls as call;
use ipc::messages::{ConsumerId, NodeEvent, ProducerId, RoomId, RouterId};
use monitor_api::EventKind;

use super::{json_value, Cleanup, Link, Room, RoomCore};
use crate::NodeId;
use signaling_api::notifications::Notification;
use signaling_api::{PeerId, TransportState};

/// Most consumers a room remembers the owner of, past which it forgets them all (the ids
/// of closed consumers would otherwise pile up in a long meeting).
const MAX_REMEMBERED_OWNERS: usize = 100_000;

fn consumer_owner(room: &mut Room, consumer: ConsumerId) -> Option<PeerId> {
    let owns = |room: &Room, peer: &PeerId| {
        (room.peers.get(peer)).is_some_and(|p| p.consumers.contains_key(&consumer))
    };
    if let Some(peer) = room.consumer_owners.get(&consumer).copied() {
        if owns(room, &peer) {
            return Some(peer);
        }
    }
    let owner = room
        .peers
        .iter()
        .find(|(_, p)| p.consumers.contains_key(&consumer))
        .map(|(id, _)| *id);
    if room.consumer_owners.len() >= MAX_REMEMBERED_OWNERS {
        room.consumer_owners.clear();
    }
    match owner {
        Some(owner) => room.consumer_owners.insert(consumer, owner),
        None => room.consumer_owners.remove(&consumer),
    };
    owner
}

fn producer_owner(room: &Room, producer: ProducerId) -> Option<PeerId> {
    room.peers
        .iter()
        .find(|(_, p)| p.producers.contains_key(&producer))
        .map(|(id, _)| *id)
}

impl RoomCore {
    /// `node` reported `event`: the peers it concerns are told.
    pub(crate) fn handle_node_event(&mut self, node: NodeId, event: NodeEvent) {
        let router = match (&event, event.router()) {
            (_, Some(router)) => router,
            (NodeEvent::WorkerDied { worker, message }, None) => {
                tracing::error!(%node, worker, "mediasoup worker died: {message}");
                self.monitor(EventKind::WorkerDied {
                    node: node.to_string(),
                    worker: *worker,
                    message: message.clone(),
                });
                return;
            }
            // Every other event names its router.
            (_, None) => return,
        };
        // A late event of a router that is gone.
        let Some(room_id) = self.router_room.get(&router).cloned() else {
            return;
        };
        let Some(room) = self
            .rooms
            .get_mut(&room_id)
            .filter(|r| r.routers.get(&router).is_some_and(|s| s.node == node))
        else {
            return;
        };
        let (to, notification) = match event {
            NodeEvent::ConsumerClosed {
                consumer, producer, ..
            } => {
                let Some(owner) = consumer_owner(room, consumer) else {
                    return;
                };
                if let Some(p) = room.peers.get_mut(&owner) {
                    p.consumers.remove(&consumer);
                }
                room.consumer_owners.remove(&consumer);
                let closed = Notification::ConsumerClosed {
                    consumer_id: consumer,
                    producer_id: producer,
                };
                (vec![owner], closed)
            }
            NodeEvent::ConsumerPaused { consumer, .. } => {
                let Some(owner) = consumer_owner(room, consumer) else {
                    return;
                };
                let paused = Notification::ConsumerPaused {
                    consumer_id: consumer,
                };
                (vec![owner], paused)
            }
            NodeEvent::ConsumerResumed { consumer, .. } => {
                let Some(owner) = consumer_owner(room, consumer) else {
                    return;
                };
                let resumed = Notification::ConsumerResumed {
                    consumer_id: consumer,
                };
                (vec![owner], resumed)
            }
            NodeEvent::ConsumerScore {
                consumer, score, ..
            } => {
                let (Some(owner), Ok(score)) = (consumer_owner(room, consumer), json_value(&score))
                else {
                    return;
                };
                let score = Notification::ConsumerScore {
                    consumer_id: consumer,
                    score,
                };
                (vec![owner], score)
            }
            NodeEvent::ConsumerLayersChanged {
                consumer,
                spatial_layer,
                temporal_layer,
                ..
            } => {
                let Some(owner) = consumer_owner(room, consumer) else {
                    return;
                };
                let layers = Notification::ConsumerLayersChanged {
                    consumer_id: consumer,
                    spatial_layer,
                    temporal_layer,
                };
                (vec![owner], layers)
            }
            NodeEvent::ProducerScore {
                producer, score, ..
            } => {
                let (Some(owner), Ok(score)) = (producer_owner(room, producer), json_value(&score))
                else {
                    return;
                };
                let score = Notification::ProducerScore {
                    producer_id: producer,
                    score,
                };
                (vec![owner], score)
            }
            NodeEvent::ActiveSpeaker { producer, .. } => {
                // Every router has every producer: the oldest one's observer speaks for the
                // room, so that there is one active speaker per room.
                let primary = room
                    .routers
                    .iter()
                    .min_by_key(|(_, s)| s.seq)
                    .map(|(id, _)| *id);
                if primary != Some(router) {
                    return;
                }
                let Some(owner) = producer_owner(room, producer) else {
                    return;
                };
                let to = room.peers.keys().copied().collect();
                self.note_speaker(&room_id, owner);
                let speaker = Notification::ActiveSpeaker {
                    peer_id: owner,
                    producer_id: producer,
                };
                (to, speaker)
            }
            NodeEvent::DataConsumerClosed {
                data_consumer,
                data_producer,
                ..
            } => {
                let Some(owner) = super::data::forget_data_consumer(room, data_consumer) else {
                    return;
                };
                let closed = Notification::DataConsumerClosed {
                    data_consumer_id: data_consumer,
                    data_producer_id: data_producer,
                };
                (vec![owner], closed)
            }
            NodeEvent::DataProducerThrottled {
                data_producer,
                max_messages_per_sec,
                paused_ms,
                ..
            } => {
                let Some(owner) = room
                    .peers
                    .iter()
                    .find(|(_, p)| {
                        p.router == router && p.data_producers.contains_key(&data_producer)
                    })
                    .map(|(id, _)| *id)
                else {
                    return;
                };
                self.outputs
                    .push_back(super::Output::Metric(super::MetricChange::DataThrottled));
                let throttled = Notification::DataProducerThrottled {
                    data_producer_id: data_producer,
                    max_messages_per_sec,
                    paused_ms,
                };
                (vec![owner], throttled)
            }
            NodeEvent::TransportState {
                transport, state, ..
            } => {
                let Some(owner) = room
                    .peers
                    .iter()
                    .find(|(_, p)| p.transports.contains_key(&transport))
                    .map(|(id, _)| *id)
                else {
                    return;
                };
                let state = match state {
                    ipc::messages::TransportState::Connected => TransportState::Connected,
                    ipc::messages::TransportState::Disconnected => TransportState::Disconnected,
                    ipc::messages::TransportState::Failed => TransportState::Failed,
                    ipc::messages::TransportState::Closed => TransportState::Closed,
                };
                let told = Notification::TransportState {
                    transport_id: transport,
                    state,
                };
                (vec![owner], told)
            }
            NodeEvent::WorkerDied { .. } => return,
        };
        self.notify(to, notification);
    }

    /// `node` is gone, and the routers it hosted. Their peers are told (`roomMoved`) and are
    /// no longer joined; what they sent is closed for the others; links to the lost routers
    /// are closed on the other side. Peers of the room on other nodes keep their media; a room
    /// with no router left is closed.
    pub(crate) fn handle_node_lost(&mut self, node: NodeId, reason: &str) {
        let affected: Vec<RoomId> = self
            .rooms
            .iter()
            .filter(|(_, r)| r.routers.values().any(|s| s.node == node))
            .map(|(id, _)| id.clone())
            .collect();
        for room_id in affected {
            let told = format!("media node failed: {reason}");
            self.lose_routers(&room_id, node, reason, told);
        }
    }

    /// This host no longer owns `room_id`: its routers (alive) are closed, its peers moved.
    pub(crate) fn handle_room_lost(&mut self, room_id: &RoomId, reason: &str) {
        let Some(room) = self.rooms.get(room_id) else {
            return;
        };
        let placed: Vec<(RouterId, NodeId)> =
            room.routers.iter().map(|(r, s)| (*r, s.node)).collect();
        tracing::warn!(room = %room_id, routers = placed.len(), peers = room.peers.len(), "room lost to another host: {reason}");
        for (router, node) in &placed {
            let close = call::CloseRouter { router: *router };
            self.cleanup(*node, Cleanup::CloseRouter(close));
        }
        let mut nodes: Vec<NodeId> = placed.iter().map(|(_, n)| *n).collect();
        nodes.sort();
        nodes.dedup();
        for node in nodes {
            self.lose_routers(room_id, node, reason, format!("the room moved: {reason}"));
        }
    }

    fn lose_routers(&mut self, room_id: &RoomId, node: NodeId, reason: &str, told: String) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let lost: Vec<RouterId> = room
            .routers
            .iter()
            .filter(|(_, s)| s.node == node)
            .map(|(id, _)| *id)
            .collect();
        for router in &lost {
            room.routers.remove(router);
            self.router_room.remove(router);
        }
        let moved: Vec<PeerId> = room
            .peers
            .iter()
            .filter(|(_, p)| lost.contains(&p.router))
            .map(|(id, _)| *id)
            .collect();
        tracing::warn!(room = %room_id, %node, routers = lost.len(), peers = moved.len(), "routers lost with their node");
        // Links to the lost routers: close the surviving side.
        let mut cleanups = Vec::new();
        let links: Vec<((RouterId, RouterId), Link)> = room
            .links
            .iter()
            .filter(|((low, high), _)| lost.contains(low) || lost.contains(high))
            .map(|(k, l)| (*k, *l))
            .collect();
        for ((low, high), link) in links {
            room.links.remove(&(low, high));
            if let Link::Ready(lt, ht) = link {
                let (other, transport) = if lost.contains(&low) {
                    (high, ht)
                } else {
                    (low, lt)
                };
                if let Some(state) = room.routers.get(&other) {
                    let close = call::CloseTransport {
                        router: other,
                        transport,
                    };
                    cleanups.push((state.node, Cleanup::CloseTransport(close)));
                }
            }
        }
        // Copies on the lost routers are gone with them.
        for peer in room.peers.values_mut() {
            for entry in peer.producers.values_mut() {
                entry.copies.retain(|r, _| !lost.contains(r));
            }
            for entry in peer.data_producers.values_mut() {
                entry.copies.retain(|r, _| !lost.contains(r));
            }
        }
        let mut gone = Vec::new();
        for peer in &moved {
            if let Some(state) = room.peers.remove(peer) {
                gone.push((*peer, state));
            }
        }
        // Peers that moved off the node in a drain lose what they left there.
        let mut left_behind = Vec::new();
        for (id, peer) in room.peers.iter_mut() {
            let lost_here: Vec<_> = (peer.moved_from.iter())
                .filter(|(_, r)| lost.contains(r))
                .map(|(t, _)| *t)
                .collect();
            for transport in lost_here {
                peer.moved_from.remove(&transport);
                peer.transports.remove(&transport);
                peer.consumers.retain(|_, c| c.transport != transport);
                peer.data_consumers.retain(|_, c| c.transport != transport);
                let producers: Vec<_> = (peer.producers.iter())
                    .filter(|(_, e)| e.transport == transport)
                    .map(|(p, e)| (*p, e.clone()))
                    .collect();
                let data: std::collections::HashMap<_, _> = (peer.data_producers.iter())
                    .filter(|(_, e)| e.transport == transport)
                    .map(|(p, e)| (*p, e.clone()))
                    .collect();
                peer.producers.retain(|_, e| e.transport != transport);
                peer.data_producers.retain(|_, e| e.transport != transport);
                left_behind.push((*id, producers, data));
            }
        }
        for (node, cleanup) in cleanups {
            self.cleanup(node, cleanup);
        }
        for (peer, producers, data) in left_behind {
            for (producer, entry) in producers {
                self.producer_gone(room_id, peer, producer, &entry.copies);
            }
            self.data_producers_gone(room_id, peer, &data);
        }
        for (peer, state) in &gone {
            self.peer_room.remove(peer);
            for (producer, entry) in &state.producers {
                self.producer_gone(room_id, *peer, *producer, &entry.copies);
            }
            self.data_producers_gone(room_id, *peer, &state.data_producers);
            self.monitor(EventKind::PeerLeft {
                room: room_id.0.clone(),
                peer_id: peer.to_string(),
            });
        }
        let notification = Notification::RoomMoved {
            room: room_id.0.clone(),
            reason: told,
        };
        for (peer, state) in &gone {
            let away = state.detached_until;
            self.resumption
                .room_moved(*peer, away, &room_id.0, &notification);
        }
        self.notify(moved.clone(), notification);
        let remaining: Vec<PeerId> = self
            .rooms
            .get(room_id)
            .map(|r| r.peers.keys().copied().collect())
            .unwrap_or_default();
        if !remaining.is_empty() {
            for (peer, state) in &gone {
                self.announce_leave(room_id, *peer, state.listed);
            }
        }
        let routers_left = self
            .rooms
            .get(room_id)
            .is_some_and(|r| !r.routers.is_empty());
        if remaining.is_empty() {
            if routers_left {
                self.close_room(room_id, &format!("its node {node} was lost: {reason}"));
            } else if self.rooms.remove(room_id).is_some() {
                self.monitor(EventKind::RoomClosed {
                    room: room_id.0.clone(),
                    reason: format!("its node {node} was lost: {reason}"),
                });
            }
        }
    }
}
