//! Rooms that span hosts: when the owner's workers are full, the room opens a router on
//! another host's node, driven through that host's supervisor, with an SRTP pipe between the
//! two hosts' nodes. Each client's media goes to the node of its own router.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use signaling_api::Notification;

use crate::support::cluster::{self, hosts_with, monitor, Etcd};
use crate::support::peer::{assert_exact_media, exchange_media, Joining, TestPeer};
use crate::support::signaling::notified;
use crate::support::Sfu;

/// One small worker per host: two peers fill it (each consumes the other's audio and video).
pub const SMALL: &[&str] = &[
    "--nodes",
    "1",
    "--max-nodes",
    "1",
    "--workers-per-node",
    "1",
    "--max-consumers-per-worker",
    "4",
];

/// The server-side ports of `peer`'s transports, as `host`'s monitor shows them.
pub(crate) fn media_ports(host: &crate::support::Sfu, room: &str, name: &str) -> Vec<u16> {
    let seen = tokio::task::block_in_place(|| monitor(host, &["peer", room, name]));
    let transports = seen["transports"].as_array().expect("transports");
    transports
        .iter()
        .map(|t| {
            let tuple = t["selectedTuple"].as_str().expect("a selected tuple");
            tuple
                .split(" ⇄")
                .next()
                .and_then(|local| local.rsplit(':').next())
                .and_then(|port| port.parse().ok())
                .unwrap_or_else(|| panic!("no server port in {tuple:?}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_whose_owner_is_full_spans_a_second_host_and_every_peer_gets_every_stream() {
    let etcd = Etcd::start();
    let cluster = hosts_with(&etcd, &["h1", "h2"], SMALL).await;
    let (h1, h2) = (&cluster[0], &cluster[1]);
    let (h1_url, h2_url) = (h1.ws_url(), h2.ws_url());
    // Alice reaches h1 (the owner), Bob h2 (relayed): the two fill h1's one worker.
    let mut alice = Joining::new(&h1_url)
        .join_call("span", "Alice", 1000, &mut [])
        .await;
    let mut bob = Joining::new(&h2_url)
        .join_call("span", "Bob", 2000, &mut [&mut alice])
        .await;
    cluster::wait_listed(h1, 2).await;
    // Carol reaches h1, whose worker is full and whose pool may not grow: her router opens
    // on h2's node.
    let mut carol = Joining::new(&h1_url)
        .join_call("span", "Carol", 3000, &mut [&mut alice, &mut bob])
        .await;
    let mut peers: [&mut TestPeer; 3] = [&mut alice, &mut bob, &mut carol];
    exchange_media(&mut peers, Duration::from_millis(800)).await;
    assert_exact_media(&[&alice, &bob, &carol], &[&alice, &bob, &carol]).await;
    // Asked of h2, the owner (h1) answers: two routers, one on each host.
    let detail = tokio::task::block_in_place(|| monitor(h2, &["room", "span"]));
    let routers = detail["routers"].as_array().expect("routers");
    let placed: Vec<(String, u64)> = routers
        .iter()
        .map(|r| {
            (
                r["host"].as_str().unwrap_or_default().to_string(),
                r["peers"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        placed,
        [("h1".to_string(), 2), ("h2".to_string(), 1)],
        "{detail}"
    );
    assert!(
        routers.iter().all(|r| r["pipes"].as_u64() > Some(0)),
        "each router pipes its peers' media to the other: {detail}"
    );
    // Media goes straight to the node of each peer's router: Carol's to h2's ports.
    for port in media_ports(h1, "span", "Carol") {
        assert!(cluster::rtc_ports(1).contains(&port), "{port} is not h2's");
    }
    for port in media_ports(h1, "span", "Alice") {
        assert!(cluster::rtc_ports(0).contains(&port), "{port} is not h1's");
    }
    // The pipe between the hosts' nodes is SRTP.
    assert!(
        h1.log_text()
            .lines()
            .any(|l| l.contains("routers linked") && l.contains("srtp=true")),
        "no SRTP pipe in h1's log"
    );
    assert!(h2
        .log_text()
        .contains("lent a router to another host's room"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_host_lending_a_router_dies_only_its_peers_move_and_the_rest_keep_every_stream() {
    let etcd = Etcd::start();
    let mut cluster = hosts_with(&etcd, &["h1", "h2"], SMALL).await;
    let h1_url = cluster[0].ws_url();
    // Everyone signals to h1; Carol's router spills to h2's node.
    let mut alice = Joining::new(&h1_url)
        .join_call("lender", "Alice", 1000, &mut [])
        .await;
    let mut bob = Joining::new(&h1_url)
        .join_call("lender", "Bob", 2000, &mut [&mut alice])
        .await;
    cluster::wait_listed(&cluster[0], 2).await;
    let mut carol = Joining::new(&h1_url)
        .join_call("lender", "Carol", 3000, &mut [&mut alice, &mut bob])
        .await;
    for port in media_ports(&cluster[0], "lender", "Carol") {
        assert!(cluster::rtc_ports(1).contains(&port), "{port} is not h2's");
    }
    // Alice and Bob keep sending through the loss of h2.
    let stop = Arc::new(AtomicBool::new(false));
    let steady = tokio::spawn({
        let stop = stop.clone();
        async move {
            while !stop.load(Ordering::Relaxed) {
                exchange_media(&mut [&mut alice, &mut bob], Duration::from_millis(20)).await;
            }
            (alice, bob)
        }
    });
    let killed_at = Instant::now();
    drop(cluster.remove(1));
    let moved = notified!(carol.signaling, Notification::RoomMoved { room, .. } => room);
    assert_eq!(moved, "lender");
    let moved_after = killed_at.elapsed();
    // The link's socket ends with the process: no wait for missed pings (5 s).
    assert!(
        moved_after < Duration::from_secs(3),
        "roomMoved {moved_after:?} after the kill"
    );
    exchange_media_for_a_while().await;
    stop.store(true, Ordering::Relaxed);
    let (mut alice, mut bob) = steady.await.expect("steady peers");
    assert_exact_media(&[&alice, &bob], &[&alice, &bob]).await;
    for peer in [&mut alice, &mut bob] {
        assert!(
            crate::support::signaling::told_left(peer.signaling.seen(), carol.peer_id),
            "{} was told Carol left: {:?}",
            peer.name,
            peer.signaling.seen()
        );
    }
    assert!(cluster[0]
        .log_text()
        .contains("the link to a host whose nodes this host's rooms use is down"));
}

/// Two hosts of one worker each ([`SMALL`]), started with `extra`, and `room` on h1 with
/// Alice and Bob on h1's node and Carol on h2's (h1's worker is full).
pub(crate) async fn spanning_room(room: &str, extra: &[&str]) -> (Vec<Sfu>, Etcd, [TestPeer; 3]) {
    let mut args = SMALL.to_vec();
    args.extend_from_slice(extra);
    let etcd = Etcd::start();
    let cluster = hosts_with(&etcd, &["h1", "h2"], &args).await;
    let h1_url = cluster[0].ws_url();
    let mut alice = Joining::new(&h1_url)
        .join_call(room, "Alice", 1000, &mut [])
        .await;
    let mut bob = Joining::new(&h1_url)
        .join_call(room, "Bob", 2000, &mut [&mut alice])
        .await;
    cluster::wait_listed(&cluster[0], 2).await;
    let carol = Joining::new(&h1_url)
        .join_call(room, "Carol", 3000, &mut [&mut alice, &mut bob])
        .await;
    for port in media_ports(&cluster[0], room, "Carol") {
        assert!(cluster::rtc_ports(1).contains(&port), "{port} is not h2's");
    }
    (cluster, etcd, [alice, bob, carol])
}

/// Lets the steady peers send for a moment after the loss.
async fn exchange_media_for_a_while() {
    tokio::time::sleep(Duration::from_millis(600)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_owner_dies_the_host_that_lent_it_a_router_closes_it() {
    let (mut cluster, _etcd, _peers) = spanning_room("orphan", &[]).await;
    let h2 = cluster.remove(1);
    assert!(h2
        .log_text()
        .contains("lent a router to another host's room"));
    drop(cluster.remove(0));
    assert!(
        h2.wait_log(
            "closing the routers another host's rooms had here",
            Duration::from_secs(10)
        )
        .await,
        "h2 kept the dead owner's router:\n{}",
        h2.log_text()
    );
}
