//! The PostgreSQL store's per-login writes, batched through [`GroupCommit`]: each batch is one
//! multi-row `INSERT ... SELECT FROM UNNEST(...)` and one commit.

use crate::group_commit::GroupCommit;
use crate::Result;
use sqlx::postgres::PgPool;
use sqlx::Row;
use std::collections::{HashMap, HashSet};

/// Most calls one batch carries: large enough that a reconnect storm is a few dozen commits a
/// second, small enough that one statement stays quick.
const MAX_BATCH: usize = 256;

pub(crate) struct NewUser {
    pub app_id: u32,
    pub user_id: String,
    pub user_name: String,
    pub now_ms: i64,
}

pub(crate) struct SessionStart {
    pub session_id: u64,
    pub app_id: u32,
    pub user_id: String,
    pub node_id: u16,
    pub now_ms: i64,
}

pub(crate) struct LoginWrites {
    pub users: GroupCommit<NewUser, bool>,
    pub sessions: GroupCommit<SessionStart, ()>,
    /// Session ends: a storm ends as many sessions as it starts. A session's end is only
    /// submitted after its start has returned, so the two can never commit out of order.
    pub ends: GroupCommit<u64, ()>,
}

impl std::fmt::Debug for LoginWrites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginWrites").finish_non_exhaustive()
    }
}

impl LoginWrites {
    pub fn start(pool: &PgPool) -> LoginWrites {
        let (for_users, for_sessions, for_ends) = (pool.clone(), pool.clone(), pool.clone());
        LoginWrites {
            users: GroupCommit::start(MAX_BATCH, move |batch| ensure_users(for_users.clone(), batch)),
            sessions: GroupCommit::start(MAX_BATCH, move |batch| start_sessions(for_sessions.clone(), batch)),
            ends: GroupCommit::start(MAX_BATCH, move |batch| end_sessions(for_ends.clone(), batch)),
        }
    }
}

/// Inserts the users that do not exist yet; `true` for each call that created its user. Of
/// several calls for one new user in a batch, the first created it.
async fn ensure_users(pool: PgPool, batch: Vec<NewUser>) -> Result<Vec<bool>> {
    // One row per user (the first call's), in byte order of (app, user id): batches on two
    // nodes that share new users then lock them in the same order and cannot deadlock.
    let mut seen = HashSet::with_capacity(batch.len());
    let mut firsts: Vec<&NewUser> = batch.iter().filter(|u| seen.insert((u.app_id, u.user_id.as_str()))).collect();
    firsts.sort_by(|a, b| (a.app_id, &a.user_id).cmp(&(b.app_id, &b.user_id)));
    let app_ids: Vec<i64> = firsts.iter().map(|u| i64::from(u.app_id)).collect();
    let user_ids: Vec<&str> = firsts.iter().map(|u| u.user_id.as_str()).collect();
    let names: Vec<&str> = firsts.iter().map(|u| u.user_name.as_str()).collect();
    let created_ms: Vec<i64> = firsts.iter().map(|u| u.now_ms).collect();
    let rows = sqlx::query(
        "INSERT INTO users (app_id, user_id, user_name, created_at_ms) \
         SELECT * FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::int8[]) \
         ON CONFLICT (app_id, user_id) DO NOTHING RETURNING app_id, user_id",
    )
    .bind(&app_ids)
    .bind(&user_ids)
    .bind(&names)
    .bind(&created_ms)
    .fetch_all(&pool)
    .await?;
    let mut inserted = HashSet::with_capacity(rows.len());
    for row in &rows {
        inserted.insert((row.try_get::<i64, _>(0)?, row.try_get::<String, _>(1)?));
    }
    Ok(batch.iter().map(|u| inserted.remove(&(i64::from(u.app_id), u.user_id.clone()))).collect())
}

/// Records the sessions as online on their node. A session id twice in one batch (a retried
/// call) keeps its last row: one statement may not update a row twice.
async fn start_sessions(pool: PgPool, batch: Vec<SessionStart>) -> Result<Vec<()>> {
    let mut last_of: HashMap<u64, &SessionStart> = HashMap::with_capacity(batch.len());
    for s in &batch {
        last_of.insert(s.session_id, s);
    }
    let rows: Vec<&SessionStart> = last_of.into_values().collect();
    let session_ids: Vec<i64> = rows.iter().map(|s| s.session_id as i64).collect();
    let app_ids: Vec<i64> = rows.iter().map(|s| i64::from(s.app_id)).collect();
    let user_ids: Vec<&str> = rows.iter().map(|s| s.user_id.as_str()).collect();
    let node_ids: Vec<i32> = rows.iter().map(|s| i32::from(s.node_id)).collect();
    let started_ms: Vec<i64> = rows.iter().map(|s| s.now_ms).collect();
    sqlx::query(
        "INSERT INTO presence_sessions (session_id, app_id, user_id, node_id, started_ms) \
         SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::int4[], $5::int8[]) \
         ON CONFLICT (session_id) DO UPDATE SET app_id = EXCLUDED.app_id, user_id = EXCLUDED.user_id, \
         node_id = EXCLUDED.node_id, started_ms = EXCLUDED.started_ms",
    )
    .bind(&session_ids)
    .bind(&app_ids)
    .bind(&user_ids)
    .bind(&node_ids)
    .bind(&started_ms)
    .execute(&pool)
    .await?;
    Ok(vec![(); batch.len()])
}

/// Removes the sessions from presence, one statement for the batch.
async fn end_sessions(pool: PgPool, batch: Vec<u64>) -> Result<Vec<()>> {
    let session_ids: Vec<i64> = batch.iter().map(|&id| id as i64).collect();
    sqlx::query("DELETE FROM presence_sessions WHERE session_id = ANY($1)").bind(&session_ids).execute(&pool).await?;
    Ok(vec![(); batch.len()])
}
