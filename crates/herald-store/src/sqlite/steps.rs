//! Statements that more than one call of the SQLite store runs, and how rows come back.

use super::BROADCAST_COLUMNS;
use crate::rows::rate_decision;
use crate::{BroadcastRecord, RateDecision, Result, StoreError};
use rusqlite::{params, Connection};

/// The rolling windows of [`crate::Store::try_acquire_broadcast_slot`].
const SECOND_WINDOW_MS: i64 = 1_000;
const DAY_WINDOW_MS: i64 = 86_400_000;

/// The ids of `get_users` and `online_users` travel as one JSON array: one statement text
/// whatever the count (so one cached statement), no bound-parameter limit, and duplicates
/// collapse in the IN.
pub(super) fn json_ids(ids: &[String]) -> Result<String> {
    serde_json::to_string(ids).map_err(|e| StoreError::Database(sqlx::Error::Encode(Box::new(e))))
}

/// Every row of `sql` for `params`, each made into a record by `record`.
pub(super) fn collect<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    record: impl Fn(&rusqlite::Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(record(row)?);
    }
    Ok(out)
}

/// A count as the u64 the trait speaks (SQLite's COUNT is never negative).
pub(super) fn count(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<u64> {
    Ok(conn.prepare_cached(sql)?.query_row(params, |row| row.get::<_, i64>(0))? as u64)
}

/// Prunes the app's calls older than a day, decides from what is left, and records a call at
/// `now_ms` when both windows allow it. Callers commit only an `Allowed`: a refusal then writes
/// nothing (the prune waits for the next call).
pub(super) fn take_rate_slot(
    tx: &Connection,
    app_id: u32,
    now_ms: i64,
    per_second: u32,
    per_day: u32,
) -> Result<RateDecision> {
    tx.prepare_cached("DELETE FROM broadcast_calls WHERE app_id = ? AND at_ms <= ?")?
        .execute(params![app_id, now_ms - DAY_WINDOW_MS])?;
    // What is left is the day window; calls stamped after now_ms (a clock that stepped
    // back) still count, which errs on the side of refusing.
    let (in_day, in_second): (i64, i64) = tx
        .prepare_cached("SELECT COUNT(*), COALESCE(SUM(at_ms > ?), 0) FROM broadcast_calls WHERE app_id = ?")?
        .query_row(params![now_ms - SECOND_WINDOW_MS, app_id], |row| Ok((row.get(0)?, row.get(1)?)))?;
    let decision = rate_decision(in_second, in_day, per_second, per_day);
    if decision == RateDecision::Allowed {
        tx.prepare_cached("INSERT INTO broadcast_calls (app_id, at_ms) VALUES (?, ?)")?
            .execute(params![app_id, now_ms])?;
    }
    Ok(decision)
}

/// The broadcast's row, and its push job when it pushes offline: one transaction holds both, so
/// an accepted broadcast can never lose its pushes to a crash between the two writes.
pub(super) fn insert_broadcast_rows(tx: &Connection, record: &BroadcastRecord) -> Result<()> {
    tx.prepare_cached(&format!("INSERT INTO broadcasts ({BROADCAST_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"))?
        .execute(params![
            record.app_id,
            record.message_id as i64,
            record.from_user_id,
            record.message_type.code(),
            record.sub_type,
            record.push_type.code(),
            record.body_json,
            record.accepted_at_ms,
            record.online_delivered as i64,
            record.recovered_delivered as i64,
        ])?;
    if record.push_type.pushes_offline() {
        tx.prepare_cached(
            "INSERT INTO push_jobs (app_id, message_id, push_type, state, created_at_ms, updated_at_ms) \
             VALUES (?, ?, ?, 'pending', ?, ?)",
        )?
        .execute(params![
            record.app_id,
            record.message_id as i64,
            record.push_type.code(),
            record.accepted_at_ms,
            record.accepted_at_ms,
        ])?;
    }
    Ok(())
}
