//! The core through its one contract (`handle(Input, now)` / `poll_output()`), as the
//! supervisor's driver uses it: requests answered by replies to the connection that asked,
//! node calls answered by ticket, joins waiting for a new router as core state, and the
//! resume grace period as a timeout — on virtual time.

use std::time::Duration;

use super::*;
use crate::rooms::{Input, Ticket};
use ipc::calls::Response;
use signaling_api::{Answer, CreateTransportArgs, Request};

/// Every output up to (not including) the final timeout, and that timeout.
pub(super) fn outputs(core: &mut RoomCore) -> (Vec<Output>, Instant) {
    let mut all = Vec::new();
    let mut timeout = None;
    while let Some(output) = core.poll_output() {
        match output {
            Output::Timeout(at) => timeout = Some(at),
            other => {
                assert!(timeout.is_none(), "the timeout comes last: {other:?}");
                all.push(other);
            }
        }
    }
    (all, timeout.expect("a drain ends with its timeout"))
}

/// The replies among `outputs`, by connection and request id.
pub(super) fn replies(outputs: &[Output]) -> Vec<(PeerId, u64, Result<Answer, ClientError>)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Reply {
                session,
                id,
                result,
            } => Some((*session, *id, result.clone())),
            _ => None,
        })
        .collect()
}

pub(super) fn calls(outputs: &[Output]) -> Vec<(Ticket, NodeId, call::Request)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Call {
                ticket,
                node,
                request,
            } => Some((*ticket, *node, request.clone())),
            _ => None,
        })
        .collect()
}

fn join_input(peer: PeerId, id: u64, room: &str, name: &str) -> Input {
    Input::Join {
        session: peer,
        peer,
        id,
        args: args(room, name),
        credentials: Rights::ALL.into(),
    }
}

pub(super) fn router_created() -> Response {
    Response::RouterCreated(call::RouterCreated {
        rtp_capabilities: Json(router_caps().to_string()),
    })
}

/// Gives the core ready nodes for the room's new router and answers its `createRouter`;
/// returns the outputs after that.
pub(super) fn open_with(
    core: &mut RoomCore,
    find: Ticket,
    ready: &[(NodeId, u32)],
    now: Instant,
) -> Vec<Output> {
    let router = RouterId(Uuid::new_v4());
    let nodes = Input::Nodes {
        ticket: find,
        ready: ready.to_vec(),
        running: ready.len() as u32,
        remote: Vec::new(),
        router,
    };
    core.handle(nodes, now);
    let (out, _) = outputs(core);
    let [(ticket, node, call::Request::CreateRouter(create))] = &calls(&out)[..] else {
        panic!("one createRouter expected: {out:?}");
    };
    assert_eq!((*node, create.router), (ready[0].0, router));
    let answer = Input::Answer {
        ticket: *ticket,
        result: Ok(router_created()),
    };
    core.handle(answer, now);
    outputs(core).0
}

/// Answers the core's ask for nodes with none ready and `running` nodes in the pool.
fn no_node_ready(core: &mut RoomCore, find: Ticket, running: u32, now: Instant) -> Vec<Output> {
    let nodes = Input::Nodes {
        ticket: find,
        ready: Vec::new(),
        running,
        remote: Vec::new(),
        router: RouterId(Uuid::new_v4()),
    };
    core.handle(nodes, now);
    outputs(core).0
}

/// `peers` in `room`, the first opening its router on `NODE`.
fn room_of(core: &mut RoomCore, room: &str, peers: &[PeerId], now: Instant) {
    for (i, peer) in peers.iter().enumerate() {
        core.handle(join_input(*peer, 1, room, "Peer"), now);
        let (out, _) = outputs(core);
        if i == 0 {
            open_with(core, find_nodes(&out)[0], &[(NODE, 1)], now);
        }
        assert!(core.is_joined(*peer));
    }
}

fn find_nodes(outputs: &[Output]) -> Vec<Ticket> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::FindNodes { ticket } => Some(*ticket),
            _ => None,
        })
        .collect()
}

#[test]
fn a_join_that_needs_a_router_is_answered_once_the_router_is_created() {
    let mut core = new_core(limits());
    let now = Instant::now();
    let alice = Uuid::new_v4();
    core.handle(join_input(alice, 1, "room", "Alice"), now);
    let (out, _) = outputs(&mut core);
    assert!(
        replies(&out).is_empty(),
        "no answer before the router: {out:?}"
    );
    let [find] = find_nodes(&out)[..] else {
        panic!("the core asks for nodes: {out:?}");
    };
    let out = open_with(&mut core, find, &[(NODE, 1)], now);
    let replies = replies(&out);
    assert_eq!(replies.len(), 1, "{out:?}");
    let (session, id, Ok(Answer::Joined(joined))) = &replies[0] else {
        panic!("Alice joined: {replies:?}");
    };
    assert_eq!((*session, *id, joined.peer_id), (alice, 1, alice));
    assert!(core.is_joined(alice));
    assert_eq!(core.waiting_joins(), 0);
}

#[test]
fn joins_of_one_room_wait_behind_its_new_router_and_each_is_answered_before_it_hears_of_the_room() {
    let mut core = new_core(limits());
    let now = Instant::now();
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    core.handle(join_input(alice, 1, "room", "Alice"), now);
    core.handle(join_input(bob, 7, "room", "Bob"), now);
    let (out, _) = outputs(&mut core);
    let finds = find_nodes(&out);
    assert_eq!(finds.len(), 1, "one router for both: {out:?}");
    assert_eq!(core.waiting_joins(), 2);
    let mut out = open_with(&mut core, finds[0], &[(NODE, 1)], now);
    // Alice's answer, then Bob's; Alice hears of Bob at the end of the tick, Bob of nobody.
    core.handle(Input::Timeout, now + ANNOUNCE_TICK);
    out.extend(outputs(&mut core).0);
    assert!(told(&out, bob).is_empty(), "{out:?}");
    let order: Vec<String> = out
        .iter()
        .filter_map(|o| match o {
            Output::Reply { session, .. } if *session == alice => Some("reply alice".into()),
            Output::Reply { session, .. } if *session == bob => Some("reply bob".into()),
            Output::Notify {
                to,
                notification: Notification::PeersChanged { .. },
            } if to.contains(&alice) => Some("alice hears peerJoined".into()),
            Output::Notify { to, .. } if to.contains(&alice) => Some("alice hears more".into()),
            _ => None,
        })
        .collect();
    assert_eq!(
        order,
        ["reply alice", "reply bob", "alice hears peerJoined"]
    );
    assert_eq!(core.waiting_joins(), 0);
}

#[test]
fn a_join_that_finds_the_pool_full_is_refused_with_capacity() {
    let mut core = new_core(limits());
    let now = Instant::now();
    let alice = Uuid::new_v4();
    core.handle(join_input(alice, 1, "room", "Alice"), now);
    let (out, _) = outputs(&mut core);
    let [find] = find_nodes(&out)[..] else {
        panic!("{out:?}")
    };
    // No node ready and the pool at its limit (two running).
    let out = no_node_ready(&mut core, find, 2, now);
    let replies = replies(&out);
    let [(_, 1, Err(e))] = &replies[..] else {
        panic!("{out:?}")
    };
    assert_eq!(e.code, ClientErrorCode::Capacity, "{e}");
    assert!(!core.is_joined(alice));
    assert_eq!(core.waiting_joins(), 0);
    assert!(core.rooms().is_empty());
}

#[test]
fn a_node_that_cannot_start_refuses_the_join_and_the_next_one_tries_again() {
    let mut core = new_core(limits());
    let now = Instant::now();
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    core.handle(join_input(alice, 1, "room", "Alice"), now);
    core.handle(join_input(bob, 2, "room", "Bob"), now);
    let (out, _) = outputs(&mut core);
    let [find] = find_nodes(&out)[..] else {
        panic!("{out:?}")
    };
    let out = no_node_ready(&mut core, find, 0, now);
    let [spawn] = out
        .iter()
        .filter_map(|o| match o {
            Output::SpawnNode { ticket } => Some(*ticket),
            _ => None,
        })
        .collect::<Vec<_>>()[..]
    else {
        panic!("a node start: {out:?}")
    };
    let failed = Input::NodeStarted {
        ticket: spawn,
        result: Err("the node binary is missing".into()),
    };
    core.handle(failed, now);
    let (out, _) = outputs(&mut core);
    let replies = replies(&out);
    let [(who, 1, Err(e))] = &replies[..] else {
        panic!("{out:?}")
    };
    assert_eq!((*who, e.code), (alice, ClientErrorCode::NodeUnavailable));
    assert!(e.message.contains("the node binary is missing"), "{e}");
    // Bob's join asks again.
    assert_eq!(find_nodes(&out).len(), 1, "{out:?}");
    assert_eq!(core.waiting_joins(), 1);
}

/// Alice in a room, and her connection's request for a transport sent to the node: its
/// ticket.
fn alice_asks_for_a_transport(core: &mut RoomCore) -> (PeerId, Ticket, Instant) {
    let now = Instant::now();
    let alice = Uuid::new_v4();
    room_of(core, "room", &[alice], now);
    let request = Request::CreateWebRtcTransport(CreateTransportArgs {
        direction: Direction::Send,
        data: false,
    });
    let input = Input::Request {
        session: alice,
        peer: alice,
        id: 2,
        request,
    };
    core.handle(input, now);
    let (out, _) = outputs(core);
    let [(ticket, NODE, call::Request::CreateWebRtcTransport(_))] = &calls(&out)[..] else {
        panic!("{out:?}")
    };
    (alice, *ticket, now)
}

fn resume_token(core: &RoomCore, peer: PeerId) -> String {
    core.resumption.token(peer).unwrap()
}

/// A new connection resumes `peer` at `now`: the connection, and what follows.
fn resume_elsewhere(core: &mut RoomCore, peer: PeerId, now: Instant) -> (PeerId, Vec<Output>) {
    let session = Uuid::new_v4();
    let resume = Input::Resume {
        session,
        peer: session,
        id: 1,
        token: resume_token(core, peer),
        unix_now: 0,
    };
    core.handle(resume, now);
    (session, outputs(core).0)
}

/// The node creates the transport of `ticket`: what it made, and what follows.
fn transport_made(
    core: &mut RoomCore,
    ticket: Ticket,
    now: Instant,
) -> (call::TransportCreated, Vec<Output>) {
    let made = transport_created();
    let answer = Input::Answer {
        ticket,
        result: Ok(Response::TransportCreated(made.clone())),
    };
    core.handle(answer, now);
    (made, outputs(core).0)
}

#[test]
fn an_answer_for_a_connection_the_peer_resumed_away_from_closes_what_it_made() {
    let mut core = new_core(limits());
    core.resume_grace = Duration::from_secs(30);
    let (alice, ticket, now) = alice_asks_for_a_transport(&mut core);
    // A new connection resumes Alice while her old one waits for the transport.
    let (second, out) = resume_elsewhere(&mut core, alice, now);
    assert!(out.contains(&Output::Attach {
        session: second,
        from: second,
        to: alice
    }));
    let (made, out) = transport_made(&mut core, ticket, now);
    // The old connection is told no; the node closes the transport; Alice has none.
    let replies = replies(&out);
    let [(session, 2, Err(e))] = &replies[..] else {
        panic!("{out:?}")
    };
    assert_eq!((*session, e.code), (alice, ClientErrorCode::NotJoined));
    let router = target_of(&core, alice).router;
    let close = Cleanup::CloseTransport(call::CloseTransport {
        router,
        transport: made.transport,
    });
    assert_eq!(cleanups(&out), [(NODE, close)]);
    let views = core.views(None);
    let view = &views[&RoomId("room".into())];
    assert!(
        view.peers[&alice].transports.is_empty(),
        "{:?}",
        view.peers[&alice]
    );
}

#[test]
fn an_answer_for_the_current_connection_is_its_reply() {
    let mut core = new_core(limits());
    let (alice, ticket, now) = alice_asks_for_a_transport(&mut core);
    let (made, out) = transport_made(&mut core, ticket, now);
    let replies = replies(&out);
    let [(session, 2, Ok(Answer::TransportCreated(created)))] = &replies[..] else {
        panic!("{out:?}")
    };
    assert_eq!((*session, created.transport_id), (alice, made.transport));
    // The same ticket again is nobody's.
    let again = Input::Answer {
        ticket,
        result: Ok(Response::TransportCreated(made)),
    };
    core.handle(again, now);
    assert!(outputs(&mut core).0.is_empty());
}

#[test]
fn a_failed_node_call_is_the_clients_error() {
    let mut core = new_core(limits());
    let (alice, ticket, now) = alice_asks_for_a_transport(&mut core);
    let gone = ClientError::new(ClientErrorCode::NodeUnavailable, "node 1 is gone");
    core.handle(
        Input::Answer {
            ticket,
            result: Err(gone.clone()),
        },
        now,
    );
    let (out, _) = outputs(&mut core);
    assert_eq!(replies(&out), [(alice, 2, Err(gone))]);
}

#[test]
fn a_dropped_peer_leaves_when_its_timeout_comes_unless_it_resumed() {
    let mut core = new_core(limits());
    core.resume_grace = Duration::from_secs(30);
    let now = Instant::now();
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    room_of(&mut core, "room", &[alice, bob], now);
    drain(&mut core);
    core.handle(Input::Detached { peer: alice }, now);
    let (_, at) = outputs(&mut core);
    assert_eq!(
        at,
        now + Duration::from_secs(30),
        "the end of Alice's grace period"
    );
    // Bob drops too, and resumes: his own deadline must not take him out.
    core.handle(Input::Detached { peer: bob }, now + Duration::from_secs(1));
    resume_elsewhere(&mut core, bob, now + Duration::from_secs(2));
    core.handle(Input::Timeout, at);
    let (_, tick) = outputs(&mut core);
    assert_eq!(
        tick,
        at + ANNOUNCE_TICK,
        "the leave is told at the end of the tick"
    );
    core.handle(Input::Timeout, tick);
    let (out, next) = outputs(&mut core);
    assert_eq!(told(&out, bob), [left(&[alice])]);
    assert!(!core.is_joined(alice));
    // Bob's deadline comes and goes: he stays.
    core.handle(Input::Timeout, next);
    let (out, _) = outputs(&mut core);
    assert!(core.is_joined(bob), "{out:?}");
}

#[test]
fn a_dropped_peer_leaves_at_once_without_resume() {
    let mut core = new_core(limits());
    let now = Instant::now();
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    room_of(&mut core, "room", &[alice, bob], now);
    core.handle(Input::Detached { peer: alice }, now);
    let (_, tick) = outputs(&mut core);
    core.handle(Input::Timeout, tick);
    let (out, _) = outputs(&mut core);
    assert_eq!(told(&out, bob), [left(&[alice])]);
}
