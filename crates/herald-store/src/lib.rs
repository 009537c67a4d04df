//! Herald's durable state behind one trait, with an embedded SQLite backend and a PostgreSQL one.
//!
//! Layout: `lib.rs` holds the [`Store`] trait and its records; `sqlite.rs` and `postgres.rs`
//! implement it with their own migrations under `migrations/`. The one behaviour suite every
//! backend must pass is test code, in `tests/suite/`, run by `tests/sqlite.rs` and
//! `tests/postgres.rs`.
//!
//! What lives here is what must survive a restart or hold across a cluster: users, push
//! bindings, replay-protection nonces, rate-limit windows, broadcast records and their
//! offline-push jobs. Sessions and presence of this node's connections live in memory (the hub), not here.

use async_trait::async_trait;
pub use herald_proto::message::{MessageType, PushType};
use std::sync::Arc;

mod group_commit;
mod pg_logins;
pub mod postgres;
mod rows;
pub mod sqlite;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// One error type for every backend. The API layer maps it to ZIM code 105001 (DB failed).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The SQLite store's own connections (sqlx only runs its migrations).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A call after [`SqliteStore::close`].
    #[error("the store is closed")]
    Closed,
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported store url {0:?}: expected sqlite://PATH, sqlite::memory: or postgres://...")]
    UnsupportedUrl(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A batched write failed (for every call in the batch) or could not be queued.
    #[error("batched write failed: {0}")]
    Batch(String),
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

/// Answer of [`Store::accept_broadcast`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acceptance {
    /// Recorded (with its push job when it pushes offline); the rate slot is taken.
    Accepted,
    /// `from_user_id` is not a user of the app; nothing was written.
    SenderUnknown,
    /// A rate window is full; nothing was written.
    Refused(RateDecision),
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
    pub message_type: MessageType,
    pub sub_type: u32,
    pub push_type: PushType,
    /// The `MessageBody` JSON exactly as accepted (needed to build offline pushes later).
    pub body_json: String,
    pub accepted_at_ms: i64,
    /// Sessions the online fan-out wrote to (filled in when the fan-out finishes).
    pub online_delivered: u64,
    /// Sessions that missed it and got it replayed when they logged in again (recovery).
    pub recovered_delivered: u64,
}

/// Where an offline-push job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushJobState {
    /// Recorded with its broadcast; no page sent yet.
    Pending,
    /// At least one page claimed.
    Running,
    /// Every binding walked; counts are final.
    Done,
}

impl PushJobState {
    pub fn as_str(self) -> &'static str {
        match self {
            PushJobState::Pending => "pending",
            PushJobState::Running => "running",
            PushJobState::Done => "done",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(PushJobState::Pending),
            "running" => Some(PushJobState::Running),
            "done" => Some(PushJobState::Done),
            _ => None,
        }
    }
}

/// Counts of an offline-push job. Each field is a number of bindings (devices).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushCounts {
    /// Bindings of offline users the job tried to push to.
    pub targeted: u64,
    /// Accepted by the provider.
    pub sent: u64,
    /// Given up on (retries exhausted, refused, or no provider configured).
    pub failed: u64,
    /// Dead tokens: the provider said the token is gone, and the binding was removed.
    pub removed: u64,
    /// Bindings of users who were online (PushType 1 reaches them over their sessions).
    pub skipped_online: u64,
}

impl PushCounts {
    pub fn add(&mut self, o: PushCounts) {
        self.targeted += o.targeted;
        self.sent += o.sent;
        self.failed += o.failed;
        self.removed += o.removed;
        self.skipped_online += o.skipped_online;
    }
}

/// The durable record of one broadcast's offline pushes: state, paging cursor and counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushJob {
    pub app_id: u32,
    pub message_id: u64,
    pub push_type: PushType,
    pub state: PushJobState,
    /// The (user_id, device_id) of the last binding of the last page finished; the next page
    /// starts strictly after it. `None` before the first page.
    pub cursor: Option<(String, String)>,
    pub counts: PushCounts,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub finished_at_ms: Option<i64>,
}

/// Push jobs in the store, by state (for the operator's metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushJobTotals {
    pub pending: u64,
    pub running: u64,
    pub done: u64,
}

/// A node of a cluster as the shared store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    pub node_id: u16,
    /// The node counts as alive until then (Unix ms).
    pub lease_until_ms: i64,
    /// Sessions the node has recorded.
    pub sessions: u64,
}

/// One finished page of a push job: where it ended and what it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageDone<'a> {
    /// (user_id, device_id) of the page's last binding.
    pub cursor: (&'a str, &'a str),
    pub delta: PushCounts,
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

    /// Records an accepted broadcast. When its `push_type` pushes offline (1 or 2) the offline-push job is
    /// created in the same transaction (state `Pending`, no cursor), so an accepted broadcast
    /// can never lose its pushes to a crash between the two writes.
    async fn insert_broadcast(&self, record: &BroadcastRecord) -> Result<()>;
    /// The durable steps of accepting a broadcast, as one step: the sender must exist, the app
    /// must have a slot in both rate windows at `record.accepted_at_ms` (taken then), and the
    /// record is inserted as [`Store::insert_broadcast`] does. A backend that can do it in one
    /// transaction should (SQLite does); the default composes the single steps, which may
    /// leave a slot taken when the insert then fails.
    async fn accept_broadcast(&self, record: &BroadcastRecord, per_second: u32, per_day: u32) -> Result<Acceptance> {
        if !self.user_exists(record.app_id, &record.from_user_id).await? {
            return Ok(Acceptance::SenderUnknown);
        }
        match self.try_acquire_broadcast_slot(record.app_id, record.accepted_at_ms, per_second, per_day).await? {
            RateDecision::Allowed => {}
            refused => return Ok(Acceptance::Refused(refused)),
        }
        self.insert_broadcast(record).await?;
        Ok(Acceptance::Accepted)
    }
    async fn get_broadcast(&self, app_id: u32, message_id: u64) -> Result<Option<BroadcastRecord>>;
    /// Adds one node's online deliveries to the broadcast's count: in a cluster every node that
    /// fanned it out adds its own share.
    async fn add_broadcast_online_delivered(&self, app_id: u32, message_id: u64, delivered: u64) -> Result<()>;
    /// Adds sessions that got the broadcast replayed on reconnect (recovery) to its count.
    async fn add_broadcast_recovered(&self, app_id: u32, message_id: u64, recovered: u64) -> Result<()>;
    /// The newest `limit` broadcasts of the app accepted at or after `since_ms` that went to
    /// online sessions (PushType 0 and 1), oldest first: a starting node's recovery window.
    async fn recent_broadcasts(&self, app_id: u32, since_ms: i64, limit: u32) -> Result<Vec<BroadcastRecord>>;

    /// Claims the oldest unfinished push job of `app_id` that is free: never claimed, claimed
    /// by `owner` itself (a node restarting picks its own jobs up at once), or whose lease
    /// ended before `now_ms`. The claim holds until `now_ms + lease_ms`; the job becomes
    /// `Running`. `None` when there is nothing to do.
    async fn claim_push_job(&self, app_id: u32, owner: &str, now_ms: i64, lease_ms: i64) -> Result<Option<PushJob>>;
    /// Records one finished page at `now_ms`: moves the cursor to `page.cursor`, adds
    /// `page.delta` to the counts and extends the lease to `now_ms + lease_ms`. Returns false (and changes nothing) when `owner`
    /// no longer holds the job (another node took it over, or it is done).
    async fn advance_push_job(
        &self,
        app_id: u32,
        message_id: u64,
        owner: &str,
        page: PageDone<'_>,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<bool>;
    /// Marks the job `Done` at `now_ms`, releasing its claim. False when `owner` does not hold it.
    async fn finish_push_job(&self, app_id: u32, message_id: u64, owner: &str, now_ms: i64) -> Result<bool>;
    /// The job of a broadcast, for reports. `None` for unknown ids and PushType 0 broadcasts.
    async fn get_push_job(&self, app_id: u32, message_id: u64) -> Result<Option<PushJob>>;

    /// Binds (or rebinds) the device's push ID. A push ID belongs to one binding at a time:
    /// any other binding of the app holding the same (provider, push_id) — another user who
    /// logged in on this device earlier, say — is removed in the same step.
    async fn bind_push(&self, binding: &PushBinding) -> Result<()>;
    /// Removes the device's binding (explicit logout). Returns true when one existed.
    async fn unbind_push(&self, app_id: u32, user_id: &str, device_id: &str) -> Result<bool>;
    /// Removes the binding only if it still holds `push_id` (a dead token reported by a
    /// provider must not remove a fresher token the device reported meanwhile). True when removed.
    async fn remove_push_binding(&self, app_id: u32, user_id: &str, device_id: &str, push_id: &str) -> Result<bool>;
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

    // Cluster presence. A single node keeps presence in memory; nodes of a cluster record
    // their sessions here so that any node can answer for all of them.

    /// Records a logged-in session held by `node_id`.
    async fn presence_session_started(
        &self,
        app_id: u32,
        user_id: &str,
        session_id: u64,
        node_id: u16,
        now_ms: i64,
    ) -> Result<()>;
    /// Forgets a session (logout, drop, heartbeat timeout).
    async fn presence_session_ended(&self, session_id: u64) -> Result<()>;
    /// Renews the node's lease until `until_ms`; a node whose lease lapsed counts as dead and
    /// its sessions as offline.
    async fn renew_node_lease(&self, node_id: u16, until_ms: i64) -> Result<()>;
    /// Forgets every session of `node_id` (a node starting up: its old sockets are gone).
    async fn clear_node_sessions(&self, node_id: u16) -> Result<()>;
    /// Which of `user_ids` hold a session on a node whose lease is live at `now_ms`.
    async fn online_users(&self, app_id: u32, user_ids: &[String], now_ms: i64) -> Result<Vec<String>>;
    /// Sessions and distinct users of the app on nodes whose lease is live at `now_ms`.
    async fn online_counts(&self, app_id: u32, now_ms: i64) -> Result<(u64, u64)>;
    /// Every node that ever took a lease, with its recorded sessions, by node id.
    async fn cluster_nodes(&self) -> Result<Vec<NodeRecord>>;

    // What operators look at (the admin console and metrics); not on any request's path.

    /// `SendMessageToAllUsers` calls the rate windows recorded at or after `since_ms` (they
    /// keep the last 24 hours).
    async fn count_broadcast_calls(&self, app_id: u32, since_ms: i64) -> Result<u64>;
    /// The app's newest `limit` broadcasts, newest first.
    async fn list_broadcasts(&self, app_id: u32, limit: u32) -> Result<Vec<BroadcastRecord>>;
    /// The app's unfinished push jobs (pending or running), oldest first.
    async fn open_push_jobs(&self, app_id: u32) -> Result<Vec<PushJob>>;
    /// Push jobs of every app by state.
    async fn push_job_totals(&self) -> Result<PushJobTotals>;
    /// The app's push bindings now: what a push job walks, for its progress.
    async fn count_push_bindings(&self, app_id: u32) -> Result<u64>;
}

/// Opens the store named by `url`: `sqlite://PATH` (created with its parent directory if
/// missing), `sqlite::memory:`, or `postgres://...` / `postgresql://...` (an existing
/// database, shared by every node of a cluster). Migrations run before this returns.
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    open_with(url, &OpenOptions::default()).await
}

/// How a store is opened beyond its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOptions {
    /// PostgreSQL: the pool's connection cap on this node. SQLite keeps its one writer.
    pub max_connections: u32,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions { max_connections: postgres::MAX_CONNECTIONS }
    }
}

/// [`open`] with options.
pub async fn open_with(url: &str, options: &OpenOptions) -> Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::open_with(url, options.max_connections).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_string()))
    }
}
