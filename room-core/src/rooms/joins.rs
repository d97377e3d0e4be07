//! Joins in progress, as core state. A join that no router of its room can take waits here
//! while the room gets a new one: its placement ([`Output::FindNodes`], then a worker or a
//! new node, [`Output::SpawnNode`]), its creation (a ticketed `createRouter`), then its links
//! and pipes to the room's other routers. The room's joins wait in order behind it (as one
//! room's joins always were ordered); once the router is settled — linked, and every producer
//! of the room there — they are admitted in turn, each answered before anything else for
//! it. If the new router fails on the way, the join that asked for it is refused and the
//! next one tries again.

use std::collections::VecDeque;
use std::time::Instant;

use ipc::calls::{self as call, Response};
use ipc::messages::{RoomId, RouterId};

use super::contract::Pending;
use super::{Credentials, JoinStep, Output, RoomCore, Ticket};
use crate::placement::Placement;
use crate::NodeId;
use signaling_api::{Answer, ClientError, ClientErrorCode, JoinArgs, PeerId};

/// A room's joins waiting for a new router.
#[derive(Debug, Default)]
pub(crate) struct Joining {
    waiting: VecDeque<Waiting>,
    opening: Opening,
}

/// What waits for a router: a join, or a peer to move off a node being drained (it needs a
/// router elsewhere as a newcomer does).
#[derive(Debug)]
enum Waiting {
    Join(WaitingJoin),
    Move(PeerId),
}

/// A join waiting.
#[derive(Debug)]
struct WaitingJoin {
    session: PeerId,
    peer: PeerId,
    id: u64,
    args: JoinArgs,
    credentials: Credentials,
}

/// Where the room's new router is.
#[derive(Debug, Default)]
enum Opening {
    /// None is being opened: the first waiting join tries.
    #[default]
    Idle,
    /// Waiting for the ready nodes (or a node start) of this ticket.
    Placing(Ticket),
    /// `createRouter` sent with this ticket.
    Creating(Ticket),
    /// Created; being linked and given the room's producers.
    Settling(RouterId),
    /// Failed: the first waiting join is refused with this.
    Failed(ClientError),
}

impl Joining {
    /// The router being settled for the head of the queue, if any.
    pub(super) fn settling(&self) -> Option<RouterId> {
        match self.opening {
            Opening::Settling(router) => Some(router),
            _ => None,
        }
    }
}

impl RoomCore {
    /// `join`: admitted at once, or in order behind the room's other joins waiting for a new
    /// router.
    pub(super) fn queue_join(
        &mut self,
        session: PeerId,
        peer: PeerId,
        id: u64,
        args: JoinArgs,
        credentials: Credentials,
    ) {
        let room = RoomId(args.room.clone());
        self.joins
            .entry(room)
            .or_default()
            .waiting
            .push_back(Waiting::Join(WaitingJoin {
                session,
                peer,
                id,
                args,
                credentials,
            }));
    }

    /// `peer` of `room` moves off a node being drained, in turn with the room's joins.
    pub(super) fn queue_move(&mut self, room: &RoomId, peer: PeerId) {
        let joining = self.joins.entry(room.clone()).or_default();
        joining.waiting.push_back(Waiting::Move(peer));
    }

    /// Moves every room's waiting joins on as far as they go now.
    pub(super) fn advance_joins(&mut self, now: Instant) {
        if self.joins.is_empty() {
            return;
        }
        let rooms: Vec<RoomId> = self.joins.keys().cloned().collect();
        for room in rooms {
            self.advance_room_joins(&room, now);
        }
    }

    fn advance_room_joins(&mut self, room: &RoomId, now: Instant) {
        loop {
            let Some(joining) = self.joins.get_mut(room) else {
                return;
            };
            match std::mem::take(&mut joining.opening) {
                opening @ (Opening::Placing(_) | Opening::Creating(_)) => {
                    joining.opening = opening;
                    return;
                }
                Opening::Settling(router) => match self.router_settled(room, router) {
                    Some(true) => {}
                    Some(false) => {
                        if let Some(joining) = self.joins.get_mut(room) {
                            joining.opening = Opening::Settling(router);
                        }
                        return;
                    }
                    None => {
                        // Its new router was lost (its node died) or could not be linked.
                        let error = ClientError::new(
                            ClientErrorCode::NodeUnavailable,
                            "the room's node failed while joining; retry",
                        );
                        self.fail_first_join(room, error);
                    }
                },
                Opening::Failed(error) => self.fail_first_join(room, error),
                Opening::Idle => {
                    let Some(waiting) = joining.waiting.pop_front() else {
                        self.joins.remove(room);
                        return;
                    };
                    let join = match waiting {
                        Waiting::Join(join) => join,
                        Waiting::Move(peer) => {
                            if !self.move_peer(room, peer, now) {
                                self.open_router(room, Waiting::Move(peer));
                                return;
                            }
                            continue;
                        }
                    };
                    let step =
                        self.handle_join(join.peer, &join.args, join.credentials.clone(), now);
                    match step {
                        Ok(JoinStep::Joined(joined)) => {
                            self.reply(join.session, join.id, Ok(Answer::Joined(joined)));
                        }
                        Err(e) => self.reply(join.session, join.id, Err(e)),
                        Ok(JoinStep::NeedsRouter) => {
                            self.open_router(room, Waiting::Join(join));
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Places a new router for `room`, `first` waiting at the head until it is settled.
    fn open_router(&mut self, room: &RoomId, first: Waiting) {
        let ticket = self.new_ticket();
        let pending = Pending::Opening {
            room: room.clone(),
            router: None,
        };
        self.tickets.insert(ticket, pending);
        self.outputs.push_back(Output::FindNodes { ticket });
        if let Some(joining) = self.joins.get_mut(room) {
            joining.waiting.push_front(first);
            joining.opening = Opening::Placing(ticket);
        }
    }

    /// The join that asked for a new router is refused with `error`; routers left without
    /// peers close, and the room if nobody is in it.
    fn fail_first_join(&mut self, room: &RoomId, error: ClientError) {
        self.handle_join_abandoned(room);
        match self.joins.get_mut(room).and_then(|j| j.waiting.pop_front()) {
            Some(Waiting::Join(join)) => self.reply(join.session, join.id, Err(error)),
            // It stays where it is until the drain's deadline.
            Some(Waiting::Move(peer)) => {
                tracing::warn!(room = %room, %peer, "cannot move the peer off its drained node: {error}")
            }
            None => {}
        }
    }

    /// Whether `router` of `room` is settled (linked, every producer of the room there);
    /// `None` when it is gone.
    fn router_settled(&self, room: &RoomId, router: RouterId) -> Option<bool> {
        let room = self.rooms.get(room)?;
        let state = room.routers.get(&router)?;
        if !state.ready {
            return Some(false);
        }
        let piping = room.peers.values().any(|p| {
            let media = p.producers.values().map(|e| &e.copies);
            let data = p.data_producers.values().map(|e| &e.copies);
            media.chain(data).any(|c| c.get(&router) == Some(&false))
        });
        Some(!piping)
    }

    /// The room whose opening waits for `ticket` (and the router it will create, once
    /// known), taking the ticket.
    fn opening_of(&mut self, ticket: Ticket) -> Option<(RoomId, Option<RouterId>)> {
        match self.tickets.remove(&ticket) {
            Some(Pending::Opening { room, router }) => {
                let waiting = self
                    .joins
                    .get(&room)
                    .is_some_and(|j| matches!(j.opening, Opening::Placing(t) if t == ticket));
                waiting.then_some((room, router))
            }
            Some(other) => {
                self.tickets.insert(ticket, other);
                None
            }
            None => None,
        }
    }

    fn set_opening(&mut self, room: &RoomId, opening: Opening) {
        if let Some(joining) = self.joins.get_mut(room) {
            joining.opening = opening;
        }
    }

    /// The nodes ready for a room's new router: it goes on a worker, or a node starts.
    pub(super) fn handle_nodes(
        &mut self,
        ticket: Ticket,
        ready: &[(NodeId, u32)],
        remote: &[(NodeId, Vec<u32>)],
        running: u32,
        router: RouterId,
        now: Instant,
    ) {
        let Some((room, _)) = self.opening_of(ticket) else {
            return;
        };
        match self.place_router_spilling(&room, ready, remote, running, now) {
            Placement::Worker(node, worker) => self.create_router(&room, router, node, worker),
            Placement::SpawnNode => {
                tracing::info!(room = %room, "every worker is full: starting another node");
                let ticket = self.new_ticket();
                let pending = Pending::Opening {
                    room: room.clone(),
                    router: Some(router),
                };
                self.tickets.insert(ticket, pending);
                self.outputs.push_back(Output::SpawnNode { ticket });
                self.set_opening(&room, Opening::Placing(ticket));
            }
            Placement::Full => {
                let limits = &self.limits;
                let error = ClientError::new(
                    ClientErrorCode::Capacity,
                    format!(
                        "every media worker is full ({} consumers each) and the pool is at --max-nodes {}",
                        limits.max_consumers_per_worker, limits.max_nodes
                    ),
                );
                self.set_opening(&room, Opening::Failed(error));
            }
        }
    }

    /// A node started for a room's new router (its first worker takes it), or could not.
    pub(super) fn handle_node_started(&mut self, ticket: Ticket, result: Result<NodeId, String>) {
        let Some((room, router)) = self.opening_of(ticket) else {
            return;
        };
        match (result, router) {
            (Ok(node), Some(router)) => self.create_router(&room, router, node, 0),
            (Ok(_), None) => {
                let error =
                    ClientError::new(ClientErrorCode::Internal, "a node start lost its router");
                self.set_opening(&room, Opening::Failed(error));
            }
            (Err(e), _) => {
                let error = ClientError::new(
                    ClientErrorCode::NodeUnavailable,
                    format!("cannot start a media node: {e}"),
                );
                self.set_opening(&room, Opening::Failed(error));
            }
        }
    }

    fn create_router(&mut self, room: &RoomId, router: RouterId, node: NodeId, worker: u32) {
        let ticket = self.new_ticket();
        let pending = Pending::Router {
            room: room.clone(),
            router,
            node,
            worker,
        };
        self.tickets.insert(ticket, pending);
        self.outputs.push_back(Output::Call {
            ticket,
            node,
            request: call::CreateRouter { router, worker }.into(),
        });
        self.set_opening(room, Opening::Creating(ticket));
    }

    /// A node answered `createRouter`: the router joins the room (links and pipes follow).
    pub(super) fn handle_router_answer(
        &mut self,
        ticket: Ticket,
        room: RoomId,
        router: RouterId,
        at: (NodeId, u32),
        result: Result<Response, ClientError>,
        now: Instant,
    ) {
        let created = result.and_then(|response| match response {
            Response::RouterCreated(created) => Ok(created),
            other => Err(ClientError::new(
                ClientErrorCode::Internal,
                format!("the node answered something else to createRouter: {other:?}"),
            )),
        });
        let waiting = self
            .joins
            .get(&room)
            .is_some_and(|j| matches!(j.opening, Opening::Creating(t) if t == ticket));
        let outcome = created.and_then(|c| {
            if !waiting {
                // Nobody waits for it any more: close it again.
                let close = super::Cleanup::CloseRouter(call::CloseRouter { router });
                self.cleanup(at.0, close);
                return Err(ClientError::new(ClientErrorCode::Internal, "nobody waits"));
            }
            self.handle_router_created(room.clone(), router, at, &c.rtp_capabilities, now)
        });
        if !waiting {
            return;
        }
        match outcome {
            Ok(()) => self.set_opening(&room, Opening::Settling(router)),
            Err(e) => self.set_opening(&room, Opening::Failed(e)),
        }
    }

    /// Whether the join (or move) at the head of `room`'s queue may publish: a viewer's new
    /// router needs no room for pipes of its producers.
    pub(super) fn first_waiting_publishes(&self, room: &RoomId) -> bool {
        let first = self.joins.get(room).and_then(|j| j.waiting.front());
        match first {
            Some(Waiting::Join(join)) => join.credentials.rights.publish && !join.args.watch_only,
            Some(Waiting::Move(peer)) => (self.rooms.get(room))
                .and_then(|r| r.peers.get(peer))
                .is_none_or(|p| p.rights.publish),
            None => true,
        }
    }

    /// Joins waiting for a router (the model test's view).
    #[cfg(test)]
    pub(crate) fn waiting_joins(&self) -> usize {
        let joins = self.joins.values().flat_map(|j| j.waiting.iter());
        joins.filter(|w| matches!(w, Waiting::Join(_))).count()
    }
}
