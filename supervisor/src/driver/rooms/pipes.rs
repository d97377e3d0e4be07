//! Links and pipes between a room's routers, performed: the core orders them
//! ([`room_core::rooms::LinkOrder`], [`room_core::rooms::PipeOrder`]), these carry them out on
//! the nodes and return what the core needs to know, failures typed ([`PipeError`]).

use ipc::calls as call;
use ipc::messages::{DataProducerId, ProducerId, TransportId};

use super::Rooms;
use crate::driver::node_link::{LinkError, NodeId};
use ipc::calls::Call;
use room_core::rooms::{LinkOrder, PipeError, PipeOrder, Relayed};

/// `node` failed `step` with `error`.
fn step(node: NodeId, step: &'static str) -> impl Fn(LinkError) -> PipeError {
    move |error| PipeError::Step {
        node,
        step,
        reason: error.to_string(),
    }
}

/// A node a link or pipe calls: this host's or another's.
struct PipeNode<'a> {
    rooms: &'a Rooms,
    node: NodeId,
}

impl PipeNode<'_> {
    async fn call<C: Call>(&self, call: C) -> Result<C::Answer, LinkError> {
        self.rooms.node_call(self.node, call).await
    }
}

impl Rooms {
    /// `node`, for a link or pipe.
    fn pipe_node(&self, node: NodeId) -> Result<PipeNode<'_>, PipeError> {
        let known = self.pool.link(node).is_some() || self.remote_place(node).is_some();
        if !known {
            return Err(PipeError::NodeGone(node));
        }
        Ok(PipeNode { rooms: self, node })
    }

    /// Creates a pipe transport on each side and connects each to the other. On failure,
    /// what was created is closed again.
    pub(super) async fn link(
        &self,
        order: LinkOrder,
    ) -> Result<(TransportId, TransportId), PipeError> {
        let (low, high) = (order.low, order.high);
        let low_node = self.pipe_node(low.node)?;
        let high_node = self.pipe_node(high.node)?;
        // Between two hosts the pipe crosses a network: SRTP.
        let srtp = self.remote_place(low.node).is_some() || self.remote_place(high.node).is_some();
        let a = low_node
            .call(call::CreatePipeTransport {
                router: low.router,
                srtp,
            })
            .await
            .map_err(step(low.node, "create pipe transport"))?;
        let close_a = call::CloseTransport {
            router: low.router,
            transport: a.transport,
        };
        let b = match high_node
            .call(call::CreatePipeTransport {
                router: high.router,
                srtp,
            })
            .await
        {
            Ok(b) => b,
            Err(e) => {
                let _ = low_node.call(close_a).await;
                return Err(step(high.node, "create pipe transport")(e));
            }
        };
        let close_b = call::CloseTransport {
            router: high.router,
            transport: b.transport,
        };
        let connected = async {
            low_node
                .call(call::ConnectPipeTransport {
                    router: low.router,
                    transport: a.transport,
                    ip: b.ip.clone(),
                    port: b.port,
                    srtp: b.srtp.clone(),
                })
                .await
                .map_err(step(low.node, "connect pipe transport"))?;
            high_node
                .call(call::ConnectPipeTransport {
                    router: high.router,
                    transport: b.transport,
                    ip: a.ip.clone(),
                    port: a.port,
                    srtp: a.srtp.clone(),
                })
                .await
                .map_err(step(high.node, "connect pipe transport"))
        };
        if let Err(e) = connected.await {
            let _ = low_node.call(close_a).await;
            let _ = high_node.call(close_b).await;
            return Err(e);
        }
        tracing::debug!(low = %low.router, high = %high.router, srtp, "routers linked: {}:{} <-> {}:{}", a.ip, a.port, b.ip, b.port);
        Ok((a.transport, b.transport))
    }

    /// Makes a producer or data producer available in another router: within a node,
    /// mediasoup pipes it; between nodes, it is consumed into one pipe transport and produced
    /// out of the other.
    pub(super) async fn pipe(&self, order: &PipeOrder) -> Result<(), PipeError> {
        match order.what {
            Relayed::Media(producer) => self.pipe_media(order, producer).await,
            Relayed::Data(data_producer) => self.pipe_data(order, data_producer).await,
        }
    }

    async fn pipe_media(&self, order: &PipeOrder, producer: ProducerId) -> Result<(), PipeError> {
        let from = self.pipe_node(order.from.node)?;
        let Some((from_transport, to_transport)) = order.via else {
            return from
                .call(call::PipeToRouter {
                    router: order.from.router,
                    producer,
                    target: order.to.router,
                })
                .await
                .map_err(step(order.from.node, "pipe to router"));
        };
        let to = self.pipe_node(order.to.node)?;
        let sent = from
            .call(call::PipeConsume {
                router: order.from.router,
                transport: from_transport,
                producer,
            })
            .await
            .map_err(step(order.from.node, "pipe consume"))?;
        let received = to
            .call(call::PipeProduce {
                router: order.to.router,
                transport: to_transport,
                producer,
                kind: sent.kind,
                rtp_parameters: sent.rtp_parameters,
                paused: sent.producer_paused,
            })
            .await;
        if let Err(e) = received {
            let close = call::CloseConsumer {
                router: order.from.router,
                consumer: sent.consumer,
            };
            let _ = from.call(close).await;
            return Err(step(order.to.node, "pipe produce")(e));
        }
        Ok(())
    }

    async fn pipe_data(
        &self,
        order: &PipeOrder,
        data_producer: DataProducerId,
    ) -> Result<(), PipeError> {
        let from = self.pipe_node(order.from.node)?;
        let Some((from_transport, to_transport)) = order.via else {
            return from
                .call(call::PipeDataToRouter {
                    router: order.from.router,
                    data_producer,
                    target: order.to.router,
                })
                .await
                .map_err(step(order.from.node, "pipe data to router"));
        };
        let to = self.pipe_node(order.to.node)?;
        let sent = from
            .call(call::PipeConsumeData {
                router: order.from.router,
                transport: from_transport,
                data_producer,
            })
            .await
            .map_err(step(order.from.node, "pipe consume data"))?;
        let received = to
            .call(call::PipeProduceData {
                router: order.to.router,
                transport: to_transport,
                data_producer,
                sctp_stream_parameters: sent.sctp_stream_parameters,
                label: sent.label,
                protocol: sent.protocol,
            })
            .await;
        if let Err(e) = received {
            let close = call::CloseDataConsumer {
                router: order.from.router,
                data_consumer: sent.data_consumer,
            };
            let _ = from.call(close).await;
            return Err(step(order.to.node, "pipe produce data")(e));
        }
        Ok(())
    }
}
