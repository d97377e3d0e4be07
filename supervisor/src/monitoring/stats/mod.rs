//! Stats for the monitor API and `/metrics`. Counts and loads come from the supervisor's own
//! state (the room directory, the nodes' load reports) and cost nothing; media statistics
//! (scores, bitrates, ICE and DTLS states) are collected from the nodes only for what a
//! monitor asks about ([`collect`]), and one participant in depth ([`peer`]). Room details
//! are built in [`room`]; the arithmetic is in plain functions over snapshots.

mod collect;
mod peer;
mod room;
mod sample;

pub use collect::{Media, COLLECT_DEADLINE};
pub use peer::PeerError;

use std::sync::Arc;
use std::time::Instant;

use ipc::messages::RoomId;
use monitor_api::{
    Load, NodeInfo, RoomDetail, RoomInfo, RouterDetail, Summary, WorkerConsumers, WorkerInfo,
};

use crate::driver::node_pool::NodePool;
use crate::driver::rooms::Rooms;
use crate::monitoring::metrics::Metrics;

use self::room::details;

/// Answers monitor queries.
pub struct Stats {
    rooms: Arc<Rooms>,
    pool: Arc<NodePool>,
    metrics: Metrics,
    started: Instant,
}

/// What the stats see of one node.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSample {
    /// `node-N`.
    pub node: String,
    /// Process id.
    pub pid: u32,
    /// Seconds since it connected.
    pub uptime_secs: u64,
    /// Its version.
    pub version: String,
    /// CPU use of each worker, by index, in percent of one core.
    pub cpu_percent: Vec<f64>,
}

impl Stats {
    /// Stats of `rooms` on the nodes of `pool`.
    pub fn new(rooms: Arc<Rooms>, pool: Arc<NodePool>, metrics: Metrics) -> Self {
        Self {
            rooms,
            pool,
            metrics,
            started: Instant::now(),
        }
    }

    fn samples(&self) -> Vec<NodeSample> {
        self.pool
            .ready()
            .iter()
            .map(|link| NodeSample {
                node: link.id.to_string(),
                pid: link.hello.pid,
                uptime_secs: link.connected_at.elapsed().as_secs(),
                version: link.hello.version.clone(),
                cpu_percent: link.cpu_percent(),
            })
            .collect()
    }

    /// Drains the node named `node` (`node-2`, or `2`): the peers it moves, or `None` for no
    /// such node of this host.
    pub fn drain(&self, node: &str) -> Option<monitor_api::DrainStarted> {
        let number = node.strip_prefix("node-").unwrap_or(node);
        let id = room_core::NodeId(number.parse().ok()?);
        let peers = self.rooms.drain(id)?;
        Some(monitor_api::DrainStarted {
            node: id.to_string(),
            peers,
        })
    }

    /// Every ready node with its workers.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        node_infos(&self.counts(None), &self.samples())
    }

    /// Every room (or the one named `only`) with counts, without media statistics.
    fn counts(&self, only: Option<&str>) -> Vec<RoomDetail> {
        details(&self.rooms, &self.pool, only, &Media::default())
    }

    /// SFU-wide numbers.
    pub fn summary(&self) -> Summary {
        self.snapshot().1
    }

    /// Every ready node with its workers, and the SFU-wide numbers, from one look.
    pub fn snapshot(&self) -> (Vec<NodeInfo>, Summary) {
        let rooms = self.counts(None);
        let nodes = node_infos(&rooms, &self.samples());
        let summary = Summary {
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_secs: self.started.elapsed().as_secs(),
            joins_total: self.metrics.joins(),
            node_restarts_total: self.metrics.node_restarts(),
            ..summarize(&nodes, &rooms)
        };
        (nodes, summary)
    }

    /// Every room, by name.
    pub fn rooms(&self) -> Vec<RoomInfo> {
        self.counts(None).iter().map(room_info).collect()
    }

    /// One room in detail, with media statistics collected from its nodes now (what did not
    /// arrive within [`COLLECT_DEADLINE`] is listed in `stats_missing`).
    pub async fn room(&self, name: &str) -> Option<RoomDetail> {
        let room = RoomId(name.to_string());
        let routers: Vec<_> = self
            .rooms
            .views(Some(&room))
            .get(&room)?
            .routers
            .iter()
            .map(|(id, s)| (*id, s.node))
            .collect();
        let media = self.collect(&routers).await;
        details(&self.rooms, &self.pool, Some(name), &media)
            .into_iter()
            .next()
    }
}

/// One room in brief.
pub fn room_info(detail: &RoomDetail) -> RoomInfo {
    RoomInfo {
        room: detail.room.clone(),
        node: detail.node.clone(),
        worker: detail.worker,
        participants: detail.participants.len() as u32,
        producers: detail
            .participants
            .iter()
            .map(|p| p.producers.len())
            .sum::<usize>() as u32,
        consumers: detail
            .participants
            .iter()
            .map(|p| p.consumers.len())
            .sum::<usize>() as u32,
        age_secs: detail.age_secs,
    }
}

/// Each node with its workers, and what each worker hosts according to `rooms`: the rooms
/// with a router on it, the peers placed on it, their consumers and its pipes.
pub fn node_infos(rooms: &[RoomDetail], nodes: &[NodeSample]) -> Vec<NodeInfo> {
    nodes
        .iter()
        .map(|sample| NodeInfo {
            node: sample.node.clone(),
            pid: sample.pid,
            uptime_secs: sample.uptime_secs,
            version: sample.version.clone(),
            workers: sample
                .cpu_percent
                .iter()
                .enumerate()
                .map(|(index, &cpu_percent)| {
                    let mut worker = WorkerInfo {
                        worker: index as u32,
                        cpu_percent,
                        ..WorkerInfo::default()
                    };
                    let here = |node: &str, w: u32| node == sample.node && w == index as u32;
                    for room in rooms {
                        let routers: Vec<&RouterDetail> = room
                            .routers
                            .iter()
                            .filter(|r| here(&r.node, r.worker))
                            .collect();
                        if routers.is_empty() {
                            continue;
                        }
                        worker.rooms.push(room.room.clone());
                        worker.consumers += routers.iter().map(|r| r.pipes).sum::<u32>();
                        for p in room.participants.iter().filter(|p| here(&p.node, p.worker)) {
                            worker.participants += 1;
                            worker.transports += p.transports;
                            worker.producers += p.producers.len() as u32;
                            worker.consumers += p.consumers.len() as u32;
                        }
                    }
                    worker
                })
                .collect(),
        })
        .collect()
}

/// Totals over `nodes` and `rooms` (the version, uptime and counters are left at their
/// defaults).
pub fn summarize(nodes: &[NodeInfo], rooms: &[RoomDetail]) -> Summary {
    let workers: Vec<(&NodeInfo, &WorkerInfo)> = nodes
        .iter()
        .flat_map(|n| n.workers.iter().map(move |w| (n, w)))
        .collect();
    let sum = |f: fn(&WorkerInfo) -> u32| workers.iter().map(|(_, w)| f(w)).sum::<u32>();
    let cpu: Vec<f64> = workers.iter().map(|(_, w)| w.cpu_percent).collect();
    Summary {
        nodes: nodes.len() as u32,
        workers: workers.len() as u32,
        rooms: rooms.len() as u32,
        spanning_rooms: rooms.iter().filter(|r| r.routers.len() > 1).count() as u32,
        pipes: rooms.iter().map(|r| r.pipes).sum(),
        participants: sum(|w| w.participants),
        producers: sum(|w| w.producers),
        consumers: sum(|w| w.consumers),
        consumers_per_worker: workers
            .iter()
            .map(|(n, w)| WorkerConsumers {
                node: n.node.clone(),
                worker: w.worker,
                consumers: w.consumers,
            })
            .collect(),
        load: Load {
            cpu_percent_mean: if cpu.is_empty() {
                0.0
            } else {
                cpu.iter().sum::<f64>() / cpu.len() as f64
            },
            cpu_percent_max: cpu.iter().copied().fold(0.0, f64::max),
        },
        ..Summary::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor_api::{ConsumerInfo, Participant, ProducerInfo};

    fn participant(producers: usize, consumers: usize) -> Participant {
        Participant {
            transports: 2,
            producers: vec![ProducerInfo::default(); producers],
            consumers: vec![ConsumerInfo::default(); consumers],
            ..Participant::default()
        }
    }

    /// A room on one router, its participants placed there.
    fn room(name: &str, node: &str, worker: u32, participants: Vec<Participant>) -> RoomDetail {
        let participants: Vec<Participant> = participants
            .into_iter()
            .map(|p| Participant {
                node: node.into(),
                worker,
                ..p
            })
            .collect();
        RoomDetail {
            room: name.into(),
            node: node.into(),
            worker,
            routers: vec![RouterDetail {
                node: node.into(),
                worker,
                peers: participants.len() as u32,
                ..RouterDetail::default()
            }],
            participants,
            ..RoomDetail::default()
        }
    }

    fn sample(node: &str, cpu_percent: Vec<f64>) -> NodeSample {
        NodeSample {
            node: node.into(),
            pid: 1,
            uptime_secs: 0,
            version: String::new(),
            cpu_percent,
        }
    }

    #[test]
    fn rooms_are_counted_on_their_worker() {
        let rooms = [
            room("a", "node-1", 1, vec![participant(2, 2), participant(2, 2)]),
            room("b", "node-1", 1, vec![participant(1, 0)]),
            room("c", "node-2", 0, vec![participant(0, 0)]),
        ];
        let nodes = node_infos(
            &rooms,
            &[
                sample("node-1", vec![5.0, 30.0]),
                sample("node-2", vec![1.0]),
            ],
        );
        let w = &nodes[0].workers[1];
        assert_eq!(w.rooms, vec!["a", "b"]);
        assert_eq!(
            (w.participants, w.transports, w.producers, w.consumers),
            (3, 6, 5, 4)
        );
        assert_eq!(nodes[0].workers[0].rooms, Vec::<String>::new());
        assert_eq!(nodes[1].workers[0].rooms, vec!["c"]);

        let summary = summarize(&nodes, &rooms);
        assert_eq!(
            (
                summary.nodes,
                summary.workers,
                summary.rooms,
                summary.participants,
                summary.producers,
                summary.consumers
            ),
            (2, 3, 3, 4, 5, 4)
        );
        let per_worker: Vec<(String, u32, u32)> = summary
            .consumers_per_worker
            .iter()
            .map(|w| (w.node.clone(), w.worker, w.consumers))
            .collect();
        assert_eq!(
            per_worker,
            vec![
                ("node-1".into(), 0, 0),
                ("node-1".into(), 1, 4),
                ("node-2".into(), 0, 0)
            ]
        );
        assert_eq!(summary.load.cpu_percent_max, 30.0);
        assert_eq!(summary.load.cpu_percent_mean, 12.0);
    }

    #[test]
    fn an_empty_sfu_sums_to_zero() {
        let summary = summarize(&[], &[]);
        assert_eq!(summary.workers, 0);
        assert_eq!(summary.load.cpu_percent_mean, 0.0);
    }

    #[test]
    fn a_room_in_brief() {
        let info = room_info(&room(
            "a",
            "node-3",
            2,
            vec![participant(2, 1), participant(1, 2)],
        ));
        assert_eq!(
            (
                info.node.as_str(),
                info.worker,
                info.participants,
                info.producers,
                info.consumers
            ),
            ("node-3", 2, 2, 3, 3)
        );
    }
}
