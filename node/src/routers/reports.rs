//! What the node reports on its own: the load of each worker (its heartbeat) and the media
//! statistics of every router.

use ipc::messages::{
    ConsumerId, ConsumerStats, LoadReport, ProducerId, ProducerStats, RouterId, RouterStats,
    StatsReport, WorkerLoad,
};
use mediasoup::consumer::ConsumerRtpStreamStat;
use mediasoup::prelude::*;

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
                load.consumers += (hosted.consumers.len() + hosted.pipe_consumers.len()) as u32;
            }
        }
        LoadReport { workers }
    }

    /// Scores, pause states and bitrates of every producer and consumer. Objects closed
    /// while their stats are being read are left out.
    pub async fn stats(&self) -> StatsReport {
        // Clones of the handles, so that no lock is held while the workers answer.
        type Handles = (
            RouterId,
            Vec<(ProducerId, Producer)>,
            Vec<(ConsumerId, Consumer)>,
        );
        let routers: Vec<Handles> = self
            .state()
            .iter()
            .map(|(id, r)| {
                let producers = r.producers.iter().map(|(id, e)| (*id, e.object.clone()));
                let consumers = r.consumers.iter().map(|(id, e)| (*id, e.object.clone()));
                (*id, producers.collect(), consumers.collect())
            })
            .collect();
        let mut report = StatsReport::default();
        for (router, producers, consumers) in routers {
            let mut stats = RouterStats {
                router,
                producers: Vec::with_capacity(producers.len()),
                consumers: Vec::with_capacity(consumers.len()),
            };
            for (id, producer) in producers {
                let Ok(streams) = producer.get_stats().await else {
                    continue;
                };
                stats.producers.push(ProducerStats {
                    producer: id,
                    paused: producer.paused(),
                    score: producer.score().iter().map(|s| s.score).max(),
                    bitrate_bps: streams.iter().map(|s| s.bitrate).sum(),
                });
            }
            for (id, consumer) in consumers {
                let Ok(streams) = consumer.get_stats().await else {
                    continue;
                };
                let score = consumer.score();
                stats.consumers.push(ConsumerStats {
                    consumer: id,
                    paused: consumer.paused(),
                    producer_paused: consumer.producer_paused(),
                    score: score.score,
                    producer_score: score.producer_score,
                    // The outbound streams: what this consumer sends to its client.
                    bitrate_bps: streams
                        .iter()
                        .map(|s| match s {
                            ConsumerRtpStreamStat::Outbound(s) => s.bitrate,
                            ConsumerRtpStreamStat::Inbound(_) => 0,
                        })
                        .sum(),
                });
            }
            report.routers.push(stats);
        }
        report
    }
}
