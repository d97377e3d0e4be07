//! Handing a room to another host, whole: a drained host's room leaves its core as a
//! [`RoomExport`] (its routers, links and pipes, every peer with what it owns and its resume
//! token) and enters the successor's core, which serves it from then on. Nothing is closed
//! or created on the nodes: the routers, transports, producers and consumers stay where they
//! are (the drain moved them off the leaving host first), and the media goes on. The peers
//! arrive detached: their signaling connections were the old host's, so each has the resume
//! grace period to come back (`resume`, with the token it has) through any host.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use ipc::messages::{
    ConsumerId, DataConsumerId, DataProducerId, MediaKind, ProducerId, RoomId, RouterId,
    TransportId,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use signaling_api::{Direction, Kind, PeerId};

use super::contract::Pending;
use super::data::{DataConsumerEntry, DataProducerEntry};
use super::{ConsumerEntry, Link, Peer, ProducerEntry, Rights, Room, RoomCore, RouterState};
use crate::NodeId;

/// Why a room cannot be handed over (or taken).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HandoffError {
    /// No such room here.
    #[error("no room {0} here")]
    Unknown(String),
    /// Joins or node calls of the room are under way: try again in a moment.
    #[error("room {0} is busy (joins or node calls under way)")]
    Busy(String),
    /// The successor has a room of that name, or one of its peers or routers, already.
    #[error("room {0} (or one of its peers or routers) exists here already")]
    Exists(String),
}

/// A room as it leaves one host's core for another's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomExport {
    /// Its name.
    pub room: String,
    /// Its routers' RTP capabilities.
    pub rtp_capabilities: Value,
    /// Its routers.
    pub routers: Vec<RouterExport>,
    /// Its links between routers on different nodes: the pair and their pipe transports
    /// (`None`: not up yet).
    pub links: Vec<LinkExport>,
    /// Its peers.
    pub peers: Vec<PeerExport>,
}

/// A link of an exported room: its two routers and their pipe transports (`None`: not up
/// yet).
pub type LinkExport = (RouterId, RouterId, Option<(TransportId, TransportId)>);

/// A router of an exported room. `node` is the exporting core's number for its node; the
/// hosts translate it through `host` (which host's node, and its number there).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouterExport {
    /// The router.
    pub router: RouterId,
    /// Its node, as the core holding the export numbers it.
    pub node: u32,
    /// The host of its node, once the hosts translated it (empty inside a core).
    #[serde(default)]
    pub host: String,
    /// Its worker.
    pub worker: u32,
    /// Order of creation (the oldest is the room's primary).
    pub seq: u64,
    /// Linked and given every producer.
    pub ready: bool,
}

/// A peer of an exported room, with all it owns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerExport {
    /// Its id.
    pub peer: PeerId,
    /// Its router.
    pub router: RouterId,
    /// Its name.
    pub display_name: String,
    /// May publish / subscribe.
    pub rights: (bool, bool),
    /// May record (absent from a host that predates recording: no).
    #[serde(default)]
    pub may_record: bool,
    /// Its join token's identity.
    pub identity: Option<String>,
    /// Its join token's expiry (Unix seconds).
    pub token_expires_at: Option<u64>,
    /// How it came.
    #[serde(default)]
    pub via: super::Via,
    /// Its transports; with the router of those left on another in a drain.
    pub transports: Vec<(TransportId, Direction, Option<RouterId>)>,
    /// Its producers: id, kind, transport, codec, app data, copies.
    pub producers: Vec<ProducerExport>,
    /// Its consumers: id, producer, transport, kind.
    pub consumers: Vec<(ConsumerId, ProducerId, TransportId, MediaKind)>,
    /// Its data producers.
    pub data_producers: Vec<DataProducerExport>,
    /// Its data consumers: id, data producer, transport.
    pub data_consumers: Vec<(DataConsumerId, DataProducerId, TransportId)>,
    /// Its resume token (the successor takes it back with it).
    pub resume_token: Option<String>,
    /// Its last-N choice (`setLastN`).
    #[serde(default)]
    pub last_n: Option<u32>,
    /// Its pins (`setLastN`).
    #[serde(default)]
    pub pinned: Vec<PeerId>,
    /// Its choice of the loudest few (`setLastN`).
    #[serde(default)]
    pub loudest: Option<u32>,
    /// Counted among those watching, not listed.
    #[serde(default)]
    pub watcher: bool,
}

/// A producer of an exported peer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProducerExport {
    /// Its id.
    pub id: ProducerId,
    /// Audio or video.
    pub kind: Kind,
    /// Its transport.
    pub transport: TransportId,
    /// Its codec's MIME type.
    pub codec: String,
    /// What its peer said of it.
    pub app_data: Option<Value>,
    /// The routers it is piped to (`true` once there).
    pub copies: Vec<(RouterId, bool)>,
}

/// A data producer of an exported peer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataProducerExport {
    /// Its id.
    pub id: DataProducerId,
    /// Its transport.
    pub transport: TransportId,
    /// Its label.
    pub label: String,
    /// Its sub-protocol.
    pub protocol: String,
    /// What its peer said of it.
    pub app_data: Option<Value>,
    /// The routers it is piped to.
    pub copies: Vec<(RouterId, bool)>,
}

fn export_peer(id: PeerId, p: &Peer, token: Option<String>) -> PeerExport {
    PeerExport {
        peer: id,
        router: p.router,
        display_name: p.display_name.clone(),
        rights: (p.rights.publish, p.rights.subscribe),
        may_record: p.rights.record,
        identity: p.identity.clone(),
        token_expires_at: p.token_expires_at,
        via: p.via,
        transports: (p.transports.iter())
            .map(|(t, d)| (*t, *d, p.moved_from.get(t).copied()))
            .collect(),
        producers: (p.producers.iter())
            .map(|(id, e)| ProducerExport {
                id: *id,
                kind: e.kind,
                transport: e.transport,
                codec: e.codec.clone(),
                app_data: e.app_data.clone(),
                copies: e.copies.iter().map(|(r, c)| (*r, *c)).collect(),
            })
            .collect(),
        consumers: (p.consumers.iter())
            .map(|(id, c)| (*id, c.producer, c.transport, c.kind))
            .collect(),
        data_producers: (p.data_producers.iter())
            .map(|(id, e)| DataProducerExport {
                id: *id,
                transport: e.transport,
                label: e.label.clone(),
                protocol: e.protocol.clone(),
                app_data: e.app_data.clone(),
                copies: e.copies.iter().map(|(r, c)| (*r, *c)).collect(),
            })
            .collect(),
        data_consumers: (p.data_consumers.iter())
            .map(|(id, c)| (*id, c.data_producer, c.transport))
            .collect(),
        resume_token: token,
        last_n: p.view.last_n,
        pinned: p.view.pinned.clone(),
        loudest: p.view.loudest,
        watcher: !p.listed,
    }
}

fn import_peer(p: &PeerExport, now: Instant, away: Option<Instant>) -> Peer {
    Peer {
        router: p.router,
        display_name: p.display_name.clone(),
        rights: Rights {
            publish: p.rights.0,
            subscribe: p.rights.1,
            record: p.may_record,
        },
        identity: p.identity.clone(),
        token_expires_at: p.token_expires_at,
        via: p.via,
        joined_at: now,
        // Its connection was the old host's: it comes back with `resume`, or leaves.
        detached_until: away,
        epoch: 1,
        transports: p.transports.iter().map(|(t, d, _)| (*t, *d)).collect(),
        moved_from: (p.transports.iter())
            .filter_map(|(t, _, from)| from.map(|r| (*t, r)))
            .collect(),
        producers: (p.producers.iter())
            .map(|e| {
                let entry = ProducerEntry {
                    kind: e.kind,
                    transport: e.transport,
                    codec: e.codec.clone(),
                    app_data: e.app_data.clone(),
                    copies: e.copies.iter().copied().collect(),
                };
                (e.id, entry)
            })
            .collect(),
        consumers: (p.consumers.iter())
            .map(|(id, producer, transport, kind)| {
                // Under last-N its consumers may be paused at the node: taken as held, the
                // first refresh resumes those it forwards.
                let entry = ConsumerEntry {
                    producer: *producer,
                    transport: *transport,
                    kind: *kind,
                    client_paused: false,
                    held: match kind {
                        MediaKind::Video => p.last_n.is_some(),
                        MediaKind::Audio => p.loudest.is_some(),
                    },
                };
                (*id, entry)
            })
            .collect(),
        data_producers: (p.data_producers.iter())
            .map(|e| {
                let entry = DataProducerEntry {
                    transport: e.transport,
                    label: e.label.clone(),
                    protocol: e.protocol.clone(),
                    app_data: e.app_data.clone(),
                    copies: e.copies.iter().copied().collect(),
                };
                (e.id, entry)
            })
            .collect(),
        data_consumers: (p.data_consumers.iter())
            .map(|(id, data_producer, transport)| {
                let entry = DataConsumerEntry {
                    data_producer: *data_producer,
                    transport: *transport,
                };
                (*id, entry)
            })
            .collect(),
        view: super::last_n::VideoView::new(p.last_n, p.pinned.clone(), p.loudest),
        listed: !p.watcher,
        // Told every announcement of its new host.
        announce_seq: 0,
    }
}

impl RoomCore {
    /// Takes `room` out of this core, whole, for another host: nothing on the nodes is
    /// touched, nobody is told. Refused while its joins or node calls are under way.
    pub fn export_room(&mut self, room_id: &RoomId) -> Result<RoomExport, HandoffError> {
        let name = || room_id.0.clone();
        let room = self
            .rooms
            .get(room_id)
            .ok_or_else(|| HandoffError::Unknown(name()))?;
        let busy = self.joins.contains_key(room_id)
            || self.tickets.values().any(|pending| match pending {
                Pending::Client { peer, .. } => room.peers.contains_key(peer),
                Pending::Relay { router, .. } | Pending::Hold { router, .. } => {
                    room.routers.contains_key(router)
                }
                Pending::Router { room: r, .. } | Pending::Opening { room: r, .. } => r == room_id,
            });
        if busy {
            return Err(HandoffError::Busy(name()));
        }
        let export = self
            .snapshot_room(room_id)
            .ok_or_else(|| HandoffError::Unknown(name()))?;
        let Some(room) = self.rooms.remove(room_id) else {
            return Err(HandoffError::Unknown(name()));
        };
        for id in room.peers.keys() {
            self.resumption.forget(*id);
            self.peer_room.remove(id);
        }
        for router in room.routers.keys() {
            self.router_room.remove(router);
        }
        tracing::info!(room = %room_id, peers = export.peers.len(), "room exported for another host");
        Ok(export)
    }

    /// A copy of `room` as [`RoomCore::export_room`] would take it, the room staying here:
    /// what a standby host keeps to adopt the room should this host die.
    pub fn snapshot_room(&self, room_id: &RoomId) -> Option<RoomExport> {
        let room = self.rooms.get(room_id)?;
        let routers = (room.routers.iter())
            .map(|(id, s)| RouterExport {
                router: *id,
                node: s.node.0,
                host: String::new(),
                worker: s.worker,
                seq: s.seq,
                ready: s.ready,
            })
            .collect();
        let links = (room.links.iter())
            .map(|((low, high), link)| {
                let transports = match link {
                    Link::Ready(lt, ht) => Some((*lt, *ht)),
                    Link::Pending => None,
                };
                (*low, *high, transports)
            })
            .collect();
        let peers = (room.peers.iter())
            .map(|(id, p)| export_peer(*id, p, self.resumption.token_of.get(id).cloned()))
            .collect();
        Some(RoomExport {
            room: room_id.0.clone(),
            rtp_capabilities: Value::clone(&room.rtp_capabilities),
            routers,
            links,
            peers,
        })
    }

    /// Takes a room another host exported (its nodes numbered as this core numbers them):
    /// served here from now on, its peers detached until they `resume`.
    pub fn import_room(&mut self, export: RoomExport, now: Instant) -> Result<(), HandoffError> {
        self.insert_room(export, now, true)
    }

    /// Takes back a room this core exported and nobody took: its peers' connections are
    /// still this host's.
    pub fn restore_room(&mut self, export: RoomExport, now: Instant) -> Result<(), HandoffError> {
        self.insert_room(export, now, false)
    }

    fn insert_room(
        &mut self,
        export: RoomExport,
        now: Instant,
        detached: bool,
    ) -> Result<(), HandoffError> {
        let room_id = RoomId(export.room.clone());
        let taken = self.rooms.contains_key(&room_id)
            || export
                .peers
                .iter()
                .any(|p| self.peer_room.contains_key(&p.peer))
            || (export.routers.iter()).any(|r| self.router_room.contains_key(&r.router));
        if taken {
            return Err(HandoffError::Exists(export.room));
        }
        let until = now + self.resume_grace;
        let away = detached.then_some(until);
        let routers: BTreeMap<RouterId, RouterState> = (export.routers.iter())
            .map(|r| {
                let state = RouterState {
                    node: NodeId(r.node),
                    worker: r.worker,
                    seq: r.seq,
                    ready: r.ready,
                };
                (r.router, state)
            })
            .collect();
        if let Some(last) = routers.values().map(|r| r.seq).max() {
            self.next_seq = self.next_seq.max(last + 1);
        }
        let links = (export.links.iter())
            .map(|(low, high, transports)| {
                let link = match transports {
                    Some((lt, ht)) => Link::Ready(*lt, *ht),
                    None => Link::Pending,
                };
                ((*low, *high), link)
            })
            .collect();
        let mut peers = BTreeMap::new();
        let mut tokens: HashMap<PeerId, String> = HashMap::new();
        for p in &export.peers {
            peers.insert(p.peer, import_peer(p, now, away));
            if let Some(token) = &p.resume_token {
                tokens.insert(p.peer, token.clone());
            }
        }
        for router in routers.keys() {
            self.router_room.insert(*router, room_id.clone());
        }
        for peer in peers.keys() {
            self.peer_room.insert(*peer, room_id.clone());
        }
        for (peer, token) in tokens {
            self.resumption.grant(peer, token);
        }
        tracing::info!(room = %room_id, peers = peers.len(), routers = routers.len(), "room taken over from another host");
        let rtp_capabilities = self.shared_caps(export.rtp_capabilities);
        self.last_n_dirty.insert(room_id.clone());
        self.rooms.insert(
            room_id,
            Room {
                routers,
                links,
                rtp_capabilities,
                created_at: now,
                peers,
                speakers: Vec::new(),
                announce: Default::default(),
                consumer_owners: Default::default(),
            },
        );
        // Those who do not come back leave when their grace period ends.
        if detached {
            self.deadlines.insert(until);
        }
        Ok(())
    }
}
