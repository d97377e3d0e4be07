//! Last-N video with real str0m peers: twelve publishers, two of which receive everyone but
//! ask for four videos (`setLastN`). Exactly four videos arrive and every audio; when another
//! publisher speaks (the audio levels its packets carry) its video replaces the least recent
//! speaker's, the SFU asking its publisher for a key frame; a pinned video stays whoever speaks;
//! asking for the loudest one's audio leaves only the speaker's audio flowing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use signaling_api::{Kind, LastNArgs, Notification, PeerId, ProducerId};

use crate::support::peer::{exchange_media, Joining, TestPeer};
use crate::support::signaling::Expect;
use crate::support::Sfu;

const PUBLISHERS: usize = 12;
const LAST_N: u32 = 4;

/// The last `forwardedVideos` `peer` was told.
fn forwarded(peer: &mut TestPeer) -> Option<Vec<PeerId>> {
    peer.signaling.seen().iter().rev().find_map(|n| match n {
        Notification::ForwardedVideos { peer_ids } => Some(peer_ids.clone()),
        _ => None,
    })
}

/// Packets that arrived at `peer` per publisher, of `kind`.
fn received(
    peer: &TestPeer,
    owners: &BTreeMap<ProducerId, PeerId>,
    kind: Kind,
) -> BTreeMap<PeerId, u64> {
    (0..peer.consumers.len())
        .filter(|i| peer.consumers[*i].kind == kind)
        .filter_map(|i| {
            let owner = owners.get(&peer.consumers[i].producer)?;
            Some((*owner, peer.arrivals(i).count()))
        })
        .collect()
}

/// Sends media from everyone for `duration`.
async fn talk(peers: &mut [TestPeer], duration: Duration) {
    let mut all: Vec<&mut TestPeer> = peers.iter_mut().collect();
    exchange_media(&mut all, duration).await;
}

/// Sends media until `listener`'s forwarded set satisfies `done` (at most 15 s: speaker
/// detection takes a few seconds of speech); the set and when the test saw it.
async fn talk_until(
    peers: &mut [TestPeer],
    listener: usize,
    what: &str,
    done: impl Fn(&[PeerId]) -> bool,
) -> (Vec<PeerId>, Instant) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(set) = forwarded(&mut peers[listener]).filter(|s| done(s)) {
            return (set, Instant::now());
        }
        if Instant::now() >= deadline {
            let last = forwarded(&mut peers[listener]);
            panic!(
                "{} was not told {what} within 15 s; last told {last:?}",
                peers[listener].name
            );
        }
        talk(peers, Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_asking_for_four_videos_get_the_latest_speakers_and_every_audio() {
    let sfu = Sfu::start(&[]);
    let url = sfu.ws_url();
    // PLI declared: the SFU can ask a publisher for a key frame.
    let joining = Joining::new(&url).audio_levels().feedback();
    let mut peers = Vec::new();
    for i in 0..PUBLISHERS {
        let ssrc = 1000 + 10 * i as u32;
        peers.push(joining.peer("lastn", &format!("P{i}"), ssrc).await);
    }
    let ids: Vec<PeerId> = peers.iter().map(|p| p.peer_id).collect();
    let owners: BTreeMap<ProducerId, PeerId> = (peers.iter())
        .flat_map(|p| p.producers.iter().map(|produced| (produced.id, p.peer_id)))
        .collect();
    // P0 and P1 receive everyone, four videos at most.
    for s in 0..2 {
        let args = LastNArgs {
            last_n: Some(LAST_N),
            pinned: Vec::new(),
            loudest: None,
        };
        peers[s].signaling.ok(&args).await;
        let theirs: Vec<ProducerId> = (owners.iter())
            .filter(|(_, owner)| **owner != ids[s])
            .map(|(producer, _)| *producer)
            .collect();
        for producer in theirs {
            peers[s].consume(&producer).await;
        }
    }
    talk(&mut peers, Duration::from_millis(1500)).await;
    for s in 0..2 {
        let set = forwarded(&mut peers[s]).expect("told its forwarded videos");
        assert_eq!(set.len(), LAST_N as usize, "{set:?}");
        assert!(
            !set.contains(&ids[s]),
            "its own video is not forwarded to it"
        );
        let videos = received(&peers[s], &owners, Kind::Video);
        let flowing: Vec<PeerId> = (videos.iter())
            .filter(|(_, n)| **n > 0)
            .map(|(id, _)| *id)
            .collect();
        let mut expected = set.clone();
        expected.sort();
        assert_eq!(
            flowing, expected,
            "{}: videos received {videos:?}",
            peers[s].name
        );
        let audio = received(&peers[s], &owners, Kind::Audio);
        assert_eq!(audio.len(), PUBLISHERS - 1);
        assert!(
            audio.values().all(|n| *n > 0),
            "every audio flows: {audio:?}"
        );
    }

    // A publisher outside P0's four speaks: it takes the place of the least recent.
    let before = forwarded(&mut peers[0]).expect("a set");
    let speaker = (2..PUBLISHERS)
        .find(|i| !before.contains(&ids[*i]))
        .expect("a publisher outside the set");
    let asked_before = peers[speaker].keyframe_requests();
    peers[speaker].audio_level = Some(-20);
    let (after, told_at) = talk_until(&mut peers, 0, "the new speaker's video", |set| {
        set.first() == Some(&ids[speaker])
    })
    .await;
    assert_eq!(after.len(), LAST_N as usize, "{after:?}");
    let consumer = peers[0].consumer_of(&peers[speaker].producers[1].id);
    let deadline = told_at + Duration::from_secs(1);
    while peers[0].arrivals(consumer).first_at.is_none() && Instant::now() < deadline {
        talk(&mut peers, Duration::from_millis(20)).await;
    }
    let first = peers[0].arrivals(consumer).first_at;
    assert!(
        first.is_some_and(|at| at <= deadline),
        "the new speaker's video arrives within 1 s of the change (first packet {:?} after)",
        first.map(|at| at.saturating_duration_since(told_at))
    );
    assert!(
        peers[speaker].keyframe_requests() > asked_before,
        "the SFU asked the new speaker for a key frame"
    );
    // The one that left the set no longer flows.
    let dropped: Vec<PeerId> = before
        .iter()
        .filter(|id| !after.contains(id))
        .copied()
        .collect();
    assert_eq!(dropped.len(), 1, "{before:?} → {after:?}");
    talk(&mut peers, Duration::from_millis(500)).await;
    let held = received(&peers[0], &owners, Kind::Video)[&dropped[0]];
    talk(&mut peers, Duration::from_secs(1)).await;
    let later = received(&peers[0], &owners, Kind::Video)[&dropped[0]];
    assert_eq!(held, later, "the dropped video is paused at the SFU");

    // P0 pins a publisher outside its set: it is forwarded, and stays when another speaks.
    let now = forwarded(&mut peers[0]).expect("a set");
    let pinned = (2..PUBLISHERS)
        .find(|i| !now.contains(&ids[*i]))
        .expect("a publisher outside the set");
    let args = LastNArgs {
        last_n: Some(LAST_N),
        pinned: vec![ids[pinned]],
        loudest: None,
    };
    peers[0].signaling.ok(&args).await;
    talk_until(&mut peers, 0, "the pinned video", |set| {
        set.contains(&ids[pinned])
    })
    .await;
    peers[speaker].audio_level = Some(-127);
    let next = (2..PUBLISHERS)
        .find(|i| {
            *i != pinned
                && !forwarded(&mut peers[0])
                    .unwrap_or_default()
                    .contains(&ids[*i])
        })
        .expect("another publisher outside the set");
    peers[next].audio_level = Some(-20);
    let (set, _) = talk_until(&mut peers, 0, "the next speaker's video", |set| {
        set.first() == Some(&ids[next])
    })
    .await;
    assert!(set.contains(&ids[pinned]), "the pin holds: {set:?}");
    assert_eq!(
        set.len(),
        LAST_N as usize + 1,
        "four speakers and the pin: {set:?}"
    );
    let pinned_consumer = peers[0].consumer_of(&peers[pinned].producers[1].id);
    let flowing = peers[0].arrivals(pinned_consumer).count();
    talk(&mut peers, Duration::from_millis(500)).await;
    assert!(
        peers[0].arrivals(pinned_consumer).count() > flowing,
        "the pinned video flows"
    );
    // P1 was never told of P0's pin: its set is its own.
    let p1 = forwarded(&mut peers[1]).expect("a set");
    assert_eq!(p1.len(), LAST_N as usize, "{p1:?}");

    // P1 asks for the audio of the loudest one only: the current speaker's alone flows.
    let args = LastNArgs {
        last_n: Some(LAST_N),
        pinned: Vec::new(),
        loudest: Some(1),
    };
    peers[1].signaling.ok(&args).await;
    talk(&mut peers, Duration::from_millis(500)).await;
    let before = received(&peers[1], &owners, Kind::Audio);
    talk(&mut peers, Duration::from_secs(1)).await;
    let after = received(&peers[1], &owners, Kind::Audio);
    let grew: Vec<PeerId> = (after.iter())
        .filter(|(id, n)| before.get(*id).is_some_and(|b| *n > b))
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(
        grew,
        vec![ids[next]],
        "only the speaker's audio flows to P1"
    );
}

/// Eight Chromium pages, each with room for three remote tiles (tests/browser/last_n.mjs):
/// each asks for three videos; after three pages spoke in turn, every page shows exactly the
/// tiles of the three latest speakers it can see, decoding their video.
#[test]
fn eight_browser_tabs_with_room_for_three_tiles_show_the_three_latest_speakers() {
    crate::browser::check_prerequisites();
    let sfu = Sfu::start(&[]);
    let url = format!("http://127.0.0.1:{}", sfu.port);
    let stdout = crate::browser::run_browser_script(
        "last_n.mjs",
        &url,
        &[("SFU_EXCLUSIVE", "1")],
        Duration::from_secs(240),
    );
    assert!(
        stdout.contains("last-N: every page shows the 3 latest speakers and decodes their video"),
        "{stdout}"
    );
}
