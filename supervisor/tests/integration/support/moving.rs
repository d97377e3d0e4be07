//! A test peer moving its media in a drain, make before break, one step at a time as
//! `mediaMoving` asks (docs/protocol.md, "Moving in a drain"): a new receive transport
//! consuming what the notification lists, a new send transport publishing the same tracks
//! (the same SSRCs, the same packets sent on both while both exist), then the old transports
//! closed. What arrived on the old ones stays readable, so that [`assert_continuous`] can
//! check that every packet a sender sent reached a receiver through one consumer or another.

use std::time::{Duration, Instant};

use signaling_api::{Direction, Kind, PeerInfo, ProducerId, TransportArgs, TransportId};

use super::peer::{publish, transport, Consumed, Produced, Publishing, TestPeer};
use super::rtc::RtcTransport;
use super::signaling::Expect;

/// What a moving peer left behind: its old transports (the send one until it is closed),
/// the consumers it had on the old receive transport and the producers it had.
pub struct Left {
    /// The old send transport, until closed.
    pub send: Option<RtcTransport>,
    send_id: TransportId,
    /// The old receive transport (kept to read what arrived on it).
    pub recv: RtcTransport,
    recv_id: TransportId,
    /// The consumers on it.
    pub consumers: Vec<Consumed>,
    /// The producers on the old send transport.
    pub producers: Vec<Producer>,
}

/// An old producer of a moving peer.
pub type Producer = Produced;

impl TestPeer {
    /// Step 1: a new receive transport, on which every producer `listed` (the `mediaMoving`
    /// notification's peers) is consumed; the old one keeps receiving.
    pub async fn move_receive(&mut self, listed: &[PeerInfo]) {
        let (recv_id, recv) =
            transport(&mut self.signaling, Direction::Recv, self.pts, false).await;
        let old_recv = std::mem::replace(&mut self.recv, recv);
        let old_recv_id = std::mem::replace(&mut self.recv_id, recv_id);
        let consumers = std::mem::take(&mut self.consumers);
        self.moved = Some(Left {
            send: None,
            send_id: self.send_id,
            recv: old_recv,
            recv_id: old_recv_id,
            consumers,
            producers: self.producers.clone(),
        });
        for producer in listed.iter().flat_map(|p| &p.producers) {
            self.consume(&producer.producer_id).await;
        }
    }

    /// Step 2: a new send transport publishing the same tracks on the same SSRCs; from now
    /// on [`TestPeer::send_media`] sends every packet on both.
    pub async fn move_send(&mut self) {
        let (send_id, send) =
            transport(&mut self.signaling, Direction::Send, self.pts, false).await;
        let how = Publishing {
            name: &self.name,
            pts: self.pts,
            video: self.video,
            audio_levels: self.audio_level.is_some(),
            audio: self.producers[0].ssrc,
            layers: self.producers[1].layers.clone(),
        };
        let producers = publish(&mut self.signaling, &send, send_id, &how).await;
        let old_send = std::mem::replace(&mut self.send, send);
        self.send_id = send_id;
        self.producers = producers;
        if let Some(left) = self.moved.as_mut() {
            left.send = Some(old_send);
        }
    }

    /// Step 3: the old transports closed (their producers close for the others).
    pub async fn close_old(&mut self) {
        let Some(left) = self.moved.as_mut() else {
            panic!("{} has not moved", self.name);
        };
        left.send = None;
        let ids = [left.send_id, left.recv_id];
        for id in ids {
            self.signaling
                .ok(&signaling_api::calls::CloseTransport(TransportArgs {
                    transport_id: id.to_string(),
                }))
                .await;
        }
    }

    /// The sequence numbers of `sender`'s `kind` track that reached this peer through any
    /// of its consumers of any of `sender`'s producers (before and after either moved), each
    /// checked to carry that track's SSRC.
    fn continuous_seqs(&self, sender: &TestPeer, kind: Kind) -> Vec<u64> {
        let track = |producers: &[Produced]| -> Vec<(ProducerId, Vec<u32>)> {
            (producers.iter())
                .filter(|p| p.kind == kind)
                .map(|p| (p.id, p.layers.clone()))
                .collect()
        };
        let mut theirs = track(&sender.producers);
        if let Some(left) = &sender.moved {
            theirs.extend(track(&left.producers));
        }
        let mut seqs = Vec::new();
        let mut read = |consumers: &[Consumed], recv: &RtcTransport| {
            for consumer in consumers {
                let Some((_, layers)) = theirs.iter().find(|(id, _)| *id == consumer.producer)
                else {
                    continue;
                };
                let arrivals = recv.arrivals(consumer.ssrc);
                assert_eq!(arrivals.untagged, 0, "{}: untagged packets", self.name);
                for (ssrc, seq) in arrivals.tags {
                    assert!(
                        layers.contains(&ssrc),
                        "{}'s consumer of {}'s {kind:?} delivered SSRC {ssrc}",
                        self.name,
                        sender.name
                    );
                    seqs.push(seq);
                }
            }
        };
        read(&self.consumers, &self.recv);
        if let Some(left) = &self.moved {
            read(&left.consumers, &left.recv);
        }
        seqs.sort_unstable();
        seqs.dedup();
        seqs
    }
}

/// Checks that each of `peers` received every packet every other sent, audio and video,
/// from the first to the last (waiting at most 5 s for those in flight), whatever consumer
/// carried it: the media never stopped across the moves.
pub async fn assert_continuous(peers: &[&TestPeer]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    for receiver in peers {
        for sender in peers.iter().filter(|p| p.name != receiver.name) {
            for kind in [Kind::Audio, Kind::Video] {
                let expected: Vec<u64> = (1..=sender.sent()).collect();
                let mut seqs = receiver.continuous_seqs(sender, kind);
                while seqs != expected && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    seqs = receiver.continuous_seqs(sender, kind);
                }
                let missing: Vec<u64> = (expected.iter())
                    .filter(|s| seqs.binary_search(s).is_err())
                    .copied()
                    .collect();
                assert!(
                    missing.is_empty(),
                    "{} missed {} of {}'s {kind:?} packets 1..={} (the first: {:?})",
                    receiver.name,
                    missing.len(),
                    sender.name,
                    sender.sent(),
                    &missing[..missing.len().min(20)]
                );
            }
        }
    }
}
