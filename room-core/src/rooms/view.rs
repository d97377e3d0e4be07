//! What the rest of the supervisor may see of the rooms (the monitor's statistics, `/metrics`):
//! a snapshot, owned and read-only, so that nothing outside the core depends on how the core
//! keeps its state, and nothing can change it but the core's inputs.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use ipc::messages::{
    ConsumerId, DataProducerId, MediaKind, ProducerId, RoomId, RouterId, TransportId,
};
use signaling_api::{Direction, Kind, PeerId};

use super::{Room, RoomCore};
use crate::NodeId;

/// A room as it is now.
#[derive(Clone, Debug)]
pub struct RoomView {
    /// Its routers (one per worker it spans).
    pub routers: BTreeMap<RouterId, RouterView>,
    /// When it was created.
    pub created_at: Instant,
    /// Who is in it.
    pub peers: BTreeMap<PeerId, PeerView>,
}

/// One router of a room.
#[derive(Clone, Copy, Debug)]
pub struct RouterView {
    /// Its node.
    pub node: NodeId,
    /// Its worker on that node.
    pub worker: u32,
    /// Order of creation (the lowest is the room's first router).
    pub seq: u64,
}

/// A peer and what it owns.
#[derive(Clone, Debug)]
pub struct PeerView {
    /// The router it is on.
    pub router: RouterId,
    /// The name the others see.
    pub display_name: String,
    /// Its join token's identity, when tokens are on.
    pub identity: Option<String>,
    /// How it came (`/ws`, WHIP, WHEP).
    pub via: super::Via,
    /// When it joined.
    pub joined_at: Instant,
    /// While its signaling connection is gone: when its grace period ends.
    pub detached_until: Option<Instant>,
    /// Its WebRTC transports.
    pub transports: HashMap<TransportId, Direction>,
    /// What it sends.
    pub producers: HashMap<ProducerId, ProducerView>,
    /// What it receives.
    pub consumers: HashMap<ConsumerId, ConsumerView>,
    /// The data channels it sends on.
    pub data_producers: HashMap<DataProducerId, DataProducerView>,
    /// How many data channels of others it receives.
    pub data_consumers: usize,
}

/// A producer.
#[derive(Clone, Debug)]
pub struct ProducerView {
    /// Audio or video.
    pub kind: Kind,
    /// The MIME type of what it sends.
    pub codec: String,
    /// Pipes carrying it to the room's other routers.
    pub copies: usize,
}

/// A consumer.
#[derive(Clone, Copy, Debug)]
pub struct ConsumerView {
    /// The producer it receives.
    pub producer: ProducerId,
    /// Audio or video.
    pub kind: MediaKind,
}

/// A data producer.
#[derive(Clone, Debug)]
pub struct DataProducerView {
    /// Its data channel's label.
    pub label: String,
}

impl RoomCore {
    /// The room named `only`, or every room, as they are now.
    pub fn views(&self, only: Option<&RoomId>) -> HashMap<RoomId, RoomView> {
        self.rooms
            .iter()
            .filter(|(id, _)| only.is_none_or(|want| *id == want))
            .map(|(id, room)| (id.clone(), view(room)))
            .collect()
    }
}

fn view(room: &Room) -> RoomView {
    RoomView {
        routers: room
            .routers
            .iter()
            .map(|(id, r)| {
                let router = RouterView {
                    node: r.node,
                    worker: r.worker,
                    seq: r.seq,
                };
                (*id, router)
            })
            .collect(),
        created_at: room.created_at,
        peers: room
            .peers
            .iter()
            .map(|(id, p)| {
                let peer = PeerView {
                    router: p.router,
                    display_name: p.display_name.clone(),
                    identity: p.identity.clone(),
                    via: p.via,
                    joined_at: p.joined_at,
                    detached_until: p.detached_until,
                    transports: p.transports.clone(),
                    producers: p
                        .producers
                        .iter()
                        .map(|(id, e)| {
                            let producer = ProducerView {
                                kind: e.kind,
                                codec: e.codec.clone(),
                                copies: e.copies.len(),
                            };
                            (*id, producer)
                        })
                        .collect(),
                    consumers: p
                        .consumers
                        .iter()
                        .map(|(id, c)| {
                            let consumer = ConsumerView {
                                producer: c.producer,
                                kind: c.kind,
                            };
                            (*id, consumer)
                        })
                        .collect(),
                    data_producers: p
                        .data_producers
                        .iter()
                        .map(|(id, e)| {
                            let label = e.label.clone();
                            (*id, DataProducerView { label })
                        })
                        .collect(),
                    data_consumers: p.data_consumers.len(),
                };
                (*id, peer)
            })
            .collect(),
    }
}
