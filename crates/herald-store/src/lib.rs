//! Herald's durable state behind one trait, with an embedded SQLite backend and a PostgreSQL one.
//!
//! Layout: `lib.rs` holds the [`Store`] trait and its records; `sqlite.rs` and `postgres.rs`
//! implement it with their own migrations under `migrations/`; `suite.rs` is the one behaviour
//! suite every backend must pass (`herald_store::suite::run_all`).
//!
//! What lives here is what must survive a restart or hold across a cluster: users, push
//! bindings, replay-protection nonces, rate-limit windows, broadcast records. Sessions and
//! presence of this node's connections live in memory (the hub), not here.

use async_trait::async_trait;
use std::sync::Arc;

pub mod sqlite;
pub mod suite;

pub use sqlite::SqliteStore;

/// One error type for every backend. The API layer maps it to ZIM code 105001 (DB failed).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported store url {0:?}: expected sqlite://PATH, sqlite::memory: or postgres://...")]
    UnsupportedUrl(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A user as the server API knows it (`UserRegister`, `QueryUserInfos`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserRecord {
    pub user_id: String,
    pub user_name: String,
    pub user_avatar: String,
    pub extra: String,
    /// Unix ms of creation.
    pub created_at_ms: i64,
}

/// A partial change from `ModifyUserInfo`: `None` leaves the field as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserChange {
    pub user_id: String,
    pub user_name: Option<String>,
    pub user_avatar: Option<String>,
    pub extra: Option<String>,
}

/// What happened to one user of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowOutcome {
    Done,
    /// `register_users`: the id was taken already.
    AlreadyExists,
    /// `modify_users`: no such user.
    NotFound,
}

/// Answer of [`Store::try_acquire_broadcast_slot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    Allowed,
    /// More than `per_second` calls in the last 1000 ms.
    PerSecondExceeded,
    /// More than `per_day` calls in the last 86 400 000 ms.
    PerDayExceeded,
}

/// Vendor push channel of a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PushProvider {
    Fcm,
    Apns,
    Webhook,
}

impl PushProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            PushProvider::Fcm => "fcm",
            PushProvider::Apns => "apns",
            PushProvider::Webhook => "webhook",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "fcm" => Some(PushProvider::Fcm),
            "apns" => Some(PushProvider::Apns),
            "webhook" => Some(PushProvider::Webhook),
            _ => None,
        }
    }
}

/// A device's push ID bound to a user; removed by logout, kept across drops and timeouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushBinding {
    pub app_id: u32,
    pub user_id: String,
    pub device_id: String,
    pub push_id: String,
    pub provider: PushProvider,
    pub updated_at_ms: i64,
}

/// An accepted `SendMessageToAllUsers` call: kept until its work is done, plus its counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BroadcastRecord {
    pub app_id: u32,
    /// 64-bit unique message id, also the ZIMMessage `messageID`.
    pub message_id: u64,
    pub from_user_id: String,
    pub message_type: u32,
    pub sub_type: u32,
    pub push_type: u8,
    /// The `MessageBody` JSON exactly as accepted (needed to build offline pushes later).
    pub body_json: String,
    pub accepted_at_ms: i64,
    /// Sessions the online fan-out wrote to (filled in when the fan-out finishes).
    pub online_delivered: u64,
}

/// The storage contract. Every method is one atomic step; callers never hold a transaction.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates each user that does not exist yet. Outcomes are in input order.
    async fn register_users(&self, app_id: u32, users: &[UserRecord]) -> Result<Vec<RowOutcome>>;
    /// Creates the user if missing (first SDK login). Returns true when it was created.
    async fn ensure_user(&self, app_id: u32, user_id: &str, user_name: &str, now_ms: i64) -> Result<bool>;
    /// The users that exist among `user_ids`, in no particular order.
    async fn get_users(&self, app_id: u32, user_ids: &[String]) -> Result<Vec<UserRecord>>;
    async fn user_exists(&self, app_id: u32, user_id: &str) -> Result<bool>;
    /// Applies each change; outcomes are in input order (`NotFound` for unknown users).
    async fn modify_users(&self, app_id: u32, changes: &[UserChange]) -> Result<Vec<RowOutcome>>;

    /// Records a request's `SignatureNonce`. Returns false when the same (app, nonce) was seen
    /// and has not expired yet, which is a replay. Expired nonces are pruned on the way.
    async fn remember_nonce(&self, app_id: u32, nonce: &str, now_ms: i64, ttl_ms: i64) -> Result<bool>;

    /// Checks both broadcast windows for the app and, only when both allow it, records the
    /// call at `now_ms`, atomically (two concurrent callers cannot both take the last slot).
    /// Windows are rolling: the last 1 000 ms and the last 86 400 000 ms.
    async fn try_acquire_broadcast_slot(
        &self,
        app_id: u32,
        now_ms: i64,
        per_second: u32,
        per_day: u32,
    ) -> Result<RateDecision>;

    async fn insert_broadcast(&self, record: &BroadcastRecord) -> Result<()>;
    async fn get_broadcast(&self, app_id: u32, message_id: u64) -> Result<Option<BroadcastRecord>>;
    async fn set_broadcast_online_delivered(&self, app_id: u32, message_id: u64, delivered: u64) -> Result<()>;

    /// Binds (or rebinds) the device's push ID.
    async fn bind_push(&self, binding: &PushBinding) -> Result<()>;
    /// Removes the device's binding (explicit logout). Returns true when one existed.
    async fn unbind_push(&self, app_id: u32, user_id: &str, device_id: &str) -> Result<bool>;
    /// Bindings of the app ordered by (user_id, device_id), strictly after `after`, at most
    /// `limit`: the paging cursor of push jobs, so no job ever loads every user at once.
    async fn push_bindings_page(
        &self,
        app_id: u32,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<PushBinding>>;
    /// Bindings of one user (all devices).
    async fn push_bindings_of(&self, app_id: u32, user_id: &str) -> Result<Vec<PushBinding>>;
}

/// Opens the store named by `url`: `sqlite://PATH` (created with its parent directory if
/// missing) or `sqlite::memory:`. Migrations run before this returns.
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_string()))
    }
}
