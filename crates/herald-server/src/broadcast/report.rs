//! What became of a broadcast: the fields of `QueryBroadcastReport`, shared by the server API
//! and the admin console so the two never tell it differently.

use herald_store::{BroadcastRecord, PushJob};
use serde_json::{json, Value};

/// The report's fields, in the order they are answered.
pub fn report_fields(record: &BroadcastRecord, job: Option<&PushJob>) -> Vec<(&'static str, Value)> {
    let push = match job {
        None => json!({"State": "none"}),
        Some(job) => json!({
            "State": job.state.as_str(),
            "Targeted": job.counts.targeted,
            "Sent": job.counts.sent,
            "Failed": job.counts.failed,
            "RemovedBindings": job.counts.removed,
            "SkippedOnline": job.counts.skipped_online,
            "UpdatedAt": job.updated_at_ms,
            "FinishedAt": job.finished_at_ms,
        }),
    };
    vec![
        ("MessageId", json!(record.message_id.to_string())),
        ("FromUserId", json!(record.from_user_id)),
        ("MessageType", json!(record.message_type.code())),
        ("PushType", json!(record.push_type.code())),
        ("AcceptedAt", json!(record.accepted_at_ms)),
        ("OnlineDelivered", json!(record.online_delivered)),
        // Sessions that missed it and got it replayed on reconnect (recovery), counted apart.
        ("RecoveredDelivered", json!(record.recovered_delivered)),
        ("OfflinePush", push),
    ]
}
