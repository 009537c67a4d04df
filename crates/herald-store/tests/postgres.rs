//! The PostgreSQL backend against the shared suite, plus what only a shared server can show:
//! restarts, and several nodes (separate stores, separate pools) on one database.
//!
//! Each test creates its own `herald_test_<random>` database and drops it afterwards, on the
//! PostgreSQL that herald-testkit finds (`HERALD_TEST_POSTGRES_URL`, else 127.0.0.1:5432) or
//! starts for this test process. When none can be had these tests FAIL, saying why.

mod suite;

use herald_store::{
    open, BroadcastRecord, PostgresStore, PushBinding, PushProvider, RateDecision, Store, StoreError, UserRecord,
};
use herald_testkit::test_database;
use std::collections::HashSet;
use std::sync::Arc;

const T0: i64 = 1_700_000_000_000;

// Multi-threaded, so the concurrent-acquire check races on real threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_on_postgres() {
    let (url, _db) = test_database().await;
    suite::run_all(open(&url).await.unwrap()).await;
}

/// A node configured with a single connection (`store.max_connections = 1`) still passes
/// everything: no step needs a second connection while it holds one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_on_a_one_connection_pool() {
    let (url, _db) = test_database().await;
    let store = herald_store::open_with(&url, &herald_store::OpenOptions { max_connections: 1 }).await.expect("open");
    suite::run_all(store).await;
}

#[tokio::test]
async fn postgresql_scheme_opens_too() {
    let (url, _db) = test_database().await;
    let url = url.replacen("postgres://", "postgresql://", 1);
    assert!(url.starts_with("postgresql://"), "{url}");
    let store = open(&url).await.unwrap();
    assert!(store.ensure_user(1, "a", "A", T0).await.unwrap());
}

#[tokio::test]
async fn store_survives_reopen() {
    let (url, _db) = test_database().await;
    let app = 7;
    let user =
        UserRecord { user_id: "kept".into(), user_name: "Kept".into(), created_at_ms: T0, ..UserRecord::default() };
    let binding = PushBinding {
        app_id: app,
        user_id: "kept".into(),
        device_id: "phone".into(),
        push_id: "token".into(),
        provider: PushProvider::Apns,
        updated_at_ms: T0,
    };
    let broadcast = BroadcastRecord {
        app_id: app,
        message_id: u64::MAX,
        from_user_id: "admin".into(),
        message_type: herald_store::MessageType::Text,
        sub_type: 0,
        push_type: herald_store::PushType::OnlineAndOffline,
        body_json: "{}".into(),
        accepted_at_ms: T0,
        online_delivered: 3,
        recovered_delivered: 2,
    };

    let store = PostgresStore::open(&url).await.unwrap();
    store.register_users(app, std::slice::from_ref(&user)).await.unwrap();
    store.bind_push(&binding).await.unwrap();
    for i in 0..3 {
        let decision = store.try_acquire_broadcast_slot(app, T0 + i * 60_000, 1, 3).await.unwrap();
        assert_eq!(decision, RateDecision::Allowed);
    }
    assert!(store.remember_nonce(app, "n", T0, 600_000).await.unwrap());
    store.insert_broadcast(&broadcast).await.unwrap();
    let claimed = store.claim_push_job(app, "node-a", T0, 60_000).await.unwrap();
    assert_eq!(claimed.map(|j| j.message_id), Some(u64::MAX));
    store.close().await;

    // Reopening runs the migrations again, which must be a no-op.
    let store = PostgresStore::open(&url).await.unwrap();
    assert_eq!(store.get_users(app, &["kept".to_string()]).await.unwrap(), [user]);
    assert_eq!(store.push_bindings_of(app, "kept").await.unwrap(), [binding]);
    assert_eq!(
        store.try_acquire_broadcast_slot(app, T0 + 3_600_000, 1, 3).await.unwrap(),
        RateDecision::PerDayExceeded,
        "the 24 h window must survive a restart"
    );
    assert!(!store.remember_nonce(app, "n", T0 + 1, 600_000).await.unwrap(), "nonces must survive a restart");
    assert_eq!(store.get_broadcast(app, u64::MAX).await.unwrap(), Some(broadcast));
    // node-a's lease survived too: another node must wait, node-a itself picks the job up.
    assert!(store.claim_push_job(app, "node-b", T0 + 1, 60_000).await.unwrap().is_none(), "lease survives");
    let again = store.claim_push_job(app, "node-a", T0 + 1, 60_000).await.unwrap();
    assert_eq!(again.map(|j| j.message_id), Some(u64::MAX), "the owner reclaims after its restart");
    store.close().await;
}

/// Two "nodes": two stores with their own pools on one database.
async fn two_nodes(url: &str) -> [Arc<dyn Store>; 2] {
    [Arc::new(PostgresStore::open(url).await.unwrap()), Arc::new(PostgresStore::open(url).await.unwrap())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_race_for_one_broadcast_slot() {
    let (url, _db) = test_database().await;
    let nodes = two_nodes(&url).await;
    for round in 0..5 {
        let app = 4_000_000_100 + round;
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let store = nodes[i % 2].clone();
                tokio::spawn(async move { store.try_acquire_broadcast_slot(app, T0, 1, 100).await })
            })
            .collect();
        let mut allowed = 0;
        for task in tasks {
            let decision = task.await.unwrap().unwrap();
            assert_ne!(decision, RateDecision::PerDayExceeded);
            allowed += usize::from(decision == RateDecision::Allowed);
        }
        assert_eq!(allowed, 1, "round {round}: 20 callers on two nodes at one instant, per_second=1");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_race_for_one_nonce() {
    let (url, _db) = test_database().await;
    let nodes = two_nodes(&url).await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = nodes[i % 2].clone();
            tokio::spawn(async move { store.remember_nonce(9, "same-nonce", T0, 600_000).await })
        })
        .collect();
    let mut fresh = 0;
    for task in tasks {
        fresh += usize::from(task.await.unwrap().unwrap());
    }
    assert_eq!(fresh, 1, "one nonce sent to two nodes at once is fresh exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_never_claim_the_same_push_job() {
    let (url, _db) = test_database().await;
    let nodes = two_nodes(&url).await;
    let app = 11;
    for id in 0..10u64 {
        let record = BroadcastRecord {
            app_id: app,
            message_id: id,
            from_user_id: "admin".into(),
            message_type: herald_store::MessageType::Text,
            sub_type: 0,
            push_type: herald_store::PushType::OfflineOnly,
            body_json: "{}".into(),
            accepted_at_ms: T0 + id as i64,
            online_delivered: 0,
            recovered_delivered: 0,
        };
        nodes[0].insert_broadcast(&record).await.unwrap();
    }
    // 16 workers (8 per node, each its own owner) claim until nothing is left.
    let tasks: Vec<_> = (0..16)
        .map(|w| {
            let store = nodes[w % 2].clone();
            tokio::spawn(async move {
                let owner = format!("node-{}-worker-{w}", w % 2);
                let mut mine = Vec::new();
                while let Some(job) = store.claim_push_job(app, &owner, T0 + 100, 60_000).await.unwrap() {
                    mine.push(job.message_id);
                    assert!(store.finish_push_job(app, job.message_id, &owner, T0 + 101).await.unwrap());
                }
                mine
            })
        })
        .collect();
    let mut claimed = Vec::new();
    for task in tasks {
        claimed.extend(task.await.unwrap());
    }
    claimed.sort_unstable();
    assert_eq!(claimed, (0..10).collect::<Vec<_>>(), "every job claimed by exactly one worker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_race_to_bind_one_token() {
    let (url, _db) = test_database().await;
    let nodes = two_nodes(&url).await;
    let app = 12;
    for round in 0..5 {
        let token = format!("token-{round}");
        let tasks: Vec<_> = (0..10)
            .map(|i| {
                let store = nodes[i % 2].clone();
                let binding = PushBinding {
                    app_id: app,
                    user_id: format!("user-{i}"),
                    device_id: "phone".into(),
                    push_id: token.clone(),
                    provider: PushProvider::Fcm,
                    updated_at_ms: T0,
                };
                tokio::spawn(async move { store.bind_push(&binding).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let holders: HashSet<String> = nodes[1]
            .push_bindings_page(app, None, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|b| b.push_id == token)
            .map(|b| b.user_id)
            .collect();
        assert_eq!(holders.len(), 1, "round {round}: a token bound on two nodes at once has one holder: {holders:?}");
    }
}

#[tokio::test]
async fn unreachable_server_is_a_database_error() {
    // Port 1 on localhost: nothing listens there.
    match PostgresStore::open("postgres://postgres@127.0.0.1:1/test").await {
        Err(StoreError::Database(_)) => {}
        Err(other) => panic!("want a database error, got {other}"),
        Ok(_) => panic!("want an error, got a store"),
    }
}

#[tokio::test]
async fn other_schemes_stay_unsupported() {
    for url in ["mysql://x", "postgre://x", ""] {
        match open(url).await {
            Err(StoreError::UnsupportedUrl(got)) => assert_eq!(got, url),
            Err(other) => panic!("{url:?}: want UnsupportedUrl, got {other}"),
            Ok(_) => panic!("{url:?}: want UnsupportedUrl, got a store"),
        }
    }
}

/// A reconnect storm on two nodes at once: each node's logins share batches, and both nodes'
/// batches hold the same new users, in opposite arrival orders. Every user is still created
/// exactly once, and no login fails (batches lock users in one order, so they cannot deadlock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_logging_in_the_same_new_users_create_each_once() {
    let (url, _db) = test_database().await;
    let nodes = [open(&url).await.unwrap(), open(&url).await.unwrap()];
    let users: Vec<String> = (0..200).map(|i| format!("storm-{i:03}")).collect();
    let mut logins = Vec::new();
    for round in 0..3 {
        for (n, node) in nodes.iter().enumerate() {
            // Node 0 sees the users in one order, node 1 in the reverse.
            let order: Vec<String> = if n == 0 { users.clone() } else { users.iter().rev().cloned().collect() };
            for user in order {
                let node = node.clone();
                logins.push(tokio::spawn(async move {
                    let created = node.ensure_user(9, &user, "Storm", T0 + round).await;
                    (user, created)
                }));
            }
        }
    }
    let mut created_per_user = std::collections::HashMap::new();
    for login in logins {
        let (user, created) = login.await.unwrap();
        let created = created.unwrap_or_else(|e| panic!("a login of {user} failed: {e}"));
        *created_per_user.entry(user).or_insert(0) += usize::from(created);
    }
    for user in &users {
        assert_eq!(created_per_user[user], 1, "{user}: created by exactly one of its 6 logins");
    }
}
