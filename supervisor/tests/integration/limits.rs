//! Abuse limits on `/ws`, against the real supervisor: connections per address, page origins,
//! the request rate of a connection, transports per peer. Each refusal is one the client can
//! read (an HTTP status on the upgrade, an error code, a close code) and harms nobody else.

use std::time::Duration;

use signaling_api::calls::{GetRouterRtpCapabilities, Leave};
use signaling_api::client::Client;
use signaling_api::{ConsumeArgs, Direction, ProducerId};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};

use crate::support::bystanders::Bystanders;
use crate::support::peer::TestPeer;
use crate::support::rtc::PayloadTypes;
use crate::support::signaling::{self, join, transport, Expect};
use crate::support::Sfu;

/// The HTTP status refusing a `/ws` upgrade to `url` with `origin`, or `None` if accepted.
async fn upgrade_status(url: &str, origin: Option<&str>) -> Option<u16> {
    let headers: Vec<(&str, &str)> = origin.map(|o| ("Origin", o)).into_iter().collect();
    client(url, &headers).await.err()
}

/// A signaling client of `url` upgraded with `headers`, or the HTTP status refusing it.
async fn client(url: &str, headers: &[(&str, &str)]) -> Result<Client, u16> {
    match Client::connect_with_headers(url, None, headers).await {
        Ok(client) => Ok(client),
        Err(e) => Err(e
            .http_status()
            .unwrap_or_else(|| panic!("connect {url}: {e}"))),
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket to `url` upgraded with `headers`, or the HTTP status refusing it: for
/// `/monitor`, which is not signaling.
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
    let first = signaling::connect(&url, None).await;
    let mut second = signaling::connect(&url, None).await;
    assert_eq!(
        upgrade_status(&url, None).await,
        Some(429),
        "a fifth from 127.0.0.1"
    );
    // The two still work.
    second.ok(&join("capped", "Second")).await;
    first.close().await.expect("close");
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
    let mut calm = signaling::connect(&url, None).await;
    let mut flood = signaling::connect(&url, None).await;
    // Sixteen at once fit the burst (twice the rate); the next ones are refused, each answered
    // with its own id.
    let mut pending = Vec::new();
    let started = std::time::Instant::now();
    for _ in 1..=25 {
        let sent = flood.send(&GetRouterRtpCapabilities {}).await;
        pending.push(sent.expect("send"));
    }
    let mut codes = Vec::new();
    for pending in pending {
        let id = pending.id();
        let answer = pending.answer().await;
        let refused = answer.expect_err("refused: not in a room, or too fast");
        codes.push((id, refused.code().to_string()));
    }
    let limited: Vec<u64> = codes
        .iter()
        .filter(|(_, code)| code == "rate_limited")
        .map(|(id, _)| *id)
        .collect();
    // Exactly the burst passes, and what the rate refilled while the 25 were sent and
    // answered (8 a second); every other request is refused.
    let refilled = (started.elapsed().as_secs_f64() * 8.0).ceil() as usize;
    let passed = codes.iter().filter(|(_, c)| c == "not_joined").count();
    assert!(
        (16..=16 + refilled).contains(&passed),
        "{passed} passed in {:?}: {codes:?}",
        started.elapsed()
    );
    assert_eq!(limited.len(), 25 - passed, "{codes:?}");
    // Going on regardless gets the connection closed (policy violation).
    let mut unanswered = Vec::new();
    for _ in 100..200 {
        match flood.send(&GetRouterRtpCapabilities {}).await {
            Ok(pending) => unanswered.push(pending),
            Err(_) => break,
        }
    }
    assert_eq!(flood.close_code().await, Some(1008));
    // The calm client is unharmed.
    calm.ok(&join("calm", "Calm")).await;
    bystanders.assert_unharmed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_may_open_only_so_many_transports() {
    let sfu = Sfu::start(&["--max-transports-per-peer", "2"]);
    let bystanders = Bystanders::start(&sfu.ws_url(), None, None).await;
    let mut peer = signaling::connect(&sfu.ws_url(), None).await;
    peer.ok(&join("t", "T")).await;
    for direction in [Direction::Send, Direction::Recv] {
        peer.ok(&transport(direction)).await;
    }
    let refused = peer.refused(&transport(Direction::Recv)).await;
    assert_eq!(refused.code(), "too_many_transports", "{refused}");
    peer.ok(&GetRouterRtpCapabilities {}).await;
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
    let _first = client(&url, &xff("203.0.113.1"))
        .await
        .expect("one from .1");
    assert_eq!(client(&url, &xff("203.0.113.1")).await.err(), Some(429));
    let _other = client(&url, &xff("203.0.113.2"))
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
    let _first = client(&url, &xff("203.0.113.1")).await.expect("first");
    assert_eq!(
        client(&url, &xff("203.0.113.2")).await.err(),
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
    let mut busy = signaling::connect_with_headers(&url, None, &from).await;
    for round in 0..3 {
        busy.ok(&join("revolving", &format!("R{round}"))).await;
        busy.ok(&Leave {}).await;
    }
    let refused = busy.refused(&join("revolving", "R3")).await;
    assert_eq!(refused.code(), "rate_limited", "{refused}");
    assert!(
        refused.to_string().contains("--joins-per-minute-per-ip"),
        "{refused}"
    );
    // A fresh connection from the same address does not help; another address is fine.
    let mut again = signaling::connect_with_headers(&url, None, &from).await;
    let refused = again.refused(&join("revolving", "R4")).await;
    assert_eq!(refused.code(), "rate_limited", "same address: {refused}");
    let mut elsewhere =
        signaling::connect_with_headers(&url, None, &[("X-Forwarded-For", "198.51.100.8")]).await;
    elsewhere.ok(&join("revolving", "Other")).await;
    assert!(sfu.log_text().contains("too many joins from this address"));
    bystanders.assert_unharmed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_capped_in_total_with_503() {
    let sfu = Sfu::start(&["--max-connections", "3"]);
    let url = sfu.ws_url();
    let bystanders = Bystanders::start(&url, None, None).await;
    let _third = client(&url, &[]).await.expect("a third connection");
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
    let mut viewer = signaling::connect(&url, None).await;
    let joined = viewer.ok(&join("tracks", "Viewer")).await;
    let caps = PayloadTypes::from_router(&joined.router_rtp_capabilities).device_capabilities();
    let recv = viewer.ok(&transport(Direction::Recv)).await;
    let producers: Vec<ProducerId> = joined
        .peers
        .iter()
        .flat_map(|p| p.producers.iter().map(|p| p.producer_id))
        .collect();
    assert_eq!(producers.len(), 4, "two of each publisher");
    for (i, producer) in producers.iter().enumerate() {
        let consume = ConsumeArgs {
            transport_id: recv.transport_id.to_string(),
            producer_id: producer.to_string(),
            rtp_capabilities: signaling_api::media::object(&caps),
        };
        match i {
            0 | 1 => {
                viewer.ok(&consume).await;
            }
            _ => {
                let refused = viewer.refused(&consume).await;
                assert_eq!(refused.code(), "too_many_consumers", "consumer {i}");
            }
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
    // The refusal says when to come back: a Retry-After header (seconds, within the minute
    // the five failures are counted over), and the same number in its text.
    let response = tokio::task::block_in_place(|| {
        raw_upgrade(
            sfu.port,
            "/monitor",
            &[
                (
                    "Authorization",
                    "Bearer right-token-0123456789abcdef0123456789",
                ),
                ("X-Forwarded-For", "192.0.2.66"),
            ],
        )
    });
    assert!(response.starts_with("HTTP/1.1 429"), "{response}");
    let retry: u64 = response
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("retry-after")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("a numeric Retry-After: {response}"));
    assert!((1..=60).contains(&retry), "Retry-After {retry}: {response}");
    assert!(
        response.contains(&format!("retry in {retry} s")),
        "{response}"
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

/// A WebSocket upgrade of `path` on 127.0.0.1:`port` with `headers`, sent raw: the whole
/// response, status line and headers included (the refusal's body, when it is one).
fn raw_upgrade(port: u16, path: &str, headers: &[(&str, &str)]) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("read timeout");
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("request");
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    // The refusal closes the connection, or at least ends its body: read until then.
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&response);
        if text.contains("\r\n\r\n") && text.contains("retry in") {
            break;
        }
    }
    String::from_utf8_lossy(&response).into_owned()
}
