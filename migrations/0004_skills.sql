-- Skills (spec §13, §14.5): one index for repository, plugin and admin skills.
-- skill_id is stable: repo:<name>, plugin:<plugin-id>:<skill-id>, admin:<uuid>.
CREATE TABLE skills (
  skill_id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  tags_json TEXT NOT NULL DEFAULT '[]',
  source TEXT NOT NULL,                              -- repo | plugin | admin
  plugin_id TEXT,
  plugin_version TEXT,
  content TEXT NOT NULL,
  checksum TEXT NOT NULL,                            -- sha256 hex of content and files
  enabled INTEGER NOT NULL DEFAULT 1,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX idx_skills_source_name ON skills (source, COALESCE(plugin_id, ''), name);
CREATE INDEX idx_skills_name ON skills (name);

-- Supporting files of a skill (repository skills: the files beside SKILL.md).
CREATE TABLE skill_files (
  skill_id TEXT NOT NULL,
  path TEXT NOT NULL,
  content BLOB NOT NULL,
  PRIMARY KEY (skill_id, path)
);

-- Who gets a skill: scope global (ref ''), team (ref = team name), agent (ref = agent id),
-- integration_type (ref = type, e.g. telegram).
CREATE TABLE skill_assignments (
  skill_id TEXT NOT NULL,
  scope TEXT NOT NULL,
  scope_ref TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  PRIMARY KEY (skill_id, scope, scope_ref)
);
CREATE INDEX idx_skill_assignments_scope ON skill_assignments (scope, scope_ref);

-- Agents belong to an optional team (skill scope `team`).
ALTER TABLE agents ADD COLUMN team TEXT;
