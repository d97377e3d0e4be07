//! A local cluster for the tests: an etcd of its own (Debian's `etcd-server`, on free ports,
//! in a temporary folder, killed and removed when dropped) and supervisors in cluster mode
//! sharing it, each on loopback with its own ports.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{blocking_pause, Sfu};

/// The secret every test host shares.
pub const SECRET: &str = "cluster-test-secret-0123456789abcdef";
/// The monitor token of every test host.
pub const MONITOR_TOKEN: &str = "cluster-monitor-token-0123456789abcdef";

/// An etcd for one test.
pub struct Etcd {
    child: Option<Child>,
    dir: PathBuf,
    peer: u16,
    /// Its client URL.
    pub url: String,
}

fn etcd_binary() -> PathBuf {
    ["/usr/bin/etcd", "/usr/local/bin/etcd"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("etcd is missing: the cluster tests need it (scripts/setup.sh --tests installs Debian's etcd-server, or: apt-get install etcd-server)")
        })
}

impl Etcd {
    /// Starts etcd and waits until it serves; fails the test, saying how to install etcd,
    /// when it is missing.
    pub fn start() -> Etcd {
        let (client, peer) = (listen_port(), listen_port());
        let dir = std::env::temp_dir().join(format!("sfu-test-etcd-{client}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("etcd folder");
        let mut etcd = Etcd {
            child: None,
            dir,
            peer,
            url: format!("http://127.0.0.1:{client}"),
        };
        etcd.restart();
        etcd
    }

    /// Kills etcd (its data stays): the hosts are cut off from it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd again on the same ports and data, and waits until it serves.
    pub fn restart(&mut self) {
        self.kill();
        let log = self.dir.join("etcd.log");
        let peer = format!("http://127.0.0.1:{}", self.peer);
        let child = Command::new(etcd_binary())
            .arg("--name")
            .arg("test")
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .args([
                "--listen-client-urls",
                &self.url,
                "--advertise-client-urls",
                &self.url,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("test={peer}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("etcd log"))
            .spawn()
            .expect("start etcd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("ready to serve client requests") {
                return;
            }
            assert!(Instant::now() < deadline, "etcd did not start:\n{text}");
            blocking_pause(Duration::from_millis(50));
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts host `id` of the cluster on `etcd`, with `args` added; waits until it holds its
/// lease.
pub async fn host(etcd: &Etcd, id: &str, args: &[&str]) -> Sfu {
    let cluster_addr = format!("127.0.0.1:{}", listen_port());
    let mut all = vec![
        "--etcd-endpoints",
        &etcd.url,
        "--host-id",
        id,
        "--cluster-addr",
        &cluster_addr,
        "--cluster-secret",
        SECRET,
        "--monitor-token",
        MONITOR_TOKEN,
        "--cluster-lease-secs",
        "3",
    ];
    all.extend_from_slice(args);
    let sfu = Sfu::start(&all);
    assert!(
        sfu.wait_log("joined the cluster", Duration::from_secs(20))
            .await,
        "host {id} did not join the cluster:\n{}",
        sfu.log_text()
    );
    sfu
}

/// The media ports of the `index`th host a test starts (0-based): each host its own range,
/// so a test can tell which host's node a client's media goes to.
pub fn rtc_ports(index: usize) -> std::ops::RangeInclusive<u16> {
    let low = 50_000 + 1_000 * index as u16;
    low..=low + 999
}

/// Starts hosts `ids` on `etcd` (each with its own [`rtc_ports`]) and waits until each has a
/// link to every other one.
pub async fn hosts(etcd: &Etcd, ids: &[&str]) -> Vec<Sfu> {
    hosts_with(etcd, ids, &[]).await
}

/// [`hosts`], each started with `extra` too.
pub async fn hosts_with(etcd: &Etcd, ids: &[&str], extra: &[&str]) -> Vec<Sfu> {
    let mut started = Vec::new();
    for (index, id) in ids.iter().enumerate() {
        let ports = rtc_ports(index);
        let (low, high) = (ports.start().to_string(), ports.end().to_string());
        // `{host}` in an argument is the host's id (a folder of its own, say).
        let extra: Vec<String> = (extra.iter()).map(|a| a.replace("{host}", id)).collect();
        let mut args = vec!["--rtc-min-port", &low, "--rtc-max-port", &high];
        args.extend(extra.iter().map(String::as_str));
        started.push(host(etcd, id, &args).await);
    }
    let links = ids.len() - 1;
    for (sfu, id) in started.iter().zip(ids) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while sfu.log_text().matches("cluster link up").count() < links {
            assert!(
                Instant::now() < deadline,
                "host {id} did not link to the {links} others:\n{}",
                sfu.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    started
}

/// Waits (at most 10 s) until `host`'s view of the cluster lists `count` hosts with their
/// node (records are refreshed every second): only then are they offered for a spill.
pub async fn wait_listed(host: &Sfu, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let hosts = tokio::task::block_in_place(|| monitor(host, &["hosts"]));
        let listed = (hosts.as_array()).map_or(0, |h| h.iter().filter(|h| h["nodes"] == 1).count());
        if listed == count {
            return;
        }
        assert!(Instant::now() < deadline, "{hosts}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `monitor --json <args>` asked of `sfu`.
pub fn monitor(sfu: &Sfu, args: &[&str]) -> serde_json::Value {
    let url = sfu.monitor_url();
    let mut full = vec!["--url", url.as_str(), "--token", MONITOR_TOKEN];
    full.extend_from_slice(args);
    super::monitor_json(&full)
}

/// The value of metric `name` (without labels) on `sfu`'s `/metrics`.
pub fn metric(sfu: &Sfu, name: &str) -> Option<f64> {
    let page = super::http_get(sfu.port, "/metrics");
    page.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// The names of `room`'s participants, sorted, as `host`'s monitor lists them (the owner
/// answers, whichever host is asked).
pub fn participants(host: &Sfu, room: &str) -> Vec<String> {
    let detail = tokio::task::block_in_place(|| monitor(host, &["room", room]));
    let mut names: Vec<String> = detail["participants"]
        .as_array()
        .unwrap_or_else(|| panic!("no participants in {detail}"))
        .iter()
        .map(|p| p["displayName"].as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    names
}

/// One small worker per host (the supervisors' variables, for `scripts/cluster.sh`): two
/// peers fill it, so a room of three spans hosts.
pub const SMALL_ENV: &[(&str, &str)] = &[
    ("NODES", "1"),
    ("MAX_NODES", "1"),
    ("WORKERS_PER_NODE", "1"),
    ("MAX_CONSUMERS_PER_WORKER", "4"),
    ("RUST_LOG", "info,supervisor=debug"),
];

/// A port for a server of a test to listen on, below the kernel's ephemeral range (32768
/// and up): a port from that range, free when probed, may be taken by any outgoing
/// connection before the server binds it (CI saw `Address already in use`).
pub fn listen_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    loop {
        // Each test process starts at its own place in 21000..=31000.
        let _ = NEXT.compare_exchange(
            0,
            21_000 + (std::process::id() % 50) as u16 * 200,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        let port = NEXT.fetch_add(1, Ordering::Relaxed);
        if port > 31_000 {
            NEXT.store(21_000, Ordering::Relaxed);
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
