//! `SendMessageToAllUsers`: the request checked in the spec's order (§1.7, steps 2–6), then
//! handed to [`crate::broadcast::Broadcaster::accept`] for the durable steps. The answer does not
//! wait for delivery.

use super::error::ApiError;
use super::json;
use super::response::Fields;
use super::Api;
use crate::broadcast::Broadcast;
use crate::config::AppConfig;
use herald_proto::message::{MessageType, PushType};
use herald_proto::user_id::check_user_id;
use herald_store::BroadcastRecord;

/// Custom messages (type 200) carry a `SubMsgType` in this range.
const SUB_MSG_TYPE_MAX: i64 = 200;

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
    check_user_id(from).map_err(ApiError::FromUserId)?;
    let type_code = json::req_int(&obj, "MessageType", "MessageType")?;
    let message_type = MessageType::from_code(type_code)
        .ok()
        .filter(|t| t.is_broadcastable() && app.limits.broadcast_message_types.contains(&t.code()))
        .ok_or_else(|| {
            let allowed = &app.limits.broadcast_message_types;
            ApiError::param(format!("MessageType {type_code} cannot be broadcast; allowed: {allowed:?}"))
        })?;
    let sub_type = json::opt_int(&obj, "SubMsgType", "SubMsgType")?;
    if let Some(s) = sub_type {
        if !(0..=SUB_MSG_TYPE_MAX).contains(&s) {
            return Err(ApiError::param(format!("SubMsgType {s} is out of range 0..={SUB_MSG_TYPE_MAX}")));
        }
    }
    if message_type.has_sub_type() && sub_type.is_none() {
        return Err(ApiError::param("SubMsgType is required when MessageType is 200 (custom)"));
    }
    let push_type = match json::opt_int(&obj, "PushType", "PushType")? {
        None => PushType::default(),
        Some(p) => PushType::from_code(p).map_err(|e| ApiError::param(e.to_string()))?,
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
    if message_type.is_media() && serde_json::from_str::<json::Object>(message).is_err() {
        return Err(ApiError::param(format!(
            "MessageBody.Message of a media message (type {message_type}) must be a JSON object string"
        )));
    }
    let limits = &app.limits;
    for (field, len, max, key) in [
        ("Message", message.len(), limits.message_max_bytes, "message_max_bytes"),
        ("ExtendedData", extended_data.len(), limits.extended_data_max_bytes, "extended_data_max_bytes"),
    ] {
        if len > max {
            return Err(ApiError::MessageTooLarge { field, len, max, key });
        }
    }
    let broadcast = Broadcast {
        record: BroadcastRecord {
            app_id: app.app_id,
            message_id: request_id,
            from_user_id: from.to_string(),
            message_type,
            sub_type: sub_type.unwrap_or(0) as u32,
            push_type,
            body_json: serde_json::Value::Object(message_body.clone()).to_string(),
            accepted_at_ms: now_ms,
            online_delivered: 0,
            recovered_delivered: 0,
        },
        message: message.to_string(),
        extended_data: extended_data.to_string(),
    };
    api.broadcaster.accept(limits, broadcast).await?;
    Ok(Vec::new())
}
