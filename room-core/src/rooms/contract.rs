//! The core's one contract, str0m's: [`RoomCore::handle`] takes an [`Input`] and the time,
//! [`RoomCore::poll_output`] says what to do. A client request that needs its node becomes a
//! node call with a [`Ticket`]; the request waits here ([`Pending`]) with the connection that
//! asked and the peer's connection epoch, so that its answer — whenever it comes, in whatever
//! order — finishes the right request, and an answer to a connection the peer no longer
//! speaks through (it dropped, or another connection resumed the peer) closes what the node
//! made instead of handing it to a client that will never hear of it.

use std::time::Instant;

use ipc::calls::{self as call, Response};
use ipc::messages::{NodeEvent, ProducerId, RouterId};

use super::requests::Begun;
use super::{
    Cleanup, Credentials, LinkOrder, Output, PendingConsume, PendingConsumeData, PendingProduce,
    PendingProduceData, PipeError, PipeOrder, RoomCore, Target,
};
use crate::NodeId;
use signaling_api::{
    Answer, ClientError, ClientErrorCode, Direction, Done, JoinArgs, PeerId, ProducerAction,
    Request,
};

/// Names a node call whose answer the core waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(pub u64);

/// What happened, for [`RoomCore::handle`].
#[derive(Debug)]
pub enum Input {
    /// Request `id` of connection `session`, which speaks for `peer` (every request but
    /// `join` and `resume`, which have their own inputs).
    Request {
        /// The connection.
        session: PeerId,
        /// The peer it speaks for.
        peer: PeerId,
        /// The request's id.
        id: u64,
        /// The request.
        request: Request,
    },
    /// `join`, its token checked by the caller (`credentials` what it grants).
    Join {
        /// The connection.
        session: PeerId,
        /// The peer it speaks for.
        peer: PeerId,
        /// The request's id.
        id: u64,
        /// What it asks.
        args: JoinArgs,
        /// What its token grants.
        credentials: Credentials,
    },
    /// `resume` with `token`, on connection `session` (speaking for `peer`, in no room).
    Resume {
        /// The connection.
        session: PeerId,
        /// The peer it speaks for until then.
        peer: PeerId,
        /// The request's id.
        id: u64,
        /// The resume token presented.
        token: String,
        /// Seconds since the Unix epoch (a session does not outlive its join token).
        unix_now: u64,
    },
    /// The connection of `peer` ended without `leave`.
    Detached {
        /// The peer.
        peer: PeerId,
    },
    /// A node answered the call of `ticket` (or the call failed: the error for the client).
    Answer {
        /// The call's ticket.
        ticket: Ticket,
        /// The answer.
        result: Result<Response, ClientError>,
    },
    /// The nodes ready for a new router ([`Output::FindNodes`]): their ids and worker counts,
    /// how many run or start, and a fresh id for the router.
    Nodes {
        /// The ticket of the ask.
        ticket: Ticket,
        /// Ready nodes and their worker counts.
        ready: Vec<(NodeId, u32)>,
        /// Nodes running or starting.
        running: u32,
        /// Other hosts' nodes (in a cluster), with the consumers their host reports on each
        /// worker: taken only when this host is full.
        remote: Vec<(NodeId, Vec<u32>)>,
        /// A new router's id (entropy is an input).
        router: RouterId,
    },
    /// A node started for a new router ([`Output::SpawnNode`]), or could not.
    NodeStarted {
        /// The ticket of the ask.
        ticket: Ticket,
        /// The node, or why not.
        result: Result<NodeId, String>,
    },
    /// A link ([`Output::Link`]) is up, with its pipe transports, or failed.
    Linked {
        /// The order.
        order: LinkOrder,
        /// Its pipe transports on `low` and on `high`.
        result: Result<(ipc::messages::TransportId, ipc::messages::TransportId), PipeError>,
    },
    /// A pipe ([`Output::Pipe`]) is done or failed.
    Piped {
        /// The order.
        order: PipeOrder,
        /// How it went.
        result: Result<(), PipeError>,
    },
    /// A node reported an event.
    NodeEvent {
        /// The node.
        node: NodeId,
        /// The event.
        event: NodeEvent,
    },
    /// A node is gone.
    NodeLost {
        /// The node.
        node: NodeId,
        /// Why.
        reason: String,
    },
    /// In a cluster: this host no longer owns `room` (another host took it while this one
    /// was cut off from the directory). Its routers are closed and its peers told to move
    /// (`roomMoved`): they join again, at the room's owner.
    RoomLost {
        /// The room.
        room: ipc::messages::RoomId,
        /// Why.
        reason: String,
    },
    /// An operator drains `node` (a rolling upgrade): its peers move to routers elsewhere,
    /// make before break (`mediaMoving`), then [`Output::NodeDrained`] says to stop it.
    Drain {
        /// The node.
        node: NodeId,
    },
    /// This host stops (its nodes are drained one by one): no node starts for a new
    /// router any more; rooms go to other hosts' nodes.
    Leaving,
    /// The instant of the last [`Output::Timeout`] came.
    Timeout,
    /// The SFU is stopping.
    Shutdown,
}

/// A node call the core waits for.
#[derive(Debug)]
pub(crate) enum Pending {
    /// A client's request: its answer goes to `session`, if `peer` still speaks through the
    /// connection of `epoch`.
    Client {
        session: PeerId,
        peer: PeerId,
        epoch: u32,
        id: u64,
        step: Box<Step>,
    },
    /// A pause or resume relayed to a producer's copy: a failure is only logged.
    Relay {
        router: RouterId,
        producer: ProducerId,
    },
    /// A pause or resume of a consumer for last-N: a failure is only logged.
    Hold {
        router: RouterId,
        consumer: ipc::messages::ConsumerId,
    },
    /// A room's new router (see `joins`).
    Router {
        room: ipc::messages::RoomId,
        router: RouterId,
        node: NodeId,
        worker: u32,
    },
    /// Ready nodes or a node start for a room's new router (see `joins`); the router's id
    /// once drawn.
    Opening {
        room: ipc::messages::RoomId,
        router: Option<RouterId>,
    },
}

/// What a client's request does with its node's answer.
#[derive(Debug)]
pub(crate) enum Step {
    CreateTransport {
        target: Target,
        direction: Direction,
    },
    IceRestart,
    Produce(PendingProduce),
    Consume(PendingConsume),
    ProduceData(PendingProduceData),
    ConsumeData(PendingConsumeData),
    /// A producer's pause or resume: relayed to its copies once done.
    ProducerAction {
        producer: ProducerId,
        copies: Vec<Target>,
        action: ProducerAction,
    },
    /// Nothing to record: `{}`.
    Done,
}

/// The answer a node gave where another was due.
fn mismatched(response: &Response) -> ClientError {
    ClientError::new(
        ClientErrorCode::Internal,
        format!("the node answered something else: {response:?}"),
    )
}

fn take<A: call::Answer>(response: Response) -> Result<A, ClientError> {
    A::from_response(response).map_err(|other| mismatched(&other))
}

impl RoomCore {
    /// Takes one input at `now`; what follows waits in [`RoomCore::poll_output`].
    pub fn handle(&mut self, input: Input, now: Instant) {
        self.now = now;
        self.timeout_told = false;
        match input {
            Input::Request {
                session,
                peer,
                id,
                request,
            } => self.handle_request(session, peer, id, request),
            Input::Join {
                session,
                peer,
                id,
                args,
                credentials,
            } => self.queue_join(session, peer, id, args, credentials),
            Input::Resume {
                session,
                peer,
                id,
                token,
                unix_now,
            } => self.resume_input(session, peer, id, &token, unix_now, now),
            Input::Detached { peer } => self.detach_input(peer, now),
            Input::Answer { ticket, result } => self.handle_answer(ticket, result, now),
            Input::Nodes {
                ticket,
                ready,
                running,
                remote,
                router,
            } => self.handle_nodes(ticket, &ready, &remote, running, router, now),
            Input::NodeStarted { ticket, result } => self.handle_node_started(ticket, result),
            Input::Linked { order, result } => self.handle_linked(order.low, order.high, result),
            Input::Piped { order, result } => self.handle_piped(&order, result),
            Input::NodeEvent { node, event } => self.handle_node_event(node, event),
            Input::NodeLost { node, reason } => {
                self.handle_node_lost(node, &reason);
                self.forget_drain(node);
            }
            Input::Drain { node } => self.handle_drain(node, now),
            Input::Leaving => self.leaving = true,
            Input::RoomLost { room, reason } => self.handle_room_lost(&room, &reason),
            Input::Timeout => self.handle_timeout(now),
            Input::Shutdown => self.handle_shutdown(),
        }
        // Whatever happened may have settled (or failed) a router that joins wait for.
        self.advance_joins(now);
        self.refresh_last_n();
        self.announce_due(now);
    }

    pub(super) fn reply(&mut self, session: PeerId, id: u64, result: Result<Answer, ClientError>) {
        self.outputs.push_back(Output::Reply {
            session,
            id,
            result,
        });
    }

    pub(super) fn new_ticket(&mut self) -> Ticket {
        self.next_ticket += 1;
        Ticket(self.next_ticket)
    }

    /// Asks `node` for `request`; `pending` says what its answer is for.
    pub(super) fn call(&mut self, node: NodeId, request: call::Request, pending: Pending) {
        let ticket = self.new_ticket();
        self.tickets.insert(ticket, pending);
        self.outputs.push_back(Output::Call {
            ticket,
            node,
            request,
        });
    }

    /// The epoch of `peer`'s connection, if it is in a room.
    fn epoch_of(&self, peer: PeerId) -> Option<u32> {
        let room = self.rooms.get(self.peer_room.get(&peer)?)?;
        Some(room.peers.get(&peer)?.epoch)
    }

    /// A new connection epoch for `peer`: answers to requests of the one before are not its.
    pub(super) fn bump_epoch(&mut self, peer: PeerId) {
        let Some(room) = self.peer_room.get(&peer) else {
            return;
        };
        if let Some(p) = self
            .rooms
            .get_mut(room)
            .and_then(|r| r.peers.get_mut(&peer))
        {
            p.epoch = p.epoch.wrapping_add(1);
        }
    }

    /// A client's request: answered now, or sent to its node with a ticket.
    fn handle_request(&mut self, session: PeerId, peer: PeerId, id: u64, request: Request) {
        match self.begin(peer, request) {
            Ok(Begun::Now(answer)) => self.reply(session, id, Ok(answer)),
            Ok(Begun::Call(node, request, step)) => {
                let epoch = self.epoch_of(peer).unwrap_or_default();
                let pending = Pending::Client {
                    session,
                    peer,
                    epoch,
                    id,
                    step: Box::new(step),
                };
                self.call(node, request, pending);
            }
            Err(e) => self.reply(session, id, Err(e)),
        }
    }

    /// A node answered a ticket.
    fn handle_answer(
        &mut self,
        ticket: Ticket,
        result: Result<Response, ClientError>,
        now: Instant,
    ) {
        let Some(pending) = self.tickets.remove(&ticket) else {
            tracing::debug!(?ticket, "an answer nobody waits for");
            return;
        };
        match pending {
            Pending::Client {
                session,
                peer,
                epoch,
                id,
                step,
            } => {
                let result = match result {
                    Err(e) => Err(e),
                    Ok(response) if self.epoch_of(peer) == Some(epoch) => {
                        self.finish(peer, *step, response)
                    }
                    Ok(response) => {
                        self.discard(*step, response);
                        Err(ClientError::new(
                            ClientErrorCode::NotJoined,
                            "this connection no longer speaks for its peer (it dropped or resumed elsewhere)",
                        ))
                    }
                };
                self.reply(session, id, result);
                // A closed transport may have been the last thing on a drained router.
                self.drain_progress();
            }
            Pending::Relay { router, producer } => {
                if let Err(e) = result {
                    tracing::warn!(%producer, %router, "relaying a pause or resume to a copy failed: {e}");
                }
            }
            Pending::Hold { router, consumer } => {
                if let Err(e) = result {
                    tracing::warn!(%consumer, %router, "a last-N pause or resume failed: {e}");
                }
            }
            Pending::Router {
                room,
                router,
                node,
                worker,
            } => self.handle_router_answer(ticket, room, router, (node, worker), result, now),
            Pending::Opening { room, .. } => {
                tracing::warn!(room = %room, "a node call answered an opening ticket");
            }
        }
    }

    /// Records a node's answer to a request of the peer's current connection.
    fn finish(
        &mut self,
        peer: PeerId,
        step: Step,
        response: Response,
    ) -> Result<Answer, ClientError> {
        Ok(match step {
            Step::CreateTransport { target, direction } => Answer::TransportCreated(
                self.handle_transport_created(peer, &target, direction, take(response)?)?,
            ),
            Step::IceRestart => Answer::IceRestarted(Self::handle_ice_restarted(take(response)?)?),
            Step::Produce(p) => Answer::Produced(self.handle_produced(peer, p, take(response)?)?),
            Step::Consume(p) => Answer::Consumed(self.handle_consumed(peer, p, take(response)?)?),
            Step::ProduceData(p) => {
                Answer::DataProduced(self.handle_data_produced(peer, p, take(response)?)?)
            }
            Step::ConsumeData(p) => {
                Answer::DataConsumed(self.handle_data_consumed(peer, p, take(response)?)?)
            }
            Step::ProducerAction {
                producer,
                copies,
                action,
            } => {
                take::<()>(response)?;
                // Its copies follow, so that their consumers hear of it (a close's copies
                // were closed already).
                for copy in copies {
                    let router = copy.router;
                    let relay: call::Request = match action {
                        ProducerAction::Pause => call::PauseProducer { router, producer }.into(),
                        ProducerAction::Resume => call::ResumeProducer { router, producer }.into(),
                        ProducerAction::Close => continue,
                    };
                    self.call(copy.node, relay, Pending::Relay { router, producer });
                }
                Answer::Done(Done {})
            }
            Step::Done => {
                take::<()>(response)?;
                Answer::Done(Done {})
            }
        })
    }

    /// What an answer to a superseded connection made is closed again.
    fn discard(&mut self, step: Step, response: Response) {
        let made = match (step, response) {
            (Step::CreateTransport { target, .. }, Response::TransportCreated(a)) => Some((
                target,
                Cleanup::CloseTransport(call::CloseTransport {
                    router: target.router,
                    transport: a.transport,
                }),
            )),
            (Step::Produce(p), Response::Produced(a)) => Some((
                p.target,
                Cleanup::CloseProducer(call::CloseProducer {
                    router: p.target.router,
                    producer: a.producer,
                }),
            )),
            (Step::Consume(p), Response::Consumed(a)) => Some((
                p.target,
                Cleanup::CloseConsumer(call::CloseConsumer {
                    router: p.target.router,
                    consumer: a.consumer,
                }),
            )),
            (Step::ProduceData(p), Response::DataProduced(a)) => Some((
                p.target,
                Cleanup::CloseDataProducer(call::CloseDataProducer {
                    router: p.target.router,
                    data_producer: a.data_producer,
                }),
            )),
            (Step::ConsumeData(p), Response::DataConsumed(a)) => Some((
                p.target,
                Cleanup::CloseDataConsumer(call::CloseDataConsumer {
                    router: p.target.router,
                    data_consumer: a.data_consumer,
                }),
            )),
            _ => None,
        };
        if let Some((at, cleanup)) = made {
            tracing::info!(router = %at.router, "an answer for a superseded connection: closing what it made");
            self.cleanup_if_router(&at, cleanup);
        }
    }

    /// When to give [`Input::Timeout`]: the first grace period to end, else in an hour.
    pub(super) fn next_timeout(&self) -> Instant {
        let deadline = (self.deadlines.first().copied())
            .unwrap_or(self.now + std::time::Duration::from_secs(3600));
        self.announce_at.map_or(deadline, |at| at.min(deadline))
    }

    /// Requests waiting for a node (the model test's view).
    #[cfg(test)]
    pub(crate) fn waiting_tickets(&self) -> usize {
        self.tickets.len()
    }
}
