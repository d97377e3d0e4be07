//! The `recorder` process as the supervisor drives it: a socket, the hello, `OpenTrack` and
//! `CloseTrack` requests; ffmpeg sends the track. A clean close leaves a complete file; a
//! recorder SIGKILLed mid-way leaves a file that plays up to the kill; a track that cannot be
//! written is refused with the reason.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ipc::recorder::{
    FromRecorder, RecorderAnswer, RecorderRequest, ToRecorder, RECORDER_PROTOCOL_VERSION,
};
use ipc::socket::{FramedReader, FramedWriter, StreamHalf};
use recorder::writer::Codec;

use crate::support::{decode_errors, ffmpeg_rtp, probe, temp_dir};

/// The recorder process and our side of its socket.
struct Recorder {
    child: Child,
    reader: FramedReader<StreamHalf>,
    writer: FramedWriter<StreamHalf>,
    next_id: u64,
}

impl Recorder {
    async fn start(dir: &Path) -> Recorder {
        let socket = dir.join("recorder.sock");
        let listener = ipc::socket::listen(&socket).expect("listen");
        let child = Command::new(env!("CARGO_BIN_EXE_recorder"))
            .arg("--socket")
            .arg(&socket)
            .stdin(Stdio::null())
            .spawn()
            .expect("recorder");
        let (mut reader, mut writer) =
            tokio::time::timeout(Duration::from_secs(10), ipc::socket::accept(&listener))
                .await
                .expect("the recorder connects")
                .expect("accept");
        let hello = reader.recv::<FromRecorder>().await.expect("hello");
        assert!(
            matches!(hello, Some(FromRecorder::Hello { protocol_version, .. }) if protocol_version == RECORDER_PROTOCOL_VERSION),
            "{hello:?}"
        );
        writer
            .send(&ToRecorder::Hello {
                protocol_version: RECORDER_PROTOCOL_VERSION,
            })
            .await
            .expect("hello");
        Recorder {
            child,
            reader,
            writer,
            next_id: 1,
        }
    }

    async fn call(&mut self, request: RecorderRequest) -> Result<RecorderAnswer, String> {
        let id = self.next_id;
        self.next_id += 1;
        self.writer
            .send(&ToRecorder::Request { id, request })
            .await
            .expect("send");
        loop {
            match tokio::time::timeout(Duration::from_secs(10), self.reader.recv::<FromRecorder>())
                .await
                .expect("an answer within 10 s")
                .expect("recv")
            {
                Some(FromRecorder::Answer {
                    id: answered,
                    result,
                }) if answered == id => return result,
                Some(other) => println!("recorder: {other:?}"),
                None => panic!("the recorder closed its socket"),
            }
        }
    }

    async fn open_vp8(&mut self, track: u64, path: &Path) -> Result<u16, String> {
        let answer = self
            .call(RecorderRequest::OpenTrack {
                track,
                mime_type: "video/VP8".into(),
                payload_type: 96,
                clock_rate: 90_000,
                ip: "127.0.0.1".into(),
                path: path.display().to_string(),
            })
            .await?;
        match answer {
            RecorderAnswer::TrackOpened { port } => Ok(port),
            other => panic!("{other:?}"),
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_closed_track_is_a_complete_file_and_its_summary_says_so() {
    let dir = temp_dir("process-close");
    let mut recorder = Recorder::start(&dir).await;
    let path = dir.join("camera.webm");
    let port = recorder.open_vp8(1, &path).await.expect("opened");
    let mut ffmpeg = ffmpeg_rtp(Codec::Vp8, port, 3);
    tokio::task::spawn_blocking(move || ffmpeg.wait())
        .await
        .expect("join")
        .expect("ffmpeg");
    let closed = recorder
        .call(RecorderRequest::CloseTrack { track: 1 })
        .await
        .expect("closed");
    println!("{closed:?}");
    let RecorderAnswer::TrackClosed(summary) = closed else {
        panic!("{closed:?}")
    };
    assert_eq!(summary.error, None);
    assert!(summary.synced && summary.started_unix_ms.is_some());
    assert!(
        (2_900..=3_000).contains(&summary.duration_ms),
        "{summary:?}"
    );
    let (codec, frames, duration) = probe(&path);
    println!("{codec}, {frames} frames, {duration} s");
    assert_eq!((codec.as_str(), frames), ("vp8", 90));
    assert_eq!(decode_errors(&path), "");
    let again = recorder
        .call(RecorderRequest::CloseTrack { track: 1 })
        .await;
    assert_eq!(again, Err("no track 1".into()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_recorder_killed_mid_way_leaves_a_file_that_plays_up_to_the_kill() {
    let dir = temp_dir("process-kill");
    let mut recorder = Recorder::start(&dir).await;
    let path = dir.join("camera.webm");
    let port = recorder.open_vp8(1, &path).await.expect("opened");
    let mut ffmpeg = ffmpeg_rtp(Codec::Vp8, port, 10);
    // Kill once a second of video is on disk, however slow a loaded machine starts.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut before = 0;
    while before < 30 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if path.exists() {
            before = probe(&path).1;
        }
    }
    assert!(before >= 30, "only {before} frames written in 20 s");
    recorder.child.kill().expect("SIGKILL");
    let _ = recorder.child.wait();
    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
    let (codec, frames, _) = probe(&path);
    println!("{before} frames on disk before SIGKILL, {frames} after: {codec}");
    assert_eq!(codec, "vp8");
    // Everything written before the kill still plays; the rest of the 10 s never arrived.
    assert!((before..300).contains(&frames), "{frames} frames");
    assert_eq!(decode_errors(&path), "");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_track_that_cannot_be_written_or_read_is_refused_with_the_reason() {
    let dir = temp_dir("process-refuse");
    let mut recorder = Recorder::start(&dir).await;
    let unwritable = recorder
        .open_vp8(1, Path::new("/proc/no-such-folder/camera.webm"))
        .await;
    println!("{unwritable:?}");
    assert!(
        unwritable
            .as_ref()
            .is_err_and(|e| e.contains("/proc/no-such-folder/camera.webm")),
        "{unwritable:?}"
    );
    let codec = recorder
        .call(RecorderRequest::OpenTrack {
            track: 2,
            mime_type: "video/AV1".into(),
            payload_type: 45,
            clock_rate: 90_000,
            ip: "127.0.0.1".into(),
            path: dir.join("av1.webm").display().to_string(),
        })
        .await;
    assert_eq!(codec, Err("cannot record video/AV1".into()));
    // Still serving after refusals.
    let port = recorder.open_vp8(3, &dir.join("ok.webm")).await;
    assert!(port.is_ok(), "{port:?}");
    drop(recorder);
    let _ = std::fs::remove_dir_all(&dir);
}
