//! A room over several routers, decided: links (pipe transport pairs) between its routers on
//! different nodes, producers and data producers piped to every router of the room (eagerly,
//! so that consuming never waits for a pipe; one relay model for both, [`Relayed`]), and what
//! happens when a link or a pipe fails.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use ipc::calls as call;
use ipc::messages::{ProducerId, RoomId, RouterId, TransportId};

use super::{Cleanup, Link, Output, Peer, PipeOrder, Relayed, RoomCore, Target};
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
    pub(crate) fn handle_linked(
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
            let at = |t: TransportId| peer.moved_from.get(&t).copied().unwrap_or(peer.router);
            let media = peer.producers.iter_mut().map(|(id, e)| {
                let what = Relayed::Media(*id);
                (what, at(e.transport), &mut e.copies)
            });
            let data = (peer.data_producers.iter_mut())
                .map(|(id, e)| (Relayed::Data(*id), at(e.transport), &mut e.copies));
            for (what, from, copies) in media.chain(data) {
                if from == router {
                    continue;
                }
                if let Entry::Vacant(copy) = copies.entry(router) {
                    copy.insert(false);
                    wanted.push((what, from));
                }
            }
        }
        for (what, from) in wanted {
            self.order_pipe(room_id, what, from, to);
        }
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

    /// Orders `what` of router `from` piped to `to` (its copy is already marked wanted);
    /// between nodes it waits for their link.
    pub(super) fn order_pipe(
        &mut self,
        room_id: &RoomId,
        what: Relayed,
        from: RouterId,
        to: Target,
    ) {
        let Some((from, via)) = self.pipe_route(room_id, from, to) else {
            return;
        };
        self.outputs.push_back(Output::Pipe(PipeOrder {
            what,
            from,
            to,
            via,
        }));
    }

    /// A pipe ordered by [`Output::Pipe`] is done (`Ok`) or failed. Done, the peers of its
    /// router are told the producer (or data producer) is there to consume; failed, they never
    /// hear of it (and nothing can consume it there).
    pub(crate) fn handle_piped(&mut self, order: &PipeOrder, result: Result<(), PipeError>) {
        let what = order.what;
        let to = order.to.router;
        let room_id = self.router_room.get(&to).cloned();
        let owner = room_id.as_ref().and_then(|id| {
            let room = self.rooms.get(id)?;
            room.peers
                .iter()
                .find(|(_, p)| copies(p, what).is_some_and(|c| c.contains_key(&to)))
                .map(|(peer, _)| *peer)
        });
        let (Some(room_id), Some(owner)) = (room_id, owner) else {
            // The original or the router went away meanwhile: close the copy if it was made.
            if result.is_ok() && self.router_room.contains_key(&to) {
                let close = match what {
                    Relayed::Media(producer) => Cleanup::CloseProducer(call::CloseProducer {
                        router: to,
                        producer,
                    }),
                    Relayed::Data(data_producer) => {
                        Cleanup::CloseDataProducer(call::CloseDataProducer {
                            router: to,
                            data_producer,
                        })
                    }
                };
                self.cleanup(order.to.node, close);
            }
            return;
        };
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return;
        };
        let Some(peer) = room.peers.get_mut(&owner) else {
            return;
        };
        match result {
            Ok(()) => {
                let notification = match what {
                    Relayed::Media(producer) => {
                        let Some(entry) = peer.producers.get_mut(&producer) else {
                            return;
                        };
                        entry.copies.insert(to, true);
                        Notification::NewProducer {
                            peer_id: owner,
                            producer_id: producer,
                            kind: entry.kind,
                            app_data: entry.app_data.clone(),
                        }
                    }
                    Relayed::Data(id) => {
                        let Some(entry) = peer.data_producers.get_mut(&id) else {
                            return;
                        };
                        entry.copies.insert(to, true);
                        super::data::new_data_producer(owner, id, entry)
                    }
                };
                let told = Self::peers_on(room, to);
                self.notify(told, notification);
            }
            Err(error) => {
                if let Some(copies) = copies_mut(peer, what) {
                    copies.remove(&to);
                }
                tracing::warn!(room = %room_id, ?what, router = %to, "piping failed: {error}; that router's peers do not receive it");
            }
        }
    }

    /// The routers `producer` of `peer` is piped to (pause and resume go to each of them).
    pub(crate) fn copies_of(&self, peer: PeerId, producer: ProducerId) -> Vec<Target> {
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
    pub(crate) fn handle_join_abandoned(&mut self, room_id: &RoomId) {
        let Some(room) = self.rooms.get(room_id) else {
            return;
        };
        let empty: Vec<RouterId> = room
            .routers
            .keys()
            .filter(|r| Self::router_unused(room, **r))
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

/// The routers `what` of `peer` is piped to (`true` once there), if `peer` has it.
fn copies(peer: &Peer, what: Relayed) -> Option<&BTreeMap<RouterId, bool>> {
    match what {
        Relayed::Media(producer) => peer.producers.get(&producer).map(|e| &e.copies),
        Relayed::Data(id) => peer.data_producers.get(&id).map(|e| &e.copies),
    }
}

fn copies_mut(peer: &mut Peer, what: Relayed) -> Option<&mut BTreeMap<RouterId, bool>> {
    match what {
        Relayed::Media(producer) => peer.producers.get_mut(&producer).map(|e| &mut e.copies),
        Relayed::Data(id) => peer.data_producers.get_mut(&id).map(|e| &mut e.copies),
    }
}
