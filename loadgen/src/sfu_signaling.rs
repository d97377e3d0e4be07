//! The SFU's `/ws` protocol (docs/protocol.md) as a participant speaks it: typed requests,
//! their answers and the notifications a participant acts on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use crate::ws::{self, WsError};

/// A request waits this long for its answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);
/// Notifications buffered before the reader waits for the participant.
const NOTIFICATION_QUEUE: usize = 1024;

/// Requests a participant sends.
#[derive(Debug, Serialize)]
#[serde(tag = "method", content = "data", rename_all = "camelCase")]
pub enum Request {
    /// Join (and create) a room.
    #[serde(rename_all = "camelCase")]
    Join {
        /// Room name.
        room: String,
        /// Display name.
        display_name: String,
        /// Join token, when the SFU wants one.
        #[serde(skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    /// Open a transport.
    CreateWebRtcTransport {
        /// `send` or `recv`.
        direction: &'static str,
    },
    /// Give the transport our DTLS fingerprint.
    #[serde(rename_all = "camelCase")]
    ConnectWebRtcTransport {
        /// The transport.
        transport_id: String,
        /// Our DTLS role and fingerprint.
        dtls_parameters: DtlsParameters,
    },
    /// Publish a track.
    #[serde(rename_all = "camelCase")]
    Produce {
        /// The send transport.
        transport_id: String,
        /// `audio` or `video`.
        kind: &'static str,
        /// What we send.
        rtp_parameters: RtpParameters,
    },
    /// Receive a producer.
    #[serde(rename_all = "camelCase")]
    Consume {
        /// The receive transport.
        transport_id: String,
        /// The producer.
        producer_id: String,
        /// What we can receive.
        rtp_capabilities: Value,
    },
    /// Start a consumer (they are created paused).
    #[serde(rename_all = "camelCase")]
    ResumeConsumer {
        /// The consumer.
        consumer_id: String,
    },
    /// Leave the room.
    Leave,
}

#[derive(Serialize)]
struct Envelope<'a> {
    id: u64,
    #[serde(flatten)]
    request: &'a Request,
}

/// DTLS parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DtlsParameters {
    /// `client` for ours; absent in the server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Certificate fingerprints.
    pub fingerprints: Vec<Fingerprint>,
}

/// A certificate fingerprint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fingerprint {
    /// `sha-256`, …
    pub algorithm: String,
    /// Colon-separated hex.
    pub value: String,
}

/// The RTP parameters of a producer (the subset this participant uses).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpParameters {
    /// Its mid on the send transport.
    pub mid: String,
    /// The codec and, for video, its RTX.
    pub codecs: Vec<CodecParameters>,
    /// None: SSRCs are signalled.
    pub header_extensions: Vec<Value>,
    /// One per simulcast layer.
    pub encodings: Vec<Encoding>,
    /// RTCP settings.
    pub rtcp: Rtcp,
}

/// One codec of [`RtpParameters`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CodecParameters {
    /// `audio/opus`, `video/VP8`, `video/rtx`.
    pub mime_type: String,
    /// Its payload type.
    pub payload_type: u8,
    /// Its clock rate.
    pub clock_rate: u32,
    /// Audio channels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<u8>,
    /// fmtp parameters (`apt` for RTX).
    pub parameters: HashMap<String, Value>,
    /// RTCP feedback we answer.
    pub rtcp_feedback: Vec<RtcpFeedback>,
}

/// An RTCP feedback type.
#[derive(Debug, Clone, Serialize)]
pub struct RtcpFeedback {
    /// `nack`, `ccm`, …
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `pli`, `fir` or empty.
    pub parameter: &'static str,
}

/// One encoding.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Encoding {
    /// Its SSRC.
    pub ssrc: u32,
    /// Its RTX stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtx: Option<RtxSsrc>,
}

/// An RTX SSRC.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RtxSsrc {
    /// The SSRC.
    pub ssrc: u32,
}

/// RTCP settings of a producer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rtcp {
    /// Its CNAME.
    pub cname: String,
    /// RFC 5506.
    pub reduced_size: bool,
}

/// Answer to `join`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Joined {
    /// Our peer id.
    pub peer_id: String,
    /// The router's RTP capabilities.
    pub router_rtp_capabilities: Value,
    /// Who is already there.
    #[serde(default)]
    pub peers: Vec<PeerInfo>,
}

/// A peer of the room.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerInfo {
    /// Its id.
    pub peer_id: String,
    /// Its name.
    pub display_name: String,
    /// What it publishes.
    #[serde(default)]
    pub producers: Vec<ProducerInfo>,
}

/// A producer of another peer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProducerInfo {
    /// Its id.
    pub producer_id: String,
}

/// Answer to `createWebRtcTransport`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransportCreated {
    /// Its id.
    pub transport_id: String,
    /// ICE credentials.
    pub ice_parameters: IceParameters,
    /// Where it listens.
    pub ice_candidates: Vec<IceCandidate>,
    /// Its DTLS fingerprints.
    pub dtls_parameters: DtlsParameters,
}

/// ICE credentials of a server transport.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceParameters {
    /// ufrag.
    pub username_fragment: String,
    /// pwd.
    pub password: String,
}

/// One server candidate.
#[derive(Debug, Deserialize)]
pub struct IceCandidate {
    /// Its address.
    pub address: String,
    /// Its port.
    pub port: u16,
    /// `udp` or `tcp`.
    pub protocol: String,
}

/// Answer to `produce`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Produced {
    /// The producer's id.
    pub producer_id: String,
}

/// Answer to `consume`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Consumed {
    /// The consumer's id.
    pub consumer_id: String,
    /// `audio` or `video`.
    pub kind: String,
    /// Where its packets come.
    pub rtp_parameters: ConsumerRtpParameters,
}

/// The parts of a consumer's RTP parameters a receiver needs.
#[derive(Debug, Deserialize)]
pub struct ConsumerRtpParameters {
    /// Its mid on the receive transport.
    pub mid: String,
    /// Its SSRC (and RTX SSRC).
    pub encodings: Vec<Encoding>,
}

/// Answers without data.
#[derive(Debug, Deserialize)]
pub struct Empty {}

/// Server pushes a participant acts on.
#[derive(Debug, Deserialize)]
#[serde(tag = "notification", content = "data", rename_all = "camelCase")]
pub enum Notification {
    /// Someone joined.
    #[serde(rename_all = "camelCase")]
    PeerJoined {
        /// Its id.
        peer_id: String,
        /// Its name.
        display_name: String,
    },
    /// Someone publishes.
    #[serde(rename_all = "camelCase")]
    NewProducer {
        /// Whose.
        peer_id: String,
        /// Which.
        producer_id: String,
    },
    /// A consumer's producer went away.
    #[serde(rename_all = "camelCase")]
    ConsumerClosed {
        /// Which.
        consumer_id: String,
    },
    /// The room's node failed.
    RoomMoved {},
    /// The SFU stops.
    ShuttingDown {},
    /// Anything else (scores, layers, speakers).
    #[serde(skip)]
    Other,
}

impl Notification {
    /// The notification in a server frame; `None` when the frame is an answer.
    pub fn parse(frame: &Value) -> Option<Notification> {
        frame.get("notification")?;
        Some(serde_json::from_value(frame.clone()).unwrap_or(Notification::Other))
    }
}

/// An error answer or a broken connection.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SignalingError {
    /// The SFU refused the request.
    #[error("{code}: {message}")]
    Refused {
        /// The error code (docs/protocol.md).
        code: String,
        /// Its explanation.
        message: String,
    },
    /// The connection failed or closed.
    #[error("signaling: {0}")]
    Connection(String),
    /// No answer in time.
    #[error("no answer to {0} within 15 s")]
    Timeout(&'static str),
    /// The answer did not have the documented shape.
    #[error("malformed answer to {method}: {reason}")]
    Malformed {
        /// The request.
        method: &'static str,
        /// Why.
        reason: String,
    },
}

impl SignalingError {
    /// The code counted in the report.
    pub fn code(&self) -> String {
        match self {
            SignalingError::Refused { code, .. } => code.clone(),
            SignalingError::Connection(_) => "connection".into(),
            SignalingError::Timeout(_) => "timeout".into(),
            SignalingError::Malformed { .. } => "malformed".into(),
        }
    }
}

impl From<WsError> for SignalingError {
    fn from(e: WsError) -> Self {
        SignalingError::Connection(e.to_string())
    }
}

#[derive(Debug, Deserialize)]
struct Answer {
    id: Option<u64>,
    #[serde(default)]
    ok: bool,
    #[serde(default)]
    data: Value,
    error: Option<AnswerError>,
}

#[derive(Debug, Deserialize)]
struct AnswerError {
    code: String,
    message: String,
}

type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<Answer>>>>;

/// One `/ws` connection.
pub struct SfuSignaling {
    out: mpsc::Sender<String>,
    waiters: Waiters,
    next_id: u64,
    /// Server pushes, in order.
    pub notifications: mpsc::Receiver<Notification>,
}

impl SfuSignaling {
    /// Connects to the SFU's `/ws`.
    pub async fn connect(
        url: &str,
        tls: &Arc<rustls::ClientConfig>,
    ) -> Result<SfuSignaling, SignalingError> {
        let (out, mut incoming) = ws::connect(url, tls, None).await?;
        let waiters: Waiters = Arc::default();
        let (notify, notifications) = mpsc::channel(NOTIFICATION_QUEUE);
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
                let Ok(frame) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                if let Some(notification) = Notification::parse(&frame) {
                    if notify.send(notification).await.is_err() {
                        break;
                    }
                    continue;
                }
                let Ok(answer) = serde_json::from_value::<Answer>(frame) else {
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
        Ok(SfuSignaling {
            out,
            waiters,
            next_id: 1,
            notifications,
        })
    }

    /// Sends `request` and decodes its answer as `A`.
    pub async fn call<A: DeserializeOwned>(
        &mut self,
        request: Request,
    ) -> Result<A, SignalingError> {
        let method = method_name(&request);
        let id = self.next_id;
        self.next_id += 1;
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .map_err(|e| SignalingError::Connection(e.to_string()))?
            .insert(id, tx);
        let text = serde_json::to_string(&Envelope {
            id,
            request: &request,
        })
        .map_err(|e| SignalingError::Connection(e.to_string()))?;
        self.out
            .send(text)
            .await
            .map_err(|_| SignalingError::Connection("connection closed".into()))?;
        let answer = match tokio::time::timeout(ANSWER_TIMEOUT, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => return Err(SignalingError::Connection("connection closed".into())),
            Err(_) => return Err(SignalingError::Timeout(method)),
        };
        if !answer.ok {
            let error = answer.error.unwrap_or(AnswerError {
                code: "malformed".into(),
                message: "error answer without error".into(),
            });
            return Err(SignalingError::Refused {
                code: error.code,
                message: error.message,
            });
        }
        serde_json::from_value(answer.data).map_err(|e| SignalingError::Malformed {
            method,
            reason: e.to_string(),
        })
    }
}

fn method_name(request: &Request) -> &'static str {
    match request {
        Request::Join { .. } => "join",
        Request::CreateWebRtcTransport { .. } => "createWebRtcTransport",
        Request::ConnectWebRtcTransport { .. } => "connectWebRtcTransport",
        Request::Produce { .. } => "produce",
        Request::Consume { .. } => "consume",
        Request::ResumeConsumer { .. } => "resumeConsumer",
        Request::Leave => "leave",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_framed_as_the_protocol_says() {
        let join = Request::Join {
            room: "r".into(),
            display_name: "n".into(),
            token: None,
        };
        let text = serde_json::to_string(&Envelope {
            id: 3,
            request: &join,
        })
        .unwrap();
        assert_eq!(
            text,
            r#"{"id":3,"method":"join","data":{"room":"r","displayName":"n"}}"#
        );
        let leave = serde_json::to_value(Envelope {
            id: 4,
            request: &Request::Leave,
        })
        .unwrap();
        assert_eq!(leave["method"], "leave");
    }

    #[test]
    fn notifications_parse_and_unknown_ones_are_other() {
        let parse = |text: &str| Notification::parse(&serde_json::from_str(text).unwrap());
        let n = parse(
            r#"{"notification":"newProducer","data":{"peerId":"p","producerId":"x","kind":"video"}}"#,
        );
        assert!(
            matches!(n, Some(Notification::NewProducer { producer_id, .. }) if producer_id == "x")
        );
        let n = parse(r#"{"notification":"activeSpeaker","data":{"peerId":"p","producerId":"x"}}"#);
        assert!(matches!(n, Some(Notification::Other)));
        assert!(matches!(
            parse(r#"{"notification":"roomMoved","data":{"room":"r","reason":"x"}}"#),
            Some(Notification::RoomMoved {})
        ));
        assert!(parse(r#"{"id":1,"ok":true,"data":{}}"#).is_none());
    }
}
