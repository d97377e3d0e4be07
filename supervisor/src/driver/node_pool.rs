//! The node processes: spawning them, connecting to them, and noticing their death.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use tokio::process::Command;
use tokio::sync::mpsc;

use monitor_api::EventKind;

use crate::driver::node_link::{Expected, KillSwitch, LinkEvent, NodeId, NodeLink};
use crate::monitoring::event_bus::EventBus;
use crate::monitoring::metrics::Metrics;
use room_core::lifecycle::SpawnOrigin;

/// How nodes are started.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// The `node` executable.
    pub binary: PathBuf,
    /// mediasoup workers per node.
    pub workers: u32,
    /// Local address of media sockets.
    pub rtc_ip: IpAddr,
    /// Local address of pipe transports between nodes.
    pub pipe_ip: IpAddr,
    /// Address announced in ICE candidates.
    pub public_ip: Option<String>,
    /// Media port range.
    pub rtc_ports: (u16, u16),
    /// One-port-per-worker mode: the first worker port of this host (`RTC_PORT`).
    pub rtc_port: Option<u16>,
    /// Most nodes the pool runs: with `rtc_port`, the number of port slots.
    pub max_nodes: u32,
    /// Seconds without ICE consent checks before a client's transport is `disconnected`.
    pub ice_consent_timeout_secs: u8,
    /// Largest data channel message, in bytes.
    pub max_data_message_bytes: u32,
    /// Data channel messages per second of one data producer.
    pub max_data_messages_per_sec: u32,
    /// How the node logs (`LOG_FORMAT`).
    pub log_format: &'static str,
    /// Folder of the nodes' Unix sockets.
    pub socket_dir: PathBuf,
    /// How long a node may take to answer a request.
    pub request_timeout: Duration,
    /// How long a node may take to start and say hello.
    pub start_timeout: Duration,
}

/// Creates the folder of the nodes' sockets: private to this user (0700), under
/// `$XDG_RUNTIME_DIR` when set (else the temporary folder), with a name nobody can guess
/// beforehand; a folder already there is refused rather than used (someone else may own it
/// or watch it).
pub fn create_socket_dir(parent: &std::path::Path) -> anyhow::Result<PathBuf> {
    let name = format!(
        "sfu-supervisor-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    );
    let dir = parent.join(name);
    create_private_dir(&dir)?;
    Ok(dir)
}

/// Creates `dir` readable only by this user; an existing one is an error, never reused.
fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the nodes' socket folder {}", dir.display()))
}

/// Where [`create_socket_dir`] makes its folder: `$XDG_RUNTIME_DIR` (per user, 0700 itself)
/// when set, else the temporary folder.
pub fn socket_parent() -> PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.is_dir())
        .unwrap_or_else(std::env::temp_dir)
}

/// Which blocks of worker ports (`RTC_PORT + slot × workers per node`) running node
/// processes hold. A slot is taken when a node is spawned and given back when its process
/// has exited (its sockets are closed then), so a replacement takes the ports of the node it
/// replaces: the lowest free slot.
#[derive(Debug, Default)]
struct PortSlots {
    taken: BTreeSet<u32>,
}

impl PortSlots {
    /// The lowest free slot below `limit`, now taken; `None` when all are.
    fn take(&mut self, limit: u32) -> Option<u32> {
        let slot = (0..limit).find(|slot| !self.taken.contains(slot))?;
        self.taken.insert(slot);
        Some(slot)
    }

    fn give_back(&mut self, slot: u32) {
        self.taken.remove(&slot);
    }
}

/// A port slot held by a node process; given back when dropped.
struct HeldSlot {
    slots: Arc<Mutex<PortSlots>>,
    slot: u32,
}

impl Drop for HeldSlot {
    fn drop(&mut self) {
        lock(&self.slots).give_back(self.slot);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The running nodes.
pub struct NodePool {
    spec: NodeSpec,
    port_slots: Arc<Mutex<PortSlots>>,
    next_id: AtomicU32,
    starting: AtomicU32,
    nodes: Mutex<BTreeMap<NodeId, Arc<NodeLink>>>,
    events: mpsc::UnboundedSender<LinkEvent>,
    node_ready: tokio::sync::Notify,
    monitor: EventBus,
    metrics: Metrics,
}

impl NodePool {
    /// An empty pool whose nodes report to `events`; starts are published on `monitor` and
    /// counted in `metrics`.
    pub fn new(
        spec: NodeSpec,
        events: mpsc::UnboundedSender<LinkEvent>,
        monitor: EventBus,
        metrics: Metrics,
    ) -> Self {
        Self {
            spec,
            port_slots: Arc::default(),
            next_id: AtomicU32::new(1),
            starting: AtomicU32::new(0),
            nodes: Mutex::new(BTreeMap::new()),
            events,
            node_ready: tokio::sync::Notify::new(),
            monitor,
            metrics,
        }
    }

    fn nodes(&self) -> std::sync::MutexGuard<'_, BTreeMap<NodeId, Arc<NodeLink>>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ready nodes.
    pub fn ready(&self) -> Vec<Arc<NodeLink>> {
        self.nodes().values().cloned().collect()
    }

    /// The ready node `id`, if it still is.
    pub fn link(&self, id: NodeId) -> Option<Arc<NodeLink>> {
        self.nodes().get(&id).cloned()
    }

    /// Nodes running or starting (what counts against `--max-nodes`).
    pub fn running(&self) -> u32 {
        self.nodes().len() as u32 + self.starting.load(Ordering::Relaxed)
    }

    /// Ready nodes, waiting up to `patience` for one when there is none (a replacement being
    /// spawned after a crash).
    pub async fn ready_within(&self, patience: Duration) -> Vec<Arc<NodeLink>> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let notified = self.node_ready.notified();
            let ready = self.ready();
            if !ready.is_empty() {
                return ready;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Vec::new();
            }
        }
    }

    /// Forgets a node (it died); `false` if it was already forgotten.
    pub fn remove(&self, id: NodeId) -> bool {
        self.nodes().remove(&id).is_some()
    }

    /// A drained node stops: it leaves the pool now (nothing new goes there), is asked to
    /// exit, and the lifecycle hears it was retired, not lost.
    pub fn retire(&self, id: NodeId) {
        let Some(link) = self.nodes().remove(&id) else {
            return;
        };
        tracing::info!(node = %id, "drained: stopping the node");
        link.shutdown();
        let _ = self.events.send(LinkEvent::Retired(id));
    }

    /// The host stops: no node is started any more (not even to replace one).
    pub fn leaving(&self) {
        let _ = self.events.send(LinkEvent::Leaving);
    }

    /// Kills a node (a hung one: SIGKILL works on a stopped process too).
    pub fn kill(&self, id: NodeId) {
        if let Some(link) = self.nodes().get(&id).cloned() {
            link.kill();
        }
    }

    /// Asks every node to stop.
    pub fn shutdown_all(&self) {
        for link in self.nodes().values() {
            link.shutdown();
        }
    }

    /// Starts one node process and waits until it is connected and has said hello.
    pub async fn spawn(&self, origin: SpawnOrigin) -> anyhow::Result<Arc<NodeLink>> {
        self.starting.fetch_add(1, Ordering::Relaxed);
        let result = self.spawn_inner().await;
        self.starting.fetch_sub(1, Ordering::Relaxed);
        if let Ok(link) = &result {
            let (node, pid) = (link.id.to_string(), link.hello.pid);
            self.monitor.publish(match origin {
                SpawnOrigin::Replacement => {
                    self.metrics.node_restarted();
                    EventKind::NodeRespawned { node, pid }
                }
                SpawnOrigin::Warm => EventKind::NodeSpawned {
                    node,
                    pid,
                    reason: "warm".into(),
                },
                SpawnOrigin::Placement => EventKind::NodeSpawned {
                    node,
                    pid,
                    reason: "capacity".into(),
                },
            });
            let _ = self.events.send(LinkEvent::Ready(link.id, origin));
        }
        result
    }

    /// A slot of worker ports for a new node, in the one-port-per-worker mode. A node that
    /// died may still be exiting when its replacement starts: wait for its slot a while.
    async fn take_port_slot(&self) -> anyhow::Result<Option<HeldSlot>> {
        if self.spec.rtc_port.is_none() {
            return Ok(None);
        }
        let deadline = tokio::time::Instant::now() + self.spec.start_timeout;
        loop {
            if let Some(slot) = lock(&self.port_slots).take(self.spec.max_nodes) {
                return Ok(Some(HeldSlot {
                    slots: self.port_slots.clone(),
                    slot,
                }));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(anyhow!(
                    "every block of worker ports (RTC_PORT, {} nodes) is held by a running node",
                    self.spec.max_nodes
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn spawn_inner(&self) -> anyhow::Result<Arc<NodeLink>> {
        let id = NodeId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let spec = &self.spec;
        let port_slot = self.take_port_slot().await?;
        let socket = spec.socket_dir.join(format!("{id}.sock"));
        let listener = ipc::socket::listen(&socket)
            .with_context(|| format!("cannot listen on {}", socket.display()))?;
        let mut command = Command::new(&spec.binary);
        command
            .arg("--socket")
            .arg(&socket)
            .arg("--workers")
            .arg(spec.workers.to_string())
            .arg("--rtc-ip")
            .arg(spec.rtc_ip.to_string())
            .arg("--rtc-min-port")
            .arg(spec.rtc_ports.0.to_string())
            .arg("--rtc-max-port")
            .arg(spec.rtc_ports.1.to_string())
            .arg("--pipe-ip")
            .arg(spec.pipe_ip.to_string())
            .arg("--ice-consent-timeout-secs")
            .arg(spec.ice_consent_timeout_secs.to_string())
            .arg("--max-data-message-bytes")
            .arg(spec.max_data_message_bytes.to_string())
            .arg("--max-data-messages-per-sec")
            .arg(spec.max_data_messages_per_sec.to_string())
            .arg("--node-id")
            .arg(id.to_string())
            .env("LOG_FORMAT", spec.log_format)
            .env_remove("PUBLIC_IP")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(public_ip) = &spec.public_ip {
            command.arg("--public-ip").arg(public_ip);
        }
        if let (Some(port), Some(held)) = (spec.rtc_port, &port_slot) {
            // Checked by the configuration: every slot's ports fit below 65536.
            let first = u32::from(port) + held.slot * spec.workers;
            command.arg("--rtc-port").arg(first.to_string());
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", spec.binary.display()))?;
        let Some(pid) = child.id() else {
            return Err(anyhow!("{id} exited at once"));
        };
        let connection = tokio::select! {
            accepted = ipc::socket::accept(&listener) => accepted.context("accepting the node's connection")?,
            status = child.wait() => {
                return Err(anyhow!("{id} (pid {pid}) exited before connecting: {}", status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string())));
            }
            _ = tokio::time::sleep(spec.start_timeout) => {
                return Err(anyhow!("{id} (pid {pid}) did not connect within {:?}", spec.start_timeout));
            }
        };
        drop(listener);
        let _ = std::fs::remove_file(&socket);
        let kill = KillSwitch::default();
        let expected = Expected {
            pid,
            workers: spec.workers,
        };
        let link = NodeLink::establish(
            id,
            connection,
            (expected, kill.clone()),
            spec.request_timeout,
            self.events.clone(),
            self.metrics.clone(),
        )
        .await
        .with_context(|| format!("{id} (pid {pid})"))?;
        tracing::info!(node = %id, pid, workers = link.hello.workers, "node ready");
        self.nodes().insert(id, link.clone());
        self.node_ready.notify_waiters();
        // The process is watched apart from its socket: an exit is seen even if the socket
        // lingers, and `kill_on_drop` reaps it when the supervisor goes. It is killed only
        // through this handle, so the signal goes to the process spawned, whatever it says.
        let events = self.events.clone();
        tokio::spawn(async move {
            // The ports are free once the process is gone.
            let _port_slot = port_slot;
            let status = tokio::select! {
                status = child.wait() => status,
                () = kill.killed() => {
                    if let Err(e) = child.start_kill() {
                        tracing::warn!(node = %id, pid, "cannot kill: {e}");
                    }
                    child.wait().await
                }
            };
            let reason = match status {
                Ok(status) => format!("process exited: {status}"),
                Err(e) => format!("cannot wait for the process: {e}"),
            };
            let _ = events.send(LinkEvent::Closed(id, reason));
        });
        Ok(link)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn a_replacement_node_takes_the_ports_of_the_node_that_died() {
        let mut slots = PortSlots::default();
        assert_eq!(slots.take(3), Some(0));
        assert_eq!(slots.take(3), Some(1));
        assert_eq!(slots.take(3), Some(2));
        assert_eq!(slots.take(3), None, "every slot held");
        slots.give_back(1);
        assert_eq!(slots.take(3), Some(1), "the dead node's ports");
        slots.give_back(0);
        slots.give_back(2);
        assert_eq!(slots.take(3), Some(0), "the lowest free first");
    }

    #[test]
    fn the_socket_folder_is_private_fresh_and_never_an_existing_one() {
        let parent = std::env::temp_dir().join(format!("socket-dir-test-{}", std::process::id()));
        std::fs::create_dir_all(&parent).unwrap();
        let first = create_socket_dir(&parent).unwrap();
        let second = create_socket_dir(&parent).unwrap();
        assert_ne!(first, second, "a fresh name each time");
        let mode = std::fs::metadata(&first).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "only this user may enter it: {mode:o}");
        // A folder that exists already (made by someone else, say) is refused, not used.
        let squatted = parent.join("squatted");
        std::fs::create_dir(&squatted).unwrap();
        let refused = create_private_dir(&squatted).unwrap_err();
        assert!(format!("{refused:#}").contains("squatted"), "{refused:#}");
        std::fs::remove_dir_all(&parent).unwrap();
    }
}
