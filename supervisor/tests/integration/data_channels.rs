//! Data channels (the chat) with str0m peers: `produceData` and `consumeData` carry every
//! message to every other peer of the room, exactly and in order; the limits hold (a message
//! over `--max-data-message-bytes` is dropped, a data producer over
//! `--max-data-messages-per-sec` is cut at exactly the limit and its peer told); a data
//! producer that goes closes its data consumers everywhere; and the refusals a client can meet.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::peer::{Joining, TestPeer};
use crate::support::{monitor_json, Sfu};

/// `peer` opens a chat data channel on its send transport: its `dataProducerId`.
async fn produce_chat(peer: &mut TestPeer) -> String {
    let answer = peer
        .signaling
        .ok(
            "produceData",
            json!({"transportId": peer.send_id, "sctpStreamParameters": {"streamId": 0, "ordered": true}, "label": "chat"}),
        )
        .await;
    peer.send.open_channel(0, "chat").await;
    answer["dataProducerId"]
        .as_str()
        .expect("dataProducerId")
        .to_string()
}

/// `peer` consumes `data_producer` and opens its channel: the SCTP stream its messages
/// arrive on.
async fn consume_chat(peer: &mut TestPeer, data_producer: &str) -> u16 {
    consume_chat_answer(peer, data_producer).await.0
}

/// As [`consume_chat`], with the `consumeData` answer.
async fn consume_chat_answer(peer: &mut TestPeer, data_producer: &str) -> (u16, Value) {
    let answer = peer
        .signaling
        .ok(
            "consumeData",
            json!({"transportId": peer.recv_id, "dataProducerId": data_producer}),
        )
        .await;
    assert_eq!(answer["dataProducerId"], data_producer, "{answer}");
    assert_eq!(answer["label"], "chat", "{answer}");
    let stream = answer["sctpStreamParameters"]["streamId"]
        .as_u64()
        .expect("streamId") as u16;
    peer.recv.open_channel(stream, "chat").await;
    (stream, answer)
}

/// Waits (10 s at most) until `count` messages arrived on `stream` of `peer`: those.
async fn wait_texts(peer: &TestPeer, stream: u16, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        peer.assert_healthy();
        let got = peer.recv.received_texts(stream);
        if got.len() >= count || Instant::now() > deadline {
            return got;
        }
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
    let note = bob.signaling.notification("newDataProducer").await;
    assert_eq!(note["peerId"], alice.peer_id, "{note}");
    assert_eq!(note["dataProducerId"], alice_chat, "{note}");
    assert_eq!(note["label"], "chat", "{note}");
    let bob_hears_alice = consume_chat(&mut bob, &alice_chat).await;

    // Carol comes later: her join answer lists Alice's data producer.
    let mut carol = joining
        .join_call("chat", "Carol", 3000, &mut [&mut alice, &mut bob])
        .await;
    let listed: Vec<Value> = carol.joined["peers"]
        .as_array()
        .expect("peers")
        .iter()
        .flat_map(|p| p["dataProducers"].as_array().cloned().unwrap_or_default())
        .collect();
    assert_eq!(listed.len(), 1, "{}", carol.joined);
    assert_eq!(listed[0]["dataProducerId"], alice_chat);
    let carol_hears_alice = consume_chat(&mut carol, &alice_chat).await;
    let bob_chat = produce_chat(&mut bob).await;
    for peer in [&mut alice, &mut carol] {
        let note = peer.signaling.notification("newDataProducer").await;
        assert_eq!(note["dataProducerId"], bob_chat, "{note}");
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
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        bob.recv.received_texts(stream).len(),
        2,
        "the large one never came"
    );
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
    let note = alice.signaling.notification("dataProducerThrottled").await;
    assert_eq!(note["dataProducerId"], chat, "{note}");
    assert_eq!(note["maxMessagesPerSec"], 5, "{note}");
    assert_eq!(note["pausedMs"], 1000, "{note}");
    let got = wait_texts(&bob, stream, 5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(bob.recv.received_texts(stream), texts("burst", 1..=5));
    assert_eq!(got, texts("burst", 1..=5));
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
    // A second later the data producer is heard again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    alice.send.send_text(0, "later");
    let got = wait_texts(&bob, stream, 6).await;
    assert_eq!(got.last().map(String::as_str), Some("later"), "{got:?}");
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
        .ok("closeTransport", json!({"transportId": alice.send_id}))
        .await;
    let note = bob.signaling.notification("dataConsumerClosed").await;
    assert_eq!(
        note["dataConsumerId"], from_alice["dataConsumerId"],
        "{note}"
    );
    assert_eq!(note["dataProducerId"], alice_chat, "{note}");
    carol.signaling.ok("leave", json!({})).await;
    let note = bob.signaling.notification("dataConsumerClosed").await;
    assert_eq!(
        note["dataConsumerId"], from_carol["dataConsumerId"],
        "{note}"
    );
    // Neither can be consumed any more.
    for gone in [&alice_chat, &carol_chat] {
        let refused = bob
            .signaling
            .request(
                "consumeData",
                json!({"transportId": bob.recv_id, "dataProducerId": gone}),
            )
            .await
            .expect_err("a data producer that is gone");
        assert_eq!(refused.0, "not_found", "{refused:?}");
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
    // (who asks, method, data, expected code, words of the message)
    let cases = [
        (
            "Alice",
            "consumeData",
            json!({"transportId": alice.recv_id, "dataProducerId": chat}),
            "invalid_argument",
            "own data producer",
        ),
        (
            "Bob",
            "consumeData",
            json!({"transportId": bob.recv_id, "dataProducerId": "00000000-0000-4000-8000-000000000000"}),
            "not_found",
            "no data producer",
        ),
        (
            "Bob",
            "consumeData",
            json!({"transportId": bob.send_id, "dataProducerId": chat}),
            "invalid_argument",
            "Send transport",
        ),
        (
            "Bob",
            "produceData",
            json!({"transportId": bob.recv_id, "sctpStreamParameters": {"streamId": 0}}),
            "invalid_argument",
            "Recv transport",
        ),
        (
            "Bob",
            "produceData",
            json!({"transportId": bob.send_id, "sctpStreamParameters": {"streamId": 1}, "label": "x".repeat(300)}),
            "invalid_argument",
            "label is longer than 256 bytes",
        ),
        (
            "Bob",
            "produceData",
            json!({"transportId": bob.send_id, "sctpStreamParameters": {"streamId": "one"}}),
            "invalid_argument",
            "SCTP stream parameters",
        ),
        (
            "Bob",
            "produceData",
            json!({"transportId": bob.send_id}),
            "bad_request",
            "sctpStreamParameters",
        ),
    ];
    // A transport created without `"data": true` has no data channels.
    let plain = bob
        .signaling
        .ok("createWebRtcTransport", json!({"direction": "send"}))
        .await;
    assert!(plain.get("sctpParameters").is_none(), "{plain}");
    let error = bob
        .signaling
        .request(
            "produceData",
            json!({"transportId": plain["transportId"], "sctpStreamParameters": {"streamId": 0}}),
        )
        .await
        .expect_err("data on a transport without SCTP");
    assert_eq!(error.0, "invalid_argument", "{error:?}");
    assert!(
        error.1.contains("create it with \"data\": true"),
        "{error:?}"
    );
    for (who, method, data, code, says) in cases {
        let peer = if who == "Alice" { &mut alice } else { &mut bob };
        let error = peer
            .signaling
            .request(method, data.clone())
            .await
            .expect_err("refused");
        assert_eq!(error.0, code, "{method} {data}: {error:?}");
        assert!(error.1.contains(says), "{method} {data}: {error:?}");
    }
    // Four data producers at most; the fifth is refused.
    for stream in 1..=3 {
        bob.signaling
            .ok(
                "produceData",
                json!({"transportId": bob.send_id, "sctpStreamParameters": {"streamId": stream}}),
            )
            .await;
    }
    bob.signaling
        .ok(
            "produceData",
            json!({"transportId": bob.send_id, "sctpStreamParameters": {"streamId": 4}}),
        )
        .await;
    let error = bob
        .signaling
        .request(
            "produceData",
            json!({"transportId": bob.send_id, "sctpStreamParameters": {"streamId": 5}}),
        )
        .await
        .expect_err("a fifth data producer");
    assert_eq!(error.0, "too_many_producers", "{error:?}");
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
    let consume_chat_again = json!({"transportId": bob.recv_id, "dataProducerId": chat});
    let (code, message) = bob
        .signaling
        .request("consumeData", consume_chat_again)
        .await
        .expect_err("the same data producer twice");
    assert_eq!(code, "already_consuming", "{message}");
    let first_id = first["dataConsumerId"].as_str().expect("dataConsumerId");
    assert!(message.contains(first_id), "{message}");
    let audio = &alice.producers[0].id;
    let consume_audio_again = json!({"transportId": bob.recv_id, "producerId": audio, "rtpCapabilities": bob.device_capabilities()});
    let (code, message) = bob
        .signaling
        .request("consume", consume_audio_again)
        .await
        .expect_err("the same producer twice");
    assert_eq!(code, "already_consuming", "{message}");
    let of_audio = bob.consumers.iter().find(|c| &c.producer == audio);
    let of_audio = of_audio.expect("Bob consumes Alice's audio");
    assert!(message.contains(&of_audio.id), "{message}");
    // The data consumer took the third place: another chat is over the cap.
    let second = alice
        .signaling
        .ok(
            "produceData",
            json!({"transportId": alice.send_id, "sctpStreamParameters": {"streamId": 1}, "label": "chat"}),
        )
        .await;
    let (code, message) = bob
        .signaling
        .request(
            "consumeData",
            json!({"transportId": bob.recv_id, "dataProducerId": second["dataProducerId"]}),
        )
        .await
        .expect_err("over the cap");
    assert_eq!(code, "too_many_consumers", "{message}");
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
    let token = bob.joined["resumeToken"].as_str().unwrap().to_string();

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
    bob.signaling = crate::support::Signaling::connect(&url, None).await;
    let resumed = bob
        .signaling
        .ok("resume", json!({"resumeToken": token}))
        .await;
    assert_eq!(
        resumed["dataProducers"][0]["dataProducerId"], bob_chat,
        "{resumed}"
    );
    assert_eq!(
        resumed["dataConsumers"][0]["dataProducerId"], alice_chat,
        "{resumed}"
    );
    assert_eq!(
        resumed["peers"][0]["dataProducers"][0]["dataProducerId"], alice_chat,
        "{resumed}"
    );
    alice.send.send_text(0, "welcome back");
    assert_eq!(
        wait_texts(&bob, bob_hears, 2).await,
        vec!["while you were away", "welcome back"]
    );
}
