//! The one clock of every history: `CLOCK_MONOTONIC` in nanoseconds.
//!
//! The clock is system-wide, so events stamped by the test process and by `lock-worker`
//! processes on the same machine merge into one history without any correction.

use std::time::Duration;

use nix::time::{ClockId, clock_gettime};

/// Now, as `CLOCK_MONOTONIC` nanoseconds (0 if the clock cannot be read, which Linux never
/// does for this clock).
pub fn mono_ns() -> u64 {
    clock_gettime(ClockId::CLOCK_MONOTONIC).map_or(0, |ts| {
        let secs = u64::try_from(ts.tv_sec()).unwrap_or(0);
        let nanos = u64::try_from(ts.tv_nsec()).unwrap_or(0);
        secs.saturating_mul(1_000_000_000).saturating_add(nanos)
    })
}

/// Whole nanoseconds of `d`, saturating.
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A tokio instant (such as a lock's deadline) on the monotonic-ns scale of [`mono_ns`].
///
/// `tokio::time::Instant` is `std::time::Instant`, itself `CLOCK_MONOTONIC` on Linux, but
/// opaque: the offset to now is measured on both scales at once (error: well under 1 µs of
/// the two clock reads).
pub fn instant_ns(at: tokio::time::Instant) -> u64 {
    let now = tokio::time::Instant::now();
    let now_ns = mono_ns();
    if at >= now {
        now_ns.saturating_add(nanos(at.saturating_duration_since(now)))
    } else {
        now_ns.saturating_sub(nanos(now.saturating_duration_since(at)))
    }
}

/// Milliseconds between two stamps (`to − from`, negative when `to` is earlier), for messages.
pub fn ms_between(from: u64, to: u64) -> f64 {
    let (sign, d) = if to >= from {
        (1.0, to.saturating_sub(from))
    } else {
        (-1.0, from.saturating_sub(to))
    };
    sign * Duration::from_nanos(d).as_secs_f64() * 1_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_land_on_the_monotonic_scale() {
        let before = mono_ns();
        let at = instant_ns(tokio::time::Instant::now() + Duration::from_millis(250));
        let after = mono_ns();
        assert!(at >= before + 249_000_000, "{at} vs {before}");
        assert!(at <= after + 251_000_000, "{at} vs {after}");
        let past = instant_ns(tokio::time::Instant::now() - Duration::from_millis(10));
        assert!(past < mono_ns());
    }

    #[test]
    fn milliseconds_are_signed() {
        assert!((ms_between(1_000_000, 3_000_000) - 2.0).abs() < 1e-9);
        assert!((ms_between(3_000_000, 1_000_000) + 2.0).abs() < 1e-9);
    }
}
