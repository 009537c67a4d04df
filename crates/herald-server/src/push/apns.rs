//! Apple Push Notification service: HTTP/2 with a token-based (ES256) provider connection.
//!
//! Auth: the `.p8` key signs a provider token (`kid` = key ID, `iss` = team ID, `iat`) that is
//! reused for every request and replaced after 50 minutes — Apple refuses tokens older than an
//! hour and throttles ones renewed more often than every 20 minutes — or at once when APNs
//! answers `ExpiredProviderToken`.
//!
//! Transport: one HTTP/2 connection (ALPN `h2`, prior knowledge) carries every request of the
//! app's channel, multiplexed up to the channel's concurrency.
//!
//! Send: `POST {base_url}/3/device/{token}` with `apns-topic`, `apns-push-type`,
//! `apns-priority`, `apns-expiration` and `apns-collapse-id` (the message ID, so a repeat after
//! a crash replaces the first notification on the device instead of adding a second).
//! Answers: 200 sent; 410 `Unregistered` and 400 `BadDeviceToken` remove the binding; 429,
//! 5xx and `ExpiredProviderToken` are retried; anything else is a failure.

use super::channel::{http_client, retry_after, Attempt, PushSender};
use super::jwt::Signer;
use super::notification::Notification;
use crate::clock::system_now_ms;
use crate::config::ApnsConfig;
use async_trait::async_trait;
use herald_store::PushBinding;
use serde_json::{json, Map, Value};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Provider tokens are replaced after this long (Apple: at most 60 min, at least 20).
const TOKEN_REUSE: Duration = Duration::from_secs(50 * 60);

struct ProviderToken {
    value: String,
    made_at: Instant,
}

pub struct Apns {
    http: reqwest::Client,
    base_url: String,
    key_id: String,
    team_id: String,
    topic: String,
    push_type: String,
    priority: String,
    expiration_s: u64,
    signer: Signer,
    token: Mutex<Option<ProviderToken>>,
}

impl Apns {
    pub fn new(config: &ApnsConfig) -> Result<Apns, String> {
        let path = &config.key_file;
        let pem = std::fs::read_to_string(path).map_err(|e| format!("cannot read key_file {}: {e}", path.display()))?;
        let signer = Signer::es256_from_pem(&pem).map_err(|e| format!("key_file {}: {e}", path.display()))?;
        Ok(Apns {
            http: http_client(&config.channel(), true)?,
            base_url: config.base_url.trim_end_matches('/').to_string(),
            key_id: config.key_id.clone(),
            team_id: config.team_id.clone(),
            topic: config.topic.clone(),
            push_type: config.push_type.clone(),
            priority: config.priority.to_string(),
            expiration_s: config.expiration_s,
            signer,
            token: Mutex::new(None),
        })
    }

    /// The current provider token, made anew when older than [`TOKEN_REUSE`]. Signing is
    /// microseconds, so it happens under the lock.
    fn provider_token(&self) -> Result<String, String> {
        let mut token = self.token.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = token.as_ref().filter(|t| t.made_at.elapsed() < TOKEN_REUSE) {
            return Ok(t.value.clone());
        }
        let claims = json!({"iss": self.team_id, "iat": system_now_ms() / 1000});
        let value = self.signer.sign(json!({"kid": self.key_id}), &claims)?;
        *token = Some(ProviderToken { value: value.clone(), made_at: Instant::now() });
        Ok(value)
    }

    fn drop_provider_token(&self, value: &str) {
        let mut token = self.token.lock().unwrap_or_else(|p| p.into_inner());
        if token.as_ref().is_some_and(|t| t.value == value) {
            *token = None;
        }
    }
}

/// The APNs JSON payload: `aps` with the alert, badge and thread, plus Herald's keys beside it
/// (`payload`, `message_id`, `from_user_id`, and `image_url` for a notification service
/// extension, flagged by `mutable-content`).
pub fn payload(note: &Notification) -> Value {
    let mut alert = Map::new();
    for (key, value) in [("title", &note.title), ("body", &note.content)] {
        if !value.is_empty() {
            alert.insert(key.into(), json!(value));
        }
    }
    let mut aps = Map::new();
    aps.insert("alert".into(), Value::Object(alert));
    if let Some(badge) = note.badge_increment {
        aps.insert("badge".into(), json!(badge));
    }
    if let Some(thread) = &note.thread_id {
        aps.insert("thread-id".into(), json!(thread));
    }
    let mut body = json!({
        "aps": aps,
        "payload": note.payload,
        "message_id": note.message_id.to_string(),
        "from_user_id": note.from_user_id,
    });
    if let Some(image) = &note.apns_image {
        body["aps"]["mutable-content"] = json!(1);
        body["image_url"] = json!(image);
    }
    body
}

#[async_trait]
impl PushSender for Apns {
    fn name(&self) -> &'static str {
        "apns"
    }

    async fn send(&self, _app_id: u32, binding: &PushBinding, note: &Notification) -> Attempt {
        let token = match self.provider_token() {
            Ok(t) => t,
            Err(e) => return Attempt::Failed(format!("cannot sign the APNs provider token: {e}")),
        };
        let expiration = if self.expiration_s == 0 { 0 } else { system_now_ms() / 1000 + self.expiration_s as i64 };
        let request = self
            .http
            .post(format!("{}/3/device/{}", self.base_url, binding.push_id))
            .header("authorization", format!("bearer {token}"))
            .header("apns-topic", &self.topic)
            .header("apns-push-type", &self.push_type)
            .header("apns-priority", &self.priority)
            .header("apns-expiration", expiration.to_string())
            .header("apns-collapse-id", note.message_id.to_string())
            .json(&payload(note));
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return Attempt::Retry { after: None, reason: format!("APNs unreachable: {e}") },
        };
        let status = response.status();
        if status.is_success() {
            return Attempt::Sent;
        }
        let after = retry_after(response.headers());
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let why = body["reason"].as_str().unwrap_or_default().to_string();
        let reason = format!("APNs answered {status} {why}");
        match (status.as_u16(), why.as_str()) {
            (410, _) | (400, "BadDeviceToken") => Attempt::Dead(reason),
            (403, "ExpiredProviderToken") => {
                self.drop_provider_token(&token);
                Attempt::Retry { after: Some(Duration::ZERO), reason }
            }
            (429 | 500..=599, _) => Attempt::Retry { after, reason },
            _ => Attempt::Failed(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_maps_the_notification() {
        let note = Notification {
            message_id: 5,
            from_user_id: "admin".into(),
            title: "T".into(),
            content: "C".into(),
            payload: "P".into(),
            badge_increment: Some(1),
            thread_id: Some("th".into()),
            apns_image: Some("https://i/a.png".into()),
            ..Notification::default()
        };
        assert_eq!(
            payload(&note),
            json!({
                "aps": {"alert": {"title": "T", "body": "C"}, "badge": 1, "thread-id": "th", "mutable-content": 1},
                "payload": "P", "message_id": "5", "from_user_id": "admin", "image_url": "https://i/a.png",
            })
        );
    }
}
