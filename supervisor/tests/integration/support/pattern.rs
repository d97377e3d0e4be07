//! A known pattern for a str0m publisher to send: ffmpeg encodes a test card (VP8 or VP9 in
//! IVF, H.264 in Annex B) and a 440 Hz tone (Opus, Ogg) once; the test peer sends those
//! frames in real time, each video frame packetized as its RTP payload format says
//! (`packetize.rs`), so that what comes out of the SFU can be counted and decoded like a real
//! camera's.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::codecs::VideoCodec;
use super::packetize::{h264_access_units, ivf_frames, payloads};
use super::peer::TestPeer;

/// Video frames per second of the pattern.
pub const FPS: u64 = 30;
/// Audio frames per second (20 ms each).
pub const AUDIO_FPS: u64 = 50;

/// The encoded pattern: one payload per frame, in order.
pub struct Pattern {
    /// The video's codec.
    pub codec: VideoCodec,
    /// Video frames, a key frame every second.
    pub video: Vec<Vec<u8>>,
    /// Opus packets of 20 ms.
    pub audio: Vec<Vec<u8>>,
}

impl Pattern {
    /// `seconds` of pattern in VP8, encoded by ffmpeg into `dir`.
    pub fn encode(dir: &Path, seconds: u32) -> Pattern {
        Self::encode_in(dir, seconds, VideoCodec::Vp8)
    }

    /// `seconds` of pattern with its video in `codec` (VP9: profile 2, 10 bits, as the
    /// router declares it; H.264: constrained baseline), encoded by ffmpeg into `dir`.
    pub fn encode_in(dir: &Path, seconds: u32, codec: VideoCodec) -> Pattern {
        let file = dir.join(match codec {
            VideoCodec::H264 => "pattern.h264",
            _ => "pattern.ivf",
        });
        let ogg = dir.join("pattern.ogg");
        let video = format!("testsrc=size=320x240:rate={FPS}:duration={seconds}");
        let encoder: &[&str] = match codec {
            VideoCodec::Vp8 => &["-c:v", "libvpx", "-deadline", "realtime", "-f", "ivf"],
            VideoCodec::Vp9 => &[
                "-c:v",
                "libvpx-vp9",
                "-pix_fmt",
                "yuv420p10le",
                "-profile:v",
                "2",
                "-deadline",
                "realtime",
                "-lag-in-frames",
                "0",
                "-f",
                "ivf",
            ],
            VideoCodec::H264 => &[
                "-c:v",
                "libx264",
                "-profile:v",
                "baseline",
                "-level",
                "3.1",
                "-pix_fmt",
                "yuv420p",
                "-tune",
                "zerolatency",
                "-f",
                "h264",
            ],
        };
        let mut args = vec!["-f", "lavfi", "-i", &video, "-g", "30", "-b:v", "400k"];
        args.extend_from_slice(encoder);
        ffmpeg(&args, &file);
        let audio = format!("sine=frequency=440:sample_rate=48000:duration={seconds}");
        ffmpeg(
            &[
                "-f",
                "lavfi",
                "-i",
                &audio,
                "-c:a",
                "libopus",
                "-b:a",
                "48k",
                "-frame_duration",
                "20",
                "-f",
                "ogg",
            ],
            &ogg,
        );
        let bytes = std::fs::read(&file).expect("the video file");
        let video = match codec {
            VideoCodec::H264 => h264_access_units(&bytes),
            _ => ivf_frames(&bytes),
        };
        let audio = ogg_packets(&std::fs::read(&ogg).expect("the Ogg file"));
        assert_eq!(video.len() as u64, FPS * u64::from(seconds), "video frames");
        // Ogg's first two packets are the Opus headers.
        assert!(
            audio.len() as u64 >= AUDIO_FPS * u64::from(seconds),
            "Opus packets"
        );
        Pattern {
            codec,
            video,
            audio: audio[2..].to_vec(),
        }
    }

    /// Sends the whole pattern from `peer`'s two producers in real time (audio every 20 ms,
    /// video at [`FPS`]), RTP timestamps and sequence numbers running from 0 and 1.
    pub async fn send(&self, peer: &TestPeer) {
        let (audio, video) = (&peer.producers[0], &peer.producers[1]);
        let (opus, pt) = (peer.pts.opus, peer.pts.video(self.codec));
        let mut ticks = tokio::time::interval(Duration::from_millis(10));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let (mut audio_seq, mut video_seq) = (0u64, 0u64);
        let (mut next_audio, mut next_video) = (0usize, 0usize);
        let mut elapsed_ms = 0u64;
        while next_audio < self.audio.len() || next_video < self.video.len() {
            ticks.tick().await;
            while next_audio < self.audio.len() && next_audio as u64 * 20 <= elapsed_ms {
                audio_seq += 1;
                let time = (next_audio as u64 * 960) as u32;
                let payload = self.audio[next_audio].clone();
                peer.send
                    .write_part(audio.ssrc, opus, audio_seq, time, payload, true);
                next_audio += 1;
            }
            while next_video < self.video.len() && next_video as u64 * 1000 / FPS <= elapsed_ms {
                let time = (next_video as u64 * 90_000 / FPS) as u32;
                let frame = &self.video[next_video];
                let parts = payloads(self.codec, next_video, frame);
                let count = parts.len();
                for (i, payload) in parts.into_iter().enumerate() {
                    video_seq += 1;
                    peer.send
                        .write_part(video.ssrc, pt, video_seq, time, payload, i + 1 == count);
                }
                next_video += 1;
            }
            elapsed_ms += 10;
        }
    }
}

fn ffmpeg(args: &[&str], out: &Path) {
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .arg(out)
        .status()
        .expect("ffmpeg (Debian's: scripts/setup.sh --tests)");
    assert!(status.success(), "ffmpeg could not write {}", out.display());
}

/// The packets of an Ogg stream: each page's segments, joined until a segment shorter than
/// 255 bytes ends a packet (a packet may go on in the next page).
fn ogg_packets(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    let mut packet = Vec::new();
    let mut at = 0;
    while at + 27 <= bytes.len() {
        assert_eq!(&bytes[at..at + 4], b"OggS", "an Ogg page at {at}");
        let segments = bytes[at + 26] as usize;
        let lacing = &bytes[at + 27..at + 27 + segments];
        let mut data = at + 27 + segments;
        for &length in lacing {
            packet.extend_from_slice(&bytes[data..data + length as usize]);
            data += length as usize;
            if length < 255 {
                packets.push(std::mem::take(&mut packet));
            }
        }
        at = data;
    }
    packets
}

/// A fresh folder for a test's files.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sfu-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    dir
}

#[test]
fn ogg_packets_join_segments_across_pages() {
    let page = |segments: &[u8], data: &[u8]| {
        let mut page = b"OggS".to_vec();
        page.extend_from_slice(&[0; 22]);
        page.push(segments.len() as u8);
        page.extend_from_slice(segments);
        page.extend_from_slice(data);
        page
    };
    let mut stream = page(&[3, 255], &[1; 258]);
    stream.extend(page(&[2], &[2; 2]));
    let packets = ogg_packets(&stream);
    assert_eq!(packets.len(), 2);
    assert_eq!(packets[0], vec![1; 3]);
    assert_eq!(packets[1].len(), 257);
}
