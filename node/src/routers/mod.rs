//! The routers of this node (a room has one router on each worker it spans; the supervisor
//! decides which) and the mediasoup objects in them: turns each ipc [`Request`] into mediasoup
//! calls and reports what mediasoup does on its own as [`NodeEvent`]s. Client media is in
//! `media`, their data channels in `data`, pipes between routers in `pipes`, load and
//! statistics in `reports`.
//!
//! Objects live in maps; removing one from its map drops it, and dropping a mediasoup
//! object closes it. Nothing here holds the lock across an `.await`.

mod data;
mod media;
mod pipes;
mod recording;
mod reports;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use event_listener_primitives::HandlerId;
use ipc::calls as call;
use ipc::messages::{
    ConsumerId, DataConsumerId, DataProducerId, Json, MediaKind, NodeError, NodeErrorCode,
    NodeEvent, ProducerId, Request, Response, RouterId, TransportId,
};
use mediasoup::prelude::*;
use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::mpsc;

use crate::media_config::{router_codecs, DataLimits, MediaListen};
use crate::workers::WorkerSlot;

/// A video producer asks its publisher for a key frame at most once per this many ms: the
/// first request goes at once, those that follow within the window become one at its end.
/// Without it every viewer that joins makes the publisher send a key frame (a webinar of
/// 1,000 joining at 50 a second: ~35 a second, each fanned out to everyone), and browsers drop
/// requests that come sooner than 300 ms after their last key frame anyway.
pub(crate) const KEY_FRAME_REQUEST_DELAY_MS: u32 = 100;

/// Every router of the node, by the id the supervisor gave it.
pub struct Routers {
    state: Mutex<HashMap<RouterId, Hosted>>,
    workers: Vec<WorkerSlot>,
    listen: MediaListen,
    data: DataLimits,
    pipe_ip: std::net::IpAddr,
    events: mpsc::UnboundedSender<NodeEvent>,
}

/// One router and what is in it.
struct Hosted {
    worker: u32,
    router: Router,
    speaker: ActiveSpeakerObserver,
    _speaker_handler: HandlerId,
    transports: HashMap<TransportId, WebRtcTransport>,
    /// Each client transport's state subscriptions (dropped with it).
    transport_handlers: HashMap<TransportId, Vec<HandlerId>>,
    /// Pipe transports to routers of the same room on other nodes.
    pipe_transports: HashMap<TransportId, PipeTransport>,
    /// Recording taps, by their plain transport.
    taps: HashMap<TransportId, recording::Tap>,
    /// Clients' producers, and producers piped in from the room's other routers (same id as
    /// the original; `transport` is the pipe transport, or [`LOCAL_PIPE`]).
    producers: HashMap<ProducerId, Entry<Producer>>,
    /// Clients' consumers.
    consumers: HashMap<ConsumerId, Entry<Consumer>>,
    /// Consumers sending this router's producers through pipe transports to other nodes.
    pipe_consumers: HashMap<ConsumerId, Entry<Consumer>>,
    /// Carries the taps that count each client data producer's messages.
    direct: DirectTransport,
    /// Clients' data producers, and those piped in (same id as the original).
    data_producers: HashMap<DataProducerId, Entry<data::Forwarded>>,
    /// Clients' data consumers.
    data_consumers: HashMap<DataConsumerId, Entry<DataConsumer>>,
    /// Data consumers sending this router's data producers through pipe transports.
    pipe_data_consumers: HashMap<DataConsumerId, Entry<DataConsumer>>,
}

/// The "transport" of a producer piped in from a router of this node: mediasoup owns that
/// pipe transport pair.
const LOCAL_PIPE: TransportId = TransportId(uuid::Uuid::nil());

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
    /// Routers hosted on `workers`, with WebRTC transports listening as `listen` says, data
    /// channels held to `data`, and pipe transports on `pipe_ip`; events go to `events`.
    pub fn new(
        workers: Vec<WorkerSlot>,
        listen: MediaListen,
        data: DataLimits,
        pipe_ip: std::net::IpAddr,
        events: mpsc::UnboundedSender<NodeEvent>,
    ) -> Self {
        Self {
            state: Mutex::new(HashMap::new()),
            workers,
            listen,
            data,
            pipe_ip,
            events,
        }
    }

    fn state(&self) -> MutexGuard<'_, HashMap<RouterId, Hosted>> {
        // The maps stay consistent even if a thread panicked while holding the lock.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn with_router<T>(
        &self,
        router: RouterId,
        f: impl FnOnce(&mut Hosted) -> Result<T, NodeError>,
    ) -> Result<T, NodeError> {
        let mut state = self.state();
        let hosted = state
            .get_mut(&router)
            .ok_or_else(|| not_found("router", router))?;
        f(hosted)
    }

    /// Carries out one request.
    pub async fn handle(self: &Arc<Self>, request: Request) -> Answer {
        match request {
            Request::GetMediaStats(call::GetMediaStats { router }) => {
                let stats = self.media_stats(router).await?;
                Ok(call::MediaStats { stats }.into())
            }
            Request::Diagnose(diagnose) => {
                let diagnostics = self.diagnose(diagnose).await?;
                Ok(call::Diagnosed { diagnostics }.into())
            }
            Request::CreateRouter(call::CreateRouter { router, worker }) => {
                self.create_router(router, worker).await
            }
            Request::CloseRouter(call::CloseRouter { router }) => {
                // Dropping the router's entry closes it and everything on it.
                let removed = self.state().remove(&router);
                removed
                    .map(|_| Response::Done)
                    .ok_or_else(|| not_found("router", router))
            }
            Request::CreateWebRtcTransport(call::CreateWebRtcTransport {
                router,
                enable_sctp,
            }) => self.create_transport(router, enable_sctp).await,
            Request::ConnectWebRtcTransport(call::ConnectWebRtcTransport {
                router,
                transport,
                dtls_parameters,
            }) => {
                let dtls_parameters: DtlsParameters = parse("DTLS parameters", &dtls_parameters)?;
                let t = self.transport(router, transport)?;
                t.connect(WebRtcTransportRemoteParameters { dtls_parameters })
                    .await
                    .map_err(|e| media_error("connect", e))?;
                Ok(Response::Done)
            }
            Request::RestartIce(call::RestartIce { router, transport }) => {
                let t = self.transport(router, transport)?;
                let ice = t
                    .restart_ice()
                    .await
                    .map_err(|e| media_error("restart ICE", e))?;
                Ok(Response::IceRestarted(call::IceRestarted {
                    ice_parameters: to_json(&ice)?,
                }))
            }
            Request::CloseTransport(call::CloseTransport { router, transport }) => {
                self.with_router(router, |r| {
                    // A client's or a pipe. Dropping closes it, and with it its producers and
                    // consumers in the worker.
                    let webrtc = r.transports.remove(&transport).is_some();
                    r.transport_handlers.remove(&transport);
                    let pipe = r.pipe_transports.remove(&transport).is_some();
                    if !webrtc && !pipe {
                        return Err(not_found("transport", transport));
                    }
                    r.producers.retain(|_, e| e.transport != transport);
                    r.consumers.retain(|_, e| e.transport != transport);
                    r.pipe_consumers.retain(|_, e| e.transport != transport);
                    r.data_producers.retain(|_, e| e.transport != transport);
                    r.data_consumers.retain(|_, e| e.transport != transport);
                    r.pipe_data_consumers
                        .retain(|_, e| e.transport != transport);
                    Ok(Response::Done)
                })
            }
            Request::RecordProducer(call::RecordProducer { router, producer }) => {
                self.record_producer(router, producer).await
            }
            Request::ConnectRecording(call::ConnectRecording {
                router,
                transport,
                ip,
                port,
            }) => self.connect_recording(router, transport, &ip, port).await,
            Request::CloseRecording(call::CloseRecording { router, transport }) => {
                self.close_recording(router, transport)
            }
            Request::Produce(call::Produce {
                router,
                transport,
                kind,
                rtp_parameters,
            }) => self.produce(router, transport, kind, rtp_parameters).await,
            Request::Consume(call::Consume {
                router,
                transport,
                producer,
                rtp_capabilities,
            }) => {
                self.consume(router, transport, producer, rtp_capabilities)
                    .await
            }
            Request::PauseProducer(call::PauseProducer { router, producer }) => {
                let p = self.producer(router, producer)?;
                p.pause()
                    .await
                    .map_err(|e| media_error("pause producer", e))?;
                Ok(Response::Done)
            }
            Request::ResumeProducer(call::ResumeProducer { router, producer }) => {
                let p = self.producer(router, producer)?;
                p.resume()
                    .await
                    .map_err(|e| media_error("resume producer", e))?;
                Ok(Response::Done)
            }
            Request::CloseProducer(call::CloseProducer { router, producer }) => {
                self.with_router(router, |r| {
                    r.producers
                        .remove(&producer)
                        .map(|_| Response::Done)
                        .ok_or_else(|| not_found("producer", producer))
                })
            }
            Request::PauseConsumer(call::PauseConsumer { router, consumer }) => {
                let c = self.consumer(router, consumer)?;
                c.pause()
                    .await
                    .map_err(|e| media_error("pause consumer", e))?;
                Ok(Response::Done)
            }
            Request::ResumeConsumer(call::ResumeConsumer { router, consumer }) => {
                let c = self.consumer(router, consumer)?;
                c.resume()
                    .await
                    .map_err(|e| media_error("resume consumer", e))?;
                Ok(Response::Done)
            }
            Request::CloseConsumer(call::CloseConsumer { router, consumer }) => {
                self.with_router(router, |r| {
                    // A client's, or a pipe's (whose other side failed).
                    let client = r.consumers.remove(&consumer).is_some();
                    let pipe = r.pipe_consumers.remove(&consumer).is_some();
                    if client || pipe {
                        Ok(Response::Done)
                    } else {
                        Err(not_found("consumer", consumer))
                    }
                })
            }
            Request::SetConsumerPreferredLayers(call::SetConsumerPreferredLayers {
                router,
                consumer,
                spatial_layer,
                temporal_layer,
            }) => {
                let c = self.consumer(router, consumer)?;
                c.set_preferred_layers(ConsumerLayers {
                    spatial_layer,
                    temporal_layer,
                })
                .await
                .map_err(|e| media_error("set preferred layers", e))?;
                Ok(Response::Done)
            }
            Request::ProduceData(c) => self.produce_data(c).await,
            Request::ConsumeData(call::ConsumeData {
                router,
                transport,
                data_producer,
            }) => self.consume_data(router, transport, data_producer).await,
            Request::CloseDataProducer(call::CloseDataProducer {
                router,
                data_producer,
            }) => self.close_data_producer(router, data_producer),
            Request::CloseDataConsumer(call::CloseDataConsumer {
                router,
                data_consumer,
            }) => self.close_data_consumer(router, data_consumer),
            Request::PipeDataToRouter(call::PipeDataToRouter {
                router,
                data_producer,
                target,
            }) => {
                self.pipe_data_to_router(router, data_producer, target)
                    .await
            }
            Request::PipeConsumeData(call::PipeConsumeData {
                router,
                transport,
                data_producer,
            }) => {
                self.pipe_consume_data(router, transport, data_producer)
                    .await
            }
            Request::PipeProduceData(c) => self.pipe_produce_data(c).await,
            Request::PipeToRouter(call::PipeToRouter {
                router,
                producer,
                target,
            }) => self.pipe_to_router(router, producer, target).await,
            Request::CreatePipeTransport(call::CreatePipeTransport { router, srtp }) => {
                self.create_pipe_transport(router, srtp).await
            }
            Request::ConnectPipeTransport(call::ConnectPipeTransport {
                router,
                transport,
                ip,
                port,
                srtp,
            }) => {
                self.connect_pipe_transport(router, transport, &ip, port, srtp.as_ref())
                    .await
            }
            Request::PipeConsume(call::PipeConsume {
                router,
                transport,
                producer,
            }) => self.pipe_consume(router, transport, producer).await,
            Request::PipeProduce(call::PipeProduce {
                router,
                transport,
                producer,
                kind,
                rtp_parameters,
                paused,
            }) => {
                self.pipe_produce(router, transport, producer, kind, rtp_parameters, paused)
                    .await
            }
        }
    }

    fn transport(&self, router: RouterId, id: TransportId) -> Result<WebRtcTransport, NodeError> {
        self.with_router(router, |r| {
            r.transports
                .get(&id)
                .cloned()
                .ok_or_else(|| not_found("transport", id))
        })
    }

    fn producer(&self, router: RouterId, id: ProducerId) -> Result<Producer, NodeError> {
        self.with_router(router, |r| {
            r.producers
                .get(&id)
                .map(|e| e.object.clone())
                .ok_or_else(|| not_found("producer", id))
        })
    }

    fn consumer(&self, router: RouterId, id: ConsumerId) -> Result<Consumer, NodeError> {
        self.with_router(router, |r| {
            r.consumers
                .get(&id)
                .map(|e| e.object.clone())
                .ok_or_else(|| not_found("consumer", id))
        })
    }

    async fn create_router(&self, id: RouterId, worker: u32) -> Answer {
        if let Some(existing) = self.state().get(&id) {
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
            move |speaker| {
                let _ = events.send(NodeEvent::ActiveSpeaker {
                    router: id,
                    producer: ProducerId(speaker.producer.id().into()),
                });
            }
        });
        let direct = router
            .create_direct_transport(DirectTransportOptions::default())
            .await
            .map_err(|e| media_error("create direct transport", e))?;
        let rtp_capabilities = to_json(&router.rtp_capabilities())?;
        let mut state = self.state();
        // Another request may have created it meanwhile: keep the first, drop ours.
        state.entry(id).or_insert(Hosted {
            worker,
            router,
            speaker,
            _speaker_handler: speaker_handler,
            transports: HashMap::new(),
            transport_handlers: HashMap::new(),
            pipe_transports: HashMap::new(),
            taps: HashMap::new(),
            producers: HashMap::new(),
            consumers: HashMap::new(),
            pipe_consumers: HashMap::new(),
            direct,
            data_producers: HashMap::new(),
            data_consumers: HashMap::new(),
            pipe_data_consumers: HashMap::new(),
        });
        Ok(Response::RouterCreated(call::RouterCreated {
            rtp_capabilities,
        }))
    }

    /// Adds an audio producer of `router` to its active speaker observer (best effort: a
    /// router without speaker detection still forwards media).
    async fn observe_speaker(&self, router: RouterId, producer: &Producer) {
        if producer.kind() != mediasoup::prelude::MediaKind::Audio {
            return;
        }
        let Ok(speaker) = self.with_router(router, |r| Ok(r.speaker.clone())) else {
            return;
        };
        if let Err(e) = speaker
            .add_producer(RtpObserverAddProducerOptions::new(producer.id()))
            .await
        {
            tracing::warn!(%router, producer = %producer.id(), "active speaker observer refused producer: {e}");
        }
    }

    /// Closes every router.
    pub fn close_all(&self) {
        self.state().clear();
    }

    /// The workers, to watch for their death.
    pub fn workers(&self) -> &[WorkerSlot] {
        &self.workers
    }
}
