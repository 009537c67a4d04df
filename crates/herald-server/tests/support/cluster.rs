//! [`Cluster`]: nodes in this process sharing one fresh PostgreSQL database and one NATS, with a
//! subject prefix of their own so that tests running at the same time never hear each other.
//! herald-testkit finds the PostgreSQL and the NATS, or starts private ones for this process.

use super::server::{Server, ServerBuilder};
use herald_testkit::TestDatabase;

pub struct Cluster {
    template: ServerBuilder,
    nats_url: String,
    prefix: String,
    db: TestDatabase,
}

impl Cluster {
    /// A cluster whose nodes are configured like `template` (apps, `[gateway]`, extra tables);
    /// each runs on the wall clock, with the cluster's store and `[cluster]` table. No node
    /// runs yet: [`Cluster::node`] starts them.
    pub async fn new(template: ServerBuilder) -> Cluster {
        let (_, db) = herald_testkit::test_database().await;
        Cluster {
            template,
            nats_url: herald_testkit::nats_url().await,
            prefix: format!("herald-test-{}", rand::random::<u64>()),
            db,
        }
    }

    /// Starts node `node_id` (1..=1023, unique in the cluster).
    pub async fn node(&self, node_id: u16) -> Server {
        let table =
            format!("node_id = {node_id}\nnats_url = \"{}\"\nsubject_prefix = \"{}\"", self.nats_url, self.prefix);
        self.template.clone().wall_clock().store_url(self.db.url()).cluster(table).start().await
    }

    /// Starts nodes 1 to `n`.
    pub async fn nodes(&self, n: u16) -> Vec<Server> {
        let mut nodes = Vec::new();
        for node_id in 1..=n {
            nodes.push(self.node(node_id).await);
        }
        nodes
    }

    /// The shared database's URL.
    pub fn store_url(&self) -> &str {
        self.db.url()
    }
}
