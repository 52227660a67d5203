//! Benchmark scenarios for tokio-redlock (work in progress).
