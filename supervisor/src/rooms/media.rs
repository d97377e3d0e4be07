//! A joined peer's media requests, performed: the core checks and builds each call, the
//! room's node carries it out, and the core records the answer.

use ipc::calls as call;
use serde_json::{Map, Value};

use super::core::{RoomCore, Target};
use super::{link_error, perform, Rooms};
use crate::protocol::{
    ClientError, ConsumeArgs, Consumed, ConsumerAction, Direction, Done, IceRestarted, PeerId,
    ProduceArgs, Produced, ProducerAction, RouterCapabilities, TransportCreated,
};

impl Rooms {
    /// The router RTP capabilities of the peer's room.
    pub fn router_rtp_capabilities(&self, peer: PeerId) -> Result<RouterCapabilities, ClientError> {
        self.state().core.router_rtp_capabilities(peer)
    }

    /// Sends `c` to the node of `target`.
    async fn call<C: ipc::calls::Call>(
        &self,
        target: &Target,
        c: C,
    ) -> Result<C::Answer, ClientError> {
        self.link(target.node)?.call(c).await.map_err(link_error)
    }

    /// Creates a WebRTC transport for `peer`.
    pub async fn create_transport(
        &self,
        peer: PeerId,
        direction: Direction,
    ) -> Result<TransportCreated, ClientError> {
        let target = self.state().core.begin_create_transport(peer)?;
        let room = target.room.clone();
        let answer = self
            .call(&target, call::CreateWebRtcTransport { room })
            .await?;
        let (created, cleanups) =
            self.with_core(|core| core.handle_transport_created(peer, &target, direction, answer));
        perform(&self.pool, cleanups).await;
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
        let room = target.room.clone();
        let answer = self
            .call(&target, call::RestartIce { room, transport })
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
        perform(&self.pool, cleanups).await;
        let (target, c) = closed?;
        self.call(&target, c).await?;
        Ok(Done {})
    }

    /// Creates a producer and tells the other peers.
    pub async fn produce(&self, peer: PeerId, args: ProduceArgs) -> Result<Produced, ClientError> {
        let pending = self.state().core.begin_produce(peer, args)?;
        let answer = self.call(&pending.target, pending.call.clone()).await?;
        let (produced, cleanups) =
            self.with_core(|core| core.handle_produced(peer, pending, answer));
        perform(&self.pool, cleanups).await;
        produced
    }

    /// Creates a paused consumer of another peer's producer.
    pub async fn consume(&self, peer: PeerId, args: ConsumeArgs) -> Result<Consumed, ClientError> {
        let pending = self.state().core.begin_consume(peer, args)?;
        let answer = self.call(&pending.target, pending.call.clone()).await?;
        let (consumed, cleanups) =
            self.with_core(|core| core.handle_consumed(peer, pending, answer));
        perform(&self.pool, cleanups).await;
        consumed
    }

    /// Pauses, resumes or closes one of the peer's producers.
    pub async fn producer_action(
        &self,
        peer: PeerId,
        producer: &str,
        action: ProducerAction,
    ) -> Result<Done, ClientError> {
        let (found, cleanups) =
            self.with_core(|core| core.producer_request(peer, producer, action));
        perform(&self.pool, cleanups).await;
        let (target, producer) = found?;
        let room = target.room.clone();
        match action {
            ProducerAction::Pause => {
                self.call(&target, call::PauseProducer { room, producer })
                    .await
            }
            ProducerAction::Resume => {
                self.call(&target, call::ResumeProducer { room, producer })
                    .await
            }
            ProducerAction::Close => {
                self.call(&target, call::CloseProducer { room, producer })
                    .await
            }
        }?;
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
        perform(&self.pool, cleanups).await;
        let (target, consumer) = found?;
        let room = target.room.clone();
        match action {
            ConsumerAction::Pause => {
                self.call(&target, call::PauseConsumer { room, consumer })
                    .await
            }
            ConsumerAction::Resume => {
                self.call(&target, call::ResumeConsumer { room, consumer })
                    .await
            }
            ConsumerAction::Close => {
                self.call(&target, call::CloseConsumer { room, consumer })
                    .await
            }
            ConsumerAction::PreferredLayers { spatial, temporal } => {
                let layers = call::SetConsumerPreferredLayers {
                    room,
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
