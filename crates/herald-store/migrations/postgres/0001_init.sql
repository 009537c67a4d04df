-- Herald's PostgreSQL schema; the same tables as migrations/sqlite, for a database several
-- Herald nodes share. Integers that are u64 in Rust (message ids, counts) are stored as their
-- i64 bit patterns in BIGINT; u32 values (app ids, message types) fit BIGINT as they are.
--
-- Text keys are COLLATE "C": comparisons and ORDER BY are then byte order, the order of Rust's
-- `str`, whatever the database's default locale. Push jobs page through bindings in that order.

CREATE TABLE users (
    app_id        BIGINT NOT NULL,
    user_id       TEXT   COLLATE "C" NOT NULL,
    user_name     TEXT   NOT NULL,
    user_avatar   TEXT   NOT NULL DEFAULT '',
    extra         TEXT   NOT NULL DEFAULT '',
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (app_id, user_id)
);

-- Replay protection: one row per SignatureNonce until it expires.
CREATE TABLE api_nonces (
    app_id        BIGINT NOT NULL,
    nonce         TEXT   COLLATE "C" NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    PRIMARY KEY (app_id, nonce)
);

-- Lets the prune on every remember_nonce touch only the expired rows.
CREATE INDEX api_nonces_expiry ON api_nonces (expires_at_ms);

-- One row per accepted SendMessageToAllUsers call, kept for the 24 h rolling window and
-- pruned on each acquire, so the window survives restarts and is shared by every node.
-- Acquires of one app are serialized by a transaction-scoped advisory lock, not by this table.
CREATE TABLE broadcast_calls (
    app_id BIGINT NOT NULL,
    at_ms  BIGINT NOT NULL
);

CREATE INDEX broadcast_calls_app_at ON broadcast_calls (app_id, at_ms);

CREATE TABLE broadcasts (
    app_id           BIGINT   NOT NULL,
    message_id       BIGINT   NOT NULL,
    from_user_id     TEXT     NOT NULL,
    message_type     BIGINT   NOT NULL,
    sub_type         BIGINT   NOT NULL,
    push_type        SMALLINT NOT NULL,
    body_json        TEXT     NOT NULL,
    accepted_at_ms   BIGINT   NOT NULL,
    online_delivered BIGINT   NOT NULL DEFAULT 0,
    PRIMARY KEY (app_id, message_id)
);

-- The primary key is also the paging order of push jobs: (user_id, device_id) in byte order.
CREATE TABLE push_bindings (
    app_id        BIGINT NOT NULL,
    user_id       TEXT   COLLATE "C" NOT NULL,
    device_id     TEXT   COLLATE "C" NOT NULL,
    push_id       TEXT   COLLATE "C" NOT NULL,
    provider      TEXT   NOT NULL CHECK (provider IN ('fcm', 'apns', 'webhook')),
    updated_at_ms BIGINT NOT NULL,
    PRIMARY KEY (app_id, user_id, device_id)
);
