//! SQL of the skills aggregate.

use super::SqliteStore;
use crate::*;
use async_trait::async_trait;

#[async_trait]
impl SkillStore for SqliteStore {
    async fn upsert_skill(&self, s: &NewSkill<'_>) -> DbResult<()> {
        let now = now_ms();
        let mut conn = self.writer.get().await?;
        let mut tx = conn.begin().await?;
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

    async fn get_skill(&self, skill_id: &str) -> DbResult<Option<SkillRow>> {
        Ok(sqlx::query_as("SELECT * FROM skills WHERE skill_id = ?")
            .bind(skill_id)
            .fetch_optional(&mut *self.pool.get().await?)
            .await?)
    }

    async fn list_skills(&self) -> DbResult<Vec<SkillRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM skills ORDER BY name, skill_id")
                .fetch_all(&mut *self.pool.get().await?)
                .await?,
        )
    }

    async fn skills_of(&self, source: &str, plugin_id: Option<&str>) -> DbResult<Vec<SkillRow>> {
        let (source, plugin_id) = (source.to_string(), plugin_id.map(str::to_string));
        // A quick read (see `quick_reads`): every plugin put in service makes one.
        self.read(move |c| {
            c.prepare_cached(
                "SELECT * FROM skills WHERE source = ? AND COALESCE(plugin_id, '') = COALESCE(?, '')
                 ORDER BY name",
            )?
            .query_map(rusqlite::params![source, plugin_id], skill_row)?
            .collect()
        })
        .await
    }

    async fn skill_file_paths(&self, skill_id: &str) -> DbResult<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT path FROM skill_files WHERE skill_id = ? ORDER BY path")
                .bind(skill_id)
                .fetch_all(&mut *self.pool.get().await?)
                .await?,
        )
    }

    async fn delete_skill(&self, skill_id: &str) -> DbResult<bool> {
        let mut conn = self.writer.get().await?;
        let mut tx = conn.begin().await?;
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

    async fn set_skill_enabled(&self, skill_id: &str, enabled: bool) -> DbResult<bool> {
        Ok(
            sqlx::query("UPDATE skills SET enabled = ?, updated_at = ? WHERE skill_id = ?")
                .bind(enabled)
                .bind(now_ms())
                .bind(skill_id)
                .execute(&mut *self.writer.get().await?)
                .await?
                .rows_affected()
                == 1,
        )
    }

    async fn set_skill_assignment(
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
            .execute(&mut *self.writer.get().await?)
            .await?;
        } else {
            sqlx::query(
                "DELETE FROM skill_assignments WHERE skill_id = ? AND scope = ? AND scope_ref = ?",
            )
            .bind(skill_id)
            .bind(scope)
            .bind(scope_ref)
            .execute(&mut *self.writer.get().await?)
            .await?;
        }
        Ok(())
    }

    async fn skill_assignments(&self, skill_id: &str) -> DbResult<Vec<(String, String)>> {
        Ok(sqlx::query_as(
            "SELECT scope, scope_ref FROM skill_assignments WHERE skill_id = ? ORDER BY scope, scope_ref",
        )
        .bind(skill_id)
        .fetch_all(&mut *self.pool.get().await?)
        .await?)
    }

    async fn assigned_skills(&self, scopes: &[(&str, &str)]) -> DbResult<Vec<SkillRow>> {
        if scopes.is_empty() {
            return Ok(Vec::new());
        }
        // Every scope in one statement (a quick read: see [`super::quick_reads`]); a skill
        // assigned in several scopes is listed once.
        let mut sql = String::from(
            "SELECT s.* FROM skills s JOIN skill_assignments a ON a.skill_id = s.skill_id
             WHERE s.enabled = 1 AND (",
        );
        let mut binds = Vec::with_capacity(scopes.len() * 2);
        for (i, (scope, scope_ref)) in scopes.iter().enumerate() {
            if i > 0 {
                sql.push_str(" OR ");
            }
            sql.push_str("(a.scope = ? AND a.scope_ref = ?)");
            binds.push((*scope).to_owned());
            binds.push((*scope_ref).to_owned());
        }
        sql.push(')');
        let rows = self
            .read(move |c| {
                c.prepare_cached(&sql)?
                    .query_map(rusqlite::params_from_iter(&binds), skill_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        let mut out: Vec<SkillRow> = Vec::new();
        for r in rows {
            if !out.iter().any(|o| o.skill_id == r.skill_id) {
                out.push(r);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name).then(a.skill_id.cmp(&b.skill_id)));
        Ok(out)
    }
}

/// A `skills` row read by a rusqlite connection.
fn skill_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SkillRow> {
    Ok(SkillRow {
        skill_id: r.get("skill_id")?,
        name: r.get("name")?,
        description: r.get("description")?,
        tags_json: r.get("tags_json")?,
        source: r.get("source")?,
        plugin_id: r.get("plugin_id")?,
        plugin_version: r.get("plugin_version")?,
        content: r.get("content")?,
        checksum: r.get("checksum")?,
        enabled: r.get("enabled")?,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
    })
}
