//! The cluster backend: one PostgreSQL database shared by every Herald node.
//!
//! Semantics are those of [`crate::sqlite`] (the reference); both pass `tests/suite/`.
//! What differs is how steps stay atomic: SQLite has one writer, here several processes write
//! at once, so each check-then-write step either is one statement or serializes on a lock:
//!
//! - `try_acquire_broadcast_slot` takes a transaction-scoped advisory lock keyed by the app,
//!   then prunes, counts and inserts; the lock is released by the commit.
//! - `remember_nonce` is one `INSERT ... ON CONFLICT DO UPDATE ... WHERE expired`.
//! - `claim_push_job` picks its job with `FOR UPDATE SKIP LOCKED`, so two nodes never claim the
//!   same job, and a lease lets another node take over the job of a node that died.
//! - `bind_push` takes an advisory lock keyed by the push token, so two binds of one token
//!   cannot both keep it.
//!
//! Every transaction runs at READ COMMITTED (the default): a statement that follows a lock
//! sees everything committed by the lock's previous holder.

use crate::pg_logins::{LoginWrites, NewUser, SessionStart};
use crate::rows::{self, rate_decision};
use crate::{
    BroadcastRecord, NodeRecord, PageDone, PushBinding, PushJob, PushJobState, PushJobTotals, PushType, RateDecision,
    Result, RowOutcome, Store, StoreError, UserChange, UserRecord,
};
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Row;
use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The rolling windows of [`Store::try_acquire_broadcast_slot`].
const SECOND_WINDOW_MS: i64 = 1_000;
const DAY_WINDOW_MS: i64 = 86_400_000;

/// Connections per node. Every store step is a few short statements, so a handful of
/// connections carries a node; several nodes share the server's `max_connections` (100 by
/// default).
pub const MAX_CONNECTIONS: u32 = 16;

/// How long a step waits for a free connection (or for the server to answer a connect)
/// before it fails with a database error.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// First key of Herald's two-key advisory locks (the second is the app id or a token hash).
/// Single-key (bigint) advisory locks live in another key space, so other users of the
/// database cannot collide with these by accident.
const LOCK_BROADCAST_SLOT: i32 = 0x4852_0001;
const LOCK_PUSH_TOKEN: i32 = 0x4852_0002;

/// Tries of a transaction that PostgreSQL aborted to break a deadlock.
const DEADLOCK_TRIES: u32 = 3;

const USER_COLUMNS: &str = "user_id, user_name, user_avatar, extra, created_at_ms";
const BINDING_COLUMNS: &str = "app_id, user_id, device_id, push_id, provider, updated_at_ms";
const BROADCAST_COLUMNS: &str = "app_id, message_id, from_user_id, message_type, sub_type, \
     push_type, body_json, accepted_at_ms, online_delivered, recovered_delivered";
const JOB_COLUMNS: &str = "app_id, message_id, push_type, state, cursor_user_id, cursor_device_id, targeted, \
     sent, failed, removed, skipped_online, created_at_ms, updated_at_ms, finished_at_ms";
/// [`JOB_COLUMNS`] of the table aliased `j`, for an `UPDATE ... FROM` whose other side has
/// columns of the same names.
const JOB_COLUMNS_OF_J: &str = "j.app_id, j.message_id, j.push_type, j.state, j.cursor_user_id, \
     j.cursor_device_id, j.targeted, j.sent, j.failed, j.removed, j.skipped_online, j.created_at_ms, \
     j.updated_at_ms, j.finished_at_ms";

/// In-process queues in front of the broadcast-slot advisory lock, one per `app_id % SLOT_GATES`.
const SLOT_GATES: usize = 64;

/// The PostgreSQL [`Store`]. Cloning is cheap and shares the pool.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// Acquires of one app on this node queue here (tokio's mutex is FIFO) before they take a
    /// connection and the app's advisory lock. Without it a burst of calls for one app would
    /// park up to every pooled connection on that lock, starving all other steps, and the
    /// calls would reach the lock in whatever order their connections came up; with it they
    /// are served in arrival order, as SQLite's single writer serves them. Across nodes the
    /// advisory lock alone decides.
    slot_gates: Arc<[tokio::sync::Mutex<()>]>,
    /// `ensure_user`, `presence_session_started` and `presence_session_ended` go through here: one
    /// commit per batch.
    logins: Arc<LoginWrites>,
}

impl PostgresStore {
    /// Opens `postgres://...` or `postgresql://...` (any URL sqlx's `PgConnectOptions` takes)
    /// and runs the migrations. The database must exist. Nodes starting together are fine:
    /// sqlx serializes migrations with an advisory lock.
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with(url, MAX_CONNECTIONS).await
    }

    /// [`PostgresStore::open`] with a pool of at most `max_connections` (at least 1). Every node
    /// of a cluster holds its own pool, so together they must stay under the server's
    /// `max_connections`.
    pub async fn open_with(url: &str, max_connections: u32) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        tracing::debug!("postgres store open");
        let slot_gates = (0..SLOT_GATES).map(|_| tokio::sync::Mutex::new(())).collect();
        let logins = Arc::new(LoginWrites::start(&pool));
        Ok(Self { pool, slot_gates, logins })
    }

    /// Closes every connection, waiting for those in use.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The app id as the second key of a two-key advisory lock (its u32 bit pattern).
fn app_lock_key(app_id: u32) -> i32 {
    app_id as i32
}

/// True for errors that only say "run the transaction again": a deadlock PostgreSQL broke by
/// aborting us, or a serialization failure.
fn is_retryable(error: &StoreError) -> bool {
    match error {
        StoreError::Database(sqlx::Error::Database(e)) => matches!(e.code().as_deref(), Some("40P01" | "40001")),
        _ => false,
    }
}

impl PostgresStore {
    async fn bind_push_once(&self, binding: &PushBinding) -> Result<()> {
        let app_id = i64::from(binding.app_id);
        let mut tx = self.pool.begin().await?;
        // Two nodes binding one token at once would each delete the other holders (none yet)
        // and both keep it; the lock makes the second see the first's binding and remove it.
        // hashtext is PostgreSQL's own, so every node (whatever its build) derives the same key;
        // two tokens sharing a hash merely wait for each other.
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(LOCK_PUSH_TOKEN)
            .bind(format!("{app_id}:{}:{}", binding.provider.as_str(), binding.push_id))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM push_bindings WHERE app_id = $1 AND push_id = $2 AND provider = $3 \
             AND NOT (user_id = $4 AND device_id = $5)",
        )
        .bind(app_id)
        .bind(&binding.push_id)
        .bind(binding.provider.as_str())
        .bind(&binding.user_id)
        .bind(&binding.device_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "INSERT INTO push_bindings ({BINDING_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (app_id, user_id, device_id) DO UPDATE SET push_id = excluded.push_id, \
             provider = excluded.provider, updated_at_ms = excluded.updated_at_ms"
        ))
        .bind(app_id)
        .bind(&binding.user_id)
        .bind(&binding.device_id)
        .bind(&binding.push_id)
        .bind(binding.provider.as_str())
        .bind(binding.updated_at_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn register_users(&self, app_id: u32, users: &[UserRecord]) -> Result<Vec<RowOutcome>> {
        // The first registration of an id in the batch is the one inserted; later ones in the
        // same batch are AlreadyExists, as with SQLite's row-by-row inserts. The rows go in
        // one statement, in byte order of user id, so two overlapping batches on two nodes
        // lock their rows in the same order and cannot deadlock.
        let mut seen = HashSet::new();
        let mut firsts: Vec<&UserRecord> = users.iter().filter(|u| seen.insert(u.user_id.as_str())).collect();
        if firsts.is_empty() {
            return Ok(Vec::new());
        }
        firsts.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        let column = |f: fn(&UserRecord) -> &str| firsts.iter().map(|&u| f(u)).collect::<Vec<&str>>();
        let created: Vec<i64> = firsts.iter().map(|u| u.created_at_ms).collect();
        let inserted: Vec<String> = sqlx::query_scalar(
            "INSERT INTO users (app_id, user_id, user_name, user_avatar, extra, created_at_ms) \
             SELECT $1, u.user_id, u.user_name, u.user_avatar, u.extra, u.created_at_ms \
             FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::int8[]) \
             WITH ORDINALITY AS u (user_id, user_name, user_avatar, extra, created_at_ms, ord) \
             ORDER BY u.ord \
             ON CONFLICT (app_id, user_id) DO NOTHING RETURNING user_id",
        )
        .bind(i64::from(app_id))
        .bind(column(|u| u.user_id.as_str()))
        .bind(column(|u| u.user_name.as_str()))
        .bind(column(|u| u.user_avatar.as_str()))
        .bind(column(|u| u.extra.as_str()))
        .bind(created)
        .fetch_all(&self.pool)
        .await?;
        let mut inserted: HashSet<String> = inserted.into_iter().collect();
        Ok(users
            .iter()
            .map(|u| if inserted.remove(&u.user_id) { RowOutcome::Done } else { RowOutcome::AlreadyExists })
            .collect())
    }

    async fn ensure_user(&self, app_id: u32, user_id: &str, user_name: &str, now_ms: i64) -> Result<bool> {
        let user = NewUser { app_id, user_id: user_id.to_string(), user_name: user_name.to_string(), now_ms };
        self.logins.users.submit(user).await
    }

    async fn get_users(&self, app_id: u32, user_ids: &[String]) -> Result<Vec<UserRecord>> {
        if user_ids.is_empty() {
            return Ok(Vec::new());
        }
        // One array parameter: one statement text whatever the count; duplicates collapse.
        let rows = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE app_id = $1 AND user_id = ANY($2)"))
            .bind(i64::from(app_id))
            .bind(user_ids)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rows::user).collect()
    }

    async fn user_exists(&self, app_id: u32, user_id: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM users WHERE app_id = $1 AND user_id = $2")
            .bind(i64::from(app_id))
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    async fn modify_users(&self, app_id: u32, changes: &[UserChange]) -> Result<Vec<RowOutcome>> {
        // Applied in byte order of user id (a stable sort, so changes to one user keep their
        // input order): updates of different users commute, and two overlapping batches on
        // two nodes then lock rows in the same order and cannot deadlock.
        let mut order: Vec<usize> = (0..changes.len()).collect();
        order.sort_by(|&a, &b| changes[a].user_id.cmp(&changes[b].user_id));
        let mut outcomes = vec![RowOutcome::NotFound; changes.len()];
        let mut tx = self.pool.begin().await?;
        for i in order {
            let change = &changes[i];
            // A NULL parameter (None) keeps the column as it is.
            let updated = sqlx::query(
                "UPDATE users SET user_name = COALESCE($1, user_name), \
                 user_avatar = COALESCE($2, user_avatar), extra = COALESCE($3, extra) \
                 WHERE app_id = $4 AND user_id = $5",
            )
            .bind(change.user_name.as_deref())
            .bind(change.user_avatar.as_deref())
            .bind(change.extra.as_deref())
            .bind(i64::from(app_id))
            .bind(&change.user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if updated {
                outcomes[i] = RowOutcome::Done;
            }
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn remember_nonce(&self, app_id: u32, nonce: &str, now_ms: i64, ttl_ms: i64) -> Result<bool> {
        // A nonce is live while now_ms < expires_at_ms.
        // The prune is housekeeping, not part of the answer, so it runs on its own. SKIP LOCKED
        // lets nodes pruning at the same moment share the rows instead of queueing on them;
        // the limit bounds one call's work after a long pause (each call adds one row).
        sqlx::query(
            "DELETE FROM api_nonces WHERE ctid IN (SELECT ctid FROM api_nonces WHERE expires_at_ms <= $1 \
             LIMIT 1000 FOR UPDATE SKIP LOCKED)",
        )
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        // One statement decides: a concurrent insert of the same nonce waits for this one and
        // then finds it live. An expired row that survived the prune is taken over rather than
        // mistaken for a replay.
        let fresh = sqlx::query(
            "INSERT INTO api_nonces (app_id, nonce, expires_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (app_id, nonce) DO UPDATE SET expires_at_ms = excluded.expires_at_ms \
             WHERE api_nonces.expires_at_ms <= $4",
        )
        .bind(i64::from(app_id))
        .bind(nonce)
        .bind(now_ms.saturating_add(ttl_ms))
        .bind(now_ms)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1;
        Ok(fresh)
    }

    async fn try_acquire_broadcast_slot(
        &self,
        app_id: u32,
        now_ms: i64,
        per_second: u32,
        per_day: u32,
    ) -> Result<RateDecision> {
        let _gate = self.slot_gates[app_id as usize % SLOT_GATES].lock().await;
        let lock_key = app_lock_key(app_id);
        let app_id = i64::from(app_id);
        let mut tx = self.pool.begin().await?;
        // Every node's acquire for this app queues here until the holder commits. The count
        // below is a later statement, so (at READ COMMITTED) it sees the holder's insert.
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(LOCK_BROADCAST_SLOT)
            .bind(lock_key)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM broadcast_calls WHERE app_id = $1 AND at_ms <= $2")
            .bind(app_id)
            .bind(now_ms - DAY_WINDOW_MS)
            .execute(&mut *tx)
            .await?;
        // What is left is the day window; calls stamped after now_ms (a clock that stepped
        // back, or a node whose clock runs ahead) still count, which errs on the side of refusing.
        let (in_day, in_second): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE at_ms > $1) FROM broadcast_calls WHERE app_id = $2",
        )
        .bind(now_ms - SECOND_WINDOW_MS)
        .bind(app_id)
        .fetch_one(&mut *tx)
        .await?;
        let decision = rate_decision(in_second, in_day, per_second, per_day);
        if decision == RateDecision::Allowed {
            sqlx::query("INSERT INTO broadcast_calls (app_id, at_ms) VALUES ($1, $2)")
                .bind(app_id)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(decision)
    }

    async fn insert_broadcast(&self, record: &BroadcastRecord) -> Result<()> {
        // One statement writes both rows, so they commit (or fail, on a duplicate id) together.
        // The job row is written when the bound flag says the broadcast pushes offline.
        sqlx::query(&format!(
            "WITH b AS (INSERT INTO broadcasts ({BROADCAST_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING app_id, message_id, push_type, accepted_at_ms) \
             INSERT INTO push_jobs (app_id, message_id, push_type, state, created_at_ms, updated_at_ms) \
             SELECT app_id, message_id, push_type, 'pending', accepted_at_ms, accepted_at_ms FROM b \
             WHERE $11"
        ))
        .bind(i64::from(record.app_id))
        .bind(record.message_id as i64)
        .bind(&record.from_user_id)
        .bind(i64::from(record.message_type.code()))
        .bind(i64::from(record.sub_type))
        .bind(i16::from(record.push_type.code()))
        .bind(&record.body_json)
        .bind(record.accepted_at_ms)
        .bind(record.online_delivered as i64)
        .bind(record.recovered_delivered as i64)
        .bind(record.push_type.pushes_offline())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_broadcast(&self, app_id: u32, message_id: u64) -> Result<Option<BroadcastRecord>> {
        let row =
            sqlx::query(&format!("SELECT {BROADCAST_COLUMNS} FROM broadcasts WHERE app_id = $1 AND message_id = $2"))
                .bind(i64::from(app_id))
                .bind(message_id as i64)
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(rows::broadcast).transpose()
    }

    async fn add_broadcast_online_delivered(&self, app_id: u32, message_id: u64, delivered: u64) -> Result<()> {
        let result = sqlx::query(
            "UPDATE broadcasts SET online_delivered = online_delivered + $1 WHERE app_id = $2 AND message_id = $3",
        )
        .bind(delivered as i64)
        .bind(i64::from(app_id))
        .bind(message_id as i64)
        .execute(&self.pool)
        .await?;
        if result.rows_affected() == 0 {
            // Only a caller bug gets here (the record is inserted before the fan-out starts);
            // the count is a report, not worth failing the broadcast over.
            tracing::warn!(app_id, message_id, "online count for an unknown broadcast dropped");
        }
        Ok(())
    }

    async fn add_broadcast_recovered(&self, app_id: u32, message_id: u64, recovered: u64) -> Result<()> {
        sqlx::query(
            "UPDATE broadcasts SET recovered_delivered = recovered_delivered + $1 WHERE app_id = $2 AND message_id = $3",
        )
        .bind(recovered as i64)
        .bind(i64::from(app_id))
        .bind(message_id as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn recent_broadcasts(&self, app_id: u32, since_ms: i64, limit: u32) -> Result<Vec<BroadcastRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT * FROM (SELECT {BROADCAST_COLUMNS} FROM broadcasts \
             WHERE app_id = $1 AND accepted_at_ms >= $2 AND push_type <> $3 \
             ORDER BY accepted_at_ms DESC, message_id DESC LIMIT $4) newest ORDER BY accepted_at_ms, message_id"
        ))
        .bind(i64::from(app_id))
        .bind(since_ms)
        .bind(i16::from(PushType::OfflineOnly.code()))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::broadcast).collect()
    }

    async fn claim_push_job(&self, app_id: u32, owner: &str, now_ms: i64, lease_ms: i64) -> Result<Option<PushJob>> {
        // SKIP LOCKED: a job another node is claiming (or advancing) right now is passed over
        // for the next one instead of waited on. A row that changed before we locked it is
        // re-checked against the WHERE, and the LIMIT counts only rows that passed.
        let row = sqlx::query(&format!(
            "WITH next AS (SELECT app_id, message_id FROM push_jobs \
             WHERE app_id = $1 AND state <> 'done' AND (owner IS NULL OR owner = $2 OR lease_until_ms < $3) \
             ORDER BY created_at_ms, message_id LIMIT 1 FOR UPDATE SKIP LOCKED) \
             UPDATE push_jobs j SET state = 'running', owner = $2, lease_until_ms = $4, updated_at_ms = $3 \
             FROM next WHERE j.app_id = next.app_id AND j.message_id = next.message_id \
             RETURNING {JOB_COLUMNS_OF_J}"
        ))
        .bind(i64::from(app_id))
        .bind(owner)
        .bind(now_ms)
        .bind(now_ms.saturating_add(lease_ms))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(rows::job).transpose()
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
        let (cursor, delta) = (page.cursor, page.delta);
        let result = sqlx::query(
            "UPDATE push_jobs SET cursor_user_id = $1, cursor_device_id = $2, targeted = targeted + $3, \
             sent = sent + $4, failed = failed + $5, removed = removed + $6, skipped_online = skipped_online + $7, \
             lease_until_ms = $8, updated_at_ms = $9 \
             WHERE app_id = $10 AND message_id = $11 AND owner = $12 AND state = 'running'",
        )
        .bind(cursor.0)
        .bind(cursor.1)
        .bind(delta.targeted as i64)
        .bind(delta.sent as i64)
        .bind(delta.failed as i64)
        .bind(delta.removed as i64)
        .bind(delta.skipped_online as i64)
        .bind(now_ms.saturating_add(lease_ms))
        .bind(now_ms)
        .bind(i64::from(app_id))
        .bind(message_id as i64)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn finish_push_job(&self, app_id: u32, message_id: u64, owner: &str, now_ms: i64) -> Result<bool> {
        let result = sqlx::query(
            "UPDATE push_jobs SET state = 'done', owner = NULL, lease_until_ms = 0, updated_at_ms = $1, \
             finished_at_ms = $1 WHERE app_id = $2 AND message_id = $3 AND owner = $4 AND state = 'running'",
        )
        .bind(now_ms)
        .bind(i64::from(app_id))
        .bind(message_id as i64)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn get_push_job(&self, app_id: u32, message_id: u64) -> Result<Option<PushJob>> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM push_jobs WHERE app_id = $1 AND message_id = $2"))
            .bind(i64::from(app_id))
            .bind(message_id as i64)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::job).transpose()
    }

    async fn bind_push(&self, binding: &PushBinding) -> Result<()> {
        // Two tokens swapping devices on two nodes at once can deadlock on each other's rows;
        // PostgreSQL aborts one of them, which simply runs again.
        let mut tries = 1;
        loop {
            match self.bind_push_once(binding).await {
                Err(e) if tries < DEADLOCK_TRIES && is_retryable(&e) => {
                    tracing::debug!(error = %e, "bind_push retried");
                    tries += 1;
                }
                result => return result,
            }
        }
    }

    async fn unbind_push(&self, app_id: u32, user_id: &str, device_id: &str) -> Result<bool> {
        let result = sqlx::query("DELETE FROM push_bindings WHERE app_id = $1 AND user_id = $2 AND device_id = $3")
            .bind(i64::from(app_id))
            .bind(user_id)
            .bind(device_id)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn remove_push_binding(&self, app_id: u32, user_id: &str, device_id: &str, push_id: &str) -> Result<bool> {
        let result = sqlx::query(
            "DELETE FROM push_bindings WHERE app_id = $1 AND user_id = $2 AND device_id = $3 AND push_id = $4",
        )
        .bind(i64::from(app_id))
        .bind(user_id)
        .bind(device_id)
        .bind(push_id)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn push_bindings_page(
        &self,
        app_id: u32,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<PushBinding>> {
        // Keyset paging on the primary key: each page is an index range scan, however deep.
        // The columns are COLLATE "C", so both the row comparison and the order are byte order.
        let rows = match after {
            None => {
                sqlx::query(&format!(
                    "SELECT {BINDING_COLUMNS} FROM push_bindings WHERE app_id = $1 \
                     ORDER BY user_id, device_id LIMIT $2"
                ))
                .bind(i64::from(app_id))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
            Some((user_id, device_id)) => {
                sqlx::query(&format!(
                    "SELECT {BINDING_COLUMNS} FROM push_bindings \
                     WHERE app_id = $1 AND (user_id, device_id) > ($2, $3) \
                     ORDER BY user_id, device_id LIMIT $4"
                ))
                .bind(i64::from(app_id))
                .bind(user_id)
                .bind(device_id)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(rows::binding).collect()
    }

    async fn push_bindings_of(&self, app_id: u32, user_id: &str) -> Result<Vec<PushBinding>> {
        let rows = sqlx::query(&format!(
            "SELECT {BINDING_COLUMNS} FROM push_bindings WHERE app_id = $1 AND user_id = $2 \
             ORDER BY device_id"
        ))
        .bind(i64::from(app_id))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::binding).collect()
    }

    async fn presence_session_started(
        &self,
        app_id: u32,
        user_id: &str,
        session_id: u64,
        node_id: u16,
        now_ms: i64,
    ) -> Result<()> {
        let start = SessionStart { session_id, app_id, user_id: user_id.to_string(), node_id, now_ms };
        self.logins.sessions.submit(start).await
    }

    async fn presence_session_ended(&self, session_id: u64) -> Result<()> {
        self.logins.ends.submit(session_id).await
    }

    async fn renew_node_lease(&self, node_id: u16, until_ms: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO node_leases (node_id, until_ms) VALUES ($1, $2) \
             ON CONFLICT (node_id) DO UPDATE SET until_ms = EXCLUDED.until_ms",
        )
        .bind(i32::from(node_id))
        .bind(until_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn clear_node_sessions(&self, node_id: u16) -> Result<()> {
        sqlx::query("DELETE FROM presence_sessions WHERE node_id = $1")
            .bind(i32::from(node_id))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn online_users(&self, app_id: u32, user_ids: &[String], now_ms: i64) -> Result<Vec<String>> {
        if user_ids.is_empty() {
            return Ok(Vec::new());
        }
        // A node's lease is live while now_ms < until_ms.
        let rows = sqlx::query(
            "SELECT DISTINCT s.user_id FROM presence_sessions s JOIN node_leases n ON n.node_id = s.node_id \
             WHERE s.app_id = $1 AND n.until_ms > $2 AND s.user_id = ANY($3)",
        )
        .bind(i64::from(app_id))
        .bind(now_ms)
        .bind(user_ids)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get::<String, _>(0)?)).collect()
    }

    async fn online_counts(&self, app_id: u32, now_ms: i64) -> Result<(u64, u64)> {
        let row = sqlx::query(
            "SELECT COUNT(*), COUNT(DISTINCT s.user_id) FROM presence_sessions s \
             JOIN node_leases n ON n.node_id = s.node_id WHERE s.app_id = $1 AND n.until_ms > $2",
        )
        .bind(i64::from(app_id))
        .bind(now_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get::<i64, _>(0)? as u64, row.try_get::<i64, _>(1)? as u64))
    }

    async fn cluster_nodes(&self) -> Result<Vec<NodeRecord>> {
        let rows = sqlx::query(
            "SELECT n.node_id::BIGINT, n.until_ms, (SELECT COUNT(*) FROM presence_sessions s WHERE s.node_id = n.node_id) \
             FROM node_leases n ORDER BY n.node_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let node_id: i64 = r.try_get(0)?;
                Ok(NodeRecord {
                    node_id: u16::try_from(node_id).map_err(|_| StoreError::Corrupt(format!("node_id {node_id}")))?,
                    lease_until_ms: r.try_get(1)?,
                    sessions: r.try_get::<i64, _>(2)? as u64,
                })
            })
            .collect()
    }

    async fn count_push_bindings(&self, app_id: u32) -> Result<u64> {
        let row = sqlx::query("SELECT COUNT(*) FROM push_bindings WHERE app_id = $1")
            .bind(i64::from(app_id))
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>(0)? as u64)
    }

    async fn count_broadcast_calls(&self, app_id: u32, since_ms: i64) -> Result<u64> {
        let row = sqlx::query("SELECT COUNT(*) FROM broadcast_calls WHERE app_id = $1 AND at_ms >= $2")
            .bind(i64::from(app_id))
            .bind(since_ms)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>(0)? as u64)
    }

    async fn list_broadcasts(&self, app_id: u32, limit: u32) -> Result<Vec<BroadcastRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {BROADCAST_COLUMNS} FROM broadcasts WHERE app_id = $1 \
             ORDER BY accepted_at_ms DESC, message_id DESC LIMIT $2"
        ))
        .bind(i64::from(app_id))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::broadcast).collect()
    }

    async fn open_push_jobs(&self, app_id: u32) -> Result<Vec<PushJob>> {
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM push_jobs WHERE app_id = $1 AND state <> 'done' \
             ORDER BY created_at_ms, message_id"
        ))
        .bind(i64::from(app_id))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::job).collect()
    }

    async fn push_job_totals(&self) -> Result<PushJobTotals> {
        let rows = sqlx::query("SELECT state, COUNT(*) FROM push_jobs GROUP BY state").fetch_all(&self.pool).await?;
        let mut totals = PushJobTotals::default();
        for r in &rows {
            let n = r.try_get::<i64, _>(1)? as u64;
            match PushJobState::parse(&r.try_get::<String, _>(0)?) {
                Some(PushJobState::Pending) => totals.pending = n,
                Some(PushJobState::Running) => totals.running = n,
                Some(PushJobState::Done) => totals.done = n,
                None => {}
            }
        }
        Ok(totals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_ids_above_i32_max_keep_distinct_lock_keys() {
        assert_eq!(app_lock_key(u32::MAX), -1);
        assert_ne!(app_lock_key(4_000_000_010), app_lock_key(4_000_000_011));
        assert_eq!(app_lock_key(7), 7);
    }
}
