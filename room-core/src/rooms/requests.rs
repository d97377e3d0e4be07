//! A client's request, begun: answered at once from the directory, or turned into the node
//! call that carries it out and the [`Step`] that records its answer (see `contract`).

use ipc::calls as call;
use signaling_api::{
    Answer, ClientError, ClientErrorCode, ConsumerAction, Done, PeerId, ProducerAction, Request,
};

use super::contract::Step;
use super::{RoomCore, Target};
use crate::NodeId;
use ipc::messages::RoomId;

impl RoomCore {
    /// The room `peer` may start or stop recording: the recording itself runs outside the
    /// core (a recorder process, files), so the driver asks this first.
    pub fn recording_room(&self, peer: PeerId) -> Result<RoomId, ClientError> {
        let (room, _) = self.room_of_peer(peer)?;
        let (_, me) = self.peer(peer)?;
        if !me.rights.record {
            return Err(ClientError::new(
                ClientErrorCode::Forbidden,
                "the join token does not allow recording (canRecord)",
            ));
        }
        Ok(room.clone())
    }

    pub(super) fn begin(&mut self, peer: PeerId, request: Request) -> Result<Begun, ClientError> {
        let done = |target: Target, request: call::Request| {
            Ok(Begun::Call(target.node, request, Step::Done))
        };
        match request {
            Request::Join(_) | Request::Resume(_) => Err(ClientError::new(
                ClientErrorCode::Internal,
                "join and resume are inputs of their own",
            )),
            Request::StartRecording(_) | Request::StopRecording => Err(ClientError::new(
                ClientErrorCode::Internal,
                "recordings are the driver's (see RoomCore::recording_room)",
            )),
            Request::Leave => {
                self.handle_leave(peer)?;
                Ok(Begun::Now(Answer::Done(Done {})))
            }
            Request::GetRouterRtpCapabilities => Ok(Begun::Now(Answer::RouterCapabilities(
                self.router_rtp_capabilities(peer)?,
            ))),
            Request::CreateWebRtcTransport(args) => {
                let target = self.begin_create_transport(peer)?;
                let create = call::CreateWebRtcTransport {
                    router: target.router,
                    enable_sctp: args.data,
                };
                let step = Step::CreateTransport {
                    target,
                    direction: args.direction,
                };
                Ok(Begun::Call(target.node, create.into(), step))
            }
            Request::ConnectWebRtcTransport(args) => {
                let (target, c) =
                    self.begin_connect_transport(peer, &args.transport_id, args.dtls_parameters)?;
                done(target, c.into())
            }
            Request::RestartIce(args) => {
                let (target, transport) = self.own_transport(peer, &args.transport_id, None)?;
                let router = target.router;
                let c = call::RestartIce { router, transport };
                Ok(Begun::Call(target.node, c.into(), Step::IceRestart))
            }
            Request::CloseTransport(args) => {
                let (target, c) = self.close_transport(peer, &args.transport_id)?;
                done(target, c.into())
            }
            Request::Produce(args) => {
                let pending = self.begin_produce(peer, args)?;
                let (node, c) = (pending.target.node, pending.call.clone());
                Ok(Begun::Call(node, c.into(), Step::Produce(pending)))
            }
            Request::Consume(args) => {
                let pending = self.begin_consume(peer, args)?;
                let (node, c) = (pending.target.node, pending.call.clone());
                Ok(Begun::Call(node, c.into(), Step::Consume(pending)))
            }
            Request::ProduceData(args) => {
                let pending = self.begin_produce_data(peer, args)?;
                let (node, c) = (pending.target.node, pending.call.clone());
                Ok(Begun::Call(node, c.into(), Step::ProduceData(pending)))
            }
            Request::ConsumeData(args) => {
                let pending = self.begin_consume_data(peer, args)?;
                let (node, c) = (pending.target.node, pending.call.clone());
                Ok(Begun::Call(node, c.into(), Step::ConsumeData(pending)))
            }
            Request::Producer {
                producer_id,
                action,
            } => {
                // A close forgets the producer (and closes its copies) at once.
                let (target, producer) = self.producer_request(peer, &producer_id, action)?;
                let copies = self.copies_of(peer, producer);
                let router = target.router;
                let c: call::Request = match action {
                    ProducerAction::Pause => call::PauseProducer { router, producer }.into(),
                    ProducerAction::Resume => call::ResumeProducer { router, producer }.into(),
                    ProducerAction::Close => call::CloseProducer { router, producer }.into(),
                };
                let step = Step::ProducerAction {
                    producer,
                    copies,
                    action,
                };
                Ok(Begun::Call(target.node, c, step))
            }
            Request::SetLastN(args) => {
                self.set_last_n(peer, args)?;
                Ok(Begun::Now(Answer::Done(Done {})))
            }
            Request::Consumer {
                consumer_id,
                action,
            } => {
                let (target, consumer) = self.consumer_request(peer, &consumer_id, action)?;
                let pause = match action {
                    ConsumerAction::Pause => Some(true),
                    ConsumerAction::Resume => Some(false),
                    _ => None,
                };
                // Held by last-N: paused at the node already; the client's wish is kept.
                if pause.is_some_and(|pause| !self.client_pauses(peer, consumer, pause)) {
                    return Ok(Begun::Now(Answer::Done(Done {})));
                }
                let router = target.router;
                let c: call::Request = match action {
                    ConsumerAction::Pause => call::PauseConsumer { router, consumer }.into(),
                    ConsumerAction::Resume => call::ResumeConsumer { router, consumer }.into(),
                    ConsumerAction::Close => call::CloseConsumer { router, consumer }.into(),
                    ConsumerAction::PreferredLayers { spatial, temporal } => {
                        call::SetConsumerPreferredLayers {
                            router,
                            consumer,
                            spatial_layer: spatial,
                            temporal_layer: temporal,
                        }
                        .into()
                    }
                };
                done(target, c)
            }
        }
    }
}

/// A request begun: answered at once, or a node call.
pub(super) enum Begun {
    Now(Answer),
    Call(NodeId, call::Request, Step),
}
