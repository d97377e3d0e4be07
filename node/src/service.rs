//! The node's side of the ipc connection: hello, requests in, answers, events and load
//! reports out. Returns when the supervisor goes away or asks the node to stop.

use std::sync::Arc;

use anyhow::{bail, Context as _};
use ipc::messages::{
    FromNode, NodeEvent, NodeHello, ToNode, LOAD_REPORT_INTERVAL, PROTOCOL_VERSION,
};
use tokio::sync::mpsc;

use crate::routers::Routers;

/// Why the node stopped serving.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// The supervisor closed the connection (it exited or dropped this node).
    SupervisorGone,
    /// The supervisor asked for a shutdown.
    Shutdown,
    /// A mediasoup worker died.
    WorkerDied,
    /// The supervisor stopped reading: [`OUT_QUEUE`] frames wait for it.
    SupervisorStuck,
}

/// Frames (answers, events, reports) that may wait for the supervisor to read them. More
/// means it is stuck: the node exits rather than grow without bound (the supervisor
/// replaces it and moves its rooms, should it recover).
pub const OUT_QUEUE: usize = 65_536;

/// Serves the supervisor on `socket` until it goes away. `events` carries what mediasoup
/// reports on its own (see [`Routers::new`]).
pub async fn serve(
    socket: &std::path::Path,
    routers: Arc<Routers>,
    mut events: mpsc::UnboundedReceiver<NodeEvent>,
    version: String,
) -> anyhow::Result<Stop> {
    let (mut reader, mut writer) = ipc::socket::connect(socket)
        .await
        .with_context(|| format!("cannot connect to the supervisor at {}", socket.display()))?;
    let hello = NodeHello {
        protocol_version: PROTOCOL_VERSION,
        pid: std::process::id(),
        workers: routers.workers().len() as u32,
        version,
    };
    writer.send(&FromNode::Hello(hello)).await?;
    match reader.recv::<ToNode>().await? {
        Some(ToNode::Hello { protocol_version }) if protocol_version == PROTOCOL_VERSION => {}
        Some(ToNode::Hello { protocol_version }) => bail!(
            "supervisor speaks ipc protocol {protocol_version}, this node {PROTOCOL_VERSION}: \
             run a supervisor and node of the same build"
        ),
        Some(other) => bail!("supervisor sent {other:?} before its hello"),
        None => return Ok(Stop::SupervisorGone),
    }

    // One writer task owns the socket's sending side; everything else queues to it.
    let (out_tx, mut out_rx) = mpsc::channel::<FromNode>(OUT_QUEUE);
    let writer_task = tokio::spawn(async move {
        while let Some(message) = out_rx.recv().await {
            if let Err(e) = writer.send(&message).await {
                tracing::warn!("cannot write to the supervisor: {e}");
                break;
            }
        }
    });

    let (died_tx, mut died_rx) = mpsc::unbounded_channel::<()>();
    let _death_handlers: Vec<_> = routers
        .workers()
        .iter()
        .enumerate()
        .map(|(index, slot)| {
            let out = out_tx.clone();
            let died = died_tx.clone();
            slot.worker.on_dead(move |result| {
                let message = match result {
                    Ok(()) => "exited".to_string(),
                    Err(e) => e.to_string(),
                };
                tracing::error!(worker = index, "mediasoup worker died: {message}");
                let _ = out.try_send(FromNode::Event(NodeEvent::WorkerDied {
                    worker: index as u32,
                    message,
                }));
                let _ = died.send(());
            })
        })
        .collect();

    let mut load_timer = tokio::time::interval(LOAD_REPORT_INTERVAL);
    let stop = loop {
        tokio::select! {
            message = reader.recv::<ToNode>() => match message {
                Ok(Some(ToNode::Request { id, request })) => {
                    let routers = routers.clone();
                    let out = out_tx.clone();
                    tokio::spawn(async move {
                        let result = routers.handle(request).await;
                        if let Err(e) = &result {
                            tracing::debug!(id, "request failed: {e}");
                        }
                        // Requests in flight are capped by the supervisor: this waits
                        // for room, it does not pile up.
                        let _ = out.send(FromNode::Answer { id, result }).await;
                    });
                }
                Ok(Some(ToNode::Shutdown)) => break Stop::Shutdown,
                Ok(Some(ToNode::Hello { .. })) => tracing::warn!("ignoring a second hello"),
                Ok(None) => break Stop::SupervisorGone,
                Err(e) => {
                    tracing::error!("bad frame from the supervisor, closing: {e}");
                    break Stop::SupervisorGone;
                }
            },
            Some(event) = events.recv() => {
                match &event {
                    NodeEvent::ConsumerClosed { router, consumer, .. } => {
                        routers.forget_consumer(*router, *consumer);
                    }
                    NodeEvent::DataConsumerClosed { router, data_consumer, .. } => {
                        routers.forget_data_consumer(*router, *data_consumer);
                    }
                    _ => {}
                }
                if out_tx.try_send(FromNode::Event(event)).is_err() {
                    break Stop::SupervisorStuck;
                }
            }
            _ = load_timer.tick() => {
                if out_tx.try_send(FromNode::Load(routers.load())).is_err() {
                    break Stop::SupervisorStuck;
                }
            }
            Some(()) = died_rx.recv() => break Stop::WorkerDied,
        }
    };
    routers.close_all();
    drop(out_tx);
    // Let queued answers and events reach the supervisor before the socket closes.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), writer_task).await;
    Ok(stop)
}
