//! A joined peer's media requests, decided: each is checked against what the peer owns, the
//! node call is built (`begin_*`), and the node's answer is recorded (`handle_*`) unless the
//! peer left meanwhile, in which case what the node created is closed again.

use ipc::calls as call;
use std::collections::{BTreeMap, HashMap};

use ipc::messages::{ConsumerId, Json, MediaKind, ProducerId, TransportId};
use monitor_api::EventKind;
use serde::Deserialize;
use serde_json::{Map, Value};
use signaling_api::media::CodecNames;

use super::{
    bounded_app_data, json_value, may_consume_more, may_publish, may_subscribe, not_found,
    not_joined, Cleanup, ConsumerEntry, Peer, ProducerEntry, Relayed, RoomCore, Target,
};
use signaling_api::notifications::Notification;
use signaling_api::{
    parse_id, ClientError, ClientErrorCode, ConsumeArgs, Consumed, ConsumerAction, Direction,
    IceRestarted, Kind, PeerId, ProduceArgs, Produced, ProducerAction, RouterCapabilities,
    TransportCreated,
};

fn own_transport(p: &Peer, id: TransportId, want: Option<Direction>) -> Result<(), ClientError> {
    match p.transports.get(&id) {
        None => Err(not_found("transport", id)),
        Some(d) if want.is_some_and(|w| w != *d) => Err(ClientError::new(
            ClientErrorCode::InvalidArgument,
            format!("transport {id} is a {d:?} transport"),
        )),
        Some(_) => Ok(()),
    }
}

/// A produce request on its way to a node, with what the directory records once it answers.
#[derive(Debug)]
pub struct PendingProduce {
    /// Where it goes.
    pub target: Target,
    /// The call.
    pub call: call::Produce,
    entry: ProducerEntry,
}

/// A consume request on its way to a node.
#[derive(Debug)]
pub struct PendingConsume {
    /// Where it goes.
    pub target: Target,
    /// The call.
    pub call: call::Consume,
}

impl RoomCore {
    /// The router RTP capabilities of the peer's room.
    pub(crate) fn router_rtp_capabilities(
        &self,
        peer: PeerId,
    ) -> Result<RouterCapabilities, ClientError> {
        let (_, room) = self.room_of_peer(peer)?;
        Ok(RouterCapabilities {
            router_rtp_capabilities: Value::clone(&room.rtp_capabilities),
        })
    }

    /// Where `peer`'s new transport is created, if it may have one more.
    pub(crate) fn begin_create_transport(&self, peer: PeerId) -> Result<Target, ClientError> {
        let (target, p) = self.peer(peer)?;
        let max = self.limits.max_transports_per_peer;
        // Those left on the router it moved from do not count: the client closes them.
        if p.transports.len() - p.moved_from.len() >= max {
            return Err(ClientError::new(
                ClientErrorCode::TooManyTransports,
                format!("a peer may have at most {max} transports"),
            ));
        }
        Ok(target)
    }

    /// The node created a transport for `peer` at `at`.
    pub(crate) fn handle_transport_created(
        &mut self,
        peer: PeerId,
        at: &Target,
        direction: Direction,
        answer: call::TransportCreated,
    ) -> Result<TransportCreated, ClientError> {
        let transport = answer.transport;
        let Some((_, p)) = self.peer_still_at(peer, at) else {
            // The peer left meanwhile: do not leak the transport.
            let close = call::CloseTransport {
                router: at.router,
                transport,
            };
            self.cleanup_if_router(at, Cleanup::CloseTransport(close));
            return Err(not_joined());
        };
        p.transports.insert(transport, direction);
        Ok(TransportCreated {
            transport_id: transport,
            ice_parameters: json_value(&answer.ice_parameters)?,
            ice_candidates: json_value(&answer.ice_candidates)?,
            dtls_parameters: json_value(&answer.dtls_parameters)?,
            sctp_parameters: match &answer.sctp_parameters {
                Some(sctp) => Some(json_value(sctp)?),
                None => None,
            },
        })
    }

    /// Where one of `peer`'s transports is, if it has it (`want`: of that direction).
    pub(crate) fn own_transport(
        &self,
        peer: PeerId,
        transport: &str,
        want: Option<Direction>,
    ) -> Result<(Target, TransportId), ClientError> {
        let transport: TransportId = parse_id("transport", transport)?;
        let (target, p) = self.peer(peer)?;
        own_transport(p, transport, want)?;
        let router = p.router_of(transport);
        if router == target.router {
            return Ok((target, transport));
        }
        // Left on the router the peer moved from.
        let (_, room) = self.room_of_peer(peer)?;
        let node = room.routers.get(&router).ok_or_else(not_joined)?.node;
        Ok((Target { node, router }, transport))
    }

    /// The call giving one of `peer`'s transports the client's DTLS parameters.
    pub(crate) fn begin_connect_transport(
        &self,
        peer: PeerId,
        transport: &str,
        dtls_parameters: Map<String, Value>,
    ) -> Result<(Target, call::ConnectWebRtcTransport), ClientError> {
        let (target, transport) = self.own_transport(peer, transport, None)?;
        let call = call::ConnectWebRtcTransport {
            router: target.router,
            transport,
            dtls_parameters: Json(Value::Object(dtls_parameters).to_string()),
        };
        Ok((target, call))
    }

    /// The node's new ICE parameters, as the client takes them.
    pub(crate) fn handle_ice_restarted(
        answer: call::IceRestarted,
    ) -> Result<IceRestarted, ClientError> {
        Ok(IceRestarted {
            ice_parameters: json_value(&answer.ice_parameters)?,
        })
    }

    /// `peer` closes one of its transports: it is forgotten at once, with the producers and
    /// consumers it carried.
    pub(crate) fn close_transport(
        &mut self,
        peer: PeerId,
        transport: &str,
    ) -> Result<(Target, call::CloseTransport), ClientError> {
        let (target, transport) = self.own_transport(peer, transport, None)?;
        let (_, room_id, p) = self.peer_mut(peer)?;
        p.transports.remove(&transport);
        p.moved_from.remove(&transport);
        let closed: Vec<(ProducerId, ProducerEntry)> = p
            .producers
            .iter()
            .filter(|(_, e)| e.transport == transport)
            .map(|(id, e)| (*id, e.clone()))
            .collect();
        for (id, _) in &closed {
            p.producers.remove(id);
        }
        p.consumers.retain(|_, e| e.transport != transport);
        p.data_consumers.retain(|_, e| e.transport != transport);
        let data_closed: HashMap<_, _> = p
            .data_producers
            .iter()
            .filter(|(_, e)| e.transport == transport)
            .map(|(id, e)| (*id, e.clone()))
            .collect();
        p.data_producers.retain(|_, e| e.transport != transport);
        for (producer, entry) in closed {
            self.producer_gone(&room_id, peer, producer, &entry.copies);
        }
        self.data_producers_gone(&room_id, peer, &data_closed);
        let router = target.router;
        Ok((target, call::CloseTransport { router, transport }))
    }

    /// The produce call for `peer`, if it may produce on that transport.
    pub(crate) fn begin_produce(
        &self,
        peer: PeerId,
        args: ProduceArgs,
    ) -> Result<PendingProduce, ClientError> {
        let (target, transport) =
            self.own_transport(peer, &args.transport_id, Some(Direction::Send))?;
        may_publish(self.peer(peer)?.1)?;
        let max = self.limits.max_producers_per_peer;
        if self.peer(peer)?.1.producers_here() >= max {
            return Err(ClientError::new(
                ClientErrorCode::TooManyProducers,
                format!("a peer may have at most {max} producers"),
            ));
        }
        let sent = codec_names(&Value::Object(args.rtp_parameters.clone()));
        let codec = sent
            .codecs
            .first()
            .map(|c| c.mime_type.clone())
            .unwrap_or_default();
        let (_, room) = self.room_of_peer(peer)?;
        check_codecs(args.kind, &sent, &room.rtp_capabilities)?;
        let app_data = bounded_app_data(args.app_data)?;
        let call = call::Produce {
            router: target.router,
            transport,
            kind: media_kind(args.kind),
            rtp_parameters: Json(Value::Object(args.rtp_parameters).to_string()),
        };
        let entry = ProducerEntry {
            kind: args.kind,
            transport,
            codec,
            app_data,
            copies: BTreeMap::new(),
        };
        Ok(PendingProduce {
            target,
            call,
            entry,
        })
    }

    /// The node created `peer`'s producer: the peers of its router are told now, and it is
    /// piped to the room's other routers, whose peers are told once it is there.
    pub(crate) fn handle_produced(
        &mut self,
        peer: PeerId,
        pending: PendingProduce,
        answer: call::Produced,
    ) -> Result<Produced, ClientError> {
        let producer = answer.producer;
        let at = pending.target;
        let Some((room_id, p)) = self.peer_still_at(peer, &at) else {
            let close = call::CloseProducer {
                router: at.router,
                producer,
            };
            self.cleanup_if_router(&at, Cleanup::CloseProducer(close));
            return Err(not_joined());
        };
        let kind = pending.entry.kind;
        let app_data = pending.entry.app_data.clone();
        p.producers.insert(producer, pending.entry);
        // A new video changes who is forwarded; a new audio may belong to a speaker.
        self.last_n_dirty.insert(room_id.clone());
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return Err(not_joined());
        };
        let mates: Vec<PeerId> = Self::peers_on(room, at.router)
            .into_iter()
            .filter(|id| *id != peer)
            .collect();
        let elsewhere: Vec<Target> = room
            .routers
            .iter()
            .filter(|(id, r)| **id != at.router && r.ready)
            .map(|(id, r)| Target {
                node: r.node,
                router: *id,
            })
            .collect();
        if let Some(entry) = room
            .peers
            .get_mut(&peer)
            .and_then(|p| p.producers.get_mut(&producer))
        {
            for to in &elsewhere {
                entry.copies.insert(to.router, false);
            }
        }
        self.monitor(EventKind::ProducerAdded {
            room: room_id.0.clone(),
            peer_id: peer.to_string(),
            producer_id: producer.to_string(),
            kind: media_kind(kind).as_str().into(),
        });
        // Its peer is known before its producer is.
        self.announce_room(&room_id);
        self.notify(
            mates,
            Notification::NewProducer {
                peer_id: peer,
                producer_id: producer,
                kind,
                app_data,
            },
        );
        for to in elsewhere {
            self.order_pipe(&room_id, Relayed::Media(producer), at.router, to);
        }
        Ok(Produced {
            producer_id: producer,
        })
    }

    /// The consume call for `peer`, if the producer is another peer's in its room.
    pub(crate) fn begin_consume(
        &self,
        peer: PeerId,
        args: ConsumeArgs,
    ) -> Result<PendingConsume, ClientError> {
        let (target, transport) =
            self.own_transport(peer, &args.transport_id, Some(Direction::Recv))?;
        let producer: ProducerId = parse_id("producer", &args.producer_id)?;
        let me = self.peer(peer)?.1;
        may_subscribe(me)?;
        // Once; a peer moving in a drain consumes it again on its new transport.
        let left = |t: &TransportId| me.moved_from.contains_key(t);
        let twice = |c: &ConsumerEntry| c.producer == producer && !left(&c.transport);
        if let Some((consumer, _)) = me.consumers.iter().find(|(_, c)| twice(c)) {
            return Err(ClientError::new(
                ClientErrorCode::AlreadyConsuming,
                format!(
                    "producer {producer} is consumed by this peer already (consumer {consumer})"
                ),
            ));
        }
        // A duplicate says so before the cap does: it is the more precise answer.
        may_consume_more(me, self.limits.max_consumers_per_peer)?;
        let (_, room) = self.room_of_peer(peer)?;
        // Its owner, if it can be consumed on this peer's router (it is there, or piped
        // there already; a producer still being piped is announced once it arrives).
        let owner = room
            .peers
            .iter()
            .find(|(_, p)| {
                (p.producers.get(&producer))
                    .is_some_and(|e| p.offers_on(e.transport, &e.copies, target.router))
            })
            .map(|(id, _)| *id);
        match owner {
            None => return Err(not_found("producer", producer)),
            Some(owner) if owner == peer => {
                return Err(ClientError::new(
                    ClientErrorCode::InvalidArgument,
                    "a peer does not consume its own producer",
                ))
            }
            Some(_) => {}
        }
        let call = call::Consume {
            router: target.router,
            transport,
            producer,
            rtp_capabilities: Json(Value::Object(args.rtp_capabilities).to_string()),
        };
        Ok(PendingConsume { target, call })
    }

    /// The node created `peer`'s consumer (paused).
    pub(crate) fn handle_consumed(
        &mut self,
        peer: PeerId,
        pending: PendingConsume,
        answer: call::Consumed,
    ) -> Result<Consumed, ClientError> {
        let consumer = answer.consumer;
        let at = &pending.target;
        let producer = pending.call.producer;
        // The producer may have closed while the node created the consumer: then the node
        // closes the consumer on its own, and so does the directory.
        let producer_alive = self.room_of_peer(peer).is_ok_and(|(_, r)| {
            r.peers
                .values()
                .any(|p| p.producers.contains_key(&producer))
        });
        let app_data = self.room_of_peer(peer).ok().and_then(|(_, r)| {
            r.peers
                .values()
                .find_map(|p| p.producers.get(&producer))
                .and_then(|e| e.app_data.clone())
        });
        if self.peer_still_at(peer, at).is_none() {
            let close = call::CloseConsumer {
                router: at.router,
                consumer,
            };
            self.cleanup_if_router(at, Cleanup::CloseConsumer(close));
            return Err(not_joined());
        }
        if !producer_alive {
            return Err(not_found("producer", producer));
        }
        let mut entry = ConsumerEntry {
            producer,
            transport: pending.call.transport,
            kind: answer.kind,
            client_paused: true,
            held: false,
        };
        let owner = self.room_of_peer(peer).ok().and_then(|(_, r)| {
            (r.peers.iter())
                .find(|(_, p)| p.producers.contains_key(&producer))
                .map(|(id, _)| *id)
        });
        if let (Some(owner), Some(room)) = (owner, self.peer_room.get(&peer)) {
            entry.held = self.held_at_creation(room, peer, owner, answer.kind);
        }
        let Some((room_id, p)) = self.peer_still_at(peer, at) else {
            return Err(not_joined());
        };
        p.consumers.insert(consumer, entry);
        if let Some(room) = self.rooms.get_mut(&room_id) {
            room.consumer_owners.insert(consumer, peer);
        }
        Ok(Consumed {
            consumer_id: consumer,
            producer_id: producer,
            kind: match answer.kind {
                MediaKind::Audio => Kind::Audio,
                MediaKind::Video => Kind::Video,
            },
            rtp_parameters: json_value(&answer.rtp_parameters)?,
            consumer_type: answer.consumer_type,
            producer_paused: answer.producer_paused,
            app_data,
        })
    }

    /// Where a pause, resume or close of one of `peer`'s producers goes; a close forgets it
    /// at once and closes its consumers.
    pub(crate) fn producer_request(
        &mut self,
        peer: PeerId,
        producer: &str,
        action: ProducerAction,
    ) -> Result<(Target, ProducerId), ClientError> {
        let producer: ProducerId = parse_id("producer", producer)?;
        let (target, room_id, p) = self.peer_mut(peer)?;
        if !p.producers.contains_key(&producer) {
            return Err(not_found("producer", producer));
        }
        if action == ProducerAction::Close {
            if let Some(entry) = p.producers.remove(&producer) {
                // Its copies are closed by `producer_gone`.
                self.producer_gone(&room_id, peer, producer, &entry.copies);
            }
        }
        Ok((target, producer))
    }

    /// Where a request on one of `peer`'s consumers goes; a close forgets it at once.
    pub(crate) fn consumer_request(
        &mut self,
        peer: PeerId,
        consumer: &str,
        action: ConsumerAction,
    ) -> Result<(Target, ConsumerId), ClientError> {
        let consumer: ConsumerId = parse_id("consumer", consumer)?;
        let (target, _, p) = self.peer_mut(peer)?;
        if !p.consumers.contains_key(&consumer) {
            return Err(not_found("consumer", consumer));
        }
        if action == ConsumerAction::Close {
            p.consumers.remove(&consumer);
        }
        Ok((target, consumer))
    }
}

/// The codecs of a mediasoup payload by name; none when it has no readable list (mediasoup
/// refuses such parameters itself).
fn codec_names(payload: &Value) -> CodecNames {
    CodecNames::deserialize(payload).unwrap_or_default()
}

/// A producer's media codecs (not RTX) must include one the router offers for its kind, or
/// mediasoup refuses it with a message that does not say what would do: say it here.
fn check_codecs(
    kind: Kind,
    sent: &CodecNames,
    router_capabilities: &Value,
) -> Result<(), ClientError> {
    let kind = match kind {
        Kind::Audio => "audio",
        Kind::Video => "video",
    };
    let router = codec_names(router_capabilities);
    let offered: Vec<&str> = router
        .codecs
        .iter()
        .filter(|c| c.kind.as_deref() == Some(kind) && c.is_media())
        .map(|c| c.mime_type.as_str())
        .collect();
    let sent: Vec<&str> = sent
        .codecs
        .iter()
        .filter(|c| c.is_media())
        .map(|c| c.mime_type.as_str())
        .collect();
    if sent
        .iter()
        .any(|s| offered.iter().any(|o| o.eq_ignore_ascii_case(s)))
    {
        return Ok(());
    }
    Err(ClientError::new(
        ClientErrorCode::MediaError,
        format!(
            "none of this {kind} producer's codecs ({}) is one the router takes: {}",
            if sent.is_empty() {
                "none given".to_string()
            } else {
                sent.join(", ")
            },
            offered.join(", ")
        ),
    ))
}

fn media_kind(kind: Kind) -> MediaKind {
    match kind {
        Kind::Audio => MediaKind::Audio,
        Kind::Video => MediaKind::Video,
    }
}
