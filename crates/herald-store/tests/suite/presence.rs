//! Cluster presence: sessions per node, node leases, and who is online anywhere.

use super::T0;
use herald_store::Store;

const APP: u32 = 4_100_000_001;
const OTHER_APP: u32 = 4_100_000_002;

async fn online(store: &dyn Store, app_id: u32, ids: &[&str], now_ms: i64) -> Vec<String> {
    let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    let mut got = store.online_users(app_id, &ids, now_ms).await.expect("online_users");
    got.sort();
    got
}

pub async fn presence_across_nodes(store: &dyn Store) {
    store.renew_node_lease(1, T0 + 10_000).await.expect("lease node 1");
    store.renew_node_lease(2, T0 + 10_000).await.expect("lease node 2");
    store.presence_session_started(APP, "alice", u64::MAX - 1, 1, T0).await.expect("start");
    store.presence_session_started(APP, "alice", 11, 2, T0).await.expect("start second device");
    store.presence_session_started(APP, "bob", 12, 2, T0).await.expect("start bob");
    store.presence_session_started(OTHER_APP, "carol", 13, 1, T0).await.expect("start carol");
    assert_eq!(
        online(store, APP, &["alice", "bob", "carol", "dave"], T0).await,
        ["alice", "bob"],
        "users on live nodes are online"
    );
    assert_eq!(online(store, OTHER_APP, &["carol", "alice"], T0).await, ["carol"], "presence is per app");

    store.presence_session_ended(11).await.expect("end");
    assert_eq!(online(store, APP, &["alice"], T0).await, ["alice"], "alice still has a session on node 1");
    store.presence_session_ended(u64::MAX - 1).await.expect("end last");
    assert!(online(store, APP, &["alice"], T0).await.is_empty(), "no session left: offline");

    // Node 2 stops renewing: once its lease lapses, bob is offline without any logout.
    store.renew_node_lease(1, T0 + 30_000).await.expect("renew node 1");
    assert_eq!(online(store, APP, &["bob"], T0 + 9_999).await, ["bob"]);
    assert!(online(store, APP, &["bob"], T0 + 10_000).await.is_empty(), "a lapsed lease takes its sessions offline");

    // Node 2 comes back and clears what it held before.
    store.clear_node_sessions(2).await.expect("clear");
    store.renew_node_lease(2, T0 + 40_000).await.expect("renew node 2");
    assert!(online(store, APP, &["bob"], T0 + 20_000).await.is_empty(), "a restarted node's old sessions are gone");
    assert_eq!(
        online(store, OTHER_APP, &["carol"], T0 + 20_000).await,
        ["carol"],
        "clearing node 2 keeps node 1's sessions"
    );
    store.presence_session_ended(13).await.expect("end carol");
}

/// Many logins at once (a reconnect storm): every user is created exactly once however many of
/// its sessions race, and every session is online afterwards. On PostgreSQL these calls share
/// batches; the answers must be the same as one at a time.
pub async fn login_storm(store: std::sync::Arc<dyn Store>) {
    const STORM_APP: u32 = 4_100_000_003;
    store.renew_node_lease(7, T0 + 10_000).await.expect("lease node 7");
    let users: Vec<String> = (0..30).map(|i| format!("storm-{i}")).collect();
    // Three sessions per user, all at once.
    let tasks: Vec<_> = (0..90u64)
        .map(|session| {
            let (store, user) = (store.clone(), users[session as usize % users.len()].clone());
            tokio::spawn(async move {
                let created = store.ensure_user(STORM_APP, &user, "Storm", T0).await.expect("ensure_user");
                store.presence_session_started(STORM_APP, &user, 7_000 + session, 7, T0).await.expect("session start");
                (user, created)
            })
        })
        .collect();
    let mut created_per_user = std::collections::HashMap::new();
    for task in tasks {
        let (user, created) = task.await.expect("login task panicked");
        *created_per_user.entry(user).or_insert(0) += usize::from(created);
    }
    for user in &users {
        assert_eq!(created_per_user[user], 1, "{user} must be created by exactly one of its 3 racing logins");
    }
    let ids: Vec<&str> = users.iter().map(String::as_str).collect();
    assert_eq!(online(&*store, STORM_APP, &ids, T0).await.len(), users.len(), "every stormed user is online");
    for session in 0..90u64 {
        store.presence_session_ended(7_000 + session).await.expect("end");
    }
    assert!(online(&*store, STORM_APP, &ids, T0).await.is_empty(), "all sessions ended: nobody online");
}
