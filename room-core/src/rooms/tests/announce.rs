//! Scenarios of announcements: a tick's joins and leaves go out as one `peersChanged` per
//! peer, each peer hears only what came after its own join, watchers of a large room are
//! counted rather than listed, and a peer is announced before its first producer.

use std::time::Duration;

use signaling_api::JoinedPeer;

use super::super::announce::{count_tick, COUNT_TICK};

use super::*;

fn changes(outputs: &[Output], peer: PeerId) -> Vec<(Vec<PeerId>, Vec<PeerId>, Option<u32>)> {
    told(outputs, peer)
        .into_iter()
        .filter_map(|n| match n {
            Notification::PeersChanged {
                joined,
                left,
                watching,
            } => Some((joined.iter().map(|j| j.peer_id).collect(), left, watching)),
            _ => None,
        })
        .collect()
}

/// Joins `name` to `room`, which has a router with room: its announcement waits for the end
/// of the tick (unlike [`join`], which ends it).
fn enter(core: &mut RoomCore, room: &str, name: &str) -> PeerId {
    let peer = Uuid::new_v4();
    let step = core.handle_join(peer, &args(room, name), Rights::ALL, Instant::now());
    assert!(matches!(step, Ok(JoinStep::Joined(_))), "{step:?}");
    peer
}

#[test]
fn joins_of_one_tick_are_one_frame_and_each_joiner_hears_only_those_after_it() {
    let mut core = new_core(Limits {
        max_peers_per_room: 10,
        ..limits()
    });
    let alice = join(&mut core, "demo", "Alice");
    drain(&mut core);
    // Bob, Carol and Dan join within one tick (the helper does not end it), Bob leaves.
    let bob = enter(&mut core, "demo", "Bob");
    let carol = enter(&mut core, "demo", "Carol");
    let dan = enter(&mut core, "demo", "Dan");
    core.handle_leave(bob).unwrap();
    let outputs = drain(&mut core);
    let frames = (outputs.iter())
        .filter(|o| {
            matches!(
                o,
                Output::Notify {
                    notification: Notification::PeersChanged { .. },
                    ..
                }
            )
        })
        .count();
    // One per distinct view (Alice's, Carol's, Dan's), not one per event per peer.
    assert_eq!(frames, 3);
    // Bob joined and left: Alice knew nothing of him before, and is told he is gone.
    assert_eq!(
        changes(&outputs, alice),
        vec![(vec![carol, dan], vec![bob], None)]
    );
    // Carol's join answer listed Bob (and Alice): she hears of Dan, and of Bob's leave.
    assert_eq!(changes(&outputs, carol), vec![(vec![dan], vec![bob], None)]);
    // Dan's join answer was the room as it was; only Bob's leave came after.
    assert_eq!(changes(&outputs, dan), vec![(vec![], vec![bob], None)]);
    assert!(matches!(
        &told(&outputs, alice)[0],
        Notification::PeersChanged { joined, .. } if joined[0] == JoinedPeer { peer_id: carol, display_name: "Carol".into() }
    ));
}

#[test]
fn in_a_room_above_the_listing_size_watchers_are_counted_not_listed() {
    let mut core = new_core(Limits {
        max_peers_per_room: 10,
        list_watchers_up_to: 2,
        ..limits()
    });
    let alice = join(&mut core, "webinar", "Alice");
    let bob = join(&mut core, "webinar", "Bob");
    drain(&mut core);
    // Two viewers join: the room has two peers already, so they are counted.
    let mut viewers = Vec::new();
    for name in ["V1", "V2"] {
        let viewer = Uuid::new_v4();
        let mut watch = args("webinar", name);
        watch.watch_only = true;
        let step = core.handle_join(viewer, &watch, Rights::ALL, Instant::now());
        let Ok(JoinStep::Joined(answer)) = step else {
            panic!("{step:?}");
        };
        // The answer lists Alice and Bob, and counts the viewers before this one.
        assert_eq!(answer.peers.len(), 2, "{answer:?}");
        assert_eq!(answer.watching, (!viewers.is_empty()).then_some(1));
        viewers.push(viewer);
    }
    let outputs = drain(&mut core);
    assert_eq!(changes(&outputs, alice), vec![(vec![], vec![], Some(2))]);
    assert_eq!(
        changes(&outputs, viewers[0]),
        vec![(vec![], vec![], Some(2))]
    );
    // A publisher still is listed, with the count.
    let carol = enter(&mut core, "webinar", "Carol");
    let outputs = drain(&mut core);
    assert_eq!(changes(&outputs, bob), vec![(vec![carol], vec![], Some(2))]);
    // A viewer leaves: counted down, named to nobody.
    core.handle_leave(viewers[1]).unwrap();
    let outputs = drain(&mut core);
    assert_eq!(changes(&outputs, alice), vec![(vec![], vec![], Some(1))]);
}

#[test]
fn a_peer_is_announced_before_its_first_producer() {
    let mut core = new_core(limits());
    let alice = join(&mut core, "demo", "Alice");
    drain(&mut core);
    let bob = enter(&mut core, "demo", "Bob");
    let send = transport(&mut core, bob, Direction::Send);
    let pending = core
        .begin_produce(bob, produce_args(send, Kind::Audio))
        .unwrap();
    let answer = call::Produced {
        producer: ProducerId(Uuid::new_v4()),
    };
    core.handle_produced(bob, pending, answer).unwrap();
    // Without the end of the tick: Bob's join is told first.
    let outputs: Vec<Output> = std::iter::from_fn(|| core.poll_queued()).collect();
    let news = told(&outputs, alice);
    assert!(
        matches!(
            &news[..],
            [
                Notification::PeersChanged { .. },
                Notification::NewProducer { .. }
            ]
        ),
        "{news:?}"
    );
}

#[test]
fn a_change_of_the_watcher_count_alone_is_told_at_most_once_a_second() {
    let mut core = new_core(Limits {
        max_peers_per_room: 10,
        list_watchers_up_to: 1,
        ..limits()
    });
    let alice = join(&mut core, "webinar", "Alice");
    drain(&mut core);
    let t0 = Instant::now();
    let watch = |core: &mut RoomCore, name: &str| {
        let mut args = args("webinar", name);
        args.watch_only = true;
        let step = core.handle_join(Uuid::new_v4(), &args, Rights::ALL, t0);
        assert!(matches!(step, Ok(JoinStep::Joined(_))), "{step:?}");
    };
    let told_now = |core: &mut RoomCore, at: Instant| {
        core.announce_due(at);
        let outputs: Vec<Output> = std::iter::from_fn(|| core.poll_queued()).collect();
        changes(&outputs, alice)
    };
    watch(&mut core, "V1");
    assert_eq!(
        told_now(&mut core, t0 + ANNOUNCE_TICK),
        vec![(vec![], vec![], Some(1))]
    );
    // A second viewer within the second: not yet.
    watch(&mut core, "V2");
    assert!(told_now(&mut core, t0 + 2 * ANNOUNCE_TICK).is_empty());
    assert!(told_now(&mut core, t0 + Duration::from_millis(900)).is_empty());
    // A publisher joins meanwhile: told at once, with the count.
    let bob = enter(&mut core, "webinar", "Bob");
    let at = t0 + Duration::from_millis(950);
    assert_eq!(told_now(&mut core, at), vec![(vec![bob], vec![], Some(2))]);
    // The next count change waits a second from then.
    watch(&mut core, "V3");
    assert!(told_now(&mut core, at + Duration::from_millis(500)).is_empty());
    let later = at + COUNT_TICK;
    assert_eq!(told_now(&mut core, later), vec![(vec![], vec![], Some(3))]);
}

#[test]
fn a_large_room_is_told_its_count_at_most_about_100_times_a_second_in_all() {
    assert_eq!(count_tick(10), COUNT_TICK);
    assert_eq!(count_tick(100), COUNT_TICK);
    assert_eq!(count_tick(1_000), Duration::from_secs(10));
    // Frames per second for the whole room stay bounded as it grows.
    for peers in [300usize, 1_000, 5_000, 20_000] {
        let per_second = peers as f64 / count_tick(peers).as_secs_f64();
        assert!(per_second <= 100.0, "{peers} peers: {per_second} frames/s");
    }
}
