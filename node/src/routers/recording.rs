//! Recording taps: a producer consumed on a plain RTP transport (RTCP multiplexed, no SRTP:
//! the recorder is on this host) that sends to the recorder process's socket. The consumer's
//! capabilities are the router's without RTX, so a retransmission the recorder NACKs comes
//! back as the original packet, and without header extensions, which the recorder ignores.

use std::net::IpAddr;

use ipc::calls as call;
use ipc::messages::{
    ConsumerId, NodeError, NodeErrorCode, ProducerId, Response, RouterId, TransportId,
};
use mediasoup::prelude::*;

use crate::media_config::pipe_listen_info;

use super::{ipc_kind, media_error, not_found, Answer, Routers};

/// A recording tap of one producer.
pub(super) struct Tap {
    transport: PlainTransport,
    consumer: Consumer,
}

/// The router's capabilities as a recorder's: no RTX, no header extensions.
fn recorder_capabilities(router: &Router) -> Result<RtpCapabilities, NodeError> {
    let internal = |e: serde_json::Error| {
        NodeError::new(
            NodeErrorCode::Internal,
            format!("recorder capabilities: {e}"),
        )
    };
    let mut caps = serde_json::to_value(router.rtp_capabilities()).map_err(internal)?;
    if let Some(codecs) = caps.get_mut("codecs").and_then(|c| c.as_array_mut()) {
        codecs.retain(|codec| {
            codec
                .get("mimeType")
                .and_then(|m| m.as_str())
                .is_none_or(|m| !m.eq_ignore_ascii_case("video/rtx"))
        });
    }
    caps["headerExtensions"] = serde_json::Value::Array(Vec::new());
    serde_json::from_value(caps).map_err(internal)
}

impl Routers {
    /// A tap of `producer`: its plain transport and (paused) consumer, and the codec the
    /// recorder will receive.
    pub(super) async fn record_producer(&self, router: RouterId, producer: ProducerId) -> Answer {
        let (r, source) = self.with_router(router, |r| {
            let source = r
                .producers
                .get(&producer)
                .map(|e| e.object.clone())
                .ok_or_else(|| not_found("producer", producer))?;
            Ok((r.router.clone(), source))
        })?;
        let transport = r
            .create_plain_transport(PlainTransportOptions::new(pipe_listen_info(self.pipe_ip)))
            .await
            .map_err(|e| media_error("create recording transport", e))?;
        let mut options = ConsumerOptions::new(source.id(), recorder_capabilities(&r)?);
        options.paused = true;
        // mediasoup keeps NACK (and a retransmission buffer) for audio consumers only with
        // this on; the capabilities hold no RTX codec, so nothing is sent as RTX.
        options.enable_rtx = Some(true);
        let consumer = transport
            .consume(options)
            .await
            .map_err(|e| media_error("consume for recording", e))?;
        let codec = serde_json::to_value(consumer.rtp_parameters().codecs.first())
            .map_err(|e| NodeError::new(NodeErrorCode::Internal, e.to_string()))?;
        let ssrc = consumer
            .rtp_parameters()
            .encodings
            .first()
            .and_then(|e| e.ssrc)
            .unwrap_or(0);
        let id = TransportId(transport.id().into());
        let tuple = transport.tuple();
        let answer = call::RecordingCreated {
            transport: id,
            consumer: ConsumerId(consumer.id().into()),
            kind: ipc_kind(consumer.kind()),
            mime_type: codec["mimeType"].as_str().unwrap_or_default().to_string(),
            payload_type: codec["payloadType"].as_u64().unwrap_or(0) as u8,
            clock_rate: codec["clockRate"].as_u64().unwrap_or(0) as u32,
            ssrc,
            ip: tuple.local_address().clone(),
            port: tuple.local_port(),
        };
        self.with_router(router, |r| {
            r.taps.insert(
                id,
                Tap {
                    transport,
                    consumer,
                },
            );
            Ok(Response::RecordingCreated(answer))
        })
    }

    /// Points the tap `transport` at the recorder's socket, resumes it and asks a key frame.
    pub(super) async fn connect_recording(
        &self,
        router: RouterId,
        transport: TransportId,
        ip: &str,
        port: u16,
    ) -> Answer {
        let ip: IpAddr = ip.parse().map_err(|e| {
            NodeError::new(
                NodeErrorCode::InvalidArgument,
                format!("recorder address {ip:?}: {e}"),
            )
        })?;
        let (plain, consumer) = self.with_router(router, |r| {
            r.taps
                .get(&transport)
                .map(|t| (t.transport.clone(), t.consumer.clone()))
                .ok_or_else(|| not_found("recording", transport))
        })?;
        plain
            .connect(PlainTransportRemoteParameters {
                ip: Some(ip),
                port: Some(port),
                rtcp_port: None,
                srtp_parameters: None,
            })
            .await
            .map_err(|e| media_error("connect recording", e))?;
        consumer
            .resume()
            .await
            .map_err(|e| media_error("resume recording", e))?;
        // The recorder asks too (PLI); this one saves it a round trip.
        let _ = consumer.request_key_frame().await;
        Ok(Response::Done)
    }

    /// Closes the tap `transport` (and its consumer).
    pub(super) fn close_recording(&self, router: RouterId, transport: TransportId) -> Answer {
        self.with_router(router, |r| {
            r.taps
                .remove(&transport)
                .map(|_| Response::Done)
                .ok_or_else(|| not_found("recording", transport))
        })
    }
}
