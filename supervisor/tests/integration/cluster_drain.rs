//! Draining a host of a cluster: `monitor drain HOST` on a host that lends a router to
//! another host's room. The owner moves the peer there to a third host's node, make before
//! break (the peer steps through `mediaMoving` with str0m, sending all along), every packet
//! of every track reaches every other peer through one consumer or another, and the drained
//! host ends with no node and offers none.

use std::process::{Command, Stdio};
use std::time::Duration;

use signaling_api::Notification;

use crate::cluster_spanning::{media_ports, SMALL};
use crate::support::cluster::{self, hosts_with, monitor, Etcd, MONITOR_TOKEN};
use crate::support::monitor_binary;
use crate::support::moving::assert_continuous;
use crate::support::peer::{exchange_media, Joining};
use crate::support::process::wait_output_within;
use crate::support::signaling::notified;

/// Waits until `host`'s view of the cluster lists every host with its node (records are
/// refreshed every second): only then are they offered for a spill.
async fn wait_all_listed(host: &crate::support::Sfu, count: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let hosts = tokio::task::block_in_place(|| monitor(host, &["hosts"]));
        let listed = hosts
            .as_array()
            .map_or(0, |h| h.iter().filter(|h| h["nodes"] == 1).count());
        if listed == count {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{hosts}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

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
    wait_all_listed(&cluster[0], 3).await;
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
    let drain = Command::new(monitor_binary())
        .args([
            "--url",
            &cluster[lender].monitor_url(),
            "--token",
            MONITOR_TOKEN,
        ])
        .args(["drain", &name])
        .env_remove("MONITOR_TOKEN")
        .env_remove("MONITOR_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("monitor drain");
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
    let out = tokio::task::spawn_blocking(move || {
        wait_output_within(drain, Duration::from_secs(45), "monitor drain")
    })
    .await
    .expect("monitor drain ran");
    let printed = String::from_utf8_lossy(&out.stdout);
    println!("{printed}");
    assert!(out.status.success(), "{out:?}");
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
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !cluster[lender].node_pids().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the drained host's node runs on"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cluster[0]
        .log_text()
        .contains("another host drains its nodes"));
}
