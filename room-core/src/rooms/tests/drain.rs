//! Scenarios of a node drained under a live call: peers move make before break (a router
//! elsewhere first, `mediaMoving`, their old transports working until they close them), the
//! node's routers close once unused, the drain's deadline, and placement around the node.

use std::time::Duration;

use super::contract::{calls, open_with, outputs, replies};
use super::*;
use crate::rooms::drain::DRAIN_DEADLINE;
use crate::rooms::Input;
use ipc::calls::Response;
use signaling_api::{Request, TransportArgs};

/// One side of the call: the peer, its transports and what it sends and receives.
struct Side {
    peer: PeerId,
    send: TransportId,
    recv: TransportId,
    producer: ProducerId,
}

/// Alice and Bob on NODE, each sending one track and receiving the other's.
fn call_on_node() -> (RoomCore, Side, Side) {
    let mut core = new_core(limits());
    let mut sides = Vec::new();
    for name in ["Alice", "Bob"] {
        let peer = join(&mut core, "demo", name);
        let send = transport(&mut core, peer, Direction::Send);
        let recv = transport(&mut core, peer, Direction::Recv);
        let producer = produce(&mut core, peer, send);
        sides.push(Side {
            peer,
            send,
            recv,
            producer,
        });
    }
    let (alice, bob) = (sides.remove(0), sides.remove(0));
    consume(&mut core, alice.peer, alice.recv, bob.producer);
    consume(&mut core, bob.peer, bob.recv, alice.producer);
    drain(&mut core);
    (core, alice, bob)
}

/// Carries out links and pipes through `handle` (so that waiting moves go on) until
/// nothing is left; every output on the way.
fn settle_inputs(core: &mut RoomCore, first: Vec<Output>, now: Instant) -> Vec<Output> {
    let mut all = Vec::new();
    let mut next = first;
    while !next.is_empty() {
        for output in &next {
            let input = match output {
                Output::Link(order) => Input::Linked {
                    order: *order,
                    result: Ok((TransportId(Uuid::new_v4()), TransportId(Uuid::new_v4()))),
                },
                Output::Pipe(order) => Input::Piped {
                    order: order.clone(),
                    result: Ok(()),
                },
                _ => continue,
            };
            core.handle(input, now);
        }
        all.append(&mut next);
        next = std::iter::from_fn(|| core.poll_output())
            .filter(|o| !matches!(o, Output::Timeout(_)))
            .collect();
    }
    all
}

/// Drains NODE under the call: a router opens on OTHER_NODE and both peers move there.
fn drained_call() -> (RoomCore, Side, Side, Vec<Output>, Instant) {
    let (mut core, alice, bob) = call_on_node();
    let now = Instant::now();
    core.handle(Input::Drain { node: NODE }, now);
    let (out, _) = outputs(&mut core);
    let find = out
        .iter()
        .find_map(|o| match o {
            Output::FindNodes { ticket } => Some(*ticket),
            _ => None,
        })
        .expect("a router elsewhere is placed");
    let opened = open_with(&mut core, find, &[(OTHER_NODE, 1), (NODE, 1)], now);
    let mut all = out;
    all.extend(settle_inputs(&mut core, opened, now));
    (core, alice, bob, all, now)
}

/// `peer` closes one of its transports through the contract; the node says done.
fn close_transport(
    core: &mut RoomCore,
    peer: PeerId,
    transport: TransportId,
    now: Instant,
) -> Vec<Output> {
    let request = Request::CloseTransport(TransportArgs {
        transport_id: transport.to_string(),
    });
    core.handle(
        Input::Request {
            session: peer,
            peer,
            id: 7,
            request,
        },
        now,
    );
    let (mut out, _) = outputs(core);
    let [(ticket, node, call::Request::CloseTransport(_))] = &calls(&out)[..] else {
        panic!("one closeTransport expected: {out:?}");
    };
    assert_eq!(*node, NODE, "the old transport is on the drained node");
    let done = Input::Answer {
        ticket: *ticket,
        result: Ok(Response::Done),
    };
    core.handle(done, now);
    out.extend(outputs(core).0);
    out
}

fn router_closes(out: &[Output]) -> Vec<NodeId> {
    cleanups(out)
        .into_iter()
        .filter(|(_, c)| matches!(c, Cleanup::CloseRouter(_)))
        .map(|(node, _)| node)
        .collect()
}

fn drained(out: &[Output]) -> Vec<NodeId> {
    (out.iter())
        .filter_map(|o| match o {
            Output::NodeDrained { node } => Some(*node),
            _ => None,
        })
        .collect()
}

#[test]
fn a_drained_nodes_peers_move_elsewhere_before_anything_of_theirs_closes() {
    let (core, alice, bob, out, _) = drained_call();
    for side in [&alice, &bob] {
        let moving: Vec<_> = (told(&out, side.peer).into_iter())
            .filter(|n| matches!(n, Notification::MediaMoving { .. }))
            .collect();
        assert_eq!(moving.len(), 1, "{out:?}");
        assert_eq!(target_of(&core, side.peer).node, OTHER_NODE);
    }
    // Each is told what it can consume on its new router: the other's producer, piped there.
    let Some(Notification::MediaMoving { peers }) = told(&out, alice.peer).into_iter().last()
    else {
        panic!("alice was told mediaMoving last");
    };
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].producers[0].producer_id, bob.producer);
    // Make before break: nothing the peers have is closed yet, the node is not drained.
    let closes: Vec<_> = cleanups(&out)
        .into_iter()
        .filter(|(node, _)| *node == NODE)
        .collect();
    assert!(closes.is_empty(), "{closes:?}");
    assert!(drained(&out).is_empty());
    let events = monitor_events(&out);
    assert!(events.contains(&EventKind::NodeDraining {
        node: NODE.to_string(),
        peers: 2
    }));
    let moved = (events.iter()).filter(|e| matches!(e, EventKind::PeerMoved { .. }));
    assert_eq!(moved.count(), 2);
}

#[test]
fn a_moved_peer_works_on_both_routers_until_it_closes_its_old_transports_then_the_node_is_drained()
{
    let (mut core, alice, bob, _, now) = drained_call();
    // New transports go to the new router; the old ones still answer (on the old one).
    let mut news = Vec::new();
    for side in [&alice, &bob] {
        let send = transport(&mut core, side.peer, Direction::Send);
        let recv = transport(&mut core, side.peer, Direction::Recv);
        let old = core
            .own_transport(side.peer, &side.recv.to_string(), None)
            .unwrap();
        assert_eq!(old.0.node, NODE);
        let new = core
            .own_transport(side.peer, &recv.to_string(), None)
            .unwrap();
        assert_eq!(new.0.node, OTHER_NODE);
        news.push((send, recv));
    }
    // Each consumes the other's old producer again on its new transport (once there, not
    // twice), and produces again.
    let again = consume(&mut core, alice.peer, news[0].1, bob.producer);
    assert_eq!(again.producer_id, bob.producer);
    let twice = core.begin_consume(alice.peer, consume_args(news[0].1, bob.producer));
    assert_eq!(twice.unwrap_err().code, ClientErrorCode::AlreadyConsuming);
    let alices_new = produce(&mut core, alice.peer, news[0].0);
    consume(&mut core, bob.peer, news[1].1, alices_new);
    drain(&mut core);
    // Alice closes her old transports: Bob's consumer of her old producer closes; the node
    // still has Bob's.
    let mut out = close_transport(&mut core, alice.peer, alice.send, now);
    out.extend(close_transport(&mut core, alice.peer, alice.recv, now));
    let closed = told(&out, bob.peer);
    assert!(
        closed.iter().any(|n| matches!(n,
            Notification::ConsumerClosed { producer_id, .. } if *producer_id == alice.producer)),
        "{closed:?}"
    );
    assert!(router_closes(&out).is_empty());
    assert!(drained(&out).is_empty());
    // Bob too: the node's router closes and the node is drained.
    let mut out = close_transport(&mut core, bob.peer, bob.send, now);
    out.extend(close_transport(&mut core, bob.peer, bob.recv, now));
    assert_eq!(router_closes(&out), vec![NODE]);
    assert_eq!(drained(&out), vec![NODE]);
    assert!(replies(&out).iter().all(|(_, _, r)| r.is_ok()), "{out:?}");
    // Both still in the room, on OTHER_NODE.
    assert_eq!(core.rooms()[&RoomId("demo".into())].peers.len(), 2);
}

#[test]
fn at_the_drain_deadline_what_a_peer_left_behind_closes_and_it_stays_in_the_room() {
    let (mut core, alice, bob, _, now) = drained_call();
    // Bob moves his media over; Alice never closes her old transports.
    let recv = transport(&mut core, bob.peer, Direction::Recv);
    consume(&mut core, bob.peer, recv, alice.producer);
    close_transport(&mut core, bob.peer, bob.send, now);
    close_transport(&mut core, bob.peer, bob.recv, now);
    let late = now + DRAIN_DEADLINE + Duration::from_millis(1);
    core.handle(Input::Timeout, late);
    let (out, _) = outputs(&mut core);
    assert_eq!(router_closes(&out), vec![NODE]);
    assert_eq!(drained(&out), vec![NODE]);
    let to_bob = told(&out, bob.peer);
    assert!(
        to_bob.iter().any(|n| matches!(n,
            Notification::ConsumerClosed { producer_id, .. } if *producer_id == alice.producer)),
        "{to_bob:?}"
    );
    // Nobody is sent away: both moved, only what Alice left on the node is gone.
    assert!(!out.iter().any(|o| matches!(
        o,
        Output::Notify {
            notification: Notification::RoomMoved { .. },
            ..
        }
    )));
    let room = &core.rooms()[&RoomId("demo".into())];
    assert_eq!(room.peers.len(), 2);
    assert!(room.peers[&alice.peer].transports.is_empty());
    assert!(monitor_events(&out)
        .iter()
        .any(|e| matches!(e, EventKind::NodeDrained { forced: true, .. })));
}

#[test]
fn a_node_being_drained_takes_no_router_and_its_replacement_may_start_at_max_nodes() {
    let (mut core, _, _) = call_on_node();
    core.limits.max_nodes = 1;
    core.handle(Input::Drain { node: NODE }, Instant::now());
    drain(&mut core);
    let room = RoomId("other".into());
    let placed = core.place_router(&room, &[(NODE, 1)], 1, Instant::now());
    assert_eq!(placed, Placement::SpawnNode);
}

#[test]
fn a_drained_node_without_routers_is_drained_at_once() {
    let mut core = new_core(limits());
    core.handle(Input::Drain { node: OTHER_NODE }, Instant::now());
    let (out, _) = outputs(&mut core);
    assert_eq!(drained(&out), vec![OTHER_NODE]);
}
