//! Apps are separate tenants: the same user id in two apps shares nothing.

use super::{acquire, binding, ids, user, T0};
use herald_store::{RateDecision, RowOutcome, Store, UserChange};

/// The same user id in two apps is two users, two sets of bindings, two rate windows.
pub async fn apps_isolated(store: &dyn Store) {
    let (a, b) = (4_000_000_015, 4_000_000_016);
    store.register_users(a, &[user("same", "In A")]).await.expect("register_users failed");
    assert!(!store.user_exists(b, "same").await.expect("user_exists failed"), "apps: a user of A is unknown in B");
    let outcome = store.register_users(b, &[user("same", "In B")]).await.expect("register_users failed");
    assert_eq!(outcome, [RowOutcome::Done], "apps: the same id registers in B");
    let change = UserChange { user_id: "same".into(), user_name: Some("Renamed".into()), ..UserChange::default() };
    store.modify_users(a, &[change]).await.expect("modify_users failed");
    let in_b = store.get_users(b, &ids(&["same"])).await.expect("get_users failed");
    assert_eq!(in_b[0].user_name, "In B", "apps: modifying A's user leaves B's alone");

    store.bind_push(&binding(a, "same", "dev", "token-a")).await.expect("bind_push failed");
    store.bind_push(&binding(b, "same", "dev", "token-b")).await.expect("bind_push failed");
    assert!(store.unbind_push(b, "same", "dev").await.expect("unbind_push failed"), "apps: B's binding unbinds");
    let in_a = store.push_bindings_of(a, "same").await.expect("push_bindings_of failed");
    assert_eq!(in_a, [binding(a, "same", "dev", "token-a")], "apps: unbinding in B leaves A's binding");
    let page_b = store.push_bindings_page(b, None, 10).await.expect("push_bindings_page failed");
    assert!(page_b.is_empty(), "apps: B's pages hold none of A's bindings");

    assert_eq!(acquire(store, a, T0, 1, 1).await, RateDecision::Allowed, "apps: A's only daily slot");
    assert_eq!(acquire(store, b, T0, 1, 1).await, RateDecision::Allowed, "apps: B has its own windows");
}
