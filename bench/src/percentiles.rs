//! Percentiles and medians of measured samples.

use std::time::Instant;

use serde::{Deserialize, Serialize};

/// p50, p99 and maximum of a set of samples, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Number of samples.
    pub count: usize,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
}

impl Spread {
    /// Computes the spread of `samples_ms`, or `None` when there are none.
    pub fn of(samples_ms: &[f64]) -> Option<Self> {
        let mut sorted = samples_ms.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Self {
            count: sorted.len(),
            p50_ms: nearest_rank(&sorted, 50.0)?,
            p99_ms: nearest_rank(&sorted, 99.0)?,
            max_ms: *sorted.last()?,
        })
    }
}

/// Returns the nearest-rank percentile of sorted samples: the smallest sample with at least
/// `percent` % of the samples at or below it.
pub fn nearest_rank(sorted: &[f64], percent: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (percent / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// Computes the median of `samples`, or `None` when there are none.
pub fn median(samples: &[f64]) -> Option<f64> {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    nearest_rank(&sorted, 50.0)
}

/// Milliseconds from `from` to `to`, negative when `to` is earlier.
pub fn millis_between(from: Instant, to: Instant) -> f64 {
    if to >= from {
        (to - from).as_secs_f64() * 1000.0
    } else {
        -((from - to).as_secs_f64() * 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_between_is_signed() {
        let earlier = Instant::now();
        let later = earlier + std::time::Duration::from_millis(3);
        assert!((millis_between(earlier, later) - 3.0).abs() < 1e-9);
        assert!((millis_between(later, earlier) + 3.0).abs() < 1e-9);
    }

    #[test]
    fn nearest_rank_table() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(nearest_rank(&samples, 50.0), Some(50.0));
        assert_eq!(nearest_rank(&samples, 99.0), Some(99.0));
        assert_eq!(nearest_rank(&samples, 100.0), Some(100.0));
        assert_eq!(nearest_rank(&samples, 0.0), Some(1.0));
        assert_eq!(nearest_rank(&[], 50.0), None);
    }

    #[test]
    fn spread_sorts_first() {
        let spread = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!(spread.count, 3);
        assert_eq!(spread.p50_ms, 2.0);
        assert_eq!(spread.p99_ms, 3.0);
        assert_eq!(spread.max_ms, 3.0);
    }

    #[test]
    fn median_of_even_count_is_lower() {
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.0));
        assert_eq!(median(&[]), None);
    }
}
