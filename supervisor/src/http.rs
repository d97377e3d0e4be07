//! The HTTP routes of the supervisor's one port: the demo page, `/ws`, `/healthz`.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_http::services::ServeDir;

use crate::node_pool::NodePool;
use crate::rooms::Rooms;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The rooms.
    pub rooms: Arc<Rooms>,
    /// The nodes.
    pub pool: Arc<NodePool>,
}

/// The WebSocket layer's own cap. Frames above [`crate::protocol::MAX_MESSAGE_BYTES`] and up
/// to this one are read and answered with close code 1009; larger ones fail in the layer,
/// which also ends in 1009.
const WS_LAYER_MAX: usize = 1 << 20;

/// Every route. `web_dir` holds the built demo page.
pub fn router(state: AppState, web_dir: PathBuf) -> Router {
    let page = if web_dir.join("index.html").is_file() {
        Router::new().fallback_service(ServeDir::new(web_dir))
    } else {
        tracing::warn!(
            "no demo page in {} (build it: cd web && npm ci && npm run build)",
            web_dir.display()
        );
        Router::new().fallback(|| async {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "The demo page is not built: run scripts/setup.sh (or cd web && npm ci && npm run build).\n",
            )
        })
    };
    Router::new()
        .route("/ws", get(websocket))
        .route("/healthz", get(healthz))
        .with_state(state)
        .merge(page)
}

async fn websocket(State(state): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    upgrade
        .max_message_size(WS_LAYER_MAX)
        .max_frame_size(WS_LAYER_MAX)
        .on_upgrade(move |socket| crate::signaling::serve(socket, state.rooms))
}

async fn healthz(State(state): State<AppState>) -> Response {
    let nodes = state.pool.ready().len();
    if nodes > 0 {
        (StatusCode::OK, format!("ok: {nodes} node(s) ready\n")).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "no media node is ready\n").into_response()
    }
}
