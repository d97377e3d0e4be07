//! The recorder's track path against a real RTP sender, without the SFU: Debian's ffmpeg
//! encodes a test pattern (VP8, Opus) and sends it as RTP (RTCP sender reports on the same
//! port); what the recorder writes is read back with ffprobe and decoded with ffmpeg.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use recorder::track::Track;
use recorder::writer::{Codec, TrackFormat};

use crate::support::{decode_errors, ffmpeg_rtp, probe, temp_dir};

fn record(codec: Codec, payload_type: u8, clock_rate: u32, seconds: u32) -> PathBuf {
    let dir = temp_dir(&format!("{codec:?}"));
    let path = dir.join(format!("{codec:?}.{}", codec.extension()));
    let format = TrackFormat {
        codec,
        payload_type,
        clock_rate,
    };
    let track = Track::start(IpAddr::from([127, 0, 0, 1]), format, path.clone()).expect("track");
    let mut ffmpeg = ffmpeg_rtp(codec, track.local_addr().port(), seconds);
    let status = ffmpeg.wait().expect("ffmpeg");
    assert!(status.success(), "ffmpeg failed");
    std::thread::sleep(Duration::from_millis(300));
    let report = track.stop();
    println!("{codec:?}: {report:?}");
    assert_eq!(report.error, None);
    assert!(
        report.synced_by_sender_report,
        "ffmpeg sends sender reports"
    );
    path
}

#[test]
fn vp8_rtp_becomes_a_webm_file_with_every_frame_that_decodes_cleanly() {
    let path = record(Codec::Vp8, 96, 90_000, 5);
    let (codec, frames, duration) = probe(&path);
    println!("{}: {codec}, {frames} frames, {duration} s", path.display());
    assert_eq!(codec, "vp8");
    // 5 s at 30 fps; the encoder's first frames may come before the socket saw anything.
    assert!((145..=150).contains(&frames), "{frames} frames");
    assert!((duration - 5.0).abs() < 0.1, "{duration} s");
    assert_eq!(decode_errors(&path), "");
    let _ = std::fs::remove_dir_all(path.parent().expect("its folder"));
}

#[test]
fn vp9_rtp_becomes_a_webm_file_with_every_frame_that_decodes_cleanly() {
    let path = record(Codec::Vp9, 98, 90_000, 5);
    let (codec, frames, duration) = probe(&path);
    println!("{}: {codec}, {frames} frames, {duration} s", path.display());
    assert_eq!(codec, "vp9");
    assert!((145..=150).contains(&frames), "{frames} frames");
    assert_eq!(decode_errors(&path), "");
    let _ = std::fs::remove_dir_all(path.parent().expect("its folder"));
}

#[test]
fn h264_rtp_becomes_a_matroska_file_with_every_frame_that_decodes_cleanly() {
    let path = record(Codec::H264, 102, 90_000, 5);
    assert!(path.extension().is_some_and(|e| e == "mkv"));
    let (codec, frames, duration) = probe(&path);
    println!("{}: {codec}, {frames} frames, {duration} s", path.display());
    assert_eq!(codec, "h264");
    assert!((145..=150).contains(&frames), "{frames} frames");
    assert_eq!(decode_errors(&path), "");
    let _ = std::fs::remove_dir_all(path.parent().expect("its folder"));
}

#[test]
fn opus_rtp_becomes_a_webm_file_of_the_right_length() {
    let path = record(Codec::Opus, 111, 48_000, 5);
    let (codec, frames, duration) = probe(&path);
    println!("{}: {codec}, {frames} frames, {duration} s", path.display());
    assert_eq!(codec, "opus");
    assert!((duration - 5.0).abs() < 0.1, "{duration} s");
    assert_eq!(decode_errors(&path), "");
    let _ = std::fs::remove_dir_all(path.parent().expect("its folder"));
}

#[test]
fn an_unwritable_folder_is_refused_when_the_track_starts() {
    let format = TrackFormat {
        codec: Codec::Vp8,
        payload_type: 96,
        clock_rate: 90_000,
    };
    let refused = Track::start(
        IpAddr::from([127, 0, 0, 1]),
        format,
        PathBuf::from("/proc/no-such-folder/track.webm"),
    )
    .expect_err("nowhere to write");
    println!("{refused}");
    assert!(
        refused.to_string().contains("/proc/no-such-folder"),
        "{refused}"
    );
}
