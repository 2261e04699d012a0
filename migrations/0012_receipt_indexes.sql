-- Issue 17: every plugin call leaves a receipt, and each index of plugin_events is one more
-- b-tree insert on the database's write thread. The listings' filters look for the rare rows (a
-- failure, an upgrade, a refusal); the common ones (an `ok` outcome; a hook, integration or tool
-- call) are most of a plugin's receipts and are read through idx_plugin_events_plugin. So the
-- filters' indexes hold only the rare rows: an `ok` hook call goes into three b-trees (the
-- table, idx_plugin_events_plugin, idx_plugin_events_work_item), not six. A query uses one of
-- these indexes only when it states the index's condition (`store::sqlite::events`). The
-- conditions are plain comparisons: `kind NOT IN (...)` made every insert build a temporary
-- table for the list.
DROP INDEX idx_plugin_events_status;
CREATE INDEX idx_plugin_events_status ON plugin_events (status, id) WHERE status <> 'ok';
DROP INDEX idx_plugin_events_plugin_status;
CREATE INDEX idx_plugin_events_plugin_status ON plugin_events (plugin_id, status, id)
  WHERE status <> 'ok';
DROP INDEX idx_plugin_events_plugin_kind;
CREATE INDEX idx_plugin_events_plugin_kind ON plugin_events (plugin_id, kind, id)
  WHERE kind <> 'hook' AND kind <> 'integration' AND kind <> 'tool';
