//! Fault-injection suite for tokio-redlock (work in progress).
