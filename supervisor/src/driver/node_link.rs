//! The supervisor's connection to one node process: the hello, requests with ids and
//! timeouts, and the reader that delivers answers, events and load reports.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipc::calls::{Answer, Call};
use ipc::messages::{
    FromNode, LoadReport, NodeError, NodeEvent, NodeHello, Request, Response, RouterId, ToNode,
    PROTOCOL_VERSION,
};
use ipc::rpc::Pending;
use ipc::socket::{FramedReader, FramedWriter, StreamHalf};
use ipc::RpcError;
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};

use crate::monitoring::metrics::Metrics;

pub use room_core::lifecycle::NodeId;
use room_core::lifecycle::SpawnOrigin;

/// Why a request to a node failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LinkError {
    /// The node is gone or did not answer in time.
    #[error("{0}")]
    Rpc(#[from] RpcError),
    /// The node answered with an error.
    #[error("{0}")]
    Node(#[from] NodeError),
    /// The node answered with another request's answer (a bug on one side).
    #[error("the node answered {request} with {answer}")]
    Mismatched {
        /// The request's name.
        request: &'static str,
        /// What came instead.
        answer: String,
    },
}

/// What a node link reports to the pool.
#[derive(Debug)]
pub enum LinkEvent {
    /// A node is connected and ready, started for this reason.
    Ready(NodeId, SpawnOrigin),
    /// Something happened on the node; the place it takes in its node's budget
    /// ([`NODE_EVENT_BUDGET`]) is freed when the event is dropped, once handled.
    Event(NodeId, NodeEvent, EventPlace),
    /// The connection ended: the node exited, crashed, or sent garbage.
    Closed(NodeId, String),
    /// A drained node left the pool and was asked to stop.
    Retired(NodeId),
    /// The host stops: no node is started any more.
    Leaving,
}

/// Why a node's read loop ended.
enum LinkEnd {
    /// The node closed the connection (it exited or crashed).
    Closed,
    /// The node broke the protocol or floods: it is killed.
    Broken(String),
}

/// The handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The node closed the connection or sent a bad frame.
    #[error("node closed the connection during the hello: {0}")]
    Io(String),
    /// The node speaks another protocol version.
    #[error("node speaks ipc protocol {theirs}, this supervisor {PROTOCOL_VERSION}: run a supervisor and node of the same build")]
    Version {
        /// The node's version.
        theirs: u32,
    },
    /// The node did not start with a hello.
    #[error("node sent {0} before its hello")]
    Unexpected(String),
    /// The hello says something other than what was started: another process answered on
    /// the socket, or the node is broken. Nothing it says is believed.
    #[error("node's hello claims pid {claimed_pid} and {claimed_workers} workers, but pid {pid} was started with {workers}")]
    Mismatch {
        /// The pid it claims.
        claimed_pid: u32,
        /// The workers it claims.
        claimed_workers: u32,
        /// The pid of the process spawned.
        pid: u32,
        /// The workers it was asked for.
        workers: u32,
    },
}

/// What the supervisor knows of a node it started, against which its hello is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expected {
    /// The pid of the process spawned.
    pub pid: u32,
    /// The workers it was asked to run.
    pub workers: u32,
}

/// How a link has its node killed: through the handle of the process the pool spawned, never
/// by a pid the node reported (a pid of 0, or one that wraps to -1, would signal the process
/// group or every process).
#[derive(Clone, Debug, Default)]
pub struct KillSwitch(Arc<Notify>);

impl KillSwitch {
    /// Asks the process's keeper to kill it.
    pub fn kill(&self) {
        self.0.notify_one();
    }

    /// Resolves once [`KillSwitch::kill`] was called.
    pub async fn killed(&self) {
        self.0.notified().await;
    }
}

/// A node event's place in its node's budget.
#[derive(Debug)]
pub struct EventPlace(#[allow(dead_code)] OwnedSemaphorePermit);

/// Requests that may wait for one node at once (and frames queued for it): a node that stops
/// reading gets `Busy` answers instead of an ever-growing queue.
pub const MAX_IN_FLIGHT: usize = 4096;

/// Events of one node the supervisor may be behind on. A node that gets further ahead is
/// flooding (or the supervisor is stuck on it): that node, and only that one, is killed and
/// replaced (its rooms move), rather than memory growing or events being lost. Each node has
/// its own budget, so one node's flood never costs another node's rooms anything.
pub const NODE_EVENT_BUDGET: usize = 8_192;

/// CPU use is averaged over this long: the kernel counts CPU time in 10 ms ticks, too
/// coarse to compare two reports 500 ms apart.
const CPU_WINDOW: Duration = Duration::from_secs(5);

/// The recent load reports of a node (the newest last) and what they say about CPU use.
#[derive(Clone, Debug, Default)]
struct LoadState {
    history: std::collections::VecDeque<(Instant, LoadReport)>,
    cpu_percent: Vec<f64>,
}

/// CPU use of each worker between two load reports, in percent of one core: the CPU time
/// each used divided by the time between the reports.
pub fn cpu_percent(before: &LoadReport, after: &LoadReport, elapsed: Duration) -> Vec<f64> {
    let wall_ms = elapsed.as_secs_f64() * 1000.0;
    after
        .workers
        .iter()
        .map(|now| {
            let earlier = before.workers.iter().find(|w| w.worker == now.worker);
            match earlier {
                Some(earlier) if wall_ms > 0.0 => {
                    now.cpu_time_ms.saturating_sub(earlier.cpu_time_ms) as f64 * 100.0 / wall_ms
                }
                _ => 0.0,
            }
        })
        .collect()
}

/// A live connection to a node.
pub struct NodeLink {
    /// The node.
    pub id: NodeId,
    /// What it said in its hello.
    pub hello: NodeHello,
    /// When the hello was exchanged.
    pub connected_at: Instant,
    out: mpsc::Sender<ToNode>,
    kill: KillSwitch,
    pending: Pending<Result<Response, NodeError>>,
    /// The router of each request not yet answered (the oldest forgotten past
    /// [`ASKED_REMEMBERED`]): an answer that comes after its request timed out is undone in
    /// that router.
    asked: Mutex<BTreeMap<u64, RouterId>>,
    load: Mutex<LoadState>,
    timeout: Duration,
    metrics: Metrics,
}

/// Unanswered requests whose router is remembered.
const ASKED_REMEMBERED: usize = 2 * MAX_IN_FLIGHT;

impl NodeLink {
    /// Exchanges hellos on a fresh connection with the node started as `expected`, then
    /// starts its reader and writer tasks; `kill` kills the process.
    pub async fn establish(
        id: NodeId,
        (mut reader, mut writer): (FramedReader<StreamHalf>, FramedWriter<StreamHalf>),
        (expected, kill): (Expected, KillSwitch),
        timeout: Duration,
        events: mpsc::UnboundedSender<LinkEvent>,
        metrics: Metrics,
    ) -> Result<Arc<NodeLink>, HandshakeError> {
        let io = |e: ipc::FrameError| HandshakeError::Io(e.to_string());
        writer
            .send(&ToNode::Hello {
                protocol_version: PROTOCOL_VERSION,
            })
            .await
            .map_err(io)?;
        let hello = match reader.recv::<FromNode>().await.map_err(io)? {
            Some(FromNode::Hello(hello)) if hello.protocol_version == PROTOCOL_VERSION => hello,
            Some(FromNode::Hello(hello)) => {
                return Err(HandshakeError::Version {
                    theirs: hello.protocol_version,
                })
            }
            Some(other) => return Err(HandshakeError::Unexpected(format!("{other:?}"))),
            None => return Err(HandshakeError::Io("end of stream".into())),
        };
        if hello.pid != expected.pid || hello.workers != expected.workers {
            return Err(HandshakeError::Mismatch {
                claimed_pid: hello.pid,
                claimed_workers: hello.workers,
                pid: expected.pid,
                workers: expected.workers,
            });
        }
        let (out, mut out_rx) = mpsc::channel::<ToNode>(MAX_IN_FLIGHT);
        let link = Arc::new(NodeLink {
            id,
            hello,
            connected_at: Instant::now(),
            out,
            kill,
            pending: Pending::with_capacity(MAX_IN_FLIGHT),
            asked: Mutex::new(BTreeMap::new()),
            load: Mutex::new(LoadState::default()),
            timeout,
            metrics,
        });
        tokio::spawn(async move {
            while let Some(message) = out_rx.recv().await {
                if writer.send(&message).await.is_err() {
                    break;
                }
            }
        });
        tokio::spawn({
            let link = link.clone();
            async move {
                let reason = match link.read_loop(&mut reader, &events).await {
                    LinkEnd::Closed => "connection closed".to_string(),
                    LinkEnd::Broken(reason) => {
                        // It may still run: make sure it does not linger unwatched.
                        tracing::error!(node = %link.id, pid = link.hello.pid, "{reason}: killing the node");
                        link.kill();
                        reason
                    }
                };
                link.pending.close();
                let _ = events.send(LinkEvent::Closed(link.id, reason));
            }
        });
        Ok(link)
    }

    async fn read_loop(
        &self,
        reader: &mut FramedReader<StreamHalf>,
        events: &mpsc::UnboundedSender<LinkEvent>,
    ) -> LinkEnd {
        let budget = Arc::new(Semaphore::new(NODE_EVENT_BUDGET));
        loop {
            match reader.recv::<FromNode>().await {
                Ok(Some(FromNode::Answer { id, result })) => {
                    let router = self.asked().remove(&id);
                    let undo = match (router, &result) {
                        (Some(router), Ok(response)) => ipc::calls::undo(router, response),
                        _ => None,
                    };
                    if !self.pending.answer(id, result) {
                        tracing::debug!(node = %self.id, id, "answer to a request nobody waits for");
                        if let Some(undo) = undo {
                            self.undo_late(undo);
                        }
                    }
                }
                Ok(Some(FromNode::Event(event))) => {
                    let Ok(place) = budget.clone().try_acquire_owned() else {
                        return LinkEnd::Broken(format!(
                            "{NODE_EVENT_BUDGET} of this node's events wait for the supervisor"
                        ));
                    };
                    if events
                        .send(LinkEvent::Event(self.id, event, EventPlace(place)))
                        .is_err()
                    {
                        return LinkEnd::Closed;
                    }
                }
                Ok(Some(FromNode::Load(report))) => {
                    let now = Instant::now();
                    let mut load = self.load.lock().unwrap_or_else(|p| p.into_inner());
                    while load
                        .history
                        .front()
                        .is_some_and(|(at, _)| now.duration_since(*at) > CPU_WINDOW)
                    {
                        load.history.pop_front();
                    }
                    load.cpu_percent = match load.history.front() {
                        Some((at, oldest)) => cpu_percent(oldest, &report, now - *at),
                        None => Vec::new(),
                    };
                    load.history.push_back((now, report));
                }
                Ok(Some(FromNode::Hello(_))) => {
                    tracing::warn!(node = %self.id, "ignoring a second hello")
                }
                Ok(None) => return LinkEnd::Closed,
                Err(e) => return LinkEnd::Broken(format!("bad frame: {e}")),
            }
        }
    }

    /// Sends `call` and waits for its answer, at most the link's timeout.
    pub async fn call<C: Call>(self: &Arc<Self>, call: C) -> Result<C::Answer, LinkError> {
        let request: Request = call.into();
        let name = request.name();
        let response = self.request(request).await?;
        C::Answer::from_response(response).map_err(|other| LinkError::Mismatched {
            request: name,
            answer: format!("{other:?}"),
        })
    }

    /// Sends `request` and waits for its answer, at most the link's timeout.
    pub async fn request(self: &Arc<Self>, request: Request) -> Result<Response, LinkError> {
        self.send(request)?.answer().await
    }

    /// Sends `request` now (so that requests sent one after another reach the node in that
    /// order) without waiting: its answer is [`Sent::answer`].
    pub fn send(self: &Arc<Self>, request: Request) -> Result<Sent, LinkError> {
        let ticket = self.pending.register()?;
        let id = ticket.id;
        {
            let mut asked = self.asked();
            asked.insert(id, request.router());
            while asked.len() > ASKED_REMEMBERED {
                asked.pop_first();
            }
        }
        let (name, sent) = (request.name(), Instant::now());
        match self.out.try_send(ToNode::Request { id, request }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                return Err(RpcError::Busy(MAX_IN_FLIGHT).into())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(RpcError::Disconnected.into()),
        }
        Ok(Sent(Sending::Local {
            link: self.clone(),
            ticket,
            name,
            sent,
        }))
    }

    fn asked(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, RouterId>> {
        self.asked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Closes what an answer that came too late created: its request was answered
    /// `node_unavailable` and the room core never recorded the object, so nobody else will.
    fn undo_late(&self, undo: Request) {
        tracing::warn!(node = %self.id, request = undo.name(), "an answer came after its request timed out: closing what it created");
        let Ok(ticket) = self.pending.register() else {
            return;
        };
        if self
            .out
            .try_send(ToNode::Request {
                id: ticket.id,
                request: undo,
            })
            .is_err()
        {
            tracing::warn!(node = %self.id, "cannot close a late answer's object: the node's queue is full");
        }
    }

    /// When the last load report (the heartbeat) arrived (the hello, before any).
    pub fn last_heard(&self) -> Instant {
        let load = self.load.lock().unwrap_or_else(|p| p.into_inner());
        load.history.back().map_or(self.connected_at, |(at, _)| *at)
    }

    /// Consumers on each worker at the last load report (zero before the first).
    pub fn worker_consumers(&self) -> Vec<u32> {
        let load = self.load.lock().unwrap_or_else(|p| p.into_inner());
        let mut consumers = vec![0; self.hello.workers as usize];
        if let Some((_, report)) = load.history.back() {
            for worker in &report.workers {
                if let Some(slot) = consumers.get_mut(worker.worker as usize) {
                    *slot = worker.consumers;
                }
            }
        }
        consumers
    }

    /// CPU use of each worker over the last few seconds, in percent of one core.
    pub fn cpu_percent(&self) -> Vec<f64> {
        let load = self.load.lock().unwrap_or_else(|p| p.into_inner());
        let mut cpu = load.cpu_percent.clone();
        // Before the second report there is nothing to compare with.
        cpu.resize(self.hello.workers as usize, 0.0);
        cpu
    }

    /// Kills the node's process (SIGKILL, through the pool's handle of it).
    pub fn kill(&self) {
        self.kill.kill();
    }

    /// Asks the node to close its rooms and exit.
    pub fn shutdown(&self) {
        if self.out.try_send(ToNode::Shutdown).is_err() {
            // Not reading: it would not hear it anyway.
            tracing::warn!(node = %self.id, "cannot ask the node to stop: its queue is full or closed");
        }
    }
}

#[cfg(test)]
mod tests;

/// A request sent to a node, its answer to come.
pub struct Sent(Sending);

enum Sending {
    /// To a node of this host.
    Local {
        link: Arc<NodeLink>,
        ticket: ipc::rpc::Ticket<Result<Response, NodeError>>,
        name: &'static str,
        sent: Instant,
    },
    /// To another host's node, through that host's supervisor.
    Remote {
        answer: tokio::sync::oneshot::Receiver<Result<Response, NodeError>>,
        within: Duration,
    },
}

impl Sent {
    /// A call to another host's node: its answer comes on `answer`, within `within` (the
    /// sender's link ends or forgets the call: the answer is `Disconnected`).
    pub fn remote(
        answer: tokio::sync::oneshot::Receiver<Result<Response, NodeError>>,
        within: Duration,
    ) -> Self {
        Self(Sending::Remote { answer, within })
    }

    /// The node's answer, at most the link's timeout after it was sent.
    pub async fn answer(self) -> Result<Response, LinkError> {
        match self.0 {
            Sending::Local {
                link,
                ticket,
                name,
                sent,
            } => {
                let answer = link.pending.wait(ticket, link.timeout).await;
                link.metrics.node_request(name, sent.elapsed());
                Ok(answer??)
            }
            Sending::Remote { answer, within } => {
                match tokio::time::timeout(within, answer).await {
                    Ok(Ok(answer)) => Ok(answer?),
                    Ok(Err(_)) => Err(RpcError::Disconnected.into()),
                    Err(_) => Err(RpcError::Timeout(within).into()),
                }
            }
        }
    }

    /// The answer as `C`'s.
    pub async fn answer_as<C: Call>(self, name: &'static str) -> Result<C::Answer, LinkError> {
        let response = self.answer().await?;
        C::Answer::from_response(response).map_err(|other| LinkError::Mismatched {
            request: name,
            answer: format!("{other:?}"),
        })
    }
}
