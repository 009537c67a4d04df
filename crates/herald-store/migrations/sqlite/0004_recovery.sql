-- Missed-broadcast recovery: sessions that got a broadcast replayed on reconnect are counted
-- apart from live deliveries, and a restarted node reloads its recovery window by accept time.
ALTER TABLE broadcasts ADD COLUMN recovered_delivered INTEGER NOT NULL DEFAULT 0;
CREATE INDEX broadcasts_app_accepted ON broadcasts (app_id, accepted_at_ms);
