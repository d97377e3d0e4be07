//! The monitor API and CLI against a real SFU in TLS mode: the `monitor` binary reports
//! exactly the participants, producers and consumers of a str0m call, follows its events,
//! refuses bad credentials and untrusted certificates, and `/metrics` agrees with it
//! (`monitor watch` in a terminal: watch.rs).

use std::collections::HashMap;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::monitor_events::EventsProcess;
use crate::support::peer::{exchange_media, Joining};
use crate::support::process::output_within;
use crate::support::signaling::{client_tls, Expect};
use crate::support::{monitor_binary, monitor_query, Sfu, TestCert};
use serde_json::{json, Value};
use signaling_api::calls::Leave;

/// The monitor token of these tests.
pub const TOKEN: &str = "test-monitor-token-0123456789abcdef";

/// `monitor` with the test's URL, CA and `args`; no token or URL from the environment.
fn monitor_command(sfu: &Sfu, cert: &TestCert, args: &[&str]) -> Command {
    let mut command = Command::new(monitor_binary());
    command
        .arg("--url")
        .arg(sfu.monitor_url())
        .arg("--ca")
        .arg(cert.dir.join("cert.pem"))
        .args(args)
        .env_remove("MONITOR_TOKEN")
        .env_remove("MONITOR_URL")
        .stdin(Stdio::null());
    command
}

fn run(command: &mut Command) -> Output {
    output_within(command, Duration::from_secs(30), "monitor")
}

/// `monitor --token TOKEN --json <args>` against `sfu`, parsed.
fn query(sfu: &Sfu, cert: &TestCert, args: &[&str]) -> Value {
    monitor_query(sfu, cert, TOKEN, args)
}

/// Asks `args` until `done` holds, at most `within`; the last answer.
async fn query_until(
    sfu: &Sfu,
    cert: &TestCert,
    args: &[&str],
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let answer = tokio::task::block_in_place(|| query(sfu, cert, args));
        if done(&answer) || Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn counts(v: &Value) -> (u64, u64, u64) {
    let n = |k: &str| v[k].as_u64().unwrap_or(u64::MAX);
    (n("participants"), n("producers"), n("consumers"))
}

/// GET `path` over HTTPS, trusting `cert`; the body.
pub async fn https_get(sfu: &Sfu, cert: &TestCert, path: &str) -> String {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", sfu.port))
        .await
        .expect("connect");
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let mut tls = tokio_rustls::TlsConnector::from(client_tls(&cert.cert_pem))
        .connect(name, tcp)
        .await
        .expect("TLS");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    // The server closes after the response (Connection: close); a TLS close_notify may be
    // missing, which reads as an error after the data.
    let _ = tls.read_to_end(&mut response).await;
    let response = String::from_utf8(response).expect("UTF-8");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

/// Parses Prometheus/OpenMetrics text strictly: `# HELP`, `# TYPE`, `# EOF` last, and
/// samples `name{label="value",…} number`. Returns samples by `name{labels}`.
pub fn parse_metrics(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "ends with # EOF");
    let is_name = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !s.starts_with(|c: char| c.is_ascii_digit())
    };
    for line in &lines[..lines.len() - 1] {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let keyword = parts.next().unwrap_or("");
            assert!(
                matches!(keyword, "HELP" | "TYPE" | "UNIT"),
                "bad comment {line:?}"
            );
            assert!(is_name(parts.next().unwrap_or("")), "bad name in {line:?}");
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value {line:?}"));
        let name = series.split('{').next().unwrap_or("");
        assert!(is_name(name), "bad metric name in {line:?}");
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                let inner = labels
                    .strip_prefix('{')
                    .and_then(|l| l.strip_suffix('}'))
                    .unwrap_or_else(|| panic!("bad labels {line:?}"));
                for pair in inner.split(',') {
                    let (key, quoted) = pair.split_once('=').expect("label=value");
                    assert!(is_name(key), "bad label {line:?}");
                    assert!(
                        quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"'),
                        "unquoted label value {line:?}"
                    );
                }
            }
        }
        samples.insert(series.to_string(), value);
    }
    samples
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_reports_a_call_exactly_and_follows_its_events() {
    let cert = TestCert::new("monitor");
    let sfu = Sfu::start_tls(&cert, &["--monitor-token", TOKEN]);
    let url = sfu.ws_url();
    let room = format!("monitored-{}", std::process::id());

    // Follow the room's events from before anyone joins.
    let events = EventsProcess::spawn(monitor_command(
        &sfu,
        &cert,
        &["--token", TOKEN, "--json", "events", "--room", &room],
    ))
    .await;

    let (mut alice, mut bob) = Joining::new(&url)
        .ca(Some(&cert.cert_pem))
        .pair(&room, ["Alice", "Bob"], 1000)
        .await;
    // One refused request, to be counted in the metrics.
    // A method that does not exist, sent raw on purpose.
    let unknown = json!({"id": 1000, "method": "noSuchMethod", "data": {}});
    alice
        .signaling
        .send_raw(unknown.to_string())
        .await
        .expect("send");
    let refused = alice.signaling.next_raw_answer().await;
    assert_eq!(refused.code(), Some("unknown_method"), "{refused:?}");

    // Media flows while the monitor looks: bitrates and scores come from the node's
    // periodic statistics.
    let probe = {
        let (sfu_url, ca) = (sfu.monitor_url(), cert.dir.join("cert.pem"));
        let room = room.clone();
        tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(8);
            loop {
                let output = run(Command::new(monitor_binary())
                    .args(["--url", &sfu_url, "--token", TOKEN, "--json", "room", &room])
                    .arg("--ca")
                    .arg(&ca)
                    .env_remove("MONITOR_TOKEN"));
                let detail: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
                let media: Vec<&Value> = detail["participants"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|p| {
                        let producers = p["producers"].as_array().into_iter().flatten();
                        producers.chain(p["consumers"].as_array().into_iter().flatten())
                    })
                    .collect();
                let flowing = media.len() == 8
                    && media
                        .iter()
                        .all(|m| m["bitrateBps"].as_u64().unwrap_or(0) > 0);
                if flowing || Instant::now() > deadline {
                    return detail;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };
    exchange_media(&mut [&mut alice, &mut bob], Duration::from_secs(6)).await;
    let detail = probe.await.expect("probe");
    println!("monitor --json room {room}: {detail:#}");

    assert_eq!(detail["room"], room.as_str());
    assert!(detail["node"]
        .as_str()
        .is_some_and(|n| n.starts_with("node-")));
    let participants = detail["participants"].as_array().expect("participants");
    let names: Vec<&str> = participants
        .iter()
        .map(|p| p["displayName"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["Alice", "Bob"], "in join order");
    for p in participants {
        let producers = p["producers"].as_array().expect("producers");
        let consumers = p["consumers"].as_array().expect("consumers");
        assert_eq!((producers.len(), consumers.len()), (2, 2), "{p:#}");
        let codecs: Vec<&str> = producers
            .iter()
            .map(|x| x["codec"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(codecs, ["audio/opus", "video/VP8"]);
        for m in producers.iter().chain(consumers) {
            assert!(m["bitrateBps"].as_u64().unwrap_or(0) > 0, "no bitrate: {m}");
            assert!(m["score"].as_u64().is_some(), "no score: {m}");
            assert_eq!(m["paused"], false, "{m}");
        }
    }

    let summary = query(&sfu, &cert, &["summary"]);
    println!("monitor --json summary: {summary}");
    assert_eq!(counts(&summary), (2, 4, 4));
    assert_eq!(summary["rooms"], 1);
    assert_eq!(summary["nodes"], 1);
    assert_eq!(summary["joinsTotal"], 2);
    let per_worker: u64 = summary["consumersPerWorker"]
        .as_array()
        .expect("per worker")
        .iter()
        .map(|w| w["consumers"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(per_worker, 4);

    let rooms = query(&sfu, &cert, &["rooms"]);
    let rooms = rooms.as_array().expect("rooms");
    assert_eq!(rooms.len(), 1);
    assert_eq!(rooms[0]["room"], room.as_str());
    assert_eq!(counts(&rooms[0]), (2, 4, 4));

    let nodes = query(&sfu, &cert, &["nodes"]);
    let worker = &nodes[0]["workers"][0];
    assert_eq!(worker["rooms"], json!([room]));
    assert_eq!(worker["transports"], 4);

    // The Prometheus text agrees with the summary.
    let metrics = parse_metrics(&https_get(&sfu, &cert, "/metrics").await);
    for (gauge, key) in [
        ("sfu_nodes", "nodes"),
        ("sfu_workers", "workers"),
        ("sfu_rooms", "rooms"),
        ("sfu_participants", "participants"),
        ("sfu_producers", "producers"),
        ("sfu_consumers", "consumers"),
    ] {
        assert_eq!(
            metrics.get(gauge).copied(),
            summary[key].as_f64(),
            "{gauge} vs summary.{key}"
        );
    }
    let node = summary["consumersPerWorker"][0]["node"]
        .as_str()
        .expect("node");
    let labels = format!("{{node=\"{node}\",worker=\"0\"}}");
    assert_eq!(
        metrics.get(&format!("sfu_worker_consumers{labels}")),
        Some(&4.0)
    );
    assert_eq!(
        metrics.get(&format!("sfu_worker_participants{labels}")),
        Some(&2.0)
    );
    assert_eq!(metrics.get("sfu_joins_total"), Some(&2.0));
    assert_eq!(metrics.get("sfu_node_restarts_total"), Some(&0.0));
    assert_eq!(
        metrics.get("sfu_signaling_errors_total{code=\"unknown_method\"}"),
        Some(&1.0)
    );
    let consumes = metrics
        .get("sfu_node_request_duration_seconds_count{request=\"consume\"}")
        .copied();
    assert_eq!(consumes, Some(4.0), "four consume requests timed");

    // Bob leaves: his producers go, and with them Alice's consumers of them.
    let bob_id = bob.peer_id.to_string();
    bob.signaling.ok(&Leave {}).await;
    let summary = query_until(&sfu, &cert, &["summary"], Duration::from_secs(5), |s| {
        counts(s) == (1, 2, 0)
    })
    .await;
    assert_eq!(counts(&summary), (1, 2, 0), "{summary}");
    let room_after = query(&sfu, &cert, &["room", &room]);
    assert_eq!(room_after["participants"].as_array().map(Vec::len), Some(1));

    // The event stream saw it all, and only this room's events.
    let seen = events.stop().await;
    let out = format!("{seen:#?}");
    let of_type = |t: &str| seen.iter().filter(|e| e["type"] == t).collect::<Vec<_>>();
    assert_eq!(of_type("roomCreated").len(), 1, "{out}");
    let joined: Vec<&str> = of_type("peerJoined")
        .iter()
        .map(|e| e["displayName"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(joined, ["Alice", "Bob"]);
    assert_eq!(of_type("producerAdded").len(), 4);
    let left = of_type("peerLeft");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["peerId"], bob_id.as_str());
    assert!(seen.iter().all(|e| e["room"] == room.as_str()), "{out}");
    assert!(seen.iter().all(|e| e["at"].as_u64().is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_monitor_requests_get_error_answers_and_the_connection_stays_usable() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    let cert = TestCert::new("monitor-bad-input");
    let sfu = Sfu::start_tls(&cert, &["--monitor-token", TOKEN]);
    let mut request = sfu.monitor_url().into_client_request().expect("request");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {TOKEN}").parse().expect("header"),
    );
    let connector = tokio_tungstenite::Connector::Rustls(client_tls(&cert.cert_pem));
    let (mut socket, _) =
        tokio_tungstenite::connect_async_tls_with_config(request, None, false, Some(connector))
            .await
            .expect("connect to /monitor");
    let mut ask = async |frame: Message| -> Value {
        socket.send(frame).await.expect("send");
        loop {
            match socket.next().await.expect("an answer").expect("frame") {
                Message::Text(text) => return serde_json::from_str(text.as_str()).expect("JSON"),
                _ => continue,
            }
        }
    };
    let cases = [
        (Message::text("garbage"), Value::Null, "bad_request"),
        (Message::text("[1,2]"), Value::Null, "bad_request"),
        (
            Message::text(r#"{"id":"x","method":"summary"}"#),
            Value::Null,
            "bad_request",
        ),
        (
            Message::text(r#"{"id":1,"method":"dropTables"}"#),
            json!(1),
            "unknown_method",
        ),
        (
            Message::text(r#"{"id":2,"method":"room"}"#),
            json!(2),
            "bad_request",
        ),
        (
            Message::text(r#"{"id":3,"method":"room","data":{"room":"nope"}}"#),
            json!(3),
            "not_found",
        ),
        (Message::binary(vec![1, 2, 3]), Value::Null, "bad_request"),
    ];
    for (frame, id, code) in cases {
        let answer = ask(frame.clone()).await;
        assert_eq!(answer["ok"], false, "{frame:?}: {answer}");
        assert_eq!(answer["id"], id, "{frame:?}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{frame:?}: {answer}");
        assert!(answer["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let answer = ask(Message::text(r#"{"id":9,"method":"summary"}"#)).await;
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["data"]["nodes"], 1);

    // Larger than the 16 KiB request cap: the connection is closed, the supervisor stays.
    let _ = socket.send(Message::text("x".repeat(64 * 1024))).await;
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match socket.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "an oversized request closes the connection");
    assert_eq!(query(&sfu, &cert, &["summary"])["nodes"], 1);
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_refuses_bad_tokens_untrusted_certificates_and_plain_remote_urls() {
    let cert = TestCert::new("monitor-refusals");
    let sfu = Sfu::start_tls(&cert, &["--monitor-token", TOKEN]);

    let wrong = run(&mut monitor_command(
        &sfu,
        &cert,
        &["--token", "not-the-token", "summary"],
    ));
    assert!(!wrong.status.success());
    assert!(
        stderr_of(&wrong).contains("refused the monitor token"),
        "{}",
        stderr_of(&wrong)
    );
    assert!(
        sfu.log_text().contains("monitor connection refused"),
        "refusal logged"
    );

    let missing = run(&mut monitor_command(&sfu, &cert, &["summary"]));
    assert!(!missing.status.success());
    assert!(
        stderr_of(&missing).contains("--token"),
        "{}",
        stderr_of(&missing)
    );

    // Without --ca the self-signed certificate is not trusted; the error says what to do.
    let untrusted = run(&mut {
        let mut c = Command::new(monitor_binary());
        c.args(["--url", &sfu.monitor_url(), "--token", TOKEN, "summary"])
            .env_remove("MONITOR_TOKEN");
        c
    });
    assert!(!untrusted.status.success());
    let message = stderr_of(&untrusted);
    assert!(
        message.contains("not trusted")
            && message.contains("--ca")
            && message.contains("--insecure"),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1, "one line: {message}");

    // Plain ws:// to a non-loopback host is refused before any connection is made.
    let plain = run(&mut {
        let mut c = Command::new(monitor_binary());
        c.args([
            "--url",
            "ws://192.0.2.10:8000/monitor",
            "--token",
            TOKEN,
            "summary",
        ]);
        c
    });
    assert!(!plain.status.success());
    assert!(
        stderr_of(&plain).contains("refusing ws://"),
        "{}",
        stderr_of(&plain)
    );

    let unknown = run(&mut monitor_command(
        &sfu,
        &cert,
        &["--token", TOKEN, "room", "no-such-room"],
    ));
    assert!(!unknown.status.success());
    assert!(
        stderr_of(&unknown).contains("no room \"no-such-room\""),
        "{}",
        stderr_of(&unknown)
    );

    // --insecure connects without the certificate.
    let insecure = run(&mut {
        let mut c = Command::new(monitor_binary());
        c.args([
            "--url",
            &sfu.monitor_url(),
            "--token",
            TOKEN,
            "--insecure",
            "summary",
        ]);
        c
    });
    assert!(insecure.status.success(), "{}", stderr_of(&insecure));
    assert!(String::from_utf8_lossy(&insecure.stdout).contains("participants"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_configured_the_api_says_how_to_enable_it() {
    let cert = TestCert::new("monitor-off");
    let sfu = Sfu::start_tls(&cert, &[]);
    let off = run(&mut monitor_command(
        &sfu,
        &cert,
        &["--token", "anything", "summary"],
    ));
    assert!(!off.status.success());
    let message = stderr_of(&off);
    assert!(
        message.contains("disabled") && message.contains("MONITOR_TOKEN"),
        "{message}"
    );
}
