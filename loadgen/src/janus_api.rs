//! Janus' WebSocket API (subprotocol `janus-protocol`) and the VideoRoom plugin's requests
//! and events, typed; and a session: one connection whose requests are matched to their
//! answers by transaction, with keepalives, and whose other events go to the participant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use crate::ws::{self, WsError};

/// A request waits this long for its answer (Janus gathers candidates before answering).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);
/// Janus drops a session silent for 60 s by default.
const KEEPALIVE: Duration = Duration::from_secs(20);
/// Asynchronous events buffered before the reader waits for the participant.
const EVENT_QUEUE: usize = 1024;

/// Requests of the Janus core.
#[derive(Debug, Serialize)]
#[serde(tag = "janus", rename_all = "lowercase")]
pub enum JanusRequest {
    /// A new session.
    Create,
    /// A plugin handle in a session.
    Attach {
        /// The session.
        session_id: u64,
        /// `janus.plugin.videoroom`.
        plugin: &'static str,
    },
    /// A plugin request.
    Message {
        /// The session.
        session_id: u64,
        /// The handle.
        handle_id: u64,
        /// The plugin's request.
        body: VideoRoomRequest,
        /// An SDP offer or answer.
        #[serde(skip_serializing_if = "Option::is_none")]
        jsep: Option<Jsep>,
    },
    /// Keeps the session alive.
    Keepalive {
        /// The session.
        session_id: u64,
    },
    /// Ends the session and its handles.
    Destroy {
        /// The session.
        session_id: u64,
    },
}

#[derive(Serialize)]
struct Envelope<'a> {
    transaction: String,
    #[serde(flatten)]
    request: &'a JanusRequest,
}

/// An SDP offer or answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Jsep {
    /// `offer` or `answer`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The SDP.
    pub sdp: String,
}

/// Requests of the VideoRoom plugin.
#[derive(Debug, Serialize)]
#[serde(tag = "request", rename_all = "lowercase")]
pub enum VideoRoomRequest {
    /// Create a room.
    Create {
        /// Its numeric id.
        room: u64,
        /// Its description.
        description: String,
        /// Publishers allowed at once (Janus' default is 3).
        publishers: u32,
        /// `opus`.
        audiocodec: &'static str,
        /// `vp8`.
        videocodec: &'static str,
        /// Not kept in the config file.
        permanent: bool,
        /// Shown in `list`.
        is_private: bool,
        /// Record every publisher (`.mjr` files).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        record: bool,
        /// Where the recordings go.
        #[serde(skip_serializing_if = "Option::is_none")]
        rec_dir: Option<String>,
    },
    /// Destroy a room.
    Destroy {
        /// Its id.
        room: u64,
    },
    /// Join a room.
    Join {
        /// Its id.
        room: u64,
        /// As publisher or subscriber.
        #[serde(flatten)]
        role: JoinRole,
    },
    /// Publish (with an offer).
    Configure {
        /// Send audio.
        audio: bool,
        /// Send video.
        video: bool,
    },
    /// Start receiving (with the answer).
    Start {},
}

/// How a handle joins a room.
#[derive(Debug, Serialize)]
#[serde(tag = "ptype", rename_all = "lowercase")]
pub enum JoinRole {
    /// Publishes and hears of other publishers.
    Publisher {
        /// Display name.
        display: String,
    },
    /// Receives the given feeds.
    Subscriber {
        /// The feeds.
        streams: Vec<FeedRef>,
    },
}

/// A feed to subscribe to.
#[derive(Debug, Serialize)]
pub struct FeedRef {
    /// The publisher's id.
    pub feed: u64,
}

/// What Janus sends on the socket.
#[derive(Debug, Deserialize)]
pub struct JanusMessage {
    /// `success`, `error`, `ack`, `event`, `webrtcup`, `media`, `hangup`, … (Janus puts its
    /// candidates in its SDP and never trickles them).
    pub janus: String,
    /// The request this answers, if it answers one.
    pub transaction: Option<String>,
    /// The handle it is about.
    pub sender: Option<u64>,
    /// `create`/`attach`: the new id.
    pub data: Option<IdData>,
    /// A plugin's answer or event.
    pub plugindata: Option<PluginData>,
    /// SDP.
    pub jsep: Option<Jsep>,
    /// A core error.
    pub error: Option<JanusError>,
}

/// `{"id": N}`.
#[derive(Debug, Deserialize)]
pub struct IdData {
    /// The id.
    pub id: u64,
}

/// A plugin's data.
#[derive(Debug, Deserialize)]
pub struct PluginData {
    /// Its payload.
    pub data: Value,
}

/// A core error.
#[derive(Debug, Clone, Deserialize)]
pub struct JanusError {
    /// Janus' code.
    pub code: i64,
    /// Its reason.
    pub reason: String,
}

/// The VideoRoom events a participant reads.
#[derive(Debug, Deserialize)]
pub struct VideoRoomEvent {
    /// `joined`, `event`, `attached`, `created`, `destroyed`, `success`, …
    pub videoroom: Option<String>,
    /// Our publisher id (`joined`).
    pub id: Option<u64>,
    /// Publishers present (`joined`) or new (`event`).
    #[serde(default)]
    pub publishers: Vec<PublisherInfo>,
    /// A publisher that stopped publishing.
    pub unpublished: Option<Value>,
    /// A publisher that left.
    pub leaving: Option<Value>,
    /// The streams of a subscription (`attached`).
    #[serde(default)]
    pub streams: Vec<StreamInfo>,
    /// A plugin error's code.
    pub error_code: Option<i64>,
    /// A plugin error.
    pub error: Option<String>,
}

/// A publisher in the room.
#[derive(Debug, Clone, Deserialize)]
pub struct PublisherInfo {
    /// Its id (the feed).
    pub id: u64,
    /// Its display name.
    pub display: Option<String>,
}

/// One m-line of a subscription.
#[derive(Debug, Clone, Deserialize)]
pub struct StreamInfo {
    /// `audio`, `video` or `data`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its mid in Janus' offer.
    pub mid: String,
    /// Whose it is.
    pub feed_display: Option<String>,
}

/// Why a Janus request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JanusFailure {
    /// Janus or the plugin refused it.
    #[error("janus error {code}: {reason}")]
    Refused {
        /// Janus' code.
        code: i64,
        /// Its reason.
        reason: String,
    },
    /// The connection failed or closed.
    #[error("janus connection: {0}")]
    Connection(String),
    /// No answer in time.
    #[error("no answer from janus within 15 s")]
    Timeout,
    /// An answer without what it should carry.
    #[error("unexpected answer from janus: {0}")]
    Malformed(String),
}

impl JanusFailure {
    /// The code counted in the report.
    pub fn code(&self) -> String {
        match self {
            JanusFailure::Refused { code, .. } => format!("janus_{code}"),
            JanusFailure::Connection(_) => "connection".into(),
            JanusFailure::Timeout => "timeout".into(),
            JanusFailure::Malformed(_) => "malformed".into(),
        }
    }
}

impl From<WsError> for JanusFailure {
    fn from(e: WsError) -> Self {
        JanusFailure::Connection(e.to_string())
    }
}

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<JanusMessage>>>>;

/// One Janus session on its own connection.
pub struct JanusSession {
    out: mpsc::Sender<String>,
    waiters: Waiters,
    next: u64,
    /// The session id.
    pub id: u64,
    /// Events that answer no request of ours (new publishers, hangups), with their handle.
    pub events: mpsc::Receiver<JanusMessage>,
}

impl JanusSession {
    /// Connects and creates a session.
    pub async fn open(
        url: &str,
        tls: &Arc<rustls::ClientConfig>,
    ) -> Result<JanusSession, JanusFailure> {
        let (out, mut incoming) = ws::connect(url, tls, Some("janus-protocol")).await?;
        let waiters: Waiters = Arc::default();
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        let reader_waiters = waiters.clone();
        tokio::spawn(async move {
            // Pings (the SFU sends one every 15 s) are answered by the WebSocket layer; only
            // a close, an error or the end of the stream ends the connection.
            while let Some(Ok(message)) = incoming.next().await {
                let text = match message {
                    Message::Text(text) => text,
                    Message::Close(_) => break,
                    _ => continue,
                };
                tracing::trace!(target: "loadgen::janus", "<< {text}");
                let Ok(message) = serde_json::from_str::<JanusMessage>(&text) else {
                    tracing::debug!(target: "loadgen::janus", "unparsable frame from Janus: {text}");
                    continue;
                };
                // `ack` only says a plugin request was queued; its answer is an event.
                if message.janus == "ack" {
                    continue;
                }
                let waiter = message
                    .transaction
                    .as_ref()
                    .and_then(|t| reader_waiters.lock().ok()?.remove(t));
                match waiter {
                    Some(waiter) => {
                        let _ = waiter.send(message);
                    }
                    None => {
                        if events_tx.send(message).await.is_err() {
                            break;
                        }
                    }
                }
            }
            if let Ok(mut waiters) = reader_waiters.lock() {
                waiters.clear();
            }
        });
        let mut session = JanusSession {
            out,
            waiters,
            next: 1,
            id: 0,
            events,
        };
        let created = session.call(&JanusRequest::Create).await?;
        session.id = created
            .data
            .map(|d| d.id)
            .ok_or_else(|| JanusFailure::Malformed("create without a session id".into()))?;
        let (out, id) = (session.out.clone(), session.id);
        tokio::spawn(async move {
            let mut n = 0u64;
            loop {
                tokio::time::sleep(KEEPALIVE).await;
                n += 1;
                let envelope = Envelope {
                    transaction: format!("keepalive-{n}"),
                    request: &JanusRequest::Keepalive { session_id: id },
                };
                let Ok(text) = serde_json::to_string(&envelope) else {
                    return;
                };
                if out.send(text).await.is_err() {
                    return;
                }
            }
        });
        Ok(session)
    }

    /// Sends `request` and waits for its answer (`success`, or the plugin's event).
    pub async fn call(&mut self, request: &JanusRequest) -> Result<JanusMessage, JanusFailure> {
        let transaction = format!("t{}", self.next);
        self.next += 1;
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .map_err(|e| JanusFailure::Connection(e.to_string()))?
            .insert(transaction.clone(), tx);
        let text = serde_json::to_string(&Envelope {
            transaction,
            request,
        })
        .map_err(|e| JanusFailure::Connection(e.to_string()))?;
        tracing::trace!(target: "loadgen::janus", ">> {text}");
        self.out
            .send(text)
            .await
            .map_err(|_| JanusFailure::Connection("connection closed".into()))?;
        let message = match tokio::time::timeout(ANSWER_TIMEOUT, rx).await {
            Ok(Ok(message)) => message,
            Ok(Err(_)) => return Err(JanusFailure::Connection("connection closed".into())),
            Err(_) => return Err(JanusFailure::Timeout),
        };
        if let Some(error) = message.error.clone() {
            return Err(JanusFailure::Refused {
                code: error.code,
                reason: error.reason,
            });
        }
        if let Some(event) = message.videoroom_event() {
            if let (Some(code), Some(reason)) = (event.error_code, event.error) {
                return Err(JanusFailure::Refused { code, reason });
            }
        }
        Ok(message)
    }

    /// Attaches a VideoRoom handle.
    pub async fn attach(&mut self) -> Result<u64, JanusFailure> {
        let answer = self
            .call(&JanusRequest::Attach {
                session_id: self.id,
                plugin: "janus.plugin.videoroom",
            })
            .await?;
        answer
            .data
            .map(|d| d.id)
            .ok_or_else(|| JanusFailure::Malformed("attach without a handle id".into()))
    }

    /// A VideoRoom request on `handle`.
    pub async fn message(
        &mut self,
        handle: u64,
        body: VideoRoomRequest,
        jsep: Option<Jsep>,
    ) -> Result<JanusMessage, JanusFailure> {
        self.call(&JanusRequest::Message {
            session_id: self.id,
            handle_id: handle,
            body,
            jsep,
        })
        .await
    }

    /// Ends the session (Janus closes its handles and PeerConnections).
    pub async fn destroy(&mut self) {
        let _ = self
            .call(&JanusRequest::Destroy {
                session_id: self.id,
            })
            .await;
    }
}

impl JanusMessage {
    /// The VideoRoom event it carries.
    pub fn videoroom_event(&self) -> Option<VideoRoomEvent> {
        self.plugindata
            .as_ref()
            .and_then(|p| serde_json::from_value(p.data.clone()).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_janus_shapes() {
        let join = JanusRequest::Message {
            session_id: 1,
            handle_id: 2,
            body: VideoRoomRequest::Join {
                room: 7,
                role: JoinRole::Subscriber {
                    streams: vec![FeedRef { feed: 9 }],
                },
            },
            jsep: None,
        };
        let value = serde_json::to_value(Envelope {
            transaction: "t1".into(),
            request: &join,
        })
        .unwrap();
        assert_eq!(
            value,
            serde_json::json!({"janus": "message", "transaction": "t1", "session_id": 1, "handle_id": 2,
                "body": {"request": "join", "room": 7, "ptype": "subscriber", "streams": [{"feed": 9}]}})
        );
        let create = serde_json::to_value(Envelope {
            transaction: "t2".into(),
            request: &JanusRequest::Create,
        })
        .unwrap();
        assert_eq!(
            create,
            serde_json::json!({"janus": "create", "transaction": "t2"})
        );
    }

    #[test]
    fn events_parse() {
        let message: JanusMessage = serde_json::from_str(
            r#"{"janus":"event","session_id":1,"sender":2,"transaction":"t3",
                "plugindata":{"plugin":"janus.plugin.videoroom","data":{"videoroom":"joined","room":7,"id":42,
                "publishers":[{"id":43,"display":"load-0-p1","streams":[]}]}}}"#,
        )
        .unwrap();
        let event = message.videoroom_event().unwrap();
        assert_eq!(event.videoroom.as_deref(), Some("joined"));
        assert_eq!(event.id, Some(42));
        assert_eq!(event.publishers[0].display.as_deref(), Some("load-0-p1"));
    }
}
