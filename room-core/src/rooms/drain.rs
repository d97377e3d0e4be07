//! Draining a node, make before break: nothing new goes to it, and each peer placed there
//! moves, in turn with its room's joins, to a router elsewhere (an existing one with room,
//! or a new one placed as for a newcomer, linked and given every producer first). A moved
//! peer's router changes at once: its new transports go there, and `mediaMoving` tells its
//! client to consume and produce on them. Its old transports stay (`Peer::moved_from`) and
//! keep working until the client closes them. A router of the node that nobody uses any more
//! closes; once none is left the node is drained ([`Output::NodeDrained`]) and the driver
//! stops it. At the deadline whatever is still there is closed as if the node had died.

use std::time::{Duration, Instant};

use ipc::calls as call;
use ipc::messages::{RoomId, RouterId};
use monitor_api::EventKind;

use super::{Cleanup, MetricChange, Output, RoomCore};
use crate::NodeId;
use signaling_api::notifications::Notification;
use signaling_api::PeerId;

/// How long a drain waits for its peers to move before it closes what is left.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

/// A node being drained.
#[derive(Debug)]
pub(crate) struct Draining {
    since: Instant,
    deadline: Instant,
    /// Nothing is left on it ([`Output::NodeDrained`] was given).
    done: bool,
}

impl RoomCore {
    /// An operator drains `node`: its peers move away, then it stops.
    pub(crate) fn handle_drain(&mut self, node: NodeId, now: Instant) {
        if self.draining.contains_key(&node) {
            tracing::info!(%node, "already draining");
            return;
        }
        let deadline = now + DRAIN_DEADLINE;
        let draining = Draining {
            since: now,
            deadline,
            done: false,
        };
        self.draining.insert(node, draining);
        self.deadlines.insert(deadline);
        let mut moving: Vec<(RoomId, PeerId)> = Vec::new();
        for (room_id, room) in &self.rooms {
            for (peer, p) in &room.peers {
                if room.routers.get(&p.router).is_some_and(|r| r.node == node) {
                    moving.push((room_id.clone(), *peer));
                }
            }
        }
        moving.sort();
        tracing::info!(%node, peers = moving.len(), "draining the node: its peers move");
        self.monitor(EventKind::NodeDraining {
            node: node.to_string(),
            peers: moving.len() as u32,
        });
        for (room, peer) in moving {
            self.queue_move(&room, peer);
        }
        self.drain_progress();
    }

    /// Moves `peer` of `room_id` to a router off drained nodes, if one can take it now;
    /// `false` when the room needs a new router first. A peer gone or moved already is done.
    pub(super) fn move_peer(&mut self, room_id: &RoomId, peer: PeerId, now: Instant) -> bool {
        let Some(room) = self.rooms.get(room_id) else {
            return true;
        };
        let Some(p) = room.peers.get(&peer) else {
            return true;
        };
        let from = p.router;
        let Some(node) = room.routers.get(&from).map(|r| r.node) else {
            return true;
        };
        if !self.draining.contains_key(&node) {
            return true;
        }
        let publishes = p.rights.publish;
        let Some(to) = self.router_for_newcomer(room, now, publishes) else {
            return false;
        };
        let to_node = room.routers.get(&to).map(|r| r.node);
        let peers = Self::peer_infos(room, peer, to);
        let Some(p) = self
            .rooms
            .get_mut(room_id)
            .and_then(|r| r.peers.get_mut(&peer))
        else {
            return true;
        };
        let transports: Vec<_> = p.transports.keys().copied().collect();
        for transport in transports {
            p.moved_from.entry(transport).or_insert(from);
        }
        p.router = to;
        tracing::info!(room = %room_id, %peer, %from, %to, "peer moves off its drained node");
        self.notify(vec![peer], Notification::MediaMoving { peers });
        self.outputs
            .push_back(Output::Metric(MetricChange::PeerMoved));
        self.monitor(EventKind::PeerMoved {
            room: room_id.0.clone(),
            peer_id: peer.to_string(),
            from: node.to_string(),
            to: to_node.map(|n| n.to_string()).unwrap_or_default(),
        });
        // A peer without transports on the old router leaves it unused at once.
        self.drain_progress();
        true
    }

    /// Routers of drained nodes that nobody uses any more close; a node with none left is
    /// drained.
    pub(super) fn drain_progress(&mut self) {
        if self.draining.is_empty() {
            return;
        }
        let mut unused: Vec<(RoomId, RouterId)> = Vec::new();
        for (room_id, room) in &self.rooms {
            for (router, state) in &room.routers {
                let drained = self.draining.get(&state.node).is_some_and(|d| !d.done);
                if drained && Self::router_unused(room, *router) && !self.opening(room_id, *router)
                {
                    unused.push((room_id.clone(), *router));
                }
            }
        }
        for (room_id, router) in unused {
            self.close_router(&room_id, router);
        }
        let empty: Vec<NodeId> = self
            .draining
            .iter()
            .filter(|(node, d)| !d.done && !self.hosts_routers(**node))
            .map(|(node, _)| *node)
            .collect();
        for node in empty {
            self.drained(node, false);
        }
    }

    /// Whether a router of `room_id` is being opened for a join (it has no peer yet).
    fn opening(&self, room_id: &RoomId, router: RouterId) -> bool {
        self.joins
            .get(room_id)
            .is_some_and(|j| j.settling() == Some(router))
    }

    fn hosts_routers(&self, node: NodeId) -> bool {
        (self.rooms.values()).any(|r| r.routers.values().any(|s| s.node == node))
    }

    fn drained(&mut self, node: NodeId, forced: bool) {
        let Some(draining) = self.draining.get_mut(&node) else {
            return;
        };
        draining.done = true;
        let ms = self
            .now
            .saturating_duration_since(draining.since)
            .as_millis() as u64;
        tracing::info!(%node, ms, forced, "node drained");
        self.monitor(EventKind::NodeDrained {
            node: node.to_string(),
            ms,
            forced,
        });
        self.outputs
            .push_back(Output::Metric(MetricChange::NodeDrained { forced }));
        self.outputs.push_back(Output::NodeDrained { node });
    }

    /// Drains whose deadline came: what is still on their node closes, as if it had died
    /// (its peers that never moved get `roomMoved`; those that moved lose what they left).
    pub(super) fn drain_deadlines(&mut self, now: Instant) {
        let late: Vec<NodeId> = self
            .draining
            .iter()
            .filter(|(_, d)| !d.done && d.deadline <= now)
            .map(|(node, _)| *node)
            .collect();
        for node in late {
            tracing::warn!(%node, "drain deadline: closing what is left on the node");
            let routers: Vec<RouterId> = (self.rooms.values())
                .flat_map(|r| r.routers.iter())
                .filter(|(_, s)| s.node == node)
                .map(|(id, _)| *id)
                .collect();
            for router in routers {
                self.cleanup(node, Cleanup::CloseRouter(call::CloseRouter { router }));
            }
            self.handle_node_lost(node, "drained (its deadline came)");
            self.drained(node, true);
        }
    }

    /// Peers whose router is on `node`: those a drain of it moves.
    pub fn peers_on_node(&self, node: NodeId) -> u32 {
        let on = |room: &super::Room, p: &super::Peer| {
            room.routers.get(&p.router).is_some_and(|r| r.node == node)
        };
        (self.rooms.values())
            .map(|room| room.peers.values().filter(|p| on(room, p)).count() as u32)
            .sum()
    }

    /// A node is gone: it is no longer drained.
    pub(super) fn forget_drain(&mut self, node: NodeId) {
        self.draining.remove(&node);
    }
}
