//! `setConsumerPreferredLayers` on a simulcast consumer: a str0m peer publishes VP8 in three
//! layers (every packet tagged with its layer's SSRC), and what its subscriber receives is
//! the layer it asked for, switched at once (every packet is a key frame), announced with
//! `consumerLayersChanged`.

use std::time::{Duration, Instant};

use signaling_api::{ConsumerId, Notification, PreferredLayersArgs};

use crate::support::peer::{exchange_media, Joining, TestPeer};
use crate::support::signaling::Expect;
use crate::support::Sfu;

/// Sends for 300 ms, then waits until `bob` has received every packet sent since `from`;
/// the layer SSRCs those packets came from.
async fn layers_since(alice: &mut TestPeer, bob: &TestPeer, video: usize, from: u64) -> Vec<u32> {
    exchange_media(&mut [alice], Duration::from_millis(300)).await;
    let sent = alice.sent();
    let before = bob
        .arrivals(video)
        .tags
        .iter()
        .filter(|(_, seq)| *seq <= from)
        .count() as u64;
    // Every packet is of one of Alice's video layers (none of her audio's, nor untagged).
    bob.wait_seqs(video, alice, before + sent - from).await;
    let mut since: Vec<(u64, u32)> = bob
        .arrivals(video)
        .tags
        .iter()
        .filter(|(_, seq)| *seq > from)
        .map(|(ssrc, seq)| (*seq, *ssrc))
        .collect();
    since.sort_unstable();
    let seqs: Vec<u64> = since.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(
        seqs,
        (from + 1..=sent).collect::<Vec<_>>(),
        "one packet per frame, none lost, since the switch"
    );
    since.into_iter().map(|(_, ssrc)| ssrc).collect()
}

/// Sends media until `bob` is told that `consumer` now forwards spatial layer `spatial`
/// (at most 10 s).
async fn send_until_layer(
    alice: &mut TestPeer,
    bob: &mut TestPeer,
    consumer: &ConsumerId,
    spatial: u8,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    // Only what comes from now on counts.
    let from = bob.signaling.seen().len();
    loop {
        exchange_media(&mut [&mut *alice], Duration::from_millis(20)).await;
        let changed = bob.signaling.seen()[from..].iter().any(|note| {
            matches!(
                note,
                Notification::ConsumerLayersChanged { consumer_id, spatial_layer, .. }
                    if consumer_id == consumer && *spatial_layer == Some(spatial)
            )
        });
        if changed {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no consumerLayersChanged to spatial layer {spatial} within 10 s"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulcast_consumer_receives_the_layer_its_peer_prefers() {
    let sfu = Sfu::start(&[]);
    let url = sfu.ws_url();
    let mut alice = Joining::new(&url)
        .simulcast()
        .join_call("layers", "Alice", 1000, &mut [])
        .await;
    let mut bob = Joining::new(&url)
        .join_call("layers", "Bob", 2000, &mut [&mut alice])
        .await;
    let layers = alice.producers[1].layers.clone();
    assert_eq!(layers.len(), 3);
    let video = bob.consumer_of(&alice.producers[1].id);
    let consumer = bob.consumers[video].id;

    // By default the top layer, once mediasoup has scored every layer (it starts low).
    send_until_layer(&mut alice, &mut bob, &consumer, 2).await;
    let from = alice.sent();
    let got = layers_since(&mut alice, &bob, video, from).await;
    assert!(got.iter().all(|s| *s == layers[2]), "top layer: {got:?}");

    for (spatial, expected) in [(0, layers[0]), (1, layers[1]), (2, layers[2])] {
        bob.signaling
            .ok(&PreferredLayersArgs {
                consumer_id: consumer.to_string(),
                spatial_layer: spatial,
                temporal_layer: Some(0),
            })
            .await;
        send_until_layer(&mut alice, &mut bob, &consumer, spatial).await;
        let from = alice.sent();
        let got = layers_since(&mut alice, &bob, video, from).await;
        assert!(
            got.iter().all(|s| *s == expected),
            "spatial layer {spatial} is SSRC {expected}: {got:?}"
        );
    }
}
