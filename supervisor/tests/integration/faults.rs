//! Fault injection with real processes: nodes killed or stopped in the middle of calls, and
//! the supervisor killed. The supervisor stays up, the affected clients are told and recover,
//! other rooms are untouched, and no process is left behind.

use std::time::{Duration, Instant};

use signaling_api::Notification;

use crate::support::monitor_events::follow;
use crate::support::peer::{assert_exact_media, exchange_media, Joining, TestPeer};
use crate::support::signaling::{self, join, notified, Expect};
use crate::support::{monitor_json, signal, wait_gone, wait_reaped, Sfu};

async fn call(url: &str, room: &str, ssrc_base: u32) -> (TestPeer, TestPeer) {
    let (mut a, mut b) = join_call(url, room, ssrc_base).await;
    exchange_media(&mut [&mut a, &mut b], Duration::from_millis(400)).await;
    (a, b)
}

/// Two peers in `room`, each consuming the other, no media sent yet.
async fn join_call(url: &str, room: &str, ssrc_base: u32) -> (TestPeer, TestPeer) {
    Joining::new(url).pair(room, ["A", "B"], ssrc_base).await
}

/// What `request` came to, and when.
async fn timed<T>(request: impl std::future::Future<Output = T>) -> (T, Instant) {
    let outcome = request.await;
    (outcome, Instant::now())
}

/// `monitor --json <args>` against `sfu` (plain `ws://` on loopback) with the test token.
fn monitor(sfu: &Sfu, args: &[&str]) -> serde_json::Value {
    let url = sfu.monitor_url();
    let mut full = vec!["--url", url.as_str(), "--token", crate::monitor::TOKEN];
    full.extend_from_slice(args);
    tokio::task::block_in_place(|| monitor_json(&full))
}

/// The node hosting `room` as the monitor shows it: its name and pid.
fn node_of_room(sfu: &Sfu, room: &str) -> (String, u32) {
    let detail = monitor(sfu, &["room", room]);
    let routers = detail["routers"].as_array().expect("routers");
    assert_eq!(routers.len(), 1, "one router: {detail}");
    let node = routers[0]["node"].as_str().expect("node").to_string();
    let pid = monitor(sfu, &["nodes"])
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["node"] == node.as_str())
        .and_then(|n| n["pid"].as_u64())
        .unwrap_or_else(|| panic!("{node} is not listed")) as u32;
    (node, pid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_node_rooms_recover_and_other_rooms_lose_nothing() {
    let mut sfu = Sfu::start(&["--nodes", "2", "--monitor-token", crate::monitor::TOKEN]);
    let url = sfu.ws_url();
    let nodes = sfu.wait_nodes(2, Duration::from_secs(10)).await;
    let mut events = follow(&sfu, None, crate::monitor::TOKEN).await;
    let (mut a, mut b) = call(&url, "doomed", 100).await;
    let (mut c, mut d) = call(&url, "steady", 200).await;
    // Where the rooms are is the supervisor's choice: ask the monitor.
    let (doomed_node, doomed_pid) = node_of_room(&sfu, "doomed");
    let (steady_node, _) = node_of_room(&sfu, "steady");
    assert!(nodes.contains(&doomed_pid), "{doomed_pid} of {nodes:?}");
    assert_ne!(doomed_node, steady_node, "rooms spread over the two nodes");
    let doomed_producers: Vec<String> = [&a, &b]
        .iter()
        .flat_map(|p| p.producers.iter().map(|p| p.id.to_string()))
        .collect();
    // Media flows before the kill, every packet from its own stream.
    assert_exact_media(&[&a, &b], &[&a, &b]).await;
    assert_exact_media(&[&c, &d], &[&c, &d]).await;

    // The other room keeps sending through the kill and the recovery: 100 packets per track.
    let steady = tokio::spawn(async move {
        exchange_media(&mut [&mut c, &mut d], Duration::from_secs(2)).await;
        (c, d)
    });
    let killed_at = Instant::now();
    signal(doomed_pid, "KILL");
    for peer in [&mut a, &mut b] {
        let moved = notified!(peer.signaling, Notification::RoomMoved { room, .. } => room);
        assert_eq!(moved, "doomed");
    }
    let moved = killed_at.elapsed();
    // The supervisor sees the death at once (the child's exit and the socket's EOF): a few
    // milliseconds here, a second on a loaded machine; missed heartbeats (seconds) would
    // not pass.
    assert!(
        moved < Duration::from_secs(1),
        "roomMoved {moved:?} after the kill"
    );
    // The doomed room's peers re-join (as docs/protocol.md says) and media flows again.
    drop((a, b));
    let (mut a, mut b) = join_call(&url, "doomed", 300).await;
    let rejoined = killed_at.elapsed();
    // Media from the moment the call is back; the time of each consumer's first packet.
    let deadline = Instant::now() + Duration::from_secs(5);
    let first = loop {
        let firsts: Vec<Option<Instant>> =
            [&a, &b].iter().flat_map(|p| p.first_packets()).collect();
        if firsts.len() == 4 && firsts.iter().all(Option::is_some) {
            break firsts.into_iter().flatten().max().expect("four");
        }
        assert!(
            Instant::now() < deadline,
            "media never came back: {firsts:?}"
        );
        exchange_media(&mut [&mut a, &mut b], Duration::from_millis(20)).await;
    };
    let recovered = first.duration_since(killed_at);
    // What came back is each consumer's own stream, every packet since the re-join.
    assert_exact_media(&[&a, &b], &[&a, &b]).await;
    println!(
        "after SIGKILL of the node: roomMoved {moved:?}, re-joined {rejoined:?}, every track's first packet {recovered:?}"
    );
    assert!(
        recovered < Duration::from_secs(3),
        "media back within 3 s of the kill, not {recovered:?}"
    );

    let (c, d) = steady.await.expect("steady room task");
    // Every packet of the steady room, before, during and after the kill.
    assert_exact_media(&[&c, &d], &[&c, &d]).await;
    assert!(sfu.is_running(), "supervisor survived");
    let replaced = sfu.wait_nodes(2, Duration::from_secs(10)).await;
    assert!(
        !replaced.contains(&doomed_pid),
        "the dead node was replaced"
    );
    assert!(
        wait_reaped(doomed_pid, Duration::from_secs(5)).await,
        "the killed node was reaped by the supervisor: no zombie left"
    );

    // The monitor told it all: the node's exit, its replacement (the pool is below --nodes),
    // and each producer of the doomed room closing with its node.
    let within = Duration::from_secs(5);
    let exited = events
        .seen_or_wait(within, |e| {
            e["type"] == "nodeExited" && e["node"] == doomed_node.as_str()
        })
        .await
        .unwrap_or_else(|| panic!("no nodeExited for {doomed_node}: {:?}", events.seen()));
    let respawned = events
        .seen_or_wait(within, |e| e["type"] == "nodeRespawned")
        .await
        .unwrap_or_else(|| panic!("no nodeRespawned: {:?}", events.seen()));
    let new_pid = respawned["pid"].as_u64().expect("pid") as u32;
    assert!(replaced.contains(&new_pid), "{respawned} of {replaced:?}");
    assert!(
        respawned["at"].as_u64() >= exited["at"].as_u64(),
        "{exited} {respawned}"
    );
    for producer in &doomed_producers {
        events
            .seen_or_wait(within, |e| {
                e["type"] == "producerClosed"
                    && e["room"] == "doomed"
                    && e["producerId"] == producer.as_str()
            })
            .await
            .unwrap_or_else(|| panic!("no producerClosed for {producer}: {:?}", events.seen()));
    }
    // Nothing of the steady room closed.
    let steady_closed: Vec<_> = events
        .seen()
        .iter()
        .filter(|e| e["room"] == "steady" && e["type"] == "producerClosed")
        .cloned()
        .collect();
    assert!(steady_closed.is_empty(), "{steady_closed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_node_is_detected_by_heartbeat_and_replaced() {
    let mut sfu = Sfu::start(&[
        "--node-heartbeat-timeout-ms",
        "1500",
        "--monitor-token",
        crate::monitor::TOKEN,
    ]);
    let url = sfu.ws_url();
    let node = sfu.wait_nodes(1, Duration::from_secs(10)).await[0];
    let mut events = follow(&sfu, None, crate::monitor::TOKEN).await;
    let (mut a, _b) = call(&url, "frozen", 400).await;
    let stopped_at = Instant::now();
    signal(node, "STOP");
    notified!(a.signaling, Notification::RoomMoved { .. } => ());
    println!("SIGSTOP detected after {:?}", stopped_at.elapsed());
    assert!(stopped_at.elapsed() < Duration::from_secs(6));
    assert!(
        wait_reaped(node, Duration::from_secs(10)).await,
        "the hung node was killed and reaped"
    );
    let replaced = sfu.wait_nodes(1, Duration::from_secs(10)).await;
    assert_ne!(replaced[0], node);
    // The monitor saw the hung node go and its replacement come.
    let within = Duration::from_secs(5);
    let exited = events
        .seen_or_wait(within, |e| e["type"] == "nodeExited")
        .await
        .unwrap_or_else(|| panic!("no nodeExited: {:?}", events.seen()));
    let respawned = events
        .seen_or_wait(within, |e| e["type"] == "nodeRespawned")
        .await
        .unwrap_or_else(|| panic!("no nodeRespawned: {:?}", events.seen()));
    assert_eq!(respawned["pid"], replaced[0], "{respawned}");
    assert_ne!(respawned["node"], exited["node"], "{exited} {respawned}");
    drop(a);
    let (a, b) = call(&url, "frozen", 500).await;
    // Media flows on the new node, exactly.
    assert_exact_media(&[&a, &b], &[&a, &b]).await;
    assert!(sfu.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_die_with_a_killed_supervisor() {
    let sfu = Sfu::start(&["--nodes", "2"]);
    let nodes = sfu.wait_nodes(2, Duration::from_secs(10)).await;
    signal(sfu.pid(), "KILL");
    for pid in nodes {
        // Orphans are reaped by init, not by us: gone is what counts.
        assert!(
            wait_gone(pid, Duration::from_secs(5)).await,
            "node {pid} outlived the supervisor"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_at_a_node_when_it_dies_are_answered_not_hung() {
    let sfu = Sfu::start(&[]);
    let url = sfu.ws_url();
    let node = sfu.wait_nodes(1, Duration::from_secs(10)).await[0];
    let joining = Joining::new(&url);
    let mut alice = joining.peer("inflight", "Alice", 1000).await;
    let mut bob = joining.peer("inflight", "Bob", 2000).await;
    let mut carol = signaling::connect(&url, None).await;
    // The node hangs: a consume and a join (of a room new to it) wait in it, until it is
    // killed half a second later.
    signal(node, "STOP");
    let consume = bob.consume_args(&alice.producers[0].id);
    let newcomer = join("newcomer", "Carol");
    let kill = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        signal(node, "KILL");
        Instant::now()
    };
    let ((consumed, consumed_at), (joined, joined_at), killed_at) = tokio::join!(
        timed(bob.signaling.call(&consume)),
        timed(carol.call(&newcomer)),
        kill,
    );
    println!(
        "answered {:?} (consume) and {:?} (join) after the kill",
        consumed_at.duration_since(killed_at),
        joined_at.duration_since(killed_at)
    );
    assert!(
        consumed_at > killed_at && joined_at > killed_at,
        "both were in flight at the kill"
    );
    let refused = consumed.expect_err("the consume fails with its node");
    assert_eq!(refused.code(), "node_unavailable", "{refused}");
    // The join may be retried on the replacement node, or refused: either way, answered.
    let code = joined.as_ref().map_or_else(|e| e.code(), |_| "ok");
    assert!(["ok", "node_unavailable"].contains(&code), "{joined:?}");
    // The consume is answered as soon as its node is seen dead (milliseconds; a second on
    // a loaded machine), long before the node request timeout; the join may wait for the
    // replacement node to start and take its router.
    for (what, at, bound) in [
        ("consume", consumed_at, Duration::from_secs(1)),
        ("join", joined_at, Duration::from_secs(5)),
    ] {
        assert!(
            at.duration_since(killed_at) < bound,
            "the {what} was answered {:?} after the kill",
            at.duration_since(killed_at)
        );
    }
    let moved = notified!(alice.signaling, Notification::RoomMoved { room, .. } => room);
    assert_eq!(moved, "inflight");
    assert!(
        wait_reaped(node, Duration::from_secs(5)).await,
        "the killed node was reaped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_kills_in_a_row_the_pool_comes_back_each_time_without_zombies() {
    let sfu = Sfu::start(&["--nodes", "2", "--monitor-token", crate::monitor::TOKEN]);
    let url = sfu.ws_url();
    for round in 0..5 {
        let nodes = sfu.wait_nodes(2, Duration::from_secs(10)).await;
        let (a, b) = call(&url, &format!("round-{round}"), 600 + round * 100).await;
        // Media flows, exactly.
        assert_exact_media(&[&a, &b], &[&a, &b]).await;
        signal(nodes[0], "KILL");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = sfu.node_pids();
            if now.len() == 2 && !now.contains(&nodes[0]) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: pool did not come back: {now:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            wait_reaped(nodes[0], Duration::from_secs(5)).await,
            "round {round}: the killed node is a zombie or alive"
        );
    }
    // The monitor counts the restarts (over plain ws://, allowed on loopback).
    let monitor_url = sfu.monitor_url();
    let args = [
        "--url",
        &monitor_url,
        "--token",
        crate::monitor::TOKEN,
        "summary",
    ];
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut summary = monitor_json(&args);
    while summary["nodeRestartsTotal"] != 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        summary = monitor_json(&args);
    }
    assert_eq!(summary["nodeRestartsTotal"], 5, "{summary}");
    assert_eq!(summary["nodes"], 2, "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_workers_grow_the_pool_up_to_max_nodes_then_joins_get_capacity() {
    let sfu = Sfu::start(&[
        "--nodes",
        "1",
        "--max-nodes",
        "2",
        "--max-consumers-per-worker",
        "4",
    ]);
    let url = sfu.ws_url();
    sfu.wait_nodes(1, Duration::from_secs(10)).await;
    // Two peers consuming each other: 4 consumers fill the first node's worker (admission
    // counts them before they exist: the second peer's 2 and what the first gains from it).
    let (_a, _b) = call(&url, "first", 700).await;
    assert_eq!(sfu.node_pids().len(), 1);
    // A new room cannot go there: a second node is started and the room lands on it.
    let (c, d) = call(&url, "second", 800).await;
    // Media flows in the room on the new node, exactly.
    assert_exact_media(&[&c, &d], &[&c, &d]).await;
    assert_eq!(sfu.node_pids().len(), 2, "a second node was spawned");
    // Both workers are full and the pool is at --max-nodes: new and full rooms are refused.
    let mut late = signaling::connect(&url, None).await;
    for room in ["third", "first"] {
        let refused = late.refused(&join(room, "Late")).await;
        assert_eq!(refused.code(), "capacity", "{room}: {refused}");
    }
    assert_eq!(sfu.node_pids().len(), 2, "no node beyond --max-nodes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_tells_clients_stops_nodes_and_exits_zero() {
    let mut sfu = Sfu::start(&["--nodes", "2"]);
    let nodes = sfu.wait_nodes(2, Duration::from_secs(10)).await;
    let mut sig = signaling::connect(&sfu.ws_url(), None).await;
    sig.ok(&join("bye", "A")).await;
    let mut late = signaling::connect(&sfu.ws_url(), None).await;
    let started = Instant::now();
    signal(sfu.pid(), "TERM");
    notified!(sig, Notification::ShuttingDown {} => ());
    // A connection that has not joined yet is turned away with the reason.
    let refused = late.refused(&join("bye", "Late")).await;
    assert_eq!(refused.code(), "shutting_down", "{refused}");
    let code = sfu.wait_exit(Duration::from_secs(8)).await;
    assert_eq!(code, Some(0), "exit code; log:\n{}", sfu.log_text());
    println!("stopped in {:?}", started.elapsed());
    for pid in nodes {
        assert!(
            wait_gone(pid, Duration::from_secs(3)).await,
            "node {pid} outlived a stopped supervisor"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_a_hung_node_never_answers_times_out_after_the_node_request_timeout() {
    // The heartbeat would notice the hang after 8 s; the request gives up after 600 ms.
    let mut sfu = Sfu::start(&[
        "--node-request-timeout-ms",
        "600",
        "--node-heartbeat-timeout-ms",
        "8000",
    ]);
    let url = sfu.ws_url();
    let node = sfu.wait_nodes(1, Duration::from_secs(10)).await[0];
    let joining = Joining::new(&url);
    let alice = joining.peer("hung", "Alice", 1000).await;
    let mut bob = joining.peer("hung", "Bob", 2000).await;
    signal(node, "STOP");
    let asked_at = Instant::now();
    let consume = bob.consume_args(&alice.producers[0].id);
    let refused = bob
        .signaling
        .call(&consume)
        .await
        .expect_err("a hung node answers nothing");
    let waited = asked_at.elapsed();
    signal(node, "CONT");
    assert_eq!(refused.code(), "node_unavailable", "{refused}");
    assert!(
        waited >= Duration::from_millis(550) && waited < Duration::from_secs(4),
        "answered {waited:?} after the request, for a 600 ms timeout"
    );
    // The node is back: the room works again.
    bob.signaling.ok(&consume).await;
    assert!(sfu.is_running());
}
