//! The hub: this node's logged-in sessions, sharded, and the fan-out that writes one encoded
//! broadcast frame to every one of them.
//!
//! Sessions live in `SHARDS` shards picked by session id, each a map per app; presence (how many
//! sessions each user has) lives in its own shards picked by user. A broadcast is encoded once
//! into a WebSocket frame (`Bytes`) and the same bytes go to every socket: the per-delivery work
//! is a lock-free refcount-free `try_write` on the happy path. Shards are walked by as many
//! tasks as the runtime has workers, each holding one shard's lock while it writes to that
//! shard's sockets — logins in that shard wait for microseconds, never for a slow client, because
//! writes never block.

use crate::api::{AcceptedBroadcast, Dispatch, Presence};
use crate::gateway::conn::{Conn, Sent};
use bytes::Bytes;
use herald_proto::frame::{self, ServerFrame, ZimMessage};
use herald_proto::ws::{self, Opcode};
use herald_store::{Store, StoreError};
use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

const SHARDS: usize = 64;

struct Member {
    conn: Arc<Conn>,
    /// SDK ≥ 2.10.0: older SDKs never receive broadcasts (ZIM's rule).
    receives_broadcasts: bool,
}

#[derive(Default)]
struct SessionShard {
    by_app: HashMap<u32, HashMap<u64, Member>>,
}

/// One logged-in device of a user on this node.
struct DeviceSession {
    device_id: String,
    session_id: u64,
    conn: Arc<Conn>,
}

#[derive(Default)]
struct PresenceShard {
    sessions_of: HashMap<(u32, String), Vec<DeviceSession>>,
}

/// Counts of one fan-out.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FanoutReport {
    pub written: u64,
    pub queued: u64,
    pub dropped: u64,
    pub skipped_old_sdk: u64,
}

impl FanoutReport {
    pub fn delivered(&self) -> u64 {
        self.written + self.queued
    }
    fn add(&mut self, o: FanoutReport) {
        self.written += o.written;
        self.queued += o.queued;
        self.dropped += o.dropped;
        self.skipped_old_sdk += o.skipped_old_sdk;
    }
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
    fanout_tasks: usize,
    broadcasts_done: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn user_shard(app_id: u32, user_id: &str) -> usize {
    let mut h = DefaultHasher::new();
    (app_id, user_id).hash(&mut h);
    (h.finish() as usize) % SHARDS
}

impl Hub {
    pub fn new(store: Arc<dyn Store>) -> Arc<Hub> {
        let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Arc::new(Hub {
            relay: std::sync::OnceLock::new(),
            sessions: (0..SHARDS).map(|_| Mutex::default()).collect(),
            presence: (0..SHARDS).map(|_| Mutex::default()).collect(),
            store,
            fanout_tasks: workers.clamp(1, SHARDS),
            broadcasts_done: AtomicU64::new(0),
        })
    }

    /// Joins this hub to a cluster: every broadcast accepted here is also relayed.
    pub fn set_relay(&self, relay: Arc<dyn Relay>) {
        if self.relay.set(relay).is_err() {
            tracing::warn!("the hub already has a relay; keeping the first");
        }
    }

    /// Fans out a frame another node accepted and encoded.
    pub fn deliver_relayed(self: &Arc<Self>, app_id: u32, message_id: u64, frame: Bytes) {
        let hub = self.clone();
        tokio::spawn(async move {
            let report = hub.fanout(app_id, frame).await;
            tracing::debug!(app_id, message_id, delivered = report.delivered(), dropped = report.dropped, "relayed broadcast fan-out done");
            hub.broadcasts_done.fetch_add(1, Ordering::Release);
        });
    }

    /// Registers a logged-in session. A session of the same device takes the place of the old
    /// one (closed with 4507: its socket is probably half-open after a network change);
    /// otherwise a user already at `max_per_user` devices is refused.
    #[allow(clippy::too_many_arguments)]
    pub fn join(
        &self,
        app_id: u32,
        user_id: &str,
        device_id: &str,
        session_id: u64,
        conn: Arc<Conn>,
        receives_broadcasts: bool,
        max_per_user: usize,
    ) -> Result<(), JoinError> {
        {
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
        }
        let mut s = lock(&self.sessions[session_id as usize % SHARDS]);
        s.by_app.entry(app_id).or_default().insert(session_id, Member { conn, receives_broadcasts });
        Ok(())
    }

    /// Removes a session; returns true when the user has no session left on this node.
    pub fn leave(&self, app_id: u32, user_id: &str, session_id: u64) -> bool {
        {
            let mut s = lock(&self.sessions[session_id as usize % SHARDS]);
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

    /// Broadcasts finished since start (for tests and metrics).
    pub fn broadcasts_done(&self) -> u64 {
        self.broadcasts_done.load(Ordering::Acquire)
    }

    /// Encodes the broadcast's frame once: JSON, then the WebSocket header, into one buffer.
    pub fn encode(b: &AcceptedBroadcast) -> Bytes {
        let json = frame::encode_server(&ServerFrame::Bcast {
            msg: ZimMessage {
                message_id: b.message_id.to_string(),
                sender_user_id: b.from_user_id.clone(),
                timestamp: b.timestamp_ms,
                message_type: b.message_type,
                message: b.message.clone(),
                extended_data: b.extended_data.clone(),
                sub_type: b.sub_type,
                is_broadcast_message: true,
                is_server_message: true,
            },
        });
        ws::server_frame(Opcode::Text, &json)
    }

    /// Writes `frame` to every session of `app_id` in the given shards.
    fn fanout_shards(&self, app_id: u32, frame: &Bytes, shards: impl Iterator<Item = usize>) -> FanoutReport {
        let mut r = FanoutReport::default();
        for i in shards {
            let shard = lock(&self.sessions[i]);
            let Some(members) = shard.by_app.get(&app_id) else { continue };
            for m in members.values() {
                if !m.receives_broadcasts {
                    r.skipped_old_sdk += 1;
                    continue;
                }
                match m.conn.send(frame) {
                    Sent::Written => r.written += 1,
                    Sent::Queued => r.queued += 1,
                    Sent::Dropped => r.dropped += 1,
                }
            }
        }
        r
    }

    /// Delivers to every online session of the app, spread over the runtime's workers.
    pub async fn fanout(self: &Arc<Self>, app_id: u32, frame: Bytes) -> FanoutReport {
        let tasks = self.fanout_tasks;
        let mut handles = Vec::with_capacity(tasks);
        for t in 1..tasks {
            let hub = self.clone();
            let frame = frame.clone();
            handles.push(tokio::spawn(async move { hub.fanout_shards(app_id, &frame, (t..SHARDS).step_by(tasks)) }));
        }
        let mut report = self.fanout_shards(app_id, &frame, (0..SHARDS).step_by(tasks));
        for h in handles {
            if let Ok(r) = h.await {
                report.add(r);
            }
        }
        report
    }
}

impl Hub {
    /// Whether the user has a session on this node.
    pub fn is_online_here(&self, app_id: u32, user_id: &str) -> bool {
        lock(&self.presence[user_shard(app_id, user_id)]).sessions_of.contains_key(&(app_id, user_id.to_string()))
    }
}

/// Single-node presence: this hub is the whole truth.
#[async_trait::async_trait]
impl Presence for Hub {
    async fn online_among(&self, app_id: u32, user_ids: &[String]) -> Result<HashSet<String>, StoreError> {
        Ok(user_ids.iter().filter(|u| self.is_online_here(app_id, u)).cloned().collect())
    }
}

/// The fan-out side of the API: an accepted broadcast starts at once on its own task.
impl Dispatch for Arc<Hub> {
    fn dispatch(&self, b: Arc<AcceptedBroadcast>) {
        let hub = self.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let report = if b.reaches_online_sessions() {
                let frame = Hub::encode(&b);
                if let Some(relay) = hub.relay.get() {
                    relay.relay(b.app_id, b.message_id, &frame);
                }
                hub.fanout(b.app_id, frame).await
            } else {
                FanoutReport::default()
            };
            tracing::info!(
                app_id = b.app_id,
                message_id = b.message_id,
                delivered = report.delivered(),
                dropped = report.dropped,
                skipped_old_sdk = report.skipped_old_sdk,
                elapsed_us = started.elapsed().as_micros() as u64,
                "broadcast fan-out done"
            );
            if let Err(e) = hub.store.set_broadcast_online_delivered(b.app_id, b.message_id, report.delivered()).await {
                tracing::warn!(error = %e, message_id = b.message_id, "could not record the fan-out count");
            }
            hub.broadcasts_done.fetch_add(1, Ordering::Release);
        });
    }
}
