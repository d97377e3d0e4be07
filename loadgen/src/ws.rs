//! Opening a WebSocket to Janus, over `ws://` or `wss://` with the trust chosen on the
//! command line, and the one task that writes to it (our SFU's `/ws` is spoken through
//! `signaling_api::client`).

use std::sync::Arc;

use futures_util::stream::SplitStream;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

/// Frames queued for sending at most; a participant sends a few requests at a time.
const OUTGOING_QUEUE: usize = 64;

/// The receiving half of a connection.
pub type Incoming = SplitStream<WebSocketStream<MaybeTlsStream<TcpStream>>>;

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    /// The URL is not a WebSocket URL.
    #[error("bad URL {url}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] client_tls::TlsError),
    /// Connecting or the WebSocket handshake failed.
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

/// Connects to `url`, offering `subprotocol` if given; returns the sender of text frames and
/// the incoming half. The writer task ends when the sender is dropped.
pub async fn connect(
    url: &str,
    tls: &Arc<rustls::ClientConfig>,
    subprotocol: Option<&str>,
) -> Result<(mpsc::Sender<String>, Incoming), WsError> {
    let mut request = url.into_client_request().map_err(|e| WsError::Url {
        url: url.into(),
        reason: e.to_string(),
    })?;
    if let Some(protocol) = subprotocol {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(protocol).map_err(|e| WsError::Url {
                url: url.into(),
                reason: e.to_string(),
            })?,
        );
    }
    let connector = Connector::Rustls(tls.clone());
    let (socket, _) =
        tokio_tungstenite::connect_async_tls_with_config(request, None, true, Some(connector))
            .await
            .map_err(|e| WsError::Connect {
                url: url.into(),
                reason: e.to_string(),
            })?;
    let (mut sink, incoming) = socket.split();
    let (out, mut rx) = mpsc::channel::<String>(OUTGOING_QUEUE);
    tokio::spawn(async move {
        while let Some(text) = rx.recv().await {
            if sink.send(Message::text(text)).await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    Ok((out, incoming))
}
