-- Issue 17: indexes for the paths every run takes.
-- A run reads its session's recent turns and each turn's delivered reply: the reply lookup was a
-- scan of every delivery per turn (tens of ms once a few thousand replies are stored), and the
-- turns were sorted past the index on their id.
CREATE INDEX idx_deliveries_work_item ON deliveries (work_item_id);
DROP INDEX idx_work_items_session;
CREATE INDEX idx_work_items_session ON work_items (plugin_instance_id, session_key, created_at, id);
-- Workers claim the oldest queued job: the index now gives the whole order (created_at, id).
DROP INDEX idx_jobs_status;
CREATE INDEX idx_jobs_status ON jobs (status, created_at, id);
