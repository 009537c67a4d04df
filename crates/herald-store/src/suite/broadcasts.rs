//! Broadcast records: exact round trip and the online count.

use super::T0;
use crate::{BroadcastRecord, MessageType, PushType, Store};

/// Records round-trip exactly, u64 ids and counts above i64::MAX included.
pub async fn broadcasts(store: &dyn Store) {
    let app = 4_000_000_012;
    let record = BroadcastRecord {
        app_id: app,
        message_id: u64::MAX - 7,
        from_user_id: "admin".into(),
        message_type: MessageType::Custom,
        sub_type: 200,
        push_type: PushType::OfflineOnly,
        body_json: r#"{"Message":"héllo","OfflinePush":{"Title":"t"}}"#.into(),
        accepted_at_ms: T0,
        online_delivered: 0,
    };
    let small = BroadcastRecord { message_id: 42, ..record.clone() };
    store.insert_broadcast(&record).await.expect("insert_broadcast failed");
    store.insert_broadcast(&small).await.expect("insert_broadcast failed");
    assert!(store.insert_broadcast(&record).await.is_err(), "broadcasts: a duplicate message id must be refused");

    let get = |app, id| async move { store.get_broadcast(app, id).await.expect("get_broadcast failed") };
    assert_eq!(get(app, record.message_id).await, Some(record.clone()), "broadcasts: round trip");
    assert_eq!(get(app, 42).await, Some(small.clone()), "broadcasts: round trip of a small id");
    assert_eq!(get(app, 43).await, None, "broadcasts: unknown id is None");
    assert_eq!(get(app + 1, 42).await, None, "broadcasts: another app's id is None");

    // Two nodes add their shares of one broadcast; the other broadcast is untouched.
    store.add_broadcast_online_delivered(app, record.message_id, 5).await.expect("add failed");
    store.add_broadcast_online_delivered(app, record.message_id, 7).await.expect("add failed");
    store.add_broadcast_online_delivered(app, 42, 12_345).await.expect("add failed");
    let want = BroadcastRecord { online_delivered: 12, ..record };
    assert_eq!(get(app, want.message_id).await, Some(want), "broadcasts: online_delivered adds up the nodes' shares");
    let want = BroadcastRecord { online_delivered: 12_345, ..small };
    assert_eq!(get(app, 42).await, Some(want), "broadcasts: online_delivered added to the right record only");
}
