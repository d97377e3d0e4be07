//! Recording a room as an operator does (`monitor record start|stop|list`): a GStreamer WHIP
//! publisher (real VP8 and Opus encoders) sends into a room; each of its tracks is written to
//! its own file, read back with Debian's ffprobe and decoded with ffmpeg; a recorder killed
//! mid-way leaves files that play while the call goes on, and recording starts again when
//! asked; what cannot be recorded is refused with the reason.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use monitor_api::RecordingManifest;

use crate::support::process::output_within;
use crate::support::{monitor_binary, signal, Sfu};
use crate::whip::{finished, publisher, start_for_libnice};

const TOKEN: &str = "recording-test-monitor-token-0123456789";

/// `monitor --json <args>` against `sfu`: the data, or the error line it printed.
fn monitor(sfu: &Sfu, args: &[&str]) -> Result<serde_json::Value, String> {
    let url = format!("ws://127.0.0.1:{}/monitor", sfu.port);
    let output = output_within(
        Command::new(monitor_binary())
            .args(["--url", &url, "--token", TOKEN, "--json"])
            .args(args),
        Duration::from_secs(30),
        "monitor",
    );
    if output.status.success() {
        serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn manifest(value: serde_json::Value) -> RecordingManifest {
    serde_json::from_value(value).expect("a recording manifest")
}

/// `record start room` once the room exists (the publisher is joining).
async fn start_when_the_room_exists(sfu: &Sfu, room: &str) -> RecordingManifest {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::task::block_in_place(|| monitor(sfu, &["record", "start", room])) {
            Ok(started) => return manifest(started),
            Err(e) if e.contains("no room") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("record start: {e}\n{}", sfu.log_text()),
        }
    }
}

/// ffprobe's codec, decoded frame count and duration (s) of a file's one stream.
pub(crate) fn probe(path: &Path) -> (String, u64, f64) {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries"])
        .arg("stream=codec_name,nb_read_frames:format=duration")
        .args(["-of", "default=noprint_wrappers=1"])
        .arg(path)
        .output()
        .expect("ffprobe (Debian's ffmpeg: scripts/setup.sh --tests)");
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

/// What ffmpeg prints decoding the whole file (nothing when it decodes cleanly).
pub(crate) fn decode_errors(path: &Path) -> String {
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

/// An SFU recording into a fresh folder `name`, and GStreamer's WHIP publisher sending into
/// `room` for `seconds`.
fn publishing(name: &str, room: &str, seconds: u32) -> (PathBuf, Sfu, tokio::process::Child) {
    let dir = record_dir(name);
    let sfu = start_for_libnice(
        &[
            "--record-dir",
            dir.to_str().expect("path"),
            "--monitor-token",
            TOKEN,
        ],
        None,
    );
    let url = format!("http://127.0.0.1:{}/whip/{room}", sfu.port);
    let whip = publisher(&url, seconds, None);
    (dir, sfu, whip)
}

fn record_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sfu-test-rec-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("record dir");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_track_of_a_room_is_recorded_to_a_file_that_plays_with_its_offset_in_the_manifest() {
    let (dir, sfu, whip) = publishing("files", "lesson", 18);
    let started = start_when_the_room_exists(&sfu, "lesson").await;
    assert!(started.stopped.is_none());
    assert!(started.folder.starts_with(dir.to_str().expect("path")));
    tokio::time::sleep(Duration::from_secs(10)).await;
    let stopped = manifest(
        tokio::task::block_in_place(|| monitor(&sfu, &["record", "stop", "lesson"]))
            .expect("record stop"),
    );
    println!("{stopped:#?}");
    assert_eq!(stopped.error, None);
    assert_eq!(stopped.tracks.len(), 2, "audio and video");
    let folder = PathBuf::from(&stopped.folder);
    for track in &stopped.tracks {
        let path = folder.join(&track.file);
        let (codec, frames, duration) = probe(&path);
        let recorded = track.duration_ms.expect("a duration") as f64 / 1000.0;
        println!(
            "{}: {codec}, {frames} frames, {duration:.3} s (manifest {recorded:.3} s, offset {:?} ms)",
            track.file, track.offset_ms
        );
        assert_eq!(track.error, None);
        // Recorded for 10 s of the SFU's clock; the media time in a file is the publisher's,
        // which a loaded machine's encoder lets lag and then catch up (10.6 s seen in CI).
        assert!((8.0..=12.0).contains(&recorded), "{recorded} s");
        assert!(
            (duration - recorded).abs() <= recorded * 0.02,
            "the file's {duration} s against {recorded} s"
        );
        match track.kind.as_str() {
            "video" => {
                assert_eq!((codec.as_str(), track.codec.as_str()), ("vp8", "video/VP8"));
                // 30 frames a second, as the publisher encodes.
                let expected = duration * 30.0;
                assert!(
                    (frames as f64 - expected).abs() <= expected * 0.03,
                    "{frames} frames in {duration} s"
                );
            }
            _ => {
                assert_eq!(
                    (codec.as_str(), track.codec.as_str()),
                    ("opus", "audio/opus")
                );
                // 20 ms Opus frames.
                let expected = duration * 50.0;
                assert!(
                    (frames as f64 - expected).abs() <= expected * 0.03,
                    "{frames} frames in {duration} s"
                );
            }
        }
        assert_eq!(decode_errors(&path), "", "{} decodes cleanly", track.file);
        assert!(track.offset_ms.is_some(), "offsets from sender reports");
    }
    assert!(
        stopped.tracks.iter().any(|t| t.offset_ms == Some(0)),
        "offsets count from the earliest track"
    );
    let on_disk: RecordingManifest = serde_json::from_str(
        &std::fs::read_to_string(folder.join("manifest.json")).expect("manifest.json"),
    )
    .expect("manifest.json is a manifest");
    assert_eq!(on_disk, stopped);
    let list = tokio::task::block_in_place(|| monitor(&sfu, &["record", "list"])).expect("list");
    let list: Vec<RecordingManifest> = serde_json::from_value(list).expect("manifests");
    assert_eq!(list, vec![stopped]);
    finished(whip).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorder_killed_mid_way_leaves_files_that_play_and_recording_starts_again() {
    let (dir, sfu, whip) = publishing("kill", "class", 20);
    let mut events = crate::support::monitor_events::follow(&sfu, None, TOKEN).await;
    let first = start_when_the_room_exists(&sfu, "class").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let recorders = sfu.children_named("recorder");
    assert_eq!(recorders.len(), 1, "one recorder while recording");
    signal(recorders[0], "KILL");
    // The recording stops, saying why, with the files as they were.
    let deadline = Instant::now() + Duration::from_secs(10);
    let killed = loop {
        let list =
            tokio::task::block_in_place(|| monitor(&sfu, &["record", "list"])).expect("list");
        let list: Vec<RecordingManifest> = serde_json::from_value(list).expect("manifests");
        if let Some(done) = list
            .into_iter()
            .find(|m| m.folder == first.folder && m.stopped.is_some())
        {
            break done;
        }
        assert!(
            Instant::now() < deadline,
            "the recording did not stop:\n{}",
            sfu.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("{killed:#?}");
    assert!(
        killed
            .error
            .as_deref()
            .is_some_and(|e| e.contains("recorder died")),
        "{killed:?}"
    );
    let folder = PathBuf::from(&killed.folder);
    for track in &killed.tracks {
        let path = folder.join(&track.file);
        let (codec, frames, duration) = probe(&path);
        println!(
            "{}: {codec}, {frames} frames, {duration:.3} s after the kill",
            track.file
        );
        assert!(frames > 0, "{} holds what came before the kill", track.file);
        assert_eq!(decode_errors(&path), "", "{} decodes cleanly", track.file);
    }
    assert_eq!(killed.tracks.len(), 2);
    // The monitor's events said it: started, then ended early with the reason.
    let started = events
        .seen_or_wait(Duration::from_secs(5), |e| e["type"] == "recordingStarted")
        .await
        .expect("a recordingStarted event");
    assert_eq!(started["folder"], first.folder.as_str(), "{started}");
    let ended = events
        .seen_or_wait(Duration::from_secs(5), |e| e["type"] == "recordingStopped")
        .await
        .expect("a recordingStopped event");
    println!("event: {ended}");
    assert_eq!(
        (&ended["room"], &ended["tracks"]),
        (&"class".into(), &2.into())
    );
    assert!(
        ended["error"]
            .as_str()
            .is_some_and(|e| e.contains("recorder died")),
        "{ended}"
    );
    // Asked again: a new recorder, new files.
    let second = start_when_the_room_exists(&sfu, "class").await;
    assert_ne!(second.folder, first.folder);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let again = manifest(
        tokio::task::block_in_place(|| monitor(&sfu, &["record", "stop", "class"]))
            .expect("record stop"),
    );
    assert_eq!(again.error, None);
    assert_eq!(again.tracks.len(), 2, "{again:?}");
    for track in &again.tracks {
        let (_, frames, _) = probe(&PathBuf::from(&again.folder).join(&track.file));
        assert!(frames > 0, "{track:?}");
    }
    // The call never stopped: the publisher ran its 20 s and ended cleanly.
    let said = finished(whip).await;
    assert!(!said.contains("ice failed"), "{said}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_is_refused_without_a_folder_an_unknown_room_or_an_unwritable_folder() {
    // No RECORD_DIR.
    let off = Sfu::start(&["--monitor-token", TOKEN]);
    let refused = tokio::task::block_in_place(|| monitor(&off, &["record", "start", "any"]))
        .expect_err("off");
    println!("without RECORD_DIR: {refused}");
    assert!(refused.contains("RECORD_DIR"), "{refused}");

    // A folder nobody can write: the room exists (a peer joined) but the start is refused.
    let sfu = Sfu::start(&[
        "--record-dir",
        "/proc/sfu-recordings",
        "--monitor-token",
        TOKEN,
    ]);
    let unknown = tokio::task::block_in_place(|| monitor(&sfu, &["record", "start", "nowhere"]))
        .expect_err("unknown room");
    println!("unknown room: {unknown}");
    assert!(unknown.contains("no room \"nowhere\""), "{unknown}");
    let mut peer = crate::support::signaling::connect(&sfu.ws_url(), None).await;
    peer.call(&crate::support::signaling::join("study", "alice"))
        .await
        .expect("join");
    let unwritable = tokio::task::block_in_place(|| monitor(&sfu, &["record", "start", "study"]))
        .expect_err("unwritable");
    println!("unwritable: {unwritable}");
    assert!(
        unwritable.contains("cannot write recordings to /proc/sfu-recordings"),
        "{unwritable}"
    );
    let not_recording = tokio::task::block_in_place(|| monitor(&sfu, &["record", "stop", "study"]))
        .expect_err("not recording");
    assert!(
        not_recording.contains("not being recorded"),
        "{not_recording}"
    );
    assert!(
        sfu.children_named("recorder").is_empty(),
        "no recorder started for refusals"
    );
}

#[test]
fn chromiums_camera_and_microphone_recorded_mid_call_through_5_percent_loss_start_together_and_decode_cleanly(
) {
    crate::browser::check_prerequisites();
    // The pages' network drops 5 % of what they send (iptables' statistic match): NACK and
    // RTX between Chromium and the SFU recover it before the recorder sees it.
    let net = crate::support::client_net::ClientNet::create(6);
    net.iptables(&[
        "-A",
        "OUTPUT",
        "-p",
        "udp",
        "-m",
        "statistic",
        "--mode",
        "random",
        "--probability",
        "0.05",
        "-j",
        "DROP",
    ]);
    let dir = record_dir("chromium");
    let host_ip = net.host_ip.to_string();
    let sfu = Sfu::start_unbound(&[
        "--bind",
        "0.0.0.0",
        "--rtc-ip",
        &host_ip,
        "--record-dir",
        dir.to_str().expect("path"),
        "--monitor-token",
        TOKEN,
    ]);
    let url = format!("http://{}:{}", net.host_ip, sfu.port);
    let envs: Vec<(String, String)> = vec![
        ("SFU_ROOM".into(), "studio".into()),
        ("SFU_SECURE_ORIGINS".into(), url.clone()),
        // The call lasts while it is recorded.
        ("SFU_HOLD_MS".into(), "24000".into()),
        // Its timeline is measured: no other pages' load beside it.
        ("SFU_EXCLUSIVE".into(), "1".into()),
    ];
    let node = net.command("node");
    let browser = std::thread::spawn(move || {
        let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        crate::browser::run_browser_script_with(
            node,
            "call.mjs",
            &url,
            &envs,
            Duration::from_secs(180),
        )
    });
    // Recorded mid-call, as a meeting usually is: once alice's camera and microphone have
    // been on for 3 s (mediasoup's simulcast consumer takes a layer only after 2 s of it).
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let publishing = monitor(&sfu, &["room", "studio"]).ok().is_some_and(|room| {
            room["participants"].as_array().is_some_and(|peers| {
                peers.iter().any(|p| {
                    p["displayName"] == "alice"
                        && p["producers"].as_array().is_some_and(|p| p.len() == 2)
                })
            })
        });
        if publishing {
            break;
        }
        assert!(
            Instant::now() < deadline && !browser.is_finished(),
            "alice never published"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(3));
    monitor(&sfu, &["record", "start", "studio", "--peer", "alice"]).expect("record start");
    std::thread::sleep(Duration::from_secs(10));
    let stopped = manifest(monitor(&sfu, &["record", "stop", "studio"]).expect("record stop"));
    let out = browser
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
    println!("{out}\n{stopped:#?}");
    assert_eq!(stopped.error, None);
    assert_eq!(stopped.tracks.len(), 2, "alice's audio and video only");
    // Everyone in the room saw the page's recording mark, and saw it go at the stop.
    for page in ["alice", "bob"] {
        // (The page says "off" first when the call's hold begins before the recording.)
        let on = out.find(&format!("{page}: recording mark on"));
        let off = on.and_then(|at| out[at..].find(&format!("{page}: recording mark off")));
        assert!(
            off.is_some(),
            "{page}'s page did not show the recording on, then off:\n{out}"
        );
    }
    let folder = PathBuf::from(&stopped.folder);
    // (offset, duration) of audio and video.
    let mut timeline = std::collections::HashMap::new();
    for track in &stopped.tracks {
        assert_eq!(track.peer, "alice");
        let path = folder.join(&track.file);
        let (codec, frames, duration) = probe(&path);
        println!(
            "{}: {codec}, {frames} frames, {duration:.3} s, lost for good {:?}, offset {:?} ms",
            track.file, track.lost_packets, track.offset_ms
        );
        assert!(
            frames > 0 && duration > 7.0,
            "{} holds the call",
            track.file
        );
        assert_eq!(decode_errors(&path), "", "{} decodes cleanly", track.file);
        timeline.insert(
            track.kind.clone(),
            (
                track.offset_ms.expect("an offset") as f64 / 1000.0,
                track.duration_ms.expect("a duration") as f64 / 1000.0,
            ),
        );
    }
    // Both taps opened at once on a running camera and microphone: the video starts at the
    // key frame asked for then, and the offsets agree within 100 ms. Both tracks were
    // stopped at one instant too, so on the manifest's timeline they also end together.
    let (audio, video) = (timeline["audio"], timeline["video"]);
    assert!(
        (audio.0 - video.0).abs() <= 0.1,
        "audio and video offsets {:.3} s and {:.3} s",
        audio.0,
        video.0
    );
    let (audio_end, video_end) = (audio.0 + audio.1, video.0 + video.1);
    println!(
        "audio {:.3} s + {:.3} s = {audio_end:.3} s, video {:.3} s + {:.3} s = {video_end:.3} s",
        audio.0, audio.1, video.0, video.1
    );
    assert!(
        (audio_end - video_end).abs() <= 0.1,
        "the offsets do not put the tracks on one timeline"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
