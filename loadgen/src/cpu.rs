//! The loadgen's own CPU use: a loadgen that saturates its cores measures itself, not the SFU.

use std::time::{Duration, Instant};

use nix::sys::resource::{getrusage, UsageWho};

/// A CPU-time reading of this process.
#[derive(Clone, Copy, Debug)]
pub struct CpuSample {
    at: Instant,
    cpu: Duration,
}

fn process_cpu() -> Duration {
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(usage) => {
            let tv = |t: nix::sys::time::TimeVal| {
                Duration::from_secs(t.tv_sec().max(0) as u64)
                    + Duration::from_micros(t.tv_usec().max(0) as u64)
            };
            tv(usage.user_time()) + tv(usage.system_time())
        }
        Err(_) => Duration::ZERO,
    }
}

impl CpuSample {
    /// Now.
    pub fn now() -> CpuSample {
        CpuSample {
            at: Instant::now(),
            cpu: process_cpu(),
        }
    }

    /// CPU since `earlier`, in percent of one core.
    pub fn percent_since(&self, earlier: &CpuSample) -> f64 {
        let wall = self.at.saturating_duration_since(earlier.at).as_secs_f64();
        if wall <= 0.0 {
            return 0.0;
        }
        self.cpu.saturating_sub(earlier.cpu).as_secs_f64() / wall * 100.0
    }
}

/// Cores this process may run on (its affinity, e.g. under `taskset`).
pub fn usable_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Above this share of its cores the loadgen is the bottleneck.
pub const SATURATION_PERCENT: f64 = 85.0;
