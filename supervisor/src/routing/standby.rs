//! When a room's owner dies, what survives on other hosts is adopted rather than started
//! over. The owner sends each host that lends its room routers the room's latest state
//! (`LinkMessage::Standby`, when it changed, at most every second). When the owner's link
//! ends, those hosts keep its rooms' routers (instead of closing them) for a while; when its
//! lease has expired and the room's key is gone, a host holding the room's standby claims
//! the room and imports it: the peers whose routers were on surviving hosts keep their media
//! and resume there with the tokens they had (every host is told where those go); the peers
//! whose routers died with the owner learn `roomMoved` on resume and join again.
//!
//! What cannot be adopted: whatever was on the dead owner's nodes (its routers and their
//! transports, producers, consumers), and anything newer than the last standby (at most a
//! second old: a resume token used after it is refused, and that peer joins again). Only a
//! host that lent the room a router holds a standby; with several, the first to claim the
//! room adopts it, and the others' routers of it are closed when their wait ends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_api::LinkMessage;
use ids::HostId;
use ipc::messages::RoomId;
use monitor_api::EventKind;
use room_core::cluster::Input;
use room_core::rooms::RoomExport;

use super::Routing;
use crate::driver::node_link::NodeId;

/// How often the owner looks for rooms whose state changed.
const STANDBY_EVERY: Duration = Duration::from_secs(1);

/// The number the routers of a dead owner's nodes get in an adopted room: lost at once.
const GONE: NodeId = NodeId(u32::MAX);

impl Routing {
    /// Sends the standbys of this host's rooms that span hosts, for as long as it lives.
    pub(crate) async fn send_standbys(self: Arc<Self>) {
        let mut sent: HashMap<RoomId, String> = HashMap::new();
        let mut too_large: Vec<RoomId> = Vec::new();
        let mut tick = tokio::time::interval(STANDBY_EVERY);
        loop {
            tick.tick().await;
            let (Some(rooms), Some(remote)) = (
                self.rooms.get().and_then(std::sync::Weak::upgrade),
                self.links.remote().cloned(),
            ) else {
                continue;
            };
            let owned = self.owned();
            sent.retain(|room, _| owned.contains(room));
            too_large.retain(|room| owned.contains(room));
            for room in owned {
                let Some(mut export) = rooms.snapshot_room(&room) else {
                    continue;
                };
                remote.globalize(&mut export);
                let lenders = hosts_of(&export, &self.me);
                if lenders.is_empty() {
                    continue;
                }
                let Ok(json) = serde_json::to_string(&export) else {
                    continue;
                };
                if sent.get(&room) == Some(&json) {
                    continue;
                }
                if json.len() > super::handoff::MAX_EXPORT_BYTES {
                    // Too large for one link message: this room cannot be adopted.
                    if !too_large.contains(&room) {
                        tracing::warn!(room = %room, bytes = json.len(), "the room's state is too large to keep on standby: it cannot be adopted should this host die");
                        too_large.push(room.clone());
                    }
                    continue;
                }
                for host in lenders {
                    if let Some(link) = self.links.link(&host) {
                        let standby = LinkMessage::Standby {
                            room: room.0.clone(),
                            export: json.clone(),
                        };
                        if !link.try_send(standby) {
                            tracing::warn!(%host, room = %room, "a standby dropped: the link is full");
                        }
                    }
                }
                sent.insert(room, json);
            }
        }
    }

    /// `room`'s key is gone (its owner's lease expired): adopt it if this host keeps its
    /// standby from an owner it has no link to any more.
    pub(crate) fn maybe_adopt(self: &Arc<Self>, room: &RoomId) {
        if self.is_draining() {
            return;
        }
        let Some(remote) = self.links.remote() else {
            return;
        };
        let Some((from, export, lost_at)) = remote.orphan_standby(&room.0) else {
            // Its owner, alive, released it (its last peer left): the standby is stale.
            remote.drop_standby(&room.0);
            return;
        };
        let lost_at = lost_at.unwrap_or_else(Instant::now);
        tokio::spawn(self.clone().adopt(room.clone(), from, export, lost_at));
    }

    async fn adopt(self: Arc<Self>, room: RoomId, from: HostId, export: String, lost_at: Instant) {
        let (Some(rooms), Some(remote)) = (
            self.rooms.get().and_then(std::sync::Weak::upgrade),
            self.links.remote().cloned(),
        ) else {
            return;
        };
        remote.drop_standby(&room.0);
        let mut export: RoomExport = match serde_json::from_str(&export) {
            Ok(export) => export,
            Err(e) => {
                tracing::error!(room = %room, "an unreadable standby: {e}");
                return;
            }
        };
        // An adoption, not a failover (the watch may say this host owns it before the claim
        // answers).
        self.state().last_owner.remove(&room);
        let revision = match self.directory.claim(&room).await {
            Ok(Ok(revision)) => revision,
            Ok(Err(owner)) => {
                tracing::info!(room = %room, %owner, "another host has the lost owner's room: not adopting it");
                return;
            }
            Err(e) => {
                tracing::warn!(room = %room, "cannot claim the lost owner's room: {e}");
                return;
            }
        };
        let lost_routers = remote.localize_adopted(&mut export, GONE);
        let peers = export.peers.len() as u32;
        let tokens: Vec<String> = (export.peers.iter())
            .filter_map(|p| p.resume_token.clone())
            .collect();
        if let Err(e) = rooms.import_room(export) {
            tracing::error!(room = %room, "cannot adopt the room: {e}");
            return;
        }
        // What was on the dead owner's nodes is gone: its peers join again.
        rooms.on_remote_node_lost(GONE, &format!("host {from} died"));
        {
            let mut state = self.state();
            state.claims.insert(room.clone(), revision);
            let owner = Input::Owner {
                room: room.clone(),
                owner: Some(self.me.clone()),
            };
            self.feed(&mut state, owner);
        }
        self.forward(&tokens, &self.me);
        for host in self.links.linked() {
            if let Some(link) = self.links.link(&host) {
                let forward = LinkMessage::Forward {
                    tokens: tokens.clone(),
                    to: self.me.clone(),
                };
                let _ = link.try_send(forward);
            }
        }
        // From the owner's loss (its link) to the room served here again.
        let ms = lost_at.elapsed().as_millis() as u64;
        tracing::info!(room = %room, %from, peers, lost_routers, ms, "adopted the room of a lost host");
        self.metrics.room_adopted();
        rooms.publish(EventKind::RoomAdopted {
            room: room.0.clone(),
            from: from.to_string(),
            peers,
            routers_lost: lost_routers as u32,
            ms,
        });
    }
}

/// The hosts other than `me` with routers of `export` (named by host).
fn hosts_of(export: &RoomExport, me: &HostId) -> Vec<HostId> {
    let mut hosts: Vec<HostId> = (export.routers.iter())
        .filter_map(|r| HostId::parse(&r.host).ok())
        .filter(|h| h != me)
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}
