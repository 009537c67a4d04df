//! The store with a stopwatch: every call's duration goes to
//! `herald_store_operation_duration_seconds{op}`. It wraps whichever backend the server opened,
//! so both are measured alike and nothing in them knows about metrics.

use crate::metrics::Metrics;
use async_trait::async_trait;
use herald_store::{
    Acceptance, BroadcastRecord, NodeRecord, PageDone, PushBinding, PushJob, PushJobTotals, RateDecision, Result,
    RowOutcome, Store, UserChange, UserRecord,
};
use std::sync::Arc;
use std::time::Instant;

/// The `op` label values: one per method of [`Store`].
pub const STORE_OPS: &[&str] = &[
    "register_users",
    "ensure_user",
    "get_users",
    "user_exists",
    "modify_users",
    "remember_nonce",
    "try_acquire_broadcast_slot",
    "insert_broadcast",
    "accept_broadcast",
    "get_broadcast",
    "add_broadcast_online_delivered",
    "add_broadcast_recovered",
    "recent_broadcasts",
    "claim_push_job",
    "advance_push_job",
    "finish_push_job",
    "get_push_job",
    "bind_push",
    "unbind_push",
    "remove_push_binding",
    "push_bindings_page",
    "push_bindings_of",
    "presence_session_started",
    "presence_session_ended",
    "renew_node_lease",
    "clear_node_sessions",
    "online_users",
    "online_counts",
    "cluster_nodes",
    "count_broadcast_calls",
    "list_broadcasts",
    "open_push_jobs",
    "push_job_totals",
    "count_push_bindings",
];

pub struct TimedStore {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl TimedStore {
    pub fn wrap(inner: Arc<dyn Store>, metrics: Arc<Metrics>) -> Arc<dyn Store> {
        Arc::new(TimedStore { inner, metrics })
    }

    fn observe(&self, op: &str, started: Instant) {
        if let Some(h) = self.metrics.store_duration.with(op) {
            h.observe(started.elapsed());
        }
    }
}

/// Times one delegated call.
macro_rules! timed {
    ($self:ident, $op:ident ( $($arg:expr),* )) => {{
        let started = Instant::now();
        let result = $self.inner.$op($($arg),*).await;
        $self.observe(stringify!($op), started);
        result
    }};
}

#[async_trait]
impl Store for TimedStore {
    async fn register_users(&self, app_id: u32, users: &[UserRecord]) -> Result<Vec<RowOutcome>> {
        timed!(self, register_users(app_id, users))
    }
    async fn ensure_user(&self, app_id: u32, user_id: &str, user_name: &str, now_ms: i64) -> Result<bool> {
        timed!(self, ensure_user(app_id, user_id, user_name, now_ms))
    }
    async fn get_users(&self, app_id: u32, user_ids: &[String]) -> Result<Vec<UserRecord>> {
        timed!(self, get_users(app_id, user_ids))
    }
    async fn user_exists(&self, app_id: u32, user_id: &str) -> Result<bool> {
        timed!(self, user_exists(app_id, user_id))
    }
    async fn modify_users(&self, app_id: u32, changes: &[UserChange]) -> Result<Vec<RowOutcome>> {
        timed!(self, modify_users(app_id, changes))
    }
    async fn remember_nonce(&self, app_id: u32, nonce: &str, now_ms: i64, ttl_ms: i64) -> Result<bool> {
        timed!(self, remember_nonce(app_id, nonce, now_ms, ttl_ms))
    }
    async fn try_acquire_broadcast_slot(
        &self,
        app_id: u32,
        now_ms: i64,
        per_second: u32,
        per_day: u32,
    ) -> Result<RateDecision> {
        timed!(self, try_acquire_broadcast_slot(app_id, now_ms, per_second, per_day))
    }
    async fn insert_broadcast(&self, record: &BroadcastRecord) -> Result<()> {
        timed!(self, insert_broadcast(record))
    }
    async fn accept_broadcast(&self, record: &BroadcastRecord, per_second: u32, per_day: u32) -> Result<Acceptance> {
        timed!(self, accept_broadcast(record, per_second, per_day))
    }
    async fn get_broadcast(&self, app_id: u32, message_id: u64) -> Result<Option<BroadcastRecord>> {
        timed!(self, get_broadcast(app_id, message_id))
    }
    async fn add_broadcast_online_delivered(&self, app_id: u32, message_id: u64, delivered: u64) -> Result<()> {
        timed!(self, add_broadcast_online_delivered(app_id, message_id, delivered))
    }
    async fn add_broadcast_recovered(&self, app_id: u32, message_id: u64, recovered: u64) -> Result<()> {
        timed!(self, add_broadcast_recovered(app_id, message_id, recovered))
    }
    async fn recent_broadcasts(&self, app_id: u32, since_ms: i64, limit: u32) -> Result<Vec<BroadcastRecord>> {
        timed!(self, recent_broadcasts(app_id, since_ms, limit))
    }
    async fn claim_push_job(&self, app_id: u32, owner: &str, now_ms: i64, lease_ms: i64) -> Result<Option<PushJob>> {
        timed!(self, claim_push_job(app_id, owner, now_ms, lease_ms))
    }
    async fn advance_push_job(
        &self,
        app_id: u32,
        message_id: u64,
        owner: &str,
        page: PageDone<'_>,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<bool> {
        timed!(self, advance_push_job(app_id, message_id, owner, page, now_ms, lease_ms))
    }
    async fn finish_push_job(&self, app_id: u32, message_id: u64, owner: &str, now_ms: i64) -> Result<bool> {
        timed!(self, finish_push_job(app_id, message_id, owner, now_ms))
    }
    async fn get_push_job(&self, app_id: u32, message_id: u64) -> Result<Option<PushJob>> {
        timed!(self, get_push_job(app_id, message_id))
    }
    async fn bind_push(&self, binding: &PushBinding) -> Result<()> {
        timed!(self, bind_push(binding))
    }
    async fn unbind_push(&self, app_id: u32, user_id: &str, device_id: &str) -> Result<bool> {
        timed!(self, unbind_push(app_id, user_id, device_id))
    }
    async fn remove_push_binding(&self, app_id: u32, user_id: &str, device_id: &str, push_id: &str) -> Result<bool> {
        timed!(self, remove_push_binding(app_id, user_id, device_id, push_id))
    }
    async fn push_bindings_page(
        &self,
        app_id: u32,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<PushBinding>> {
        timed!(self, push_bindings_page(app_id, after, limit))
    }
    async fn push_bindings_of(&self, app_id: u32, user_id: &str) -> Result<Vec<PushBinding>> {
        timed!(self, push_bindings_of(app_id, user_id))
    }
    async fn presence_session_started(
        &self,
        app_id: u32,
        user_id: &str,
        session_id: u64,
        node_id: u16,
        now_ms: i64,
    ) -> Result<()> {
        timed!(self, presence_session_started(app_id, user_id, session_id, node_id, now_ms))
    }
    async fn presence_session_ended(&self, session_id: u64) -> Result<()> {
        timed!(self, presence_session_ended(session_id))
    }
    async fn renew_node_lease(&self, node_id: u16, until_ms: i64) -> Result<()> {
        timed!(self, renew_node_lease(node_id, until_ms))
    }
    async fn clear_node_sessions(&self, node_id: u16) -> Result<()> {
        timed!(self, clear_node_sessions(node_id))
    }
    async fn online_users(&self, app_id: u32, user_ids: &[String], now_ms: i64) -> Result<Vec<String>> {
        timed!(self, online_users(app_id, user_ids, now_ms))
    }
    async fn online_counts(&self, app_id: u32, now_ms: i64) -> Result<(u64, u64)> {
        timed!(self, online_counts(app_id, now_ms))
    }
    async fn cluster_nodes(&self) -> Result<Vec<NodeRecord>> {
        timed!(self, cluster_nodes())
    }
    async fn count_broadcast_calls(&self, app_id: u32, since_ms: i64) -> Result<u64> {
        timed!(self, count_broadcast_calls(app_id, since_ms))
    }
    async fn list_broadcasts(&self, app_id: u32, limit: u32) -> Result<Vec<BroadcastRecord>> {
        timed!(self, list_broadcasts(app_id, limit))
    }
    async fn open_push_jobs(&self, app_id: u32) -> Result<Vec<PushJob>> {
        timed!(self, open_push_jobs(app_id))
    }
    async fn push_job_totals(&self) -> Result<PushJobTotals> {
        timed!(self, push_job_totals())
    }
    async fn count_push_bindings(&self, app_id: u32) -> Result<u64> {
        timed!(self, count_push_bindings(app_id))
    }
}
