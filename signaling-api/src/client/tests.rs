//! The client against a scripted WebSocket server on loopback: typed answers and refusals,
//! calls in flight together, notifications waited for by kind, raw frames and their
//! answers, upgrade headers and refusals, the server's close code, and frames that break the
//! protocol.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::WebSocketStream;

use super::*;
use crate::calls::{GetRouterRtpCapabilities, Leave};
use crate::{JoinArgs, PeerId};

type Server = WebSocketStream<TcpStream>;

/// A listener on loopback whose first connection is upgraded and handed to `script` with
/// the upgrade's headers; the URL to connect to.
// The upgrade callback's error type is tungstenite's (an HTTP response), not ours to shrink.
#[allow(clippy::result_large_err)]
async fn serve<F, Fut>(script: F) -> String
where
    F: FnOnce(Server, Vec<(String, String)>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut headers = Vec::new();
        let socket = tokio_tungstenite::accept_hdr_async(stream, |request: &Request, response| {
            for (name, value) in request.headers() {
                let value = value.to_str().unwrap_or_default().to_string();
                headers.push((name.as_str().to_string(), value));
            }
            Ok::<Response, _>(response)
        })
        .await
        .unwrap();
        script(socket, headers).await;
    });
    format!("ws://127.0.0.1:{port}/ws")
}

/// The next request frame the server gets: (id, method, data).
async fn request(server: &mut Server) -> (Value, String, Value) {
    loop {
        let Message::Text(text) = server.next().await.unwrap().unwrap() else {
            continue;
        };
        let frame: Value = serde_json::from_str(&text).unwrap();
        let method = frame["method"].as_str().unwrap_or_default().to_string();
        return (frame["id"].clone(), method, frame["data"].clone());
    }
}

async fn send(server: &mut Server, frame: Value) {
    server.send(Message::text(frame.to_string())).await.unwrap();
}

fn joined(peer_id: PeerId) -> Value {
    json!({"peerId": peer_id, "room": "r", "routerRtpCapabilities": {"codecs": []},
           "peers": [], "resumeToken": "t"})
}

#[tokio::test]
async fn calls_get_typed_answers_and_refusals_with_their_code() {
    let peer_id = PeerId::from_u128(7);
    let url = serve(move |mut server, _| async move {
        let (id, method, data) = request(&mut server).await;
        assert_eq!((method.as_str(), &data["room"]), ("join", &json!("r")));
        send(
            &mut server,
            json!({"id": id, "ok": true, "data": joined(peer_id)}),
        )
        .await;
        let (id, method, _) = request(&mut server).await;
        assert_eq!(method, "leave");
        let error = json!({"code": "not_joined", "message": "join a room first"});
        send(&mut server, json!({"id": id, "ok": false, "error": error})).await;
        // An answer of the wrong shape for its request.
        let (id, _, _) = request(&mut server).await;
        send(
            &mut server,
            json!({"id": id, "ok": true, "data": {"what": 1}}),
        )
        .await;
        server.next().await;
    })
    .await;
    let mut client = Client::connect(&url, None).await.unwrap();
    let join = JoinArgs {
        room: "r".into(),
        display_name: "n".into(),
        token: None,
        watch_only: false,
        last_n: None,
    };
    let answer = client.call(&join).await.unwrap();
    assert_eq!((answer.peer_id, answer.room.as_str()), (peer_id, "r"));
    let refused = client.call(&Leave {}).await.unwrap_err();
    assert_eq!(refused.code(), "not_joined");
    assert_eq!(refused.message(), Some("join a room first"));
    let malformed = client.call(&GetRouterRtpCapabilities {}).await.unwrap_err();
    assert_eq!(malformed.code(), "malformed", "{malformed}");
    assert_eq!(client.protocol_violation(), None);
}

#[tokio::test]
async fn requests_in_flight_together_are_answered_by_id_in_any_order() {
    let url = serve(|mut server, _| async move {
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(request(&mut server).await.0);
        }
        for id in ids.into_iter().rev() {
            let error = json!({"code": "rate_limited", "message": format!("{id}")});
            send(&mut server, json!({"id": id, "ok": false, "error": error})).await;
        }
        server.next().await;
    })
    .await;
    let mut client = Client::connect(&url, None).await.unwrap();
    let mut pending = Vec::new();
    for _ in 0..3 {
        pending.push(client.send(&GetRouterRtpCapabilities {}).await.unwrap());
    }
    for pending in pending {
        let id = pending.id();
        let refused = pending.answer().await.unwrap_err();
        assert_eq!(refused.code(), "rate_limited");
        assert_eq!(refused.message(), Some(id.to_string().as_str()));
    }
    // Every request was answered or given up: nobody waits any more.
    assert!(client.waiters.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_wait_for_one_kind_of_notification_skips_the_others_keeps_them_and_ends_in_time() {
    let peer_id = PeerId::from_u128(9);
    let url = serve(move |mut server, _| async move {
        let joined = Notification::ForwardedVideos {
            peer_ids: vec![peer_id],
        };
        let left = gone(peer_id);
        for notification in [joined, left] {
            let frame = notification.to_frame();
            server.send(Message::text(frame)).await.unwrap();
        }
        server.next().await;
    })
    .await;
    let mut client = Client::connect(&url, None).await.unwrap();
    let within = Duration::from_secs(5);
    let left = client
        .notification(within, |n| match n {
            Notification::PeersChanged { left, .. } => left.first().copied(),
            _ => None,
        })
        .await;
    assert_eq!(left, Ok(peer_id));
    let short = Duration::from_millis(100);
    let none = client.notification(short, |_| Some(())).await;
    assert_eq!(none, Err(WaitError::TimedOut(short)));
    // The one skipped is kept, in order, with the one picked.
    let joined = Notification::ForwardedVideos {
        peer_ids: vec![peer_id],
    };
    assert_eq!(client.seen(), &[joined, gone(peer_id)][..]);
}

/// `peersChanged` of one peer that left.
fn gone(peer_id: PeerId) -> Notification {
    Notification::PeersChanged {
        joined: Vec::new(),
        left: vec![peer_id],
        watching: None,
    }
}

#[tokio::test]
async fn raw_frames_go_as_they_are_and_their_answers_come_apart() {
    let url = serve(|mut server, _| async move {
        let Some(Ok(Message::Text(text))) = server.next().await else {
            panic!("a text frame");
        };
        assert_eq!(text.as_str(), "not json");
        let error = json!({"code": "bad_request", "message": "not JSON"});
        send(
            &mut server,
            json!({"id": null, "ok": false, "error": error}),
        )
        .await;
        let Some(Ok(Message::Binary(bytes))) = server.next().await else {
            panic!("a binary frame");
        };
        assert_eq!(&bytes[..], &[1, 2]);
        send(&mut server, json!({"id": 41, "ok": true, "data": {}})).await;
        server.next().await;
    })
    .await;
    let mut client = Client::connect(&url, None).await.unwrap();
    client.send_raw("not json").await.unwrap();
    let within = Duration::from_secs(5);
    let answer = client.raw_answer(within).await.unwrap();
    assert_eq!((answer.id, answer.code()), (None, Some("bad_request")));
    client.send_binary(vec![1, 2]).await.unwrap();
    let answer = client.raw_answer(within).await.unwrap();
    assert_eq!((answer.id, answer.code()), (Some(41), None));
    let frame = request_frame(3, &Leave {}).unwrap();
    assert_eq!(frame, r#"{"id":3,"method":"leave","data":{}}"#);
}

#[tokio::test]
async fn upgrade_headers_reach_the_server_and_its_close_code_the_client() {
    let (seen_tx, seen) = oneshot::channel();
    let url = serve(|mut server, headers| async move {
        let _ = seen_tx.send(headers);
        server.send(Message::text("{broken")).await.unwrap();
        let frame = CloseFrame {
            code: CloseCode::Library(4000),
            reason: "replaced".into(),
        };
        server.close(Some(frame)).await.unwrap();
        while server.next().await.is_some() {}
    })
    .await;
    let headers = [("X-Forwarded-For", "203.0.113.1")];
    let client = Client::connect_with_headers(&url, None, &headers)
        .await
        .unwrap();
    let headers = seen.await.unwrap();
    assert!(headers.contains(&("x-forwarded-for".into(), "203.0.113.1".into())));
    let closed = client.wait_closed(Duration::from_secs(5)).await;
    let expected = Closed {
        code: Some(4000),
        reason: "replaced".into(),
    };
    assert_eq!(closed, Some(expected.clone()));
    assert_eq!(client.closed(), Some(expected));
    let violation = client
        .protocol_violation()
        .expect("a frame that is not JSON");
    assert!(violation.contains("not JSON"), "{violation}");
}

#[tokio::test]
async fn a_refused_upgrade_tells_its_http_status() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 2048];
        let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
        let answer = "HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0\r\n\r\n";
        stream.write_all(answer.as_bytes()).await.unwrap();
    });
    let refused = Client::connect(&format!("ws://127.0.0.1:{port}/ws"), None)
        .await
        .err()
        .expect("refused");
    assert_eq!(refused.http_status(), Some(429), "{refused}");
    assert_eq!(refused.code(), "connection");
}

#[tokio::test]
async fn an_aborted_client_ends_at_once_without_a_close_frame() {
    let (done_tx, done) = oneshot::channel();
    let url = serve(|mut server, _| async move {
        // The socket ends without a close frame: an error or the end of the stream.
        let ended = server.next().await;
        let _ = done_tx.send(!matches!(ended, Some(Ok(Message::Close(_)))));
    })
    .await;
    let mut client = Client::connect(&url, None).await.unwrap();
    client.abort();
    let closed = client.wait_closed(Duration::from_secs(5)).await;
    assert_eq!(closed.map(|c| c.code), Some(None));
    assert!(done.await.unwrap(), "no close frame");
    let pending = client.call(&Leave {}).await.unwrap_err();
    assert_eq!(pending.code(), "connection");
}

#[test]
fn frames_are_read_whatever_the_order_of_their_keys() {
    let note = gone(PeerId::nil());
    let read = |text: &str| match read_incoming(text) {
        Incoming::Notification(n) => Ok(Some(n)),
        Incoming::Answer(a) => Err(a.id),
        Incoming::Broken(_) => Ok(None),
    };
    assert_eq!(read(&note.to_frame()), Ok(Some(note.clone())));
    let nil = "00000000-0000-0000-0000-000000000000";
    let data_first =
        format!(r#"{{"data":{{"joined":[],"left":["{nil}"]}},"notification":"peersChanged"}}"#);
    assert_eq!(read(&data_first), Ok(Some(note)));
    assert_eq!(read(r#"{"id":1,"ok":true,"data":{}}"#), Err(Some(1)));
    assert_eq!(read(r#"{"notification":"fly","data":{}}"#), Ok(None));
    assert_eq!(read("nope"), Ok(None));
}
