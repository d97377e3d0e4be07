//! A room as the monitor shows it: placement, peers in the order they joined, what each sends
//! and receives, with whatever media statistics were collected for the answer.

use std::collections::HashMap;
use std::sync::Arc;

use ipc::messages::{
    ConsumerId, ConsumerStats, DataProducerId, DataProducerStats, ProducerId, ProducerStats,
    RoomId, RouterId,
};
use monitor_api::{
    ConsumerInfo, DataProducerInfo, Participant, ProducerInfo, RoomDetail, RouterDetail,
};

use super::Media;
use crate::driver::node_link::{NodeId, NodeLink};
use crate::driver::node_pool::NodePool;
use crate::driver::rooms::Rooms;
use room_core::rooms::{PeerView, RoomView, RouterView};
use signaling_api::{Kind, PeerId};

/// Every room (or only the one named `only`) with the statistics in `media`.
pub(super) fn details(
    rooms: &Rooms,
    pool: &NodePool,
    only: Option<&str>,
    media: &Media,
) -> Vec<RoomDetail> {
    let links: HashMap<NodeId, Arc<NodeLink>> =
        pool.ready().into_iter().map(|l| (l.id, l)).collect();
    let only = only.map(|name| RoomId(name.to_string()));
    let mut details: Vec<RoomDetail> = rooms
        .views(only.as_ref())
        .iter()
        .map(|(id, room)| room_detail(id, room, &links, media, rooms))
        .collect();
    details.sort_by(|a, b| a.room.cmp(&b.room));
    details
}

fn room_detail(
    id: &RoomId,
    room: &RoomView,
    links: &HashMap<NodeId, Arc<NodeLink>>,
    media: &Media,
    rooms: &Rooms,
) -> RoomDetail {
    let mut routers: Vec<(&RouterId, &RouterView)> = room.routers.iter().collect();
    routers.sort_by_key(|(_, s)| s.seq);
    let stats = &media.by_router;
    // Indexed once: a full room has thousands of consumers. A producer's statistics are its
    // own router's (its copies elsewhere are pipe producers).
    let producer_stats: HashMap<(RouterId, ProducerId), &ProducerStats> = stats
        .iter()
        .flat_map(|(r, s)| s.producers.iter().map(move |p| ((*r, p.producer), p)))
        .collect();
    let consumer_stats: HashMap<ConsumerId, &ConsumerStats> = stats
        .values()
        .flat_map(|s| s.consumers.iter().map(|c| (c.consumer, c)))
        .collect();
    let data_stats: HashMap<DataProducerId, &DataProducerStats> = stats
        .values()
        .flat_map(|s| s.data_producers.iter().map(|d| (d.data_producer, d)))
        .collect();
    let mut peers: Vec<(&PeerId, &PeerView)> = room.peers.iter().collect();
    peers.sort_by_key(|(_, p)| p.joined_at);
    let pipes_of = |p: &PeerView| p.producers.values().map(|e| e.copies as u32).sum::<u32>();
    let router_details: Vec<RouterDetail> = routers
        .iter()
        .map(|(id, s)| {
            let on: Vec<&PeerView> = room.peers.values().filter(|p| p.router == **id).collect();
            let pipes: u32 = on.iter().map(|p| pipes_of(p)).sum();
            // Another host's node goes by its host's number for it.
            let (host, node) = match rooms.remote_place(s.node) {
                Some(place) => (Some(place.host.to_string()), place.node),
                None => (rooms.host().map(|h| h.to_string()), s.node),
            };
            RouterDetail {
                host,
                node: node.to_string(),
                worker: s.worker,
                peers: on.len() as u32,
                consumers: on.iter().map(|p| p.consumers.len() as u32).sum::<u32>() + pipes,
                pipes,
            }
        })
        .collect();
    let primary = routers.first().map(|(_, s)| (s.node, s.worker));
    RoomDetail {
        room: id.0.clone(),
        node: primary.map(|(n, _)| n.to_string()).unwrap_or_default(),
        node_pid: primary
            .and_then(|(n, _)| links.get(&n))
            .map_or(0, |l| l.hello.pid),
        worker: primary.map_or(0, |(_, w)| w),
        age_secs: room.created_at.elapsed().as_secs(),
        pipes: router_details.iter().map(|r| r.pipes).sum(),
        routers: router_details,
        stats_missing: media.missing(),
        participants: peers
            .into_iter()
            .map(|(peer_id, p)| {
                let place = room.routers.get(&p.router);
                let mut producers: Vec<ProducerInfo> = p
                    .producers
                    .iter()
                    .map(|(pid, e)| {
                        let s = producer_stats.get(&(p.router, *pid)).copied();
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
                        let s = consumer_stats.get(cid).copied();
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
                let mut data_producers: Vec<DataProducerInfo> = p
                    .data_producers
                    .iter()
                    .map(|(id, e)| {
                        let s = data_stats.get(id).copied();
                        DataProducerInfo {
                            id: id.to_string(),
                            label: e.label.clone(),
                            relayed: s.map(|s| s.relayed),
                            dropped: s.map(|s| s.dropped),
                        }
                    })
                    .collect();
                data_producers.sort_by(|a, b| a.id.cmp(&b.id));
                Participant {
                    peer_id: peer_id.to_string(),
                    display_name: p.display_name.clone(),
                    identity: p.identity.clone(),
                    client: p.via.name().map(str::to_string),
                    joined_secs: p.joined_at.elapsed().as_secs(),
                    resumable_secs: p.detached_until.map(|until| {
                        until
                            .saturating_duration_since(std::time::Instant::now())
                            .as_secs()
                    }),
                    node: place.map(|s| s.node.to_string()).unwrap_or_default(),
                    worker: place.map_or(0, |s| s.worker),
                    transports: p.transports.len() as u32,
                    producers,
                    consumers,
                    data_producers,
                    data_consumers: p.data_consumers as u32,
                }
            })
            .collect(),
    }
}
