//! Scenarios of media requests and node events: ownership checks, producers closed, answers after the peer left.

use std::time::Instant;

use ipc::calls as call;
use ipc::messages::{Json, NodeEvent, ProducerId, TransportId};
use monitor_api::EventKind;
use serde_json::json;
use uuid::Uuid;

use super::*;

#[test]
fn closing_a_producer_closes_its_consumers_and_tells_their_owners() {
    let (mut core, alice, bob, producer, consumer) = call_of_two();
    let (target, closed) = core
        .producer_request(alice, &producer.to_string(), ProducerAction::Close)
        .unwrap();
    assert_eq!((target.node, closed), (NODE, producer));
    let outputs = drain(&mut core);
    assert_eq!(
        told(&outputs, bob),
        vec![Notification::ConsumerClosed {
            consumer_id: consumer,
            producer_id: producer
        }]
    );
    assert!(told(&outputs, alice).is_empty());
    assert!(
        monitor_events(&outputs).contains(&EventKind::ProducerClosed {
            room: "demo".into(),
            peer_id: alice.to_string(),
            producer_id: producer.to_string(),
        })
    );
    let again = core.producer_request(alice, &producer.to_string(), ProducerAction::Pause);
    assert_eq!(again.unwrap_err().code, ClientErrorCode::NotFound);
}

#[test]
fn a_consumer_whose_producer_closed_meanwhile_is_not_recorded() {
    let (mut core, alice, bob, _, _) = call_of_two();
    // A second producer of Alice's (Bob consumes her first already).
    let send = transport(&mut core, alice, Direction::Send);
    let producer = produce(&mut core, alice, send);
    let recv = transport(&mut core, bob, Direction::Recv);
    let pending = core
        .begin_consume(bob, consume_args(recv, producer))
        .unwrap();
    core.producer_request(alice, &producer.to_string(), ProducerAction::Close)
        .unwrap();
    let late = core.handle_consumed(bob, pending, consumed_answer());
    assert_eq!(late.unwrap_err().code, ClientErrorCode::NotFound);
}

#[test]
fn answers_arriving_after_the_peer_left_close_what_the_node_created() {
    let mut core = new_core(limits());
    let alice = join(&mut core, "demo", "Alice");
    let bob = join(&mut core, "demo", "Bob");
    // Carol stays: the router stays open, and what the late answers created must be closed.
    join(&mut core, "demo", "Carol");
    let router = target_of(&core, alice).router;
    let send = transport(&mut core, alice, Direction::Send);
    let producer = produce(&mut core, alice, send);
    let recv = transport(&mut core, bob, Direction::Recv);
    let at = core.begin_create_transport(bob).unwrap();
    let produce_pending = core
        .begin_produce(alice, produce_args(send, Kind::Video))
        .unwrap();
    let consume_pending = core
        .begin_consume(bob, consume_args(recv, producer))
        .unwrap();
    core.handle_leave(bob).unwrap();
    core.handle_leave(alice).unwrap();
    drain(&mut core);

    let transport = TransportId(Uuid::new_v4());
    let created = call::TransportCreated {
        transport,
        ice_parameters: Json("{}".into()),
        ice_candidates: Json("[]".into()),
        dtls_parameters: Json("{}".into()),
        sctp_parameters: None,
    };
    let late = core.handle_transport_created(bob, &at, Direction::Send, created);
    assert_eq!(late.unwrap_err().code, ClientErrorCode::NotJoined);
    let new_producer = ProducerId(Uuid::new_v4());
    let produced = call::Produced {
        producer: new_producer,
    };
    let late = core.handle_produced(alice, produce_pending, produced);
    assert_eq!(late.unwrap_err().code, ClientErrorCode::NotJoined);
    let answer = consumed_answer();
    let consumer = answer.consumer;
    let late = core.handle_consumed(bob, consume_pending, answer);
    assert_eq!(late.unwrap_err().code, ClientErrorCode::NotJoined);

    assert_eq!(
        cleanups(&drain(&mut core)),
        vec![
            (
                NODE,
                Cleanup::CloseTransport(call::CloseTransport { router, transport })
            ),
            (
                NODE,
                Cleanup::CloseProducer(call::CloseProducer {
                    router,
                    producer: new_producer
                })
            ),
            (
                NODE,
                Cleanup::CloseConsumer(call::CloseConsumer { router, consumer })
            ),
        ]
    );
}

#[test]
fn an_answer_from_a_lost_router_is_refused_and_nothing_is_closed_on_a_dead_node() {
    let mut core = new_core(limits());
    let alice = join(&mut core, "demo", "Alice");
    let at = core.begin_create_transport(alice).unwrap();
    core.handle_node_lost(NODE, "crashed");
    create_room(&mut core, "demo", OTHER_NODE);
    assert!(matches!(
        core.handle_join(alice, &args("demo", "Alice"), Rights::ALL, Instant::now()),
        Ok(JoinStep::Joined(_))
    ));
    drain(&mut core);
    let created = call::TransportCreated {
        transport: TransportId(Uuid::new_v4()),
        ice_parameters: Json("{}".into()),
        ice_candidates: Json("[]".into()),
        dtls_parameters: Json("{}".into()),
        sctp_parameters: None,
    };
    let late = core.handle_transport_created(alice, &at, Direction::Send, created);
    assert_eq!(late.unwrap_err().code, ClientErrorCode::NotJoined);
    assert!(cleanups(&drain(&mut core)).is_empty());
}

#[test]
fn media_requests_are_checked_against_what_the_peer_owns() {
    let (mut core, alice, bob, producer, consumer) = call_of_two();
    let recv = transport(&mut core, alice, Direction::Recv);
    // Its own producer, through its own recv transport.
    let own = core.begin_consume(alice, consume_args(recv, producer));
    assert_eq!(own.unwrap_err().code, ClientErrorCode::InvalidArgument);
    // Producing on a recv transport.
    let wrong = core.begin_produce(alice, produce_args(recv, Kind::Audio));
    assert_eq!(wrong.unwrap_err().code, ClientErrorCode::InvalidArgument);
    // Someone else's consumer, a transport that is not an id.
    let theirs = core.consumer_request(alice, &consumer.to_string(), ConsumerAction::Pause);
    assert_eq!(theirs.unwrap_err().code, ClientErrorCode::NotFound);
    let junk = core.close_transport(bob, "not-an-id");
    assert_eq!(junk.unwrap_err().code, ClientErrorCode::NotFound);
    // At most two producers each.
    let send = core
        .peer(alice)
        .unwrap()
        .1
        .transports
        .iter()
        .find(|(_, d)| **d == Direction::Send)
        .map(|(id, _)| *id)
        .unwrap();
    produce(&mut core, alice, send);
    let third = core.begin_produce(alice, produce_args(send, Kind::Video));
    assert_eq!(third.unwrap_err().code, ClientErrorCode::TooManyProducers);
    // A peer not in a room.
    let stranger = core.begin_create_transport(Uuid::new_v4());
    assert_eq!(stranger.unwrap_err().code, ClientErrorCode::NotJoined);
}

#[test]
fn node_events_reach_only_the_peers_they_concern() {
    let (mut core, alice, bob, producer, consumer) = call_of_two();
    let router = target_of(&core, alice).router;
    core.handle_node_event(
        NODE,
        NodeEvent::ConsumerScore {
            router,
            consumer,
            score: Json(json!({"score": 10}).to_string()),
        },
    );
    core.handle_node_event(
        NODE,
        NodeEvent::ProducerScore {
            router,
            producer,
            score: Json(json!([{"ssrc": 1, "score": 9}]).to_string()),
        },
    );
    core.handle_node_event(NODE, NodeEvent::ActiveSpeaker { router, producer });
    // The same router id from another node is not this router.
    core.handle_node_event(OTHER_NODE, NodeEvent::ConsumerPaused { router, consumer });
    let outputs = drain(&mut core);
    let speaker = Notification::ActiveSpeaker {
        peer_id: alice,
        producer_id: producer,
    };
    assert_eq!(
        told(&outputs, bob),
        vec![
            Notification::ConsumerScore {
                consumer_id: consumer,
                score: json!({"score": 10})
            },
            speaker.clone()
        ]
    );
    assert_eq!(
        told(&outputs, alice),
        vec![
            Notification::ProducerScore {
                producer_id: producer,
                score: json!([{"ssrc": 1, "score": 9}])
            },
            speaker
        ]
    );
}

#[test]
fn a_newcomer_is_told_the_rooms_active_speaker_in_its_join_answer() {
    let (mut core, alice, _bob, producer, _consumer) = call_of_two();
    let carol = Uuid::new_v4();
    let quiet = core.handle_join(carol, &args("demo", "Carol"), Rights::ALL, Instant::now());
    let Ok(JoinStep::Joined(answer)) = quiet else {
        panic!("{quiet:?}")
    };
    assert_eq!(answer.active_speaker, None, "nobody spoke yet");
    core.handle_leave(carol).unwrap();
    let router = target_of(&core, alice).router;
    core.handle_node_event(NODE, NodeEvent::ActiveSpeaker { router, producer });
    drain(&mut core);
    let dave = Uuid::new_v4();
    let spoken = core.handle_join(dave, &args("demo", "Dave"), Rights::ALL, Instant::now());
    let Ok(JoinStep::Joined(answer)) = spoken else {
        panic!("{spoken:?}")
    };
    assert_eq!(answer.active_speaker, Some(alice));
}

#[test]
fn a_producer_with_no_codec_the_router_takes_is_refused_naming_what_it_takes() {
    let mut core = new_core(limits());
    let alice = join(&mut core, "demo", "Alice");
    let send = transport(&mut core, alice, Direction::Send);
    let mut args = produce_args(send, Kind::Video);
    args.rtp_parameters.insert(
        "codecs".into(),
        json!([{"mimeType": "video/AV1"}, {"mimeType": "video/rtx"}]),
    );
    let refused = core.begin_produce(alice, args).unwrap_err();
    assert_eq!(refused.code, ClientErrorCode::MediaError);
    assert_eq!(
        refused.message,
        "none of this video producer's codecs (video/AV1) is one the router takes: video/VP8"
    );
    // A codec the router takes among others is enough (case does not matter).
    let mut args = produce_args(send, Kind::Video);
    args.rtp_parameters.insert(
        "codecs".into(),
        json!([{"mimeType": "video/AV1"}, {"mimeType": "video/vp8"}]),
    );
    assert!(core.begin_produce(alice, args).is_ok());
}

#[test]
fn a_producers_app_data_reaches_the_others_and_is_bounded() {
    let mut core = new_core(limits());
    let alice = join(&mut core, "demo", "Alice");
    let bob = join(&mut core, "demo", "Bob");
    let send = transport(&mut core, alice, Direction::Send);
    let recv = transport(&mut core, bob, Direction::Recv);
    let mut args = produce_args(send, Kind::Video);
    let mut screen = serde_json::Map::new();
    screen.insert("source".into(), json!("screen"));
    args.app_data = Some(screen);
    let pending = core.begin_produce(alice, args).unwrap();
    let produced = core
        .handle_produced(
            alice,
            pending,
            call::Produced {
                producer: ProducerId(Uuid::new_v4()),
            },
        )
        .unwrap();
    let outputs = settle(&mut core);
    assert!(told(&outputs, bob).contains(&Notification::NewProducer {
        peer_id: alice,
        producer_id: produced.producer_id,
        kind: Kind::Video,
        app_data: Some(json!({"source": "screen"})),
    }));
    let consumed = consume(&mut core, bob, recv, produced.producer_id);
    assert_eq!(consumed.app_data, Some(json!({"source": "screen"})));
    // Too large: refused, with the limit.
    let mut args = produce_args(send, Kind::Audio);
    let mut big = serde_json::Map::new();
    big.insert("note".into(), json!("x".repeat(MAX_APP_DATA_BYTES)));
    args.app_data = Some(big);
    let refused = core.begin_produce(alice, args).unwrap_err();
    assert_eq!(refused.code, ClientErrorCode::InvalidArgument);
}

#[test]
fn a_consumers_events_reach_its_owner_whether_or_not_the_room_remembers_who_that_is() {
    let (mut core, alice, bob, producer, consumer) = call_of_two();
    let router = target_of(&core, alice).router;
    let paused = |consumer| NodeEvent::ConsumerPaused { router, consumer };
    let room = RoomId("demo".into());
    let remembered = |core: &RoomCore| core.rooms[&room].consumer_owners.get(&consumer).copied();
    // Remembered when it was made: its events need no search through the room.
    assert_eq!(remembered(&core), Some(bob));
    drain(&mut core);
    core.handle_node_event(NODE, paused(consumer));
    let paused_told = vec![Notification::ConsumerPaused {
        consumer_id: consumer,
    }];
    assert_eq!(told(&drain(&mut core), bob), paused_told);
    // Forgotten (a room past its bound forgets them all): found again, and remembered.
    core.rooms.get_mut(&room).unwrap().consumer_owners.clear();
    core.handle_node_event(NODE, paused(consumer));
    assert_eq!(told(&drain(&mut core), bob), paused_told);
    assert_eq!(remembered(&core), Some(bob));
    // Closed: forgotten, and its later events reach nobody.
    core.handle_node_event(
        NODE,
        NodeEvent::ConsumerClosed {
            router,
            consumer,
            producer,
        },
    );
    drain(&mut core);
    assert_eq!(remembered(&core), None);
    core.handle_node_event(NODE, paused(consumer));
    let outputs = drain(&mut core);
    assert!(told(&outputs, bob).is_empty() && told(&outputs, alice).is_empty());
}
