//! Abuse limits on `/ws`, against the real supervisor: connections per address, page origins,
//! the request rate of a connection, transports per peer. Each refusal is one the client can
//! read (an HTTP status on the upgrade, an error code, a close code) and harms nobody else.

use std::time::Duration;

use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::support::bystanders::Bystanders;
use crate::support::{Sfu, Signaling};

/// The HTTP status refusing a `/ws` upgrade to `url` with `origin`, or `None` if accepted.
async fn upgrade_status(url: &str, origin: Option<&str>) -> Option<u16> {
    let mut request = url.into_client_request().expect("request");
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("Origin", HeaderValue::from_str(origin).expect("header"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => None,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Some(response.status().as_u16())
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
