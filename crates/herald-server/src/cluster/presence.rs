//! Presence that holds across nodes: sessions recorded in the shared store under the node that
//! holds them, counted only while that node keeps its lease alive.

use crate::broadcast::Presence;
use crate::clock::Clock;
use herald_store::{Store, StoreError};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub struct ClusterPresence {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    /// This node: its sessions count as online while its lease is live.
    pub node_id: u16,
}

#[async_trait::async_trait]
impl Presence for ClusterPresence {
    async fn online_among(&self, app_id: u32, user_ids: &[String]) -> Result<HashSet<String>, StoreError> {
        Ok(self.store.online_users(app_id, user_ids, self.clock.now_ms()).await?.into_iter().collect())
    }

    async fn session_started(&self, app_id: u32, user_id: &str, session_id: u64) -> Result<(), StoreError> {
        self.store.presence_session_started(app_id, user_id, session_id, self.node_id, self.clock.now_ms()).await
    }

    async fn session_ended(&self, session_id: u64) -> Result<(), StoreError> {
        self.store.presence_session_ended(session_id).await
    }
}

/// Forgets what this node held before it (re)started, then takes its lease.
pub async fn join(store: &dyn Store, node_id: u16, now_ms: i64, lease: Duration) -> Result<(), StoreError> {
    store.clear_node_sessions(node_id).await?;
    store.renew_node_lease(node_id, now_ms + lease.as_millis() as i64).await
}

/// Renews the lease every third of its length until shutdown; a node that stops renewing
/// (killed, frozen, cut off from the store) goes offline with all its sessions when it lapses.
pub async fn keep_lease(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    node_id: u16,
    lease: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(lease / 3);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        if let Err(e) = store.renew_node_lease(node_id, clock.now_ms() + lease.as_millis() as i64).await {
            tracing::error!(error = %e, node_id, "could not renew this node's lease; its users will look offline if it lapses");
        }
    }
    // A clean stop: the sessions are closing; let the others see that at once.
    let _ = store.clear_node_sessions(node_id).await;
    let _ = store.renew_node_lease(node_id, 0).await;
}
