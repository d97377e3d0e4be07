//! Media statistics on demand and the diagnosis of one participant, against the real
//! supervisor, nodes and str0m peers: nothing is collected through a call nobody monitors
//! (`sfu_stats_collections_total` stays at 0), a `room` query collects once, a quality
//! subscription collects while it runs and not after; and a subscriber whose network goes
//! away shows up in `monitor peer` (ICE `disconnected`) and as a quality event.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::monitor_events::EventsProcess;
use crate::support::peer::{exchange_media, Joining, TestPeer};
use crate::support::process::output_within;
use crate::support::{http_get, monitor_binary, monitor_json, Sfu};

const TOKEN: &str = "diagnostics-token-0123456789abcdef";

/// `sfu_stats_collections_total` from `/metrics`.
fn collections(sfu: &Sfu) -> u64 {
    http_get(sfu.port, "/metrics")
        .lines()
        .find_map(|l| {
            l.strip_prefix("sfu_stats_collections_total ")?
                .trim()
                .parse()
                .ok()
        })
        .expect("sfu_stats_collections_total on /metrics")
}

fn monitor(sfu: &Sfu, args: &[&str]) -> Value {
    let url = sfu.monitor_url();
    let mut full = vec!["--url", url.as_str(), "--token", TOKEN];
    full.extend_from_slice(args);
    monitor_json(&full)
}

/// `monitor --json events --quality` for `room`.
async fn quality_events(sfu: &Sfu, room: &str) -> EventsProcess {
    let url = sfu.monitor_url();
    let mut command = Command::new(monitor_binary());
    command
        .args([
            "--url",
            &url,
            "--token",
            TOKEN,
            "--json",
            "events",
            "--quality",
        ])
        .args(["--room", room])
        .env_remove("MONITOR_TOKEN")
        .env_remove("MONITOR_URL");
    EventsProcess::spawn(command).await
}

/// Alice and Bob in `room`, each consuming the other.
async fn call(url: &str, room: &str) -> (TestPeer, TestPeer) {
    Joining::new(url).pair(room, ["Alice", "Bob"], 7000).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_statistics_are_collected_only_while_a_monitor_asks() {
    let sfu = Sfu::start(&["--monitor-token", TOKEN]);
    let url = sfu.ws_url();
    let (mut alice, mut bob) = call(&url, "quiet").await;
    exchange_media(&mut [&mut alice, &mut bob], Duration::from_secs(3)).await;
    assert_eq!(
        collections(&sfu),
        0,
        "a call nobody monitors collects nothing"
    );
    // Counts are free.
    let rooms = tokio::task::block_in_place(|| monitor(&sfu, &["rooms"]));
    assert_eq!(rooms[0]["consumers"], 4);
    assert_eq!(collections(&sfu), 0, "rooms: counts only");

    // One room query: one fresh collection, with scores and bitrates.
    let room = tokio::task::block_in_place(|| monitor(&sfu, &["room", "quiet"]));
    assert_eq!(collections(&sfu), 1);
    let consumers = room["participants"][1]["consumers"]
        .as_array()
        .expect("consumers");
    assert_eq!(consumers.len(), 2, "Alice's audio and video: {consumers:?}");
    assert!(
        consumers.iter().all(|c| c["score"].as_u64().is_some()),
        "collected for the answer: {consumers:?}"
    );

    // A quality subscription collects every 2 s while it runs, and stops with it.
    let before = collections(&sfu);
    let events = quality_events(&sfu, "quiet").await;
    exchange_media(&mut [&mut alice, &mut bob], Duration::from_secs(5)).await;
    let during = collections(&sfu);
    assert!(
        during >= before + 2,
        "sampled while subscribed: {before} → {during}"
    );
    // The subscriber goes; once the supervisor has seen its connection end, its sampling
    // loop is over: nothing is collected in the next 3 s (more than one 2 s period).
    let gone = sfu.log_text().matches("monitor disconnected").count();
    drop(events);
    assert!(
        sfu.wait_log_count("monitor disconnected", gone + 1, Duration::from_secs(5))
            .await,
        "the supervisor saw the subscriber go; log:\n{}",
        sfu.log_text()
    );
    let after = collections(&sfu);
    exchange_media(&mut [&mut alice, &mut bob], Duration::from_secs(3)).await;
    assert_eq!(collections(&sfu), after, "nothing once the subscriber left");
    println!("collections: 0 through the call, 1 after `room`, {before} → {during} during 5 s of `events --quality`, {after} after it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_whose_network_goes_away_shows_in_monitor_peer_and_as_a_quality_event() {
    // mediasoup's shortest consent timeout: 10 s without checks → ICE disconnected.
    let sfu = Sfu::start(&["--monitor-token", TOKEN, "--ice-consent-timeout-secs", "10"]);
    let url = sfu.ws_url();
    let (mut alice, mut bob) = call(&url, "diag").await;
    exchange_media(&mut [&mut alice, &mut bob], Duration::from_secs(2)).await;

    // Healthy: what `monitor peer diag Bob` says.
    let healthy = tokio::task::block_in_place(|| monitor(&sfu, &["peer", "diag", "Bob"]));
    assert_eq!(healthy["displayName"], "Bob");
    let transports = healthy["transports"].as_array().expect("transports");
    assert_eq!(transports.len(), 2, "{healthy}");
    for t in transports {
        assert!(
            t["iceState"] == "connected" || t["iceState"] == "completed",
            "{t}"
        );
        assert_eq!(t["dtlsState"], "connected", "{t}");
        assert!(
            t["selectedTuple"]
                .as_str()
                .is_some_and(|s| s.contains("udp")),
            "{t}"
        );
    }
    let consumers = healthy["consumers"].as_array().expect("consumers");
    assert_eq!(consumers.len(), 2);
    for c in consumers {
        assert_eq!(c["from"], "Alice", "{c}");
        assert!(c["paused"].is_null(), "resumed: {c}");
        assert!(c["stream"]["ssrc"].as_u64().is_some(), "{c}");
    }
    let producers = healthy["producers"].as_array().expect("producers");
    assert_eq!(producers.len(), 2);
    assert!(producers
        .iter()
        .all(|p| p["streams"][0]["bitrateBps"].as_u64() > Some(0)));
    // By peer id too.
    let peer_id = healthy["peerId"].as_str().expect("peerId").to_string();
    let by_id = tokio::task::block_in_place(|| monitor(&sfu, &["peer", "diag", &peer_id]));
    assert_eq!(by_id["displayName"], "Bob");

    // Bob's receiving side loses its network while Alice keeps sending.
    let mut events = quality_events(&sfu, "diag").await;
    bob.vanish_receive();
    let started = Instant::now();
    let sending = tokio::spawn(async move {
        exchange_media(&mut [&mut alice], Duration::from_secs(20)).await;
        alice
    });
    let event = events
        .wait_for(Duration::from_secs(20), |e| {
            e["type"] == "qualityDegraded"
                && e["displayName"] == "Bob"
                && e["subject"] == "transport"
        })
        .await
        .expect("a qualityDegraded event for Bob's transport");
    println!(
        "quality event {:.1} s after the network went: {event}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(event["reason"], "ICE disconnected");
    let sick = tokio::task::block_in_place(|| monitor(&sfu, &["peer", "diag", "Bob"]));
    let recv = sick["transports"]
        .as_array()
        .expect("transports")
        .iter()
        .find(|t| t["direction"] == "recv")
        .expect("the receive transport")
        .clone();
    assert_eq!(recv["iceState"], "disconnected", "{sick}");
    let mut human = std::process::Command::new(monitor_binary());
    human.args([
        "--url",
        &sfu.monitor_url(),
        "--token",
        TOKEN,
        "peer",
        "diag",
        "Bob",
    ]);
    let human = output_within(&mut human, Duration::from_secs(30), "monitor peer");
    let table = String::from_utf8_lossy(&human.stdout);
    println!("{table}");
    assert!(
        table.contains("disconnected") && table.contains("RECEIVES FROM"),
        "{table}"
    );
    sending.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_gone_silent_is_a_quality_event_until_it_sends_again() {
    let sfu = Sfu::start(&["--monitor-token", TOKEN]);
    let (mut alice, mut bob) = call(&sfu.ws_url(), "silence").await;
    let mut events = quality_events(&sfu, "silence").await;
    exchange_media(&mut [&mut alice, &mut bob], Duration::from_secs(2)).await;
    // Alice's camera and microphone stop sending (her transports stay up); Bob goes on.
    let stopped = Instant::now();
    let bob_sends = tokio::spawn(async move {
        exchange_media(&mut [&mut bob], Duration::from_secs(30)).await;
        bob
    });
    let silent = events
        .wait_for(Duration::from_secs(20), |e| {
            e["type"] == "qualityDegraded"
                && e["displayName"] == "Alice"
                && e["subject"] == "producer"
        })
        .await
        .expect("a qualityDegraded event for Alice's producer");
    println!(
        "producer silent: event {:.1} s after the media stopped: {silent}",
        stopped.elapsed().as_secs_f64()
    );
    // She sends again: the same producer recovers.
    let resumed = Instant::now();
    let recovered = loop {
        exchange_media(&mut [&mut alice], Duration::from_millis(500)).await;
        if let Some(event) = events
            .wait_for(Duration::from_millis(10), |e| {
                e["type"] == "qualityRecovered" && e["id"] == silent["id"]
            })
            .await
        {
            break event;
        }
        assert!(
            resumed.elapsed() < Duration::from_secs(20),
            "Alice's producer never recovered"
        );
    };
    println!(
        "producer back: event {:.1} s after the media resumed: {recovered}",
        resumed.elapsed().as_secs_f64()
    );
    bob_sends.abort();
}
