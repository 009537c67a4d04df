//! What operators look at (the admin console and the metrics): counts and lists over the same
//! rows the other checks write, each for one app only.

use super::{binding, broadcast, T0};
use herald_store::{PageDone, PushCounts, PushType, Store};

/// Broadcast counts and lists, push jobs and bindings, online counts and nodes, by app.
pub async fn operator_views(store: &dyn Store) {
    let (app, other) = (4_000_000_041, 4_000_000_042);
    let totals_before = store.push_job_totals().await.expect("push_job_totals");

    // Calls the rate windows recorded: those since the given time, of this app only.
    for at in [T0 - 5_000, T0, T0 + 1_000] {
        store.try_acquire_broadcast_slot(app, at, 100, 100).await.expect("acquire");
    }
    store.try_acquire_broadcast_slot(other, T0, 100, 100).await.expect("acquire");
    assert_eq!(store.count_broadcast_calls(app, T0).await.unwrap(), 2, "operator: calls since T0");
    assert_eq!(store.count_broadcast_calls(app, T0 - 10_000).await.unwrap(), 3);

    // The newest broadcasts first, every PushType, capped.
    for (id, push, at) in
        [(1, PushType::OnlineOnly, T0), (2, PushType::OfflineOnly, T0 + 2), (3, PushType::OnlineAndOffline, T0 + 1)]
    {
        store.insert_broadcast(&broadcast(app, id, push, at)).await.expect("insert");
    }
    store.insert_broadcast(&broadcast(other, 9, PushType::OnlineOnly, T0 + 9)).await.expect("insert");
    let listed: Vec<u64> = store.list_broadcasts(app, 10).await.unwrap().iter().map(|r| r.message_id).collect();
    assert_eq!(listed, [2, 3, 1], "operator: newest first");
    assert_eq!(store.list_broadcasts(app, 2).await.unwrap().len(), 2, "operator: capped");

    // Open jobs (2 and 3 push offline), oldest first; one finished is no longer open.
    let open: Vec<u64> = store.open_push_jobs(app).await.unwrap().iter().map(|j| j.message_id).collect();
    assert_eq!(open, [3, 2], "operator: open jobs by creation");
    let job = store.claim_push_job(app, "node-a", T0, 60_000).await.unwrap().expect("a job");
    let page = PageDone { cursor: ("u", "d"), delta: PushCounts { targeted: 1, sent: 1, ..PushCounts::default() } };
    assert!(store.advance_push_job(app, job.message_id, "node-a", page, T0, 60_000).await.unwrap());
    assert!(store.finish_push_job(app, job.message_id, "node-a", T0).await.unwrap());
    assert_eq!(store.open_push_jobs(app).await.unwrap().len(), 1);
    let totals = store.push_job_totals().await.unwrap();
    assert_eq!(
        (totals.pending - totals_before.pending, totals.done - totals_before.done),
        (1, 1),
        "operator: one pending and one done more than before"
    );

    // Bindings of this app only.
    for (user, device) in [("u1", "a"), ("u1", "b"), ("u2", "a")] {
        store.bind_push(&binding(app, user, device, &format!("tok-{user}-{device}"))).await.expect("bind");
    }
    store.bind_push(&binding(other, "u9", "a", "tok-other")).await.expect("bind");
    assert_eq!(store.count_push_bindings(app).await.unwrap(), 3);

    // Online counts of live nodes; the nodes with their sessions.
    store.renew_node_lease(41, T0 + 10_000).await.unwrap();
    store.renew_node_lease(42, T0 - 1).await.unwrap();
    store.presence_session_started(app, "u1", 4_100, 41, T0).await.unwrap();
    store.presence_session_started(app, "u1", 4_101, 41, T0).await.unwrap();
    store.presence_session_started(app, "u2", 4_102, 41, T0).await.unwrap();
    store.presence_session_started(app, "u3", 4_200, 42, T0).await.unwrap();
    assert_eq!(store.online_counts(app, T0).await.unwrap(), (3, 2), "operator: sessions and users on live nodes");
    let nodes = store.cluster_nodes().await.unwrap();
    let mine: Vec<(u16, i64, u64)> = nodes
        .iter()
        .filter(|n| n.node_id == 41 || n.node_id == 42)
        .map(|n| (n.node_id, n.lease_until_ms, n.sessions))
        .collect();
    assert_eq!(mine, [(41, T0 + 10_000, 3), (42, T0 - 1, 1)], "operator: nodes by id with their sessions");
    store.clear_node_sessions(41).await.unwrap();
    store.clear_node_sessions(42).await.unwrap();
}
