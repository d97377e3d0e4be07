//! Prometheus metrics at `/metrics` (OpenMetrics text, the `prometheus-client` crate).
//!
//! Counters and the request-latency histogram are updated where things happen; gauges
//! (nodes, workers, rooms, participants, producers, consumers) are computed at scrape time
//! from the same [`Stats`] the monitor API answers from, so both always agree.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::stats::Stats;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    request: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WorkerLabels {
    node: String,
    worker: u32,
}

type LatencyFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.25 ms to ~4 s: a local request takes about a millisecond, a timeout seconds.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 15))
}

/// The counters of the SFU. Clones share their values.
#[derive(Clone, Debug)]
pub struct Metrics {
    joins: Counter,
    node_restarts: Counter,
    signaling_errors: Family<CodeLabels, Counter>,
    node_requests: LatencyFamily,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            joins: Counter::default(),
            node_restarts: Counter::default(),
            signaling_errors: Family::default(),
            node_requests: Family::new_with_constructor(latency_histogram),
        }
    }
}

impl Metrics {
    /// A peer joined a room.
    pub fn joined(&self) {
        self.joins.inc();
    }

    /// Joins since start.
    pub fn joins(&self) -> u64 {
        self.joins.get()
    }

    /// A node was started to replace a lost one.
    pub fn node_restarted(&self) {
        self.node_restarts.inc();
    }

    /// Replacement nodes since start.
    pub fn node_restarts(&self) -> u64 {
        self.node_restarts.get()
    }

    /// A client request was answered with error `code`.
    pub fn signaling_error(&self, code: &'static str) {
        self.signaling_errors
            .get_or_create(&CodeLabels { code })
            .inc();
    }

    /// A supervisor → node request of kind `request` took `elapsed` (answered or not).
    pub fn node_request(&self, request: &'static str, elapsed: Duration) {
        self.node_requests
            .get_or_create(&RequestLabels { request })
            .observe(elapsed.as_secs_f64());
    }
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
        let nodes = self.stats.nodes();
        let summary = self.stats.summarize(&nodes);
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
