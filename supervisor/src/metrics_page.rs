//! What `/metrics` shows (OpenMetrics text, the `prometheus-client` crate): the counters of
//! [`Metrics`], and gauges (nodes, workers, rooms, participants, producers, consumers)
//! computed at scrape time from the same [`Stats`] the monitor API answers from, so both
//! always agree.

use std::sync::Arc;

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::metrics::Metrics;
use crate::stats::Stats;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    node: String,
    worker: u32,
}

/// Everything `/metrics` shows.
pub fn registry(metrics: &Metrics, stats: Arc<Stats>) -> Registry {
    let mut registry = Registry::default();
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
    registry.register_collector(Box::new(Gauges { stats }));
    registry
}

/// Renders the registry as OpenMetrics text.
pub fn render(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry)?;
    Ok(text)
}

/// The gauges, read from [`Stats`] at every scrape.
struct Gauges {
    stats: Arc<Stats>,
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
        let (nodes, summary) = self.stats.snapshot();
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
