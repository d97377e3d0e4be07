//! What the node reports: the load of each worker (its heartbeat, on its own) and, only when
//! the supervisor asks, the media statistics of a router or the diagnostics of some of its
//! objects.

use futures_util::future::join_all;
use ipc::calls as call;
use std::sync::atomic::Ordering;

use ipc::messages::{
    ConsumerDiagnostics, ConsumerId, ConsumerStats, DataProducerStats, Diagnostics, LoadReport,
    NodeError, ProducerDiagnostics, ProducerId, ProducerStats, RouterId, RouterStats,
    StreamDiagnostics, TransportDiagnostics, TransportId, TransportStats, WorkerLoad,
};
use mediasoup::consumer::{ConsumerLayers, ConsumerRtpStreamStat};
use mediasoup::prelude::*;
use mediasoup::types::data_structures::TransportTuple;

use super::Routers;

impl Routers {
    /// Counts of every worker, and their CPU time.
    pub fn load(&self) -> LoadReport {
        let mut workers: Vec<WorkerLoad> = self
            .workers
            .iter()
            .enumerate()
            .map(|(index, slot)| WorkerLoad {
                worker: index as u32,
                cpu_time_ms: slot.cpu_time_ms(),
                ..WorkerLoad::default()
            })
            .collect();
        for hosted in self.state().values_mut() {
            // Pipe consumers to a router that went away are closed by mediasoup: forget them.
            hosted.pipe_consumers.retain(|_, e| !e.object.closed());
            if let Some(load) = workers.get_mut(hosted.worker as usize) {
                load.routers += 1;
                load.transports += (hosted.transports.len() + hosted.pipe_transports.len()) as u32;
                load.producers += hosted.producers.len() as u32;
                // Data consumers forward too (every chat message to each of them): they count
                // against the worker like media consumers.
                load.consumers += (hosted.consumers.len()
                    + hosted.pipe_consumers.len()
                    + hosted.data_consumers.len()
                    + hosted.pipe_data_consumers.len()) as u32;
            }
        }
        LoadReport { workers }
    }

    /// Scores, pause states and bitrates of every producer and consumer of `router`, and its
    /// transports' states. Objects closed while their stats are being read are left out.
    pub async fn media_stats(&self, router: RouterId) -> Result<RouterStats, NodeError> {
        // Clones of the handles, so that no lock is held while the worker answers.
        let (producers, consumers, transports) = self.with_router(router, |r| {
            let producers: Vec<(ProducerId, Producer)> = r
                .producers
                .iter()
                .map(|(id, e)| (*id, e.object.clone()))
                .collect();
            let consumers: Vec<(ConsumerId, Consumer)> = r
                .consumers
                .iter()
                .map(|(id, e)| (*id, e.object.clone()))
                .collect();
            let transports: Vec<TransportStats> = r
                .transports
                .iter()
                .map(|(id, t)| TransportStats {
                    transport: *id,
                    ice_state: state_name(t.ice_state()),
                    dtls_state: state_name(t.dtls_state()),
                })
                .collect();
            let data_producers: Vec<DataProducerStats> = r
                .data_producers
                .iter()
                .filter_map(|(id, e)| {
                    let counts = e.object.counts.as_ref()?;
                    Some(DataProducerStats {
                        data_producer: *id,
                        relayed: counts.relayed.load(Ordering::Relaxed),
                        dropped: counts.dropped.load(Ordering::Relaxed),
                    })
                })
                .collect();
            Ok((producers, consumers, (transports, data_producers)))
        })?;
        let (transports, data_producers) = transports;
        let mut stats = RouterStats {
            router,
            producers: Vec::with_capacity(producers.len()),
            consumers: Vec::with_capacity(consumers.len()),
            transports,
            data_producers,
        };
        // Every request at once: the worker answers them in turn, without a round trip
        // between each (a room of 50 has some 2,500 consumers).
        let producer_stats =
            join_all(producers.iter().map(|(_, producer)| producer.get_stats())).await;
        for ((id, producer), streams) in producers.into_iter().zip(producer_stats) {
            let Ok(streams) = streams else {
                continue;
            };
            stats.producers.push(ProducerStats {
                producer: id,
                paused: producer.paused(),
                score: producer.score().iter().map(|s| s.score).max(),
                bitrate_bps: streams.iter().map(|s| s.bitrate).sum(),
            });
        }
        let consumer_stats =
            join_all(consumers.iter().map(|(_, consumer)| consumer.get_stats())).await;
        for ((id, consumer), streams) in consumers.into_iter().zip(consumer_stats) {
            let Ok(streams) = streams else {
                continue;
            };
            let score = consumer.score();
            stats.consumers.push(ConsumerStats {
                consumer: id,
                paused: consumer.paused(),
                producer_paused: consumer.producer_paused(),
                score: score.score,
                producer_score: score.producer_score,
                // The outbound stream: what this consumer sends to its client.
                bitrate_bps: streams
                    .iter()
                    .map(|s| match s {
                        ConsumerRtpStreamStat::Outbound(s) => s.bitrate,
                        ConsumerRtpStreamStat::Inbound(_) => 0,
                    })
                    .sum(),
            });
        }
        Ok(stats)
    }

    /// Everything the worker says of the given objects of `router` (one participant's).
    pub async fn diagnose(&self, call: call::Diagnose) -> Result<Diagnostics, NodeError> {
        let (transports, producers, consumers) = self.with_router(call.router, |r| {
            let transports: Vec<(TransportId, WebRtcTransport)> = call
                .transports
                .iter()
                .filter_map(|id| Some((*id, r.transports.get(id)?.clone())))
                .collect();
            let producers: Vec<(ProducerId, Producer)> = call
                .producers
                .iter()
                .filter_map(|id| Some((*id, r.producers.get(id)?.object.clone())))
                .collect();
            let consumers: Vec<(ConsumerId, Consumer)> = call
                .consumers
                .iter()
                .filter_map(|id| Some((*id, r.consumers.get(id)?.object.clone())))
                .collect();
            Ok((transports, producers, consumers))
        })?;
        let mut diagnostics = Diagnostics::default();
        let transport_stats = join_all(
            transports
                .iter()
                .map(|(_, transport)| transport.get_stats()),
        )
        .await;
        for ((id, _), stats) in transports.into_iter().zip(transport_stats) {
            let Ok(stats) = stats else {
                continue;
            };
            let Some(stat) = stats.first() else { continue };
            diagnostics.transports.push(TransportDiagnostics {
                transport: id,
                ice_state: state_name(stat.ice_state),
                selected_tuple: stat.ice_selected_tuple.as_ref().map(tuple),
                remote_ip: stat.ice_selected_tuple.as_ref().and_then(remote_ip),
                protocol: stat
                    .ice_selected_tuple
                    .as_ref()
                    .map(|t| state_name(t.protocol())),
                dtls_state: state_name(stat.dtls_state),
                bytes_received: stat.bytes_received,
                bytes_sent: stat.bytes_sent,
                available_outgoing_bitrate: stat
                    .available_outgoing_bitrate
                    .map(|b| u32::try_from(b).unwrap_or(u32::MAX)),
            });
        }
        let producer_stats =
            join_all(producers.iter().map(|(_, producer)| producer.get_stats())).await;
        for ((id, producer), streams) in producers.into_iter().zip(producer_stats) {
            let Ok(streams) = streams else {
                continue;
            };
            diagnostics.producers.push(ProducerDiagnostics {
                producer: id,
                paused: producer.paused(),
                streams: streams
                    .iter()
                    .map(|s| StreamDiagnostics {
                        ssrc: s.ssrc,
                        rid: s.rid.clone(),
                        score: s.score,
                        bitrate_bps: u32::try_from(s.bitrate).unwrap_or(u32::MAX),
                        packets_lost: u64::try_from(s.packets_lost).unwrap_or(0),
                        nack_count: s.nack_count,
                        pli_count: s.pli_count,
                        fir_count: s.fir_count,
                        round_trip_time_ms: s.round_trip_time,
                    })
                    .collect(),
            });
        }
        let consumer_stats =
            join_all(consumers.iter().map(|(_, consumer)| consumer.get_stats())).await;
        for ((id, consumer), streams) in consumers.into_iter().zip(consumer_stats) {
            let Ok(streams) = streams else {
                continue;
            };
            let score = consumer.score();
            let layers = |l: Option<ConsumerLayers>| {
                l.map(|l| (l.spatial_layer, l.temporal_layer.unwrap_or(0)))
            };
            let stream = streams.iter().find_map(|s| match s {
                ConsumerRtpStreamStat::Outbound(s) => Some(StreamDiagnostics {
                    ssrc: s.ssrc,
                    rid: None,
                    score: s.score,
                    bitrate_bps: u32::try_from(s.bitrate).unwrap_or(u32::MAX),
                    packets_lost: u64::try_from(s.packets_lost).unwrap_or(0),
                    nack_count: s.nack_count,
                    pli_count: s.pli_count,
                    fir_count: s.fir_count,
                    round_trip_time_ms: s.round_trip_time,
                }),
                ConsumerRtpStreamStat::Inbound(_) => None,
            });
            diagnostics.consumers.push(ConsumerDiagnostics {
                consumer: id,
                paused: consumer.paused(),
                producer_paused: consumer.producer_paused(),
                score: score.score,
                producer_score: score.producer_score,
                current_layers: layers(consumer.current_layers()),
                preferred_layers: layers(consumer.preferred_layers()),
                stream,
            });
        }
        Ok(diagnostics)
    }
}

/// mediasoup's name of an ICE or DTLS state (`connected`, `failed`, …).
fn state_name(state: impl std::fmt::Debug) -> String {
    format!("{state:?}").to_lowercase()
}

/// `local:port ⇄ remote:port (udp)`.
fn remote_ip(tuple: &TransportTuple) -> Option<std::net::IpAddr> {
    match tuple {
        TransportTuple::WithRemote { remote_ip, .. } => Some(*remote_ip),
        TransportTuple::LocalOnly { .. } => None,
    }
}

fn tuple(tuple: &TransportTuple) -> String {
    let protocol = state_name(tuple.protocol());
    match tuple {
        TransportTuple::WithRemote {
            local_address,
            local_port,
            remote_ip,
            remote_port,
            ..
        } => format!("{local_address}:{local_port} ⇄ {remote_ip}:{remote_port} ({protocol})"),
        TransportTuple::LocalOnly {
            local_address,
            local_port,
            ..
        } => format!("{local_address}:{local_port} ({protocol})"),
    }
}
