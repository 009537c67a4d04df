-- Herald's SQLite schema. Integers that are u64 in Rust (message ids, counts) are stored as
-- i64 bit patterns; app ids are u32 and fit as they are.

CREATE TABLE users (
    app_id        INTEGER NOT NULL,
    user_id       TEXT    NOT NULL,
    user_name     TEXT    NOT NULL,
    user_avatar   TEXT    NOT NULL DEFAULT '',
    extra         TEXT    NOT NULL DEFAULT '',
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (app_id, user_id)
) WITHOUT ROWID;

-- Replay protection: one row per SignatureNonce until it expires.
CREATE TABLE api_nonces (
    app_id        INTEGER NOT NULL,
    nonce         TEXT    NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    PRIMARY KEY (app_id, nonce)
) WITHOUT ROWID;

-- Lets the prune on every remember_nonce touch only the expired rows.
CREATE INDEX api_nonces_expiry ON api_nonces (expires_at_ms);

-- One row per accepted SendMessageToAllUsers call, kept for the 24 h rolling window and
-- pruned on each acquire, so the window survives restarts.
CREATE TABLE broadcast_calls (
    app_id INTEGER NOT NULL,
    at_ms  INTEGER NOT NULL
);

CREATE INDEX broadcast_calls_app_at ON broadcast_calls (app_id, at_ms);

CREATE TABLE broadcasts (
    app_id           INTEGER NOT NULL,
    message_id       INTEGER NOT NULL,
    from_user_id     TEXT    NOT NULL,
    message_type     INTEGER NOT NULL,
    sub_type         INTEGER NOT NULL,
    push_type        INTEGER NOT NULL,
    body_json        TEXT    NOT NULL,
    accepted_at_ms   INTEGER NOT NULL,
    online_delivered INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (app_id, message_id)
) WITHOUT ROWID;

-- The primary key is also the paging order of push jobs: (user_id, device_id) in byte order.
CREATE TABLE push_bindings (
    app_id        INTEGER NOT NULL,
    user_id       TEXT    NOT NULL,
    device_id     TEXT    NOT NULL,
    push_id       TEXT    NOT NULL,
    provider      TEXT    NOT NULL CHECK (provider IN ('fcm', 'apns', 'webhook')),
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (app_id, user_id, device_id)
) WITHOUT ROWID;
