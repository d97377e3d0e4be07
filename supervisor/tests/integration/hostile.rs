//! What a security review tried as an attacker would, against the real supervisor: clients
//! that never read while flooding requests, frames announcing more than the protocol takes,
//! forged log lines in room names, the monitor API probed when it is off or used to get
//! around the connection caps, and an SFU open to the network by default. Each leaves a call
//! beside it unharmed.

use std::time::{Duration, Instant};

use serde_json::json;
use signaling_api::calls::GetRouterRtpCapabilities;

use crate::support::bystanders::Bystanders;
use crate::support::raw_ws::{Ending, RawWs};
use crate::support::signaling::{self, join_with_token, Expect};
use crate::support::Sfu;

/// The supervisor's resident memory, in bytes.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}

/// A client that never reads: sends `frames` requests for an unknown method whose name is
/// `name_bytes` long, `per_second` of them a second, then waits (reading nothing a client
/// library would answer) for the server to close it, at most until `deadline`. When it was
/// closed, and with which code.
async fn never_reading_flooder(
    port: u16,
    frames: u64,
    per_second: u64,
    name_bytes: usize,
    deadline: Instant,
) -> (Option<Duration>, Ending) {
    let started = Instant::now();
    let mut ws = RawWs::connect(port).await;
    let name = "m".repeat(name_bytes);
    let mut pace = tokio::time::interval(Duration::from_micros(1_000_000 / per_second));
    for id in 1..=frames {
        pace.tick().await;
        let frame = format!(r#"{{"id":{id},"method":"{name}"}}"#);
        // A server that stopped reading would hold this send for ever.
        match tokio::time::timeout(Duration::from_secs(10), ws.send_text(&frame)).await {
            Ok(true) => {}
            Ok(false) | Err(_) => break,
        }
    }
    let left = deadline.saturating_duration_since(Instant::now());
    let ending = ws.wait_closed(left).await;
    let closed_after = matches!(ending, Ending::Closed(_)).then(|| started.elapsed());
    (closed_after, ending)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_flood_and_never_read_hold_little_memory_and_are_closed() {
    // Pings every 2 s, a client that answers none for 6 s is dropped: the attackers here
    // read nothing, so they answer no ping whatever they send.
    let sfu = Sfu::start(&[
        "--ws-ping-interval-secs",
        "2",
        "--ws-idle-timeout-secs",
        "6",
    ]);
    let bystanders = Bystanders::start(&sfu.ws_url(), None, None).await;
    let pid = sfu.pid();
    let before = rss_bytes(pid);
    let deadline = Instant::now() + Duration::from_secs(30);
    // 8 sockets, each ~1,100 requests of 60 KB at 400 a second (under the request rate).
    let attackers: Vec<_> = (0..8)
        .map(|_| tokio::spawn(never_reading_flooder(sfu.port, 1100, 400, 60_000, deadline)))
        .collect();
    let mut peak = before;
    while !attackers.iter().all(|a| a.is_finished()) && Instant::now() < deadline {
        peak = peak.max(rss_bytes(pid));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut closed = Vec::new();
    for attacker in attackers {
        closed.push(attacker.await.expect("attacker"));
    }
    let grown = peak.saturating_sub(before);
    println!(
        "supervisor RSS {} MiB before, {} MiB at the peak (+{} MiB); attackers closed after {:?}",
        before >> 20,
        peak >> 20,
        grown >> 20,
        closed.iter().map(|(after, _)| *after).collect::<Vec<_>>()
    );
    assert!(
        grown < 64 << 20,
        "the supervisor grew by {} MiB",
        grown >> 20
    );
    for (i, (after, ending)) in closed.iter().enumerate() {
        assert!(
            after.is_some(),
            "attacker {i} still connected 30 s after it started: {ending:?}"
        );
    }
    assert!(sfu
        .log_text()
        .contains("dropping a client that answers no ping"));
    bystanders.assert_unharmed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pongs_a_client_sends_unasked_do_not_keep_a_non_reading_client_alive() {
    let sfu = Sfu::start(&[
        "--ws-ping-interval-secs",
        "1",
        "--ws-idle-timeout-secs",
        "3",
    ]);
    let mut ws = RawWs::connect(sfu.port).await;
    // A pong every 200 ms (RFC 6455 allows unsolicited ones as a heartbeat), never a read:
    // it cannot echo the server's pings, whose payloads it never saw.
    let started = Instant::now();
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(10) {
        if !ws.send_pong(b"still here").await {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ending = if closed {
        Ending::Closed(None)
    } else {
        ws.wait_closed(Duration::from_secs(1)).await
    };
    assert!(
        matches!(ending, Ending::Closed(_)),
        "still connected after 10 s of pongs without a read"
    );
    assert!(sfu
        .log_text()
        .contains("dropping a client that answers no ping"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_announcing_more_than_64_kib_is_refused_before_its_payload_is_read() {
    let sfu = Sfu::start(&[]);
    let mut ws = RawWs::connect(sfu.port).await;
    // 512 KiB announced, not one byte of it sent: the server must not wait for it.
    ws.send_header_only(512 * 1024).await;
    let ending = ws.wait_closed(Duration::from_secs(10)).await;
    assert_eq!(ending, Ending::Closed(Some(1009)));
    // 64 KiB exactly is the protocol's limit: announced and sent, it is read and answered.
    // Raw: a request padded to the limit (the typed request has no room for padding).
    let mut sig = signaling::connect(&sfu.ws_url(), None).await;
    let pad = "p".repeat(64 * 1024 - 80);
    let padded = json!({"id": 1000, "method": "getRouterRtpCapabilities", "data": {"pad": pad}});
    let padded = padded.to_string();
    assert!(padded.len() <= 64 * 1024, "{} bytes", padded.len());
    sig.send_raw(padded).await.expect("send");
    let answer = sig.next_raw_answer().await;
    assert_eq!(answer.id, Some(1000));
    assert_eq!(answer.code(), Some("not_joined"), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_name_that_would_forge_a_log_line_is_refused_before_anything_logs_it() {
    let sfu = Sfu::start(&["--join-secret", "hostile-test-secret-0123456789abcdef"]);
    let mut sig = signaling::connect(&sfu.ws_url(), None).await;
    let forged = "demo\n2026-01-01T00:00:00Z ERROR forged: every node lost";
    let refused = sig
        .refused(&join_with_token(forged, "M", "not-a-token"))
        .await;
    assert_eq!(refused.code(), "invalid_argument", "{refused}");
    let refused = sig.refused(&GetRouterRtpCapabilities {}).await;
    assert_eq!(refused.code(), "not_joined", "the connection still answers");
    let log = sfu.log_text();
    assert!(!log.contains("forged: every node lost"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_monitor_token_monitor_is_not_found_and_nothing_is_upgraded() {
    let sfu = Sfu::start(&[]);
    let answer = RawWs::try_connect_to(sfu.port, "/monitor", &[])
        .await
        .err()
        .expect("no WebSocket when the API is off");
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
}

/// A monitor connection of `token` to `sfu`, at the frame level; the server's answer when it
/// does not upgrade.
async fn monitor_socket(sfu: &Sfu, token: &str) -> Result<RawWs, String> {
    let bearer = format!("Bearer {token}");
    RawWs::try_connect_to(sfu.port, "/monitor", &[("Authorization", &bearer)]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_sockets_count_against_the_connection_caps_and_silent_ones_are_dropped() {
    let token = crate::monitor::TOKEN;
    let sfu = Sfu::start(&[
        "--monitor-token",
        token,
        "--max-connections",
        "2",
        "--ws-ping-interval-secs",
        "1",
        "--ws-idle-timeout-secs",
        "3",
    ]);
    let mut first = monitor_socket(&sfu, token).await.expect("first monitor");
    let _second = monitor_socket(&sfu, token).await.expect("second monitor");
    let third = monitor_socket(&sfu, token)
        .await
        .err()
        .expect("over the cap");
    assert!(third.starts_with("HTTP/1.1 503"), "{third}");
    let client = RawWs::try_connect_to(sfu.port, "/ws", &[]).await.err();
    let client = client.expect("a client over the cap too");
    assert!(client.starts_with("HTTP/1.1 503"), "{client}");
    // These monitors read nothing, so they answer no ping: dropped after the silence limit,
    // which frees their places.
    let ending = first.wait_closed(Duration::from_secs(10)).await;
    assert!(matches!(ending, Ending::Closed(_)), "{ending:?}");
    assert!(sfu
        .log_text()
        .contains("dropping a monitor that answers no ping"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if monitor_socket(&sfu, token).await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "no place freed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The address the supervisor's port listens on, from the kernel's table of TCP sockets.
fn listening_address(port: u16) -> String {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let suffix = format!(":{port:04X}");
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // st 0A: LISTEN.
        if fields.len() > 3 && fields[1].ends_with(&suffix) && fields[3] == "0A" {
            let hex = fields[1].trim_end_matches(&suffix);
            let bytes = u32::from_str_radix(hex, 16).expect("hex").to_le_bytes();
            return std::net::Ipv4Addr::from(bytes).to_string();
        }
    }
    panic!("nothing listens on port {port}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_plain_http_listens_on_loopback_and_a_public_one_warns_without_tokens() {
    let local = Sfu::start_unbound(&[]);
    assert_eq!(listening_address(local.port), "127.0.0.1");
    assert!(local.log_text().contains("anyone on this machine may join"));
    drop(local);
    let public = Sfu::start_unbound(&["--public-ip", "127.0.0.1", "--rtc-ip", "127.0.0.1"]);
    assert_eq!(listening_address(public.port), "0.0.0.0");
    let log = public.log_text();
    assert!(
        log.contains("join tokens off and listening on 0.0.0.0") && log.contains("WARN"),
        "{log}"
    );
}
