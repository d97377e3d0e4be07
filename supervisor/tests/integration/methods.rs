//! Every method that changes a call once it runs — pause, resume and close of producers and
//! consumers, `closeTransport`, `restartIce` — checked by what the other peers receive,
//! packet by packet, and by the notifications they get; and the refusals a client can meet
//! on the way (its own producer, another room's, one producer too many, unknown ids).

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Map;
use signaling_api::calls::{
    CloseConsumer, CloseProducer, CloseTransport, PauseConsumer, PauseProducer, RestartIce,
    ResumeConsumer, ResumeProducer,
};
use signaling_api::media::{self, CodecParameters, Encoding, IceParameters, Rtcp, RtpParameters};
use signaling_api::{Kind, Notification, ProduceArgs, ProducerId};
use str0m::ice::{StunMessage, TransId};
use tokio::net::UdpSocket;

use crate::support::peer::{exchange_media, opus_parameters, Joining, TestPeer};
use crate::support::signaling::{
    consumer_args, notified, producer_args, told, transport_args, Expect,
};
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
    let (audio, video) = (alice.producers[0].id, alice.producers[1].id);
    let (bob_audio, bob_video) = (bob.consumer_of(&audio), bob.consumer_of(&video));
    talk(&mut alice).await;
    let paused_at = alice.sent();
    alice
        .signaling
        .ok(&PauseProducer(producer_args(&video)))
        .await;
    let paused =
        notified!(bob.signaling, Notification::ConsumerPaused { consumer_id } => consumer_id);
    assert_eq!(paused, bob.consumers[bob_video].id);
    talk(&mut alice).await;
    let resumed_at = alice.sent();
    alice
        .signaling
        .ok(&ResumeProducer(producer_args(&video)))
        .await;
    let resumed =
        notified!(bob.signaling, Notification::ConsumerResumed { consumer_id } => consumer_id);
    assert_eq!(resumed, bob.consumers[bob_video].id);
    talk(&mut alice).await;

    // Video: what was sent before the pause and after the resume, nothing in between.
    let expected: Vec<u64> = (1..=paused_at)
        .chain(resumed_at + 1..=alice.sent())
        .collect();
    let got = bob
        .wait_seqs(bob_video, &alice, expected.len() as u64)
        .await;
    assert_eq!(got, expected, "Bob's video of Alice around the pause");
    // Audio was not paused.
    let got = bob.wait_seqs(bob_audio, &alice, alice.sent()).await;
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
    let video = alice.producers[1].id;
    let (bob_video, carol_video) = (bob.consumer_of(&video), carol.consumer_of(&video));
    talk(&mut alice).await;
    let paused_at = alice.sent();
    let consumer = bob.consumers[bob_video].id;
    bob.signaling
        .ok(&PauseConsumer(consumer_args(&consumer)))
        .await;
    talk(&mut alice).await;
    let resumed_at = alice.sent();
    bob.signaling
        .ok(&ResumeConsumer(consumer_args(&consumer)))
        .await;
    talk(&mut alice).await;

    let expected: Vec<u64> = (1..=paused_at)
        .chain(resumed_at + 1..=alice.sent())
        .collect();
    let got = bob
        .wait_seqs(bob_video, &alice, expected.len() as u64)
        .await;
    assert_eq!(got, expected, "Bob's paused consumer");
    let got = carol.wait_seqs(carol_video, &alice, alice.sent()).await;
    assert_eq!(
        got,
        upto(alice.sent()),
        "Carol's consumer of the same producer"
    );
    // Pausing is the consumer's own business: Alice and Carol were told nothing, in all they
    // were told since they joined, up to 300 ms after the resume.
    for peer in [&mut alice, &mut carol] {
        for note in told(&mut peer.signaling, Duration::from_millis(300)).await {
            assert!(
                !matches!(
                    note,
                    Notification::ConsumerPaused { .. } | Notification::ConsumerResumed { .. }
                ),
                "{} was told {note:?}",
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
    let (audio, video) = (alice.producers[0].id, alice.producers[1].id);
    alice
        .signaling
        .ok(&CloseProducer(producer_args(&audio)))
        .await;
    for peer in [&mut bob, &mut carol] {
        let (consumer, producer) = notified!(
            peer.signaling,
            Notification::ConsumerClosed { consumer_id, producer_id } => (consumer_id, producer_id)
        );
        let at = peer.consumer_of(&audio);
        assert_eq!(consumer, peer.consumers[at].id, "{}", peer.name);
        assert_eq!(producer, audio);
    }
    // Alice's str0m keeps sending on the audio SSRC: the SFU drops it, her video goes on.
    talk(&mut alice).await;
    for peer in [&bob, &carol] {
        let got = peer
            .wait_seqs(peer.consumer_of(&video), &alice, alice.sent())
            .await;
        assert_eq!(got, upto(alice.sent()), "{}'s video of Alice", peer.name);
        let got = peer
            .wait_seqs(peer.consumer_of(&audio), &alice, closed_at)
            .await;
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
        .refused(&PauseProducer(producer_args(&audio)))
        .await;
    assert_eq!(refused.code(), "not_found", "{refused}");
    let consumer = bob.consumers[bob.consumer_of(&audio)].id;
    let refused = bob
        .signaling
        .refused(&ResumeConsumer(consumer_args(&consumer)))
        .await;
    assert_eq!(refused.code(), "not_found", "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_consumer_stops_and_its_producer_can_be_consumed_again() {
    let sfu = Sfu::start(&[]);
    let (mut alice, mut bob) = pair(&sfu.ws_url(), "close-consumer").await;
    let (audio, video) = (alice.producers[0].id, alice.producers[1].id);
    talk(&mut alice).await;
    let closed_at = alice.sent();
    let old = bob.consumer_of(&video);
    let consumer = bob.consumers[old].id;
    bob.signaling
        .ok(&CloseConsumer(consumer_args(&consumer)))
        .await;
    talk(&mut alice).await;
    let got = bob
        .wait_seqs(bob.consumer_of(&audio), &alice, alice.sent())
        .await;
    assert_eq!(got, upto(alice.sent()), "the audio consumer goes on");
    assert_eq!(bob.wait_seqs(old, &alice, closed_at).await, upto(closed_at));
    let refused = bob
        .signaling
        .refused(&PauseConsumer(consumer_args(&consumer)))
        .await;
    assert_eq!(refused.code(), "not_found", "{refused}");

    // Closing a consumer leaves its producer alone: Bob consumes it again.
    bob.consumers.remove(old);
    let again = bob.consume(&video).await;
    assert_ne!(again, consumer);
    let resumed_from = alice.sent();
    talk(&mut alice).await;
    let expected: Vec<u64> = (resumed_from + 1..=alice.sent()).collect();
    let got = bob
        .wait_seqs(bob.consumer_of(&video), &alice, expected.len() as u64)
        .await;
    assert_eq!(got, expected, "the new consumer of Alice's video");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_transport_closes_what_it_carried() {
    let sfu = Sfu::start(&[]);
    let (mut alice, mut bob) = pair(&sfu.ws_url(), "close-transport").await;
    let alices: Vec<ProducerId> = alice.producers.iter().map(|p| p.id).collect();
    // Alice's send transport: both her producers close, and so do Bob's consumers of them.
    let transport = alice.send_id;
    alice
        .signaling
        .ok(&CloseTransport(transport_args(&transport)))
        .await;
    let mut closed = Vec::new();
    for _ in 0..2 {
        closed.push(notified!(
            bob.signaling,
            Notification::ConsumerClosed { producer_id, .. } => producer_id
        ));
    }
    closed.sort();
    let mut expected = alices.clone();
    expected.sort();
    assert_eq!(closed, expected);
    let refused = alice
        .signaling
        .refused(&ProduceArgs {
            transport_id: transport.to_string(),
            kind: Kind::Audio,
            rtp_parameters: Map::new(),
            app_data: None,
        })
        .await;
    assert_eq!(refused.code(), "not_found", "{refused}");
    // Her receive transport still brings Bob's media, all of it.
    exchange_media(&mut [&mut bob], Duration::from_millis(400)).await;
    for index in 0..2 {
        assert_eq!(
            alice.wait_seqs(index, &bob, bob.sent()).await,
            upto(bob.sent())
        );
    }

    // Bob's receive transport: his consumers go with it.
    let transport = bob.recv_id;
    bob.signaling
        .ok(&CloseTransport(transport_args(&transport)))
        .await;
    for consumer in bob.consumers.clone() {
        let refused = bob
            .signaling
            .refused(&ResumeConsumer(consumer_args(&consumer.id)))
            .await;
        assert_eq!(refused.code(), "not_found", "{refused}");
    }
    // The consume of a transport that is gone (the receive transport was Bob's).
    let consume = bob.consume_args(&alices[0]);
    let refused = bob.signaling.refused(&consume).await;
    assert_eq!(refused.code(), "not_found", "{refused}");
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

fn ice(params: &serde_json::Value) -> IceParameters {
    media::read(params).expect("iceParameters")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_ice_issues_new_credentials_that_the_server_then_requires() {
    let sfu = Sfu::start(&[]);
    let (mut alice, bob) = pair(&sfu.ws_url(), "restart-ice").await;
    let server = bob.recv.server_addr();
    let old = ice(&bob.recv.server.ice_parameters);
    assert_eq!(
        stun_probe(server, &old.username_fragment, &old.password).await,
        Some(true),
        "the probe works"
    );

    let mut bob = bob;
    let restarted = bob
        .signaling
        .ok(&RestartIce(transport_args(&bob.recv_id)))
        .await;
    let new = ice(&restarted.ice_parameters);
    assert_ne!(
        new.username_fragment, old.username_fragment,
        "a new username fragment"
    );
    assert_ne!(new.password, old.password, "a new password");
    assert_eq!(
        stun_probe(server, &new.username_fragment, &new.password).await,
        Some(true),
        "the new credentials are accepted"
    );
    // Once the new ones are in use, the old ones are refused.
    assert_eq!(
        stun_probe(server, &old.username_fragment, &old.password).await,
        Some(false),
        "the old credentials are refused"
    );
    // Bob's str0m moves to the new credentials; media goes on, every packet.
    bob.recv.set_remote_ice(&new);
    exchange_media(&mut [&mut alice], Duration::from_secs(1)).await;
    for index in 0..2 {
        assert_eq!(
            bob.wait_seqs(index, &alice, alice.sent()).await,
            upto(alice.sent())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producers_a_peer_may_not_consume_are_refused_with_their_reason() {
    let sfu = Sfu::start(&["--max-producers-per-peer", "2"]);
    let url = sfu.ws_url();
    let (mut alice, bob) = pair(&url, "mine").await;
    let elsewhere = Joining::new(&url).peer("other-room", "Eve", 5000).await;
    let own = alice.consume_args(&alice.producers[0].id);
    let foreign = alice.consume_args(&elsewhere.producers[0].id);
    let unknown: ProducerId = "00000000-0000-4000-8000-000000000000"
        .parse()
        .expect("an id");
    let unknown = alice.consume_args(&unknown);
    let refused = alice.signaling.refused(&own).await;
    assert_eq!(refused.code(), "invalid_argument", "{refused}");
    assert!(refused.to_string().contains("own producer"), "{refused}");
    for (what, request) in [
        ("another room's producer", foreign),
        ("an unknown producer", unknown),
    ] {
        let refused = alice.signaling.refused(&request).await;
        assert_eq!(refused.code(), "not_found", "{what}: {refused}");
    }
    // Alice has published her two tracks: a third is one too many.
    let third = ProduceArgs {
        transport_id: alice.send_id.to_string(),
        kind: Kind::Audio,
        rtp_parameters: media::object(&opus_parameters("2", 100, 4242, "Alice")),
        app_data: None,
    };
    let refused = alice.signaling.refused(&third).await;
    assert_eq!(refused.code(), "too_many_producers", "{refused}");
    // The refusals changed nothing: Bob still receives Alice, exactly.
    talk(&mut alice).await;
    for index in 0..2 {
        assert_eq!(
            bob.wait_seqs(index, &alice, alice.sent()).await,
            upto(alice.sent())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_whose_codecs_the_router_does_not_take_is_told_which_it_takes() {
    let sfu = Sfu::start(&[]);
    let mut alice = Joining::new(&sfu.ws_url())
        .peer("codecs", "Alice", 1000)
        .await;
    let av1 = RtpParameters {
        mid: "5".into(),
        codecs: vec![CodecParameters {
            mime_type: "video/AV1".into(),
            payload_type: 45,
            clock_rate: 90000,
            channels: None,
            parameters: Default::default(),
            rtcp_feedback: Vec::new(),
        }],
        header_extensions: Vec::new(),
        encodings: vec![Encoding {
            ssrc: 5555,
            rtx: None,
        }],
        rtcp: Rtcp {
            cname: "Alice".into(),
            reduced_size: true,
        },
    };
    let refused = alice
        .signaling
        .refused(&ProduceArgs {
            transport_id: alice.send_id.to_string(),
            kind: Kind::Video,
            rtp_parameters: media::object(&av1),
            app_data: None,
        })
        .await;
    assert_eq!(refused.code(), "media_error", "{refused}");
    let message = refused.message().unwrap_or_default();
    assert!(
        message.contains("video/AV1") && message.contains("video/VP8, video/VP9, video/H264"),
        "{message}"
    );
}
