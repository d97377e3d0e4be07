//! Clients' media in a router: WebRTC transports, producers and consumers, and the events
//! mediasoup raises on consumers and producers (relayed to the supervisor).

use event_listener_primitives::HandlerId;
use ipc::calls as call;
use ipc::messages::{
    ConsumerId, Json, MediaKind, NodeError, NodeErrorCode, NodeEvent, ProducerId, Response,
    RouterId, TransportId, TransportState,
};
use mediasoup::prelude::*;
use mediasoup::types::data_structures::{DtlsState, IceState};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::{ipc_kind, media_error, not_found, parse, to_json, Answer, Entry, Routers};

impl Routers {
    pub(super) async fn create_transport(&self, router: RouterId, enable_sctp: bool) -> Answer {
        let (r, worker) = self.with_router(router, |h| Ok((h.router.clone(), h.worker)))?;
        let data = enable_sctp.then_some(self.data);
        let server = self
            .workers
            .get(worker as usize)
            .and_then(|w| w.webrtc_server.as_ref());
        let transport = r
            .create_webrtc_transport(self.listen.webrtc_transport_options(server, data))
            .await
            .map_err(|e| media_error("create WebRTC transport", e))?;
        let id = TransportId(transport.id().into());
        let handlers = self.watch_transport(router, id, &transport);
        let answer = Response::TransportCreated(call::TransportCreated {
            transport: id,
            ice_parameters: to_json(transport.ice_parameters())?,
            ice_candidates: to_json(transport.ice_candidates())?,
            dtls_parameters: to_json(&transport.dtls_parameters())?,
            sctp_parameters: match transport.sctp_parameters() {
                Some(sctp) => Some(to_json(&sctp)?),
                None => None,
            },
        });
        self.with_router(router, |r| {
            r.transports.insert(id, transport);
            r.transport_handlers.insert(id, handlers);
            Ok(answer)
        })
    }

    /// Tells the supervisor when `transport` connects, loses its client (ICE consent) or
    /// fails: a client without a socket of its own (WHIP, WHEP) is alive only through it.
    fn watch_transport(
        &self,
        router: RouterId,
        transport: TransportId,
        webrtc: &WebRtcTransport,
    ) -> Vec<HandlerId> {
        let send = {
            let events = self.events.clone();
            move |state| {
                let _ = events.send(NodeEvent::TransportState {
                    router,
                    transport,
                    state,
                });
            }
        };
        // ICE coming back after a loss is a connection again; its first connection is
        // told by DTLS.
        let lost = Arc::new(AtomicBool::new(false));
        let ice = webrtc.on_ice_state_change({
            let send = send.clone();
            move |state| match state {
                IceState::Disconnected => {
                    lost.store(true, Ordering::Relaxed);
                    send(TransportState::Disconnected);
                }
                IceState::Connected | IceState::Completed => {
                    if lost.swap(false, Ordering::Relaxed) {
                        send(TransportState::Connected);
                    }
                }
                IceState::New => {}
            }
        });
        let dtls = webrtc.on_dtls_state_change(move |state| match state {
            DtlsState::Connected => send(TransportState::Connected),
            DtlsState::Failed => send(TransportState::Failed),
            DtlsState::Closed => send(TransportState::Closed),
            DtlsState::New | DtlsState::Connecting => {}
        });
        vec![ice, dtls]
    }

    pub(super) async fn produce(
        &self,
        router: RouterId,
        transport_id: TransportId,
        kind: MediaKind,
        rtp_parameters: Json,
    ) -> Answer {
        let rtp_parameters: RtpParameters = parse("RTP parameters", &rtp_parameters)?;
        let transport = self.transport(router, transport_id)?;
        let media_kind = match kind {
            MediaKind::Audio => mediasoup::prelude::MediaKind::Audio,
            MediaKind::Video => mediasoup::prelude::MediaKind::Video,
        };
        let mut options = ProducerOptions::new(media_kind, rtp_parameters);
        options.key_frame_request_delay = super::KEY_FRAME_REQUEST_DELAY_MS;
        let producer = transport
            .produce(options)
            .await
            .map_err(|e| media_error("produce", e))?;
        let id = ProducerId(producer.id().into());
        let handlers = vec![producer.on_score({
            let events = self.events.clone();
            move |scores| {
                if let Ok(score) = to_json(&scores) {
                    let _ = events.send(NodeEvent::ProducerScore {
                        router,
                        producer: id,
                        score,
                    });
                }
            }
        })];
        self.observe_speaker(router, &producer).await;
        self.with_router(router, |r| {
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

    pub(super) async fn consume(
        &self,
        router: RouterId,
        transport_id: TransportId,
        producer_id: ProducerId,
        rtp_capabilities: Json,
    ) -> Answer {
        let rtp_capabilities: RtpCapabilities = parse("RTP capabilities", &rtp_capabilities)?;
        let transport = self.transport(router, transport_id)?;
        let (mediasoup_router, producer) = self.with_router(router, |r| {
            let producer = r
                .producers
                .get(&producer_id)
                .map(|e| e.object.clone())
                .ok_or_else(|| not_found("producer", producer_id))?;
            Ok((r.router.clone(), producer))
        })?;
        if !mediasoup_router.can_consume(&producer.id(), &rtp_capabilities) {
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
        let handlers = self.subscribe_consumer(router, &consumer, id, producer_id);
        let answer = Response::Consumed(call::Consumed {
            consumer: id,
            kind: ipc_kind(consumer.kind()),
            rtp_parameters: to_json(consumer.rtp_parameters())?,
            consumer_type: to_json(&consumer.r#type())?.0.trim_matches('"').to_string(),
            producer_paused: consumer.producer_paused(),
        });
        self.with_router(router, |r| {
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
        router: RouterId,
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
                let send = send.clone();
                move || {
                    send(NodeEvent::ConsumerClosed {
                        router,
                        consumer: id,
                        producer,
                    })
                }
            }),
            consumer.on_producer_pause({
                let send = send.clone();
                move || {
                    send(NodeEvent::ConsumerPaused {
                        router,
                        consumer: id,
                    })
                }
            }),
            consumer.on_producer_resume({
                let send = send.clone();
                move || {
                    send(NodeEvent::ConsumerResumed {
                        router,
                        consumer: id,
                    })
                }
            }),
            consumer.on_score({
                let send = send.clone();
                move |score| {
                    if let Ok(score) = to_json(score) {
                        send(NodeEvent::ConsumerScore {
                            router,
                            consumer: id,
                            score,
                        })
                    }
                }
            }),
            consumer.on_layers_change({
                move |layers| {
                    send(NodeEvent::ConsumerLayersChanged {
                        router,
                        consumer: id,
                        spatial_layer: layers.as_ref().map(|l| l.spatial_layer),
                        temporal_layer: layers.as_ref().and_then(|l| l.temporal_layer),
                    })
                }
            }),
        ]
    }

    /// Forgets a consumer mediasoup has closed on its own (its producer went away).
    pub fn forget_consumer(&self, router: RouterId, consumer: ConsumerId) {
        if let Some(r) = self.state().get_mut(&router) {
            r.consumers.remove(&consumer);
        }
    }
}
