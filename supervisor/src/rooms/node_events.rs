//! What nodes report, relayed to the peers concerned (consumer closed, paused, scores,
//! layers, active speaker), and a lost node: its rooms are gone and their peers told to
//! re-join (`roomMoved`).

use ipc::messages::{ConsumerId, NodeEvent, RoomId};
use monitor_api::EventKind;

use super::{broadcast, json_value, notify, Peer, Room, Rooms};
use crate::node_link::NodeId;
use crate::notification::Notification;

impl Rooms {
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
}

fn consumer_owner(room: &mut Room, consumer: ConsumerId) -> Option<&mut Peer> {
    room.peers
        .values_mut()
        .find(|p| p.consumers.contains_key(&consumer))
}
