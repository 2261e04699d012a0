-- The operator's overrides of a plugin's resource budgets (today: instructions per call, the
-- wasmtime fuel budget). No row, or NULL: the manifest's `limits`, else the host's defaults.
CREATE TABLE plugin_limits (
  plugin_id TEXT PRIMARY KEY,
  fuel_per_call INTEGER,
  updated_at INTEGER NOT NULL
);
