//! The hub: this node's logged-in sessions, sharded, and the fan-out that writes one encoded
//! broadcast frame to every one of them (`fanout.rs`). The gateway hands each session in as a
//! [`SessionHandle`] (`handle.rs`): the bounded outbox the fan-out writes to.
//!
//! Sessions live in `SHARDS` shards picked by a hash of the session id, each a map per app;
//! presence (each user's devices) lives in its own shards picked by user. A session enters in two
//! steps: [`Hub::reserve`] claims its device slot (refusing a user at the cap, replacing the same
//! device's older session), and [`Hub::activate`] writes its `login_ok` — and, for a client that
//! asked, the broadcasts it missed (`recovery.rs`) — and makes it visible to the fan-out under the
//! shard lock, so no broadcast can overtake the login answer or the replay.

mod fanout;
mod handle;
mod recovery;

pub use fanout::FanoutReport;
pub use handle::{Flushed, OutboxLimits, Sent, SessionHandle};
pub use recovery::{RecoveryWindow, Replay};

use crate::broadcast::Presence;
use crate::clock::Clock;
use crate::metrics::Metrics;
use bytes::Bytes;
use herald_store::{Store, StoreError};
use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const SHARD_BITS: u32 = 6;
const SHARDS: usize = 1 << SHARD_BITS;

struct Member {
    conn: Arc<SessionHandle>,
    /// SDK ≥ 2.10.0: older SDKs never receive broadcasts (ZIM's rule).
    receives_broadcasts: bool,
}

#[derive(Default)]
struct SessionShard {
    by_app: HashMap<u32, HashMap<u64, Member>>,
    /// The fan-out sequence number of the last broadcast written to this shard: a session
    /// activated now gets later ones live, and may get this one and earlier ones replayed.
    written_seq: u64,
}

/// One logged-in device of a user on this node.
struct DeviceSession {
    device_id: String,
    session_id: u64,
    conn: Arc<SessionHandle>,
}

#[derive(Default)]
struct PresenceShard {
    sessions_of: HashMap<(u32, String), Vec<DeviceSession>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JoinError {
    #[error("user already has {max} sessions (gateway.max_sessions_per_user)")]
    TooManySessions { max: usize },
}

/// Carries an encoded broadcast to the other nodes of a cluster.
pub trait Relay: Send + Sync + 'static {
    fn relay(&self, app_id: u32, message_id: u64, frame: &Bytes);
}

pub struct Hub {
    /// Set once in cluster mode.
    relay: std::sync::OnceLock<Arc<dyn Relay>>,
    sessions: Vec<Mutex<SessionShard>>,
    presence: Vec<Mutex<PresenceShard>>,
    store: Arc<dyn Store>,
    /// One queue per fan-out worker, in acceptance order (see `fanout.rs`).
    workers: std::sync::OnceLock<Vec<fanout::WorkerQueue>>,
    broadcasts_done: AtomicU64,
    /// Where the hub's own tasks run (fan-out workers, count updates), so shutdown waits for them.
    tasks: TaskTracker,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    recovery: RecoveryWindow,
    recovered: recovery::RecoveredCounts,
    /// The last fan-out sequence number given out. Held while a broadcast is numbered, kept in
    /// the recovery window and queued to the workers, so queue order is sequence order.
    last_seq: Mutex<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Session ids carry a per-millisecond sequence in their low bits; multiplying by a large odd
/// constant and keeping the top bits spreads consecutive ids over every shard.
fn session_shard(session_id: u64) -> usize {
    (session_id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SHARD_BITS)) as usize
}

fn user_shard(app_id: u32, user_id: &str) -> usize {
    let mut h = DefaultHasher::new();
    (app_id, user_id).hash(&mut h);
    (h.finish() as usize) % SHARDS
}

impl Hub {
    /// Creates the hub and starts its fan-out workers (one per runtime thread) on `tasks`; they
    /// stop at `shutdown` or when the hub is dropped.
    pub fn start(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        recovery: RecoveryWindow,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> Arc<Hub> {
        let hub = Arc::new(Hub {
            relay: std::sync::OnceLock::new(),
            sessions: (0..SHARDS).map(|_| Mutex::default()).collect(),
            presence: (0..SHARDS).map(|_| Mutex::default()).collect(),
            store,
            workers: std::sync::OnceLock::new(),
            broadcasts_done: AtomicU64::new(0),
            tasks,
            clock,
            metrics,
            recovery,
            recovered: recovery::RecoveredCounts::default(),
            last_seq: Mutex::new(0),
        });
        // One fan-out worker per runtime thread (one per core, or TOKIO_WORKER_THREADS).
        let count = tokio::runtime::Handle::current().metrics().num_workers().clamp(1, SHARDS);
        let _ = hub.workers.set(fanout::start_workers(&hub, count, &shutdown));
        hub.tasks.spawn(flush_recovered_counts(Arc::downgrade(&hub), shutdown));
        hub
    }

    /// Fills the recovery window from the store before the node serves anyone (after a restart,
    /// or a node joining a cluster), so clients that come back here recover from it.
    pub async fn load_recovery_window(&self, app_ids: &[u32]) -> Result<(), StoreError> {
        let now_ms = self.clock.now_ms();
        let first = *lock(&self.last_seq) + 1;
        let mut next = first;
        for &app_id in app_ids {
            next += recovery::load(&self.recovery, &*self.store, app_id, now_ms, next).await?;
        }
        let (last, loaded) = (next - 1, next - first);
        *lock(&self.last_seq) = last;
        // Everything loaded counts as written to every shard: it is replayed, never sent live.
        for shard in &self.sessions {
            lock(shard).written_seq = last;
        }
        if loaded > 0 {
            tracing::info!(broadcasts = loaded, "recovery window loaded from the store");
        }
        Ok(())
    }

    /// Joins this hub to a cluster: every broadcast accepted here is also relayed.
    pub fn set_relay(&self, relay: Arc<dyn Relay>) {
        if self.relay.set(relay).is_err() {
            tracing::warn!("the hub already has a relay; keeping the first");
        }
    }

    /// Claims a device slot for a new session. A session of the same device takes the place of
    /// the old one (closed with 4507: its socket is probably half-open after a network change);
    /// otherwise a user already at `max_per_user` devices is refused. Undo with [`Hub::leave`].
    pub fn reserve(
        &self,
        app_id: u32,
        user_id: &str,
        device_id: &str,
        session_id: u64,
        conn: &Arc<SessionHandle>,
        max_per_user: usize,
    ) -> Result<(), JoinError> {
        let mut p = lock(&self.presence[user_shard(app_id, user_id)]);
        let devices = p.sessions_of.entry((app_id, user_id.to_string())).or_default();
        if let Some(i) = devices.iter().position(|d| d.device_id == device_id) {
            let old = devices.swap_remove(i);
            old.conn.close(herald_proto::close::REPLACED, "replaced by a newer login from this device");
            tracing::debug!(old = old.session_id, new = session_id, "a device's new session replaces its old one");
        } else if devices.len() >= max_per_user {
            return Err(JoinError::TooManySessions { max: max_per_user });
        }
        devices.push(DeviceSession { device_id: device_id.to_string(), session_id, conn: conn.clone() });
        Ok(())
    }

    /// Makes a reserved session receive broadcasts. Under the shard lock the fan-out also takes,
    /// it writes the greeting (`login_ok`, made from whether recovery succeeded, when the client
    /// asked with `since`), then the broadcasts it missed, then lets live ones reach it: nothing
    /// overtakes the greeting, nothing is both replayed and sent live, nothing falls between.
    /// Sessions of SDKs that get no broadcasts get no replay, and no `recovered`.
    pub fn activate(
        &self,
        app_id: u32,
        session_id: u64,
        conn: Arc<SessionHandle>,
        receives_broadcasts: bool,
        since: Option<u64>,
        greeting: impl FnOnce(Option<bool>) -> Bytes,
    ) {
        let mut s = lock(&self.sessions[session_shard(session_id)]);
        let replay = since.filter(|_| receives_broadcasts).map(|since| {
            self.recovery.replay(app_id, since, s.written_seq, self.clock.now_ms(), conn.capacity_bytes())
        });
        conn.send(&greeting(replay.as_ref().map(|r| matches!(r, Replay::Recovered { .. }))));
        if let Some(Replay::Recovered { frames, message_ids }) = replay {
            if !frames.is_empty() && conn.send(&frames) != Sent::Dropped {
                self.recovered.add(app_id, &message_ids);
                self.metrics.deliveries.add(&[&app_id.to_string()], message_ids.len() as u64);
            }
        }
        s.by_app.entry(app_id).or_default().insert(session_id, Member { conn, receives_broadcasts });
    }

    /// Removes a session; returns true when the user has no session left on this node.
    pub fn leave(&self, app_id: u32, user_id: &str, session_id: u64) -> bool {
        {
            let mut s = lock(&self.sessions[session_shard(session_id)]);
            if let Some(app) = s.by_app.get_mut(&app_id) {
                app.remove(&session_id);
                if app.is_empty() {
                    s.by_app.remove(&app_id);
                }
            }
        }
        let mut p = lock(&self.presence[user_shard(app_id, user_id)]);
        match p.sessions_of.entry((app_id, user_id.to_string())) {
            Entry::Occupied(mut e) => {
                // A replaced session is gone from the list already.
                e.get_mut().retain(|d| d.session_id != session_id);
                if e.get().is_empty() {
                    e.remove();
                    true
                } else {
                    false
                }
            }
            Entry::Vacant(_) => true,
        }
    }

    pub fn session_count(&self) -> usize {
        self.sessions.iter().map(|s| lock(s).by_app.values().map(HashMap::len).sum::<usize>()).sum()
    }

    /// Logged-in sessions on this node, by app.
    pub fn sessions_by_app(&self) -> HashMap<u32, usize> {
        let mut by_app = HashMap::new();
        for shard in &self.sessions {
            for (app, members) in &lock(shard).by_app {
                *by_app.entry(*app).or_default() += members.len();
            }
        }
        by_app
    }

    /// Distinct users with a session on this node, by app.
    pub fn users_by_app(&self) -> HashMap<u32, usize> {
        let mut by_app = HashMap::new();
        for shard in &self.presence {
            for (app, _) in lock(shard).sessions_of.keys() {
                *by_app.entry(*app).or_default() += 1;
            }
        }
        by_app
    }

    /// Logged-in sessions of one user on this node.
    pub fn sessions_of(&self, app_id: u32, user_id: &str) -> usize {
        lock(&self.presence[user_shard(app_id, user_id)])
            .sessions_of
            .get(&(app_id, user_id.to_string()))
            .map_or(0, Vec::len)
    }

    /// Broadcasts finished since start (for tests and metrics).
    pub fn broadcasts_done(&self) -> u64 {
        self.broadcasts_done.load(Ordering::Acquire)
    }
}

impl Hub {
    /// Whether the user has a session on this node.
    pub fn is_online_here(&self, app_id: u32, user_id: &str) -> bool {
        lock(&self.presence[user_shard(app_id, user_id)]).sessions_of.contains_key(&(app_id, user_id.to_string()))
    }
}

/// Single-node presence: this hub is the whole truth. A session is present from the moment the
/// hub reserved its device slot, so starting and ending one has nothing more to record.
#[async_trait::async_trait]
impl Presence for Hub {
    async fn online_among(&self, app_id: u32, user_ids: &[String]) -> Result<HashSet<String>, StoreError> {
        Ok(user_ids.iter().filter(|u| self.is_online_here(app_id, u)).cloned().collect())
    }

    async fn session_started(&self, _app_id: u32, _user_id: &str, _session_id: u64) -> Result<(), StoreError> {
        Ok(())
    }

    async fn session_ended(&self, _session_id: u64) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Writes the replayed-delivery counts every second, and once more at shutdown.
async fn flush_recovered_counts(hub: std::sync::Weak<Hub>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        let stopping = tokio::select! {
            _ = shutdown.cancelled() => true,
            _ = tick.tick() => false,
        };
        let Some(hub) = hub.upgrade() else { return };
        hub.recovered.flush(&*hub.store).await;
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn worker_count() -> usize {
        let store = herald_store::open("sqlite::memory:").await.unwrap();
        let clock = Arc::new(crate::clock::SystemClock);
        let window = RecoveryWindow::new(std::time::Duration::ZERO, 0);
        let metrics = Arc::new(Metrics::new(&[], &[]));
        Hub::start(store, clock, metrics, window, TaskTracker::new(), CancellationToken::new())
            .workers
            .get()
            .unwrap()
            .len()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 3)]
    async fn one_fanout_worker_per_runtime_thread() {
        assert_eq!(worker_count().await, 3);
    }

    #[tokio::test]
    async fn a_single_threaded_runtime_gets_one_worker() {
        assert_eq!(worker_count().await, 1);
    }
}
