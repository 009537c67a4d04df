//! The broadcast domain: what an accepted `SendMessageToAllUsers` is, the steps that accept one
//! durably (the sender exists, a rate slot, the record and its push job), and the contracts of
//! what acts on it ([`Dispatch`]) and of who is online ([`Presence`]).
//!
//! Transports (`api/`, `gateway/`) call this module; engines (`hub/`, `push/`, `cluster/`)
//! implement its traits. It imports none of them, so the arrows point one way.

mod presence;
mod report;

pub use presence::Presence;
pub use report::report_fields;

use crate::config::AppLimits;
use bytes::Bytes;
use herald_proto::frame::{self, ServerFrame, ZimMessage};
use herald_proto::message::PushType;
use herald_proto::ws::{self, Opcode};
use herald_store::{Acceptance, BroadcastRecord, RateDecision, Store, StoreError};
use serde_json::Value;
use std::sync::Arc;

/// A broadcast: its durable record plus the two strings every session is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broadcast {
    pub record: BroadcastRecord,
    /// `MessageBody.Message`: the text, or for media types the JSON string as received.
    pub message: String,
    /// `MessageBody.ExtendedData`, empty when absent.
    pub extended_data: String,
}

impl Broadcast {
    pub fn app_id(&self) -> u32 {
        self.record.app_id
    }

    pub fn message_id(&self) -> u64 {
        self.record.message_id
    }

    pub fn push_type(&self) -> PushType {
        self.record.push_type
    }

    /// Rebuilds a broadcast from its stored record: `Message` and `ExtendedData` come from the
    /// `MessageBody` JSON kept in the record.
    pub fn from_record(record: BroadcastRecord) -> Result<Broadcast, StoreError> {
        let corrupt = |why: &str| StoreError::Corrupt(format!("broadcast {}: {why}", record.message_id));
        let body: Value = serde_json::from_str(&record.body_json).map_err(|_| corrupt("body is not JSON"))?;
        let message = body.get("Message").and_then(Value::as_str).ok_or_else(|| corrupt("body has no Message"))?;
        let extended_data = body.get("ExtendedData").and_then(Value::as_str).unwrap_or_default();
        let (message, extended_data) = (message.to_string(), extended_data.to_string());
        Ok(Broadcast { record, message, extended_data })
    }

    /// The `bcast` frame with its WebSocket header, in one buffer: encoded once, and the same
    /// bytes go to every session.
    pub fn encode_frame(&self) -> Bytes {
        let r = &self.record;
        let json = frame::encode_server(&ServerFrame::Bcast {
            msg: ZimMessage {
                message_id: r.message_id.to_string(),
                sender_user_id: r.from_user_id.clone(),
                timestamp: r.accepted_at_ms,
                message_type: r.message_type.code(),
                message: self.message.clone(),
                extended_data: self.extended_data.clone(),
                sub_type: r.sub_type,
                is_broadcast_message: true,
                is_server_message: true,
            },
        });
        ws::server_frame(Opcode::Text, &json)
    }
}

/// Something that acts on every accepted broadcast: the online fan-out, the push worker.
/// Implementations start their work and return at once; the API answers without waiting.
pub trait Dispatch: Send + Sync + 'static {
    fn dispatch(&self, broadcast: &Arc<Broadcast>);
}

/// Every engine that acts on an accepted broadcast, each deciding from its `PushType` what to do.
pub struct Dispatchers(pub Vec<Arc<dyn Dispatch>>);

impl Dispatch for Dispatchers {
    fn dispatch(&self, broadcast: &Arc<Broadcast>) {
        for engine in &self.0 {
            engine.dispatch(broadcast);
        }
    }
}

/// Why an otherwise valid broadcast was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("FromUserId {0:?} is not registered: register it with UserRegister or log it in once")]
    SenderNotRegistered(String),
    #[error("SendMessageToAllUsers frequency exceeded: at most {0} call(s) per second for this app")]
    PerSecondExceeded(u32),
    #[error("SendMessageToAllUsers frequency exceeded: at most {0} calls in any 24 hours for this app")]
    PerDayExceeded(u32),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Accepts broadcasts: the durable steps, then the hand-off to the engines.
pub struct Broadcaster {
    store: Arc<dyn Store>,
    dispatch: Arc<dyn Dispatch>,
}

impl Broadcaster {
    pub fn new(store: Arc<dyn Store>, dispatch: Arc<dyn Dispatch>) -> Broadcaster {
        Broadcaster { store, dispatch }
    }

    /// The steps after the request itself was found valid (spec §1.7, steps 7–9): the sender
    /// must exist, the app must have a rate slot at the broadcast's accept time, and the record
    /// (with its push job for PushType 1 and 2, in the same transaction) is written before this
    /// returns — so once the API answers `Code: 0`, the offline pushes survive any crash.
    pub async fn accept(&self, limits: &AppLimits, broadcast: Broadcast) -> Result<Arc<Broadcast>, AcceptError> {
        let r = &broadcast.record;
        let (per_second, per_day) = (limits.broadcast_per_second, limits.broadcast_per_day);
        match self.store.accept_broadcast(r, per_second, per_day).await? {
            Acceptance::Accepted => {}
            Acceptance::SenderUnknown => return Err(AcceptError::SenderNotRegistered(r.from_user_id.clone())),
            Acceptance::Refused(RateDecision::PerDayExceeded) => return Err(AcceptError::PerDayExceeded(per_day)),
            Acceptance::Refused(_) => return Err(AcceptError::PerSecondExceeded(per_second)),
        }
        tracing::info!(app_id = r.app_id, message_id = r.message_id, push_type = %r.push_type, "broadcast accepted");
        let broadcast = Arc::new(broadcast);
        self.dispatch.dispatch(&broadcast);
        Ok(broadcast)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_proto::message::MessageType;

    fn record(body_json: &str) -> BroadcastRecord {
        BroadcastRecord {
            app_id: 7,
            message_id: u64::MAX - 1,
            from_user_id: "admin".into(),
            message_type: MessageType::Custom,
            sub_type: 3,
            push_type: PushType::OnlineAndOffline,
            body_json: body_json.into(),
            accepted_at_ms: 1_700_000_000_123,
            online_delivered: 0,
            recovered_delivered: 0,
        }
    }

    #[test]
    fn a_stored_record_gives_back_the_same_frame() {
        let b = Broadcast::from_record(record(r#"{"Message":"{\"k\":1}","ExtendedData":"x"}"#)).unwrap();
        assert_eq!((b.message.as_str(), b.extended_data.as_str()), (r#"{"k":1}"#, "x"));
        let mut wire = bytes::BytesMut::from(&b.encode_frame()[..]);
        let decoded = ws::Decoder::new(1 << 16, ws::Role::Client).decode(&mut wire).unwrap();
        let Some(ws::Message::Text(text)) = decoded else { panic!("one text frame, got {decoded:?}") };
        let json: Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(json["t"], "bcast");
        let msg = &json["msg"];
        assert_eq!(msg["messageID"], (u64::MAX - 1).to_string());
        assert_eq!((msg["type"].as_u64(), msg["subType"].as_u64()), (Some(200), Some(3)));
        assert_eq!(msg["timestamp"].as_i64(), Some(1_700_000_000_123));
        assert_eq!((msg["message"].as_str(), msg["extendedData"].as_str()), (Some(r#"{"k":1}"#), Some("x")));
    }

    #[test]
    fn a_record_without_its_message_is_corrupt() {
        for body in ["not json", r#"{"ExtendedData":"x"}"#, r#"{"Message":5}"#] {
            assert!(matches!(Broadcast::from_record(record(body)), Err(StoreError::Corrupt(_))), "{body}");
        }
        let b = Broadcast::from_record(record(r#"{"Message":"hi"}"#)).unwrap();
        assert_eq!(b.extended_data, "", "ExtendedData is optional");
    }
}
