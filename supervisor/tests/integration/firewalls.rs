//! Clients behind firewalls, in network namespaces the tests make: Chromium pages whose UDP is
//! dropped call over ICE-TCP; pages that reach nothing but the SFU's signaling port and a TURN
//! server's TLS port 443 call through Debian's coturn, run with deploy/coturn/turnserver.conf;
//! the TURN credentials the SFU hands out are accepted by coturn and refused once expired.
//! The monitor's `peer` tells each path apart.

use std::net::{Ipv4Addr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::client_net::ClientNet;
use crate::support::signaling::{self, Expect as _};
use crate::support::{Sfu, TestCert};

const TOKEN: &str = "firewalls-monitor-token-0123456789abcdef";
const SECRET: &str = "turn-secret-of-the-firewall-tests";

/// An SFU whose media listens on `net`'s side of the link, signaling on every address.
fn sfu_for(net: &ClientNet, extra: &[&str]) -> Sfu {
    let ip = net.host_ip.to_string();
    let mut args = vec![
        "--bind",
        "0.0.0.0",
        "--rtc-ip",
        &ip,
        "--monitor-token",
        TOKEN,
    ];
    args.extend_from_slice(extra);
    Sfu::start_unbound(&args)
}

/// Debian's coturn with the README's configuration, on `ip` (UDP/TCP 3478, TLS 443), relaying
/// to `sfu` only; killed when dropped.
struct Coturn {
    child: Child,
    log: PathBuf,
}

impl Coturn {
    fn start(ip: Ipv4Addr, sfu: Ipv4Addr, cert: &TestCert) -> Coturn {
        let conf = crate::browser::repo().join("deploy/coturn/turnserver.conf");
        let log = std::env::temp_dir().join(format!("sfu-test-coturn-{ip}.log"));
        let _ = std::fs::remove_file(&log);
        let pid_file = std::env::temp_dir().join(format!("sfu-test-coturn-{ip}.pid"));
        let child = Command::new("turnserver")
            .arg("-c")
            .arg(&conf)
            .arg(format!("--listening-ip={ip}"))
            .arg(format!("--relay-ip={ip}"))
            .arg(format!("--static-auth-secret={SECRET}"))
            .arg(format!("--cert={}", cert.dir.join("cert.pem").display()))
            .arg(format!("--pkey={}", cert.dir.join("key.pem").display()))
            .arg(format!("--allowed-peer-ip={sfu}"))
            .arg(format!("--log-file={}", log.display()))
            .arg(format!("--pidfile={}", pid_file.display()))
            .arg("--simple-log")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("turnserver (Debian's coturn: scripts/setup.sh --tests)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&(ip, 443).into(), Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "coturn does not listen on {ip}:443"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Coturn { child, log }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Chromium pages alice and bob in `net` call each other in `room` through `sfu` (page
/// settings `envs`); returns call.mjs's output and the paths the monitor's `peer` showed for
/// alice's transports while the call was on.
fn call_from(
    net: &ClientNet,
    sfu: &Sfu,
    room: &str,
    envs: &[(&str, &str)],
) -> (String, Vec<String>) {
    crate::browser::check_prerequisites();
    let url = format!("http://{}:{}", net.host_ip, sfu.port);
    let mut all: Vec<(String, String)> = vec![
        ("SFU_ROOM".into(), room.into()),
        ("SFU_SECURE_ORIGINS".into(), url.clone()),
        // Long enough for the monitor to be asked while the call is on.
        ("SFU_HOLD_MS".into(), "6000".into()),
    ];
    all.extend(envs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let node = net.command("node");
    let browser = std::thread::spawn(move || {
        let envs: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        crate::browser::run_browser_script_with(
            node,
            "call.mjs",
            &url,
            &envs,
            Duration::from_secs(180),
        )
    });
    let monitor_url = sfu.monitor_url();
    let mut paths = Vec::new();
    while !browser.is_finished() {
        std::thread::sleep(Duration::from_millis(500));
        let asked = crate::support::process::output_within(
            Command::new(crate::support::monitor_binary()).args([
                "--json",
                "--url",
                &monitor_url,
                "--token",
                TOKEN,
                "peer",
                room,
                "alice",
            ]),
            Duration::from_secs(30),
            "monitor peer",
        );
        let Ok(seen) = serde_json::from_slice::<serde_json::Value>(&asked.stdout) else {
            continue; // not in the room yet
        };
        let found: Vec<String> = seen["transports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["path"].as_str().map(str::to_string))
            .collect();
        if found.len() == 2 {
            println!("monitor peer {room} alice: {seen:#}");
            paths = found;
            break;
        }
    }
    let out = browser
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
    (out, paths)
}

/// What call.mjs says of `page`'s candidate pairs: `send … recv …`.
fn page_path<'a>(out: &'a str, page: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{page}: path ")))
        .unwrap_or_else(|| panic!("no path of {page}:\n{out}"))
}

#[test]
fn chromium_whose_udp_is_dropped_calls_over_ice_tcp() {
    let net = ClientNet::create(1);
    net.drop_udp();
    let sfu = sfu_for(&net, &[]);
    let (out, paths) = call_from(&net, &sfu, "no-udp", &[]);
    assert!(
        out.contains("call: every page decodes every other"),
        "{out}"
    );
    // Chromium's side of an ICE-TCP pair is its active TCP candidate, which the SFU's checks
    // show it as peer-reflexive (host or prflx): never relayed, always TCP.
    for page in ["alice", "bob"] {
        let path = page_path(&out, page);
        let kinds: Vec<&str> = path.split(' ').filter(|w| w.contains('/')).collect();
        assert!(
            kinds.len() == 2 && kinds.iter().all(|k| *k == "host/tcp" || *k == "prflx/tcp"),
            "{page}: {path}"
        );
    }
    assert_eq!(
        paths,
        ["tcp", "tcp"],
        "the monitor's path of alice's transports"
    );
}

#[test]
fn chromium_that_reaches_only_turn_over_tls_on_443_calls_through_coturn() {
    let net = ClientNet::create(2);
    let turn_ip = Ipv4Addr::new(10, 79, 2, 3);
    net.add_host_address(turn_ip);
    let cert = TestCert::new("coturn");
    let coturn = Coturn::start(turn_ip, net.host_ip, &cert);
    let turn_url = format!("turns:{turn_ip}:443?transport=tcp");
    let sfu = sfu_for(&net, &["--turn-urls", &turn_url, "--turn-secret", SECRET]);
    // Out of the client's network: the SFU's signaling port and TURN over TLS, nothing else
    // (no UDP at all, no TCP to the media ports).
    net.allow_only(&[("tcp", net.host_ip, sfu.port), ("tcp", turn_ip, 443)]);
    // The test certificate is self-signed: SFU_INSECURE lets Chromium accept it.
    let (out, paths) = call_from(
        &net,
        &sfu,
        "turn-only",
        &[("SFU_RELAY", "1"), ("SFU_INSECURE", "1")],
    );
    assert!(
        out.contains("call: every page decodes every other"),
        "{out}"
    );
    for page in ["alice", "bob"] {
        assert_eq!(
            page_path(&out, page),
            "send relay/udp via tls recv relay/udp via tls",
            "{out}"
        );
    }
    assert_eq!(
        paths,
        ["relayed", "relayed"],
        "the monitor's path of alice's transports"
    );
    let log = coturn.log_text();
    assert!(log.contains("TLS"), "coturn saw TLS sessions:\n{log}");
}

/// `turnutils_uclient` (coturn's test client) allocates on the server at `ip` with these
/// credentials, relays to itself (`-y`) and reports: whether it succeeded.
fn turn_client(ip: Ipv4Addr, username: &str, password: &str, tls: bool) -> bool {
    let mut command = Command::new("turnutils_uclient");
    command.args(["-y", "-n", "1", "-m", "1", "-u", username, "-w", password]);
    if tls {
        command.args(["-t", "-S", "-p", "443"]);
    }
    let output = crate::support::process::output_within(
        command.arg(ip.to_string()),
        Duration::from_secs(30),
        "turnutils_uclient",
    );
    output.status.success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turn_credentials_from_the_join_answer_are_coturns_to_check_and_expire_as_configured() {
    let net = ClientNet::create(3);
    let turn_ip = Ipv4Addr::new(10, 79, 3, 3);
    net.add_host_address(turn_ip);
    let cert = TestCert::new("coturn-expiry");
    // The client relays to itself (-y): the TURN server's own address is the peer.
    let coturn = Coturn::start(turn_ip, turn_ip, &cert);
    let urls = format!("turn:{turn_ip}:3478?transport=udp,turns:{turn_ip}:443?transport=tcp");
    let sfu = sfu_for(
        &net,
        &[
            "--turn-urls",
            &urls,
            "--turn-secret",
            SECRET,
            "--turn-ttl-secs",
            "10",
        ],
    );
    let mut client = signaling::connect(&sfu.ws_url(), None).await;
    let joined = client
        .ok(&signaling::join("turn-credentials", "Alice"))
        .await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let [server] = joined.ice_servers.as_slice() else {
        panic!("one ICE server: {:?}", joined.ice_servers);
    };
    assert_eq!(
        server.urls,
        [
            format!("turn:{turn_ip}:3478?transport=udp"),
            format!("turns:{turn_ip}:443?transport=tcp")
        ]
    );
    let username = server.username.clone().expect("a username");
    let password = server.credential.clone().expect("a credential");
    let (expiry, identity) = username.split_once(':').expect("expiry:identity");
    let expiry: u64 = expiry.parse().expect("a Unix time");
    assert_eq!(identity, joined.peer_id.to_string());
    assert!(
        expiry.abs_diff(now + 10) <= 2,
        "expires at {expiry}, now {now}"
    );
    // coturn takes them, over UDP and over TLS…
    let (u, p) = (username.clone(), password.clone());
    let fresh = tokio::task::block_in_place(|| {
        (
            turn_client(turn_ip, &u, &p, false),
            turn_client(turn_ip, &u, &p, true),
        )
    });
    assert_eq!(fresh, (true, true), "coturn log:\n{}", coturn.log_text());
    // … and refuses them once they expired.
    let wait = (expiry + 1).saturating_sub(now);
    println!(
        "credentials {username} accepted over UDP and TLS; waiting {wait} s for them to expire"
    );
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let expired = tokio::task::block_in_place(|| turn_client(turn_ip, &username, &password, false));
    assert!(!expired, "coturn accepted expired credentials");
    // A tampered password is refused too (the check is the HMAC, not just the time).
    let (later, _) = username.split_once(':').unwrap_or_default();
    let forged = format!("{}:{identity}", later.parse::<u64>().unwrap_or(0) + 3600);
    let refused = tokio::task::block_in_place(|| turn_client(turn_ip, &forged, &password, false));
    assert!(
        !refused,
        "coturn accepted a username whose expiry was pushed back"
    );

    // WHIP and WHEP clients get the servers as Link headers (RFC 9725).
    let options = crate::support::http_request(sfu.port, "OPTIONS", "/whip/turn-credentials");
    let links: Vec<&str> = options
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("link:"))
        .collect();
    assert_eq!(links.len(), 2, "{options}");
    assert!(
        links[0].contains(&format!(
            "<turn:{turn_ip}:3478?transport=udp>; rel=\"ice-server\"; username=\""
        )) && links[0].contains("credential-type=\"password\""),
        "{options}"
    );
}

/// Runs the loadgen in `net` against `sfu`: 2 rooms of 2 publishers and a subscriber for
/// 4 s, with `extra` flags.
fn loadgen_in(net: &ClientNet, sfu: &Sfu, extra: &[&str]) -> std::process::Output {
    let url = format!("ws://{}:{}/ws", net.host_ip, sfu.port);
    let client_ip = net.client_ip.to_string();
    let mut args = vec![
        "--url",
        &url,
        "--local-ip",
        &client_ip,
        "--rooms",
        "2",
        "--publishers",
        "2",
        "--subscribers",
        "1",
        "--duration",
        "4",
        "--json",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let mut command = net.command(
        crate::load::loadgen(&[])
            .get_program()
            .to_str()
            .expect("UTF-8 path"),
    );
    command.args(&args);
    crate::support::process::output_within(&mut command, Duration::from_secs(90), "loadgen")
}

/// The loadgen's summary shows every stream of its 6 participants received, no error.
fn assert_every_stream(output: &std::process::Output, how: &str) {
    let summary = crate::load::summary(output);
    println!(
        "{how}: {} peers, {}/{} streams, loss {} %",
        summary["peers_joined"],
        summary["streams_received"],
        summary["streams_expected"],
        summary["loss_pct"]
    );
    assert_eq!(summary["peers_joined"], 6, "{summary:#}");
    assert_eq!(
        summary["streams_received"], summary["streams_expected"],
        "{summary:#}"
    );
    assert_eq!(summary["errors"], serde_json::json!({}), "{summary:#}");
    assert!(output.status.success(), "{summary:#}");
}

#[test]
fn loadgen_participants_whose_udp_is_dropped_call_over_ice_tcp_and_fail_without_it() {
    let net = ClientNet::create(4);
    net.drop_udp();
    let sfu = sfu_for(&net, &[]);
    let loadgen = |extra: &[&str]| loadgen_in(&net, &sfu, extra);
    let over_tcp = loadgen(&["--ice-tcp"]);
    assert_every_stream(&over_tcp, "--ice-tcp");
    // The same over UDP gets nowhere: the namespace really drops it.
    let over_udp = loadgen(&[]);
    let summary = crate::load::summary(&over_udp);
    assert!(!over_udp.status.success(), "{summary:#}");
    println!("over UDP: errors {}", summary["errors"]);
}

#[test]
fn loadgen_participants_that_reach_only_turn_call_through_coturn_and_fail_without_it() {
    let net = ClientNet::create(5);
    let turn_ip = Ipv4Addr::new(10, 79, 5, 3);
    net.add_host_address(turn_ip);
    let cert = TestCert::new("coturn-loadgen");
    let _coturn = Coturn::start(turn_ip, net.host_ip, &cert);
    let urls = format!("turn:{turn_ip}:3478?transport=udp");
    let sfu = sfu_for(&net, &["--turn-urls", &urls, "--turn-secret", SECRET]);
    // Out of the client's network: signaling, and coturn over UDP.
    net.allow_only(&[("tcp", net.host_ip, sfu.port), ("udp", turn_ip, 3478)]);
    let through_turn = loadgen_in(&net, &sfu, &["--turn"]);
    assert_every_stream(&through_turn, "--turn");
    let direct = loadgen_in(&net, &sfu, &[]);
    let summary = crate::load::summary(&direct);
    assert!(!direct.status.success(), "{summary:#}");
    println!("straight to the SFU: errors {}", summary["errors"]);
}
