//! Pure retry schedule: how long to sleep between acquisition attempts.
//!
//! Redlock asks clients to retry "after a random delay in order to try to desynchronize
//! multiple clients trying to acquire the lock for the same resource at the same time"
//! (Redlock spec, "Retry on Failure"). The random number is passed in, so this stays pure.

use std::time::Duration;

/// `delay ± jitter`, with `unit` a uniform sample from `[0, 1)`: the result lies in
/// `[delay − jitter, delay + jitter)`, saturating at zero.
pub(crate) fn retry_sleep(delay: Duration, jitter: Duration, unit: f64) -> Duration {
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.5
    };
    let low = delay.saturating_sub(jitter);
    let span = delay.saturating_add(jitter).saturating_sub(low);
    low.saturating_add(span.mul_f64(unit))
}

/// Attempts allowed by a retry count: the first attempt plus `retry_count` retries.
pub(crate) const fn attempts(retry_count: u32) -> u32 {
    retry_count.saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn default_schedule_spans_100_to_300_ms() {
        let d = Duration::from_millis(200);
        let j = Duration::from_millis(100);
        assert_eq!(retry_sleep(d, j, 0.0), Duration::from_millis(100));
        assert_eq!(retry_sleep(d, j, 0.5), Duration::from_millis(200));
        assert!(retry_sleep(d, j, 0.999_999) < Duration::from_millis(300));
    }

    #[test]
    fn attempts_count_the_first_one() {
        assert_eq!(attempts(0), 1);
        assert_eq!(attempts(3), 4);
        assert_eq!(attempts(u32::MAX), u32::MAX);
    }

    proptest! {
        #[test]
        fn sleep_stays_within_jitter(d in 0u64..1_000_000, j in 0u64..1_000_000, u in 0.0f64..1.0) {
            let (d, j) = (Duration::from_micros(d), Duration::from_micros(j));
            let s = retry_sleep(d, j, u);
            prop_assert!(s >= d.saturating_sub(j));
            prop_assert!(s <= d.saturating_add(j));
        }
    }
}
