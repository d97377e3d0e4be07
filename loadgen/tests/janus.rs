//! The same participants against Janus 1.1 (Debian's `janus`, VideoRoom over WebSockets,
//! started by `bench/janus.sh`): every subscriber receives every publisher, without loss.
//! Setup installs Janus for the test suite; a missing Janus fails the test (with how to
//! install it) unless `SKIP_JANUS=1` says, explicitly, to run without it.

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
            std::env::var("SKIP_JANUS").is_ok_and(|v| v == "1"),
            "janus is not installed: `scripts/setup.sh --tests` (or `apt-get install janus`) \
             installs it; set SKIP_JANUS=1 to run the suite without this comparison"
        );
        eprintln!("SKIP_JANUS=1: janus is not installed, nothing to compare with");
        return;
    }
    let port = free_port();
    let janus = start_janus(port);
    let mut loadgen = Command::new(env!("CARGO_BIN_EXE_loadgen"));
    loadgen
        .args([
            "--target",
            "janus",
            "--url",
            &format!("ws://127.0.0.1:{port}"),
        ])
        .args(["--rooms", "2", "--publishers", "3", "--duration", "4"])
        .args(["--json", "--quiet"]);
    let output = output_within(loadgen, LOADGEN_DEADLINE);
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

/// The loadgen runs 4 s of media after joining: far more than this means it hangs.
const LOADGEN_DEADLINE: Duration = Duration::from_secs(60);

/// Runs `command` to its end, killing it (and failing) past `deadline`.
fn output_within(mut command: Command, deadline: Duration) -> std::process::Output {
    use std::io::Read;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run loadgen");
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = read(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = read(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for loadgen") {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the loadgen did not finish within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::process::Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}
