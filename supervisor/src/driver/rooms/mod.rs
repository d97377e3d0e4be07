//! The rooms of the SFU, performed: [`core::RoomCore`] decides, this layer carries its
//! decisions out. It holds the core under a short lock (never across a call to a node), the
//! sessions' outboxes, and one lock per room so that joins and leaves of a room are ordered
//! (it is created once and closed when really empty) while other rooms go on, even when one
//! waits for a node. Joining and leaving are in `membership`, media requests in `media`.

mod data;
mod media;
mod membership;
mod pipes;
mod resume;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use ipc::messages::{NodeErrorCode, NodeEvent, RoomId};

use crate::driver::node_link::{LinkError, NodeId, NodeLink};
use crate::driver::node_pool::NodePool;
use crate::edge::join_tokens::JoinVerifier;
use crate::monitoring::event_bus::EventBus;
use crate::monitoring::metrics::Metrics;
use room_core::rooms::{Cleanup, LinkOrder, MetricChange, Output, PipeOrder, RoomCore, RoomView};
use signaling_api::{ClientError, ClientErrorCode, PeerId};

pub use room_core::rooms::Limits;

pub use crate::edge::outbox::Outbox;

/// What the core's lock guards: the core and where to deliver what it says to each peer.
struct State {
    core: RoomCore,
    outboxes: HashMap<PeerId, Outbox>,
}

/// Requests for nodes the core asked for, performed once its lock is released: cleanups,
/// and links and pipes whose results go back to the core.
#[must_use = "cleanups close what would otherwise leak on a node, and links and pipes are awaited"]
#[derive(Default)]
struct Work {
    cleanups: Vec<(NodeId, Cleanup)>,
    links: Vec<LinkOrder>,
    pipes: Vec<PipeOrder>,
}

impl Work {
    fn is_empty(&self) -> bool {
        self.cleanups.is_empty() && self.links.is_empty() && self.pipes.is_empty()
    }
}

/// The rooms of the SFU.
pub struct Rooms {
    pool: Arc<NodePool>,
    state: Mutex<State>,
    room_locks: Mutex<HashMap<RoomId, Weak<tokio::sync::Mutex<()>>>>,
    monitor: EventBus,
    metrics: Metrics,
    /// Checks join tokens, when they are on.
    join_verifier: Option<JoinVerifier>,
    /// How long a peer whose connection dropped may resume (zero: it leaves at once).
    resume_grace: std::time::Duration,
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
    /// `monitor` and counted in `metrics`.
    pub fn new(pool: Arc<NodePool>, limits: Limits, monitor: EventBus, metrics: Metrics) -> Self {
        Self {
            pool,
            state: Mutex::new(State {
                core: RoomCore::new(limits, Box::new(random_token)),
                outboxes: HashMap::new(),
            }),
            room_locks: Mutex::new(HashMap::new()),
            monitor,
            metrics,
            join_verifier: None,
            resume_grace: std::time::Duration::ZERO,
        }
    }

    /// A peer whose connection drops without `leave` may resume within `grace`.
    pub fn with_resume_grace(mut self, grace: std::time::Duration) -> Self {
        self.resume_grace = grace;
        self
    }

    /// Every join must carry a token `verifier` accepts.
    pub fn with_join_verifier(mut self, verifier: Option<JoinVerifier>) -> Self {
        self.join_verifier = verifier;
        self
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the core, then delivers what it queued: notifications, monitor events and
    /// metrics at once (none of them blocks), requests for nodes returned to be performed.
    fn with_core<T>(&self, f: impl FnOnce(&mut RoomCore) -> T) -> (T, Work) {
        self.with_core_replying(f, |_| None)
    }

    /// [`Rooms::with_core`], queuing first the frame `reply` makes of the result for the peer
    /// it names: an answer that must reach its client before any notification the same
    /// input caused or allowed (a join's answer before the first `newProducer` of its room).
    fn with_core_replying<T>(
        &self,
        f: impl FnOnce(&mut RoomCore) -> T,
        reply: impl FnOnce(&T) -> Option<(PeerId, String)>,
    ) -> (T, Work) {
        let mut state = self.state();
        let value = f(&mut state.core);
        if let Some((peer, frame)) = reply(&value) {
            if let Some(outbox) = state.outboxes.get(&peer) {
                // A joining session has nothing queued yet: its outbox has room.
                if !outbox.push(frame) {
                    tracing::warn!(%peer, "cannot queue an answer: the client does not read");
                }
            }
        }
        let work = self.deliver(&mut state);
        (value, work)
    }

    /// Delivers what the core queued: notifications, monitor events and metrics at once;
    /// requests for nodes returned to be performed.
    fn deliver(&self, state: &mut State) -> Work {
        let mut work = Work::default();
        while let Some(output) = state.core.poll_output() {
            match output {
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
                Output::Monitor(event) => self.monitor.publish(event),
                Output::Metric(MetricChange::Joined) => self.metrics.joined(),
                Output::Metric(MetricChange::DataThrottled) => self.metrics.data_throttled(),
                Output::Node { node, cleanup } => work.cleanups.push((node, cleanup)),
                Output::Link(order) => work.links.push(order),
                Output::Pipe(order) => work.pipes.push(order),
            }
        }
        work
    }

    /// Carries out `work` and what its results lead to, until nothing is left: links first
    /// (pipes may wait for them), then pipes, then cleanups.
    async fn drive(&self, mut work: Work) {
        while !work.is_empty() {
            let mut next = Work::default();
            for order in std::mem::take(&mut work.links) {
                let result = self.link(order).await;
                let ((), more) =
                    self.with_core(|core| core.handle_linked(order.low, order.high, result));
                next.absorb(more);
            }
            for order in std::mem::take(&mut work.pipes) {
                let result = self.pipe(&order).await;
                let ((), more) = self.with_core(|core| core.handle_piped(&order, result));
                next.absorb(more);
            }
            perform(&self.pool, std::mem::take(&mut work.cleanups)).await;
            work = next;
        }
    }

    /// Runs `f` on the core where nobody waits for the node requests it may queue: they are
    /// performed in the background.
    fn with_core_detached<T>(self: &Arc<Self>, f: impl FnOnce(&mut RoomCore) -> T) -> T {
        let (value, work) = self.with_core(f);
        if !work.is_empty() {
            let rooms = self.clone();
            tokio::spawn(async move { rooms.drive(work).await });
        }
        value
    }

    /// The link to `node`, or `node_unavailable` if it is gone.
    fn node(&self, node: NodeId) -> Result<Arc<NodeLink>, ClientError> {
        self.pool.link(node).ok_or_else(|| {
            ClientError::new(
                ClientErrorCode::NodeUnavailable,
                format!("the room's node {node} is gone"),
            )
        })
    }

    /// The lock ordering the joins and leaves of `room`.
    fn room_lock(&self, room: &RoomId) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.room_locks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lock) = locks.get(room).and_then(Weak::upgrade) {
            return lock;
        }
        // Forget the locks of rooms nobody is joining or leaving any more.
        locks.retain(|_, lock| lock.strong_count() > 0);
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(room.clone(), Arc::downgrade(&lock));
        lock
    }

    /// A client connected: what the core tells `peer` goes to `outbox`.
    pub fn connected(&self, peer: PeerId, outbox: Outbox) {
        self.state().outboxes.insert(peer, outbox);
    }

    /// Whether `peer` is in a room.
    pub fn is_joined(&self, peer: PeerId) -> bool {
        self.state().core.is_joined(peer)
    }

    /// Refuses new joins from now on and tells every joined peer (`shuttingDown`).
    pub fn start_shutdown(self: &Arc<Self>) {
        self.with_core_detached(RoomCore::handle_shutdown);
    }

    /// The room `only`, or every room, as they are now (a snapshot: the core's lock is held
    /// only while it is taken).
    pub fn views(&self, only: Option<&RoomId>) -> HashMap<RoomId, RoomView> {
        self.state().core.views(only)
    }

    /// Relays what a node reported to the peers it concerns.
    pub fn on_node_event(self: &Arc<Self>, node: NodeId, event: NodeEvent) {
        self.with_core_detached(|core| core.handle_node_event(node, event));
    }

    /// A node is gone: its rooms are lost and their peers told to join again.
    pub fn on_node_lost(self: &Arc<Self>, node: NodeId, reason: &str) {
        self.with_core_detached(|core| core.handle_node_lost(node, reason));
    }
}

impl Work {
    fn absorb(&mut self, other: Work) {
        self.cleanups.extend(other.cleanups);
        self.links.extend(other.links);
        self.pipes.extend(other.pipes);
    }
}

/// Sends cleanups to their nodes, in order; a failure is logged (what it would close goes
/// away with its router or node anyway).
async fn perform(pool: &NodePool, cleanups: Vec<(NodeId, Cleanup)>) {
    for (node, cleanup) in cleanups {
        let Some(link) = pool.link(node) else {
            continue;
        };
        let result = match cleanup.clone() {
            Cleanup::CloseRouter(c) => link.call(c).await,
            Cleanup::CloseTransport(c) => link.call(c).await,
            Cleanup::CloseProducer(c) => link.call(c).await,
            Cleanup::CloseConsumer(c) => link.call(c).await,
            Cleanup::CloseDataProducer(c) => link.call(c).await,
            Cleanup::CloseDataConsumer(c) => link.call(c).await,
        };
        match result {
            Ok(()) => tracing::debug!(%node, ?cleanup, "cleaned up"),
            Err(e) => tracing::warn!(%node, ?cleanup, "cleanup failed: {e}"),
        }
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
