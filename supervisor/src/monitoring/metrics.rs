//! The SFU's counters and its request-latency histogram (`prometheus-client`), updated where
//! things happen. `metrics_page` shows them at `/metrics` with the gauges.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CodeLabels {
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    request: &'static str,
}

pub(crate) type LatencyFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.25 ms to ~4 s: a local request takes about a millisecond, a timeout seconds.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 15))
}

/// The counters of the SFU. Clones share their values.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub(crate) joins: Counter,
    pub(crate) node_restarts: Counter,
    pub(crate) stats_collections: Counter,
    pub(crate) data_throttles: Counter,
    pub(crate) signaling_errors: Family<CodeLabels, Counter>,
    pub(crate) node_requests: LatencyFamily,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            joins: Counter::default(),
            node_restarts: Counter::default(),
            stats_collections: Counter::default(),
            data_throttles: Counter::default(),
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

    /// The media statistics of one room (or one participant) were collected from its nodes.
    pub fn stats_collected(&self) {
        self.stats_collections.inc();
    }

    /// Collections since start.
    pub fn stats_collections(&self) -> u64 {
        self.stats_collections.get()
    }

    /// A data producer sent over the message rate and was throttled.
    pub fn data_throttled(&self) {
        self.data_throttles.inc();
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
