//! A joined peer's media requests: transports, producers and consumers, each checked against
//! what the peer owns and forwarded to the room's node as a typed call.

use ipc::calls as call;
use ipc::messages::{ConsumerId, Json, MediaKind, ProducerId, RoomId, TransportId};
use monitor_api::EventKind;
use serde_json::{json, Value};

use super::{
    broadcast, json_value, link_error, not_found, not_joined, ConsumerAction, ConsumerEntry, Peer,
    PeerId, ProducerAction, ProducerEntry, Rooms,
};
use crate::notification::Notification;
use crate::protocol::{
    parse_id, ClientError, ConsumeArgs, Direction, ErrorCode, Kind, ProduceArgs,
};

impl Rooms {
    /// The router RTP capabilities of the peer's room.
    pub fn router_rtp_capabilities(&self, peer: PeerId) -> Result<Value, ClientError> {
        let directory = self.directory();
        let room_id = directory.peer_room.get(&peer).ok_or_else(not_joined)?;
        let room = directory.rooms.get(room_id).ok_or_else(not_joined)?;
        Ok(json!({"routerRtpCapabilities": room.rtp_capabilities}))
    }

    /// Creates a WebRTC transport for `peer`.
    pub async fn create_transport(
        &self,
        peer: PeerId,
        direction: Direction,
    ) -> Result<Value, ClientError> {
        let (room, link, ()) = self.with_peer(peer, |_| Ok(()))?;
        let call::TransportCreated {
            transport,
            ice_parameters,
            ice_candidates,
            dtls_parameters,
        } = link
            .call(call::CreateWebRtcTransport { room: room.clone() })
            .await
            .map_err(link_error)?;
        let answer = json!({
            "transportId": transport,
            "iceParameters": json_value(&ice_parameters)?,
            "iceCandidates": json_value(&ice_candidates)?,
            "dtlsParameters": json_value(&dtls_parameters)?,
        });
        let recorded = self.with_peer(peer, |p| {
            p.transports.insert(transport, direction);
            Ok(())
        });
        if recorded.is_err() {
            // The peer left meanwhile: do not leak the transport.
            let _ = link.call(call::CloseTransport { room, transport }).await;
            return Err(not_joined());
        }
        Ok(answer)
    }

    fn own_transport(
        p: &Peer,
        id: TransportId,
        want: Option<Direction>,
    ) -> Result<(), ClientError> {
        match p.transports.get(&id) {
            None => Err(not_found("transport", id)),
            Some(d) if want.is_some_and(|w| w != *d) => Err(ClientError::new(
                ErrorCode::InvalidArgument,
                format!("transport {id} is a {d:?} transport"),
            )),
            Some(_) => Ok(()),
        }
    }

    /// Gives the transport the client's DTLS parameters.
    pub async fn connect_transport(
        &self,
        peer: PeerId,
        transport: &str,
        dtls_parameters: serde_json::Map<String, Value>,
    ) -> Result<Value, ClientError> {
        let transport: TransportId = parse_id("transport", transport)?;
        let (room, link, ()) = self.with_peer(peer, |p| Self::own_transport(p, transport, None))?;
        let dtls_parameters = Json(Value::Object(dtls_parameters).to_string());
        link.call(call::ConnectWebRtcTransport {
            room,
            transport,
            dtls_parameters,
        })
        .await
        .map_err(link_error)?;
        Ok(json!({}))
    }

    /// New ICE credentials for a transport.
    pub async fn restart_ice(&self, peer: PeerId, transport: &str) -> Result<Value, ClientError> {
        let transport: TransportId = parse_id("transport", transport)?;
        let (room, link, ()) = self.with_peer(peer, |p| Self::own_transport(p, transport, None))?;
        let call::IceRestarted { ice_parameters } = link
            .call(call::RestartIce { room, transport })
            .await
            .map_err(link_error)?;
        Ok(json!({"iceParameters": json_value(&ice_parameters)?}))
    }

    /// Closes one of the peer's transports.
    pub async fn close_transport(
        &self,
        peer: PeerId,
        transport: &str,
    ) -> Result<Value, ClientError> {
        let transport: TransportId = parse_id("transport", transport)?;
        let (room, link, closed) = self.with_peer(peer, |p| {
            Self::own_transport(p, transport, None)?;
            p.transports.remove(&transport);
            let closed: Vec<ProducerId> = p
                .producers
                .iter()
                .filter(|(_, e)| e.transport == transport)
                .map(|(id, _)| *id)
                .collect();
            for id in &closed {
                p.producers.remove(id);
            }
            p.consumers.retain(|_, e| e.transport != transport);
            Ok(closed)
        })?;
        for producer in closed {
            self.producer_closed(&room, peer, producer);
        }
        link.call(call::CloseTransport { room, transport })
            .await
            .map_err(link_error)?;
        Ok(json!({}))
    }

    /// Creates a producer and tells the other peers.
    pub async fn produce(&self, peer: PeerId, args: ProduceArgs) -> Result<Value, ClientError> {
        let transport: TransportId = parse_id("transport", &args.transport_id)?;
        let max = self.limits.max_producers_per_peer;
        let (room, link, ()) = self.with_peer(peer, |p| {
            Self::own_transport(p, transport, Some(Direction::Send))?;
            if p.producers.len() >= max {
                return Err(ClientError::new(
                    ErrorCode::TooManyProducers,
                    format!("a peer may have at most {max} producers"),
                ));
            }
            Ok(())
        })?;
        let kind = match args.kind {
            Kind::Audio => MediaKind::Audio,
            Kind::Video => MediaKind::Video,
        };
        let codec = args
            .rtp_parameters
            .get("codecs")
            .and_then(|codecs| codecs.get(0)?.get("mimeType")?.as_str())
            .unwrap_or_default()
            .to_string();
        let rtp_parameters = Json(Value::Object(args.rtp_parameters).to_string());
        let call::Produced { producer } = link
            .call(call::Produce {
                room: room.clone(),
                transport,
                kind,
                rtp_parameters,
            })
            .await
            .map_err(link_error)?;
        let mut directory = self.directory();
        let Some(r) = directory.rooms.get_mut(&room) else {
            return Err(not_joined());
        };
        let Some(p) = r.peers.get_mut(&peer) else {
            return Err(not_joined());
        };
        p.producers.insert(
            producer,
            ProducerEntry {
                kind: args.kind,
                transport,
                codec,
            },
        );
        self.monitor.publish(EventKind::ProducerAdded {
            room: room.0.clone(),
            peer_id: peer.to_string(),
            producer_id: producer.to_string(),
            kind: kind.as_str().into(),
        });
        broadcast(
            r.peers
                .iter()
                .filter(|(id, _)| **id != peer)
                .map(|(_, p)| p),
            Notification::NewProducer {
                peer_id: peer,
                producer_id: producer,
                kind: args.kind,
            },
        );
        Ok(json!({"producerId": producer}))
    }

    /// Creates a paused consumer of another peer's producer.
    pub async fn consume(&self, peer: PeerId, args: ConsumeArgs) -> Result<Value, ClientError> {
        let transport: TransportId = parse_id("transport", &args.transport_id)?;
        let producer: ProducerId = parse_id("producer", &args.producer_id)?;
        let (room, link, ()) = self.with_peer(peer, |p| {
            Self::own_transport(p, transport, Some(Direction::Recv))
        })?;
        {
            let directory = self.directory();
            let owner = directory.rooms.get(&room).and_then(|r| {
                r.peers
                    .iter()
                    .find(|(_, p)| p.producers.contains_key(&producer))
                    .map(|(id, _)| *id)
            });
            match owner {
                None => return Err(not_found("producer", producer)),
                Some(owner) if owner == peer => {
                    return Err(ClientError::new(
                        ErrorCode::InvalidArgument,
                        "a peer does not consume its own producer",
                    ))
                }
                Some(_) => {}
            }
        }
        let rtp_capabilities = Json(Value::Object(args.rtp_capabilities).to_string());
        let call::Consumed {
            consumer,
            kind,
            rtp_parameters,
            consumer_type,
            producer_paused,
        } = link
            .call(call::Consume {
                room: room.clone(),
                transport,
                producer,
                rtp_capabilities,
            })
            .await
            .map_err(link_error)?;
        let answer = json!({
            "consumerId": consumer,
            "producerId": producer,
            "kind": kind.as_str(),
            "rtpParameters": json_value(&rtp_parameters)?,
            "type": consumer_type,
            "producerPaused": producer_paused,
        });
        let recorded = self.with_peer(peer, |p| {
            let entry = ConsumerEntry {
                producer,
                transport,
                kind,
            };
            p.consumers.insert(consumer, entry);
            Ok(())
        });
        if recorded.is_err() {
            let _ = link.call(call::CloseConsumer { room, consumer }).await;
            return Err(not_joined());
        }
        Ok(answer)
    }

    /// Pauses, resumes or closes one of the peer's producers.
    pub async fn producer_action(
        &self,
        peer: PeerId,
        producer: &str,
        action: ProducerAction,
    ) -> Result<Value, ClientError> {
        let producer: ProducerId = parse_id("producer", producer)?;
        let (room, link, ()) = self.with_peer(peer, |p| {
            if !p.producers.contains_key(&producer) {
                return Err(not_found("producer", producer));
            }
            if action == ProducerAction::Close {
                p.producers.remove(&producer);
            }
            Ok(())
        })?;
        if action == ProducerAction::Close {
            self.producer_closed(&room, peer, producer);
        }
        match action {
            ProducerAction::Pause => link.call(call::PauseProducer { room, producer }).await,
            ProducerAction::Resume => link.call(call::ResumeProducer { room, producer }).await,
            ProducerAction::Close => link.call(call::CloseProducer { room, producer }).await,
        }
        .map_err(link_error)?;
        Ok(json!({}))
    }

    /// Pauses, resumes or closes one of the peer's consumers, or sets its preferred layers.
    pub async fn consumer_action(
        &self,
        peer: PeerId,
        consumer: &str,
        action: ConsumerAction,
    ) -> Result<Value, ClientError> {
        let consumer: ConsumerId = parse_id("consumer", consumer)?;
        let (room, link, ()) = self.with_peer(peer, |p| {
            if !p.consumers.contains_key(&consumer) {
                return Err(not_found("consumer", consumer));
            }
            if action == ConsumerAction::Close {
                p.consumers.remove(&consumer);
            }
            Ok(())
        })?;
        match action {
            ConsumerAction::Pause => link.call(call::PauseConsumer { room, consumer }).await,
            ConsumerAction::Resume => link.call(call::ResumeConsumer { room, consumer }).await,
            ConsumerAction::Close => link.call(call::CloseConsumer { room, consumer }).await,
            ConsumerAction::PreferredLayers { spatial, temporal } => {
                link.call(call::SetConsumerPreferredLayers {
                    room,
                    consumer,
                    spatial_layer: spatial,
                    temporal_layer: temporal,
                })
                .await
            }
        }
        .map_err(link_error)?;
        Ok(json!({}))
    }

    fn producer_closed(&self, room: &RoomId, peer: PeerId, producer: ProducerId) {
        self.monitor.publish(EventKind::ProducerClosed {
            room: room.0.clone(),
            peer_id: peer.to_string(),
            producer_id: producer.to_string(),
        });
    }
}
