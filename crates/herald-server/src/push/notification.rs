//! What an offline push says, taken once per job from the broadcast's `MessageBody`.
//!
//! Mapping (README "Offline push" has the per-provider table): `OfflinePush.Title`, `Content`
//! and `Payload` are the notification's title, body and pass-through data; a text message
//! (type 1) without `OfflinePush.Content` shows its `Message`. `EnableBadge`/`BadgeIncrement`
//! (clamped to 0..=99), `ThreadId` and `PushImageInfo` go where a provider has a field for them.
//! `OfflinePush.Enable` is not consulted: for a broadcast, `PushType` 1 or 2 is the request to
//! push (ZIM does not document how the two interact; this is Herald's choice).

use herald_store::{BroadcastRecord, MessageType};
use serde_json::Value;

/// ZIM's documented ceiling for `BadgeIncrement`; larger values count as 99.
const BADGE_MAX: u64 = 99;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notification {
    pub message_id: u64,
    pub from_user_id: String,
    /// The ZIM `MessageType` number, as the webhook sends it.
    pub message_type: u32,
    pub title: String,
    pub content: String,
    pub payload: String,
    /// `Some(increment)` when `EnableBadge` is true.
    pub badge_increment: Option<u32>,
    pub thread_id: Option<String>,
    /// `PushImageInfo.Apns.Image` (also accepted as ZIM's misspelt `mage`).
    pub apns_image: Option<String>,
    /// `PushImageInfo.Android.FCM.Image` and `.Icon`.
    pub fcm_image: Option<String>,
    pub fcm_icon: Option<String>,
}

impl Notification {
    pub fn from_broadcast(record: &BroadcastRecord) -> Notification {
        // The body was validated as a JSON object when the API accepted it.
        let body: Value = serde_json::from_str(&record.body_json).unwrap_or(Value::Null);
        let push = &body["OfflinePush"];
        let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
        let mut content = text(&push["Content"]).unwrap_or_default();
        if content.is_empty() && record.message_type == MessageType::Text {
            content = text(&body["Message"]).unwrap_or_default();
        }
        let badge_on = push["EnableBadge"].as_bool().unwrap_or(false) || push["EnableBadge"].as_i64() == Some(1);
        let increment = push["BadgeIncrement"].as_u64().unwrap_or(0).min(BADGE_MAX) as u32;
        let images = &push["PushImageInfo"];
        Notification {
            message_id: record.message_id,
            from_user_id: record.from_user_id.clone(),
            message_type: record.message_type.code(),
            title: text(&push["Title"]).unwrap_or_default(),
            content,
            payload: text(&push["Payload"]).unwrap_or_default(),
            badge_increment: badge_on.then_some(increment),
            thread_id: text(&push["ThreadId"]),
            apns_image: text(&images["Apns"]["Image"]).or_else(|| text(&images["Apns"]["mage"])),
            fcm_image: text(&images["Android"]["FCM"]["Image"]),
            fcm_icon: text(&images["Android"]["FCM"]["Icon"]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(message_type: MessageType, body: &str) -> BroadcastRecord {
        BroadcastRecord {
            app_id: 1,
            message_id: 7,
            from_user_id: "admin".into(),
            message_type,
            sub_type: 0,
            push_type: herald_store::PushType::OfflineOnly,
            body_json: body.into(),
            accepted_at_ms: 0,
            online_delivered: 0,
            recovered_delivered: 0,
        }
    }

    #[test]
    fn offline_push_fields_map() {
        let n = Notification::from_broadcast(&record(
            MessageType::Custom,
            r#"{"Message":"raw","OfflinePush":{"Enable":0,"Title":"T","Content":"C","Payload":"P",
                "EnableBadge":true,"BadgeIncrement":150,"ThreadId":"th",
                "PushImageInfo":{"Apns":{"mage":"https://i/a.png"},"Android":{"FCM":{"Image":"https://i/f.png","Icon":"https://i/i.png"}}}}}"#,
        ));
        assert_eq!((n.title.as_str(), n.content.as_str(), n.payload.as_str()), ("T", "C", "P"));
        assert_eq!(n.badge_increment, Some(99), "BadgeIncrement above 99 counts as 99");
        assert_eq!(n.thread_id.as_deref(), Some("th"));
        assert_eq!(n.apns_image.as_deref(), Some("https://i/a.png"));
        assert_eq!(n.fcm_image.as_deref(), Some("https://i/f.png"));
        assert_eq!(n.fcm_icon.as_deref(), Some("https://i/i.png"));
    }

    #[test]
    fn text_falls_back_to_its_message_and_others_do_not() {
        let n = Notification::from_broadcast(&record(MessageType::Text, r#"{"Message":"hello"}"#));
        assert_eq!((n.title.as_str(), n.content.as_str(), n.badge_increment), ("", "hello", None));
        let n = Notification::from_broadcast(&record(
            MessageType::Text,
            r#"{"Message":"hello","OfflinePush":{"Title":"T"}}"#,
        ));
        assert_eq!((n.title.as_str(), n.content.as_str()), ("T", "hello"));
        let n = Notification::from_broadcast(&record(MessageType::Custom, r#"{"Message":"{\"k\":1}"}"#));
        assert_eq!(n.content, "", "a custom message's raw text is not shown");
    }
}
