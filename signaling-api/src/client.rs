//! The one typed client of `/ws` (feature `client`), for the loadgen and the tests: numbered
//! requests whose answers come back typed ([`Call::Answer`]), and the server's notifications,
//! typed, in order, through a bounded queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::Connector;

use crate::{Call, Method, Notification};

/// A request waits this long for its answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);
/// Notifications queued before the reader waits for the client to take them.
const NOTIFICATION_QUEUE: usize = 1024;
/// Frames queued for sending; a client sends a few requests at a time.
const OUTGOING_QUEUE: usize = 64;

/// Why a request did not get its success answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The SFU refused the request.
    #[error("{code}: {message}")]
    Refused {
        /// The error code (docs/protocol.md).
        code: String,
        /// Its explanation.
        message: String,
    },
    /// The connection could not be opened, failed or closed.
    #[error("signaling: {0}")]
    Connection(String),
    /// No answer in time.
    #[error("no answer to {} within {ANSWER_TIMEOUT:?}", .0.name())]
    Timeout(Method),
    /// The answer did not have the documented shape.
    #[error("malformed answer to {}: {reason}", method.name())]
    Malformed {
        /// The request.
        method: Method,
        /// Why.
        reason: String,
    },
}

impl CallError {
    /// The error code of a refusal, or what kind of failure it was (`connection`,
    /// `timeout`, `malformed`).
    pub fn code(&self) -> &str {
        match self {
            CallError::Refused { code, .. } => code,
            CallError::Connection(_) => "connection",
            CallError::Timeout(_) => "timeout",
            CallError::Malformed { .. } => "malformed",
        }
    }
}

/// A request frame: `{"id","method","data"}`.
#[derive(serde::Serialize)]
struct RequestFrame<'a, T> {
    id: u64,
    method: Method,
    data: &'a T,
}

/// An answer frame: `{"id","ok":true,"data"}` or `{"id","ok":false,"error"}`.
#[derive(Debug, Deserialize)]
struct AnswerFrame {
    id: Option<u64>,
    #[serde(default)]
    ok: bool,
    #[serde(default)]
    data: Value,
    error: Option<ErrorBody>,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    code: String,
    message: String,
}

type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<AnswerFrame>>>>;

/// One connection to `/ws`.
pub struct Client {
    out: mpsc::Sender<String>,
    waiters: Waiters,
    next_id: u64,
    /// The server's notifications, in order; `None` once the connection is gone.
    pub notifications: mpsc::Receiver<Notification>,
}

impl Client {
    /// Connects to `url` (`ws://` or `wss://`; `tls` is the trust for the latter).
    pub async fn connect(
        url: &str,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Client, CallError> {
        let request = url
            .into_client_request()
            .map_err(|e| CallError::Connection(format!("bad URL {url}: {e}")))?;
        let connector = tls.map(Connector::Rustls);
        let (socket, _) =
            tokio_tungstenite::connect_async_tls_with_config(request, None, true, connector)
                .await
                .map_err(|e| CallError::Connection(format!("cannot connect to {url}: {e}")))?;
        let (mut sink, mut incoming) = socket.split();
        let (out, mut outgoing) = mpsc::channel::<String>(OUTGOING_QUEUE);
        tokio::spawn(async move {
            while let Some(text) = outgoing.recv().await {
                if sink.send(Message::text(text)).await.is_err() {
                    return;
                }
            }
            let _ = sink.close().await;
        });
        let waiters: Waiters = Arc::default();
        let (notify, notifications) = mpsc::channel(NOTIFICATION_QUEUE);
        let reader_waiters = waiters.clone();
        tokio::spawn(async move {
            // Pings are answered by the WebSocket layer while this reads; only a close, an
            // error or the end of the stream ends the connection.
            while let Some(Ok(message)) = incoming.next().await {
                let text = match message {
                    Message::Text(text) => text,
                    Message::Close(_) => break,
                    _ => continue,
                };
                let Ok(frame) = serde_json::from_str::<Value>(&text) else {
                    tracing::warn!("the SFU sent a frame that is not JSON");
                    continue;
                };
                if frame.get("notification").is_some() {
                    match serde_json::from_value::<Notification>(frame) {
                        Ok(notification) => {
                            if notify.send(notification).await.is_err() {
                                break;
                            }
                        }
                        Err(e) => tracing::debug!("a notification this client does not know: {e}"),
                    }
                    continue;
                }
                let Ok(answer) = serde_json::from_value::<AnswerFrame>(frame) else {
                    continue;
                };
                let waiter = answer
                    .id
                    .and_then(|id| reader_waiters.lock().ok()?.remove(&id));
                if let Some(waiter) = waiter {
                    let _ = waiter.send(answer);
                }
            }
            // Dropping the waiters fails every pending request at once.
            if let Ok(mut waiters) = reader_waiters.lock() {
                waiters.clear();
            }
        });
        Ok(Client {
            out,
            waiters,
            next_id: 1,
            notifications,
        })
    }

    /// Sends `call` and waits (at most [`ANSWER_TIMEOUT`]) for its answer.
    pub async fn call<C: Call>(&mut self, call: &C) -> Result<C::Answer, CallError> {
        let method = C::METHOD;
        let id = self.next_id;
        self.next_id += 1;
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .map_err(|e| CallError::Connection(e.to_string()))?
            .insert(id, tx);
        let frame = RequestFrame {
            id,
            method,
            data: call,
        };
        let text = serde_json::to_string(&frame).map_err(|e| CallError::Malformed {
            method,
            reason: format!("cannot serialize the request: {e}"),
        })?;
        self.out
            .send(text)
            .await
            .map_err(|_| CallError::Connection("connection closed".into()))?;
        let answer = match tokio::time::timeout(ANSWER_TIMEOUT, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => return Err(CallError::Connection("connection closed".into())),
            Err(_) => {
                if let Ok(mut waiters) = self.waiters.lock() {
                    waiters.remove(&id);
                }
                return Err(CallError::Timeout(method));
            }
        };
        if !answer.ok {
            let error = answer.error.unwrap_or(ErrorBody {
                code: "malformed".into(),
                message: "an error answer without its error".into(),
            });
            return Err(CallError::Refused {
                code: error.code,
                message: error.message,
            });
        }
        serde_json::from_value(answer.data).map_err(|e| CallError::Malformed {
            method,
            reason: e.to_string(),
        })
    }
}
