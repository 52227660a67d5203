//! Percentiles of samples and the median/range of per-round figures.

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

/// The `q`-quantile (`0 ≤ q ≤ 1`) of **sorted** samples, nearest rank; `None` when empty.
pub fn quantile(sorted: &[u64], q: f64) -> Option<u64> {
    let last = sorted.len().checked_sub(1)?;
    let rank = (q.clamp(0.0, 1.0) * float(last)).round();
    // `rank` lies in [0, last], so the conversion is exact and in range.
    #[allow(
        clippy::as_conversions,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let index = rank as usize;
    sorted.get(index.min(last)).copied()
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
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), Some(51));
        assert_eq!(quantile(&v, 0.99), Some(99));
        assert_eq!(quantile(&v, 1.0), Some(100));
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[7], 0.99), Some(7));
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
