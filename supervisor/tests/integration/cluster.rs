//! Several hosts acting as one SFU (cluster mode, `ETCD_ENDPOINTS`): real supervisors sharing
//! a real etcd. A client may signal to any host: the room's owner serves it, the host it
//! reached relays its signaling, unchanged; its media goes straight to the owner's node. One
//! owner per room however many hosts race for it; `resume` through any host; a link without
//! the cluster secret is refused.

use std::time::Duration;

use cluster_api::handshake::{self, ClusterSecret};
use ids::HostId;
use signaling_api::{ClientErrorCode, ResumeArgs};

use crate::support::cluster::{self, hosts, metric, monitor, participants, Etcd};
use crate::support::peer::{assert_exact_media, exchange_media, Joining};
use crate::support::signaling::{self, drain_notifications, Expect};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_another_host_joins_through_a_relay_and_the_media_flows_exactly() {
    let etcd = Etcd::start();
    let cluster = hosts(&etcd, &["h1", "h2"]).await;
    let (h1, h2) = (&cluster[0], &cluster[1]);
    // Alice reaches h1 first: h1 owns the room. Bob reaches h2: relayed to h1.
    let (h1_url, h2_url) = (h1.ws_url(), h2.ws_url());
    let mut alice = Joining::new(&h1_url)
        .join_call("relay", "Alice", 1000, &mut [])
        .await;
    let mut bob = Joining::new(&h2_url)
        .join_call("relay", "Bob", 2000, &mut [&mut alice])
        .await;
    exchange_media(&mut [&mut alice, &mut bob], Duration::from_millis(600)).await;
    assert_exact_media(&[&alice, &bob], &[&alice, &bob]).await;
    assert_eq!(participants(h1, "relay"), ["Alice", "Bob"]);
    // Bob's media goes straight to h1's node (h1's media ports), not through h2.
    let bob_seen = tokio::task::block_in_place(|| monitor(h1, &["peer", "relay", "Bob"]));
    let transports = bob_seen["transports"].as_array().expect("transports");
    assert_eq!(transports.len(), 2, "{bob_seen}");
    for transport in transports {
        let tuple = transport["selectedTuple"]
            .as_str()
            .expect("a selected tuple");
        let port: u16 = tuple
            .split(" ⇄")
            .next()
            .and_then(|local| local.rsplit(':').next())
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("no server port in {tuple:?}"));
        assert!(cluster::rtc_ports(0).contains(&port), "{tuple} is not h1's");
    }
    // Asked of h2, the monitor answers for the cluster: the room from its owner, the summary
    // of both hosts, and the hosts.
    assert_eq!(participants(h2, "relay"), ["Alice", "Bob"]);
    let summary = tokio::task::block_in_place(|| monitor(h2, &["summary"]));
    assert_eq!(
        (
            &summary["rooms"],
            &summary["participants"],
            &summary["workers"]
        ),
        (
            &serde_json::json!(1),
            &serde_json::json!(2),
            &serde_json::json!(2)
        ),
        "{summary}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let hosts = loop {
        let hosts = tokio::task::block_in_place(|| monitor(h2, &["hosts"]));
        // Records are refreshed every second: wait for h1's to count its room.
        if hosts[0]["roomsOwned"] == 1 || std::time::Instant::now() > deadline {
            break hosts;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let view = |i: usize, key: &str| hosts[i][key].clone();
    assert_eq!(
        (view(0, "host"), view(1, "host")),
        ("h1".into(), "h2".into()),
        "{hosts}"
    );
    assert_eq!(
        (view(0, "thisHost"), view(1, "thisHost")),
        (false.into(), true.into())
    );
    assert_eq!(
        (view(0, "linked"), view(0, "roomsOwned")),
        (true.into(), 1.into()),
        "{hosts}"
    );
    assert_eq!(view(0, "publicUrl"), h1_url.as_str(), "{hosts}");
    // The room lives on h1 only: h2 has no room of its own and relays one session.
    let h2_rooms = tokio::task::block_in_place(|| monitor(h2, &["rooms"]));
    assert_eq!(h2_rooms, serde_json::json!([]), "{h2_rooms}");
    assert_eq!(metric(h2, "sfu_relayed_sessions"), Some(1.0));
    assert_eq!(metric(h1, "sfu_rooms_owned"), Some(1.0));
    assert_eq!(metric(h1, "sfu_cluster_hosts"), Some(2.0));
    // Notifications cross the relay too: Bob leaves, Alice hears of it.
    drain_notifications(&mut alice.signaling);
    bob.signaling.ok(&signaling_api::calls::Leave {}).await;
    let left = signaling::next_left(&mut alice.signaling).await;
    assert_eq!(left, bob.peer_id);
    // On the same connection Bob joins a room h2 owns: h2 serves it, no longer relaying.
    let mut carol = signaling::connect(&h2_url, None).await;
    carol.ok(&signaling::join("on-h2", "Carol")).await;
    bob.signaling.ok(&signaling::join("on-h2", "Bob")).await;
    assert_eq!(participants(h1, "on-h2"), ["Bob", "Carol"]);
    let h2_rooms = tokio::task::block_in_place(|| monitor(h2, &["rooms"]));
    assert_eq!(h2_rooms[0]["room"], "on-h2", "{h2_rooms}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_relayed_through_one_host_resumes_through_a_third() {
    let etcd = Etcd::start();
    let cluster = hosts(&etcd, &["h1", "h2", "h3"]).await;
    let (h1, h2, h3) = (&cluster[0], &cluster[1], &cluster[2]);
    let (h1_url, h2_url) = (h1.ws_url(), h2.ws_url());
    let mut alice = Joining::new(&h1_url)
        .join_call("resume3", "Alice", 1000, &mut [])
        .await;
    let mut bob = Joining::new(&h2_url)
        .join_call("resume3", "Bob", 2000, &mut [&mut alice])
        .await;
    let token = bob.joined.resume_token.clone();
    assert!(
        token.starts_with("h1:"),
        "the owner's token names it: {token}"
    );
    // Bob's connection to h2 drops; he comes back through h3.
    bob.signaling.abort();
    let mut again = signaling::connect(&h3.ws_url(), None).await;
    let resumed = again
        .ok(&ResumeArgs {
            resume_token: token,
        })
        .await;
    assert_eq!(resumed.peer_id, bob.peer_id);
    bob.signaling = again;
    exchange_media(&mut [&mut alice, &mut bob], Duration::from_millis(600)).await;
    assert_exact_media(&[&alice, &bob], &[&alice, &bob]).await;
    assert_eq!(participants(h1, "resume3"), ["Alice", "Bob"]);
    assert_eq!(metric(h3, "sfu_relayed_sessions"), Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_client_whose_relay_host_dies_is_closed_and_resumes_through_another() {
    let etcd = Etcd::start();
    let mut cluster = hosts(&etcd, &["h1", "h2", "h3"]).await;
    let (h1_url, h2_url, h3_url) = (
        cluster[0].ws_url(),
        cluster[1].ws_url(),
        cluster[2].ws_url(),
    );
    let mut alice = Joining::new(&h1_url)
        .join_call("relay-dies", "Alice", 1000, &mut [])
        .await;
    let mut bob = Joining::new(&h2_url)
        .join_call("relay-dies", "Bob", 2000, &mut [&mut alice])
        .await;
    // h2, which relays Bob's signaling, is killed (its nodes die with it).
    let h2 = cluster.remove(1);
    drop(h2);
    let closed = bob.signaling.wait_closed(Duration::from_secs(10)).await;
    assert!(
        closed.is_some(),
        "Bob's connection to the dead host did not end"
    );
    // His media never went through h2: it still flows while he has no signaling.
    exchange_media(&mut [&mut alice, &mut bob], Duration::from_millis(400)).await;
    let mut again = signaling::connect(&h3_url, None).await;
    let resumed = again
        .ok(&ResumeArgs {
            resume_token: bob.joined.resume_token.clone(),
        })
        .await;
    assert_eq!(resumed.peer_id, bob.peer_id);
    bob.signaling = again;
    exchange_media(&mut [&mut alice, &mut bob], Duration::from_millis(400)).await;
    assert_exact_media(&[&alice, &bob], &[&alice, &bob]).await;
    assert_eq!(participants(&cluster[0], "relay-dies"), ["Alice", "Bob"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_owner_dies_its_relayed_clients_are_told_and_another_host_takes_the_room() {
    let etcd = Etcd::start();
    let mut cluster = hosts(&etcd, &["h1", "h2"]).await;
    let h2_url = cluster[1].ws_url();
    let mut alice = signaling::connect(&cluster[0].ws_url(), None).await;
    alice.ok(&signaling::join("orphaned", "Alice")).await;
    let mut bob = signaling::connect(&h2_url, None).await;
    bob.ok(&signaling::join("orphaned", "Bob")).await;
    // h1, the owner, is killed with its nodes.
    drop(cluster.remove(0));
    let closed = bob
        .wait_closed(Duration::from_secs(10))
        .await
        .expect("Bob's relayed connection is closed");
    assert_eq!(closed.code, Some(1012), "{closed:?}");
    assert!(closed.reason.contains("h1"), "{closed:?}");
    // Once h1's lease (3 s) expires, the room's key goes and h2 takes the room.
    let started = std::time::Instant::now();
    let rejoined = loop {
        let mut again = signaling::connect(&h2_url, None).await;
        match again.call(&signaling::join("orphaned", "Bob")).await {
            Ok(_) => break again,
            Err(e) => {
                assert_eq!(
                    e.code(),
                    ClientErrorCode::ClusterUnavailable.as_str(),
                    "{e}"
                );
                assert!(
                    started.elapsed() < Duration::from_secs(15),
                    "still refused: {e}"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    println!(
        "Bob back in the room {:?} after the kill",
        started.elapsed()
    );
    assert_eq!(participants(&cluster[0], "orphaned"), ["Bob"]);
    // Counted as a failover (nothing to adopt: the room was all on h1), and h1 as lost.
    let h2 = &cluster[0];
    assert_eq!(metric(h2, "sfu_rooms_failed_over_total"), Some(1.0));
    assert_eq!(metric(h2, "sfu_hosts_lost_total"), Some(1.0));
    assert_eq!(metric(h2, "sfu_rooms_adopted_total"), Some(0.0));
    drop(rejoined);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_racing_for_a_new_room_over_three_hosts_end_in_one_room() {
    let etcd = Etcd::start();
    let cluster = hosts(&etcd, &["h1", "h2", "h3"]).await;
    let urls: Vec<String> = cluster.iter().map(|h| h.ws_url()).collect();
    for round in 0..3 {
        let room = format!("race-{round}");
        let mut clients = Vec::new();
        for i in 0..50 {
            clients.push(signaling::connect(&urls[i % 3], None).await);
        }
        // Every join is sent before any answer is read.
        let mut pending = Vec::new();
        for (i, client) in clients.iter_mut().enumerate() {
            let join = signaling::join(&room, &format!("p{i}"));
            pending.push(client.send(&join).await.expect("join sent"));
        }
        let answers = futures_util::future::join_all(pending.into_iter().map(|p| p.answer())).await;
        for (i, answer) in answers.into_iter().enumerate() {
            answer.unwrap_or_else(|e| panic!("round {round}: p{i}'s join failed: {e}"));
        }
        // One owner: exactly one host has the room, with all 50 in it.
        let mut holders = Vec::new();
        for (index, host) in cluster.iter().enumerate() {
            let rooms = tokio::task::block_in_place(|| monitor(host, &["rooms"]));
            let rooms = rooms.as_array().expect("a list of rooms");
            for listed in rooms.iter().filter(|r| r["room"] == room.as_str()) {
                holders.push((index, listed["participants"].clone()));
            }
        }
        assert_eq!(holders.len(), 1, "round {round}: {holders:?}");
        assert_eq!(holders[0].1, 50, "round {round}: {holders:?}");
        drop(clients);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_browser_pages_served_by_two_hosts_in_a_room_spanning_both_see_and_hear_each_other() {
    crate::browser::check_prerequisites();
    // Two hosts in network namespaces, one small worker each: the room, owned by h1, spans
    // both hosts.
    let _one_at_a_time = ScriptCluster::lock().await;
    let mut cluster =
        tokio::task::block_in_place(|| ScriptCluster::start_with(2, cluster::SMALL_ENV));
    let (h1, h2) = ("http://10.77.0.1:8000", "http://10.77.0.2:8000");
    // Alice's page comes from h1 (which then owns the room), Bob's from h2 (relayed), Carol's
    // from h1: each signals to the host that served its page, over the namespaces' bridge.
    let pages = format!("{h1},{h2},{h1}");
    let origins = format!("{h1},{h2}");
    tokio::task::block_in_place(|| {
        crate::browser::run_browser_call(
            h1,
            &[
                ("SFU_PAGES", "alice,bob,carol"),
                ("SFU_PAGE_URLS", &pages),
                // In page order: the first page's host owns the room.
                ("SFU_JOIN_IN_TURN", "1"),
                ("SFU_SECURE_ORIGINS", &origins),
            ],
        )
    });
    let h1_log = std::fs::read_to_string("/tmp/sfu-cluster/h1.log").unwrap_or_default();
    let h2_log = std::fs::read_to_string("/tmp/sfu-cluster/h2.log").unwrap_or_default();
    assert!(
        h2_log.contains("lent a router to another host's room"),
        "the room did not span h2:\n{h1_log}"
    );
    assert!(
        h1_log
            .lines()
            .any(|l| l.contains("routers linked") && l.contains("srtp=true")),
        "no SRTP pipe between the hosts:\n{h1_log}"
    );
    tokio::task::block_in_place(|| cluster.stop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_link_without_the_cluster_secret_is_refused_and_logged() {
    let etcd = Etcd::start();
    let h1 = cluster::host(&etcd, "h1", &[]).await;
    let address = h1
        .log_text()
        .lines()
        .find_map(|l| l.split("cluster_addr=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .expect("h1 logs its cluster address");
    let stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let (reader, writer) = stream.into_split();
    let wrong = ClusterSecret::new(&[7u8; 32]).expect("long enough");
    let me = HostId::parse("intruder").expect("valid");
    let refused = handshake::dial(reader, writer, &me, &wrong).await;
    assert!(
        refused.is_err(),
        "a dialer with the wrong secret got a link"
    );
    assert!(
        h1.wait_log("refused a cluster link", Duration::from_secs(10))
            .await,
        "{}",
        h1.log_text()
    );
    assert_eq!(metric(&h1, "sfu_cluster_links_refused_total"), Some(1.0));
    assert_eq!(metric(&h1, "sfu_relayed_sessions"), Some(0.0));
}

/// Runs a supervisor in cluster mode with `args`, expecting it to stop by itself: its exit
/// code and error output.
fn start_fails(args: &[&str]) -> (i32, String) {
    let port = crate::support::free_port().to_string();
    let output = crate::support::process::output_within(
        std::process::Command::new(env!("CARGO_BIN_EXE_supervisor"))
            .args(["--port", &port, "--bind", "127.0.0.1"])
            .args(args)
            .env_remove("CLUSTER_SECRET")
            .env_remove("ETCD_ENDPOINTS"),
        Duration::from_secs(30),
        "a supervisor that should have refused to start",
    );
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code().unwrap_or(-1), stderr)
}

#[test]
fn cluster_mode_refuses_to_start_without_its_secret_or_a_reachable_etcd() {
    let addr = format!("127.0.0.1:{}", crate::support::free_port());
    let base = [
        "--etcd-endpoints",
        "http://127.0.0.1:1",
        "--cluster-addr",
        &addr,
    ];
    let (code, stderr) = start_fails(&base);
    assert_ne!(code, 0);
    assert!(stderr.contains("CLUSTER_SECRET"), "{stderr}");
    let mut unreachable = base.to_vec();
    unreachable.extend(["--cluster-secret", cluster::SECRET]);
    let (code, stderr) = start_fails(&unreachable);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("cannot reach etcd at http://127.0.0.1:1"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_cut_off_from_etcd_fences_itself_refuses_joins_and_comes_back() {
    let mut etcd = Etcd::start();
    let h1 = cluster::host(&etcd, "h1", &[]).await;
    let url = h1.ws_url();
    let mut before = signaling::connect(&url, None).await;
    before.ok(&signaling::join("kept", "Alice")).await;
    etcd.kill();
    // The lease (3 s) cannot be renewed: the host fences itself before it expires.
    assert!(
        h1.wait_log("fencing this host", Duration::from_secs(10))
            .await,
        "{}",
        h1.log_text()
    );
    let mut cut_off = signaling::connect(&url, None).await;
    let refused = cut_off.refused(&signaling::join("new-room", "Bob")).await;
    assert_eq!(
        refused.code(),
        ClientErrorCode::ClusterUnavailable.as_str(),
        "{refused}"
    );
    // etcd is back: the host takes a new lease and serves joins again.
    tokio::task::block_in_place(|| etcd.restart());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while h1.log_text().matches("joined the cluster").count() < 2 {
        assert!(std::time::Instant::now() < deadline, "{}", h1.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut after = signaling::connect(&url, None).await;
    after.ok(&signaling::join("new-room", "Carol")).await;
}

/// `scripts/cluster.sh N` running with this build's binaries; stopped (SIGTERM) when dropped.
pub(crate) struct ScriptCluster(std::process::Child, std::path::PathBuf);

/// One `scripts/cluster.sh` at a time: its namespaces, bridge and files have fixed names.
static SCRIPT_CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl ScriptCluster {
    pub(crate) async fn lock() -> tokio::sync::MutexGuard<'static, ()> {
        SCRIPT_CLUSTER.lock().await
    }

    fn start() -> ScriptCluster {
        Self::start_with(2, &[])
    }

    /// Starts `hosts` hosts with `envs` (the supervisors' settings) in its environment.
    pub(crate) fn start_with(hosts: usize, envs: &[(&str, &str)]) -> ScriptCluster {
        let bin = std::path::Path::new(env!("CARGO_BIN_EXE_supervisor"))
            .parent()
            .expect("the binaries' folder")
            .to_path_buf();
        let out = std::env::temp_dir().join(format!("sfu-test-cluster-sh-{}", std::process::id()));
        // Its messages (stderr) go to the same file: a start that fails says why.
        let file = std::fs::File::create(&out).expect("output file");
        let child = std::process::Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../scripts/cluster.sh"
            ))
            .arg(hosts.to_string())
            .env("SFU_BIN", &bin)
            .envs(envs.iter().copied())
            .stdout(file.try_clone().expect("output file"))
            .stderr(file)
            .spawn()
            .expect("scripts/cluster.sh");
        let cluster = ScriptCluster(child, out);
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        let running = format!("A cluster of {hosts} hosts is running");
        while !cluster.output().contains(&running) {
            assert!(
                std::time::Instant::now() < deadline,
                "scripts/cluster.sh did not start:\n{}",
                cluster.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.1).unwrap_or_default()
    }

    /// Stops the script the way Ctrl-C does and waits for it to clean up.
    pub(crate) fn stop(&mut self) {
        crate::support::signal(self.0.id(), "TERM");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self.0.try_wait().ok().flatten().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "cluster.sh did not stop"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for ScriptCluster {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            self.stop();
        }
        let _ = std::fs::remove_file(&self.1);
    }
}

fn namespaces() -> String {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The addresses of the ICE candidates in a `createTransport` answer.
fn candidate_ips(created: &signaling_api::TransportCreated) -> Vec<String> {
    created
        .ice_candidates
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["address"].as_str().or(c["ip"].as_str()))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_script_runs_hosts_in_namespaces_and_media_goes_to_the_owners_address() {
    let _one_at_a_time = ScriptCluster::lock().await;
    let mut cluster = tokio::task::block_in_place(ScriptCluster::start);
    assert!(
        cluster.output().contains("--unsafely-treat-insecure-origin-as-secure=http://10.77.0.1:8000,http://10.77.0.2:8000"),
        "{}",
        cluster.output()
    );
    // Alice reaches h1 (10.77.0.1), Bob h2 (relayed): both are told h1's address for media.
    let mut alice = signaling::connect("ws://10.77.0.1:8000/ws", None).await;
    alice.ok(&signaling::join("in-namespaces", "Alice")).await;
    let mut bob = signaling::connect("ws://10.77.0.2:8000/ws", None).await;
    bob.ok(&signaling::join("in-namespaces", "Bob")).await;
    for client in [&mut alice, &mut bob] {
        let created = client
            .ok(&signaling::transport(signaling_api::Direction::Send))
            .await;
        let ips = candidate_ips(&created);
        assert!(
            !ips.is_empty() && ips.iter().all(|ip| ip == "10.77.0.1"),
            "{:?}",
            created.ice_candidates
        );
    }
    let token = std::fs::read_to_string("/tmp/sfu-cluster/monitor-token").expect("token file");
    let hosts = tokio::task::block_in_place(|| {
        crate::support::process::output_within(
            std::process::Command::new("ip")
                .args(["netns", "exec", "sfu-h2"])
                .arg(crate::support::monitor_binary())
                .args(["--json", "--url", "ws://127.0.0.1:8000/monitor", "--token"])
                .arg(token.trim())
                .arg("hosts"),
            Duration::from_secs(30),
            "monitor hosts in sfu-h2",
        )
    });
    let hosts: serde_json::Value =
        serde_json::from_slice(&hosts.stdout).expect("monitor hosts prints JSON");
    assert_eq!(hosts[0]["publicUrl"], "ws://10.77.0.1:8000/ws", "{hosts}");
    assert_eq!(hosts[1]["thisHost"], true, "{hosts}");
    drop((alice, bob));
    tokio::task::block_in_place(|| cluster.stop());
    assert!(
        !namespaces().contains("sfu-h"),
        "namespaces left: {}",
        namespaces()
    );
}
