//! The node process against a stand-in supervisor on a real Unix socket: it says hello and
//! serves, leaves when the supervisor goes away, and exits — rather than queue without
//! bound — when the supervisor keeps asking but stops reading the answers.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use ipc::calls::CloseRouter;
use ipc::messages::{FromNode, RouterId, ToNode, PROTOCOL_VERSION};

/// The node process, killed if the test ends first.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Node {
    /// Its exit status, waiting at most `deadline`.
    fn exit_within(&mut self, deadline: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().expect("wait for the node") {
                return status;
            }
            assert!(
                started.elapsed() < deadline,
                "the node did not exit within {deadline:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stderr(&mut self) -> String {
        use std::io::Read;
        let mut text = String::new();
        if let Some(mut pipe) = self.0.stderr.take() {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    }
}

fn socket_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("node-test-{}-{name}.sock", std::process::id()))
}

fn start_node(socket: &std::path::Path) -> Node {
    let child = Command::new(env!("CARGO_BIN_EXE_node"))
        .arg("--socket")
        .arg(socket)
        .args([
            "--workers",
            "1",
            "--rtc-min-port",
            "47000",
            "--rtc-max-port",
            "47100",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the node");
    Node(child)
}

/// Accepts the node and exchanges hellos.
async fn greet(
    listener: &ipc::socket::Listener,
) -> (
    ipc::socket::FramedReader<ipc::socket::StreamHalf>,
    ipc::socket::FramedWriter<ipc::socket::StreamHalf>,
) {
    let accepted = tokio::time::timeout(Duration::from_secs(20), ipc::socket::accept(listener));
    let (mut reader, mut writer) = accepted.await.expect("the node connects").expect("accept");
    match reader.recv::<FromNode>().await.expect("hello frame") {
        Some(FromNode::Hello(hello)) => {
            assert_eq!(hello.protocol_version, PROTOCOL_VERSION);
            assert_eq!(hello.workers, 1);
        }
        other => panic!("expected the node's hello, got {other:?}"),
    }
    let hello = ToNode::Hello {
        protocol_version: PROTOCOL_VERSION,
    };
    writer.send(&hello).await.expect("send hello");
    (reader, writer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_answers_and_leaves_when_its_supervisor_goes_away() {
    let path = socket_path("gone");
    let listener = ipc::socket::listen(&path).expect("listen");
    let mut node = start_node(&path);
    let (mut reader, mut writer) = greet(&listener).await;
    let request = ToNode::Request {
        id: 7,
        request: CloseRouter {
            router: RouterId(uuid::Uuid::new_v4()),
        }
        .into(),
    };
    writer.send(&request).await.expect("send");
    // Its answer comes (an error: no such router), maybe after a load report.
    let answered = async {
        loop {
            match reader.recv::<FromNode>().await.expect("frame") {
                Some(FromNode::Answer { id, result }) => return (id, result.is_err()),
                Some(_) => continue,
                None => panic!("the node closed the connection"),
            }
        }
    };
    let (id, refused) = tokio::time::timeout(Duration::from_secs(10), answered)
        .await
        .expect("an answer");
    assert_eq!((id, refused), (7, true));
    drop((reader, writer, listener));
    let status = node.exit_within(Duration::from_secs(10));
    assert!(
        status.success(),
        "a node whose supervisor left exits cleanly: {status}"
    );
    assert!(node.stderr().contains("supervisor gone"));
    let _ = std::fs::remove_file(&path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_supervisor_stops_reading_exits_instead_of_queueing_without_bound() {
    let path = socket_path("stuck");
    let listener = ipc::socket::listen(&path).expect("listen");
    let mut node = start_node(&path);
    let (reader, mut writer) = greet(&listener).await;
    // Ask far more than the node may hold answers for, and read nothing.
    let asks = async {
        for id in 0..200_000u64 {
            let request = ToNode::Request {
                id,
                request: CloseRouter {
                    router: RouterId(uuid::Uuid::new_v4()),
                }
                .into(),
            };
            if writer.send(&request).await.is_err() {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(60), asks).await;
    let status = node.exit_within(Duration::from_secs(60));
    assert!(
        !status.success(),
        "a stuck supervisor is a failure: {status}"
    );
    let log = node.stderr();
    assert!(log.contains("stopped reading"), "{log}");
    drop(reader);
    let _ = std::fs::remove_file(&path);
}
