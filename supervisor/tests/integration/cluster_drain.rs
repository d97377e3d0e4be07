//! Draining a host of a cluster: `monitor drain HOST` on a host that lends a router to
//! another host's room. The owner moves the peer there to a third host's node, make before
//! break (the peer steps through `mediaMoving` with str0m, sending all along), every packet
//! of every track reaches every other peer through one consumer or another, and the drained
//! host ends with no node and offers none.

use std::process::Command;
use std::time::Duration;

use signaling_api::Notification;

use crate::cluster_spanning::{media_ports, SMALL};
use crate::support::cluster::{self, hosts_with, monitor, Etcd, MONITOR_TOKEN};
use crate::support::draining::{drain_output, start_drain, wait_nodes_gone};
use crate::support::moving::assert_continuous;
use crate::support::peer::{exchange_media, Joining};
use crate::support::signaling::{notified, Expect};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_host_sees_the_peer_it_served_moved_to_another_host_without_losing_a_packet() {
    let etcd = Etcd::start();
    let cluster = hosts_with(&etcd, &["h1", "h2", "h3"], SMALL).await;
    let h1_url = cluster[0].ws_url();
    // Everyone signals to h1, the owner: Alice and Bob fill its worker, Carol's router
    // spills to h2's or h3's node.
    let mut alice = Joining::new(&h1_url)
        .join_call("drained", "Alice", 1000, &mut [])
        .await;
    let mut bob = Joining::new(&h1_url)
        .join_call("drained", "Bob", 2000, &mut [&mut alice])
        .await;
    cluster::wait_listed(&cluster[0], 3).await;
    let mut carol = Joining::new(&h1_url)
        .join_call("drained", "Carol", 3000, &mut [&mut alice, &mut bob])
        .await;
    let ports = media_ports(&cluster[0], "drained", "Carol");
    let lender = (1..3)
        .find(|i| ports.iter().all(|p| cluster::rtc_ports(*i).contains(p)))
        .expect("Carol's media goes to h2's or h3's node");
    let other = 3 - lender;
    let pace = Duration::from_millis(300);
    exchange_media(&mut [&mut alice, &mut bob, &mut carol], pace).await;
    let name = format!("h{}", lender + 1);
    let drain = start_drain(&cluster[lender].monitor_url(), MONITOR_TOKEN, &name);
    let listed = notified!(carol.signaling, Notification::MediaMoving { peers } => peers);
    assert_eq!(listed.len(), 2, "{listed:?}");
    carol.move_receive(&listed).await;
    exchange_media(&mut [&mut alice, &mut bob, &mut carol], pace).await;
    carol.move_send().await;
    alice.consume_announced(2).await;
    bob.consume_announced(2).await;
    exchange_media(&mut [&mut alice, &mut bob, &mut carol], pace).await;
    carol.close_old().await;
    exchange_media(&mut [&mut alice, &mut bob, &mut carol], pace).await;
    assert_continuous(&[&alice, &bob, &carol]).await;
    // Carol's media goes to the third host now.
    for port in media_ports(&cluster[0], "drained", "Carol") {
        assert!(
            cluster::rtc_ports(other).contains(&port),
            "{port} is not h{}'s",
            other + 1
        );
    }
    let printed = drain_output(drain, Duration::from_secs(45)).await;
    assert!(
        printed.contains(&format!("draining {name}: 0 peers to move")),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("host drained    {name} in")),
        "{printed}"
    );
    assert!(!printed.contains("still running"), "{printed}");
    // The drained host's node exits, and the owner's log tells why Carol moved.
    let pids = cluster[lender].node_pids();
    wait_nodes_gone(&cluster[lender], &pids).await;
    assert!(cluster[0]
        .log_text()
        .contains("another host drains its nodes"));
}

/// One node of one big worker per host: a whole room fits on either.
const ROOMY: &[&str] = &[
    "--nodes",
    "1",
    "--max-nodes",
    "1",
    "--workers-per-node",
    "1",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_owner_hands_its_room_to_another_host_live_and_its_peers_resume_there() {
    let etcd = Etcd::start();
    let cluster = hosts_with(&etcd, &["h1", "h2"], ROOMY).await;
    let (h1, h2) = (&cluster[0], &cluster[1]);
    cluster::wait_listed(h1, 2).await;
    let (mut alice, mut bob) = Joining::new(&h1.ws_url())
        .pair("handed", ["Alice", "Bob"], 4100)
        .await;
    let pace = Duration::from_millis(300);
    exchange_media(&mut [&mut alice, &mut bob], pace).await;
    let drain = start_drain(&h1.monitor_url(), MONITOR_TOKEN, "h1");
    // h1's node is drained: both move their media to h2's node, make before break.
    let for_alice = notified!(alice.signaling, Notification::MediaMoving { peers } => peers);
    let for_bob = notified!(bob.signaling, Notification::MediaMoving { peers } => peers);
    alice.move_receive(&for_alice).await;
    bob.move_receive(&for_bob).await;
    exchange_media(&mut [&mut alice, &mut bob], pace).await;
    alice.move_send().await;
    bob.consume_announced(2).await;
    bob.move_send().await;
    alice.consume_announced(2).await;
    exchange_media(&mut [&mut alice, &mut bob], pace).await;
    alice.close_old().await;
    bob.close_old().await;
    exchange_media(&mut [&mut alice, &mut bob], pace).await;
    // Then the room itself goes to h2: h1 closes their signaling (1012), they resume at h2
    // with the tokens they had, and their media never stopped.
    for peer in [&mut alice, &mut bob] {
        let closed = peer.signaling.wait_closed(Duration::from_secs(20)).await;
        assert_eq!(closed.and_then(|c| c.code), Some(1012), "{}", peer.name);
        let token = peer.joined.resume_token.clone();
        peer.signaling = crate::support::signaling::connect(&h2.ws_url(), None).await;
        let resumed = peer
            .signaling
            .ok(&signaling_api::ResumeArgs {
                resume_token: token,
            })
            .await;
        assert!(resumed.joined, "{} resumed into its room at h2", peer.name);
        assert_eq!(resumed.transports.len(), 2, "{resumed:?}");
    }
    exchange_media(&mut [&mut alice, &mut bob], pace).await;
    assert_continuous(&[&alice, &bob]).await;
    // h2 serves it: a request is answered there, and its monitor says who is in it.
    let consumer = bob
        .consumers
        .last()
        .expect("a consumer of the new producers")
        .id;
    bob.signaling
        .ok(&signaling_api::calls::PauseConsumer(
            signaling_api::ConsumerArgs {
                consumer_id: consumer.to_string(),
            },
        ))
        .await;
    let detail = tokio::task::block_in_place(|| monitor(h2, &["room", "handed"]));
    assert_eq!(
        detail["participants"].as_array().map(Vec::len),
        Some(2),
        "{detail}"
    );
    let printed = drain_output(drain, Duration::from_secs(60)).await;
    assert!(
        printed.contains("draining h1: 2 peers to move"),
        "{printed}"
    );
    assert!(
        printed.contains("room handed over handed to h2 (2 peers)"),
        "{printed}"
    );
    assert!(printed.contains("host drained    h1 in"), "{printed}");
    assert!(!printed.contains("not handed over"), "{printed}");
    assert_eq!(cluster::metric(h2, "sfu_rooms_taken_over_total"), Some(1.0));
}

/// The supervisor's pid in network namespace `ns`.
fn supervisor_pid(ns: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .expect("ip netns pids");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "supervisor")
        })
        .unwrap_or_else(|| panic!("no supervisor in {ns}"))
        .to_string()
}

/// Three Chromium pages in one room on h1 of two hosts in namespaces (Alice and Carol signal
/// to h1, Bob to h2). h1 gets SIGTERM: it drains (the pages move their media to h2's node,
/// make before break), hands the room to h2 (the pages signaling to h1 resume through h2)
/// and exits. No page joins again; the longest gap in any page's video of any other,
/// sampled every 250 ms, is printed and held below 500 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_browser_pages_keep_every_stream_when_their_rooms_host_is_stopped_by_sigterm() {
    crate::browser::check_prerequisites();
    let _one_at_a_time = crate::cluster::ScriptCluster::lock().await;
    let envs = [
        ("NODES", "1"),
        ("MAX_NODES", "1"),
        ("WORKERS_PER_NODE", "1"),
        ("RUST_LOG", "info,supervisor=debug"),
    ];
    let mut cluster =
        tokio::task::block_in_place(|| crate::cluster::ScriptCluster::start_with(2, &envs));
    let (h1, h2) = ("http://10.77.0.1:8000", "http://10.77.0.2:8000");
    let pid = supervisor_pid("sfu-h1");
    // Waits until the supervisor is gone (a zombie counts as gone).
    let stop = format!(
        "kill -TERM {pid}; while [ -e /proc/{pid} ] && ! grep -q '^State:.*Z' /proc/{pid}/status; do sleep 0.1; done; echo h1 stopped"
    );
    let out = tokio::task::block_in_place(|| {
        crate::browser::run_browser_call(
            h1,
            &[
                ("SFU_PAGES", "alice,bob,carol"),
                ("SFU_PAGE_URLS", &format!("{h1},{h2},{h1}")),
                // Alice's join first: h1 owns the room.
                ("SFU_JOIN_IN_TURN", "1"),
                ("SFU_SECURE_ORIGINS", &format!("{h1},{h2}")),
                ("SFU_DRAIN_CMD", &stop),
                ("SFU_MAX_GAP_MS", "500"),
                ("SFU_EXPECT_MOVES", "3"),
            ],
        )
    });
    assert!(out.contains("recovered: every page decodes"), "{out}");
    assert!(out.contains("h1 stopped"), "{out}");
    let h1_log = std::fs::read_to_string("/tmp/sfu-cluster/h1.log").unwrap_or_default();
    assert!(h1_log.contains("room handed over"), "{h1_log}");
    let h2_log = std::fs::read_to_string("/tmp/sfu-cluster/h2.log").unwrap_or_default();
    assert!(
        h2_log.contains("took the room over from a drained host"),
        "{h2_log}"
    );
    tokio::task::block_in_place(|| cluster.stop());
}
