//! Bad input on `/ws`: every malformed, unknown, out-of-order or oversized request gets an
//! error answer (or, for an oversized frame, close code 1009), the connection stays usable,
//! and the supervisor and its node live on.

use crate::support::{Sfu, Signaling};
use serde_json::json;

async fn assert_error(sig: &mut Signaling, method: &str, data: serde_json::Value, code: &str) {
    let answer = sig.request(method, data.clone()).await;
    match answer {
        Err((got, message)) => {
            assert_eq!(got, code, "{method} {data}: {message}");
            assert!(!message.is_empty(), "an error says what went wrong");
        }
        Ok(ok) => panic!("{method} {data} succeeded: {ok}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_error_answers_and_the_connection_lives_on() {
    let mut sfu = Sfu::start(&[]);
    let mut sig = Signaling::connect(&sfu.ws_url(), None).await;

    sig.send_raw("this is not json");
    let answer = sig.next_other().await;
    assert_eq!(answer["id"], json!(null));
    assert_eq!(answer["ok"], json!(false));
    assert_eq!(answer["error"]["code"], "bad_request");

    sig.send_raw(r#"{"id":"seven","method":"join"}"#);
    assert_eq!(sig.next_other().await["error"]["code"], "bad_request");
    sig.send_raw("[1,2,3]");
    assert_eq!(sig.next_other().await["error"]["code"], "bad_request");
    sig.send_binary(vec![0, 1, 2]);
    assert_eq!(sig.next_other().await["error"]["code"], "bad_request");

    assert_error(&mut sig, "fly", json!({}), "unknown_method").await;
    assert_error(
        &mut sig,
        "join",
        json!({"room": 5, "displayName": "x"}),
        "bad_request",
    )
    .await;
    assert_error(&mut sig, "join", json!({"displayName": "x"}), "bad_request").await;
    assert_error(
        &mut sig,
        "join",
        json!({"room": "a b", "displayName": "x"}),
        "invalid_argument",
    )
    .await;
    assert_error(
        &mut sig,
        "join",
        json!({"room": "ok", "displayName": "\u{7}"}),
        "invalid_argument",
    )
    .await;
    assert_error(
        &mut sig,
        "consume",
        json!({"transportId": "x", "producerId": "y", "rtpCapabilities": {}}),
        "not_joined",
    )
    .await;
    assert_error(
        &mut sig,
        "createWebRtcTransport",
        json!({"direction": "send"}),
        "not_joined",
    )
    .await;
    assert_error(
        &mut sig,
        "resumeConsumer",
        json!({"consumerId": "nope"}),
        "not_joined",
    )
    .await;

    // Still usable: a proper join works, and then joined-state errors are precise.
    let joined = sig
        .ok("join", json!({"room": "bad-input", "displayName": "Eve"}))
        .await;
    assert!(joined["routerRtpCapabilities"]["codecs"].is_array());
    assert_error(
        &mut sig,
        "join",
        json!({"room": "bad-input", "displayName": "Eve"}),
        "already_joined",
    )
    .await;
    assert_error(
        &mut sig,
        "createWebRtcTransport",
        json!({"direction": "sideways"}),
        "bad_request",
    )
    .await;
    assert_error(
        &mut sig,
        "resumeConsumer",
        json!({"consumerId": "nope"}),
        "not_found",
    )
    .await;
    assert_error(
        &mut sig,
        "connectWebRtcTransport",
        json!({"transportId": "00000000-0000-0000-0000-000000000000", "dtlsParameters": {}}),
        "not_found",
    )
    .await;
    let transport = sig
        .ok("createWebRtcTransport", json!({"direction": "recv"}))
        .await;
    let transport_id = transport["transportId"].as_str().expect("id").to_string();
    assert_error(
        &mut sig,
        "produce",
        json!({"transportId": transport_id, "kind": "audio", "rtpParameters": {}}),
        "invalid_argument",
    )
    .await;
    assert_error(
        &mut sig,
        "connectWebRtcTransport",
        json!({"transportId": transport_id, "dtlsParameters": {"fingerprints": "no"}}),
        "invalid_argument",
    )
    .await;

    assert!(sfu.is_running(), "supervisor survived:\n{}", sfu.log_text());
    assert_eq!(
        sfu.node_pids().len(),
        1,
        "node survived:\n{}",
        sfu.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frame_closes_with_1009_and_others_are_unaffected() {
    let mut sfu = Sfu::start(&[]);
    let mut bystander = Signaling::connect(&sfu.ws_url(), None).await;
    bystander
        .ok("join", json!({"room": "big", "displayName": "Bystander"}))
        .await;

    let sig = Signaling::connect(&sfu.ws_url(), None).await;
    let big = format!(
        r#"{{"id":1,"method":"join","data":{{"room":"{}"}}}}"#,
        "x".repeat(70 * 1024)
    );
    sig.send_raw(big);
    assert_eq!(sig.wait_closed().await, Some(1009));

    let huge = Signaling::connect(&sfu.ws_url(), None).await;
    huge.send_raw("y".repeat(3 << 20));
    assert_eq!(huge.wait_closed().await, Some(1009));

    bystander.ok("getRouterRtpCapabilities", json!({})).await;
    assert!(sfu.is_running());
    assert_eq!(sfu.node_pids().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_room_refuses_the_next_peer() {
    let sfu = Sfu::start(&["--max-peers-per-room", "1"]);
    let mut first = Signaling::connect(&sfu.ws_url(), None).await;
    first
        .ok("join", json!({"room": "tiny", "displayName": "One"}))
        .await;
    let mut second = Signaling::connect(&sfu.ws_url(), None).await;
    assert_error(
        &mut second,
        "join",
        json!({"room": "tiny", "displayName": "Two"}),
        "room_full",
    )
    .await;
    // Another room is fine, and the full one opens up when its peer leaves.
    second
        .ok("join", json!({"room": "other", "displayName": "Two"}))
        .await;
    second.ok("leave", json!({})).await;
    first.ok("leave", json!({})).await;
    second
        .ok("join", json!({"room": "tiny", "displayName": "Two"}))
        .await;
}
