//! socket.io-client's reconnection schedule, reproduced exactly (its
//! `backo2`-derived `Backoff` as the Manager uses it), so the harness measures
//! what real browser clients would do rather than a schedule of its own.

use std::time::Duration;

use crate::scenario::ReconnectPolicy;

/// The Manager's backoff state: `attempts` counts from 0 after each loss.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: ReconnectPolicy,
    attempts: u32,
}

impl Backoff {
    pub fn new(policy: ReconnectPolicy) -> Backoff {
        Backoff {
            policy,
            attempts: 0,
        }
    }

    /// How many delays were handed out since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The Manager resets on a successful reconnect and when the transport closes.
    pub fn reset(&mut self) {
        self.attempts = 0;
    }

    /// True when `reconnectionAttempts` is used up: the Manager emits
    /// `reconnect_failed` instead of scheduling another attempt.
    pub fn exhausted(&self) -> bool {
        self.policy.attempts.is_some_and(|max| self.attempts >= max)
    }

    /// The next delay, with `r` drawn uniform in [0, 1) as `Math.random()`:
    ///
    /// ```js
    /// var ms = this.ms * Math.pow(this.factor, this.attempts++);
    /// var deviation = Math.floor(rand * this.jitter * ms);
    /// ms = (Math.floor(rand * 10) & 1) == 0 ? ms - deviation : ms + deviation;
    /// return Math.min(ms, this.max) | 0;
    /// ```
    pub fn next_delay(&mut self, r: f64) -> Duration {
        let base = self.policy.delay.as_millis() as f64 * 2f64.powi(self.attempts.min(1023) as i32);
        self.attempts = self.attempts.saturating_add(1);
        let mut ms = base;
        if self.policy.randomization_factor > 0.0 {
            let deviation = (r * self.policy.randomization_factor * base).floor();
            ms = if ((r * 10.0).floor() as i64) & 1 == 0 {
                base - deviation
            } else {
                base + deviation
            };
        }
        let capped = ms.min(self.policy.delay_max.as_millis() as f64);
        // `| 0` truncates toward zero (and to 32 bits, which the cap keeps us within).
        Duration::from_millis(capped.max(0.0).trunc() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// socket.io-client's formula written out independently, for comparison.
    fn js(ms: f64, attempts: u32, jitter: f64, max: f64, rand: f64) -> u64 {
        let ms = ms * 2f64.powi(attempts as i32);
        let deviation = (rand * jitter * ms).floor();
        let ms = if ((rand * 10.0).floor() as i64) % 2 == 0 {
            ms - deviation
        } else {
            ms + deviation
        };
        ms.min(max) as i64 as u64
    }

    #[test]
    fn matches_socket_io_client_formula() {
        let policy = ReconnectPolicy::default();
        let mut b = Backoff::new(policy);
        let draws = [0.0, 0.15, 0.27, 0.5, 0.99, 0.31, 0.42, 0.05, 0.77, 0.6];
        for (n, r) in draws.iter().enumerate() {
            let got = b.next_delay(*r).as_millis() as u64;
            assert_eq!(
                got,
                js(1000.0, n as u32, 0.5, 5000.0, *r),
                "attempt {n} r {r}"
            );
        }
    }

    #[test]
    fn known_values_with_defaults() {
        let mut b = Backoff::new(ReconnectPolicy::default());
        // r = 0.0: even branch, no deviation → 1000, 2000, 4000, then the 5000 cap.
        let d: Vec<u64> = (0..5)
            .map(|_| b.next_delay(0.0).as_millis() as u64)
            .collect();
        assert_eq!(d, [1000, 2000, 4000, 5000, 5000]);
        b.reset();
        // r = 0.15: floor(1.5)=1 is odd → base + floor(0.15·0.5·1000) = 1075.
        assert_eq!(b.next_delay(0.15).as_millis(), 1075);
        // r = 0.27: floor(2.7)=2 is even → 2000 − floor(0.27·0.5·2000) = 1730.
        assert_eq!(b.next_delay(0.27).as_millis(), 1730);
    }

    #[test]
    fn attempts_run_out() {
        let mut b = Backoff::new(ReconnectPolicy {
            attempts: Some(2),
            ..ReconnectPolicy::default()
        });
        assert!(!b.exhausted());
        b.next_delay(0.5);
        b.next_delay(0.5);
        assert!(b.exhausted());
        b.reset();
        assert!(!b.exhausted());
    }

    #[test]
    fn no_jitter_when_factor_is_zero() {
        let mut b = Backoff::new(ReconnectPolicy {
            randomization_factor: 0.0,
            ..ReconnectPolicy::default()
        });
        assert_eq!(b.next_delay(0.99).as_millis(), 1000);
    }
}
