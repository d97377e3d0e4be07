//! Clients' data channels in a router (chat). A client's data producer is not consumed
//! directly: a data consumer on the router's direct transport (the tap) receives each message,
//! [`MessageRate`] decides, and what passes is sent on by a relay, a data producer of the direct
//! transport, which the other peers' data consumers consume. So the message rate limit is
//! exact (the media node sees every message before anyone else does), at the cost of one
//! copy through this process of each message, which chat can afford.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use event_listener_primitives::HandlerId;
use ipc::calls as call;
use ipc::messages::{DataConsumerId, DataProducerId, Json, NodeError, NodeErrorCode, NodeEvent};
use ipc::messages::{Response, RouterId, TransportId};
use mediasoup::prelude::*;

use super::{media_error, not_found, parse, to_json, Answer, Entry, Routers};

/// How long the messages of a data producer that broke the message rate are dropped.
pub(super) const THROTTLE_PAUSE: Duration = Duration::from_secs(1);

/// Messages of a client's data producer, relayed and dropped, counted by its tap.
#[derive(Debug, Default)]
pub(super) struct MessageCounts {
    pub(super) relayed: AtomicU64,
    pub(super) dropped: AtomicU64,
}

/// A data producer as this router's data consumers see it.
pub(super) struct Forwarded {
    /// What data consumers consume (and pipes carry): the relay of a client's data producer,
    /// or a copy piped in from another router.
    pub(super) forwarded: DataProducer,
    /// The client's data producer and its tap, for one of this router's clients.
    pub(super) _origin: Option<(DataProducer, DataConsumer)>,
    /// What its tap relayed and dropped (`None` for a copy).
    pub(super) counts: Option<Arc<MessageCounts>>,
}

/// What [`MessageRate`] says of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit: forward it.
    Pass,
    /// The limit is broken by this message: drop it, and tell its peer.
    Throttle,
    /// Throttled already: drop it.
    Throttled,
}

/// Messages of one data producer per second: at most `limit` in any one-second span (the
/// times of those that passed are kept, `limit` at most), and the one over it throttles for
/// [`THROTTLE_PAUSE`]. Sans-IO: time is an input.
#[derive(Debug)]
pub struct MessageRate {
    limit: u32,
    passed: VecDeque<Instant>,
    throttled_until: Option<Instant>,
}

impl MessageRate {
    /// At most `limit` messages per second.
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            passed: VecDeque::new(),
            throttled_until: None,
        }
    }

    /// A message arrived at `now`.
    pub fn handle_message(&mut self, now: Instant) -> Verdict {
        if self.throttled_until.is_some_and(|until| now < until) {
            return Verdict::Throttled;
        }
        self.throttled_until = None;
        while self
            .passed
            .front()
            .is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(1))
        {
            self.passed.pop_front();
        }
        if self.passed.len() >= self.limit as usize {
            self.passed.clear();
            self.throttled_until = Some(now + THROTTLE_PAUSE);
            return Verdict::Throttle;
        }
        self.passed.push_back(now);
        Verdict::Pass
    }
}

/// Data channels need a transport created with SCTP: say so, rather than mediasoup's error.
fn no_sctp_refused(transport: &WebRtcTransport) -> Result<(), NodeError> {
    if transport.sctp_parameters().is_some() {
        return Ok(());
    }
    Err(NodeError::new(
        NodeErrorCode::InvalidArgument,
        format!(
            "transport {} has no data channels: create it with \"data\": true",
            transport.id()
        ),
    ))
}

/// The SCTP stream an SCTP data consumer sends on, as JSON.
pub(super) fn stream_parameters(consumer: &DataConsumer) -> Result<Json, NodeError> {
    let sctp = consumer.sctp_stream_parameters().ok_or_else(|| {
        NodeError::new(
            NodeErrorCode::Internal,
            "an SCTP data consumer without stream parameters",
        )
    })?;
    to_json(&sctp)
}

/// mediasoup's id for `id` (the same UUID).
pub(super) fn mediasoup_data_id(
    id: DataProducerId,
) -> Result<mediasoup::prelude::DataProducerId, NodeError> {
    id.to_string().parse().map_err(|e| {
        NodeError::new(
            NodeErrorCode::Internal,
            format!("data producer id {id}: {e}"),
        )
    })
}

impl Routers {
    pub(super) fn data_producer(
        &self,
        router: RouterId,
        id: DataProducerId,
    ) -> Result<DataProducer, NodeError> {
        self.with_router(router, |r| {
            r.data_producers
                .get(&id)
                .map(|e| e.object.forwarded.clone())
                .ok_or_else(|| not_found("data producer", id))
        })
    }

    pub(super) async fn produce_data(&self, c: call::ProduceData) -> Answer {
        let call::ProduceData {
            router,
            transport: transport_id,
            sctp_stream_parameters,
            label,
            protocol,
        } = c;
        let params: SctpStreamParameters =
            parse("SCTP stream parameters", &sctp_stream_parameters)?;
        let transport = self.transport(router, transport_id)?;
        no_sctp_refused(&transport)?;
        let direct = self.with_router(router, |r| Ok(r.direct.clone()))?;
        let mut options = DataProducerOptions::new_sctp(params);
        options.label = label.clone();
        options.protocol = protocol.clone();
        let producer = transport
            .produce_data(options)
            .await
            .map_err(|e| media_error("produce data", e))?;
        let id = DataProducerId(producer.id().into());
        let mut relay_options = DataProducerOptions::new_direct();
        relay_options.label = label;
        relay_options.protocol = protocol;
        let relay = direct
            .produce_data(relay_options)
            .await
            .map_err(|e| media_error("relay data producer", e))?;
        let tap = direct
            .consume_data(DataConsumerOptions::new_direct(producer.id(), None))
            .await
            .map_err(|e| media_error("tap data producer", e))?;
        let counts = Arc::new(MessageCounts::default());
        let handlers = vec![self.relay_within_rate(router, id, &tap, &relay, counts.clone())];
        self.with_router(router, |r| {
            if !r.transports.contains_key(&transport_id) {
                return Err(not_found("transport", transport_id));
            }
            r.data_producers.insert(
                id,
                Entry {
                    object: Forwarded {
                        forwarded: relay,
                        _origin: Some((producer, tap)),
                        counts: Some(counts),
                    },
                    transport: transport_id,
                    _handlers: handlers,
                },
            );
            Ok(call::DataProduced { data_producer: id }.into())
        })
    }

    /// Sends each message `tap` receives on through `relay`, unless it breaks the message
    /// rate: then it is dropped, and the first one dropped tells the supervisor.
    fn relay_within_rate(
        &self,
        router: RouterId,
        id: DataProducerId,
        tap: &DataConsumer,
        relay: &DataProducer,
        counts: Arc<MessageCounts>,
    ) -> HandlerId {
        // Weak: the entry owns the relay; when it goes, the relay closes with it.
        let relay = relay.downgrade();
        let limit = self.data.max_messages_per_sec;
        let rate = Mutex::new(MessageRate::new(limit));
        let events = self.events.clone();
        tap.on_message(move |message| {
            let verdict = rate
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .handle_message(Instant::now());
            match verdict {
                Verdict::Pass => {
                    let Some(DataProducer::Direct(relay)) = relay.upgrade() else {
                        return;
                    };
                    counts.relayed.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = relay.send(message.clone(), None, None, None) {
                        tracing::warn!(%router, data_producer = %id, "cannot relay a data message: {e}");
                    }
                }
                Verdict::Throttle => {
                    counts.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(%router, data_producer = %id, limit, "data producer throttled: over {limit} messages per second");
                    let _ = events.send(NodeEvent::DataProducerThrottled {
                        router,
                        data_producer: id,
                        max_messages_per_sec: limit,
                        paused_ms: THROTTLE_PAUSE.as_millis() as u32,
                    });
                }
                Verdict::Throttled => {
                    counts.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    }

    pub(super) async fn consume_data(
        &self,
        router: RouterId,
        transport_id: TransportId,
        data_producer: DataProducerId,
    ) -> Answer {
        let transport = self.transport(router, transport_id)?;
        no_sctp_refused(&transport)?;
        let producer = self.data_producer(router, data_producer)?;
        let consumer = transport
            .consume_data(DataConsumerOptions::new_sctp(producer.id()))
            .await
            .map_err(|e| media_error("consume data", e))?;
        let id = DataConsumerId(consumer.id().into());
        let handlers = vec![consumer.on_data_producer_close({
            let events = self.events.clone();
            move || {
                let _ = events.send(NodeEvent::DataConsumerClosed {
                    router,
                    data_consumer: id,
                    data_producer,
                });
            }
        })];
        let answer = call::DataConsumed {
            data_consumer: id,
            sctp_stream_parameters: stream_parameters(&consumer)?,
            label: consumer.label().clone(),
            protocol: consumer.protocol().clone(),
        };
        self.with_router(router, |r| {
            if !r.transports.contains_key(&transport_id)
                || !r.data_producers.contains_key(&data_producer)
            {
                return Err(not_found("transport or data producer", transport_id));
            }
            r.data_consumers.insert(
                id,
                Entry {
                    object: consumer,
                    transport: transport_id,
                    _handlers: handlers,
                },
            );
            Ok(Response::DataConsumed(answer))
        })
    }

    /// Forgets a data consumer mediasoup has closed on its own (its data producer went away).
    pub fn forget_data_consumer(&self, router: RouterId, data_consumer: DataConsumerId) {
        if let Some(r) = self.state().get_mut(&router) {
            r.data_consumers.remove(&data_consumer);
        }
    }

    pub(super) fn close_data_producer(&self, router: RouterId, id: DataProducerId) -> Answer {
        self.with_router(router, |r| {
            r.data_producers
                .remove(&id)
                .map(|_| Response::Done)
                .ok_or_else(|| not_found("data producer", id))
        })
    }

    pub(super) fn close_data_consumer(&self, router: RouterId, id: DataConsumerId) -> Answer {
        self.with_router(router, |r| {
            let client = r.data_consumers.remove(&id).is_some();
            let pipe = r.pipe_data_consumers.remove(&id).is_some();
            if client || pipe {
                Ok(Response::Done)
            } else {
                Err(not_found("data consumer", id))
            }
        })
    }

    /// Keeps `data_producer`, piped into `router` under its original id.
    pub(super) fn keep_piped_data(
        &self,
        router: RouterId,
        transport: TransportId,
        data_producer: DataProducerId,
        producer: DataProducer,
    ) -> Answer {
        self.with_router(router, |r| {
            r.data_producers.insert(
                data_producer,
                Entry {
                    object: Forwarded {
                        forwarded: producer,
                        _origin: None,
                        counts: None,
                    },
                    transport,
                    _handlers: Vec::new(),
                },
            );
            Ok(Response::Done)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_within_the_limit_pass_and_the_next_one_throttles() {
        let mut rate = MessageRate::new(3);
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(
                rate.handle_message(t0 + Duration::from_millis(i * 10)),
                Verdict::Pass
            );
        }
        assert_eq!(
            rate.handle_message(t0 + Duration::from_millis(50)),
            Verdict::Throttle
        );
        // Stragglers before the pause takes effect do not pause it again.
        assert_eq!(
            rate.handle_message(t0 + Duration::from_millis(60)),
            Verdict::Throttled
        );
    }

    #[test]
    fn a_steady_sender_at_the_limit_is_never_throttled() {
        let mut rate = MessageRate::new(2);
        let t0 = Instant::now();
        for i in 0..20 {
            // Two a second, for ten seconds.
            assert_eq!(
                rate.handle_message(t0 + Duration::from_millis(i * 500)),
                Verdict::Pass,
                "message {i}"
            );
        }
    }

    #[test]
    fn a_burst_across_two_seconds_is_still_held_to_the_limit() {
        let mut rate = MessageRate::new(3);
        let t0 = Instant::now();
        // One at 0 and two just before 1 s; at 1 s the first is a second old: one more may
        // pass, not three (a window restarting each second would let five through in 13 ms).
        for ms in [0, 990, 995, 1001] {
            assert_eq!(
                rate.handle_message(t0 + Duration::from_millis(ms)),
                Verdict::Pass,
                "at {ms} ms"
            );
        }
        assert_eq!(
            rate.handle_message(t0 + Duration::from_millis(1002)),
            Verdict::Throttle
        );
    }

    #[test]
    fn after_the_pause_the_sender_starts_afresh() {
        let mut rate = MessageRate::new(1);
        let t0 = Instant::now();
        assert_eq!(rate.handle_message(t0), Verdict::Pass);
        assert_eq!(rate.handle_message(t0), Verdict::Throttle);
        let later = t0 + THROTTLE_PAUSE;
        assert_eq!(rate.handle_message(later), Verdict::Pass);
        assert_eq!(
            rate.handle_message(later + Duration::from_millis(1)),
            Verdict::Throttle
        );
    }
}
