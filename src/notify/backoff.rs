//! The retry schedule for failed webhook deliveries (pure: the caller passes `now` and a random
//! number, so tests are exact).
//!
//! After the n-th failed attempt the next one is due `min(cap, base * 2^(n-1)) * (1 ± jitter)`
//! later: with the defaults 1 s, 2 s, 4 s, ... 256 s, then 5 min for ever, each ±20%. The jitter
//! spreads the retries of many stuck events so a receiver coming back is not hit by all of them
//! in the same second. There is no last attempt: an event waits for its endpoint as long as it
//! takes.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BackoffPolicy {
    /// Delay after the first failure.
    pub base: Duration,
    /// Longest nominal delay (before jitter).
    pub cap: Duration,
    /// Relative spread, 0.0 to 1.0: 0.2 means ±20%.
    pub jitter: f64,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(300),
            jitter: 0.2,
        }
    }
}

impl BackoffPolicy {
    /// The wait after `attempts` failed attempts (1 after the first failure). `rng_unit` is a
    /// uniform random number in [0, 1]; 0.5 gives the nominal delay.
    pub fn delay(&self, attempts: u32, rng_unit: f64) -> Duration {
        // 2^62 seconds is far past any cap; stopping there keeps the float math finite.
        let doublings = attempts.saturating_sub(1).min(62);
        let nominal = (self.base.as_secs_f64() * 2f64.powi(doublings as i32))
            .min(self.cap.as_secs_f64().max(self.base.as_secs_f64()));
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let u = if rng_unit.is_finite() {
            rng_unit.clamp(0.0, 1.0)
        } else {
            0.5
        };
        let factor = 1.0 + jitter * (2.0 * u - 1.0);
        Duration::try_from_secs_f64(nominal * factor).unwrap_or(self.cap)
    }

    /// When the next attempt is due after `attempts` failures, the last one at `now`.
    pub fn next_attempt(&self, attempts: u32, now: Timestamp, rng_unit: f64) -> Timestamp {
        let d = self.delay(attempts, rng_unit);
        SignedDuration::try_from(d)
            .ok()
            .and_then(|d| now.checked_add(d).ok())
            .unwrap_or(Timestamp::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_one_second_to_five_minutes() {
        let p = BackoffPolicy::default();
        let secs: Vec<u64> = (1..=12).map(|n| p.delay(n, 0.5).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        // Never gives up, never overflows.
        assert_eq!(p.delay(u32::MAX, 0.5), Duration::from_secs(300));
        // attempts = 0 is treated like the first failure.
        assert_eq!(p.delay(0, 0.5), Duration::from_secs(1));
    }

    #[test]
    fn jitter_is_plus_minus_twenty_percent() {
        let p = BackoffPolicy::default();
        assert_eq!(p.delay(3, 0.0), Duration::from_secs_f64(3.2));
        assert_eq!(p.delay(3, 1.0), Duration::from_secs_f64(4.8));
        assert_eq!(p.delay(20, 0.0), Duration::from_secs(240));
        assert_eq!(p.delay(20, 1.0), Duration::from_secs(360));
        // Out-of-range random numbers are clamped, not trusted.
        assert_eq!(p.delay(1, 7.0), Duration::from_secs_f64(1.2));
        assert_eq!(p.delay(1, f64::NAN), Duration::from_secs(1));
    }

    #[test]
    fn next_attempt_adds_to_now() {
        let p = BackoffPolicy::default();
        let now: Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        let next = p.next_attempt(2, now, 0.5);
        assert_eq!(next, "2025-01-01T00:00:02Z".parse::<Timestamp>().unwrap());
        assert_eq!(p.next_attempt(1, Timestamp::MAX, 0.5), Timestamp::MAX);
    }

    #[test]
    fn short_policy_for_tests() {
        let p = BackoffPolicy {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(100),
            jitter: 0.0,
        };
        let ms: Vec<u128> = (1..=5).map(|n| p.delay(n, 0.9).as_millis()).collect();
        assert_eq!(ms, [20, 40, 80, 100, 100]);
    }
}
