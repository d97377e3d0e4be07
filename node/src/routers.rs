//! The routers of this node (one per room it hosts; the supervisor's `rooms` decides which)
//! and the mediasoup objects in them: turns each ipc [`Request`] into mediasoup calls and
//! reports what mediasoup does on its own as [`NodeEvent`]s.
//!
//! Objects live in maps; removing one from its map drops it, and dropping a mediasoup
//! object closes it. Nothing here holds the lock across an `.await`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use event_listener_primitives::HandlerId;
use ipc::calls as call;
use ipc::messages::{
    ConsumerId, ConsumerStats, Json, LoadReport, MediaKind, NodeError, NodeErrorCode, NodeEvent,
    ProducerId, ProducerStats, Request, Response, RoomId, RoomStats, StatsReport, TransportId,
    WorkerLoad,
};
use mediasoup::consumer::ConsumerRtpStreamStat;
use mediasoup::prelude::*;
use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::mpsc;

use crate::media_config::{router_codecs, MediaListen};
use crate::workers::WorkerSlot;

/// Every router of the node, by the room it serves.
pub struct Routers {
    state: Mutex<HashMap<RoomId, Room>>,
    workers: Vec<WorkerSlot>,
    listen: MediaListen,
    events: mpsc::UnboundedSender<NodeEvent>,
}

struct Room {
    worker: u32,
    router: Router,
    speaker: ActiveSpeakerObserver,
    _speaker_handler: HandlerId,
    transports: HashMap<TransportId, WebRtcTransport>,
    producers: HashMap<ProducerId, Entry<Producer>>,
    consumers: HashMap<ConsumerId, Entry<Consumer>>,
}

/// A producer or consumer, the transport it is on, and its event subscriptions (dropping a
/// `HandlerId` unsubscribes).
struct Entry<T> {
    object: T,
    transport: TransportId,
    _handlers: Vec<HandlerId>,
}

type Answer = Result<Response, NodeError>;

fn not_found(what: &str, id: impl std::fmt::Display) -> NodeError {
    NodeError::new(NodeErrorCode::NotFound, format!("no {what} {id}"))
}

fn media_error(what: &str, error: impl std::fmt::Display) -> NodeError {
    NodeError::new(NodeErrorCode::Media, format!("{what}: {error}"))
}

fn parse<T: DeserializeOwned>(what: &str, json: &Json) -> Result<T, NodeError> {
    serde_json::from_str(&json.0).map_err(|e| {
        NodeError::new(
            NodeErrorCode::InvalidArgument,
            format!("invalid {what}: {e}"),
        )
    })
}

fn to_json<T: Serialize>(value: &T) -> Result<Json, NodeError> {
    serde_json::to_string(value)
        .map(Json)
        .map_err(|e| NodeError::new(NodeErrorCode::Internal, format!("cannot serialise: {e}")))
}

fn ipc_kind(kind: mediasoup::prelude::MediaKind) -> MediaKind {
    match kind {
        mediasoup::prelude::MediaKind::Audio => MediaKind::Audio,
        mediasoup::prelude::MediaKind::Video => MediaKind::Video,
    }
}

impl Routers {
    /// Routers hosted on `workers`, with transports listening as `listen` says; events go to
    /// `events`.
    pub fn new(
        workers: Vec<WorkerSlot>,
        listen: MediaListen,
        events: mpsc::UnboundedSender<NodeEvent>,
    ) -> Self {
        Self {
            state: Mutex::new(HashMap::new()),
            workers,
            listen,
            events,
        }
    }

    fn state(&self) -> MutexGuard<'_, HashMap<RoomId, Room>> {
        // The maps stay consistent even if a thread panicked while holding the lock.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn with_room<T>(
        &self,
        room: &RoomId,
        f: impl FnOnce(&mut Room) -> Result<T, NodeError>,
    ) -> Result<T, NodeError> {
        let mut state = self.state();
        let room_state = state.get_mut(room).ok_or_else(|| not_found("room", room))?;
        f(room_state)
    }

    /// Carries out one request.
    pub async fn handle(self: &Arc<Self>, request: Request) -> Answer {
        match request {
            Request::CreateRouter(call::CreateRouter { room, worker }) => {
                self.create_router(room, worker).await
            }
            Request::CloseRouter(call::CloseRouter { room }) => {
                // Dropping the room closes the router and everything on it.
                let removed = self.state().remove(&room);
                removed
                    .map(|_| Response::Done)
                    .ok_or_else(|| not_found("room", &room))
            }
            Request::CreateWebRtcTransport(call::CreateWebRtcTransport { room }) => {
                self.create_transport(room).await
            }
            Request::ConnectWebRtcTransport(call::ConnectWebRtcTransport {
                room,
                transport,
                dtls_parameters,
            }) => {
                let dtls_parameters: DtlsParameters = parse("DTLS parameters", &dtls_parameters)?;
                let t = self.transport(&room, transport)?;
                t.connect(WebRtcTransportRemoteParameters { dtls_parameters })
                    .await
                    .map_err(|e| media_error("connect", e))?;
                Ok(Response::Done)
            }
            Request::RestartIce(call::RestartIce { room, transport }) => {
                let t = self.transport(&room, transport)?;
                let ice = t
                    .restart_ice()
                    .await
                    .map_err(|e| media_error("restart ICE", e))?;
                Ok(Response::IceRestarted(call::IceRestarted {
                    ice_parameters: to_json(&ice)?,
                }))
            }
            Request::CloseTransport(call::CloseTransport { room, transport }) => {
                self.with_room(&room, |r| {
                    let closed = r
                        .transports
                        .remove(&transport)
                        .ok_or_else(|| not_found("transport", transport))?;
                    // Dropping closes it, and with it its producers and consumers in the worker.
                    drop(closed);
                    r.producers.retain(|_, e| e.transport != transport);
                    r.consumers.retain(|_, e| e.transport != transport);
                    Ok(Response::Done)
                })
            }
            Request::Produce(call::Produce {
                room,
                transport,
                kind,
                rtp_parameters,
            }) => self.produce(room, transport, kind, rtp_parameters).await,
            Request::Consume(call::Consume {
                room,
                transport,
                producer,
                rtp_capabilities,
            }) => {
                self.consume(room, transport, producer, rtp_capabilities)
                    .await
            }
            Request::PauseProducer(call::PauseProducer { room, producer }) => {
                let p = self.producer(&room, producer)?;
                p.pause()
                    .await
                    .map_err(|e| media_error("pause producer", e))?;
                Ok(Response::Done)
            }
            Request::ResumeProducer(call::ResumeProducer { room, producer }) => {
                let p = self.producer(&room, producer)?;
                p.resume()
                    .await
                    .map_err(|e| media_error("resume producer", e))?;
                Ok(Response::Done)
            }
            Request::CloseProducer(call::CloseProducer { room, producer }) => {
                self.with_room(&room, |r| {
                    r.producers
                        .remove(&producer)
                        .map(|_| Response::Done)
                        .ok_or_else(|| not_found("producer", producer))
                })
            }
            Request::PauseConsumer(call::PauseConsumer { room, consumer }) => {
                let c = self.consumer(&room, consumer)?;
                c.pause()
                    .await
                    .map_err(|e| media_error("pause consumer", e))?;
                Ok(Response::Done)
            }
            Request::ResumeConsumer(call::ResumeConsumer { room, consumer }) => {
                let c = self.consumer(&room, consumer)?;
                c.resume()
                    .await
                    .map_err(|e| media_error("resume consumer", e))?;
                Ok(Response::Done)
            }
            Request::CloseConsumer(call::CloseConsumer { room, consumer }) => {
                self.with_room(&room, |r| {
                    r.consumers
                        .remove(&consumer)
                        .map(|_| Response::Done)
                        .ok_or_else(|| not_found("consumer", consumer))
                })
            }
            Request::SetConsumerPreferredLayers(call::SetConsumerPreferredLayers {
                room,
                consumer,
                spatial_layer,
                temporal_layer,
            }) => {
                let c = self.consumer(&room, consumer)?;
                c.set_preferred_layers(ConsumerLayers {
                    spatial_layer,
                    temporal_layer,
                })
                .await
                .map_err(|e| media_error("set preferred layers", e))?;
                Ok(Response::Done)
            }
        }
    }

    fn transport(&self, room: &RoomId, id: TransportId) -> Result<WebRtcTransport, NodeError> {
        self.with_room(room, |r| {
            r.transports
                .get(&id)
                .cloned()
                .ok_or_else(|| not_found("transport", id))
        })
    }

    fn producer(&self, room: &RoomId, id: ProducerId) -> Result<Producer, NodeError> {
        self.with_room(room, |r| {
            r.producers
                .get(&id)
                .map(|e| e.object.clone())
                .ok_or_else(|| not_found("producer", id))
        })
    }

    fn consumer(&self, room: &RoomId, id: ConsumerId) -> Result<Consumer, NodeError> {
        self.with_room(room, |r| {
            r.consumers
                .get(&id)
                .map(|e| e.object.clone())
                .ok_or_else(|| not_found("consumer", id))
        })
    }

    async fn create_router(&self, room: RoomId, worker: u32) -> Answer {
        if let Some(existing) = self.state().get(&room) {
            // Idempotent: a retried request must not create a second router.
            return Ok(Response::RouterCreated(call::RouterCreated {
                rtp_capabilities: to_json(&existing.router.rtp_capabilities())?,
            }));
        }
        let slot = self.workers.get(worker as usize).ok_or_else(|| {
            NodeError::new(
                NodeErrorCode::InvalidArgument,
                format!("no worker {worker}: this node runs {}", self.workers.len()),
            )
        })?;
        let router = slot
            .worker
            .create_router(RouterOptions::new(router_codecs()))
            .await
            .map_err(|e| media_error("create router", e))?;
        let speaker = router
            .create_active_speaker_observer(ActiveSpeakerObserverOptions::default())
            .await
            .map_err(|e| media_error("create active speaker observer", e))?;
        let speaker_handler = speaker.on_dominant_speaker({
            let events = self.events.clone();
            let room = room.clone();
            move |speaker| {
                let _ = events.send(NodeEvent::ActiveSpeaker {
                    room: room.clone(),
                    producer: ProducerId(speaker.producer.id().into()),
                });
            }
        });
        let rtp_capabilities = to_json(&router.rtp_capabilities())?;
        let mut state = self.state();
        // Another request may have created it meanwhile: keep the first, drop ours.
        state.entry(room).or_insert(Room {
            worker,
            router,
            speaker,
            _speaker_handler: speaker_handler,
            transports: HashMap::new(),
            producers: HashMap::new(),
            consumers: HashMap::new(),
        });
        Ok(Response::RouterCreated(call::RouterCreated {
            rtp_capabilities,
        }))
    }

    async fn create_transport(&self, room: RoomId) -> Answer {
        let router = self.with_room(&room, |r| Ok(r.router.clone()))?;
        let transport = router
            .create_webrtc_transport(self.listen.webrtc_transport_options())
            .await
            .map_err(|e| media_error("create WebRTC transport", e))?;
        let id = TransportId(transport.id().into());
        let answer = Response::TransportCreated(call::TransportCreated {
            transport: id,
            ice_parameters: to_json(transport.ice_parameters())?,
            ice_candidates: to_json(transport.ice_candidates())?,
            dtls_parameters: to_json(&transport.dtls_parameters())?,
        });
        self.with_room(&room, |r| {
            r.transports.insert(id, transport);
            Ok(answer)
        })
    }

    async fn produce(
        &self,
        room: RoomId,
        transport_id: TransportId,
        kind: MediaKind,
        rtp_parameters: Json,
    ) -> Answer {
        let rtp_parameters: RtpParameters = parse("RTP parameters", &rtp_parameters)?;
        let transport = self.transport(&room, transport_id)?;
        let media_kind = match kind {
            MediaKind::Audio => mediasoup::prelude::MediaKind::Audio,
            MediaKind::Video => mediasoup::prelude::MediaKind::Video,
        };
        let producer = transport
            .produce(ProducerOptions::new(media_kind, rtp_parameters))
            .await
            .map_err(|e| media_error("produce", e))?;
        let id = ProducerId(producer.id().into());
        let handlers = vec![producer.on_score({
            let events = self.events.clone();
            let room = room.clone();
            move |scores| {
                if let Ok(score) = to_json(&scores) {
                    let _ = events.send(NodeEvent::ProducerScore {
                        room: room.clone(),
                        producer: id,
                        score,
                    });
                }
            }
        })];
        let speaker = self.with_room(&room, |r| Ok(r.speaker.clone()))?;
        if kind == MediaKind::Audio {
            // Best effort: a room without speaker detection still forwards media.
            if let Err(e) = speaker
                .add_producer(RtpObserverAddProducerOptions::new(producer.id()))
                .await
            {
                tracing::warn!(%room, producer = %id, "active speaker observer refused producer: {e}");
            }
        }
        self.with_room(&room, |r| {
            if !r.transports.contains_key(&transport_id) {
                // The transport was closed while the producer was being created.
                return Err(not_found("transport", transport_id));
            }
            r.producers.insert(
                id,
                Entry {
                    object: producer,
                    transport: transport_id,
                    _handlers: handlers,
                },
            );
            Ok(Response::Produced(call::Produced { producer: id }))
        })
    }

    async fn consume(
        &self,
        room: RoomId,
        transport_id: TransportId,
        producer_id: ProducerId,
        rtp_capabilities: Json,
    ) -> Answer {
        let rtp_capabilities: RtpCapabilities = parse("RTP capabilities", &rtp_capabilities)?;
        let transport = self.transport(&room, transport_id)?;
        let (router, producer) = self.with_room(&room, |r| {
            let producer = r
                .producers
                .get(&producer_id)
                .map(|e| e.object.clone())
                .ok_or_else(|| not_found("producer", producer_id))?;
            Ok((r.router.clone(), producer))
        })?;
        if !router.can_consume(&producer.id(), &rtp_capabilities) {
            return Err(NodeError::new(
                NodeErrorCode::InvalidArgument,
                format!("the device cannot receive producer {producer_id}: no common codec"),
            ));
        }
        let mut options = ConsumerOptions::new(producer.id(), rtp_capabilities);
        // Paused until the client has set up its side and resumes it, so that no key frame is
        // lost before the client can decode.
        options.paused = true;
        let consumer = transport
            .consume(options)
            .await
            .map_err(|e| media_error("consume", e))?;
        let id = ConsumerId(consumer.id().into());
        let handlers = self.subscribe_consumer(&room, &consumer, id, producer_id);
        let answer = Response::Consumed(call::Consumed {
            consumer: id,
            kind: ipc_kind(consumer.kind()),
            rtp_parameters: to_json(consumer.rtp_parameters())?,
            consumer_type: to_json(&consumer.r#type())?.0.trim_matches('"').to_string(),
            producer_paused: consumer.producer_paused(),
        });
        self.with_room(&room, |r| {
            if !r.transports.contains_key(&transport_id) || !r.producers.contains_key(&producer_id)
            {
                return Err(not_found("transport or producer", transport_id));
            }
            r.consumers.insert(
                id,
                Entry {
                    object: consumer,
                    transport: transport_id,
                    _handlers: handlers,
                },
            );
            Ok(answer)
        })
    }

    fn subscribe_consumer(
        &self,
        room: &RoomId,
        consumer: &Consumer,
        id: ConsumerId,
        producer: ProducerId,
    ) -> Vec<HandlerId> {
        let send = {
            let events = self.events.clone();
            move |event: NodeEvent| {
                let _ = events.send(event);
            }
        };
        vec![
            consumer.on_producer_close({
                let (send, room) = (send.clone(), room.clone());
                move || {
                    send(NodeEvent::ConsumerClosed {
                        room,
                        consumer: id,
                        producer,
                    })
                }
            }),
            consumer.on_producer_pause({
                let (send, room) = (send.clone(), room.clone());
                move || {
                    send(NodeEvent::ConsumerPaused {
                        room: room.clone(),
                        consumer: id,
                    })
                }
            }),
            consumer.on_producer_resume({
                let (send, room) = (send.clone(), room.clone());
                move || {
                    send(NodeEvent::ConsumerResumed {
                        room: room.clone(),
                        consumer: id,
                    })
                }
            }),
            consumer.on_score({
                let (send, room) = (send.clone(), room.clone());
                move |score| {
                    if let Ok(score) = to_json(score) {
                        send(NodeEvent::ConsumerScore {
                            room: room.clone(),
                            consumer: id,
                            score,
                        })
                    }
                }
            }),
            consumer.on_layers_change({
                let room = room.clone();
                move |layers| {
                    send(NodeEvent::ConsumerLayersChanged {
                        room: room.clone(),
                        consumer: id,
                        spatial_layer: layers.as_ref().map(|l| l.spatial_layer),
                        temporal_layer: layers.as_ref().and_then(|l| l.temporal_layer),
                    })
                }
            }),
        ]
    }

    /// Forgets a consumer mediasoup has closed on its own (its producer went away).
    pub fn forget_consumer(&self, room: &RoomId, consumer: ConsumerId) {
        if let Some(r) = self.state().get_mut(room) {
            r.consumers.remove(&consumer);
        }
    }

    /// Counts of every worker, and their CPU time.
    pub fn load(&self) -> LoadReport {
        let mut workers: Vec<WorkerLoad> = self
            .workers
            .iter()
            .enumerate()
            .map(|(index, slot)| WorkerLoad {
                worker: index as u32,
                cpu_time_ms: slot.cpu_time_ms(),
                ..WorkerLoad::default()
            })
            .collect();
        for room in self.state().values() {
            if let Some(load) = workers.get_mut(room.worker as usize) {
                load.routers += 1;
                load.transports += room.transports.len() as u32;
                load.producers += room.producers.len() as u32;
                load.consumers += room.consumers.len() as u32;
            }
        }
        LoadReport { workers }
    }

    /// Scores, pause states and bitrates of every producer and consumer. Objects closed
    /// while their stats are being read are left out.
    pub async fn stats(&self) -> StatsReport {
        // Clones of the handles, so that no lock is held while the workers answer.
        type Handles = (
            RoomId,
            Vec<(ProducerId, Producer)>,
            Vec<(ConsumerId, Consumer)>,
        );
        let rooms: Vec<Handles> = self
            .state()
            .iter()
            .map(|(id, r)| {
                let producers = r.producers.iter().map(|(id, e)| (*id, e.object.clone()));
                let consumers = r.consumers.iter().map(|(id, e)| (*id, e.object.clone()));
                (id.clone(), producers.collect(), consumers.collect())
            })
            .collect();
        let mut report = StatsReport::default();
        for (room, producers, consumers) in rooms {
            let mut stats = RoomStats {
                room,
                producers: Vec::with_capacity(producers.len()),
                consumers: Vec::with_capacity(consumers.len()),
            };
            for (id, producer) in producers {
                let Ok(streams) = producer.get_stats().await else {
                    continue;
                };
                stats.producers.push(ProducerStats {
                    producer: id,
                    paused: producer.paused(),
                    score: producer.score().iter().map(|s| s.score).max(),
                    bitrate_bps: streams.iter().map(|s| s.bitrate).sum(),
                });
            }
            for (id, consumer) in consumers {
                let Ok(streams) = consumer.get_stats().await else {
                    continue;
                };
                let score = consumer.score();
                stats.consumers.push(ConsumerStats {
                    consumer: id,
                    paused: consumer.paused(),
                    producer_paused: consumer.producer_paused(),
                    score: score.score,
                    producer_score: score.producer_score,
                    // The outbound streams: what this consumer sends to its client.
                    bitrate_bps: streams
                        .iter()
                        .map(|s| match s {
                            ConsumerRtpStreamStat::Outbound(s) => s.bitrate,
                            ConsumerRtpStreamStat::Inbound(_) => 0,
                        })
                        .sum(),
                });
            }
            report.rooms.push(stats);
        }
        report
    }

    /// Closes every room.
    pub fn close_all(&self) {
        self.state().clear();
    }

    /// The workers, to watch for their death.
    pub fn workers(&self) -> &[WorkerSlot] {
        &self.workers
    }
}
