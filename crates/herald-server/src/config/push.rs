//! The `[push]` and `[apps.push]` tables: how jobs are walked and where each provider lives.
//!
//! Every provider URL is configurable so tests (and private gateways) can point the production
//! code at a stand-in; `ca_file` adds a trusted root for such a stand-in's certificate.

use super::{invalid, ConfigError, Secret};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// `[push]`: node-wide settings of the push worker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushSettings {
    /// Who this node is when it claims a job. A node restarting under the same name resumes
    /// its own unfinished jobs at once; another node waits until the claim's lease ends.
    #[serde(default = "defaults::node_id")]
    pub node_id: String,
    /// How long a claim holds without progress. A page must finish within it, or another node
    /// may take the job over (and repeat that page).
    #[serde(default = "defaults::lease_ms")]
    pub lease_ms: u64,
    /// How often an idle worker looks for jobs nobody woke it for (another node's expired ones).
    #[serde(default = "defaults::poll_interval_ms")]
    pub poll_interval_ms: u64,
}

/// `[apps.push]`: one app's providers and paging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppPushConfig {
    /// Bindings read, pushed and checkpointed at a time. A crash repeats at most one page.
    #[serde(default = "defaults::page_size")]
    pub page_size: u32,
    /// Tries per device, the first included, for throttled (429), failed (5xx) and unreachable
    /// sends; then the device counts as failed.
    #[serde(default = "defaults::max_attempts")]
    pub max_attempts: u32,
    /// First retry delay; it doubles each try (with jitter) up to `retry_max_ms`. A provider's
    /// `Retry-After` replaces it, also capped by `retry_max_ms`.
    #[serde(default = "defaults::retry_base_ms")]
    pub retry_base_ms: u64,
    #[serde(default = "defaults::retry_max_ms")]
    pub retry_max_ms: u64,
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
    #[serde(default)]
    pub fcm: Option<FcmConfig>,
    #[serde(default)]
    pub apns: Option<ApnsConfig>,
}

/// `[apps.push.webhook]`: a signed JSON POST per device to the app's own server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// The callback secret of the sha1 signature; the app's `server_secret` when absent (as ZIM
    /// signs its callbacks with the ServerSecret).
    #[serde(default)]
    pub secret: Option<Secret>,
    /// Requests in flight at once for this app and provider.
    #[serde(default = "defaults::concurrency")]
    pub concurrency: usize,
    /// Requests started per second for this app and provider; 0 = no cap.
    #[serde(default)]
    pub per_second: u32,
    /// Whole-request timeout.
    #[serde(default = "defaults::timeout_ms")]
    pub timeout_ms: u64,
    /// Extra PEM root certificate(s) to trust, for test stand-ins and private gateways.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// `[apps.push.fcm]`: Firebase Cloud Messaging HTTP v1 with a service account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FcmConfig {
    /// The service-account JSON downloaded from the Firebase console (`client_email`,
    /// `private_key`, `private_key_id`, `project_id`, `token_uri`).
    pub service_account_file: PathBuf,
    /// The Firebase project; the service account's `project_id` when absent.
    #[serde(default)]
    pub project_id: Option<String>,
    /// Where `/v1/projects/{id}/messages:send` lives.
    #[serde(default = "defaults::fcm_base_url")]
    pub base_url: String,
    /// The OAuth2 token endpoint; the service account's `token_uri` when absent.
    #[serde(default)]
    pub token_url: Option<String>,
    /// Requests in flight at once for this app and provider.
    #[serde(default = "defaults::concurrency")]
    pub concurrency: usize,
    /// Requests started per second for this app and provider; 0 = no cap.
    #[serde(default)]
    pub per_second: u32,
    /// Whole-request timeout.
    #[serde(default = "defaults::timeout_ms")]
    pub timeout_ms: u64,
    /// Extra PEM root certificate(s) to trust, for test stand-ins and private gateways.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// `[apps.push.apns]`: Apple Push Notification service over HTTP/2 with a provider token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApnsConfig {
    /// The `.p8` signing key from the Apple developer account (PKCS#8 P-256).
    pub key_file: PathBuf,
    /// The key's 10-character Key ID (the JWT `kid`).
    pub key_id: String,
    /// The developer Team ID (the JWT `iss`).
    pub team_id: String,
    /// `apns-topic`: the app's bundle ID.
    pub topic: String,
    /// `https://api.push.apple.com`, or `https://api.sandbox.push.apple.com` for development builds.
    #[serde(default = "defaults::apns_base_url")]
    pub base_url: String,
    /// `apns-push-type`.
    #[serde(default = "defaults::apns_push_type")]
    pub push_type: String,
    /// `apns-priority`: 10 immediately, 5 power-considerate, 1 lowest.
    #[serde(default = "defaults::apns_priority")]
    pub priority: u8,
    /// How long APNs keeps trying to deliver to a switched-off device (`apns-expiration`);
    /// 0 = one attempt only.
    #[serde(default = "defaults::apns_expiration_s")]
    pub expiration_s: u64,
    /// Requests in flight at once for this app and provider.
    #[serde(default = "defaults::concurrency")]
    pub concurrency: usize,
    /// Requests started per second for this app and provider; 0 = no cap.
    #[serde(default)]
    pub per_second: u32,
    /// Whole-request timeout.
    #[serde(default = "defaults::timeout_ms")]
    pub timeout_ms: u64,
    /// Extra PEM root certificate(s) to trust, for test stand-ins and private gateways.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// Implements `channel()` for a provider table that carries the shared channel keys (serde's
/// `flatten` cannot be combined with `deny_unknown_fields`, so the keys are repeated).
macro_rules! channel_of {
    ($t:ty) => {
        impl $t {
            pub fn channel(&self) -> ChannelConfig {
                ChannelConfig {
                    concurrency: self.concurrency,
                    per_second: self.per_second,
                    timeout_ms: self.timeout_ms,
                    ca_file: self.ca_file.clone(),
                }
            }
        }
    };
}
channel_of!(WebhookConfig);
channel_of!(FcmConfig);
channel_of!(ApnsConfig);

/// Limits and transport shared by every provider.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    pub concurrency: usize,
    pub per_second: u32,
    pub timeout_ms: u64,
    pub ca_file: Option<PathBuf>,
}

impl ChannelConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

mod defaults {
    pub fn node_id() -> String {
        "local".into()
    }
    pub fn lease_ms() -> u64 {
        120_000
    }
    pub fn poll_interval_ms() -> u64 {
        5_000
    }
    pub fn page_size() -> u32 {
        500
    }
    pub fn max_attempts() -> u32 {
        5
    }
    pub fn retry_base_ms() -> u64 {
        500
    }
    pub fn retry_max_ms() -> u64 {
        60_000
    }
    pub fn concurrency() -> usize {
        32
    }
    pub fn fcm_base_url() -> String {
        "https://fcm.googleapis.com".into()
    }
    pub fn apns_base_url() -> String {
        "https://api.push.apple.com".into()
    }
    pub fn apns_push_type() -> String {
        "alert".into()
    }
    pub fn apns_priority() -> u8 {
        10
    }
    pub fn apns_expiration_s() -> u64 {
        86_400
    }
    pub fn timeout_ms() -> u64 {
        10_000
    }
}

impl Default for PushSettings {
    fn default() -> Self {
        toml::from_str("").expect("defaults parse")
    }
}
impl Default for AppPushConfig {
    fn default() -> Self {
        toml::from_str("").expect("defaults parse")
    }
}

impl PushSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.node_id.is_empty() {
            return Err(invalid("push.node_id", "must not be empty"));
        }
        for (key, v) in [("push.lease_ms", self.lease_ms), ("push.poll_interval_ms", self.poll_interval_ms)] {
            if v == 0 {
                return Err(invalid(key, "must be > 0"));
            }
        }
        Ok(())
    }
}

impl AppPushConfig {
    /// `prefix` is the table's key, e.g. `apps[0].push`.
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let key = |k: &str| format!("{prefix}.{k}");
        for (k, v) in [
            ("page_size", u64::from(self.page_size)),
            ("max_attempts", u64::from(self.max_attempts)),
            ("retry_base_ms", self.retry_base_ms),
            ("retry_max_ms", self.retry_max_ms),
        ] {
            if v == 0 {
                return Err(invalid(key(k), "must be > 0"));
            }
        }
        if let Some(w) = &self.webhook {
            if !is_http_url(&w.url) {
                return Err(invalid(key("webhook.url"), "must be an http:// or https:// URL"));
            }
            w.channel().validate(&key("webhook"))?;
        }
        if let Some(f) = &self.fcm {
            if !is_http_url(&f.base_url) {
                return Err(invalid(key("fcm.base_url"), "must be an http:// or https:// URL"));
            }
            if f.token_url.as_deref().is_some_and(|u| !is_http_url(u)) {
                return Err(invalid(key("fcm.token_url"), "must be an http:// or https:// URL"));
            }
            f.channel().validate(&key("fcm"))?;
        }
        if let Some(a) = &self.apns {
            if !a.base_url.starts_with("https://") {
                return Err(invalid(key("apns.base_url"), "must be an https:// URL (APNs is HTTP/2 over TLS)"));
            }
            for (k, v) in [("apns.key_id", &a.key_id), ("apns.team_id", &a.team_id), ("apns.topic", &a.topic)] {
                if v.is_empty() {
                    return Err(invalid(key(k), "must not be empty"));
                }
            }
            if ![1, 5, 10].contains(&a.priority) {
                return Err(invalid(key("apns.priority"), "must be 1, 5 or 10"));
            }
            a.channel().validate(&key("apns"))?;
        }
        Ok(())
    }
}

fn is_http_url(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

impl ChannelConfig {
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        if self.concurrency == 0 {
            return Err(invalid(format!("{prefix}.concurrency"), "must be > 0"));
        }
        if self.timeout_ms == 0 {
            return Err(invalid(format!("{prefix}.timeout_ms"), "must be > 0"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const APP: &str = "[[apps]]\napp_id = 7\nserver_secret = \"fa94dd0f974cf2e293728a526b028271\"\n";

    fn parse(tail: &str) -> Result<Config, String> {
        Config::parse(&format!("{APP}{tail}"), &|_| None).map_err(|e| e.to_string())
    }

    #[test]
    fn the_example_provider_tables_parse_when_uncommented() {
        let example = include_str!("../../../../herald.example.toml");
        let uncommented: String = example
            .lines()
            .map(|l| l.strip_prefix("# ").filter(|r| r.starts_with('[') || r.contains(" = ")).unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let config = Config::parse(&uncommented, &|_| None).unwrap();
        let push = &config.apps[0].push;
        assert_eq!(push.page_size, 500);
        let apns = push.apns.as_ref().unwrap();
        assert_eq!((apns.priority, apns.expiration_s, apns.push_type.as_str()), (10, 86_400, "alert"));
        assert_eq!(push.fcm.as_ref().unwrap().base_url, "https://fcm.googleapis.com");
        assert!(push.webhook.as_ref().unwrap().ca_file.is_some());
        assert_eq!(config.push.node_id, "local");
    }

    #[test]
    fn provider_tables_refuse_unknown_keys_and_bad_values() {
        for (tail, key) in [
            ("[apps.push.webhook]\nurl = \"http://x\"\nconcurency = 3\n", "concurency"),
            ("[apps.push.webhook]\nurl = \"ftp://x\"\n", "apps[0].push.webhook.url"),
            ("[apps.push.webhook]\nurl = \"http://x\"\nconcurrency = 0\n", "apps[0].push.webhook.concurrency"),
            ("[apps.push]\npage_size = 0\n", "apps[0].push.page_size"),
            (
                "[apps.push.apns]\nkey_file = \"k\"\nkey_id = \"K\"\nteam_id = \"T\"\ntopic = \"t\"\nbase_url = \"http://x\"\n",
                "apps[0].push.apns.base_url",
            ),
            (
                "[apps.push.apns]\nkey_file = \"k\"\nkey_id = \"K\"\nteam_id = \"T\"\ntopic = \"t\"\npriority = 7\n",
                "apps[0].push.apns.priority",
            ),
            ("[apps.push.fcm]\nservice_account_file = \"f\"\ntoken_url = \"x\"\n", "apps[0].push.fcm.token_url"),
        ] {
            let err = parse(tail).unwrap_err();
            assert!(err.contains(key), "{tail:?}: {err}");
        }
        let err = Config::parse("[push]\nlease_ms = 0\n", &|_| None).unwrap_err().to_string();
        assert!(err.contains("push.lease_ms"), "{err}");
    }
}
