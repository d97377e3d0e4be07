//! Every method that changes a call once it runs — pause, resume and close of producers and
//! consumers, `closeTransport`, `restartIce` — checked by what the other peers receive,
//! packet by packet, and by the notifications they get; and the refusals a client can meet
//! on the way (its own producer, another room's, one producer too many, unknown ids).

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use str0m::ice::{StunMessage, TransId};
use tokio::net::UdpSocket;

use crate::support::peer::{exchange_media, Joining, TestPeer};
use crate::support::Sfu;

/// 1..=to, the sequence numbers of the packets sent so far.
fn upto(to: u64) -> Vec<u64> {
    (1..=to).collect()
}

/// Sends media from `peer` for 200 ms (10 packets per track).
async fn talk(peer: &mut TestPeer) {
    exchange_media(&mut [peer], Duration::from_millis(200)).await;
}

async fn pair(url: &str, room: &str) -> (TestPeer, TestPeer) {
    Joining::new(url).pair(room, ["Alice", "Bob"], 1000).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_producer_reaches_no_consumer_until_it_is_resumed() {
    let sfu = Sfu::start(&[]);
    let (mut alice, mut bob) = pair(&sfu.ws_url(), "pause-producer").await;
    let (audio, video) = (alice.producers[0].id.clone(), alice.producers[1].id.clone());
    let (bob_audio, bob_video) = (bob.consumer_of(&audio), bob.consumer_of(&video));
    talk(&mut alice).await;
    let paused_at = alice.sent();
    alice
        .signaling
        .ok("pauseProducer", json!({"producerId": video}))
        .await;
    let note = bob.signaling.notification("consumerPaused").await;
    assert_eq!(note["consumerId"], bob.consumers[bob_video].id);
    talk(&mut alice).await;
    let resumed_at = alice.sent();
    alice
        .signaling
        .ok("resumeProducer", json!({"producerId": video}))
        .await;
    let note = bob.signaling.notification("consumerResumed").await;
    assert_eq!(note["consumerId"], bob.consumers[bob_video].id);
    talk(&mut alice).await;

    // Video: what was sent before the pause and after the resume, nothing in between.
    let expected: Vec<u64> = (1..=paused_at)
        .chain(resumed_at + 1..=alice.sent())
        .collect();
    let got = bob.wait_seqs(bob_video, expected.len() as u64).await;
    assert_eq!(got, expected, "Bob's video of Alice around the pause");
    // Audio was not paused.
    let got = bob.wait_seqs(bob_audio, alice.sent()).await;
    assert_eq!(got, upto(alice.sent()), "Bob's audio of Alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_consumer_stops_only_itself() {
    let sfu = Sfu::start(&[]);
    let url = sfu.ws_url();
    let (mut alice, mut bob) = pair(&url, "pause-consumer").await;
    let mut carol = Joining::new(&url)
        .join_call("pause-consumer", "Carol", 3000, &mut [&mut alice, &mut bob])
        .await;
    let video = alice.producers[1].id.clone();
    let (bob_video, carol_video) = (bob.consumer_of(&video), carol.consumer_of(&video));
    talk(&mut alice).await;
    let paused_at = alice.sent();
    let consumer = bob.consumers[bob_video].id.clone();
    bob.signaling
        .ok("pauseConsumer", json!({"consumerId": consumer}))
        .await;
    talk(&mut alice).await;
    let resumed_at = alice.sent();
    bob.signaling
        .ok("resumeConsumer", json!({"consumerId": consumer}))
        .await;
    talk(&mut alice).await;

    let expected: Vec<u64> = (1..=paused_at)
        .chain(resumed_at + 1..=alice.sent())
        .collect();
    let got = bob.wait_seqs(bob_video, expected.len() as u64).await;
    assert_eq!(got, expected, "Bob's paused consumer");
    let got = carol.wait_seqs(carol_video, alice.sent()).await;
    assert_eq!(
        got,
        upto(alice.sent()),
        "Carol's consumer of the same producer"
    );
    // Pausing is the consumer's own business: Alice and Carol were told nothing.
    for peer in [&mut alice, &mut carol] {
        while let Ok(note) = peer.signaling.notifications.try_recv() {
            assert!(
                !["consumerPaused", "consumerResumed"]
                    .contains(&note["notification"].as_str().unwrap_or("")),
                "{} was told {note}",
                peer.name
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_producer_closes_its_consumers_at_every_peer() {
    let sfu = Sfu::start(&[]);
    let url = sfu.ws_url();
    let (mut alice, mut bob) = pair(&url, "close-producer").await;
    let mut carol = Joining::new(&url)
        .join_call("close-producer", "Carol", 3000, &mut [&mut alice, &mut bob])
        .await;
    talk(&mut alice).await;
    let closed_at = alice.sent();
    let (audio, video) = (alice.producers[0].id.clone(), alice.producers[1].id.clone());
    alice
        .signaling
        .ok("closeProducer", json!({"producerId": audio}))
        .await;
    for peer in [&mut bob, &mut carol] {
        let note = peer.signaling.notification("consumerClosed").await;
        let at = peer.consumer_of(&audio);
        assert_eq!(note["consumerId"], peer.consumers[at].id, "{}", peer.name);
        assert_eq!(note["producerId"], audio.as_str());
    }
    // Alice's str0m keeps sending on the audio SSRC: the SFU drops it, her video goes on.
    talk(&mut alice).await;
    for peer in [&bob, &carol] {
        let got = peer.wait_seqs(peer.consumer_of(&video), alice.sent()).await;
        assert_eq!(got, upto(alice.sent()), "{}'s video of Alice", peer.name);
        let got = peer.wait_seqs(peer.consumer_of(&audio), closed_at).await;
        assert_eq!(
            got,
            upto(closed_at),
            "{}'s closed audio consumer",
            peer.name
        );
    }
    // Gone for good: the producer and the consumers are unknown now.
    let refused = alice
        .signaling
        .request("pauseProducer", json!({"producerId": audio}))
        .await;
    assert_eq!(refused.map_err(|e| e.0), Err("not_found".to_string()));
    let consumer = bob.consumers[bob.consumer_of(&audio)].id.clone();
    let refused = bob
        .signaling
        .request("resumeConsumer", json!({"consumerId": consumer}))
        .await;
    assert_eq!(refused.map_err(|e| e.0), Err("not_found".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_consumer_stops_and_its_producer_can_be_consumed_again() {
    let sfu = Sfu::start(&[]);
    let (mut alice, mut bob) = pair(&sfu.ws_url(), "close-consumer").await;
    let (audio, video) = (alice.producers[0].id.clone(), alice.producers[1].id.clone());
    talk(&mut alice).await;
    let closed_at = alice.sent();
    let old = bob.consumer_of(&video);
    let consumer = bob.consumers[old].id.clone();
    bob.signaling
        .ok("closeConsumer", json!({"consumerId": consumer}))
        .await;
    talk(&mut alice).await;
    let got = bob.wait_seqs(bob.consumer_of(&audio), alice.sent()).await;
    assert_eq!(got, upto(alice.sent()), "the audio consumer goes on");
    assert_eq!(bob.wait_seqs(old, closed_at).await, upto(closed_at));
    let refused = bob
        .signaling
        .request("pauseConsumer", json!({"consumerId": consumer}))
        .await;
    assert_eq!(refused.map_err(|e| e.0), Err("not_found".to_string()));

    // Closing a consumer leaves its producer alone: Bob consumes it again.
    bob.consumers.remove(old);
    let again = bob.consume(&video).await;
    assert_ne!(again, consumer);
    let resumed_from = alice.sent();
    talk(&mut alice).await;
    let expected: Vec<u64> = (resumed_from + 1..=alice.sent()).collect();
    let got = bob
        .wait_seqs(bob.consumer_of(&video), expected.len() as u64)
        .await;
    assert_eq!(got, expected, "the new consumer of Alice's video");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_transport_closes_what_it_carried() {
    let sfu = Sfu::start(&[]);
    let (mut alice, mut bob) = pair(&sfu.ws_url(), "close-transport").await;
    let alices: Vec<String> = alice.producers.iter().map(|p| p.id.clone()).collect();
    // Alice's send transport: both her producers close, and so do Bob's consumers of them.
    let transport = alice.send_id.clone();
    alice
        .signaling
        .ok("closeTransport", json!({"transportId": transport}))
        .await;
    let mut closed = Vec::new();
    for _ in 0..2 {
        let note = bob.signaling.notification("consumerClosed").await;
        closed.push(note["producerId"].as_str().expect("producerId").to_string());
    }
    closed.sort();
    let mut expected = alices.clone();
    expected.sort();
    assert_eq!(closed, expected);
    let refused = alice
        .signaling
        .request(
            "produce",
            json!({"transportId": transport, "kind": "audio", "rtpParameters": {}}),
        )
        .await;
    assert_eq!(refused.map_err(|e| e.0), Err("not_found".to_string()));
    // Her receive transport still brings Bob's media, all of it.
    exchange_media(&mut [&mut bob], Duration::from_millis(400)).await;
    for index in 0..2 {
        assert_eq!(alice.wait_seqs(index, bob.sent()).await, upto(bob.sent()));
    }

    // Bob's receive transport: his consumers go with it.
    let transport = bob.recv_id.clone();
    bob.signaling
        .ok("closeTransport", json!({"transportId": transport}))
        .await;
    for consumer in bob.consumers.clone() {
        let refused = bob
            .signaling
            .request("resumeConsumer", json!({"consumerId": consumer.id}))
            .await;
        assert_eq!(refused.map_err(|e| e.0), Err("not_found".to_string()));
    }
    let caps = bob.device_capabilities();
    let refused = bob
        .signaling
        .request(
            "consume",
            json!({"transportId": transport, "producerId": alices[0], "rtpCapabilities": caps}),
        )
        .await;
    assert_eq!(refused.map_err(|e| e.0), Err("not_found".to_string()));
}

/// Sends one STUN binding request to `server` as ICE would with `ufrag`/`password` of the
/// server; whether the server answered success (`Some(true)`), an error (`Some(false)`), or
/// nothing within a second.
async fn stun_probe(server: SocketAddr, ufrag: &str, password: &str) -> Option<bool> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let username = format!("{ufrag}:probe");
    let request = StunMessage::binding_request(&username, TransId::new(), true, 1, 1, false);
    let mut buf = [0u8; 1500];
    let hmac = |key: &[u8], parts: &[&[u8]]| {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
        let mut context = ring::hmac::Context::with_key(&key);
        for part in parts {
            context.update(part);
        }
        let mut out = [0u8; 20];
        out.copy_from_slice(context.sign().as_ref());
        out
    };
    let n = request
        .to_bytes(Some(password.as_bytes()), &mut buf, hmac)
        .expect("STUN request");
    socket.send_to(&buf[..n], server).await.expect("send STUN");
    let mut answer = [0u8; 1500];
    let (n, _) = tokio::time::timeout(Duration::from_secs(1), socket.recv_from(&mut answer))
        .await
        .ok()?
        .expect("receive STUN");
    let answer = StunMessage::parse(&answer[..n]).expect("a STUN answer");
    Some(answer.is_successful_binding_response())
}

fn ice(params: &Value) -> (String, String) {
    (
        params["usernameFragment"].as_str().expect("ufrag").into(),
        params["password"].as_str().expect("password").into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_ice_issues_new_credentials_that_the_server_then_requires() {
    let sfu = Sfu::start(&[]);
    let (mut alice, bob) = pair(&sfu.ws_url(), "restart-ice").await;
    let server = bob.recv.server_addr();
    let old = ice(&bob.recv.server["iceParameters"]);
    assert_eq!(
        stun_probe(server, &old.0, &old.1).await,
        Some(true),
        "the probe works"
    );

    let mut bob = bob;
    let restarted = bob
        .signaling
        .ok("restartIce", json!({"transportId": bob.recv_id}))
        .await;
    let new = ice(&restarted["iceParameters"]);
    assert_ne!(new.0, old.0, "a new username fragment");
    assert_ne!(new.1, old.1, "a new password");
    assert_eq!(
        stun_probe(server, &new.0, &new.1).await,
        Some(true),
        "the new credentials are accepted"
    );
    // Once the new ones are in use, the old ones are refused.
    assert_eq!(
        stun_probe(server, &old.0, &old.1).await,
        Some(false),
        "the old credentials are refused"
    );
    // Bob's str0m moves to the new credentials; media goes on, every packet.
    bob.recv.set_remote_ice(&restarted["iceParameters"]);
    exchange_media(&mut [&mut alice], Duration::from_secs(1)).await;
    for index in 0..2 {
        assert_eq!(bob.wait_seqs(index, alice.sent()).await, upto(alice.sent()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_a_peer_may_not_consume_are_refused_with_their_reason() {
    let sfu = Sfu::start(&["--max-producers-per-peer", "2"]);
    let url = sfu.ws_url();
    let (mut alice, bob) = pair(&url, "mine").await;
    let elsewhere = Joining::new(&url).peer("other-room", "Eve", 5000).await;
    let caps = alice.device_capabilities();
    let consume = |producer: &str| json!({"transportId": alice.recv_id, "producerId": producer, "rtpCapabilities": caps});
    let own = consume(&alice.producers[0].id);
    let foreign = consume(&elsewhere.producers[0].id);
    let unknown = consume("00000000-0000-4000-8000-000000000000");
    let (code, message) = alice
        .signaling
        .request("consume", own)
        .await
        .expect_err("own");
    assert_eq!(code, "invalid_argument", "{message}");
    assert!(message.contains("own producer"), "{message}");
    for (what, request) in [
        ("another room's producer", foreign),
        ("an unknown producer", unknown),
    ] {
        let (code, message) = alice
            .signaling
            .request("consume", request)
            .await
            .expect_err(what);
        assert_eq!(code, "not_found", "{what}: {message}");
    }
    // Alice has published her two tracks: a third is one too many.
    let third = json!({"transportId": alice.send_id, "kind": "audio", "rtpParameters": {
        "mid": "2", "codecs": [{"mimeType": "audio/opus", "payloadType": 100, "clockRate": 48000, "channels": 2}],
        "encodings": [{"ssrc": 4242}], "rtcp": {"cname": "Alice"}}});
    let (code, message) = alice
        .signaling
        .request("produce", third)
        .await
        .expect_err("a third producer");
    assert_eq!(code, "too_many_producers", "{message}");
    // The refusals changed nothing: Bob still receives Alice, exactly.
    talk(&mut alice).await;
    for index in 0..2 {
        assert_eq!(bob.wait_seqs(index, alice.sent()).await, upto(alice.sent()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_whose_codecs_the_router_does_not_take_is_told_which_it_takes() {
    let sfu = Sfu::start(&[]);
    let mut alice = Joining::new(&sfu.ws_url())
        .peer("codecs", "Alice", 1000)
        .await;
    let av1 = json!({"transportId": alice.send_id, "kind": "video", "rtpParameters": {
        "mid": "5", "codecs": [{"mimeType": "video/AV1", "payloadType": 45, "clockRate": 90000}],
        "headerExtensions": [], "encodings": [{"ssrc": 5555}], "rtcp": {"cname": "Alice", "reducedSize": true}}});
    let (code, message) = alice
        .signaling
        .request("produce", av1)
        .await
        .expect_err("AV1 is not offered");
    assert_eq!(code, "media_error", "{message}");
    assert!(
        message.contains("video/AV1") && message.contains("video/VP8, video/VP9, video/H264"),
        "{message}"
    );
}
