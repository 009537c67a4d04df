//! The webhook provider: one signed JSON POST per device to the app's own server, which then
//! pushes however it likes.
//!
//! The body carries ZIM's callback fields (`appid` as a string, `event`, `nonce`, `timestamp`
//! in seconds, `signature` = sha1 over the sorted secret, timestamp and nonce) and the push:
//! `user_id`, `device_id`, `push_id`, `message_id`, `from_user_id`, `message_type`, `title`,
//! `content`, `payload`, and `badge_increment`/`thread_id` when set. Any 2xx is success; 410
//! Gone means the push ID is dead (the binding is removed); 408, 429 and 5xx are retried, as
//! are connection failures; any other status is a failure.

use super::channel::{http_client, retry_after, Attempt, PushSender};
use super::notification::Notification;
use crate::clock::Clock;
use crate::config::WebhookConfig;
use async_trait::async_trait;
use herald_proto::signature::callback_signature;
use herald_store::PushBinding;
use rand::Rng;
use serde_json::json;
use std::sync::Arc;

/// The `event` of an offline-push webhook call.
pub const EVENT: &str = "offline_push";

pub struct Webhook {
    url: String,
    secret: String,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
}

impl Webhook {
    pub fn new(config: &WebhookConfig, server_secret: &str, clock: Arc<dyn Clock>) -> Result<Webhook, String> {
        let secret = config.secret.as_ref().map_or(server_secret, |s| s.expose()).to_string();
        Ok(Webhook { url: config.url.clone(), secret, http: http_client(&config.channel(), false)?, clock })
    }
}

#[async_trait]
impl PushSender for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn send(&self, app_id: u32, binding: &PushBinding, note: &Notification) -> Attempt {
        let timestamp = self.clock.now_s();
        let nonce = rand::thread_rng().gen::<u64>().to_string();
        let mut body = json!({
            "appid": app_id.to_string(),
            "event": EVENT,
            "nonce": nonce,
            "timestamp": timestamp,
            "signature": callback_signature(&self.secret, timestamp, &nonce),
            "user_id": binding.user_id,
            "device_id": binding.device_id,
            "push_id": binding.push_id,
            "message_id": note.message_id.to_string(),
            "from_user_id": note.from_user_id,
            "message_type": note.message_type,
            "title": note.title,
            "content": note.content,
            "payload": note.payload,
        });
        if let Some(badge) = note.badge_increment {
            body["badge_increment"] = json!(badge);
        }
        if let Some(thread) = &note.thread_id {
            body["thread_id"] = json!(thread);
        }
        let response = match self.http.post(&self.url).json(&body).send().await {
            Ok(r) => r,
            Err(e) => return Attempt::Retry { after: None, reason: format!("webhook unreachable: {e}") },
        };
        let status = response.status();
        match status.as_u16() {
            200..=299 => Attempt::Sent,
            410 => Attempt::Dead("webhook answered 410 Gone".into()),
            408 | 429 | 500..=599 => {
                Attempt::Retry { after: retry_after(response.headers()), reason: format!("webhook answered {status}") }
            }
            _ => Attempt::Failed(format!("webhook answered {status}")),
        }
    }
}
