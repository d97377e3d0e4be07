//! What `/metrics` shows (OpenMetrics text, the `prometheus-client` crate): the counters of
//! [`Metrics`], and gauges (nodes, workers, rooms, participants, producers, consumers)
//! computed from the same [`Stats`] the monitor API answers from, so both agree. A scrape
//! reads a snapshot at most [`SNAPSHOT_MAX_AGE`] old: scrapers, however many and however
//! often, take the rooms' lock at most once a second.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::monitoring::metrics::Metrics;
use crate::monitoring::stats::Stats;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    node: String,
    worker: u32,
}

/// Everything `/metrics` shows.
pub fn registry(metrics: &Metrics, stats: Arc<Stats>, cluster: bool, tls: bool) -> Registry {
    let mut registry = Registry::default();
    if tls {
        registry.register_with_unit(
            "sfu_tls_certificate_expiry",
            "When the served TLS certificate expires (Unix time; SIGHUP reloads renewed files)",
            Unit::Seconds,
            metrics.tls_certificate_expiry.clone(),
        );
    }
    if cluster {
        let c = &metrics.cluster;
        registry.register(
            "sfu_cluster_hosts",
            "Hosts the cluster directory lists (this one included)",
            c.hosts.clone(),
        );
        registry.register(
            "sfu_rooms_owned",
            "Rooms this host owns in the cluster",
            c.rooms_owned.clone(),
        );
        registry.register(
            "sfu_relayed_sessions",
            "Clients connected to this host whose room another host serves (their signaling relayed there)",
            c.relayed_sessions.clone(),
        );
        registry.register(
            "sfu_relayed_frames",
            "Signaling frames of relayed clients this host passed on, both ways",
            c.relayed_frames.clone(),
        );
        registry.register(
            "sfu_cluster_links_refused",
            "Supervisor links refused (wrong cluster secret or bad handshake)",
            c.links_refused.clone(),
        );
        registry.register_with_unit(
            "sfu_relay_round_trip",
            "Round trip on the links to the other supervisors (what relaying adds to a request)",
            Unit::Seconds,
            c.relay_round_trip.clone(),
        );
    }
    registry.register("sfu_joins", "Peers joined to rooms", metrics.joins.clone());
    registry.register(
        "sfu_node_restarts",
        "Node processes started to replace a lost one",
        metrics.node_restarts.clone(),
    );
    registry.register(
        "sfu_stats_collections",
        "Collections of one room's (or participant's) media statistics from its nodes, each asked for by a monitor",
        metrics.stats_collections.clone(),
    );
    registry.register(
        "sfu_data_throttles",
        "Data producers that sent over --max-data-messages-per-sec (their messages dropped for a second)",
        metrics.data_throttles.clone(),
    );
    registry.register(
        "sfu_peers_moved",
        "Peers whose media moved off a drained node, make before break",
        metrics.peers_moved.clone(),
    );
    registry.register(
        "sfu_rooms_handed_over",
        "Rooms this drained host handed to another host, live",
        metrics.rooms_handed_over.clone(),
    );
    registry.register(
        "sfu_rooms_taken_over",
        "Rooms a drained host handed to this host, live",
        metrics.rooms_taken_over.clone(),
    );
    registry.register(
        "sfu_hosts_lost",
        "Hosts that left the cluster's directory (their lease ended: died, cut off, or stopped)",
        metrics.hosts_lost.clone(),
    );
    registry.register(
        "sfu_rooms_failed_over",
        "Rooms of a lost host this host serves now, claimed anew (their peers joined again)",
        metrics.rooms_failed_over.clone(),
    );
    registry.register(
        "sfu_rooms_adopted",
        "Rooms of a dead host this host adopted (what survived on other hosts kept its media)",
        metrics.rooms_adopted.clone(),
    );
    registry.register(
        "sfu_node_drains",
        "Nodes drained (forced: peers were still there at the 30 s deadline)",
        metrics.drains.clone(),
    );
    registry.register(
        "sfu_signaling_errors",
        "Client requests answered with an error, by error code",
        metrics.signaling_errors.clone(),
    );
    registry.register_with_unit(
        "sfu_node_request_duration",
        "Supervisor to node request latency, by request",
        Unit::Seconds,
        metrics.node_requests.clone(),
    );
    registry.register_collector(Box::new(Gauges {
        stats,
        snapshot: Recent::new(SNAPSHOT_MAX_AGE),
    }));
    registry
}

/// Renders the registry as OpenMetrics text.
pub fn render(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry)?;
    Ok(text)
}

/// How old the gauges of a scrape may be.
pub const SNAPSHOT_MAX_AGE: Duration = Duration::from_secs(1);

/// A value taken at most once per `max_age`: later asks get the same one until it is older.
struct Recent<T> {
    max_age: Duration,
    last: Mutex<Option<(Instant, Arc<T>)>>,
}

impl<T> Recent<T> {
    fn new(max_age: Duration) -> Self {
        Self {
            max_age,
            last: Mutex::new(None),
        }
    }

    /// The value taken less than `max_age` before `now`, or a new one from `take`.
    fn get(&self, now: Instant, take: impl FnOnce() -> T) -> Arc<T> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, value)) = last.as_ref() {
            if now.saturating_duration_since(*at) < self.max_age {
                return value.clone();
            }
        }
        let value = Arc::new(take());
        *last = Some((now, value.clone()));
        value
    }
}

/// The gauges, from a recent snapshot of [`Stats`].
struct Gauges {
    stats: Arc<Stats>,
    snapshot: Recent<(Vec<monitor_api::NodeInfo>, monitor_api::Summary)>,
}

impl std::fmt::Debug for Gauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gauges")
    }
}

fn gauge<N: prometheus_client::encoding::EncodeGaugeValue + Send + Sync + std::fmt::Debug>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: N,
) -> Result<(), std::fmt::Error> {
    ConstGauge::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

fn worker_gauge<
    N: prometheus_client::encoding::EncodeGaugeValue + Send + Sync + std::fmt::Debug,
>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: impl Iterator<Item = (WorkerLabels, N)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in values {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl prometheus_client::collector::Collector for Gauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = self.snapshot.get(Instant::now(), || self.stats.snapshot());
        let (nodes, summary) = (&snapshot.0, &snapshot.1);
        let e = &mut encoder;
        gauge(e, "sfu_nodes", "Node processes ready", summary.nodes as i64)?;
        gauge(
            e,
            "sfu_workers",
            "mediasoup workers",
            summary.workers as i64,
        )?;
        gauge(e, "sfu_rooms", "Rooms open", summary.rooms as i64)?;
        gauge(
            e,
            "sfu_participants",
            "Peers joined",
            summary.participants as i64,
        )?;
        gauge(e, "sfu_producers", "Producers", summary.producers as i64)?;
        gauge(e, "sfu_consumers", "Consumers", summary.consumers as i64)?;
        gauge(
            e,
            "sfu_pipes",
            "Pipes between routers of one room (one per producer and router it is copied to)",
            summary.pipes as i64,
        )?;
        gauge(
            e,
            "sfu_spanning_rooms",
            "Rooms spread over more than one worker",
            summary.spanning_rooms as i64,
        )?;
        let workers = || {
            nodes.iter().flat_map(|n| {
                n.workers.iter().map(move |w| {
                    let labels = WorkerLabels {
                        node: n.node.clone(),
                        worker: w.worker,
                    };
                    (labels, w)
                })
            })
        };
        worker_gauge(
            e,
            "sfu_worker_rooms",
            "Rooms per worker",
            workers().map(|(l, w)| (l, w.rooms.len() as i64)),
        )?;
        worker_gauge(
            e,
            "sfu_worker_participants",
            "Peers per worker",
            workers().map(|(l, w)| (l, i64::from(w.participants))),
        )?;
        worker_gauge(
            e,
            "sfu_worker_producers",
            "Producers per worker",
            workers().map(|(l, w)| (l, i64::from(w.producers))),
        )?;
        worker_gauge(
            e,
            "sfu_worker_consumers",
            "Consumers per worker",
            workers().map(|(l, w)| (l, i64::from(w.consumers))),
        )?;
        worker_gauge(
            e,
            "sfu_worker_cpu_percent",
            "CPU use of a worker, percent of one core",
            workers().map(|(l, w)| (l, w.cpu_percent)),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrapes_within_a_second_share_one_snapshot() {
        let recent = Recent::new(SNAPSHOT_MAX_AGE);
        let taken = std::cell::Cell::new(0);
        let take = || {
            taken.set(taken.get() + 1);
            taken.get()
        };
        let start = Instant::now();
        assert_eq!(*recent.get(start, take), 1);
        for ms in [1, 500, 999] {
            assert_eq!(*recent.get(start + Duration::from_millis(ms), take), 1);
        }
        assert_eq!(
            taken.get(),
            1,
            "one snapshot for four scrapes within the second"
        );
        assert_eq!(*recent.get(start + Duration::from_millis(1000), take), 2);
        assert_eq!(*recent.get(start + Duration::from_millis(1500), take), 2);
    }
}
