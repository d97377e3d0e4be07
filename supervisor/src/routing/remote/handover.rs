//! A room changing hands between hosts, as the nodes' side sees it: its routers' nodes named
//! by host for the trip (and numbered this host's way on arrival), the routers lent to a
//! drained host handed to its successor, and the standbys kept for an adoption (a dead
//! owner's routers held for a while, closed if nobody adopts them).

use std::collections::HashMap;
use std::sync::Arc;

use ids::HostId;
use ipc::messages::RouterId;
use room_core::rooms::RoomExport;

use super::{Borrowed, Remote, Standby, State, MAX_STANDBY_BYTES};
use crate::driver::node_link::NodeId;
use crate::routing::links::Link;

impl Remote {
    // ---- standbys and adoption ----

    /// The routers of the rooms `host` sent standbys of.
    pub(super) fn standby_routers(
        state: &State,
        host: &HostId,
    ) -> std::collections::HashSet<RouterId> {
        (state.standbys.values())
            .filter(|s| &s.from == host)
            .filter_map(|s| serde_json::from_str::<RoomExport>(&s.export).ok())
            .flat_map(|e| e.routers.into_iter().map(|r| r.router))
            .collect()
    }

    /// Closes the routers kept for an adoption that did not come.
    pub(super) fn close_orphans(&self) {
        let now = std::time::Instant::now();
        let closing: Vec<(RouterId, NodeId)> = {
            let mut state = self.state();
            let late: Vec<(RouterId, NodeId)> = (state.lent.iter())
                .filter(|(_, l)| l.orphaned_until.is_some_and(|t| t <= now))
                .map(|(r, l)| (*r, l.node))
                .collect();
            for (router, _) in &late {
                state.lent.remove(router);
            }
            late
        };
        if !closing.is_empty() {
            tracing::warn!(
                routers = closing.len(),
                "closing routers of a lost host's rooms: nobody adopted them"
            );
        }
        self.close_lent(closing);
    }

    /// `link`'s host sent the latest state of its room `room`.
    pub fn standby(&self, link: &Arc<Link>, room: String, export: String) {
        let mut state = self.state();
        let held: usize = state.standbys.values().map(|s| s.export.len()).sum();
        if held + export.len() > MAX_STANDBY_BYTES && !state.standbys.contains_key(&room) {
            tracing::warn!(host = %link.peer(), room, "standby dropped: this host holds {held} bytes of them");
            return;
        }
        let from = link.peer().clone();
        let standby = Standby {
            from,
            export,
            lost_at: None,
        };
        state.standbys.insert(room, standby);
    }

    /// This host's standby of `room`, if its owner (not linked any more) sent one: the
    /// owner, the state, and when its link ended.
    pub fn orphan_standby(
        &self,
        room: &str,
    ) -> Option<(HostId, String, Option<std::time::Instant>)> {
        let state = self.state();
        let standby = state.standbys.get(room)?;
        if self.links.link(&standby.from).is_some() {
            return None;
        }
        Some((
            standby.from.clone(),
            standby.export.clone(),
            standby.lost_at,
        ))
    }

    /// Forgets the standby of `room` (adopted, or another host has it).
    pub fn drop_standby(&self, room: &str) {
        self.state().standbys.remove(room);
    }

    /// [`Remote::localize`] for an adoption: the routers on hosts without a link (the dead
    /// owner's) are numbered `gone`, to be lost at once.
    pub fn localize_adopted(&self, export: &mut RoomExport, gone: NodeId) -> usize {
        let mut lost = 0;
        for router in &mut export.routers {
            let linked = HostId::parse(&router.host)
                .is_ok_and(|h| h == self.me || self.links.link(&h).is_some());
            if !linked {
                router.host = self.me.to_string();
                router.node = gone.0;
                lost += 1;
            }
        }
        if let Err(e) = self.localize(export) {
            tracing::error!("adopting a room: {e}");
        }
        lost
    }

    // ---- handing a room over ----

    /// Names each router's node of `export` (numbered as this host numbers nodes) by its
    /// host and its number there, for another host to take the room.
    pub fn globalize(&self, export: &mut RoomExport) {
        let state = self.state();
        for router in &mut export.routers {
            let node = NodeId(router.node);
            match state.borrowed.get(&node) {
                Some(borrowed) => {
                    router.host = borrowed.host.to_string();
                    router.node = borrowed.node;
                }
                None => router.host = self.me.to_string(),
            }
        }
    }

    /// Numbers each router's node of `export` (named by host) as this host does: its own
    /// nodes as they are, another host's under an alias through its link. The routers on
    /// this host's nodes, lent to the room's old host until now, are this host's own from
    /// now on. Fails when a router's host has no link here.
    pub fn localize(&self, export: &mut RoomExport) -> Result<(), String> {
        let mut state = self.state();
        for router in &mut export.routers {
            let host = HostId::parse(&router.host)
                .map_err(|e| format!("router {}: host {:?}: {e}", router.router, router.host))?;
            router.host = String::new();
            if host == self.me {
                state.lent.remove(&router.router);
                continue;
            }
            let link = self.links.link(&host).ok_or_else(|| {
                format!("no link to host {host}, which has router {}", router.router)
            })?;
            let borrowed = Borrowed {
                host,
                link: link.id(),
                node: router.node,
            };
            router.node = Self::alias(&mut state, borrowed).0;
        }
        Ok(())
    }

    /// The hosts (other than this one and `to`) whose nodes have routers of `export` (named
    /// by host), with those routers.
    pub fn lenders(&self, export: &RoomExport, to: &HostId) -> Vec<(HostId, Vec<RouterId>)> {
        let mut by_host: HashMap<HostId, Vec<RouterId>> = HashMap::new();
        for router in &export.routers {
            if let Ok(host) = HostId::parse(&router.host) {
                if host != self.me && host != *to {
                    by_host.entry(host).or_default().push(router.router);
                }
            }
        }
        by_host.into_iter().collect()
    }

    /// `link`'s host handed rooms with routers on this host's nodes to host `to`: only `to`
    /// drives them from now on (a router of another host's is left alone).
    pub fn lent_moved(&self, link: &Arc<Link>, routers: &[RouterId], to: &HostId) {
        let Some(to_link) = self.links.link(to) else {
            tracing::warn!(from = %link.peer(), %to, "routers handed to a host without a link here");
            return;
        };
        let mut state = self.state();
        for router in routers {
            if let Some(lent) = state.lent.get_mut(router) {
                if lent.host == *link.peer() && lent.link == link.id() {
                    lent.host = to.clone();
                    lent.link = to_link.id();
                }
            }
        }
        tracing::info!(from = %link.peer(), %to, routers = routers.len(), "lent routers handed to another host");
    }
}
