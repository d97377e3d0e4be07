//! Rooms that outgrow a worker: with `--workers-per-node 2 --max-consumers-per-worker 8
//! --max-nodes 4`, a room of four str0m peers publishing audio and video spreads over three
//! workers on two nodes (a second router on the first node, then a third on a node started for
//! it), piped together; every peer receives every other's media. A producer closed on one
//! router closes its consumers on the others. Killing the node of one router moves only its
//! peer; the others keep receiving each other, and the moved peer re-joins.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use signaling_api::calls::CloseProducer;
use signaling_api::{Notification, ProducerId};

use crate::support::peer::{assert_exact_media, exchange_media, Joining, TestPeer};
use crate::support::signaling::{notified, producer_args, Expect};
use crate::support::{monitor_query, signal, Sfu, TestCert};

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

/// Packets received through each consumer, by producer id.
fn by_producer(peer: &TestPeer) -> Vec<(ProducerId, u64)> {
    peer.consumers
        .iter()
        .zip(peer.received())
        .map(|(consumer, (_, count))| (consumer.producer, count))
        .collect()
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
    for (name, peer) in [("A", &a), ("B", &b), ("C", &c), ("D", &d)] {
        let received = by_producer(peer);
        println!("{name} received {received:?}");
        assert_eq!(
            received.len(),
            6,
            "{name} consumes the other three's audio and video"
        );
    }
    // Across routers, workers and nodes, every packet once, from the right producer.
    let everyone = [&a, &b, &c, &d];
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
    let [mut a, mut b, mut c, mut d] =
        four_peers(&sfu, &cert, room, Duration::from_millis(400)).await;

    // D is alone on the router of the node started for it.
    let detail = query(&sfu, &cert, &["room", room]);
    let d_node = detail["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .find(|p| p["displayName"] == "D")
        .map(|p| p["node"].as_str().expect("node").to_string())
        .expect("D is in the room");
    let others_nodes: BTreeSet<&str> = detail["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .filter(|p| p["displayName"] != "D")
        .map(|p| p["node"].as_str().expect("node"))
        .collect();
    assert!(
        !others_nodes.contains(d_node.as_str()),
        "D's node hosts only D: {detail}"
    );
    let nodes = query(&sfu, &cert, &["nodes"]);
    let d_pid = nodes
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["node"] == d_node.as_str())
        .and_then(|n| n["pid"].as_u64())
        .expect("pid of D's node") as u32;

    let d_id = d.peer_id;
    // A, B and C keep sending through the kill: 100 packets per track.
    let steady = tokio::spawn(async move {
        exchange_media(&mut [&mut a, &mut b, &mut c], Duration::from_secs(2)).await;
        (a, b, c)
    });
    let killed_at = Instant::now();
    signal(d_pid, "KILL");
    let moved = notified!(d.signaling, Notification::RoomMoved { room, .. } => room);
    assert_eq!(moved, room);
    println!(
        "D told roomMoved {:?} after SIGKILL of its node",
        killed_at.elapsed()
    );
    let (mut a, mut b, mut c) = steady.await.expect("steady peers");
    // Among themselves A, B and C lost nothing, before, during or after the kill.
    assert_exact_media(&[&a, &b, &c], &[&a, &b, &c]).await;
    for peer in [&mut a, &mut b, &mut c] {
        let left = notified!(peer.signaling, Notification::PeerLeft { peer_id } => peer_id);
        assert_eq!(left, d_id);
    }

    // D joins again (as docs/protocol.md says) and media flows both ways.
    drop(d);
    let rejoined_at = Instant::now();
    let mut d = join(&url, &ca, room, "D", 500, &mut [&mut a, &mut b, &mut c]).await;
    let mut recovered = None;
    for _ in 0..150 {
        let everyone = [&a, &b, &c, &d]
            .iter()
            .all(|p| by_producer(p).iter().all(|(_, n)| *n > 0));
        if everyone {
            recovered = Some(rejoined_at.elapsed());
            break;
        }
        exchange_media(
            &mut [&mut a, &mut b, &mut c, &mut d],
            Duration::from_millis(20),
        )
        .await;
    }
    let recovered = recovered.expect("media flows both ways after D re-joins");
    println!("media both ways {recovered:?} after D started to join again");
    assert_eq!(d.consumers.len(), 6);
}
