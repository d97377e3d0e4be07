//! Clients that vanish or stop reading: a client that answers no WebSocket ping is dropped
//! after the silence limit and leaves its room, while one that reads stays; a client whose
//! queue of notifications overflows is closed with 1013 rather than silently missing one.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use signaling_api::calls::{CloseProducer, GetRouterRtpCapabilities};
use signaling_api::client::request_frame;
use signaling_api::{media, Direction, Kind, ProduceArgs, ProducerArgs};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use crate::support::bystanders::Bystanders;
use crate::support::rtc::PayloadTypes;

use crate::support::peer::opus_parameters;
use crate::support::signaling::{self, join, Expect};
use crate::support::Sfu;

/// A client that joins `room` as `name` and then never reads its socket (so it answers no
/// ping and takes no notification); its receive buffer is as small as the kernel allows.
async fn mute_client(
    sfu: &Sfu,
    room: &str,
    name: &str,
) -> impl StreamExt<Item = tokio_tungstenite::tungstenite::Result<Message>> {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(2048).expect("SO_RCVBUF");
    let stream = socket
        .connect(([127, 0, 0, 1], sfu.port).into())
        .await
        .expect("connect");
    let (mut ws, _) = tokio_tungstenite::client_async(sfu.ws_url(), stream)
        .await
        .expect("WebSocket handshake");
    // Its one request, written as a frame: a client that never reads has no use for the
    // typed client's reader.
    let join = request_frame(1, &join(room, name)).expect("a join frame");
    ws.send(Message::text(join)).await.expect("send join");
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_answers_no_ping_is_dropped_and_leaves_its_room() {
    // Dropped, the silent client's peer is kept a second for a resume, then leaves.
    let sfu = Sfu::start(&[
        "--ws-ping-interval-secs",
        "1",
        "--ws-idle-timeout-secs",
        "3",
        "--resume-grace-secs",
        "1",
    ]);
    // They read and so answer every ping: their call goes on throughout.
    let bystanders = Bystanders::start(&sfu.ws_url(), None, None).await;
    let mut watcher = signaling::connect(&sfu.ws_url(), None).await;
    watcher.ok(&join("keepalive", "Watcher")).await;
    let mute = mute_client(&sfu, "keepalive", "Mute").await;
    let (mute_id, name) = signaling::next_joined(&mut watcher).await;
    assert_eq!(name, "Mute");
    let left = signaling::next_left(&mut watcher).await;
    assert_eq!(left, mute_id, "the silent client left the room");
    // The watcher reads, so it answers every ping: well past the limit it is still in.
    tokio::time::sleep(Duration::from_secs(4)).await;
    watcher.ok(&GetRouterRtpCapabilities {}).await;
    drop(mute);
    bystanders.assert_unharmed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_is_closed_with_1013_instead_of_missing_notifications() {
    // The flooder publishes and unpublishes as fast as it can (each `newProducer` is a frame
    // for every peer; joins and leaves are coalesced per tick, so they would not flood): no
    // request or join rate limit here. Closed, the mute peer is kept a second for a resume,
    // then leaves.
    let sfu = Sfu::start(&[
        "--requests-per-second",
        "1000000",
        "--joins-per-minute-per-ip",
        "0",
        "--resume-grace-secs",
        "1",
    ]);
    let url = sfu.ws_url();
    let bystanders = Bystanders::start(&url, None, None).await;
    let mut observer = signaling::connect(&url, None).await;
    observer.ok(&join("flood", "Observer")).await;
    let mut mute = mute_client(&sfu, "flood", "Mute").await;
    let (mute_id, _) = signaling::next_joined(&mut observer).await;
    // Every producer of the flooder is a notification for the mute client, made large by its
    // app data (fewer producers for the node to make: a loaded CI node must keep up).
    let mut pad = serde_json::Map::new();
    pad.insert("pad".into(), "x".repeat(900).into());
    let flood = tokio::spawn({
        let url = url.clone();
        async move {
            let mut flooder = signaling::connect(&url, None).await;
            let joined = flooder.ok(&join("flood", "Flooder")).await;
            let pt = PayloadTypes::from_router(&joined.router_rtp_capabilities).opus;
            let send = flooder.ok(&signaling::transport(Direction::Send)).await;
            for ssrc in 1..20_000 {
                let produce = ProduceArgs {
                    transport_id: send.transport_id.to_string(),
                    kind: Kind::Audio,
                    rtp_parameters: media::object(&opus_parameters(
                        &ssrc.to_string(),
                        pt,
                        ssrc,
                        "flood",
                    )),
                    app_data: Some(pad.clone()),
                };
                let produced = flooder.ok(&produce).await;
                let close = CloseProducer(ProducerArgs {
                    producer_id: produced.producer_id.to_string(),
                });
                flooder.ok(&close).await;
            }
        }
    });
    // The server decides the close (its log says so at once; the observer hears of it only
    // after the tens of thousands of flood notifications queued before it): from then on the
    // mute client has the session's close grace (3 s) to take what was queued, so it starts
    // reading right away.
    assert!(
        sfu.wait_log(
            "closing a client that does not read what it is sent",
            Duration::from_secs(90)
        )
        .await,
        "the mute client was never closed"
    );
    flood.abort();
    // What was queued before the close arrives, then the close frame: 1013.
    let reading = std::time::Instant::now();
    let (mut code, mut frames, mut bytes) = (None, 0usize, 0usize);
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(10), mute.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => {
                code = frame.map(|f| f.code);
                break "a close frame".to_string();
            }
            Ok(Some(Ok(message))) => {
                frames += 1;
                bytes += message.len();
            }
            Ok(Some(Err(e))) => break format!("a socket error ({e})"),
            Ok(None) => break "the end of the stream".to_string(),
            Err(_) => break "10 s of silence".to_string(),
        }
    };
    assert_eq!(
        code,
        Some(CloseCode::Again),
        "closed with 1013 (try again later); the read ended with {ended} after {frames} frames \
         ({bytes} bytes) in {:?}",
        reading.elapsed()
    );
    // The room hears that it left (after its resume grace).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the room never heard the mute client leave"
        );
        let left = signaling::next_left(&mut observer).await;
        if left == mute_id {
            break;
        }
    }
    // Everyone else is unharmed.
    observer.ok(&GetRouterRtpCapabilities {}).await;
    bystanders.assert_unharmed().await;
}
