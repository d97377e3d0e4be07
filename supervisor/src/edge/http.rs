//! The HTTP routes of the supervisor's one port: the demo page, `/ws`, `/monitor`,
//! `/metrics`, `/healthz`, WHIP and WHEP (`/whip/{room}`, `/whep/{room}`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::driver::node_pool::NodePool;
use crate::driver::rooms::Rooms;
use crate::edge::admission::{
    origin_allowed, AddressBuckets, ConnectionCaps, Refusal, TrustedProxies,
};
use crate::edge::monitor_socket::{self, Monitor};
use crate::monitoring::metrics::Metrics;

/// The address of the client of a connection, plain or TLS.
#[derive(Clone, Copy, Debug)]
pub struct RemoteAddr(pub SocketAddr);

/// Read buffer reserved per WebSocket session: it grows for a larger frame, and most are
/// small (8 KiB here was a third of an idle peer's memory; `bench/run.sh idle`).
const WS_READ_BUFFER: usize = 1024;
/// Bytes a session buffers before writing to its socket (it also writes at each flush).
const WS_WRITE_BUFFER: usize = 16 * 1024;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The rooms.
    pub rooms: Arc<Rooms>,
    /// Pings and the silence limit of client sessions.
    pub keepalive: crate::edge::signaling::Keepalive,
    /// Connections open, against their caps.
    pub caps: Arc<ConnectionCaps>,
    /// Page origins allowed to open `/ws` (empty: any).
    pub allowed_origins: Arc<Vec<String>>,
    /// Reverse proxies whose X-Forwarded-For is believed.
    pub proxies: Arc<TrustedProxies>,
    /// Joins per client address.
    pub joins: Arc<AddressBuckets>,
    /// Failed monitor logins per client address.
    pub monitor_failures: Arc<AddressBuckets>,
    /// Requests per second per connection.
    pub requests_per_second: u32,
    /// The nodes.
    pub pool: Arc<NodePool>,
    /// Counters.
    pub metrics: Metrics,
    /// What `/metrics` shows.
    pub registry: Arc<prometheus_client::registry::Registry>,
    /// The monitor API.
    pub monitor: Monitor,
    /// The cluster, when there is one.
    pub routing: Option<Arc<crate::routing::Routing>>,
    /// The running WHIP and WHEP sessions.
    pub whip: Arc<crate::edge::whip::Sessions>,
}

/// The WebSocket layer's cap on a message and on a frame: the protocol's own. A frame whose
/// header announces more is refused before its payload is read (close code 1009), so a
/// client cannot make the supervisor buffer more than this per connection.
const WS_LAYER_MAX: usize = signaling_api::MAX_MESSAGE_BYTES;
/// What a session's socket may buffer for writing beyond what its queue holds: a write that
/// would go past it fails (and the client is dropped) instead of growing without bound.
const WS_MAX_WRITE_BUFFER: usize = 2 * crate::edge::outbox::OUTBOX_BYTES;

/// Every route; the demo page from `web_dir`, or the one built into this binary.
pub fn router(state: AppState, web_dir: Option<PathBuf>) -> Router {
    let page = crate::edge::page::routes(web_dir);
    Router::new()
        .route("/ws", get(websocket))
        .route("/monitor", get(monitor))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .merge(crate::edge::whip::routes())
        .with_state(state)
        .merge(page)
}

async fn websocket(
    State(state): State<AppState>,
    ConnectInfo(RemoteAddr(remote)): ConnectInfo<RemoteAddr>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let client = state.proxies.client_address(remote.ip(), &headers);
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    if !origin_allowed(&state.allowed_origins, origin) {
        tracing::warn!(%client, ?origin, "refused a /ws connection from a page of another origin");
        return (
            StatusCode::FORBIDDEN,
            "this page's origin may not connect (ALLOWED_ORIGINS)\n",
        )
            .into_response();
    }
    let slot = match state.caps.open(client) {
        Ok(slot) => slot,
        Err(refusal) => {
            tracing::warn!(%client, "refused a /ws connection: {refusal}");
            let status = match refusal {
                Refusal::Total(_) => StatusCode::SERVICE_UNAVAILABLE,
                Refusal::PerAddress(_) => StatusCode::TOO_MANY_REQUESTS,
            };
            return (status, format!("{refusal}\n")).into_response();
        }
    };
    let session = crate::edge::signaling::Session {
        rooms: state.rooms,
        metrics: state.metrics,
        keepalive: state.keepalive,
        requests_per_second: state.requests_per_second,
        client,
        joins: state.joins,
        routing: state.routing,
    };
    upgrade
        .max_message_size(WS_LAYER_MAX)
        .max_frame_size(WS_LAYER_MAX)
        // tungstenite reserves 128 KiB for each by default, 256 KiB per idle client; ours
        // are small frames (64 KiB at most), and a session's frames are batched anyway.
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(WS_WRITE_BUFFER)
        .max_write_buffer_size(WS_MAX_WRITE_BUFFER)
        .on_upgrade(move |socket| async move {
            crate::edge::signaling::serve(socket, session).await;
            drop(slot);
        })
}

async fn monitor(
    State(state): State<AppState>,
    ConnectInfo(RemoteAddr(remote)): ConnectInfo<RemoteAddr>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    // Off: nothing to upgrade to, and nothing that looks like an API.
    let Some(token) = state.monitor.token.as_deref() else {
        return monitor_socket::disabled();
    };
    let client = state.proxies.client_address(remote.ip(), &headers);
    let bucket = monitor_socket::login_bucket(client);
    let now = std::time::Instant::now();
    // Guessing the token: a few tries a minute per address, then not even the right one.
    if state.monitor_failures.exhausted(bucket, now) {
        let retry = state.monitor_failures.retry_after(bucket, now);
        return monitor_socket::throttled(client, retry);
    }
    if !monitor_socket::token_matches(token, &headers) {
        state.monitor_failures.take(bucket, now);
        return monitor_socket::refusal(client);
    }
    // Monitors count against the same caps as clients: no way around them with a token.
    let slot = match state.caps.open(client) {
        Ok(slot) => slot,
        Err(refusal) => return monitor_socket::over_cap(client, &refusal),
    };
    upgrade
        .max_message_size(monitor_socket::MAX_REQUEST_BYTES)
        .max_frame_size(monitor_socket::MAX_REQUEST_BYTES)
        .on_upgrade(move |socket| async move {
            monitor_socket::serve(socket, state.monitor, remote).await;
            drop(slot);
        })
}

async fn metrics(State(state): State<AppState>) -> Response {
    match crate::monitoring::metrics_page::render(&state.registry) {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the metrics: {e}\n"),
        )
            .into_response(),
    }
}

async fn healthz(State(state): State<AppState>) -> Response {
    let nodes = state.pool.ready().len();
    if nodes > 0 {
        (StatusCode::OK, format!("ok: {nodes} node(s) ready\n")).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "no media node is ready\n").into_response()
    }
}
