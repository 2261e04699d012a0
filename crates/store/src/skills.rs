//! The skills aggregate: skills from the repository, plugins and the API, their files and their
//! assignments to agents, instances and integration types.

use crate::DbResult;
use async_trait::async_trait;
use serde::Serialize;
use sqlx::FromRow;

/// A `skills` row.
#[derive(Debug, Clone, FromRow, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SkillRow {
    /// Stable id: `repo:<name>`, `plugin:<plugin-id>:<skill-id>`, `admin:<uuid>`.
    pub skill_id: String,
    /// Name (the alias `use_skill` accepts).
    pub name: String,
    /// One-line description.
    pub description: String,
    /// Tags, as a JSON array.
    #[serde(skip)]
    pub tags_json: String,
    /// `repo`, `plugin` or `admin`.
    pub source: String,
    /// Owning plugin (plugin skills).
    pub plugin_id: Option<String>,
    /// Owning plugin version (plugin skills).
    pub plugin_version: Option<String>,
    /// Markdown content.
    pub content: String,
    /// sha256 of content and files.
    pub checksum: String,
    /// Whether it is offered at all.
    pub enabled: bool,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

/// A skill to store (insert or replace, keeping `enabled` when `keep_enabled` and the row exists).
#[derive(Debug, Clone)]
pub struct NewSkill<'a> {
    /// Stable id.
    pub skill_id: &'a str,
    /// Name.
    pub name: &'a str,
    /// Description.
    pub description: &'a str,
    /// Tags.
    pub tags: &'a [String],
    /// Source.
    pub source: &'a str,
    /// Owning plugin.
    pub plugin_id: Option<&'a str>,
    /// Owning plugin version.
    pub plugin_version: Option<&'a str>,
    /// Content.
    pub content: &'a str,
    /// Supporting files (relative path, bytes).
    pub files: &'a [(String, Vec<u8>)],
    /// Enabled flag for a new row.
    pub enabled: bool,
}

impl NewSkill<'_> {
    /// sha256 over content and files (path and bytes).
    pub fn checksum(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(self.content.as_bytes());
        for (p, b) in self.files {
            h.update([0]);
            h.update(p.as_bytes());
            h.update([0]);
            h.update(b);
        }
        hex::encode(h.finalize())
    }
}

/// Skills with their files and assignments.
#[async_trait]
pub trait SkillStore: Send + Sync {
    /// Inserts or updates a skill and replaces its files. An existing row keeps its `enabled`
    /// flag (the operator's choice survives re-registration).
    async fn upsert_skill(&self, s: &NewSkill<'_>) -> DbResult<()>;

    /// One skill.
    async fn get_skill(&self, skill_id: &str) -> DbResult<Option<SkillRow>>;

    /// Every skill, by name then id.
    async fn list_skills(&self) -> DbResult<Vec<SkillRow>>;

    /// Skills of one source (and plugin).
    async fn skills_of(&self, source: &str, plugin_id: Option<&str>) -> DbResult<Vec<SkillRow>>;

    /// Paths of a skill's files.
    async fn skill_file_paths(&self, skill_id: &str) -> DbResult<Vec<String>>;

    /// Deletes a skill with its files and assignments; returns whether it existed.
    async fn delete_skill(&self, skill_id: &str) -> DbResult<bool>;

    /// Enables or disables a skill.
    async fn set_skill_enabled(&self, skill_id: &str, enabled: bool) -> DbResult<bool>;

    /// Assigns (or unassigns) a skill to a scope.
    async fn set_skill_assignment(
        &self,
        skill_id: &str,
        scope: &str,
        scope_ref: &str,
        assigned: bool,
    ) -> DbResult<()>;

    /// Assignments of a skill as (scope, ref).
    async fn skill_assignments(&self, skill_id: &str) -> DbResult<Vec<(String, String)>>;

    /// Enabled skills assigned to any of `scopes` ((scope, ref) pairs), by name then id.
    async fn assigned_skills(&self, scopes: &[(&str, &str)]) -> DbResult<Vec<SkillRow>>;
}
