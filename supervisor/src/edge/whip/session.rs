//! One WHIP or WHEP session: set up from its offer as a participant of its room (join, one
//! transport, producers or consumers, all through the rooms like a WebSocket client's
//! requests), then kept by a task that takes its PATCHes and its DELETE and notices when the
//! SFU closes it. The sessions by id are [`Sessions`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use signaling_api::calls::ResumeConsumer;
use signaling_api::frames::CallError;
use signaling_api::media::RtpCapabilities;
use signaling_api::{
    ConnectTransportArgs, ConsumeArgs, ConsumerArgs, CreateTransportArgs, Direction, JoinArgs,
    Joined, Kind, Notification, PeerId, ProduceArgs, TransportArgs, TransportState,
};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;
use whip::{AnswerMedia, Fragment, Offer, ServerTransport};

use super::local_client::{Failure, LocalClient};
use crate::edge::admission::ConnectionSlot;

/// Whether a session publishes (WHIP) or watches (WHEP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// WHIP.
    Publish,
    /// WHEP.
    Watch,
}

impl Role {
    /// `whip` or `whep`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Publish => "whip",
            Role::Watch => "whep",
        }
    }
}

/// An HTTP status and a sentence for the client.
#[derive(Debug)]
pub struct Problem {
    /// The status.
    pub status: u16,
    /// Why.
    pub message: String,
}

impl Problem {
    /// `status` because of `message`.
    pub fn new(status: u16, message: impl Into<String>) -> Problem {
        Problem {
            status,
            message: message.into(),
        }
    }
}

impl From<Failure> for Problem {
    fn from(failure: Failure) -> Problem {
        let status = match &failure {
            Failure::Call(CallError::Refused { code, .. }) => match code.as_str() {
                "unauthorized" => 401,
                "forbidden" => 403,
                "not_found" => 404,
                "rate_limited" => 429,
                "bad_request" | "invalid_argument" | "media_error" => 422,
                "room_full"
                | "too_many_producers"
                | "too_many_transports"
                | "too_many_consumers"
                | "capacity"
                | "node_unavailable"
                | "cluster_unavailable"
                | "shutting_down" => 503,
                _ => 500,
            },
            Failure::Call(CallError::Timeout(_)) => 504,
            Failure::Call(_) => 502,
            Failure::Elsewhere(_) | Failure::Closed => 503,
        };
        Problem::new(status, failure.to_string())
    }
}

/// What a POST asks for.
pub struct Request {
    /// Publish or watch.
    pub role: Role,
    /// The room.
    pub room: String,
    /// The client's offer.
    pub offer: Offer,
    /// The bearer token, when given.
    pub token: Option<String>,
    /// WHEP: the publisher to watch (`?peer=`).
    pub publisher: Option<PeerId>,
    /// The client's address.
    pub client: IpAddr,
}

/// A session set up: what the POST answers.
pub struct Started {
    /// Its id (in its URL).
    pub id: Uuid,
    /// Its ETag.
    pub etag: String,
    /// The SDP answer.
    pub answer: String,
}

/// What a PATCH or DELETE asks of a running session.
enum Command {
    Patch {
        fragment: Fragment,
        if_match: Option<String>,
        reply: oneshot::Sender<Result<Patched, Problem>>,
    },
    Delete {
        reply: oneshot::Sender<()>,
    },
}

/// What a PATCH did.
pub enum Patched {
    /// Candidates taken (the SFU, ICE-lite, needs none).
    Trickled,
    /// ICE restarted: the new ETag and the SFU's fragment.
    Restarted {
        /// The new ETag.
        etag: String,
        /// The SFU's new credentials and candidates.
        fragment: String,
    },
}

/// A running session as the registry keeps it.
struct Entry {
    room: String,
    role: Role,
    commands: mpsc::Sender<Command>,
}

/// The running sessions by id.
#[derive(Default)]
pub struct Sessions {
    entries: Mutex<HashMap<Uuid, Entry>>,
}

/// Commands queued per session: a client sends one request at a time.
const COMMANDS: usize = 4;

impl Sessions {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The commands of session `id` of `room` and `role`; `None` for any other.
    fn commands(&self, role: Role, room: &str, id: Uuid) -> Option<mpsc::Sender<Command>> {
        self.entries()
            .get(&id)
            .filter(|e| e.role == role && e.room == room)
            .map(|e| e.commands.clone())
    }

    /// PATCH of session `id`.
    pub async fn patch(
        &self,
        role: Role,
        room: &str,
        id: Uuid,
        fragment: Fragment,
        if_match: Option<String>,
    ) -> Result<Patched, Problem> {
        let unknown = || Problem::new(404, "no such session");
        let commands = self.commands(role, room, id).ok_or_else(unknown)?;
        let (reply, answer) = oneshot::channel();
        let command = Command::Patch {
            fragment,
            if_match,
            reply,
        };
        if commands.try_send(command).is_err() {
            return Err(Problem::new(429, "one request at a time per session"));
        }
        answer.await.map_err(|_| unknown())?
    }

    /// DELETE of session `id`; whether there was one.
    pub async fn delete(&self, role: Role, room: &str, id: Uuid) -> bool {
        let Some(commands) = self.commands(role, room, id) else {
            return false;
        };
        let (reply, done) = oneshot::channel();
        // A full queue: the session is busy with a PATCH; the DELETE waits its turn.
        if commands.send(Command::Delete { reply }).await.is_err() {
            return false;
        }
        let _ = done.await;
        true
    }
}

/// Sets up the session `request` asks for on `client` and starts its task; its slot counts
/// against the connection caps for as long as it runs.
pub async fn start(
    sessions: &Arc<Sessions>,
    mut client: LocalClient,
    request: Request,
    slot: ConnectionSlot,
) -> Result<Started, Problem> {
    let mut seen = Vec::new();
    let setup = match request.role {
        Role::Publish => publish(&mut client, &request, &mut seen).await,
        Role::Watch => watch(&mut client, &request, &mut seen).await,
    };
    let (transport_id, server, answer) = match setup {
        Ok(setup) => setup,
        Err(problem) => {
            client.leave().await;
            return Err(problem);
        }
    };
    let id = Uuid::new_v4();
    let etag = etag_of(&server);
    let (commands, queue) = mpsc::channel(COMMANDS);
    sessions.entries().insert(
        id,
        Entry {
            room: request.room.clone(),
            role: request.role,
            commands,
        },
    );
    tracing::info!(session = %id, peer = %client.peer, room = %request.room, kind = request.role.name(), client = %request.client, "session started");
    let mut running = Running {
        id,
        role: request.role,
        room: request.room,
        client_ufrag: request.offer.ice_ufrag.clone(),
        first_media: request
            .offer
            .media
            .first()
            .map(|m| (m.media_type.clone(), m.mid.clone()))
            .unwrap_or_default(),
        transport_id,
        server,
        etag: etag.clone(),
        connected: false,
    };
    // What came while it was set up (its transport may be connected already).
    for notification in seen {
        running.observe(&notification);
    }
    tokio::spawn(run(sessions.clone(), client, running, queue, slot));
    Ok(Started { id, etag, answer })
}

/// WHIP: a send transport and a producer per usable section.
async fn publish(
    client: &mut LocalClient,
    request: &Request,
    seen: &mut Vec<Notification>,
) -> Result<(String, ServerTransport, String), Problem> {
    let joined = join(client, request, seen).await?;
    let router = router_capabilities(&joined)?;
    let plan = request
        .offer
        .publish(&router)
        .map_err(|r| Problem::new(r.status(), r.to_string()))?;
    let (transport_id, server) = transport(client, request, Direction::Send, seen).await?;
    let mut media = Vec::with_capacity(plan.media.len());
    for section in plan.media {
        let Ok(produce) = section else {
            media.push(AnswerMedia::Reject);
            continue;
        };
        let args = ProduceArgs {
            transport_id: transport_id.clone(),
            kind: produce.kind,
            rtp_parameters: produce.rtp_parameters.clone(),
            app_data: Some(signaling_api::media::object(
                &serde_json::json!({"source": "whip"}),
            )),
        };
        client.call(&args, seen).await?;
        media.push(AnswerMedia::Receive(produce));
    }
    let answer = whip::answer(&request.offer, &server, &media)
        .map_err(|r| Problem::new(500, r.to_string()))?;
    Ok((transport_id, server, answer))
}

/// WHEP: a receive transport and a consumer of the publisher's audio and video.
async fn watch(
    client: &mut LocalClient,
    request: &Request,
    seen: &mut Vec<Notification>,
) -> Result<(String, ServerTransport, String), Problem> {
    let joined = join(client, request, seen).await?;
    let plan = request
        .offer
        .watch(&router_capabilities(&joined)?)
        .map_err(|r| Problem::new(r.status(), r.to_string()))?;
    let publisher = match request.publisher {
        Some(wanted) => joined
            .peers
            .iter()
            .find(|p| p.peer_id == wanted)
            .ok_or_else(|| Problem::new(404, format!("no peer {wanted} in the room")))?,
        // The active speaker if it sends video, else the first who sends video, else the
        // first who sends anything.
        None => joined
            .peers
            .iter()
            .find(|p| {
                Some(p.peer_id) == joined.active_speaker
                    && p.producers.iter().any(|pr| pr.kind == Kind::Video)
            })
            .or_else(|| {
                (joined.peers.iter()).find(|p| p.producers.iter().any(|pr| pr.kind == Kind::Video))
            })
            .or_else(|| joined.peers.iter().find(|p| !p.producers.is_empty()))
            .ok_or_else(|| Problem::new(404, "nobody publishes in this room yet"))?,
    };
    let (transport_id, server) = transport(client, request, Direction::Recv, seen).await?;
    let capabilities = signaling_api::media::object(&plan.capabilities);
    let mut media = Vec::with_capacity(plan.media.len());
    let mut consumed_any = false;
    for kind in plan.media {
        let producer = kind.and_then(|kind| publisher.producers.iter().find(|p| p.kind == kind));
        let Some(producer) = producer else {
            media.push(AnswerMedia::Reject);
            continue;
        };
        let args = ConsumeArgs {
            transport_id: transport_id.clone(),
            producer_id: producer.producer_id.to_string(),
            rtp_capabilities: capabilities.clone(),
        };
        let consumed = match client.call(&args, seen).await {
            Ok(consumed) => consumed,
            // The player takes none of this producer's codecs: that section stays empty.
            Err(Failure::Call(CallError::Refused { code, message }))
                if code == "invalid_argument" =>
            {
                tracing::info!(room = %request.room, "a WHEP section is rejected: {message}");
                media.push(AnswerMedia::Reject);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let consumer = signaling_api::media::read(&consumed.rtp_parameters)
            .map_err(|e| Problem::new(502, format!("unreadable consumer parameters: {e}")))?;
        client
            .call(
                &ResumeConsumer(ConsumerArgs {
                    consumer_id: consumed.consumer_id.to_string(),
                }),
                seen,
            )
            .await?;
        consumed_any = true;
        media.push(AnswerMedia::Send {
            consumer,
            stream: publisher.peer_id.to_string(),
        });
    }
    if !consumed_any {
        return Err(Problem::new(
            406,
            "the player takes none of the codecs the publisher sends",
        ));
    }
    let answer = whip::answer(&request.offer, &server, &media)
        .map_err(|r| Problem::new(500, r.to_string()))?;
    Ok((transport_id, server, answer))
}

async fn join(
    client: &mut LocalClient,
    request: &Request,
    seen: &mut Vec<Notification>,
) -> Result<Joined, Problem> {
    let display_name = match request.role {
        Role::Publish => "WHIP publisher",
        Role::Watch => "WHEP viewer",
    };
    let args = JoinArgs {
        room: request.room.clone(),
        display_name: display_name.into(),
        token: request.token.clone(),
        watch_only: request.role == Role::Watch,
        last_n: None,
    };
    Ok(client.call(&args, seen).await?)
}

fn router_capabilities(joined: &Joined) -> Result<RtpCapabilities, Problem> {
    signaling_api::media::read(&joined.router_rtp_capabilities)
        .map_err(|e| Problem::new(502, format!("unreadable router capabilities: {e}")))
}

/// A transport of `direction`, connected with the offer's DTLS parameters.
async fn transport(
    client: &mut LocalClient,
    request: &Request,
    direction: Direction,
    seen: &mut Vec<Notification>,
) -> Result<(String, ServerTransport), Problem> {
    let created = client
        .call(
            &CreateTransportArgs {
                direction,
                data: false,
            },
            seen,
        )
        .await?;
    let server = ServerTransport::from_created(&created).map_err(|e| Problem::new(502, e))?;
    let transport_id = created.transport_id.to_string();
    client
        .call(
            &ConnectTransportArgs {
                transport_id: transport_id.clone(),
                dtls_parameters: signaling_api::media::object(&request.offer.dtls),
            },
            seen,
        )
        .await?;
    Ok((transport_id, server))
}

/// The ETag of a session's ICE session: its server credentials change at each restart.
fn etag_of(server: &ServerTransport) -> String {
    format!("\"{}\"", server.ice.username_fragment)
}

/// What the task of a running session keeps.
struct Running {
    id: Uuid,
    role: Role,
    room: String,
    client_ufrag: String,
    first_media: (String, String),
    transport_id: String,
    server: ServerTransport,
    etag: String,
    /// Whether its transport has connected.
    connected: bool,
}

/// How long a session's client has to connect its media after the answer.
const CONNECT_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

impl Running {
    /// Takes a notification of its peer in; why the session ends, if it does.
    fn observe(&mut self, notification: &Notification) -> Option<&'static str> {
        match notification {
            Notification::RoomMoved { .. } => Some("its room moved (its node failed)"),
            Notification::TransportState {
                transport_id,
                state,
            } if transport_id.to_string() == self.transport_id => match state {
                TransportState::Connected => {
                    self.connected = true;
                    None
                }
                TransportState::Disconnected => {
                    Some("its client went silent (ICE consent expired)")
                }
                TransportState::Failed => Some("DTLS failed"),
                TransportState::Closed => Some("its client closed DTLS"),
            },
            _ => None,
        }
    }
}

/// A session's life after its POST: PATCHes, its DELETE, or the SFU closing it.
async fn run(
    sessions: Arc<Sessions>,
    mut client: LocalClient,
    mut running: Running,
    mut commands: mpsc::Receiver<Command>,
    slot: ConnectionSlot,
) {
    let connect_by = tokio::time::Instant::now() + CONNECT_WITHIN;
    let reason = loop {
        tokio::select! {
            () = tokio::time::sleep_until(connect_by), if !running.connected => {
                break "its media did not connect within 30 s";
            }
            command = commands.recv() => match command {
                Some(Command::Patch { fragment, if_match, reply }) => {
                    let mut seen = Vec::new();
                    let outcome = patch(&mut client, &mut running, fragment, if_match, &mut seen).await;
                    let _ = reply.send(outcome);
                    if let Some(reason) = seen.iter().find_map(|n| running.observe(n)) {
                        break reason;
                    }
                }
                Some(Command::Delete { reply }) => {
                    sessions.entries().remove(&running.id);
                    client.leave().await;
                    let _ = reply.send(());
                    tracing::info!(session = %running.id, room = %running.room, kind = running.role.name(), "session ended by its client");
                    drop(slot);
                    return;
                }
                None => break "the session was dropped",
            },
            notification = client.notification() => match notification {
                Some(notification) => {
                    if let Some(reason) = running.observe(&notification) {
                        break reason;
                    }
                }
                None => break "the SFU closed it",
            },
        }
    };
    sessions.entries().remove(&running.id);
    tracing::info!(session = %running.id, room = %running.room, kind = running.role.name(), "session ended: {reason}");
    client.leave().await;
    drop(slot);
}

async fn patch(
    client: &mut LocalClient,
    running: &mut Running,
    fragment: Fragment,
    if_match: Option<String>,
    seen: &mut Vec<Notification>,
) -> Result<Patched, Problem> {
    match if_match.as_deref() {
        None => {
            return Err(Problem::new(
                428,
                "a PATCH needs If-Match with the session's ETag",
            ))
        }
        Some("*") => {}
        Some(tag) if tag == running.etag => {}
        Some(_) => {
            return Err(Problem::new(
                412,
                "If-Match is not the session's ETag (an ICE restart changed it?)",
            ))
        }
    }
    if !fragment.restarts(&running.client_ufrag) {
        return Ok(Patched::Trickled);
    }
    let restarted = client
        .call(
            &signaling_api::calls::RestartIce(TransportArgs {
                transport_id: running.transport_id.clone(),
            }),
            seen,
        )
        .await?;
    running.server.ice = signaling_api::media::read(&restarted.ice_parameters)
        .map_err(|e| Problem::new(502, format!("unreadable ICE parameters: {e}")))?;
    running.client_ufrag = fragment.ice_ufrag.unwrap_or_default();
    running.etag = etag_of(&running.server);
    let (media_type, mid) = &running.first_media;
    Ok(Patched::Restarted {
        etag: running.etag.clone(),
        fragment: whip::restart_fragment(&running.server, media_type, mid),
    })
}
