//! The Debian package as an operator uses it: `scripts/package.sh` packages the tests' build,
//! `dpkg -i` installs it on this machine, the files, the `sfu` user and the unit are checked
//! (`systemd-analyze verify`), the supervisor runs as the unit's `ExecStart` does (its user,
//! its env file, its runtime folder) and a loadgen call goes through it; an upgrade over the
//! running install keeps the operator's settings and the calls; `dpkg -r` and `--purge` leave
//! nothing behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::process::output_within;
use crate::support::{blocking_pause, free_port, http_get, signal};

const UNIT: &str = "/lib/systemd/system/sfu.service";
const ENV_FILE: &str = "/etc/sfu/sfu.env";

/// Runs `program args`, panicking with its output unless it succeeds; returns its stdout.
fn run(program: &str, args: &[&str]) -> String {
    let output = output_within(
        Command::new(program).args(args),
        Duration::from_secs(120),
        program,
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{said}"
    );
    said
}

/// `scripts/package.sh` on the tests' own build, at `version`.
fn package(version: &str, out: &Path) -> PathBuf {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_supervisor"))
        .parent()
        .expect("the build's folder");
    let script = crate::browser::repo().join("scripts/package.sh");
    let printed = run(
        script.to_str().expect("path"),
        &[
            "--bin-dir",
            bin_dir.to_str().expect("path"),
            "--version",
            version,
            "--out",
            out.to_str().expect("path"),
            "--compression",
            "zstd",
        ],
    );
    // Its one line of stdout: the path (the rest of `printed` is its stderr).
    let deb = printed
        .lines()
        .find(|l| l.ends_with(".deb") && !l.contains(' '))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no .deb path printed:\n{printed}"));
    assert!(deb.is_file(), "{printed}");
    deb
}

/// Removes the package, the user and the runtime folder, even when the test fails midway.
struct Uninstall;

impl Drop for Uninstall {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "sfu"]).output();
        let _ = Command::new("userdel").arg("sfu").output();
        let _ = std::fs::remove_dir_all("/var/lib/sfu");
        let _ = std::fs::remove_dir_all("/run/sfu");
        let _ = std::fs::remove_dir_all("/var/cache/sfu");
    }
}

/// The values of `key=` lines in the unit's `[Service]`.
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_string)
        .collect()
}

/// The variables of an environment file as systemd reads it: `NAME=value` lines.
fn env_vars(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The supervisor started as the unit starts it, with its log in `log`; killed when dropped.
struct Service {
    child: Child,
    log: PathBuf,
}

impl Service {
    fn start(log: &Path) -> Service {
        let unit = std::fs::read_to_string(UNIT).expect("the installed unit");
        let exec_start = unit_values(&unit, "ExecStart").join("");
        let user = unit_values(&unit, "User").join("");
        let group = unit_values(&unit, "Group").join("");
        let env_file = unit_values(&unit, "EnvironmentFile").join("");
        assert_eq!(env_file, ENV_FILE);
        // What systemd gives it: a PATH, the unit's Environment= lines, then the env file.
        let mut env = BTreeMap::from([(
            "PATH".to_string(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        )]);
        for line in unit_values(&unit, "Environment") {
            env.extend(env_vars(&line));
        }
        env.extend(env_vars(
            &std::fs::read_to_string(&env_file).expect("the env file"),
        ));
        // RuntimeDirectory=sfu and CacheDirectory=sfu, made as systemd makes them.
        assert_eq!(unit_values(&unit, "RuntimeDirectory"), ["sfu"]);
        assert_eq!(unit_values(&unit, "CacheDirectory"), ["sfu"]);
        for folder in ["/run/sfu", "/var/cache/sfu"] {
            std::fs::create_dir_all(folder).expect(folder);
            run("chown", &[&format!("{user}:{group}"), folder]);
            run("chmod", &["0700", folder]);
        }

        let argv: Vec<&str> = exec_start.split_whitespace().collect();
        let log_file = std::fs::File::create(log).expect("log");
        let child = Command::new("setpriv")
            .arg(format!("--reuid={user}"))
            .arg(format!("--regid={group}"))
            .arg("--init-groups")
            .arg("--")
            .args(&argv)
            .env_clear()
            .envs(&env)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file)
            .spawn()
            .expect("setpriv");
        let mut service = Service {
            child,
            log: log.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !service.log_text().contains("listening on") {
            let exited = service.child.try_wait().ok().flatten();
            assert!(
                Instant::now() < deadline && exited.is_none(),
                "the installed supervisor did not start:\n{}",
                service.log_text()
            );
            blocking_pause(Duration::from_millis(100));
        }
        service
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its node processes: (pid, executable, uid).
    fn nodes(&self) -> Vec<(u32, String, String)> {
        self.children("node")
    }

    /// Its child processes whose command is `comm`: (pid, executable, uid).
    fn children(&self, comm: &str) -> Vec<(u32, String, String)> {
        let comm = format!("({comm})");
        let mut nodes = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // The parent pid is the second field after the `(comm)`.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid != Some(self.child.id()) || !stat.contains(&comm) {
                continue;
            }
            let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let uid = std::fs::read_to_string(format!("/proc/{pid}/status"))
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next().map(str::to_string))
                .unwrap_or_default();
            nodes.push((pid, exe, uid));
        }
        nodes
    }

    fn stop(mut self) {
        // What systemctl stop does (KillMode=mixed): SIGTERM to the supervisor.
        signal(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().ok().flatten().is_none() {
            assert!(Instant::now() < deadline, "did not stop on SIGTERM");
            blocking_pause(Duration::from_millis(100));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A 4-second call of 2 publishers and a subscriber through the installed loadgen.
fn call(port: u16, log: &str) {
    call_for(port, 4, log);
}

/// `sfu-monitor --json <args>` against the installed SFU: its data, or its error line.
fn monitor(port: u16, token: &str, args: &[&str]) -> Result<serde_json::Value, String> {
    let url = format!("ws://127.0.0.1:{port}/monitor");
    let output = output_within(
        Command::new("/usr/bin/sfu-monitor")
            .args(["--url", &url, "--token", token, "--json"])
            .args(args),
        Duration::from_secs(30),
        "sfu-monitor",
    );
    if output.status.success() {
        serde_json::from_slice(&output.stdout).map_err(|e| e.to_string())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// A call recorded (`sfu-monitor record start|stop`) until its 4 tracks have been written
/// to for a second: the installed recorder writes them under the unit's RECORD_DIR, as the
/// service's user.
fn recorded_call(port: u16, token: &str, log: &str) -> monitor_api::RecordingManifest {
    let log = log.to_string();
    let call = std::thread::spawn(move || call_for(port, 15, &log));
    let deadline = Instant::now() + Duration::from_secs(20);
    let started = loop {
        match monitor(port, token, &["record", "start", "load-0"]) {
            Ok(started) => break started,
            Err(e) => assert!(
                e.contains("no room") && Instant::now() < deadline,
                "record start: {e}"
            ),
        }
        blocking_pause(Duration::from_millis(200));
    };
    let started: monitor_api::RecordingManifest =
        serde_json::from_value(started).expect("a manifest");
    // The installed recorder's first start scans GStreamer's plugins into the unit's empty
    // cache, and the publishers' producers come after the room: wait for the files rather
    // than for a fixed time.
    let deadline = Instant::now() + Duration::from_secs(10);
    let written = |folder: &str| {
        std::fs::read_dir(folder)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|f| f.file_name().to_string_lossy().ends_with(".webm"))
            .filter(|f| f.metadata().is_ok_and(|m| m.len() > 0))
            .count()
    };
    while written(&started.folder) < 4 && Instant::now() < deadline {
        blocking_pause(Duration::from_millis(200));
    }
    blocking_pause(Duration::from_secs(1));
    let stopped = monitor(port, token, &["record", "stop", "load-0"]).expect("record stop");
    call.join().expect("the call");
    serde_json::from_value(stopped).expect("a manifest")
}

/// A call of `seconds` of 2 publishers and a subscriber through the installed loadgen.
fn call_for(port: u16, seconds: u32, log: &str) {
    let seconds = seconds.to_string();
    let url = format!("ws://127.0.0.1:{port}/ws");
    let output = output_within(
        Command::new("/usr/bin/sfu-loadgen").args([
            "--url",
            &url,
            "--rooms",
            "1",
            "--publishers",
            "2",
            "--subscribers",
            "1",
            "--duration",
            &seconds,
            "--json",
            "--quiet",
        ]),
        Duration::from_secs(60),
        "sfu-loadgen",
    );
    let summary = crate::load::summary(&output);
    println!(
        "call through the installed SFU: {} streams, {} packets, loss {} %",
        summary["streams_received"], summary["packets_received"], summary["loss_pct"]
    );
    let expected = summary["streams_expected"].as_u64().unwrap_or(0);
    assert!(expected > 0, "{summary:#}");
    crate::load::assert_complete(&summary, 3, expected, 5.0, log);
}

#[test]
fn the_debian_package_installs_runs_as_its_unit_upgrades_live_and_removes_cleanly() {
    let out = std::env::temp_dir().join(format!("sfu-test-package-{}", std::process::id()));
    let _ = Command::new("dpkg").args(["--purge", "sfu"]).output();
    let _uninstall = Uninstall;
    let first = package("0.1.0~test1", &out);
    let second = package("0.1.0~test2", &out);

    // Install: the files, the user, the unit.
    println!("{}", run("dpkg", &["-i", first.to_str().expect("path")]));
    for file in [
        "/usr/bin/sfu-supervisor",
        "/usr/bin/sfu-monitor",
        "/usr/bin/sfu-loadgen",
        "/usr/lib/sfu/node",
        "/usr/lib/sfu/recorder",
    ] {
        let mode = run("stat", &["-c", "%a %U", file]);
        assert_eq!(mode.trim(), "755 root", "{file}");
    }
    assert_eq!(
        run("stat", &["-c", "%a %U:%G", ENV_FILE]).trim(),
        "640 root:sfu",
        "the env file may hold settings the service alone reads"
    );
    assert_eq!(
        run("stat", &["-c", "%U:%G", "/var/lib/sfu/recordings"]).trim(),
        "sfu:sfu"
    );
    let user = run("getent", &["passwd", "sfu"]);
    assert!(
        user.trim().ends_with(":/var/lib/sfu:/usr/sbin/nologin"),
        "a system user without a shell: {user}"
    );
    let uid: u32 = user
        .split(':')
        .nth(2)
        .and_then(|u| u.parse().ok())
        .expect("uid");
    assert!(uid < 1000, "a system uid: {uid}");
    for page in ["sfu-supervisor", "sfu-monitor", "sfu-loadgen"] {
        let path = run("man", &["-w", page]);
        assert!(path.contains(&format!("man1/{page}.1")), "{path}");
    }
    let verified = run("systemd-analyze", &["verify", UNIT]);
    println!("systemd-analyze verify {UNIT}: {verified:?}");
    assert!(!verified.contains("sfu.service"), "{verified}");
    let unit = std::fs::read_to_string(UNIT).expect("unit");
    for hardening in [
        "Restart=on-failure",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "ReadWritePaths=/var/lib/sfu/recordings",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
    ] {
        assert!(
            unit.contains(hardening),
            "{hardening} missing from the unit"
        );
    }
    let env_file = std::fs::read_to_string(ENV_FILE).expect("env file");
    assert!(env_file.contains("\n#PORT=8000\n"), "{env_file}");
    assert!(env_vars(&env_file).is_empty(), "every setting is commented");

    // The operator's settings: a port, and the monitor token from a file of its own.
    let port = free_port();
    let token = "package-test-monitor-token-0123456789";
    std::fs::write("/etc/sfu/monitor-token", token).expect("token file");
    run("chgrp", &["sfu", "/etc/sfu/monitor-token"]);
    run("chmod", &["0640", "/etc/sfu/monitor-token"]);
    let edited = format!("{env_file}\nPORT={port}\nMONITOR_TOKEN_FILE=/etc/sfu/monitor-token\n");
    std::fs::write(ENV_FILE, &edited).expect("edit the env file");

    let log = out.join("service.log");
    let service = Service::start(&log);
    let recording = recorded_call(port, token, &service.log_text());
    println!("recorded through the installed SFU: {recording:?}");
    assert!(
        recording
            .folder
            .starts_with("/var/lib/sfu/recordings/load-0/"),
        "{recording:?}"
    );
    assert_eq!(recording.error, None);
    assert_eq!(recording.tracks.len(), 4, "2 publishers' audio and video");
    for track in &recording.tracks {
        let file = Path::new(&recording.folder).join(&track.file);
        assert_eq!(
            run("stat", &["-c", "%U", file.to_str().expect("path")]).trim(),
            "sfu",
            "{track:?}"
        );
    }
    let nodes = service.nodes();
    let sfu_uid = uid.to_string();
    assert!(
        !nodes.is_empty()
            && nodes
                .iter()
                .all(|(_, exe, u)| exe == "/usr/lib/sfu/node" && *u == sfu_uid),
        "the nodes run /usr/lib/sfu/node as sfu: {nodes:?}"
    );
    let recorders = service.children("recorder");
    assert!(
        recorders.len() == 1
            && recorders
                .iter()
                .all(|(_, exe, u)| exe == "/usr/lib/sfu/recorder" && *u == sfu_uid),
        "the recorder runs /usr/lib/sfu/recorder as sfu: {recorders:?}"
    );
    let monitor = run(
        "/usr/bin/sfu-monitor",
        &[
            "--url",
            &format!("ws://127.0.0.1:{port}/monitor"),
            "--token",
            token,
            "--json",
            "summary",
        ],
    );
    assert!(monitor.contains("\"nodes\""), "{monitor}");

    // Upgrade over the running install: the settings stay, the running SFU serves on, and a
    // node replaced now runs the new binary.
    println!("{}", run("dpkg", &["-i", second.to_str().expect("path")]));
    let status = run("dpkg-query", &["-W", "-f", "${Version} ${Status}", "sfu"]);
    assert_eq!(status, "0.1.0~test2 install ok installed");
    assert_eq!(
        std::fs::read_to_string(ENV_FILE).expect("env file"),
        edited,
        "the upgrade kept the operator's env file"
    );
    assert!(http_get(port, "/healthz").contains("200 OK"));
    let (old_node, old_exe, _) = service.nodes().into_iter().next().expect("a node");
    assert!(
        old_exe.ends_with("(deleted)"),
        "{old_exe}: the old file was replaced"
    );
    signal(old_node, "KILL");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !service
        .nodes()
        .iter()
        .any(|(pid, exe, _)| *pid != old_node && exe == "/usr/lib/sfu/node")
    {
        assert!(
            Instant::now() < deadline,
            "no new node:\n{}",
            service.log_text()
        );
        blocking_pause(Duration::from_millis(100));
    }
    call(port, &service.log_text());
    // What the unit's try-restart does after an upgrade.
    service.stop();
    let service = Service::start(&out.join("service-upgraded.log"));
    call(port, &service.log_text());
    service.stop();

    // Remove: the program goes, the settings stay; purge: they go too.
    println!("{}", run("dpkg", &["-r", "sfu"]));
    for gone in ["/usr/bin/sfu-supervisor", "/usr/lib/sfu/node", UNIT] {
        assert!(!Path::new(gone).exists(), "{gone} left after dpkg -r");
    }
    assert!(Path::new(ENV_FILE).exists(), "dpkg -r keeps the settings");
    std::fs::remove_file("/etc/sfu/monitor-token").expect("the operator's token file");
    println!("{}", run("dpkg", &["--purge", "sfu"]));
    for gone in ["/etc/sfu", "/var/cache/sfu"] {
        assert!(!Path::new(gone).exists(), "{gone} left after dpkg --purge");
    }
    // Recordings are the operator's: a purge keeps them (and nothing else).
    assert!(
        Path::new(&recording.folder).join("manifest.json").exists(),
        "dpkg --purge removed the recordings"
    );
    let left: Vec<String> = std::fs::read_dir("/var/lib/sfu")
        .expect("/var/lib/sfu")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["recordings"], "only the recordings stay");
    std::fs::remove_dir_all("/var/lib/sfu").expect("the recordings");
    let _ = std::fs::remove_dir_all(&out);
}
