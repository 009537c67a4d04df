//! Users: register (duplicates too), ensure on login, look-up, partial modify.

use super::{ids, user, T0};
use herald_store::{RowOutcome, Store, UserChange, UserRecord};

/// Batches keep input order; a taken id, even one taken earlier in the same batch, is
/// AlreadyExists and leaves the first registration untouched.
pub async fn register_users(store: &dyn Store) {
    let app = 4_000_000_001;
    let first = store
        .register_users(app, &[user("alice", "Alice"), user("bob", "Bob"), user("alice", "Impostor")])
        .await
        .expect("register_users failed");
    assert_eq!(
        first,
        [RowOutcome::Done, RowOutcome::Done, RowOutcome::AlreadyExists],
        "register_users: second 'alice' of one batch must be AlreadyExists, in input order"
    );
    let second = store
        .register_users(app, &[user("carol", "Carol"), user("bob", "Bobby")])
        .await
        .expect("register_users failed");
    assert_eq!(
        second,
        [RowOutcome::Done, RowOutcome::AlreadyExists],
        "register_users: an id from an earlier batch must be AlreadyExists, in input order"
    );
    let empty = store.register_users(app, &[]).await.expect("register_users(empty) failed");
    assert!(empty.is_empty(), "register_users: an empty batch has no outcomes");

    let mut got = store.get_users(app, &ids(&["alice", "bob"])).await.expect("get_users failed");
    got.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    assert_eq!(
        got,
        [user("alice", "Alice"), user("bob", "Bob")],
        "register_users: a duplicate must not overwrite the first registration"
    );
}

/// First login creates the user once; later logins (or a registered user) leave it alone.
pub async fn ensure_user(store: &dyn Store) {
    let app = 4_000_000_002;
    let created = store.ensure_user(app, "dave", "Dave", T0 + 5).await.expect("ensure_user failed");
    assert!(created, "ensure_user: a missing user must be created (true)");
    assert!(store.user_exists(app, "dave").await.expect("user_exists failed"), "ensure_user: user must exist after");
    let again = store.ensure_user(app, "dave", "Other", T0 + 9).await.expect("ensure_user failed");
    assert!(!again, "ensure_user: an existing user must not be created again (false)");

    let got = store.get_users(app, &ids(&["dave"])).await.expect("get_users failed");
    let want =
        UserRecord { user_id: "dave".into(), user_name: "Dave".into(), created_at_ms: T0 + 5, ..UserRecord::default() };
    assert_eq!(got, [want], "ensure_user: the first call's name and time must stay; avatar and extra empty");

    store.register_users(app, &[user("erin", "Erin")]).await.expect("register_users failed");
    let registered = store.ensure_user(app, "erin", "Login name", T0).await.expect("ensure_user failed");
    assert!(!registered, "ensure_user: a registered user must not be created (false)");
    assert!(!store.user_exists(app, "nobody").await.expect("user_exists failed"), "user_exists: unknown id is false");
}

/// Only the users that exist come back, once each, with every field.
pub async fn get_users_subset(store: &dyn Store) {
    let app = 4_000_000_003;
    let users = [user("u1", "One"), user("u2", "Two"), user("u3", "Three")];
    store.register_users(app, &users).await.expect("register_users failed");
    let mut got = store.get_users(app, &ids(&["u3", "missing", "u1", "u1"])).await.expect("get_users failed");
    got.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    assert_eq!(got, [users[0].clone(), users[2].clone()], "get_users: want u1 and u3 once each, nothing else");
    let none = store.get_users(app, &[]).await.expect("get_users(empty) failed");
    assert!(none.is_empty(), "get_users: no ids, no users");
}

/// `None` keeps a field, `Some("")` empties it; unknown users are NotFound, in input order.
pub async fn modify_users(store: &dyn Store) {
    let app = 4_000_000_004;
    store.register_users(app, &[user("m1", "Before"), user("m2", "Two")]).await.expect("register_users failed");
    let changes = [
        UserChange { user_id: "m1".into(), user_name: Some("After".into()), ..UserChange::default() },
        UserChange { user_id: "ghost".into(), user_name: Some("Boo".into()), ..UserChange::default() },
        UserChange { user_id: "m2".into(), extra: Some(String::new()), ..UserChange::default() },
    ];
    let outcomes = store.modify_users(app, &changes).await.expect("modify_users failed");
    assert_eq!(
        outcomes,
        [RowOutcome::Done, RowOutcome::NotFound, RowOutcome::Done],
        "modify_users: outcomes in input order, NotFound for an unknown user"
    );
    let mut got = store.get_users(app, &ids(&["m1", "m2", "ghost"])).await.expect("get_users failed");
    got.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    let m1 = UserRecord { user_name: "After".into(), ..user("m1", "Before") };
    let m2 = UserRecord { extra: String::new(), ..user("m2", "Two") };
    assert_eq!(got, [m1, m2], "modify_users: only the given fields change; a NotFound creates nothing");
}
