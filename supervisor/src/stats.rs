//! Stats aggregation for the monitor API and `/metrics`: answered from the supervisor's own
//! state (the room directory, the nodes' load and media-stats reports), never by asking
//! every node. The arithmetic is in plain functions over snapshots.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use ipc::messages::{ConsumerId, ConsumerStats, ProducerId, ProducerStats, RoomId};
use monitor_api::{
    ConsumerInfo, Load, NodeInfo, Participant, ProducerInfo, RoomDetail, RoomInfo, Summary,
    WorkerConsumers, WorkerInfo,
};

use crate::metrics::Metrics;
use crate::node_link::{NodeId, NodeLink};
use crate::node_pool::NodePool;
use crate::protocol::Kind;
use crate::protocol::PeerId;
use crate::rooms::core::{Peer, Room};
use crate::rooms::Rooms;

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

    /// Every ready node with its workers.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        node_infos(&details(&self.rooms, &self.pool, None), &self.samples())
    }

    /// SFU-wide numbers.
    pub fn summary(&self) -> Summary {
        self.summarize(&self.nodes())
    }

    /// SFU-wide numbers of `nodes` (from [`Stats::nodes`]).
    pub fn summarize(&self, nodes: &[NodeInfo]) -> Summary {
        Summary {
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_secs: self.started.elapsed().as_secs(),
            joins_total: self.metrics.joins(),
            node_restarts_total: self.metrics.node_restarts(),
            ..summarize(nodes)
        }
    }

    /// Every room, by name.
    pub fn rooms(&self) -> Vec<RoomInfo> {
        details(&self.rooms, &self.pool, None)
            .iter()
            .map(room_info)
            .collect()
    }

    /// One room in detail.
    pub fn room(&self, name: &str) -> Option<RoomDetail> {
        details(&self.rooms, &self.pool, Some(name))
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

/// Each node with its workers, and what each worker hosts according to `rooms`.
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
                    let hosted = rooms
                        .iter()
                        .filter(|r| r.node == sample.node && r.worker == index as u32);
                    for room in hosted {
                        worker.rooms.push(room.room.clone());
                        for p in &room.participants {
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

/// Totals over `nodes` (the version, uptime and counters are left at their defaults).
pub fn summarize(nodes: &[NodeInfo]) -> Summary {
    let workers: Vec<(&NodeInfo, &WorkerInfo)> = nodes
        .iter()
        .flat_map(|n| n.workers.iter().map(move |w| (n, w)))
        .collect();
    let sum = |f: fn(&WorkerInfo) -> u32| workers.iter().map(|(_, w)| f(w)).sum::<u32>();
    let cpu: Vec<f64> = workers.iter().map(|(_, w)| w.cpu_percent).collect();
    Summary {
        nodes: nodes.len() as u32,
        workers: workers.len() as u32,
        rooms: sum(|w| w.rooms.len() as u32),
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

/// Every room (or only the one named `only`) as the monitor shows it: placement, peers in
/// the order they joined, what each sends and receives, with the latest media statistics
/// of the room's node.
fn details(rooms: &Rooms, pool: &NodePool, only: Option<&str>) -> Vec<RoomDetail> {
    let links: HashMap<NodeId, Arc<NodeLink>> =
        pool.ready().into_iter().map(|l| (l.id, l)).collect();
    let mut details: Vec<RoomDetail> = rooms.inspect(|rooms| {
        rooms
            .iter()
            .filter(|(id, _)| only.is_none_or(|name| id.0 == name))
            .map(|(id, room)| room_detail(id, room, links.get(&room.node)))
            .collect()
    });
    details.sort_by(|a, b| a.room.cmp(&b.room));
    details
}

fn room_detail(id: &RoomId, room: &Room, link: Option<&Arc<NodeLink>>) -> RoomDetail {
    let stats = link.and_then(|l| l.room_stats(id));
    // Indexed once: a full room has thousands of consumers.
    let producer_stats: HashMap<ProducerId, &ProducerStats> = stats
        .iter()
        .flat_map(|s| s.producers.iter().map(|p| (p.producer, p)))
        .collect();
    let consumer_stats: HashMap<ConsumerId, &ConsumerStats> = stats
        .iter()
        .flat_map(|s| s.consumers.iter().map(|c| (c.consumer, c)))
        .collect();
    let producer_stats = |pid: &ProducerId| producer_stats.get(pid).copied();
    let consumer_stats = |cid: &ConsumerId| consumer_stats.get(cid).copied();
    let mut peers: Vec<(&PeerId, &Peer)> = room.peers.iter().collect();
    peers.sort_by_key(|(_, p)| p.joined_at);
    RoomDetail {
        room: id.0.clone(),
        node: room.node.to_string(),
        node_pid: link.map_or(0, |l| l.hello.pid),
        worker: room.worker,
        age_secs: room.created_at.elapsed().as_secs(),
        participants: peers
            .into_iter()
            .map(|(peer_id, p)| {
                let mut producers: Vec<ProducerInfo> = p
                    .producers
                    .iter()
                    .map(|(pid, e)| {
                        let s = producer_stats(pid);
                        ProducerInfo {
                            id: pid.to_string(),
                            kind: match e.kind {
                                Kind::Audio => "audio".into(),
                                Kind::Video => "video".into(),
                            },
                            codec: e.codec.clone(),
                            score: s.and_then(|s| s.score),
                            paused: s.map(|s| s.paused),
                            bitrate_bps: s.map(|s| s.bitrate_bps),
                        }
                    })
                    .collect();
                producers.sort_by(|a, b| (&a.kind, &a.id).cmp(&(&b.kind, &b.id)));
                let mut consumers: Vec<ConsumerInfo> = p
                    .consumers
                    .iter()
                    .map(|(cid, e)| {
                        let s = consumer_stats(cid);
                        ConsumerInfo {
                            id: cid.to_string(),
                            producer_id: e.producer.to_string(),
                            kind: e.kind.as_str().into(),
                            score: s.map(|s| s.score),
                            producer_score: s.map(|s| s.producer_score),
                            paused: s.map(|s| s.paused),
                            producer_paused: s.map(|s| s.producer_paused),
                            bitrate_bps: s.map(|s| s.bitrate_bps),
                        }
                    })
                    .collect();
                consumers.sort_by(|a, b| (&a.kind, &a.id).cmp(&(&b.kind, &b.id)));
                Participant {
                    peer_id: peer_id.to_string(),
                    display_name: p.display_name.clone(),
                    joined_secs: p.joined_at.elapsed().as_secs(),
                    transports: p.transports.len() as u32,
                    producers,
                    consumers,
                }
            })
            .collect(),
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

    fn room(name: &str, node: &str, worker: u32, participants: Vec<Participant>) -> RoomDetail {
        RoomDetail {
            room: name.into(),
            node: node.into(),
            worker,
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

        let summary = summarize(&nodes);
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
        let summary = summarize(&[]);
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
