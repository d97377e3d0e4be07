//! Rooms that span hosts: this host's rooms open routers on other hosts' nodes when its own
//! are full, and other hosts open routers on this host's nodes. Both sides of the link:
//!
//! - **Borrowing** (this host owns the room): each node another host lends (its record's
//!   `lent`) gets a number of this host's ([`NodeId`] from [`FIRST_ALIAS`] up) for as long as
//!   the link that reached it lives; calls to it go over the link ([`LinkMessage::NodeCall`]),
//!   its events and its loss come back and reach the room core as any node's would. A link
//!   that ends is the loss of every node borrowed through it.
//! - **Lending** (another host owns the room): a call is carried out on the local node only
//!   for routers the calling host created there, through the same link; their events go back
//!   to it, not to this host's rooms. When the link ends, those routers are closed here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use cluster_api::records::LentNode;
use cluster_api::LinkMessage;
use ids::HostId;
use ipc::calls::{self as call, Request};
use ipc::messages::{NodeError, NodeErrorCode, NodeEvent, Response, RouterId};
use tokio::sync::oneshot;

use super::links::{Link, Links};
use super::Routing;
use crate::driver::node_link::{LinkError, NodeId, Sent};
use crate::driver::node_pool::NodePool;
use crate::driver::remote::{Offered, Place, RemoteNodes};
use crate::driver::rooms::Rooms;

/// The first number given to another host's node (this host's own count up from 1).
pub const FIRST_ALIAS: u32 = 1 << 31;

/// Another host's node as this host numbers it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Borrowed {
    host: HostId,
    /// The link it was reached through.
    link: u64,
    /// Its number on its host.
    node: u32,
}

/// A router another host created on a node of this host.
#[derive(Clone, Debug)]
struct Lent {
    host: HostId,
    link: u64,
    node: NodeId,
}

/// A call to another host's node: the host, the link it went on, where its answer goes.
type Waiting = (HostId, u64, oneshot::Sender<Result<Response, NodeError>>);

#[derive(Default)]
struct State {
    aliases: HashMap<Borrowed, NodeId>,
    borrowed: HashMap<NodeId, Borrowed>,
    next_alias: u32,
    /// Calls to other hosts' nodes waiting for their answer, by call id.
    calls: HashMap<u64, Waiting>,
    next_call: u64,
    /// Routers other hosts created here.
    lent: HashMap<RouterId, Lent>,
}

/// Both sides of rooms spanning hosts, for this host.
pub struct Remote {
    me: HostId,
    links: Arc<Links>,
    routing: Weak<Routing>,
    pool: Arc<NodePool>,
    rooms: OnceLock<Weak<Rooms>>,
    /// How long a call to another host's node may take: longer than that host's own wait
    /// for its node, so that its answer (or its timeout) comes first.
    call_timeout: Duration,
    state: Mutex<State>,
}

fn refused(code: NodeErrorCode, message: impl Into<String>) -> NodeError {
    NodeError::new(code, message)
}

impl Remote {
    /// Lends this host's nodes (`pool`) and borrows the others' over `links`.
    pub fn new(routing: &Arc<Routing>, pool: Arc<NodePool>, node_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            me: routing.me().clone(),
            links: routing.links.clone(),
            routing: Arc::downgrade(routing),
            pool,
            rooms: OnceLock::new(),
            call_timeout: node_timeout + Duration::from_secs(5),
            state: Mutex::new(State {
                next_alias: FIRST_ALIAS,
                ..State::default()
            }),
        })
    }

    /// The rooms that borrowed nodes' events and losses go to.
    pub fn set_rooms(&self, rooms: &Arc<Rooms>) {
        let _ = self.rooms.set(Arc::downgrade(rooms));
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn rooms(&self) -> Option<Arc<Rooms>> {
        self.rooms.get()?.upgrade()
    }

    /// What this host lends, for its record: each ready node and its workers' consumers.
    pub fn lendable(pool: &NodePool) -> Vec<LentNode> {
        pool.ready()
            .iter()
            .map(|link| LentNode {
                node: link.id.0,
                consumers: link.worker_consumers(),
            })
            .collect()
    }

    fn alias(state: &mut State, borrowed: Borrowed) -> NodeId {
        if let Some(alias) = state.aliases.get(&borrowed) {
            return *alias;
        }
        let alias = NodeId(state.next_alias);
        state.next_alias = state.next_alias.wrapping_add(1).max(FIRST_ALIAS);
        state.aliases.insert(borrowed.clone(), alias);
        state.borrowed.insert(alias, borrowed);
        alias
    }

    // ---- lending: calls from the hosts that own rooms ----

    /// `link`'s host calls this host's node `node`: carried out if the router is its own.
    pub fn called(self: &Arc<Self>, link: &Arc<Link>, id: u64, node: u32, request: Request) {
        let node = NodeId(node);
        let host = link.peer().clone();
        let router = request.router();
        let allowed = {
            let mut state = self.state();
            match (&request, state.lent.get(&router)) {
                (Request::CreateRouter(_), None) => {
                    // Recorded before the node answers: its events may come first.
                    let lent = Lent {
                        host: host.clone(),
                        link: link.id(),
                        node,
                    };
                    state.lent.insert(router, lent);
                    Ok(())
                }
                (Request::CreateRouter(_), Some(_)) => Err(refused(
                    NodeErrorCode::InvalidArgument,
                    format!("router {router} exists"),
                )),
                (_, Some(lent)) if lent.host == host && lent.node == node => match &request {
                    Request::PipeToRouter(c) if !Self::owns(&state, &host, c.target) => Err(
                        refused(NodeErrorCode::NotFound, "no such router of yours here"),
                    ),
                    Request::PipeDataToRouter(c) if !Self::owns(&state, &host, c.target) => Err(
                        refused(NodeErrorCode::NotFound, "no such router of yours here"),
                    ),
                    _ => Ok(()),
                },
                _ => Err(refused(
                    NodeErrorCode::NotFound,
                    format!("no router {router} of host {host} on node {node} here"),
                )),
            }
        };
        let sent = allowed.and_then(|()| match self.pool.link(node) {
            Some(local) => local.send(request.clone()).map_err(|e| match e {
                LinkError::Node(e) => e,
                other => refused(NodeErrorCode::Internal, other.to_string()),
            }),
            None => Err(refused(
                NodeErrorCode::NotFound,
                format!("no {node} on host {}", self.me),
            )),
        });
        let this = self.clone();
        let link = link.clone();
        tokio::spawn(async move {
            let answer = match sent {
                Ok(sent) => sent.answer().await.map_err(|e| match e {
                    LinkError::Node(e) => e,
                    other => refused(NodeErrorCode::Internal, other.to_string()),
                }),
                Err(e) => Err(e),
            };
            {
                let mut state = this.state();
                match (&request, &answer) {
                    (Request::CreateRouter(_), Err(_)) | (Request::CloseRouter(_), Ok(_)) => {
                        state.lent.remove(&router);
                    }
                    _ => {}
                }
            }
            if let (Request::CreateRouter(_), Ok(_)) = (&request, &answer) {
                tracing::info!(host = %link.peer(), %node, %router, "lent a router to another host's room");
            }
            if !link.send(LinkMessage::NodeAnswer { id, answer }).await {
                tracing::debug!(host = %link.peer(), "a node answer for a closed link");
            }
        });
    }

    fn owns(state: &State, host: &HostId, router: RouterId) -> bool {
        state.lent.get(&router).is_some_and(|l| &l.host == host)
    }

    /// A link ended: what lived on it ends. Routers lent through it are closed here; nodes
    /// borrowed through it are lost to this host's rooms.
    pub fn link_down(&self, host: &HostId, link: u64) {
        let (closing, lost, calls) = {
            let mut state = self.state();
            let closing: Vec<(RouterId, NodeId)> = state
                .lent
                .iter()
                .filter(|(_, l)| &l.host == host && l.link == link)
                .map(|(r, l)| (*r, l.node))
                .collect();
            for (router, _) in &closing {
                state.lent.remove(router);
            }
            let lost: Vec<NodeId> = state
                .borrowed
                .iter()
                .filter(|(_, b)| &b.host == host && b.link == link)
                .map(|(alias, _)| *alias)
                .collect();
            for alias in &lost {
                if let Some(borrowed) = state.borrowed.remove(alias) {
                    state.aliases.remove(&borrowed);
                }
            }
            let calls: Vec<u64> = state
                .calls
                .iter()
                .filter(|(_, (h, l, _))| h == host && *l == link)
                .map(|(id, _)| *id)
                .collect();
            // Dropped: their callers hear `Disconnected` now rather than at their timeout.
            for id in &calls {
                state.calls.remove(id);
            }
            (closing, lost, calls.len())
        };
        if !closing.is_empty() {
            tracing::warn!(%host, routers = closing.len(), "closing the routers another host's rooms had here: its link is down");
        }
        for (router, node) in closing {
            if let Some(local) = self.pool.link(node) {
                let close: Request = call::CloseRouter { router }.into();
                if let Ok(sent) = local.send(close) {
                    tokio::spawn(async move {
                        let _ = sent.answer().await;
                    });
                }
            }
        }
        if !lost.is_empty() || calls > 0 {
            tracing::warn!(%host, nodes = lost.len(), calls, "the link to a host whose nodes this host's rooms use is down");
        }
        if let Some(rooms) = self.rooms() {
            let reason = format!("the link to host {host} is down");
            for alias in lost {
                rooms.on_remote_node_lost(alias, &reason);
            }
        }
    }

    // ---- borrowing: answers and events from the hosts that lend ----

    /// The answer to call `id`, from `link`'s host.
    pub fn answered(&self, link: &Arc<Link>, id: u64, answer: Result<Response, NodeError>) {
        let waiter = {
            let mut state = self.state();
            match state.calls.get(&id) {
                Some((host, l, _)) if host == link.peer() && *l == link.id() => {
                    state.calls.remove(&id)
                }
                // Not a call of this host to that host: ignored.
                _ => None,
            }
        };
        if let Some((_, _, waiter)) = waiter {
            let _ = waiter.send(answer);
        }
    }

    /// An event of `link`'s host's node `node` about a router of this host's.
    pub fn remote_event(&self, link: &Arc<Link>, node: u32, event: NodeEvent) {
        let borrowed = Borrowed {
            host: link.peer().clone(),
            link: link.id(),
            node,
        };
        let Some(alias) = self.state().aliases.get(&borrowed).copied() else {
            return;
        };
        if let Some(rooms) = self.rooms() {
            rooms.on_remote_node_event(alias, event);
        }
    }

    /// `link`'s host lost its node `node`, with this host's routers there.
    pub fn remote_gone(&self, link: &Arc<Link>, node: u32, reason: &str) {
        let borrowed = Borrowed {
            host: link.peer().clone(),
            link: link.id(),
            node,
        };
        let alias = {
            let mut state = self.state();
            let alias = state.aliases.remove(&borrowed);
            if let Some(alias) = alias {
                state.borrowed.remove(&alias);
            }
            alias
        };
        if let (Some(alias), Some(rooms)) = (alias, self.rooms()) {
            let reason = format!("node {node} of host {}: {reason}", borrowed.host);
            rooms.on_remote_node_lost(alias, &reason);
        }
    }
}

impl RemoteNodes for Remote {
    fn offered(&self) -> Vec<Offered> {
        let Some(routing) = self.routing.upgrade() else {
            return Vec::new();
        };
        let hosts = routing.hosts();
        let mut state = self.state();
        let mut offered = Vec::new();
        for host in hosts.iter().filter(|h| h.id != self.me) {
            let Some(link) = self.links.link(&host.id) else {
                continue;
            };
            for lent in &host.lent {
                let borrowed = Borrowed {
                    host: host.id.clone(),
                    link: link.id(),
                    node: lent.node,
                };
                let node = Self::alias(&mut state, borrowed);
                offered.push(Offered {
                    node,
                    consumers: lent.consumers.clone(),
                });
            }
        }
        offered
    }

    fn send(&self, node: NodeId, request: Request) -> Option<Result<Sent, LinkError>> {
        let mut state = self.state();
        let borrowed = state.borrowed.get(&node)?.clone();
        let disconnected = || Some(Err(LinkError::Rpc(ipc::RpcError::Disconnected)));
        let Some(link) = self.links.link(&borrowed.host) else {
            return disconnected();
        };
        if link.id() != borrowed.link {
            return disconnected();
        }
        let id = state.next_call;
        state.next_call += 1;
        let (tx, rx) = oneshot::channel();
        state
            .calls
            .insert(id, (borrowed.host.clone(), borrowed.link, tx));
        drop(state);
        let message = LinkMessage::NodeCall {
            id,
            node: borrowed.node,
            request,
        };
        if !link.try_send(message) {
            self.state().calls.remove(&id);
            return Some(Err(LinkError::Rpc(ipc::RpcError::Busy(0))));
        }
        Some(Ok(Sent::remote(rx, self.call_timeout)))
    }

    fn place(&self, node: NodeId) -> Option<Place> {
        let state = self.state();
        let borrowed = state.borrowed.get(&node)?;
        Some(Place {
            host: borrowed.host.clone(),
            node: NodeId(borrowed.node),
        })
    }

    fn lent_event(&self, _node: NodeId, event: &NodeEvent) -> bool {
        let Some(router) = event_router(event) else {
            return false;
        };
        let Some(lent) = self.state().lent.get(&router).cloned() else {
            return false;
        };
        match self.links.link(&lent.host) {
            Some(link) if link.id() == lent.link => {
                let message = LinkMessage::NodeEvent {
                    node: lent.node.0,
                    event: event.clone(),
                };
                if !link.try_send(message) {
                    tracing::warn!(host = %lent.host, "a lent router's event dropped: the link is full");
                }
            }
            // Its link is gone: the router is being closed.
            _ => {}
        }
        true
    }

    fn local_node_lost(&self, node: NodeId, reason: &str) {
        let told: Vec<(HostId, u64)> = {
            let mut state = self.state();
            let mut told: Vec<(HostId, u64)> = state
                .lent
                .values()
                .filter(|l| l.node == node)
                .map(|l| (l.host.clone(), l.link))
                .collect();
            told.sort();
            told.dedup();
            state.lent.retain(|_, l| l.node != node);
            told
        };
        for (host, link_id) in told {
            if let Some(link) = self.links.link(&host).filter(|l| l.id() == link_id) {
                let gone = LinkMessage::NodeGone {
                    node: node.0,
                    reason: reason.to_string(),
                };
                let _ = link.try_send(gone);
            }
        }
    }
}

/// The router an event is about (a worker's death is about the whole node).
fn event_router(event: &NodeEvent) -> Option<RouterId> {
    match event {
        NodeEvent::ConsumerClosed { router, .. }
        | NodeEvent::ConsumerPaused { router, .. }
        | NodeEvent::ConsumerResumed { router, .. }
        | NodeEvent::ConsumerScore { router, .. }
        | NodeEvent::ConsumerLayersChanged { router, .. }
        | NodeEvent::ProducerScore { router, .. }
        | NodeEvent::ActiveSpeaker { router, .. }
        | NodeEvent::DataConsumerClosed { router, .. }
        | NodeEvent::DataProducerThrottled { router, .. } => Some(*router),
        NodeEvent::WorkerDied { .. } => None,
    }
}
