//! The requests a supervisor sends a node, each paired with the answer it gets (as the
//! mediasoup crate pairs each request with its response type): [`Call::Answer`] names it,
//! and [`Answer::from_response`] takes it out of the wire's [`Response`], so a caller gets
//! the right answer or an error, never a variant to check by hand.

use serde::{Deserialize, Serialize};

use crate::messages::{
    ConsumerId, DataConsumerId, DataProducerId, Json, MediaKind, ProducerId, RouterId, TransportId,
};
use crate::stats::{Diagnostics, RouterStats};

/// A request with its answer type.
pub trait Call: Into<Request> {
    /// What a node answers to it.
    type Answer: Answer;
}

/// An answer that can be taken out of a [`Response`].
pub trait Answer: Sized {
    /// The answer, or the response as it came when it is another one.
    fn from_response(response: Response) -> Result<Self, Response>;
}

/// "Done": the request was carried out and there is nothing to report.
impl Answer for () {
    fn from_response(response: Response) -> Result<Self, Response> {
        match response {
            Response::Done => Ok(()),
            other => Err(other),
        }
    }
}

macro_rules! answers {
    ($( $(#[$doc:meta])* $name:ident { $( $(#[$fdoc:meta])* $field:ident : $ty:ty ),* $(,)? } )*) => {
        $(
            $(#[$doc])*
            #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
            pub struct $name { $( $(#[$fdoc])* pub $field: $ty, )* }

            impl Answer for $name {
                fn from_response(response: Response) -> Result<Self, Response> {
                    match response {
                        Response::$name(answer) => Ok(answer),
                        other => Err(other),
                    }
                }
            }

            impl From<$name> for Response {
                fn from(answer: $name) -> Response {
                    Response::$name(answer)
                }
            }
        )*

        /// A successful answer, as it travels.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        pub enum Response {
            /// Done; nothing to report.
            Done,
            $( $(#[$doc])* $name($name), )*
        }
    };
}

answers! {
    /// A router exists.
    RouterCreated {
        /// mediasoup `RtpCapabilitiesFinalized` of the router.
        rtp_capabilities: Json,
    }
    /// A WebRTC transport was created.
    TransportCreated {
        /// Its id.
        transport: TransportId,
        /// mediasoup `IceParameters`.
        ice_parameters: Json,
        /// mediasoup `Vec<IceCandidate>`.
        ice_candidates: Json,
        /// mediasoup `DtlsParameters`.
        dtls_parameters: Json,
        /// mediasoup `SctpParameters`, when it carries data channels.
        sctp_parameters: Option<Json>,
    }
    /// ICE was restarted.
    IceRestarted {
        /// mediasoup `IceParameters`.
        ice_parameters: Json,
    }
    /// A producer was created.
    Produced {
        /// Its id.
        producer: ProducerId,
    }
    /// A consumer was created, paused.
    Consumed {
        /// Its id.
        consumer: ConsumerId,
        /// Audio or video.
        kind: MediaKind,
        /// mediasoup `RtpParameters` for the receiving device.
        rtp_parameters: Json,
        /// `simple`, `simulcast`, `svc` or `pipe`.
        consumer_type: String,
        /// Whether the producer is paused.
        producer_paused: bool,
    }
    /// A pipe transport listens, for a router of the same room on another node.
    PipeTransportCreated {
        /// Its id.
        transport: TransportId,
        /// The address it listens on (the node's `--pipe-ip`).
        ip: String,
        /// Its UDP port.
        port: u16,
        /// Its SRTP key and suite (mediasoup's `SrtpParameters`, JSON), when asked with
        /// `srtp`: the other side connects with them.
        srtp: Option<Json>,
    }
    /// A recording tap exists: a plain RTP transport with a paused consumer of the producer.
    RecordingCreated {
        /// The tap's transport (what [`ConnectRecording`] and [`CloseRecording`] name).
        transport: TransportId,
        /// Its consumer.
        consumer: ConsumerId,
        /// Audio or video.
        kind: MediaKind,
        /// The codec the recorder receives (`audio/opus`, `video/VP8`, …).
        mime_type: String,
        /// Its payload type.
        payload_type: u8,
        /// Its RTP clock rate.
        clock_rate: u32,
        /// The SSRC the consumer sends with.
        ssrc: u32,
        /// The address the tap sends from (the node's `--pipe-ip`).
        ip: String,
        /// Its UDP port (RTP and RTCP).
        port: u16,
    }
    /// A router's media statistics, collected for this request.
    MediaStats {
        /// Its producers', consumers' and transports'.
        stats: RouterStats,
    }
    /// What the worker says of the objects asked about.
    Diagnosed {
        /// Those that exist.
        diagnostics: Diagnostics,
    }
    /// A data producer was created.
    DataProduced {
        /// Its id.
        data_producer: DataProducerId,
    }
    /// A data consumer was created.
    DataConsumed {
        /// Its id.
        data_consumer: DataConsumerId,
        /// mediasoup `SctpStreamParameters` for the receiving device.
        sctp_stream_parameters: Json,
        /// The data producer's label.
        label: String,
        /// The data producer's sub-protocol.
        protocol: String,
    }
    /// A data producer is being sent through a pipe transport.
    PipeDataConsumed {
        /// The pipe data consumer.
        data_consumer: DataConsumerId,
        /// mediasoup `SctpStreamParameters` of the pipe data consumer: what the other side
        /// produces.
        sctp_stream_parameters: Json,
        /// The data producer's label.
        label: String,
        /// The data producer's sub-protocol.
        protocol: String,
    }
    /// A producer is being sent through a pipe transport.
    PipeConsumed {
        /// The pipe consumer.
        consumer: ConsumerId,
        /// Audio or video.
        kind: MediaKind,
        /// mediasoup `RtpParameters` of the pipe consumer: what the other side produces.
        rtp_parameters: Json,
        /// Whether the producer is paused.
        producer_paused: bool,
    }
}

macro_rules! calls {
    ($( $(#[$doc:meta])* $name:ident => $answer:ty, $label:literal { $( $(#[$fdoc:meta])* $field:ident : $ty:ty ),* $(,)? } )*) => {
        $(
            $(#[$doc])*
            #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
            pub struct $name { $( $(#[$fdoc])* pub $field: $ty, )* }

            impl From<$name> for Request {
                fn from(call: $name) -> Request {
                    Request::$name(call)
                }
            }

            impl Call for $name {
                type Answer = $answer;
            }
        )*

        /// What the supervisor asks of a node, as it travels. Every id names an object of
        /// the request's router.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        pub enum Request {
            $( $(#[$doc])* $name($name), )*
        }

        impl Request {
            /// The request's kind, in snake case (a metrics label).
            pub fn name(&self) -> &'static str {
                match self {
                    $( Request::$name(_) => $label, )*
                }
            }

            /// The router the request is about.
            pub fn router(&self) -> RouterId {
                match self {
                    $( Request::$name(call) => call.router, )*
                }
            }
        }

        /// What closes the object `response` created in `router`: for an answer that came
        /// after its request was given up on (timed out), whose object nobody records and
        /// nobody would ever close otherwise. `None` for answers that create nothing (and
        /// for pipes, which their link's own cleanup closes with the router).
        pub fn undo(router: RouterId, response: &Response) -> Option<Request> {
            Some(match response {
                Response::RouterCreated(_) => CloseRouter { router }.into(),
                Response::TransportCreated(t) => CloseTransport {
                    router,
                    transport: t.transport,
                }
                .into(),
                Response::Produced(p) => CloseProducer {
                    router,
                    producer: p.producer,
                }
                .into(),
                Response::Consumed(c) => CloseConsumer {
                    router,
                    consumer: c.consumer,
                }
                .into(),
                Response::RecordingCreated(t) => CloseRecording {
                    router,
                    transport: t.transport,
                }
                .into(),
                Response::DataProduced(d) => CloseDataProducer {
                    router,
                    data_producer: d.data_producer,
                }
                .into(),
                Response::DataConsumed(d) => CloseDataConsumer {
                    router,
                    data_consumer: d.data_consumer,
                }
                .into(),
                _ => return None,
            })
        }
    };
}

calls! {
    /// Scores, pause states and bitrates of every producer and consumer of a router, and
    /// the states of its transports: one worker request per producer and consumer, so only
    /// when a monitor asks.
    GetMediaStats => MediaStats, "get_media_stats" {
        /// The router.
        router: RouterId,
    }
    /// Everything the worker says of some transports, producers and consumers of a router
    /// (one participant's); ids that do not exist are left out of the answer.
    Diagnose => Diagnosed, "diagnose" {
        /// The router.
        router: RouterId,
        /// Transports.
        transports: Vec<TransportId>,
        /// Producers.
        producers: Vec<ProducerId>,
        /// Consumers.
        consumers: Vec<ConsumerId>,
    }
    /// Creates a router of a room on worker `worker` (index below the hello's `workers`).
    CreateRouter => RouterCreated, "create_router" {
        /// The router.
        router: RouterId,
        /// The worker to host it.
        worker: u32,
    }
    /// Closes a router and everything in it.
    CloseRouter => (), "close_router" {
        /// The router.
        router: RouterId,
    }
    /// Creates a WebRTC transport in a router.
    CreateWebRtcTransport => TransportCreated, "create_webrtc_transport" {
        /// The router.
        router: RouterId,
        /// With an SCTP association, for data channels (the client asked for them).
        enable_sctp: bool,
    }
    /// Gives a transport the client's DTLS parameters.
    ConnectWebRtcTransport => (), "connect_webrtc_transport" {
        /// The router.
        router: RouterId,
        /// The transport.
        transport: TransportId,
        /// mediasoup `DtlsParameters`.
        dtls_parameters: Json,
    }
    /// New ICE credentials for a transport.
    RestartIce => IceRestarted, "restart_ice" {
        /// The router.
        router: RouterId,
        /// The transport.
        transport: TransportId,
    }
    /// Closes a transport with its producers and consumers.
    CloseTransport => (), "close_transport" {
        /// The router.
        router: RouterId,
        /// The transport.
        transport: TransportId,
    }
    /// Creates a producer on a transport.
    Produce => Produced, "produce" {
        /// The router.
        router: RouterId,
        /// The transport.
        transport: TransportId,
        /// Audio or video.
        kind: MediaKind,
        /// mediasoup `RtpParameters`.
        rtp_parameters: Json,
    }
    /// Creates a paused consumer of `producer` on a transport.
    Consume => Consumed, "consume" {
        /// The router.
        router: RouterId,
        /// The transport.
        transport: TransportId,
        /// What to consume.
        producer: ProducerId,
        /// mediasoup `RtpCapabilities` of the receiving device.
        rtp_capabilities: Json,
    }
    /// Pauses a producer.
    PauseProducer => (), "pause_producer" {
        /// The router.
        router: RouterId,
        /// The producer.
        producer: ProducerId,
    }
    /// Resumes a producer.
    ResumeProducer => (), "resume_producer" {
        /// The router.
        router: RouterId,
        /// The producer.
        producer: ProducerId,
    }
    /// Closes a producer (its consumers close too).
    CloseProducer => (), "close_producer" {
        /// The router.
        router: RouterId,
        /// The producer.
        producer: ProducerId,
    }
    /// Pauses a consumer.
    PauseConsumer => (), "pause_consumer" {
        /// The router.
        router: RouterId,
        /// The consumer.
        consumer: ConsumerId,
    }
    /// Resumes a consumer.
    ResumeConsumer => (), "resume_consumer" {
        /// The router.
        router: RouterId,
        /// The consumer.
        consumer: ConsumerId,
    }
    /// Closes a consumer.
    CloseConsumer => (), "close_consumer" {
        /// The router.
        router: RouterId,
        /// The consumer.
        consumer: ConsumerId,
    }
    /// Chooses the simulcast/SVC layers a consumer should receive.
    SetConsumerPreferredLayers => (), "set_consumer_preferred_layers" {
        /// The router.
        router: RouterId,
        /// The consumer.
        consumer: ConsumerId,
        /// Spatial layer.
        spatial_layer: u8,
        /// Temporal layer; the highest when absent.
        temporal_layer: Option<u8>,
    }
    /// Creates a data producer (an SCTP stream the client sends on) on a transport; the node
    /// holds it to its message rate limit.
    ProduceData => DataProduced, "produce_data" {
        /// The router.
        router: RouterId,
        /// The transport.
        transport: TransportId,
        /// mediasoup `SctpStreamParameters`.
        sctp_stream_parameters: Json,
        /// The data channel's label.
        label: String,
        /// The data channel's sub-protocol.
        protocol: String,
    }
    /// Creates a data consumer of `data_producer` on a transport.
    ConsumeData => DataConsumed, "consume_data" {
        /// The router.
        router: RouterId,
        /// The transport.
        transport: TransportId,
        /// What to consume.
        data_producer: DataProducerId,
    }
    /// Closes a data producer (its data consumers close too).
    CloseDataProducer => (), "close_data_producer" {
        /// The router.
        router: RouterId,
        /// The data producer.
        data_producer: DataProducerId,
    }
    /// Closes a data consumer.
    CloseDataConsumer => (), "close_data_consumer" {
        /// The router.
        router: RouterId,
        /// The data consumer.
        data_consumer: DataConsumerId,
    }
    /// Makes `data_producer` of `router` available in `target`, another router of this node,
    /// with the same id (mediasoup's `pipe_data_producer_to_router`).
    PipeDataToRouter => (), "pipe_data_to_router" {
        /// The data producer's router.
        router: RouterId,
        /// The data producer.
        data_producer: DataProducerId,
        /// Where it is wanted.
        target: RouterId,
    }
    /// Sends `data_producer` of this router through a pipe transport.
    PipeConsumeData => PipeDataConsumed, "pipe_consume_data" {
        /// The router.
        router: RouterId,
        /// The pipe transport.
        transport: TransportId,
        /// The data producer.
        data_producer: DataProducerId,
    }
    /// Receives a data producer of another node through a pipe transport, under the same id.
    PipeProduceData => (), "pipe_produce_data" {
        /// The router.
        router: RouterId,
        /// The pipe transport.
        transport: TransportId,
        /// The data producer's id (the original's).
        data_producer: DataProducerId,
        /// mediasoup `SctpStreamParameters`, from the other side's [`PipeDataConsumed`].
        sctp_stream_parameters: Json,
        /// The data producer's label.
        label: String,
        /// The data producer's sub-protocol.
        protocol: String,
    }
    /// Makes `producer` of `router` available in `target`, another router of this node on
    /// another worker, with the same id (mediasoup's `pipe_producer_to_router`); pause, resume
    /// and close follow the original.
    PipeToRouter => (), "pipe_to_router" {
        /// The producer's router.
        router: RouterId,
        /// The producer.
        producer: ProducerId,
        /// Where it is wanted.
        target: RouterId,
    }
    /// Creates a pipe transport in a router, to be connected to one of another node.
    CreatePipeTransport => PipeTransportCreated, "create_pipe_transport" {
        /// The router.
        router: RouterId,
        /// Encrypt what it carries (SRTP): a pipe between two hosts crosses a network.
        srtp: bool,
    }
    /// Connects a pipe transport to its peer on the other node.
    ConnectPipeTransport => (), "connect_pipe_transport" {
        /// The router.
        router: RouterId,
        /// The pipe transport.
        transport: TransportId,
        /// The other side's address.
        ip: String,
        /// The other side's port.
        port: u16,
        /// The other side's SRTP parameters (its [`PipeTransportCreated::srtp`]).
        srtp: Option<Json>,
    }
    /// Sends `producer` of this router through a pipe transport.
    PipeConsume => PipeConsumed, "pipe_consume" {
        /// The router.
        router: RouterId,
        /// The pipe transport.
        transport: TransportId,
        /// The producer.
        producer: ProducerId,
    }
    /// A recording tap of `producer`: a plain RTP transport and a paused consumer, which
    /// [`ConnectRecording`] points at the recorder.
    RecordProducer => RecordingCreated, "record_producer" {
        /// The router.
        router: RouterId,
        /// The producer.
        producer: ProducerId,
    }
    /// Points a tap at the recorder's socket, resumes it and asks a key frame.
    ConnectRecording => (), "connect_recording" {
        /// The router.
        router: RouterId,
        /// The tap's transport.
        transport: TransportId,
        /// The recorder's address.
        ip: String,
        /// The recorder's UDP port for this track.
        port: u16,
    }
    /// Closes a tap.
    CloseRecording => (), "close_recording" {
        /// The router.
        router: RouterId,
        /// The tap's transport.
        transport: TransportId,
    }
    /// Receives a producer of another node through a pipe transport, under the same id.
    PipeProduce => (), "pipe_produce" {
        /// The router.
        router: RouterId,
        /// The pipe transport.
        transport: TransportId,
        /// The producer's id (the original's).
        producer: ProducerId,
        /// Audio or video.
        kind: MediaKind,
        /// mediasoup `RtpParameters`, from the other side's [`PipeConsumed`].
        rtp_parameters: Json,
        /// Start paused (the original is).
        paused: bool,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_call_takes_its_own_answer_and_refuses_another() {
        let created = Response::from(Produced {
            producer: ProducerId(uuid::Uuid::nil()),
        });
        assert!(<Produce as Call>::Answer::from_response(created.clone()).is_ok());
        assert_eq!(
            <Consume as Call>::Answer::from_response(created.clone()),
            Err(created)
        );
        assert_eq!(
            <CloseRouter as Call>::Answer::from_response(Response::Done),
            Ok(())
        );
    }

    #[test]
    fn requests_know_their_router_and_name() {
        let router = RouterId(uuid::Uuid::from_u128(7));
        let request = Request::from(CloseProducer {
            router,
            producer: ProducerId(uuid::Uuid::nil()),
        });
        assert_eq!(request.router(), router);
        assert_eq!(request.name(), "close_producer");
    }
}
