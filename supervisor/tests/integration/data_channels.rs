//! Data channels (the chat) with str0m peers: `produceData` and `consumeData` carry every
//! message to every other peer of the room, exactly and in order; the limits hold (a message
//! over `--max-data-message-bytes` is dropped, a data producer over
//! `--max-data-messages-per-sec` is cut at exactly the limit and its peer told); a data
//! producer that goes closes its data consumers everywhere; and the refusals a client can meet.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use signaling_api::calls::{CloseTransport, Leave};
use signaling_api::media;
use signaling_api::{
    Call, ConsumeDataArgs, DataConsumed, DataProducerId, Direction, Notification, ProduceDataArgs,
    ResumeArgs,
};

use crate::support::peer::{Joining, TestPeer};
use crate::support::signaling::{self, notified, transport, transport_args, Expect};
use crate::support::{monitor_json, Sfu};

/// mediasoup's SCTP stream parameters, as `produceData` takes them and `consumeData` answers
/// them (the part of them these tests use).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SctpStream {
    stream_id: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ordered: Option<bool>,
}

/// The `produceData` arguments of a data channel on SCTP stream `stream` of `peer`'s send
/// transport, labelled `label`.
fn produce_data(peer: &TestPeer, stream: u16, label: &str) -> ProduceDataArgs {
    ProduceDataArgs {
        transport_id: peer.send_id.to_string(),
        sctp_stream_parameters: media::object(&SctpStream {
            stream_id: stream,
            ordered: None,
        }),
        label: label.into(),
        protocol: String::new(),
        app_data: None,
    }
}

/// The `consumeData` arguments of `peer` for `data_producer` on its receive transport.
fn consume_data(peer: &TestPeer, data_producer: &DataProducerId) -> ConsumeDataArgs {
    ConsumeDataArgs {
        transport_id: peer.recv_id.to_string(),
        data_producer_id: data_producer.to_string(),
    }
}

/// `peer` opens a chat data channel on its send transport: its `dataProducerId`.
async fn produce_chat(peer: &mut TestPeer) -> DataProducerId {
    let mut args = produce_data(peer, 0, "chat");
    args.sctp_stream_parameters = media::object(&SctpStream {
        stream_id: 0,
        ordered: Some(true),
    });
    let answer = peer.signaling.ok(&args).await;
    peer.send.open_channel(0, "chat").await;
    answer.data_producer_id
}

/// `peer` consumes `data_producer` and opens its channel: the SCTP stream its messages
/// arrive on.
async fn consume_chat(peer: &mut TestPeer, data_producer: &DataProducerId) -> u16 {
    consume_chat_answer(peer, data_producer).await.0
}

/// As [`consume_chat`], with the `consumeData` answer.
async fn consume_chat_answer(
    peer: &mut TestPeer,
    data_producer: &DataProducerId,
) -> (u16, DataConsumed) {
    let args = consume_data(peer, data_producer);
    let answer = peer.signaling.ok(&args).await;
    assert_eq!(answer.data_producer_id, *data_producer, "{answer:?}");
    assert_eq!(answer.label, "chat", "{answer:?}");
    let sctp: SctpStream =
        media::read(&answer.sctp_stream_parameters).expect("sctpStreamParameters");
    peer.recv.open_channel(sctp.stream_id, "chat").await;
    (sctp.stream_id, answer)
}

/// Checks that `call` of `peer` is refused with `code`, saying `says`.
async fn assert_refused<C: Call>(peer: &mut TestPeer, call: &C, code: &str, says: &str) {
    let refused = peer.signaling.refused(call).await;
    let method = C::METHOD.name();
    assert_eq!(refused.code(), code, "{method} ({says}): {refused}");
    assert!(refused.to_string().contains(says), "{method}: {refused}");
}

/// Waits (10 s at most) until `count` messages arrived on `stream` of `peer`: those.
async fn wait_texts(peer: &TestPeer, stream: u16, count: usize) -> Vec<String> {
    wait_texts_within(peer, stream, count, Duration::from_secs(10)).await
}

/// Waits (`within` at most) until `count` messages arrived on `stream` of `peer`: those.
async fn wait_texts_within(
    peer: &TestPeer,
    stream: u16,
    count: usize,
    within: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + within;
    loop {
        peer.assert_healthy();
        let got = peer.recv.received_texts(stream);
        if got.len() >= count || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Checks that `stream` of `peer` holds exactly `count` messages over the `window` from now
/// (polling: one more fails at once): a "nothing more arrives" check with its window.
async fn assert_no_more_texts(peer: &TestPeer, stream: u16, count: usize, window: Duration) {
    let end = Instant::now() + window;
    while Instant::now() < end {
        peer.assert_healthy();
        let got = peer.recv.received_texts(stream);
        assert_eq!(got.len(), count, "nothing more within {window:?}: {got:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn texts(prefix: &str, range: std::ops::RangeInclusive<u32>) -> Vec<String> {
    range.map(|i| format!("{prefix} {i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_messages_reach_every_other_peer_exactly_and_in_order() {
    let sfu = Sfu::start(&["--monitor-token", "chat-monitor-token-0123456789abcdef"]);
    let url = sfu.ws_url();
    let joining = Joining::new(&url).data();
    let (mut alice, mut bob) = joining.pair("chat", ["Alice", "Bob"], 1000).await;
    let alice_chat = produce_chat(&mut alice).await;
    let (peer, data_producer, label) = notified!(
        bob.signaling,
        Notification::NewDataProducer { peer_id, data_producer_id, label, .. } =>
            (peer_id, data_producer_id, label)
    );
    assert_eq!(peer, alice.peer_id);
    assert_eq!(data_producer, alice_chat);
    assert_eq!(label, "chat");
    let bob_hears_alice = consume_chat(&mut bob, &alice_chat).await;

    // Carol comes later: her join answer lists Alice's data producer.
    let mut carol = joining
        .join_call("chat", "Carol", 3000, &mut [&mut alice, &mut bob])
        .await;
    let listed: Vec<DataProducerId> = carol
        .joined
        .peers
        .iter()
        .flat_map(|p| p.data_producers.iter().map(|d| d.data_producer_id))
        .collect();
    assert_eq!(listed, [alice_chat], "{:?}", carol.joined);
    let carol_hears_alice = consume_chat(&mut carol, &alice_chat).await;
    let bob_chat = produce_chat(&mut bob).await;
    for peer in [&mut alice, &mut carol] {
        let announced = notified!(
            peer.signaling,
            Notification::NewDataProducer { data_producer_id, .. } => data_producer_id
        );
        assert_eq!(announced, bob_chat, "{}", peer.name);
    }
    let alice_hears_bob = consume_chat(&mut alice, &bob_chat).await;
    let carol_hears_bob = consume_chat(&mut carol, &bob_chat).await;

    for i in 1..=15 {
        alice.send.send_text(0, &format!("Alice {i}"));
        bob.send.send_text(0, &format!("Bob {i}"));
    }
    assert_eq!(
        wait_texts(&bob, bob_hears_alice, 15).await,
        texts("Alice", 1..=15)
    );
    assert_eq!(
        wait_texts(&carol, carol_hears_alice, 15).await,
        texts("Alice", 1..=15)
    );
    assert_eq!(
        wait_texts(&alice, alice_hears_bob, 15).await,
        texts("Bob", 1..=15)
    );
    assert_eq!(
        wait_texts(&carol, carol_hears_bob, 15).await,
        texts("Bob", 1..=15)
    );
    // The monitor shows who sends on a data channel and how many each receives.
    let monitor_url = sfu.monitor_url();
    let room = tokio::task::block_in_place(|| {
        monitor_json(&[
            "--url",
            &monitor_url,
            "--token",
            "chat-monitor-token-0123456789abcdef",
            "room",
            "chat",
        ])
    });
    let shown: Vec<(String, Value, Value)> = room["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .map(|p| {
            let labels: Vec<Value> = p["dataProducers"]
                .as_array()
                .expect("dataProducers")
                .iter()
                .map(|d| d["label"].clone())
                .collect();
            (
                p["displayName"].as_str().unwrap().to_string(),
                json!(labels),
                p["dataConsumers"].clone(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            ("Alice".to_string(), json!(["chat"]), json!(1)),
            ("Bob".to_string(), json!(["chat"]), json!(1)),
            ("Carol".to_string(), json!([]), json!(2)),
        ]
    );
    let text = crate::support::monitor_text(&[
        "--url",
        &monitor_url,
        "--token",
        "chat-monitor-token-0123456789abcdef",
        "room",
        "chat",
    ]);
    println!("{text}");
    let rows: Vec<&str> = text.lines().filter(|l| l.contains(" data ")).collect();
    assert_eq!(
        rows.len(),
        5,
        "Alice and Bob send, all three receive:\n{text}"
    );
    assert!(
        rows.iter()
            .any(|r| r.starts_with("Alice") && r.contains("1 channel ")),
        "{text}"
    );
    assert!(
        rows.iter()
            .any(|r| r.starts_with("Alice") && r.contains("sends") && r.contains("15 msgs")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_size_limit_is_dropped_and_the_channel_goes_on() {
    let sfu = Sfu::start(&["--max-data-message-bytes", "2048"]);
    let (mut alice, mut bob) = Joining::new(&sfu.ws_url())
        .data()
        .pair("chat-size", ["Alice", "Bob"], 1000)
        .await;
    let chat = produce_chat(&mut alice).await;
    let stream = consume_chat(&mut bob, &chat).await;
    let fits = "a".repeat(2000);
    let too_big = "b".repeat(3000);
    alice.send.send_text(0, &fits);
    alice.send.send_text(0, &too_big);
    alice.send.send_text(0, "after");
    let got = wait_texts(&bob, stream, 2).await;
    assert_eq!(got, vec![fits, "after".to_string()]);
    // The large one never comes, not even late.
    assert_no_more_texts(&bob, stream, 2, Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_producer_over_the_message_rate_is_cut_at_the_limit_and_its_peer_told() {
    let sfu = Sfu::start(&[
        "--max-data-messages-per-sec",
        "5",
        "--monitor-token",
        "rate-monitor-token-0123456789abcdef",
    ]);
    let (mut alice, mut bob) = Joining::new(&sfu.ws_url())
        .data()
        .pair("chat-rate", ["Alice", "Bob"], 1000)
        .await;
    let chat = produce_chat(&mut alice).await;
    let stream = consume_chat(&mut bob, &chat).await;
    for i in 1..=12 {
        alice.send.send_text(0, &format!("burst {i}"));
    }
    let throttled = notified!(
        alice.signaling,
        Notification::DataProducerThrottled { data_producer_id, max_messages_per_sec, paused_ms } =>
            (data_producer_id, max_messages_per_sec, paused_ms)
    );
    assert_eq!(throttled, (chat, 5, 1000));
    let got = wait_texts(&bob, stream, 5).await;
    assert_eq!(got, texts("burst", 1..=5));
    // The other seven never come, not even late.
    assert_no_more_texts(&bob, stream, 5, Duration::from_millis(300)).await;
    // The monitor tells who flooded: what was relayed and what dropped.
    let monitor_url = sfu.monitor_url();
    let room = tokio::task::block_in_place(|| {
        monitor_json(&[
            "--url",
            &monitor_url,
            "--token",
            "rate-monitor-token-0123456789abcdef",
            "room",
            "chat-rate",
        ])
    });
    let sent = &room["participants"][0]["dataProducers"][0];
    assert_eq!(
        (&sent["relayed"], &sent["dropped"]),
        (&json!(5), &json!(7)),
        "{room}"
    );
    let response = crate::support::http_get(sfu.port, "/metrics");
    let (_, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let metrics = crate::monitor::parse_metrics(body);
    assert_eq!(metrics.get("sfu_data_throttles_total"), Some(&1.0));
    // Once its pause (a second) is over, the data producer is heard again: Alice sends, at
    // 4 a second (under the limit), until Bob hears her (within 5 s).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut sent = 0;
    let got = loop {
        let got = bob.recv.received_texts(stream);
        if got.len() > 5 {
            break got;
        }
        assert!(
            Instant::now() < deadline,
            "Alice never heard again: {got:?}"
        );
        sent += 1;
        alice.send.send_text(0, &format!("later {sent}"));
        let _ = wait_texts_within(&bob, stream, 6, Duration::from_millis(250)).await;
    };
    assert_eq!(got.len(), 6, "one message heard again: {got:?}");
    assert!(got[5].starts_with("later "), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_producer_that_goes_closes_its_data_consumers() {
    let sfu = Sfu::start(&[]);
    let url = sfu.ws_url();
    let joining = Joining::new(&url).data();
    let (mut alice, mut bob) = joining.pair("chat-close", ["Alice", "Bob"], 1000).await;
    let mut carol = joining
        .join_call("chat-close", "Carol", 3000, &mut [&mut alice, &mut bob])
        .await;
    let alice_chat = produce_chat(&mut alice).await;
    let carol_chat = produce_chat(&mut carol).await;
    let (_, from_alice) = consume_chat_answer(&mut bob, &alice_chat).await;
    let (_, from_carol) = consume_chat_answer(&mut bob, &carol_chat).await;
    // Alice closes her send transport, then Carol leaves: Bob is told for each, with the
    // ids he was given.
    alice
        .signaling
        .ok(&CloseTransport(transport_args(&alice.send_id)))
        .await;
    let closed = notified!(
        bob.signaling,
        Notification::DataConsumerClosed { data_consumer_id, data_producer_id } =>
            (data_consumer_id, data_producer_id)
    );
    assert_eq!(closed, (from_alice.data_consumer_id, alice_chat));
    carol.signaling.ok(&Leave {}).await;
    let closed = notified!(
        bob.signaling,
        Notification::DataConsumerClosed { data_consumer_id, .. } => data_consumer_id
    );
    assert_eq!(closed, from_carol.data_consumer_id);
    // Neither can be consumed any more.
    for gone in [&alice_chat, &carol_chat] {
        let args = consume_data(&bob, gone);
        assert_refused(&mut bob, &args, "not_found", "").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_channel_requests_that_cannot_be_carried_out_are_refused_clearly() {
    let sfu = Sfu::start(&[]);
    let (mut alice, mut bob) = Joining::new(&sfu.ws_url())
        .data()
        .pair("chat-refusals", ["Alice", "Bob"], 1000)
        .await;
    let chat = produce_chat(&mut alice).await;
    // A transport created without `"data": true` has no data channels.
    let plain = bob.signaling.ok(&transport(Direction::Send)).await;
    assert!(plain.sctp_parameters.is_none(), "{plain:?}");
    let mut on_plain = produce_data(&bob, 0, "");
    on_plain.transport_id = plain.transport_id.to_string();
    assert_refused(
        &mut bob,
        &on_plain,
        "invalid_argument",
        "create it with \"data\": true",
    )
    .await;
    let own = consume_data(&alice, &chat);
    assert_refused(&mut alice, &own, "invalid_argument", "own data producer").await;
    let unknown: DataProducerId = "00000000-0000-4000-8000-000000000000".parse().expect("id");
    let unknown = consume_data(&bob, &unknown);
    assert_refused(&mut bob, &unknown, "not_found", "no data producer").await;
    let mut on_send = consume_data(&bob, &chat);
    on_send.transport_id = bob.send_id.to_string();
    assert_refused(&mut bob, &on_send, "invalid_argument", "Send transport").await;
    let mut on_recv = produce_data(&bob, 0, "");
    on_recv.transport_id = bob.recv_id.to_string();
    assert_refused(&mut bob, &on_recv, "invalid_argument", "Recv transport").await;
    let long_label = produce_data(&bob, 1, &"x".repeat(300));
    let says = "label is longer than 256 bytes";
    assert_refused(&mut bob, &long_label, "invalid_argument", says).await;
    // Well-formed as a request; a stream id mediasoup cannot take, on purpose.
    let mut bad_stream = produce_data(&bob, 0, "");
    bad_stream.sctp_stream_parameters =
        serde_json::from_value(json!({"streamId": "one"})).expect("an object");
    let says = "SCTP stream parameters";
    assert_refused(&mut bob, &bad_stream, "invalid_argument", says).await;
    // Malformed on purpose: no sctpStreamParameters at all.
    let missing = json!({"id": 1000, "method": "produceData",
        "data": {"transportId": bob.send_id.to_string()}});
    bob.signaling
        .send_raw(missing.to_string())
        .await
        .expect("send");
    let answer = bob.signaling.next_raw_answer().await;
    let refused = answer.outcome.expect_err("refused");
    assert_eq!(refused.code(), "bad_request", "{refused}");
    assert!(
        refused.to_string().contains("sctpStreamParameters"),
        "{refused}"
    );
    // Four data producers at most; the fifth is refused.
    for stream in 1..=4 {
        let args = produce_data(&bob, stream, "");
        bob.signaling.ok(&args).await;
    }
    let fifth = produce_data(&bob, 5, "");
    let refused = bob.signaling.refused(&fifth).await;
    assert_eq!(refused.code(), "too_many_producers", "{refused}");
    // And Alice's chat still works for Bob.
    let stream = consume_chat(&mut bob, &chat).await;
    alice.send.send_text(0, "still here");
    assert_eq!(wait_texts(&bob, stream, 1).await, vec!["still here"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_consumes_each_producer_once_and_data_consumers_count_against_its_cap() {
    // Each of the pair consumes the other's audio and video: two consumers, one place left.
    let sfu = Sfu::start(&["--max-consumers-per-peer", "3"]);
    let (mut alice, mut bob) = Joining::new(&sfu.ws_url())
        .data()
        .pair("chat-caps", ["Alice", "Bob"], 1000)
        .await;
    assert_eq!(bob.consumers.len(), 2);
    let chat = produce_chat(&mut alice).await;
    let (stream, first) = consume_chat_answer(&mut bob, &chat).await;
    let consume_chat_again = consume_data(&bob, &chat);
    let first_id = first.data_consumer_id.to_string();
    assert_refused(
        &mut bob,
        &consume_chat_again,
        "already_consuming",
        &first_id,
    )
    .await;
    let audio = alice.producers[0].id;
    let consume_audio_again = bob.consume_args(&audio);
    let of_audio = bob.consumers.iter().find(|c| c.producer == audio);
    let of_audio = of_audio.expect("Bob consumes Alice's audio").id.to_string();
    assert_refused(
        &mut bob,
        &consume_audio_again,
        "already_consuming",
        &of_audio,
    )
    .await;
    // The data consumer took the third place: another chat is over the cap.
    let args = produce_data(&alice, 1, "chat");
    let second = alice.signaling.ok(&args).await;
    let over = consume_data(&bob, &second.data_producer_id);
    assert_refused(&mut bob, &over, "too_many_consumers", "").await;
    // Nothing of that harmed the chat.
    alice.send.send_text(0, "still one chat");
    assert_eq!(wait_texts(&bob, stream, 1).await, vec!["still one chat"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_goes_on_through_a_signaling_drop_and_resume_lists_it() {
    let sfu = Sfu::start(&[]);
    let url = sfu.ws_url();
    let joining = Joining::new(&url).data();
    let (mut alice, mut bob) = joining.pair("chat-resume", ["Alice", "Bob"], 1000).await;
    let alice_chat = produce_chat(&mut alice).await;
    let bob_chat = produce_chat(&mut bob).await;
    let bob_hears = consume_chat(&mut bob, &alice_chat).await;
    let alice_hears = consume_chat(&mut alice, &bob_chat).await;
    let token = bob.joined.resume_token.clone();

    // Bob's signaling drops: the chat does not go through signaling, so it goes on.
    bob.signaling.abort();
    alice.send.send_text(0, "while you were away");
    bob.send.send_text(0, "still typing");
    assert_eq!(
        wait_texts(&bob, bob_hears, 1).await,
        vec!["while you were away"]
    );
    assert_eq!(
        wait_texts(&alice, alice_hears, 1).await,
        vec!["still typing"]
    );
    bob.signaling = signaling::connect(&url, None).await;
    let resumed = bob
        .signaling
        .ok(&ResumeArgs {
            resume_token: token,
        })
        .await;
    assert_eq!(
        resumed.data_producers[0].data_producer_id, bob_chat,
        "{resumed:?}"
    );
    assert_eq!(
        resumed.data_consumers[0].data_producer_id, alice_chat,
        "{resumed:?}"
    );
    assert_eq!(
        resumed.peers[0].data_producers[0].data_producer_id, alice_chat,
        "{resumed:?}"
    );
    alice.send.send_text(0, "welcome back");
    assert_eq!(
        wait_texts(&bob, bob_hears, 2).await,
        vec!["while you were away", "welcome back"]
    );
}
