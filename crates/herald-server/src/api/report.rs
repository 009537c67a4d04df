//! `QueryBroadcastReport` (Herald's own action, beyond ZIM): what became of one
//! `SendMessageToAllUsers` call — sessions reached online (live, and by recovery after a
//! reconnect) and the offline-push job's state and counts. Signed and answered like every ZIM
//! action.

use super::error::ApiError;
use super::json;
use super::response::Fields;
use super::Api;
use crate::config::AppConfig;
use serde_json::Value;

/// Body `{"MessageId": "<id>"}`: the `RequestId` the `SendMessageToAllUsers` call answered
/// with, which is also the broadcast's message ID (`RequestId` is accepted as the key too). A
/// decimal string, as ids travel everywhere else, or a number. Unknown ids answer 660000002.
pub async fn query(api: &Api, app: &AppConfig, body: &[u8]) -> Result<Fields, ApiError> {
    let obj = json::parse_object(body)?;
    let message_id = match obj.get("MessageId").or_else(|| obj.get("RequestId")) {
        None | Some(Value::Null) => return Err(ApiError::param("MessageId is required")),
        Some(Value::String(s)) => s.parse::<u64>().ok(),
        Some(Value::Number(n)) => n.as_u64(),
        Some(other) => return Err(ApiError::param(format!("MessageId must be a string, got {}", json::kind(other)))),
    }
    .ok_or_else(|| ApiError::param("MessageId must be a decimal 64-bit message id"))?;
    let Some(record) = api.store.get_broadcast(app.app_id, message_id).await? else {
        return Err(ApiError::param(format!("no broadcast with MessageId {message_id} in this app")));
    };
    let job = api.store.get_push_job(app.app_id, message_id).await?;
    Ok(crate::broadcast::report_fields(&record, job.as_ref()))
}
