//! A `monitor --json events …` child for tests: started once it says it follows events
//! (within 10 s), its JSON lines arriving on a channel, stopped with Ctrl-C by [`stop`], and
//! killed when dropped, so that a failing test leaves no process behind.
//!
//! [`stop`]: EventsProcess::stop

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc;

/// A running `monitor events`.
pub struct EventsProcess {
    child: Child,
    lines: mpsc::UnboundedReceiver<Value>,
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
        let process = EventsProcess { child, lines };
        let line = tokio::time::timeout(Duration::from_secs(10), first.recv())
            .await
            .expect("monitor events says something on stderr within 10 s")
            .expect("monitor events stderr");
        assert!(line.contains("following events"), "{line}");
        process
    }

    /// The first event matching `want` within `within` (events before it are dropped).
    pub async fn wait_for(
        &mut self,
        within: Duration,
        want: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(event)) if want(&event) => return Some(event),
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return None,
            }
        }
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
