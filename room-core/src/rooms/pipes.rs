//! A room over several routers, decided: links (pipe transport pairs) between its routers on
//! different nodes, producers piped to every router of the room (eagerly, so that consuming
//! never waits for a pipe), and what happens when a link or a pipe fails.

use ipc::calls as call;
use ipc::messages::{ProducerId, RoomId, RouterId, TransportId};

use super::{Cleanup, Link, Output, PipeOrder, RoomCore, Target};
use signaling_api::notifications::Notification;
use signaling_api::PeerId;

use crate::NodeId;

/// Why a link (the pipe transport pair between two routers of a room on different nodes) or
/// a pipe (a producer or data producer made available in another router) failed, as the
/// driver that performed it reports it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PipeError {
    /// The node of one side is gone.
    #[error("{0} is gone")]
    NodeGone(NodeId),
    /// A node refused a step, or did not answer it in time.
    #[error("{step} on {node}: {reason}")]
    Step {
        /// The node asked.
        node: NodeId,
        /// What it was asked (`create pipe transport`, `pipe consume`, …).
        step: &'static str,
        /// What it answered, or that it did not.
        reason: String,
    },
}

impl RoomCore {
    /// The link between `low` and `high` is up (`Ok`: their pipe transports) or failed.
    pub fn handle_linked(
        &mut self,
        low: Target,
        high: Target,
        result: Result<(TransportId, TransportId), PipeError>,
    ) {
        let key = (low.router, high.router);
        let room_id = self.router_room.get(&low.router).cloned();
        let alive = room_id
            .as_ref()
            .and_then(|id| self.rooms.get(id))
            .is_some_and(|r| {
                r.routers.contains_key(&low.router)
                    && r.routers.contains_key(&high.router)
                    && r.links.get(&key) == Some(&Link::Pending)
            });
        let (Some(room_id), true) = (room_id, alive) else {
            // One side went away meanwhile: close what was made on the other.
            if let Ok((lt, ht)) = result {
                for (side, transport) in [(low, lt), (high, ht)] {
                    if self.router_room.contains_key(&side.router) {
                        let close = call::CloseTransport {
                            router: side.router,
                            transport,
                        };
                        self.cleanup(side.node, Cleanup::CloseTransport(close));
                    }
                }
            }
            return;
        };
        match result {
            Ok((lt, ht)) => {
                if let Some(room) = self.rooms.get_mut(&room_id) {
                    room.links.insert(key, Link::Ready(lt, ht));
                }
                for router in [low.router, high.router] {
                    let waiting = self.rooms.get(&room_id).is_some_and(|room| {
                        room.routers.get(&router).is_some_and(|r| !r.ready)
                            && !room.links.iter().any(|((a, b), link)| {
                                (*a == router || *b == router) && *link == Link::Pending
                            })
                    });
                    if waiting {
                        self.router_ready(&room_id, router);
                    }
                }
            }
            Err(error) => {
                tracing::warn!(room = %room_id, low = %low.router, high = %high.router, "linking routers failed: {error}");
                if let Some(room) = self.rooms.get_mut(&room_id) {
                    room.links.remove(&key);
                }
                // The router being opened cannot reach the room: it goes, and its join fails.
                for router in [low.router, high.router] {
                    let unready = self
                        .rooms
                        .get(&room_id)
                        .is_some_and(|room| room.routers.get(&router).is_some_and(|r| !r.ready));
                    if unready {
                        self.close_router(&room_id, router);
                    }
                }
            }
        }
    }

    /// `router` is linked to every other router of its room: every producer of the room is
    /// piped to it; peers may join it.
    pub(super) fn router_ready(&mut self, room_id: &RoomId, router: RouterId) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let Some(state) = room.routers.get_mut(&router) else {
            return;
        };
        state.ready = true;
        let to = Target {
            node: state.node,
            router,
        };
        let mut wanted = Vec::new();
        for peer in room.peers.values_mut() {
            if peer.router == router {
                continue;
            }
            for (producer, entry) in peer.producers.iter_mut() {
                if let std::collections::btree_map::Entry::Vacant(copy) = entry.copies.entry(router)
                {
                    copy.insert(false);
                    wanted.push((*producer, entry.kind, peer.router));
                }
            }
        }
        for (producer, kind, from) in wanted {
            self.order_pipe(room_id, producer, kind, from, to);
        }
        self.pipe_data_to_ready_router(room_id, to);
    }

    /// How something of router `from` reaches `to`: `from` as a target, and `None` within a
    /// node or, between nodes, the link's pipe transports on `from`'s side and on `to`'s. No
    /// route while they are not linked (yet): `router_ready` pipes everything once they are.
    #[allow(clippy::type_complexity)]
    pub(super) fn pipe_route(
        &self,
        room_id: &RoomId,
        from: RouterId,
        to: Target,
    ) -> Option<(Target, Option<(TransportId, TransportId)>)> {
        let room = self.rooms.get(room_id)?;
        let from = Target {
            node: room.routers.get(&from)?.node,
            router: from,
        };
        if from.node == to.node {
            return Some((from, None));
        }
        let key = (from.router.min(to.router), from.router.max(to.router));
        match room.links.get(&key) {
            Some(Link::Ready(lt, ht)) if key.0 == from.router => Some((from, Some((*lt, *ht)))),
            Some(Link::Ready(lt, ht)) => Some((from, Some((*ht, *lt)))),
            _ => None,
        }
    }

    /// Orders `producer` of router `from` piped to `to` (its copy is already marked wanted).
    pub(super) fn order_pipe(
        &mut self,
        room_id: &RoomId,
        producer: ProducerId,
        kind: signaling_api::Kind,
        from: RouterId,
        to: Target,
    ) {
        let Some((from, via)) = self.pipe_route(room_id, from, to) else {
            return;
        };
        let kind = match kind {
            signaling_api::Kind::Audio => ipc::messages::MediaKind::Audio,
            signaling_api::Kind::Video => ipc::messages::MediaKind::Video,
        };
        self.outputs.push_back(Output::Pipe(PipeOrder {
            producer,
            kind,
            from,
            to,
            via,
        }));
    }

    /// A pipe ordered by [`Output::Pipe`] is done (`Ok`) or failed. Done, the peers of its
    /// router are told the producer is there to consume; failed, they never hear of it (and
    /// no consumer of it can exist there).
    pub fn handle_piped(&mut self, order: &PipeOrder, result: Result<(), PipeError>) {
        let producer = order.producer;
        let to = order.to.router;
        let room_id = self.router_room.get(&to).cloned();
        let owner = room_id.as_ref().and_then(|id| {
            let room = self.rooms.get(id)?;
            room.peers
                .iter()
                .find(|(_, p)| {
                    p.producers
                        .get(&producer)
                        .is_some_and(|e| e.copies.contains_key(&to))
                })
                .map(|(peer, _)| *peer)
        });
        let (Some(room_id), Some(owner)) = (room_id, owner) else {
            // The producer or the router went away meanwhile: close the copy if it was made.
            if result.is_ok() && self.router_room.contains_key(&to) {
                let close = call::CloseProducer {
                    router: to,
                    producer,
                };
                self.cleanup(order.to.node, Cleanup::CloseProducer(close));
            }
            return;
        };
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return;
        };
        let Some(entry) = room
            .peers
            .get_mut(&owner)
            .and_then(|p| p.producers.get_mut(&producer))
        else {
            return;
        };
        match result {
            Ok(()) => {
                entry.copies.insert(to, true);
                let kind = entry.kind;
                let app_data = entry.app_data.clone();
                let told = Self::peers_on(room, to);
                self.notify(
                    told,
                    Notification::NewProducer {
                        peer_id: owner,
                        producer_id: producer,
                        kind,
                        app_data,
                    },
                );
            }
            Err(error) => {
                entry.copies.remove(&to);
                tracing::warn!(room = %room_id, %producer, router = %to, "piping a producer failed: {error}; that router's peers do not receive it");
            }
        }
    }

    /// The routers `producer` of `peer` is piped to (pause and resume go to each of them).
    pub fn copies_of(&self, peer: PeerId, producer: ProducerId) -> Vec<Target> {
        let Ok((_, room)) = self.room_of_peer(peer) else {
            return Vec::new();
        };
        room.peers
            .get(&peer)
            .and_then(|p| p.producers.get(&producer))
            .map(|e| {
                e.copies
                    .keys()
                    .filter_map(|r| {
                        room.routers.get(r).map(|s| Target {
                            node: s.node,
                            router: *r,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A join that needed a new router did not make it in: routers left without peers are
    /// closed, and the room if nobody is in it.
    pub fn handle_join_abandoned(&mut self, room_id: &RoomId) {
        let Some(room) = self.rooms.get(room_id) else {
            return;
        };
        let empty: Vec<RouterId> = room
            .routers
            .keys()
            .filter(|r| !room.peers.values().any(|p| p.router == **r))
            .copied()
            .collect();
        for router in empty {
            self.close_router(room_id, router);
        }
        if self.rooms.get(room_id).is_some_and(|r| r.peers.is_empty()) {
            self.close_room(room_id, "its first join failed");
        }
    }
}
