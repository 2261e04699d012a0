-- A run reads the earlier messages of its conversation (instance and session key), newest
-- first, back to the last `/clear`.
CREATE INDEX idx_work_items_session ON work_items (plugin_instance_id, session_key, created_at);
