//! Notifications that come from the media node's own view of the media, with real str0m
//! peers: `producerScore` once RTP flows (each encoding of the producer, scored by the
//! mediasoup worker that receives it), and `activeSpeaker` from the router's speaker
//! observer, following the audio levels (RFC 6464) the peers' packets carry.

use std::time::{Duration, Instant};

use serde_json::Value;
use signaling_api::{Notification, PeerId, ProducerId};

use crate::support::peer::{exchange_media, Joining, TestPeer};
use crate::support::Sfu;

/// Sends media from `peers` until `listener` has been told `pick`'s notification after the
/// first `from` of its connection (at most `within`); what `pick` took.
async fn send_until<T>(
    peers: &mut [&mut TestPeer],
    listener: usize,
    from: usize,
    within: Duration,
    pick: impl Fn(&Notification) -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + within;
    if let Some(found) = peers[listener].signaling.seen()[from..]
        .iter()
        .find_map(&pick)
    {
        return Some(found);
    }
    while Instant::now() < deadline {
        exchange_media(peers, Duration::from_millis(100)).await;
        if let Some(found) = peers[listener].signaling.seen()[from..]
            .iter()
            .find_map(&pick)
        {
            return Some(found);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_is_told_its_producers_scores_once_rtp_flows() {
    let sfu = Sfu::start(&[]);
    let (mut alice, mut bob) = Joining::new(&sfu.ws_url())
        .pair("scores", ["Alice", "Bob"], 1000)
        .await;
    let mine: Vec<(ProducerId, u32)> = alice.producers.iter().map(|p| (p.id, p.ssrc)).collect();
    for (producer, ssrc) in mine {
        let score = send_until(
            &mut [&mut alice, &mut bob],
            0,
            0,
            Duration::from_secs(10),
            |n| match n {
                Notification::ProducerScore { producer_id, score } if *producer_id == producer => {
                    Some(score.clone())
                }
                _ => None,
            },
        )
        .await
        .unwrap_or_else(|| {
            panic!(
                "no producerScore for {producer} within 10 s of media; Alice was told {:?}",
                alice.signaling.seen()
            )
        });
        // One entry per encoding: this producer's SSRC, scored (1 to 10) as RTP arrives.
        let entries = score.as_array().expect("a list of encodings' scores");
        assert_eq!(entries.len(), 1, "{score}");
        assert_eq!(entries[0]["ssrc"], ssrc, "{score}");
        let value = entries[0]["score"].as_u64().expect("a score");
        assert!((1..=10).contains(&value), "{score}");
    }
    // Scores are the publisher's own: Bob, who sent nothing, heard none of Alice's.
    let alices: Vec<ProducerId> = alice.producers.iter().map(|p| p.id).collect();
    let told: Vec<Notification> = bob.signaling.seen().to_vec();
    assert!(
        !told.iter().any(|n| matches!(
            n,
            Notification::ProducerScore { producer_id, .. } if alices.contains(producer_id)
        )),
        "{told:?}"
    );
}

/// Waits (sending media, at most 10 s) until `listener` has been told `speaker` speaks,
/// after the first `from` notifications of its connection.
async fn wait_speaker(
    peers: &mut [&mut TestPeer],
    listener: usize,
    from: usize,
    speaker: (PeerId, ProducerId),
) {
    let found = send_until(
        peers,
        listener,
        from,
        Duration::from_secs(10),
        |n| match n {
            Notification::ActiveSpeaker {
                peer_id,
                producer_id,
            } if (*peer_id, *producer_id) == speaker => Some(()),
            _ => None,
        },
    )
    .await;
    let told: Vec<Value> = peers[listener]
        .signaling
        .seen()
        .iter()
        .filter(|n| matches!(n, Notification::ActiveSpeaker { .. }))
        .map(|n| serde_json::to_value(n).unwrap_or_default())
        .collect();
    assert!(
        found.is_some(),
        "{} was not told {speaker:?} speaks within 10 s; speakers told: {told:?}",
        peers[listener].name
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_active_speaker_follows_the_audio_levels_of_the_peers() {
    let sfu = Sfu::start(&[]);
    let (mut alice, mut bob) = Joining::new(&sfu.ws_url())
        .audio_levels()
        .pair("speakers", ["Alice", "Bob"], 1000)
        .await;
    let alice_speaks = (alice.peer_id, alice.producers[0].id);
    let bob_speaks = (bob.peer_id, bob.producers[0].id);
    // Alice talks (-20 dBov), Bob is silent: both are told Alice speaks.
    alice.audio_level = Some(-20);
    let from = [alice.signaling.seen().len(), bob.signaling.seen().len()];
    for listener in [0, 1] {
        wait_speaker(
            &mut [&mut alice, &mut bob],
            listener,
            from[listener],
            alice_speaks,
        )
        .await;
    }
    // Then Bob talks and Alice goes quiet: the speaker changes to him, for both.
    alice.audio_level = Some(-127);
    bob.audio_level = Some(-20);
    let from = [alice.signaling.seen().len(), bob.signaling.seen().len()];
    for listener in [0, 1] {
        wait_speaker(
            &mut [&mut alice, &mut bob],
            listener,
            from[listener],
            bob_speaks,
        )
        .await;
    }
}
