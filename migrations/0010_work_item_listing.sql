-- The work item listing of the admin UI and GET /api/admin/work-items: newest first across
-- every instance, filtered by status, paged by (created_at, id).
CREATE INDEX idx_work_items_recent ON work_items (created_at, id);
CREATE INDEX idx_work_items_status ON work_items (status, created_at, id);
-- The overview's chart (runs finished per minute) and its recent failures.
CREATE INDEX idx_jobs_finished ON jobs (finished_at);
CREATE INDEX idx_plugin_events_status ON plugin_events (status, id);
