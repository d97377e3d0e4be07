//! Rooms that outgrow a worker: with `--workers-per-node 2 --max-consumers-per-worker 8
//! --max-nodes 4`, a room of four str0m peers publishing audio and video spreads over three
//! workers on two nodes (a second router on the first node, then a third on a node started for
//! it), piped together; every peer receives every other's media. A producer closed on one
//! router closes its consumers on the others. Killing the node of one router moves only its
//! peer; the others keep receiving each other, and the moved peer re-joins.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use signaling_api::calls::CloseProducer;
use signaling_api::{Notification, ProducerId};

use crate::monitor::{https_get, parse_metrics};
use crate::support::monitor_events::follow;
use crate::support::peer::{assert_exact_media, exchange_media, Joining, TestPeer};
use crate::support::signaling::{notified, producer_args, Expect};
use crate::support::{monitor_query, signal, wait_reaped, Sfu, TestCert};

const TOKEN: &str = "test-spanning-token-0123456789abcdef";

fn start(cert: &TestCert) -> Sfu {
    Sfu::start_tls(
        cert,
        &[
            "--monitor-token",
            TOKEN,
            "--workers-per-node",
            "2",
            "--max-consumers-per-worker",
            "8",
            "--max-nodes",
            "4",
        ],
    )
}

/// `monitor --json <args>` against `sfu`.
fn query(sfu: &Sfu, cert: &TestCert, args: &[&str]) -> Value {
    monitor_query(sfu, cert, TOKEN, args)
}

/// A, B, C and D join `room` one after the other, each consuming everyone; media flows for
/// `warm_up`.
async fn four_peers(sfu: &Sfu, cert: &TestCert, room: &str, warm_up: Duration) -> [TestPeer; 4] {
    let (url, ca) = (sfu.ws_url(), cert.cert_pem.clone());
    let mut a = join(&url, &ca, room, "A", 100, &mut []).await;
    let mut b = join(&url, &ca, room, "B", 200, &mut [&mut a]).await;
    let mut c = join(&url, &ca, room, "C", 300, &mut [&mut a, &mut b]).await;
    let mut d = join(&url, &ca, room, "D", 400, &mut [&mut a, &mut b, &mut c]).await;
    exchange_media(&mut [&mut a, &mut b, &mut c, &mut d], warm_up).await;
    [a, b, c, d]
}

async fn join(
    url: &str,
    ca: &str,
    room: &str,
    name: &str,
    ssrc: u32,
    others: &mut [&mut TestPeer],
) -> TestPeer {
    Joining::new(url)
        .ca(Some(ca))
        .join_call(room, name, ssrc, others)
        .await
}

fn placements(room: &Value) -> (BTreeSet<(String, u64)>, BTreeSet<String>) {
    let routers = room["routers"].as_array().expect("routers");
    let workers: BTreeSet<(String, u64)> = routers
        .iter()
        .map(|r| {
            (
                r["node"].as_str().expect("node").to_string(),
                r["worker"].as_u64().expect("worker"),
            )
        })
        .collect();
    let nodes = workers.iter().map(|(n, _)| n.clone()).collect();
    (workers, nodes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_of_four_spreads_over_three_workers_on_two_nodes_and_everyone_receives_everyone() {
    let cert = TestCert::new("spanning");
    let sfu = start(&cert);
    let room = "spread";
    let [mut a, mut b, mut c, mut d] = four_peers(&sfu, &cert, room, Duration::from_secs(3)).await;
    let everyone = [&a, &b, &c, &d];
    for (name, peer) in [("A", &a), ("B", &b), ("C", &c), ("D", &d)] {
        let received = peer.heard(&everyone);
        println!("{name} received {received:?}");
        assert_eq!(
            received.len(),
            6,
            "{name} consumes the other three's audio and video"
        );
    }
    // Across routers, workers and nodes, every packet once, from the right producer.
    assert_exact_media(&everyone, &everyone).await;
    let detail = query(&sfu, &cert, &["room", room]);
    println!("routers: {}", detail["routers"]);
    let (workers, nodes) = placements(&detail);
    assert!(workers.len() >= 3, "routers on {workers:?}");
    assert!(nodes.len() >= 2, "routers on nodes {nodes:?}");
    assert!(
        detail["pipes"].as_u64().expect("pipes") >= 12,
        "{}",
        detail["pipes"]
    );
    let summary = query(&sfu, &cert, &["summary"]);
    assert_eq!(summary["spanningRooms"], 1);
    assert_eq!(
        summary["consumers"].as_u64(),
        Some(24 + detail["pipes"].as_u64().unwrap_or(0))
    );

    // /metrics says the same: the pipes, one spanning room, and per worker what the monitor's
    // `nodes` shows (the room on each worker hosting one of its routers).
    let metrics = parse_metrics(&https_get(&sfu, &cert, "/metrics").await);
    assert_eq!(metrics.get("sfu_pipes").copied(), detail["pipes"].as_f64());
    assert_eq!(metrics.get("sfu_spanning_rooms"), Some(&1.0));
    let listed = query(&sfu, &cert, &["nodes"]);
    let mut hosting = BTreeSet::new();
    let mut series = 0;
    for node in listed.as_array().expect("nodes") {
        let name = node["node"].as_str().expect("node");
        for worker in node["workers"].as_array().expect("workers") {
            let index = worker["worker"].as_u64().expect("worker");
            let labels = format!("{{node=\"{name}\",worker=\"{index}\"}}");
            let gauge = |metric: &str| {
                metrics
                    .get(&format!("{metric}{labels}"))
                    .copied()
                    .unwrap_or_else(|| panic!("no {metric}{labels}"))
            };
            let rooms = worker["rooms"].as_array().expect("rooms");
            assert_eq!(gauge("sfu_worker_rooms"), rooms.len() as f64, "{worker}");
            for (metric, key) in [
                ("sfu_worker_participants", "participants"),
                ("sfu_worker_producers", "producers"),
                ("sfu_worker_consumers", "consumers"),
            ] {
                assert_eq!(
                    Some(gauge(metric)),
                    worker[key].as_f64(),
                    "{metric}: {worker}"
                );
            }
            assert!(gauge("sfu_worker_cpu_percent") >= 0.0);
            if rooms.iter().any(|r| r == room) {
                hosting.insert((name.to_string(), index));
            }
            series += 1;
        }
    }
    assert_eq!(hosting, workers, "the workers hosting the room's routers");
    let per_worker = metrics
        .keys()
        .filter(|k| k.starts_with("sfu_worker_rooms{"))
        .count();
    assert_eq!(per_worker, series, "one series per worker");
    assert_eq!(metrics.get("sfu_workers"), Some(&(series as f64)));

    // A closes its audio: every consumer of it, on every router, closes and its owner is told.
    let a_audio = a.producers[0].id;
    a.signaling
        .ok(&CloseProducer(producer_args(&a_audio)))
        .await;
    for (name, peer) in [("B", &mut b), ("C", &mut c), ("D", &mut d)] {
        let closed = notified!(
            peer.signaling,
            Notification::ConsumerClosed { producer_id, .. } => producer_id
        );
        assert_eq!(closed, a_audio, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_node_of_one_router_moves_only_its_peers_and_the_others_keep_receiving() {
    let cert = TestCert::new("spanning-kill");
    let sfu = start(&cert);
    let (url, ca) = (sfu.ws_url(), cert.cert_pem.clone());
    let room = "split";
    let mut events = follow(&sfu, Some(&cert), TOKEN).await;
    let [mut a, mut b, mut c, d] = four_peers(&sfu, &cert, room, Duration::from_millis(400)).await;

    // D is alone on the router of the node started for it.
    let detail = query(&sfu, &cert, &["room", room]);
    let d_node = node_of(&detail, "D");
    let others_nodes: BTreeSet<String> = ["A", "B", "C"]
        .iter()
        .map(|name| node_of(&detail, name))
        .collect();
    assert!(
        !others_nodes.contains(&d_node),
        "D's node hosts only D: {detail}"
    );
    let d_pid = pid_of(&sfu, &cert, &d_node).expect("pid of D's node");
    let spawned = events
        .seen_or_wait(Duration::from_secs(5), |e| {
            e["type"] == "nodeSpawned" && e["node"] == d_node.as_str()
        })
        .await
        .unwrap_or_else(|| panic!("no nodeSpawned for D's node: {:?}", events.seen()));
    assert_eq!(spawned["reason"], "capacity", "{spawned}");
    assert_eq!(spawned["pid"], d_pid, "{spawned}");

    let d_id = d.peer_id;
    // A, B and C keep sending through the kill and D's return, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let steady = tokio::spawn({
        let stop = stop.clone();
        async move {
            while !stop.load(Ordering::Relaxed) {
                exchange_media(&mut [&mut a, &mut b, &mut c], Duration::from_millis(20)).await;
            }
            (a, b, c)
        }
    });
    let mut d = d;
    let killed_at = Instant::now();
    signal(d_pid, "KILL");
    let moved = notified!(d.signaling, Notification::RoomMoved { room, .. } => room);
    assert_eq!(moved, room);
    let moved_after = killed_at.elapsed();
    // The supervisor sees the death at once (the child's exit, the socket's EOF): a few
    // milliseconds, a second on a loaded machine; missed heartbeats (seconds) would not pass.
    assert!(
        moved_after < Duration::from_secs(1),
        "roomMoved {moved_after:?} after the kill"
    );

    // D joins again at once (as docs/protocol.md says), consuming what the room lists.
    drop(d);
    let mut d = Joining::new(&url).ca(Some(&ca)).peer(room, "D", 500).await;
    let listed: Vec<ProducerId> = d
        .joined
        .peers
        .iter()
        .flat_map(|p| p.producers.iter().map(|p| p.producer_id))
        .collect();
    assert_eq!(listed.len(), 6, "D is offered A's, B's and C's producers");
    for producer in &listed {
        d.consume(producer).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (mut a, mut b, mut c) = steady.await.expect("steady peers");
    // Among themselves A, B and C lost nothing, before, during or after the kill.
    assert_exact_media(&[&a, &b, &c], &[&a, &b, &c]).await;
    for peer in [&mut a, &mut b, &mut c] {
        // Told D left (whenever it came, before D's new producers or after) and take D in.
        peer.consume_announced(2).await;
        let told = peer.signaling.seen().to_vec();
        assert!(
            crate::support::signaling::told_left(&told, d_id),
            "{} was told D left: {told:?}",
            peer.name
        );
    }

    // Media flows both ways again, each consumer its own stream: timed from the kill.
    let deadline = Instant::now() + Duration::from_secs(10);
    let recovered = loop {
        let everyone = [&a, &b, &c, &d];
        let heard: Vec<(String, Vec<(ProducerId, usize)>)> = everyone
            .iter()
            .map(|p| (p.name.clone(), p.heard(&everyone)))
            .collect();
        if heard
            .iter()
            .all(|(_, h)| h.len() == 6 && h.iter().all(|(_, n)| *n > 0))
        {
            break killed_at.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "media does not flow both ways 10 s after D re-joined: {heard:?}"
        );
        exchange_media(
            &mut [&mut a, &mut b, &mut c, &mut d],
            Duration::from_millis(20),
        )
        .await;
    };
    println!("after SIGKILL of D's node: roomMoved {moved_after:?}, media both ways {recovered:?}");
    // A liveness bound, as in faults.rs: a fraction of a second here (a node is started for
    // D on the way), generous for a loaded 2-core machine, far below the 15 s a test waits
    // for any answer.
    assert!(
        recovered < Duration::from_secs(3),
        "media both ways within 3 s of the kill, not {recovered:?}"
    );

    // The killed node was reaped, reported and replaced: D is on a node that runs.
    assert!(
        wait_reaped(d_pid, Duration::from_secs(5)).await,
        "the killed node {d_pid} was reaped by the supervisor"
    );
    let exited = events
        .seen_or_wait(Duration::from_secs(5), |e| {
            e["type"] == "nodeExited" && e["node"] == d_node.as_str()
        })
        .await
        .unwrap_or_else(|| panic!("no nodeExited for D's node: {:?}", events.seen()));
    let detail = query(&sfu, &cert, &["room", room]);
    let new_node = node_of(&detail, "D");
    assert_ne!(new_node, d_node, "D is back on another node");
    let new_pid = pid_of(&sfu, &cert, &new_node).expect("D's new node is listed");
    assert!(
        pid_of(&sfu, &cert, &d_node).is_none(),
        "the dead node is no longer listed"
    );
    assert!(
        sfu.node_pids().contains(&new_pid),
        "D's node runs: {new_pid}"
    );
    // It was started after the kill (for D: a spare, or a replacement of a pool below its
    // size), and the monitor said so.
    let started = events
        .seen_or_wait(Duration::from_secs(5), |e| {
            ["nodeSpawned", "nodeRespawned"].contains(&e["type"].as_str().unwrap_or(""))
                && e["node"] == new_node.as_str()
        })
        .await
        .unwrap_or_else(|| panic!("no event for D's new node: {:?}", events.seen()));
    assert_eq!(started["pid"], new_pid, "{started}");
    assert!(
        started["at"].as_u64() >= exited["at"].as_u64(),
        "{started} after {exited}"
    );
}

/// The node of participant `name` in a `room` answer.
fn node_of(detail: &Value, name: &str) -> String {
    detail["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .find(|p| p["displayName"] == name)
        .map(|p| p["node"].as_str().expect("node").to_string())
        .unwrap_or_else(|| panic!("{name} is not in the room: {detail}"))
}

/// The pid of `node` as the monitor lists it (`None`: not listed).
fn pid_of(sfu: &Sfu, cert: &TestCert, node: &str) -> Option<u32> {
    query(sfu, cert, &["nodes"])
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["node"] == node)
        .and_then(|n| n["pid"].as_u64())
        .map(|pid| pid as u32)
}
