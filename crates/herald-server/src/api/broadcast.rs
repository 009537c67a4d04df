//! `SendMessageToAllUsers`: validation in the spec's order (§1.7), then the record, the rate
//! windows and the hand-off to the fan-out. The answer does not wait for delivery.

use super::error::ApiError;
use super::json;
use super::response::Fields;
use super::Api;
use crate::config::AppConfig;
use herald_proto::user_id::check_user_id;
use herald_store::{BroadcastRecord, RateDecision};
use std::sync::Arc;

/// Custom messages (type 200) carry a `SubMsgType` in this range.
const SUB_MSG_TYPE_MAX: i64 = 200;
const CUSTOM_TYPE: u32 = 200;

/// A broadcast the API accepted; everything the fan-out and the push worker need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedBroadcast {
    pub app_id: u32,
    pub message_id: u64,
    pub from_user_id: String,
    pub message_type: u32,
    pub sub_type: u32,
    /// 0 online only, 1 online and offline push, 2 offline push only.
    pub push_type: u8,
    pub message: String,
    pub extended_data: String,
    /// The server's accept time, Unix ms: the ZIMMessage `timestamp`.
    pub timestamp_ms: i64,
    /// `MessageBody` as received, for offline-push fields.
    pub body_json: String,
}

impl AcceptedBroadcast {
    pub fn reaches_online_sessions(&self) -> bool {
        self.push_type != 2
    }
}

/// The call's `RequestId` becomes the broadcast's message ID, so the app backend — whose answer
/// carries only ZIM's three common fields — can name the broadcast in `QueryBroadcastReport`.
pub async fn send_to_all(
    api: &Api,
    app: &AppConfig,
    body: &[u8],
    now_ms: i64,
    request_id: u64,
) -> Result<Fields, ApiError> {
    if !app.broadcast_enabled {
        return Err(ApiError::BroadcastDisabled);
    }
    let obj = json::parse_object(body)?;
    let from = json::req_str(&obj, "FromUserId", "FromUserId")?;
    check_user_id(from).map_err(|e| ApiError::param(format!("FromUserId: {e}")))?;
    let message_type = json::req_int(&obj, "MessageType", "MessageType")?;
    let message_type = u32::try_from(message_type)
        .ok()
        .filter(|t| app.limits.broadcast_message_types.contains(t))
        .ok_or_else(|| {
            ApiError::param(format!(
                "MessageType {message_type} cannot be broadcast; allowed: {:?}",
                app.limits.broadcast_message_types
            ))
        })?;
    let sub_type = json::opt_int(&obj, "SubMsgType", "SubMsgType")?;
    if let Some(s) = sub_type {
        if !(0..=SUB_MSG_TYPE_MAX).contains(&s) {
            return Err(ApiError::param(format!("SubMsgType {s} is out of range 0..={SUB_MSG_TYPE_MAX}")));
        }
    }
    if message_type == CUSTOM_TYPE && sub_type.is_none() {
        return Err(ApiError::param("SubMsgType is required when MessageType is 200 (custom)"));
    }
    let push_type = match json::opt_int(&obj, "PushType", "PushType")? {
        None => 0,
        Some(p @ 0..=2) => p as u8,
        Some(p) => return Err(ApiError::param(format!("PushType {p} is not one of 0, 1, 2"))),
    };
    let message_body = json::opt_object(&obj, "MessageBody", "MessageBody")?
        .ok_or_else(|| ApiError::param("MessageBody is required"))?;
    let message = json::req_str(message_body, "Message", "MessageBody.Message")?;
    if message.is_empty() {
        return Err(ApiError::param("MessageBody.Message must not be empty"));
    }
    let extended_data = json::opt_str(message_body, "ExtendedData", "MessageBody.ExtendedData")?.unwrap_or("");
    if let Some(push) = json::opt_object(message_body, "OfflinePush", "MessageBody.OfflinePush")? {
        for key in ["Title", "Content", "Payload", "PushStrategyId", "ThreadId"] {
            json::opt_str(push, key, &format!("MessageBody.OfflinePush.{key}"))?;
        }
    }
    if (11..=14).contains(&message_type) && serde_json::from_str::<json::Object>(message).is_err() {
        return Err(ApiError::param(format!(
            "MessageBody.Message of a media message (type {message_type}) must be a JSON object string"
        )));
    }
    if message.len() > app.limits.message_max_bytes {
        return Err(ApiError::MessageTooLarge(format!(
            "MessageBody.Message is {} bytes; this app allows at most {} (apps.limits.message_max_bytes)",
            message.len(),
            app.limits.message_max_bytes
        )));
    }
    if extended_data.len() > app.limits.extended_data_max_bytes {
        return Err(ApiError::MessageTooLarge(format!(
            "MessageBody.ExtendedData is {} bytes; this app allows at most {} (apps.limits.extended_data_max_bytes)",
            extended_data.len(),
            app.limits.extended_data_max_bytes
        )));
    }
    if !api.store.user_exists(app.app_id, from).await? {
        return Err(ApiError::SenderNotRegistered(from.to_string()));
    }
    let limits = &app.limits;
    match api
        .store
        .try_acquire_broadcast_slot(app.app_id, now_ms, limits.broadcast_per_second, limits.broadcast_per_day)
        .await?
    {
        RateDecision::Allowed => {}
        RateDecision::PerSecondExceeded => {
            return Err(ApiError::BroadcastRateLimited(format!(
                "SendMessageToAllUsers frequency exceeded: at most {} call(s) per second for this app",
                limits.broadcast_per_second
            )))
        }
        RateDecision::PerDayExceeded => {
            return Err(ApiError::BroadcastRateLimited(format!(
                "SendMessageToAllUsers frequency exceeded: at most {} calls in any 24 hours for this app",
                limits.broadcast_per_day
            )))
        }
    }
    let accepted = AcceptedBroadcast {
        app_id: app.app_id,
        message_id: request_id,
        from_user_id: from.to_string(),
        message_type,
        sub_type: sub_type.unwrap_or(0) as u32,
        push_type,
        message: message.to_string(),
        extended_data: extended_data.to_string(),
        timestamp_ms: now_ms,
        body_json: serde_json::Value::Object(message_body.clone()).to_string(),
    };
    // With PushType 1 or 2 this also writes the push job, in the same transaction: once the
    // answer says Code 0, the offline pushes survive any crash.
    api.store
        .insert_broadcast(&BroadcastRecord {
            app_id: accepted.app_id,
            message_id: accepted.message_id,
            from_user_id: accepted.from_user_id.clone(),
            message_type: accepted.message_type,
            sub_type: accepted.sub_type,
            push_type: accepted.push_type,
            body_json: accepted.body_json.clone(),
            accepted_at_ms: accepted.timestamp_ms,
            online_delivered: 0,
        })
        .await?;
    tracing::info!(app_id = app.app_id, message_id = accepted.message_id, push_type, "broadcast accepted");
    api.dispatch.dispatch(Arc::new(accepted));
    Ok(Vec::new())
}
