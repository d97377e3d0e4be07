//! Bad input on `/ws`: every malformed, unknown, out-of-order or oversized request gets an
//! error answer (or, for an oversized frame, close code 1009), the connection stays usable,
//! and the supervisor and its node live on. Well-formed requests go through the typed client;
//! the malformed ones, the point of these tests, as raw frames.

use serde_json::{json, Map, Value};
use signaling_api::calls::{GetRouterRtpCapabilities, Leave, ResumeConsumer};
use signaling_api::client::{CallError, Client};
use signaling_api::{
    ConnectTransportArgs, ConsumeArgs, ConsumerArgs, Direction, Kind, ProduceArgs,
};

use crate::support::signaling::{self, join, transport, Expect};
use crate::support::Sfu;

/// Checks that a refusal has `code` and says what went wrong.
fn assert_refusal(refused: &CallError, code: &str, what: &str) {
    assert_eq!(refused.code(), code, "{what}: {refused}");
    let message = refused.message().unwrap_or_default();
    assert!(!message.is_empty(), "an error says what went wrong");
}

/// Sends `frame`, malformed on purpose, and checks its answer (to `id`) refuses it with
/// `code`.
async fn assert_raw_error(sig: &mut Client, id: Option<u64>, frame: &str, code: &str) {
    sig.send_raw(frame).await.expect("send");
    let answer = sig.next_raw_answer().await;
    assert_eq!(answer.id, id, "{frame}");
    match answer.outcome {
        Err(refused) => assert_refusal(&refused, code, frame),
        Ok(ok) => panic!("{frame} succeeded: {ok}"),
    }
}

/// A request frame of `method` with `data`, malformed on purpose; ids from 1000 on, apart
/// from the client's own.
fn frame(id: u64, method: &str, data: Value) -> String {
    json!({"id": id, "method": method, "data": data}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_error_answers_and_the_connection_lives_on() {
    let mut sfu = Sfu::start(&[]);
    let mut sig = signaling::connect(&sfu.ws_url(), None).await;

    assert_raw_error(&mut sig, None, "this is not json", "bad_request").await;
    assert_raw_error(
        &mut sig,
        None,
        r#"{"id":"seven","method":"join"}"#,
        "bad_request",
    )
    .await;
    assert_raw_error(&mut sig, None, "[1,2,3]", "bad_request").await;
    sig.send_binary(vec![0, 1, 2]).await.expect("send");
    let answer = sig.next_raw_answer().await;
    assert_eq!((answer.id, answer.code()), (None, Some("bad_request")));

    let fly = frame(1000, "fly", json!({}));
    assert_raw_error(&mut sig, Some(1000), &fly, "unknown_method").await;
    let room_a_number = frame(1001, "join", json!({"room": 5, "displayName": "x"}));
    assert_raw_error(&mut sig, Some(1001), &room_a_number, "bad_request").await;
    let no_room = frame(1002, "join", json!({"displayName": "x"}));
    assert_raw_error(&mut sig, Some(1002), &no_room, "bad_request").await;
    let refused = sig.refused(&join("a b", "x")).await;
    assert_refusal(&refused, "invalid_argument", "a room name with a space");
    let refused = sig.refused(&join("ok", "\u{7}")).await;
    assert_refusal(
        &refused,
        "invalid_argument",
        "a display name of a control character",
    );
    let consume = ConsumeArgs {
        transport_id: "x".into(),
        producer_id: "y".into(),
        rtp_capabilities: Map::new(),
    };
    assert_refusal(&sig.refused(&consume).await, "not_joined", "consume");
    let refused = sig.refused(&transport(Direction::Send)).await;
    assert_refusal(&refused, "not_joined", "createWebRtcTransport");
    let nope = ResumeConsumer(ConsumerArgs {
        consumer_id: "nope".into(),
    });
    assert_refusal(&sig.refused(&nope).await, "not_joined", "resumeConsumer");

    // Still usable: a proper join works, and then joined-state errors are precise.
    let joined = sig.ok(&join("bad-input", "Eve")).await;
    assert!(joined.router_rtp_capabilities["codecs"].is_array());
    let refused = sig.refused(&join("bad-input", "Eve")).await;
    assert_refusal(&refused, "already_joined", "a second join");
    let sideways = frame(
        1003,
        "createWebRtcTransport",
        json!({"direction": "sideways"}),
    );
    assert_raw_error(&mut sig, Some(1003), &sideways, "bad_request").await;
    assert_refusal(&sig.refused(&nope).await, "not_found", "resumeConsumer");
    let connect = ConnectTransportArgs {
        transport_id: "00000000-0000-0000-0000-000000000000".into(),
        dtls_parameters: Map::new(),
    };
    assert_refusal(
        &sig.refused(&connect).await,
        "not_found",
        "connectWebRtcTransport",
    );
    let transport = sig.ok(&transport(Direction::Recv)).await;
    let transport_id = transport.transport_id.to_string();
    let produce = ProduceArgs {
        transport_id: transport_id.clone(),
        kind: Kind::Audio,
        rtp_parameters: Map::new(),
        app_data: None,
    };
    assert_refusal(&sig.refused(&produce).await, "invalid_argument", "produce");
    // Well-formed as a request; DTLS parameters mediasoup cannot take, on purpose.
    let dtls_parameters = serde_json::from_value(json!({"fingerprints": "no"})).expect("an object");
    let connect = ConnectTransportArgs {
        transport_id,
        dtls_parameters,
    };
    assert_refusal(
        &sig.refused(&connect).await,
        "invalid_argument",
        "connectWebRtcTransport",
    );

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
    let mut bystander = signaling::connect(&sfu.ws_url(), None).await;
    bystander.ok(&join("big", "Bystander")).await;

    let sig = signaling::connect(&sfu.ws_url(), None).await;
    let big = format!(
        r#"{{"id":1,"method":"join","data":{{"room":"{}"}}}}"#,
        "x".repeat(70 * 1024)
    );
    sig.send_raw(big).await.expect("send");
    assert_eq!(sig.close_code().await, Some(1009));

    let huge = signaling::connect(&sfu.ws_url(), None).await;
    huge.send_raw("y".repeat(3 << 20)).await.expect("send");
    assert_eq!(huge.close_code().await, Some(1009));

    bystander.ok(&GetRouterRtpCapabilities {}).await;
    assert!(sfu.is_running());
    assert_eq!(sfu.node_pids().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_room_refuses_the_next_peer() {
    let sfu = Sfu::start(&["--max-peers-per-room", "1"]);
    let mut first = signaling::connect(&sfu.ws_url(), None).await;
    first.ok(&join("tiny", "One")).await;
    let mut second = signaling::connect(&sfu.ws_url(), None).await;
    let refused = second.refused(&join("tiny", "Two")).await;
    assert_refusal(&refused, "room_full", "a second peer in a room of one");
    // Another room is fine, and the full one opens up when its peer leaves.
    second.ok(&join("other", "Two")).await;
    second.ok(&Leave {}).await;
    first.ok(&Leave {}).await;
    second.ok(&join("tiny", "Two")).await;
}
