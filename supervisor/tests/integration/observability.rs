//! The operator's dashboard and alerts against a real Prometheus: `promtool` checks
//! deploy/prometheus/alerts.yml; Debian's Prometheus scrapes a running SFU (a cluster of one
//! host, so the cluster's metrics exist) under the loadgen; every query of
//! deploy/grafana/sfu.json returns data, every metric an alert reads exists, and a node
//! killed under it makes the node-restart alert's expression true, and a TLS host with a
//! certificate near expiry makes the certificate alert's, until a renewal and SIGHUP.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::cluster::{self, Etcd};
use crate::support::{free_port, http_get, signal, Sfu, TestCert};

/// Debian's Prometheus scraping `sfu` every second with the alerts loaded; killed when dropped.
struct Prometheus {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Prometheus {
    /// Scrapes `sfu` as job `sfu`, and `tls_sfu` over HTTPS (its self-signed certificate
    /// accepted) as job `sfu-tls`.
    fn start(sfu: &Sfu, tls_sfu: &Sfu, alerts: &Path) -> Prometheus {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("sfu-test-prometheus-{port}"));
        std::fs::create_dir_all(&dir).expect("prometheus dir");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: sfu\n    static_configs:\n      - targets: [\"127.0.0.1:{}\"]\n  - job_name: sfu-tls\n    scheme: https\n    tls_config:\n      insecure_skip_verify: true\n    static_configs:\n      - targets: [\"127.0.0.1:{}\"]\n",
            alerts.display(),
            sfu.port,
            tls_sfu.port
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("prometheus.yml");
        let log = std::fs::File::create(dir.join("log")).expect("log");
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("prometheus (Debian's: scripts/setup.sh --tests)");
        let prometheus = Prometheus { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !std::net::TcpStream::connect(("127.0.0.1", port))
            .is_ok_and(|_| http_get(port, "/-/ready").contains("200 OK"))
        {
            assert!(
                Instant::now() < deadline,
                "prometheus not ready:\n{}",
                prometheus.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        prometheus
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// The instant vector `expr` evaluates to now.
    fn query(&self, expr: &str) -> Vec<Value> {
        let response = http_get(self.port, &format!("/api/v1/query?query={}", encode(expr)));
        let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
        // Chunked or not, the JSON document is the body's one line starting with `{`.
        let json = body
            .lines()
            .find(|l| l.starts_with('{'))
            .unwrap_or_else(|| panic!("no JSON for {expr}: {response}"));
        let answer: Value = serde_json::from_str(json).expect("JSON");
        assert_eq!(answer["status"], "success", "{expr}: {answer}");
        answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Percent-encodes a query parameter.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The `expr:` lines of the alerts file.
fn alert_expressions(alerts: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut name = String::new();
    for line in alerts.lines().map(str::trim) {
        if let Some(alert) = line.strip_prefix("- alert: ") {
            name = alert.to_string();
        } else if let Some(expr) = line.strip_prefix("expr: ") {
            found.push((name.clone(), expr.to_string()));
        }
    }
    found
}

/// The `sfu_…` metric names `expr` reads, without histogram suffixes.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("sfu_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.push(name);
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_and_alert_reads_metrics_a_real_prometheus_scrapes() {
    let repo = crate::browser::repo();
    let alerts_path = repo.join("deploy/prometheus/alerts.yml");
    let checked = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&alerts_path)
        .output()
        .expect("promtool (Debian's prometheus)");
    let said = String::from_utf8_lossy(&checked.stdout).into_owned();
    println!("promtool check rules: {said}");
    assert!(
        checked.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&checked.stderr)
    );

    let etcd = Etcd::start();
    let sfu = cluster::host(&etcd, "h1", &[]).await;
    // A TLS host whose certificate expires in 3 days: the certificate alert's case.
    let expiring = TestCert::expiring_in("expiring", 3);
    let tls_sfu = Sfu::start_tls(&expiring, &[]);
    let prometheus =
        tokio::task::block_in_place(|| Prometheus::start(&sfu, &tls_sfu, &alerts_path));
    // Media, joins and producers; a refused request (a signaling error); a node killed.
    let url = sfu.ws_url();
    let load = tokio::task::block_in_place(|| {
        crate::load::loadgen(&[
            "--url",
            &url,
            "--rooms",
            "1",
            "--publishers",
            "2",
            "--subscribers",
            "1",
            "--duration",
            "6",
            "--json",
            "--quiet",
        ])
        .output()
        .expect("loadgen")
    });
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stdout)
    );
    let mut client = crate::support::signaling::connect(&url, None).await;
    let refused = client
        .call(&signaling_api::ProduceArgs {
            transport_id: "not-a-transport".into(),
            kind: signaling_api::Kind::Audio,
            rtp_parameters: serde_json::Map::new(),
            app_data: None,
        })
        .await;
    assert!(refused.is_err(), "producing before joining is refused");
    let nodes = sfu.wait_nodes(1, Duration::from_secs(10)).await;
    signal(nodes[0], "KILL");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sfu.node_pids().iter().any(|pid| *pid != nodes[0]) {
        assert!(
            Instant::now() < deadline,
            "no node replaced {}:\n{}",
            nodes[0],
            sfu.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A few scrapes after all that.
    tokio::time::sleep(Duration::from_secs(4)).await;

    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo.join("deploy/grafana/sfu.json")).expect("dashboard"),
    )
    .expect("the dashboard is JSON");
    let mut queries = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("expr");
            let result = tokio::task::block_in_place(|| prometheus.query(expr));
            assert!(
                !result.is_empty(),
                "panel {:?}: {expr} returns nothing",
                panel["title"]
            );
            queries += 1;
        }
    }
    println!("{queries} dashboard queries return data");
    let alerts = std::fs::read_to_string(&alerts_path).expect("alerts");
    for (alert, expr) in alert_expressions(&alerts) {
        for name in metric_names(&expr) {
            let result = tokio::task::block_in_place(|| {
                prometheus.query(&format!("{{__name__=\"{name}\"}}"))
            });
            assert!(
                !result.is_empty(),
                "alert {alert} reads {name}, which nobody exports"
            );
        }
    }
    let restarted = alert_expressions(&alerts)
        .into_iter()
        .find(|(name, _)| name == "SfuNodeRestarted")
        .expect("the node-restart alert");
    let firing = tokio::task::block_in_place(|| prometheus.query(&restarted.1));
    println!("{}: {firing:?}", restarted.1);
    assert_eq!(
        firing.len(),
        1,
        "the node-restart alert's expression is true"
    );

    // The certificate alert fires for the 3-day certificate; a renewed one (90 days) written
    // over it and SIGHUP (systemctl reload) clear it.
    let expires_soon = alert_expressions(&alerts)
        .into_iter()
        .find(|(name, _)| name == "SfuCertificateExpiresSoon")
        .expect("the certificate alert");
    let firing = tokio::task::block_in_place(|| prometheus.query(&expires_soon.1));
    println!("{}: {firing:?}", expires_soon.1);
    assert_eq!(
        firing.len(),
        1,
        "the 3-day certificate makes the alert true"
    );
    let renewed = TestCert::expiring_in("renewed", 90);
    for file in ["cert.pem", "key.pem"] {
        std::fs::copy(renewed.dir.join(file), expiring.dir.join(file)).expect("renew");
    }
    signal(tls_sfu.pid(), "HUP");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !tokio::task::block_in_place(|| prometheus.query(&expires_soon.1)).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate still makes the alert true:\n{}",
            tls_sfu.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("after renewal and SIGHUP: the certificate alert is clear");
}
