//! Test harness: the real `supervisor` binary (which spawns real `node` processes),
//! signaling-api's typed client on `/ws`, and WebRTC peers written with str0m that send RTP
//! and count what comes back out of mediasoup.

pub mod bystanders;
pub mod channels;
pub mod client_net;
pub mod cluster;
pub mod codecs;
pub mod draining;
pub mod monitor_events;
pub mod moving;
pub mod packetize;
pub mod pattern;
pub mod peer;
pub mod process;
pub mod raw_ws;
pub mod rtc;
pub mod signaling;
pub mod streams;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A TLS certificate made for a test.
pub struct TestCert {
    /// Folder holding cert.pem and key.pem.
    pub dir: PathBuf,
    /// PEM of the certificate.
    pub cert_pem: String,
}

impl TestCert {
    /// A self-signed certificate for 127.0.0.1 and localhost.
    pub fn new(name: &str) -> TestCert {
        Self::expiring_in(name, 365)
    }

    /// A self-signed certificate for 127.0.0.1 and localhost, valid for `days` from now.
    pub fn expiring_in(name: &str, days: i64) -> TestCert {
        let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        let mut params = rcgen::CertificateParams::new(names).expect("certificate names");
        params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(days);
        let signing_key = rcgen::KeyPair::generate().expect("key pair");
        let cert = params.self_signed(&signing_key).expect("self-sign");
        let certified = rcgen::CertifiedKey { cert, signing_key };
        let dir = std::env::temp_dir().join(format!("sfu-test-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let cert_pem = certified.cert.pem();
        std::fs::write(dir.join("cert.pem"), &cert_pem).expect("write cert");
        std::fs::write(dir.join("key.pem"), certified.signing_key.serialize_pem())
            .expect("write key");
        TestCert { dir, cert_pem }
    }
}

/// A running supervisor, killed (with its nodes) when dropped.
pub struct Sfu {
    child: Child,
    /// Its HTTP(S) port.
    pub port: u16,
    /// Whether it serves TLS.
    pub tls: bool,
    /// Where its log goes.
    pub log: PathBuf,
}

/// A free TCP port on loopback (the small race with another process is acceptable in tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn node_binary() -> PathBuf {
    let supervisor = PathBuf::from(env!("CARGO_BIN_EXE_supervisor"));
    let node = supervisor.with_file_name("node");
    assert!(
        node.is_file(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        node.display()
    );
    node
}

/// The `monitor` executable built with this workspace.
pub fn monitor_binary() -> PathBuf {
    let supervisor = PathBuf::from(env!("CARGO_BIN_EXE_supervisor"));
    let monitor = supervisor.with_file_name("monitor");
    assert!(
        monitor.is_file(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        monitor.display()
    );
    monitor
}

/// Runs `monitor --json <args>` (no token or URL from the environment) and parses what it
/// prints; panics with its error line if it fails.
pub fn monitor_json(args: &[&str]) -> serde_json::Value {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    serde_json::from_str(&monitor_text(&full)).expect("monitor --json prints JSON")
}

/// Runs `monitor <args>` as `monitor_json` does: what it prints, as a person reads it.
pub fn monitor_text(args: &[&str]) -> String {
    let output = process::output_within(
        Command::new(monitor_binary())
            .args(args)
            .env_remove("MONITOR_TOKEN")
            .env_remove("MONITOR_URL"),
        Duration::from_secs(30),
        "monitor",
    );
    assert!(
        output.status.success(),
        "monitor {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `monitor --token TOKEN --json <args>` against the TLS `sfu` whose certificate is `cert`.
pub fn monitor_query(sfu: &Sfu, cert: &TestCert, token: &str, args: &[&str]) -> serde_json::Value {
    let url = sfu.monitor_url();
    let ca = cert.dir.join("cert.pem");
    let ca = ca.to_str().expect("UTF-8 path");
    let mut full = vec!["--url", &url, "--ca", ca, "--token", token];
    full.extend_from_slice(args);
    monitor_json(&full)
}

impl Sfu {
    /// Starts a plain-HTTP supervisor with `args` added, listening on 127.0.0.1.
    pub fn start(args: &[&str]) -> Sfu {
        Self::start_with(args, None, true)
    }

    /// Starts a plain-HTTP supervisor with `args` and no `--bind`: where it listens is its
    /// own default.
    pub fn start_unbound(args: &[&str]) -> Sfu {
        Self::start_with(args, None, false)
    }

    /// Starts a supervisor in TLS mode with `cert`.
    pub fn start_tls(cert: &TestCert, args: &[&str]) -> Sfu {
        Self::start_with(args, Some(cert), true)
    }

    fn start_with(args: &[&str], cert: Option<&TestCert>, loopback: bool) -> Sfu {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("sfu-test-supervisor-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_supervisor"));
        command.args(["--port", &port.to_string()]);
        if loopback {
            command.args(["--bind", "127.0.0.1"]);
        }
        command
            .arg("--node-binary")
            .arg(
                std::env::var("TEST_NODE_BINARY")
                    .map(PathBuf::from)
                    .unwrap_or_else(|_| node_binary()),
            )
            .args(args)
            .env("RUST_LOG", "info,supervisor=debug")
            .env_remove("PUBLIC_IP")
            .env_remove("TLS_MODE")
            .env_remove("JOIN_TOKEN")
            .env_remove("JOIN_SECRET")
            .env_remove("JOIN_PUBLIC_KEY")
            .env_remove("BIND")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file);
        if let Some(cert) = cert {
            command
                .env("TLS_MODE", "1")
                .env("TLS_CERT_PATH", cert.dir.join("cert.pem"))
                .env("TLS_KEY_PATH", cert.dir.join("key.pem"))
                .env("PUBLIC_IP", "127.0.0.1");
            // Media on loopback unless the test says where (`--public-ip` wins over the env).
            if !args.contains(&"--rtc-ip") {
                command.args(["--rtc-ip", "127.0.0.1"]);
            }
        }
        let child = command.spawn().expect("start supervisor");
        let sfu = Sfu {
            child,
            port,
            tls: cert.is_some(),
            log,
        };
        sfu.wait_ready();
        sfu
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if std::fs::read_to_string(&self.log).is_ok_and(|l| l.contains("listening on")) {
                return;
            }
            blocking_pause(Duration::from_millis(50));
        }
        panic!("supervisor did not start; log:\n{}", self.log_text());
    }

    /// Waits until the log contains `needle`, at most `within`; whether it did.
    pub async fn wait_log(&self, needle: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while !self.log_text().contains(needle) {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    /// Waits until `needle` occurs `count` times in the log, at most `within`; whether it did.
    pub async fn wait_log_count(&self, needle: &str, count: usize, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while self.log_text().matches(needle).count() < count {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    /// What the supervisor (and its nodes) logged.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The signaling URL.
    pub fn ws_url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://127.0.0.1:{}/ws", self.port)
    }

    /// The monitor API's URL.
    pub fn monitor_url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://127.0.0.1:{}/monitor", self.port)
    }

    /// Pids of this supervisor's node processes.
    pub fn node_pids(&self) -> Vec<u32> {
        self.children_named("node")
    }

    /// The pids of its child processes whose command is `comm` (`node`, `recorder`).
    pub fn children_named(&self, comm: &str) -> Vec<u32> {
        let parent = self.child.id().to_string();
        let comm = format!("({comm})");
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
                continue;
            };
            let ppid = rest.split_whitespace().nth(1);
            // Zombies count: a child the supervisor did not reap is a defect to see.
            if ppid == Some(parent.as_str()) && stat.contains(&comm) {
                pids.push(pid);
            }
        }
        pids
    }

    /// The supervisor's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the supervisor has exactly `count` node processes, at most `within`.
    pub async fn wait_nodes(&self, count: usize, within: Duration) -> Vec<u32> {
        let deadline = Instant::now() + within;
        loop {
            let mut pids = self.node_pids();
            if pids.len() == count {
                pids.sort_unstable();
                return pids;
            }
            assert!(
                Instant::now() < deadline,
                "{} nodes instead of {count}; log:\n{}",
                pids.len(),
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the supervisor to exit by itself, at most `within`; its exit code.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Whether the supervisor process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// `GET path` over plain HTTP/1.1 to 127.0.0.1:`port`: the whole response, status line and
/// headers included (at most 15 s: a hung server fails the test).
pub fn http_get(port: u16, path: &str) -> String {
    http_request(port, "GET", path)
}

/// Sends a `method` request without a body to `path` on 127.0.0.1:`port`; the whole response.
pub fn http_request(port: u16, method: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("read timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("response");
    text
}

/// Sends `signal` to `pid`.
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// Whether process `pid` is gone entirely: exited and reaped by its parent (a zombie still
/// has its `/proc` entry).
pub fn reaped(pid: u32) -> bool {
    !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Waits until `pid` is [`reaped`], at most `within`; whether it was.
pub async fn wait_reaped(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while !reaped(pid) {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Waits until `pid` no longer runs (exited; a zombie counts as gone), at most `within`;
/// whether it stopped.
pub async fn wait_gone(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Sleeps without stalling an async test: inside a multi-threaded runtime the worker hands
/// its tasks (str0m peers, signaling) to the others first.
pub fn blocking_pause(duration: Duration) {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
            tokio::task::block_in_place(|| std::thread::sleep(duration))
        }
        _ => std::thread::sleep(duration),
    }
}

/// Whether process `pid` exists and is not a zombie (for processes whose reaping is not the
/// supervisor's job, such as nodes orphaned by a killed supervisor).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

impl Drop for Sfu {
    fn drop(&mut self) {
        // Its nodes are killed here too: whether they die with their supervisor is a feature
        // under test, not something the harness may rely on.
        let nodes = self.node_pids();
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in nodes {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        // The log of a failed test stays for reading; a passed one's goes.
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

impl Drop for TestCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
