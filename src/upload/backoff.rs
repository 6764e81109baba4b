//! Exponential backoff with relative jitter.
//!
//! The wait after failed attempt `n` (1-based) is `base(n) = min(initial × multiplier^(n−1), max)`
//! scaled by a factor drawn uniformly from `[1 − jitter, 1 + jitter]`, then clamped to `max`. So
//! every wait lies within ±jitter of the schedule and never exceeds `max_backoff`.

use std::time::Duration;

use crate::config::RetryConfig;

#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub multiplier: f64,
    /// 0 ≤ jitter < 1.
    pub jitter: f64,
}

impl Backoff {
    pub fn from_config(c: &RetryConfig) -> Backoff {
        Backoff {
            initial: c.initial_backoff,
            max: c.max_backoff,
            multiplier: c.multiplier,
            jitter: c.jitter,
        }
    }

    /// The un-jittered wait after failed attempt `attempt` (1-based; 0 counts as 1).
    pub fn base(&self, attempt: u32) -> Duration {
        let exp = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.initial.as_secs_f64() * self.multiplier.max(1.0).powi(exp);
        let max = self.max.as_secs_f64();
        // NaN/inf (absurd configs) fall to `max` as well.
        if secs.is_finite() && secs < max {
            Duration::from_secs_f64(secs.max(0.0))
        } else {
            self.max
        }
    }

    /// `base(attempt)` scaled by `1 + jitter × (2u − 1)`, clamped to `max`. `u` in [0, 1) is
    /// the random draw (from the uploader's seeded generator).
    pub fn with_jitter(&self, attempt: u32, u: f64) -> Duration {
        self.scale(self.base(attempt), u)
    }

    /// `max` with jitter (used for 401/403), clamped to `max`: within [max × (1 − jitter), max].
    pub fn max_with_jitter(&self, u: f64) -> Duration {
        self.scale(self.max, u)
    }

    /// Inclusive bounds of [`Backoff::with_jitter`] for `attempt`.
    pub fn bounds(&self, attempt: u32) -> (Duration, Duration) {
        let b = self.base(attempt);
        (self.scale(b, 0.0), self.scale(b, 1.0))
    }

    fn scale(&self, base: Duration, u: f64) -> Duration {
        let j = self.jitter.clamp(0.0, 0.999);
        let factor = 1.0 + j * (2.0 * u.clamp(0.0, 1.0) - 1.0);
        let secs = base.as_secs_f64() * factor;
        Duration::from_secs_f64(secs.max(0.0)).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn default() -> Backoff {
        Backoff::from_config(&RetryConfig::default())
    }

    #[test]
    fn schedule_doubles_to_the_cap() {
        let b = default();
        let got: Vec<Duration> = (1..=8).map(|n| b.base(n)).collect();
        assert_eq!(
            got,
            [1, 2, 4, 8, 16, 30, 30, 30]
                .map(Duration::from_secs)
                .to_vec()
        );
        assert_eq!(b.base(0), b.base(1));
        assert_eq!(b.base(u32::MAX), Duration::from_secs(30));
        let flat = Backoff {
            multiplier: 1.0,
            ..default()
        };
        assert_eq!(flat.base(20), Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let b = default();
        let mut rng = oorandom::Rand64::new(7);
        for attempt in 1..=7 {
            let base = b.base(attempt).as_secs_f64();
            let (lo, hi) = b.bounds(attempt);
            assert!((lo.as_secs_f64() - base * 0.8).abs() < 1e-6, "{attempt}");
            assert!(hi.as_secs_f64() <= base * 1.2 + 1e-6);
            assert!(hi <= b.max);
            let mut seen_lo = f64::MAX;
            let mut seen_hi = 0f64;
            for _ in 0..2000 {
                let w = b.with_jitter(attempt, rng.rand_float());
                assert!(
                    w >= lo && w <= hi,
                    "{attempt}: {w:?} not in {lo:?}..={hi:?}"
                );
                seen_lo = seen_lo.min(w.as_secs_f64());
                seen_hi = seen_hi.max(w.as_secs_f64());
            }
            // The draw really spreads (and is not stuck at one end).
            assert!(seen_lo < base * 0.85, "{attempt}: {seen_lo}");
            if b.base(attempt) < b.max {
                assert!(seen_hi > base * 1.15, "{attempt}: {seen_hi}");
            }
        }
        assert_eq!(b.with_jitter(1, 0.0), ms(800));
        assert_eq!(b.with_jitter(1, 0.5), ms(1000));
        assert_eq!(b.with_jitter(1, 1.0), ms(1200));
        // At the cap the upper half is clamped.
        assert_eq!(b.with_jitter(9, 1.0), Duration::from_secs(30));
        assert_eq!(b.max_with_jitter(0.0), Duration::from_secs(24));
    }

    #[test]
    fn zero_jitter_is_exact() {
        let b = Backoff {
            jitter: 0.0,
            initial: ms(200),
            max: ms(1000),
            multiplier: 2.0,
        };
        for u in [0.0, 0.3, 0.99] {
            assert_eq!(b.with_jitter(1, u), ms(200));
            assert_eq!(b.with_jitter(3, u), ms(800));
            assert_eq!(b.with_jitter(4, u), ms(1000));
        }
    }
}
