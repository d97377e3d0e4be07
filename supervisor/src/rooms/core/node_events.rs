//! What nodes report, decided: which peer each event concerns (consumer closed, paused,
//! scores, layers, active speaker), and a lost node: its rooms are gone and only their peers
//! are told to join again (`roomMoved`).

use ipc::messages::{ConsumerId, NodeEvent, ProducerId, RoomId};
use monitor_api::EventKind;

use super::{json_value, Room, RoomCore};
use crate::node_link::NodeId;
use crate::notification::Notification;
use crate::protocol::PeerId;

fn consumer_owner(room: &Room, consumer: ConsumerId) -> Option<PeerId> {
    room.peers
        .iter()
        .find(|(_, p)| p.consumers.contains_key(&consumer))
        .map(|(id, _)| *id)
}

fn producer_owner(room: &Room, producer: ProducerId) -> Option<PeerId> {
    room.peers
        .iter()
        .find(|(_, p)| p.producers.contains_key(&producer))
        .map(|(id, _)| *id)
}

impl RoomCore {
    /// `node` reported `event`: the peers it concerns are told.
    pub fn handle_node_event(&mut self, node: NodeId, event: NodeEvent) {
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
                self.monitor(EventKind::WorkerDied {
                    node: node.to_string(),
                    worker: *worker,
                    message: message.clone(),
                });
                return;
            }
        };
        // A late event of a room that is gone, or of one re-created on another node.
        let Some(room) = self.rooms.get_mut(&room_id).filter(|r| r.node == node) else {
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
                let Some(owner) = producer_owner(room, producer) else {
                    return;
                };
                let speaker = Notification::ActiveSpeaker {
                    peer_id: owner,
                    producer_id: producer,
                };
                (room.peers.keys().copied().collect(), speaker)
            }
            NodeEvent::WorkerDied { .. } => return,
        };
        self.notify(to, notification);
    }

    /// `node` is gone: every room on it is lost. Its peers are told (`roomMoved`) and are no
    /// longer joined; joining again creates the room on a healthy node. Peers of other
    /// nodes hear nothing.
    pub fn handle_node_lost(&mut self, node: NodeId, reason: &str) {
        let lost: Vec<RoomId> = self
            .rooms
            .iter()
            .filter(|(_, r)| r.node == node)
            .map(|(id, _)| id.clone())
            .collect();
        for room_id in lost {
            let Some(room) = self.rooms.remove(&room_id) else {
                continue;
            };
            tracing::warn!(room = %room_id, %node, peers = room.peers.len(), "room lost with its node");
            let peers: Vec<PeerId> = room.peers.keys().copied().collect();
            for peer in &peers {
                self.peer_room.remove(peer);
                self.monitor(EventKind::PeerLeft {
                    room: room_id.0.clone(),
                    peer_id: peer.to_string(),
                });
            }
            self.notify(
                peers,
                Notification::RoomMoved {
                    room: room_id.0.clone(),
                    reason: format!("media node failed: {reason}"),
                },
            );
            self.monitor(EventKind::RoomClosed {
                room: room_id.0.clone(),
                reason: format!("its node {node} was lost: {reason}"),
            });
        }
    }
}
