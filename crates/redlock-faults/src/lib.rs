//! Jepsen-style fault injection for `tokio-redlock`.
//!
//! The method of `safety-and-testing.md` §3–§4: run real `redis-server` masters on loopback
//! behind fault proxies, let contending workers lock, write to a fenced register and
//! release while a **nemesis** injects faults from a seeded schedule, record everything as a
//! **history** stamped with one system-wide monotonic clock, and let **checkers** decide
//! whether the history is one the library promised.
//!
//! - [`history`]: events as JSON lines ([`history::Recorder`], [`history::History`]);
//! - [`check`]: lease overlap, critical sections vs deadlines, fencing tokens, the fenced
//!   register's "never A, B, A", liveness, leftovers and leaks; for the primitives beyond
//!   the mutex, one writer at most, no writer beside a reader, at most k permit holders,
//!   multi-resource locks exclusive on every member and never partial;
//! - [`register`]: the fenced register (in process, and over TCP for `lock-worker`s);
//! - [`worker`]: the acquire / critical section / release loop, for mutexes, multi-resource
//!   locks, readers and writers, and semaphore permits;
//! - [`nemesis`]: the fault catalogue and seeded schedules;
//! - [`harness`]: masters and proxies (tokio-redlock's own test support, included by path);
//! - [`scenario`]: the scenarios, one run each, and their verdicts;
//! - [`stall`]: a detector of involuntary process stalls (a busy shared machine);
//! - [`cli`]: the `lock-worker` process.
//!
//! Two tiers run it: `tests/ci.rs` (every scenario for a few seconds, in CI) and the
//! `redlock-soak` binary (long randomized runs). See `docs/RELIABILITY.md`.

pub mod check;
pub mod cli;
pub mod clock;
pub mod harness;
pub mod history;
pub mod nemesis;
pub mod register;
pub mod rng;
pub mod scenario;
pub mod stall;
pub mod worker;

pub use check::{Check, Report};
pub use scenario::{Outcome, RunConfig, Spec, catalogue, find, run};
