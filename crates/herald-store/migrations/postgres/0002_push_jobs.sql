-- Offline-push jobs: one row per broadcast with PushType 1 or 2, written in the same
-- statement as the broadcast, so an accepted call always has its job. Workers on any node
-- claim a job (FOR UPDATE SKIP LOCKED) with a lease, walk the push bindings in
-- (user_id, device_id) order and persist the cursor after each page; when a node dies its
-- lease runs out and another node resumes at the cursor.

CREATE TABLE push_jobs (
    app_id           BIGINT   NOT NULL,
    message_id       BIGINT   NOT NULL,
    push_type        SMALLINT NOT NULL,
    state            TEXT     NOT NULL CHECK (state IN ('pending', 'running', 'done')),
    -- The node working on the job and until when its claim holds (Unix ms).
    owner            TEXT,
    lease_until_ms   BIGINT   NOT NULL DEFAULT 0,
    -- Last binding of the last finished page; NULL before the first page.
    cursor_user_id   TEXT     COLLATE "C",
    cursor_device_id TEXT     COLLATE "C",
    targeted         BIGINT   NOT NULL DEFAULT 0,
    sent             BIGINT   NOT NULL DEFAULT 0,
    failed           BIGINT   NOT NULL DEFAULT 0,
    removed          BIGINT   NOT NULL DEFAULT 0,
    skipped_online   BIGINT   NOT NULL DEFAULT 0,
    created_at_ms    BIGINT   NOT NULL,
    updated_at_ms    BIGINT   NOT NULL,
    finished_at_ms   BIGINT,
    PRIMARY KEY (app_id, message_id)
);

-- Claims look only at unfinished jobs, oldest first.
CREATE INDEX push_jobs_open ON push_jobs (app_id, created_at_ms, message_id) WHERE state <> 'done';

-- A device token belongs to one binding at a time: bind_push finds its other holders here.
CREATE INDEX push_bindings_token ON push_bindings (app_id, push_id);
