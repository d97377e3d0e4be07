//! What the recorder's tests share: a temporary folder, ffmpeg as an RTP sender of a test
//! pattern, and ffprobe/ffmpeg to read back what was written.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use recorder::writer::Codec;

/// A fresh folder for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sfu-recorder-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Streams `seconds` of ffmpeg's test pattern as `codec` RTP to `port`.
pub fn ffmpeg_rtp(codec: Codec, port: u16, seconds: u32) -> std::process::Child {
    let url = format!("rtp://127.0.0.1:{port}?rtcpport={port}&pkt_size=1200");
    let mut command = Command::new("ffmpeg");
    command.args(["-hide_banner", "-loglevel", "error", "-re"]);
    match codec {
        Codec::Vp8 => command.args([
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc=size=320x240:rate=30:duration={seconds}"),
            "-c:v",
            "libvpx",
            "-deadline",
            "realtime",
            "-b:v",
            "400k",
            "-g",
            "30",
            "-payload_type",
            "96",
        ]),
        Codec::Opus => command.args([
            "-f",
            "lavfi",
            "-i",
            &format!("sine=frequency=440:sample_rate=48000:duration={seconds}"),
            "-c:a",
            "libopus",
            "-ac",
            "2",
            "-payload_type",
            "111",
        ]),
        Codec::Vp9 => command.args([
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc=size=320x240:rate=30:duration={seconds}"),
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "realtime",
            "-b:v",
            "400k",
            "-g",
            "30",
            // ffmpeg's VP9 RTP packetizer is marked experimental.
            "-strict",
            "experimental",
            "-payload_type",
            "98",
        ]),
        Codec::H264 => command.args([
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc=size=320x240:rate=30:duration={seconds}"),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-profile:v",
            "baseline",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "30",
            "-payload_type",
            "102",
        ]),
    };
    command
        .args(["-f", "rtp", &url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("ffmpeg (Debian's: scripts/setup.sh --tests)")
}

/// ffprobe's view of the file's first stream: codec, frames, duration in seconds.
pub fn probe(path: &Path) -> (String, u64, f64) {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,nb_read_frames:format=duration",
            "-of",
            "default=noprint_wrappers=1",
        ])
        .arg(path)
        .output()
        .expect("ffprobe");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_default()
            .to_string()
    };
    (
        field("codec_name"),
        field("nb_read_frames").parse().unwrap_or(0),
        field("duration").parse().unwrap_or(0.0),
    )
}

/// What ffmpeg says when it decodes the whole file (nothing: it decodes cleanly).
pub fn decode_errors(path: &Path) -> String {
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(path)
        // Frames keep the file's own timestamps (milliseconds): by default ffmpeg's null
        // output counts in frames of the guessed rate and calls two frames of a variable-rate
        // camera in one such tick "non monotonically increasing".
        .args(["-enc_time_base", "-1", "-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    String::from_utf8_lossy(&output.stderr).into_owned()
}
