//! What a subscriber got on one stream: unique packets and bytes, loss from sequence gaps,
//! packets that were not its publisher's, and when the first packet and key frame came.
//! Sans-IO: fed with (time, extended sequence number, payload).

use std::time::{Duration, Instant};

use crate::media::{Kind, Trailer};

/// Sequence numbers remembered to recognise duplicates (RTX repairs, network duplicates).
const WINDOW: u64 = 1024;

/// The receive side of one stream.
#[derive(Debug, Clone)]
pub struct StreamStats {
    /// Audio or video.
    pub kind: Kind,
    /// The publisher's tag every payload must carry.
    pub expected_tag: u32,
    /// When the subscriber could first expect this stream (its join, or the announcement).
    pub reference: Instant,
    /// Unique packets.
    pub packets: u64,
    /// Payload bytes of the unique packets.
    pub bytes: u64,
    /// Packets seen twice.
    pub duplicates: u64,
    /// Packets whose payload was not the expected publisher's (or not ours at all).
    pub foreign: u64,
    /// Time of the first packet.
    pub first_packet: Option<Instant>,
    /// Time of the first packet that starts a key frame.
    pub first_key_frame: Option<Instant>,
    /// When the SFU answered its `consume` (the subscriber then resumes it): the part of the
    /// first frame's delay that is the SFU's and the publisher's, not the join's.
    pub consumed: Option<Instant>,
    /// Time of the last packet.
    pub last_packet: Option<Instant>,
    /// Its producer was closed: it is no longer expected to flow.
    pub closed: bool,
    first_seq: u64,
    highest_seq: u64,
    seen: [u64; (WINDOW / 64) as usize],
}

impl StreamStats {
    /// A stream of `kind` from the publisher `expected_tag`, expected from `reference` on.
    pub fn new(kind: Kind, expected_tag: u32, reference: Instant) -> StreamStats {
        StreamStats {
            kind,
            expected_tag,
            reference,
            packets: 0,
            bytes: 0,
            duplicates: 0,
            foreign: 0,
            first_packet: None,
            first_key_frame: None,
            consumed: None,
            last_packet: None,
            closed: false,
            first_seq: 0,
            highest_seq: 0,
            seen: [0; (WINDOW / 64) as usize],
        }
    }

    fn bit(&mut self, seq: u64) -> (&mut u64, u64) {
        let index = (seq % WINDOW) as usize;
        (&mut self.seen[index / 64], 1 << (index % 64))
    }

    /// One RTP packet with extended sequence number `seq`.
    pub fn handle_packet(&mut self, now: Instant, seq: u64, payload: &[u8]) {
        let trailer = Trailer::read(payload);
        if trailer.is_none_or(|t| t.tag != self.expected_tag || t.kind != self.kind) {
            self.foreign += 1;
            return;
        }
        if self.first_packet.is_none() {
            self.first_packet = Some(now);
            self.first_seq = seq;
            self.highest_seq = seq;
        } else if seq > self.highest_seq {
            // Forget the window slots that the jump makes reusable.
            let forget = (seq - self.highest_seq).min(WINDOW);
            for old in self.highest_seq + 1..self.highest_seq + 1 + forget {
                let (word, mask) = self.bit(old);
                *word &= !mask;
            }
            self.highest_seq = seq;
        } else if seq + WINDOW <= self.highest_seq || seq < self.first_seq {
            // Too late to tell apart from a duplicate, or from before the stream started.
            self.duplicates += 1;
            return;
        }
        let (word, mask) = self.bit(seq);
        if *word & mask != 0 {
            self.duplicates += 1;
            return;
        }
        *word |= mask;
        self.packets += 1;
        self.bytes += payload.len() as u64;
        self.last_packet = Some(now);
        if self.first_key_frame.is_none() && trailer.is_some_and(|t| t.key_frame_start) {
            self.first_key_frame = Some(now);
        }
    }

    /// Packets missing between the first and the highest sequence number received.
    pub fn lost(&self) -> u64 {
        if self.first_packet.is_none() {
            return 0;
        }
        (self.highest_seq - self.first_seq + 1).saturating_sub(self.packets)
    }

    /// Reference → first packet.
    pub fn first_packet_delay(&self) -> Option<Duration> {
        self.first_packet
            .map(|t| t.saturating_duration_since(self.reference))
    }

    /// Reference → first key frame (audio: first packet).
    pub fn first_frame_delay(&self) -> Option<Duration> {
        match self.kind {
            Kind::Audio => self.first_packet_delay(),
            Kind::Video => self
                .first_key_frame
                .map(|t| t.saturating_duration_since(self.reference)),
        }
    }

    /// Consume answered → first key frame (audio: first packet).
    pub fn consumed_to_frame(&self) -> Option<Duration> {
        let frame = match self.kind {
            Kind::Audio => self.first_packet,
            Kind::Video => self.first_key_frame,
        };
        Some(frame?.saturating_duration_since(self.consumed?))
    }

    /// The stream is flowing: a packet of the right publisher arrived at or after `since`.
    pub fn flowing_since(&self, since: Instant) -> bool {
        self.last_packet.is_some_and(|t| t >= since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{OpusSource, Vp8Source};

    fn audio(tag: u32, frames: usize) -> Vec<Vec<u8>> {
        let mut source = OpusSource::new(tag);
        (0..frames).map(|_| source.next_packet().payload).collect()
    }

    #[test]
    fn counts_every_packet_once_without_loss() {
        let t0 = Instant::now();
        let mut stats = StreamStats::new(Kind::Audio, 5, t0);
        for (i, p) in audio(5, 100).iter().enumerate() {
            stats.handle_packet(
                t0 + Duration::from_millis(20 * i as u64),
                1000 + i as u64,
                p,
            );
        }
        assert_eq!((stats.packets, stats.lost(), stats.duplicates), (100, 0, 0));
        assert_eq!(stats.first_packet_delay(), Some(Duration::ZERO));
        assert_eq!(stats.bytes, 100 * 100);
    }

    #[test]
    fn gaps_are_loss_until_repaired_and_duplicates_count_once() {
        let t0 = Instant::now();
        let mut stats = StreamStats::new(Kind::Audio, 5, t0);
        let p = audio(5, 1).remove(0);
        for seq in [10, 11, 14, 15] {
            stats.handle_packet(t0, seq, &p);
        }
        assert_eq!(stats.lost(), 2);
        stats.handle_packet(t0, 12, &p); // an RTX repair
        stats.handle_packet(t0, 12, &p); // and its duplicate
        assert_eq!((stats.packets, stats.lost(), stats.duplicates), (5, 1, 1));
    }

    #[test]
    fn another_publishers_packets_are_foreign() {
        let t0 = Instant::now();
        let mut stats = StreamStats::new(Kind::Audio, 5, t0);
        stats.handle_packet(t0, 1, &audio(6, 1)[0]);
        stats.handle_packet(t0, 2, b"not ours at all");
        assert_eq!((stats.packets, stats.foreign), (0, 2));
        assert!(!stats.flowing_since(t0));
    }

    #[test]
    fn first_frame_is_the_first_key_frame() {
        let t0 = Instant::now();
        let mut stats = StreamStats::new(Kind::Video, 5, t0);
        let mut source = Vp8Source::new(5, 300, 90, 320, 180);
        source.next_frame();
        let delta = source.next_frame();
        stats.handle_packet(t0 + Duration::from_millis(10), 1, &delta[0].payload);
        assert_eq!(stats.first_frame_delay(), None);
        source.request_key_frame();
        let key = source.next_frame();
        stats.handle_packet(t0 + Duration::from_millis(50), 2, &key[0].payload);
        assert_eq!(stats.first_packet_delay(), Some(Duration::from_millis(10)));
        assert_eq!(stats.first_frame_delay(), Some(Duration::from_millis(50)));
        assert_eq!(stats.consumed_to_frame(), None, "never consumed");
        stats.consumed = Some(t0 + Duration::from_millis(20));
        assert_eq!(stats.consumed_to_frame(), Some(Duration::from_millis(30)));
    }

    #[test]
    fn a_long_jump_forgets_old_slots() {
        let t0 = Instant::now();
        let mut stats = StreamStats::new(Kind::Audio, 5, t0);
        let p = audio(5, 1).remove(0);
        stats.handle_packet(t0, 0, &p);
        stats.handle_packet(t0, WINDOW, &p); // same slot as 0, new packet
        assert_eq!((stats.packets, stats.duplicates), (2, 0));
        assert_eq!(stats.lost(), WINDOW - 1);
        stats.handle_packet(t0, 0, &p); // far too late
        assert_eq!(stats.duplicates, 1);
    }
}
