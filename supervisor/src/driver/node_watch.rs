//! Carries out the node lifecycle's decisions: feeds [`Lifecycle`] with what the links
//! report (ready, closed, heartbeats, spawn failures) and its timeouts, and does what it
//! outputs (spawn, kill, tell the rooms their node is lost). The decisions themselves are in
//! `room_core::lifecycle`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::driver::node_link::LinkEvent;
use crate::driver::node_pool::NodePool;
use crate::driver::rooms::Rooms;
use crate::monitoring::event_bus::EventBus;
use room_core::lifecycle::{Input, Lifecycle, Output};

/// Drives `lifecycle` until the links' event channel closes.
pub async fn watch(
    mut lifecycle: Lifecycle,
    mut link_rx: mpsc::UnboundedReceiver<LinkEvent>,
    pool: Arc<NodePool>,
    rooms: Arc<Rooms>,
    monitor_events: EventBus,
) {
    let (spawn_failed, mut spawn_failures) = mpsc::unbounded_channel::<()>();
    let mut reasons = HashMap::new();
    // Heartbeats are read from the links this often; the lifecycle's timeout is checked then.
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut timeout: Option<Instant> = None;
    loop {
        let now = Instant::now();
        tokio::select! {
            event = link_rx.recv() => match event {
                None => break,
                Some(LinkEvent::Event(node, event, place)) => {
                    rooms.on_node_event(node, event);
                    // Handled: its place in the node's budget is free again.
                    drop(place);
                    continue;
                }
                Some(LinkEvent::Ready(node, origin)) => {
                    lifecycle.handle(Input::NodeReady(node, origin), now);
                }
                Some(LinkEvent::Retired(node)) => {
                    lifecycle.handle(Input::NodeRetired(node), now);
                }
                Some(LinkEvent::Leaving) => lifecycle.handle(Input::Leaving, now),
                Some(LinkEvent::Closed(node, reason)) => {
                    if pool.remove(node) {
                        tracing::error!(%node, "media node lost: {reason}");
                        monitor_events.publish(monitor_api::EventKind::NodeExited {
                            node: node.to_string(),
                            reason: reason.clone(),
                        });
                        reasons.insert(node, reason);
                    } else {
                        // The second report of the same death (socket EOF, then exit).
                        tracing::info!(%node, "{reason}");
                    }
                    lifecycle.handle(Input::NodeExited(node), now);
                }
            },
            Some(()) = spawn_failures.recv() => lifecycle.handle(Input::SpawnFailed, now),
            _ = tick.tick() => {
                for link in pool.ready() {
                    lifecycle.handle(Input::Heartbeat(link.id, link.last_heard()), now);
                }
                if timeout.is_some_and(|at| at <= now) {
                    lifecycle.handle(Input::Timeout, now);
                }
            }
        };
        while let Some(output) = lifecycle.poll_output() {
            match output {
                Output::Timeout(at) => timeout = Some(at),
                Output::Spawn { delay, origin } => {
                    let (pool, failed) = (pool.clone(), spawn_failed.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        if let Err(e) = pool.spawn(origin).await {
                            tracing::error!("starting a media node failed: {e:#}");
                            let _ = failed.send(());
                        }
                    });
                }
                Output::Kill(node) => {
                    tracing::error!(%node, "node missed its heartbeats; killing it");
                    pool.kill(node);
                }
                Output::RoomsLost(node) => {
                    let reason = reasons.remove(&node).unwrap_or_default();
                    rooms.on_node_lost(node, &reason);
                }
            }
        }
    }
}
