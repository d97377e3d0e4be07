//! One client's WebSocket session on `/ws`: reads requests, answers each one, and pushes
//! the notifications [`Rooms`] queues for the peer. Leaving closes what the peer had; a
//! dropped socket leaves it resumable for a while (`resume` on a new connection).

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::driver::rooms::Rooms;
use crate::edge::admission::{AddressBuckets, RateVerdict, RequestRate};
use crate::edge::outbox::{Outbox, OUTBOX_BYTES};
use crate::edge::writer::{write_frames, Controls};
use crate::monitoring::metrics::Metrics;
use crate::routing::links::{RelaySession, CLOSE_HOST_GONE};
use crate::routing::{Route, Routing};
use ids::HostId;
use signaling_api::{
    error_answer, read_frame, validate_room, ClientError, ClientErrorCode, Method, PeerId, Request,
    MAX_MESSAGE_BYTES,
};

/// Close code of a client that does not read its notifications ("try again later").
const CLOSE_TOO_SLOW: u16 = 1013;
/// Close code of a session whose peer another connection resumed.
const CLOSE_RESUMED_ELSEWHERE: u16 = 4000;
/// Close code of a session whose room was handed to another host (a drain): resume there.
pub(crate) const CLOSE_ROOM_MOVED: u16 = 1012;
/// How long a closing session waits for its last frames to be written.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// How a session keeps its connection alive and notices a vanished client.
#[derive(Clone, Copy, Debug)]
pub struct Keepalive {
    /// A WebSocket ping this often.
    pub ping_every: std::time::Duration,
    /// A client whose last answer to a ping is older than this is dropped, whatever else it
    /// sends.
    pub silence_limit: std::time::Duration,
}

/// Pings whose pong still counts (a late pong answers one of the last few).
const PINGS_REMEMBERED: usize = 4;

/// What a session needs besides its socket.
pub struct Session {
    /// The rooms.
    pub rooms: Arc<Rooms>,
    /// Counters.
    pub metrics: Metrics,
    /// Pings and the silence limit.
    pub keepalive: Keepalive,
    /// Requests per second on average.
    pub requests_per_second: u32,
    /// The client's address (behind a trusted proxy, the one it forwarded).
    pub client: IpAddr,
    /// Joins per client address.
    pub joins: Arc<AddressBuckets>,
    /// The cluster, when there is one.
    pub routing: Option<Arc<Routing>>,
}

/// Who asks: the connection, the peer it speaks for (another one after a `resume`), its
/// address for the checks that go by address, and in a cluster where its room is served.
pub(crate) struct Asker<'a> {
    pub(crate) session: PeerId,
    pub(crate) peer: PeerId,
    pub(crate) client: IpAddr,
    pub(crate) joins: &'a AddressBuckets,
    /// The cluster, when there is one.
    pub(crate) routing: Option<&'a Arc<Routing>>,
    /// Whether another host relayed this session here (it is never relayed again).
    pub(crate) relayed: bool,
}

/// What became of one text frame.
pub(crate) enum Handled {
    /// Refused before the rooms: this answer goes to the client.
    Answer(String),
    /// The rooms answer it (on the outbox, in order with the notifications).
    Done,
    /// Another host serves the room this `join` or `resume` is for: relay the session there,
    /// starting with this frame.
    Relay(HostId),
}

/// Serves one client until its socket closes, it stops reading, goes silent or floods.
pub async fn serve(socket: WebSocket, session: Session) {
    let Session {
        rooms,
        metrics,
        keepalive,
        requests_per_second,
        client,
        joins,
        routing,
    } = session;
    let mut rate = RequestRate::new(requests_per_second, std::time::Instant::now());
    let peer: PeerId = Uuid::new_v4();
    let (mut sink, mut stream) = socket.split();
    let (outbox, inbox) = Outbox::new(OUTBOX_BYTES);
    let mut asker = Asker {
        session: peer,
        peer,
        client,
        joins: &joins,
        routing: routing.as_ref(),
        relayed: false,
    };
    // Set once the session is relayed to the host that serves its room: every frame goes
    // there from then on.
    // Boxed: most sessions are never relayed, and the session's task would carry its space.
    let mut relay: Option<Box<RelaySession>> = None;
    let overflow = inbox.overflow.clone();
    let controls = Arc::new(Controls::default());
    // Set when the writer ends (the socket failed or took nothing for WRITE_TIMEOUT): the
    // reader then stops too, whatever the client still sends.
    let writer_gone = Arc::new(Notify::new());
    let writer = tokio::spawn({
        let writer_gone = writer_gone.clone();
        let controls = controls.clone();
        async move {
            if let Err(e) = write_frames(&mut sink, inbox, &controls).await {
                tracing::debug!(%peer, "writing to the client ended: {e}");
            }
            writer_gone.notify_one();
        }
    });
    rooms.connected(peer, outbox.clone());
    tracing::debug!(%peer, "client connected");
    let mut closing = false;
    let close = |closing: &mut bool, code, reason: &str| {
        if !std::mem::replace(closing, true) {
            controls.close(CloseFrame {
                code,
                reason: reason.to_string().into(),
            });
        }
    };
    let mut ping = tokio::time::interval(keepalive.ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    // Liveness is an answered ping: a client that keeps sending but never reads (and so
    // never answers a ping) is dropped too. Each ping carries 16 random bytes and only a pong
    // echoing one of the last few counts, so a client cannot stay alive on pongs it sends
    // unasked without reading.
    let mut last_pong = tokio::time::Instant::now();
    let mut pings: std::collections::VecDeque<[u8; 16]> = std::collections::VecDeque::new();
    loop {
        let message = tokio::select! {
            biased;
            () = overflow.notified() => {
                if outbox.is_moved() {
                    tracing::info!(peer = %asker.peer, "closing a connection whose room another host serves now");
                    close(&mut closing, CLOSE_ROOM_MOVED, "the room moved to another host: resume");
                    break;
                }
                if outbox.is_evicted() {
                    tracing::info!(peer = %asker.peer, "closing a connection whose peer resumed on another one");
                    close(&mut closing, CLOSE_RESUMED_ELSEWHERE, "resumed on another connection");
                    break;
                }
                tracing::warn!(peer = %asker.peer, client = %client, "closing a client that does not read what it is sent ({} bytes queued)", outbox.queued_bytes());
                metrics.signaling_error("too_slow");
                close(&mut closing, CLOSE_TOO_SLOW, "too slow: notifications would be lost; join again");
                break;
            }
            () = writer_gone.notified() => {
                tracing::info!(peer = %asker.peer, client = %client, "dropping a client whose socket takes nothing (write timeout or error)");
                metrics.signaling_error("too_slow");
                break;
            }
            _ = ping.tick() => {
                if last_pong.elapsed() >= keepalive.silence_limit {
                    tracing::info!(peer = %asker.peer, client = %client, silent_secs = last_pong.elapsed().as_secs(), "dropping a client that answers no ping");
                    close(&mut closing, close_code::AWAY, "no answer to pings");
                    break;
                }
                let payload = Uuid::new_v4().into_bytes();
                if pings.len() == PINGS_REMEMBERED {
                    pings.pop_front();
                }
                pings.push_back(payload);
                controls.ping(payload);
                continue;
            }
            closed = relay_closed(&mut relay) => {
                let (code, reason) = closed;
                tracing::info!(peer = %asker.peer, code, "the serving host closed the relayed session: {reason}");
                close(&mut closing, code, &reason);
                break;
            }
            message = stream.next() => match message {
                Some(message) => message,
                None => break,
            },
        };
        let message = match message {
            Ok(message) => message,
            Err(e) => {
                // Frames above the WebSocket layer's own cap end up here.
                tracing::debug!(peer = %asker.peer, "WebSocket error: {e}");
                close(
                    &mut closing,
                    close_code::SIZE,
                    "message too big or malformed",
                );
                break;
            }
        };
        let answer = match message {
            Message::Text(text) if text.len() > MAX_MESSAGE_BYTES => {
                tracing::info!(peer = %asker.peer, bytes = text.len(), "closing a client that sent an oversized message");
                close(&mut closing, close_code::SIZE, "message larger than 64 KiB");
                break;
            }
            Message::Text(text) => match rate.check(std::time::Instant::now()) {
                RateVerdict::Allow => {
                    // A `join` for a room another host serves ends the relay here: the
                    // session is served or relayed anew, as a first join would be.
                    if relay.is_some() && joins_elsewhere(routing.as_ref(), relay.as_deref(), &text)
                    {
                        relay = None;
                    }
                    if let Some(relay) = &relay {
                        if relay.forward(text.to_string()) {
                            continue;
                        }
                        tracing::warn!(peer = %asker.peer, host = %relay.host(), "closing a relayed client: the link to its host is full or down");
                        close(
                            &mut closing,
                            CLOSE_TOO_SLOW,
                            "the room's host is not reachable now: join again",
                        );
                        break;
                    }
                    // Boxed: a request's future is large and lives only while it is handled;
                    // inline, every idle session's task would carry its space (~6 KB each).
                    match Box::pin(handle(&rooms, &metrics, &mut asker, text.as_str())).await {
                        Handled::Answer(answer) => answer,
                        Handled::Done => continue,
                        Handled::Relay(host) => {
                            match Box::pin(start_relay(
                                routing.as_ref(),
                                &host,
                                client,
                                &outbox,
                                text.to_string(),
                            ))
                            .await
                            {
                                Ok(session) => {
                                    tracing::info!(peer = %asker.peer, %host, "relaying the session to the host that serves its room");
                                    relay = Some(Box::new(session));
                                    continue;
                                }
                                Err(answer) => answer,
                            }
                        }
                    }
                }
                RateVerdict::Refuse => {
                    metrics.signaling_error(ClientErrorCode::RateLimited.as_str());
                    let id = envelope::Envelope::parse(text.as_str()).ok().map(|e| e.id);
                    let slow_down = ClientError::new(
                        ClientErrorCode::RateLimited,
                        format!("more than {requests_per_second} requests per second"),
                    );
                    error_answer(id, &slow_down)
                }
                RateVerdict::Close => {
                    tracing::warn!(peer = %asker.peer, "closing a client that keeps flooding requests");
                    close(
                        &mut closing,
                        close_code::POLICY,
                        "request rate limit exceeded",
                    );
                    break;
                }
            },
            Message::Binary(_) => {
                metrics.signaling_error(ClientErrorCode::BadRequest.as_str());
                error_answer(
                    None,
                    &ClientError::new(
                        ClientErrorCode::BadRequest,
                        "binary frames are not part of the protocol",
                    ),
                )
            }
            Message::Close(_) => break,
            Message::Pong(payload) => {
                if pings.iter().any(|p| p[..] == payload[..]) {
                    last_pong = tokio::time::Instant::now();
                }
                continue;
            }
            Message::Ping(_) => continue,
        };
        // Never waits: a full queue is seen by the overflow branch above, and closes.
        outbox.push(answer);
    }
    // Whatever the reason the socket ended, the peer leaves its room, or is kept for a
    // resume (unless another connection took it over already).
    let peer = asker.peer;
    rooms.disconnected(asker.session, peer, &outbox);
    drop(outbox);
    // A client that does not read may keep the writer blocked in a write: give the close
    // frame a moment, then drop the connection. Meanwhile whatever the client sends is read
    // and dropped, up to its answering close: a socket closed with unread bytes (a pong, say)
    // is reset, and a reset throws away the close frame the client has not read yet.
    let mut writer = writer;
    let handshake = async {
        let mut written = false;
        loop {
            tokio::select! {
                _ = &mut writer, if !written => {
                    written = true;
                    if !closing {
                        break;
                    }
                }
                message = stream.next() => match message {
                    Some(Ok(Message::Close(_))) if written => break,
                    Some(Ok(_)) => continue,
                    _ => {
                        if !written {
                            let _ = (&mut writer).await;
                        }
                        break;
                    }
                },
            }
        }
    };
    if tokio::time::timeout(CLOSE_GRACE, handshake).await.is_err() {
        writer.abort();
        tracing::debug!(%peer, "connection dropped: the client did not take the close frame");
    }
    tracing::debug!(%peer, "client disconnected");
}

/// What the relay's serving host says when it closes the client (pending for ever without a
/// relay).
async fn relay_closed(relay: &mut Option<Box<RelaySession>>) -> (u16, String) {
    match relay {
        Some(relay) => relay.closed.recv().await.unwrap_or((
            CLOSE_HOST_GONE,
            "the room's host is unreachable: join again".into(),
        )),
        None => std::future::pending().await,
    }
}

/// Whether `text` is a `join` for a room that the relay's host does not serve.
fn joins_elsewhere(
    routing: Option<&Arc<Routing>>,
    relay: Option<&RelaySession>,
    text: &str,
) -> bool {
    let (Some(routing), Some(relay)) = (routing, relay) else {
        return false;
    };
    // Cheap test first: most relayed frames are not joins.
    if !text.contains("\"join\"") {
        return false;
    }
    let Ok((_, Method::Join, data)) = read_frame(text) else {
        return false;
    };
    let Ok(Request::Join(args)) = Request::from_data(Method::Join, data) else {
        return false;
    };
    if validate_room(&args.room).is_err() {
        return false;
    }
    match routing.owner(&args.room) {
        Some(owner) => owner != *relay.host(),
        // A new room: claimed where the cluster decides, maybe here.
        None => true,
    }
}

/// Opens the relay of this session to `host` with its first frame; the refusal to answer the
/// client with otherwise.
async fn start_relay(
    routing: Option<&Arc<Routing>>,
    host: &HostId,
    client: IpAddr,
    outbox: &Outbox,
    first: String,
) -> Result<RelaySession, String> {
    let id = envelope::Envelope::parse(&first).ok().map(|e| e.id);
    let unreachable = |why: String| {
        error_answer(
            id,
            &ClientError::new(ClientErrorCode::ClusterUnavailable, why),
        )
    };
    let Some(routing) = routing else {
        return Err(unreachable("no cluster".into()));
    };
    match routing.links.open(host, client, outbox.clone()).await {
        Ok(session) if session.forward(first) => Ok(session),
        Ok(_) => Err(unreachable(format!(
            "the link to host {host} is full: try again"
        ))),
        Err(e) => {
            tracing::warn!(%host, "cannot relay a session: {e}");
            Err(unreachable(format!(
                "the room's host {host} is not reachable now: try again"
            )))
        }
    }
}

/// What becomes of one text frame: refused before it reaches the rooms (the answer), handed
/// to the rooms (which answer it on the outbox, in order with the notifications), or to be
/// relayed to the host serving its room.
pub(crate) async fn handle(
    rooms: &Arc<Rooms>,
    metrics: &Metrics,
    asker: &mut Asker<'_>,
    text: &str,
) -> Handled {
    let peer = asker.peer;
    let (id, method, data) = match read_frame(text) {
        Ok(frame) => frame,
        Err((id, error)) => {
            tracing::debug!(%peer, "bad request: {error}");
            metrics.signaling_error(error.code.as_str());
            return Handled::Answer(error_answer(id, &error));
        }
    };
    match dispatch(rooms, asker, id, method, data).await {
        Ok(None) => Handled::Done,
        Ok(Some(host)) => Handled::Relay(host),
        Err(error) => {
            tracing::debug!(%peer, method = %method.name(), "request refused: {error}");
            metrics.signaling_error(error.code.as_str());
            Handled::Answer(error_answer(Some(id), &error))
        }
    }
}

/// Checks what the edge checks (a room before the arguments, a join's room name and rate)
/// and hands the request to the rooms, which answer it; in a cluster, a `join` or `resume`
/// for a room another host serves names that host instead.
async fn dispatch(
    rooms: &Arc<Rooms>,
    asker: &mut Asker<'_>,
    id: u64,
    method: Method,
    data: Value,
) -> Result<Option<HostId>, ClientError> {
    let (session, peer) = (asker.session, asker.peer);
    // Every method but `join` and `leave` needs a room; say so before looking at its
    // arguments.
    if method.needs_room() && !rooms.is_joined(peer) {
        return Err(ClientError::new(
            ClientErrorCode::NotJoined,
            "join a room first",
        ));
    }
    match Request::from_data(method, data)? {
        Request::Join(args) => {
            // Before anything logs it: a room name reaches the logs only once it is valid (no
            // line breaks to forge log lines with).
            validate_room(&args.room)?;
            if !asker.joins.take(asker.client, std::time::Instant::now()) {
                tracing::warn!(client = %asker.client, room = %args.room, "join refused: too many joins from this address");
                return Err(ClientError::new(
                    ClientErrorCode::RateLimited,
                    format!(
                        "too many joins from this address: at most {} a minute (--joins-per-minute-per-ip)",
                        asker.joins.capacity()
                    ),
                ));
            }
            if let Some(routing) = asker.routing {
                match routing.route_join(&args.room, asker.relayed).await {
                    Route::Local => {}
                    Route::Relay(host) => return Ok(Some(host)),
                    Route::Refused(error) => return Err(error),
                }
            }
            rooms.join(session, peer, id, args).await.map(|()| None)
        }
        Request::Resume(args) => {
            if let (Some(routing), false) = (asker.routing, asker.relayed) {
                match routing.route_resume(&args.resume_token) {
                    Route::Relay(host) => return Ok(Some(host)),
                    Route::Refused(error) => return Err(error),
                    Route::Local => {}
                }
            }
            asker.peer = rooms.resume(session, peer, id, args.resume_token).await;
            Ok(None)
        }
        request => {
            rooms.request(session, peer, id, request).await;
            Ok(None)
        }
    }
}
