//! Percentiles of samples and the median/range of per-round figures.

use hdrhistogram::Histogram;

/// `n` as a float, for averages and rates.
#[allow(clippy::as_conversions)] // counts stay far below 2^52, where f64 is exact
pub(crate) fn float(n: usize) -> f64 {
    n as f64
}

/// `n` as a float (u64 counts and microseconds).
#[allow(clippy::as_conversions)] // values stay far below 2^52, where f64 is exact
pub(crate) fn float64(n: u64) -> f64 {
    n as f64
}

/// The distribution of latency samples (µs) in an HDR histogram with 3 significant digits
/// (exact below 2048 µs, within 0.1 % above) — the same implementation as `redlock bench`
/// and the demo use.
#[derive(Clone, Debug)]
pub struct Percentiles(Histogram<u64>);

impl Percentiles {
    /// The distribution of `samples`; `None` when there are none.
    pub fn of(samples: &[u64]) -> Option<Self> {
        // 1 µs to 1 h (longer samples count as 1 h), 3 significant digits.
        let mut histogram = Histogram::new_with_bounds(1, 3_600_000_000, 3).ok()?;
        for &v in samples {
            histogram.saturating_record(v);
        }
        (!histogram.is_empty()).then_some(Self(histogram))
    }

    /// The `q`-quantile (`0 ≤ q ≤ 1`), nearest rank.
    pub fn at(&self, q: f64) -> u64 {
        self.0.value_at_quantile(q.clamp(0.0, 1.0))
    }
}

/// Median and range of one figure over rounds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Median of the per-round values (mean of the middle two for an even count).
    pub median: f64,
    /// Smallest per-round value.
    pub min: f64,
    /// Largest per-round value.
    pub max: f64,
    /// Rounds that produced a value.
    pub rounds: usize,
}

impl Summary {
    /// The summary of per-round values; `None` when there are none (or only NaNs).
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let mid = n.checked_div(2)?;
        let upper = *v.get(mid)?;
        let median = if n.is_multiple_of(2) {
            let lower = *v.get(mid.checked_sub(1)?)?;
            (lower + upper) / 2.0
        } else {
            upper
        };
        Some(Self {
            median,
            min: *v.first()?,
            max: *v.last()?,
            rounds: n,
        })
    }

    /// Half the range relative to the median, in % (0 for a single round).
    pub fn spread_pct(&self) -> f64 {
        if self.median == 0.0 {
            0.0
        } else {
            (self.max - self.min) / 2.0 / self.median.abs() * 100.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles() {
        let v: Vec<u64> = (1..=100).rev().collect();
        let p = Percentiles::of(&v).unwrap();
        assert_eq!(p.at(0.5), 50);
        assert_eq!(p.at(0.99), 99);
        assert_eq!(p.at(1.0), 100);
        assert!(Percentiles::of(&[]).is_none());
        assert_eq!(Percentiles::of(&[7]).unwrap().at(0.99), 7);
        // Large values keep 3 significant digits (nothing is clamped).
        let big = Percentiles::of(&[250_000, 1_000_000]).unwrap().at(1.0);
        assert!(big.abs_diff(1_000_000) <= 1_000, "{big}");
    }

    #[test]
    fn summaries() {
        let s = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.rounds), (2.0, 1.0, 3.0, 3));
        assert_eq!(Summary::of(&[1.0, 2.0]).unwrap().median, 1.5);
        assert!(Summary::of(&[]).is_none());
        assert!(Summary::of(&[f64::NAN]).is_none());
    }
}
