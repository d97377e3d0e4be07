//! Session resume against the real supervisor: a peer whose signaling connection drops (cut
//! without a close frame) keeps sending and receiving media, the others are told nothing, and
//! a new connection takes it back with its resume token — same consumers, what changed
//! meanwhile in the answer. Tokens work once; without a resume the peer leaves when its
//! grace period ends; a room that moved meanwhile is told on resume; join tokens are not
//! asked again.

use std::time::{Duration, Instant};

use serde_json::json;
use signaling_api::calls::GetRouterRtpCapabilities;
use signaling_api::{ConsumerId, Notification, ProducerId, ResumeArgs, TransportId};
use supervisor::join_tokens::{sign_with_secret, unix_now, Claims};

use crate::support::monitor_events::EventsProcess;
use crate::support::peer::{assert_exact_media, exchange_media, Joining, TestPeer};
use crate::support::signaling::{self, notified, Expect};
use crate::support::{monitor_binary, monitor_json, signal, Sfu};

const MONITOR_TOKEN: &str = "resume-monitor-token-0123456789abcdef";

/// The peer's resume token from its join answer.
fn token_of(peer: &TestPeer) -> String {
    peer.joined.resume_token.clone()
}

/// `resume` arguments presenting `token`.
fn resume(token: &str) -> ResumeArgs {
    ResumeArgs {
        resume_token: token.into(),
    }
}

/// `ids`, sorted.
fn sorted<T: Ord>(ids: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut ids: Vec<T> = ids.into_iter().collect();
    ids.sort();
    ids
}

/// Checks that among everything `peer` was told after the first `from` notifications of its
/// connection, and in the next 300 ms, nothing concerned `other`: no `peerLeft` or
/// `peerJoined` of it, no close or pause of a consumer of its producers.
async fn assert_told_nothing_of(peer: &mut TestPeer, other: &TestPeer, from: usize) {
    let told = signaling::told(&mut peer.signaling, Duration::from_millis(300)).await;
    let consumers: Vec<ConsumerId> = peer
        .consumers
        .iter()
        .filter(|c| other.producers.iter().any(|p| p.id == c.producer))
        .map(|c| c.id)
        .collect();
    let about: Vec<&Notification> = told[from..]
        .iter()
        .filter(|n| match n {
            Notification::PeersChanged { joined, left, .. } => {
                left.contains(&other.peer_id) || joined.iter().any(|j| j.peer_id == other.peer_id)
            }
            Notification::ConsumerClosed { consumer_id, .. }
            | Notification::ConsumerPaused { consumer_id }
            | Notification::ConsumerResumed { consumer_id } => consumers.contains(consumer_id),
            _ => false,
        })
        .collect();
    assert!(
        about.is_empty(),
        "{} was told of {}: {about:?} (all since: {:?})",
        peer.name,
        other.name,
        &told[from..]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_signaling_connection_keeps_the_media_and_resume_takes_the_peer_back() {
    let sfu = Sfu::start(&[]);
    let url = sfu.ws_url();
    let (mut alice, mut bob) = Joining::new(&url)
        .pair("resume", ["Alice", "Bob"], 1000)
        .await;
    exchange_media(&mut [&mut alice, &mut bob], Duration::from_millis(400)).await;
    let token = token_of(&bob);
    let consumers: Vec<ConsumerId> = sorted(bob.consumers.iter().map(|c| c.id));

    // The network drops Bob's signaling; his media transports are fine.
    bob.signaling.abort();
    let dropped_at = Instant::now();
    let at_drop = alice.signaling.seen().len();
    exchange_media(&mut [&mut alice, &mut bob], Duration::from_secs(1)).await;
    // Meanwhile Carol joins and publishes; Alice takes her in.
    let mut carol = Joining::new(&url).peer("resume", "Carol", 3000).await;
    alice.consume_announced(2).await;
    // Every packet of Alice and Bob arrived at the other, through the drop.
    assert_exact_media(&[&alice, &bob], &[&alice, &bob]).await;
    assert_told_nothing_of(&mut alice, &bob, at_drop).await;

    // Bob comes back on a new connection.
    bob.signaling = signaling::connect(&url, None).await;
    let resumed = bob.signaling.ok(&resume(&token)).await;
    println!(
        "Bob resumed {:?} after his signaling dropped; media never stopped",
        dropped_at.elapsed()
    );
    assert_eq!(resumed.peer_id, bob.peer_id);
    assert!(resumed.joined);
    // Not on his return either.
    assert_told_nothing_of(&mut alice, &bob, at_drop).await;
    assert_eq!(
        sorted(resumed.consumers.iter().map(|c| c.consumer_id)),
        consumers,
        "the same consumers"
    );
    let fresh = resumed.resume_token.clone().expect("a fresh token");
    assert_ne!(fresh, token);
    let transports: Vec<TransportId> = sorted(resumed.transports.iter().map(|t| t.transport_id));
    assert_eq!(transports, sorted([bob.send_id, bob.recv_id]));
    // Carol, who came while Bob was away, is in the answer with her producers: Bob
    // consumes them on the receive transport he kept.
    let carol_info = resumed
        .peers
        .iter()
        .find(|p| p.display_name == "Carol")
        .expect("Carol in the resume answer")
        .clone();
    let carols: Vec<ProducerId> = sorted(carol_info.producers.iter().map(|p| p.producer_id));
    assert_eq!(carols, sorted(carol.producers.iter().map(|p| p.id)));
    for producer in carols {
        bob.consume(&producer).await;
    }
    // Bob's signaling works again, and Carol's media reaches him.
    bob.signaling.ok(&GetRouterRtpCapabilities {}).await;
    let from = carol.sent();
    exchange_media(&mut [&mut carol], Duration::from_millis(400)).await;
    for index in bob
        .consumers
        .iter()
        .enumerate()
        .filter(|(_, c)| carol.producers.iter().any(|p| p.id == c.producer))
        .map(|(i, _)| i)
    {
        let got = bob.wait_seqs(index, &carol, carol.sent() - from).await;
        assert_eq!(
            got,
            (from + 1..=carol.sent()).collect::<Vec<_>>(),
            "Carol's media at Bob"
        );
    }

    // A token works once; a made-up one not at all.
    for (what, used) in [("used", token.as_str()), ("made up", "not-a-token")] {
        let mut other = signaling::connect(&url, None).await;
        let refused = other.refused(&resume(used)).await;
        assert_eq!(refused.code(), "unauthorized", "{what}: {refused}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_on_a_second_connection_closes_the_first() {
    let sfu = Sfu::start(&[]);
    let url = sfu.ws_url();
    let (_alice, bob) = Joining::new(&url)
        .pair("takeover", ["Alice", "Bob"], 1000)
        .await;
    // The server has not noticed the old connection died (it has not): the new one wins.
    let mut second = signaling::connect(&url, None).await;
    let resumed = second.ok(&resume(&token_of(&bob))).await;
    assert_eq!(resumed.peer_id, bob.peer_id);
    assert_eq!(
        bob.signaling.close_code().await,
        Some(4000),
        "the old connection is closed"
    );
    second.ok(&GetRouterRtpCapabilities {}).await;
    // A connection in a room cannot resume another peer.
    let fresh = resumed.resume_token.expect("a fresh token");
    let refused = second.refused(&resume(&fresh)).await;
    assert_eq!(refused.code(), "already_joined", "{refused}");
    drop(bob);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_resume_the_peer_leaves_when_its_grace_period_ends() {
    let sfu = Sfu::start(&["--resume-grace-secs", "2", "--monitor-token", MONITOR_TOKEN]);
    let url = sfu.ws_url();
    let monitor_url = sfu.monitor_url();
    let mut command = std::process::Command::new(monitor_binary());
    command
        .args([
            "--url",
            &monitor_url,
            "--token",
            MONITOR_TOKEN,
            "--json",
            "events",
        ])
        .args(["--room", "grace"])
        .env_remove("MONITOR_TOKEN")
        .env_remove("MONITOR_URL");
    let mut events = EventsProcess::spawn(command).await;
    let (mut alice, bob) = Joining::new(&url)
        .pair("grace", ["Alice", "Bob"], 1000)
        .await;
    let monitor = |args: &[&str]| {
        let mut full = vec!["--url", monitor_url.as_str(), "--token", MONITOR_TOKEN];
        full.extend_from_slice(args);
        tokio::task::block_in_place(|| monitor_json(&full))
    };
    bob.signaling.abort();
    let dropped_at = Instant::now();
    let away = events
        .wait_for(Duration::from_secs(5), |e| e["type"] == "peerDisconnected")
        .await
        .expect("a peerDisconnected event");
    assert_eq!(away["peerId"], bob.peer_id.to_string());
    assert_eq!(away["resumableSecs"], 2);
    // The monitor shows him away, resumable for a while.
    let room = monitor(&["room", "grace"]);
    let shown = room["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .find(|p| p["displayName"] == "Bob")
        .expect("Bob still in the room")
        .clone();
    assert!(
        shown["resumableSecs"].as_u64().is_some_and(|s| s <= 2),
        "{shown}"
    );

    // His consumers close first, then the leave is told with the tick's others.
    for _ in 0..2 {
        notified!(alice.signaling, Notification::ConsumerClosed { .. } => ());
    }
    let waited = dropped_at.elapsed();
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_secs(5),
        "his consumers closed {waited:?} after the drop, for a 2 s grace period"
    );
    let left = signaling::next_left(&mut alice.signaling).await;
    assert_eq!(left, bob.peer_id);
    events
        .wait_for(Duration::from_secs(5), |e| e["type"] == "resumeExpired")
        .await
        .expect("a resumeExpired event");
    // Bob's resources are gone: one participant, her two producers, no consumer left.
    let summary = monitor(&["summary"]);
    assert_eq!(
        (
            &summary["participants"],
            &summary["producers"],
            &summary["consumers"]
        ),
        (&json!(1), &json!(2), &json!(0)),
        "{summary}"
    );
    // And his token with them.
    let mut late = signaling::connect(&url, None).await;
    let refused = late.refused(&resume(&token_of(&bob))).await;
    assert_eq!(refused.code(), "unauthorized", "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_that_moved_while_away_is_told_on_resume_and_no_join_token_is_asked_again() {
    const SECRET: &str = "resume-test-secret-0123456789abcdefgh";
    let sfu = Sfu::start(&["--join-secret", SECRET]);
    let url = sfu.ws_url();
    let node = sfu.wait_nodes(1, Duration::from_secs(10)).await[0];
    let claims = Claims {
        room: "moving".into(),
        sub: "tester".into(),
        name: None,
        can_publish: None,
        can_subscribe: None,
        can_record: None,
        exp: unix_now() + 600,
        nbf: None,
    };
    let jwt = sign_with_secret(SECRET.as_bytes(), &claims).expect("sign");
    let (mut alice, mut bob) = Joining::new(&url)
        .token(Some(&jwt))
        .pair("moving", ["Alice", "Bob"], 1000)
        .await;

    // First a plain resume, without the JWT: accepted.
    bob.signaling.abort();
    bob.signaling = signaling::connect(&url, None).await;
    let resumed = bob.signaling.ok(&resume(&token_of(&bob))).await;
    assert!(resumed.joined);
    let token = resumed.resume_token.expect("token");

    // Then away while the room's node dies.
    bob.signaling.abort();
    signal(node, "KILL");
    notified!(alice.signaling, Notification::RoomMoved { .. } => ());
    bob.signaling = signaling::connect(&url, None).await;
    let resumed = bob.signaling.ok(&resume(&token)).await;
    assert!(!resumed.joined, "{resumed:?}");
    let moved = notified!(bob.signaling, Notification::RoomMoved { room, .. } => room);
    assert_eq!(moved, "moving");
}
