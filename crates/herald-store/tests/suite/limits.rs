//! Request limits: nonce replay protection and the two rolling broadcast windows.

use super::{acquire, T0};
use herald_store::{RateDecision, Store};
use std::sync::Arc;

const DAY_MS: i64 = 86_400_000;

/// A nonce is refused while live (now < seen + ttl), then fresh again once expired.
pub async fn nonce_replay_and_expiry(store: &dyn Store) {
    let (app, other_app) = (4_000_000_005, 4_000_000_006);
    let ttl = 600_000;
    let remember = |app: u32, nonce: &'static str, now: i64| async move {
        store.remember_nonce(app, nonce, now, ttl).await.expect("remember_nonce failed")
    };
    assert!(remember(app, "n-1", T0).await, "nonce: first sight is fresh");
    assert!(!remember(app, "n-1", T0 + 1).await, "nonce: a reuse inside the ttl is a replay");
    assert!(!remember(app, "n-1", T0 + ttl - 1).await, "nonce: still a replay 1 ms before expiry");
    assert!(remember(app, "n-2", T0 + 2).await, "nonce: another nonce is fresh");
    assert!(remember(other_app, "n-1", T0 + 3).await, "nonce: the same nonce in another app is fresh");
    assert!(remember(app, "n-1", T0 + ttl).await, "nonce: an expired nonce counts as fresh");
    assert!(!remember(app, "n-1", T0 + ttl + 1).await, "nonce: re-seen after expiry, it is live again");
    // n-2 was pruned long ago by the calls above; seeing it again is simply fresh.
    assert!(remember(app, "n-2", T0 + 3 * ttl).await, "nonce: long-expired nonce is fresh");
}

/// The last 1000 ms hold at most `per_second` calls; refused calls take no slot.
pub async fn rate_per_second(store: &dyn Store) {
    use RateDecision::*;
    let app = 4_000_000_007;
    assert_eq!(acquire(store, app, T0, 1, 100).await, Allowed, "per-second: first call allowed");
    assert_eq!(acquire(store, app, T0 + 999, 1, 100).await, PerSecondExceeded, "per-second: 999 ms later refused");
    assert_eq!(
        acquire(store, app, T0 + 1000, 1, 100).await,
        Allowed,
        "per-second: allowed 1000 ms after the last allowed call (a refused call must not count)"
    );

    let app = 4_000_000_008;
    for i in 0..3 {
        assert_eq!(acquire(store, app, T0, 3, 100).await, Allowed, "per-second=3: call {i} allowed");
    }
    assert_eq!(acquire(store, app, T0 + 500, 3, 100).await, PerSecondExceeded, "per-second=3: 4th refused");
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
    assert_eq!(acquire(store, app, last + 5_000, 1, 100).await, PerDayExceeded, "per-day: the 101st is refused");
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
    assert_eq!(acquire(store, app, T0 + DAY_MS, 1, 100).await, Allowed, "per-day: allowed once the oldest left");
    assert_eq!(
        acquire(store, app, T0 + DAY_MS + 1_000, 1, 100).await,
        PerDayExceeded,
        "per-day: the freed slot was taken; the next frees at T0 + step + 24 h"
    );
    assert_eq!(acquire(store, app, T0 + step + DAY_MS, 1, 100).await, Allowed, "per-day: second slot frees on time");
}

/// Concurrent callers cannot share a slot: one of 20 same-instant callers gets per_second=1,
/// and 5 of 20 spread-out callers get per_day=5.
pub async fn rate_concurrent_acquires(store: Arc<dyn Store>) {
    async fn race(store: &Arc<dyn Store>, app: u32, per_day: u32, at: impl Fn(i64) -> i64) -> usize {
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let store = store.clone();
                let now = at(i);
                tokio::spawn(async move { store.try_acquire_broadcast_slot(app, now, 1, per_day).await })
            })
            .collect();
        let mut allowed = 0;
        for task in tasks {
            let decision = task.await.expect("acquire task panicked").expect("try_acquire_broadcast_slot failed");
            allowed += usize::from(decision == RateDecision::Allowed);
        }
        allowed
    }
    let same_instant = race(&store, 4_000_000_010, 100, |_| T0).await;
    assert_eq!(same_instant, 1, "concurrent: 20 callers at one instant with per_second=1, want exactly 1 allowed");
    let spread = race(&store, 4_000_000_011, 5, |i| T0 + i * 2_000).await;
    assert_eq!(spread, 5, "concurrent: 20 callers 2 s apart with per_day=5, want exactly 5 allowed");
}
