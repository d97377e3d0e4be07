//! The rooms' side of a cluster: the hosts' URLs handed to clients (and `hostsChanged` when
//! they change), other hosts' nodes that rooms may open routers on, their events and losses
//! as inputs to the core, and rooms another host took over.

use std::sync::Arc;

use ipc::messages::{NodeEvent, RoomId};
use room_core::rooms::Input;

use super::Rooms;
use crate::driver::node_link::NodeId;
use crate::driver::remote::RemoteNodes;

impl Rooms {
    /// In a cluster: the hosts' signaling URLs are now `urls`. Join and resume answers list
    /// them from now on; when they changed, every connected client is told (`hostsChanged`).
    pub fn set_cluster_urls(&self, mut urls: Vec<String>) {
        urls.sort();
        urls.dedup();
        {
            let mut current = self.cluster_urls.lock().unwrap_or_else(|p| p.into_inner());
            if *current == urls {
                return;
            }
            *current = urls.clone();
        }
        let frame = signaling_api::Notification::HostsChanged { urls }.to_frame();
        let state = self.state();
        for (peer, outbox) in &state.outboxes {
            if !outbox.push(frame.clone()) {
                tracing::warn!(%peer, "a client that does not keep up: its session closes");
            }
        }
    }

    /// In a cluster: this host.
    pub fn host(&self) -> Option<&ids::HostId> {
        self.host.as_ref()
    }

    /// In a cluster: rooms may open routers on other hosts' nodes through `remote`.
    pub fn set_remote(&self, remote: Arc<dyn RemoteNodes>) {
        let _ = self.remote.set(remote);
    }

    /// In a cluster: other hosts' nodes, and this host's as they use them.
    pub fn remote(&self) -> Option<&Arc<dyn RemoteNodes>> {
        self.remote.get()
    }

    /// Where `node` is when it is another host's.
    pub fn remote_place(&self, node: NodeId) -> Option<crate::driver::remote::Place> {
        self.remote.get()?.place(node)
    }

    /// In a cluster: each room that closes here is sent to `closed`.
    pub fn with_closed_rooms(mut self, closed: tokio::sync::mpsc::UnboundedSender<RoomId>) -> Self {
        self.closed_rooms = Some(closed);
        self
    }

    /// An event of another host's node (`node`, as this host numbers it).
    pub fn on_remote_node_event(self: &Arc<Self>, node: NodeId, event: NodeEvent) {
        self.input(Input::NodeEvent { node, event });
    }

    /// In a cluster: another host owns `room` now; its peers here are told to move.
    pub fn room_lost(self: &Arc<Self>, room: &RoomId, reason: &str) {
        self.input(Input::RoomLost {
            room: room.clone(),
            reason: reason.to_string(),
        });
    }

    /// Another host's `node` (as this host numbers it) is gone, or the link to its host.
    pub fn on_remote_node_lost(self: &Arc<Self>, node: NodeId, reason: &str) {
        let reason = reason.to_string();
        self.input(Input::NodeLost { node, reason });
    }
}
