//! What both backends share below the SQL: turning a row into a record, and the rate decision.
//! A backend only says how to read a text or an integer column ([`Columns`]); the records' rules —
//! ranges, enum spellings, u64 values kept as their i64 bit pattern — live here once.

use crate::{
    BroadcastRecord, MessageType, PushBinding, PushCounts, PushJob, PushJobState, PushProvider, PushType, RateDecision,
    Result, StoreError, UserRecord,
};
use sqlx::Row;

/// How one backend reads a column of a row.
pub(crate) trait Columns {
    fn text(&self, column: &str) -> Result<String>;
    fn text_opt(&self, column: &str) -> Result<Option<String>>;
    fn int(&self, column: &str) -> Result<i64>;
    fn int_opt(&self, column: &str) -> Result<Option<i64>>;
    /// A column declared SMALLINT (`push_type`): its own type on PostgreSQL, one more integer on
    /// SQLite.
    fn small_int(&self, column: &str) -> Result<i64>;
}

impl Columns for rusqlite::Row<'_> {
    fn text(&self, column: &str) -> Result<String> {
        Ok(self.get(column)?)
    }
    fn text_opt(&self, column: &str) -> Result<Option<String>> {
        Ok(self.get(column)?)
    }
    fn int(&self, column: &str) -> Result<i64> {
        Ok(self.get(column)?)
    }
    fn int_opt(&self, column: &str) -> Result<Option<i64>> {
        Ok(self.get(column)?)
    }
    fn small_int(&self, column: &str) -> Result<i64> {
        self.int(column)
    }
}

impl Columns for sqlx::postgres::PgRow {
    fn text(&self, column: &str) -> Result<String> {
        Ok(self.try_get(column)?)
    }
    fn text_opt(&self, column: &str) -> Result<Option<String>> {
        Ok(self.try_get(column)?)
    }
    fn int(&self, column: &str) -> Result<i64> {
        Ok(self.try_get(column)?)
    }
    fn int_opt(&self, column: &str) -> Result<Option<i64>> {
        Ok(self.try_get(column)?)
    }
    fn small_int(&self, column: &str) -> Result<i64> {
        Ok(i64::from(self.try_get::<i16, _>(column)?))
    }
}

/// Per-day wins over per-second when both are exhausted: waiting a second would not help.
pub(crate) fn rate_decision(in_second: i64, in_day: i64, per_second: u32, per_day: u32) -> RateDecision {
    if in_day >= i64::from(per_day) {
        RateDecision::PerDayExceeded
    } else if in_second >= i64::from(per_second) {
        RateDecision::PerSecondExceeded
    } else {
        RateDecision::Allowed
    }
}

pub(crate) fn user(row: &impl Columns) -> Result<UserRecord> {
    Ok(UserRecord {
        user_id: row.text("user_id")?,
        user_name: row.text("user_name")?,
        user_avatar: row.text("user_avatar")?,
        extra: row.text("extra")?,
        created_at_ms: row.int("created_at_ms")?,
    })
}

pub(crate) fn binding(row: &impl Columns) -> Result<PushBinding> {
    let provider = row.text("provider")?;
    Ok(PushBinding {
        app_id: u32_column(row, "app_id")?,
        user_id: row.text("user_id")?,
        device_id: row.text("device_id")?,
        push_id: row.text("push_id")?,
        provider: PushProvider::parse(&provider)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown push provider {provider:?}")))?,
        updated_at_ms: row.int("updated_at_ms")?,
    })
}

pub(crate) fn broadcast(row: &impl Columns) -> Result<BroadcastRecord> {
    Ok(BroadcastRecord {
        app_id: u32_column(row, "app_id")?,
        message_id: u64_column(row, "message_id")?,
        from_user_id: row.text("from_user_id")?,
        message_type: message_type_column(row)?,
        sub_type: u32_column(row, "sub_type")?,
        push_type: push_type_column(row)?,
        body_json: row.text("body_json")?,
        accepted_at_ms: row.int("accepted_at_ms")?,
        online_delivered: u64_column(row, "online_delivered")?,
        recovered_delivered: u64_column(row, "recovered_delivered")?,
    })
}

pub(crate) fn job(row: &impl Columns) -> Result<PushJob> {
    let state = row.text("state")?;
    Ok(PushJob {
        app_id: u32_column(row, "app_id")?,
        message_id: u64_column(row, "message_id")?,
        push_type: push_type_column(row)?,
        state: PushJobState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown push job state {state:?}")))?,
        cursor: row.text_opt("cursor_user_id")?.zip(row.text_opt("cursor_device_id")?),
        counts: PushCounts {
            targeted: u64_column(row, "targeted")?,
            sent: u64_column(row, "sent")?,
            failed: u64_column(row, "failed")?,
            removed: u64_column(row, "removed")?,
            skipped_online: u64_column(row, "skipped_online")?,
        },
        created_at_ms: row.int("created_at_ms")?,
        updated_at_ms: row.int("updated_at_ms")?,
        finished_at_ms: row.int_opt("finished_at_ms")?,
    })
}

pub(crate) fn u32_column(row: &impl Columns, column: &str) -> Result<u32> {
    let value = row.int(column)?;
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column} {value} out of range")))
}

/// u64 values (message ids, counters) are stored as their i64 bit pattern; `as` undoes it exactly.
fn u64_column(row: &impl Columns, column: &str) -> Result<u64> {
    Ok(row.int(column)? as u64)
}

fn push_type_column(row: &impl Columns) -> Result<PushType> {
    let value = row.small_int("push_type")?;
    PushType::from_code(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn message_type_column(row: &impl Columns) -> Result<MessageType> {
    let value = row.int("message_type")?;
    MessageType::from_code(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_day_wins_over_per_second() {
        assert_eq!(rate_decision(1, 100, 1, 100), RateDecision::PerDayExceeded);
        assert_eq!(rate_decision(1, 5, 1, 100), RateDecision::PerSecondExceeded);
        assert_eq!(rate_decision(0, 99, 1, 100), RateDecision::Allowed);
        assert_eq!(rate_decision(0, 0, 0, 100), RateDecision::PerSecondExceeded);
    }
}
