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
-- A work item's status follows its job's from the moment a worker claims it: claiming a job
-- and ending a run are each one statement (and one round trip), and the two can never
-- disagree. A job queued again leaves its work item as it was.
CREATE TRIGGER jobs_status_to_work_item AFTER UPDATE OF status ON jobs
WHEN NEW.status IN ('running', 'done', 'failed') AND NEW.status <> OLD.status
BEGIN
  UPDATE work_items SET status = NEW.status, updated_at = NEW.updated_at
  WHERE id = NEW.work_item_id;
END;
