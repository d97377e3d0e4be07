//! A joined peer's data channels (chat), decided: `produceData` on a send transport announces a
//! data producer to the room (`newDataProducer`), `consumeData` on a receive transport gives
//! another peer's; a data producer gone (closed with its transport or its peer) closes its
//! data consumers (`dataConsumerClosed`). In a room over several routers every data producer is
//! piped to every router, as producers are ([`super::Relayed::Data`]).

use std::collections::{BTreeMap, HashMap};

use ipc::calls as call;
use ipc::messages::{DataConsumerId, DataProducerId, Json, RoomId, RouterId, TransportId};
use monitor_api::EventKind;
use serde_json::Value;

use super::{
    bounded_app_data, json_value, may_consume_more, may_publish, may_subscribe, not_found,
    not_joined, Cleanup, Relayed, RoomCore, Target,
};
use signaling_api::notifications::Notification;
use signaling_api::{
    parse_id, ClientError, ClientErrorCode, ConsumeDataArgs, DataConsumed, DataProduced, Direction,
    PeerId, ProduceDataArgs,
};

/// Data producers one peer may have (a chat needs one).
pub const MAX_DATA_PRODUCERS_PER_PEER: usize = 4;

/// Longest `label` or `protocol` of a data producer, in bytes.
pub const MAX_DATA_LABEL_BYTES: usize = 256;

/// A data producer as the directory knows it.
#[derive(Clone, Debug)]
pub(crate) struct DataProducerEntry {
    pub(crate) transport: TransportId,
    pub(crate) label: String,
    pub(crate) protocol: String,
    pub(crate) app_data: Option<Value>,
    /// The room's other routers it is piped to (`true` once there).
    pub(crate) copies: BTreeMap<RouterId, bool>,
}

/// A data consumer as the directory knows it.
#[derive(Clone, Debug)]
pub(crate) struct DataConsumerEntry {
    pub(crate) data_producer: DataProducerId,
    pub(crate) transport: TransportId,
}

/// A produceData request on its way to a node.
#[derive(Debug)]
pub struct PendingProduceData {
    /// Where it goes.
    pub target: Target,
    /// The call.
    pub call: call::ProduceData,
    entry: DataProducerEntry,
}

/// A consumeData request on its way to a node.
#[derive(Debug)]
pub struct PendingConsumeData {
    /// Where it goes.
    pub target: Target,
    /// The call.
    pub call: call::ConsumeData,
}

impl RoomCore {
    /// The produceData call for `peer`, if it may produce data on that transport.
    pub(crate) fn begin_produce_data(
        &self,
        peer: PeerId,
        args: ProduceDataArgs,
    ) -> Result<PendingProduceData, ClientError> {
        let (target, transport) =
            self.own_transport(peer, &args.transport_id, Some(Direction::Send))?;
        let (_, me) = self.peer(peer)?;
        may_publish(me)?;
        if me.data_producers_here() >= MAX_DATA_PRODUCERS_PER_PEER {
            return Err(ClientError::new(
                ClientErrorCode::TooManyProducers,
                format!("a peer may have at most {MAX_DATA_PRODUCERS_PER_PEER} data producers"),
            ));
        }
        for (what, text) in [("label", &args.label), ("protocol", &args.protocol)] {
            if text.len() > MAX_DATA_LABEL_BYTES {
                return Err(ClientError::new(
                    ClientErrorCode::InvalidArgument,
                    format!("{what} is longer than {MAX_DATA_LABEL_BYTES} bytes"),
                ));
            }
        }
        let app_data = bounded_app_data(args.app_data)?;
        let mut sctp = args.sctp_stream_parameters;
        if !sctp.contains_key("ordered") {
            // As mediasoup's own API: ordered unless a partial reliability is asked for.
            let partial =
                sctp.contains_key("maxPacketLifeTime") || sctp.contains_key("maxRetransmits");
            sctp.insert("ordered".into(), Value::Bool(!partial));
        }
        let call = call::ProduceData {
            router: target.router,
            transport,
            sctp_stream_parameters: Json(Value::Object(sctp).to_string()),
            label: args.label.clone(),
            protocol: args.protocol.clone(),
        };
        let entry = DataProducerEntry {
            transport,
            label: args.label,
            protocol: args.protocol,
            app_data,
            copies: BTreeMap::new(),
        };
        Ok(PendingProduceData {
            target,
            call,
            entry,
        })
    }

    /// The node created `peer`'s data producer: the peers of its router are told now, and it
    /// is piped to the room's other routers, whose peers are told once it is there.
    pub(crate) fn handle_data_produced(
        &mut self,
        peer: PeerId,
        pending: PendingProduceData,
        answer: call::DataProduced,
    ) -> Result<DataProduced, ClientError> {
        let id = answer.data_producer;
        let at = pending.target;
        let Some((room_id, _)) = self.peer_still_at(peer, &at) else {
            let close = call::CloseDataProducer {
                router: at.router,
                data_producer: id,
            };
            self.cleanup_if_router(&at, Cleanup::CloseDataProducer(close));
            return Err(not_joined());
        };
        let mut entry = pending.entry;
        let room = self.rooms.get(&room_id).ok_or_else(not_joined)?;
        let elsewhere: Vec<Target> = room
            .routers
            .iter()
            .filter(|(r, state)| **r != at.router && state.ready)
            .map(|(r, state)| Target {
                node: state.node,
                router: *r,
            })
            .collect();
        for to in &elsewhere {
            entry.copies.insert(to.router, false);
        }
        let notification = new_data_producer(peer, id, &entry);
        let mates: Vec<PeerId> = Self::peers_on(room, at.router)
            .into_iter()
            .filter(|other| *other != peer)
            .collect();
        if let Some(p) = self
            .rooms
            .get_mut(&room_id)
            .and_then(|r| r.peers.get_mut(&peer))
        {
            p.data_producers.insert(id, entry);
        }
        self.monitor(EventKind::ProducerAdded {
            room: room_id.0.clone(),
            peer_id: peer.to_string(),
            producer_id: id.to_string(),
            kind: "data".into(),
        });
        // Its peer is known before its data producer is.
        self.announce_room(&room_id);
        self.notify(mates, notification);
        for to in elsewhere {
            self.order_pipe(&room_id, Relayed::Data(id), at.router, to);
        }
        Ok(DataProduced {
            data_producer_id: id,
        })
    }

    /// The consumeData call for `peer`, if the data producer is another peer's in its room
    /// and there on its router.
    pub(crate) fn begin_consume_data(
        &self,
        peer: PeerId,
        args: ConsumeDataArgs,
    ) -> Result<PendingConsumeData, ClientError> {
        let (target, transport) =
            self.own_transport(peer, &args.transport_id, Some(Direction::Recv))?;
        let data_producer: DataProducerId = parse_id("data producer", &args.data_producer_id)?;
        let me = self.peer(peer)?.1;
        may_subscribe(me)?;
        let mine = me.data_consumers.iter();
        // Once; a peer moving in a drain consumes it again on its new transport.
        let left = |t: &TransportId| me.moved_from.contains_key(t);
        let twice = |c: &DataConsumerEntry| c.data_producer == data_producer && !left(&c.transport);
        if let Some((id, _)) = mine.clone().find(|(_, c)| twice(c)) {
            return Err(ClientError::new(
                ClientErrorCode::AlreadyConsuming,
                format!("data producer {data_producer} is consumed by this peer already (data consumer {id})"),
            ));
        }
        // A duplicate says so before the cap does: it is the more precise answer.
        may_consume_more(me, self.limits.max_consumers_per_peer)?;
        let (_, room) = self.room_of_peer(peer)?;
        let owner = room
            .peers
            .iter()
            .find(|(_, p)| {
                (p.data_producers.get(&data_producer))
                    .is_some_and(|e| p.offers_on(e.transport, &e.copies, target.router))
            })
            .map(|(id, _)| *id);
        match owner {
            None => Err(not_found("data producer", data_producer)),
            Some(owner) if owner == peer => Err(ClientError::new(
                ClientErrorCode::InvalidArgument,
                "a peer does not consume its own data producer",
            )),
            Some(_) => Ok(PendingConsumeData {
                target,
                call: call::ConsumeData {
                    router: target.router,
                    transport,
                    data_producer,
                },
            }),
        }
    }

    /// The node created `peer`'s data consumer.
    pub(crate) fn handle_data_consumed(
        &mut self,
        peer: PeerId,
        pending: PendingConsumeData,
        answer: call::DataConsumed,
    ) -> Result<DataConsumed, ClientError> {
        let id = answer.data_consumer;
        let at = &pending.target;
        let data_producer = pending.call.data_producer;
        let app_data = self.room_of_peer(peer).ok().and_then(|(_, r)| {
            r.peers
                .values()
                .find_map(|p| p.data_producers.get(&data_producer))
                .map(|e| e.app_data.clone())
        });
        let Some((_, p)) = self.peer_still_at(peer, at) else {
            let close = call::CloseDataConsumer {
                router: at.router,
                data_consumer: id,
            };
            self.cleanup_if_router(at, Cleanup::CloseDataConsumer(close));
            return Err(not_joined());
        };
        // Closed while the node created the consumer: the node closes it on its own.
        let Some(app_data) = app_data else {
            return Err(not_found("data producer", data_producer));
        };
        p.data_consumers.insert(
            id,
            DataConsumerEntry {
                data_producer,
                transport: pending.call.transport,
            },
        );
        Ok(DataConsumed {
            data_consumer_id: id,
            data_producer_id: data_producer,
            sctp_stream_parameters: json_value(&answer.sctp_stream_parameters)?,
            label: answer.label,
            protocol: answer.protocol,
            app_data,
        })
    }

    /// Data producers are gone (with their transport or their peer): the monitor hears it,
    /// their copies are closed, and their data consumers' owners are told.
    pub(super) fn data_producers_gone(
        &mut self,
        room_id: &RoomId,
        owner: PeerId,
        gone: &HashMap<DataProducerId, DataProducerEntry>,
    ) {
        for (id, entry) in gone {
            self.monitor(EventKind::ProducerClosed {
                room: room_id.0.clone(),
                peer_id: owner.to_string(),
                producer_id: id.to_string(),
            });
            let Some(room) = self.rooms.get_mut(room_id) else {
                return;
            };
            let mut told = Vec::new();
            for (peer_id, peer) in room.peers.iter_mut() {
                peer.data_consumers.retain(|consumer, c| {
                    let closed = c.data_producer == *id;
                    if closed {
                        told.push((*peer_id, *consumer));
                    }
                    !closed
                });
            }
            let copies: Vec<(Target, call::CloseDataProducer)> = entry
                .copies
                .keys()
                .filter_map(|r| {
                    let node = room.routers.get(r)?.node;
                    let close = call::CloseDataProducer {
                        router: *r,
                        data_producer: *id,
                    };
                    Some((Target { node, router: *r }, close))
                })
                .collect();
            for (peer, consumer) in told {
                self.notify(
                    vec![peer],
                    Notification::DataConsumerClosed {
                        data_consumer_id: consumer,
                        data_producer_id: *id,
                    },
                );
            }
            for (at, close) in copies {
                self.cleanup(at.node, Cleanup::CloseDataProducer(close));
            }
        }
    }
}

pub(super) fn new_data_producer(
    peer: PeerId,
    id: DataProducerId,
    entry: &DataProducerEntry,
) -> Notification {
    Notification::NewDataProducer {
        peer_id: peer,
        data_producer_id: id,
        label: entry.label.clone(),
        protocol: entry.protocol.clone(),
        app_data: entry.app_data.clone(),
    }
}

/// The data consumers a node closed on its own (their data producer went away) are forgotten;
/// the peers were told when the directory closed the data producer.
pub(super) fn forget_data_consumer(
    room: &mut super::Room,
    data_consumer: DataConsumerId,
) -> Option<PeerId> {
    room.peers
        .iter_mut()
        .find_map(|(id, p)| p.data_consumers.remove(&data_consumer).map(|_| *id))
}
