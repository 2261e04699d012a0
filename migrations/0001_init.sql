-- Nitejar plugin host: initial schema (spec §14 plus what the webhook flow needs).
-- Timestamps are milliseconds since the Unix epoch.

CREATE TABLE plugins (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  enabled INTEGER NOT NULL DEFAULT 0,
  trust_level TEXT NOT NULL DEFAULT 'unknown',      -- builtin|trusted|untrusted|unknown
  source_kind TEXT NOT NULL,                         -- builtin|npm|git|upload|local
  source_ref TEXT,
  current_version TEXT,
  current_checksum TEXT,
  current_install_path TEXT,
  manifest_json TEXT NOT NULL,
  config_json TEXT,
  last_load_error TEXT,
  last_loaded_at INTEGER,
  installed_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);

CREATE TABLE plugin_versions (
  plugin_id TEXT NOT NULL,
  version TEXT NOT NULL,
  checksum TEXT NOT NULL,                            -- sha256 hex of the component bytes
  install_path TEXT NOT NULL,
  manifest_json TEXT NOT NULL,
  api_version TEXT NOT NULL,                         -- WIT package version the component targets
  signature_json TEXT,
  installed_at INTEGER NOT NULL,
  PRIMARY KEY (plugin_id, version),
  FOREIGN KEY (plugin_id) REFERENCES plugins(id) ON DELETE CASCADE
);

-- One row per declared capability; acknowledged = the operator's grant.
CREATE TABLE plugin_disclosure_acks (
  plugin_id TEXT NOT NULL,
  permission TEXT NOT NULL,                          -- network:<rule> | secret:<key> | fs:read:<dir> | fs:write:<dir>
  scope TEXT NOT NULL DEFAULT '',
  acknowledged INTEGER NOT NULL DEFAULT 0,
  acknowledged_at INTEGER,
  PRIMARY KEY (plugin_id, permission, scope),
  FOREIGN KEY (plugin_id) REFERENCES plugins(id) ON DELETE CASCADE
);
CREATE INDEX idx_plugin_disclosure_acks_plugin_ack ON plugin_disclosure_acks (plugin_id, acknowledged);

-- Receipts. No foreign key on purpose: receipts are the audit trail and outlive the plugin row
-- (refused installs of unknown plugins are receipted too).
CREATE TABLE plugin_events (
  id TEXT PRIMARY KEY,                               -- UUIDv7: time-ordered, used as the cursor
  plugin_id TEXT NOT NULL,
  plugin_version TEXT,
  kind TEXT NOT NULL,                                -- install|enable|disable|hook|integration|permission_denied|log|...
  status TEXT NOT NULL,                              -- ok|error|timeout|blocked|budget_exceeded
  work_item_id TEXT,
  job_id TEXT,
  hook_name TEXT,
  duration_ms INTEGER,
  execution_mode TEXT NOT NULL DEFAULT 'wasm_sandbox',
  detail_json TEXT,
  created_at INTEGER NOT NULL
);
CREATE INDEX idx_plugin_events_plugin ON plugin_events (plugin_id, id);
CREATE INDEX idx_plugin_events_work_item ON plugin_events (work_item_id);

-- The installed artifact, so boot can re-materialize missing files and verify checksums.
CREATE TABLE plugin_artifacts (
  plugin_id TEXT NOT NULL,
  version TEXT NOT NULL,
  checksum TEXT NOT NULL,
  kind TEXT NOT NULL,                                -- wasm
  bytes BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (plugin_id, version),
  FOREIGN KEY (plugin_id) REFERENCES plugins(id) ON DELETE CASCADE
);

-- Operator-provided secret values, AES-256-GCM encrypted.
CREATE TABLE plugin_secrets (
  plugin_id TEXT NOT NULL,
  key TEXT NOT NULL,
  value_encrypted TEXT NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (plugin_id, key)
);

-- Plugin data (the kv import). Removed by uninstall with purge-data.
CREATE TABLE plugin_kv (
  plugin_id TEXT NOT NULL,
  key TEXT NOT NULL,
  value BLOB NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (plugin_id, key)
);

-- Integration instances (configured connections). Sensitive config fields are stored as
-- AES-256-GCM ciphertext strings inside config_json, never as plaintext.
CREATE TABLE plugin_instances (
  id TEXT PRIMARY KEY,
  plugin_id TEXT NOT NULL,
  type TEXT NOT NULL,
  name TEXT NOT NULL,
  config_json TEXT NOT NULL,
  enabled INTEGER NOT NULL DEFAULT 1,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);

CREATE TABLE work_items (
  id TEXT PRIMARY KEY,
  plugin_instance_id TEXT NOT NULL,
  integration_type TEXT NOT NULL,
  title TEXT NOT NULL,
  text TEXT NOT NULL,
  session_key TEXT NOT NULL,
  source_ref TEXT NOT NULL,
  sender_json TEXT,
  command TEXT,
  payload_json TEXT NOT NULL,
  response_context_json TEXT,
  status TEXT NOT NULL DEFAULT 'pending',
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX idx_work_items_instance ON work_items (plugin_instance_id, created_at);

-- Webhook deduplication, scoped per instance; the primary key makes it atomic.
CREATE TABLE idempotency_keys (
  plugin_instance_id TEXT NOT NULL,
  key TEXT NOT NULL,
  work_item_id TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (plugin_instance_id, key)
);
