-- Cluster presence: which node holds which logged-in session, and each node's lease.
-- A session counts as online only while its node's lease is live, so a node that dies
-- takes its sessions' presence with it once the lease lapses.
CREATE TABLE presence_sessions (
    session_id  BIGINT  PRIMARY KEY,       -- u64 bit-cast to i64
    app_id      BIGINT  NOT NULL,
    user_id     TEXT    COLLATE "C" NOT NULL,
    node_id     INTEGER NOT NULL,          -- u16
    started_ms  BIGINT  NOT NULL
);
CREATE INDEX presence_sessions_user ON presence_sessions (app_id, user_id);
CREATE INDEX presence_sessions_node ON presence_sessions (node_id);

CREATE TABLE node_leases (
    node_id     INTEGER PRIMARY KEY,
    until_ms    BIGINT  NOT NULL
);
