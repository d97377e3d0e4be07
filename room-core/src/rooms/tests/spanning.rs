//! Scenarios of rooms over several routers: where a join goes when its router is full, links
//! between nodes, producers piped and announced, closes and pauses reaching every copy, a lost
//! node moving only its peers, one active speaker per room.

use std::time::Instant;

use ipc::calls as call;
use ipc::messages::{NodeEvent, ProducerId, RoomId, RouterId, TransportId};
use uuid::Uuid;

use super::*;

/// A peer of a full-mesh call: its id and receive transport.
pub(super) struct Member {
    pub(super) peer: PeerId,
    pub(super) recv: TransportId,
}

fn cap8() -> Limits {
    Limits {
        max_consumers_per_worker: 8,
        max_peers_per_room: 10,
        max_nodes: 2,
        list_watchers_up_to: 100,
        ..limits()
    }
}

/// The producers `peer` may consume on its router: every other peer's there or piped there.
fn consumable(core: &RoomCore, peer: PeerId) -> Vec<ProducerId> {
    let (_, room) = core.room_of_peer(peer).unwrap();
    let router = room.peers[&peer].router;
    room.peers
        .iter()
        .filter(|(id, _)| **id != peer)
        .flat_map(|(_, p)| {
            p.producers
                .iter()
                .filter(move |(_, e)| p.router == router || e.copies.get(&router) == Some(&true))
                .map(|(id, _)| *id)
        })
        .collect()
}

/// `peer`, just joined, publishes two tracks and consumes everything; the others consume its
/// tracks. Links and pipes succeed.
fn publish_and_consume_all(core: &mut RoomCore, peer: PeerId, members: &mut Vec<Member>) {
    let send = transport(core, peer, Direction::Send);
    let recv = transport(core, peer, Direction::Recv);
    let mine = [produce(core, peer, send), produce(core, peer, send)];
    for producer in consumable(core, peer) {
        consume(core, peer, recv, producer);
    }
    for m in members.iter() {
        for producer in mine {
            consume(core, m.peer, m.recv, producer);
        }
    }
    members.push(Member { peer, recv });
    settle(core);
}

/// A, B on worker 0 of NODE and C on its worker 1 (cap 8): the room fills NODE.
pub(super) fn three_on_one_node() -> (RoomCore, Vec<Member>) {
    let mut core = new_core(cap8());
    let mut members = Vec::new();
    for name in ["A", "B", "C"] {
        let peer = join_on(&mut core, "demo", name, &[(NODE, 2)]);
        publish_and_consume_all(&mut core, peer, &mut members);
    }
    (core, members)
}

/// `peer`'s producers.
fn producers_of(core: &RoomCore, peer: PeerId) -> Vec<ProducerId> {
    core.rooms()[&RoomId("demo".into())].peers[&peer]
        .producers
        .keys()
        .copied()
        .collect()
}

/// A third producer of `peer` (a screen share), without settling its pipes: its id and what
/// the core asked for.
fn third_producer(
    core: &mut RoomCore,
    peer: PeerId,
    send: TransportId,
) -> (ProducerId, Vec<Output>) {
    core.limits.max_producers_per_peer = 3;
    let pending = core
        .begin_produce(peer, produce_args(send, Kind::Video))
        .unwrap();
    let new = ProducerId(Uuid::new_v4());
    core.handle_produced(peer, pending, call::Produced { producer: new })
        .unwrap();
    (new, drain(core))
}

fn routers_of(core: &RoomCore) -> Vec<(NodeId, u32)> {
    let room = &core.rooms()[&RoomId("demo".into())];
    let mut at: Vec<(NodeId, u32)> = room.routers.values().map(|r| (r.node, r.worker)).collect();
    at.sort();
    at
}

#[test]
fn a_room_that_fills_its_worker_spills_to_its_node_then_to_a_new_node() {
    let (mut core, mut members) = three_on_one_node();
    assert_eq!(routers_of(&core), vec![(NODE, 0), (NODE, 1)]);
    assert_eq!(
        target_of(&core, members[0].peer),
        target_of(&core, members[1].peer)
    );
    // D fits on neither worker; NODE has no third: a node must be started.
    let d = Uuid::new_v4();
    let step = core.handle_join(d, &args("demo", "D"), Rights::ALL, Instant::now());
    assert_eq!(step, Ok(JoinStep::NeedsRouter));
    let demo = RoomId("demo".into());
    assert_eq!(
        core.place_router(&demo, &[(NODE, 2)], 1, Instant::now()),
        Placement::SpawnNode
    );
    let ready = [(NODE, 2), (OTHER_NODE, 2)];
    assert_eq!(
        core.place_router(&demo, &ready, 2, Instant::now()),
        Placement::Worker(OTHER_NODE, 0)
    );
    let caps = Json(router_caps().to_string());
    let router = RouterId(Uuid::new_v4());
    core.handle_router_created(demo.clone(), router, (OTHER_NODE, 0), &caps, Instant::now())
        .unwrap();
    // Linked to both routers on NODE before anything is piped to it.
    let outputs = drain(&mut core);
    let links: Vec<LinkOrder> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Link(l) => Some(*l),
            _ => None,
        })
        .collect();
    assert_eq!(links.len(), 2);
    assert!(links
        .iter()
        .all(|l| l.low.router == router || l.high.router == router));
    assert!(!outputs.iter().any(|o| matches!(o, Output::Pipe(_))));
    // Once linked, the six producers are piped to it through the links' transports.
    for link in links.clone() {
        let pair = (TransportId(Uuid::new_v4()), TransportId(Uuid::new_v4()));
        core.handle_linked(link.low, link.high, Ok(pair));
    }
    let piped = settle_links_then_pipes(&mut core);
    assert_eq!(piped.len(), 6);
    assert!(piped
        .iter()
        .all(|p| p.to.router == router && p.via.is_some()));
    let step = core.handle_join(d, &args("demo", "D"), Rights::ALL, Instant::now());
    let Ok(JoinStep::Joined(answer)) = step else {
        panic!("D not joined: {step:?}");
    };
    let offered: usize = answer.peers.iter().map(|p| p.producers.len()).sum();
    assert_eq!(offered, 6, "D is offered every producer at once");
    publish_and_consume_all(&mut core, d, &mut members);
    assert_eq!(
        routers_of(&core),
        vec![(NODE, 0), (NODE, 1), (OTHER_NODE, 0)]
    );
    // At the node cap, a fifth peer that fits nowhere is refused.
    let e = Uuid::new_v4();
    assert_eq!(
        core.handle_join(e, &args("demo", "E"), Rights::ALL, Instant::now()),
        Ok(JoinStep::NeedsRouter)
    );
    assert_eq!(
        core.place_router(&demo, &[(NODE, 2), (OTHER_NODE, 1)], 2, Instant::now()),
        Placement::Full
    );
}

#[test]
fn a_room_on_a_full_host_spills_to_another_hosts_node_unless_that_host_reports_it_full() {
    let (core, _members) = three_on_one_node();
    let demo = RoomId("demo".into());
    let remote = NodeId(1 << 31);
    // This host's pool may still grow: a node of its own comes before another host's.
    assert_eq!(
        core.place_router_spilling(&demo, &[(NODE, 2)], &[(remote, vec![0])], 1, Instant::now()),
        Placement::SpawnNode
    );
    // At the node cap: the other host's idle worker.
    let full_here = [(NODE, 2)];
    let d = Uuid::new_v4();
    let mut core = core;
    let step = core.handle_join(d, &args("demo", "D"), Rights::ALL, Instant::now());
    assert_eq!(step, Ok(JoinStep::NeedsRouter));
    assert_eq!(
        core.place_router_spilling(&demo, &full_here, &[(remote, vec![0])], 2, Instant::now()),
        Placement::Worker(remote, 0)
    );
    // Its host reports that worker full (its own rooms): nowhere to go.
    assert_eq!(
        core.place_router_spilling(
            &demo,
            &full_here,
            &[(remote, vec![u32::MAX])],
            2,
            Instant::now()
        ),
        Placement::Full
    );
}

#[test]
fn a_room_lost_to_another_host_closes_its_routers_and_moves_every_peer() {
    let (mut core, members) = three_on_one_node();
    drain(&mut core);
    let demo = RoomId("demo".into());
    let routers: Vec<RouterId> = core.rooms()[&demo].routers.keys().copied().collect();
    assert_eq!(routers.len(), 2);
    core.handle(
        Input::RoomLost {
            room: demo.clone(),
            reason: "host h2 owns it now".into(),
        },
        Instant::now(),
    );
    let out = drain(&mut core);
    // Its routers are alive on this host's node: closed, each once.
    let mut closed: Vec<RouterId> = cleanups(&out)
        .into_iter()
        .filter_map(|(node, c)| match c {
            Cleanup::CloseRouter(c) if node == NODE => Some(c.router),
            _ => None,
        })
        .collect();
    closed.sort();
    let mut expected = routers.clone();
    expected.sort();
    assert_eq!(closed, expected);
    // Every peer is told to join again, and the room is gone here.
    for member in &members {
        let moved = told(&out, member.peer)
            .into_iter()
            .any(|n| matches!(n, Notification::RoomMoved { ref reason, .. } if reason.contains("h2 owns it")));
        assert!(moved, "{} not moved: {out:?}", member.peer);
    }
    assert!(!core.rooms().contains_key(&demo));
    assert!(!core.is_joined(members[0].peer));
}

/// Collects (and completes) the pipes the core orders.
fn settle_links_then_pipes(core: &mut RoomCore) -> Vec<PipeOrder> {
    settle(core)
        .into_iter()
        .filter_map(|o| match o {
            Output::Pipe(p) => Some(p),
            _ => None,
        })
        .collect()
}

#[test]
fn a_producer_is_announced_on_another_router_only_once_piped_there() {
    let (mut core, members) = three_on_one_node();
    let (a, c) = (members[0].peer, members[2].peer);
    let send = core.rooms()[&RoomId("demo".into())].peers[&a]
        .transports
        .iter()
        .find(|(_, d)| **d == Direction::Send)
        .map(|(t, _)| *t)
        .unwrap();
    // A third producer of A (screen share): its room mate B hears of it at once, C (on the
    // other worker) once it is piped there.
    let (new, outputs) = third_producer(&mut core, a, send);
    let b = members[1].peer;
    assert!(told(&outputs, b).contains(&Notification::NewProducer {
        peer_id: a,
        producer_id: new,
        kind: Kind::Video,
        app_data: None,
    }));
    assert!(told(&outputs, c).is_empty());
    let order = outputs
        .iter()
        .find_map(|o| match o {
            Output::Pipe(p) => Some(p.clone()),
            _ => None,
        })
        .expect("a pipe to C's router");
    assert_eq!((order.to, order.via), (target_of(&core, c), None));
    let early = core.begin_consume(c, consume_args(members[2].recv, new));
    assert_eq!(early.unwrap_err().code, ClientErrorCode::NotFound);
    core.handle_piped(&order, Ok(()));
    assert_eq!(
        told(&drain(&mut core), c),
        vec![Notification::NewProducer {
            peer_id: a,
            producer_id: new,
            kind: Kind::Video,
            app_data: None,
        }]
    );
    assert!(core
        .begin_consume(c, consume_args(members[2].recv, new))
        .is_ok());
}

#[test]
fn a_failed_pipe_is_never_announced_and_leaves_no_copy() {
    let (mut core, members) = three_on_one_node();
    let (a, c) = (members[0].peer, members[2].peer);
    let send = transport(&mut core, a, Direction::Send);
    let (new, outputs) = third_producer(&mut core, a, send);
    let order = outputs
        .into_iter()
        .find_map(|o| match o {
            Output::Pipe(p) => Some(p),
            _ => None,
        })
        .unwrap();
    core.handle_piped(
        &order,
        Err(PipeError::Step {
            node: NODE,
            step: "pipe consume",
            reason: "request timed out".into(),
        }),
    );
    assert!(told(&drain(&mut core), c).is_empty());
    assert!(core.copies_of(a, new).is_empty());
}

#[test]
fn closing_a_producer_closes_its_copies_and_its_consumers_on_every_router() {
    let (mut core, members) = three_on_one_node();
    let (a, c) = (members[0].peer, members[2].peer);
    let producer = producers_of(&core, a)[0];
    let copies = core.copies_of(a, producer);
    assert_eq!(
        copies,
        vec![target_of(&core, c)],
        "piped to C's router only"
    );
    // Pause and resume go to the same routers (the shell relays them to each copy).
    core.producer_request(a, &producer.to_string(), ProducerAction::Close)
        .unwrap();
    let outputs = drain(&mut core);
    assert!(cleanups(&outputs).contains(&(
        NODE,
        Cleanup::CloseProducer(call::CloseProducer {
            router: copies[0].router,
            producer
        })
    )));
    for member in &members[1..] {
        let closed = told(&outputs, member.peer);
        assert!(
            matches!(closed[..], [Notification::ConsumerClosed { producer_id, .. }] if producer_id == producer),
            "{closed:?}"
        );
    }
}

#[test]
fn a_router_closes_with_its_last_peer_and_the_room_forgets_its_copies() {
    let (mut core, members) = three_on_one_node();
    let c = members[2].peer;
    let router = target_of(&core, c).router;
    core.handle_leave(c).unwrap();
    let outputs = drain(&mut core);
    assert!(
        cleanups(&outputs).contains(&(NODE, Cleanup::CloseRouter(call::CloseRouter { router })))
    );
    assert_eq!(routers_of(&core), vec![(NODE, 0)]);
    assert!(core
        .copies_of(members[0].peer, consumable(&core, members[1].peer)[0])
        .is_empty());
}

#[test]
fn losing_a_node_moves_only_the_peers_of_its_routers_and_closes_its_links() {
    let (mut core, mut members) = three_on_one_node();
    let d = join_on(&mut core, "demo", "D", &[(NODE, 2), (OTHER_NODE, 2)]);
    publish_and_consume_all(&mut core, d, &mut members);
    assert_eq!(target_of(&core, d).node, OTHER_NODE);
    let d_producers = producers_of(&core, d);
    core.handle_node_lost(OTHER_NODE, "exited with signal 9");
    let outputs = drain(&mut core);
    assert!(matches!(
        told(&outputs, d)[..],
        [Notification::RoomMoved { .. }]
    ));
    for m in &members[..3] {
        let news = told(&outputs, m.peer);
        assert!(news.contains(&left(&[d])), "{news:?}");
        let closed = news
            .iter()
            .filter(|n| matches!(n, Notification::ConsumerClosed { producer_id, .. } if d_producers.contains(producer_id)))
            .count();
        assert_eq!(closed, 2, "{news:?}");
        assert!(!news
            .iter()
            .any(|n| matches!(n, Notification::RoomMoved { .. })));
    }
    // The pipe transports on NODE that led to the lost router are closed, and the copies of
    // D's producers there; nothing is sent to the dead node.
    let closes = cleanups(&outputs);
    let transports = closes
        .iter()
        .filter(|(_, c)| matches!(c, Cleanup::CloseTransport(_)))
        .count();
    let copies = closes
        .iter()
        .filter(
            |(_, c)| matches!(c, Cleanup::CloseProducer(p) if d_producers.contains(&p.producer)),
        )
        .count();
    assert_eq!((transports, copies, closes.len()), (2, 4, 6), "{closes:?}");
    assert!(closes.iter().all(|(n, _)| *n == NODE));
    assert_eq!(routers_of(&core), vec![(NODE, 0), (NODE, 1)]);
    assert!(!core.is_joined(d));
    assert!(members[..3].iter().all(|m| core.is_joined(m.peer)));
}

#[test]
fn a_failed_link_closes_the_router_being_opened_and_its_join_is_abandoned() {
    let (mut core, _) = three_on_one_node();
    let demo = RoomId("demo".into());
    let caps = Json(router_caps().to_string());
    let router = RouterId(Uuid::new_v4());
    core.handle_router_created(demo.clone(), router, (OTHER_NODE, 0), &caps, Instant::now())
        .unwrap();
    let links: Vec<LinkOrder> = drain(&mut core)
        .into_iter()
        .filter_map(|o| match o {
            Output::Link(l) => Some(l),
            _ => None,
        })
        .collect();
    core.handle_linked(
        links[0].low,
        links[0].high,
        Err(PipeError::NodeGone(OTHER_NODE)),
    );
    // The other link comes back up after the router was closed: its transports are closed.
    let pair = (TransportId(Uuid::new_v4()), TransportId(Uuid::new_v4()));
    core.handle_linked(links[1].low, links[1].high, Ok(pair));
    let outputs = drain(&mut core);
    assert!(cleanups(&outputs).contains(&(
        OTHER_NODE,
        Cleanup::CloseRouter(call::CloseRouter { router })
    )));
    assert_eq!(routers_of(&core), vec![(NODE, 0), (NODE, 1)]);
    let d = Uuid::new_v4();
    assert_eq!(
        core.handle_join(d, &args("demo", "D"), Rights::ALL, Instant::now()),
        Ok(JoinStep::NeedsRouter)
    );
    core.handle_join_abandoned(&demo);
    assert_eq!(
        routers_of(&core),
        vec![(NODE, 0), (NODE, 1)],
        "the room's peers stay"
    );
}

#[test]
fn only_the_oldest_router_speaks_for_the_room() {
    let (mut core, members) = three_on_one_node();
    let (a, c) = (members[0].peer, members[2].peer);
    let producer = producers_of(&core, a)[0];
    let second = target_of(&core, c).router;
    core.handle_node_event(
        NODE,
        NodeEvent::ActiveSpeaker {
            router: second,
            producer,
        },
    );
    assert!(
        drain(&mut core).is_empty(),
        "a copy's observer is not the room's"
    );
    let first = target_of(&core, a).router;
    core.handle_node_event(
        NODE,
        NodeEvent::ActiveSpeaker {
            router: first,
            producer,
        },
    );
    let outputs = drain(&mut core);
    for m in &members {
        assert_eq!(
            told(&outputs, m.peer),
            vec![Notification::ActiveSpeaker {
                peer_id: a,
                producer_id: producer
            }]
        );
    }
}
