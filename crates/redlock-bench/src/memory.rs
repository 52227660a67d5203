//! Resident memory of this process, from `/proc/self/status` (Linux).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;

/// How often the sampler reads `VmRSS`.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// A `kB` field of `/proc/self/status` (`VmRSS`, `VmHWM`), in KiB; `None` off Linux.
pub fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// Resets the kernel's peak-RSS mark (`VmHWM`) to the current RSS (`echo 5 >
/// /proc/self/clear_refs`, Linux ≥ 4.0). False when that is not possible.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Peak RSS over a stretch of time: the kernel's `VmHWM` after a reset, and `VmRSS`
/// sampled every 10 ms as a fallback; the larger of the two is reported.
pub(crate) struct PeakRss {
    reset: bool,
    stop: Arc<AtomicBool>,
    sampler: JoinHandle<u64>,
}

impl PeakRss {
    /// Starts measuring now.
    pub(crate) fn start() -> Self {
        let reset = reset_peak();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let sampler = tokio::spawn(async move {
            let mut peak = 0u64;
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(status_kb("VmRSS").unwrap_or(0));
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
            peak
        });
        Self {
            reset,
            stop,
            sampler,
        }
    }

    /// The peak since [`start`](Self::start), in KiB; `None` when nothing could be read.
    pub(crate) async fn finish(self) -> Option<u64> {
        self.stop.store(true, Ordering::Relaxed);
        let sampled = self.sampler.await.unwrap_or(0);
        let hwm = if self.reset {
            status_kb("VmHWM").unwrap_or(0)
        } else {
            0
        };
        Some(sampled.max(hwm)).filter(|kb| *kb > 0)
    }
}
