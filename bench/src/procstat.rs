//! Memory and CPU of the server under test, from `/proc`.
//!
//! Peak memory is the larger of two measures: the sum of `VmRSS` sampled every few
//! milliseconds, and the sum of `VmHWM` after resetting it (writing `5` to `clear_refs`) when
//! the workload starts. For a single-process server `VmHWM` is exact; for a server with
//! several processes (nginx's master and workers) the sum of their peaks is an upper bound.
//! CPU time is `utime + stime` from `/proc/PID/stat`, all threads included.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

const SAMPLE_EVERY: Duration = Duration::from_millis(5);

/// Watches a set of processes while a workload runs.
#[derive(Debug)]
pub struct Watch {
    pids: Vec<u32>,
    clk_tck: u64,
    cpu_start: u64,
    stop: Arc<AtomicBool>,
    sampler: Option<JoinHandle<u64>>,
    hwm_reset: bool,
}

/// What a watch measured, in KiB and seconds.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub peak_rss_kib: u64,
    pub cpu_seconds: f64,
}

impl Watch {
    pub fn start(pids: Vec<u32>, clk_tck: u64) -> Self {
        let hwm_reset = pids
            .iter()
            .all(|pid| std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok());
        let cpu_start = cpu_ticks(&pids);
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = (!pids.is_empty()).then(|| {
            let (pids, stop) = (pids.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut peak = 0;
                while !stop.load(Ordering::Relaxed) {
                    peak = peak.max(status_sum(&pids, "VmRSS:"));
                    std::thread::sleep(SAMPLE_EVERY);
                }
                peak
            })
        });
        Watch {
            pids,
            clk_tck: clk_tck.max(1),
            cpu_start,
            stop,
            sampler,
            hwm_reset,
        }
    }

    pub fn finish(mut self) -> Usage {
        self.stop.store(true, Ordering::Relaxed);
        let sampled = self.sampler.take().and_then(|h| h.join().ok()).unwrap_or(0);
        let hwm = if self.hwm_reset {
            status_sum(&self.pids, "VmHWM:")
        } else {
            0
        };
        let ticks = cpu_ticks(&self.pids).saturating_sub(self.cpu_start);
        Usage {
            peak_rss_kib: sampled.max(hwm),
            cpu_seconds: ticks as f64 / self.clk_tck as f64,
        }
    }
}

/// Sum over the processes of one `/proc/PID/status` field, in KiB.
pub fn status_sum(pids: &[u32], field: &str) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|status| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum()
}

/// utime + stime of the processes, in clock ticks.
fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            // The command name may hold spaces; fields are counted after its closing ')'.
            let rest = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // rest starts at field 3 (state); utime is field 14, stime field 15.
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some(utime + stime)
        })
        .sum()
}
