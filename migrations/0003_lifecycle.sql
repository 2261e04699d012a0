-- Upgrades that wait for the operator's consent to added permissions: the staged version is
-- installed beside the active one (plugin_versions, artifact, files) and named here until the
-- operator approves or discards it.
ALTER TABLE plugins ADD COLUMN pending_version TEXT;

-- Set when crash-loop protection disabled the plugin (what happened, when); cleared when the
-- operator enables it again.
ALTER TABLE plugins ADD COLUMN alert_json TEXT;
