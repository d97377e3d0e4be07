//! Putting a track's RTP packets back in order before they are written, as a sans-IO state
//! machine (str0m's contract: [`Reorder::handle`] takes an input and the time, and
//! [`Reorder::poll_output`] says what to do): packets are released in sequence; a hole is
//! asked for again (NACK) every `nack_interval` until it is filled or `give_up_after` has
//! passed, and then skipped, which asks a key frame so the video recovers at once.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// How patient the reordering is.
#[derive(Debug, Clone, Copy)]
pub struct ReorderConfig {
    /// Between two NACKs of the same packet (a retransmission takes a round trip, a few
    /// milliseconds from a local SFU).
    pub nack_interval: Duration,
    /// NACKs per missing packet at most.
    pub max_nacks: u32,
    /// How long a hole may hold the packets after it (what the file's writing lags by).
    pub give_up_after: Duration,
    /// Bytes held back at most behind a hole; more and the hole is skipped at once.
    pub max_buffered_bytes: usize,
    /// A jump of more sequence numbers than this is a new stream, not a loss.
    pub max_gap: u64,
}

impl Default for ReorderConfig {
    fn default() -> Self {
        Self {
            nack_interval: Duration::from_millis(50),
            max_nacks: 10,
            give_up_after: Duration::from_millis(600),
            max_buffered_bytes: 8 << 20,
            max_gap: 3_000,
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// An RTP packet with sequence number `seq` arrived.
    Packet {
        /// Its sequence number.
        seq: u16,
        /// The whole packet.
        packet: Vec<u8>,
    },
    /// Time passed (call it every few tens of milliseconds).
    Tick,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Write this packet: the next in sequence.
    Deliver(Vec<u8>),
    /// Ask the sender for these packets again.
    Nack(Vec<u16>),
    /// Ask the sender for a key frame (at the start, and after a hole was given up).
    KeyFrame,
    /// This many packets were given up on.
    Lost(u64),
}

#[derive(Debug, Clone, Copy)]
struct Missing {
    since: Instant,
    last_nack: Instant,
    nacks: u32,
}

/// One track's reordering.
#[derive(Debug)]
pub struct Reorder {
    config: ReorderConfig,
    /// The next extended sequence number to deliver, once started.
    next: Option<u64>,
    highest: u64,
    held: BTreeMap<u64, Vec<u8>>,
    held_bytes: usize,
    missing: BTreeMap<u64, Missing>,
    out: VecDeque<Output>,
    lost: u64,
}

impl Reorder {
    /// A reordering that has seen nothing yet.
    pub fn new(config: ReorderConfig) -> Self {
        Self {
            config,
            next: None,
            highest: 0,
            held: BTreeMap::new(),
            held_bytes: 0,
            missing: BTreeMap::new(),
            out: VecDeque::new(),
            lost: 0,
        }
    }

    /// Packets given up on since the start.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Takes `input` at `now`.
    pub fn handle(&mut self, input: Input, now: Instant) {
        match input {
            Input::Packet { seq, packet } => self.packet(seq, packet, now),
            Input::Tick => self.tick(now),
        }
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The extended form of `seq`: the one nearest the highest seen.
    fn extend(&self, seq: u16) -> u64 {
        let delta = seq.wrapping_sub(self.highest as u16) as i16 as i64;
        (self.highest as i64 + delta).max(0) as u64
    }

    fn packet(&mut self, seq: u16, packet: Vec<u8>, now: Instant) {
        let Some(next) = self.next else {
            // Far from zero, so that packets a little older than the first still extend.
            let first = (1 << 32) + u64::from(seq);
            self.next = Some(first);
            self.highest = first;
            self.out.push_back(Output::KeyFrame);
            self.hold(first, packet);
            self.release();
            return;
        };
        let ext = self.extend(seq);
        if ext.abs_diff(self.highest) > self.config.max_gap {
            // The sender started over (or jumped): nothing to wait for.
            self.skip_to(ext, false);
            self.highest = ext;
            self.hold(ext, packet);
            self.release();
            return;
        }
        if ext < next || self.held.contains_key(&ext) {
            return; // a duplicate, or too late
        }
        if ext > self.highest {
            let holes: Vec<u64> = (self.highest + 1..ext).collect();
            if !holes.is_empty() {
                for &hole in &holes {
                    self.missing.insert(
                        hole,
                        Missing {
                            since: now,
                            last_nack: now,
                            nacks: 1,
                        },
                    );
                }
                self.out
                    .push_back(Output::Nack(holes.iter().map(|&h| h as u16).collect()));
            }
            self.highest = ext;
        } else {
            self.missing.remove(&ext);
        }
        self.hold(ext, packet);
        if self.held_bytes > self.config.max_buffered_bytes {
            self.give_up_first_hole();
        }
        self.release();
    }

    fn tick(&mut self, now: Instant) {
        let overdue = self
            .missing
            .values()
            .next()
            .is_some_and(|m| now.duration_since(m.since) >= self.config.give_up_after);
        if overdue {
            self.give_up_first_hole();
            self.release();
        }
        let mut again = Vec::new();
        for (seq, missing) in self.missing.iter_mut() {
            if missing.nacks < self.config.max_nacks
                && now.duration_since(missing.last_nack) >= self.config.nack_interval
            {
                missing.nacks += 1;
                missing.last_nack = now;
                again.push(*seq as u16);
            }
        }
        if !again.is_empty() {
            self.out.push_back(Output::Nack(again));
        }
    }

    fn hold(&mut self, ext: u64, packet: Vec<u8>) {
        self.held_bytes += packet.len();
        self.held.insert(ext, packet);
    }

    /// Skips the first hole: delivery goes on from the first packet held after it.
    fn give_up_first_hole(&mut self) {
        let Some(&first_held) = self.held.keys().next() else {
            return;
        };
        self.skip_to(first_held, true);
    }

    /// Delivery goes on from `ext`; whatever was awaited before it is lost.
    fn skip_to(&mut self, ext: u64, count: bool) {
        let Some(next) = self.next else { return };
        if ext > next && count {
            let given_up = self.missing.range(..ext).count() as u64;
            if given_up > 0 {
                self.lost += given_up;
                self.out.push_back(Output::Lost(given_up));
            }
        }
        if count {
            self.missing = self.missing.split_off(&ext);
        } else {
            // A restart: packets held from before go first, in their order; no hole of the
            // old numbering is awaited any more.
            while let Some((_, packet)) = self.held.pop_first() {
                self.held_bytes -= packet.len();
                self.out.push_back(Output::Deliver(packet));
            }
            self.missing.clear();
        }
        self.next = Some(ext);
        self.out.push_back(Output::KeyFrame);
    }

    fn release(&mut self) {
        let Some(mut next) = self.next else { return };
        while let Some(packet) = self.held.remove(&next) {
            self.held_bytes -= packet.len();
            self.out.push_back(Output::Deliver(packet));
            next += 1;
        }
        self.next = Some(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs(reorder: &mut Reorder) -> Vec<Output> {
        std::iter::from_fn(|| reorder.poll_output()).collect()
    }

    fn packet(seq: u16) -> Input {
        Input::Packet {
            seq,
            packet: seq.to_be_bytes().to_vec(),
        }
    }

    fn delivered(outputs: &[Output]) -> Vec<u16> {
        outputs
            .iter()
            .filter_map(|o| match o {
                Output::Deliver(p) => Some(u16::from_be_bytes([p[0], p[1]])),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_first_packet_asks_a_key_frame_and_in_order_packets_pass_at_once() {
        let mut r = Reorder::new(ReorderConfig::default());
        let t0 = Instant::now();
        r.handle(packet(65534), t0);
        r.handle(packet(65535), t0);
        r.handle(packet(0), t0);
        let out = outputs(&mut r);
        assert_eq!(out[0], Output::KeyFrame);
        assert_eq!(delivered(&out), [65534, 65535, 0], "across the wrap");
    }

    #[test]
    fn a_hole_is_nacked_and_its_retransmission_releases_what_waited() {
        let mut r = Reorder::new(ReorderConfig::default());
        let t0 = Instant::now();
        r.handle(packet(10), t0);
        outputs(&mut r);
        r.handle(packet(13), t0);
        assert_eq!(outputs(&mut r), [Output::Nack(vec![11, 12])]);
        r.handle(Input::Tick, t0 + Duration::from_millis(60));
        assert_eq!(outputs(&mut r), [Output::Nack(vec![11, 12])], "asked again");
        r.handle(packet(12), t0 + Duration::from_millis(70));
        assert!(delivered(&outputs(&mut r)).is_empty(), "11 still missing");
        r.handle(packet(11), t0 + Duration::from_millis(80));
        assert_eq!(delivered(&outputs(&mut r)), [11, 12, 13]);
        r.handle(packet(11), t0 + Duration::from_millis(90));
        assert!(outputs(&mut r).is_empty(), "a duplicate is dropped");
        assert_eq!(r.lost(), 0);
    }

    #[test]
    fn a_hole_never_filled_is_skipped_after_give_up_after_with_a_key_frame_asked() {
        let config = ReorderConfig::default();
        let mut r = Reorder::new(config);
        let t0 = Instant::now();
        r.handle(packet(1), t0);
        r.handle(packet(3), t0);
        r.handle(packet(4), t0);
        outputs(&mut r);
        let mut nacks = 1;
        let mut t = t0;
        while t < t0 + config.give_up_after - Duration::from_millis(20) {
            t += Duration::from_millis(20);
            r.handle(Input::Tick, t);
            nacks += outputs(&mut r)
                .iter()
                .filter(|o| matches!(o, Output::Nack(_)))
                .count();
        }
        assert_eq!(nacks, config.max_nacks as usize, "NACKs stop at max_nacks");
        r.handle(Input::Tick, t0 + config.give_up_after);
        let out = outputs(&mut r);
        assert_eq!(
            out,
            [
                Output::Lost(1),
                Output::KeyFrame,
                Output::Deliver(3u16.to_be_bytes().to_vec()),
                Output::Deliver(4u16.to_be_bytes().to_vec()),
            ]
        );
        assert_eq!(r.lost(), 1);
        r.handle(packet(2), t0 + config.give_up_after);
        assert!(outputs(&mut r).is_empty(), "too late now");
    }

    #[test]
    fn too_many_bytes_behind_a_hole_skip_it_at_once() {
        let mut r = Reorder::new(ReorderConfig {
            max_buffered_bytes: 5,
            ..ReorderConfig::default()
        });
        let t0 = Instant::now();
        r.handle(packet(1), t0);
        for seq in 3..=5 {
            r.handle(packet(seq), t0);
        }
        let out = outputs(&mut r);
        assert_eq!(delivered(&out), [1, 3, 4, 5]);
        assert!(out.contains(&Output::Lost(1)));
    }

    #[test]
    fn a_jump_past_max_gap_is_a_new_stream_not_thousands_of_nacks() {
        let mut r = Reorder::new(ReorderConfig::default());
        let t0 = Instant::now();
        r.handle(packet(100), t0);
        outputs(&mut r);
        r.handle(packet(40_000), t0);
        r.handle(packet(40_001), t0);
        let out = outputs(&mut r);
        assert!(!out.iter().any(|o| matches!(o, Output::Nack(_))), "{out:?}");
        assert!(out.contains(&Output::KeyFrame));
        assert_eq!(delivered(&out), [40_000, 40_001]);
        assert_eq!(r.lost(), 0);
    }

    #[test]
    fn reordered_packets_come_out_in_sequence() {
        let mut r = Reorder::new(ReorderConfig::default());
        let t0 = Instant::now();
        for seq in [5u16, 7, 6, 9, 8, 10] {
            r.handle(packet(seq), t0);
        }
        assert_eq!(delivered(&outputs(&mut r)), [5, 6, 7, 8, 9, 10]);
    }
}
