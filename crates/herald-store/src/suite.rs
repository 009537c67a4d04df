//! The one behaviour suite every [`Store`] backend must pass: `run_all(store)` on a fresh store.
//!
//! Each check is a `pub async fn` that panics with a message saying what broke, so a backend's
//! test can also run one check alone. Every check works in its own app ids (above `i32::MAX`,
//! to prove u32 ids survive the trip), so checks never see each other's rows even when they
//! share one database. Times are injected from [`T0`], never read from a clock.

use crate::{
    BroadcastRecord, PushBinding, PushProvider, RateDecision, RowOutcome, Store, UserChange,
    UserRecord,
};
use std::sync::Arc;

/// An arbitrary "now" (2023-11-14) from which every check counts.
pub const T0: i64 = 1_700_000_000_000;
const DAY_MS: i64 = 86_400_000;

/// Runs every check. Panics at the first behaviour that differs from the contract.
pub async fn run_all(store: Arc<dyn Store>) {
    register_users(&*store).await;
    ensure_user(&*store).await;
    get_users_subset(&*store).await;
    modify_users(&*store).await;
    nonce_replay_and_expiry(&*store).await;
    rate_per_second(&*store).await;
    rate_per_day_rolling(&*store).await;
    rate_concurrent_acquires(store.clone()).await;
    broadcasts(&*store).await;
    push_bind_rebind_unbind(&*store).await;
    push_paging(&*store).await;
    apps_isolated(&*store).await;
}

fn user(user_id: &str, user_name: &str) -> UserRecord {
    UserRecord {
        user_id: user_id.into(),
        user_name: user_name.into(),
        user_avatar: format!("https://img.example/{user_id}.png"),
        extra: format!("{{\"of\":\"{user_id}\"}}"),
        created_at_ms: T0,
    }
}

fn binding(app_id: u32, user_id: &str, device_id: &str, push_id: &str) -> PushBinding {
    PushBinding {
        app_id,
        user_id: user_id.into(),
        device_id: device_id.into(),
        push_id: push_id.into(),
        provider: PushProvider::Fcm,
        updated_at_ms: T0,
    }
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Batches keep input order; a taken id, even one taken earlier in the same batch, is
/// AlreadyExists and leaves the first registration untouched.
pub async fn register_users(store: &dyn Store) {
    let app = 4_000_000_001;
    let first = store
        .register_users(
            app,
            &[
                user("alice", "Alice"),
                user("bob", "Bob"),
                user("alice", "Impostor"),
            ],
        )
        .await
        .expect("register_users failed");
    assert_eq!(
        first,
        [
            RowOutcome::Done,
            RowOutcome::Done,
            RowOutcome::AlreadyExists
        ],
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
    let empty = store
        .register_users(app, &[])
        .await
        .expect("register_users(empty) failed");
    assert!(
        empty.is_empty(),
        "register_users: an empty batch has no outcomes"
    );

    let mut got = store
        .get_users(app, &ids(&["alice", "bob"]))
        .await
        .expect("get_users failed");
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
    let created = store
        .ensure_user(app, "dave", "Dave", T0 + 5)
        .await
        .expect("ensure_user failed");
    assert!(
        created,
        "ensure_user: a missing user must be created (true)"
    );
    assert!(
        store
            .user_exists(app, "dave")
            .await
            .expect("user_exists failed"),
        "ensure_user: user must exist after"
    );
    let again = store
        .ensure_user(app, "dave", "Other", T0 + 9)
        .await
        .expect("ensure_user failed");
    assert!(
        !again,
        "ensure_user: an existing user must not be created again (false)"
    );

    let got = store
        .get_users(app, &ids(&["dave"]))
        .await
        .expect("get_users failed");
    let want = UserRecord {
        user_id: "dave".into(),
        user_name: "Dave".into(),
        created_at_ms: T0 + 5,
        ..UserRecord::default()
    };
    assert_eq!(
        got,
        [want],
        "ensure_user: the first call's name and time must stay; avatar and extra empty"
    );

    store
        .register_users(app, &[user("erin", "Erin")])
        .await
        .expect("register_users failed");
    let registered = store
        .ensure_user(app, "erin", "Login name", T0)
        .await
        .expect("ensure_user failed");
    assert!(
        !registered,
        "ensure_user: a registered user must not be created (false)"
    );
    assert!(
        !store
            .user_exists(app, "nobody")
            .await
            .expect("user_exists failed"),
        "user_exists: unknown id is false"
    );
}

/// Only the users that exist come back, once each, with every field.
pub async fn get_users_subset(store: &dyn Store) {
    let app = 4_000_000_003;
    let users = [user("u1", "One"), user("u2", "Two"), user("u3", "Three")];
    store
        .register_users(app, &users)
        .await
        .expect("register_users failed");
    let mut got = store
        .get_users(app, &ids(&["u3", "missing", "u1", "u1"]))
        .await
        .expect("get_users failed");
    got.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    assert_eq!(
        got,
        [users[0].clone(), users[2].clone()],
        "get_users: want u1 and u3 once each, nothing else"
    );
    let none = store
        .get_users(app, &[])
        .await
        .expect("get_users(empty) failed");
    assert!(none.is_empty(), "get_users: no ids, no users");
}

/// `None` keeps a field, `Some("")` empties it; unknown users are NotFound, in input order.
pub async fn modify_users(store: &dyn Store) {
    let app = 4_000_000_004;
    store
        .register_users(app, &[user("m1", "Before"), user("m2", "Two")])
        .await
        .expect("register_users failed");
    let changes = [
        UserChange {
            user_id: "m1".into(),
            user_name: Some("After".into()),
            ..UserChange::default()
        },
        UserChange {
            user_id: "ghost".into(),
            user_name: Some("Boo".into()),
            ..UserChange::default()
        },
        UserChange {
            user_id: "m2".into(),
            extra: Some(String::new()),
            ..UserChange::default()
        },
    ];
    let outcomes = store
        .modify_users(app, &changes)
        .await
        .expect("modify_users failed");
    assert_eq!(
        outcomes,
        [RowOutcome::Done, RowOutcome::NotFound, RowOutcome::Done],
        "modify_users: outcomes in input order, NotFound for an unknown user"
    );
    let mut got = store
        .get_users(app, &ids(&["m1", "m2", "ghost"]))
        .await
        .expect("get_users failed");
    got.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    let m1 = UserRecord {
        user_name: "After".into(),
        ..user("m1", "Before")
    };
    let m2 = UserRecord {
        extra: String::new(),
        ..user("m2", "Two")
    };
    assert_eq!(
        got,
        [m1, m2],
        "modify_users: only the given fields change; a NotFound creates nothing"
    );
}

/// A nonce is refused while live (now < seen + ttl), then fresh again once expired.
pub async fn nonce_replay_and_expiry(store: &dyn Store) {
    let (app, other_app) = (4_000_000_005, 4_000_000_006);
    let ttl = 600_000;
    let remember = |app: u32, nonce: &'static str, now: i64| async move {
        store
            .remember_nonce(app, nonce, now, ttl)
            .await
            .expect("remember_nonce failed")
    };
    assert!(
        remember(app, "n-1", T0).await,
        "nonce: first sight is fresh"
    );
    assert!(
        !remember(app, "n-1", T0 + 1).await,
        "nonce: a reuse inside the ttl is a replay"
    );
    assert!(
        !remember(app, "n-1", T0 + ttl - 1).await,
        "nonce: still a replay 1 ms before expiry"
    );
    assert!(
        remember(app, "n-2", T0 + 2).await,
        "nonce: another nonce is fresh"
    );
    assert!(
        remember(other_app, "n-1", T0 + 3).await,
        "nonce: the same nonce in another app is fresh"
    );
    assert!(
        remember(app, "n-1", T0 + ttl).await,
        "nonce: an expired nonce counts as fresh"
    );
    assert!(
        !remember(app, "n-1", T0 + ttl + 1).await,
        "nonce: re-seen after expiry, it is live again"
    );
    // n-2 expired at T0 + 2 + ttl; a late call must not be fooled by pruning order.
    assert!(
        remember(app, "n-2", T0 + 3 * ttl).await,
        "nonce: long-expired nonce is fresh"
    );
}

async fn acquire(
    store: &dyn Store,
    app: u32,
    now: i64,
    per_second: u32,
    per_day: u32,
) -> RateDecision {
    store
        .try_acquire_broadcast_slot(app, now, per_second, per_day)
        .await
        .expect("try_acquire_broadcast_slot failed")
}

/// The last 1000 ms hold at most `per_second` calls; refused calls take no slot.
pub async fn rate_per_second(store: &dyn Store) {
    use RateDecision::*;
    let app = 4_000_000_007;
    assert_eq!(
        acquire(store, app, T0, 1, 100).await,
        Allowed,
        "per-second: first call allowed"
    );
    assert_eq!(
        acquire(store, app, T0 + 999, 1, 100).await,
        PerSecondExceeded,
        "per-second: 999 ms later refused"
    );
    assert_eq!(
        acquire(store, app, T0 + 1000, 1, 100).await,
        Allowed,
        "per-second: allowed 1000 ms after the last allowed call (a refused call must not count)"
    );

    let app = 4_000_000_008;
    for i in 0..3 {
        assert_eq!(
            acquire(store, app, T0, 3, 100).await,
            Allowed,
            "per-second=3: call {i} allowed"
        );
    }
    assert_eq!(
        acquire(store, app, T0 + 500, 3, 100).await,
        PerSecondExceeded,
        "per-second=3: 4th refused"
    );
}

/// 100 calls spread over a day fill it; the 101st waits until the oldest is 24 h old.
pub async fn rate_per_day_rolling(store: &dyn Store) {
    use RateDecision::*;
    let app = 4_000_000_009;
    let step = 800_000; // 100 calls in 80 000 s, well inside one day
    for i in 0..100 {
        let decision = acquire(store, app, T0 + i * step, 1, 100).await;
        assert_eq!(decision, Allowed, "per-day: call {i} of 100 allowed");
    }
    let last = T0 + 99 * step;
    assert_eq!(
        acquire(store, app, last + 5_000, 1, 100).await,
        PerDayExceeded,
        "per-day: the 101st is refused"
    );
    assert_eq!(
        acquire(store, app, last, 1, 100).await,
        PerDayExceeded,
        "per-day: when both windows are full, PerDayExceeded wins (waiting a second would not help)"
    );
    assert_eq!(
        acquire(store, app, T0 + DAY_MS - 1, 1, 100).await,
        PerDayExceeded,
        "per-day: refused 1 ms before the oldest call is 24 h old"
    );
    assert_eq!(
        acquire(store, app, T0 + DAY_MS, 1, 100).await,
        Allowed,
        "per-day: allowed once the oldest left"
    );
    assert_eq!(
        acquire(store, app, T0 + DAY_MS + 1_000, 1, 100).await,
        PerDayExceeded,
        "per-day: the freed slot was taken; the next frees at T0 + step + 24 h"
    );
    assert_eq!(
        acquire(store, app, T0 + step + DAY_MS, 1, 100).await,
        Allowed,
        "per-day: second slot frees on time"
    );
}

/// Concurrent callers cannot share a slot: one of 20 same-instant callers gets per_second=1,
/// and 5 of 20 spread-out callers get per_day=5.
pub async fn rate_concurrent_acquires(store: Arc<dyn Store>) {
    async fn race(
        store: &Arc<dyn Store>,
        app: u32,
        per_day: u32,
        at: impl Fn(i64) -> i64,
    ) -> usize {
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let store = store.clone();
                let now = at(i);
                tokio::spawn(
                    async move { store.try_acquire_broadcast_slot(app, now, 1, per_day).await },
                )
            })
            .collect();
        let mut allowed = 0;
        for task in tasks {
            let decision = task
                .await
                .expect("acquire task panicked")
                .expect("try_acquire_broadcast_slot failed");
            allowed += usize::from(decision == RateDecision::Allowed);
        }
        allowed
    }
    let same_instant = race(&store, 4_000_000_010, 100, |_| T0).await;
    assert_eq!(
        same_instant, 1,
        "concurrent: 20 callers at one instant with per_second=1, want exactly 1 allowed"
    );
    let spread = race(&store, 4_000_000_011, 5, |i| T0 + i * 2_000).await;
    assert_eq!(
        spread, 5,
        "concurrent: 20 callers 2 s apart with per_day=5, want exactly 5 allowed"
    );
}

/// Records round-trip exactly, u64 ids and counts above i64::MAX included.
pub async fn broadcasts(store: &dyn Store) {
    let app = 4_000_000_012;
    let record = BroadcastRecord {
        app_id: app,
        message_id: u64::MAX - 7,
        from_user_id: "admin".into(),
        message_type: 1,
        sub_type: 200,
        push_type: 2,
        body_json: r#"{"Message":"héllo","OfflinePush":{"Title":"t"}}"#.into(),
        accepted_at_ms: T0,
        online_delivered: 0,
    };
    let small = BroadcastRecord {
        message_id: 42,
        ..record.clone()
    };
    store
        .insert_broadcast(&record)
        .await
        .expect("insert_broadcast failed");
    store
        .insert_broadcast(&small)
        .await
        .expect("insert_broadcast failed");
    assert!(
        store.insert_broadcast(&record).await.is_err(),
        "broadcasts: a duplicate message id must be refused"
    );

    let get = |app, id| async move {
        store
            .get_broadcast(app, id)
            .await
            .expect("get_broadcast failed")
    };
    assert_eq!(
        get(app, record.message_id).await,
        Some(record.clone()),
        "broadcasts: round trip"
    );
    assert_eq!(
        get(app, 42).await,
        Some(small.clone()),
        "broadcasts: round trip of a small id"
    );
    assert_eq!(get(app, 43).await, None, "broadcasts: unknown id is None");
    assert_eq!(
        get(app + 1, 42).await,
        None,
        "broadcasts: another app's id is None"
    );

    store
        .set_broadcast_online_delivered(app, record.message_id, u64::MAX)
        .await
        .expect("set failed");
    store
        .set_broadcast_online_delivered(app, 42, 12_345)
        .await
        .expect("set failed");
    let want = BroadcastRecord {
        online_delivered: u64::MAX,
        ..record
    };
    assert_eq!(
        get(app, want.message_id).await,
        Some(want),
        "broadcasts: online_delivered set (u64::MAX)"
    );
    let want = BroadcastRecord {
        online_delivered: 12_345,
        ..small
    };
    assert_eq!(
        get(app, 42).await,
        Some(want),
        "broadcasts: online_delivered set on the right record only"
    );
}

/// A device holds one binding; rebinding replaces it; unbinding removes only that device.
pub async fn push_bind_rebind_unbind(store: &dyn Store) {
    let app = 4_000_000_013;
    let of = |user: &'static str| async move {
        store
            .push_bindings_of(app, user)
            .await
            .expect("push_bindings_of failed")
    };
    let phone = binding(app, "pat", "phone", "token-1");
    store.bind_push(&phone).await.expect("bind_push failed");
    assert_eq!(of("pat").await, std::slice::from_ref(&phone), "push: bound");

    let phone = PushBinding {
        push_id: "token-2".into(),
        provider: PushProvider::Apns,
        updated_at_ms: T0 + 1,
        ..phone
    };
    store.bind_push(&phone).await.expect("bind_push failed");
    assert_eq!(
        of("pat").await,
        std::slice::from_ref(&phone),
        "push: a rebind replaces push id, provider and time"
    );

    let laptop = PushBinding {
        provider: PushProvider::Webhook,
        ..binding(app, "pat", "laptop", "hook-1")
    };
    store.bind_push(&laptop).await.expect("bind_push failed");
    assert_eq!(
        of("pat").await,
        [laptop.clone(), phone.clone()],
        "push: all devices, ordered by device id"
    );
    assert!(
        of("nobody").await.is_empty(),
        "push: no bindings for an unknown user"
    );

    let unbind = |device: &'static str| async move {
        store
            .unbind_push(app, "pat", device)
            .await
            .expect("unbind_push failed")
    };
    assert!(
        unbind("phone").await,
        "push: unbinding a bound device is true"
    );
    assert!(!unbind("phone").await, "push: unbinding it again is false");
    assert!(
        !unbind("tablet").await,
        "push: unbinding an unknown device is false"
    );
    assert_eq!(
        of("pat").await,
        [laptop],
        "push: the other device keeps its binding"
    );
}

/// 250 bindings in pages of 100: each exactly once, in (user_id, device_id) byte order (the
/// order of Rust's `str`; PostgreSQL needs `COLLATE "C"` for it), and a cursor that no longer
/// exists still resumes at the next binding.
pub async fn push_paging(store: &dyn Store) {
    let app = 4_000_000_014;
    // Mixed case and punctuation make byte order differ from any locale's order.
    let mut want: Vec<PushBinding> = Vec::new();
    for i in 0..123 {
        for device in ["d-a", "d_B"] {
            want.push(binding(
                app,
                &format!("user{i:03}"),
                device,
                &format!("t{i}{device}"),
            ));
        }
    }
    for user_id in ["User_X", "user-x", "userX", "user_x"] {
        want.push(binding(app, user_id, "d", user_id));
    }
    assert_eq!(want.len(), 250);
    // Bind in a scrambled order so the store, not insertion order, has to sort.
    for i in 0..want.len() {
        store
            .bind_push(&want[(i * 97) % want.len()])
            .await
            .expect("bind_push failed");
    }
    store
        .bind_push(&binding(app + 1, "user000", "d-a", "other-app"))
        .await
        .expect("bind_push failed");
    want.sort_by(|a, b| (&a.user_id, &a.device_id).cmp(&(&b.user_id, &b.device_id)));

    let mut seen: Vec<PushBinding> = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let after = seen
            .last()
            .map(|b| (b.user_id.as_str(), b.device_id.as_str()));
        let page = store
            .push_bindings_page(app, after, 100)
            .await
            .expect("push_bindings_page failed");
        sizes.push(page.len());
        if page.is_empty() {
            break;
        }
        assert!(
            sizes.len() <= 4,
            "paging: does not end (page sizes so far {sizes:?})"
        );
        seen.extend(page);
    }
    assert_eq!(sizes, [100, 100, 50, 0], "paging: page sizes");
    let key = |b: &PushBinding| (b.user_id.clone(), b.device_id.clone());
    if let Some(i) = (0..want.len()).find(|&i| seen[i] != want[i]) {
        panic!(
            "paging: at {i} want {:?}, got {:?} (every binding once, in byte order)",
            key(&want[i]),
            key(&seen[i])
        );
    }

    let resumed = store
        .push_bindings_page(app, Some(("user050", "d-zz")), 2)
        .await
        .expect("push_bindings_page failed");
    let got: Vec<_> = resumed
        .iter()
        .map(|b| (b.user_id.as_str(), b.device_id.as_str()))
        .collect();
    assert_eq!(
        got,
        [("user050", "d_B"), ("user051", "d-a")],
        "paging: a cursor that is not a row resumes after it"
    );
}

/// The same user id in two apps is two users, two sets of bindings, two rate windows.
pub async fn apps_isolated(store: &dyn Store) {
    let (a, b) = (4_000_000_015, 4_000_000_016);
    store
        .register_users(a, &[user("same", "In A")])
        .await
        .expect("register_users failed");
    assert!(
        !store
            .user_exists(b, "same")
            .await
            .expect("user_exists failed"),
        "apps: a user of A is unknown in B"
    );
    let outcome = store
        .register_users(b, &[user("same", "In B")])
        .await
        .expect("register_users failed");
    assert_eq!(
        outcome,
        [RowOutcome::Done],
        "apps: the same id registers in B"
    );
    let change = UserChange {
        user_id: "same".into(),
        user_name: Some("Renamed".into()),
        ..UserChange::default()
    };
    store
        .modify_users(a, &[change])
        .await
        .expect("modify_users failed");
    let in_b = store
        .get_users(b, &ids(&["same"]))
        .await
        .expect("get_users failed");
    assert_eq!(
        in_b[0].user_name, "In B",
        "apps: modifying A's user leaves B's alone"
    );

    store
        .bind_push(&binding(a, "same", "dev", "token-a"))
        .await
        .expect("bind_push failed");
    store
        .bind_push(&binding(b, "same", "dev", "token-b"))
        .await
        .expect("bind_push failed");
    assert!(
        store
            .unbind_push(b, "same", "dev")
            .await
            .expect("unbind_push failed"),
        "apps: B's binding unbinds"
    );
    let in_a = store
        .push_bindings_of(a, "same")
        .await
        .expect("push_bindings_of failed");
    assert_eq!(
        in_a,
        [binding(a, "same", "dev", "token-a")],
        "apps: unbinding in B leaves A's binding"
    );
    let page_b = store
        .push_bindings_page(b, None, 10)
        .await
        .expect("push_bindings_page failed");
    assert!(
        page_b.is_empty(),
        "apps: B's pages hold none of A's bindings"
    );

    assert_eq!(
        acquire(store, a, T0, 1, 1).await,
        RateDecision::Allowed,
        "apps: A's only daily slot"
    );
    assert_eq!(
        acquire(store, b, T0, 1, 1).await,
        RateDecision::Allowed,
        "apps: B has its own windows"
    );
}
