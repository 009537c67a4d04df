//! Reconnect delays: exponential growth, capped, with full jitter.

use std::time::Duration;

use rand::Rng;

use crate::ReconnectPolicy;

/// Counts failed attempts in a row and turns the count into the next wait.
#[derive(Debug)]
pub(crate) struct Backoff {
    policy: ReconnectPolicy,
    attempt: u32,
}

impl Backoff {
    pub(crate) fn new(policy: ReconnectPolicy) -> Self {
        Self { policy, attempt: 0 }
    }

    /// The wait before the next attempt, or `None` once `max_attempts` are spent.
    pub(crate) fn next_delay(&mut self) -> Option<Duration> {
        if self.policy.max_attempts.is_some_and(|max| self.attempt >= max) {
            return None;
        }
        let ceiling = self.ceiling(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Some(Duration::from_millis(rand::thread_rng().gen_range(0..=millis)))
    }

    /// A login succeeded: the next outage starts again from the smallest wait.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }

    /// `min(max_delay, initial_delay · factor^attempt)`, computed in floating point so a large
    /// attempt count saturates instead of overflowing.
    fn ceiling(&self, attempt: u32) -> Duration {
        let p = &self.policy;
        let exp = i32::try_from(attempt).unwrap_or(i32::MAX);
        let secs = p.initial_delay.as_secs_f64() * p.factor.powi(exp);
        if secs.is_finite() && secs < p.max_delay.as_secs_f64() {
            Duration::from_secs_f64(secs)
        } else {
            p.max_delay
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_attempts: Option<u32>) -> ReconnectPolicy {
        ReconnectPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            factor: 2.0,
            max_attempts,
        }
    }

    #[test]
    fn ceiling_grows_then_caps() {
        let b = Backoff::new(policy(None));
        let ms: Vec<u128> = (0..6).map(|n| b.ceiling(n).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn delays_stay_under_the_ceiling() {
        let mut b = Backoff::new(policy(None));
        for n in 0..50 {
            let ceiling = b.ceiling(n);
            assert!(b.next_delay().unwrap() <= ceiling);
        }
    }

    #[test]
    fn gives_up_after_max_attempts_until_reset() {
        let mut b = Backoff::new(policy(Some(2)));
        assert!(b.next_delay().is_some());
        assert!(b.next_delay().is_some());
        assert!(b.next_delay().is_none());
        b.reset();
        assert!(b.next_delay().is_some());
    }
}
