//! Draining a node under a live call, with str0m peers: `monitor drain node-1` on a single
//! host. Each peer is told `mediaMoving`, moves step by step (new receive transport, new
//! send transport, old ones closed) while it sends; every packet each one sent reaches the
//! other through one consumer or another; the drained node exits and the monitor and
//! `/metrics` say what happened. The same with real browsers, timed: `browser`.

use std::process::Stdio;
use std::time::Duration;

use signaling_api::Notification;

use crate::support::cluster::metric;
use crate::support::draining::{drain_output, start_drain, wait_nodes_gone};
use crate::support::moving::assert_continuous;
use crate::support::peer::{exchange_media, Joining};
use crate::support::process::wait_output_within;
use crate::support::signaling::notified;
use crate::support::Sfu;

const TOKEN: &str = "drain-monitor-token-0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_nodes_peers_move_make_before_break_and_not_one_packet_is_lost() {
    let sfu = Sfu::start(&["--max-nodes", "1", "--monitor-token", TOKEN]);
    let first = sfu.node_pids();
    assert_eq!(first.len(), 1, "one node at first: {first:?}");
    let url = sfu.ws_url();
    let (mut alice, mut bob) = Joining::new(&url)
        .pair("drained", ["alice", "bob"], 7100)
        .await;
    let pace = Duration::from_millis(300);
    exchange_media(&mut [&mut alice, &mut bob], pace).await;
    let drain = start_drain(&sfu.monitor_url(), TOKEN, "node-1");
    let for_alice = notified!(alice.signaling, Notification::MediaMoving { peers } => peers);
    let for_bob = notified!(bob.signaling, Notification::MediaMoving { peers } => peers);
    // Each is offered the other's producers on its new router at once.
    assert_eq!(for_alice.len(), 1, "{for_alice:?}");
    assert_eq!(for_alice[0].producers.len(), 2, "{for_alice:?}");
    assert_eq!(for_bob[0].producers.len(), 2, "{for_bob:?}");
    // Media goes on at every step: packets sent between them go out on whatever each peer
    // has then (both send transports while it has two).
    alice.move_receive(&for_alice).await;
    exchange_media(&mut [&mut alice, &mut bob], pace).await;
    bob.move_receive(&for_bob).await;
    exchange_media(&mut [&mut alice, &mut bob], pace).await;
    alice.move_send().await;
    bob.consume_announced(2).await;
    exchange_media(&mut [&mut alice, &mut bob], pace).await;
    bob.move_send().await;
    alice.consume_announced(2).await;
    exchange_media(&mut [&mut alice, &mut bob], pace).await;
    alice.close_old().await;
    bob.close_old().await;
    exchange_media(&mut [&mut alice, &mut bob], pace).await;
    assert_continuous(&[&alice, &bob]).await;
    // The drain ended by itself, nobody left behind.
    let printed = drain_output(drain, Duration::from_secs(30)).await;
    assert!(
        printed.contains("draining node-1: 2 peers to move"),
        "{printed}"
    );
    assert_eq!(printed.matches("peer moved").count(), 2, "{printed}");
    assert!(printed.contains("node drained    node-1 in"), "{printed}");
    assert!(!printed.contains("deadline"), "{printed}");
    // Node 1 exits; its replacement carries the call.
    wait_nodes_gone(&sfu, &first).await;
    assert_eq!(metric(&sfu, "sfu_peers_moved_total"), Some(2.0));
    let page = crate::support::http_get(sfu.port, "/metrics");
    assert!(
        page.contains("sfu_node_drains_total{forced=\"false\"} 1"),
        "{page}"
    );
    assert!(sfu.log_text().contains("node drained"));
}

/// The loadgen's participants move too: a node drained under a loadgen call, each
/// participant makes new transports, consumes and publishes there, closes its old ones, and
/// every stream flows through the run's last seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_participants_on_a_drained_node_move_and_every_stream_flows_on() {
    let sfu = Sfu::start(&["--max-nodes", "1", "--monitor-token", TOKEN]);
    let run = crate::load::loadgen(&[
        "--url",
        &sfu.ws_url(),
        "--publishers",
        "2",
        "--duration",
        "9",
        "--flowing-window",
        "3",
        "--json",
        "--quiet",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("loadgen");
    // Once both publish, the node goes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let drain = start_drain(&sfu.monitor_url(), TOKEN, "node-1");
    let drained = tokio::spawn(drain_output(drain, Duration::from_secs(40)));
    let out = tokio::task::spawn_blocking(move || {
        wait_output_within(run, Duration::from_secs(60), "loadgen")
    })
    .await
    .expect("loadgen ran");
    let printed = drained.await.expect("monitor drain ran");
    assert!(
        printed.contains("draining node-1: 2 peers to move"),
        "{printed}"
    );
    assert!(!printed.contains("deadline"), "{printed}");
    let summary = crate::load::summary(&out);
    println!("{summary:#}");
    assert_eq!(summary["moves"], 2, "{summary:#}");
    assert_eq!(summary["errors"], serde_json::json!({}), "{summary:#}");
    assert_eq!(summary["streams_expected"], 4, "{summary:#}");
    assert_eq!(summary["streams_received"], 4, "{summary:#}");
    assert_eq!(summary["packets_lost"], 0, "{summary:#}");
    assert!(out.status.success(), "{summary:#}");
}
