//! One participant in depth: resolved in the room directory (by peer id or display name),
//! then what its node's worker says of its transports, producers and consumers, joined with
//! whose producer each consumer forwards.

use std::collections::HashMap;

use ipc::calls::Diagnose;
use ipc::messages::{self as wire, ConsumerId, ProducerId, RoomId, RouterId, TransportId};
use monitor_api::{
    ConsumerDiagnostics, PeerDiagnostics, ProducerDiagnostics, StreamDiagnostics,
    TransportDiagnostics,
};

use super::{Stats, COLLECT_DEADLINE};
use crate::driver::node_link::NodeId;
use room_core::rooms::RoomView;
use signaling_api::{Direction, Kind};

/// Why a participant cannot be diagnosed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeerError {
    /// No such room.
    #[error("no room {0:?}")]
    NoRoom(String),
    /// Nobody in it by that id or name.
    #[error("nobody in room {room:?} has the id or name {who:?}")]
    NoPeer {
        /// The room.
        room: String,
        /// What was asked.
        who: String,
    },
    /// Several participants have that name.
    #[error("{count} participants of room {room:?} are called {who:?}: ask by peer id")]
    Ambiguous {
        /// The room.
        room: String,
        /// The name.
        who: String,
        /// How many.
        count: usize,
    },
    /// Its node did not answer in time.
    #[error("its node did not answer: {0}")]
    Node(String),
}

/// What the directory knows of the participant, taken under the core's lock.
struct Plan {
    diagnostics: PeerDiagnostics,
    node: NodeId,
    router: RouterId,
    transports: Vec<(TransportId, Direction)>,
    producers: Vec<(ProducerId, Kind, String)>,
    /// Consumer, its producer, its kind, and the producer's owner's name.
    consumers: Vec<(ConsumerId, ProducerId, wire::MediaKind, Option<String>)>,
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Audio => "audio",
        Kind::Video => "video",
    }
}

fn plan(room_id: &str, room: &RoomView, who: &str) -> Result<Plan, PeerError> {
    let matches: Vec<_> = room
        .peers
        .iter()
        .filter(|(id, p)| id.to_string() == who || p.display_name == who)
        .collect();
    let (peer_id, peer) = match matches.as_slice() {
        [one] => *one,
        [] => {
            return Err(PeerError::NoPeer {
                room: room_id.into(),
                who: who.into(),
            })
        }
        many => {
            return Err(PeerError::Ambiguous {
                room: room_id.into(),
                who: who.into(),
                count: many.len(),
            })
        }
    };
    let place = room
        .routers
        .get(&peer.router)
        .ok_or_else(|| PeerError::NoPeer {
            room: room_id.into(),
            who: who.into(),
        })?;
    let owners: HashMap<ProducerId, &str> = room
        .peers
        .values()
        .flat_map(|p| p.producers.keys().map(|id| (*id, p.display_name.as_str())))
        .collect();
    Ok(Plan {
        diagnostics: PeerDiagnostics {
            room: room_id.into(),
            peer_id: peer_id.to_string(),
            display_name: peer.display_name.clone(),
            identity: peer.identity.clone(),
            node: place.node.to_string(),
            worker: place.worker,
            ..PeerDiagnostics::default()
        },
        node: place.node,
        router: peer.router,
        transports: peer.transports.iter().map(|(id, d)| (*id, *d)).collect(),
        producers: peer
            .producers
            .iter()
            .map(|(id, e)| (*id, e.kind, e.codec.clone()))
            .collect(),
        consumers: peer
            .consumers
            .iter()
            .map(|(id, e)| {
                let from = owners.get(&e.producer).map(|name| name.to_string());
                (*id, e.producer, e.kind, from)
            })
            .collect(),
    })
}

fn stream(s: &wire::StreamDiagnostics) -> StreamDiagnostics {
    StreamDiagnostics {
        ssrc: s.ssrc,
        rid: s.rid.clone(),
        score: s.score,
        bitrate_bps: s.bitrate_bps,
        packets_lost: s.packets_lost,
        nack_count: s.nack_count,
        pli_count: s.pli_count,
        fir_count: s.fir_count,
        round_trip_time_ms: s.round_trip_time_ms,
    }
}

impl Stats {
    /// Everything the worker says of participant `who` (peer id or display name) of `room`.
    pub async fn peer(&self, room: &str, who: &str) -> Result<PeerDiagnostics, PeerError> {
        let id = RoomId(room.to_string());
        let views = self.rooms.views(Some(&id));
        let found = views
            .get(&id)
            .ok_or_else(|| PeerError::NoRoom(room.into()))?;
        let plan = plan(room, found, who)?;
        self.metrics.stats_collected();
        let call = Diagnose {
            router: plan.router,
            transports: plan.transports.iter().map(|(id, _)| *id).collect(),
            producers: plan.producers.iter().map(|(id, ..)| *id).collect(),
            consumers: plan.consumers.iter().map(|(id, ..)| *id).collect(),
        };
        // A peer on another host's node is asked through that host.
        let diagnosed =
            tokio::time::timeout(COLLECT_DEADLINE, self.rooms.node_call(plan.node, call))
                .await
                .map_err(|_| PeerError::Node(format!("no answer within {COLLECT_DEADLINE:?}")))?
                .map_err(|e| PeerError::Node(e.to_string()))?
                .diagnostics;
        Ok(assemble(plan, diagnosed, self.rooms.turn_servers()))
    }
}

/// The monitor's view: the directory's names and links, the worker's numbers.
fn assemble(
    plan: Plan,
    diagnosed: wire::Diagnostics,
    turn: Option<&crate::edge::turn::TurnServers>,
) -> PeerDiagnostics {
    let Plan {
        mut diagnostics,
        transports,
        producers,
        consumers,
        ..
    } = plan;
    let directions: HashMap<TransportId, Direction> = transports.into_iter().collect();
    diagnostics.transports = diagnosed
        .transports
        .iter()
        .map(|t| TransportDiagnostics {
            id: t.transport.to_string(),
            direction: match directions.get(&t.transport) {
                Some(Direction::Send) => "send".into(),
                Some(Direction::Recv) => "recv".into(),
                None => String::new(),
            },
            ice_state: t.ice_state.clone(),
            selected_tuple: t.selected_tuple.clone(),
            path: match (t.remote_ip, &t.protocol) {
                (Some(ip), _) if turn.is_some_and(|turn| turn.relays(ip)) => Some("relayed".into()),
                (_, Some(protocol)) => Some(protocol.clone()),
                _ => None,
            },
            dtls_state: t.dtls_state.clone(),
            bytes_received: t.bytes_received,
            bytes_sent: t.bytes_sent,
            available_outgoing_bitrate: t.available_outgoing_bitrate,
        })
        .collect();
    let producers: HashMap<ProducerId, (Kind, String)> = producers
        .into_iter()
        .map(|(id, kind, codec)| (id, (kind, codec)))
        .collect();
    diagnostics.producers = diagnosed
        .producers
        .iter()
        .map(|p| {
            let (kind, codec) = producers
                .get(&p.producer)
                .map(|(k, c)| (kind_name(*k).to_string(), c.clone()))
                .unwrap_or_default();
            ProducerDiagnostics {
                id: p.producer.to_string(),
                kind,
                codec,
                paused: p.paused,
                streams: p.streams.iter().map(stream).collect(),
            }
        })
        .collect();
    let consumers: HashMap<ConsumerId, (ProducerId, wire::MediaKind, Option<String>)> = consumers
        .into_iter()
        .map(|(id, producer, kind, from)| (id, (producer, kind, from)))
        .collect();
    diagnostics.consumers = diagnosed
        .consumers
        .iter()
        .filter_map(|c| {
            let (producer, kind, from) = consumers.get(&c.consumer)?;
            let paused = match (c.paused, c.producer_paused) {
                (true, _) => Some("by the participant (not resumed, or paused)".to_string()),
                (false, true) => Some("producer paused by its sender".to_string()),
                (false, false) => None,
            };
            Some(ConsumerDiagnostics {
                id: c.consumer.to_string(),
                kind: kind.as_str().into(),
                producer_id: producer.to_string(),
                from: from.clone(),
                score: c.score,
                producer_score: c.producer_score,
                paused,
                current_layers: c.current_layers,
                preferred_layers: c.preferred_layers,
                stream: c.stream.as_ref().map(stream),
            })
        })
        .collect();
    diagnostics
        .transports
        .sort_by(|a, b| a.direction.cmp(&b.direction));
    diagnostics
        .producers
        .sort_by(|a, b| (&a.kind, &a.id).cmp(&(&b.kind, &b.id)));
    diagnostics
        .consumers
        .sort_by(|a, b| (&a.from, &a.kind).cmp(&(&b.from, &b.kind)));
    diagnostics
}
