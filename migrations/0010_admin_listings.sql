-- Listings of the admin UI and API.
-- Work items newest first across every instance, filtered by status, paged by (created_at, id).
CREATE INDEX idx_work_items_recent ON work_items (created_at, id);
CREATE INDEX idx_work_items_status ON work_items (status, created_at, id);
-- The overview's chart (runs finished per minute).
CREATE INDEX idx_jobs_finished ON jobs (finished_at);
-- A plugin's receipts filtered by kind or by outcome, newest first (a rare kind such as
-- `upgrade` or outcome such as `timeout` is found without reading the plugin's other receipts),
-- and the recent failures of every plugin.
CREATE INDEX idx_plugin_events_plugin_kind ON plugin_events (plugin_id, kind, id);
CREATE INDEX idx_plugin_events_plugin_status ON plugin_events (plugin_id, status, id);
CREATE INDEX idx_plugin_events_status ON plugin_events (status, id);
