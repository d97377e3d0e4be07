//! End to end: the real supervisor spawns a real node; str0m peers join a room over the real
//! `/ws` protocol, each publishes audio and video RTP, and each receives every other's
//! packets through its consumers, exactly: every packet once, from the producer its consumer
//! names. Then one leaves and the others are told.

use std::time::Duration;

use signaling_api::calls::Leave;
use signaling_api::{ConsumerId, Notification, ProducerId};

use crate::support::peer::{assert_exact_media, exchange_media, Joining};
use crate::support::rtc::VideoCodec;
use crate::support::signaling::{next_left, notified, Expect};
use crate::support::{Sfu, TestCert};

async fn two_peers_exchange_media(url: &str, ca: Option<&str>) {
    let room = format!("call-{}", std::process::id());
    let joining = Joining::new(url).ca(ca);
    let mut alice = joining.join_call(&room, "Alice", 1000, &mut []).await;
    let mut bob = joining
        .join_call(&room, "Bob", 2000, &mut [&mut alice])
        .await;

    // Bob joined second: the join answer listed Alice and her two producers, and Alice was
    // told he joined.
    let listed = &bob.joined.peers;
    assert_eq!(listed.len(), 1, "Bob sees Alice: {listed:?}");
    assert_eq!(listed[0].display_name, "Alice");
    assert_eq!(listed[0].peer_id, alice.peer_id);

    exchange_media(&mut [&mut alice, &mut bob], Duration::from_secs(3)).await;
    for (peer, other) in [(&alice, &bob), (&bob, &alice)] {
        println!(
            "{} received through her/his consumers: {:?}",
            peer.name,
            peer.heard(&[other])
        );
    }
    assert_exact_media(&[&alice, &bob], &[&alice, &bob]).await;

    let bob_id = bob.peer_id;
    bob.signaling.ok(&Leave {}).await;
    // Bob's producers are gone, so Alice's consumers of them close; she hears he left with
    // the tick's other joins and leaves.
    for _ in 0..2 {
        let closed = notified!(
            alice.signaling,
            Notification::ConsumerClosed { consumer_id, .. } => consumer_id
        );
        assert!(alice.consumers.iter().any(|c| c.id == closed));
    }
    let left = next_left(&mut alice.signaling).await;
    assert_eq!(left, bob_id);
    alice.signaling.ok(&Leave {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_see_each_others_media_over_plain_websocket() {
    let sfu = Sfu::start(&[]);
    two_peers_exchange_media(&sfu.ws_url(), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_see_each_others_media_over_tls() {
    let cert = TestCert::new("call");
    let sfu = Sfu::start_tls(&cert, &[]);
    two_peers_exchange_media(&sfu.ws_url(), Some(&cert.cert_pem)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_producer_reaches_every_other_peer_of_a_three_peer_room() {
    let sfu = Sfu::start(&[]);
    let url = sfu.ws_url();
    let joining = Joining::new(&url);
    let mut alice = joining.join_call("trio", "Alice", 1000, &mut []).await;
    let mut bob = joining
        .join_call("trio", "Bob", 2000, &mut [&mut alice])
        .await;
    let mut carol = joining
        .join_call("trio", "Carol", 3000, &mut [&mut alice, &mut bob])
        .await;
    for peer in [&alice, &bob, &carol] {
        assert_eq!(
            peer.consumers.len(),
            4,
            "{} consumes the two others",
            peer.name
        );
    }

    exchange_media(
        &mut [&mut alice, &mut bob, &mut carol],
        Duration::from_secs(2),
    )
    .await;
    // One producer, two consumers each: both get every packet, and only its packets.
    let everyone = [&alice, &bob, &carol];
    assert_exact_media(&everyone, &everyone).await;

    // Carol leaves: both others are told, and exactly their consumers of her close.
    let carol_id = carol.peer_id;
    let carols: Vec<ProducerId> = carol.producers.iter().map(|p| p.id).collect();
    carol.signaling.ok(&Leave {}).await;
    for peer in [&mut alice, &mut bob] {
        let mut closed = Vec::new();
        for _ in 0..2 {
            closed.push(notified!(
                peer.signaling,
                Notification::ConsumerClosed { consumer_id, .. } => consumer_id
            ));
        }
        let left = next_left(&mut peer.signaling).await;
        assert_eq!(left, carol_id);
        closed.sort();
        let mut expected: Vec<ConsumerId> = peer
            .consumers
            .iter()
            .filter(|c| carols.contains(&c.producer))
            .map(|c| c.id)
            .collect();
        expected.sort();
        assert_eq!(closed, expected, "{}'s consumers of Carol close", peer.name);
    }

    // Alice and Bob go on without her, still exactly.
    exchange_media(&mut [&mut alice, &mut bob], Duration::from_millis(400)).await;
    // Bob receives all of Alice's media, from her streams only, and she all of his.
    assert_exact_media(&[&alice, &bob], &[&alice, &bob]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp9_and_h264_video_reaches_the_other_peer_exactly_in_its_own_codec() {
    let sfu = Sfu::start(&[]);
    let url = sfu.ws_url();
    for (codec, room) in [(VideoCodec::Vp9, "vp9"), (VideoCodec::H264, "h264")] {
        let (mut alice, mut bob) = Joining::new(&url)
            .video(codec)
            .pair(room, ["Alice", "Bob"], 1000)
            .await;
        // Each consumer of the other's video sends it in that codec, not transcoded or
        // renegotiated to VP8.
        for (peer, other) in [(&alice, &bob), (&bob, &alice)] {
            let video = peer.consumer_of(&other.producers[1].id);
            assert_eq!(
                peer.consumers[video].mime.to_ascii_lowercase(),
                codec.mime().to_ascii_lowercase(),
                "{}'s consumer of {}'s video",
                peer.name,
                other.name
            );
        }
        exchange_media(&mut [&mut alice, &mut bob], Duration::from_secs(1)).await;
        // Every packet, once, from its own stream: key frames of the codec are forwarded.
        assert_exact_media(&[&alice, &bob], &[&alice, &bob]).await;
    }
}
