//! Recording started by a participant (`startRecording`, `stopRecording`, a join token with
//! `canRecord`) and a str0m publisher sending a known pattern (ffmpeg's test card in VP8, VP9
//! or H.264, a 440 Hz tone in Opus): the files hold every frame sent, last the time sent and
//! decode cleanly, also when 5 % of what reaches the recorder is dropped (iptables' statistic
//! match on its ports: NACK to mediasoup recovers it); a disk that fills (a small tmpfs)
//! stops the recording, and the room is told, while the call goes on.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use monitor_api::RecordingManifest;
use signaling_api::calls::StopRecording;
use signaling_api::client::{CallError, Client};
use signaling_api::{Notification, StartRecordingArgs};

use crate::recording::{decode_errors, probe};
use crate::support::codecs::VideoCodec;
use crate::support::pattern::{scratch, Pattern};
use crate::support::peer::{Joining, TestPeer};
use crate::support::process::output_within;
use crate::support::signaling::{self, join_with_token, next_notification, Expect};
use crate::support::Sfu;

const SECRET: &str = "recording-participants-secret-0123456789";
const SECONDS: u32 = 10;

/// `supervisor token` for `room` as `identity`, with `extra` flags.
fn token(room: &str, identity: &str, extra: &[&str]) -> String {
    let out = output_within(
        Command::new(env!("CARGO_BIN_EXE_supervisor"))
            .args(["token", "--room", room, "--identity", identity])
            .args(extra)
            .env("JOIN_SECRET", SECRET),
        Duration::from_secs(30),
        "supervisor token",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// An SFU with join tokens recording into `dir`'s `recordings`.
fn sfu_recording_into(dir: &Path) -> Sfu {
    let records = dir.join("recordings");
    Sfu::start(&[
        "--join-secret",
        SECRET,
        "--record-dir",
        records.to_str().expect("path"),
    ])
}

/// [`sfu_recording_into`] `dir`, and the pattern encoded into `dir`.
fn recording_sfu(dir: &Path) -> (Sfu, Pattern) {
    (sfu_recording_into(dir), Pattern::encode(dir, SECONDS))
}

/// The one recording folder of `room` once it holds `files` track files.
async fn files_open(dir: &Path, room: &str, files: usize) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let folders = std::fs::read_dir(dir.join("recordings").join(room))
            .into_iter()
            .flatten()
            .flatten();
        for folder in folders {
            let tracks = std::fs::read_dir(folder.path())
                .into_iter()
                .flatten()
                .flatten()
                .filter(|f| (f.path().extension()).is_some_and(|e| e == "webm" || e == "mkv"))
                .count();
            if tracks == files {
                return folder.path();
            }
        }
        assert!(Instant::now() < deadline, "no {files} track files in 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The pattern's files in `folder`, checked against what was sent (`seconds` of it): every
/// video frame in its own codec and container, the tone's every packet, the length sent
/// within 2 %, clean decodes, nothing lost for good.
fn assert_pattern_recorded(folder: &Path, pattern: &Pattern, seconds: u32) {
    let text = std::fs::read_to_string(folder.join("manifest.json")).expect("manifest.json");
    let manifest: RecordingManifest = serde_json::from_str(&text).expect("a manifest");
    assert_eq!(manifest.tracks.len(), 2, "{manifest:?}");
    for track in &manifest.tracks {
        let path = folder.join(&track.file);
        let (codec, frames, duration) = probe(&path);
        println!(
            "{}: {codec}, {frames} frames, {duration:.3} s, lost for good {:?}, offset {:?} ms",
            track.file, track.lost_packets, track.offset_ms
        );
        let (expected, extension) = match (track.kind.as_str(), pattern.codec) {
            ("video", VideoCodec::Vp8) => (("vp8", pattern.video.len()), "webm"),
            ("video", VideoCodec::Vp9) => (("vp9", pattern.video.len()), "webm"),
            ("video", VideoCodec::H264) => (("h264", pattern.video.len()), "mkv"),
            _ => (("opus", pattern.audio.len()), "webm"),
        };
        assert_eq!((codec.as_str(), frames as usize), expected, "{track:?}");
        assert!(track.file.ends_with(extension), "{track:?}");
        let sent = f64::from(seconds);
        assert!((duration - sent).abs() <= 0.02 * sent, "{duration} s");
        assert_eq!(track.lost_packets, Some(0), "{track:?}");
        assert_eq!(decode_errors(&path), "", "{}", track.file);
    }
    // Audio and video were sent from the same instant: the manifest's offsets (RTP time
    // mapped through the sender reports) say so.
    let offsets: Vec<i64> = manifest.tracks.iter().filter_map(|t| t.offset_ms).collect();
    assert_eq!(offsets.len(), 2, "{manifest:?}");
    assert!(
        (offsets[0] - offsets[1]).abs() <= 100,
        "audio and video offsets {offsets:?} ms"
    );
    let audio = manifest.tracks.iter().find(|t| t.kind == "audio");
    let audio = folder.join(&audio.expect("an audio track").file);
    let volume = mean_volume(&audio);
    println!("the tone's mean volume: {volume} dB");
    assert!(
        volume > -30.0,
        "the recorded audio is not the tone: {volume} dB"
    );
}

/// ffmpeg's `volumedetect` mean volume of `path`, in dB.
fn mean_volume(path: &Path) -> f64 {
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-i"])
        .arg(path)
        .args(["-af", "volumedetect", "-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    let text = String::from_utf8_lossy(&output.stderr);
    text.lines()
        .find_map(|l| l.split("mean_volume: ").nth(1))
        .and_then(|v| v.trim_end_matches(" dB").trim().parse().ok())
        .unwrap_or(f64::NEG_INFINITY)
}

fn refusal(error: CallError) -> (String, String) {
    match error {
        CallError::Refused { code, message } => (code, message),
        other => panic!("not a refusal: {other}"),
    }
}

async fn recording_told(client: &mut Client) -> bool {
    next_notification(client, "recording", |n| match n {
        Notification::Recording { active } => Some(active),
        _ => None,
    })
    .await
}

/// The teacher (a token with `canRecord`) publishing the pattern's two tracks in `room`.
async fn teacher(sfu: &Sfu, room: &str) -> TestPeer {
    teacher_in(sfu, room, VideoCodec::Vp8).await
}

/// [`teacher`], publishing video in `codec`.
async fn teacher_in(sfu: &Sfu, room: &str, codec: VideoCodec) -> TestPeer {
    let url = sfu.ws_url();
    let token = token(room, "teacher", &["--can-record"]);
    Joining::new(&url)
        .token(Some(&token))
        .video(codec)
        .peer(room, "Teacher", 7000)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp9_and_h264_publishers_are_recorded_frame_for_frame_in_their_own_codec() {
    const SHORT: u32 = 4;
    let dir = scratch("rec-codecs");
    let sfu = tokio::task::block_in_place(|| sfu_recording_into(&dir));
    for (codec, room) in [(VideoCodec::Vp9, "vp9"), (VideoCodec::H264, "h264")] {
        let encoded = dir.join(room);
        std::fs::create_dir_all(&encoded).expect("a folder");
        let pattern = tokio::task::block_in_place(|| Pattern::encode_in(&encoded, SHORT, codec));
        let mut teacher = teacher_in(&sfu, room, codec).await;
        teacher.signaling.ok(&StartRecordingArgs::default()).await;
        let folder = files_open(&dir, room, 2).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        pattern.send(&teacher).await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        teacher.signaling.ok(&StopRecording {}).await;
        tokio::task::block_in_place(|| assert_pattern_recorded(&folder, &pattern, SHORT));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_with_can_record_records_a_str0m_publishers_pattern_frame_for_frame() {
    let dir = scratch("rec-pattern");
    let (sfu, pattern) = tokio::task::block_in_place(|| recording_sfu(&dir));
    let mut teacher = teacher(&sfu, "class").await;
    let mut guest = signaling::connect(&sfu.ws_url(), None).await;
    let guest_token = token("class", "guest", &[]);
    guest
        .ok(&join_with_token("class", "Guest", &guest_token))
        .await;

    let (code, message) = refusal(guest.refused(&StartRecordingArgs::default()).await);
    println!("a guest's startRecording: {code}: {message}");
    assert_eq!(code, "forbidden");
    assert!(message.contains("canRecord"), "{message}");
    let (code, _) = refusal(guest.refused(&StopRecording {}).await);
    assert_eq!(code, "forbidden");

    teacher.signaling.ok(&StartRecordingArgs::default()).await;
    assert!(recording_told(&mut guest).await, "the guest is told");
    assert!(
        recording_told(&mut teacher.signaling).await,
        "the teacher is told"
    );
    let (code, message) = refusal(
        teacher
            .signaling
            .refused(&StartRecordingArgs::default())
            .await,
    );
    println!("a second startRecording: {code}: {message}");
    assert_eq!(code, "invalid_argument");

    // The taps are open before the first frame: the files start with it.
    let folder = files_open(&dir, "class", 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    pattern.send(&teacher).await;
    teacher.send.assert_healthy("the teacher's send transport");
    tokio::time::sleep(Duration::from_millis(500)).await;
    teacher.signaling.ok(&StopRecording {}).await;
    assert!(
        !recording_told(&mut guest).await,
        "the guest is told it ended"
    );
    let (code, message) = refusal(teacher.signaling.refused(&StopRecording {}).await);
    println!("a second stopRecording: {code}: {message}");
    assert_eq!(code, "not_found");

    tokio::task::block_in_place(|| assert_pattern_recorded(&folder, &pattern, SECONDS));
    let log = sfu.log_text();
    assert!(log.contains("recording started by a participant"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Drops 5 % of the UDP arriving at `ports` on loopback while it lives.
struct Lossy {
    rules: Vec<Vec<String>>,
}

impl Lossy {
    fn on(ports: &[u16]) -> Lossy {
        let rules: Vec<Vec<String>> = ports
            .iter()
            .map(|port| {
                ["-i", "lo", "-p", "udp", "--dport", &port.to_string()]
                    .into_iter()
                    .chain(["-m", "statistic", "--mode", "random", "--probability"])
                    .chain(["0.05", "-j", "DROP"])
                    .map(str::to_string)
                    .collect()
            })
            .collect();
        for rule in &rules {
            let status = Command::new("iptables-legacy")
                .args(["-I", "INPUT"])
                .args(rule)
                .status()
                .expect("iptables-legacy");
            assert!(status.success(), "iptables-legacy -I INPUT {rule:?}");
        }
        Lossy { rules }
    }

    /// Packets its rules dropped so far.
    fn dropped(&self) -> u64 {
        let output = Command::new("iptables-legacy")
            .args(["-L", "INPUT", "-v", "-n", "-x"])
            .output()
            .expect("iptables-legacy");
        let ports: Vec<String> = (self.rules.iter())
            .map(|rule| format!("dpt:{}", rule[5]))
            .collect();
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|line| {
                line.contains("statistic") && ports.iter().any(|p| line.contains(p.as_str()))
            })
            .filter_map(|line| line.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    }
}

impl Drop for Lossy {
    fn drop(&mut self) {
        for rule in &self.rules {
            let _ = Command::new("iptables-legacy")
                .args(["-D", "INPUT"])
                .args(rule)
                .status();
        }
    }
}

/// The UDP ports process `pid` listens on (`ss`).
fn udp_ports_of(pid: u32) -> Vec<u16> {
    let output = Command::new("ss")
        .args(["-Hulpn"])
        .output()
        .expect("ss (iproute2)");
    let owner = format!("pid={pid},");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains(&owner))
        .filter_map(|line| {
            line.split_whitespace()
                .nth(3)?
                .rsplit(':')
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_percent_loss_on_the_way_to_the_recorder_is_recovered_by_nack() {
    let dir = scratch("rec-loss");
    let (sfu, pattern) = tokio::task::block_in_place(|| recording_sfu(&dir));
    let mut teacher = teacher(&sfu, "lossy").await;
    teacher.signaling.ok(&StartRecordingArgs::default()).await;
    let folder = files_open(&dir, "lossy", 2).await;
    let recorder = sfu.children_named("recorder");
    assert_eq!(recorder.len(), 1, "one recorder process");
    let ports = udp_ports_of(recorder[0]);
    println!("the recorder's ports: {ports:?}");
    assert_eq!(ports.len(), 2, "a port per track");
    // The loss covers the pattern but its first and last half second: a receiver learns of a
    // lost packet from the next one, so the very first or last packet of a stream lost on
    // the way is lost to any NACK (seen in CI: 500 of 501 audio frames when the first was).
    let (_, dropped) = tokio::join!(pattern.send(&teacher), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let lossy = Lossy::on(&ports);
        tokio::time::sleep(Duration::from_secs(u64::from(SECONDS) - 1)).await;
        lossy.dropped()
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    teacher.signaling.ok(&StopRecording {}).await;
    println!("iptables dropped {dropped} packets on their way to the recorder");
    assert!(
        dropped >= 20,
        "{dropped} packets dropped: the loss did not happen"
    );
    tokio::task::block_in_place(|| assert_pattern_recorded(&folder, &pattern, SECONDS));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A tmpfs of `kib` KiB mounted on `dir` while it lives: a disk that fills.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(dir: &Path, kib: u32) -> SmallDisk {
        std::fs::create_dir_all(dir).expect("mount point");
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={kib}k"),
                "sfu-test-full",
            ])
            .arg(dir)
            .status()
            .expect("mount");
        assert!(status.success(), "mount -t tmpfs on {}", dir.display());
        SmallDisk {
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily: a process still holding a file there cannot keep the mount alive.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_that_fills_stops_the_recording_with_an_event_and_the_call_goes_on() {
    let dir = scratch("rec-full");
    let pattern = tokio::task::block_in_place(|| Pattern::encode(&dir, SECONDS));
    // 10 s of the pattern are about 600 KB: this disk is full after a few seconds.
    let disk = SmallDisk::mount(&dir.join("recordings"), 256);
    let sfu = sfu_recording_into(&dir);
    let mut teacher = teacher(&sfu, "full").await;
    let url = sfu.ws_url();
    let guest_token = token("full", "guest", &[]);
    let mut guest = Joining::new(&url)
        .token(Some(&guest_token))
        .join_call("full", "Guest", 8000, &mut [&mut teacher])
        .await;
    teacher.signaling.ok(&StartRecordingArgs::default()).await;
    assert!(recording_told(&mut guest.signaling).await);
    let started = Instant::now();
    // The pattern goes on while the guest hears that the recording ended.
    let (_, ended) = tokio::join!(pattern.send(&teacher), async {
        let ended = guest
            .signaling
            .notification(Duration::from_secs(15), |n| match n {
                Notification::Recording { active: false } => Some(()),
                _ => None,
            })
            .await;
        (ended, started.elapsed())
    });
    let (told, after) = ended;
    told.expect("the guest is told the recording ended when the disk filled");
    println!("recording ended {after:?} into the call");
    assert!(after < Duration::from_secs(SECONDS.into()), "{after:?}");
    // The call went on: the guest received the teacher's whole pattern.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let video = guest.consumer_of(&teacher.producers[1].id);
    let sent = pattern
        .video
        .iter()
        .map(|f| f.len().div_ceil(1100) as u64)
        .sum::<u64>();
    let received = guest.arrivals(video).count();
    println!("the guest received {received} of the {sent} video packets sent");
    assert!(received * 100 >= sent * 99, "{received} of {sent}");
    teacher.send.assert_healthy("the teacher's send transport");
    let log = sfu.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("recording stops"))
        .unwrap_or_else(|| panic!("no log line says the recording stopped:\n{log}"));
    println!("{line}");
    assert!(line.to_lowercase().contains("space"), "{line}");
    // The recording is over: a stop says so.
    let (code, _) = refusal(teacher.signaling.refused(&StopRecording {}).await);
    assert_eq!(code, "not_found");
    drop(sfu);
    drop(disk);
    let _ = std::fs::remove_dir_all(&dir);
}
