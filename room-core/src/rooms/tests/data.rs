//! Scenarios of data channels: announced and consumed, closed with their transport or their
//! peer (every data consumer's owner told), answers arriving after their peer left, the node's
//! own events, and a room over two routers where a data producer is announced only once piped.

use ipc::calls as call;
use ipc::messages::{DataConsumerId, DataProducerId, NodeEvent, RoomId, TransportId};
use uuid::Uuid;

use super::spanning::three_on_one_node;
use super::*;
use signaling_api::{ConsumeDataArgs, ProduceDataArgs};

fn produce_data_args(transport: TransportId) -> ProduceDataArgs {
    ProduceDataArgs {
        transport_id: transport.to_string(),
        sctp_stream_parameters: serde_json::from_value(json!({"streamId": 0})).unwrap(),
        label: "chat".into(),
        protocol: String::new(),
        app_data: None,
    }
}

/// `peer` produces data on `send`, without settling pipes: its id and the outputs.
fn produce_data(
    core: &mut RoomCore,
    peer: PeerId,
    send: TransportId,
) -> (DataProducerId, Vec<Output>) {
    let pending = core
        .begin_produce_data(peer, produce_data_args(send))
        .unwrap();
    let answer = call::DataProduced {
        data_producer: DataProducerId(Uuid::new_v4()),
    };
    let produced = core.handle_data_produced(peer, pending, answer).unwrap();
    (produced.data_producer_id, drain(core))
}

fn consume_data_args(transport: TransportId, data_producer: DataProducerId) -> ConsumeDataArgs {
    ConsumeDataArgs {
        transport_id: transport.to_string(),
        data_producer_id: data_producer.to_string(),
    }
}

fn data_consumed() -> call::DataConsumed {
    call::DataConsumed {
        data_consumer: DataConsumerId(Uuid::new_v4()),
        sctp_stream_parameters: Json(r#"{"streamId":1,"ordered":true}"#.into()),
        label: "chat".into(),
        protocol: String::new(),
    }
}

fn consume_data(
    core: &mut RoomCore,
    peer: PeerId,
    recv: TransportId,
    data_producer: DataProducerId,
) -> DataConsumerId {
    let pending = core
        .begin_consume_data(peer, consume_data_args(recv, data_producer))
        .unwrap();
    core.handle_data_consumed(peer, pending, data_consumed())
        .unwrap()
        .data_consumer_id
}

fn announced(peer: PeerId, id: DataProducerId) -> Notification {
    Notification::NewDataProducer {
        peer_id: peer,
        data_producer_id: id,
        label: "chat".into(),
        protocol: String::new(),
        app_data: None,
    }
}

/// Alice chats, Bob and Carol consume it: (core, alice, bob, carol, alice's send transport,
/// her data producer, bob's data consumer, carol's).
#[allow(clippy::type_complexity)]
fn chat_of_three() -> (
    RoomCore,
    [PeerId; 3],
    TransportId,
    DataProducerId,
    [DataConsumerId; 2],
) {
    let mut core = new_core(limits());
    let alice = join(&mut core, "demo", "Alice");
    let bob = join(&mut core, "demo", "Bob");
    let carol = join(&mut core, "demo", "Carol");
    let send = transport(&mut core, alice, Direction::Send);
    let (chat, _) = produce_data(&mut core, alice, send);
    let bob_recv = transport(&mut core, bob, Direction::Recv);
    let carol_recv = transport(&mut core, carol, Direction::Recv);
    let of_bob = consume_data(&mut core, bob, bob_recv, chat);
    let of_carol = consume_data(&mut core, carol, carol_recv, chat);
    drain(&mut core);
    (core, [alice, bob, carol], send, chat, [of_bob, of_carol])
}

#[test]
fn a_data_producer_is_announced_to_the_others_who_consume_it_and_not_its_owner() {
    let mut core = new_core(limits());
    let alice = join(&mut core, "demo", "Alice");
    let bob = join(&mut core, "demo", "Bob");
    let send = transport(&mut core, alice, Direction::Send);
    let (chat, outputs) = produce_data(&mut core, alice, send);
    assert_eq!(told(&outputs, bob), vec![announced(alice, chat)]);
    assert!(told(&outputs, alice).is_empty());
    assert!(
        monitor_events(&outputs).contains(&EventKind::ProducerAdded {
            room: "demo".into(),
            peer_id: alice.to_string(),
            producer_id: chat.to_string(),
            kind: "data".into(),
        })
    );
    let recv = transport(&mut core, bob, Direction::Recv);
    let pending = core
        .begin_consume_data(bob, consume_data_args(recv, chat))
        .unwrap();
    assert_eq!(pending.call.data_producer, chat);
    let consumed = core
        .handle_data_consumed(bob, pending, data_consumed())
        .unwrap();
    assert_eq!(consumed.data_producer_id, chat);
    assert_eq!(consumed.sctp_stream_parameters["streamId"], 1);
    let alice_recv = transport(&mut core, alice, Direction::Recv);
    let own = core.begin_consume_data(alice, consume_data_args(alice_recv, chat));
    assert_eq!(own.unwrap_err().code, ClientErrorCode::InvalidArgument);
}

#[test]
fn a_peer_that_leaves_closes_its_data_producer_for_every_data_consumer() {
    let (mut core, [alice, bob, carol], _, chat, [of_bob, of_carol]) = chat_of_three();
    core.handle_leave(alice).unwrap();
    let outputs = drain(&mut core);
    for (peer, consumer) in [(bob, of_bob), (carol, of_carol)] {
        assert!(
            told(&outputs, peer).contains(&Notification::DataConsumerClosed {
                data_consumer_id: consumer,
                data_producer_id: chat,
            })
        );
    }
    // The node closes them with their data producer: its later events find nothing to tell.
    let event = NodeEvent::DataConsumerClosed {
        router: target_of(&core, bob).router,
        data_consumer: of_bob,
        data_producer: chat,
    };
    core.handle_node_event(NODE, event);
    assert!(drain(&mut core).is_empty());
}

#[test]
fn closing_the_send_transport_closes_its_data_producers() {
    let (mut core, [alice, bob, _], send, chat, [of_bob, _]) = chat_of_three();
    core.close_transport(alice, &send.to_string()).unwrap();
    let outputs = drain(&mut core);
    assert!(
        told(&outputs, bob).contains(&Notification::DataConsumerClosed {
            data_consumer_id: of_bob,
            data_producer_id: chat,
        })
    );
    let recv = transport(&mut core, bob, Direction::Recv);
    let gone = core.begin_consume_data(bob, consume_data_args(recv, chat));
    assert_eq!(gone.unwrap_err().code, ClientErrorCode::NotFound);
}

#[test]
fn data_answers_that_come_after_their_peer_left_are_closed_on_the_node() {
    let (mut core, [alice, bob, carol], send, _, _) = chat_of_three();
    let pending = core
        .begin_produce_data(alice, produce_data_args(send))
        .unwrap();
    // Bob consumes Alice's chat already: the late consume is of Carol's.
    let carol_send = transport(&mut core, carol, Direction::Send);
    let (carol_chat, _) = produce_data(&mut core, carol, carol_send);
    let bob_recv = transport(&mut core, bob, Direction::Recv);
    let pending_consume = core
        .begin_consume_data(bob, consume_data_args(bob_recv, carol_chat))
        .unwrap();
    core.handle_leave(alice).unwrap();
    core.handle_leave(bob).unwrap();
    drain(&mut core);
    let late = DataProducerId(Uuid::new_v4());
    let answer = call::DataProduced {
        data_producer: late,
    };
    let refused = core.handle_data_produced(alice, pending, answer);
    assert_eq!(refused.unwrap_err().code, ClientErrorCode::NotJoined);
    let answer = data_consumed();
    let late_consumer = answer.data_consumer;
    let refused = core.handle_data_consumed(bob, pending_consume, answer);
    assert_eq!(refused.unwrap_err().code, ClientErrorCode::NotJoined);
    let router = target_of(&core, carol).router;
    assert_eq!(
        cleanups(&drain(&mut core)),
        vec![
            (
                NODE,
                Cleanup::CloseDataProducer(call::CloseDataProducer {
                    router,
                    data_producer: late,
                })
            ),
            (
                NODE,
                Cleanup::CloseDataConsumer(call::CloseDataConsumer {
                    router,
                    data_consumer: late_consumer,
                })
            ),
        ]
    );
}

#[test]
fn a_throttled_data_producer_is_told_to_its_owner_only() {
    let (mut core, [alice, bob, _], _, chat, _) = chat_of_three();
    let event = NodeEvent::DataProducerThrottled {
        router: target_of(&core, alice).router,
        data_producer: chat,
        max_messages_per_sec: 20,
        paused_ms: 1000,
    };
    core.handle_node_event(NODE, event);
    let outputs = drain(&mut core);
    assert_eq!(
        told(&outputs, alice),
        vec![Notification::DataProducerThrottled {
            data_producer_id: chat,
            max_messages_per_sec: 20,
            paused_ms: 1000,
        }]
    );
    assert!(told(&outputs, bob).is_empty());
    assert!(outputs.contains(&Output::Metric(MetricChange::DataThrottled)));
}

#[test]
fn in_a_room_over_two_routers_a_data_producer_is_announced_there_once_piped() {
    let (mut core, members) = three_on_one_node();
    let (a, b, c) = (members[0].peer, members[1].peer, members[2].peer);
    let send = core.rooms()[&RoomId("demo".into())].peers[&a]
        .transports
        .iter()
        .find(|(_, d)| **d == Direction::Send)
        .map(|(t, _)| *t)
        .unwrap();
    let (chat, outputs) = produce_data(&mut core, a, send);
    // B shares A's router and hears at once; C, on the other worker, once piped.
    assert_eq!(told(&outputs, b), vec![announced(a, chat)]);
    assert!(told(&outputs, c).is_empty());
    let order = outputs
        .iter()
        .find_map(|o| match o {
            Output::Pipe(p) if matches!(p.what, Relayed::Data(_)) => Some(p.clone()),
            _ => None,
        })
        .expect("a data pipe to C's router");
    assert_eq!((order.to, order.via), (target_of(&core, c), None));
    let early = core.begin_consume_data(c, consume_data_args(members[2].recv, chat));
    assert_eq!(early.unwrap_err().code, ClientErrorCode::NotFound);
    core.handle_piped(&order, Ok(()));
    assert_eq!(told(&drain(&mut core), c), vec![announced(a, chat)]);
    let of_c = consume_data(&mut core, c, members[2].recv, chat);
    // A leaves: C is told, and the copy in C's router is closed.
    core.handle_leave(a).unwrap();
    let outputs = drain(&mut core);
    assert!(
        told(&outputs, c).contains(&Notification::DataConsumerClosed {
            data_consumer_id: of_c,
            data_producer_id: chat,
        })
    );
    assert!(cleanups(&outputs).contains(&(
        NODE,
        Cleanup::CloseDataProducer(call::CloseDataProducer {
            router: order.to.router,
            data_producer: chat,
        })
    )));
}

#[test]
fn a_failed_data_pipe_is_never_announced() {
    let (mut core, members) = three_on_one_node();
    let (a, c) = (members[0].peer, members[2].peer);
    let send = transport(&mut core, a, Direction::Send);
    let (chat, outputs) = produce_data(&mut core, a, send);
    let order = outputs
        .into_iter()
        .find_map(|o| match o {
            Output::Pipe(p) if matches!(p.what, Relayed::Data(_)) => Some(p),
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
    let never = core.begin_consume_data(c, consume_data_args(members[2].recv, chat));
    assert_eq!(never.unwrap_err().code, ClientErrorCode::NotFound);
}

#[test]
fn a_data_producer_with_a_label_too_long_or_one_too_many_is_refused() {
    let mut core = new_core(limits());
    let alice = join(&mut core, "demo", "Alice");
    let send = transport(&mut core, alice, Direction::Send);
    let mut long = produce_data_args(send);
    long.label = "x".repeat(257);
    let refused = core.begin_produce_data(alice, long);
    assert_eq!(refused.unwrap_err().code, ClientErrorCode::InvalidArgument);
    for _ in 0..super::super::data::MAX_DATA_PRODUCERS_PER_PEER {
        produce_data(&mut core, alice, send);
    }
    let refused = core.begin_produce_data(alice, produce_data_args(send));
    assert_eq!(refused.unwrap_err().code, ClientErrorCode::TooManyProducers);
}

#[test]
fn a_second_consumer_of_the_same_producer_or_data_producer_is_refused() {
    let (mut core, [alice, bob, _], send, chat, [of_bob, _]) = chat_of_three();
    let bob_recv = transport(&mut core, bob, Direction::Recv);
    let again = core
        .begin_consume_data(bob, consume_data_args(bob_recv, chat))
        .unwrap_err();
    assert_eq!(again.code, ClientErrorCode::AlreadyConsuming);
    assert!(
        again.message.contains(&of_bob.to_string()),
        "{}",
        again.message
    );
    // The same for media.
    let producer = super::produce(&mut core, alice, send);
    let first = super::consume(&mut core, bob, bob_recv, producer).consumer_id;
    let again = core
        .begin_consume(bob, super::consume_args(bob_recv, producer))
        .unwrap_err();
    assert_eq!(again.code, ClientErrorCode::AlreadyConsuming);
    assert!(
        again.message.contains(&first.to_string()),
        "{}",
        again.message
    );
}

#[test]
fn data_consumers_count_against_the_consumer_cap_and_the_workers_load() {
    let mut limits = limits();
    limits.max_consumers_per_peer = 2;
    let mut core = new_core(limits);
    let alice = join(&mut core, "demo", "Alice");
    let carol = join(&mut core, "demo", "Carol");
    let bob = join(&mut core, "demo", "Bob");
    let alice_send = transport(&mut core, alice, Direction::Send);
    let carol_send = transport(&mut core, carol, Direction::Send);
    let (alice_chat, _) = produce_data(&mut core, alice, alice_send);
    let (carol_chat, _) = produce_data(&mut core, carol, carol_send);
    let producer = super::produce(&mut core, alice, alice_send);
    let load_before = core.worker_load(NODE, 0);
    let bob_recv = transport(&mut core, bob, Direction::Recv);
    consume_data(&mut core, bob, bob_recv, alice_chat);
    assert_eq!(
        core.worker_load(NODE, 0),
        load_before + 1,
        "a data consumer loads its worker"
    );
    super::consume(&mut core, bob, bob_recv, producer);
    let another = super::produce(&mut core, alice, alice_send);
    for refused in [
        core.begin_consume_data(bob, consume_data_args(bob_recv, carol_chat))
            .map(|_| ())
            .unwrap_err(),
        core.begin_consume(bob, super::consume_args(bob_recv, another))
            .map(|_| ())
            .unwrap_err(),
    ] {
        assert_eq!(refused.code, ClientErrorCode::TooManyConsumers, "{refused}");
    }
}

#[test]
fn data_channels_need_the_same_grants_as_media() {
    let mut core = new_core(limits());
    let alice = join(&mut core, "demo", "Alice");
    let send = transport(&mut core, alice, Direction::Send);
    let (chat, _) = produce_data(&mut core, alice, send);
    let join_with = |core: &mut RoomCore, name: &str, rights: Rights| {
        let peer = Uuid::new_v4();
        let step = core.handle_join(peer, &args("demo", name), rights, Instant::now());
        assert!(matches!(step, Ok(JoinStep::Joined(_))), "{step:?}");
        peer
    };
    let listener = join_with(
        &mut core,
        "Listener",
        Rights {
            publish: false,
            subscribe: true,
            record: false,
        },
    );
    let listener_send = transport(&mut core, listener, Direction::Send);
    let refused = core.begin_produce_data(listener, produce_data_args(listener_send));
    assert_eq!(refused.unwrap_err().code, ClientErrorCode::Forbidden);
    let listener_recv = transport(&mut core, listener, Direction::Recv);
    assert!(core
        .begin_consume_data(listener, consume_data_args(listener_recv, chat))
        .is_ok());
    let speaker = join_with(
        &mut core,
        "Speaker",
        Rights {
            publish: true,
            subscribe: false,
            record: false,
        },
    );
    let speaker_recv = transport(&mut core, speaker, Direction::Recv);
    let refused = core.begin_consume_data(speaker, consume_data_args(speaker_recv, chat));
    assert_eq!(refused.unwrap_err().code, ClientErrorCode::Forbidden);
    let speaker_send = transport(&mut core, speaker, Direction::Send);
    assert!(core
        .begin_produce_data(speaker, produce_data_args(speaker_send))
        .is_ok());
}
