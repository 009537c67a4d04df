//! The sender contract (one attempt per call) and what the worker wraps around it: per-app,
//! per-provider concurrency and rate caps, and retries with backoff that honour `Retry-After`.

use super::notification::Notification;
use crate::config::ChannelConfig;
use async_trait::async_trait;
use herald_store::PushBinding;
use rand::Rng;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// What one send attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Sent,
    /// The token is gone for good (APNs 410/BadDeviceToken, FCM UNREGISTERED, webhook 410):
    /// the binding is removed.
    Dead(String),
    /// Throttled, a server error or unreachable: try again, after `after` when the provider
    /// said (`Retry-After`).
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// Refused for a reason retrying cannot fix (a malformed request, bad credentials).
    Failed(String),
}

/// What sends one app's notifications through one vendor (FCM, APNs, webhook).
#[async_trait]
pub trait PushSender: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// One attempt to deliver `note` to the binding's device.
    async fn send(&self, app_id: u32, binding: &PushBinding, note: &Notification) -> Attempt;
}

/// A sender with its caps: at most `concurrency` requests in flight, at most `per_second`
/// started per second (spaced evenly, no burst).
pub struct Channel {
    pub sender: Box<dyn PushSender>,
    permits: Semaphore,
    spacing: Option<Duration>,
    next_start: Mutex<Option<Instant>>,
}

impl Channel {
    pub fn new(sender: Box<dyn PushSender>, config: &ChannelConfig) -> Channel {
        let spacing = (config.per_second > 0).then(|| Duration::from_secs(1) / config.per_second);
        Channel { sender, permits: Semaphore::new(config.concurrency), spacing, next_start: Mutex::new(None) }
    }

    /// One attempt under the caps.
    pub async fn attempt(&self, app_id: u32, binding: &PushBinding, note: &Notification) -> Attempt {
        let _permit = self.permits.acquire().await.expect("the semaphore is never closed");
        if let Some(spacing) = self.spacing {
            let start = {
                let mut next = self.next_start.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                let start = next.map_or(now, |n| n.max(now));
                *next = Some(start + spacing);
                start
            };
            tokio::time::sleep_until(start).await;
        }
        self.sender.send(app_id, binding, note).await
    }
}

/// Retry timing of one app.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    /// The wait before try `attempt + 1` (attempt counts from 1): the provider's `Retry-After`
    /// when given, else `base * 2^(attempt-1)` with ±25 % jitter; never above `max`.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let wait = retry_after.unwrap_or_else(|| {
            let exp = self.base.saturating_mul(1u32 << (attempt.saturating_sub(1)).min(16));
            exp.mul_f64(rand::thread_rng().gen_range(0.75..1.25))
        });
        wait.min(self.max)
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare from push services and ignored).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The HTTP client of one channel: rustls with the web roots, plus `ca_file` when set.
pub fn http_client(config: &ChannelConfig, http2_only: bool) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder().timeout(config.timeout()).no_proxy().use_rustls_tls();
    if http2_only {
        builder = builder.http2_prior_knowledge();
    }
    if let Some(path) = &config.ca_file {
        for cert in read_ca_file(path)? {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| format!("cannot build the HTTP client: {e}"))
}

fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read ca_file {}: {e}", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("ca_file {} holds no usable PEM certificate: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("ca_file {} holds no certificate", path.display()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_and_cap_and_honour_retry_after() {
        let p = RetryPolicy { max_attempts: 5, base: Duration::from_millis(100), max: Duration::from_secs(1) };
        let d1 = p.delay(1, None);
        assert!(d1 >= Duration::from_millis(75) && d1 <= Duration::from_millis(125), "{d1:?}");
        let d3 = p.delay(3, None);
        assert!(d3 >= Duration::from_millis(300) && d3 <= Duration::from_millis(500), "{d3:?}");
        assert_eq!(p.delay(30, None), Duration::from_secs(1), "capped");
        assert_eq!(p.delay(1, Some(Duration::from_millis(700))), Duration::from_millis(700));
        assert_eq!(p.delay(1, Some(Duration::from_secs(30))), Duration::from_secs(1), "Retry-After capped too");
    }
}

#[cfg(test)]
mod caps {
    use super::*;
    use herald_store::PushProvider;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Records how many sends run at once and when each started.
    #[derive(Default)]
    struct Probe {
        running: AtomicUsize,
        peak: AtomicUsize,
        starts: Mutex<Vec<Instant>>,
    }

    struct Slow(Arc<Probe>);

    #[async_trait]
    impl PushSender for Slow {
        fn name(&self) -> &'static str {
            "slow"
        }
        async fn send(&self, _: u32, _: &PushBinding, _: &Notification) -> Attempt {
            let now = self.0.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.0.peak.fetch_max(now, Ordering::SeqCst);
            self.0.starts.lock().unwrap().push(Instant::now());
            tokio::time::sleep(Duration::from_millis(500)).await;
            self.0.running.fetch_sub(1, Ordering::SeqCst);
            Attempt::Sent
        }
    }

    fn binding() -> PushBinding {
        PushBinding {
            app_id: 1,
            user_id: "u".into(),
            device_id: "d".into(),
            push_id: "p".into(),
            provider: PushProvider::Webhook,
            updated_at_ms: 0,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_and_rate_caps_hold() {
        let probe = Arc::new(Probe::default());
        let config = ChannelConfig { concurrency: 3, per_second: 10, timeout_ms: 1000, ca_file: None };
        let channel = Channel::new(Box::new(Slow(probe.clone())), &config);
        let (b, n) = (binding(), Notification::default());
        let t0 = Instant::now();
        let sends = (0..12).map(|_| channel.attempt(1, &b, &n));
        let results = futures_util::future::join_all(sends).await;
        assert!(results.iter().all(|r| *r == Attempt::Sent));
        assert_eq!(probe.peak.load(Ordering::SeqCst), 3, "at most `concurrency` in flight");
        let starts = probe.starts.lock().unwrap();
        for pair in starts.windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_millis(100), "starts at most 10 per second");
        }
        assert!(starts[11] - t0 >= Duration::from_millis(1100));
    }
}
