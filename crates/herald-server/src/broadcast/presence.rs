//! Who is online: one contract for the reads (the user API, the push worker) and the writes (the
//! gateway, as sessions log in and end). A single node answers from its hub; a cluster records
//! sessions in the shared store under the node's lease. The choice is made once, at wiring.

use herald_store::StoreError;
use std::collections::HashSet;

#[async_trait::async_trait]
pub trait Presence: Send + Sync + 'static {
    /// Which of `user_ids` are online: on this node, or on any node of a cluster.
    async fn online_among(&self, app_id: u32, user_ids: &[String]) -> Result<HashSet<String>, StoreError>;

    /// One user. A presence lookup that fails counts as offline: for offline push, a rare
    /// duplicate notification is better than a lost one.
    async fn is_online(&self, app_id: u32, user_id: &str) -> bool {
        match self.online_among(app_id, &[user_id.to_string()]).await {
            Ok(online) => !online.is_empty(),
            Err(e) => {
                tracing::warn!(error = %e, app_id, "presence lookup failed; treating the user as offline");
                false
            }
        }
    }

    /// A session of `user_id` logged in on this node. The login is answered only once this
    /// succeeds, so a client told `login_ok` is online for every node.
    async fn session_started(&self, app_id: u32, user_id: &str, session_id: u64) -> Result<(), StoreError>;

    /// The session ended (logout, drop, heartbeat timeout, replacement).
    async fn session_ended(&self, session_id: u64) -> Result<(), StoreError>;
}
