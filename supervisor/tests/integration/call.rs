//! End to end: the real supervisor spawns a real node; two str0m peers join a room over the
//! real `/ws` protocol, each publishes audio and video RTP, and each receives the other's
//! packets through its consumers. Then one leaves and the other is told.

use std::time::Duration;

use crate::support::peer::{exchange_media, TestPeer};
use crate::support::{Sfu, TestCert};
use serde_json::json;

async fn two_peers_exchange_media(url: &str, ca: Option<&str>) {
    let room = format!("call-{}", std::process::id());
    let mut alice = TestPeer::join(url, ca, &room, "Alice", 1000).await;
    let mut bob = TestPeer::join(url, ca, &room, "Bob", 2000).await;

    // Bob joined second: the join answer lists Alice and her two producers.
    let listed = bob.joined["peers"].as_array().expect("peers").clone();
    assert_eq!(listed.len(), 1, "Bob sees Alice: {listed:?}");
    assert_eq!(listed[0]["displayName"], "Alice");
    let joined = alice.signaling.notification("peerJoined").await;
    assert_eq!(joined["displayName"], "Bob");
    for producer in listed[0]["producers"].as_array().expect("producers") {
        bob.consume(producer["producerId"].as_str().expect("id"))
            .await;
    }
    // Alice learns of Bob's producers as he publishes them.
    alice.consume_announced(2).await;

    exchange_media(&mut [&mut alice, &mut bob], Duration::from_secs(3)).await;
    for (name, peer) in [("Alice", &alice), ("Bob", &bob)] {
        let received = peer.received();
        println!("{name} received through her/his consumers: {received:?}");
        assert_eq!(
            received.len(),
            2,
            "{name} has an audio and a video consumer"
        );
        for (kind, count) in received {
            // 150 packets were sent per track; a few may race the consumer's resume.
            assert!(count >= 100, "{name} received only {count} {kind} packets");
        }
    }

    let bob_id = bob.peer_id.clone();
    bob.signaling.close();
    let left = alice.signaling.notification("peerLeft").await;
    assert_eq!(left["peerId"], bob_id);
    // Bob's producers are gone, so Alice's consumers of them close.
    for _ in 0..2 {
        let closed = alice.signaling.notification("consumerClosed").await;
        assert!(alice
            .consumers
            .iter()
            .any(|(c, ..)| json!(c) == closed["consumerId"]));
    }
    alice.signaling.ok("leave", json!({})).await;
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
