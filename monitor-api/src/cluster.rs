//! What the monitor sees of a cluster: the hosts (`hosts`), and how the hosts' summaries add
//! up to the cluster's (`summary` asked of any host of a cluster).

use serde::{Deserialize, Serialize};

use crate::views::Summary;

/// One host of a cluster, as the cluster directory (etcd) lists it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostView {
    /// Its id (`HOST_ID`).
    pub host: String,
    /// Where the other supervisors reach it (`CLUSTER_ADDR`).
    pub cluster_addr: String,
    /// What clients use to reach it (`PUBLIC_URL`).
    pub public_url: String,
    /// Its lease in etcd (hexadecimal): the host is in the cluster while it holds it.
    pub lease: String,
    /// Whether the host answering is that host.
    pub this_host: bool,
    /// Whether the host answering has a link up to it (always for itself).
    pub linked: bool,
    /// Node processes running.
    pub nodes: u32,
    /// mediasoup workers.
    pub workers: u32,
    /// Consumers on its workers.
    pub consumers: u32,
    /// Consumers it can still take.
    pub headroom: u32,
    /// Rooms it owns.
    pub rooms_owned: u32,
}

impl Summary {
    /// Adds `other`, the summary of host `host`, to this one: counts add up, per-worker
    /// rows are kept with their host's name before the node's, the load is the busiest's
    /// maximum and the workers' mean.
    pub fn absorb(&mut self, other: Summary, host: &str) {
        let workers_before = self.workers;
        self.nodes += other.nodes;
        self.workers += other.workers;
        self.rooms += other.rooms;
        self.participants += other.participants;
        self.producers += other.producers;
        self.consumers += other.consumers;
        self.joins_total += other.joins_total;
        self.node_restarts_total += other.node_restarts_total;
        self.pipes += other.pipes;
        self.spanning_rooms += other.spanning_rooms;
        if self.workers > 0 {
            self.load.cpu_percent_mean = (self.load.cpu_percent_mean * f64::from(workers_before)
                + other.load.cpu_percent_mean * f64::from(other.workers))
                / f64::from(self.workers);
        }
        self.load.cpu_percent_max = self.load.cpu_percent_max.max(other.load.cpu_percent_max);
        for mut worker in other.consumers_per_worker {
            worker.node = format!("{host}/{}", worker.node);
            self.consumers_per_worker.push(worker);
        }
    }

    /// Names this host's per-worker rows `host/node-N`, as [`Summary::absorb`] names the
    /// others'.
    pub fn name_host(&mut self, host: &str) {
        for worker in &mut self.consumers_per_worker {
            worker.node = format!("{host}/{}", worker.node);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::{Load, WorkerConsumers};

    fn summary(workers: u32, consumers: u32, mean: f64, max: f64) -> Summary {
        Summary {
            nodes: 1,
            workers,
            rooms: 1,
            participants: 2,
            consumers,
            load: Load {
                cpu_percent_mean: mean,
                cpu_percent_max: max,
            },
            consumers_per_worker: vec![WorkerConsumers {
                node: "node-1".into(),
                worker: 0,
                consumers,
            }],
            ..Summary::default()
        }
    }

    #[test]
    fn host_summaries_add_up_to_the_clusters() {
        let mut total = summary(1, 10, 10.0, 10.0);
        total.name_host("h1");
        total.absorb(summary(3, 30, 30.0, 50.0), "h2");
        assert_eq!((total.nodes, total.workers, total.rooms), (2, 4, 2));
        assert_eq!((total.participants, total.consumers), (4, 40));
        assert_eq!(total.load.cpu_percent_mean, 25.0);
        assert_eq!(total.load.cpu_percent_max, 50.0);
        let nodes: Vec<&str> = total
            .consumers_per_worker
            .iter()
            .map(|w| w.node.as_str())
            .collect();
        assert_eq!(nodes, ["h1/node-1", "h2/node-1"]);
    }
}
