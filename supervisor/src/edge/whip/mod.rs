//! WHIP (`/whip/{room}`) and WHEP (`/whep/{room}`), RFC 9725: plain HTTP, SDP in and out.
//! A POST's offer becomes a participant of the room, set up through the rooms exactly as a
//! WebSocket client's requests are (tokens, limits, placement), and answered `201 Created`
//! with the SDP answer, the session's URL (`Location`, relative, so that it stays right
//! behind a proxy that serves the SFU under a prefix) and its `ETag`. `PATCH` on the session
//! takes trickled candidates and ICE restarts, `DELETE` leaves.

mod local_client;
mod session;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use uuid::Uuid;
use whip::{Fragment, Offer};

use crate::edge::admission::Refusal as CapRefusal;
use crate::edge::http::{AppState, RemoteAddr};
use local_client::LocalClient;
pub use session::Sessions;
use session::{Patched, Problem, Role};

/// The largest body taken: an offer ([`whip::offer::MAX_OFFER_BYTES`]) or a fragment.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The WHIP and WHEP routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/whip/{room}", post(post_whip).options(options))
        .route("/whep/{room}", post(post_whep).options(options))
        .route(
            "/whip/{room}/{session}",
            axum::routing::patch(patch_whip).delete(delete_whip),
        )
        .route(
            "/whep/{room}/{session}",
            axum::routing::patch(patch_whep).delete(delete_whep),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// `?peer=`: the publisher a WHEP player watches.
#[derive(Deserialize)]
struct WatchQuery {
    peer: Option<String>,
}

fn problem(status: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{message}\n"),
    )
        .into_response()
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        problem(self.status, &self.message)
    }
}

async fn options(State(state): State<AppState>) -> Response {
    let mut response = (
        StatusCode::NO_CONTENT,
        [
            (header::ALLOW, "OPTIONS, POST"),
            (header::HeaderName::from_static("accept-post"), whip::SDP),
        ],
    )
        .into_response();
    let identity = format!("whip-{}", Uuid::new_v4().simple());
    add_ice_server_links(&state, &identity, response.headers_mut());
    response
}

/// The TURN servers as RFC 9725 hands them to WHIP and WHEP clients: one `Link` header per
/// URL, with credentials for `identity`.
fn add_ice_server_links(state: &AppState, identity: &str, headers: &mut HeaderMap) {
    let Some(turn) = state.rooms.turn_servers() else {
        return;
    };
    for server in turn.ice_servers(identity, crate::edge::join_tokens::unix_now()) {
        for url in &server.urls {
            let mut link = format!("<{url}>; rel=\"ice-server\"");
            if let (Some(username), Some(credential)) = (&server.username, &server.credential) {
                link.push_str(&format!(
                    "; username=\"{username}\"; credential=\"{credential}\"; credential-type=\"password\""
                ));
            }
            if let Ok(value) = HeaderValue::from_str(&link) {
                headers.append(header::LINK, value);
            }
        }
    }
}

async fn post_whip(
    state: State<AppState>,
    remote: ConnectInfo<RemoteAddr>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    start(Role::Publish, state, remote, room, None, headers, body).await
}

async fn post_whep(
    state: State<AppState>,
    remote: ConnectInfo<RemoteAddr>,
    Path(room): Path<String>,
    Query(query): Query<WatchQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    start(Role::Watch, state, remote, room, query.peer, headers, body).await
}

async fn start(
    role: Role,
    State(state): State<AppState>,
    ConnectInfo(RemoteAddr(remote)): ConnectInfo<RemoteAddr>,
    room: String,
    publisher: Option<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let client = state.proxies.client_address(remote.ip(), &headers);
    if let Err(bad) = content_type(&headers, whip::SDP) {
        return bad.into_response();
    }
    let Ok(text) = std::str::from_utf8(&body) else {
        return problem(400, "the body is not UTF-8 text");
    };
    let offer = match Offer::read(text) {
        Ok(offer) => offer,
        Err(refusal) => {
            tracing::info!(%client, kind = role.name(), "offer refused: {refusal}");
            return problem(refusal.status(), &refusal.to_string());
        }
    };
    let publisher = match publisher.map(|p| p.parse::<Uuid>()) {
        None => None,
        Some(Ok(peer)) => Some(peer),
        Some(Err(_)) => return problem(400, "`peer` is not a peer id"),
    };
    let token = match bearer(&headers) {
        Ok(token) => token,
        Err(bad) => return bad.into_response(),
    };
    let slot = match state.caps.open(client) {
        Ok(slot) => slot,
        Err(refusal) => {
            tracing::warn!(%client, kind = role.name(), "refused a session: {refusal}");
            let status = match refusal {
                CapRefusal::Total(_) => 503,
                CapRefusal::PerAddress(_) => 429,
            };
            return problem(status, &refusal.to_string());
        }
    };
    let local = LocalClient::connect(
        state.rooms.clone(),
        state.metrics.clone(),
        state.joins.clone(),
        state.routing.clone(),
        client,
        match role {
            Role::Publish => room_core::rooms::Via::Whip,
            Role::Watch => room_core::rooms::Via::Whep,
        },
    );
    let request = session::Request {
        role,
        room: room.clone(),
        offer,
        token,
        publisher,
        client,
    };
    match session::start(&state.whip, local, request, slot).await {
        Ok(started) => {
            let location = format!("{room}/{}", started.id);
            let mut response = (
                StatusCode::CREATED,
                [(header::CONTENT_TYPE, whip::SDP)],
                started.answer,
            )
                .into_response();
            let headers = response.headers_mut();
            for (name, value) in [(header::LOCATION, location), (header::ETAG, started.etag)] {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.insert(name, value);
                }
            }
            add_ice_server_links(&state, &started.id.to_string(), headers);
            response
        }
        Err(problem) => {
            tracing::info!(%client, %room, kind = role.name(), status = problem.status, "session refused: {}", problem.message);
            problem.into_response()
        }
    }
}

/// Refuses a body that is not of `expected` type.
fn content_type(headers: &HeaderMap, expected: &str) -> Result<(), Problem> {
    let given = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = given.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(Problem::new(
            415,
            format!("the body must be `Content-Type: {expected}`, not `{given}`"),
        ))
    }
}

/// The bearer token of `Authorization`, if any.
fn bearer(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().unwrap_or_default();
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() => {
            Ok(Some(token.trim().to_string()))
        }
        _ => Err(Problem::new(
            401,
            "Authorization must be `Bearer <join token>`",
        )),
    }
}

fn session_id(text: &str) -> Result<Uuid, Problem> {
    text.parse()
        .map_err(|_| Problem::new(404, "no such session"))
}

async fn patch_whip(
    state: State<AppState>,
    Path((room, session)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    patch(Role::Publish, state, room, session, headers, body).await
}

async fn patch_whep(
    state: State<AppState>,
    Path((room, session)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    patch(Role::Watch, state, room, session, headers, body).await
}

async fn patch(
    role: Role,
    State(state): State<AppState>,
    room: String,
    session: String,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let id = match session_id(&session) {
        Ok(id) => id,
        Err(unknown) => return unknown.into_response(),
    };
    if let Err(bad) = content_type(&headers, whip::SDP_FRAG) {
        return bad.into_response();
    }
    let Ok(text) = std::str::from_utf8(&body) else {
        return problem(400, "the body is not UTF-8 text");
    };
    let fragment = match Fragment::read(text) {
        Ok(fragment) => fragment,
        Err(refusal) => return problem(refusal.status(), &refusal.to_string()),
    };
    let if_match = headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match state.whip.patch(role, &room, id, fragment, if_match).await {
        Ok(Patched::Trickled) => StatusCode::NO_CONTENT.into_response(),
        Ok(Patched::Restarted { etag, fragment }) => {
            let mut response = (
                StatusCode::OK,
                [(header::CONTENT_TYPE, whip::SDP_FRAG)],
                fragment,
            )
                .into_response();
            if let Ok(etag) = HeaderValue::from_str(&etag) {
                response.headers_mut().insert(header::ETAG, etag);
            }
            response
        }
        Err(problem) => problem.into_response(),
    }
}

async fn delete_whip(
    state: State<AppState>,
    Path((room, session)): Path<(String, String)>,
) -> Response {
    delete(Role::Publish, state, room, session).await
}

async fn delete_whep(
    state: State<AppState>,
    Path((room, session)): Path<(String, String)>,
) -> Response {
    delete(Role::Watch, state, room, session).await
}

async fn delete(
    role: Role,
    State(state): State<AppState>,
    room: String,
    session: String,
) -> Response {
    let id = match session_id(&session) {
        Ok(id) => id,
        Err(unknown) => return unknown.into_response(),
    };
    if state.whip.delete(role, &room, id).await {
        StatusCode::OK.into_response()
    } else {
        problem(404, "no such session")
    }
}

/// The sessions of a supervisor.
pub fn sessions() -> Arc<Sessions> {
    Arc::new(Sessions::default())
}
