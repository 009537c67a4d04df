-- Offline-push jobs: one row per broadcast with PushType 1 or 2, written in the same
-- transaction as the broadcast, so an accepted call always has its job. Workers walk the push
-- bindings in (user_id, device_id) order and persist the cursor after each page.

CREATE TABLE push_jobs (
    app_id           INTEGER NOT NULL,
    message_id       INTEGER NOT NULL,
    push_type        INTEGER NOT NULL,
    state            TEXT    NOT NULL CHECK (state IN ('pending', 'running', 'done')),
    -- The node working on the job and until when its claim holds (Unix ms).
    owner            TEXT,
    lease_until_ms   INTEGER NOT NULL DEFAULT 0,
    -- Last binding of the last finished page; NULL before the first page.
    cursor_user_id   TEXT,
    cursor_device_id TEXT,
    targeted         INTEGER NOT NULL DEFAULT 0,
    sent             INTEGER NOT NULL DEFAULT 0,
    failed           INTEGER NOT NULL DEFAULT 0,
    removed          INTEGER NOT NULL DEFAULT 0,
    skipped_online   INTEGER NOT NULL DEFAULT 0,
    created_at_ms    INTEGER NOT NULL,
    updated_at_ms    INTEGER NOT NULL,
    finished_at_ms   INTEGER,
    PRIMARY KEY (app_id, message_id)
) WITHOUT ROWID;

-- Claims look only at unfinished jobs, oldest first.
CREATE INDEX push_jobs_open ON push_jobs (app_id, created_at_ms) WHERE state <> 'done';

-- A device token belongs to one binding at a time: bind_push finds its other holders here.
CREATE INDEX push_bindings_token ON push_bindings (app_id, push_id);
