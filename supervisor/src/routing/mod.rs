//! Cluster mode (on with `ETCD_ENDPOINTS`): which host serves a room, and the links that
//! relay a client's signaling to it. The decisions are `room_core::cluster`'s; this layer
//! carries them out: `directory` speaks to etcd (this host's lease and record, room claims,
//! the watch that tells every host who owns what), `links` keeps one sealed connection to
//! each other supervisor, `relayed` serves here the sessions other hosts relay, `remote`
//! lets a room span hosts (routers on other hosts' nodes, called over the links).
//!
//! A single host never builds any of this: `Rooms` and the edge take `Option<Arc<Routing>>`.

pub mod directory;
mod handoff;
mod link_writer;
pub mod links;
pub mod relayed;
pub mod remote;
mod standby;
pub mod start;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cluster_api::HostRecord;
use ids::HostId;
use ipc::messages::RoomId;
use room_core::cluster::{Cluster, HostLoad, Input, JoinTicket, Output, Refusal};
use signaling_api::{ClientError, ClientErrorCode};
use tokio::sync::oneshot;

use crate::monitoring::metrics::Metrics;
use directory::Directory;
use links::Links;

/// How long a join waits for the cluster to say where its room is (a claim in etcd).
const ROUTE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a join or resume goes.
#[derive(Debug)]
pub enum Route {
    /// This host serves it.
    Local,
    /// Another host does: relay the session to it.
    Relay(HostId),
    /// Nobody can now.
    Refused(ClientError),
}

struct State {
    machine: Cluster,
    next_ticket: JoinTicket,
    waiters: HashMap<JoinTicket, oneshot::Sender<Route>>,
    /// The create revision of each room key this host claimed (its release is fenced by it).
    claims: HashMap<RoomId, i64>,
    /// Every room's owner as last listed (to tell the machine of rooms that went while the
    /// watch was down).
    owners: HashMap<RoomId, HostId>,
    /// The last owner this host learned of each room (the watch, or a claim another host
    /// won): a claim of a room whose last owner is lost is a failover.
    last_owner: HashMap<RoomId, HostId>,
}

/// The cluster as this host takes part in it.
pub struct Routing {
    me: HostId,
    state: Mutex<State>,
    directory: Arc<Directory>,
    /// The links to the other supervisors.
    pub links: Arc<Links>,
    hosts: Mutex<BTreeMap<HostId, HostRecord>>,
    pub(crate) metrics: Metrics,
    /// The rooms told of the hosts' signaling URLs.
    rooms: std::sync::OnceLock<std::sync::Weak<crate::driver::rooms::Rooms>>,
    /// This host is drained: its record offers no headroom and no node to the others.
    draining: std::sync::atomic::AtomicBool,
    /// Rooms handed over and taken over.
    pub(crate) handoffs: handoff::Handoffs,
    /// Hosts that left the directory, and when (their sessions' resumes wait a moment).
    gone: Mutex<HashMap<HostId, Instant>>,
}

/// How long after a host left the directory its sessions' resumes are told to wait (its
/// rooms may be adopted meanwhile).
const GONE_WINDOW: Duration = Duration::from_secs(30);

impl Routing {
    /// This host is drained from now on: new rooms go to other hosts, and other hosts place
    /// nothing new on its nodes (its record says so within a second).
    pub fn start_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether this host is drained.
    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The rooms whose join and resume answers list the hosts' signaling URLs.
    pub fn set_rooms(&self, rooms: &Arc<crate::driver::rooms::Rooms>) {
        let _ = self.rooms.set(Arc::downgrade(rooms));
    }

    /// This host (`me`) in a cluster whose directory is `directory`.
    pub fn new(me: HostId, directory: Arc<Directory>, links: Arc<Links>, metrics: Metrics) -> Self {
        Self {
            state: Mutex::new(State {
                machine: Cluster::new(me.clone()),
                next_ticket: 1,
                waiters: HashMap::new(),
                claims: HashMap::new(),
                last_owner: HashMap::new(),
                owners: HashMap::new(),
            }),
            me,
            directory,
            links,
            hosts: Mutex::new(BTreeMap::new()),
            metrics,
            rooms: std::sync::OnceLock::new(),
            draining: std::sync::atomic::AtomicBool::new(false),
            handoffs: handoff::Handoffs::default(),
            gone: Mutex::new(HashMap::new()),
        }
    }

    /// This host.
    pub fn me(&self) -> &HostId {
        &self.me
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The hosts of the cluster as the directory lists them now.
    pub fn hosts(&self) -> Vec<HostRecord> {
        let hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        hosts.values().cloned().collect()
    }

    /// The rooms this host owns.
    pub fn owned(&self) -> Vec<RoomId> {
        self.state().machine.owned()
    }

    /// The owner of `room`, as far as this host knows.
    pub fn owner(&self, room: &str) -> Option<HostId> {
        self.state().machine.owner(&RoomId(room.into())).cloned()
    }

    /// Where a join for `room` goes (`relayed`: another host relayed it here).
    pub async fn route_join(self: &Arc<Self>, room: &str, relayed: bool) -> Route {
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.state();
            let ticket = state.next_ticket;
            state.next_ticket += 1;
            state.waiters.insert(ticket, tx);
            let input = Input::Join {
                ticket,
                room: RoomId(room.into()),
                relayed,
            };
            self.feed(&mut state, input);
        }
        match tokio::time::timeout(ROUTE_TIMEOUT, rx).await {
            Ok(Ok(route)) => route,
            _ => Route::Refused(ClientError::new(
                ClientErrorCode::ClusterUnavailable,
                "the cluster directory (etcd) did not answer in time: try again",
            )),
        }
    }

    /// Where a `resume` with `token` goes: its token names the host that issued it.
    pub fn route_resume(&self, token: &str) -> Route {
        // A room handed over by a drained host, or adopted: where it went.
        match self.forwarded(token) {
            Some(host) if host == self.me => return Route::Local,
            Some(host) => return Route::Relay(host),
            None => {}
        }
        let Some((host, _)) = token.split_once(':') else {
            return Route::Local;
        };
        let Ok(host) = HostId::parse(host) else {
            return Route::Local;
        };
        if host == self.me {
            return Route::Local;
        }
        if self.links.link(&host).is_some() {
            return Route::Relay(host);
        }
        // Its host is out of reach, or died a moment ago: its rooms may be taken over
        // (adopted) soon; the token is then forwarded.
        if self.links.knows(&host) || self.recently_gone(&host) {
            return Route::Refused(ClientError::new(
                ClientErrorCode::ClusterUnavailable,
                format!("host {host}, which served this session, is out of reach: its room may move to another host; resume again in a moment"),
            ));
        }
        // A token of a host long gone, or not a token at all: this host's core refuses it.
        Route::Local
    }

    /// This host claimed `room`, whose owner `from` was lost.
    fn failed_over(&self, room: &RoomId, from: &HostId) {
        // From when the host left the directory (its lease ended), if it did.
        let since = (self.gone.lock().unwrap_or_else(|p| p.into_inner()))
            .get(from)
            .copied();
        let ms = since.map_or(0, |at| at.elapsed().as_millis() as u64);
        tracing::warn!(room = %room, %from, ms, "a lost host's room is served here now (failover)");
        self.metrics.room_failed_over();
        if let Some(rooms) = self.rooms.get().and_then(std::sync::Weak::upgrade) {
            rooms.publish(monitor_api::EventKind::RoomFailedOver {
                room: room.0.clone(),
                from: from.to_string(),
                ms,
            });
        }
    }

    /// Whether `host` left the directory within the last [`GONE_WINDOW`].
    fn recently_gone(&self, host: &HostId) -> bool {
        let gone = self.gone.lock().unwrap_or_else(|p| p.into_inner());
        gone.get(host).is_some_and(|at| at.elapsed() < GONE_WINDOW)
    }

    /// A room of this host closed (its last peer left): release its key if it owns it.
    pub fn room_closed(self: &Arc<Self>, room: RoomId) {
        let mut state = self.state();
        self.feed(&mut state, Input::Closed(room));
    }

    /// Feeds the machine and carries out what it says.
    fn feed(self: &Arc<Self>, state: &mut State, input: Input) {
        state.machine.handle(input, Instant::now());
        while let Some(output) = state.machine.poll_output() {
            match output {
                Output::Serve(ticket) => answer(state, ticket, Route::Local),
                Output::Relay(ticket, host) => answer(state, ticket, Route::Relay(host)),
                Output::Refuse(ticket, why) => answer(state, ticket, Route::Refused(refusal(why))),
                Output::Claim(room) => {
                    let this = self.clone();
                    tokio::spawn(async move { this.claim(room).await });
                }
                Output::Release(room) => {
                    if let Some(revision) = state.claims.remove(&room) {
                        let this = self.clone();
                        tokio::spawn(async move {
                            this.directory.release(&room, revision).await;
                        });
                    }
                }
                Output::Fence(rooms) => {
                    state.claims.clear();
                    if !rooms.is_empty() {
                        let names: Vec<&str> = rooms.iter().map(|r| r.0.as_str()).collect();
                        tracing::error!(rooms = ?names, "lease lost: this host no longer owns its rooms (another host may take them once the lease expires)");
                    }
                }
            }
        }
    }

    async fn claim(self: Arc<Self>, room: RoomId) {
        let input = match self.directory.claim(&room).await {
            Ok(Ok(revision)) => {
                let before = {
                    let mut state = self.state();
                    state.claims.insert(room.clone(), revision);
                    state.last_owner.remove(&room)
                };
                tracing::info!(room = %room, "this host owns the room now");
                if let Some(from) = before.filter(|h| self.is_lost(h)) {
                    self.failed_over(&room, &from);
                }
                Input::Claimed {
                    room,
                    result: Ok(()),
                }
            }
            Ok(Err(owner)) => {
                tracing::debug!(room = %room, %owner, "another host claimed the room first");
                self.note_owner(&mut self.state(), &room, Some(owner.clone()));
                Input::Claimed {
                    room,
                    result: Err(owner),
                }
            }
            Err(e) => {
                tracing::warn!(room = %room, "claiming the room failed: {e}");
                Input::ClaimFailed(room)
            }
        };
        let mut state = self.state();
        self.feed(&mut state, input);
        self.metrics.rooms_owned(state.machine.owned().len());
    }

    /// Tells the machine whether every other host of the last listing is linked and fenced
    /// (then nobody can write to etcd, and joins into known rooms may go on), whenever a
    /// peer's word on it may have changed; for as long as the process lives.
    pub(crate) async fn follow_peers_fenced(self: Arc<Self>) {
        loop {
            self.links.fenced_changed.notified().await;
            let others: Vec<HostId> = self
                .hosts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .keys()
                .filter(|h| **h != self.me)
                .cloned()
                .collect();
            let all = others
                .iter()
                .all(|h| self.links.peer_fenced(h) == Some(true));
            let mut state = self.state();
            self.feed(&mut state, Input::PeersFenced(all));
        }
    }

    /// The directory's hosts now.
    pub(crate) fn hosts_changed(self: &Arc<Self>, hosts: Vec<HostRecord>) {
        let loads = hosts
            .iter()
            .map(|h| HostLoad {
                id: h.id.clone(),
                headroom: h.headroom,
            })
            .collect();
        let lost: Vec<HostId> = {
            let listed: Vec<&HostId> = hosts.iter().map(|h| &h.id).collect();
            let before = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
            let mut gone = self.gone.lock().unwrap_or_else(|p| p.into_inner());
            gone.retain(|_, at| at.elapsed() < GONE_WINDOW);
            let lost: Vec<HostId> = (before.keys())
                .filter(|h| !listed.contains(h) && **h != self.me)
                .cloned()
                .collect();
            for host in &lost {
                gone.insert(host.clone(), Instant::now());
            }
            lost
        };
        if let Some(rooms) = self.rooms.get().and_then(std::sync::Weak::upgrade) {
            for host in lost {
                let owned = (self.state().last_owner.values())
                    .filter(|o| **o == host)
                    .count() as u32;
                tracing::warn!(%host, rooms = owned, "a host left the cluster");
                self.metrics.host_lost();
                rooms.publish(monitor_api::EventKind::HostLost {
                    host: host.to_string(),
                    rooms: owned,
                });
            }
        }
        self.links.hosts_changed(&hosts);
        self.metrics.cluster_hosts(hosts.len());
        if let Some(rooms) = self.rooms.get().and_then(std::sync::Weak::upgrade) {
            rooms.set_cluster_urls(hosts.iter().map(|h| h.public_url.clone()).collect());
        }
        *self.hosts.lock().unwrap_or_else(|p| p.into_inner()) =
            hosts.into_iter().map(|h| (h.id.clone(), h)).collect();
        let mut state = self.state();
        self.feed(&mut state, Input::Hosts(loads));
    }

    /// Every room's owner as listed now (after a (re)start of the watch).
    pub(crate) fn owners_listed(self: &Arc<Self>, owners: HashMap<RoomId, HostId>) {
        let mut state = self.state();
        let gone: Vec<(RoomId, HostId)> = state
            .owners
            .iter()
            .filter(|(room, _)| !owners.contains_key(*room))
            .map(|(room, owner)| (room.clone(), owner.clone()))
            .collect();
        let mut orphaned = Vec::new();
        for (room, before) in gone {
            if self.is_lost(&before) {
                orphaned.push(room.clone());
            }
            self.note_owner(&mut state, &room, None);
            self.feed(&mut state, Input::Owner { room, owner: None });
        }
        for (room, owner) in &owners {
            self.note_owner(&mut state, room, Some(owner.clone()));
            let input = Input::Owner {
                room: room.clone(),
                owner: Some(owner.clone()),
            };
            self.feed(&mut state, input);
        }
        state.owners = owners;
        self.metrics.rooms_owned(state.machine.owned().len());
        drop(state);
        for room in orphaned {
            self.maybe_adopt(&room);
        }
    }

    /// Records what this host learned of `room`'s owner (`None`: its key went). A room whose
    /// owner released it (alive and linked) is forgotten; one whose owner is lost is kept,
    /// for the next claim of it to be counted a failover.
    fn note_owner(&self, state: &mut State, room: &RoomId, owner: Option<HostId>) {
        if state.last_owner.len() > 100_000 {
            state.last_owner.clear();
        }
        match owner {
            // This host's claim (the watch may tell it before the claim's answer does): a
            // lost owner before it makes it a failover.
            Some(owner) if owner == self.me => {
                if let Some(before) = state.last_owner.remove(room) {
                    if self.is_lost(&before) {
                        self.failed_over(room, &before);
                    }
                }
            }
            Some(owner) => {
                state.last_owner.insert(room.clone(), owner);
            }
            None => {
                let released = (state.last_owner.get(room)).is_some_and(|h| !self.is_lost(h));
                if released {
                    state.last_owner.remove(room);
                }
            }
        }
    }

    /// Whether `host` is another host out of reach now, or gone from the directory lately.
    fn is_lost(&self, host: &HostId) -> bool {
        *host != self.me && (self.links.link(host).is_none() || self.recently_gone(host))
    }

    /// One room's owner changed.
    pub(crate) fn owner_changed(self: &Arc<Self>, room: RoomId, owner: Option<HostId>) {
        let gone = owner.is_none();
        {
            let mut state = self.state();
            let before = match &owner {
                Some(host) => state.owners.insert(room.clone(), host.clone()),
                None => state.owners.remove(&room),
            };
            if let Some(before) = before {
                state.last_owner.entry(room.clone()).or_insert(before);
            }
            self.note_owner(&mut state, &room, owner.clone());
            self.feed(
                &mut state,
                Input::Owner {
                    room: room.clone(),
                    owner,
                },
            );
            self.metrics.rooms_owned(state.machine.owned().len());
        }
        // Its owner's lease expired: this host may adopt what survives of it.
        if gone {
            self.maybe_adopt(&room);
        }
    }

    /// This host's lease is held (or lost).
    pub(crate) fn lease(self: &Arc<Self>, held: bool) {
        {
            let mut state = self.state();
            self.feed(&mut state, Input::Lease(held));
        }
        self.links.set_fenced(!held);
        if held {
            tokio::spawn(self.clone().reclaim_rooms());
        }
    }

    /// With a new lease (after a fence: etcd was out of reach), the rooms this host still
    /// serves are put under it, unless another host took one meanwhile: that room's peers
    /// are told to move there.
    async fn reclaim_rooms(self: Arc<Self>) {
        let Some(rooms) = self.rooms.get().and_then(std::sync::Weak::upgrade) else {
            return;
        };
        let serving: Vec<RoomId> = rooms.views(None).into_keys().collect();
        for room in serving {
            match self.directory.reclaim(&room).await {
                Ok(Ok(revision)) => {
                    self.state().claims.insert(room.clone(), revision);
                    tracing::info!(room = %room, "this host owns the room again (new lease)");
                }
                Ok(Err(owner)) => {
                    tracing::warn!(room = %room, %owner, "another host took the room while this one was cut off: moving its peers there");
                    rooms.room_lost(&room, &format!("host {owner} owns it now"));
                }
                Err(e) => tracing::warn!(room = %room, "cannot reclaim the room: {e}"),
            }
        }
    }
}

fn answer(state: &mut State, ticket: JoinTicket, route: Route) {
    if let Some(waiter) = state.waiters.remove(&ticket) {
        let _ = waiter.send(route);
    }
}

fn refusal(why: Refusal) -> ClientError {
    match why {
        Refusal::Fenced => ClientError::new(
            ClientErrorCode::ClusterUnavailable,
            "this host is cut off from the cluster directory: join through another host",
        ),
        Refusal::Moved(owner) => ClientError::new(
            ClientErrorCode::ClusterUnavailable,
            format!("the room moved to host {owner} meanwhile: join again"),
        ),
        Refusal::Directory => ClientError::new(
            ClientErrorCode::ClusterUnavailable,
            "the cluster directory (etcd) cannot be reached: try again",
        ),
        Refusal::Full => ClientError::new(
            ClientErrorCode::Capacity,
            "no host of the cluster has room for a new room",
        ),
    }
}
