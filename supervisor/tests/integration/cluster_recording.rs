//! Recording a room that spans hosts: each track is written by the recorder of the host of
//! its router, into that host's `RECORD_DIR`, under one manifest on the room's owner; a host
//! that cannot record leaves its tracks to the owner's recorder.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cluster_spanning::spanning_room;
use crate::support::cluster::monitor;

/// Track files (not the manifest) in `folder`.
fn track_files(folder: &Path) -> usize {
    std::fs::read_dir(folder).map_or(0, |d| {
        d.flatten()
            .filter(|f| f.path().extension().is_some_and(|e| e == "webm"))
            .count()
    })
}

/// Waits (at most 20 s) until `folders` hold `counts` track files.
async fn wait_files(folders: &[&Path], counts: &[usize]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen: Vec<usize> = folders.iter().map(|f| track_files(f)).collect();
        if seen == counts {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "track files {seen:?}, not {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_spanning_two_hosts_is_recorded_on_each_tracks_host_under_one_manifest() {
    let dir = crate::support::pattern::scratch("rec-cluster");
    let pattern = tokio::task::block_in_place(|| crate::support::pattern::Pattern::encode(&dir, 6));
    // Each host records into a folder of its own, as on two machines.
    let records = dir.join("recordings-{host}");
    let (cluster, _etcd, [alice, _bob, carol]) =
        spanning_room("rec", &["--record-dir", records.to_str().expect("path")]).await;
    let h1 = &cluster[0];
    let started = tokio::task::block_in_place(|| monitor(h1, &["record", "start", "rec"]));
    let folder = PathBuf::from(started["folder"].as_str().expect("a folder"));
    assert!(folder.starts_with(dir.join("recordings-h1")), "{folder:?}");
    let there = dir
        .join("recordings-h2")
        .join("rec")
        .join(folder.file_name().expect("a folder name"));
    // Alice's and Bob's tracks on h1, Carol's on h2.
    wait_files(&[&folder, &there], &[4, 2]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Alice (routed on h1) and Carol (on h2) send the pattern from the same instant.
    tokio::join!(pattern.send(&alice), pattern.send(&carol));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopped = tokio::task::block_in_place(|| monitor(h1, &["record", "stop", "rec"]));
    let tracks = stopped["tracks"].as_array().expect("tracks");
    assert_eq!(tracks.len(), 6, "{stopped}");
    for track in tracks {
        let expected = if track["peer"] == "Carol" {
            serde_json::json!("h2")
        } else {
            serde_json::Value::Null
        };
        assert_eq!(track["host"], expected, "{track}");
    }
    let mut offsets = Vec::new();
    let sent = [
        ("Alice", "audio"),
        ("Alice", "video"),
        ("Carol", "audio"),
        ("Carol", "video"),
    ];
    for (peer, kind) in sent {
        let track = tracks
            .iter()
            .find(|t| t["peer"] == peer && t["kind"] == kind)
            .unwrap_or_else(|| panic!("{peer}'s {kind} in {stopped}"));
        let folder = if peer == "Carol" { &there } else { &folder };
        let path = folder.join(track["file"].as_str().expect("a file"));
        let (codec, frames, duration) = crate::recording::probe(&path);
        println!(
            "{}: {codec}, {frames} frames, {duration:.3} s",
            path.display()
        );
        let sent = match kind {
            "audio" => pattern.audio.len(),
            _ => pattern.video.len(),
        };
        assert_eq!(frames, sent as u64, "{track}");
        assert_eq!(crate::recording::decode_errors(&path), "");
        assert_eq!(track["lostPackets"], 0, "{track}");
        offsets.push(track["offsetMs"].as_i64().expect("an offset"));
    }
    // Sent from one instant, recorded on two hosts: the manifest puts them together.
    println!("offsets of Alice's audio and video, Carol's audio and video: {offsets:?} ms");
    let spread = offsets.iter().max().unwrap_or(&0) - offsets.iter().min().unwrap_or(&0);
    assert!(spread <= 100, "offsets {offsets:?} ms");
    // The manifest on the owner lists them all, with where each file is.
    let manifest = std::fs::read_to_string(folder.join("manifest.json")).expect("manifest");
    assert_eq!(
        manifest.matches("\"host\": \"h2\"").count(),
        2,
        "{manifest}"
    );
    let log = cluster[1].log_text();
    assert!(
        log.contains("recording a track of another host's room"),
        "{log}"
    );
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_cannot_record_leaves_its_tracks_to_the_owners_recorder() {
    let dir = crate::support::pattern::scratch("rec-cluster-fallback");
    // h2's RECORD_DIR is a file: it cannot make a folder there.
    std::fs::write(dir.join("recordings-h2"), "not a folder").expect("a file");
    let records = dir.join("recordings-{host}");
    let (cluster, _etcd, _peers) =
        spanning_room("rec", &["--record-dir", records.to_str().expect("path")]).await;
    let h1 = &cluster[0];
    let started = tokio::task::block_in_place(|| monitor(h1, &["record", "start", "rec"]));
    let folder = PathBuf::from(started["folder"].as_str().expect("a folder"));
    // All six on h1: Carol's tapped on h2's node, sent to h1's recorder.
    wait_files(&[&folder], &[6]).await;
    let stopped = tokio::task::block_in_place(|| monitor(h1, &["record", "stop", "rec"]));
    let tracks = stopped["tracks"].as_array().expect("tracks");
    assert_eq!(tracks.len(), 6, "{stopped}");
    assert!(tracks.iter().all(|t| t["host"].is_null()), "{stopped}");
    let warning = "cannot record it";
    let log = h1.log_text();
    let line = (log.lines().find(|l| l.contains(warning))).unwrap_or_else(|| panic!("{log}"));
    println!("{line}");
    assert!(line.contains("cannot write recordings"), "{line}");
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}
