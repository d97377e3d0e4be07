//! The supervisor's connection to one node process: the hello, requests with ids and
//! timeouts, and the reader that delivers answers, events and load reports.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipc::calls::{Answer, Call};
use ipc::messages::{
    FromNode, LoadReport, NodeError, NodeEvent, NodeHello, Request, Response, ToNode,
    PROTOCOL_VERSION,
};
use ipc::rpc::Pending;
use ipc::socket::{FramedReader, FramedWriter, StreamHalf};
use ipc::RpcError;
use tokio::sync::mpsc;

use crate::metrics::Metrics;

pub use crate::node_lifecycle::NodeId;
use crate::node_lifecycle::SpawnOrigin;

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
    /// Something happened on the node.
    Event(NodeId, NodeEvent),
    /// The connection ended: the node exited, crashed, or sent garbage.
    Closed(NodeId, String),
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
}

/// Requests that may wait for one node at once (and frames queued for it): a node that stops
/// reading gets `Busy` answers instead of an ever-growing queue.
pub const MAX_IN_FLIGHT: usize = 4096;

/// Node events (from every node) the supervisor may be behind on. A node that gets further
/// ahead is flooding or the supervisor is stuck: that node is killed and replaced (its rooms
/// move), rather than memory growing or events being lost.
pub const LINK_EVENT_QUEUE: usize = 16_384;

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
    pending: Pending<Result<Response, NodeError>>,
    load: Mutex<LoadState>,
    timeout: Duration,
    metrics: Metrics,
}

impl NodeLink {
    /// Exchanges hellos on a fresh connection, then starts its reader and writer tasks.
    pub async fn establish(
        id: NodeId,
        (mut reader, mut writer): (FramedReader<StreamHalf>, FramedWriter<StreamHalf>),
        timeout: Duration,
        events: mpsc::Sender<LinkEvent>,
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
        let (out, mut out_rx) = mpsc::channel::<ToNode>(MAX_IN_FLIGHT);
        let link = Arc::new(NodeLink {
            id,
            hello,
            connected_at: Instant::now(),
            out,
            pending: Pending::with_capacity(MAX_IN_FLIGHT),
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
                        let pid = nix::unistd::Pid::from_raw(link.hello.pid as i32);
                        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                        reason
                    }
                };
                link.pending.close();
                // Waits for room: this report must not be lost.
                let _ = events.send(LinkEvent::Closed(link.id, reason)).await;
            }
        });
        Ok(link)
    }

    async fn read_loop(
        &self,
        reader: &mut FramedReader<StreamHalf>,
        events: &mpsc::Sender<LinkEvent>,
    ) -> LinkEnd {
        loop {
            match reader.recv::<FromNode>().await {
                Ok(Some(FromNode::Answer { id, result })) => {
                    if !self.pending.answer(id, result) {
                        tracing::debug!(node = %self.id, id, "answer to a request nobody waits for");
                    }
                }
                Ok(Some(FromNode::Event(event))) => {
                    if events.try_send(LinkEvent::Event(self.id, event)).is_err() {
                        return LinkEnd::Broken(format!(
                            "{LINK_EVENT_QUEUE} node events wait for the supervisor"
                        ));
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
    pub async fn call<C: Call>(&self, call: C) -> Result<C::Answer, LinkError> {
        let request: Request = call.into();
        let name = request.name();
        let response = self.request(request).await?;
        C::Answer::from_response(response).map_err(|other| LinkError::Mismatched {
            request: name,
            answer: format!("{other:?}"),
        })
    }

    /// Sends `request` and waits for its answer, at most the link's timeout.
    async fn request(&self, request: Request) -> Result<Response, LinkError> {
        let ticket = self.pending.register()?;
        let id = ticket.id;
        let (name, sent) = (request.name(), Instant::now());
        match self.out.try_send(ToNode::Request { id, request }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                return Err(RpcError::Busy(MAX_IN_FLIGHT).into())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(RpcError::Disconnected.into()),
        }
        let answer = self.pending.wait(ticket, self.timeout).await;
        self.metrics.node_request(name, sent.elapsed());
        Ok(answer??)
    }

    /// When the last load report (the heartbeat) arrived (the hello, before any).
    pub fn last_heard(&self) -> Instant {
        let load = self.load.lock().unwrap_or_else(|p| p.into_inner());
        load.history.back().map_or(self.connected_at, |(at, _)| *at)
    }

    /// CPU use of each worker over the last few seconds, in percent of one core.
    pub fn cpu_percent(&self) -> Vec<f64> {
        let load = self.load.lock().unwrap_or_else(|p| p.into_inner());
        let mut cpu = load.cpu_percent.clone();
        // Before the second report there is nothing to compare with.
        cpu.resize(self.hello.workers as usize, 0.0);
        cpu
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
mod tests {
    use super::*;
    use ipc::messages::{RouterId, WorkerLoad};

    fn report(cpu: &[u64]) -> LoadReport {
        LoadReport {
            workers: cpu
                .iter()
                .enumerate()
                .map(|(i, &cpu_time_ms)| WorkerLoad {
                    worker: i as u32,
                    cpu_time_ms,
                    ..WorkerLoad::default()
                })
                .collect(),
        }
    }

    #[test]
    fn cpu_percent_is_cpu_time_over_wall_time() {
        let half = Duration::from_millis(500);
        let cpu = cpu_percent(&report(&[1000, 40]), &report(&[1250, 40]), half);
        assert_eq!(cpu, vec![50.0, 0.0]);
    }

    #[test]
    fn cpu_percent_without_a_previous_report_is_zero() {
        let cpu = cpu_percent(&report(&[]), &report(&[900]), Duration::from_millis(500));
        assert_eq!(cpu, vec![0.0]);
        let cpu = cpu_percent(&report(&[5]), &report(&[9]), Duration::ZERO);
        assert_eq!(cpu, vec![0.0]);
        // A counter going backwards (it should not) does not give a negative load.
        let cpu = cpu_percent(&report(&[9]), &report(&[5]), Duration::from_secs(1));
        assert_eq!(cpu, vec![0.0]);
    }

    /// A fake node on a real socket: says hello as process `pid`, then runs `act`.
    async fn fake_node<F, Fut>(name: &str, pid: u32, act: F) -> Arc<NodeLink>
    where
        F: FnOnce(FramedReader<StreamHalf>, FramedWriter<StreamHalf>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let (events, _) = mpsc::channel(1);
        fake_node_with_events(name, pid, events, act).await
    }

    async fn fake_node_with_events<F, Fut>(
        name: &str,
        pid: u32,
        events: mpsc::Sender<LinkEvent>,
        act: F,
    ) -> Arc<NodeLink>
    where
        F: FnOnce(FramedReader<StreamHalf>, FramedWriter<StreamHalf>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let dir = std::env::temp_dir().join(format!("link-test-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("node.sock");
        let listener = ipc::socket::listen(&path).expect("listen");
        tokio::spawn(async move {
            let (mut reader, mut writer) = ipc::socket::connect(&path).await.expect("connect");
            let hello = NodeHello {
                protocol_version: ipc::messages::PROTOCOL_VERSION,
                pid,
                workers: 1,
                version: "fake".into(),
            };
            writer.send(&FromNode::Hello(hello)).await.expect("hello");
            let _: Option<ToNode> = reader.recv().await.expect("the supervisor's hello");
            act(reader, writer).await;
        });
        let connection = ipc::socket::accept(&listener).await.expect("accept");
        NodeLink::establish(
            NodeId(7),
            connection,
            Duration::from_secs(1),
            events,
            Metrics::default(),
        )
        .await
        .expect("handshake")
    }

    #[tokio::test]
    async fn a_node_that_floods_events_the_supervisor_cannot_take_is_killed_and_reported() {
        // The process the fake node claims to be, to see it killed.
        let mut stand_in = tokio::process::Command::new("sleep")
            .arg("60")
            .kill_on_drop(true)
            .spawn()
            .expect("sleep");
        let pid = stand_in.id().expect("pid");
        let (events, mut reported) = mpsc::channel(LINK_EVENT_QUEUE);
        let _link = fake_node_with_events("flood", pid, events, |reader, mut writer| async move {
            let event = NodeEvent::ConsumerClosed {
                router: RouterId(uuid::Uuid::nil()),
                consumer: ipc::messages::ConsumerId(uuid::Uuid::nil()),
                producer: ipc::messages::ProducerId(uuid::Uuid::nil()),
            };
            for _ in 0..=LINK_EVENT_QUEUE {
                if writer.send(&FromNode::Event(event.clone())).await.is_err() {
                    break;
                }
            }
            // Stay connected: the supervisor must act on the flood, not on a close.
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(reader);
        })
        .await;
        // Nobody reads the events meanwhile (the supervisor is "stuck").
        let status = tokio::time::timeout(Duration::from_secs(20), stand_in.wait())
            .await
            .expect("the node is killed")
            .expect("wait");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        let mut queued = 0;
        let reason = loop {
            match reported.recv().await.expect("events") {
                LinkEvent::Event(NodeId(7), _) => queued += 1,
                LinkEvent::Closed(NodeId(7), reason) => break reason,
                other => panic!("unexpected {other:?}"),
            }
        };
        assert_eq!(queued, LINK_EVENT_QUEUE, "every queued event is delivered");
        assert!(reason.contains("node events wait"), "{reason}");
    }

    #[tokio::test]
    async fn requests_beyond_the_in_flight_cap_are_refused_busy_at_once() {
        // A node that reads requests and never answers.
        let link = fake_node("silent", 0, |mut reader, writer| async move {
            while let Ok(Some(_)) = reader.recv::<ToNode>().await {}
            drop(writer);
        })
        .await;
        let router = RouterId(uuid::Uuid::nil());
        let waiting: Vec<_> = (0..MAX_IN_FLIGHT)
            .map(|_| {
                let link = link.clone();
                tokio::spawn(async move { link.call(ipc::calls::CloseRouter { router }).await })
            })
            .collect();
        // Let them all register.
        while link.pending.in_flight() < MAX_IN_FLIGHT {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let refused = link.call(ipc::calls::CloseRouter { router }).await;
        assert!(
            matches!(refused, Err(LinkError::Rpc(RpcError::Busy(MAX_IN_FLIGHT)))),
            "{refused:?}"
        );
        for task in waiting {
            let answer = task.await.expect("task");
            assert!(matches!(answer, Err(LinkError::Rpc(RpcError::Timeout(_)))));
        }
        assert!(link.call(ipc::calls::CloseRouter { router }).await.is_err());
        assert_eq!(
            link.pending.in_flight(),
            0,
            "timed-out requests free their places"
        );
    }
}
