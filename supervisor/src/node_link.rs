//! The supervisor's connection to one node process: the hello, requests with ids and
//! timeouts, and the reader that delivers answers, events and load reports.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipc::messages::{
    FromNode, LoadReport, NodeError, NodeEvent, NodeHello, Request, Response, ToNode,
    PROTOCOL_VERSION,
};
use ipc::rpc::Pending;
use ipc::socket::{FramedReader, FramedWriter, StreamHalf};
use ipc::RpcError;
use tokio::sync::mpsc;

/// Identifies a node process for the life of the supervisor (a respawned node gets a new one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "node-{}", self.0)
    }
}

/// Why a request to a node failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LinkError {
    /// The node is gone or did not answer in time.
    #[error("{0}")]
    Rpc(#[from] RpcError),
    /// The node answered with an error.
    #[error("{0}")]
    Node(#[from] NodeError),
}

/// What a node link reports to the pool.
#[derive(Debug)]
pub enum LinkEvent {
    /// A node is connected and ready, started for this reason.
    Ready(NodeId, crate::node_lifecycle::SpawnOrigin),
    /// Something happened on the node.
    Event(NodeId, NodeEvent),
    /// The connection ended: the node exited, crashed, or sent garbage.
    Closed(NodeId, String),
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

/// A live connection to a node.
pub struct NodeLink {
    /// The node.
    pub id: NodeId,
    /// What it said in its hello.
    pub hello: NodeHello,
    out: mpsc::UnboundedSender<ToNode>,
    pending: Pending<Result<Response, NodeError>>,
    load: Mutex<(LoadReport, Instant)>,
    timeout: Duration,
}

impl NodeLink {
    /// Exchanges hellos on a fresh connection, then starts its reader and writer tasks.
    pub async fn establish(
        id: NodeId,
        (mut reader, mut writer): (FramedReader<StreamHalf>, FramedWriter<StreamHalf>),
        timeout: Duration,
        events: mpsc::UnboundedSender<LinkEvent>,
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
        let (out, mut out_rx) = mpsc::unbounded_channel::<ToNode>();
        let link = Arc::new(NodeLink {
            id,
            hello,
            out,
            pending: Pending::new(),
            load: Mutex::new((LoadReport::default(), Instant::now())),
            timeout,
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
                let reason = link.read_loop(&mut reader, &events).await;
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
    ) -> String {
        loop {
            match reader.recv::<FromNode>().await {
                Ok(Some(FromNode::Answer { id, result })) => {
                    if !self.pending.answer(id, result) {
                        tracing::debug!(node = %self.id, id, "answer to a request nobody waits for");
                    }
                }
                Ok(Some(FromNode::Event(event))) => {
                    let _ = events.send(LinkEvent::Event(self.id, event));
                }
                Ok(Some(FromNode::Load(report))) => {
                    *self.load.lock().unwrap_or_else(|p| p.into_inner()) = (report, Instant::now());
                }
                Ok(Some(FromNode::Hello(_))) => {
                    tracing::warn!(node = %self.id, "ignoring a second hello")
                }
                Ok(None) => return "connection closed".into(),
                Err(e) => return format!("bad frame: {e}"),
            }
        }
    }

    /// Sends `request` and waits for its answer, at most the link's timeout.
    pub async fn request(&self, request: Request) -> Result<Response, LinkError> {
        let ticket = self.pending.register()?;
        let id = ticket.id;
        if self.out.send(ToNode::Request { id, request }).is_err() {
            return Err(RpcError::Disconnected.into());
        }
        Ok(self.pending.wait(ticket, self.timeout).await??)
    }

    /// The last load report and when it arrived.
    pub fn load(&self) -> (LoadReport, Instant) {
        self.load.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Asks the node to close its rooms and exit.
    pub fn shutdown(&self) {
        let _ = self.out.send(ToNode::Shutdown);
    }
}
