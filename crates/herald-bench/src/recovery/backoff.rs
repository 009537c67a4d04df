//! The SDKs' reconnect policy, so the tool's clients come back the way real ones do: attempt `n`
//! (from 0) waits a uniformly random time in `[0, min(max, initial · factor^n)]` ("full
//! jitter"), a successful login starts over from the smallest wait, and one attempt (connect,
//! upgrade, login) may take `login_timeout`. The defaults are `herald_sdk::ReconnectPolicy`'s
//! and `ClientConfig::login_timeout`'s (a test keeps them equal).

use std::time::Duration;

use clap::Args;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Args, Serialize, Deserialize)]
pub struct ReconnectArgs {
    /// Upper bound of the first wait after a connection is lost (the SDK's `initial_delay`).
    #[arg(long = "backoff-initial-ms", default_value_t = 500)]
    pub initial_ms: u64,
    /// Upper bound of any wait (the SDK's `max_delay`).
    #[arg(long = "backoff-max-ms", default_value_t = 30_000)]
    pub max_ms: u64,
    /// Growth of the bound per failed attempt (the SDK's `factor`).
    #[arg(long = "backoff-factor", default_value_t = 2.0)]
    pub factor: f64,
    /// Longest one reconnect (TCP connect, upgrade, login) may take (the SDK's `login_timeout`).
    #[arg(long = "login-timeout-ms", default_value_t = 10_000)]
    pub login_timeout_ms: u64,
}

impl ReconnectArgs {
    pub fn login_timeout(&self) -> Duration {
        Duration::from_millis(self.login_timeout_ms)
    }
}

/// Failed attempts in a row, turned into the next wait.
#[derive(Debug)]
pub struct Backoff {
    policy: ReconnectArgs,
    attempt: u32,
}

impl Backoff {
    pub fn new(policy: ReconnectArgs) -> Backoff {
        Backoff { policy, attempt: 0 }
    }

    /// The wait before the next attempt; `random` is any uniformly distributed number.
    pub fn next_delay(&mut self, random: u64) -> Duration {
        let ceiling = self.ceiling(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        Duration::from_millis(random % (ceiling.as_millis() as u64 + 1))
    }

    /// A login succeeded: the next outage starts again from the smallest wait.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    fn ceiling(&self, attempt: u32) -> Duration {
        let p = &self.policy;
        let ms = p.initial_ms as f64 * p.factor.powi(i32::try_from(attempt).unwrap_or(i32::MAX));
        if ms.is_finite() && ms < p.max_ms as f64 {
            Duration::from_millis(ms as u64)
        } else {
            Duration::from_millis(p.max_ms)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        reconnect: ReconnectArgs,
    }

    #[test]
    fn defaults_are_the_sdks() {
        let ours = Cli::parse_from(["x"]).reconnect;
        let sdk = herald_sdk::ReconnectPolicy::default();
        assert_eq!(Duration::from_millis(ours.initial_ms), sdk.initial_delay);
        assert_eq!(Duration::from_millis(ours.max_ms), sdk.max_delay);
        assert_eq!(ours.factor, sdk.factor);
        let config = herald_sdk::ClientConfig::new(["ws://127.0.0.1:1/ws"], 1, "u", "t");
        assert_eq!(ours.login_timeout(), config.login_timeout);
    }

    #[test]
    fn grows_caps_jitters_and_resets() {
        let policy = ReconnectArgs { initial_ms: 100, max_ms: 1000, factor: 2.0, login_timeout_ms: 1 };
        let mut b = Backoff::new(policy);
        let ms: Vec<u128> = (0..6).map(|n| b.ceiling(n).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(1));
        assert_eq!(b.next_delay(u64::MAX), Duration::from_millis(u64::MAX % 101));
        assert!(b.next_delay(12345) <= Duration::from_millis(200));
        b.reset();
        assert_eq!(b.next_delay(100), Duration::from_millis(100));
        assert_eq!(b.next_delay(201), Duration::ZERO, "201 mod 201");
    }
}
