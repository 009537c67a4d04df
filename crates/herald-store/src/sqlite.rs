//! The embedded backend: one SQLite file in WAL mode (or `sqlite::memory:`). Statements run on
//! the calling thread through rusqlite ([`connections`] says why and how); sqlx only runs the
//! migrations at open, so databases made by earlier versions keep their `_sqlx_migrations`.

mod checkpoint;
mod connections;
mod open;
mod steps;

use self::connections::{retry_busy, Connections, WriteTx};
use self::steps::{collect, count, insert_broadcast_rows, json_ids, take_rate_slot};
use crate::rows;
use crate::{
    Acceptance, BroadcastRecord, NodeRecord, PageDone, PushBinding, PushJob, PushJobState, PushJobTotals, PushType,
    RateDecision, Result, RowOutcome, Store, StoreError, UserChange, UserRecord,
};
use async_trait::async_trait;
use rusqlite::{params, Connection};
use std::sync::Arc;

const USER_COLUMNS: &str = "user_id, user_name, user_avatar, extra, created_at_ms";
const BINDING_COLUMNS: &str = "app_id, user_id, device_id, push_id, provider, updated_at_ms";
const BROADCAST_COLUMNS: &str = "app_id, message_id, from_user_id, message_type, sub_type, \
     push_type, body_json, accepted_at_ms, online_delivered, recovered_delivered";

const JOB_COLUMNS: &str = "app_id, message_id, push_type, state, cursor_user_id, cursor_device_id, targeted, \
     sent, failed, removed, skipped_online, created_at_ms, updated_at_ms, finished_at_ms";

/// The SQLite [`Store`]. Cloning is cheap and shares the connections.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    conns: Arc<Connections>,
}

impl SqliteStore {
    /// Opens `sqlite://PATH` (creating the file and its parent directory when missing) or
    /// `sqlite::memory:`, and runs the migrations.
    pub async fn open(url: &str) -> Result<Self> {
        let conns = open::connections(url).await?;
        tracing::debug!(url, "sqlite store open");
        Ok(Self { conns: Arc::new(conns) })
    }

    /// Closes every connection, waiting for those in use; later calls fail with
    /// [`StoreError::Closed`]. A file store can then be reopened (or copied) with all its
    /// commits in place.
    pub async fn close(&self) {
        let conns = self.conns.clone();
        // Joins the checkpoint thread and may checkpoint: not on a runtime thread.
        if let Err(e) = tokio::task::spawn_blocking(move || conns.close()).await {
            tracing::warn!(error = %e, "closing the sqlite store failed");
        }
    }

    /// Runs `f` on the writer, on this thread.
    async fn write<T>(&self, mut f: impl FnMut(&Connection) -> Result<T> + Send) -> Result<T> {
        retry_busy(|| std::future::ready(self.conns.write(&mut f))).await
    }

    /// Runs `f` in a [`WriteTx`] on the writer, on this thread, and commits.
    async fn write_tx<T>(&self, mut f: impl FnMut(&Connection) -> Result<T> + Send) -> Result<T> {
        self.write(|conn| {
            let tx = WriteTx::begin(conn)?;
            let value = f(&tx)?;
            tx.commit()?;
            Ok(value)
        })
        .await
    }

    /// Runs `f` on a reader, on this thread: for point look-ups and small bounded reads.
    async fn read<T>(&self, f: impl Fn(&Connection) -> Result<T> + Send + Sync) -> Result<T> {
        retry_busy(|| std::future::ready(self.conns.read(&f))).await
    }

    /// Runs `f` on a reader on the blocking pool: for reads whose cost grows with the data
    /// (pages of bindings, operators' counts and lists), which must not hold up a runtime
    /// thread for milliseconds. The thread hop costs little next to such a read.
    async fn scan<T: Send + 'static>(&self, f: impl Fn(&Connection) -> Result<T> + Send + Sync + 'static) -> Result<T> {
        let f = Arc::new(f);
        retry_busy(|| {
            let (conns, f) = (self.conns.clone(), f.clone());
            async move {
                match tokio::task::spawn_blocking(move || conns.read(&*f)).await {
                    Ok(result) => result,
                    Err(e) => match e.try_into_panic() {
                        Ok(panic) => std::panic::resume_unwind(panic),
                        // Only a runtime shutting down cancels a blocking task.
                        Err(_) => Err(StoreError::Closed),
                    },
                }
            }
        })
        .await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn register_users(&self, app_id: u32, users: &[UserRecord]) -> Result<Vec<RowOutcome>> {
        self.write_tx(|tx| {
            let mut insert = tx.prepare_cached(
                "INSERT INTO users (app_id, user_id, user_name, user_avatar, extra, created_at_ms) \
                 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (app_id, user_id) DO NOTHING",
            )?;
            // DO NOTHING leaves the first registration in place, including one made earlier
            // in this same batch, so a duplicate inside the batch reads as AlreadyExists.
            let mut outcomes = Vec::with_capacity(users.len());
            for user in users {
                let inserted = insert.execute(params![
                    app_id,
                    user.user_id,
                    user.user_name,
                    user.user_avatar,
                    user.extra,
                    user.created_at_ms,
                ])? == 1;
                outcomes.push(if inserted { RowOutcome::Done } else { RowOutcome::AlreadyExists });
            }
            Ok(outcomes)
        })
        .await
    }

    async fn ensure_user(&self, app_id: u32, user_id: &str, user_name: &str, now_ms: i64) -> Result<bool> {
        // One statement in its own implicit transaction: a login that finds its user changes
        // no page, so its commit writes nothing to the WAL.
        self.write(|conn| {
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO users (app_id, user_id, user_name, created_at_ms) VALUES (?, ?, ?, ?) \
                     ON CONFLICT (app_id, user_id) DO NOTHING",
                )?
                .execute(params![app_id, user_id, user_name, now_ms])?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn get_users(&self, app_id: u32, user_ids: &[String]) -> Result<Vec<UserRecord>> {
        let ids = json_ids(user_ids)?;
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users WHERE app_id = ? AND user_id IN (SELECT value FROM json_each(?))"
        );
        self.read(|conn| collect(conn, &sql, params![app_id, ids], |row| rows::user(row))).await
    }

    async fn user_exists(&self, app_id: u32, user_id: &str) -> Result<bool> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached("SELECT 1 FROM users WHERE app_id = ? AND user_id = ?")?;
            Ok(stmt.exists(params![app_id, user_id])?)
        })
        .await
    }

    async fn modify_users(&self, app_id: u32, changes: &[UserChange]) -> Result<Vec<RowOutcome>> {
        self.write_tx(|tx| {
            // A NULL parameter (None) keeps the column as it is.
            let mut update = tx.prepare_cached(
                "UPDATE users SET user_name = COALESCE(?, user_name), \
                 user_avatar = COALESCE(?, user_avatar), extra = COALESCE(?, extra) \
                 WHERE app_id = ? AND user_id = ?",
            )?;
            let mut outcomes = Vec::with_capacity(changes.len());
            for change in changes {
                let updated = update.execute(params![
                    change.user_name,
                    change.user_avatar,
                    change.extra,
                    app_id,
                    change.user_id
                ])? == 1;
                outcomes.push(if updated { RowOutcome::Done } else { RowOutcome::NotFound });
            }
            Ok(outcomes)
        })
        .await
    }

    async fn remember_nonce(&self, app_id: u32, nonce: &str, now_ms: i64, ttl_ms: i64) -> Result<bool> {
        // A nonce is live while now_ms < expires_at_ms.
        self.write_tx(|tx| {
            // Indexed on expires_at_ms, so this only ever touches rows that have just expired.
            tx.prepare_cached("DELETE FROM api_nonces WHERE expires_at_ms <= ?")?.execute(params![now_ms])?;
            // The conditional update keeps the statement right on its own: an expired row that
            // survived the prune is taken over rather than mistaken for a replay.
            let fresh = tx
                .prepare_cached(
                    "INSERT INTO api_nonces (app_id, nonce, expires_at_ms) VALUES (?, ?, ?) \
                     ON CONFLICT (app_id, nonce) DO UPDATE SET expires_at_ms = excluded.expires_at_ms \
                     WHERE api_nonces.expires_at_ms <= ?",
                )?
                .execute(params![app_id, nonce, now_ms.saturating_add(ttl_ms), now_ms])?
                == 1;
            Ok(fresh)
        })
        .await
    }

    async fn try_acquire_broadcast_slot(
        &self,
        app_id: u32,
        now_ms: i64,
        per_second: u32,
        per_day: u32,
    ) -> Result<RateDecision> {
        self.write(|conn| {
            let tx = WriteTx::begin(conn)?;
            let decision = take_rate_slot(&tx, app_id, now_ms, per_second, per_day)?;
            if decision == RateDecision::Allowed {
                tx.commit()?;
            }
            Ok(decision)
        })
        .await
    }

    async fn insert_broadcast(&self, record: &BroadcastRecord) -> Result<()> {
        self.write_tx(|tx| insert_broadcast_rows(tx, record)).await
    }

    async fn accept_broadcast(&self, record: &BroadcastRecord, per_second: u32, per_day: u32) -> Result<Acceptance> {
        // One transaction for the whole step: a refusal rolls back (writes nothing), and a
        // failed insert gives the rate slot back.
        let (app_id, now_ms) = (record.app_id, record.accepted_at_ms);
        self.write(|conn| {
            let tx = WriteTx::begin(conn)?;
            let sender_known = tx
                .prepare_cached("SELECT 1 FROM users WHERE app_id = ? AND user_id = ?")?
                .exists(params![app_id, record.from_user_id])?;
            if !sender_known {
                return Ok(Acceptance::SenderUnknown);
            }
            match take_rate_slot(&tx, app_id, now_ms, per_second, per_day)? {
                RateDecision::Allowed => {}
                refused => return Ok(Acceptance::Refused(refused)),
            }
            insert_broadcast_rows(&tx, record)?;
            tx.commit()?;
            Ok(Acceptance::Accepted)
        })
        .await
    }

    async fn get_broadcast(&self, app_id: u32, message_id: u64) -> Result<Option<BroadcastRecord>> {
        let sql = format!("SELECT {BROADCAST_COLUMNS} FROM broadcasts WHERE app_id = ? AND message_id = ?");
        let found = self
            .read(|conn| collect(conn, &sql, params![app_id, message_id as i64], |row| rows::broadcast(row)))
            .await?;
        Ok(found.into_iter().next())
    }

    async fn add_broadcast_online_delivered(&self, app_id: u32, message_id: u64, delivered: u64) -> Result<()> {
        let changed = self
            .write(|conn| {
                Ok(conn
                    .prepare_cached(
                        "UPDATE broadcasts SET online_delivered = online_delivered + ? \
                         WHERE app_id = ? AND message_id = ?",
                    )?
                    .execute(params![delivered as i64, app_id, message_id as i64])?)
            })
            .await?;
        if changed == 0 {
            // Only a caller bug gets here (the record is inserted before the fan-out starts);
            // the count is a report, not worth failing the broadcast over.
            tracing::warn!(app_id, message_id, "online count for an unknown broadcast dropped");
        }
        Ok(())
    }

    async fn add_broadcast_recovered(&self, app_id: u32, message_id: u64, recovered: u64) -> Result<()> {
        self.write(|conn| {
            conn.prepare_cached(
                "UPDATE broadcasts SET recovered_delivered = recovered_delivered + ? \
                 WHERE app_id = ? AND message_id = ?",
            )?
            .execute(params![recovered as i64, app_id, message_id as i64])?;
            Ok(())
        })
        .await
    }

    async fn recent_broadcasts(&self, app_id: u32, since_ms: i64, limit: u32) -> Result<Vec<BroadcastRecord>> {
        let sql = format!(
            "SELECT * FROM (SELECT {BROADCAST_COLUMNS} FROM broadcasts \
             WHERE app_id = ? AND accepted_at_ms >= ? AND push_type <> ? \
             ORDER BY accepted_at_ms DESC, message_id DESC LIMIT ?) ORDER BY accepted_at_ms, message_id"
        );
        let offline_only = PushType::OfflineOnly.code();
        self.scan(move |conn| {
            collect(conn, &sql, params![app_id, since_ms, offline_only, limit], |row| rows::broadcast(row))
        })
        .await
    }

    async fn claim_push_job(&self, app_id: u32, owner: &str, now_ms: i64, lease_ms: i64) -> Result<Option<PushJob>> {
        // Idle workers poll: answer "nothing" from a reader without taking the write lock.
        let open = self
            .read(|conn| {
                let mut stmt =
                    conn.prepare_cached("SELECT 1 FROM push_jobs WHERE app_id = ? AND state <> 'done' LIMIT 1")?;
                Ok(stmt.exists(params![app_id])?)
            })
            .await?;
        if !open {
            return Ok(None);
        }
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM push_jobs WHERE app_id = ? AND state <> 'done' \
             AND (owner IS NULL OR owner = ? OR lease_until_ms < ?) \
             ORDER BY created_at_ms, message_id LIMIT 1"
        );
        self.write_tx(|tx| {
            let Some(mut job) = collect(tx, &sql, params![app_id, owner, now_ms], |row| rows::job(row))?.pop() else {
                return Ok(None);
            };
            tx.prepare_cached(
                "UPDATE push_jobs SET state = 'running', owner = ?, lease_until_ms = ?, updated_at_ms = ? \
                 WHERE app_id = ? AND message_id = ?",
            )?
            .execute(params![
                owner,
                now_ms.saturating_add(lease_ms),
                now_ms,
                app_id,
                job.message_id as i64
            ])?;
            job.state = PushJobState::Running;
            job.updated_at_ms = now_ms;
            Ok(Some(job))
        })
        .await
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
        self.write(|conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE push_jobs SET cursor_user_id = ?, cursor_device_id = ?, targeted = targeted + ?, \
                     sent = sent + ?, failed = failed + ?, removed = removed + ?, \
                     skipped_online = skipped_online + ?, lease_until_ms = ?, updated_at_ms = ? \
                     WHERE app_id = ? AND message_id = ? AND owner = ? AND state = 'running'",
                )?
                .execute(params![
                    cursor.0,
                    cursor.1,
                    delta.targeted as i64,
                    delta.sent as i64,
                    delta.failed as i64,
                    delta.removed as i64,
                    delta.skipped_online as i64,
                    now_ms.saturating_add(lease_ms),
                    now_ms,
                    app_id,
                    message_id as i64,
                    owner,
                ])?;
            Ok(changed == 1)
        })
        .await
    }

    async fn finish_push_job(&self, app_id: u32, message_id: u64, owner: &str, now_ms: i64) -> Result<bool> {
        self.write(|conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE push_jobs SET state = 'done', owner = NULL, lease_until_ms = 0, updated_at_ms = ?, \
                     finished_at_ms = ? WHERE app_id = ? AND message_id = ? AND owner = ? AND state = 'running'",
                )?
                .execute(params![now_ms, now_ms, app_id, message_id as i64, owner])?;
            Ok(changed == 1)
        })
        .await
    }

    async fn get_push_job(&self, app_id: u32, message_id: u64) -> Result<Option<PushJob>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM push_jobs WHERE app_id = ? AND message_id = ?");
        let found =
            self.read(|conn| collect(conn, &sql, params![app_id, message_id as i64], |row| rows::job(row))).await?;
        Ok(found.into_iter().next())
    }

    async fn bind_push(&self, binding: &PushBinding) -> Result<()> {
        let upsert = format!(
            "INSERT INTO push_bindings ({BINDING_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (app_id, user_id, device_id) DO UPDATE SET push_id = excluded.push_id, \
             provider = excluded.provider, updated_at_ms = excluded.updated_at_ms"
        );
        let b = binding;
        self.write_tx(|tx| {
            // Without statistics SQLite plans this on the primary key's app_id prefix and reads
            // every binding of the app, under the one writer, on every set_push_id; the token
            // index finds the one holder directly.
            tx.prepare_cached(
                "DELETE FROM push_bindings INDEXED BY push_bindings_token WHERE app_id = ? AND push_id = ? \
                 AND provider = ? AND NOT (user_id = ? AND device_id = ?)",
            )?
            .execute(params![b.app_id, b.push_id, b.provider.as_str(), b.user_id, b.device_id])?;
            tx.prepare_cached(&upsert)?.execute(params![
                b.app_id,
                b.user_id,
                b.device_id,
                b.push_id,
                b.provider.as_str(),
                b.updated_at_ms,
            ])?;
            Ok(())
        })
        .await
    }

    async fn unbind_push(&self, app_id: u32, user_id: &str, device_id: &str) -> Result<bool> {
        self.write(|conn| {
            let removed = conn
                .prepare_cached("DELETE FROM push_bindings WHERE app_id = ? AND user_id = ? AND device_id = ?")?
                .execute(params![app_id, user_id, device_id])?;
            Ok(removed == 1)
        })
        .await
    }

    async fn remove_push_binding(&self, app_id: u32, user_id: &str, device_id: &str, push_id: &str) -> Result<bool> {
        self.write(|conn| {
            let removed = conn
                .prepare_cached(
                    "DELETE FROM push_bindings WHERE app_id = ? AND user_id = ? AND device_id = ? AND push_id = ?",
                )?
                .execute(params![app_id, user_id, device_id, push_id])?;
            Ok(removed == 1)
        })
        .await
    }

    async fn push_bindings_page(
        &self,
        app_id: u32,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<PushBinding>> {
        // Keyset paging on the primary key: each page is an index range scan, however deep.
        let after = after.map(|(user_id, device_id)| (user_id.to_string(), device_id.to_string()));
        self.scan(move |conn| match &after {
            None => collect(
                conn,
                &format!(
                    "SELECT {BINDING_COLUMNS} FROM push_bindings WHERE app_id = ? \
                     ORDER BY user_id, device_id LIMIT ?"
                ),
                params![app_id, limit],
                |row| rows::binding(row),
            ),
            Some((user_id, device_id)) => collect(
                conn,
                &format!(
                    "SELECT {BINDING_COLUMNS} FROM push_bindings \
                     WHERE app_id = ? AND (user_id, device_id) > (?, ?) \
                     ORDER BY user_id, device_id LIMIT ?"
                ),
                params![app_id, user_id, device_id, limit],
                |row| rows::binding(row),
            ),
        })
        .await
    }

    async fn push_bindings_of(&self, app_id: u32, user_id: &str) -> Result<Vec<PushBinding>> {
        let sql =
            format!("SELECT {BINDING_COLUMNS} FROM push_bindings WHERE app_id = ? AND user_id = ? ORDER BY device_id");
        self.read(|conn| collect(conn, &sql, params![app_id, user_id], |row| rows::binding(row))).await
    }

    async fn presence_session_started(
        &self,
        app_id: u32,
        user_id: &str,
        session_id: u64,
        node_id: u16,
        now_ms: i64,
    ) -> Result<()> {
        self.write(|conn| {
            conn.prepare_cached(
                "INSERT INTO presence_sessions (session_id, app_id, user_id, node_id, started_ms) \
                 VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT (session_id) DO UPDATE SET app_id = excluded.app_id, user_id = excluded.user_id, \
                 node_id = excluded.node_id, started_ms = excluded.started_ms",
            )?
            .execute(params![session_id as i64, app_id, user_id, node_id, now_ms])?;
            Ok(())
        })
        .await
    }

    async fn presence_session_ended(&self, session_id: u64) -> Result<()> {
        self.write(|conn| {
            conn.prepare_cached("DELETE FROM presence_sessions WHERE session_id = ?")?
                .execute(params![session_id as i64])?;
            Ok(())
        })
        .await
    }

    async fn renew_node_lease(&self, node_id: u16, until_ms: i64) -> Result<()> {
        self.write(|conn| {
            conn.prepare_cached(
                "INSERT INTO node_leases (node_id, until_ms) VALUES (?, ?) \
                 ON CONFLICT (node_id) DO UPDATE SET until_ms = excluded.until_ms",
            )?
            .execute(params![node_id, until_ms])?;
            Ok(())
        })
        .await
    }

    async fn clear_node_sessions(&self, node_id: u16) -> Result<()> {
        self.write(|conn| {
            conn.prepare_cached("DELETE FROM presence_sessions WHERE node_id = ?")?.execute(params![node_id])?;
            Ok(())
        })
        .await
    }

    async fn online_users(&self, app_id: u32, user_ids: &[String], now_ms: i64) -> Result<Vec<String>> {
        let ids = json_ids(user_ids)?;
        self.read(|conn| {
            collect(
                conn,
                "SELECT DISTINCT s.user_id FROM presence_sessions s JOIN node_leases n ON n.node_id = s.node_id \
                 WHERE s.app_id = ? AND n.until_ms > ? AND s.user_id IN (SELECT value FROM json_each(?))",
                params![app_id, now_ms, ids],
                |row| Ok(row.get(0)?),
            )
        })
        .await
    }

    async fn online_counts(&self, app_id: u32, now_ms: i64) -> Result<(u64, u64)> {
        self.scan(move |conn| {
            let (sessions, users): (i64, i64) = conn
                .prepare_cached(
                    "SELECT COUNT(*), COUNT(DISTINCT s.user_id) FROM presence_sessions s \
                     JOIN node_leases n ON n.node_id = s.node_id WHERE s.app_id = ? AND n.until_ms > ?",
                )?
                .query_row(params![app_id, now_ms], |row| Ok((row.get(0)?, row.get(1)?)))?;
            Ok((sessions as u64, users as u64))
        })
        .await
    }

    async fn cluster_nodes(&self) -> Result<Vec<NodeRecord>> {
        self.scan(|conn| {
            collect(
                conn,
                "SELECT n.node_id, n.until_ms, \
                 (SELECT COUNT(*) FROM presence_sessions s WHERE s.node_id = n.node_id) \
                 FROM node_leases n ORDER BY n.node_id",
                [],
                |row| {
                    let node_id: i64 = row.get(0)?;
                    Ok(NodeRecord {
                        node_id: u16::try_from(node_id)
                            .map_err(|_| StoreError::Corrupt(format!("node_id {node_id}")))?,
                        lease_until_ms: row.get(1)?,
                        sessions: row.get::<_, i64>(2)? as u64,
                    })
                },
            )
        })
        .await
    }

    async fn count_push_bindings(&self, app_id: u32) -> Result<u64> {
        self.scan(move |conn| count(conn, "SELECT COUNT(*) FROM push_bindings WHERE app_id = ?", params![app_id])).await
    }

    async fn count_broadcast_calls(&self, app_id: u32, since_ms: i64) -> Result<u64> {
        self.scan(move |conn| {
            count(
                conn,
                "SELECT COUNT(*) FROM broadcast_calls WHERE app_id = ? AND at_ms >= ?",
                params![app_id, since_ms],
            )
        })
        .await
    }

    async fn list_broadcasts(&self, app_id: u32, limit: u32) -> Result<Vec<BroadcastRecord>> {
        let sql = format!(
            "SELECT {BROADCAST_COLUMNS} FROM broadcasts WHERE app_id = ? \
             ORDER BY accepted_at_ms DESC, message_id DESC LIMIT ?"
        );
        self.scan(move |conn| collect(conn, &sql, params![app_id, limit], |row| rows::broadcast(row))).await
    }

    async fn open_push_jobs(&self, app_id: u32) -> Result<Vec<PushJob>> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM push_jobs WHERE app_id = ? AND state <> 'done' \
             ORDER BY created_at_ms, message_id"
        );
        self.scan(move |conn| collect(conn, &sql, params![app_id], |row| rows::job(row))).await
    }

    async fn push_job_totals(&self) -> Result<PushJobTotals> {
        let by_state = self
            .scan(|conn| {
                collect(conn, "SELECT state, COUNT(*) FROM push_jobs GROUP BY state", [], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64))
                })
            })
            .await?;
        let mut totals = PushJobTotals::default();
        for (state, n) in by_state {
            match PushJobState::parse(&state) {
                Some(PushJobState::Pending) => totals.pending = n,
                Some(PushJobState::Running) => totals.running = n,
                Some(PushJobState::Done) => totals.done = n,
                None => {}
            }
        }
        Ok(totals)
    }
}
