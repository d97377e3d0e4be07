//! WHIP at its edges: bad offers, tokens and ETags get clear statuses and leave nobody behind;
//! a publisher that vanishes leaves when its ICE consent expires; one over ICE-TCP leaves
//! without taking its node down.

use std::time::{Duration, Instant};

use supervisor::join_tokens::{sign_with_secret, unix_now, Claims};

use crate::support::peer::TestPeer;
use crate::support::Sfu;
use crate::whip::{finished, header, http, publisher, someone_left, start_for_libnice};
use signaling_api::client::Client;
use signaling_api::JoinArgs;

fn bad(port: u16, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let (status, _, body) = http(port, "POST", path, headers, body);
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_offers_tokens_and_etags_get_clear_statuses_and_leave_nobody_behind() {
    const SECRET: &str = "whip-secret-whip-secret-whip-secret!";
    let plain = Sfu::start(&["--join-secret", SECRET]);
    let room = format!("whipbad-{}", std::process::id());
    let path = format!("/whip/{room}");
    let token = |publish: bool| {
        let claims = Claims {
            room: room.clone(),
            sub: "encoder".into(),
            name: None,
            can_publish: Some(publish),
            can_subscribe: None,
            can_record: None,
            exp: unix_now() + 600,
            nbf: None,
        };
        sign_with_secret(SECRET.as_bytes(), &claims).expect("sign")
    };
    let publisher_token = format!("Bearer {}", token(true));
    let viewer_token = format!("Bearer {}", token(false));
    let sdp = [
        ("Content-Type", "application/sdp"),
        ("Authorization", publisher_token.as_str()),
    ];
    // What is sent, its headers and body, and the status and words of the answer.
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, String, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "not SDP",
            sdp.to_vec(),
            "hello".into(),
            400,
            "not an SDP offer",
        ),
        (
            "the wrong type",
            vec![
                ("Content-Type", "text/plain"),
                ("Authorization", &publisher_token),
            ],
            "v=0\r\n".into(),
            415,
            "application/sdp",
        ),
        (
            "no media",
            sdp.to_vec(),
            OFFER_HEAD.to_string(),
            400,
            "ice-ufrag",
        ),
        (
            "only a codec nobody forwards",
            sdp.to_vec(),
            format!("{OFFER_HEAD}{}", section("video", "96 AV1/90000")),
            406,
            "AV1",
        ),
        (
            "no token",
            vec![("Content-Type", "application/sdp")],
            offer(),
            401,
            "token",
        ),
        (
            "a token that may not publish",
            vec![
                ("Content-Type", "application/sdp"),
                ("Authorization", &viewer_token),
            ],
            offer(),
            403,
            "publish",
        ),
    ];
    for (what, headers, body, status, says) in cases {
        let (got, text) = bad(plain.port, &path, &headers, &body);
        println!("{what}: {got} {}", text.trim());
        assert_eq!(got, status, "{what}: {text}");
        assert!(text.contains(says), "{what}: the body says why: {text}");
    }
    // WHEP: a player that would receive nothing, and a room where nobody publishes.
    let whep = format!("/whep/{room}");
    let viewer_sdp = [
        ("Content-Type", "application/sdp"),
        ("Authorization", viewer_token.as_str()),
    ];
    let (status, text) = bad(plain.port, &whep, &viewer_sdp, &offer());
    println!("WHEP offer that only sends: {status} {}", text.trim());
    assert_eq!(status, 422, "{text}");
    let (status, text) = bad(
        plain.port,
        &whep,
        &viewer_sdp,
        &offer().replace("a=sendonly", "a=recvonly"),
    );
    println!("WHEP in an empty room: {status} {}", text.trim());
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("nobody publishes"), "{text}");
    let (status, text) = bad(
        plain.port,
        &format!("{whep}?peer=someone"),
        &viewer_sdp,
        &offer(),
    );
    assert_eq!(status, 400, "`peer` that is no id: {text}");
    let (status, _, text) = http(
        plain.port,
        "PATCH",
        &format!("{path}/00000000-0000-0000-0000-000000000000"),
        &[
            ("Content-Type", "application/trickle-ice-sdpfrag"),
            ("If-Match", "*"),
        ],
        "a=ice-ufrag:x\r\na=ice-pwd:y\r\n",
    );
    assert_eq!(status, 404, "an unknown session: {text}");
    let (status, headers, _) = http(plain.port, "OPTIONS", &path, &[], "");
    assert_eq!(status, 204);
    assert_eq!(header(&headers, "accept-post"), Some("application/sdp"));
    // Nobody was left in the room by any of them: the next to join finds it empty.
    let mut client = Client::connect(&plain.ws_url(), None)
        .await
        .expect("connect");
    let joined = client
        .call(&JoinArgs {
            room: room.clone(),
            display_name: "Checker".into(),
            token: Some(token(false)),
            watch_only: true,
            last_n: None,
        })
        .await
        .expect("join");
    assert!(
        joined.peers.is_empty(),
        "nobody is left behind: {:?}",
        joined.peers
    );
}

/// A session-level head of an offer with ICE and DTLS but no media.
const OFFER_HEAD: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n";

fn section(media: &str, rtpmap: &str) -> String {
    let pt = rtpmap.split(' ').next().unwrap_or("96");
    format!(
        "m={media} 9 UDP/TLS/RTP/SAVPF {pt}\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB\r\na=setup:actpass\r\na=rtcp-mux\r\na=rtpmap:{rtpmap}\r\na=ssrc:1234 cname:x\r\n"
    )
}

/// An offer of one Opus track.
fn offer() -> String {
    format!("{OFFER_HEAD}{}", section("audio", "111 opus/48000/2"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_publisher_that_vanishes_leaves_when_its_ice_consent_expires() {
    let sfu = start_for_libnice(&["--ice-consent-timeout-secs", "10"], None);
    let room = format!("whip-gone-{}", std::process::id());
    let mut viewer = TestPeer::join(&sfu.ws_url(), None, &room, "Viewer", 7000).await;
    let mut child = publisher(
        &format!("http://127.0.0.1:{}/whip/{room}", sfu.port),
        60,
        None,
    );
    viewer.consume_announced(2).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        viewer.arrivals(1).count() > 10,
        "the publisher's video arrives"
    );
    // Gone without a DELETE, as an encoder whose machine lost power.
    child.kill().await.expect("kill the WHIP client");
    let killed = Instant::now();
    let left = tokio::time::timeout(Duration::from_secs(30), someone_left(&mut viewer))
        .await
        .expect("the vanished publisher leaves within the consent timeout and a little");
    println!(
        "the vanished WHIP publisher left {:.1} s after it went silent",
        killed.elapsed().as_secs_f64()
    );
    assert_eq!(left.len(), 1);
    assert!(
        sfu.wait_log("ICE consent expired", Duration::from_secs(5))
            .await,
        "the log says why it left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_publisher_over_ice_tcp_leaves_without_taking_its_node_down() {
    // Media on loopback: libnice gathers no loopback candidates, so its UDP checks cannot
    // reach the SFU and GStreamer connects over ICE-TCP (its active TCP candidates).
    let sfu = Sfu::start(&[]);
    let nodes = sfu.wait_nodes(1, Duration::from_secs(10)).await;
    let room = format!("whip-tcp-{}", std::process::id());
    let mut viewer = TestPeer::join(&sfu.ws_url(), None, &room, "Viewer", 7000).await;
    let child = publisher(
        &format!("http://127.0.0.1:{}/whip/{room}", sfu.port),
        8,
        None,
    );
    viewer.consume_announced(2).await;
    // ICE-TCP connects later than UDP would, later still on a loaded machine: wait for the
    // packets rather than a fixed time (the publisher sends for 8 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(7);
    let mut counts = (0, 0);
    while std::time::Instant::now() < deadline && !(counts.0 > 30 && counts.1 > 30) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        counts = (viewer.arrivals(0).count(), viewer.arrivals(1).count());
    }
    println!("over ICE-TCP: the room peer received {counts:?} packets");
    assert!(
        counts.0 > 30 && counts.1 > 30,
        "packets of both tracks over TCP: {counts:?}"
    );
    let output = finished(child).await;
    assert!(output.contains("delete 200"), "{output}");
    someone_left(&mut viewer).await;
    // mediasoup 3.15's worker crashed closing a transport with a TCP tuple
    // (mediasoup-build-kit/patches): the node must still be the same one.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        sfu.node_pids(),
        nodes,
        "the node survived:\n{}",
        sfu.log_text()
    );
    assert!(
        !sfu.log_text().contains("media node lost"),
        "{}",
        sfu.log_text()
    );
    viewer.assert_healthy();
}
