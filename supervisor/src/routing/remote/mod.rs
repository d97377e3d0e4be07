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

mod handover;
mod recorded;
use super::Routing;
use crate::driver::node_link::{LinkError, NodeId, Sent};
use crate::driver::node_pool::NodePool;
use crate::driver::remote::{EndedThere, Offered, Place, RecordedThere, RemoteNodes, RemoteTrack};
use crate::driver::rooms::Rooms;
use ipc::recorder::TrackSummary;

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
    /// Its host's link ended while a standby of its room was here: kept for an adoption
    /// until then, closed after.
    orphaned_until: Option<std::time::Instant>,
}

/// A room another host owns, as it last sent it (`LinkMessage::Standby`).
struct Standby {
    from: HostId,
    export: String,
    /// When the link to its owner ended, if it did.
    lost_at: Option<std::time::Instant>,
}

/// Bytes of standbys kept at most (a bound on what other hosts can make this one hold).
const MAX_STANDBY_BYTES: usize = 16 << 20;

/// How long routers of a dead host's rooms are kept for an adoption: its lease expires, then
/// this host claims the room.
const ORPHAN_GRACE: Duration = Duration::from_secs(30);

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
    /// Other hosts' rooms with routers here, as their owners last sent them.
    standbys: HashMap<String, Standby>,
    /// Calls to other hosts about tracks they record for this host's rooms.
    records: recorded::RecordCalls,
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
        let caller = Lent {
            host: host.clone(),
            link: link.id(),
            node,
            orphaned_until: None,
        };
        let allowed = authorize(&mut self.state().lent, caller, &request);
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

    /// A link ended: what lived on it ends. Routers lent through it are closed here; nodes
    /// borrowed through it are lost to this host's rooms.
    pub fn link_down(self: &Arc<Self>, host: &HostId, link: u64) {
        let (closing, lost, calls) = {
            let mut state = self.state();
            // Routers of its rooms this host keeps a standby of wait for an adoption.
            let standby = Self::standby_routers(&state, host);
            let now = std::time::Instant::now();
            for s in state.standbys.values_mut().filter(|s| &s.from == host) {
                s.lost_at.get_or_insert(now);
            }
            let until = std::time::Instant::now() + ORPHAN_GRACE;
            let mut closing: Vec<(RouterId, NodeId)> = Vec::new();
            let mut orphaned = 0;
            for (router, lent) in state.lent.iter_mut() {
                if &lent.host != host || lent.link != link {
                    continue;
                }
                if standby.contains(router) {
                    lent.orphaned_until = Some(until);
                    orphaned += 1;
                } else {
                    closing.push((*router, lent.node));
                }
            }
            for (router, _) in &closing {
                state.lent.remove(router);
            }
            if orphaned > 0 {
                tracing::warn!(%host, routers = orphaned, "keeping the routers of a lost host's rooms for an adoption");
                let this = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(ORPHAN_GRACE).await;
                    this.close_orphans();
                });
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
            state.records.link_down(host, link);
            (closing, lost, calls.len())
        };
        if !closing.is_empty() {
            tracing::warn!(%host, routers = closing.len(), "closing the routers another host's rooms had here: its link is down");
        }
        self.close_lent(closing);
        if let Some(recordings) = self.rooms().and_then(|r| r.recordings().cloned()) {
            recordings.end_all_for(host, link);
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

    /// Closes routers this host's nodes had for other hosts' rooms (answers ignored).
    fn close_lent(&self, routers: Vec<(RouterId, NodeId)>) {
        for (router, node) in routers {
            if let Some(local) = self.pool.link(node) {
                let close: Request = call::CloseRouter { router }.into();
                if let Ok(sent) = local.send(close) {
                    tokio::spawn(async move {
                        let _ = sent.answer().await;
                    });
                }
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

    /// `link`'s host drains its nodes `nodes`: this host's rooms move their peers off them.
    pub fn remote_draining(&self, link: &Arc<Link>, nodes: &[u32]) {
        let aliases: Vec<NodeId> = {
            let state = self.state();
            (nodes.iter())
                .filter_map(|node| {
                    let borrowed = Borrowed {
                        host: link.peer().clone(),
                        link: link.id(),
                        node: *node,
                    };
                    state.aliases.get(&borrowed).copied()
                })
                .collect()
        };
        tracing::info!(host = %link.peer(), ?nodes, used = aliases.len(), "another host drains its nodes: moving this host's peers off them");
        if let Some(rooms) = self.rooms() {
            for alias in aliases {
                rooms.drain_borrowed(alias);
            }
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
        let Some(router) = event.router() else {
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

    /// This host drains its nodes `nodes`: the hosts whose rooms have routers there are
    /// asked to move their peers off them.
    fn drain_local(&self, nodes: &[NodeId]) {
        let hosts: Vec<(HostId, u64)> = {
            let state = self.state();
            let mut hosts: Vec<(HostId, u64)> = (state.lent.values())
                .filter(|l| nodes.contains(&l.node))
                .map(|l| (l.host.clone(), l.link))
                .collect();
            hosts.sort();
            hosts.dedup();
            hosts
        };
        let numbers: Vec<u32> = nodes.iter().map(|n| n.0).collect();
        for (host, link_id) in hosts {
            if let Some(link) = self.links.link(&host).filter(|l| l.id() == link_id) {
                let draining = LinkMessage::Draining {
                    nodes: numbers.clone(),
                };
                if !link.try_send(draining) {
                    tracing::warn!(%host, "cannot tell the host of a drain: its link is full");
                }
            }
        }
    }

    /// Routers other hosts' rooms still have on this host's node `node`.
    fn lent_on(&self, node: NodeId) -> usize {
        self.state()
            .lent
            .values()
            .filter(|l| l.node == node)
            .count()
    }

    fn record(&self, node: NodeId, track: RemoteTrack) -> Option<(Place, RecordedThere)> {
        self.ask_record(node, track)
    }

    fn end_recorded(&self, host: &HostId, track: u64) -> EndedThere {
        self.ask_end(host, track)
    }

    fn recorded_failed(&self, host: &HostId, link: u64, track: u64, summary: TrackSummary) {
        self.tell_failed(host, link, track, summary);
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

/// Whether `caller` may have `request` carried out on its node here: a new router (recorded
/// as the caller's now, before the node answers: its events may come first), or anything
/// else for a router the caller created on that node (and, for a pipe within the node, a
/// target router of its own).
fn authorize(
    lent: &mut HashMap<RouterId, Lent>,
    caller: Lent,
    request: &Request,
) -> Result<(), NodeError> {
    let router = request.router();
    let mine = |lent: &HashMap<RouterId, Lent>, router: RouterId| {
        lent.get(&router)
            .is_some_and(|l| l.host == caller.host && l.node == caller.node)
    };
    match request {
        Request::CreateRouter(_) if lent.contains_key(&router) => Err(refused(
            NodeErrorCode::InvalidArgument,
            format!("router {router} exists"),
        )),
        Request::CreateRouter(_) => {
            lent.insert(router, caller);
            Ok(())
        }
        _ if !mine(lent, router) => Err(refused(
            NodeErrorCode::NotFound,
            format!(
                "no router {router} of host {} on {} here",
                caller.host, caller.node
            ),
        )),
        Request::PipeToRouter(call::PipeToRouter { target, .. })
        | Request::PipeDataToRouter(call::PipeDataToRouter { target, .. })
            if !mine(lent, *target) =>
        {
            Err(refused(
                NodeErrorCode::NotFound,
                format!("no router {target} of host {} here", caller.host),
            ))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
