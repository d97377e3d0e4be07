//! Links and pipes between a room's routers, performed: the core orders them
//! ([`room_core::rooms::LinkOrder`], [`room_core::rooms::PipeOrder`]), these carry them out on the nodes
//! and return what the core needs to know.

use ipc::calls as call;
use ipc::messages::TransportId;

use super::Rooms;
use room_core::rooms::{DataPipeOrder, LinkOrder, PipeOrder};

impl Rooms {
    /// Creates a pipe transport on each side and connects each to the other. On failure,
    /// what was created is closed again.
    pub(super) async fn link(
        &self,
        order: LinkOrder,
    ) -> Result<(TransportId, TransportId), String> {
        let (low, high) = (order.low, order.high);
        let low_node = self.node(low.node).map_err(|e| e.to_string())?;
        let high_node = self.node(high.node).map_err(|e| e.to_string())?;
        let a = low_node
            .call(call::CreatePipeTransport { router: low.router })
            .await
            .map_err(|e| e.to_string())?;
        let close_a = call::CloseTransport {
            router: low.router,
            transport: a.transport,
        };
        let b = match high_node
            .call(call::CreatePipeTransport {
                router: high.router,
            })
            .await
        {
            Ok(b) => b,
            Err(e) => {
                let _ = low_node.call(close_a).await;
                return Err(e.to_string());
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
                })
                .await?;
            high_node
                .call(call::ConnectPipeTransport {
                    router: high.router,
                    transport: b.transport,
                    ip: a.ip.clone(),
                    port: a.port,
                })
                .await
        };
        if let Err(e) = connected.await {
            let _ = low_node.call(close_a).await;
            let _ = high_node.call(close_b).await;
            return Err(e.to_string());
        }
        tracing::debug!(low = %low.router, high = %high.router, "routers linked: {}:{} <-> {}:{}", a.ip, a.port, b.ip, b.port);
        Ok((a.transport, b.transport))
    }

    /// Makes a producer available in another router: within a node, mediasoup pipes it;
    /// between nodes, it is consumed into one pipe transport and produced out of the other.
    pub(super) async fn pipe(&self, order: &PipeOrder) -> Result<(), String> {
        let from = self.node(order.from.node).map_err(|e| e.to_string())?;
        let Some((from_transport, to_transport)) = order.via else {
            return from
                .call(call::PipeToRouter {
                    router: order.from.router,
                    producer: order.producer,
                    target: order.to.router,
                })
                .await
                .map_err(|e| e.to_string());
        };
        let to = self.node(order.to.node).map_err(|e| e.to_string())?;
        let sent = from
            .call(call::PipeConsume {
                router: order.from.router,
                transport: from_transport,
                producer: order.producer,
            })
            .await
            .map_err(|e| e.to_string())?;
        let received = to
            .call(call::PipeProduce {
                router: order.to.router,
                transport: to_transport,
                producer: order.producer,
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
            return Err(e.to_string());
        }
        Ok(())
    }

    /// Makes a data producer available in another router, as [`Self::pipe`] does a producer.
    pub(super) async fn pipe_data(&self, order: &DataPipeOrder) -> Result<(), String> {
        let from = self.node(order.from.node).map_err(|e| e.to_string())?;
        let Some((from_transport, to_transport)) = order.via else {
            return from
                .call(call::PipeDataToRouter {
                    router: order.from.router,
                    data_producer: order.data_producer,
                    target: order.to.router,
                })
                .await
                .map_err(|e| e.to_string());
        };
        let to = self.node(order.to.node).map_err(|e| e.to_string())?;
        let sent = from
            .call(call::PipeConsumeData {
                router: order.from.router,
                transport: from_transport,
                data_producer: order.data_producer,
            })
            .await
            .map_err(|e| e.to_string())?;
        let received = to
            .call(call::PipeProduceData {
                router: order.to.router,
                transport: to_transport,
                data_producer: order.data_producer,
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
            return Err(e.to_string());
        }
        Ok(())
    }
}
