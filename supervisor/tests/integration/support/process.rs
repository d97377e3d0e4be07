//! Running a helper program (Chromium through node, the loadgen) with a deadline: a hung run
//! is killed and fails the test with what it printed, instead of hanging the suite.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

fn collect(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// Waits for `child` (stdout and stderr piped) at most `within`, reading both pipes as it
/// goes; kills it and panics with its output if it takes longer.
pub fn wait_output_within(mut child: Child, within: Duration, what: &str) -> Output {
    let stdout = child.stdout.take().map(collect);
    let stderr = child.stderr.take().map(collect);
    let deadline = Instant::now() + within;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let text = |h: Option<JoinHandle<Vec<u8>>>| {
                String::from_utf8_lossy(&h.and_then(|h| h.join().ok()).unwrap_or_default())
                    .into_owned()
            };
            panic!(
                "{what} still ran after {within:?} and was killed; stdout:\n{}\nstderr:\n{}",
                text(stdout),
                text(stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let join = |h: Option<JoinHandle<Vec<u8>>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
    Output {
        status,
        stdout: join(stdout),
        stderr: join(stderr),
    }
}

/// Runs `command` like [`Command::output`], but for at most `within`.
pub fn output_within(command: &mut Command, within: Duration, what: &str) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    wait_output_within(child, within, what)
}

/// The lines a child writes to `pipe`, on a channel (read by a thread of their own), so that
/// a test can wait for one with a deadline.
pub fn lines_of(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
