//! Firebase Cloud Messaging, HTTP v1 API.
//!
//! Auth: the service account's RSA key signs a JWT assertion (RS256; `iss` = `client_email`,
//! `aud` = the token endpoint, scope `firebase.messaging`, one hour) that the OAuth2 token
//! endpoint exchanges for a bearer token. The token is cached and refreshed once three
//! quarters of its lifetime have passed, by one request at a time (the others wait for it); a
//! 401 from FCM drops it so the retry fetches a fresh one.
//!
//! Send: `POST {base_url}/v1/projects/{project}/messages:send`, one device per request.
//! Answers: 200 sent; `UNREGISTERED` (404) and 400 "invalid registration token" mean the
//! token is dead and the binding is removed; 429, 5xx and 401 are retried (honouring
//! `Retry-After`); anything else is a failure.

use super::channel::{http_client, retry_after, Attempt, PushSender};
use super::jwt::Signer;
use super::notification::Notification;
use crate::clock::system_now_ms;
use crate::config::FcmConfig;
use async_trait::async_trait;
use herald_store::PushBinding;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
const ASSERTION_LIFETIME_S: i64 = 3600;

#[derive(Deserialize)]
struct ServiceAccount {
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
}

struct Bearer {
    value: String,
    refresh_at: Instant,
    expires_at: Instant,
}

pub struct Fcm {
    http: reqwest::Client,
    send_url: String,
    token_url: String,
    client_email: String,
    key_id: Option<String>,
    signer: Signer,
    bearer: Mutex<Option<Bearer>>,
}

impl Fcm {
    pub fn new(config: &FcmConfig) -> Result<Fcm, String> {
        let path = &config.service_account_file;
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read service_account_file {}: {e}", path.display()))?;
        let account: ServiceAccount = serde_json::from_str(&text)
            .map_err(|e| format!("service_account_file {} is not a service-account JSON: {e}", path.display()))?;
        let signer = Signer::rs256_from_pem(&account.private_key)
            .map_err(|e| format!("service_account_file {}: private_key: {e}", path.display()))?;
        let project = config.project_id.clone().or(account.project_id).ok_or_else(|| {
            format!("no project id: set project_id, or use a service account file that has one ({})", path.display())
        })?;
        let token_url = config.token_url.clone().or(account.token_uri).unwrap_or_else(|| DEFAULT_TOKEN_URL.into());
        Ok(Fcm {
            http: http_client(&config.channel(), false)?,
            send_url: format!("{}/v1/projects/{project}/messages:send", config.base_url.trim_end_matches('/')),
            token_url,
            client_email: account.client_email,
            key_id: account.private_key_id,
            signer,
            bearer: Mutex::new(None),
        })
    }

    /// The cached bearer token, fetched or refreshed when due.
    async fn bearer(&self) -> Result<String, Attempt> {
        let mut cached = self.bearer.lock().await;
        let now = Instant::now();
        if let Some(b) = cached.as_ref().filter(|b| now < b.refresh_at) {
            return Ok(b.value.clone());
        }
        match self.fetch_bearer().await {
            Ok(fresh) => {
                let value = fresh.value.clone();
                *cached = Some(fresh);
                Ok(value)
            }
            // A refresh that fails early is no reason to stop using a token still valid.
            Err(e) => match cached.as_ref().filter(|b| now < b.expires_at) {
                Some(b) => Ok(b.value.clone()),
                None => Err(e),
            },
        }
    }

    async fn fetch_bearer(&self) -> Result<Bearer, Attempt> {
        let iat = system_now_ms() / 1000;
        let mut header = json!({});
        if let Some(kid) = &self.key_id {
            header["kid"] = json!(kid);
        }
        let claims = json!({
            "iss": self.client_email,
            "scope": SCOPE,
            "aud": self.token_url,
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME_S,
        });
        let assertion = self.signer.sign(header, &claims).map_err(Attempt::Failed)?;
        let form = [("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", &assertion)];
        let started = Instant::now();
        let response = self
            .http
            .post(&self.token_url)
            .form(&form)
            .send()
            .await
            .map_err(|e| Attempt::Retry { after: None, reason: format!("FCM token endpoint unreachable: {e}") })?;
        let status = response.status();
        if !status.is_success() {
            let after = retry_after(response.headers());
            let text = response.text().await.unwrap_or_default();
            let reason =
                format!("FCM token endpoint answered {status}: {}", text.chars().take(200).collect::<String>());
            return Err(if status.as_u16() == 429 || status.is_server_error() {
                Attempt::Retry { after, reason }
            } else {
                Attempt::Failed(reason)
            });
        }
        #[derive(Deserialize)]
        struct TokenAnswer {
            access_token: String,
            expires_in: u64,
        }
        let answer: TokenAnswer = response
            .json()
            .await
            .map_err(|e| Attempt::Retry { after: None, reason: format!("FCM token answer unreadable: {e}") })?;
        let lifetime = Duration::from_secs(answer.expires_in);
        tracing::debug!(expires_in = answer.expires_in, "FCM bearer token fetched");
        Ok(Bearer {
            value: answer.access_token,
            refresh_at: started + lifetime * 3 / 4,
            expires_at: started + lifetime,
        })
    }

    /// Forgets `value` if it is still the cached token (FCM refused it).
    async fn drop_bearer(&self, value: &str) {
        let mut cached = self.bearer.lock().await;
        if cached.as_ref().is_some_and(|b| b.value == value) {
            *cached = None;
        }
    }
}

/// The v1 `message` for one device. Empty fields are left out.
pub fn message(binding: &PushBinding, note: &Notification) -> Value {
    let mut notification = Map::new();
    for (key, value) in [("title", &note.title), ("body", &note.content)] {
        if !value.is_empty() {
            notification.insert(key.into(), json!(value));
        }
    }
    if let Some(image) = &note.fcm_image {
        notification.insert("image".into(), json!(image));
    }
    let mut message = json!({
        "token": binding.push_id,
        "data": {
            "payload": note.payload,
            "message_id": note.message_id.to_string(),
            "from_user_id": note.from_user_id,
        },
    });
    if !notification.is_empty() {
        message["notification"] = Value::Object(notification);
    }
    let mut android = Map::new();
    if let Some(icon) = &note.fcm_icon {
        android.insert("icon".into(), json!(icon));
    }
    if let Some(badge) = note.badge_increment {
        android.insert("notification_count".into(), json!(badge));
    }
    if !android.is_empty() {
        message["android"] = json!({ "notification": android });
    }
    let mut aps = Map::new();
    if let Some(thread) = &note.thread_id {
        aps.insert("thread-id".into(), json!(thread));
    }
    if let Some(badge) = note.badge_increment {
        aps.insert("badge".into(), json!(badge));
    }
    if !aps.is_empty() {
        message["apns"] = json!({ "payload": { "aps": aps } });
    }
    json!({ "message": message })
}

/// Whether an FCM error answer says the token is dead.
fn dead_token(status: u16, error: &Value) -> bool {
    let codes = error["details"].as_array().into_iter().flatten().filter_map(|d| d["errorCode"].as_str());
    let unregistered = codes.into_iter().any(|c| c == "UNREGISTERED");
    let message = error["message"].as_str().unwrap_or_default().to_ascii_lowercase();
    unregistered || (status == 400 && message.contains("registration token"))
}

#[async_trait]
impl PushSender for Fcm {
    fn name(&self) -> &'static str {
        "fcm"
    }

    async fn send(&self, _app_id: u32, binding: &PushBinding, note: &Notification) -> Attempt {
        let bearer = match self.bearer().await {
            Ok(b) => b,
            Err(attempt) => return attempt,
        };
        let request = self.http.post(&self.send_url).bearer_auth(&bearer).json(&message(binding, note));
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return Attempt::Retry { after: None, reason: format!("FCM unreachable: {e}") },
        };
        let status = response.status();
        if status.is_success() {
            return Attempt::Sent;
        }
        let after = retry_after(response.headers());
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let error = &body["error"];
        let reason = format!("FCM answered {status}: {}", error["message"].as_str().unwrap_or_default());
        match status.as_u16() {
            code if dead_token(code, error) => Attempt::Dead(reason),
            401 => {
                self.drop_bearer(&bearer).await;
                Attempt::Retry { after: Some(Duration::ZERO), reason }
            }
            429 | 500..=599 => Attempt::Retry { after, reason },
            _ => Attempt::Failed(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_store::PushProvider;

    #[test]
    fn message_maps_the_notification() {
        let binding = PushBinding {
            app_id: 1,
            user_id: "u".into(),
            device_id: "d".into(),
            push_id: "tok".into(),
            provider: PushProvider::Fcm,
            updated_at_ms: 0,
        };
        let note = Notification {
            message_id: 9,
            from_user_id: "admin".into(),
            title: "T".into(),
            content: "C".into(),
            payload: "P".into(),
            badge_increment: Some(3),
            thread_id: Some("th".into()),
            fcm_image: Some("https://i/f.png".into()),
            fcm_icon: Some("ic".into()),
            ..Notification::default()
        };
        assert_eq!(
            message(&binding, &note),
            json!({"message": {
                "token": "tok",
                "notification": {"title": "T", "body": "C", "image": "https://i/f.png"},
                "data": {"payload": "P", "message_id": "9", "from_user_id": "admin"},
                "android": {"notification": {"icon": "ic", "notification_count": 3}},
                "apns": {"payload": {"aps": {"thread-id": "th", "badge": 3}}},
            }})
        );
        let bare = message(&binding, &Notification { content: "C".into(), ..Notification::default() });
        assert_eq!(bare["message"]["notification"], json!({"body": "C"}));
        assert!(bare["message"].get("android").is_none() && bare["message"].get("apns").is_none());
    }

    #[test]
    fn dead_token_answers() {
        let unregistered = json!({"message": "Requested entity was not found.", "status": "NOT_FOUND",
            "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]});
        assert!(dead_token(404, &unregistered));
        let invalid = json!({"message": "The registration token is not a valid FCM registration token",
            "status": "INVALID_ARGUMENT"});
        assert!(dead_token(400, &invalid));
        let other = json!({"message": "Invalid JSON payload received.", "status": "INVALID_ARGUMENT"});
        assert!(!dead_token(400, &other));
        assert!(!dead_token(503, &Value::Null));
    }
}
