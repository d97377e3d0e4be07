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
    Answer, ApiError, ApiErrorCode, Event, EventMessage, Lagged, LaggedMessage, Query, Refusal,
    Request, AUTHORIZATION_SCHEME,
};
use serde::Serialize;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::monitoring::event_bus::{stamped, EventBus};
use crate::monitoring::stats::{PeerError, Stats};
use room_core::quality::{Input as QualityInput, QualityWatch};

/// Largest request a monitor may send (requests are a few dozen bytes).
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// Who may use the monitor API, and what it serves.
#[derive(Clone)]
pub struct Monitor {
    /// The admin token; `None` turns the API off.
    pub token: Option<String>,
    /// Pings, and how long a monitor may leave them unanswered.
    pub keepalive: crate::edge::signaling::Keepalive,
    /// What queries are answered from.
    pub stats: Arc<Stats>,
    /// What subscribers receive.
    pub events: EventBus,
    /// The cluster, when there is one (`summary`, `room` and `hosts` answer for it).
    pub routing: Option<Arc<crate::routing::Routing>>,
    /// The rooms' recordings (`recordStart`, `recordStop`, `recordings`).
    pub recordings: Arc<crate::driver::recordings::Recordings>,
}

/// Whether the `Authorization: Bearer <token>` header carries `expected`, compared in
/// constant time.
pub fn token_matches(expected: &str, headers: &HeaderMap) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix(AUTHORIZATION_SCHEME))
        .and_then(|v| v.strip_prefix(' '))
        .unwrap_or("");
    // Constant time: the comparison must not tell how much of a guess was right.
    subtle::ConstantTimeEq::ct_eq(given.as_bytes(), expected.as_bytes()).into()
}

/// Failed monitor logins one address may make per minute before it is refused outright.
pub const FAILED_LOGINS_PER_MINUTE: u32 = 5;

/// The address whose failed logins count together: an IPv4 address, or the /64 network of
/// an IPv6 one (a single host usually holds a whole /64, so counting addresses one by one
/// would give it 2^64 tries).
pub fn login_bucket(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(_) => client,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(std::net::Ipv6Addr::from(bits))
        }
    }
}

/// An HTTP refusal of `/monitor` with its typed body (`monitor_api::Refusal`).
fn refuse(status: StatusCode, code: ApiErrorCode, message: String) -> Response {
    let body = Refusal {
        error: ApiError::new(code, message),
    };
    let json = serde_json::to_string(&body).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], json).into_response()
}

/// The refusal of a missing or wrong token (HTTP 401, before any WebSocket exists).
pub fn refusal(client: IpAddr) -> Response {
    tracing::warn!(%client, "monitor connection refused: missing or wrong token");
    refuse(
        StatusCode::UNAUTHORIZED,
        ApiErrorCode::Unauthorized,
        "missing or wrong monitor token (Authorization: Bearer <MONITOR_TOKEN>)".into(),
    )
}

/// The answer to `/monitor` when the API is off (no `MONITOR_TOKEN`): HTTP 404, no
/// WebSocket, and how to turn it on.
pub fn disabled() -> Response {
    refuse(
        StatusCode::NOT_FOUND,
        ApiErrorCode::Disabled,
        "the monitor API is off: start the supervisor with MONITOR_TOKEN=<secret> \
         (or MONITOR_TOKEN_FILE, --monitor-token) and connect with that token"
            .into(),
    )
}

/// The refusal of a monitor connection over the connection caps (HTTP 503 or 429).
pub fn over_cap(client: IpAddr, refusal: &crate::edge::admission::Refusal) -> Response {
    tracing::warn!(%client, "refused a monitor connection: {refusal}");
    let status = match refusal {
        crate::edge::admission::Refusal::Total(_) => StatusCode::SERVICE_UNAVAILABLE,
        crate::edge::admission::Refusal::PerAddress(_) => StatusCode::TOO_MANY_REQUESTS,
    };
    refuse(status, ApiErrorCode::RateLimited, refusal.to_string())
}

/// The refusal of an address that failed too often (HTTP 429 with Retry-After).
pub fn throttled(client: IpAddr, retry_after_secs: u64) -> Response {
    tracing::warn!(%client, retry_after_secs, "monitor connection refused: too many failed logins from this address");
    let mut response = refuse(
        StatusCode::TOO_MANY_REQUESTS,
        ApiErrorCode::RateLimited,
        format!("more than {FAILED_LOGINS_PER_MINUTE} failed monitor logins a minute from this address; retry in {retry_after_secs} s"),
    );
    if let Ok(value) = retry_after_secs.max(1).to_string().parse() {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
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

/// How long one write to a monitor may take.
const MONITOR_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one monitor until its socket closes, or it leaves pings unanswered for the
/// keepalive's silence limit.
pub async fn serve(socket: WebSocket, monitor: Monitor, remote: SocketAddr) {
    tracing::info!(%remote, "monitor connected");
    let (mut sink, mut stream) = socket.split();
    let keepalive = monitor.keepalive;
    let mut ping = tokio::time::interval(keepalive.ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    let mut last_pong = Instant::now();
    // As for clients: only a pong echoing our last ping's random payload counts.
    let mut last_ping: Option<[u8; 16]> = None;
    let mut subscription: Option<Subscription> = None;
    let mut sampling = tokio::time::interval(QUALITY_PERIOD);
    sampling.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let outgoing = tokio::select! {
            message = stream.next() => match message {
                Some(Ok(Message::Text(request))) => {
                    text(&answer(&monitor, request.as_str(), &mut subscription).await)
                }
                Some(Ok(Message::Binary(_))) => text(&Answer::error(
                    None,
                    ApiError::new(ApiErrorCode::BadRequest, "binary frames are not part of the protocol"),
                )),
                Some(Ok(Message::Pong(payload))) => {
                    if last_ping.is_some_and(|p| p[..] == payload[..]) {
                        last_pong = Instant::now();
                    }
                    continue;
                }
                Some(Ok(Message::Ping(_))) => continue,
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
            _ = ping.tick() => {
                if last_pong.elapsed() >= keepalive.silence_limit {
                    tracing::info!(%remote, "dropping a monitor that answers no ping");
                    break;
                }
                let payload = uuid::Uuid::new_v4().into_bytes();
                last_ping = Some(payload);
                Message::Ping(payload.to_vec().into())
            }
            // Only while someone subscribed to quality events: sample their rooms.
            _ = sampling.tick(), if subscription.as_ref().is_some_and(|s| s.quality.is_some()) => {
                let Some(s) = subscription.as_mut() else { continue };
                let (rooms, observations) = monitor.stats.quality_sample(s.room.as_deref()).await;
                let Some(watch) = s.quality.as_mut() else { continue };
                watch.handle(QualityInput::Sample { rooms, observations }, Instant::now());
                let mut failed = false;
                while let Some(kind) = watch.poll_output() {
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
        // A monitor that takes nothing for a while is dropped, not waited for.
        match tokio::time::timeout(MONITOR_WRITE_TIMEOUT, sink.send(outgoing)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break,
            Err(_) => {
                tracing::info!(%remote, "dropping a monitor that reads nothing");
                break;
            }
        }
    }
    tracing::info!(%remote, "monitor disconnected");
}

pub(crate) fn ok<T: Serialize>(id: u64, data: T) -> Answer {
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
    if let Some(routing) = &monitor.routing {
        if let Some(answer) = crate::edge::monitor_cluster::answer(monitor, routing, &request).await
        {
            return answer;
        }
    }
    answer_query(monitor, request, subscription).await
}

/// Answers `request` (a monitor request's JSON) about this host alone: what another host of
/// the cluster asks over its link.
pub async fn answer_here(monitor: &Monitor, request: &str) -> Answer {
    match Request::parse(request) {
        Ok(
            request @ Request {
                query: Query::Summary | Query::Room { .. },
                ..
            },
        ) => answer_query(monitor, request, &mut None).await,
        Ok(request) => Answer::error(
            Some(request.id),
            ApiError::new(
                ApiErrorCode::BadRequest,
                "hosts ask each other only summary and room",
            ),
        ),
        Err((id, error)) => Answer::error(id, error),
    }
}

/// A recording refusal as the monitor API says it.
fn recording_error(error: crate::driver::recordings::RecordingError) -> ApiError {
    use crate::driver::recordings::RecordingError as E;
    let code = match error {
        E::Off | E::Unwritable { .. } | E::AlreadyRecording(_) => ApiErrorCode::Refused,
        E::UnknownRoom(_) | E::UnknownPeer { .. } | E::NotRecording(_) => ApiErrorCode::NotFound,
    };
    ApiError::new(code, error.to_string())
}

async fn answer_query(
    monitor: &Monitor,
    request: Request,
    subscription: &mut Option<Subscription>,
) -> Answer {
    let id = request.id;
    match request.query {
        Query::Hosts => Answer::error(
            Some(id),
            ApiError::new(
                ApiErrorCode::Unavailable,
                "this SFU is a single host (cluster mode is off: ETCD_ENDPOINTS is unset)",
            ),
        ),
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
        Query::Drain { node } => match (monitor.stats.drain(&node), &monitor.routing) {
            (Some(started), _) => ok(id, started),
            // In a cluster, this host by its id.
            (None, Some(routing)) if routing.me().as_str() == node => {
                let peers = routing.drain_host();
                ok(id, monitor_api::DrainStarted { node, peers })
            }
            (None, Some(_)) => Answer::error(
                Some(id),
                ApiError::new(
                    ApiErrorCode::NotFound,
                    format!("no node {node:?} on this host, and it is not this host's id: a host is drained through its own monitor API"),
                ),
            ),
            (None, None) => Answer::error(
                Some(id),
                ApiError::new(
                    ApiErrorCode::NotFound,
                    format!("no node {node:?} on this host (see `monitor nodes`)"),
                ),
            ),
        },
        Query::RecordStart { room, peer } => match monitor.recordings.start(&room, peer) {
            Ok(manifest) => ok(id, manifest),
            Err(e) => Answer::error(Some(id), recording_error(e)),
        },
        Query::RecordStop { room } => match monitor.recordings.stop(&room).await {
            Ok(manifest) => ok(id, manifest),
            Err(e) => Answer::error(Some(id), recording_error(e)),
        },
        Query::Recordings => match monitor.recordings.list() {
            Ok(list) => ok(id, list),
            Err(e) => Answer::error(Some(id), recording_error(e)),
        },
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
        let token = "s3cret";
        assert!(token_matches(token, &headers(Some("Bearer s3cret"))));
        for refused in [
            None,
            Some("Bearer s3cre"),
            Some("Bearer s3cret2"),
            Some("bearer s3cret"),
            Some("s3cret"),
            Some("Bearer "),
            Some("Basic czNjcmV0"),
        ] {
            assert!(!token_matches(token, &headers(refused)), "{refused:?}");
        }
    }

    #[test]
    fn failed_logins_of_one_ipv6_host_count_together_by_its_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(login_bucket(a), login_bucket(b));
        assert_eq!(login_bucket(a), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        assert_ne!(login_bucket(a), login_bucket(other));
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(login_bucket(v4), v4);
        // Through the buckets the API uses: five failures from five addresses of one /64
        // exhaust it.
        let buckets = crate::edge::admission::AddressBuckets::new(
            FAILED_LOGINS_PER_MINUTE,
            Duration::from_secs(60),
        );
        let now = Instant::now();
        for i in 0..FAILED_LOGINS_PER_MINUTE {
            let address = IpAddr::V6(std::net::Ipv6Addr::new(
                0x2001, 0xdb8, 1, 2, 0, 0, 0, i as u16,
            ));
            buckets.take(login_bucket(address), now);
        }
        assert!(buckets.exhausted(login_bucket(b), now));
        assert!(!buckets.exhausted(login_bucket(other), now));
    }
}
