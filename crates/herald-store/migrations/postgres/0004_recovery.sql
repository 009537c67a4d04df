-- Missed-broadcast recovery: sessions that got a broadcast replayed on reconnect are counted
-- apart from live deliveries, and a starting node loads its recovery window by accept time.
ALTER TABLE broadcasts ADD COLUMN recovered_delivered BIGINT NOT NULL DEFAULT 0;
CREATE INDEX broadcasts_app_accepted ON broadcasts (app_id, accepted_at_ms);
