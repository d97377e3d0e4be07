//! The link against fake nodes on real sockets: hellos that lie, floods, the in-flight cap.

use super::*;
use ipc::messages::{RouterId, WorkerLoad};

fn report(cpu: &[u64]) -> LoadReport {
    LoadReport {
        workers: cpu
            .iter()
            .enumerate()
            .map(|(i, &cpu_time_ms)| WorkerLoad {
                worker: i as u32,
                cpu_time_ms,
                ..WorkerLoad::default()
            })
            .collect(),
    }
}

#[test]
fn cpu_percent_is_cpu_time_over_wall_time() {
    let half = Duration::from_millis(500);
    let cpu = cpu_percent(&report(&[1000, 40]), &report(&[1250, 40]), half);
    assert_eq!(cpu, vec![50.0, 0.0]);
}

#[test]
fn cpu_percent_without_a_previous_report_is_zero() {
    let cpu = cpu_percent(&report(&[]), &report(&[900]), Duration::from_millis(500));
    assert_eq!(cpu, vec![0.0]);
    let cpu = cpu_percent(&report(&[5]), &report(&[9]), Duration::ZERO);
    assert_eq!(cpu, vec![0.0]);
    // A counter going backwards (it should not) does not give a negative load.
    let cpu = cpu_percent(&report(&[9]), &report(&[5]), Duration::from_secs(1));
    assert_eq!(cpu, vec![0.0]);
}

/// What the fake node's process was started as.
const STARTED: Expected = Expected {
    pid: 4242,
    workers: 1,
};

/// A fake node `n` on a real socket: says `hello`, then runs `act`. The link's result, and
/// the switch it would kill the node's process with.
async fn fake_node<F, Fut>(
    name: &str,
    n: u32,
    hello: NodeHello,
    events: mpsc::UnboundedSender<LinkEvent>,
    act: F,
) -> (Result<Arc<NodeLink>, HandshakeError>, KillSwitch)
where
    F: FnOnce(FramedReader<StreamHalf>, FramedWriter<StreamHalf>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let dir = std::env::temp_dir().join(format!("link-test-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("node.sock");
    let listener = ipc::socket::listen(&path).expect("listen");
    tokio::spawn(async move {
        let (mut reader, mut writer) = ipc::socket::connect(&path).await.expect("connect");
        writer.send(&FromNode::Hello(hello)).await.expect("hello");
        let _: Option<ToNode> = reader.recv().await.expect("the supervisor's hello");
        act(reader, writer).await;
    });
    let connection = ipc::socket::accept(&listener).await.expect("accept");
    let kill = KillSwitch::default();
    let link = NodeLink::establish(
        NodeId(n),
        connection,
        (STARTED, kill.clone()),
        Duration::from_secs(1),
        events,
        Metrics::default(),
    )
    .await;
    (link, kill)
}

fn hello(pid: u32, workers: u32) -> NodeHello {
    NodeHello {
        protocol_version: ipc::messages::PROTOCOL_VERSION,
        pid,
        workers,
        version: "fake".into(),
    }
}

/// Node 7, saying the truth in its hello, then running `act`.
async fn honest_node<F, Fut>(
    name: &str,
    events: mpsc::UnboundedSender<LinkEvent>,
    act: F,
) -> (Arc<NodeLink>, KillSwitch)
where
    F: FnOnce(FramedReader<StreamHalf>, FramedWriter<StreamHalf>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    numbered_node(name, 7, events, act).await
}

/// [`honest_node`] as node `n`.
async fn numbered_node<F, Fut>(
    name: &str,
    n: u32,
    events: mpsc::UnboundedSender<LinkEvent>,
    act: F,
) -> (Arc<NodeLink>, KillSwitch)
where
    F: FnOnce(FramedReader<StreamHalf>, FramedWriter<StreamHalf>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let truth = hello(STARTED.pid, STARTED.workers);
    let (link, kill) = fake_node(name, n, truth, events, act).await;
    (link.expect("handshake"), kill)
}

async fn stay_connected(reader: FramedReader<StreamHalf>, writer: FramedWriter<StreamHalf>) {
    tokio::time::sleep(Duration::from_secs(30)).await;
    drop((reader, writer));
}

#[tokio::test]
async fn a_hello_that_lies_about_its_pid_or_its_workers_is_refused() {
    // pid 0 is the process group, u32::MAX wraps to -1 (every process), and a huge worker
    // count would size arrays at every scrape: none of it is believed.
    for (name, pid, workers) in [
        ("pid-zero", 0, 1),
        ("pid-wraps", u32::MAX, 1),
        ("other-pid", STARTED.pid + 1, 1),
        ("workers", STARTED.pid, 4_000_000_000),
    ] {
        let (events, _) = mpsc::unbounded_channel();
        let (link, kill) = fake_node(name, 7, hello(pid, workers), events, stay_connected).await;
        match link {
            Err(HandshakeError::Mismatch {
                claimed_pid,
                claimed_workers,
                pid: 4242,
                workers: 1,
            }) => assert_eq!((claimed_pid, claimed_workers), (pid, workers)),
            Err(other) => panic!("{name}: refused for another reason: {other}"),
            Ok(_) => panic!("{name}: a lying hello was accepted"),
        }
        let killed = tokio::time::timeout(Duration::from_millis(50), kill.killed()).await;
        assert!(
            killed.is_err(),
            "{name}: refusing a hello kills nothing by itself"
        );
    }
    let (events, _) = mpsc::unbounded_channel();
    let (link, _) = fake_node("truthful", 7, hello(4242, 1), events, stay_connected).await;
    assert_eq!(link.expect("a true hello is accepted").hello.pid, 4242);
}

fn closed_consumer() -> NodeEvent {
    NodeEvent::ConsumerClosed {
        router: RouterId(uuid::Uuid::nil()),
        consumer: ipc::messages::ConsumerId(uuid::Uuid::nil()),
        producer: ipc::messages::ProducerId(uuid::Uuid::nil()),
    }
}

/// Sends `count` events, then stays connected: the supervisor must act on the events, not on
/// a close.
fn send_events(
    count: usize,
) -> impl FnOnce(
    FramedReader<StreamHalf>,
    FramedWriter<StreamHalf>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    move |reader, mut writer| {
        Box::pin(async move {
            for _ in 0..count {
                if writer
                    .send(&FromNode::Event(closed_consumer()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            stay_connected(reader, writer).await;
        })
    }
}

#[tokio::test]
async fn a_node_that_floods_events_the_supervisor_cannot_take_is_killed_and_reported() {
    let (events, mut reported) = mpsc::unbounded_channel();
    let (_link, kill) = honest_node("flood", events, send_events(NODE_EVENT_BUDGET + 1)).await;
    // Nobody handles the events meanwhile (the supervisor is "stuck"): the events are held.
    tokio::time::timeout(Duration::from_secs(20), kill.killed())
        .await
        .expect("the flooding node is killed");
    let mut queued = Vec::new();
    let reason = loop {
        match reported.recv().await.expect("events") {
            LinkEvent::Event(NodeId(7), _, place) => queued.push(place),
            LinkEvent::Closed(NodeId(7), reason) => break reason,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(
        queued.len(),
        NODE_EVENT_BUDGET,
        "every queued event is delivered"
    );
    assert!(reason.contains("of this node's events wait"), "{reason}");
}

#[tokio::test]
async fn one_nodes_flood_costs_another_node_nothing() {
    // Both nodes report on the one channel the supervisor reads, as in production.
    let (events, mut reported) = mpsc::unbounded_channel();
    let (_quiet, quiet_kill) = numbered_node("quiet", 1, events.clone(), send_events(500)).await;
    let (_flood, flood_kill) =
        numbered_node("flooder", 2, events, send_events(2 * NODE_EVENT_BUDGET)).await;
    // Nobody handles any event meanwhile: the quiet node's wait through the whole flood.
    tokio::time::timeout(Duration::from_secs(20), flood_kill.killed())
        .await
        .expect("the flooding node is killed");
    let (mut quiet, mut flood, mut closed) = (Vec::new(), Vec::new(), Vec::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while quiet.len() < 500 || closed.is_empty() {
        let event = tokio::time::timeout_at(deadline, reported.recv())
            .await
            .unwrap_or_else(|_| panic!("quiet {} of 500, closed {closed:?}", quiet.len()))
            .expect("events");
        match event {
            LinkEvent::Event(NodeId(1), _, place) => quiet.push(place),
            LinkEvent::Event(NodeId(2), _, place) => flood.push(place),
            LinkEvent::Closed(node, _) => closed.push(node),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        flood.len(),
        NODE_EVENT_BUDGET,
        "the flooder's budget, then it is cut off"
    );
    assert_eq!(closed, vec![NodeId(2)], "only the flooder is closed");
    let killed = tokio::time::timeout(Duration::from_millis(500), quiet_kill.killed()).await;
    assert!(
        killed.is_err(),
        "the quiet node was killed for another's flood"
    );
    assert!(reported.try_recv().is_err(), "nothing more arrives");
}

#[tokio::test]
async fn requests_beyond_the_in_flight_cap_are_refused_busy_at_once() {
    // A node that reads requests and never answers.
    let (events, _) = mpsc::unbounded_channel();
    let (link, _) = honest_node("silent", events, |mut reader, writer| async move {
        while let Ok(Some(_)) = reader.recv::<ToNode>().await {}
        drop(writer);
    })
    .await;
    let router = RouterId(uuid::Uuid::nil());
    let waiting: Vec<_> = (0..MAX_IN_FLIGHT)
        .map(|_| {
            let link = link.clone();
            tokio::spawn(async move { link.call(ipc::calls::CloseRouter { router }).await })
        })
        .collect();
    // Let them all register.
    while link.pending.in_flight() < MAX_IN_FLIGHT {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = link.call(ipc::calls::CloseRouter { router }).await;
    assert!(
        matches!(refused, Err(LinkError::Rpc(RpcError::Busy(MAX_IN_FLIGHT)))),
        "{refused:?}"
    );
    for task in waiting {
        let answer = task.await.expect("task");
        assert!(matches!(answer, Err(LinkError::Rpc(RpcError::Timeout(_)))));
    }
    assert!(link.call(ipc::calls::CloseRouter { router }).await.is_err());
    assert_eq!(
        link.pending.in_flight(),
        0,
        "timed-out requests free their places"
    );
}

#[tokio::test]
async fn an_answer_after_its_timeout_is_undone_on_the_node() {
    // The fake node answers the consume 1.5 s late (the link waits 1 s), then reports what
    // the link asks of it next.
    let (next_tx, next_rx) = tokio::sync::oneshot::channel::<Request>();
    let consumer = ipc::messages::ConsumerId(uuid::Uuid::new_v4());
    let (events, _events_rx) = mpsc::unbounded_channel();
    let (link, _kill) = honest_node("late", events, move |mut reader, mut writer| async move {
        let Ok(Some(ToNode::Request { id, .. })) = reader.recv::<ToNode>().await else {
            panic!("no request");
        };
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let late = Response::Consumed(ipc::calls::Consumed {
            consumer,
            kind: ipc::messages::MediaKind::Audio,
            rtp_parameters: ipc::messages::Json("{}".into()),
            consumer_type: "simple".into(),
            producer_paused: false,
        });
        writer
            .send(&FromNode::Answer {
                id,
                result: Ok(late),
            })
            .await
            .expect("answer");
        if let Ok(Some(ToNode::Request { request, .. })) = reader.recv::<ToNode>().await {
            let _ = next_tx.send(request);
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let router = RouterId(uuid::Uuid::new_v4());
    let consume: Request = ipc::calls::Consume {
        router,
        transport: ipc::messages::TransportId(uuid::Uuid::new_v4()),
        producer: ipc::messages::ProducerId(uuid::Uuid::new_v4()),
        rtp_capabilities: ipc::messages::Json("{}".into()),
    }
    .into();
    let timed_out = link.request(consume).await;
    assert!(
        matches!(timed_out, Err(LinkError::Rpc(RpcError::Timeout(_)))),
        "{timed_out:?}"
    );
    let next = tokio::time::timeout(Duration::from_secs(5), next_rx)
        .await
        .expect("the link asks something of the node")
        .expect("the fake node saw it");
    assert_eq!(
        next,
        ipc::calls::CloseConsumer { router, consumer }.into(),
        "the late consumer is closed"
    );
}
