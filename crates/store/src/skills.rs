//! SQL of skills: the index, supporting files and assignments (migration `0004_skills.sql`).

use super::{Db, DbResult, now_ms};
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

impl Db {
    /// Inserts or updates a skill and replaces its files. An existing row keeps its `enabled`
    /// flag (the operator's choice survives re-registration).
    pub async fn upsert_skill(&self, s: &NewSkill<'_>) -> DbResult<()> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO skills (skill_id, name, description, tags_json, source, plugin_id, plugin_version,
               content, checksum, enabled, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(skill_id) DO UPDATE SET name = excluded.name, description = excluded.description,
               tags_json = excluded.tags_json, plugin_version = excluded.plugin_version,
               content = excluded.content, checksum = excluded.checksum, updated_at = excluded.updated_at",
        )
        .bind(s.skill_id)
        .bind(s.name)
        .bind(s.description)
        .bind(serde_json::to_string(s.tags).unwrap_or_else(|_| "[]".into()))
        .bind(s.source)
        .bind(s.plugin_id)
        .bind(s.plugin_version)
        .bind(s.content)
        .bind(s.checksum())
        .bind(s.enabled)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM skill_files WHERE skill_id = ?")
            .bind(s.skill_id)
            .execute(&mut *tx)
            .await?;
        for (path, bytes) in s.files {
            sqlx::query("INSERT INTO skill_files (skill_id, path, content) VALUES (?, ?, ?)")
                .bind(s.skill_id)
                .bind(path)
                .bind(bytes)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// One skill.
    pub async fn get_skill(&self, skill_id: &str) -> DbResult<Option<SkillRow>> {
        Ok(sqlx::query_as("SELECT * FROM skills WHERE skill_id = ?")
            .bind(skill_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Every skill, by name then id.
    pub async fn list_skills(&self) -> DbResult<Vec<SkillRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM skills ORDER BY name, skill_id")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Skills of one source (and plugin).
    pub async fn skills_of(
        &self,
        source: &str,
        plugin_id: Option<&str>,
    ) -> DbResult<Vec<SkillRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM skills WHERE source = ? AND COALESCE(plugin_id, '') = COALESCE(?, '')
             ORDER BY name",
        )
        .bind(source)
        .bind(plugin_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Paths of a skill's files.
    pub async fn skill_file_paths(&self, skill_id: &str) -> DbResult<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT path FROM skill_files WHERE skill_id = ? ORDER BY path")
                .bind(skill_id)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Deletes a skill with its files and assignments; returns whether it existed.
    pub async fn delete_skill(&self, skill_id: &str) -> DbResult<bool> {
        let mut tx = self.pool.begin().await?;
        for table in ["skill_files", "skill_assignments"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE skill_id = ?"))
                .bind(skill_id)
                .execute(&mut *tx)
                .await?;
        }
        let r = sqlx::query("DELETE FROM skills WHERE skill_id = ?")
            .bind(skill_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    /// Enables or disables a skill.
    pub async fn set_skill_enabled(&self, skill_id: &str, enabled: bool) -> DbResult<bool> {
        Ok(
            sqlx::query("UPDATE skills SET enabled = ?, updated_at = ? WHERE skill_id = ?")
                .bind(enabled)
                .bind(now_ms())
                .bind(skill_id)
                .execute(&self.pool)
                .await?
                .rows_affected()
                == 1,
        )
    }

    /// Assigns (or unassigns) a skill to a scope.
    pub async fn set_skill_assignment(
        &self,
        skill_id: &str,
        scope: &str,
        scope_ref: &str,
        assigned: bool,
    ) -> DbResult<()> {
        if assigned {
            sqlx::query(
                "INSERT OR IGNORE INTO skill_assignments (skill_id, scope, scope_ref, created_at)
                 VALUES (?, ?, ?, ?)",
            )
            .bind(skill_id)
            .bind(scope)
            .bind(scope_ref)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        } else {
            sqlx::query(
                "DELETE FROM skill_assignments WHERE skill_id = ? AND scope = ? AND scope_ref = ?",
            )
            .bind(skill_id)
            .bind(scope)
            .bind(scope_ref)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// Assignments of a skill as (scope, ref).
    pub async fn skill_assignments(&self, skill_id: &str) -> DbResult<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT scope, scope_ref FROM skill_assignments WHERE skill_id = ? ORDER BY scope, scope_ref",
        )
        .bind(skill_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Enabled skills assigned to any of `scopes` ((scope, ref) pairs), by name then id.
    pub async fn assigned_skills(&self, scopes: &[(&str, &str)]) -> DbResult<Vec<SkillRow>> {
        let mut out: Vec<SkillRow> = Vec::new();
        for (scope, scope_ref) in scopes {
            let rows: Vec<SkillRow> = sqlx::query_as(
                "SELECT s.* FROM skills s JOIN skill_assignments a ON a.skill_id = s.skill_id
                 WHERE s.enabled = 1 AND a.scope = ? AND a.scope_ref = ?",
            )
            .bind(scope)
            .bind(scope_ref)
            .fetch_all(&self.pool)
            .await?;
            for r in rows {
                if !out.iter().any(|o| o.skill_id == r.skill_id) {
                    out.push(r);
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.skill_id.cmp(&b.skill_id)));
        Ok(out)
    }
}
