//! The one behaviour suite every [`Store`] backend must pass: `run_all(store)` on a fresh store.
//! Test code only: each backend's test file includes it with `mod suite;`.
//!
//! Each check is a `pub async fn` that panics with a message saying what broke, so a backend's
//! test can also run one check alone. Every check works in its own app ids (above `i32::MAX`,
//! to prove u32 ids survive the trip), so checks never see each other's rows even when they
//! share one database. Times are injected from [`T0`], never read from a clock.

use herald_store::{
    BroadcastRecord, MessageType, PushBinding, PushProvider, PushType, RateDecision, Store, UserRecord,
};
use std::sync::Arc;

mod apps;
mod broadcasts;
mod jobs;
mod limits;
mod operator;
mod presence;
mod push;
mod users;

pub use apps::apps_isolated;
pub use broadcasts::{accept_broadcast, broadcasts, recent_broadcasts};
pub use jobs::{push_job_lifecycle, push_jobs_recorded_with_broadcast, push_token_moves_and_dead_removal};
pub use limits::{nonce_replay_and_expiry, rate_concurrent_acquires, rate_per_day_rolling, rate_per_second};
pub use operator::operator_views;
pub use presence::{login_storm, presence_across_nodes};
pub use push::{push_bind_rebind_unbind, push_paging};
pub use users::{ensure_user, get_users_subset, modify_users, register_users};

/// An arbitrary "now" (2023-11-14) from which every check counts.
pub const T0: i64 = 1_700_000_000_000;

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
    recent_broadcasts(&*store).await;
    accept_broadcast(&*store).await;
    push_bind_rebind_unbind(&*store).await;
    push_paging(&*store).await;
    push_jobs_recorded_with_broadcast(&*store).await;
    push_job_lifecycle(&*store).await;
    push_token_moves_and_dead_removal(&*store).await;
    presence_across_nodes(&*store).await;
    login_storm(store.clone()).await;
    apps_isolated(&*store).await;
    operator_views(&*store).await;
}

/// A text broadcast from "admin" with no deliveries counted yet.
fn broadcast(app_id: u32, message_id: u64, push_type: PushType, accepted_at_ms: i64) -> BroadcastRecord {
    BroadcastRecord {
        app_id,
        message_id,
        from_user_id: "admin".into(),
        message_type: MessageType::Text,
        sub_type: 0,
        push_type,
        body_json: r#"{"Message":"hi"}"#.into(),
        accepted_at_ms,
        online_delivered: 0,
        recovered_delivered: 0,
    }
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

async fn acquire(store: &dyn Store, app: u32, now: i64, per_second: u32, per_day: u32) -> RateDecision {
    store.try_acquire_broadcast_slot(app, now, per_second, per_day).await.expect("try_acquire_broadcast_slot failed")
}
