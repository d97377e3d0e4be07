//! Starting cluster mode: connect to etcd (a start without it fails with the reason), open
//! the port for the other supervisors, then run the lease, the watch and the links.

use std::sync::Arc;

use anyhow::Context as _;
use cluster_api::{HostRecord, Keys};
use ipc::messages::RoomId;
use tokio::sync::mpsc;

use super::directory::Directory;
use super::links::Links;
use super::relayed::RelayServer;
use super::remote::Remote;
use super::Routing;
use crate::config::cluster::ClusterSettings;
use crate::driver::node_pool::NodePool;
use crate::driver::rooms::Rooms;
use crate::edge::admission::AddressBuckets;
use crate::monitoring::metrics::Metrics;
use crate::monitoring::stats::Stats;

/// Cluster mode, connected, not yet running.
pub struct Connected {
    /// The cluster as this host takes part in it.
    pub routing: Arc<Routing>,
    directory: Arc<Directory>,
    listener: tokio::net::TcpListener,
    settings: ClusterSettings,
}

/// What cluster mode serves.
pub struct Serving {
    /// The rooms.
    pub rooms: Arc<Rooms>,
    /// What this host publishes of its load.
    pub stats: Arc<Stats>,
    /// Joins per client address.
    pub joins: Arc<AddressBuckets>,
    /// Rooms that close here.
    pub closed_rooms: Option<mpsc::UnboundedReceiver<RoomId>>,
    /// Consumers this host takes at most (every node it may start, every worker full).
    pub capacity: u64,
    /// This host's nodes (lent to other hosts' rooms when theirs are full).
    pub pool: Arc<NodePool>,
    /// How long a node may take to answer (`NODE_REQUEST_TIMEOUT_MS`).
    pub node_timeout: std::time::Duration,
}

/// Connects to etcd and opens `CLUSTER_ADDR`.
pub async fn connect(settings: &ClusterSettings, metrics: &Metrics) -> anyhow::Result<Connected> {
    let keys = Keys::new(&settings.prefix);
    let directory = Directory::connect(&settings.endpoints, keys, settings.host.clone())
        .await
        .with_context(|| format!("cannot reach etcd at {}", settings.endpoints.join(",")))?;
    let listener = tokio::net::TcpListener::bind(settings.cluster_addr)
        .await
        .with_context(|| format!("cannot listen on CLUSTER_ADDR {}", settings.cluster_addr))?;
    let links = Arc::new(Links::new(
        settings.host.clone(),
        settings.secret.clone(),
        metrics.clone(),
    ));
    let directory = Arc::new(directory);
    let routing = Arc::new(Routing::new(
        settings.host.clone(),
        directory.clone(),
        links,
        metrics.clone(),
    ));
    Ok(Connected {
        routing,
        directory,
        listener,
        settings: settings.clone(),
    })
}

impl Connected {
    /// Runs the links, the lease and the watch; returns the routing the edge consults.
    pub async fn run(self, serving: Serving) -> anyhow::Result<Arc<Routing>> {
        let Connected {
            routing,
            directory,
            listener,
            settings,
        } = self;
        routing.links.set_server(Arc::new(RelayServer {
            rooms: serving.rooms.clone(),
            metrics: routing.metrics.clone(),
            joins: serving.joins,
            routing: routing.clone(),
        }));
        let remote = Remote::new(&routing, serving.pool.clone(), serving.node_timeout);
        remote.set_rooms(&serving.rooms);
        routing.set_rooms(&serving.rooms);
        routing.links.set_remote(remote.clone());
        serving.rooms.set_remote(remote);
        tokio::spawn(routing.links.clone().accept_loop(listener));
        tokio::spawn(routing.clone().follow_peers_fenced());
        tokio::spawn(routing.clone().send_standbys());
        let record = {
            let (me, stats, routing) = (settings.host.clone(), serving.stats, routing.clone());
            let pool = serving.pool.clone();
            let (cluster_addr, public_url) = (settings.cluster_addr, settings.public_url.clone());
            let capacity = serving.capacity;
            move || {
                let summary = stats.summary();
                let consumers = u64::from(summary.consumers);
                // Drained: nothing new comes here (rooms, or others' routers).
                let draining = routing.is_draining();
                let capacity = if draining { 0 } else { capacity };
                HostRecord {
                    id: me.clone(),
                    cluster_addr,
                    public_url: public_url.clone(),
                    nodes: summary.nodes,
                    workers: summary.workers,
                    consumers: summary.consumers,
                    headroom: u32::try_from(capacity.saturating_sub(consumers)).unwrap_or(u32::MAX),
                    rooms_owned: routing.owned().len() as u32,
                    lease: String::new(),
                    lent: if draining {
                        Vec::new()
                    } else {
                        Remote::lendable(&pool)
                    },
                }
            }
        };
        tokio::spawn(
            directory
                .clone()
                .keep_lease(routing.clone(), settings.lease, record),
        );
        tokio::spawn(directory.follow(routing.clone()));
        if let Some(mut closed) = serving.closed_rooms {
            let routing = routing.clone();
            tokio::spawn(async move {
                while let Some(room) = closed.recv().await {
                    routing.room_closed(room);
                }
            });
        }
        tracing::info!(
            host = %settings.host,
            cluster_addr = %settings.cluster_addr,
            public_url = %settings.public_url,
            "cluster mode on"
        );
        Ok(routing)
    }
}
