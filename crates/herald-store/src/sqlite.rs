//! The embedded backend: one SQLite file in WAL mode (or `sqlite::memory:`), one writer connection.

use crate::rows::{self, rate_decision};
use crate::{
    BroadcastRecord, NodeRecord, PageDone, PushBinding, PushJob, PushJobState, PushJobTotals, PushType, RateDecision,
    Result, RowOutcome, Store, StoreError, UserChange, UserRecord,
};
use async_trait::async_trait;
use sqlx::sqlite::{Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, Transaction};
use std::str::FromStr;
use std::time::Duration;

/// The rolling windows of [`Store::try_acquire_broadcast_slot`].
const SECOND_WINDOW_MS: i64 = 1_000;
const DAY_WINDOW_MS: i64 = 86_400_000;

/// Read connections beside the writer; WAL lets them run while it writes. Kept small: the
/// machine has two cores and most reads are point look-ups.
const READ_CONNECTIONS: u32 = 4;

const USER_COLUMNS: &str = "user_id, user_name, user_avatar, extra, created_at_ms";
const BINDING_COLUMNS: &str = "app_id, user_id, device_id, push_id, provider, updated_at_ms";
const BROADCAST_COLUMNS: &str = "app_id, message_id, from_user_id, message_type, sub_type, \
     push_type, body_json, accepted_at_ms, online_delivered, recovered_delivered";

const JOB_COLUMNS: &str = "app_id, message_id, push_type, state, cursor_user_id, cursor_device_id, targeted, \
     sent, failed, removed, skipped_online, created_at_ms, updated_at_ms, finished_at_ms";

/// The SQLite [`Store`]. Cloning is cheap and shares the pools.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// A pool of exactly one connection that does every write. SQLite admits one writer at a
    /// time anyway; queueing writers here (fair, async) beats spinning in SQLite's busy handler,
    /// and it is what makes check-then-insert steps atomic within the process.
    writer: SqlitePool,
    /// Reads. For `sqlite::memory:` this is the writer pool itself, because an in-memory
    /// database lives only as long as its one connection.
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens `sqlite://PATH` (creating the file and its parent directory when missing) or
    /// `sqlite::memory:`, and runs the migrations.
    pub async fn open(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?.foreign_keys(true).busy_timeout(Duration::from_secs(5));

        if is_in_memory(url) {
            // Never let the pool retire the connection: the database would vanish with it.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await?;
            migrate(&pool).await?;
            return Ok(Self { writer: pool.clone(), reader: pool });
        }

        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // With WAL, NORMAL only risks the last commits on power loss, never corruption.
            .synchronous(SqliteSynchronous::Normal);
        create_private(options.get_filename()).map_err(sqlx::Error::Io)?;
        let writer = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
        migrate(&writer).await?;
        let reader = SqlitePoolOptions::new().max_connections(READ_CONNECTIONS).connect_with(options).await?;
        tracing::debug!(url, "sqlite store open");
        Ok(Self { writer, reader })
    }

    /// Closes every connection, waiting for those in use. A file store can then be reopened
    /// (or copied) with all its commits in place.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    /// A write transaction that holds SQLite's write lock from its first statement.
    /// `BEGIN IMMEDIATE` matters when another process shares the file: a deferred transaction
    /// that reads before writing could count a free slot another process is about to take.
    /// Dropping the transaction unfinished (a cancelled request) rolls it back.
    async fn write_tx(&self) -> Result<Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// The database holds every user and push token: its directory is made 0700 and the file 0600
/// when Herald creates them, and SQLite gives its `-wal` and `-shm` files the database's mode.
/// Existing files keep their modes (the server warns at start when others can read them).
fn create_private(db: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
        let mut dir = std::fs::DirBuilder::new();
        dir.recursive(true);
        #[cfg(unix)]
        dir.mode(0o700);
        dir.create(parent)?;
    }
    let mut file = std::fs::OpenOptions::new();
    file.write(true).create_new(true);
    #[cfg(unix)]
    file.mode(0o600);
    match file.open(db) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

async fn migrate(pool: &SqlitePool) -> Result<()> {
    sqlx::migrate!("./migrations/sqlite").run(pool).await?;
    Ok(())
}

/// sqlx accepts several spellings of an in-memory database; all of them need the single,
/// never-recycled connection.
fn is_in_memory(url: &str) -> bool {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    path == ":memory:" || query.split('&').any(|pair| pair == "mode=memory")
}

#[async_trait]
impl Store for SqliteStore {
    async fn register_users(&self, app_id: u32, users: &[UserRecord]) -> Result<Vec<RowOutcome>> {
        let mut tx = self.write_tx().await?;
        let mut outcomes = Vec::with_capacity(users.len());
        for user in users {
            // DO NOTHING leaves the first registration in place, including one made earlier
            // in this same batch, so a duplicate inside the batch reads as AlreadyExists.
            let inserted = sqlx::query(
                "INSERT INTO users (app_id, user_id, user_name, user_avatar, extra, created_at_ms) \
                 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (app_id, user_id) DO NOTHING",
            )
            .bind(i64::from(app_id))
            .bind(&user.user_id)
            .bind(&user.user_name)
            .bind(&user.user_avatar)
            .bind(&user.extra)
            .bind(user.created_at_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            outcomes.push(if inserted { RowOutcome::Done } else { RowOutcome::AlreadyExists });
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn ensure_user(&self, app_id: u32, user_id: &str, user_name: &str, now_ms: i64) -> Result<bool> {
        let result = sqlx::query(
            "INSERT INTO users (app_id, user_id, user_name, created_at_ms) VALUES (?, ?, ?, ?) \
             ON CONFLICT (app_id, user_id) DO NOTHING",
        )
        .bind(i64::from(app_id))
        .bind(user_id)
        .bind(user_name)
        .bind(now_ms)
        .execute(&self.writer)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn get_users(&self, app_id: u32, user_ids: &[String]) -> Result<Vec<UserRecord>> {
        // The ids travel as one JSON array: one statement text whatever the count (so one
        // cached statement), no bound-parameter limit, and duplicates collapse in the IN.
        let ids = serde_json::to_string(user_ids).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users \
             WHERE app_id = ? AND user_id IN (SELECT value FROM json_each(?))"
        ))
        .bind(i64::from(app_id))
        .bind(ids)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(rows::user).collect()
    }

    async fn user_exists(&self, app_id: u32, user_id: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM users WHERE app_id = ? AND user_id = ?")
            .bind(i64::from(app_id))
            .bind(user_id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.is_some())
    }

    async fn modify_users(&self, app_id: u32, changes: &[UserChange]) -> Result<Vec<RowOutcome>> {
        let mut tx = self.write_tx().await?;
        let mut outcomes = Vec::with_capacity(changes.len());
        for change in changes {
            // A NULL parameter (None) keeps the column as it is.
            let updated = sqlx::query(
                "UPDATE users SET user_name = COALESCE(?, user_name), \
                 user_avatar = COALESCE(?, user_avatar), extra = COALESCE(?, extra) \
                 WHERE app_id = ? AND user_id = ?",
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
            outcomes.push(if updated { RowOutcome::Done } else { RowOutcome::NotFound });
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn remember_nonce(&self, app_id: u32, nonce: &str, now_ms: i64, ttl_ms: i64) -> Result<bool> {
        // A nonce is live while now_ms < expires_at_ms.
        let mut tx = self.write_tx().await?;
        // Indexed on expires_at_ms, so this only ever touches rows that have just expired.
        sqlx::query("DELETE FROM api_nonces WHERE expires_at_ms <= ?").bind(now_ms).execute(&mut *tx).await?;
        // The conditional update keeps the statement right on its own: an expired row that
        // survived the prune is taken over rather than mistaken for a replay.
        let fresh = sqlx::query(
            "INSERT INTO api_nonces (app_id, nonce, expires_at_ms) VALUES (?, ?, ?) \
             ON CONFLICT (app_id, nonce) DO UPDATE SET expires_at_ms = excluded.expires_at_ms \
             WHERE api_nonces.expires_at_ms <= ?",
        )
        .bind(i64::from(app_id))
        .bind(nonce)
        .bind(now_ms.saturating_add(ttl_ms))
        .bind(now_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        tx.commit().await?;
        Ok(fresh)
    }

    async fn try_acquire_broadcast_slot(
        &self,
        app_id: u32,
        now_ms: i64,
        per_second: u32,
        per_day: u32,
    ) -> Result<RateDecision> {
        let app_id = i64::from(app_id);
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM broadcast_calls WHERE app_id = ? AND at_ms <= ?")
            .bind(app_id)
            .bind(now_ms - DAY_WINDOW_MS)
            .execute(&mut *tx)
            .await?;
        // What is left is the day window; calls stamped after now_ms (a clock that stepped
        // back) still count, which errs on the side of refusing.
        let (in_day, in_second): (i64, i64) =
            sqlx::query_as("SELECT COUNT(*), COALESCE(SUM(at_ms > ?), 0) FROM broadcast_calls WHERE app_id = ?")
                .bind(now_ms - SECOND_WINDOW_MS)
                .bind(app_id)
                .fetch_one(&mut *tx)
                .await?;
        let decision = rate_decision(in_second, in_day, per_second, per_day);
        if decision == RateDecision::Allowed {
            sqlx::query("INSERT INTO broadcast_calls (app_id, at_ms) VALUES (?, ?)")
                .bind(app_id)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(decision)
    }

    async fn insert_broadcast(&self, record: &BroadcastRecord) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(&format!("INSERT INTO broadcasts ({BROADCAST_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"))
            .bind(i64::from(record.app_id))
            .bind(record.message_id as i64)
            .bind(&record.from_user_id)
            .bind(i64::from(record.message_type.code()))
            .bind(i64::from(record.sub_type))
            .bind(i64::from(record.push_type.code()))
            .bind(&record.body_json)
            .bind(record.accepted_at_ms)
            .bind(record.online_delivered as i64)
            .bind(record.recovered_delivered as i64)
            .execute(&mut *tx)
            .await?;
        if record.push_type.pushes_offline() {
            sqlx::query(
                "INSERT INTO push_jobs (app_id, message_id, push_type, state, created_at_ms, updated_at_ms) \
                 VALUES (?, ?, ?, 'pending', ?, ?)",
            )
            .bind(i64::from(record.app_id))
            .bind(record.message_id as i64)
            .bind(i64::from(record.push_type.code()))
            .bind(record.accepted_at_ms)
            .bind(record.accepted_at_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get_broadcast(&self, app_id: u32, message_id: u64) -> Result<Option<BroadcastRecord>> {
        let row =
            sqlx::query(&format!("SELECT {BROADCAST_COLUMNS} FROM broadcasts WHERE app_id = ? AND message_id = ?"))
                .bind(i64::from(app_id))
                .bind(message_id as i64)
                .fetch_optional(&self.reader)
                .await?;
        row.as_ref().map(rows::broadcast).transpose()
    }

    async fn add_broadcast_online_delivered(&self, app_id: u32, message_id: u64, delivered: u64) -> Result<()> {
        let result = sqlx::query(
            "UPDATE broadcasts SET online_delivered = online_delivered + ? WHERE app_id = ? AND message_id = ?",
        )
        .bind(delivered as i64)
        .bind(i64::from(app_id))
        .bind(message_id as i64)
        .execute(&self.writer)
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
            "UPDATE broadcasts SET recovered_delivered = recovered_delivered + ? WHERE app_id = ? AND message_id = ?",
        )
        .bind(recovered as i64)
        .bind(i64::from(app_id))
        .bind(message_id as i64)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn recent_broadcasts(&self, app_id: u32, since_ms: i64, limit: u32) -> Result<Vec<BroadcastRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT * FROM (SELECT {BROADCAST_COLUMNS} FROM broadcasts \
             WHERE app_id = ? AND accepted_at_ms >= ? AND push_type <> ? \
             ORDER BY accepted_at_ms DESC, message_id DESC LIMIT ?) ORDER BY accepted_at_ms, message_id"
        ))
        .bind(i64::from(app_id))
        .bind(since_ms)
        .bind(i64::from(PushType::OfflineOnly.code()))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(rows::broadcast).collect()
    }

    async fn claim_push_job(&self, app_id: u32, owner: &str, now_ms: i64, lease_ms: i64) -> Result<Option<PushJob>> {
        // Idle workers poll: answer "nothing" from a reader without queueing for the writer.
        let open = sqlx::query("SELECT 1 FROM push_jobs WHERE app_id = ? AND state <> 'done' LIMIT 1")
            .bind(i64::from(app_id))
            .fetch_optional(&self.reader)
            .await?;
        if open.is_none() {
            return Ok(None);
        }
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM push_jobs WHERE app_id = ? AND state <> 'done' \
             AND (owner IS NULL OR owner = ? OR lease_until_ms < ?) \
             ORDER BY created_at_ms, message_id LIMIT 1"
        ))
        .bind(i64::from(app_id))
        .bind(owner)
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut job = rows::job(&row)?;
        sqlx::query(
            "UPDATE push_jobs SET state = 'running', owner = ?, lease_until_ms = ?, updated_at_ms = ? \
             WHERE app_id = ? AND message_id = ?",
        )
        .bind(owner)
        .bind(now_ms.saturating_add(lease_ms))
        .bind(now_ms)
        .bind(i64::from(app_id))
        .bind(job.message_id as i64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        job.state = PushJobState::Running;
        job.updated_at_ms = now_ms;
        Ok(Some(job))
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
            "UPDATE push_jobs SET cursor_user_id = ?, cursor_device_id = ?, targeted = targeted + ?, \
             sent = sent + ?, failed = failed + ?, removed = removed + ?, skipped_online = skipped_online + ?, \
             lease_until_ms = ?, updated_at_ms = ? \
             WHERE app_id = ? AND message_id = ? AND owner = ? AND state = 'running'",
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
        .execute(&self.writer)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn finish_push_job(&self, app_id: u32, message_id: u64, owner: &str, now_ms: i64) -> Result<bool> {
        let result = sqlx::query(
            "UPDATE push_jobs SET state = 'done', owner = NULL, lease_until_ms = 0, updated_at_ms = ?, \
             finished_at_ms = ? WHERE app_id = ? AND message_id = ? AND owner = ? AND state = 'running'",
        )
        .bind(now_ms)
        .bind(now_ms)
        .bind(i64::from(app_id))
        .bind(message_id as i64)
        .bind(owner)
        .execute(&self.writer)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn get_push_job(&self, app_id: u32, message_id: u64) -> Result<Option<PushJob>> {
        let row = sqlx::query(&format!("SELECT {JOB_COLUMNS} FROM push_jobs WHERE app_id = ? AND message_id = ?"))
            .bind(i64::from(app_id))
            .bind(message_id as i64)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(rows::job).transpose()
    }

    async fn bind_push(&self, binding: &PushBinding) -> Result<()> {
        let mut tx = self.write_tx().await?;
        // Without statistics SQLite plans this on the primary key's app_id prefix and reads every
        // binding of the app, under the one writer, on every set_push_id; the token index
        // finds the one holder directly.
        sqlx::query(
            "DELETE FROM push_bindings INDEXED BY push_bindings_token WHERE app_id = ? AND push_id = ? \
             AND provider = ? AND NOT (user_id = ? AND device_id = ?)",
        )
        .bind(i64::from(binding.app_id))
        .bind(&binding.push_id)
        .bind(binding.provider.as_str())
        .bind(&binding.user_id)
        .bind(&binding.device_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "INSERT INTO push_bindings ({BINDING_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (app_id, user_id, device_id) DO UPDATE SET push_id = excluded.push_id, \
             provider = excluded.provider, updated_at_ms = excluded.updated_at_ms"
        ))
        .bind(i64::from(binding.app_id))
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

    async fn unbind_push(&self, app_id: u32, user_id: &str, device_id: &str) -> Result<bool> {
        let result = sqlx::query("DELETE FROM push_bindings WHERE app_id = ? AND user_id = ? AND device_id = ?")
            .bind(i64::from(app_id))
            .bind(user_id)
            .bind(device_id)
            .execute(&self.writer)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn remove_push_binding(&self, app_id: u32, user_id: &str, device_id: &str, push_id: &str) -> Result<bool> {
        let result =
            sqlx::query("DELETE FROM push_bindings WHERE app_id = ? AND user_id = ? AND device_id = ? AND push_id = ?")
                .bind(i64::from(app_id))
                .bind(user_id)
                .bind(device_id)
                .bind(push_id)
                .execute(&self.writer)
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
        let rows = match after {
            None => {
                sqlx::query(&format!(
                    "SELECT {BINDING_COLUMNS} FROM push_bindings WHERE app_id = ? \
                     ORDER BY user_id, device_id LIMIT ?"
                ))
                .bind(i64::from(app_id))
                .bind(i64::from(limit))
                .fetch_all(&self.reader)
                .await?
            }
            Some((user_id, device_id)) => {
                sqlx::query(&format!(
                    "SELECT {BINDING_COLUMNS} FROM push_bindings \
                     WHERE app_id = ? AND (user_id, device_id) > (?, ?) \
                     ORDER BY user_id, device_id LIMIT ?"
                ))
                .bind(i64::from(app_id))
                .bind(user_id)
                .bind(device_id)
                .bind(i64::from(limit))
                .fetch_all(&self.reader)
                .await?
            }
        };
        rows.iter().map(rows::binding).collect()
    }

    async fn push_bindings_of(&self, app_id: u32, user_id: &str) -> Result<Vec<PushBinding>> {
        let rows = sqlx::query(&format!(
            "SELECT {BINDING_COLUMNS} FROM push_bindings WHERE app_id = ? AND user_id = ? \
             ORDER BY device_id"
        ))
        .bind(i64::from(app_id))
        .bind(user_id)
        .fetch_all(&self.reader)
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
        sqlx::query(
            "INSERT INTO presence_sessions (session_id, app_id, user_id, node_id, started_ms) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (session_id) DO UPDATE SET app_id = excluded.app_id, user_id = excluded.user_id, \
             node_id = excluded.node_id, started_ms = excluded.started_ms",
        )
        .bind(session_id as i64)
        .bind(i64::from(app_id))
        .bind(user_id)
        .bind(i64::from(node_id))
        .bind(now_ms)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn presence_session_ended(&self, session_id: u64) -> Result<()> {
        sqlx::query("DELETE FROM presence_sessions WHERE session_id = ?")
            .bind(session_id as i64)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn renew_node_lease(&self, node_id: u16, until_ms: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO node_leases (node_id, until_ms) VALUES (?, ?) \
             ON CONFLICT (node_id) DO UPDATE SET until_ms = excluded.until_ms",
        )
        .bind(i64::from(node_id))
        .bind(until_ms)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn clear_node_sessions(&self, node_id: u16) -> Result<()> {
        sqlx::query("DELETE FROM presence_sessions WHERE node_id = ?")
            .bind(i64::from(node_id))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn online_users(&self, app_id: u32, user_ids: &[String], now_ms: i64) -> Result<Vec<String>> {
        let ids = serde_json::to_string(user_ids).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let rows = sqlx::query(
            "SELECT DISTINCT s.user_id FROM presence_sessions s JOIN node_leases n ON n.node_id = s.node_id \
             WHERE s.app_id = ? AND n.until_ms > ? AND s.user_id IN (SELECT value FROM json_each(?))",
        )
        .bind(i64::from(app_id))
        .bind(now_ms)
        .bind(ids)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(|r| Ok(r.try_get::<String, _>(0)?)).collect()
    }

    async fn online_counts(&self, app_id: u32, now_ms: i64) -> Result<(u64, u64)> {
        let row = sqlx::query(
            "SELECT COUNT(*), COUNT(DISTINCT s.user_id) FROM presence_sessions s \
             JOIN node_leases n ON n.node_id = s.node_id WHERE s.app_id = ? AND n.until_ms > ?",
        )
        .bind(i64::from(app_id))
        .bind(now_ms)
        .fetch_one(&self.reader)
        .await?;
        Ok((row.try_get::<i64, _>(0)? as u64, row.try_get::<i64, _>(1)? as u64))
    }

    async fn cluster_nodes(&self) -> Result<Vec<NodeRecord>> {
        let rows = sqlx::query(
            "SELECT n.node_id, n.until_ms, (SELECT COUNT(*) FROM presence_sessions s WHERE s.node_id = n.node_id) \
             FROM node_leases n ORDER BY n.node_id",
        )
        .fetch_all(&self.reader)
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
        let row = sqlx::query("SELECT COUNT(*) FROM push_bindings WHERE app_id = ?")
            .bind(i64::from(app_id))
            .fetch_one(&self.reader)
            .await?;
        Ok(row.try_get::<i64, _>(0)? as u64)
    }

    async fn count_broadcast_calls(&self, app_id: u32, since_ms: i64) -> Result<u64> {
        let row = sqlx::query("SELECT COUNT(*) FROM broadcast_calls WHERE app_id = ? AND at_ms >= ?")
            .bind(i64::from(app_id))
            .bind(since_ms)
            .fetch_one(&self.reader)
            .await?;
        Ok(row.try_get::<i64, _>(0)? as u64)
    }

    async fn list_broadcasts(&self, app_id: u32, limit: u32) -> Result<Vec<BroadcastRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {BROADCAST_COLUMNS} FROM broadcasts WHERE app_id = ? \
             ORDER BY accepted_at_ms DESC, message_id DESC LIMIT ?"
        ))
        .bind(i64::from(app_id))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(rows::broadcast).collect()
    }

    async fn open_push_jobs(&self, app_id: u32) -> Result<Vec<PushJob>> {
        let rows = sqlx::query(&format!(
            "SELECT {JOB_COLUMNS} FROM push_jobs WHERE app_id = ? AND state <> 'done' \
             ORDER BY created_at_ms, message_id"
        ))
        .bind(i64::from(app_id))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(rows::job).collect()
    }

    async fn push_job_totals(&self) -> Result<PushJobTotals> {
        let rows = sqlx::query("SELECT state, COUNT(*) FROM push_jobs GROUP BY state").fetch_all(&self.reader).await?;
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
    fn in_memory_spellings() {
        assert!(is_in_memory("sqlite::memory:"));
        assert!(is_in_memory("sqlite://:memory:"));
        assert!(is_in_memory("sqlite://?mode=memory"));
        assert!(!is_in_memory("sqlite://data/herald.db"));
        assert!(!is_in_memory("sqlite:herald.db?mode=rwc"));
    }
}
