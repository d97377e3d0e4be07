//! Pipes between the routers of one room: within this node a producer is piped to another
//! worker's router with mediasoup's `pipe_producer_to_router` (which also makes pause, resume
//! and close follow the original); between nodes each side has a pipe transport, connected by
//! the supervisor, and the producer is consumed on one side and produced under the same id on
//! the other. Data producers (chat) travel the same ways, over the pipes' SCTP associations.

use std::net::IpAddr;

use ipc::calls as call;
use ipc::messages::{
    ConsumerId, DataConsumerId, DataProducerId, Json, MediaKind, NodeError, NodeErrorCode,
    ProducerId, Response, RouterId, TransportId,
};
use mediasoup::prelude::*;
use mediasoup::types::srtp_parameters::SrtpParameters;

use crate::media_config::pipe_listen_info;

use super::data::{mediasoup_data_id, stream_parameters};
use super::{ipc_kind, media_error, not_found, parse, to_json, Answer, Entry, Routers, LOCAL_PIPE};

/// mediasoup's id for `id` (the same UUID).
fn mediasoup_id(id: ProducerId) -> Result<mediasoup::prelude::ProducerId, NodeError> {
    id.to_string()
        .parse()
        .map_err(|e| NodeError::new(NodeErrorCode::Internal, format!("producer id {id}: {e}")))
}

impl Routers {
    /// `producer` of `router` made available, same id, in `target` (another worker's router).
    pub(super) async fn pipe_to_router(
        &self,
        router: RouterId,
        producer: ProducerId,
        target: RouterId,
    ) -> Answer {
        let source = self.with_router(router, |r| Ok(r.router.clone()))?;
        let destination = self.with_router(target, |r| Ok(r.router.clone()))?;
        let pair = source
            .pipe_producer_to_router(
                mediasoup_id(producer)?,
                PipeToRouterOptions::new(destination),
            )
            .await
            .map_err(|e| media_error("pipe to router", e))?;
        // The pipe consumer lives as long as the pipe producer (mediasoup ties them); the pipe
        // producer, taken out of its wrapper, closes when its entry is dropped.
        let piped = pair.pipe_producer.into_inner();
        self.observe_speaker(target, &piped).await;
        self.with_router(target, |r| {
            r.producers.insert(
                producer,
                Entry {
                    object: piped,
                    transport: LOCAL_PIPE,
                    _handlers: Vec::new(),
                },
            );
            Ok(Response::Done)
        })
    }

    /// A pipe transport in `router`, listening on the node's pipe address.
    pub(super) async fn create_pipe_transport(&self, router: RouterId, srtp: bool) -> Answer {
        let r = self.with_router(router, |r| Ok(r.router.clone()))?;
        let mut options = PipeTransportOptions::new(pipe_listen_info(self.pipe_ip));
        options.enable_sctp = true;
        options.enable_srtp = srtp;
        options.max_send_message_size = self.data.max_message_bytes;
        options.max_receive_message_size = self.data.max_message_bytes;
        let transport = r
            .create_pipe_transport(options)
            .await
            .map_err(|e| media_error("create pipe transport", e))?;
        let id = TransportId(transport.id().into());
        let tuple = transport.tuple();
        let srtp = match transport.srtp_parameters() {
            Some(parameters) => Some(to_json(&parameters)?),
            None => None,
        };
        let answer = call::PipeTransportCreated {
            transport: id,
            ip: tuple.local_address().clone(),
            port: tuple.local_port(),
            srtp,
        };
        self.with_router(router, |r| {
            r.pipe_transports.insert(id, transport);
            Ok(Response::PipeTransportCreated(answer))
        })
    }

    fn pipe_transport(
        &self,
        router: RouterId,
        id: TransportId,
    ) -> Result<PipeTransport, NodeError> {
        self.with_router(router, |r| {
            r.pipe_transports
                .get(&id)
                .cloned()
                .ok_or_else(|| not_found("pipe transport", id))
        })
    }

    /// Points a pipe transport at its other side.
    pub(super) async fn connect_pipe_transport(
        &self,
        router: RouterId,
        transport: TransportId,
        ip: &str,
        port: u16,
        srtp: Option<&Json>,
    ) -> Answer {
        let ip: IpAddr = ip.parse().map_err(|e| {
            NodeError::new(
                NodeErrorCode::InvalidArgument,
                format!("pipe address {ip:?}: {e}"),
            )
        })?;
        let srtp_parameters = match srtp {
            Some(json) => Some(parse::<SrtpParameters>("SRTP parameters", json)?),
            None => None,
        };
        self.pipe_transport(router, transport)?
            .connect(PipeTransportRemoteParameters {
                ip,
                port,
                srtp_parameters,
            })
            .await
            .map_err(|e| media_error("connect pipe transport", e))?;
        Ok(Response::Done)
    }

    /// Sends `producer` of `router` through a pipe transport.
    pub(super) async fn pipe_consume(
        &self,
        router: RouterId,
        transport: TransportId,
        producer: ProducerId,
    ) -> Answer {
        let pipe = self.pipe_transport(router, transport)?;
        let consumer = pipe
            .consume(ConsumerOptions::new(
                mediasoup_id(producer)?,
                RtpCapabilities::default(),
            ))
            .await
            .map_err(|e| media_error("pipe consume", e))?;
        let id = ConsumerId(consumer.id().into());
        let answer = call::PipeConsumed {
            consumer: id,
            kind: ipc_kind(consumer.kind()),
            rtp_parameters: to_json(consumer.rtp_parameters())?,
            producer_paused: consumer.producer_paused(),
        };
        self.with_router(router, |r| {
            if !r.pipe_transports.contains_key(&transport) {
                return Err(not_found("pipe transport", transport));
            }
            r.pipe_consumers.insert(
                id,
                Entry {
                    object: consumer,
                    transport,
                    _handlers: Vec::new(),
                },
            );
            Ok(Response::PipeConsumed(answer))
        })
    }

    /// Receives a producer of another node through a pipe transport, under its own id.
    pub(super) async fn pipe_produce(
        &self,
        router: RouterId,
        transport: TransportId,
        producer: ProducerId,
        kind: MediaKind,
        rtp_parameters: Json,
        paused: bool,
    ) -> Answer {
        let rtp_parameters: RtpParameters = parse("RTP parameters", &rtp_parameters)?;
        let pipe = self.pipe_transport(router, transport)?;
        let kind = match kind {
            MediaKind::Audio => mediasoup::prelude::MediaKind::Audio,
            MediaKind::Video => mediasoup::prelude::MediaKind::Video,
        };
        let mut options =
            ProducerOptions::new_pipe_transport(mediasoup_id(producer)?, kind, rtp_parameters);
        options.paused = paused;
        options.key_frame_request_delay = super::KEY_FRAME_REQUEST_DELAY_MS;
        let piped = pipe
            .produce(options)
            .await
            .map_err(|e| media_error("pipe produce", e))?;
        self.observe_speaker(router, &piped).await;
        self.with_router(router, |r| {
            if !r.pipe_transports.contains_key(&transport) {
                return Err(not_found("pipe transport", transport));
            }
            r.producers.insert(
                producer,
                Entry {
                    object: piped,
                    transport,
                    _handlers: Vec::new(),
                },
            );
            Ok(Response::Done)
        })
    }

    /// `data_producer` of `router` made available, same id, in `target` (another worker's
    /// router).
    pub(super) async fn pipe_data_to_router(
        &self,
        router: RouterId,
        data_producer: DataProducerId,
        target: RouterId,
    ) -> Answer {
        let source = self.with_router(router, |r| Ok(r.router.clone()))?;
        let destination = self.with_router(target, |r| Ok(r.router.clone()))?;
        // What is piped is what this router's consumers get (the relay), not the client's.
        let forwarded = self.data_producer(router, data_producer)?.id();
        let pair = source
            .pipe_data_producer_to_router(forwarded, PipeToRouterOptions::new(destination))
            .await
            .map_err(|e| media_error("pipe data to router", e))?;
        let piped = pair.pipe_data_producer.into_inner();
        self.keep_piped_data(target, LOCAL_PIPE, data_producer, piped)
    }

    /// Sends `data_producer` of `router` through a pipe transport.
    pub(super) async fn pipe_consume_data(
        &self,
        router: RouterId,
        transport: TransportId,
        data_producer: DataProducerId,
    ) -> Answer {
        let pipe = self.pipe_transport(router, transport)?;
        let consumer = pipe
            .consume_data(DataConsumerOptions::new_sctp(
                self.data_producer(router, data_producer)?.id(),
            ))
            .await
            .map_err(|e| media_error("pipe consume data", e))?;
        let id = DataConsumerId(consumer.id().into());
        let answer = call::PipeDataConsumed {
            data_consumer: id,
            sctp_stream_parameters: stream_parameters(&consumer)?,
            label: consumer.label().clone(),
            protocol: consumer.protocol().clone(),
        };
        self.with_router(router, |r| {
            if !r.pipe_transports.contains_key(&transport) {
                return Err(not_found("pipe transport", transport));
            }
            r.pipe_data_consumers.insert(
                id,
                Entry {
                    object: consumer,
                    transport,
                    _handlers: Vec::new(),
                },
            );
            Ok(Response::PipeDataConsumed(answer))
        })
    }

    /// Receives a data producer of another node through a pipe transport, under its own id.
    pub(super) async fn pipe_produce_data(&self, c: call::PipeProduceData) -> Answer {
        let call::PipeProduceData {
            router,
            transport,
            data_producer,
            sctp_stream_parameters,
            label,
            protocol,
        } = c;
        let params: SctpStreamParameters =
            parse("SCTP stream parameters", &sctp_stream_parameters)?;
        let pipe = self.pipe_transport(router, transport)?;
        let mut options =
            DataProducerOptions::new_pipe_transport(mediasoup_data_id(data_producer)?, params);
        options.label = label;
        options.protocol = protocol;
        let piped = pipe
            .produce_data(options)
            .await
            .map_err(|e| media_error("pipe produce data", e))?;
        if !self.with_router(router, |r| Ok(r.pipe_transports.contains_key(&transport)))? {
            return Err(not_found("pipe transport", transport));
        }
        self.keep_piped_data(router, transport, data_producer, piped)
    }
}
