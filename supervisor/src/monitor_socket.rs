//! The monitor API's WebSocket at `/monitor` (docs/monitor-api.md): admin-token check on the
//! upgrade, queries answered from [`Stats`], and the event stream of [`EventBus`] for
//! subscribers.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use monitor_api::{
    Answer, ApiError, ApiErrorCode, Event, EventMessage, Lagged, LaggedMessage, Query, Request,
    AUTHORIZATION_SCHEME,
};
use serde::Serialize;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::event_bus::{stamped, EventBus};
use crate::quality::QualityWatch;
use crate::stats::{PeerError, Stats};

/// Largest request a monitor may send (requests are a few dozen bytes).
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// Who may use the monitor API, and what it serves.
#[derive(Clone)]
pub struct Monitor {
    /// The admin token; `None` turns the API off.
    pub token: Option<String>,
    /// What queries are answered from.
    pub stats: Arc<Stats>,
    /// What subscribers receive.
    pub events: EventBus,
}

/// How an upgrade request's credentials compare with the configured token.
#[derive(Debug, PartialEq, Eq)]
pub enum Access {
    /// The token matches.
    Granted,
    /// No token is configured: every request is answered with `disabled`.
    Disabled,
    /// The token is missing or wrong.
    Refused,
}

/// Checks the `Authorization: Bearer <token>` header against `expected`, in constant time.
pub fn check_access(expected: Option<&str>, headers: &HeaderMap) -> Access {
    let Some(expected) = expected else {
        return Access::Disabled;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix(AUTHORIZATION_SCHEME))
        .and_then(|v| v.strip_prefix(' '))
        .unwrap_or("");
    // Constant time: the comparison must not tell how much of a guess was right.
    let same: bool = subtle::ConstantTimeEq::ct_eq(given.as_bytes(), expected.as_bytes()).into();
    if same {
        Access::Granted
    } else {
        Access::Refused
    }
}

/// Failed monitor logins one address may make per minute before it is refused outright.
pub const FAILED_LOGINS_PER_MINUTE: u32 = 5;

/// The refusal of a missing or wrong token (HTTP 401, before any WebSocket exists).
pub fn refusal(client: IpAddr) -> Response {
    tracing::warn!(%client, "monitor connection refused: missing or wrong token");
    let body = serde_json::json!({"error": {
        "code": "unauthorized",
        "message": "missing or wrong monitor token (Authorization: Bearer <MONITOR_TOKEN>)",
    }});
    (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The refusal of an address that failed too often (HTTP 429 with Retry-After).
pub fn throttled(client: IpAddr, retry_after_secs: u64) -> Response {
    tracing::warn!(%client, retry_after_secs, "monitor connection refused: too many failed logins from this address");
    let body = serde_json::json!({"error": {
        "code": "rate_limited",
        "message": format!("more than {FAILED_LOGINS_PER_MINUTE} failed monitor logins a minute from this address; retry in {retry_after_secs} s"),
    }});
    (
        StatusCode::TOO_MANY_REQUESTS,
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::RETRY_AFTER, retry_after_secs.max(1).to_string()),
        ],
        body.to_string(),
    )
        .into_response()
}

fn text<T: Serialize>(message: &T) -> Message {
    // These types serialise to JSON without fail (no maps with non-string keys).
    Message::Text(serde_json::to_string(message).unwrap_or_default().into())
}

/// A subscription: the receiver, the optional room filter and, for a subscriber of quality
/// events, the watch its samples feed.
struct Subscription {
    events: broadcast::Receiver<Arc<Event>>,
    room: Option<String>,
    quality: Option<QualityWatch>,
}

/// How often a quality subscriber's rooms are sampled.
pub const QUALITY_PERIOD: Duration = Duration::from_secs(2);

/// What a subscriber is sent next.
async fn next_for(subscription: &mut Subscription) -> Option<Message> {
    loop {
        match subscription.events.recv().await {
            Ok(event) => {
                let wanted = match (&subscription.room, event.kind.room()) {
                    (None, _) => true,
                    (Some(want), Some(room)) => want == room,
                    (Some(_), None) => false,
                };
                if wanted {
                    let message = EventMessage {
                        event: (*event).clone(),
                    };
                    return Some(text(&message));
                }
            }
            Err(RecvError::Lagged(missed)) => {
                return Some(text(&LaggedMessage {
                    lagged: Lagged { missed },
                }))
            }
            Err(RecvError::Closed) => return None,
        }
    }
}

/// Serves one monitor until its socket closes. `enabled` is false when no token is
/// configured.
pub async fn serve(socket: WebSocket, monitor: Monitor, remote: SocketAddr, enabled: bool) {
    tracing::info!(%remote, "monitor connected");
    let (mut sink, mut stream) = socket.split();
    let mut subscription: Option<Subscription> = None;
    let mut sampling = tokio::time::interval(QUALITY_PERIOD);
    sampling.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let outgoing = tokio::select! {
            message = stream.next() => match message {
                Some(Ok(Message::Text(request))) => {
                    let answer = if enabled {
                        answer(&monitor, request.as_str(), &mut subscription).await
                    } else {
                        disabled(request.as_str())
                    };
                    text(&answer)
                }
                Some(Ok(Message::Binary(_))) => text(&Answer::error(
                    None,
                    ApiError::new(ApiErrorCode::BadRequest, "binary frames are not part of the protocol"),
                )),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            },
            // A slow monitor stops this branch while its socket is full; the bus then drops
            // its oldest events and the next receive reports how many.
            Some(message) = async {
                match subscription.as_mut() {
                    Some(s) => next_for(s).await,
                    None => std::future::pending().await,
                }
            } => message,
            // Only while someone subscribed to quality events: sample their rooms.
            _ = sampling.tick(), if subscription.as_ref().is_some_and(|s| s.quality.is_some()) => {
                let Some(s) = subscription.as_mut() else { continue };
                let (rooms, observations) = monitor.stats.quality_sample(s.room.as_deref()).await;
                let Some(watch) = s.quality.as_mut() else { continue };
                watch.handle_sample(&rooms, observations, Instant::now());
                let mut failed = false;
                while let Some(kind) = watch.poll_event() {
                    let event = EventMessage { event: stamped(kind) };
                    if sink.send(text(&event)).await.is_err() {
                        failed = true;
                        break;
                    }
                }
                if failed {
                    break;
                }
                continue;
            }
        };
        if sink.send(outgoing).await.is_err() {
            break;
        }
    }
    tracing::info!(%remote, "monitor disconnected");
}

fn disabled(request: &str) -> Answer {
    let id = Request::parse(request).ok().map(|r| r.id);
    Answer::error(
        id,
        ApiError::new(
            ApiErrorCode::Disabled,
            "the monitor API is off: start the supervisor with MONITOR_TOKEN=<secret> \
             (or --monitor-token) and connect with that token",
        ),
    )
}

fn ok<T: Serialize>(id: u64, data: T) -> Answer {
    // The answer types are plain structs with string keys: serialising them cannot fail.
    Answer::ok(id, serde_json::to_value(data).unwrap_or_default())
}

async fn answer(
    monitor: &Monitor,
    request: &str,
    subscription: &mut Option<Subscription>,
) -> Answer {
    let request = match Request::parse(request) {
        Ok(request) => request,
        Err((id, error)) => return Answer::error(id, error),
    };
    let id = request.id;
    match request.query {
        Query::Summary => ok(id, monitor.stats.summary()),
        Query::Nodes => ok(id, monitor.stats.nodes()),
        Query::Rooms => ok(id, monitor.stats.rooms()),
        Query::Room { room } => match monitor.stats.room(&room).await {
            Some(detail) => ok(id, detail),
            None => Answer::error(
                Some(request.id),
                ApiError::new(ApiErrorCode::NotFound, format!("no room {room:?}")),
            ),
        },
        Query::Peer { room, peer } => match monitor.stats.peer(&room, &peer).await {
            Ok(diagnostics) => ok(id, diagnostics),
            Err(e) => {
                let code = match e {
                    PeerError::Node(_) => ApiErrorCode::Unavailable,
                    _ => ApiErrorCode::NotFound,
                };
                Answer::error(Some(id), ApiError::new(code, e.to_string()))
            }
        },
        Query::Subscribe { room, quality } => {
            *subscription = Some(Subscription {
                events: monitor.events.subscribe(),
                room,
                quality: quality.then(QualityWatch::default),
            });
            Answer::ok(request.id, serde_json::json!({}))
        }
        Query::Unsubscribe => {
            *subscription = None;
            Answer::ok(request.id, serde_json::json!({}))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn the_token_must_match_exactly() {
        let token = Some("s3cret");
        assert_eq!(
            check_access(token, &headers(Some("Bearer s3cret"))),
            Access::Granted
        );
        for refused in [
            None,
            Some("Bearer s3cre"),
            Some("Bearer s3cret2"),
            Some("bearer s3cret"),
            Some("s3cret"),
            Some("Bearer "),
            Some("Basic czNjcmV0"),
        ] {
            assert_eq!(
                check_access(token, &headers(refused)),
                Access::Refused,
                "{refused:?}"
            );
        }
    }

    #[test]
    fn without_a_configured_token_the_api_is_off() {
        assert_eq!(
            check_access(None, &headers(Some("Bearer anything"))),
            Access::Disabled
        );
        let answer = disabled(r#"{"id":7,"method":"summary"}"#);
        assert_eq!(answer.id, Some(7));
        let error = answer.error.unwrap();
        assert_eq!(error.code, ApiErrorCode::Disabled);
        assert!(error.message.contains("MONITOR_TOKEN"));
    }
}
