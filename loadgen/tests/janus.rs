//! The same participants against Janus 1.1 (Debian's `janus`, VideoRoom over WebSockets,
//! started by `bench/janus.sh`): every subscriber receives every publisher, without loss.
//! Setup installs Janus for the test suite; under CI a missing Janus is a failure.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Janus {
    child: Child,
    log: PathBuf,
}

impl Drop for Janus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn janus_installed() -> bool {
    Command::new("sh")
        .args(["-c", "command -v janus"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn start_janus(port: u16) -> Janus {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::temp_dir().join(format!("loadgen-janus-{port}"));
    let log = dir.with_extension("log");
    let log_file = std::fs::File::create(&log).expect("log file");
    let child = Command::new(root.join("bench/janus.sh"))
        .arg(&dir)
        .args([port.to_string(), "21000".into(), "21999".into()])
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("log"))
        .stderr(log_file)
        .spawn()
        .expect("start bench/janus.sh");
    let janus = Janus { child, log };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "Janus did not listen on {port}: {}",
            std::fs::read_to_string(&janus.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    janus
}

#[test]
fn janus_rooms_of_three_receive_every_stream_without_loss() {
    if !janus_installed() {
        assert!(
            std::env::var_os("CI").is_none(),
            "janus is not installed: scripts/setup.sh --tests installs it"
        );
        eprintln!("janus is not installed (apt-get install janus): nothing to compare with");
        return;
    }
    let port = free_port();
    let janus = start_janus(port);
    let output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "--target",
            "janus",
            "--url",
            &format!("ws://127.0.0.1:{port}"),
        ])
        .args(["--rooms", "2", "--publishers", "3", "--duration", "4"])
        .args(["--json", "--quiet"])
        .stdin(Stdio::null())
        .output()
        .expect("run loadgen");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}): {}\njanus log:\n{}",
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(&janus.log).unwrap_or_default()
        )
    });
    let context = format!("{summary:#}");
    assert_eq!(summary["target"], "janus", "{context}");
    assert_eq!(summary["peers_joined"], 6, "{context}");
    assert_eq!(summary["streams_expected"], 24, "{context}");
    assert_eq!(summary["streams_received"], 24, "{context}");
    assert_eq!(summary["loss_pct"], 0.0, "{context}");
    assert_eq!(summary["foreign_packets"], 0, "{context}");
    assert!(
        summary["packets_received"].as_u64().unwrap_or(0) >= 24 * 150,
        "{context}"
    );
    assert!(output.status.success(), "{context}");
}
