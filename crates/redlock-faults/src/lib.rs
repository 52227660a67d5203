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
//!   register's "never A, B, A", liveness, leftovers and leaks;
//! - [`register`]: the fenced register (in process, and over TCP for `lock-worker`s);
//! - [`worker`]: the acquire / critical section / release loop;
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

/// Parses `90s`, `20m`, `1h`, `1500ms` or a bare number of seconds.
///
/// # Errors
///
/// When the text is not one of those forms.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let (num, unit) = t
        .find(|c: char| !c.is_ascii_digit())
        .map_or((t, ""), |i| t.split_at(i));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration `{text}`: use e.g. 90s, 20m, 1h, 500ms"))?;
    let secs = |m: u64| std::time::Duration::from_secs(n.saturating_mul(m));
    match unit {
        "" | "s" => Ok(secs(1)),
        "m" | "min" => Ok(secs(60)),
        "h" => Ok(secs(3_600)),
        "ms" => Ok(std::time::Duration::from_millis(n)),
        _ => Err(format!(
            "invalid duration unit in `{text}`: use ms, s, m or h"
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn durations_parse() {
        assert_eq!(super::parse_duration("20m"), Ok(Duration::from_secs(1_200)));
        assert_eq!(super::parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(super::parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(super::parse_duration("1h"), Ok(Duration::from_secs(3_600)));
        assert_eq!(
            super::parse_duration("250ms"),
            Ok(Duration::from_millis(250))
        );
        assert!(super::parse_duration("ten").is_err());
        assert!(super::parse_duration("5d").is_err());
    }
}
