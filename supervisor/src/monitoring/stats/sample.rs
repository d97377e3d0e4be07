//! Quality samples: the media statistics of the rooms a quality subscriber watches, collected
//! now and read as [`Observation`]s for [`room_core::quality::QualityWatch`].

use std::collections::HashMap;

use ipc::messages::{ConsumerId, ProducerId, RoomId, RouterId, TransportId};

use super::Stats;
use crate::driver::node_link::NodeId;
use room_core::quality::{Observation, Problem, LOW_SCORE};

/// What the directory says of one room's participants, taken under the core's lock.
struct RoomPlan {
    room: String,
    routers: Vec<(RouterId, NodeId)>,
    peers: Vec<PeerPlan>,
}

struct PeerPlan {
    peer_id: String,
    display_name: String,
    router: RouterId,
    transports: Vec<TransportId>,
    producers: Vec<ProducerId>,
    consumers: Vec<ConsumerId>,
}

impl Stats {
    /// Samples the room named `only`, or every room: the rooms whose statistics all arrived,
    /// and what they say.
    pub async fn quality_sample(&self, only: Option<&str>) -> (Vec<String>, Vec<Observation>) {
        let only = only.map(|name| RoomId(name.to_string()));
        let plans: Vec<RoomPlan> = self
            .rooms
            .views(only.as_ref())
            .iter()
            .map(|(RoomId(name), room)| RoomPlan {
                room: name.clone(),
                routers: room.routers.iter().map(|(id, s)| (*id, s.node)).collect(),
                peers: room
                    .peers
                    .iter()
                    .map(|(id, p)| PeerPlan {
                        peer_id: id.to_string(),
                        display_name: p.display_name.clone(),
                        router: p.router,
                        transports: p.transports.keys().copied().collect(),
                        producers: p.producers.keys().copied().collect(),
                        consumers: p.consumers.keys().copied().collect(),
                    })
                    .collect(),
            })
            .collect();
        let mut sampled = Vec::new();
        let mut observations = Vec::new();
        for plan in plans {
            let media = self.collect(&plan.routers).await;
            if !media.missing().is_empty() {
                // Judging on part of a room would report its other items gone.
                continue;
            }
            let consumers: HashMap<ConsumerId, _> = media
                .by_router
                .values()
                .flat_map(|r| r.consumers.iter().map(|c| (c.consumer, c)))
                .collect();
            for peer in &plan.peers {
                let Some(own) = media.router(&peer.router) else {
                    continue;
                };
                let observe =
                    |subject: &'static str, id: String, problem: Option<Problem>| Observation {
                        room: plan.room.clone(),
                        peer_id: peer.peer_id.clone(),
                        display_name: peer.display_name.clone(),
                        subject,
                        id,
                        problem,
                    };
                let level = |what: String| Problem {
                    what,
                    at_once: false,
                };
                let state = |what: &str| Problem {
                    what: what.to_string(),
                    at_once: true,
                };
                for id in &peer.consumers {
                    let Some(c) = consumers.get(id) else { continue };
                    let active = !c.paused && !c.producer_paused;
                    let problem = (active && c.score < LOW_SCORE)
                        .then(|| level(format!("score {}", c.score)));
                    observations.push(observe("consumer", id.to_string(), problem));
                }
                for id in &peer.producers {
                    let Some(p) = own.producers.iter().find(|p| p.producer == *id) else {
                        continue;
                    };
                    let problem = (!p.paused && p.bitrate_bps == 0).then(|| level("silent".into()));
                    observations.push(observe("producer", id.to_string(), problem));
                }
                for id in &peer.transports {
                    let Some(t) = own.transports.iter().find(|t| t.transport == *id) else {
                        continue;
                    };
                    let problem = if t.dtls_state == "failed" {
                        Some(state("DTLS failed"))
                    } else if t.ice_state == "disconnected" {
                        Some(state("ICE disconnected"))
                    } else {
                        None
                    };
                    observations.push(observe("transport", id.to_string(), problem));
                }
            }
            sampled.push(plan.room);
        }
        (sampled, observations)
    }
}
