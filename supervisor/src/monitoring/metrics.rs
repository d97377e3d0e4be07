//! The SFU's counters and its request-latency histogram (`prometheus-client`), updated where
//! things happen. `metrics_page` shows them at `/metrics` with the gauges.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CodeLabels {
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ForcedLabels {
    forced: &'static str,
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
    pub(crate) peers_moved: Counter,
    pub(crate) rooms_handed_over: Counter,
    pub(crate) rooms_taken_over: Counter,
    pub(crate) rooms_adopted: Counter,
    pub(crate) hosts_lost: Counter,
    pub(crate) rooms_failed_over: Counter,
    pub(crate) drains: Family<ForcedLabels, Counter>,
    pub(crate) signaling_errors: Family<CodeLabels, Counter>,
    pub(crate) node_requests: LatencyFamily,
    /// When the served TLS certificate expires (Unix seconds; registered with TLS on).
    pub(crate) tls_certificate_expiry: Gauge,
    /// Cluster mode only (registered when it is on).
    pub(crate) cluster: ClusterMetrics,
}

/// What a host of a cluster counts.
#[derive(Clone, Debug)]
pub(crate) struct ClusterMetrics {
    pub(crate) hosts: Gauge,
    pub(crate) rooms_owned: Gauge,
    pub(crate) relayed_sessions: Gauge,
    pub(crate) relayed_frames: Counter,
    pub(crate) links_refused: Counter,
    pub(crate) relay_round_trip: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            joins: Counter::default(),
            node_restarts: Counter::default(),
            stats_collections: Counter::default(),
            data_throttles: Counter::default(),
            peers_moved: Counter::default(),
            rooms_handed_over: Counter::default(),
            rooms_taken_over: Counter::default(),
            rooms_adopted: Counter::default(),
            hosts_lost: Counter::default(),
            rooms_failed_over: Counter::default(),
            drains: Family::default(),
            signaling_errors: Family::default(),
            node_requests: Family::new_with_constructor(latency_histogram),
            tls_certificate_expiry: Gauge::default(),
            cluster: ClusterMetrics {
                hosts: Gauge::default(),
                rooms_owned: Gauge::default(),
                relayed_sessions: Gauge::default(),
                relayed_frames: Counter::default(),
                links_refused: Counter::default(),
                relay_round_trip: latency_histogram(),
            },
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

    /// A peer's media moved off a drained node.
    pub fn peer_moved(&self) {
        self.peers_moved.inc();
    }

    /// A room of this drained host went to another host.
    pub fn room_handed_over(&self) {
        self.rooms_handed_over.inc();
    }

    /// A lost host's room is served by this host now (claimed anew, its peers joining again).
    pub fn room_failed_over(&self) {
        self.rooms_failed_over.inc();
    }

    /// A host left the cluster's directory (its lease ended).
    pub fn host_lost(&self) {
        self.hosts_lost.inc();
    }

    /// This host adopted a dead host's room.
    pub fn room_adopted(&self) {
        self.rooms_adopted.inc();
    }

    /// A drained host's room came to this host.
    pub fn room_taken_over(&self) {
        self.rooms_taken_over.inc();
    }

    /// A drained node had nothing left (`forced`: its deadline came first).
    pub fn node_drained(&self, forced: bool) {
        let forced = if forced { "true" } else { "false" };
        self.drains.get_or_create(&ForcedLabels { forced }).inc();
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

    /// The served certificate is valid until `unix_seconds`.
    pub fn tls_certificate_expires(&self, unix_seconds: i64) {
        self.tls_certificate_expiry.set(unix_seconds);
    }

    /// The directory lists `n` hosts.
    pub fn cluster_hosts(&self, n: usize) {
        self.cluster.hosts.set(n as i64);
    }

    /// This host owns `n` rooms.
    pub fn rooms_owned(&self, n: usize) {
        self.cluster.rooms_owned.set(n as i64);
    }

    /// A client of this host is relayed to another host (`1`), or no longer (`-1`).
    pub fn relayed_session(&self, delta: i64) {
        self.cluster.relayed_sessions.inc_by(delta);
    }

    /// One signaling frame of a relayed client went through this host (either way).
    pub fn relayed_frame(&self) {
        self.cluster.relayed_frames.inc();
    }

    /// A supervisor link was refused (a wrong secret, a bad handshake).
    pub fn cluster_link_refused(&self) {
        self.cluster.links_refused.inc();
    }

    /// A ping on a link to another supervisor came back after `elapsed`: what a relay adds
    /// to every request, each way together.
    pub fn relay_round_trip(&self, elapsed: Duration) {
        self.cluster.relay_round_trip.observe(elapsed.as_secs_f64());
    }
}
