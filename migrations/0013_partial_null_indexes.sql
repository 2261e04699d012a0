-- Issue 17: two indexes held a row for every NULL, one more b-tree write each on the database's
-- write thread for nothing any query reads. A webhook's parse-webhook receipt has no work item
-- yet (its work item is made from the call's answer), and a job has no finished_at until it
-- ends: each delivery wrote a NULL entry into both, and each run's end deleted the job's again.
-- Their queries compare the column to a value (`work_item_id = ?`, `finished_at >= ?`), which
-- SQLite reads as the index's condition, so they still use them (store tests read the plans).
DROP INDEX idx_plugin_events_work_item;
CREATE INDEX idx_plugin_events_work_item ON plugin_events (work_item_id)
  WHERE work_item_id IS NOT NULL;
DROP INDEX idx_jobs_finished;
CREATE INDEX idx_jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
