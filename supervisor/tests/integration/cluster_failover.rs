//! Hosts that fail under a room spanning them: the clients of a dead host reconnect to
//! another host of the list their join answer gave (kept current by `hostsChanged`) and
//! resume there; the peers whose router was on it re-join on a surviving host; everyone
//! else keeps every stream.

use std::time::{Duration, Instant};

use signaling_api::{Notification, ResumeArgs};

use crate::cluster::ScriptCluster;
use crate::cluster_spanning::SMALL;
use crate::support::cluster::{self, host, hosts_with, monitor, participants, Etcd};
use crate::support::peer::{assert_exact_media, exchange_media, Joining, TestPeer};
use crate::support::signaling::{self, notified, Expect};

/// Waits until `host`'s view of the cluster lists `count` hosts with a node each.
async fn wait_nodes_listed(host: &crate::support::Sfu, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let hosts = tokio::task::block_in_place(|| monitor(host, &["hosts"]));
        let listed = hosts
            .as_array()
            .map_or(0, |h| h.iter().filter(|h| h["nodes"] == 1).count());
        if listed == count {
            return;
        }
        assert!(Instant::now() < deadline, "{hosts}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_a_host_under_a_spanning_room_dies_its_clients_resume_elsewhere_and_every_stream_comes_back(
) {
    let etcd = Etcd::start();
    let mut cluster = hosts_with(&etcd, &["h1", "h2"], SMALL).await;
    let (h1_url, h2_url) = (cluster[0].ws_url(), cluster[1].ws_url());
    // Alice on h1 (the owner), Bob relayed through h2: they fill h1's one worker; Carol's
    // router opens on h2's node.
    let mut alice = Joining::new(&h1_url)
        .join_call("failover", "Alice", 1000, &mut [])
        .await;
    let mut bob = Joining::new(&h2_url)
        .join_call("failover", "Bob", 2000, &mut [&mut alice])
        .await;
    let mut hosts = bob.joined.hosts.clone();
    hosts.sort();
    let mut expected = vec![h1_url.clone(), h2_url.clone()];
    expected.sort();
    assert_eq!(hosts, expected, "the join answer lists every host");
    wait_nodes_listed(&cluster[0], 2).await;
    let carol = Joining::new(&h1_url)
        .join_call("failover", "Carol", 3000, &mut [&mut alice, &mut bob])
        .await;
    assert!(cluster[1]
        .log_text()
        .contains("lent a router to another host's room"));
    // A third host comes: every client hears the new list.
    let mut extra = vec![
        "--rtc-min-port".to_string(),
        cluster::rtc_ports(2).start().to_string(),
        "--rtc-max-port".to_string(),
        cluster::rtc_ports(2).end().to_string(),
    ];
    extra.extend(SMALL.iter().map(|s| s.to_string()));
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    cluster.push(host(&etcd, "h3", &extra).await);
    let h3_url = cluster[2].ws_url();
    let urls = notified!(bob.signaling, Notification::HostsChanged { urls } => urls);
    assert!(urls.contains(&h3_url), "{urls:?}");
    wait_nodes_listed(&cluster[0], 3).await;
    exchange_media(&mut [&mut alice, &mut bob], Duration::from_millis(200)).await;

    // h2 dies with its node: Bob's signaling and Carol's router were there.
    let killed_at = Instant::now();
    drop(cluster.remove(1));
    let mut carol = carol;
    let moved = notified!(carol.signaling, Notification::RoomMoved { room, .. } => room);
    assert_eq!(moved, "failover");
    // Bob's connection was to h2 itself: it just drops (no close frame from a dead host).
    let closed = bob.signaling.wait_closed(Duration::from_secs(10)).await;
    assert!(
        closed.is_some(),
        "Bob's connection to the dead host does not end"
    );
    // Bob reconnects to another host of his list and resumes: his media, on h1, never stopped.
    let elsewhere = urls
        .iter()
        .find(|u| **u != h2_url)
        .expect("another host")
        .clone();
    let mut again = signaling::connect(&elsewhere, None).await;
    let resumed = again
        .ok(&ResumeArgs {
            resume_token: bob.joined.resume_token.clone(),
        })
        .await;
    assert!(resumed.joined, "{resumed:?}");
    assert_eq!(resumed.peer_id, bob.peer_id);
    assert!(resumed.hosts.contains(&h3_url), "{:?}", resumed.hosts);
    bob.signaling = again;
    let resumed_after = killed_at.elapsed();
    // Carol joins again (through h1, her host): h1 is full, her router opens on h3's node.
    drop(carol);
    let mut carol = Joining::new(&h1_url)
        .join_call("failover", "Carol", 4000, &mut [&mut alice, &mut bob])
        .await;
    let rejoined_after = killed_at.elapsed();
    assert!(cluster[1]
        .log_text()
        .contains("lent a router to another host's room"));
    // Every stream flows again, each consumer its own producer's.
    let deadline = Instant::now() + Duration::from_secs(10);
    let recovered = loop {
        exchange_media(
            &mut [&mut alice, &mut bob, &mut carol],
            Duration::from_millis(20),
        )
        .await;
        let everyone: [&TestPeer; 3] = [&alice, &bob, &carol];
        let heard: Vec<Vec<(signaling_api::ProducerId, usize)>> =
            everyone.iter().map(|p| p.heard(&everyone)).collect();
        if heard
            .iter()
            .all(|h| h.len() == 4 && h.iter().all(|(_, n)| *n > 0))
        {
            break killed_at.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "not every stream came back: {heard:?}"
        );
    };
    println!(
        "h2 killed: Bob resumed through another host after {resumed_after:?}, Carol re-joined \
         on h3 after {rejoined_after:?}, every stream back after {recovered:?}"
    );
    // Alice and Bob, whose media never depended on h2, lost nothing.
    assert_exact_media(&[&alice, &bob], &[&alice, &bob]).await;
}

/// The ids of the processes in network namespace `ns`.
fn namespace_pids(ns: &str) -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "pids", ns])
        .output()
        .expect("ip netns pids");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// What a page may go without another page's video when a host under the call dies: a page
/// whose router was there joins again (a new router on another host, new transports, ICE,
/// DTLS, a key frame), after the dead owner's lease expires when the owner died; on a loaded
/// 2-core machine with debug builds.
const MAX_GAP_MS: &str = "15000";

/// Three Chromium pages in one room on three hosts in namespaces (one small worker each: the
/// room, owned by h1, spans hosts); Alice's and Carol's pages signal to h1, Bob's to h2.
/// Every process of host `killed` (1-based) is SIGKILLed once the call works; every page must
/// get every other page's video back by itself. Returns call.mjs's output.
async fn browser_call_losing_host(killed: usize, lease_secs: &str) -> String {
    crate::browser::check_prerequisites();
    let _one_at_a_time = ScriptCluster::lock().await;
    let mut cluster = tokio::task::block_in_place(|| {
        let mut envs = cluster::SMALL_ENV.to_vec();
        envs.push(("CLUSTER_LEASE_SECS", lease_secs));
        ScriptCluster::start_with(3, &envs)
    });
    let (h1, h2, h3) = (
        "http://10.77.0.1:8000",
        "http://10.77.0.2:8000",
        "http://10.77.0.3:8000",
    );
    let pages = format!("{h1},{h2},{h1}");
    let origins = format!("{h1},{h2},{h3}");
    let pids = namespace_pids(&format!("sfu-h{killed}"));
    assert!(pids.len() >= 2, "the host's supervisor and node: {pids:?}");
    let pids = pids.join(",");
    let out = tokio::task::block_in_place(|| {
        crate::browser::run_browser_call(
            h1,
            &[
                ("SFU_PAGES", "alice,bob,carol"),
                ("SFU_PAGE_URLS", &pages),
                // In page order: the first page's host owns the room.
                ("SFU_JOIN_IN_TURN", "1"),
                ("SFU_SECURE_ORIGINS", &origins),
                ("SFU_KILL_HOST", &pids),
                ("SFU_MAX_GAP_MS", MAX_GAP_MS),
            ],
        )
    });
    assert!(out.contains("recovered: every page decodes"), "{out}");
    // Three pages cannot share one small worker: the room spanned hosts.
    let h1_log = std::fs::read_to_string("/tmp/sfu-cluster/h1.log").unwrap_or_default();
    assert!(
        h1_log
            .lines()
            .any(|l| l.contains("routers linked") && l.contains("srtp=true")),
        "the room never spanned hosts:\n{h1_log}"
    );
    tokio::task::block_in_place(|| cluster.stop());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_browser_pages_get_every_stream_back_when_a_host_under_their_spanning_room_is_killed()
{
    // h2: Bob's signaling host, and the host that lends the room a router.
    let out = browser_call_losing_host(2, "5").await;
    // Bob's page lost its host: it resumed through another one of the list.
    assert!(
        out.lines()
            .filter(|l| l.starts_with("bob: longest gap"))
            .all(|l| l.contains("resumes 0 → 1")),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_browser_pages_get_every_stream_back_when_the_owner_of_their_room_is_killed() {
    // h1 owns the room and holds Alice's and Bob's router: once its lease (3 s) expires,
    // the host that lent Carol's router adopts the room. Carol's media never stopped: she
    // resumes there; Alice and Bob, whose router died with h1, join again.
    let out = browser_call_losing_host(1, "3").await;
    let lines = |page: &str| {
        out.lines()
            .filter(|l| l.starts_with(&format!("{page}: longest gap")))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    for page in ["alice", "bob"] {
        assert!(
            lines(page).iter().all(|l| l.contains("joins 1 → 2")),
            "{page} did not join again: {out}"
        );
    }
    assert!(
        lines("carol")
            .iter()
            .all(|l| l.contains("joins 1 → 1") && l.contains("resumes 0 → 1")),
        "carol's room was not adopted: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_etcd_down_for_20_s_the_call_goes_on_joins_into_it_too_new_rooms_wait_and_it_stays_one(
) {
    let mut etcd = Etcd::start();
    let cluster = crate::support::cluster::hosts(&etcd, &["h1", "h2"]).await;
    let (h1, h2) = (&cluster[0], &cluster[1]);
    let mut alice = Joining::new(&h1.ws_url())
        .join_call("outage", "Alice", 1000, &mut [])
        .await;
    let mut bob = Joining::new(&h2.ws_url())
        .join_call("outage", "Bob", 2000, &mut [&mut alice])
        .await;
    // Alice and Bob keep sending through the outage.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let steady = tokio::spawn({
        let stop = stop.clone();
        async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                exchange_media(&mut [&mut alice, &mut bob], Duration::from_millis(20)).await;
            }
            (alice, bob)
        }
    });
    tokio::task::block_in_place(|| etcd.kill());
    let down_at = Instant::now();
    for host in [h1, h2] {
        assert!(
            host.wait_log("fencing this host", Duration::from_secs(10))
                .await,
            "{}",
            host.log_text()
        );
    }
    // Where a new room would live cannot be decided: refused, clearly.
    let mut newcomer = signaling::connect(&h2.ws_url(), None).await;
    let refused = newcomer.refused(&signaling::join("new-room", "Dave")).await;
    assert_eq!(
        refused.code(),
        signaling_api::ClientErrorCode::ClusterUnavailable.as_str(),
        "{refused}"
    );
    // Every host is fenced and says so over the links: nobody can move a room, so a join
    // into the live room goes on (through h2, relayed to h1).
    let carol = join_retrying(
        &h2.ws_url(),
        "outage",
        "Carol",
        down_at,
        Duration::from_secs(15),
    )
    .await;
    let carol_after = down_at.elapsed();
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(down_at.elapsed())).await;
    tokio::task::block_in_place(|| etcd.restart());
    // Back: h1 puts the room it still serves under its new lease.
    assert!(
        h1.wait_log(
            "this host owns the room again (new lease)",
            Duration::from_secs(20)
        )
        .await,
        "{}",
        h1.log_text()
    );
    // The old lease, which etcd kept through its restart, expires unrenewed (3 s): without
    // the room under the new one, its key would go and h2 would open a second "outage".
    tokio::time::sleep(Duration::from_secs(5)).await;
    // A newcomer through h2 lands in the same room, at h1: one room, not two.
    let dave = join_retrying(
        &h2.ws_url(),
        "outage",
        "Dave",
        down_at,
        Duration::from_secs(60),
    )
    .await;
    println!("etcd down: Carol joined the live room {carol_after:?} into the outage");
    assert_eq!(
        participants(h2, "outage"),
        ["Alice", "Bob", "Carol", "Dave"]
    );
    assert!(!h2.log_text().contains("this host owns the room now"));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (alice, bob) = steady.await.expect("steady peers");
    // Their media never depended on etcd: nothing lost.
    assert_exact_media(&[&alice, &bob], &[&alice, &bob]).await;
    drop((carol, dave));
}

/// `ip link set DEV up|down` in the root namespace.
fn link(dev: &str, state: &str) {
    let status = std::process::Command::new("ip")
        .args(["link", "set", dev, state])
        .status()
        .expect("ip link");
    assert!(status.success(), "ip link set {dev} {state}");
}

/// The first line of `log` containing `needle`, and its timestamp (RFC 3339, sorts as text).
fn logged_at(log: &str, needle: &str) -> Option<String> {
    log.lines()
        .find(|l| l.contains(needle))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_owner_never_acts_as_a_second_owner_and_after_the_heal_the_room_is_one() {
    let _one_at_a_time = ScriptCluster::lock().await;
    let mut cluster = tokio::task::block_in_place(|| {
        ScriptCluster::start_with(2, &[("CLUSTER_LEASE_SECS", "3")])
    });
    let (h1, h2) = ("ws://10.77.0.1:8000/ws", "ws://10.77.0.2:8000/ws");
    let mut alice = signaling::connect(h1, None).await;
    alice.ok(&signaling::join("split", "Alice")).await;
    // h1, the owner, is cut off from everything (etcd, h2, its clients) for longer than its
    // lease: it fences itself, its key expires, and a newcomer through h2 opens the room there.
    link("veth-h1", "down");
    let cut_at = Instant::now();
    // Until h1's lease expires the room is still h1's, which h2 cannot reach.
    let mut carol = join_retrying(h2, "split", "Carol", cut_at, Duration::from_secs(20)).await;
    let opened_after = cut_at.elapsed();
    link("veth-h1", "up");
    // Back, h1 finds the room is h2's: Alice is told to move, and joins again (through h1,
    // relayed to h2).
    let moved = notified!(alice, Notification::RoomMoved { room, .. } => room);
    assert_eq!(moved, "split");
    // Right after the heal the link between the hosts may still be the old one, about to be
    // found dead (no pong for 5 s): a join relayed on it is closed (1012) and tried again, as
    // a client does.
    let again = join_retrying(h1, "split", "Alice", cut_at, Duration::from_secs(30)).await;
    let healed_after = cut_at.elapsed();
    let (_, joined) = crate::support::signaling::next_joined(&mut carol).await;
    assert_eq!(joined, "Alice");
    let h1_log = std::fs::read_to_string("/tmp/sfu-cluster/h1.log").unwrap_or_default();
    let h2_log = std::fs::read_to_string("/tmp/sfu-cluster/h2.log").unwrap_or_default();
    assert!(
        h1_log.contains("another host took the room while this one was cut off"),
        "{h1_log}"
    );
    // Never two owners: h1 stopped admitting (fenced) before h2 took the room.
    let fenced = logged_at(&h1_log, "fencing this host").expect("h1 fenced itself");
    let taken = logged_at(&h2_log, "this host owns the room now").expect("h2 took the room");
    assert!(fenced < taken, "h1 fenced at {fenced}, h2 owned at {taken}");
    println!(
        "partition of the owner: the room opened on h2 {opened_after:?} after the cut; \
         Alice back in the one room {healed_after:?} after it"
    );
    drop((alice, again, carol));
    tokio::task::block_in_place(|| cluster.stop());
}

/// Joins `room` as `name` through `url`, on a new connection each time it is refused or
/// closed (as a client does while the cluster settles), until `since` is `within` old.
async fn join_retrying(
    url: &str,
    room: &str,
    name: &str,
    since: Instant,
    within: Duration,
) -> signaling_api::client::Client {
    loop {
        let mut client = signaling::connect(url, None).await;
        match client.call(&signaling::join(room, name)).await {
            Ok(_) => return client,
            Err(e) => {
                assert!(since.elapsed() < within, "{name} cannot join {room}: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// The loadgen's participants signal through h2 to a room h1 owns; h2 dies mid-run: each
/// takes its session back through h1 (the `hosts` of its join answer), and every stream
/// flows on through the run's last seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_participants_whose_host_dies_resume_through_another_and_every_stream_flows_on() {
    let etcd = Etcd::start();
    let mut cluster = crate::support::cluster::hosts(&etcd, &["h1", "h2"]).await;
    // A watcher opens the room through h1: h1 owns it.
    let mut watcher = signaling::connect(&cluster[0].ws_url(), None).await;
    watcher.ok(&signaling::join("lg-0", "watcher")).await;
    let url = cluster[1].ws_url();
    let run = crate::load::loadgen(&[
        "--url",
        &url,
        "--room-prefix",
        "lg",
        "--publishers",
        "2",
        "--duration",
        "9",
        "--flowing-window",
        "3",
        "--json",
        "--quiet",
    ])
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("loadgen");
    // Both joined (through h2), then h2 goes.
    let deadline = Instant::now() + Duration::from_secs(20);
    while participants(&cluster[0], "lg-0").len() < 3 {
        assert!(Instant::now() < deadline, "the loadgen did not join");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(cluster.remove(1));
    let out = tokio::task::spawn_blocking(move || {
        crate::support::process::wait_output_within(run, Duration::from_secs(60), "loadgen")
    })
    .await
    .expect("loadgen ran");
    let summary = crate::load::summary(&out);
    println!("{summary:#}");
    assert_eq!(summary["resumes"], 2, "{summary:#}");
    assert_eq!(summary["errors"], serde_json::json!({}), "{summary:#}");
    assert_eq!(
        summary["streams_received"], summary["streams_expected"],
        "{summary:#}"
    );
    assert_eq!(summary["streams_expected"], 4, "{summary:#}");
    // Only signaling went through h2: not a packet of the media was lost.
    assert_eq!(summary["packets_lost"], 0, "{summary:#}");
    assert!(out.status.success(), "{summary:#}");
}

/// Resumes `peer` at `url` with the token of its last join or resume, trying again while
/// the host answers `cluster_unavailable` (its room is being adopted); the answer.
async fn resume_when_adopted(peer: &mut TestPeer, url: &str) -> signaling_api::Resumed {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        peer.signaling = signaling::connect(url, None).await;
        let args = ResumeArgs {
            resume_token: peer.joined.resume_token.clone(),
        };
        match peer.signaling.call(&args).await {
            Ok(resumed) => return resumed,
            Err(e) if e.code() == "cluster_unavailable" && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("{} could not resume: {e}", peer.name),
        }
    }
}

/// The room's owner h1 dies under a room spanning h2: h2, which lent it a router and kept
/// its standby, adopts the room once h1's lease expires. Carol and Dave, whose router is on
/// h2 and whose signaling went through h2, keep every packet of each other's media through
/// the death and the adoption, and resume at h2 with the tokens they had; Alice and Bob's
/// router died with h1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_owner_dies_the_host_that_lent_it_a_router_adopts_the_room_and_its_peers_there_keep_every_packet(
) {
    let etcd = Etcd::start();
    // 10 consumers a worker: Alice and Bob fill h1's one worker for a third peer; Carol's
    // router and then Dave's open on h2's two workers.
    let cap = [
        "--nodes",
        "1",
        "--max-nodes",
        "1",
        "--max-consumers-per-worker",
        "10",
    ];
    let mut h1 = Some(
        host(
            &etcd,
            "h1",
            &[&cap[..], &["--workers-per-node", "1"]].concat(),
        )
        .await,
    );
    let h2 = host(
        &etcd,
        "h2",
        &[&cap[..], &["--workers-per-node", "2"]].concat(),
    )
    .await;
    let h1_url = h1.as_ref().map(|h| h.ws_url()).unwrap_or_default();
    let mut alice = Joining::new(&h1_url)
        .join_call("adopted", "Alice", 1000, &mut [])
        .await;
    let mut bob = Joining::new(&h1_url)
        .join_call("adopted", "Bob", 2000, &mut [&mut alice])
        .await;
    cluster::wait_listed(h1.as_ref().expect("h1"), 2).await;
    // h1's worker is full: Carol's router opens on h2's node, and Dave's next to it.
    let mut carol = Joining::new(&h2.ws_url())
        .join_call("adopted", "Carol", 3000, &mut [&mut alice, &mut bob])
        .await;
    let mut dave = Joining::new(&h2.ws_url())
        .join_call(
            "adopted",
            "Dave",
            4000,
            &mut [&mut alice, &mut bob, &mut carol],
        )
        .await;
    exchange_media(&mut [&mut carol, &mut dave], Duration::from_millis(600)).await;
    // A standby of the room reaches h2 (within a second of a change).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(h1.take());
    let killed = Instant::now();
    // Their media goes on meanwhile; their signaling (through h2 to h1) ends.
    for peer in [&mut carol, &mut dave] {
        exchange_media(&mut [peer], Duration::from_millis(100)).await;
        let closed = peer.signaling.wait_closed(Duration::from_secs(10)).await;
        assert_eq!(closed.and_then(|c| c.code), Some(1012), "{}", peer.name);
    }
    let mut resumed = Vec::new();
    for peer in [&mut carol, &mut dave] {
        let answer = resume_when_adopted(peer, &h2.ws_url()).await;
        exchange_media(&mut [peer], Duration::from_millis(100)).await;
        resumed.push(answer);
    }
    println!("resumed at h2 {:?} after the kill", killed.elapsed());
    for answer in &resumed {
        assert!(answer.joined, "{answer:?}");
        assert_eq!(
            answer.transports.len(),
            2,
            "their transports survived: {answer:?}"
        );
        assert_eq!(
            answer.peers.len(),
            1,
            "Alice and Bob died with h1: {answer:?}"
        );
        assert_eq!(
            answer.consumers.len(),
            2,
            "each other's audio and video: {answer:?}"
        );
    }
    exchange_media(&mut [&mut carol, &mut dave], Duration::from_millis(600)).await;
    assert_exact_media(&[&carol, &dave], &[&carol, &dave]).await;
    let detail = tokio::task::block_in_place(|| monitor(&h2, &["room", "adopted"]));
    assert_eq!(
        detail["participants"].as_array().map(Vec::len),
        Some(2),
        "{detail}"
    );
    assert_eq!(cluster::metric(&h2, "sfu_rooms_adopted_total"), Some(1.0));
    assert_eq!(cluster::metric(&h2, "sfu_hosts_lost_total"), Some(1.0));
    assert_eq!(
        cluster::metric(&h2, "sfu_rooms_failed_over_total"),
        Some(0.0)
    );
    let log = h2.log_text();
    let adopted = log
        .lines()
        .find(|l| l.contains("adopted the room of a lost host"))
        .unwrap_or_else(|| panic!("no adoption in h2's log:\n{log}"));
    println!("{adopted}");
}
