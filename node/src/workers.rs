//! The node's mediasoup workers, one per core it is given, and their CPU use.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use mediasoup::prelude::*;
use mediasoup::worker::{WorkerLogLevel, WorkerLogTag};

use crate::media_config::MediaListen;

/// One running worker and the id of the thread it runs on.
pub struct WorkerSlot {
    /// The mediasoup worker.
    pub worker: Worker,
    /// Its one UDP and one TCP port that every WebRTC transport on it shares, in the
    /// one-port-per-worker mode (`--rtc-port`); `None` when each transport takes its own.
    pub webrtc_server: Option<WebRtcServer>,
    /// Linux thread id of the worker's event loop (0 until the thread has started).
    thread_id: Arc<AtomicI32>,
}

impl WorkerSlot {
    /// CPU time (user + system) the worker's thread has used, in milliseconds: what
    /// mediasoup's resource usage reports, read from `/proc` because the worker runs as a
    /// thread of this process.
    pub fn cpu_time_ms(&self) -> u64 {
        let tid = self.thread_id.load(Ordering::Relaxed);
        if tid == 0 {
            return 0;
        }
        std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))
            .ok()
            .and_then(|stat| thread_cpu_ticks(&stat))
            .map(|ticks| ticks * 1000 / USER_HZ)
            .unwrap_or(0)
    }
}

/// utime + stime, in clock ticks, of a `/proc/<pid>/task/<tid>/stat` line.
fn thread_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may contain spaces; fields are counted after its ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After ')': state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second of `/proc` times: fixed at 100 for user space on Linux.
const USER_HZ: u64 = 100;

/// Starts `count` workers whose sockets take ports from `ports`; with `listen.port`, worker
/// `i` also listens on that port + `i` (UDP and TCP) for every transport.
pub async fn start_workers(
    manager: &WorkerManager,
    count: u32,
    listen: &MediaListen,
) -> anyhow::Result<Vec<WorkerSlot>> {
    let mut slots = Vec::new();
    for index in 0..count {
        let thread_id = Arc::new(AtomicI32::new(0));
        let mut settings = WorkerSettings::default();
        settings.log_level = WorkerLogLevel::Warn;
        settings.log_tags = vec![WorkerLogTag::Ice, WorkerLogTag::Dtls, WorkerLogTag::Srtp];
        settings.rtc_port_range = listen.ports.clone();
        settings.thread_initializer = Some(Arc::new({
            let thread_id = thread_id.clone();
            move || thread_id.store(nix::unistd::gettid().as_raw(), Ordering::Relaxed)
        }));
        let worker = manager
            .create_worker(settings)
            .await
            .map_err(|e| anyhow::anyhow!("mediasoup worker {index} failed to start: {e}"))?;
        let webrtc_server = match listen.worker_port(index) {
            Some(port) => Some(
                worker
                    .create_webrtc_server(listen.webrtc_server_options(port))
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "mediasoup worker {index} cannot listen on {}:{port} (UDP and TCP): {e}",
                            listen.ip
                        )
                    })?,
            ),
            None => None,
        };
        slots.push(WorkerSlot {
            worker,
            webrtc_server,
            thread_id,
        });
    }
    Ok(slots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_ticks_of_a_thread_with_spaces_in_its_name() {
        let stat = "4242 (mediasoup worker) S 1 2 3 4 5 6 7 8 9 10 120 30 0 0 20 0 1 0";
        assert_eq!(thread_cpu_ticks(stat), Some(150));
        assert_eq!(thread_cpu_ticks("garbage"), None);
    }

    #[test]
    fn own_thread_has_readable_cpu_time() {
        let tid = nix::unistd::gettid().as_raw();
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
        assert!(thread_cpu_ticks(&stat).is_some());
    }
}
