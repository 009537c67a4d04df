//! `[cluster]`: how this node joins the others (NATS for broadcasts, the shared store for the rest).

use serde::Deserialize;

/// `[cluster]` in the configuration; absent means a single node.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// 1..=[`MAX_NODE_ID`], unique per node: it goes into every id the node makes and tags what
    /// it relays.
    pub node_id: u16,
    #[serde(default = "default_nats_url")]
    pub nats_url: String,
    /// Subjects are `{subject_prefix}.bcast`; nodes of one cluster share the prefix.
    #[serde(default = "default_prefix")]
    pub subject_prefix: String,
    /// How long this node's sessions count as online without a lease renewal: a node that is
    /// killed looks offline to the others after at most this long.
    #[serde(default = "default_lease_ms")]
    pub node_lease_ms: u64,
}

/// Largest node id: the id generator keeps 10 bits for it.
pub const MAX_NODE_ID: u16 = 1023;

fn default_lease_ms() -> u64 {
    15_000
}

fn default_nats_url() -> String {
    "nats://127.0.0.1:4222".into()
}

fn default_prefix() -> String {
    "herald".into()
}

impl ClusterConfig {
    /// `store_url` is the store every node must share.
    pub(super) fn validate(&self, store_url: &str) -> Result<(), super::ConfigError> {
        use super::invalid;
        if self.node_id == 0 || self.node_id > MAX_NODE_ID {
            return Err(invalid("cluster.node_id", format!("must be 1..={MAX_NODE_ID}")));
        }
        if !store_url.starts_with("postgres") {
            return Err(invalid(
                "store.url",
                "cluster mode needs a store every node shares: set store.url to postgres://...",
            ));
        }
        if self.node_lease_ms < 1000 {
            return Err(invalid("cluster.node_lease_ms", "must be at least 1000"));
        }
        if self.subject_prefix.is_empty()
            || self.subject_prefix.contains(|ch: char| ch.is_whitespace() || ch == '*' || ch == '>')
        {
            return Err(invalid(
                "cluster.subject_prefix",
                "must be a non-empty NATS subject without spaces or wildcards",
            ));
        }
        Ok(())
    }
}
