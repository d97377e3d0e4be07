//! Scenarios of joining and leaving: admission, refusals, rooms closed with their last peer, a node lost.

use std::time::Instant;

use ipc::calls as call;
use ipc::messages::{Json, NodeEvent, RoomId, RouterId};
use monitor_api::EventKind;
use serde_json::json;
use uuid::Uuid;

use super::*;

#[test]
fn joining_a_new_room_asks_for_its_router_first() {
    let mut core = new_core(limits());
    let alice = Uuid::new_v4();
    let step = core.handle_join(alice, &args("demo", "Alice"), Rights::ALL, Instant::now());
    assert_eq!(step, Ok(JoinStep::NeedsRouter));
    assert!(!core.is_joined(alice));
    let demo = RoomId("demo".into());
    assert_eq!(
        core.place_router(&demo, &[(NODE, 2)], 1, Instant::now()),
        Placement::Worker(NODE, 0)
    );
    let caps = Json(json!({"codecs": []}).to_string());
    let router = RouterId(Uuid::new_v4());
    core.handle_router_created(demo, router, (NODE, 0), &caps, Instant::now())
        .unwrap();
    assert_eq!(
        monitor_events(&drain(&mut core)),
        vec![EventKind::RoomCreated {
            room: "demo".into(),
            node: NODE.to_string(),
            worker: 0
        }]
    );
    let Ok(JoinStep::Joined(answer)) =
        core.handle_join(alice, &args("demo", " Alice "), Rights::ALL, Instant::now())
    else {
        panic!("not joined");
    };
    assert_eq!(answer.peer_id, alice);
    assert_eq!(answer.room, "demo");
    assert_eq!(answer.router_rtp_capabilities, json!({"codecs": []}));
    assert!(answer.peers.is_empty());
    let outputs = drain(&mut core);
    assert!(outputs.contains(&Output::Metric(MetricChange::Joined)));
    assert!(monitor_events(&outputs).contains(&EventKind::PeerJoined {
        room: "demo".into(),
        peer_id: alice.to_string(),
        display_name: "Alice".into(),
    }));
    assert!(core.is_joined(alice));
}

#[test]
fn joining_an_existing_room_lists_its_peers_and_tells_them() {
    let mut core = new_core(limits());
    let alice = join(&mut core, "demo", "Alice");
    let send = transport(&mut core, alice, Direction::Send);
    let producer = produce(&mut core, alice, send);
    drain(&mut core);
    let bob = Uuid::new_v4();
    let Ok(JoinStep::Joined(Joined { peers, .. })) =
        core.handle_join(bob, &args("demo", "Bob"), Rights::ALL, Instant::now())
    else {
        panic!("not joined");
    };
    assert_eq!(peers.len(), 1);
    assert_eq!(
        (peers[0].peer_id, peers[0].display_name.as_str()),
        (alice, "Alice")
    );
    assert_eq!(peers[0].producers[0].producer_id, producer);
    let outputs = drain(&mut core);
    assert_eq!(told(&outputs, alice), vec![joined(bob, "Bob")]);
    assert!(
        told(&outputs, bob).is_empty(),
        "a joiner is not told of itself"
    );
}

#[test]
fn a_full_room_refuses_with_room_full_and_tells_nobody() {
    let mut core = new_core(limits());
    let peers: Vec<PeerId> = (0..3)
        .map(|i| join(&mut core, "demo", &format!("p{i}")))
        .collect();
    let late = Uuid::new_v4();
    let refused = core.handle_join(late, &args("demo", "Late"), Rights::ALL, Instant::now());
    assert_eq!(refused.unwrap_err().code, ClientErrorCode::RoomFull);
    assert!(drain(&mut core).is_empty());
    assert!(!core.is_joined(late));
    assert!(peers.iter().all(|p| core.is_joined(*p)));
}

#[test]
fn a_new_room_goes_to_the_worker_with_the_fewest_consumers() {
    let (core, ..) = call_of_two();
    // "demo" holds one consumer on worker 0 of NODE.
    let other = RoomId("other".into());
    assert_eq!(
        core.place_router(&other, &[(NODE, 2)], 1, Instant::now()),
        Placement::Worker(NODE, 1)
    );
    assert_eq!(
        core.place_router(&other, &[(NODE, 1), (OTHER_NODE, 1)], 2, Instant::now()),
        Placement::Worker(OTHER_NODE, 0)
    );
}

#[test]
fn shutdown_refuses_joins_after_telling_everyone() {
    let mut core = new_core(limits());
    let alice = join(&mut core, "demo", "Alice");
    drain(&mut core);
    core.handle_shutdown();
    assert_eq!(
        told(&drain(&mut core), alice),
        vec![Notification::ShuttingDown {}]
    );
    let late = core.handle_join(
        Uuid::new_v4(),
        &args("demo", "Late"),
        Rights::ALL,
        Instant::now(),
    );
    assert_eq!(late.unwrap_err().code, ClientErrorCode::ShuttingDown);
}

#[test]
fn a_token_without_publish_or_subscribe_rights_is_forbidden_that() {
    let mut core = new_core(limits());
    let alice = join(&mut core, "demo", "Alice");
    let send = transport(&mut core, alice, Direction::Send);
    let producer = produce(&mut core, alice, send);
    let viewer = Uuid::new_v4();
    let listen_only = Rights {
        publish: false,
        subscribe: true,
        record: false,
    };
    assert!(matches!(
        core.handle_join(viewer, &args("demo", "Viewer"), listen_only, Instant::now()),
        Ok(JoinStep::Joined(_))
    ));
    let viewer_send = transport(&mut core, viewer, Direction::Send);
    let refused = core.begin_produce(viewer, produce_args(viewer_send, Kind::Audio));
    assert_eq!(refused.unwrap_err().code, ClientErrorCode::Forbidden);
    let viewer_recv = transport(&mut core, viewer, Direction::Recv);
    assert!(core
        .begin_consume(viewer, consume_args(viewer_recv, producer))
        .is_ok());

    let speaker = Uuid::new_v4();
    let speak_only = Rights {
        publish: true,
        subscribe: false,
        record: false,
    };
    assert!(matches!(
        core.handle_join(
            speaker,
            &args("demo", "Speaker"),
            speak_only,
            Instant::now()
        ),
        Ok(JoinStep::Joined(_))
    ));
    let speaker_recv = transport(&mut core, speaker, Direction::Recv);
    let refused = core.begin_consume(speaker, consume_args(speaker_recv, producer));
    assert_eq!(refused.unwrap_err().code, ClientErrorCode::Forbidden);
    let speaker_send = transport(&mut core, speaker, Direction::Send);
    assert!(core
        .begin_produce(speaker, produce_args(speaker_send, Kind::Audio))
        .is_ok());
}

#[test]
fn only_a_token_with_can_record_may_start_the_rooms_recording() {
    let mut core = new_core(limits());
    join(&mut core, "demo", "Alice");
    let stranger = Uuid::new_v4();
    assert_eq!(
        core.recording_room(stranger).unwrap_err().code,
        ClientErrorCode::NotJoined
    );
    let guest = Uuid::new_v4();
    assert!(matches!(
        core.handle_join(guest, &args("demo", "Guest"), Rights::OPEN, Instant::now()),
        Ok(JoinStep::Joined(_))
    ));
    let refused = core.recording_room(guest).unwrap_err();
    assert_eq!(refused.code, ClientErrorCode::Forbidden);
    assert!(refused.message.contains("canRecord"), "{refused:?}");
    let host = Uuid::new_v4();
    assert!(matches!(
        core.handle_join(host, &args("demo", "Host"), Rights::ALL, Instant::now()),
        Ok(JoinStep::Joined(_))
    ));
    assert_eq!(core.recording_room(host), Ok(RoomId("demo".into())));
}

#[test]
fn joining_twice_is_already_joined_and_bad_names_are_invalid() {
    let mut core = new_core(limits());
    let alice = join(&mut core, "demo", "Alice");
    let again = core.handle_join(alice, &args("other", "Alice"), Rights::ALL, Instant::now());
    assert_eq!(again.unwrap_err().code, ClientErrorCode::AlreadyJoined);
    for (room, name) in [("a b", "Bob"), ("ok", "\u{7}")] {
        let bad = core.handle_join(
            Uuid::new_v4(),
            &args(room, name),
            Rights::ALL,
            Instant::now(),
        );
        assert_eq!(bad.unwrap_err().code, ClientErrorCode::InvalidArgument);
    }
}

#[test]
fn the_last_peer_leaving_closes_the_room_and_its_router() {
    let mut core = new_core(limits());
    let alice = join(&mut core, "demo", "Alice");
    transport(&mut core, alice, Direction::Send);
    let router = target_of(&core, alice).router;
    core.handle_leave(alice).unwrap();
    let outputs = drain(&mut core);
    assert_eq!(
        cleanups(&outputs),
        vec![(NODE, Cleanup::CloseRouter(call::CloseRouter { router }))]
    );
    assert!(monitor_events(&outputs).contains(&EventKind::RoomClosed {
        room: "demo".into(),
        reason: "its last peer left".into()
    }));
    assert!(core.rooms().is_empty());
    assert_eq!(
        core.handle_leave(alice).unwrap_err().code,
        ClientErrorCode::NotJoined
    );
    // The next join creates the room again.
    let step = core.handle_join(
        Uuid::new_v4(),
        &args("demo", "Bob"),
        Rights::ALL,
        Instant::now(),
    );
    assert_eq!(step, Ok(JoinStep::NeedsRouter));
}

#[test]
fn a_peer_leaving_closes_its_transports_and_the_consumers_of_what_it_sent() {
    let (mut core, alice, bob, producer, consumer) = call_of_two();
    let carol = join(&mut core, "demo", "Carol");
    let router = target_of(&core, bob).router;
    core.handle_leave(alice).unwrap();
    let outputs = drain(&mut core);
    assert_eq!(
        told(&outputs, bob),
        vec![
            Notification::ConsumerClosed {
                consumer_id: consumer,
                producer_id: producer
            },
            left(&[alice]),
        ]
    );
    assert_eq!(told(&outputs, carol), vec![left(&[alice])]);
    let closes = cleanups(&outputs);
    assert_eq!(closes.len(), 1, "Alice's one transport: {closes:?}");
    assert!(matches!(closes[0], (NODE, Cleanup::CloseTransport(_))));
    // Bob's consumer is forgotten: a late `consumerClosed` from the node tells nobody twice.
    core.handle_node_event(
        NODE,
        NodeEvent::ConsumerClosed {
            router,
            consumer,
            producer,
        },
    );
    assert!(drain(&mut core).is_empty());
}

#[test]
fn node_lost_moves_only_the_rooms_of_that_node() {
    let mut core = new_core(limits());
    let alice = join(&mut core, "demo", "Alice");
    let bob = join(&mut core, "demo", "Bob");
    create_room(&mut core, "elsewhere", OTHER_NODE);
    let carol = join(&mut core, "elsewhere", "Carol");
    drain(&mut core);
    core.handle_node_lost(NODE, "exited with signal 9");
    let outputs = drain(&mut core);
    let moved = Notification::RoomMoved {
        room: "demo".into(),
        reason: "media node failed: exited with signal 9".into(),
    };
    assert_eq!(told(&outputs, alice), vec![moved.clone()]);
    assert_eq!(told(&outputs, bob), vec![moved]);
    assert!(told(&outputs, carol).is_empty());
    assert!(
        cleanups(&outputs).is_empty(),
        "nothing to close on a dead node"
    );
    assert!(!core.is_joined(alice) && !core.is_joined(bob) && core.is_joined(carol));
    assert_eq!(core.rooms().len(), 1);
    // Alice may join again: the room is created anew.
    let step = core.handle_join(alice, &args("demo", "Alice"), Rights::ALL, Instant::now());
    assert_eq!(step, Ok(JoinStep::NeedsRouter));
}

#[test]
fn a_peer_that_leaves_tells_the_monitor_of_each_producer_closed_then_of_its_leaving() {
    let mut core = new_core(limits());
    let alice = join(&mut core, "demo", "Alice");
    join(&mut core, "demo", "Bob");
    let send = transport(&mut core, alice, Direction::Send);
    let (first, second) = (
        produce(&mut core, alice, send),
        produce(&mut core, alice, send),
    );
    drain(&mut core);
    core.handle_leave(alice).unwrap();
    let events = monitor_events(&drain(&mut core));
    let closed = |producer: ProducerId| EventKind::ProducerClosed {
        room: "demo".into(),
        peer_id: alice.to_string(),
        producer_id: producer.to_string(),
    };
    let left = EventKind::PeerLeft {
        room: "demo".into(),
        peer_id: alice.to_string(),
    };
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(events[..2].contains(&closed(first)) && events[..2].contains(&closed(second)));
    assert_eq!(events[2], left, "producerClosed first, then peerLeft");
}

/// A room "webinar" on a worker of 20 consumers, whose host publishes two tracks.
fn webinar_host() -> (RoomCore, PeerId) {
    let limits = Limits {
        max_peers_per_room: 100,
        max_consumers_per_worker: 20,
        ..limits()
    };
    let mut core = new_core(limits);
    let host = join(&mut core, "webinar", "Host");
    let send = transport(&mut core, host, Direction::Send);
    produce(&mut core, host, send);
    produce(&mut core, host, send);
    (core, host)
}

/// Joins `name` to "webinar" watching only; `None` when no router of it can take it.
fn watch(core: &mut RoomCore, name: &str) -> Option<PeerId> {
    let peer = Uuid::new_v4();
    let mut args = args("webinar", name);
    args.watch_only = true;
    match core.handle_join(peer, &args, Rights::ALL, Instant::now()) {
        Ok(JoinStep::Joined(_)) => Some(peer),
        Ok(JoinStep::NeedsRouter) => None,
        Err(e) => panic!("{name}: {e}"),
    }
}

#[test]
fn viewers_who_only_watch_are_reserved_no_publishing_room_and_may_not_publish() {
    let (mut core, host) = webinar_host();
    // Each viewer consumes the host's two tracks: ten fill the worker's 20 consumers, all on
    // the host's router (a publishing newcomer would have been counted 2 producers more,
    // and 2 consumers per mate, from the second one on).
    let mut viewers = Vec::new();
    for i in 0..10 {
        let viewer = watch(&mut core, &format!("v{i}")).unwrap_or_else(|| panic!("v{i} fits"));
        let recv = transport(&mut core, viewer, Direction::Recv);
        let (_, room) = core.room_of_peer(host).unwrap();
        let producers: Vec<ProducerId> = room.peers[&host].producers.keys().copied().collect();
        for producer in producers {
            consume(&mut core, viewer, recv, producer);
        }
        viewers.push(viewer);
    }
    assert_eq!(core.rooms()[&RoomId("webinar".into())].routers.len(), 1);
    assert!(watch(&mut core, "v10").is_none(), "the worker is full");
    // A viewer may not publish.
    let viewer = viewers[0];
    let send = transport(&mut core, viewer, Direction::Send);
    let refused = core.begin_produce(viewer, produce_args(send, Kind::Audio));
    assert_eq!(refused.unwrap_err().code, ClientErrorCode::Forbidden);
}

#[test]
fn publishing_newcomers_are_reserved_room_for_what_they_will_send() {
    let (mut core, _) = webinar_host();
    // The same joins, without watchOnly: the worker counts them as publishers to come.
    let mut joined = 0;
    for i in 0..10 {
        let peer = Uuid::new_v4();
        match core.handle_join(
            peer,
            &args("webinar", &format!("p{i}")),
            Rights::ALL,
            Instant::now(),
        ) {
            Ok(JoinStep::Joined(_)) => joined += 1,
            _ => break,
        }
    }
    assert!(
        joined < 10,
        "{joined} publishing newcomers fit where 10 viewers do"
    );
}

#[test]
fn rooms_whose_routers_have_the_same_capabilities_share_one_copy_and_others_keep_their_own() {
    let mut core = new_core(limits());
    create_room(&mut core, "one", NODE);
    create_room(&mut core, "two", NODE);
    let audio_only = json!({"codecs": [{"kind": "audio", "mimeType": "audio/opus"}]});
    core.handle_router_created(
        RoomId("three".into()),
        RouterId(Uuid::new_v4()),
        (NODE, 1),
        &Json(audio_only.to_string()),
        Instant::now(),
    )
    .unwrap();
    let caps =
        |core: &RoomCore, room: &str| core.rooms[&RoomId(room.into())].rtp_capabilities.clone();
    assert!(std::sync::Arc::ptr_eq(
        &caps(&core, "one"),
        &caps(&core, "two")
    ));
    assert!(!std::sync::Arc::ptr_eq(
        &caps(&core, "one"),
        &caps(&core, "three")
    ));
    // What a joiner is told is its own room's routers' capabilities.
    let told = |core: &mut RoomCore, room: &str| {
        let peer = join(core, room, "Alice");
        core.router_rtp_capabilities(peer)
            .expect("joined")
            .router_rtp_capabilities
    };
    assert_eq!(told(&mut core, "two"), router_caps());
    assert_eq!(told(&mut core, "three"), audio_only);
    // A room taken over from another host shares the copy when it has the same.
    let export = core.export_room(&RoomId("one".into())).expect("exported");
    let mut next = new_core(limits());
    create_room(&mut next, "four", NODE);
    next.import_room(export, Instant::now()).expect("imported");
    assert!(std::sync::Arc::ptr_eq(
        &caps(&next, "one"),
        &caps(&next, "four")
    ));
    assert_eq!(told(&mut next, "one"), router_caps());
}
