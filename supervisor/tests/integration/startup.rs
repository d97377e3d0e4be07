//! Startup settings: TLS without its files, a key that does not match, TLS without
//! PUBLIC_IP each stop the supervisor at once with one clear line and a non-zero exit; a
//! plain-HTTP request to the TLS port gets no page; `--help` explains every flag; a copy of
//! the binary elsewhere serves the demo page built into it.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::process::output_within;
use crate::support::signaling::{self, join, join_with_token, Expect};
use crate::support::{free_port, http_get, Sfu, TestCert};

/// Runs the supervisor with `envs`, expecting it to exit by itself; returns (code, stderr).
fn run_to_exit(envs: &[(&str, &str)]) -> (i32, String) {
    let output = output_within(
        Command::new(env!("CARGO_BIN_EXE_supervisor"))
            .args(["--port", &free_port().to_string(), "--bind", "127.0.0.1"])
            .env_remove("PUBLIC_IP")
            .env_remove("TLS_MODE")
            .envs(envs.iter().copied()),
        Duration::from_secs(20),
        &format!("a supervisor that should have stopped with {envs:?}"),
    );
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.code().unwrap_or(-1), stderr)
}

fn error_line(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.starts_with("supervisor: error:"))
        .unwrap_or_else(|| panic!("no error line in:\n{stderr}"))
}

#[test]
fn tls_mode_without_files_or_public_ip_refuses_to_start() {
    let (code, stderr) = run_to_exit(&[("TLS_MODE", "1"), ("PUBLIC_IP", "127.0.0.1")]);
    assert_ne!(code, 0);
    assert!(error_line(&stderr).contains("TLS_CERT_PATH"), "{stderr}");

    let cert = TestCert::new("startup-nopublic");
    let (cert_path, key_path) = (cert.dir.join("cert.pem"), cert.dir.join("key.pem"));
    let (code, stderr) = run_to_exit(&[
        ("TLS_MODE", "1"),
        ("TLS_CERT_PATH", cert_path.to_str().unwrap()),
        ("TLS_KEY_PATH", key_path.to_str().unwrap()),
    ]);
    assert_ne!(code, 0);
    assert!(error_line(&stderr).contains("PUBLIC_IP"), "{stderr}");
}

#[test]
fn unreadable_or_mismatched_tls_files_refuse_to_start() {
    let cert = TestCert::new("startup-files");
    let other = TestCert::new("startup-other");
    let cert_path = cert.dir.join("cert.pem");
    let cases = [
        (
            cert.dir.join("missing.pem"),
            cert.dir.join("key.pem"),
            "TLS_CERT_PATH",
        ),
        (
            cert_path.clone(),
            cert.dir.join("missing.pem"),
            "TLS_KEY_PATH",
        ),
        (cert_path.clone(), cert_path.clone(), "TLS_KEY_PATH"),
        (
            cert_path.clone(),
            other.dir.join("key.pem"),
            "do not go together",
        ),
    ];
    for (cert_file, key_file, expected) in cases {
        let (code, stderr) = run_to_exit(&[
            ("TLS_MODE", "1"),
            ("PUBLIC_IP", "127.0.0.1"),
            ("TLS_CERT_PATH", cert_file.to_str().unwrap()),
            ("TLS_KEY_PATH", key_file.to_str().unwrap()),
        ]);
        assert_ne!(code, 0);
        let line = error_line(&stderr);
        assert!(
            line.contains(expected),
            "{cert_file:?} {key_file:?}: {line}"
        );
        assert_eq!(
            stderr.lines().filter(|l| l.contains("error")).count(),
            1,
            "one line: {stderr}"
        );
    }
}

#[test]
fn plain_http_to_the_tls_port_gets_no_page() {
    let cert = TestCert::new("startup-plain");
    let sfu = Sfu::start_tls(&cert, &[]);
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", sfu.port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("write");
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    assert!(
        !String::from_utf8_lossy(&reply).contains("HTTP/1.1 200"),
        "plain HTTP got a page: {:?}",
        String::from_utf8_lossy(&reply)
    );
}

#[test]
fn help_explains_every_flag() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_supervisor"));
    command.arg("--help");
    let out = crate::support::process::output_within(
        &mut command,
        std::time::Duration::from_secs(30),
        "supervisor --help",
    );
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    // Every flag clap knows, so a new one without help text fails here.
    let command = <supervisor::Config as clap::CommandFactory>::command();
    let mut checked = 0;
    for arg in command.get_arguments().filter(|a| !a.is_hide_set()) {
        let Some(long) = arg.get_long() else { continue };
        if long == "help" || long == "version" {
            continue;
        }
        let flag = format!("--{long}");
        let explained = arg
            .get_help()
            .is_some_and(|h| !h.to_string().trim().is_empty());
        assert!(explained, "{flag} has no help text");
        assert!(help.contains(&flag), "--help lacks {flag}:\n{help}");
        if let Some(var) = arg.get_env() {
            let var = var.to_string_lossy();
            assert!(
                help.contains(&format!("env: {var}")),
                "--help lacks {var}:\n{help}"
            );
        }
        checked += 1;
    }
    assert!(
        checked >= 40,
        "only {checked} flags: is the command still derived?"
    );
    for flag in ["--bind", "--monitor-token-file", "--join-secret-file"] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn a_short_monitor_token_stops_the_start_and_secrets_may_come_from_files() {
    let (code, stderr) = run_to_exit(&[("MONITOR_TOKEN", "s3cret")]);
    assert_eq!(code, 2, "{stderr}");
    let line = error_line(&stderr);
    assert!(
        line.contains("32 or more") && line.contains("openssl rand -hex 32"),
        "{line}"
    );
    let (code, stderr) = run_to_exit(&[("MONITOR_TOKEN_FILE", "/nonexistent/monitor-token")]);
    assert_eq!(code, 2, "{stderr}");
    let line = error_line(&stderr);
    assert!(
        line.contains("MONITOR_TOKEN_FILE /nonexistent/monitor-token"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_read_from_files_work_as_the_variables_do() {
    let dir = std::env::temp_dir().join(format!("startup-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (monitor_file, join_file) = (dir.join("monitor-token"), dir.join("join-secret"));
    let monitor_token = "file-monitor-token-0123456789abcdef";
    let join_secret = "file-join-secret-0123456789abcdef0123";
    std::fs::write(&monitor_file, format!("{monitor_token}\n")).expect("write");
    std::fs::write(&join_file, format!("{join_secret}\n")).expect("write");
    let sfu = Sfu::start(&[
        "--monitor-token-file",
        monitor_file.to_str().expect("UTF-8"),
        "--join-secret-file",
        join_file.to_str().expect("UTF-8"),
    ]);
    let claims = supervisor::join_tokens::Claims {
        room: "files".into(),
        sub: "f".into(),
        name: None,
        can_publish: None,
        can_subscribe: None,
        can_record: None,
        exp: supervisor::join_tokens::unix_now() + 600,
        nbf: None,
    };
    let token =
        supervisor::join_tokens::sign_with_secret(join_secret.as_bytes(), &claims).expect("sign");
    let mut sig = signaling::connect(&sfu.ws_url(), None).await;
    let joined = sig.ok(&join_with_token("files", "F", &token)).await;
    assert_eq!(joined.room, "files");
    let monitor_url = sfu.monitor_url();
    let summary =
        crate::support::monitor_json(&["--url", &monitor_url, "--token", monitor_token, "summary"]);
    assert_eq!(summary["participants"], 1, "{summary}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_with_room_peer_and_node_fields() {
    let sfu = Sfu::start(&["--log-format", "json"]);
    let mut peer = signaling::connect(&sfu.ws_url(), None).await;
    peer.ok(&join("logged", "Logged")).await;
    assert!(
        sfu.wait_log("peer joined", Duration::from_secs(5)).await,
        "no join logged"
    );
    let lines: Vec<serde_json::Value> = sfu
        .log_text()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let joined = lines
        .iter()
        .find(|l| l["fields"]["message"] == "peer joined")
        .expect("the join");
    assert_eq!(joined["fields"]["room"], "logged", "{joined}");
    assert!(joined["fields"]["peer"].is_string(), "{joined}");
    let node = lines
        .iter()
        .find(|l| l["fields"]["message"] == "node started")
        .expect("the node's start, in the same stream");
    assert_eq!(node["span"]["node"], "node-1", "{node}");
}

#[test]
fn a_copied_binary_serves_the_demo_page_it_carries() {
    // Anywhere, without the checkout's web/dist next to it.
    let dir = std::env::temp_dir().join(format!("sfu-test-copied-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let copy = dir.join("supervisor");
    std::fs::copy(env!("CARGO_BIN_EXE_supervisor"), &copy).expect("copy the binary");
    let node = std::path::PathBuf::from(env!("CARGO_BIN_EXE_supervisor")).with_file_name("node");
    let port = free_port();
    let log = dir.join("log");
    let mut child = Command::new(&copy)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .arg("--node-binary")
        .arg(&node)
        .current_dir(&dir)
        .env_remove("PUBLIC_IP")
        .env_remove("TLS_MODE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start the copy");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log).is_ok_and(|l| l.contains("listening on")) {
        assert!(Instant::now() < deadline, "the copy did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let index = http_get(port, "/");
    let script = http_get(port, "/app.js");
    let missing = http_get(port, "/nothing-here");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(index.starts_with("HTTP/1.1 200"), "{index}");
    assert!(
        index.contains("text/html") && index.contains("<title>SFU demo</title>"),
        "{index}"
    );
    assert!(script.starts_with("HTTP/1.1 200") && script.contains("text/javascript"));
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
}
