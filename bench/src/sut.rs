//! The system under test: our SFU (supervisor + nodes) or Janus, started fresh for each step,
//! pinned to its core with `taskset`, and sampled from `/proc` (CPU time, peak memory).

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

/// Which SFU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sfu {
    /// This project.
    Ours,
    /// Janus 1.1 VideoRoom.
    Janus,
}

impl Sfu {
    /// Its name in tables.
    pub fn label(self) -> &'static str {
        match self {
            Sfu::Ours => "ours",
            Sfu::Janus => "janus",
        }
    }
}

/// Where things are and which cores to use.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The release binaries (supervisor, node, loadgen).
    pub bin_dir: PathBuf,
    /// The repository (for bench/janus.sh).
    pub root: PathBuf,
    /// Core of the SFU under test.
    pub sfu_core: usize,
    /// Core of the loadgen.
    pub load_core: usize,
}

/// A running SFU.
pub struct Running {
    child: Child,
    /// Its signaling URL.
    pub url: String,
    work_dir: PathBuf,
}

const OUR_PORT: u16 = 18_000;
const JANUS_PORT: u16 = 18_188;

impl Running {
    /// Starts `sfu` on its core and waits until it listens; ours with `sfu_args` instead of
    /// one worker and no consumer cap, when given.
    pub fn start(sfu: Sfu, setup: &Setup, sfu_args: &[String]) -> anyhow::Result<Running> {
        let work_dir = std::env::temp_dir().join(format!("sfu-bench-{}", std::process::id()));
        fs::create_dir_all(&work_dir)?;
        let log = fs::File::create(work_dir.join(format!("{}.log", sfu.label())))?;
        let mut command = Command::new("taskset");
        command.args(["-c", &setup.sfu_core.to_string()]);
        let (port, url) = match sfu {
            Sfu::Ours => {
                command
                    .arg(setup.bin_dir.join("supervisor"))
                    .args(["--port", &OUR_PORT.to_string(), "--bind", "127.0.0.1"])
                    .args(["--nodes", "1", "--max-nodes", "1"])
                    .args(["--max-peers-per-room", "100000"]);
                if sfu_args.is_empty() {
                    // Measure the core, not our admission limits.
                    command.args([
                        "--workers-per-node",
                        "1",
                        "--max-consumers-per-worker",
                        "1000000",
                    ]);
                } else {
                    command.args(sfu_args);
                }
                command
                    .arg("--node-binary")
                    .arg(setup.bin_dir.join("node"))
                    // Every loadgen peer comes from 127.0.0.1: no per-address join limit.
                    .args(["--joins-per-minute-per-ip", "0"])
                    .env("RUST_LOG", "warn");
                (OUR_PORT, format!("ws://127.0.0.1:{OUR_PORT}/ws"))
            }
            Sfu::Janus => {
                command
                    .arg(setup.root.join("bench/janus.sh"))
                    .arg(work_dir.join("janus"))
                    .args([JANUS_PORT.to_string(), "20000".into(), "29999".into()]);
                (JANUS_PORT, format!("ws://127.0.0.1:{JANUS_PORT}"))
            }
        };
        let child = command
            .env_remove("TLS_MODE")
            .env_remove("PUBLIC_IP")
            .env_remove("JOIN_TOKEN")
            .env_remove("JOIN_SECRET")
            .env_remove("JOIN_PUBLIC_KEY")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", sfu.label()))?;
        let mut running = Running {
            child,
            url,
            work_dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = running.child.try_wait() {
                bail!(
                    "{} exited at start ({status}); see {}",
                    sfu.label(),
                    running.work_dir.display()
                );
            }
            if Instant::now() > deadline {
                running.stop();
                bail!("{} did not listen on {port} within 30 s", sfu.label());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Let the node pool (or Janus' plugins) settle before load arrives.
        std::thread::sleep(Duration::from_secs(1));
        Ok(running)
    }

    /// Pid of the root process (supervisor or janus).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time (clock ticks) of the root process and of all of its descendants together.
    pub fn cpu_ticks(&self) -> (u64, u64) {
        let pids = descendants(self.pid());
        let root = stat_ticks(self.pid()).unwrap_or(0);
        let all = pids.iter().filter_map(|&p| stat_ticks(p)).sum::<u64>() + root;
        (root, all)
    }

    /// CPU ticks of the processes below the root whose command is `comm` (our `recorder`).
    pub fn cpu_ticks_named(&self, comm: &str) -> u64 {
        descendants(self.pid())
            .into_iter()
            .filter(|p| {
                fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == comm)
            })
            .filter_map(stat_ticks)
            .sum()
    }

    /// Peak resident memory of the whole tree (sum of each process' VmHWM), in bytes.
    pub fn peak_rss(&self) -> u64 {
        self.tree_status("VmHWM:")
    }

    /// Resident memory of the whole tree now (sum of each process' VmRSS), in bytes.
    pub fn rss(&self) -> u64 {
        self.tree_status("VmRSS:")
    }

    fn tree_status(&self, field: &str) -> u64 {
        let mut pids = descendants(self.pid());
        pids.push(self.pid());
        pids.iter()
            .filter_map(|&p| status_kib(p, field))
            .sum::<u64>()
            * 1024
    }

    /// Stops it: SIGTERM, then SIGKILL after 5 s.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields start after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(String::from).collect())
}

/// utime + stime of `pid`.
fn stat_ticks(pid: u32) -> Option<u64> {
    let fields = stat_fields(pid)?;
    // After the name: state(0) ppid(1) … utime(11) stime(12).
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// A `kB` field of `/proc/PID/status` (`VmHWM:`, `VmRSS:`).
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Every process below `root`.
fn descendants(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Some(ppid) = stat_fields(pid).and_then(|f| f.get(1)?.parse::<u32>().ok()) {
            parents.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 on Linux).
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The machine, for the results' heading.
pub fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map_or(String::new(), |kib| format!(", {} GiB", kib / 1024 / 1024));
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpu}, {cores} cores{memory}, Linux {}", kernel.trim())
}

/// Whether `path` is an executable file.
pub fn executable(path: &Path) -> bool {
    path.is_file()
}
