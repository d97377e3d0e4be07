//! A `monitor --json events …` child for tests: started once it says it follows events
//! (within 10 s), its JSON lines arriving on a channel and every one of them kept in a log
//! (so that a test can ask what came, in any order), stopped with Ctrl-C by [`stop`], and
//! killed when dropped, so that a failing test leaves no process behind.
//!
//! [`stop`]: EventsProcess::stop

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc;

use super::{monitor_binary, Sfu, TestCert};

/// Follows every event of `sfu` (node and worker events included) with monitor token
/// `token`, trusting `cert` for `wss://`.
pub async fn follow(sfu: &Sfu, cert: Option<&TestCert>, token: &str) -> EventsProcess {
    let mut command = Command::new(monitor_binary());
    command.arg("--url").arg(sfu.monitor_url());
    if let Some(cert) = cert {
        command.arg("--ca").arg(cert.dir.join("cert.pem"));
    }
    command
        .args(["--token", token, "--json", "events"])
        .env_remove("MONITOR_TOKEN")
        .env_remove("MONITOR_URL");
    EventsProcess::spawn(command).await
}

/// A running `monitor events`.
pub struct EventsProcess {
    child: Child,
    lines: mpsc::UnboundedReceiver<Value>,
    /// Every event printed so far, in order (those [`EventsProcess::wait_for`] skipped too).
    seen: Vec<Value>,
}

impl EventsProcess {
    /// Starts `command` (a `monitor --json events …` with its arguments) and waits for its
    /// "following events" line.
    pub async fn spawn(mut command: Command) -> EventsProcess {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start monitor events");
        let stderr = child.stderr.take().expect("stderr");
        let stdout = child.stdout.take().expect("stdout");
        let (first_tx, mut first) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = first_tx.send(line);
            }
        });
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| Value::String(format!("not JSON ({e}): {line}")));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let process = EventsProcess {
            child,
            lines,
            seen: Vec::new(),
        };
        let line = tokio::time::timeout(Duration::from_secs(10), first.recv())
            .await
            .expect("monitor events says something on stderr within 10 s")
            .expect("monitor events stderr");
        assert!(line.contains("following events"), "{line}");
        process
    }

    /// The next event matching `want` within `within` (the events before it are skipped, yet
    /// kept in the log).
    pub async fn wait_for(
        &mut self,
        within: Duration,
        want: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(event)) => {
                    self.seen.push(event.clone());
                    if want(&event) {
                        return Some(event);
                    }
                }
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// The first event of the whole log matching `want`, among those printed so far or
    /// within `within` from now (unlike [`EventsProcess::wait_for`], events seen before
    /// count, whatever waits took them).
    pub async fn seen_or_wait(
        &mut self,
        within: Duration,
        want: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        if let Some(event) = self.seen.iter().find(|e| want(e)) {
            return Some(event.clone());
        }
        self.wait_for(within, want).await
    }

    /// Every event printed so far, in order, after taking what already arrived.
    pub fn seen(&mut self) -> &[Value] {
        while let Ok(event) = self.lines.try_recv() {
            self.seen.push(event);
        }
        &self.seen
    }

    /// Stops it with Ctrl-C (SIGINT), checks that it exits cleanly within 5 s, and returns
    /// every event it printed that was not taken yet.
    pub async fn stop(mut self) -> Vec<Value> {
        super::signal(self.child.id(), "INT");
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("monitor events status") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "monitor events ignored Ctrl-C for 5 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(status.success(), "events exits cleanly on Ctrl-C: {status}");
        let mut events = Vec::new();
        while let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_secs(5), self.lines.recv()).await
        {
            events.push(event);
        }
        events
    }
}

impl Drop for EventsProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
