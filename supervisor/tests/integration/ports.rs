//! Where media goes: with `--rtc-min-port`/`--rtc-max-port` every ICE candidate of every
//! transport has its port inside the range, and media flows through them; with `--pipe-ip`
//! the pipe transports that join a room's routers on different nodes listen on that address
//! (the node processes' UDP sockets say so), and media crosses them; with `--rtc-port` each
//! worker listens on one UDP and one TCP port that every transport shares.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use signaling_api::media::{self, IceCandidate};

use crate::support::peer::{assert_exact_media, exchange_media, Joining, TestPeer};
use crate::support::Sfu;

/// The ICE candidates of a transport's `createWebRtcTransport` answer.
fn candidates(peer: &TestPeer) -> Vec<IceCandidate> {
    [&peer.send, &peer.recv]
        .iter()
        .flat_map(|t| {
            let list: Vec<IceCandidate> =
                media::read(&t.server.ice_candidates).expect("iceCandidates");
            list
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ice_candidate_has_its_port_in_the_rtc_port_range() {
    let (min, max) = (41_000u16, 41_049u16);
    let sfu = Sfu::start(&[
        "--rtc-min-port",
        &min.to_string(),
        "--rtc-max-port",
        &max.to_string(),
    ]);
    let url = sfu.ws_url();
    let joining = Joining::new(&url);
    let (mut alice, mut bob) = joining.pair("ports", ["Alice", "Bob"], 1000).await;
    let mut carol = joining
        .join_call("ports", "Carol", 3000, &mut [&mut alice, &mut bob])
        .await;
    let mut ports = BTreeSet::new();
    for peer in [&alice, &bob, &carol] {
        let found = candidates(peer);
        assert!(!found.is_empty(), "{} has candidates", peer.name);
        for candidate in found {
            assert!(
                (min..=max).contains(&candidate.port),
                "{}'s candidate {candidate:?} is outside {min}-{max}",
                peer.name
            );
            ports.insert(candidate.port);
        }
    }
    println!("ICE candidate ports: {ports:?}");
    exchange_media(
        &mut [&mut alice, &mut bob, &mut carol],
        Duration::from_millis(400),
    )
    .await;
    let everyone = [&alice, &bob, &carol];
    assert_exact_media(&everyone, &everyone).await;
}

/// The local addresses of the UDP sockets process `pid` holds (IPv4).
fn udp_sockets(pid: u32) -> Vec<SocketAddrV4> {
    sockets_in(pid, "udp", None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipe_transports_listen_on_the_pipe_ip_and_carry_the_media() {
    let pipe_ip = Ipv4Addr::new(127, 0, 0, 2);
    let sfu = Sfu::start(&[
        "--pipe-ip",
        &pipe_ip.to_string(),
        "--workers-per-node",
        "1",
        "--max-consumers-per-worker",
        "4",
        "--max-nodes",
        "3",
    ]);
    let url = sfu.ws_url();
    let joining = Joining::new(&url);
    // Two peers fill the first node's only worker; a third goes to a node started for it,
    // its router piped to the first.
    let (mut alice, mut bob) = joining.pair("piped", ["Alice", "Bob"], 1000).await;
    let mut carol = joining
        .join_call("piped", "Carol", 3000, &mut [&mut alice, &mut bob])
        .await;
    let nodes = sfu.wait_nodes(2, Duration::from_secs(10)).await;
    exchange_media(
        &mut [&mut alice, &mut bob, &mut carol],
        Duration::from_millis(400),
    )
    .await;
    let everyone = [&alice, &bob, &carol];
    assert_exact_media(&everyone, &everyone).await;
    for pid in nodes {
        let sockets = udp_sockets(pid);
        let piped: Vec<_> = sockets.iter().filter(|a| *a.ip() == pipe_ip).collect();
        println!("node {pid}: UDP sockets {sockets:?}");
        assert!(
            !piped.is_empty(),
            "node {pid} has a pipe transport on {pipe_ip}: {sockets:?}"
        );
    }
}

/// The local addresses of the TCP sockets process `pid` listens on (IPv4).
fn tcp_listening(pid: u32) -> Vec<SocketAddrV4> {
    sockets_in(pid, "tcp", Some("0A"))
}

/// The local IPv4 addresses of process `pid`'s sockets in /proc/`pid`/net/`table`, only
/// those in `state` (hex, e.g. `0A` listening) when given.
fn sockets_in(pid: u32, table: &str, state: Option<&str>) -> Vec<SocketAddrV4> {
    let inodes: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .filter_map(|target| {
                    let target = target.to_string_lossy().into_owned();
                    target
                        .strip_prefix("socket:[")
                        .and_then(|t| t.strip_suffix(']'))
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, st, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
            if !inodes.contains(*inode) || state.is_some_and(|s| s != *st) {
                return None;
            }
            let (ip, port) = local.split_once(':')?;
            // /proc/net/* writes the address as the host-order hex of the network bytes.
            let ip = u32::from_str_radix(ip, 16).ok()?;
            let ip = Ipv4Addr::from(ip.to_le_bytes());
            Some(SocketAddrV4::new(ip, u16::from_str_radix(port, 16).ok()?))
        })
        .collect()
}

/// The media ports node `pid` holds on `ip`: (UDP, TCP listening), sorted.
fn media_ports(pid: u32, ip: Ipv4Addr) -> (Vec<u16>, Vec<u16>) {
    let on_ip = |sockets: Vec<SocketAddrV4>| {
        let mut ports: Vec<u16> = sockets
            .iter()
            .filter(|a| *a.ip() == ip)
            .map(|a| a.port())
            .collect();
        ports.sort_unstable();
        ports
    };
    (on_ip(udp_sockets(pid)), on_ip(tcp_listening(pid)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_rtc_port_every_transport_shares_its_workers_two_ports_and_a_respawned_node_takes_them_back(
) {
    // Below the ephemeral range (32768–60999): nothing else on the machine takes them.
    const BASE: u16 = 31_400;
    // Client media on an address of its own: pipes between routers (another node's, or a
    // worker's of the same node) listen on loopback.
    let media_ip = Ipv4Addr::new(127, 0, 0, 3);
    let sfu = Sfu::start(&[
        "--rtc-ip",
        "127.0.0.3",
        "--rtc-port",
        &BASE.to_string(),
        "--nodes",
        "2",
        "--max-nodes",
        "2",
        "--workers-per-node",
        "2",
        // A room of 6 (60 consumers) spans two workers: every worker gets transports.
        "--max-consumers-per-worker",
        "40",
        "--pipe-ip",
        "127.0.0.2",
    ]);
    let nodes = sfu.wait_nodes(2, Duration::from_secs(20)).await;
    let mut owned = Vec::new();
    for pid in &nodes {
        let (udp, tcp) = media_ports(*pid, media_ip);
        println!("node {pid}: UDP {udp:?}, TCP {tcp:?}");
        assert_eq!(udp, tcp, "node {pid}: one UDP and one TCP port per worker");
        assert_eq!(udp.len(), 2, "node {pid}: two workers, two ports");
        owned.push((*pid, udp));
    }
    let mut all: Vec<u16> = owned.iter().flat_map(|(_, p)| p.clone()).collect();
    all.sort_unstable();
    assert_eq!(all, (BASE..BASE + 4).collect::<Vec<_>>());

    // 18 loadgen peers in 3 rooms, all publishing; while they run, no node holds any other
    // media socket (a port per transport would be 36 more).
    let url = sfu.ws_url();
    let load = std::thread::spawn(move || {
        crate::load::loadgen(&[
            "--url",
            &url,
            "--rooms",
            "3",
            "--publishers",
            "6",
            "--duration",
            "6",
            "--room-prefix",
            "shared-ports",
            "--json",
            "--quiet",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("loadgen runs")
    });
    // And 2 peers of ours, whose candidates we read.
    let ws = sfu.ws_url();
    let joining = Joining::new(&ws);
    let (mut alice, mut bob) = joining
        .pair("shared-ports-ours", ["Alice", "Bob"], 1000)
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (pid, ports) in &owned {
        let (udp, tcp) = media_ports(*pid, media_ip);
        assert_eq!(
            (&udp, &tcp),
            (ports, ports),
            "node {pid} holds media sockets beyond its workers' ports under load"
        );
    }
    for peer in [&alice, &bob] {
        let found = candidates(peer);
        let protocols: BTreeSet<&str> = found.iter().map(|c| c.protocol.as_str()).collect();
        assert_eq!(protocols, BTreeSet::from(["tcp", "udp"]), "{found:?}");
        for c in &found {
            assert!(
                all.contains(&c.port),
                "{}: {c:?} is not a worker port",
                peer.name
            );
        }
    }
    exchange_media(&mut [&mut alice, &mut bob], Duration::from_millis(400)).await;
    assert_exact_media(&[&alice, &bob], &[&alice, &bob]).await;
    let output = tokio::task::block_in_place(|| load.join().expect("loadgen thread"));
    let summary = crate::load::summary(&output);
    println!(
        "loadgen: {} peers, {}/{} streams, loss {} %",
        summary["peers_joined"],
        summary["streams_received"],
        summary["streams_expected"],
        summary["loss_pct"]
    );
    // 3 rooms × 6 subscribers × 5 other publishers × (audio + video).
    assert_eq!(summary["peers_joined"], 18, "{summary:#}");
    assert_eq!(summary["streams_expected"], 180, "{summary:#}");
    assert_eq!(summary["streams_received"], 180, "{summary:#}");
    assert_eq!(summary["errors"], serde_json::json!({}), "{summary:#}");
    drop((alice, bob));

    // The first node dies: its replacement listens on the same two ports.
    let (killed, ports) = owned[0].clone();
    crate::support::signal(killed, "KILL");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let replacement = loop {
        let pids = sfu.node_pids();
        if let Some(new) = pids.iter().find(|p| !nodes.contains(p)) {
            if media_ports(*new, media_ip).0.len() == 2 {
                break *new;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no replacement node listening; log:\n{}",
            sfu.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (udp, tcp) = media_ports(replacement, media_ip);
    println!("node {killed} (UDP/TCP {ports:?}) killed; its replacement {replacement}: UDP {udp:?}, TCP {tcp:?}");
    assert_eq!((&udp, &tcp), (&ports, &ports));
    // And it serves: a new call on the cluster's four ports.
    let (mut carol, mut dave) = joining.pair("after-respawn", ["Carol", "Dave"], 5000).await;
    exchange_media(&mut [&mut carol, &mut dave], Duration::from_millis(400)).await;
    assert_exact_media(&[&carol, &dave], &[&carol, &dave]).await;
    for c in candidates(&carol).iter().chain(candidates(&dave).iter()) {
        assert!(all.contains(&c.port), "{c:?} is not a worker port");
    }
}
