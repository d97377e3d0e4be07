//! A protocol fuzzer against a live supervisor: several connections send random mixes of
//! valid, half-valid and garbage frames in random order (joins to random rooms, media
//! requests with made-up or real ids, wrong types, unknown methods, broken JSON, binary
//! frames). Every frame is answered (by its id, or `id: null`) unless the socket is closed
//! with a documented code; the supervisor and its node stay up with no panic in the log; and
//! once every client is gone, `/metrics` counts no room and no participant.
//!
//! The frames go through the typed client's raw path ([`Client::send_raw`]); the well-formed
//! ones among them are written from the typed requests ([`request_frame`]).
//!
//! 10⁴ frames here; more with `FUZZ_FRAMES=100000 cargo test -p supervisor --test integration
//! fuzz -- --nocapture`.

use std::time::Duration;

use serde_json::{json, Value};
use signaling_api::client::{request_frame, Client, WaitError};
use signaling_api::{CreateTransportArgs, Direction, JoinArgs, Method};
use tokio_tungstenite::tungstenite::Message;

use crate::support::signaling::{self, assert_sane, drain_notifications};
use crate::support::{http_get, Sfu};

/// xorshift64*: reproducible without a dependency; the seed is printed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// What a fuzzing connection has learnt (ids the server handed out), to send half-valid
/// requests that reach past the id checks.
#[derive(Default)]
struct Known {
    ids: Vec<String>,
}

fn value(rng: &mut Rng, known: &Known) -> Value {
    match rng.below(10) {
        0 => Value::Null,
        1 => json!(rng.below(3) == 0),
        2 => json!(rng.next() as i64),
        3 => json!(-1.5e300),
        4 => json!("send"),
        5 => json!("video"),
        6 if !known.ids.is_empty() => json!(rng.pick(&known.ids)),
        7 => json!([1, "two", null]),
        8 => {
            json!({"codecs": [{"mimeType": "audio/opus", "clockRate": 48000, "payloadType": 111}], "encodings": [{"ssrc": rng.below(1 << 32)}]})
        }
        _ => json!("x".repeat(rng.below(100) as usize)),
    }
}

/// A random frame, and the id its answer must carry (`None`: the answer's `id` is `null`, as
/// the frame has no readable id).
fn frame(rng: &mut Rng, id: u64, known: &Known) -> (Message, Option<u64>) {
    let garbage = match rng.below(20) {
        // Garbage.
        0 => Message::text(String::from_utf8_lossy(&rng.next().to_le_bytes()).to_string()),
        1 => Message::text("{\"id\": 1, \"method\": "),
        2 => Message::text("[".repeat(300)),
        3 => Message::binary(vec![0u8; 16]),
        4 => Message::text(json!({"id": "seven", "method": "join"}).to_string()),
        draw => return (request(rng, draw, id, known), Some(id)),
    };
    (garbage, None)
}

/// A frame with a readable `id`: draw 5 to 19 of [`frame`].
fn request(rng: &mut Rng, draw: u64, id: u64, known: &Known) -> Message {
    let keys = [
        "room",
        "displayName",
        "transportId",
        "producerId",
        "consumerId",
        "direction",
        "kind",
        "rtpParameters",
        "rtpCapabilities",
        "dtlsParameters",
        "spatialLayer",
        "temporalLayer",
        "token",
    ];
    match draw {
        // A well-formed join to one of a few rooms.
        5..=7 => {
            let join = JoinArgs {
                room: format!("fuzz-{}", rng.below(4)),
                display_name: format!("f{}", rng.below(100)),
                token: None,
                watch_only: rng.below(2) == 0,
                last_n: None,
            };
            Message::text(request_frame(id, &join).expect("a join frame"))
        }
        8..=9 => {
            let direction = if rng.below(2) == 0 {
                Direction::Send
            } else {
                Direction::Recv
            };
            let transport = CreateTransportArgs {
                direction,
                data: false,
            };
            Message::text(request_frame(id, &transport).expect("a transport frame"))
        }
        // Any method with random arguments.
        _ => {
            // Every method, and one that does not exist.
            let method = match rng.below(Method::ALL.len() as u64 + 1) as usize {
                i if i < Method::ALL.len() => Method::ALL[i].name(),
                _ => "fly".to_string(),
            };
            let mut data = serde_json::Map::new();
            for _ in 0..rng.below(5) {
                data.insert(rng.pick(&keys).to_string(), value(rng, known));
            }
            Message::text(json!({"id": id, "method": method, "data": data}).to_string())
        }
    }
}

fn collect_ids(value: &Value, known: &mut Known) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k.ends_with("Id") {
                    if let Some(id) = v.as_str() {
                        if known.ids.len() < 200 {
                            known.ids.push(id.to_string());
                        }
                    }
                }
                collect_ids(v, known);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_ids(v, known)),
        _ => {}
    }
}

/// Sends `frames` frames one at a time, each waiting for its answer. The number answered,
/// or the close code that ended the connection.
async fn fuzz_connection(url: String, seed: u64, frames: u64) -> (Outcomes, Option<u16>) {
    let mut rng = Rng(seed);
    let mut client = signaling::connect(&url, None).await;
    let mut known = Known::default();
    let mut answered = Outcomes::new();
    for id in 1..=frames {
        let (message, expected_id) = frame(&mut rng, id, &known);
        let sent = match message {
            Message::Binary(bytes) => client.send_binary(bytes.to_vec()).await,
            message => client.send_raw(message.to_text().unwrap_or_default()).await,
        };
        if sent.is_err() {
            return (answered, close_code(&client).await);
        }
        // The answer (notifications come apart, and are read here so their queue never fills).
        let answer = client.raw_answer(Duration::from_secs(15)).await;
        drain_notifications(&mut client);
        assert_sane(&client);
        let answer = match answer {
            Ok(answer) => answer,
            Err(WaitError::Closed) => return (answered, close_code(&client).await),
            Err(e) => panic!("seed {seed}: frame {id} not answered: {e}"),
        };
        assert_eq!(
            answer.id, expected_id,
            "seed {seed}: frame {id} answered with another id: {answer:?}"
        );
        let outcome = match &answer.outcome {
            Ok(data) => {
                collect_ids(data, &mut known);
                "ok".to_string()
            }
            Err(refused) => refused.code().to_string(),
        };
        *answered.entry(outcome).or_default() += 1;
    }
    (answered, None)
}

/// The close code that ended `client`'s connection, if it ended with one.
async fn close_code(client: &Client) -> Option<u16> {
    let closed = client.wait_closed(Duration::from_secs(5)).await;
    closed.and_then(|closed| closed.code)
}

/// Answers by outcome: `ok` or the error code.
type Outcomes = std::collections::BTreeMap<String, u64>;

/// `GET /metrics` over plain HTTP.
fn gauge(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_frames_from_several_connections_are_all_answered_and_leave_nothing_behind() {
    // Each connection sends as fast as it is answered: no request rate limit here (limits.rs
    // tests it).
    // Their peers are kept a second for a resume once their sockets end, then leave.
    let sfu = Sfu::start(&[
        "--requests-per-second",
        "1000000",
        "--joins-per-minute-per-ip",
        "0",
        "--resume-grace-secs",
        "1",
    ]);
    let nodes = sfu.node_pids();
    let total: u64 = std::env::var("FUZZ_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let connections = 4;
    let seed0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    println!("fuzz: {total} frames over {connections} connections, seeds {seed0}+i");
    let tasks: Vec<_> = (0..connections)
        .map(|i| {
            tokio::spawn(fuzz_connection(
                sfu.ws_url(),
                seed0.wrapping_add(i),
                total / connections,
            ))
        })
        .collect();
    let mut outcomes = Outcomes::new();
    for task in tasks {
        let (answers, closed) = task.await.expect("fuzz task");
        for (outcome, n) in answers {
            *outcomes.entry(outcome).or_default() += n;
        }
        // A socket may end only with a documented code (1009 is for frames over 64 KiB,
        // which these are not).
        assert!(
            closed.is_none() || closed == Some(1008),
            "closed with {closed:?}"
        );
    }
    let answered: u64 = outcomes.values().sum();
    println!("fuzz: {answered} answers: {outcomes:?}");
    // `internal` is a bug (docs/protocol.md): no input may cause one.
    assert_eq!(
        outcomes.get("internal"),
        None,
        "internal errors: {outcomes:?}"
    );
    assert_eq!(
        answered,
        total - total % connections,
        "every frame answered"
    );
    let log = sfu.log_text();
    assert!(!log.contains("panicked"), "a panic in the supervisor's log");
    assert_eq!(sfu.node_pids(), nodes, "the node stayed up");
    // Every fuzzing client is gone: nothing is left.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = http_get(sfu.port, "/metrics");
        let (rooms, participants) = (gauge(&text, "sfu_rooms"), gauge(&text, "sfu_participants"));
        if rooms == Some(0) && participants == Some(0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "left behind: rooms {rooms:?}, participants {participants:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
