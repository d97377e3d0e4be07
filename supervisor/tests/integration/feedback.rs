//! RTCP feedback through the SFU, with str0m peers that declare `nack` and `nack pli` for
//! video: a packet lost on the way to a subscriber is re-sent by mediasoup when the
//! subscriber's NACK asks for it, and a subscriber's PLI reaches the publisher as a key frame
//! request. Without the feedback declared, the same loss stays lost.

use std::time::{Duration, Instant};

use crate::support::peer::{exchange_media, Joining};
use crate::support::Sfu;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_video_packet_is_resent_when_the_subscriber_nacks_it() {
    let sfu = Sfu::start(&[]);
    let url = sfu.ws_url();
    for (feedback, room) in [(true, "nack"), (false, "no-nack")] {
        let joining = Joining::new(&url);
        let joining = if feedback {
            joining.feedback()
        } else {
            joining
        };
        let (mut alice, bob) = joining.pair(room, ["Alice", "Bob"], 1000).await;
        let video = bob.consumer_of(&alice.producers[1].id);
        // The network loses the 20th and 21st video packets on their way to Bob.
        bob.lose_incoming(video, 20);
        bob.lose_incoming(video, 21);
        exchange_media(&mut [&mut alice], Duration::from_secs(1)).await;
        let sent = alice.sent();
        let got = bob
            .wait_seqs(video, &alice, if feedback { sent } else { sent - 2 })
            .await;
        if feedback {
            assert_eq!(
                got,
                (1..=sent).collect::<Vec<_>>(),
                "with NACK, Bob has every video packet, the lost ones re-sent"
            );
        } else {
            let missing: Vec<u64> = (1..=sent).filter(|s| !got.contains(s)).collect();
            assert_eq!(missing, vec![20, 21], "without NACK, the loss stays");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribers_key_frame_request_reaches_the_publisher() {
    let sfu = Sfu::start(&[]);
    let url = sfu.ws_url();
    let (mut alice, bob) = Joining::new(&url)
        .feedback()
        .pair("pli", ["Alice", "Bob"], 1000)
        .await;
    let video = bob.consumer_of(&alice.producers[1].id);
    exchange_media(&mut [&mut alice], Duration::from_millis(400)).await;
    // Resuming a video consumer already asks the publisher for a key frame; count from here.
    let before = alice.keyframe_requests();
    for round in 1..=3 {
        // mediasoup folds a request into one still waiting for its key frame (as it should):
        // let key frames answer the previous one first.
        exchange_media(&mut [&mut alice], Duration::from_millis(100)).await;
        bob.request_keyframe(video);
        let deadline = Instant::now() + Duration::from_secs(5);
        while alice.keyframe_requests() < before + round {
            assert!(
                Instant::now() < deadline,
                "PLI {round} from Bob did not reach Alice: {} requests",
                alice.keyframe_requests()
            );
            // Key frames keep flowing, so mediasoup sees each request answered.
            exchange_media(&mut [&mut alice], Duration::from_millis(20)).await;
        }
    }
}
