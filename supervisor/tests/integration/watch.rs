//! `monitor watch` in a real terminal (tmux): it shows a live call, marks the peers, opens
//! a peer's diagnostics and quits on `q`.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::monitor::{https_get, parse_metrics, TOKEN};
use crate::support::peer::TestPeer;
use crate::support::{monitor_binary, Sfu, TestCert};

/// A tmux session on its own server, killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn command(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]);
        c
    }

    fn screen(&self) -> String {
        let output = self
            .command()
            .args(["capture-pane", "-p", "-t", "watch"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    async fn wait_for(&self, within: Duration, what: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        loop {
            let screen = self.screen();
            if what(&screen) || Instant::now() > deadline {
                return screen;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_shows_the_room_live_in_a_terminal_and_q_quits() {
    let available = Command::new("tmux").arg("-V").output();
    assert!(
        available.is_ok_and(|o| o.status.success()),
        "tmux is needed for this test: run scripts/setup.sh --tests"
    );
    let cert = TestCert::new("monitor-watch");
    let sfu = Sfu::start_tls(&cert, &["--monitor-token", TOKEN]);
    let room = format!("watched-{}", std::process::id());
    let _alice = TestPeer::join(&sfu.ws_url(), Some(&cert.cert_pem), &room, "Alice", 1000).await;

    let tmux = Tmux {
        socket: format!("sfu-test-{}", std::process::id()),
    };
    let script = format!(
        "MONITOR_TOKEN={TOKEN} {} --url {} --ca {} watch; echo watch exited with $?; sleep 60",
        monitor_binary().display(),
        sfu.monitor_url(),
        cert.dir.join("cert.pem").display()
    );
    let started = tmux
        .command()
        .args([
            "new-session",
            "-d",
            "-s",
            "watch",
            "-x",
            "160",
            "-y",
            "45",
            &script,
        ])
        .status()
        .expect("tmux new-session");
    assert!(started.success());

    let screen = tmux
        .wait_for(Duration::from_secs(15), |s| {
            s.contains(&room) && s.contains("Alice") && s.contains("1 participants")
        })
        .await;
    println!("monitor watch:\n{screen}");
    assert!(screen.contains("Nodes and workers"), "{screen}");
    assert!(screen.contains(&room), "the room is shown: {screen}");
    assert!(
        screen.contains("Alice"),
        "the participant is shown: {screen}"
    );
    assert!(screen.contains("1 participants"), "{screen}");

    // A second peer appears live, with its join in the events pane.
    let _bob = TestPeer::join(&sfu.ws_url(), Some(&cert.cert_pem), &room, "Bob", 2000).await;
    let screen = tmux
        .wait_for(Duration::from_secs(10), |s| {
            s.contains("2 participants") && s.contains("Bob")
        })
        .await;
    assert!(
        screen.contains("2 participants") && screen.contains("Bob"),
        "{screen}"
    );
    assert!(screen.contains("peer joined"), "events pane: {screen}");

    // Select Bob (second in the list) and open his diagnostics, live; Esc goes back.
    for key in ["Down", "Enter"] {
        tmux.command()
            .args(["send-keys", "-t", "watch", key])
            .status()
            .expect("tmux send-keys");
    }
    let screen = tmux
        .wait_for(Duration::from_secs(10), |s| {
            s.contains("Participant diagnostics") && s.contains("ICE")
        })
        .await;
    println!("diagnostics in watch:\n{screen}");
    assert!(
        screen.contains("Bob (") && screen.contains("TRANSPORT") && screen.contains("connected"),
        "Bob's transports, live: {screen}"
    );
    tmux.command()
        .args(["send-keys", "-t", "watch", "Escape"])
        .status()
        .expect("tmux send-keys");
    let screen = tmux
        .wait_for(Duration::from_secs(5), |s| s.contains("Participants (●"))
        .await;
    assert!(
        screen.contains("Nodes and workers"),
        "back, still running: {screen}"
    );

    // Media statistics are collected while watch runs (every 2 s), and not after it quits.
    let collections = || async {
        parse_metrics(&https_get(&sfu, &cert, "/metrics").await)["sfu_stats_collections_total"]
    };
    let running = collections().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut later = running;
    while later <= running && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        later = collections().await;
    }
    assert!(
        later > running,
        "collecting while watch runs: {running} → {later}"
    );

    let gone = sfu.log_text().matches("monitor disconnected").count();
    tmux.command()
        .args(["send-keys", "-t", "watch", "q"])
        .status()
        .expect("tmux send-keys");
    let screen = tmux
        .wait_for(Duration::from_secs(5), |s| s.contains("watch exited with"))
        .await;
    assert!(
        screen.contains("watch exited with 0"),
        "q quits cleanly: {screen}"
    );
    // The terminal is back to the shell's screen: the dashboard is gone.
    assert!(
        !screen.contains("Nodes and workers"),
        "terminal restored: {screen}"
    );
    // Once the supervisor has seen watch's connection end, its sampling is over: nothing is
    // collected in the next 3 s (more than one 2 s period).
    assert!(
        sfu.wait_log_count("monitor disconnected", gone + 1, Duration::from_secs(5))
            .await,
        "the supervisor saw watch go; log:\n{}",
        sfu.log_text()
    );
    let quit = collections().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        collections().await,
        quit,
        "nothing collected in the 3 s after watch quit"
    );
}
