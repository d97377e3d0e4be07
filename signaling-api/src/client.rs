//! The one typed client of `/ws` (feature `client`), for the loadgen and the tests: numbered
//! requests whose answers come back typed ([`Call::Answer`]), the server's notifications,
//! typed, in order, through a bounded queue, and what a test of the protocol needs besides:
//! upgrade headers, the close frame the server sent, waiting for one kind of notification, and
//! one clearly named raw path ([`Client::send_raw`]) for input that is malformed on purpose.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::Connector;

use crate::frames::AnswerFrame;
pub use crate::frames::{request_frame, CallError, ANSWER_TIMEOUT};
use crate::{Call, Notification};

#[cfg(test)]
mod tests;

/// Notifications queued before the reader waits for the client to take them.
const NOTIFICATION_QUEUE: usize = 1024;
/// Frames queued for sending; a client sends a few requests at a time.
const OUTGOING_QUEUE: usize = 64;
/// Answers to no pending call kept for [`Client::raw_answer`]; past this they are dropped
/// (logged), so a client that never reads them cannot stall its notifications.
const UNMATCHED_QUEUE: usize = 256;

/// Why a wait for a notification or an answer ended empty-handed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    /// Nothing came in time.
    #[error("nothing within {0:?}")]
    TimedOut(Duration),
    /// The connection is gone, and with it whatever was to come.
    #[error("the connection is closed")]
    Closed,
}

/// How the connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// The code of the server's close frame (`None`: the connection ended without one).
    pub code: Option<u16>,
    /// Its reason.
    pub reason: String,
}

/// An answer to no pending call: to a frame sent with [`Client::send_raw`], one the server
/// could not read the id of (`id: null`), or one that came after its call gave up waiting.
#[derive(Debug, Clone)]
pub struct RawAnswer {
    /// The id it answers (`None`: `null`).
    pub id: Option<u64>,
    /// Its `data`, or the refusal.
    pub outcome: Result<Value, CallError>,
}

impl RawAnswer {
    /// The error code, `None` for a success.
    pub fn code(&self) -> Option<&str> {
        self.outcome.as_ref().err().map(CallError::code)
    }
}

type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<AnswerFrame>>>>;

/// A frame of the server, read.
enum Incoming {
    Notification(Notification),
    Answer(AnswerFrame),
    /// Why it breaks the protocol.
    Broken(String),
}

/// Reads a frame of the server. Notifications, most of the traffic, are read in one pass when
/// their tag comes first (as the SFU writes them); anything else is read as JSON first.
fn read_incoming(text: &str) -> Incoming {
    if text.starts_with(r#"{"notification":"#) {
        if let Ok(notification) = serde_json::from_str(text) {
            return Incoming::Notification(notification);
        }
    }
    let frame = match serde_json::from_str::<Value>(text) {
        Ok(frame) => frame,
        Err(e) => return Incoming::Broken(format!("a frame that is not JSON ({e})")),
    };
    if frame.get("notification").is_some() {
        return match serde_json::from_value(frame) {
            Ok(notification) => Incoming::Notification(notification),
            Err(e) => Incoming::Broken(format!("a notification it cannot read: {e}")),
        };
    }
    match serde_json::from_value(frame) {
        Ok(answer) => Incoming::Answer(answer),
        Err(e) => Incoming::Broken(format!("a frame that is no answer: {e}")),
    }
}

/// A request sent and not yet answered ([`Client::send`]): several can be in flight.
pub struct Pending<C: Call> {
    id: u64,
    answer: oneshot::Receiver<AnswerFrame>,
    waiters: Waiters,
    call: PhantomData<fn() -> C>,
}

impl<C: Call> Pending<C> {
    /// The id the request was sent with.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Waits (at most [`ANSWER_TIMEOUT`]) for the answer.
    pub async fn answer(mut self) -> Result<C::Answer, CallError> {
        let method = C::METHOD;
        let answer = match tokio::time::timeout(ANSWER_TIMEOUT, &mut self.answer).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => return Err(CallError::Connection("connection closed".into())),
            // Dropping `self` forgets the request: a late answer is a raw one.
            Err(_) => return Err(CallError::Timeout(method)),
        };
        serde_json::from_value(answer.outcome()?).map_err(|e| CallError::Malformed {
            method,
            reason: e.to_string(),
        })
    }
}

impl<C: Call> Drop for Pending<C> {
    fn drop(&mut self) {
        // Answered, given up on or never awaited: nobody waits for this id any more.
        if let Ok(mut waiters) = self.waiters.lock() {
            waiters.remove(&self.id);
        }
    }
}

/// What the reader shares with the client besides the queues.
#[derive(Default)]
struct Shared {
    /// The first frame of the server that broke the protocol.
    violation: Mutex<Option<String>>,
}

impl Shared {
    fn violated(&self, what: String) {
        tracing::warn!("the SFU broke the protocol: {what}");
        if let Ok(mut violation) = self.violation.lock() {
            violation.get_or_insert(what);
        }
    }
}

/// One connection to `/ws`.
pub struct Client {
    out: mpsc::Sender<Message>,
    waiters: Waiters,
    next_id: u64,
    /// The server's notifications, in order; `None` once the connection is gone.
    pub notifications: mpsc::Receiver<Notification>,
    /// Every notification [`Client::notification`] or [`Client::seen`] took, in order.
    seen: Vec<Notification>,
    unmatched: mpsc::Receiver<RawAnswer>,
    ended: watch::Receiver<Option<Closed>>,
    shared: Arc<Shared>,
    tasks: [AbortHandle; 2],
}

impl Client {
    /// Connects to `url` (`ws://` or `wss://`; `tls` is the trust for the latter).
    pub async fn connect(
        url: &str,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Client, CallError> {
        Self::connect_with_headers(url, tls, &[]).await
    }

    /// [`Client::connect`] sending `headers` with the upgrade (an `Origin`, or the
    /// `X-Forwarded-For` a reverse proxy adds). A refused upgrade is [`CallError::Upgrade`].
    pub async fn connect_with_headers(
        url: &str,
        tls: Option<Arc<rustls::ClientConfig>>,
        headers: &[(&str, &str)],
    ) -> Result<Client, CallError> {
        let mut request = url
            .into_client_request()
            .map_err(|e| CallError::Connection(format!("bad URL {url}: {e}")))?;
        for (name, value) in headers {
            let bad = |e: &dyn std::fmt::Display| {
                CallError::Connection(format!("bad header {name}: {value}: {e}"))
            };
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| bad(&e))?;
            let value = HeaderValue::from_str(value).map_err(|e| bad(&e))?;
            request.headers_mut().append(name, value);
        }
        let connector = tls.map(Connector::Rustls);
        let (socket, _) =
            tokio_tungstenite::connect_async_tls_with_config(request, None, true, connector)
                .await
                .map_err(|e| match e {
                    tokio_tungstenite::tungstenite::Error::Http(response) => CallError::Upgrade {
                        status: response.status().as_u16(),
                    },
                    e => CallError::Connection(format!("cannot connect to {url}: {e}")),
                })?;
        let (mut sink, mut incoming) = socket.split();
        let (out, mut outgoing) = mpsc::channel::<Message>(OUTGOING_QUEUE);
        let writer = tokio::spawn(async move {
            while let Some(message) = outgoing.recv().await {
                if sink.send(message).await.is_err() {
                    return;
                }
            }
            let _ = sink.close().await;
        });
        let waiters: Waiters = Arc::default();
        let shared = Arc::new(Shared::default());
        let (notify, notifications) = mpsc::channel(NOTIFICATION_QUEUE);
        let (unmatched_tx, unmatched) = mpsc::channel(UNMATCHED_QUEUE);
        let (ended_tx, ended) = watch::channel(None);
        let reader_waiters = waiters.clone();
        let reader_shared = shared.clone();
        let reader = tokio::spawn(async move {
            let mut close_frame = None;
            // Pings are answered by the WebSocket layer while this reads; only a close, an
            // error or the end of the stream ends the connection.
            while let Some(Ok(message)) = incoming.next().await {
                let text = match message {
                    Message::Text(text) => text,
                    Message::Close(frame) => {
                        close_frame = frame;
                        break;
                    }
                    _ => continue,
                };
                let answer = match read_incoming(&text) {
                    Incoming::Notification(notification) => {
                        if notify.send(notification).await.is_err() {
                            break;
                        }
                        continue;
                    }
                    Incoming::Answer(answer) => answer,
                    Incoming::Broken(why) => {
                        reader_shared.violated(why);
                        continue;
                    }
                };
                let waiter = answer
                    .id
                    .and_then(|id| reader_waiters.lock().ok()?.remove(&id));
                match waiter {
                    Some(waiter) => {
                        let _ = waiter.send(answer);
                    }
                    None => {
                        let raw = RawAnswer {
                            id: answer.id,
                            outcome: answer.outcome(),
                        };
                        if unmatched_tx.try_send(raw).is_err() {
                            tracing::debug!("an answer to no pending call, not kept");
                        }
                    }
                }
            }
            // Dropping the waiters fails every pending request at once.
            if let Ok(mut waiters) = reader_waiters.lock() {
                waiters.clear();
            }
            let _ = ended_tx.send(Some(Closed {
                code: close_frame.as_ref().map(|f| u16::from(f.code)),
                reason: close_frame
                    .map(|f| f.reason.to_string())
                    .unwrap_or_default(),
            }));
        });
        Ok(Client {
            out,
            waiters,
            next_id: 1,
            notifications,
            seen: Vec::new(),
            unmatched,
            ended,
            shared,
            tasks: [writer.abort_handle(), reader.abort_handle()],
        })
    }

    /// Sends `call` and waits (at most [`ANSWER_TIMEOUT`]) for its answer.
    pub async fn call<C: Call>(&mut self, call: &C) -> Result<C::Answer, CallError> {
        self.send(call).await?.answer().await
    }

    /// Sends `call` without waiting for its answer: several requests in flight at once.
    pub async fn send<C: Call>(&mut self, call: &C) -> Result<Pending<C>, CallError> {
        let id = self.next_id;
        self.next_id += 1;
        let text = request_frame(id, call)?;
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .map_err(|e| CallError::Connection(e.to_string()))?
            .insert(id, tx);
        // Made before sending, so a failed send forgets the request too.
        let pending = Pending {
            id,
            answer: rx,
            waiters: self.waiters.clone(),
            call: PhantomData,
        };
        self.send_message(Message::text(text)).await?;
        Ok(pending)
    }

    /// Sends `text` as it is, in one text frame: for input that is malformed on purpose (a
    /// well-formed request goes through [`Client::call`]). Its answer, if any, comes through
    /// [`Client::raw_answer`].
    pub async fn send_raw(&self, text: impl Into<String>) -> Result<(), CallError> {
        self.send_message(Message::text(text.into())).await
    }

    /// Sends `bytes` in one binary frame (which the protocol does not take).
    pub async fn send_binary(&self, bytes: Vec<u8>) -> Result<(), CallError> {
        self.send_message(Message::binary(bytes)).await
    }

    async fn send_message(&self, message: Message) -> Result<(), CallError> {
        self.out
            .send(message)
            .await
            .map_err(|_| CallError::Connection("connection closed".into()))
    }

    /// The next answer to no pending call (see [`RawAnswer`]), waiting at most `within`.
    pub async fn raw_answer(&mut self, within: Duration) -> Result<RawAnswer, WaitError> {
        match tokio::time::timeout(within, self.unmatched.recv()).await {
            Ok(Some(answer)) => Ok(answer),
            Ok(None) => Err(WaitError::Closed),
            Err(_) => Err(WaitError::TimedOut(within)),
        }
    }

    /// Waits at most `within` for the first notification `pick` takes (returns `Some` for),
    /// passing over the ones before it (scores and the like); every one it takes from the
    /// queue, picked or not, stays in [`Client::seen`].
    pub async fn notification<T>(
        &mut self,
        within: Duration,
        mut pick: impl FnMut(Notification) -> Option<T>,
    ) -> Result<T, WaitError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.notifications.recv()).await {
                Ok(Some(notification)) => {
                    self.seen.push(notification.clone());
                    if let Some(picked) = pick(notification) {
                        return Ok(picked);
                    }
                }
                Ok(None) => return Err(WaitError::Closed),
                Err(_) => return Err(WaitError::TimedOut(within)),
            }
        }
    }

    /// Every notification of this connection so far, in order: those [`Client::notification`]
    /// took (picked or passed over), then what is waiting in the queue, taken now. What was
    /// read from [`Client::notifications`] directly is not in it.
    pub fn seen(&mut self) -> &[Notification] {
        while let Ok(notification) = self.notifications.try_recv() {
            self.seen.push(notification);
        }
        &self.seen
    }

    /// How the connection ended, if it did.
    pub fn closed(&self) -> Option<Closed> {
        let closed = self.ended.borrow().clone();
        // A reader gone without a word was aborted: the connection ended without a close.
        closed.or_else(|| {
            self.ended.has_changed().is_err().then(|| Closed {
                code: None,
                reason: String::new(),
            })
        })
    }

    /// Waits at most `within` for the connection to end: how it ended, `None` if it is still
    /// open.
    pub async fn wait_closed(&self, within: Duration) -> Option<Closed> {
        let mut ended = self.ended.clone();
        let waited = tokio::time::timeout(within, ended.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(closed)) => closed.clone(),
            // The reader is gone without a word: aborted.
            Ok(Err(_)) => Some(Closed {
                code: None,
                reason: String::new(),
            }),
            Err(_) => None,
        }
    }

    /// The first frame of the server that broke the protocol (not JSON, a notification or an
    /// answer of no documented shape), if one came: the client skips them, a test fails on them.
    pub fn protocol_violation(&self) -> Option<String> {
        self.shared.violation.lock().ok()?.clone()
    }

    /// Sends a close frame; the server's answer ends the connection ([`Client::wait_closed`]).
    pub async fn close(&self) -> Result<(), CallError> {
        self.send_message(Message::Close(None)).await
    }

    /// Drops the connection at once, without a close frame, as a network that went away.
    pub fn abort(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
