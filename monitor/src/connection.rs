//! The connection to a supervisor's `/monitor`: URL rules, TLS trust, the token, and
//! requests matched to their answers.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;

use client_tls::TlsError;
pub use client_tls::Trust;
use futures_util::{SinkExt, StreamExt};
use monitor_api::{Answer, ApiError, Query, Request, ServerMessage, AUTHORIZATION_SCHEME};
use rustls::CertificateError;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, Uri};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

/// Why talking to the supervisor failed; each says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL cannot be used.
    #[error("{0}")]
    Url(String),
    /// No TLS configuration could be made (an unreadable `--ca` file).
    #[error(transparent)]
    TlsSetup(#[from] TlsError),
    /// The server's certificate is not trusted.
    #[error("the supervisor's TLS certificate is not trusted ({0}): pass --ca FILE with the certificate (or the CA that signed it), or --insecure to skip verification")]
    Untrusted(String),
    /// TLS failed for another reason.
    #[error("TLS handshake with {url} failed ({reason}); is the supervisor in TLS mode (TLS_MODE=1)? A plain local supervisor is at ws://127.0.0.1:PORT/monitor")]
    Tls {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The token was refused.
    #[error("the supervisor refused the monitor token (HTTP 401): pass the supervisor's MONITOR_TOKEN with --token or the MONITOR_TOKEN variable")]
    Unauthorized,
    /// The TCP connection failed.
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The supervisor answered with an error.
    #[error("{0}")]
    Api(ApiError),
    /// The connection broke or carried something unexpected.
    #[error("{0}")]
    Protocol(String),
}

/// Checks `url`: `wss://` anywhere, `ws://` only to a loopback host (a token and room names
/// must not cross a network in clear).
pub fn check_url(url: &str) -> Result<Uri, ConnectError> {
    let uri: Uri = url
        .parse()
        .map_err(|e| ConnectError::Url(format!("invalid URL {url:?}: {e}")))?;
    let host = uri
        .host()
        .ok_or_else(|| ConnectError::Url(format!("URL {url:?} has no host")))?;
    match uri.scheme_str() {
        Some("wss") => Ok(uri),
        Some("ws") if is_loopback(host) => Ok(uri),
        Some("ws") => Err(ConnectError::Url(format!(
            "refusing ws:// to {host}: the token would cross the network unencrypted; use wss:// (plain ws:// is only for 127.0.0.1, ::1 or localhost)"
        ))),
        _ => Err(ConnectError::Url(format!(
            "URL {url:?} must start with wss:// (or ws:// for a local supervisor)"
        ))),
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// An open monitor connection.
pub struct Client {
    socket: Socket,
    next_id: u64,
    /// Events that arrived while an answer was awaited.
    pushed: VecDeque<ServerMessage>,
}

/// Where to connect and how.
#[derive(Clone, Debug)]
pub struct Target {
    /// `wss://host:port/monitor`.
    pub url: String,
    /// The admin token.
    pub token: Option<String>,
    /// How to trust the server.
    pub trust: Trust,
}

fn describe_io(url: &str, error: &std::io::Error) -> ConnectError {
    let rustls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(reason)) => {
            let reason = match reason {
                CertificateError::UnknownIssuer => "unknown issuer".to_string(),
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => {
                    "it is for another host name".to_string()
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    "expired".to_string()
                }
                // WebPKI's own refusals, e.g. a self-signed certificate marked as a CA.
                CertificateError::Other(_) => "self-signed, or not issued by a trusted CA".into(),
                other => rustls::Error::InvalidCertificate(other.clone()).to_string(),
            };
            ConnectError::Untrusted(reason)
        }
        Some(other) => ConnectError::Tls {
            url: url.to_string(),
            reason: other.to_string(),
        },
        None => ConnectError::Connect {
            url: url.to_string(),
            reason: match error.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    "connection refused (is the supervisor running on that port?)".to_string()
                }
                _ => error.to_string(),
            },
        },
    }
}

impl Client {
    /// Connects, presenting the token, and checks the server as `target.trust` says.
    pub async fn connect(target: &Target) -> Result<Client, ConnectError> {
        check_url(&target.url)?;
        let mut request = target
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| ConnectError::Url(format!("invalid URL {:?}: {e}", target.url)))?;
        if let Some(token) = &target.token {
            let value = HeaderValue::from_str(&format!("{AUTHORIZATION_SCHEME} {token}")).map_err(
                |_| {
                    ConnectError::Url(
                        "the token must be visible ASCII characters without spaces".into(),
                    )
                },
            )?;
            request.headers_mut().insert("authorization", value);
        }
        let connector = Connector::Rustls(Arc::new(client_tls::client_config(&target.trust)?));
        let connected =
            tokio_tungstenite::connect_async_tls_with_config(request, None, false, Some(connector))
                .await;
        let socket = match connected {
            Ok((socket, _)) => socket,
            Err(tungstenite::Error::Http(response)) if response.status() == 401 => {
                return Err(ConnectError::Unauthorized)
            }
            Err(tungstenite::Error::Http(response)) => {
                // The supervisor says why in a typed body (the API off, too many failures).
                let refusal = response
                    .body()
                    .as_deref()
                    .and_then(|body| serde_json::from_slice::<monitor_api::Refusal>(body).ok());
                if let Some(refusal) = refusal {
                    return Err(ConnectError::Api(refusal.error));
                }
                return Err(ConnectError::Connect {
                    url: target.url.clone(),
                    reason: format!(
                        "HTTP {} (is this the supervisor's /monitor URL?)",
                        response.status()
                    ),
                });
            }
            Err(tungstenite::Error::Io(e)) => return Err(describe_io(&target.url, &e)),
            Err(e) => {
                let hint = if target.url.starts_with("ws://") {
                    " (if the supervisor runs with TLS_MODE=1, use wss://)"
                } else {
                    ""
                };
                return Err(ConnectError::Connect {
                    url: target.url.clone(),
                    reason: format!("{e}{hint}"),
                });
            }
        };
        Ok(Client {
            socket,
            next_id: 1,
            pushed: VecDeque::new(),
        })
    }

    /// Sends `query` without waiting; returns its id.
    pub async fn send(&mut self, query: Query) -> Result<u64, ConnectError> {
        let id = self.next_id;
        self.next_id += 1;
        let text = serde_json::to_string(&Request { id, query })
            .map_err(|e| ConnectError::Protocol(e.to_string()))?;
        self.socket
            .send(Message::Text(text.into()))
            .await
            .map_err(|e| ConnectError::Protocol(format!("cannot send: {e}")))?;
        Ok(id)
    }

    /// Asks `query` and waits for its answer; events arriving meanwhile are kept for
    /// [`Client::next`].
    pub async fn call(&mut self, query: Query) -> Result<Value, ConnectError> {
        let id = self.send(query).await?;
        loop {
            match self.receive().await? {
                ServerMessage::Answer(answer) if answer.id == Some(id) => {
                    return answer_data(answer)
                }
                ServerMessage::Answer(answer) if answer.id.is_none() => return answer_data(answer),
                ServerMessage::Answer(_) => {}
                push => self.pushed.push_back(push),
            }
        }
    }

    /// The next message from the supervisor (answers to [`Client::send`], events).
    pub async fn next(&mut self) -> Result<ServerMessage, ConnectError> {
        match self.pushed.pop_front() {
            Some(message) => Ok(message),
            None => self.receive().await,
        }
    }

    async fn receive(&mut self) -> Result<ServerMessage, ConnectError> {
        loop {
            let message = self
                .socket
                .next()
                .await
                .ok_or_else(|| {
                    ConnectError::Protocol("the supervisor closed the connection".into())
                })?
                .map_err(|e| ConnectError::Protocol(format!("connection lost: {e}")))?;
            match message {
                Message::Text(text) => {
                    return serde_json::from_str(text.as_str()).map_err(|e| {
                        ConnectError::Protocol(format!(
                            "unexpected message from the supervisor: {e}"
                        ))
                    })
                }
                Message::Close(_) => {
                    return Err(ConnectError::Protocol(
                        "the supervisor closed the connection".into(),
                    ))
                }
                _ => continue,
            }
        }
    }
}

/// The data of a successful answer, or its error.
pub fn answer_data(answer: Answer) -> Result<Value, ConnectError> {
    match (answer.ok, answer.data, answer.error) {
        (true, data, _) => Ok(data.unwrap_or(Value::Null)),
        (false, _, Some(error)) => Err(ConnectError::Api(error)),
        (false, _, None) => Err(ConnectError::Protocol(
            "an error answer without error".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_websockets_only_to_loopback() {
        for ok in [
            "wss://sfu.example.com:8000/monitor",
            "wss://10.0.0.1:8000/monitor",
            "ws://127.0.0.1:8000/monitor",
            "ws://localhost:8000/monitor",
            "ws://[::1]:8000/monitor",
            "ws://127.9.9.9/monitor",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for refused in [
            "ws://10.0.0.1:8000/monitor",
            "ws://sfu.example.com/monitor",
            "ws://localhost.example.com/monitor",
            "http://127.0.0.1:8000/monitor",
            "127.0.0.1:8000",
            "wss://",
        ] {
            assert!(check_url(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn an_error_answer_is_an_error() {
        let answer = Answer::error(
            Some(1),
            ApiError::new(monitor_api::ApiErrorCode::NotFound, "no room \"x\""),
        );
        let error = answer_data(answer).unwrap_err();
        assert_eq!(error.to_string(), "not_found: no room \"x\"");
        let data = answer_data(Answer::ok(2, serde_json::json!({"a": 1}))).unwrap();
        assert_eq!(data["a"], 1);
    }
}
