//! The one driver of the room core: it feeds [`RoomCore::handle`] what happens (client
//! requests, node answers, node events, timeouts) and carries out what
//! [`RoomCore::poll_output`] says, in order. Replies, notifications, monitor events and
//! metrics are delivered under the core's lock, in the core's order (a join's answer before
//! anything else for its peer); node calls are sent under it too, so that one node receives
//! them in the core's order, and only their answers are awaited, outside it, each coming back
//! as an input with its ticket. Links, pipes, node starts and the wait for ready nodes run as
//! tasks whose results are inputs too. One timer task gives the core its timeouts.

mod cluster;
mod drain;
mod pipes;
mod recording;
mod sessions;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use ipc::messages::{NodeErrorCode, NodeEvent, RoomId, RouterId};
use tokio::sync::{oneshot, watch};

use crate::driver::node_link::{LinkError, NodeId};
use crate::driver::node_pool::NodePool;
use crate::driver::remote::RemoteNodes;
use crate::edge::join_tokens::{unix_now, JoinVerifier};
use crate::edge::turn::TurnServers;
use crate::monitoring::event_bus::EventBus;
use crate::monitoring::metrics::Metrics;
use monitor_api::EventKind;
use room_core::lifecycle::SpawnOrigin;
use room_core::rooms::{Cleanup, Input, MetricChange, Output, RoomCore, RoomView};
use signaling_api::{error_answer, ok_answer, ClientError, ClientErrorCode, PeerId};

pub use room_core::rooms::Limits;

pub use crate::edge::outbox::Outbox;

/// How long a join waits for a media node when none is ready.
const NODE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// What the core's lock guards: the core, and where what it says goes.
struct State {
    core: RoomCore,
    /// Each connection's frames, by the connection (replies go there).
    sessions: HashMap<PeerId, Outbox>,
    /// How the sessions that did not come by `/ws` came (WHIP, WHEP).
    via: HashMap<PeerId, room_core::rooms::Via>,
    /// Each peer's connection's frames, by the peer (notifications go there).
    outboxes: HashMap<PeerId, Outbox>,
    /// Requests whose connections wait for their reply, by connection and request id; the
    /// peer the connection speaks for after a resume rides along.
    waiters: HashMap<(PeerId, u64), oneshot::Sender<Option<PeerId>>>,
    /// Connections a resume attached to another peer, until their reply.
    attached: HashMap<PeerId, PeerId>,
}

/// Work the core asked for that is awaited outside its lock.
enum Task {
    Answer(room_core::rooms::Ticket, crate::driver::node_link::Sent),
    Failed(room_core::rooms::Ticket, ClientError),
    Cleanup(NodeId, Cleanup, crate::driver::node_link::Sent),
    Link(room_core::rooms::LinkOrder),
    Pipe(room_core::rooms::PipeOrder),
    FindNodes(room_core::rooms::Ticket),
    SpawnNode(room_core::rooms::Ticket),
}

/// The rooms of the SFU.
pub struct Rooms {
    pool: Arc<NodePool>,
    state: Mutex<State>,
    monitor: EventBus,
    metrics: Metrics,
    /// Checks join tokens, when they are on.
    join_verifier: Option<JoinVerifier>,
    /// TURN servers each joining peer is handed, with credentials of its own.
    turn: Option<TurnServers>,
    /// When the core wants its next timeout; the timer task follows it.
    timeout: watch::Sender<Option<Instant>>,
    timer_started: std::sync::atomic::AtomicBool,
    /// In a cluster: rooms that closed here (their key in the directory is released).
    closed_rooms: Option<tokio::sync::mpsc::UnboundedSender<RoomId>>,
    /// In a cluster: this host.
    host: Option<ids::HostId>,
    /// In a cluster: every host's signaling URL, for join and resume answers.
    cluster_urls: Mutex<Vec<String>>,
    /// In a cluster: other hosts' nodes (a room spans hosts when this one is full).
    remote: std::sync::OnceLock<Arc<dyn RemoteNodes>>,
    /// This host's recordings, for participants who start and stop them.
    recordings: std::sync::OnceLock<Arc<crate::driver::recordings::Recordings>>,
}

/// 256 random bits from the system, base64url: a resume token nobody guesses (the room core
/// takes its entropy from here).
fn random_token() -> String {
    use base64::Engine as _;
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 32];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        // The system's random source failing is not something to go on without.
        panic!("the system random source failed");
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A node call's failure, as its client hears it.
fn link_error(error: LinkError) -> ClientError {
    match error {
        LinkError::Rpc(e) => ClientError::new(ClientErrorCode::NodeUnavailable, e.to_string()),
        LinkError::Mismatched { .. } => {
            ClientError::new(ClientErrorCode::Internal, error.to_string())
        }
        LinkError::Node(e) => {
            let code = match e.code {
                NodeErrorCode::NotFound => ClientErrorCode::NotFound,
                NodeErrorCode::InvalidArgument => ClientErrorCode::InvalidArgument,
                NodeErrorCode::Media => ClientErrorCode::MediaError,
                NodeErrorCode::Internal => ClientErrorCode::Internal,
            };
            ClientError::new(code, e.message)
        }
    }
}

impl Rooms {
    /// No rooms yet; new ones go on the nodes of `pool`. What happens is published on
    /// `monitor` and counted in `metrics`. A peer whose connection drops without `leave` may
    /// resume within `resume_grace`.
    ///
    /// In a cluster (`host`), resume tokens start with `host:` so that any host can tell
    /// where a resume goes.
    pub fn new(
        pool: Arc<NodePool>,
        limits: Limits,
        resume_grace: std::time::Duration,
        monitor: EventBus,
        metrics: Metrics,
        host: Option<&ids::HostId>,
    ) -> Self {
        let tokens: room_core::rooms::TokenSource = match host {
            Some(host) => {
                let prefix = format!("{host}:");
                Box::new(move || format!("{prefix}{}", random_token()))
            }
            None => Box::new(random_token),
        };
        let core = RoomCore::with_resume_grace(limits, tokens, resume_grace);
        Self {
            pool,
            state: Mutex::new(State {
                core,
                sessions: HashMap::new(),
                via: HashMap::new(),
                outboxes: HashMap::new(),
                waiters: HashMap::new(),
                attached: HashMap::new(),
            }),
            monitor,
            metrics,
            join_verifier: None,
            turn: None,
            timeout: watch::channel(None).0,
            timer_started: std::sync::atomic::AtomicBool::new(false),
            closed_rooms: None,
            remote: std::sync::OnceLock::new(),
            recordings: std::sync::OnceLock::new(),
            host: host.cloned(),
            cluster_urls: Mutex::new(Vec::new()),
        }
    }

    /// Lists the cluster's hosts in a join or resume answer, and a join's TURN servers.
    fn with_hosts(&self, answer: &mut signaling_api::Answer) {
        if let (signaling_api::Answer::Joined(joined), Some(turn)) = (&mut *answer, &self.turn) {
            joined.ice_servers = turn.ice_servers(&joined.peer_id.to_string(), unix_now());
        }
        let hosts = match answer {
            signaling_api::Answer::Joined(joined) => &mut joined.hosts,
            signaling_api::Answer::Resumed(resumed) => &mut resumed.hosts,
            _ => return,
        };
        let urls = self.cluster_urls.lock().unwrap_or_else(|p| p.into_inner());
        hosts.clone_from(&urls);
    }

    /// Every join must carry a token `verifier` accepts.
    pub fn with_join_verifier(mut self, verifier: Option<JoinVerifier>) -> Self {
        self.join_verifier = verifier;
        self
    }

    /// Every peer that joins is handed `turn`'s servers with credentials for it.
    pub fn with_turn_servers(mut self, turn: Option<TurnServers>) -> Self {
        self.turn = turn;
        self
    }

    /// The TURN servers handed to peers, if any.
    pub fn turn_servers(&self) -> Option<&TurnServers> {
        self.turn.as_ref()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Feeds the core `input` and carries out what follows.
    fn input(self: &Arc<Self>, input: Input) {
        let tasks = {
            let mut state = self.state();
            state.core.handle(input, Instant::now());
            self.deliver(&mut state)
        };
        for task in tasks {
            self.spawn(task);
        }
    }

    /// Delivers what the core queued, in its order: frames to outboxes, events, metrics, and
    /// node calls sent; what must be awaited is returned.
    fn deliver(self: &Arc<Self>, state: &mut State) -> Vec<Task> {
        let mut tasks = Vec::new();
        while let Some(output) = state.core.poll_output() {
            match output {
                Output::Timeout(at) => self.arm_timer(at),
                Output::Reply {
                    session,
                    id,
                    mut result,
                } => {
                    if let Ok(answer) = &mut result {
                        self.with_hosts(answer);
                    }
                    let frame = match &result {
                        Ok(answer) => ok_answer(id, answer),
                        Err(error) => {
                            tracing::debug!(%session, id, "request refused: {error}");
                            self.metrics.signaling_error(error.code.as_str());
                            error_answer(Some(id), error)
                        }
                    };
                    if let Some(outbox) = state.sessions.get(&session) {
                        // A connection has one request out at a time: its answer has room.
                        if !outbox.push(frame) {
                            tracing::warn!(%session, "cannot queue an answer: the client does not read");
                        }
                    }
                    let attached = state.attached.remove(&session);
                    if let Some(waiter) = state.waiters.remove(&(session, id)) {
                        let _ = waiter.send(attached);
                    }
                }
                Output::Attach { session, from, to } => {
                    let Some(outbox) = state.sessions.get(&session).cloned() else {
                        continue;
                    };
                    state.outboxes.remove(&from);
                    if let Some(old) = state.outboxes.insert(to, outbox.clone()) {
                        if !old.same_as(&outbox) {
                            tracing::info!(peer = %to, "a new connection resumed the peer: closing its old one");
                            old.evict();
                        }
                    }
                    state.attached.insert(session, to);
                }
                Output::Notify { to, notification } => {
                    // Serialized once: a join notifies every peer of the room, so this is
                    // quadratic in the room's size and dominates the supervisor under load.
                    let frame = notification.to_frame();
                    for peer in to {
                        let Some(outbox) = state.outboxes.get(&peer) else {
                            continue;
                        };
                        if !outbox.push(frame.clone()) {
                            tracing::warn!(%peer, "a client that does not keep up: its session closes");
                        }
                    }
                }
                Output::Monitor(mut event) => {
                    if let (Some(closed), EventKind::RoomClosed { room, .. }) =
                        (&self.closed_rooms, &event)
                    {
                        let _ = closed.send(RoomId(room.clone()));
                    }
                    // Another host's node by its host and number there, not this host's alias.
                    match &mut event {
                        EventKind::PeerMoved { from, to, .. } => {
                            *from = self.node_name(from);
                            *to = self.node_name(to);
                        }
                        EventKind::NodeDraining { node, .. }
                        | EventKind::NodeDrained { node, .. } => *node = self.node_name(node),
                        _ => {}
                    }
                    self.monitor.publish(event)
                }
                Output::Metric(MetricChange::Joined) => self.metrics.joined(),
                Output::Metric(MetricChange::DataThrottled) => self.metrics.data_throttled(),
                Output::Metric(MetricChange::PeerMoved) => self.metrics.peer_moved(),
                Output::Metric(MetricChange::NodeDrained { forced }) => {
                    self.metrics.node_drained(forced)
                }
                Output::NodeDrained { node } => self.retire_when_unused(node),
                Output::Call {
                    ticket,
                    node,
                    request,
                } => tasks.push(match self.send(node, request) {
                    Ok(sent) => Task::Answer(ticket, sent),
                    Err(e) => Task::Failed(ticket, e),
                }),
                Output::Node { node, cleanup } => {
                    match self.send(node, cleanup_request(&cleanup)) {
                        Ok(sent) => tasks.push(Task::Cleanup(node, cleanup, sent)),
                        // Its node is gone, and what it would close with it.
                        Err(e) => tracing::debug!(%node, ?cleanup, "cleanup not sent: {e}"),
                    }
                }
                Output::Link(order) => tasks.push(Task::Link(order)),
                Output::Pipe(order) => tasks.push(Task::Pipe(order)),
                Output::FindNodes { ticket } => tasks.push(Task::FindNodes(ticket)),
                Output::SpawnNode { ticket } => tasks.push(Task::SpawnNode(ticket)),
            }
        }
        tasks
    }

    /// Sends `request` to `node` now, without waiting.
    fn send(
        &self,
        node: NodeId,
        request: ipc::calls::Request,
    ) -> Result<crate::driver::node_link::Sent, ClientError> {
        self.send_to_node(node, request)
            .ok_or_else(|| {
                ClientError::new(
                    ClientErrorCode::NodeUnavailable,
                    format!("the room's node {node} is gone"),
                )
            })?
            .map_err(link_error)
    }

    /// Calls `node`, this host's or another's, and waits for its answer.
    pub async fn node_call<C: ipc::calls::Call>(
        &self,
        node: NodeId,
        call: C,
    ) -> Result<C::Answer, LinkError> {
        let request: ipc::calls::Request = call.into();
        let name = request.name();
        let sent = self
            .send_to_node(node, request)
            .ok_or(LinkError::Rpc(ipc::RpcError::Disconnected))??;
        sent.answer_as::<C>(name).await
    }

    /// Sends `request` to `node`, this host's or another's (`None`: no such node).
    fn send_to_node(
        &self,
        node: NodeId,
        request: ipc::calls::Request,
    ) -> Option<Result<crate::driver::node_link::Sent, LinkError>> {
        if let Some(link) = self.pool.link(node) {
            return Some(link.send(request));
        }
        self.remote.get()?.send(node, request)
    }

    /// Awaits `task` in the background; its result goes back to the core.
    fn spawn(self: &Arc<Self>, task: Task) {
        let rooms = self.clone();
        tokio::spawn(async move {
            let input = match task {
                Task::Answer(ticket, sent) => Input::Answer {
                    ticket,
                    result: sent.answer().await.map_err(link_error),
                },
                Task::Failed(ticket, error) => Input::Answer {
                    ticket,
                    result: Err(error),
                },
                Task::Cleanup(node, cleanup, sent) => {
                    match sent.answer().await {
                        Ok(_) => tracing::debug!(%node, ?cleanup, "cleaned up"),
                        Err(e) => tracing::warn!(%node, ?cleanup, "cleanup failed: {e}"),
                    }
                    return;
                }
                Task::Link(order) => Input::Linked {
                    result: rooms.link(order).await,
                    order,
                },
                Task::Pipe(order) => Input::Piped {
                    result: rooms.pipe(&order).await,
                    order,
                },
                Task::FindNodes(ticket) => {
                    // Right after a node died its replacement may still be starting: wait.
                    let links = rooms.pool.ready_within(NODE_WAIT).await;
                    let remote = rooms.remote.get().map(|r| r.offered()).unwrap_or_default();
                    Input::Nodes {
                        ticket,
                        ready: links.iter().map(|l| (l.id, l.hello.workers)).collect(),
                        running: rooms.pool.running(),
                        remote: remote.into_iter().map(|o| (o.node, o.consumers)).collect(),
                        router: RouterId(uuid::Uuid::new_v4()),
                    }
                }
                Task::SpawnNode(ticket) => Input::NodeStarted {
                    ticket,
                    result: rooms
                        .pool
                        .spawn(SpawnOrigin::Placement)
                        .await
                        .map(|link| link.id)
                        .map_err(|e| format!("{e:#}")),
                },
            };
            rooms.input(input);
        });
    }

    /// The core's next timeout is `at`: the timer task (started on first use) wakes then.
    /// A later instant than the one armed waits for it (the core says again then): the
    /// timer is not re-armed on every input.
    fn arm_timer(self: &Arc<Self>, at: Instant) {
        let now = Instant::now();
        self.timeout.send_if_modified(|current| {
            let rearm = current.is_none_or(|armed| at < armed || armed <= now);
            if rearm {
                *current = Some(at);
            }
            rearm
        });
        if !self
            .timer_started
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            let rooms = Arc::downgrade(self);
            let wanted = self.timeout.subscribe();
            tokio::spawn(run_timer(rooms, wanted));
        }
    }

    /// Whether `peer` is in a room.
    pub fn is_joined(&self, peer: PeerId) -> bool {
        self.state().core.is_joined(peer)
    }

    /// Refuses new joins from now on and tells every joined peer (`shuttingDown`).
    pub fn start_shutdown(self: &Arc<Self>) {
        self.input(Input::Shutdown);
    }

    /// Tells `peers` (whoever of them has a connection) `notification`, outside the room
    /// core's order: for what the core does not decide, such as a recording's state.
    pub fn notify(&self, peers: &[PeerId], notification: &signaling_api::Notification) {
        let frame = notification.to_frame();
        let state = self.state();
        for peer in peers {
            if let Some(outbox) = state.outboxes.get(peer) {
                if !outbox.push(frame.clone()) {
                    tracing::warn!(%peer, "a client that does not keep up: its session closes");
                }
            }
        }
    }

    /// The room `only`, or every room, as they are now (a snapshot: the core's lock is held
    /// only while it is taken).
    pub fn views(&self, only: Option<&RoomId>) -> HashMap<RoomId, RoomView> {
        self.state().core.views(only)
    }

    /// Relays what a node reported to the peers it concerns.
    pub fn on_node_event(self: &Arc<Self>, node: NodeId, event: NodeEvent) {
        if self
            .remote
            .get()
            .is_some_and(|remote| remote.lent_event(node, &event))
        {
            return;
        }
        self.input(Input::NodeEvent { node, event });
    }

    /// A node is gone: its rooms are lost and their peers told to join again.
    pub fn on_node_lost(self: &Arc<Self>, node: NodeId, reason: &str) {
        if let Some(remote) = self.remote.get() {
            remote.local_node_lost(node, reason);
        }
        self.on_remote_node_lost(node, reason);
    }
}

/// Gives the core [`Input::Timeout`] whenever the instant it asked for comes, until the
/// rooms are gone.
async fn run_timer(rooms: Weak<Rooms>, mut wanted: watch::Receiver<Option<Instant>>) {
    loop {
        let at = *wanted.borrow_and_update();
        let sleep = async {
            match at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => {
                let Some(rooms) = rooms.upgrade() else { return };
                // The core says when next, which re-arms the timer (the armed instant passed).
                rooms.input(Input::Timeout);
                if !wanted.has_changed().unwrap_or(false) && wanted.changed().await.is_err() {
                    return;
                }
            }
            changed = wanted.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// The node request that carries out `cleanup`.
fn cleanup_request(cleanup: &Cleanup) -> ipc::calls::Request {
    match cleanup.clone() {
        Cleanup::CloseRouter(c) => c.into(),
        Cleanup::CloseTransport(c) => c.into(),
        Cleanup::CloseProducer(c) => c.into(),
        Cleanup::CloseConsumer(c) => c.into(),
        Cleanup::CloseDataProducer(c) => c.into(),
        Cleanup::CloseDataConsumer(c) => c.into(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn resume_tokens_carry_256_random_bits() {
        let tokens: std::collections::HashSet<String> =
            (0..1000).map(|_| super::random_token()).collect();
        assert_eq!(tokens.len(), 1000, "no token twice");
        for token in &tokens {
            assert_eq!(
                token.len(),
                43,
                "32 bytes in base64url without padding: {token}"
            );
            assert!(token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        }
    }
}
