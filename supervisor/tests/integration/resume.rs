//! Session resume against the real supervisor: a peer whose signaling connection drops (cut
//! without a close frame) keeps sending and receiving media, the others are told nothing, and
//! a new connection takes it back with its resume token — same consumers, what changed
//! meanwhile in the answer. Tokens work once; without a resume the peer leaves when its
//! grace period ends; a room that moved meanwhile is told on resume; join tokens are not
//! asked again.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use supervisor::join_tokens::{sign_with_secret, unix_now, Claims};

use crate::support::monitor_events::EventsProcess;
use crate::support::peer::{assert_exact_media, exchange_media, Joining, TestPeer};
use crate::support::{monitor_binary, monitor_json, signal, Sfu, Signaling};

const MONITOR_TOKEN: &str = "resume-monitor-token-0123456789abcdef";

/// The peer's resume token from its join answer.
fn token_of(peer: &TestPeer) -> String {
    peer.joined["resumeToken"]
        .as_str()
        .expect("a resumeToken in the join answer")
        .to_string()
}

/// Notifications `peer` got so far, by name.
fn notifications_so_far(peer: &mut TestPeer) -> Vec<String> {
    std::iter::from_fn(|| peer.signaling.notifications.try_recv().ok())
        .filter_map(|n| n["notification"].as_str().map(str::to_string))
        .collect()
}

fn ids(list: &Value, field: &str) -> Vec<String> {
    let mut ids: Vec<String> = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|v| v[field].as_str().expect("an id").to_string())
        .collect();
    ids.sort();
    ids
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
    let mut consumers: Vec<String> = bob.consumers.iter().map(|c| c.id.clone()).collect();
    consumers.sort();

    // The network drops Bob's signaling; his media transports are fine.
    bob.signaling.abort();
    let dropped_at = Instant::now();
    notifications_so_far(&mut alice);
    exchange_media(&mut [&mut alice, &mut bob], Duration::from_secs(1)).await;
    // Meanwhile Carol joins and publishes; Alice takes her in.
    let mut carol = Joining::new(&url).peer("resume", "Carol", 3000).await;
    alice.consume_announced(2).await;
    // Every packet of Alice and Bob arrived at the other, through the drop.
    assert_exact_media(&[&alice, &bob], &[&alice, &bob]).await;
    let told = notifications_so_far(&mut alice);
    assert!(
        !told.contains(&"peerLeft".to_string()),
        "Alice was told nothing of Bob: {told:?}"
    );

    // Bob comes back on a new connection.
    bob.signaling = Signaling::connect(&url, None).await;
    let resumed = bob
        .signaling
        .ok("resume", json!({"resumeToken": token}))
        .await;
    println!(
        "Bob resumed {:?} after his signaling dropped; media never stopped",
        dropped_at.elapsed()
    );
    assert_eq!(resumed["peerId"], bob.peer_id.as_str());
    assert_eq!(resumed["joined"], true);
    assert_eq!(
        ids(&resumed["consumers"], "consumerId"),
        consumers,
        "the same consumers"
    );
    let fresh = resumed["resumeToken"]
        .as_str()
        .expect("a fresh token")
        .to_string();
    assert_ne!(fresh, token);
    let mut transports = ids(&resumed["transports"], "transportId");
    let mut own = vec![bob.send_id.clone(), bob.recv_id.clone()];
    transports.sort();
    own.sort();
    assert_eq!(transports, own);
    // Carol, who came while Bob was away, is in the answer with her producers: Bob
    // consumes them on the receive transport he kept.
    let carol_info = resumed["peers"]
        .as_array()
        .expect("peers")
        .iter()
        .find(|p| p["displayName"] == "Carol")
        .expect("Carol in the resume answer")
        .clone();
    assert_eq!(ids(&carol_info["producers"], "producerId"), {
        let mut c: Vec<String> = carol.producers.iter().map(|p| p.id.clone()).collect();
        c.sort();
        c
    });
    for producer in ids(&carol_info["producers"], "producerId") {
        bob.consume(&producer).await;
    }
    // Bob's signaling works again, and Carol's media reaches him.
    bob.signaling
        .ok("getRouterRtpCapabilities", json!({}))
        .await;
    let from = carol.sent();
    exchange_media(&mut [&mut carol], Duration::from_millis(400)).await;
    for index in bob
        .consumers
        .iter()
        .enumerate()
        .filter(|(_, c)| carol.producers.iter().any(|p| p.id == c.producer))
        .map(|(i, _)| i)
    {
        let got = bob.wait_seqs(index, carol.sent() - from).await;
        assert_eq!(
            got,
            (from + 1..=carol.sent()).collect::<Vec<_>>(),
            "Carol's media at Bob"
        );
    }

    // A token works once; a made-up one not at all.
    for (what, used) in [("used", token.as_str()), ("made up", "not-a-token")] {
        let mut other = Signaling::connect(&url, None).await;
        let (code, message) = other
            .request("resume", json!({"resumeToken": used}))
            .await
            .expect_err(what);
        assert_eq!(code, "unauthorized", "{what}: {message}");
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
    let mut second = Signaling::connect(&url, None).await;
    let resumed = second
        .ok("resume", json!({"resumeToken": token_of(&bob)}))
        .await;
    assert_eq!(resumed["peerId"], bob.peer_id.as_str());
    assert_eq!(
        bob.signaling.wait_closed().await,
        Some(4000),
        "the old connection is closed"
    );
    second.ok("getRouterRtpCapabilities", json!({})).await;
    // A connection in a room cannot resume another peer.
    let (code, _) = second
        .request("resume", json!({"resumeToken": resumed["resumeToken"]}))
        .await
        .expect_err("already in a room");
    assert_eq!(code, "already_joined");
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
    assert_eq!(away["peerId"], bob.peer_id.as_str());
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

    let left = alice.signaling.notification("peerLeft").await;
    let waited = dropped_at.elapsed();
    assert_eq!(left["peerId"], bob.peer_id.as_str());
    assert!(
        waited >= Duration::from_millis(1900) && waited < Duration::from_secs(5),
        "peerLeft {waited:?} after the drop, for a 2 s grace period"
    );
    for _ in 0..2 {
        alice.signaling.notification("consumerClosed").await;
    }
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
    let mut late = Signaling::connect(&url, None).await;
    let refused = late
        .request("resume", json!({"resumeToken": token_of(&bob)}))
        .await;
    assert!(refused.is_err(), "{refused:?}");
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
    bob.signaling = Signaling::connect(&url, None).await;
    let resumed = bob
        .signaling
        .ok("resume", json!({"resumeToken": token_of(&bob)}))
        .await;
    assert_eq!(resumed["joined"], true);
    let token = resumed["resumeToken"].as_str().expect("token").to_string();

    // Then away while the room's node dies.
    bob.signaling.abort();
    signal(node, "KILL");
    alice.signaling.notification("roomMoved").await;
    bob.signaling = Signaling::connect(&url, None).await;
    let resumed = bob
        .signaling
        .ok("resume", json!({"resumeToken": token}))
        .await;
    assert_eq!(resumed["joined"], false, "{resumed}");
    let moved = bob.signaling.notification("roomMoved").await;
    assert_eq!(moved["room"], "moving");
}
