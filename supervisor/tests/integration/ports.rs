//! Where media goes: with `--rtc-min-port`/`--rtc-max-port` every ICE candidate of every
//! transport has its port inside the range, and media flows through them; with `--pipe-ip`
//! the pipe transports that join a room's routers on different nodes listen on that address
//! (the node processes' UDP sockets say so), and media crosses them.

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
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/udp")).unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, inode) = (fields.get(1)?, fields.get(9)?);
            if !inodes.contains(*inode) {
                return None;
            }
            let (ip, port) = local.split_once(':')?;
            // /proc/net/udp writes the address as the host-order hex of the network bytes.
            let ip = u32::from_str_radix(ip, 16).ok()?;
            let ip = Ipv4Addr::from(ip.to_le_bytes());
            Some(SocketAddrV4::new(ip, u16::from_str_radix(port, 16).ok()?))
        })
        .collect()
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
