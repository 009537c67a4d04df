//! The SQLite backend against the shared suite, plus what only a file store can show: restarts.

mod suite;

use herald_store::{open, PushBinding, PushProvider, RateDecision, SqliteStore, Store, StoreError, UserRecord};
use std::sync::Arc;

// Multi-threaded, so the concurrent-acquire check races on real threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_on_file() {
    let dir = tempfile::tempdir().unwrap();
    // A parent directory that does not exist yet: open must create it.
    let url = format!("sqlite://{}", dir.path().join("nested/dir/herald.db").display());
    suite::run_all(open(&url).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_in_memory() {
    suite::run_all(open("sqlite::memory:").await.unwrap()).await;
}

#[tokio::test]
async fn memory_stores_are_separate() {
    let one = open("sqlite::memory:").await.unwrap();
    let two = open("sqlite::memory:").await.unwrap();
    one.ensure_user(1, "u", "U", 0).await.unwrap();
    assert!(!two.user_exists(1, "u").await.unwrap());
}

#[tokio::test]
async fn file_store_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("herald.db").display());
    let (app, t0) = (7, 1_700_000_000_000);
    let user =
        UserRecord { user_id: "kept".into(), user_name: "Kept".into(), created_at_ms: t0, ..UserRecord::default() };
    let binding = PushBinding {
        app_id: app,
        user_id: "kept".into(),
        device_id: "phone".into(),
        push_id: "token".into(),
        provider: PushProvider::Apns,
        updated_at_ms: t0,
    };

    let store = SqliteStore::open(&url).await.unwrap();
    store.register_users(app, std::slice::from_ref(&user)).await.unwrap();
    store.bind_push(&binding).await.unwrap();
    for i in 0..3 {
        let decision = store.try_acquire_broadcast_slot(app, t0 + i * 60_000, 1, 3).await.unwrap();
        assert_eq!(decision, RateDecision::Allowed);
    }
    assert!(store.remember_nonce(app, "n", t0, 600_000).await.unwrap());
    store.close().await;

    // Reopening runs the migrations again, which must be a no-op.
    let store = SqliteStore::open(&url).await.unwrap();
    assert_eq!(store.get_users(app, &["kept".to_string()]).await.unwrap(), [user]);
    assert_eq!(store.push_bindings_of(app, "kept").await.unwrap(), [binding]);
    assert_eq!(
        store.try_acquire_broadcast_slot(app, t0 + 3_600_000, 1, 3).await.unwrap(),
        RateDecision::PerDayExceeded,
        "the 24 h window must survive a restart"
    );
    assert!(!store.remember_nonce(app, "n", t0 + 1, 600_000).await.unwrap(), "nonces must survive a restart");
    store.close().await;
}

#[tokio::test]
async fn unsupported_url() {
    for url in ["mysql://x", ""] {
        match open(url).await {
            Err(StoreError::UnsupportedUrl(got)) => assert_eq!(got, url),
            Err(other) => panic!("{url:?}: want UnsupportedUrl, got {other}"),
            Ok(_) => panic!("{url:?}: want UnsupportedUrl, got a store"),
        }
    }
}

#[tokio::test]
async fn store_is_object_safe_and_shareable() {
    // The server holds the store as Arc<dyn Store>; SqliteStore must coerce to it.
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open("sqlite::memory:").await.unwrap());
    assert!(store.ensure_user(1, "a", "A", 0).await.unwrap());
}

/// The database holds users and push tokens: a new one is 0600 in a 0700 directory, and so are
/// the WAL and shared-memory files SQLite makes beside it.
#[cfg(unix)]
#[tokio::test]
async fn a_new_database_and_its_directory_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("fresh");
    let db = dir.join("herald.db");
    let store = herald_store::SqliteStore::open(&format!("sqlite://{}", db.display())).await.unwrap();
    herald_store::Store::ensure_user(&store, 1, "u", "", 0).await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "directory");
    for file in ["herald.db", "herald.db-wal", "herald.db-shm"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
}
