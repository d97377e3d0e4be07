//! The outcome of a run: what every subscriber should have received against what it did,
//! latencies as percentiles, errors by code, and the loadgen's own CPU; as a table or JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cli::TargetKind;
use crate::media::{publisher_tag, Kind};
use crate::participant::Record;
use crate::stream_stats::StreamStats;

/// p50, p99 and max of a set of durations, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    /// Of `values` (ms); `None` when empty.
    pub fn of(mut values: Vec<f64>) -> Option<Percentiles> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let index = ((p / 100.0) * values.len() as f64).ceil() as usize;
            values[index.clamp(1, values.len()) - 1]
        };
        Some(Percentiles {
            p50: rank(50.0),
            p99: rank(99.0),
            max: values[values.len() - 1],
        })
    }
}

/// The summary `--json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// `sfu` or `janus`.
    pub target: TargetKind,
    /// Participants started.
    pub peers: usize,
    /// Participants whose join was answered.
    pub peers_joined: usize,
    /// Sessions taken back (`resume`, through the same or another host) after a signaling
    /// connection closed.
    pub resumes: u32,
    /// Media moves to another server in a drain (`mediaMoving`).
    pub moves: u32,
    /// (subscriber, publisher, kind) triples that should flow.
    pub streams_expected: usize,
    /// Of those, the ones that delivered their publisher's packets in the flowing window.
    pub streams_received: usize,
    /// Videos the SFU holds under last-N (`--last-n`): consumed, not expected to flow.
    pub streams_held: usize,
    /// Unique RTP packets received on expected streams.
    pub packets_received: u64,
    /// Their payload bytes.
    pub bytes_received: u64,
    /// Packets missing from sequence gaps.
    pub packets_lost: u64,
    /// Lost over (received + lost), in percent.
    pub loss_pct: f64,
    /// Packets that carried another publisher's payload, or none of ours.
    pub foreign_packets: u64,
    /// Packets on SSRCs no consumer announced.
    pub unexpected_packets: u64,
    /// RTP packets the publishers sent.
    pub packets_sent: u64,
    /// Key frame requests (PLI/FIR) the publishers answered.
    pub key_frame_requests: u64,
    /// Start of the join → join answered.
    pub join_ms: Option<Percentiles>,
    /// Join (or the producer's announcement) → first packet, every stream.
    pub first_packet_ms: Option<Percentiles>,
    /// Join (or announcement) → first key frame (video; audio: first packet when audio only).
    pub first_frame_ms: Option<Percentiles>,
    /// Where the first frame's time goes, first part: start of the join → the participant's
    /// receive transport connected (signaling, transport creation, ICE, DTLS).
    pub connect_ms: Option<Percentiles>,
    /// Second part: the SFU answered `consume` → first key frame (video; audio: first packet
    /// when audio only): the resume, the key frame request and the publisher's answer.
    pub consumed_to_frame_ms: Option<Percentiles>,
    /// Participants that failed, by error code.
    pub errors: BTreeMap<String, u64>,
    /// A few of those errors in full.
    pub error_examples: Vec<String>,
    /// A few of the streams that did not flow.
    pub missing_streams: Vec<String>,
    /// Seconds from the first join to the end of the measurement.
    pub duration_s: f64,
    /// Packets received per second over the media period.
    pub packets_per_s: f64,
    /// The loadgen's CPU, percent of one core.
    pub loadgen_cpu_pct: f64,
    /// Cores it could use.
    pub loadgen_cores: usize,
    /// Its CPU was above 85 % of those cores: the numbers measure the loadgen.
    pub loadgen_saturated: bool,
}

impl Summary {
    /// Every stream flowed, nobody failed, every packet was its publisher's.
    pub fn passed(&self) -> bool {
        self.streams_received == self.streams_expected
            && self.errors.is_empty()
            && self.foreign_packets == 0
    }
}

/// What the counting needs besides the records.
pub struct Window {
    /// Which SFU.
    pub target: TargetKind,
    /// First join started.
    pub start: Instant,
    /// Media period started (everyone joined).
    pub media_start: Instant,
    /// Packets received by then ([`received_packets`]): the packet rate is the media
    /// period's alone, as the CPU it is compared with.
    pub packets_at_media_start: u64,
    /// End of the measurement.
    pub end: Instant,
    /// A stream must have delivered after this.
    pub flowing_since: Instant,
    /// The loadgen's CPU over the run.
    pub cpu_pct: f64,
    /// Its cores.
    pub cores: usize,
}

/// Unique packets received so far by every transport of `records`.
pub fn received_packets(records: &[std::sync::Arc<Record>]) -> u64 {
    (records.iter())
        .filter_map(|r| r.transports.lock().ok().map(|t| t.clone()))
        .flatten()
        .map(|t| {
            t.streams
                .lock()
                .map_or(0, |s| s.values().map(|s| s.packets).sum())
        })
        .sum()
}

/// Counts `records` against the plan: each participant must receive every other publisher
/// of its room.
pub fn summarize(records: &[std::sync::Arc<Record>], window: &Window) -> Summary {
    let mut rooms: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for record in records {
        rooms.entry(&record.plan.room).or_default().push(record);
    }
    let mut summary = Summary {
        target: window.target,
        peers: records.len(),
        peers_joined: 0,
        resumes: 0,
        moves: 0,
        streams_expected: 0,
        streams_received: 0,
        streams_held: 0,
        packets_received: 0,
        bytes_received: 0,
        packets_lost: 0,
        loss_pct: 0.0,
        foreign_packets: 0,
        unexpected_packets: 0,
        packets_sent: 0,
        key_frame_requests: 0,
        join_ms: None,
        first_packet_ms: None,
        first_frame_ms: None,
        connect_ms: None,
        consumed_to_frame_ms: None,
        errors: BTreeMap::new(),
        error_examples: Vec::new(),
        missing_streams: Vec::new(),
        duration_s: window
            .end
            .saturating_duration_since(window.start)
            .as_secs_f64(),
        packets_per_s: 0.0,
        loadgen_cpu_pct: window.cpu_pct,
        loadgen_cores: window.cores,
        loadgen_saturated: window.cpu_pct > crate::cpu::SATURATION_PERCENT * window.cores as f64,
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (mut joins, mut first_packets, mut video_frames, mut audio_frames) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut connects, mut video_after_consume, mut audio_after_consume) =
        (Vec::new(), Vec::new(), Vec::new());
    for members in rooms.values() {
        for subscriber in members {
            summary.resumes += subscriber
                .resumes
                .load(std::sync::atomic::Ordering::Relaxed);
            summary.moves += subscriber.moves.load(std::sync::atomic::Ordering::Relaxed);
            if let Ok(Some(latency)) = subscriber.connect_latency.lock().map(|l| *l) {
                connects.push(ms(latency));
            }
            if let Ok(Some(latency)) = subscriber.join_latency.lock().map(|l| *l) {
                summary.peers_joined += 1;
                joins.push(ms(latency));
            }
            if let Ok(Some((code, message))) = subscriber.error.lock().map(|e| e.clone()) {
                *summary.errors.entry(code).or_default() += 1;
                if summary.error_examples.len() < 5 {
                    summary
                        .error_examples
                        .push(format!("{}: {message}", subscriber.plan.name));
                }
            }
            let streams: Vec<StreamStats> = subscriber
                .transports
                .lock()
                .map(|transports| {
                    transports
                        .iter()
                        .flat_map(|t| {
                            summary.packets_sent +=
                                t.packets_sent.load(std::sync::atomic::Ordering::Relaxed);
                            summary.key_frame_requests += t
                                .key_frame_requests
                                .load(std::sync::atomic::Ordering::Relaxed);
                            summary.unexpected_packets +=
                                t.unexpected.load(std::sync::atomic::Ordering::Relaxed);
                            t.streams
                                .lock()
                                .map(|s| s.values().cloned().collect::<Vec<_>>())
                                .unwrap_or_default()
                        })
                        .collect()
                })
                .unwrap_or_default();
            summary.foreign_packets += streams.iter().map(|s| s.foreign).sum::<u64>();
            for publisher in members {
                if publisher.plan.name == subscriber.plan.name {
                    continue;
                }
                let tag = publisher_tag(&publisher.plan.name);
                for kind in publisher.plan.kinds() {
                    // Held by the SFU under last-N: not expected to flow.
                    if kind == Kind::Video && !subscriber.expects_video_of(&publisher.plan.name) {
                        summary.streams_held += 1;
                        continue;
                    }
                    summary.streams_expected += 1;
                    let got = streams
                        .iter()
                        .filter(|s| s.expected_tag == tag && s.kind == kind)
                        .max_by_key(|s| s.packets);
                    let flowing =
                        got.is_some_and(|s| !s.closed && s.flowing_since(window.flowing_since));
                    if flowing {
                        summary.streams_received += 1;
                    } else if summary.missing_streams.len() < 10 {
                        summary.missing_streams.push(format!(
                            "{} ← {} {}: {}",
                            subscriber.plan.name,
                            publisher.plan.name,
                            kind.as_str(),
                            match got {
                                None => "never announced or consumed".to_string(),
                                Some(s) if s.packets == 0 => "consumed, no packet".to_string(),
                                Some(s) => format!("stopped ({} packets, then none)", s.packets),
                            }
                        ));
                    }
                    if let Some(s) = got {
                        summary.packets_received += s.packets;
                        summary.bytes_received += s.bytes;
                        summary.packets_lost += s.lost();
                        first_packets.extend(s.first_packet_delay().map(ms));
                        let frames = match kind {
                            Kind::Audio => &mut audio_frames,
                            Kind::Video => &mut video_frames,
                        };
                        frames.extend(s.first_frame_delay().map(ms));
                        let after_consume = match kind {
                            Kind::Audio => &mut audio_after_consume,
                            Kind::Video => &mut video_after_consume,
                        };
                        after_consume.extend(s.consumed_to_frame().map(ms));
                    }
                }
            }
        }
    }
    let total = summary.packets_received + summary.packets_lost;
    if total > 0 {
        summary.loss_pct = summary.packets_lost as f64 * 100.0 / total as f64;
    }
    let media_secs = window
        .end
        .saturating_duration_since(window.media_start)
        .as_secs_f64();
    if media_secs > 0.0 {
        let in_media = received_packets(records).saturating_sub(window.packets_at_media_start);
        summary.packets_per_s = in_media as f64 / media_secs;
    }
    summary.join_ms = Percentiles::of(joins);
    summary.first_packet_ms = Percentiles::of(first_packets);
    summary.first_frame_ms = Percentiles::of(if video_frames.is_empty() {
        audio_frames
    } else {
        video_frames
    });
    summary.connect_ms = Percentiles::of(connects);
    summary.consumed_to_frame_ms = Percentiles::of(if video_after_consume.is_empty() {
        audio_after_consume
    } else {
        video_after_consume
    });
    summary
}

fn percentiles(p: Option<Percentiles>) -> String {
    p.map_or("–".into(), |p| {
        format!("p50 {:.0} · p99 {:.0} · max {:.0} ms", p.p50, p.p99, p.max)
    })
}

/// The human-readable summary.
pub fn table(summary: &Summary) -> String {
    let mut out = String::new();
    let mut row = |name: &str, value: String| {
        let _ = writeln!(out, "{name:<22} {value}");
    };
    row("target", format!("{:?}", summary.target).to_lowercase());
    row(
        "participants",
        format!("{} joined of {}", summary.peers_joined, summary.peers),
    );
    if summary.resumes > 0 {
        row("resumes", summary.resumes.to_string());
    }
    if summary.moves > 0 {
        row("moves (drains)", summary.moves.to_string());
    }
    if summary.streams_held > 0 {
        row("videos held (last-N)", summary.streams_held.to_string());
    }
    row(
        "streams",
        format!(
            "{} flowing of {} expected",
            summary.streams_received, summary.streams_expected
        ),
    );
    row(
        "packets received",
        format!(
            "{} ({:.0}/s, {:.1} MB)",
            summary.packets_received,
            summary.packets_per_s,
            summary.bytes_received as f64 / 1e6
        ),
    );
    row(
        "loss",
        format!(
            "{:.3} % ({} packets)",
            summary.loss_pct, summary.packets_lost
        ),
    );
    row("foreign packets", summary.foreign_packets.to_string());
    row("join", percentiles(summary.join_ms));
    row("join → first packet", percentiles(summary.first_packet_ms));
    row("join → first frame", percentiles(summary.first_frame_ms));
    row(
        "join → receive transport connected",
        percentiles(summary.connect_ms),
    );
    row(
        "consume answered → first frame",
        percentiles(summary.consumed_to_frame_ms),
    );
    row("key frame requests", summary.key_frame_requests.to_string());
    row(
        "loadgen CPU",
        format!(
            "{:.0} % of one core ({} usable){}",
            summary.loadgen_cpu_pct,
            summary.loadgen_cores,
            if summary.loadgen_saturated {
                " — SATURATED: these numbers measure the loadgen, not the SFU"
            } else {
                ""
            }
        ),
    );
    let errors = if summary.errors.is_empty() {
        "none".to_string()
    } else {
        summary
            .errors
            .iter()
            .map(|(code, n)| format!("{code} ×{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    row("errors", errors);
    for example in &summary.error_examples {
        row("", example.clone());
    }
    for missing in &summary.missing_streams {
        row("missing", missing.clone());
    }
    row(
        "result",
        if summary.passed() {
            "PASS".into()
        } else {
            "FAIL".into()
        },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::OpusSource;
    use crate::participant::{MediaPlan, Plan};
    use crate::transport::Shared;
    use std::sync::Arc;

    fn record(name: &str, publish: bool) -> Arc<Record> {
        Arc::new(Record::new(Plan {
            room: "r".into(),
            name: name.into(),
            publish,
            last_n: None,
            media: MediaPlan {
                audio_only: true,
                simulcast: false,
                video_kbps: 600,
                idle: false,
                no_transports: false,
            },
            record: false,
        }))
    }

    /// Gives `subscriber` a transport that received 10 audio packets of `publisher` at `at`.
    fn received(subscriber: &Record, publisher: &str, at: Instant) {
        let shared = Arc::new(Shared::default());
        let tag = publisher_tag(publisher);
        let mut stats = StreamStats::new(Kind::Audio, tag, at);
        let mut source = OpusSource::new(tag);
        for seq in 0..10 {
            stats.handle_packet(at, seq, &source.next_packet().payload);
        }
        shared.streams.lock().unwrap().insert("0".into(), stats);
        subscriber.joined();
        subscriber.add_transport(shared);
    }

    fn window(start: Instant) -> Window {
        Window {
            target: TargetKind::Sfu,
            start,
            media_start: start,
            packets_at_media_start: 0,
            end: start + Duration::from_secs(2),
            flowing_since: start + Duration::from_secs(1),
            cpu_pct: 10.0,
            cores: 1,
        }
    }

    #[test]
    fn every_subscriber_must_receive_every_other_publisher() {
        let start = Instant::now();
        let (alice, bob, carol) = (
            record("alice", true),
            record("bob", true),
            record("carol", false),
        );
        let late = start + Duration::from_millis(1500);
        received(&alice, "bob", late);
        received(&bob, "alice", late);
        received(&carol, "alice", late);
        // Carol never gets Bob's audio.
        let summary = summarize(&[alice, bob, carol.clone()], &window(start));
        assert_eq!((summary.streams_expected, summary.streams_received), (4, 3));
        assert!(!summary.passed());
        assert!(
            summary.missing_streams[0].starts_with("carol ← bob audio"),
            "{:?}",
            summary.missing_streams
        );
        received(&carol, "bob", late);
        let alice = record("alice", true);
        let bob = record("bob", true);
        received(&alice, "bob", late);
        received(&bob, "alice", late);
        let summary = summarize(&[alice, bob, carol], &window(start));
        assert_eq!((summary.streams_expected, summary.streams_received), (4, 4));
        assert!(summary.passed());
        assert_eq!(summary.packets_received, 40);
        assert_eq!(summary.loss_pct, 0.0);
    }

    #[test]
    fn a_stream_that_stopped_before_the_window_is_missing() {
        let start = Instant::now();
        let (alice, bob) = (record("alice", true), record("bob", true));
        received(&alice, "bob", start);
        received(&bob, "alice", start + Duration::from_millis(1500));
        let summary = summarize(&[alice, bob], &window(start));
        assert_eq!(summary.streams_received, 1);
        assert!(
            summary.missing_streams[0].contains("stopped (10 packets"),
            "{:?}",
            summary.missing_streams
        );
    }

    #[test]
    fn the_packet_rate_is_the_media_periods_and_the_first_frame_is_split_in_two() {
        let start = Instant::now();
        let (alice, bob) = (record("alice", true), record("bob", true));
        received(&alice, "bob", start);
        received(&bob, "alice", start);
        // 20 packets arrived before the media period: 0 during it.
        let mut w = window(start);
        w.packets_at_media_start = received_packets(&[alice.clone(), bob.clone()]);
        assert_eq!(w.packets_at_media_start, 20);
        let summary = summarize(&[alice.clone(), bob.clone()], &w);
        assert_eq!(summary.packets_per_s, 0.0);
        assert_eq!(summary.connect_ms, None, "nobody connected a transport");
        assert_eq!(summary.consumed_to_frame_ms, None, "nothing was consumed");
        alice.connected(Instant::now());
        for t in alice.transports.lock().unwrap().iter() {
            for stats in t.streams.lock().unwrap().values_mut() {
                stats.consumed = Some(start - Duration::from_millis(30));
            }
        }
        let summary = summarize(&[alice, bob], &window(start));
        assert_eq!(summary.packets_per_s, 10.0, "20 packets over 2 s");
        assert!(summary.connect_ms.is_some());
        let after = summary.consumed_to_frame_ms.expect("alice consumed");
        assert!((after.p50 - 30.0).abs() < 1.0, "{after:?}");
    }

    #[test]
    fn a_saturated_loadgen_is_said() {
        let start = Instant::now();
        let mut w = window(start);
        w.cpu_pct = 95.0;
        assert!(summarize(&[], &w).loadgen_saturated);
        w.cpu_pct = 95.0;
        w.cores = 2;
        assert!(!summarize(&[], &w).loadgen_saturated);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let p = Percentiles::of((1..=100).map(f64::from).collect()).unwrap();
        assert_eq!((p.p50, p.p99, p.max), (50.0, 99.0, 100.0));
        let one = Percentiles::of(vec![7.0]).unwrap();
        assert_eq!((one.p50, one.p99, one.max), (7.0, 7.0, 7.0));
        assert_eq!(Percentiles::of(vec![]), None);
    }
}
