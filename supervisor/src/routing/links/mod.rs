//! One sealed connection between this supervisor and each other one of the cluster, carrying
//! every session relayed between the two hosts. The host with the smaller id dials, the other
//! accepts (so a pair has one link), and the dialer keeps it up while both are in the
//! directory. A link that stops answering its pings (5 s), fails a write, or carries a frame
//! that does not open, ends, and so do its sessions: a relayed client is closed (1012) and
//! joins or resumes again, through any host.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use cluster_api::handshake::{self, ClusterSecret};
use cluster_api::sealed::{LinkError, SealedReader};
use cluster_api::{HostRecord, LinkMessage, SessionId};
use ids::HostId;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, Notify, Semaphore};

use super::link_writer::{micros_now, write_link, Queued};
use super::relayed::RelayServer;
use super::remote::Remote;
use crate::edge::monitor_socket::Monitor;
use crate::edge::outbox::{Outbox, OUTBOX_BYTES};
use crate::monitoring::metrics::Metrics;

mod reader;

/// Bytes queued for one link's writer (its messages' weights): a link that cannot keep up
/// makes session writers wait and refuses what cannot wait, instead of growing memory.
const LINK_QUEUE_BYTES: usize = 8 << 20;

/// How long a relay waits for the link to a host to come up.
const LINK_WAIT: Duration = Duration::from_secs(3);
/// Close code for a relayed client whose serving host became unreachable ("service restart").
pub const CLOSE_HOST_GONE: u16 = 1012;

/// Where a session's frames from the peer go.
enum SessionEnd {
    /// A client of this host that the peer serves: frames go to its outbox, a close to its
    /// session.
    Client {
        outbox: Outbox,
        close: mpsc::Sender<(u16, String)>,
    },
    /// A session the peer relays to this host: frames go to its reader.
    Served { inbound: Outbox },
}

/// One open link.
pub struct Link {
    /// This link among every link this host made (a later link to the same host has a
    /// larger one): what lives on a link (routers lent, remote nodes) ends with it.
    id: u64,
    peer: HostId,
    out: mpsc::UnboundedSender<Queued>,
    /// The queue's budget in bytes.
    budget: Arc<Semaphore>,
    /// This side numbers the sessions it opens odd (dialer) or even (acceptor).
    odd: bool,
    next: AtomicU64,
    sessions: Mutex<HashMap<SessionId, SessionEnd>>,
    closed: AtomicBool,
    /// Monitor requests asked of the peer, waiting for its answer.
    asks: Mutex<HashMap<u64, oneshot::Sender<String>>>,
    /// Becomes `true` when the link ends.
    ended: watch::Sender<bool>,
}

impl Link {
    fn sessions(&self) -> MutexGuard<'_, HashMap<SessionId, SessionEnd>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The host at the other end.
    pub fn peer(&self) -> &HostId {
        &self.peer
    }

    /// This link's number.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Queues `message`, waiting for room (a session's writer may wait; a reader never does).
    pub async fn send(&self, message: LinkMessage) -> bool {
        let weight = permits(&message);
        match self.budget.clone().acquire_many_owned(weight).await {
            Ok(permit) => self.out.send((message, permit)).is_ok(),
            Err(_) => false,
        }
    }

    /// Queues `message` if there is room now.
    pub fn try_send(&self, message: LinkMessage) -> bool {
        match self
            .budget
            .clone()
            .try_acquire_many_owned(permits(&message))
        {
            Ok(permit) => self.out.send((message, permit)).is_ok(),
            Err(_) => false,
        }
    }

    /// Forgets a session served here (its task ended); tells the peer unless it ended it.
    pub fn served_ended(&self, session: SessionId, code: u16, reason: &str) {
        if self.sessions().remove(&session).is_some() {
            let close = LinkMessage::Close {
                session,
                code,
                reason: reason.into(),
            };
            let _ = self.try_send(close);
        }
    }

    fn end(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.ended.send_replace(true);
        let sessions: Vec<SessionEnd> = self.sessions().drain().map(|(_, end)| end).collect();
        for end in sessions {
            if let SessionEnd::Client { close, .. } = end {
                let why = format!("host {} is unreachable: join again", self.peer);
                let _ = close.try_send((CLOSE_HOST_GONE, why));
            }
            // A served session's reader sees its queue end and leaves (resumable).
        }
    }
}

/// A client of this host relayed to the host that serves its room.
pub struct RelaySession {
    link: Arc<Link>,
    session: SessionId,
    /// The serving host's close of the client's connection (code, reason).
    pub closed: mpsc::Receiver<(u16, String)>,
    ended: bool,
    metrics: Metrics,
}

impl RelaySession {
    /// The host serving this session.
    pub fn host(&self) -> &HostId {
        &self.link.peer
    }

    /// Forwards one of the client's frames; `false` when the link cannot take it now (full
    /// or gone): the client is then closed rather than a request silently lost.
    pub fn forward(&self, text: String) -> bool {
        let frame = LinkMessage::Frame {
            session: self.session,
            text,
        };
        self.metrics.relayed_frame();
        self.link.try_send(frame)
    }
}

impl Drop for RelaySession {
    fn drop(&mut self) {
        if !self.ended && self.link.sessions().remove(&self.session).is_some() {
            let close = LinkMessage::Close {
                session: self.session,
                code: 1000,
                reason: "the client left".into(),
            };
            // If the link is full the peer still learns when the link ends.
            let _ = self.link.try_send(close);
        }
        self.ended = true;
        self.metrics.relayed_session(-1);
    }
}

/// Why a session could not be relayed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// No link to the host came up in time.
    #[error("no link to host {0}")]
    NoLink(HostId),
}

#[derive(Default)]
struct State {
    links: HashMap<HostId, Arc<Link>>,
    dialing: HashSet<HostId>,
    addresses: HashMap<HostId, SocketAddr>,
}

/// Every link of this host.
pub struct Links {
    me: HostId,
    secret: ClusterSecret,
    state: Mutex<State>,
    changed: Notify,
    server: OnceLock<Arc<RelayServer>>,
    monitor: OnceLock<Monitor>,
    remote: OnceLock<Arc<Remote>>,
    next_link: AtomicU64,
    /// Whether this host has no lease now (told to every peer).
    fenced: AtomicBool,
    /// What each linked peer last said of its lease.
    peers_fenced: Mutex<HashMap<HostId, bool>>,
    /// Rung when a peer's fenced state may have changed (it said so, or its link ended).
    pub fenced_changed: Notify,
    metrics: Metrics,
}

impl Links {
    /// No links yet.
    pub fn new(me: HostId, secret: ClusterSecret, metrics: Metrics) -> Self {
        Self {
            me,
            secret,
            state: Mutex::new(State::default()),
            changed: Notify::new(),
            server: OnceLock::new(),
            monitor: OnceLock::new(),
            remote: OnceLock::new(),
            next_link: AtomicU64::new(1),
            // No lease until one is granted.
            fenced: AtomicBool::new(true),
            peers_fenced: Mutex::new(HashMap::new()),
            fenced_changed: Notify::new(),
            metrics,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What serves the sessions other hosts relay here.
    pub fn set_server(&self, server: Arc<RelayServer>) {
        let _ = self.server.set(server);
    }

    /// What answers the monitor requests other hosts ask of this one.
    pub fn set_monitor(&self, monitor: Monitor) {
        let _ = self.monitor.set(monitor);
    }

    /// What serves other hosts' calls to this host's nodes, and this host's to theirs.
    pub fn set_remote(&self, remote: Arc<Remote>) {
        let _ = self.remote.set(remote);
    }

    /// This host has (`false`) or lacks (`true`) a lease now: every peer is told.
    pub fn set_fenced(&self, fenced: bool) {
        if self.fenced.swap(fenced, Ordering::AcqRel) == fenced {
            return;
        }
        let links: Vec<Arc<Link>> = self.state().links.values().cloned().collect();
        for link in links {
            let _ = link.try_send(LinkMessage::Fenced(fenced));
        }
    }

    /// What `host` last said of its lease (`None`: no link, or it said nothing yet).
    pub fn peer_fenced(&self, host: &HostId) -> Option<bool> {
        self.peers_fenced
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(host)
            .copied()
    }

    /// Both sides of rooms spanning hosts, once set.
    pub fn remote(&self) -> Option<&Arc<Remote>> {
        self.remote.get()
    }

    /// The link to `host`, when it is up.
    pub fn link(&self, host: &HostId) -> Option<Arc<Link>> {
        self.state().links.get(host).cloned()
    }

    /// Asks `host` the monitor request `query` (JSON) about itself; its answer (JSON), or
    /// `None` when it has no link up or does not answer within `within`.
    pub async fn ask(&self, host: &HostId, query: String, within: Duration) -> Option<String> {
        let link = self.state().links.get(host).cloned()?;
        let id = link.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        link.asks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        let answer = if link.try_send(LinkMessage::Ask { id, query }) {
            tokio::time::timeout(within, rx)
                .await
                .ok()
                .and_then(Result::ok)
        } else {
            None
        };
        link.asks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        answer
    }

    /// Whether `host` is in the directory now.
    pub fn knows(&self, host: &HostId) -> bool {
        self.state().addresses.contains_key(host)
    }

    /// The hosts with a link up now.
    pub fn linked(&self) -> Vec<HostId> {
        self.state().links.keys().cloned().collect()
    }

    /// The directory's hosts changed: dial the new ones this host is to dial.
    pub fn hosts_changed(self: &Arc<Self>, hosts: &[HostRecord]) {
        let mut state = self.state();
        state.addresses = hosts
            .iter()
            .filter(|h| h.id != self.me)
            .map(|h| (h.id.clone(), h.cluster_addr))
            .collect();
        let to_dial: Vec<HostId> = state
            .addresses
            .keys()
            .filter(|h| {
                **h > self.me && !state.links.contains_key(*h) && !state.dialing.contains(*h)
            })
            .cloned()
            .collect();
        for host in to_dial {
            state.dialing.insert(host.clone());
            tokio::spawn(self.clone().keep_dialing(host));
        }
    }

    /// Dials `host` until a link is up or the host leaves the directory.
    async fn keep_dialing(self: Arc<Self>, host: HostId) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let Some(address) = self.state().addresses.get(&host).copied() else {
                self.state().dialing.remove(&host);
                return;
            };
            match self.dial(&host, address).await {
                Ok(link) => {
                    self.state().dialing.remove(&host);
                    // Redial when it ends, if the host is still there and no other link
                    // took over (two dialers would replace each other's links for ever).
                    let _ = link.ended.subscribe().wait_for(|ended| *ended).await;
                    let mut state = self.state();
                    let replaced = state
                        .links
                        .get(&host)
                        .is_some_and(|other| !Arc::ptr_eq(other, &link));
                    if !replaced && state.dialing.insert(host.clone()) {
                        backoff = Duration::from_millis(100);
                        continue;
                    }
                    return;
                }
                Err(e) => {
                    tracing::warn!(%host, %address, "cannot link to host: {e}; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn dial(
        self: &Arc<Self>,
        host: &HostId,
        address: SocketAddr,
    ) -> Result<Arc<Link>, LinkError> {
        let stream =
            tokio::time::timeout(handshake::HANDSHAKE_TIMEOUT, TcpStream::connect(address))
                .await
                .map_err(|_| LinkError::HandshakeTimeout)??;
        let _ = stream.set_nodelay(true);
        let (reader, writer) = stream.into_split();
        let link = handshake::dial(reader, writer, &self.me, &self.secret).await?;
        if link.peer != *host {
            return Err(LinkError::Refused(format!(
                "{address} answers as host {} (the directory says {host})",
                link.peer
            )));
        }
        Ok(self.start(link, true))
    }

    /// Takes links from the other supervisors on `listener`, for as long as the process lives.
    pub async fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        loop {
            let (stream, address) = match listener.accept().await {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!("accepting a cluster link failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let this = self.clone();
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                let (reader, writer) = stream.into_split();
                match handshake::accept(reader, writer, &this.me, &this.secret).await {
                    Ok(link) => {
                        tracing::info!(peer = %link.peer, %address, "cluster link accepted");
                        this.start(link, false);
                    }
                    Err(e) => {
                        this.metrics.cluster_link_refused();
                        tracing::warn!(%address, "refused a cluster link: {e}");
                    }
                }
            });
        }
    }

    /// Runs an open link: its writer (with pings) and its reader.
    fn start(
        self: &Arc<Self>,
        link: handshake::Link<OwnedReadHalf, OwnedWriteHalf>,
        dialer: bool,
    ) -> Arc<Link> {
        let (out, queue) = mpsc::unbounded_channel();
        let shared = Arc::new(Link {
            id: self.next_link.fetch_add(1, Ordering::Relaxed),
            peer: link.peer.clone(),
            out,
            budget: Arc::new(Semaphore::new(LINK_QUEUE_BYTES)),
            odd: dialer,
            next: AtomicU64::new(0),
            sessions: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            asks: Mutex::new(HashMap::new()),
            ended: watch::channel(false).0,
        });
        if let Some(old) = self.state().links.insert(link.peer.clone(), shared.clone()) {
            old.end();
        }
        tracing::info!(peer = %link.peer, "cluster link up");
        self.changed.notify_waiters();
        let _ = shared.try_send(LinkMessage::Fenced(self.fenced.load(Ordering::Acquire)));
        let last_pong = Arc::new(Mutex::new(Instant::now()));
        let writing = shared.clone();
        let pongs = last_pong.clone();
        let writer = tokio::spawn(async move {
            // A failed write or a silent peer ends the link (and its reader).
            let why = write_link(link.writer, queue, pongs).await;
            tracing::warn!(peer = %writing.peer, "cluster link writer stopped: {why}");
            writing.end();
        });
        let this = self.clone();
        let reading = shared.clone();
        tokio::spawn(async move {
            let why = this.read_link(link.reader, &reading, &last_pong).await;
            tracing::warn!(peer = %reading.peer, "cluster link down: {why}");
            writer.abort();
            reading.end();
            if let Some(remote) = this.remote.get() {
                remote.link_down(&reading.peer, reading.id);
            }
            this.peers_fenced
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&reading.peer);
            this.fenced_changed.notify_one();
            let mut state = this.state();
            if state
                .links
                .get(&reading.peer)
                .is_some_and(|l| Arc::ptr_eq(l, &reading))
            {
                state.links.remove(&reading.peer);
            }
        });
        shared
    }

    /// Relays a client of this host (its frames to come go to `outbox`) to `host`.
    pub async fn open(
        &self,
        host: &HostId,
        client: IpAddr,
        outbox: Outbox,
    ) -> Result<RelaySession, RelayError> {
        let deadline = tokio::time::Instant::now() + LINK_WAIT;
        let link = loop {
            let changed = self.changed.notified();
            if let Some(link) = self.state().links.get(host).cloned() {
                break link;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(RelayError::NoLink(host.clone()));
            }
        };
        let n = link.next.fetch_add(1, Ordering::Relaxed);
        let session = SessionId(n * 2 + u64::from(link.odd));
        let (close, closed) = mpsc::channel(1);
        link.sessions()
            .insert(session, SessionEnd::Client { outbox, close });
        if !link.try_send(LinkMessage::Open { session, client }) {
            link.sessions().remove(&session);
            return Err(RelayError::NoLink(host.clone()));
        }
        self.metrics.relayed_session(1);
        Ok(RelaySession {
            link,
            session,
            closed,
            ended: false,
            metrics: self.metrics.clone(),
        })
    }
}

/// A message's share of the queue's budget (never more than the whole budget).
fn permits(message: &LinkMessage) -> u32 {
    message.weight().min(LINK_QUEUE_BYTES) as u32
}
