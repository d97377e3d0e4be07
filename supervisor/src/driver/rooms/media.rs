//! A joined peer's media requests, performed: the core checks and builds each call, the
//! room's node carries it out, and the core records the answer.

use ipc::calls as call;
use serde_json::{Map, Value};

use room_core::rooms::{RoomCore, Target};
use std::sync::Arc;

use super::{link_error, Rooms};
use signaling_api::{
    ClientError, ConsumeArgs, Consumed, ConsumerAction, Direction, Done, IceRestarted, PeerId,
    ProduceArgs, Produced, ProducerAction, RouterCapabilities, TransportCreated,
};

impl Rooms {
    /// The router RTP capabilities of the peer's room.
    pub fn router_rtp_capabilities(&self, peer: PeerId) -> Result<RouterCapabilities, ClientError> {
        self.state().core.router_rtp_capabilities(peer)
    }

    /// Sends `c` to the node of `target`.
    pub(super) async fn call<C: ipc::calls::Call>(
        &self,
        target: &Target,
        c: C,
    ) -> Result<C::Answer, ClientError> {
        self.node(target.node)?.call(c).await.map_err(link_error)
    }

    /// Creates a WebRTC transport for `peer`, with data channels when `data`.
    pub async fn create_transport(
        &self,
        peer: PeerId,
        direction: Direction,
        data: bool,
    ) -> Result<TransportCreated, ClientError> {
        let target = self.state().core.begin_create_transport(peer)?;
        let router = target.router;
        let create = call::CreateWebRtcTransport {
            router,
            enable_sctp: data,
        };
        let answer = self.call(&target, create).await?;
        let (created, cleanups) =
            self.with_core(|core| core.handle_transport_created(peer, &target, direction, answer));
        self.drive(cleanups).await;
        created
    }

    /// Gives the transport the client's DTLS parameters.
    pub async fn connect_transport(
        &self,
        peer: PeerId,
        transport: &str,
        dtls_parameters: Map<String, Value>,
    ) -> Result<Done, ClientError> {
        let (target, c) =
            self.state()
                .core
                .begin_connect_transport(peer, transport, dtls_parameters)?;
        self.call(&target, c).await?;
        Ok(Done {})
    }

    /// New ICE credentials for a transport.
    pub async fn restart_ice(
        &self,
        peer: PeerId,
        transport: &str,
    ) -> Result<IceRestarted, ClientError> {
        let (target, transport) = self.state().core.own_transport(peer, transport, None)?;
        let router = target.router;
        let answer = self
            .call(&target, call::RestartIce { router, transport })
            .await?;
        RoomCore::handle_ice_restarted(answer)
    }

    /// Closes one of the peer's transports.
    pub async fn close_transport(
        &self,
        peer: PeerId,
        transport: &str,
    ) -> Result<Done, ClientError> {
        let (closed, cleanups) = self.with_core(|core| core.close_transport(peer, transport));
        self.drive(cleanups).await;
        let (target, c) = closed?;
        self.call(&target, c).await?;
        Ok(Done {})
    }

    /// Creates a producer and tells the other peers; it is piped to the room's other routers
    /// in the background (their peers are told once it is there).
    pub async fn produce(
        self: &Arc<Self>,
        peer: PeerId,
        args: ProduceArgs,
    ) -> Result<Produced, ClientError> {
        let pending = self.state().core.begin_produce(peer, args)?;
        let answer = self.call(&pending.target, pending.call.clone()).await?;
        let (produced, work) = self.with_core(|core| core.handle_produced(peer, pending, answer));
        let rooms = self.clone();
        tokio::spawn(async move { rooms.drive(work).await });
        produced
    }

    /// Creates a paused consumer of another peer's producer.
    pub async fn consume(&self, peer: PeerId, args: ConsumeArgs) -> Result<Consumed, ClientError> {
        let pending = self.state().core.begin_consume(peer, args)?;
        let answer = self.call(&pending.target, pending.call.clone()).await?;
        let (consumed, cleanups) =
            self.with_core(|core| core.handle_consumed(peer, pending, answer));
        self.drive(cleanups).await;
        consumed
    }

    /// Pauses, resumes or closes one of the peer's producers.
    pub async fn producer_action(
        &self,
        peer: PeerId,
        producer: &str,
        action: ProducerAction,
    ) -> Result<Done, ClientError> {
        let (found, work) = self.with_core(|core| {
            let found = core.producer_request(peer, producer, action)?;
            Ok::<_, ClientError>((found, core.copies_of(peer, found.1)))
        });
        // A close's copies are closed by the core's cleanups.
        self.drive(work).await;
        let ((target, producer), copies) = found?;
        let router = target.router;
        match action {
            ProducerAction::Pause => {
                self.call(&target, call::PauseProducer { router, producer })
                    .await
            }
            ProducerAction::Resume => {
                self.call(&target, call::ResumeProducer { router, producer })
                    .await
            }
            ProducerAction::Close => {
                self.call(&target, call::CloseProducer { router, producer })
                    .await
            }
        }?;
        // Its copies in the room's other routers follow, so that their consumers hear of it.
        for copy in copies {
            let router = copy.router;
            let relayed = match action {
                ProducerAction::Pause => {
                    self.call(&copy, call::PauseProducer { router, producer })
                        .await
                }
                ProducerAction::Resume => {
                    self.call(&copy, call::ResumeProducer { router, producer })
                        .await
                }
                ProducerAction::Close => Ok(()),
            };
            if let Err(e) = relayed {
                tracing::warn!(%producer, %router, "relaying {action:?} to a copy failed: {e}");
            }
        }
        Ok(Done {})
    }

    /// Pauses, resumes or closes one of the peer's consumers, or sets its preferred layers.
    pub async fn consumer_action(
        &self,
        peer: PeerId,
        consumer: &str,
        action: ConsumerAction,
    ) -> Result<Done, ClientError> {
        let (found, cleanups) =
            self.with_core(|core| core.consumer_request(peer, consumer, action));
        self.drive(cleanups).await;
        let (target, consumer) = found?;
        let router = target.router;
        match action {
            ConsumerAction::Pause => {
                self.call(&target, call::PauseConsumer { router, consumer })
                    .await
            }
            ConsumerAction::Resume => {
                self.call(&target, call::ResumeConsumer { router, consumer })
                    .await
            }
            ConsumerAction::Close => {
                self.call(&target, call::CloseConsumer { router, consumer })
                    .await
            }
            ConsumerAction::PreferredLayers { spatial, temporal } => {
                let layers = call::SetConsumerPreferredLayers {
                    router,
                    consumer,
                    spatial_layer: spatial,
                    temporal_layer: temporal,
                };
                self.call(&target, layers).await
            }
        }?;
        Ok(Done {})
    }
}
