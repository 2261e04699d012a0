-- Agent runs (issue 4): agents, their assignment to integration instances, durable jobs, the
-- steps of each run, deliveries, and the operator's hook overrides.
-- Timestamps are milliseconds since the Unix epoch.

-- Operator changes to a plugin's hook registrations (priority, failPolicy, timeoutMs, enabled).
CREATE TABLE plugin_hook_overrides (
  plugin_id TEXT NOT NULL,
  hook_name TEXT NOT NULL,
  override_json TEXT NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (plugin_id, hook_name)
);

CREATE TABLE agents (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  system_prompt TEXT NOT NULL,
  model_json TEXT NOT NULL,                          -- {provider, model, temperature, maxTokens, maxTurns}
  is_default INTEGER NOT NULL DEFAULT 0,             -- answers instances without an assignment
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);

-- Which agent answers an integration instance (at most one per instance).
CREATE TABLE agent_assignments (
  plugin_instance_id TEXT PRIMARY KEY,
  agent_id TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  FOREIGN KEY (agent_id) REFERENCES agents(id) ON DELETE CASCADE
);

-- One job per work item: claimed by one worker at a time; a job left `running` by a stopped
-- process is re-queued at boot (attempts counts every start).
CREATE TABLE jobs (
  id TEXT PRIMARY KEY,
  work_item_id TEXT NOT NULL UNIQUE,
  agent_id TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'queued',             -- queued|running|done|failed
  attempts INTEGER NOT NULL DEFAULT 0,
  claimed_by TEXT,
  last_error TEXT,
  result_json TEXT,                                  -- {finalResponse, hitLimit, turns, blocked}
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  started_at INTEGER,
  finished_at INTEGER
);
CREATE INDEX idx_jobs_status ON jobs (status, created_at);

-- What happened in a run, in order: prompts, model calls, tool calls, the final response.
CREATE TABLE run_steps (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  turn INTEGER NOT NULL,
  kind TEXT NOT NULL,                                -- prompt|model_call|tool_call|final|note
  detail_json TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX idx_run_steps_job ON run_steps (job_id, id);

-- The reply of a job. `delivered` is final: a job that finds it never posts again; the
-- idempotency key (the job id) is passed to the platform for the crash window in between.
CREATE TABLE deliveries (
  job_id TEXT PRIMARY KEY,
  work_item_id TEXT NOT NULL,
  status TEXT NOT NULL,                              -- pending|delivered|failed|blocked
  content TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  external_id TEXT,
  error TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
