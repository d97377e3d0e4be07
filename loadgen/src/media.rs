//! Synthetic media that looks real on the wire: Opus-sized audio packets every 20 ms and VP8
//! frames at 30 fps split into RTP packets of at most 1,200 bytes, each with a valid VP8
//! payload descriptor (picture id, start-of-partition, key-frame bit in the VP8 header).
//!
//! Every payload ends with a [`Trailer`] naming the publisher, the kind and the frame, so a
//! subscriber can prove that each packet it gets is the one its publisher sent, and see key
//! frames without decoding VP8. Sans-IO: the caller owns clocks and sockets.

/// Largest RTP payload we write; what browsers use as well.
pub const MAX_PAYLOAD: usize = 1200;
/// RTP clock ticks of one 20 ms Opus frame (48 kHz).
pub const OPUS_TICKS: u32 = 960;
/// RTP clock ticks of one 30 fps video frame (90 kHz).
pub const VP8_TICKS: u32 = 3000;
/// Bytes of one Opus packet at ~40 kbit/s.
const OPUS_BYTES: usize = 100;
/// A key frame is this many times a delta frame, as with real encoders.
const KEY_FRAME_FACTOR: usize = 4;

/// Which track a packet belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Opus.
    Audio,
    /// VP8.
    Video,
}

impl Kind {
    /// The protocol's name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Audio => "audio",
            Kind::Video => "video",
        }
    }
}

/// A publisher's identity in payloads: a hash of its display name.
pub fn publisher_tag(display_name: &str) -> u32 {
    // FNV-1a: stable across processes and runs, which `DefaultHasher` is not.
    display_name.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// The last bytes of every payload we send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trailer {
    /// [`publisher_tag`] of the sender.
    pub tag: u32,
    /// Audio or video.
    pub kind: Kind,
    /// The packet starts a key frame.
    pub key_frame_start: bool,
    /// The frame (or audio packet) number within its stream.
    pub frame: u32,
}

impl Trailer {
    const MAGIC: [u8; 2] = *b"LG";
    /// Encoded length.
    pub const LEN: usize = 12;

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&Self::MAGIC);
        out.extend_from_slice(&self.tag.to_be_bytes());
        out.push(match self.kind {
            Kind::Audio => 0,
            Kind::Video => 1,
        });
        out.push(u8::from(self.key_frame_start));
        out.extend_from_slice(&self.frame.to_be_bytes());
    }

    /// Reads the trailer of a payload; `None` when the payload is not one of ours.
    pub fn read(payload: &[u8]) -> Option<Trailer> {
        let start = payload.len().checked_sub(Self::LEN)?;
        let t = &payload[start..];
        if t[..2] != Self::MAGIC {
            return None;
        }
        let kind = match t[6] {
            0 => Kind::Audio,
            1 => Kind::Video,
            _ => return None,
        };
        Some(Trailer {
            tag: u32::from_be_bytes([t[2], t[3], t[4], t[5]]),
            kind,
            key_frame_start: t[7] == 1,
            frame: u32::from_be_bytes([t[8], t[9], t[10], t[11]]),
        })
    }
}

/// One RTP packet to write: payload, RTP time and marker bit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// RTP payload.
    pub payload: Vec<u8>,
    /// RTP timestamp.
    pub time: u32,
    /// Last packet of a frame.
    pub marker: bool,
}

/// Audio packets of one publisher.
#[derive(Debug)]
pub struct OpusSource {
    tag: u32,
    frame: u32,
}

impl OpusSource {
    /// A source for the publisher `tag`.
    pub fn new(tag: u32) -> OpusSource {
        OpusSource { tag, frame: 0 }
    }

    /// The next 20 ms packet.
    pub fn next_packet(&mut self) -> Packet {
        let mut payload = Vec::with_capacity(OPUS_BYTES);
        // TOC byte: SILK-only wideband 20 ms, mono, one frame (config 9).
        payload.push(0x48);
        payload.resize(OPUS_BYTES - Trailer::LEN, 0xa5);
        Trailer {
            tag: self.tag,
            kind: Kind::Audio,
            key_frame_start: false,
            frame: self.frame,
        }
        .write(&mut payload);
        let time = self.frame.wrapping_mul(OPUS_TICKS);
        self.frame = self.frame.wrapping_add(1);
        Packet {
            payload,
            time,
            marker: false,
        }
    }
}

/// VP8 frames of one publisher (one simulcast layer).
#[derive(Debug)]
pub struct Vp8Source {
    tag: u32,
    frame: u32,
    picture_id: u16,
    frame_bytes: usize,
    key_interval: u32,
    frames_since_key: Option<u32>,
    key_requested: bool,
    width: u16,
    height: u16,
}

impl Vp8Source {
    /// A source for publisher `tag` at `kbps` kbit/s (30 fps), a key frame every
    /// `key_interval_frames` frames and at the start, `width`×`height` in its key frames.
    pub fn new(tag: u32, kbps: u32, key_interval_frames: u32, width: u16, height: u16) -> Self {
        // A delta frame's share of the bit rate, counting the bigger key frames.
        let per_second = kbps as usize * 1000 / 8;
        let key_interval = key_interval_frames.max(1) as usize;
        let weight = 30 * (key_interval - 1 + KEY_FRAME_FACTOR);
        let frame_bytes = (per_second * key_interval / weight).max(16 + Trailer::LEN);
        Vp8Source {
            tag,
            frame: 0,
            picture_id: 0,
            frame_bytes,
            key_interval: key_interval_frames.max(1),
            frames_since_key: None,
            key_requested: false,
            width,
            height,
        }
    }

    /// A receiver asked for a key frame (PLI or FIR): the next frame is one.
    pub fn request_key_frame(&mut self) {
        self.key_requested = true;
    }

    /// The packets of the next frame.
    pub fn next_frame(&mut self) -> Vec<Packet> {
        let key = self.key_requested
            || self
                .frames_since_key
                .is_none_or(|n| n + 1 >= self.key_interval);
        self.key_requested = false;
        self.frames_since_key = if key {
            Some(0)
        } else {
            self.frames_since_key.map(|n| n + 1)
        };
        let total = if key {
            self.frame_bytes * KEY_FRAME_FACTOR
        } else {
            self.frame_bytes
        };
        let time = self.frame.wrapping_mul(VP8_TICKS);
        // VP8 payload descriptor: X=1, S on the first packet, PID 0; I=1; 15-bit picture id.
        let descriptor = |start: bool, picture_id: u16| {
            [
                0x80 | if start { 0x10 } else { 0 },
                0x80,
                0x80 | ((picture_id >> 8) as u8 & 0x7f),
                picture_id as u8,
            ]
        };
        // The first 10 bytes of the VP8 bitstream: frame tag (P bit clear on key frames,
        // show_frame set), then for key frames the start code and dimensions.
        let mut header = vec![if key { 0x10 } else { 0x11 }, 0x00, 0x00];
        if key {
            header.extend_from_slice(&[0x9d, 0x01, 0x2a]);
            header.extend_from_slice(&self.width.to_le_bytes());
            header.extend_from_slice(&self.height.to_le_bytes());
        }
        let room = MAX_PAYLOAD - 4 - Trailer::LEN;
        let mut packets = Vec::new();
        let mut left = total;
        let mut first = true;
        while first || left > 0 {
            let body = left.min(room);
            let mut payload = Vec::with_capacity(body + 4 + Trailer::LEN);
            payload.extend_from_slice(&descriptor(first, self.picture_id));
            let mut bitstream = if first { header.clone() } else { Vec::new() };
            bitstream.resize(body.max(bitstream.len()), 0x5a);
            payload.extend_from_slice(&bitstream);
            Trailer {
                tag: self.tag,
                kind: Kind::Video,
                key_frame_start: key && first,
                frame: self.frame,
            }
            .write(&mut payload);
            left = left.saturating_sub(body);
            packets.push(Packet {
                payload,
                time,
                marker: left == 0,
            });
            first = false;
        }
        self.frame = self.frame.wrapping_add(1);
        self.picture_id = (self.picture_id + 1) & 0x7fff;
        packets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_stable_and_differ_by_name() {
        assert_eq!(publisher_tag("r0-p0"), publisher_tag("r0-p0"));
        assert_ne!(publisher_tag("r0-p0"), publisher_tag("r0-p1"));
        // FNV-1a of "a", a published value: the hash does not change between releases.
        assert_eq!(publisher_tag("a"), 0xe40c_292c);
    }

    #[test]
    fn trailer_round_trips_and_rejects_foreign_payloads() {
        let trailer = Trailer {
            tag: 7,
            kind: Kind::Video,
            key_frame_start: true,
            frame: 123_456,
        };
        let mut payload = vec![1, 2, 3];
        trailer.write(&mut payload);
        assert_eq!(Trailer::read(&payload), Some(trailer));
        assert_eq!(Trailer::read(&payload[..5]), None);
        assert_eq!(Trailer::read(&[0u8; 40]), None);
    }

    #[test]
    fn opus_packets_are_40_kbits_at_50_per_second() {
        let mut source = OpusSource::new(1);
        let a = source.next_packet();
        let b = source.next_packet();
        assert_eq!(a.payload.len() * 8 * 50, 40_000);
        assert_eq!(b.time - a.time, OPUS_TICKS);
        assert_eq!(Trailer::read(&b.payload).map(|t| t.frame), Some(1));
    }

    #[test]
    fn first_frame_is_a_key_frame_with_a_valid_descriptor() {
        let mut source = Vp8Source::new(9, 600, 90, 640, 360);
        let packets = source.next_frame();
        let first = &packets[0].payload;
        assert_eq!(first[0] & 0x10, 0x10, "S bit on the first packet");
        assert_eq!(first[1] & 0x80, 0x80, "picture id present");
        assert_eq!(first[4] & 0x01, 0, "P bit clear: key frame");
        assert_eq!(&first[7..10], &[0x9d, 0x01, 0x2a], "key frame start code");
        assert_eq!(u16::from_le_bytes([first[10], first[11]]), 640);
        assert!(Trailer::read(first).is_some_and(|t| t.key_frame_start));
        assert!(packets[1..].iter().all(|p| p.payload[0] & 0x10 == 0));
        assert!(packets.iter().all(|p| p.payload.len() <= MAX_PAYLOAD));
        assert_eq!(packets.iter().filter(|p| p.marker).count(), 1);
        assert!(packets.last().is_some_and(|p| p.marker));
    }

    #[test]
    fn delta_frames_follow_and_the_bit_rate_is_kept() {
        let mut source = Vp8Source::new(9, 600, 90, 640, 360);
        let mut bytes = 0;
        let mut keys = 0;
        for _ in 0..90 {
            let packets = source.next_frame();
            if packets[0].payload[4] & 1 == 0 {
                keys += 1;
            }
            bytes += packets.iter().map(|p| p.payload.len()).sum::<usize>();
        }
        assert_eq!(keys, 1, "one key frame in 90 frames");
        let kbps = bytes * 8 / 3 / 1000;
        assert!((560..=660).contains(&kbps), "3 s at {kbps} kbit/s");
    }

    #[test]
    fn a_key_frame_request_is_answered_by_the_next_frame() {
        let mut source = Vp8Source::new(9, 600, 90, 640, 360);
        source.next_frame();
        assert_eq!(source.next_frame()[0].payload[4] & 1, 1, "delta frame");
        source.request_key_frame();
        assert_eq!(source.next_frame()[0].payload[4] & 1, 0, "key frame");
        assert_eq!(source.next_frame()[0].payload[4] & 1, 1, "delta again");
    }

    #[test]
    fn picture_ids_and_timestamps_advance_per_frame() {
        let mut source = Vp8Source::new(9, 300, 90, 320, 180);
        let a = source.next_frame();
        let b = source.next_frame();
        let pid = |p: &Packet| u16::from_be_bytes([p.payload[2] & 0x7f, p.payload[3]]);
        assert_eq!(pid(&b[0]), pid(&a[0]) + 1);
        assert_eq!(b[0].time - a[0].time, VP8_TICKS);
        assert!(a.iter().all(|p| p.time == a[0].time));
    }
}
