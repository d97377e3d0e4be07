//! A property test of the contract: random sequences of joins (some needing new routers on
//! two nodes of small workers, so rooms span nodes), requests, node answers to tickets in
//! any order (some failing), ready nodes and node starts (some failing), links and pipes
//! (some failing), node loss, dropped connections, resumes and timeouts. Invariants: every
//! client request is answered exactly once, to the connection that asked, never before it was
//! asked; once every call, placement, link and pipe is answered, no request is left waiting,
//! no ticket is left open, and no join waits.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ipc::calls::Response;
use proptest::prelude::*;

use super::contract::outputs;
use super::*;
use crate::rooms::{Input, Ticket};
use signaling_api::{Answer, CreateTransportArgs, Request, TransportArgs};

const SLOTS: usize = 4;

#[derive(Clone, Debug)]
enum Op {
    Join(usize),
    Transport(usize, bool),
    Produce(usize),
    Consume(usize, u8),
    CloseTransport(usize),
    Leave(usize),
    /// The oldest-but-n piece of outstanding work is answered: ok or failed.
    Work(u8, bool),
    Detach(usize),
    Resume(usize),
    NodeLost(bool),
    Later(u8),
}

fn op() -> impl Strategy<Value = Op> {
    let slot = 0..SLOTS;
    prop_oneof![
        3 => slot.clone().prop_map(Op::Join),
        2 => (slot.clone(), any::<bool>()).prop_map(|(s, send)| Op::Transport(s, send)),
        2 => slot.clone().prop_map(Op::Produce),
        2 => (slot.clone(), any::<u8>()).prop_map(|(s, p)| Op::Consume(s, p)),
        1 => slot.clone().prop_map(Op::CloseTransport),
        1 => slot.clone().prop_map(Op::Leave),
        10 => (any::<u8>(), prop::bool::weighted(0.85)).prop_map(|(i, ok)| Op::Work(i, ok)),
        1 => slot.clone().prop_map(Op::Detach),
        1 => slot.clone().prop_map(Op::Resume),
        1 => any::<bool>().prop_map(Op::NodeLost),
        1 => (1u8..40).prop_map(Op::Later),
    ]
}

/// A client: its connection, the peer it speaks for, its request waiting for an answer.
struct Client {
    session: PeerId,
    peer: PeerId,
    next_id: u64,
    waiting: Option<u64>,
    transports: Vec<(TransportId, Direction)>,
}

/// Work the driver would be carrying out.
#[derive(Debug)]
enum Work {
    Call(Ticket, call::Request),
    Find(Ticket),
    Spawn(Ticket),
    Link(LinkOrder),
    Pipe(PipeOrder),
}

struct World {
    core: RoomCore,
    now: Instant,
    clients: Vec<Client>,
    work: Vec<Work>,
    producers: Vec<ProducerId>,
    /// Every (connection, id) asked, and those answered.
    asked: BTreeSet<(PeerId, u64)>,
    answered: BTreeSet<(PeerId, u64)>,
}

fn answer_to(request: &call::Request) -> Response {
    match request {
        call::Request::CreateRouter(_) => Response::RouterCreated(call::RouterCreated {
            rtp_capabilities: Json(router_caps().to_string()),
        }),
        call::Request::CreateWebRtcTransport(_) => Response::TransportCreated(transport_created()),
        call::Request::Produce(_) => Response::Produced(call::Produced {
            producer: ProducerId(Uuid::new_v4()),
        }),
        call::Request::Consume(_) => Response::Consumed(consumed_answer()),
        _ => Response::Done,
    }
}

impl World {
    fn new() -> World {
        let mut limits = limits();
        limits.max_consumers_per_worker = 6;
        limits.max_peers_per_room = 4;
        let mut core = new_core(limits);
        core.resume_grace = Duration::from_secs(10);
        let clients = (0..SLOTS)
            .map(|_| {
                let id = Uuid::new_v4();
                Client {
                    session: id,
                    peer: id,
                    next_id: 1,
                    waiting: None,
                    transports: Vec::new(),
                }
            })
            .collect();
        World {
            core,
            now: Instant::now(),
            clients,
            work: Vec::new(),
            producers: Vec::new(),
            asked: BTreeSet::new(),
            answered: BTreeSet::new(),
        }
    }

    fn feed(&mut self, input: Input) -> Result<(), TestCaseError> {
        self.core.handle(input, self.now);
        let (out, _) = outputs(&mut self.core);
        for output in out {
            match output {
                Output::Reply {
                    session,
                    id,
                    result,
                } => {
                    prop_assert!(
                        self.asked.contains(&(session, id)),
                        "a reply nobody asked for"
                    );
                    prop_assert!(self.answered.insert((session, id)), "answered twice: {id}");
                    let Some(client) = self.clients.iter_mut().find(|c| c.session == session)
                    else {
                        continue;
                    };
                    if client.waiting == Some(id) {
                        client.waiting = None;
                    }
                    match result {
                        Ok(Answer::TransportCreated(t)) => {
                            // The direction is the one asked last; close enough for picking.
                            let direction = if client.transports.len() % 2 == 0 {
                                Direction::Send
                            } else {
                                Direction::Recv
                            };
                            client.transports.push((t.transport_id, direction));
                        }
                        Ok(Answer::Produced(p)) => self.producers.push(p.producer_id),
                        Ok(Answer::Joined(_)) | Err(_) => {}
                        Ok(_) => {}
                    }
                }
                Output::Attach { session, to, .. } => {
                    if let Some(client) = self.clients.iter_mut().find(|c| c.session == session) {
                        client.peer = to;
                    }
                }
                Output::Call {
                    ticket, request, ..
                } => self.work.push(Work::Call(ticket, request)),
                Output::FindNodes { ticket } => self.work.push(Work::Find(ticket)),
                Output::SpawnNode { ticket } => self.work.push(Work::Spawn(ticket)),
                Output::Link(order) => self.work.push(Work::Link(order)),
                Output::Pipe(order) => self.work.push(Work::Pipe(order)),
                _ => {}
            }
        }
        Ok(())
    }

    /// Client `slot` sends `request` (if it waits for nothing).
    fn ask(
        &mut self,
        slot: usize,
        make: impl FnOnce(&Client, u64) -> Input,
    ) -> Result<(), TestCaseError> {
        let client = &mut self.clients[slot];
        if client.waiting.is_some() {
            return Ok(());
        }
        let id = client.next_id;
        client.next_id += 1;
        client.waiting = Some(id);
        let input = make(client, id);
        self.asked.insert((client.session, id));
        self.feed(input)
    }

    fn request(&mut self, slot: usize, request: Request) -> Result<(), TestCaseError> {
        self.ask(slot, |c, id| Input::Request {
            session: c.session,
            peer: c.peer,
            id,
            request,
        })
    }

    /// Carries out outstanding work `i`, succeeding when `ok`.
    fn work(&mut self, i: usize, ok: bool) -> Result<(), TestCaseError> {
        if self.work.is_empty() {
            return Ok(());
        }
        let work = self.work.remove(i % self.work.len());
        let input = match work {
            Work::Call(ticket, request) => Input::Answer {
                ticket,
                result: if ok {
                    Ok(answer_to(&request))
                } else {
                    Err(ClientError::new(ClientErrorCode::NodeUnavailable, "failed"))
                },
            },
            Work::Find(ticket) => Input::Nodes {
                ticket,
                ready: if ok {
                    vec![(NODE, 1), (OTHER_NODE, 1)]
                } else {
                    Vec::new()
                },
                running: 2,
                remote: Vec::new(),
                router: RouterId(Uuid::new_v4()),
            },
            Work::Spawn(ticket) => Input::NodeStarted {
                ticket,
                result: if ok {
                    Ok(OTHER_NODE)
                } else {
                    Err("cannot".into())
                },
            },
            Work::Link(order) => Input::Linked {
                order,
                result: if ok {
                    Ok((TransportId(Uuid::new_v4()), TransportId(Uuid::new_v4())))
                } else {
                    Err(PipeError::NodeGone(order.low.node))
                },
            },
            Work::Pipe(order) => Input::Piped {
                result: if ok {
                    Ok(())
                } else {
                    Err(PipeError::NodeGone(order.to.node))
                },
                order,
            },
        };
        self.feed(input)
    }

    fn step(&mut self, op: Op) -> Result<(), TestCaseError> {
        match op {
            Op::Join(slot) => self.ask(slot, |c, id| Input::Join {
                session: c.session,
                peer: c.peer,
                id,
                args: args("room", "Peer"),
                credentials: Rights::ALL.into(),
            }),
            Op::Transport(slot, send) => self.request(
                slot,
                Request::CreateWebRtcTransport(CreateTransportArgs {
                    direction: if send {
                        Direction::Send
                    } else {
                        Direction::Recv
                    },
                    data: false,
                }),
            ),
            Op::Produce(slot) => {
                let Some((t, _)) = self.clients[slot].transports.first().copied() else {
                    return Ok(());
                };
                self.request(slot, Request::Produce(produce_args(t, Kind::Audio)))
            }
            Op::Consume(slot, p) => {
                let transport = self.clients[slot].transports.get(1).map(|(t, _)| *t);
                let (Some(t), false) = (transport, self.producers.is_empty()) else {
                    return Ok(());
                };
                let producer = self.producers[p as usize % self.producers.len()];
                self.request(slot, Request::Consume(consume_args(t, producer)))
            }
            Op::CloseTransport(slot) => {
                let Some((t, _)) = self.clients[slot].transports.pop() else {
                    return Ok(());
                };
                let args = TransportArgs {
                    transport_id: t.to_string(),
                };
                self.request(slot, Request::CloseTransport(args))
            }
            Op::Leave(slot) => self.request(slot, Request::Leave),
            Op::Work(i, ok) => self.work(i as usize, ok),
            Op::Detach(slot) => {
                // A connection ends between its requests (its session awaits each answer).
                if self.clients[slot].waiting.is_some() {
                    return Ok(());
                }
                let peer = self.clients[slot].peer;
                self.clients[slot].transports.clear();
                let fresh = Uuid::new_v4();
                self.clients[slot].session = fresh;
                self.clients[slot].peer = fresh;
                self.clients[slot].next_id = 1;
                self.feed(Input::Detached { peer })?;
                // The new connection resumes at once, if the dropped peer had a token.
                match self.core.resumption.token(peer) {
                    Some(token) => self.ask(slot, |c, id| Input::Resume {
                        session: c.session,
                        peer: c.peer,
                        id,
                        token,
                        unix_now: 0,
                    }),
                    None => Ok(()),
                }
            }
            Op::Resume(slot) => {
                // Another connection takes the slot's peer over while the first may still
                // wait for an answer (the bug tickets exist for).
                let peer = self.clients[slot].peer;
                let Some(token) = self.core.resumption.token(peer) else {
                    return Ok(());
                };
                let fresh = Uuid::new_v4();
                let old = std::mem::replace(
                    &mut self.clients[slot],
                    Client {
                        session: fresh,
                        peer: fresh,
                        next_id: 1,
                        waiting: None,
                        transports: Vec::new(),
                    },
                );
                // The old connection's waiting request still gets its answer: keep it as a
                // client of its own, which asks nothing more.
                if old.waiting.is_some() {
                    self.clients.push(Client {
                        transports: Vec::new(),
                        ..old
                    });
                }
                self.ask(slot, |c, id| Input::Resume {
                    session: c.session,
                    peer: c.peer,
                    id,
                    token,
                    unix_now: 0,
                })
            }
            Op::NodeLost(first) => {
                let node = if first { NODE } else { OTHER_NODE };
                let reason = "crashed".to_string();
                self.feed(Input::NodeLost { node, reason })
            }
            Op::Later(secs) => {
                self.now += Duration::from_secs(u64::from(secs));
                self.feed(Input::Timeout)
            }
        }
    }

    /// Answers all outstanding work, successfully, until none is left.
    fn settle(&mut self) -> Result<(), TestCaseError> {
        for _ in 0..10_000 {
            if self.work.is_empty() {
                return Ok(());
            }
            self.work(0, true)?;
        }
        Err(TestCaseError::fail("work never settles"))
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_request_is_answered_exactly_once(ops in prop::collection::vec(op(), 1..80)) {
        let mut world = World::new();
        for op in ops {
            world.step(op)?;
        }
        world.settle()?;
        let unanswered: Vec<_> = world.asked.difference(&world.answered).collect();
        prop_assert!(unanswered.is_empty(), "requests never answered: {unanswered:?}");
        prop_assert_eq!(world.core.waiting_tickets(), 0, "tickets left open");
        prop_assert_eq!(world.core.waiting_joins(), 0, "joins left waiting");
        let waiting: BTreeMap<PeerId, u64> = world
            .clients
            .iter()
            .filter_map(|c| c.waiting.map(|id| (c.session, id)))
            .collect();
        prop_assert!(waiting.is_empty(), "clients still waiting: {waiting:?}");
    }
}
