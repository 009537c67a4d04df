//! Broadcast records: exact round trip and the online count.

use super::{broadcast, T0};
use herald_store::{Acceptance, BroadcastRecord, MessageType, PushType, RateDecision, Store};

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
        recovered_delivered: 0,
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
    assert_eq!(get(app, 42).await, Some(want.clone()), "broadcasts: online_delivered added to the right record only");

    // Recovered deliveries add up apart from live ones.
    store.add_broadcast_recovered(app, 42, 2).await.expect("add failed");
    store.add_broadcast_recovered(app, 42, 3).await.expect("add failed");
    let want = BroadcastRecord { recovered_delivered: 5, ..want };
    assert_eq!(get(app, 42).await, Some(want), "broadcasts: recovered_delivered adds up apart from online_delivered");
}

/// A starting node's recovery window: the newest broadcasts since a time that went online,
/// oldest first, capped; other apps' and PushType 2 broadcasts are not in it.
pub async fn recent_broadcasts(store: &dyn Store) {
    let app = 4_000_000_030;
    let at = |message_id: u64, accepted_at_ms: i64, push_type: PushType| {
        broadcast(app, message_id, push_type, accepted_at_ms)
    };
    let records = [
        at(10, T0 - 5_000, PushType::OnlineOnly),
        at(11, T0, PushType::OnlineAndOffline),
        at(12, T0 + 1_000, PushType::OfflineOnly),
        // Same millisecond: the message id breaks the tie.
        at(14, T0 + 2_000, PushType::OnlineOnly),
        at(13, T0 + 2_000, PushType::OnlineOnly),
        at(u64::MAX, T0 + 3_000, PushType::OnlineOnly),
    ];
    for r in &records {
        store.insert_broadcast(r).await.expect("insert_broadcast failed");
    }
    store.insert_broadcast(&BroadcastRecord { app_id: app + 1, ..at(15, T0 + 1, PushType::OnlineOnly) }).await.unwrap();
    let ids = |rs: Vec<BroadcastRecord>| rs.into_iter().map(|r| r.message_id).collect::<Vec<_>>();
    let recent = store.recent_broadcasts(app, T0, 100).await.expect("recent_broadcasts failed");
    assert_eq!(ids(recent), [11, 13, 14, u64::MAX], "recent: since T0, online ones, oldest first");
    let newest = store.recent_broadcasts(app, T0 - 10_000, 2).await.expect("recent_broadcasts failed");
    assert_eq!(ids(newest), [14, u64::MAX], "recent: the cap keeps the newest");
    assert!(store.recent_broadcasts(app, T0 + 4_000, 10).await.unwrap().is_empty(), "recent: none that new");
}

/// Accepting a broadcast: an unknown sender or a full rate window writes nothing; an accepted
/// one is recorded and takes its slot.
pub async fn accept_broadcast(store: &dyn Store) {
    let app = 4_000_000_050;
    let record = |message_id: u64, from: &str, at: i64| BroadcastRecord {
        app_id: app,
        message_id,
        from_user_id: from.into(),
        message_type: MessageType::Text,
        sub_type: 0,
        push_type: PushType::OnlineAndOffline,
        body_json: r#"{"Message":"hi"}"#.into(),
        accepted_at_ms: at,
        online_delivered: 0,
        recovered_delivered: 0,
    };
    store.ensure_user(app, "admin", "", T0).await.expect("ensure_user");
    let get = |id| async move { store.get_broadcast(app, id).await.expect("get_broadcast") };
    assert_eq!(store.accept_broadcast(&record(1, "nobody", T0), 1, 2).await.unwrap(), Acceptance::SenderUnknown);
    assert_eq!(get(1).await, None, "accept: an unknown sender writes nothing");
    assert_eq!(store.accept_broadcast(&record(2, "admin", T0), 1, 2).await.unwrap(), Acceptance::Accepted);
    assert_eq!(get(2).await, Some(record(2, "admin", T0)), "accept: recorded");
    assert!(store.get_push_job(app, 2).await.unwrap().is_some(), "accept: with its push job");
    assert_eq!(
        store.accept_broadcast(&record(3, "admin", T0 + 500), 1, 2).await.unwrap(),
        Acceptance::Refused(RateDecision::PerSecondExceeded)
    );
    assert_eq!(get(3).await, None, "accept: a refused one writes nothing");
    assert_eq!(store.accept_broadcast(&record(4, "admin", T0 + 1_000), 1, 2).await.unwrap(), Acceptance::Accepted);
    assert_eq!(
        store.accept_broadcast(&record(5, "admin", T0 + 2_000), 1, 2).await.unwrap(),
        Acceptance::Refused(RateDecision::PerDayExceeded),
        "accept: two in the day already"
    );
    assert_eq!(store.count_broadcast_calls(app, T0).await.unwrap(), 2, "accept: only accepted calls took slots");
}
