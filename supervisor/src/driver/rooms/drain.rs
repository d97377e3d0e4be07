//! Drains and handoffs, as the driver carries them out: a node drained (its peers move, then
//! it is retired once no other host's router is left on it), this host drained, and a
//! room leaving or entering this host's core whole (a drained host's handoff, or an
//! adoption).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ipc::messages::RoomId;
use monitor_api::EventKind;
use room_core::rooms::Input;
use signaling_api::PeerId;

use super::Rooms;
use crate::driver::node_link::NodeId;

impl Rooms {
    /// An operator drains `node` of this host: its peers move to other nodes, make before
    /// break, then it stops (see `room_core::rooms` drain). The peers to move, or `None` for
    /// a node the pool does not have.
    pub fn drain(self: &Arc<Self>, node: NodeId) -> Option<u32> {
        self.pool.link(node)?;
        let peers = self.state().core.peers_on_node(node);
        self.input(Input::Drain { node });
        // Other hosts' rooms with routers there move their peers too.
        if let Some(remote) = self.remote.get() {
            remote.drain_local(&[node]);
        }
        Some(peers)
    }

    /// This host stops, drained: no node starts any more, and every node of it is drained
    /// (the peers move to other hosts' nodes; other hosts move theirs off it) and stops. The
    /// peers this host's rooms move.
    pub fn drain_host(self: &Arc<Self>) -> u32 {
        let nodes: Vec<NodeId> = self.pool.ready().iter().map(|l| l.id).collect();
        self.pool.leaving();
        self.input(Input::Leaving);
        nodes.iter().map(|n| self.drain(*n).unwrap_or(0)).sum()
    }

    /// In a cluster: takes `room` out of this host's core for another host (see
    /// `room_core::rooms::RoomCore::export_room`).
    pub fn export_room(
        &self,
        room: &RoomId,
    ) -> Result<room_core::rooms::RoomExport, room_core::rooms::HandoffError> {
        self.state().core.export_room(room)
    }

    /// In a cluster: serves a room another host handed over (its nodes numbered as this
    /// host numbers them).
    pub fn import_room(
        self: &Arc<Self>,
        export: room_core::rooms::RoomExport,
    ) -> Result<(), room_core::rooms::HandoffError> {
        let tasks = {
            let mut state = self.state();
            state.core.import_room(export, Instant::now())?;
            self.deliver(&mut state)
        };
        for task in tasks {
            self.spawn(task);
        }
        Ok(())
    }

    /// In a cluster: a copy of `room`'s state, for a standby host.
    pub fn snapshot_room(&self, room: &RoomId) -> Option<room_core::rooms::RoomExport> {
        self.state().core.snapshot_room(room)
    }

    /// In a cluster: serves again a room this host exported and nobody took.
    pub fn restore_room(
        &self,
        export: room_core::rooms::RoomExport,
    ) -> Result<(), room_core::rooms::HandoffError> {
        self.state().core.restore_room(export, Instant::now())
    }

    /// The connections of `peers` (their room was handed to another host) close, so that
    /// their clients resume there.
    pub fn move_sessions_away(&self, peers: &[PeerId]) {
        let state = self.state();
        for peer in peers {
            if let Some(outbox) = state.outboxes.get(peer) {
                outbox.move_away();
            }
        }
    }

    /// Nodes of this host running or starting.
    pub fn nodes_running(&self) -> u32 {
        self.pool.running()
    }

    /// Publishes a monitor event.
    pub fn publish(&self, event: EventKind) {
        self.monitor.publish(event);
    }

    /// `node-N` as the monitor shows it: `host/node-M` for another host's node.
    pub(super) fn node_name(&self, name: &str) -> String {
        let alias = name.strip_prefix("node-").and_then(|n| n.parse().ok());
        let place = alias.and_then(|n| self.remote.get()?.place(NodeId(n)));
        match place {
            Some(place) => format!("{}/{}", place.host, place.node),
            None => name.to_string(),
        }
    }

    /// In a cluster: another host drains its node that this host knows as `alias`: this
    /// host's peers there move off it.
    pub fn drain_borrowed(self: &Arc<Self>, alias: NodeId) {
        self.input(Input::Drain { node: alias });
    }

    /// A drained node of this host stops once no other host's room has a router there
    /// either (or at the drain's deadline); another host's node needs nothing here.
    pub(super) fn retire_when_unused(self: &Arc<Self>, node: NodeId) {
        if self.pool.link(node).is_none() {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let deadline = Instant::now() + room_core::rooms::DRAIN_DEADLINE;
            let lent = || this.remote.get().map_or(0, |r| r.lent_on(node));
            while lent() > 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            this.pool.retire(node);
            // Whatever other hosts still have there goes with it.
            if let Some(remote) = this.remote.get() {
                remote.local_node_lost(node, "drained");
            }
        });
    }
}
