//! Abuse limits on `/ws`, against the real supervisor: connections per address, page origins,
//! the request rate of a connection, transports per peer. Each refusal is one the client can
//! read (an HTTP status on the upgrade, an error code, a close code) and harms nobody else.

use std::time::Duration;

use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};

use crate::support::bystanders::Bystanders;
use crate::support::peer::TestPeer;
use crate::support::rtc::PayloadTypes;
use crate::support::{Sfu, Signaling};

/// The HTTP status refusing a `/ws` upgrade to `url` with `origin`, or `None` if accepted.
async fn upgrade_status(url: &str, origin: Option<&str>) -> Option<u16> {
    let headers: Vec<(&str, &str)> = origin.map(|o| ("Origin", o)).into_iter().collect();
    connect(url, &headers).await.err()
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket to `url` upgraded with `headers`, or the HTTP status refusing it.
async fn connect(url: &str, headers: &[(&str, &str)]) -> Result<Socket, u16> {
    let mut request = url.into_client_request().expect("request");
    for (name, value) in headers {
        request.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).expect("name"),
            HeaderValue::from_str(value).expect("header"),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(e) => panic!("connect {url}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_address_are_capped_and_a_closed_one_frees_its_place() {
    // The bystanders' two connections count too.
    let sfu = Sfu::start(&["--max-connections-per-ip", "4"]);
    let url = sfu.ws_url();
    let bystanders = Bystanders::start(&url, None, None).await;
    let first = Signaling::connect(&url, None).await;
    let mut second = Signaling::connect(&url, None).await;
    assert_eq!(
        upgrade_status(&url, None).await,
        Some(429),
        "a fifth from 127.0.0.1"
    );
    // The two still work.
    second
        .ok("join", json!({"room": "capped", "displayName": "Second"}))
        .await;
    first.close();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while upgrade_status(&url, None).await.is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the closed one's place was never freed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bystanders.assert_unharmed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_listed_page_origins_may_connect() {
    let sfu = Sfu::start(&[
        "--allowed-origins",
        "https://meet.example.org,https://other.example",
    ]);
    let url = sfu.ws_url();
    let bystanders = Bystanders::start(&url, None, None).await;
    assert_eq!(
        upgrade_status(&url, Some("https://evil.example")).await,
        Some(403)
    );
    assert_eq!(
        upgrade_status(&url, Some("https://meet.example.org")).await,
        None
    );
    assert_eq!(
        upgrade_status(&url, Some("https://other.example")).await,
        None
    );
    // Not a browser: no cross-site page to fear.
    assert_eq!(upgrade_status(&url, None).await, None);
    bystanders.assert_unharmed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_requests_is_answered_rate_limited_then_closed_with_1008() {
    // 8 a second, bursts of 16: the bystanders' joins (11 requests at most) fit.
    let sfu = Sfu::start(&["--requests-per-second", "8"]);
    let url = sfu.ws_url();
    let bystanders = Bystanders::start(&url, None, None).await;
    let mut calm = Signaling::connect(&url, None).await;
    let mut flood = Signaling::connect(&url, None).await;
    // Sixteen at once fit the burst (twice the rate); the next ones are refused, each answered
    // with its own id.
    for id in 1..=25 {
        flood.send_raw(json!({"id": id, "method": "getRouterRtpCapabilities"}).to_string());
    }
    let mut codes = Vec::new();
    for _ in 1..=25 {
        let answer = flood.next_other().await;
        codes.push((
            answer["id"].as_u64().expect("id"),
            answer["error"]["code"].clone(),
        ));
    }
    let limited: Vec<u64> = codes
        .iter()
        .filter(|(_, code)| code == "rate_limited")
        .map(|(id, _)| *id)
        .collect();
    assert!(!limited.is_empty(), "{codes:?}");
    assert!(
        codes.iter().filter(|(_, c)| c == "not_joined").count() >= 16,
        "{codes:?}"
    );
    // Going on regardless gets the connection closed (policy violation).
    for id in 100..200 {
        flood.send_raw(json!({"id": id, "method": "getRouterRtpCapabilities"}).to_string());
    }
    assert_eq!(flood.wait_closed().await, Some(1008));
    // The calm client is unharmed.
    calm.ok("join", json!({"room": "calm", "displayName": "Calm"}))
        .await;
    bystanders.assert_unharmed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_may_open_only_so_many_transports() {
    let sfu = Sfu::start(&["--max-transports-per-peer", "2"]);
    let bystanders = Bystanders::start(&sfu.ws_url(), None, None).await;
    let mut peer = Signaling::connect(&sfu.ws_url(), None).await;
    peer.ok("join", json!({"room": "t", "displayName": "T"}))
        .await;
    for direction in ["send", "recv"] {
        peer.ok("createWebRtcTransport", json!({"direction": direction}))
            .await;
    }
    let refused = peer
        .request("createWebRtcTransport", json!({"direction": "recv"}))
        .await
        .expect_err("a third transport");
    assert_eq!(refused.0, "too_many_transports", "{refused:?}");
    peer.ok("getRouterRtpCapabilities", json!({})).await;
    bystanders.assert_unharmed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_for_names_the_client_only_behind_a_trusted_proxy() {
    let xff = |address| [("X-Forwarded-For", address)];
    // Behind a proxy on 127.0.0.1: the cap of one connection goes by the forwarded address.
    let sfu = Sfu::start(&[
        "--max-connections-per-ip",
        "1",
        "--trusted-proxies",
        "127.0.0.1",
    ]);
    let url = sfu.ws_url();
    let _first = connect(&url, &xff("203.0.113.1"))
        .await
        .expect("one from .1");
    assert_eq!(connect(&url, &xff("203.0.113.1")).await.err(), Some(429));
    let _other = connect(&url, &xff("203.0.113.2"))
        .await
        .expect("one from .2");
    let log = sfu.log_text();
    assert!(
        log.contains("client=203.0.113.1"),
        "logs name the client:\n{log}"
    );

    // Without --trusted-proxies the header is anyone's to forge: ignored.
    let open = Sfu::start(&["--max-connections-per-ip", "1"]);
    let url = open.ws_url();
    let _first = connect(&url, &xff("203.0.113.1")).await.expect("first");
    assert_eq!(
        connect(&url, &xff("203.0.113.2")).await.err(),
        Some(429),
        "both are 127.0.0.1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_per_address_are_limited_per_minute() {
    let sfu = Sfu::start(&[
        "--joins-per-minute-per-ip",
        "3",
        "--trusted-proxies",
        "127.0.0.1",
    ]);
    let url = sfu.ws_url();
    // Two joins from 127.0.0.1 itself.
    let bystanders = Bystanders::start(&url, None, None).await;
    let from = [("X-Forwarded-For", "198.51.100.7")];
    let mut busy = Signaling::connect_with_headers(&url, None, &from).await;
    for round in 0..3 {
        busy.ok(
            "join",
            json!({"room": "revolving", "displayName": format!("R{round}")}),
        )
        .await;
        busy.ok("leave", json!({})).await;
    }
    let (code, message) = busy
        .request("join", json!({"room": "revolving", "displayName": "R3"}))
        .await
        .expect_err("a fourth join in the minute");
    assert_eq!(code, "rate_limited", "{message}");
    assert!(message.contains("--joins-per-minute-per-ip"), "{message}");
    // A fresh connection from the same address does not help; another address is fine.
    let mut again = Signaling::connect_with_headers(&url, None, &from).await;
    let (code, _) = again
        .request("join", json!({"room": "revolving", "displayName": "R4"}))
        .await
        .expect_err("same address");
    assert_eq!(code, "rate_limited");
    let mut elsewhere =
        Signaling::connect_with_headers(&url, None, &[("X-Forwarded-For", "198.51.100.8")]).await;
    elsewhere
        .ok("join", json!({"room": "revolving", "displayName": "Other"}))
        .await;
    assert!(sfu.log_text().contains("too many joins from this address"));
    bystanders.assert_unharmed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_capped_in_total_with_503() {
    let sfu = Sfu::start(&["--max-connections", "3"]);
    let url = sfu.ws_url();
    let bystanders = Bystanders::start(&url, None, None).await;
    let _third = connect(&url, &[]).await.expect("a third connection");
    assert_eq!(upgrade_status(&url, None).await, Some(503), "a fourth");
    assert!(sfu.log_text().contains("--max-connections"));
    bystanders.assert_unharmed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_may_consume_only_so_many_tracks() {
    // Two each: what the bystanders need.
    let sfu = Sfu::start(&["--max-consumers-per-peer", "2"]);
    let url = sfu.ws_url();
    let bystanders = Bystanders::start(&url, None, None).await;
    let first = TestPeer::join(&url, None, "tracks", "First", 5000).await;
    let second = TestPeer::join(&url, None, "tracks", "Second", 6000).await;
    let mut viewer = Signaling::connect(&url, None).await;
    let joined = viewer
        .ok("join", json!({"room": "tracks", "displayName": "Viewer"}))
        .await;
    let caps = PayloadTypes::from_router(&joined["routerRtpCapabilities"]).device_capabilities();
    let recv = viewer
        .ok("createWebRtcTransport", json!({"direction": "recv"}))
        .await;
    let producers: Vec<String> = joined["peers"]
        .as_array()
        .expect("peers")
        .iter()
        .flat_map(|p| p["producers"].as_array().expect("producers").clone())
        .map(|p| p["producerId"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(producers.len(), 4, "two of each publisher");
    for (i, producer) in producers.iter().enumerate() {
        let answer = viewer
            .request(
                "consume",
                json!({"transportId": recv["transportId"], "producerId": producer, "rtpCapabilities": caps}),
            )
            .await;
        match i {
            0 | 1 => assert!(answer.is_ok(), "consumer {i}: {answer:?}"),
            _ => assert_eq!(
                answer.expect_err("over the cap").0,
                "too_many_consumers",
                "consumer {i}"
            ),
        }
    }
    drop((first, second));
    bystanders.assert_unharmed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_the_monitor_token_is_throttled_per_address() {
    let sfu = Sfu::start(&[
        "--monitor-token",
        "right-token-0123456789abcdef0123456789",
        "--trusted-proxies",
        "127.0.0.1",
    ]);
    let bystanders = Bystanders::start(&sfu.ws_url(), None, None).await;
    let url = sfu.monitor_url();
    let attempt = |token: &'static str, from: &'static str| {
        let url = url.clone();
        async move {
            let bearer = format!("Bearer {token}");
            let headers = [
                ("Authorization", bearer.as_str()),
                ("X-Forwarded-For", from),
            ];
            connect(&url, &headers).await.err()
        }
    };
    for guess in 0..5 {
        assert_eq!(
            attempt("wrong", "192.0.2.66").await,
            Some(401),
            "guess {guess}"
        );
    }
    assert_eq!(
        attempt("right-token-0123456789abcdef0123456789", "192.0.2.66").await,
        Some(429),
        "after five failures not even the right token gets in"
    );
    assert_eq!(
        attempt("right-token-0123456789abcdef0123456789", "192.0.2.1").await,
        None,
        "another address is served"
    );
    let log = sfu.log_text();
    assert!(
        log.contains("monitor connection refused: missing or wrong token"),
        "{log}"
    );
    assert!(
        log.contains("too many failed logins from this address"),
        "{log}"
    );
    bystanders.assert_unharmed().await;
}
