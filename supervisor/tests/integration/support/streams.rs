//! Which stream each received packet came from: every media check of the suite reads the
//! tag the sending test peer put at the end of each payload (its SSRC and sequence number)
//! and fails on a packet of another stream, or on one without a tag, before it looks at
//! sequence numbers or counts.

use std::time::{Duration, Instant};

use signaling_api::ProducerId;

use super::peer::{Consumed, Produced, TestPeer};

/// The peer of `peers` that published `producer`, and that producer.
pub fn producer_of<'a>(peers: &[&'a TestPeer], producer: &ProducerId) -> (&'a TestPeer, Produced) {
    peers
        .iter()
        .find_map(|p| {
            p.producers
                .iter()
                .find(|pr| pr.id == *producer)
                .map(|pr| (*p, pr.clone()))
        })
        .unwrap_or_else(|| panic!("no peer produced {producer}"))
}

impl TestPeer {
    /// The sequence numbers received through consumer `index`, sorted; its producer is one of
    /// `senders`'. Fails the test if any packet came from another stream than that producer's
    /// (its SSRC, or one of its simulcast layers'), or carried no tag.
    pub fn seqs_from(&self, index: usize, senders: &[&TestPeer]) -> Vec<u64> {
        let consumer = &self.consumers[index];
        let (sender, produced) = producer_of(senders, &consumer.producer);
        assert_eq!(consumer.kind, produced.kind, "{consumer:?}");
        let arrivals = self.arrivals(index);
        let what = format!(
            "{}'s {:?} consumer of {}'s producer (SSRC {:?})",
            self.name, consumer.kind, sender.name, produced.layers
        );
        assert_eq!(arrivals.untagged, 0, "{what}: untagged packets");
        let strays: Vec<_> = arrivals
            .tags
            .iter()
            .filter(|(ssrc, _)| !produced.layers.contains(ssrc))
            .collect();
        assert!(
            strays.is_empty(),
            "{what} delivered another stream's packets (SSRC, seq): {:?}",
            &strays[..strays.len().min(5)]
        );
        let mut seqs: Vec<u64> = arrivals.tags.iter().map(|(_, seq)| *seq).collect();
        seqs.sort_unstable();
        seqs
    }

    /// Waits (at most 5 s) until consumer `index`, whose producer is `sender`'s, has received
    /// `count` packets; their sequence numbers, sorted, each checked to come from that
    /// producer's stream ([`TestPeer::seqs_from`]).
    pub async fn wait_seqs(&self, index: usize, sender: &TestPeer, count: u64) -> Vec<u64> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.arrivals(index).count() < count && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.seqs_from(index, &[sender])
    }

    /// This peer's consumers of `senders`' producers (their indexes).
    pub fn consumers_of(&self, senders: &[&TestPeer]) -> Vec<usize> {
        let of_senders = |c: &Consumed| {
            senders
                .iter()
                .any(|s| s.producers.iter().any(|p| p.id == c.producer))
        };
        (0..self.consumers.len())
            .filter(|&i| of_senders(&self.consumers[i]))
            .collect()
    }

    /// For each consumer of `senders`' producers: its producer and how many packets of that
    /// producer's stream it received (a packet of another stream fails the test).
    pub fn heard(&self, senders: &[&TestPeer]) -> Vec<(ProducerId, usize)> {
        self.consumers_of(senders)
            .into_iter()
            .map(|i| (self.consumers[i].producer, self.seqs_from(i, senders).len()))
            .collect()
    }
}

/// Checks that every consumer of `receivers` whose producer is one of `senders`' delivered
/// exactly what that producer sent: packets tagged with its SSRC only (the consumer →
/// producer mapping of the `produce` answers), each sequence number from 1 to what was sent
/// exactly once. Waits (at most 5 s) for the last packets in flight first. For calls whose
/// consumers all existed before the first packet was sent.
pub async fn assert_exact_media(receivers: &[&TestPeer], senders: &[&TestPeer]) {
    assert_exact_media_from(receivers, senders, 1).await;
}

/// [`assert_exact_media`] for the packets numbered `from` on: those sent once the call was
/// seen flowing.
pub async fn assert_exact_media_from(receivers: &[&TestPeer], senders: &[&TestPeer], from: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let counted = |receiver: &TestPeer, index: usize| {
        let arrivals = receiver.arrivals(index);
        arrivals.tags.iter().filter(|(_, seq)| *seq >= from).count() as u64
    };
    for receiver in receivers {
        for index in receiver.consumers_of(senders) {
            let (sender, _) = producer_of(senders, &receiver.consumers[index].producer);
            let expected = (sender.sent() + 1).saturating_sub(from);
            while counted(receiver, index) < expected && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    for peer in receivers.iter().chain(senders) {
        peer.assert_healthy();
    }
    for receiver in receivers {
        for index in receiver.consumers_of(senders) {
            let consumer = &receiver.consumers[index];
            let (sender, _) = producer_of(senders, &consumer.producer);
            let mut seqs = receiver.seqs_from(index, senders);
            seqs.retain(|seq| *seq >= from);
            let expected: Vec<u64> = (from..=sender.sent()).collect();
            if seqs != expected {
                let missing: Vec<_> = expected
                    .iter()
                    .filter(|s| seqs.binary_search(s).is_err())
                    .take(20)
                    .collect();
                panic!(
                    "{}'s {:?} consumer of {}'s producer: {} packets for {} sent; missing (the first 20) {missing:?}; duplicates: {}",
                    receiver.name,
                    consumer.kind,
                    sender.name,
                    seqs.len(),
                    sender.sent(),
                    seqs.windows(2).filter(|w| w[0] == w[1]).count()
                );
            }
        }
    }
}
