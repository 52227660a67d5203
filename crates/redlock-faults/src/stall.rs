//! A stall detector: an OS thread that ticks every 5 ms and records every gap longer than
//! a threshold as an [`Op::Stall`] of the processes it watches.
//!
//! A process can be frozen without any nemesis: the machine is shared, and on two cores a
//! busy neighbour (a linker, a test suite) can keep a whole process — and the Redis servers —
//! off the CPU for hundreds of milliseconds. For the library that is exactly a process pause
//! (F8): a holder may wake up past its deadline. The checkers count such overruns apart
//! (`stall_overruns`) instead of blaming the harness discipline, exactly as they do for the
//! nemesis's SIGSTOP of a `lock-worker`; the fenced register must still refuse every stale
//! write, and the lease check is never relaxed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::clock::{mono_ns, nanos};
use crate::history::{Op, Recorder};

/// A running detector; stops when dropped.
#[derive(Debug)]
pub struct StallDetector {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StallDetector {
    /// Starts watching: a gap between ticks longer than `threshold` is recorded through
    /// `rec` as a stall of `processes`.
    pub fn start(rec: Recorder, processes: Vec<String>, threshold: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let limit = nanos(threshold);
        let thread = std::thread::Builder::new()
            .name("stall-detector".to_owned())
            .spawn(move || {
                let mut last = mono_ns();
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(5));
                    let now = mono_ns();
                    if now.saturating_sub(last) > limit {
                        rec.record_at(
                            now,
                            Op::Stall {
                                from: last,
                                to: now,
                                processes: processes.clone(),
                            },
                        );
                    }
                    last = now;
                }
            })
            .ok();
        Self { stop, thread }
    }
}

impl Drop for StallDetector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
