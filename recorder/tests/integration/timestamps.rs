//! A sender's timestamps as they come, not as they should be: frames on the same RTP
//! timestamp or under a millisecond apart (the muxer's unit) still make a file every frame of
//! which plays, in order.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use recorder::writer::{Codec, TrackFormat, TrackWriter};

use crate::support::{decode_errors, probe, temp_dir};

/// The frames of a VP8 IVF file ffmpeg encodes from its test pattern.
fn vp8_frames(dir: &Path, frames: u32) -> Vec<Vec<u8>> {
    let ivf = dir.join("pattern.ivf");
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("testsrc=size=320x240:rate=30:duration=10")
        .args([
            "-frames:v",
            &frames.to_string(),
            "-c:v",
            "libvpx",
            "-g",
            "30",
        ])
        .args(["-deadline", "realtime", "-b:v", "400k"])
        .arg(&ivf)
        .status()
        .expect("ffmpeg (Debian's: scripts/setup.sh --tests)");
    assert!(status.success(), "ffmpeg failed");
    let bytes = std::fs::read(&ivf).expect("the IVF file");
    // IVF: a 32-byte file header, then each frame behind a 12-byte header (size, timestamp).
    let mut frames_read = Vec::new();
    let mut at = 32;
    while at + 12 <= bytes.len() {
        let size = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        at += 12;
        frames_read.push(bytes[at..at + size].to_vec());
        at += size;
    }
    frames_read
}

/// The frame cut into RTP packets with RFC 7741's one-byte descriptor (S on the first).
fn packetize(frame: &[u8], seq: &mut u16, timestamp: u32) -> Vec<Vec<u8>> {
    let chunks: Vec<&[u8]> = frame.chunks(1000).collect();
    let last = chunks.len() - 1;
    chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let mut packet = vec![0x80, 96 | if i == last { 0x80 } else { 0 }];
            packet.extend_from_slice(&seq.to_be_bytes());
            packet.extend_from_slice(&timestamp.to_be_bytes());
            packet.extend_from_slice(&0x1234_5678u32.to_be_bytes());
            packet.push(if i == 0 { 0x10 } else { 0 });
            packet.extend_from_slice(chunk);
            *seq = seq.wrapping_add(1);
            packet
        })
        .collect()
}

#[test]
fn frames_on_the_same_millisecond_or_the_same_rtp_timestamp_are_all_written_and_play_in_order() {
    let dir = temp_dir("timestamps");
    let frames = vp8_frames(&dir, 60);
    assert_eq!(frames.len(), 60);
    let path = dir.join("same-millisecond.webm");
    let format = TrackFormat {
        codec: Codec::Vp8,
        payload_type: 96,
        clock_rate: 90_000,
    };
    let mut writer = TrackWriter::create(format, &path).expect("writer");
    let mut seq = 40_000u16;
    for (i, frame) in frames.iter().enumerate() {
        let mut timestamp = 1_000 + i as u32 * 3_000;
        // Frame 10 on frame 9's RTP timestamp; frame 20 a third of a millisecond after 19.
        if i == 10 {
            timestamp -= 3_000;
        }
        if i == 20 {
            timestamp -= 3_000 - 30;
        }
        for packet in packetize(frame, &mut seq, timestamp) {
            writer.push(&packet, timestamp).expect("written");
        }
    }
    writer.finish(Duration::from_secs(5)).expect("finished");

    let (codec, written, duration) = probe(&path);
    println!(
        "{}: {codec}, {written} frames, {duration} s",
        path.display()
    );
    assert_eq!(codec, "vp8");
    assert_eq!(written, 60, "every frame is in the file");
    assert_eq!(decode_errors(&path), "", "and every frame plays, in order");
    let _ = std::fs::remove_dir_all(&dir);
}
