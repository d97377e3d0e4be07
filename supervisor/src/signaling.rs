//! One client's WebSocket session on `/ws`: reads requests, answers each one, and pushes
//! the notifications [`Rooms`] queues for the peer. Leaving (or dropping the socket)
//! closes what the peer had.

use std::sync::Arc;

use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::metrics::Metrics;
use crate::protocol::{
    error_answer, ok_answer, read_frame, Answer, ClientError, ClientErrorCode, Method, PeerId,
    Request, MAX_MESSAGE_BYTES,
};
use crate::rooms::Rooms;

/// Frames a session may have queued for its client before notifications are dropped.
const OUTBOX_CAPACITY: usize = 1024;
/// Frames written before one flush.
const WRITE_BATCH: usize = 64;

/// Serves one client until its socket closes.
pub async fn serve(socket: WebSocket, rooms: Arc<Rooms>, metrics: Metrics) {
    let peer: PeerId = Uuid::new_v4();
    let (mut sink, mut stream) = socket.split();
    let (outbox, mut queued) = mpsc::channel::<String>(OUTBOX_CAPACITY);
    let (close_tx, mut close_rx) = mpsc::channel::<CloseFrame>(1);
    let writer = tokio::spawn(async move {
        loop {
            tokio::select! {
                // A close decided by the reader wins over the end of the queue it implies.
                biased;
                Some(frame) = close_rx.recv() => {
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    break;
                }
                frame = queued.recv() => match frame {
                    Some(text) => {
                        // Write what else is queued too, then flush once: one syscall for a
                        // burst of notifications instead of one per frame.
                        if sink.feed(Message::Text(text.into())).await.is_err() {
                            break;
                        }
                        let mut batch = 1;
                        while batch < WRITE_BATCH {
                            let Ok(text) = queued.try_recv() else { break };
                            if sink.feed(Message::Text(text.into())).await.is_err() {
                                return;
                            }
                            batch += 1;
                        }
                        if sink.flush().await.is_err() {
                            break;
                        }
                    }
                    None => break,
                },
            }
        }
    });
    rooms.connected(peer, outbox.clone());
    tracing::debug!(%peer, "client connected");
    let mut close_tx = Some(close_tx);
    let mut close = |code, reason: &str| {
        if let Some(tx) = close_tx.take() {
            let _ = tx.try_send(CloseFrame {
                code,
                reason: reason.to_string().into(),
            });
        }
    };
    while let Some(message) = stream.next().await {
        let message = match message {
            Ok(message) => message,
            Err(e) => {
                // Frames above the WebSocket layer's own cap end up here.
                tracing::debug!(%peer, "WebSocket error: {e}");
                close(close_code::SIZE, "message too big or malformed");
                break;
            }
        };
        let answer = match message {
            Message::Text(text) if text.len() > MAX_MESSAGE_BYTES => {
                tracing::info!(%peer, bytes = text.len(), "closing a client that sent an oversized message");
                close(close_code::SIZE, "message larger than 64 KiB");
                break;
            }
            Message::Text(text) => match handle(&rooms, &metrics, peer, text.as_str()).await {
                Some(answer) => answer,
                None => continue,
            },
            Message::Binary(_) => {
                metrics.signaling_error(ClientErrorCode::BadRequest.as_str());
                error_answer(
                    None,
                    &ClientError::new(
                        ClientErrorCode::BadRequest,
                        "binary frames are not part of the protocol",
                    ),
                )
            }
            Message::Close(_) => break,
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        if outbox.send(answer).await.is_err() {
            break;
        }
    }
    // Whatever the reason the socket ended, the peer leaves its room.
    rooms.disconnected(peer).await;
    drop(outbox);
    let _ = writer.await;
    tracing::debug!(%peer, "client disconnected");
}

/// The answer to one text frame; `None` when it was queued already (a join's, see
/// [`Rooms::join`]).
async fn handle(rooms: &Arc<Rooms>, metrics: &Metrics, peer: PeerId, text: &str) -> Option<String> {
    let (id, method, data) = match read_frame(text) {
        Ok(frame) => frame,
        Err((id, error)) => {
            tracing::debug!(%peer, "bad request: {error}");
            metrics.signaling_error(error.code.as_str());
            return Some(error_answer(id, &error));
        }
    };
    match dispatch(rooms, peer, id, method, data).await {
        Ok(Some(answer)) => Some(ok_answer(id, &answer)),
        // Answered already, in order with the notifications (a join).
        Ok(None) => None,
        Err(error) => {
            tracing::debug!(%peer, method = %method.name(), "request refused: {error}");
            metrics.signaling_error(error.code.as_str());
            Some(error_answer(Some(id), &error))
        }
    }
}

async fn dispatch(
    rooms: &Arc<Rooms>,
    peer: PeerId,
    id: u64,
    method: Method,
    data: Value,
) -> Result<Option<Answer>, ClientError> {
    // Every method but `join` and `leave` needs a room; say so before looking at its
    // arguments.
    if method.needs_room() && !rooms.is_joined(peer) {
        return Err(ClientError::new(
            ClientErrorCode::NotJoined,
            "join a room first",
        ));
    }
    Ok(Some(match Request::from_data(method, data)? {
        Request::Join(args) => {
            rooms.join(peer, id, args).await?;
            return Ok(None);
        }
        Request::Leave => Answer::Done(rooms.leave(peer).await?),
        Request::GetRouterRtpCapabilities => {
            Answer::RouterCapabilities(rooms.router_rtp_capabilities(peer)?)
        }
        Request::CreateWebRtcTransport(args) => {
            Answer::TransportCreated(rooms.create_transport(peer, args.direction).await?)
        }
        Request::ConnectWebRtcTransport(args) => Answer::Done(
            rooms
                .connect_transport(peer, &args.transport_id, args.dtls_parameters)
                .await?,
        ),
        Request::RestartIce(args) => {
            Answer::IceRestarted(rooms.restart_ice(peer, &args.transport_id).await?)
        }
        Request::CloseTransport(args) => {
            Answer::Done(rooms.close_transport(peer, &args.transport_id).await?)
        }
        Request::Produce(args) => Answer::Produced(rooms.produce(peer, args).await?),
        Request::Consume(args) => Answer::Consumed(rooms.consume(peer, args).await?),
        Request::Producer {
            producer_id,
            action,
        } => Answer::Done(rooms.producer_action(peer, &producer_id, action).await?),
        Request::Consumer {
            consumer_id,
            action,
        } => Answer::Done(rooms.consumer_action(peer, &consumer_id, action).await?),
    }))
}
