//! The generator's arithmetic, kept pure so it is tested without timing:
//! when request I is due, how many requests a point sends, nearest-rank
//! percentiles, and the median and spread over runs.

use std::time::Duration;

/// When request `i` is due, counted from the start of the timeline. Each
/// offset is computed from `i` alone (never by adding intervals), so the
/// timeline does not drift and does not depend on when earlier requests
/// were sent or answered.
pub fn offset(rate: f64, i: u64) -> Duration {
    Duration::from_secs_f64(i as f64 / rate)
}

/// Requests a point of `rate` per second over `duration` sends.
pub fn count(rate: f64, duration: Duration) -> u64 {
    (rate * duration.as_secs_f64()).round() as u64
}

/// Nearest-rank percentile `p` (0 < p ≤ 100) of ascending `sorted`: the
/// smallest value with at least p % of the values at or below it.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// Median, lowest and highest of a few runs' figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The median (mean of the two middle values for an even count).
    pub median: f64,
    /// The lowest run.
    pub min: f64,
    /// The highest run.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_follow_the_rate_without_drift() {
        assert_eq!(offset(1000.0, 0), Duration::ZERO);
        assert_eq!(offset(1000.0, 500), Duration::from_millis(500));
        assert_eq!(offset(500.0, 5000), Duration::from_secs(10));
        // A rate whose interval is no whole number of nanoseconds: request
        // 3,000,000 is still due at exactly 10 s.
        assert_eq!(offset(300_000.0, 3_000_000), Duration::from_secs(10));
        let gaps: Vec<Duration> = (0..10)
            .map(|i| offset(1000.0, i + 1) - offset(1000.0, i))
            .collect();
        assert!(
            gaps.iter().all(|g| *g == Duration::from_millis(1)),
            "{gaps:?}"
        );
    }

    #[test]
    fn a_point_sends_rate_times_duration() {
        assert_eq!(count(500.0, Duration::from_secs(10)), 5000);
        assert_eq!(count(1000.0, Duration::from_millis(2500)), 2500);
        assert_eq!(count(0.0, Duration::from_secs(10)), 0);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 90.0), Some(90));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.1), Some(1));
        // Ten values: p99 is the largest, p50 the fifth.
        let ten: Vec<u64> = (1..=10).map(|x| x * 10).collect();
        assert_eq!(percentile(&ten, 99.0), Some(100));
        assert_eq!(percentile(&ten, 50.0), Some(50));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn spread_of_runs() {
        let s = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let even = Spread::of(&[4.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!(even.median, 3.0);
        assert_eq!(Spread::of(&[f64::NAN]), None);
        assert_eq!(Spread::of(&[]), None);
    }
}
