//! A `/ws` client: numbered requests, their answers, and the notifications in between.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// One signaling connection.
pub struct Signaling {
    out: mpsc::UnboundedSender<Message>,
    waiters: Waiters,
    next_id: u64,
    /// Server pushes, in order.
    pub notifications: mpsc::UnboundedReceiver<Value>,
    /// Frames that were neither answers to our requests nor notifications (e.g. answers
    /// with `id: null`), and the close frame if the server closed.
    pub other: mpsc::UnboundedReceiver<Value>,
    /// The close frame the server sent, once it did.
    pub closed: Arc<Mutex<Option<CloseFrame>>>,
    /// A frame that broke the protocol (not JSON), kept to fail the test at its next request.
    broken: Arc<Mutex<Option<String>>>,
    /// The tasks reading and writing the socket.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// An error answer: (code, message).
pub type ErrorAnswer = (String, String);

/// A TLS client configuration trusting the certificates of `ca_pem`.
pub fn client_tls(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("PEM")).expect("trust anchor");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

impl Signaling {
    /// Connects to `url`; `ca_pem` is the certificate to trust for `wss://`.
    pub async fn connect(url: &str, ca_pem: Option<&str>) -> Signaling {
        Self::connect_with_headers(url, ca_pem, &[]).await
    }

    /// [`Signaling::connect`] sending `headers` with the upgrade (e.g. what a reverse proxy
    /// adds).
    pub async fn connect_with_headers(
        url: &str,
        ca_pem: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Signaling {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
        let mut request = url.into_client_request().expect("request");
        for (name, value) in headers {
            request.headers_mut().append(
                HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        let connector = ca_pem.map(|pem| tokio_tungstenite::Connector::Rustls(client_tls(pem)));
        let (ws, _) =
            tokio_tungstenite::connect_async_tls_with_config(request, None, false, connector)
                .await
                .unwrap_or_else(|e| panic!("connect {url}: {e}"));
        let (mut sink, mut stream) = ws.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let writer = tokio::spawn(async move {
            while let Some(message) = out_rx.recv().await {
                if sink.send(message).await.is_err() {
                    break;
                }
            }
        });
        let waiters: Waiters = Arc::default();
        let (notify_tx, notifications) = mpsc::unbounded_channel();
        let (other_tx, other) = mpsc::unbounded_channel();
        let closed = Arc::new(Mutex::new(None));
        let broken = Arc::new(Mutex::new(None));
        let reader = tokio::spawn({
            let (waiters, closed, broken) = (waiters.clone(), closed.clone(), broken.clone());
            async move {
                while let Some(Ok(message)) = stream.next().await {
                    let text = match message {
                        Message::Text(text) => text.to_string(),
                        Message::Close(frame) => {
                            *closed.lock().unwrap() = frame;
                            break;
                        }
                        _ => continue,
                    };
                    let value: Value = match serde_json::from_str(&text) {
                        Ok(value) => value,
                        Err(e) => {
                            *broken.lock().unwrap() = Some(format!("not JSON ({e}): {text}"));
                            break;
                        }
                    };
                    if value.get("notification").is_some() {
                        let _ = notify_tx.send(value);
                    } else if let Some(id) = value["id"].as_u64() {
                        match waiters.lock().unwrap().remove(&id) {
                            Some(waiter) => {
                                let _ = waiter.send(value);
                            }
                            None => {
                                let _ = other_tx.send(value);
                            }
                        }
                    } else {
                        let _ = other_tx.send(value);
                    }
                }
            }
        });
        Signaling {
            out,
            waiters,
            next_id: 1,
            notifications,
            other,
            closed,
            broken,
            tasks: vec![writer, reader],
        }
    }

    /// Drops the connection at once, without a close frame, as a network that went away.
    pub fn abort(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }

    fn assert_sane(&self) {
        if let Some(broken) = self.broken.lock().unwrap().as_ref() {
            panic!("the server sent a frame that is {broken}");
        }
    }

    /// Sends a raw text frame.
    pub fn send_raw(&self, text: impl Into<String>) {
        let _ = self.out.send(Message::text(text.into()));
    }

    /// Sends a binary frame.
    pub fn send_binary(&self, bytes: Vec<u8>) {
        let _ = self.out.send(Message::binary(bytes));
    }

    /// Waits for the next frame that answers no request of ours (e.g. `id: null`).
    pub async fn next_other(&mut self) -> Value {
        tokio::time::timeout(Duration::from_secs(10), self.other.recv())
            .await
            .expect("an answer within 10 s")
            .expect("connection open")
    }

    /// Waits until the server closed the socket and returns its close code.
    pub async fn wait_closed(&self) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(frame) = self.closed.lock().unwrap().as_ref() {
                return Some(u16::from(frame.code));
            }
            if tokio::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends a request and returns the full answer frame.
    pub async fn request_raw(&mut self, method: &str, data: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().unwrap().insert(id, tx);
        self.send_raw(json!({"id": id, "method": method, "data": data}).to_string());
        let answer = tokio::time::timeout(Duration::from_secs(15), rx).await;
        self.assert_sane();
        answer
            .unwrap_or_else(|_| panic!("no answer to {method} within 15 s"))
            .expect("connection open")
    }

    /// Sends a request: `Ok(data)` or `Err((code, message))`.
    pub async fn request(&mut self, method: &str, data: Value) -> Result<Value, ErrorAnswer> {
        let answer = self.request_raw(method, data).await;
        if answer["ok"] == json!(true) {
            Ok(answer["data"].clone())
        } else {
            Err((
                answer["error"]["code"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                answer["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ))
        }
    }

    /// Like [`Signaling::request`], failing the test on an error answer.
    pub async fn ok(&mut self, method: &str, data: Value) -> Value {
        self.request(method, data)
            .await
            .unwrap_or_else(|e| panic!("{method} failed: {e:?}"))
    }

    /// Waits for the next notification called `name`, skipping others (scores and the like).
    pub async fn notification(&mut self, name: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let next = tokio::time::timeout_at(deadline, self.notifications.recv()).await;
            self.assert_sane();
            let next = next
                .unwrap_or_else(|_| panic!("no {name} notification within 15 s"))
                .expect("connection open");
            if next["notification"] == name {
                return next["data"].clone();
            }
        }
    }

    /// Closes the socket.
    pub fn close(&self) {
        let _ = self.out.send(Message::Close(None));
    }
}
