//! Reading a Nitejar database (the TypeScript product this host replaces), for
//! `nitejar import nitejar`. Read only: the source is opened read-only and nothing in it is
//! changed. The tables and their columns are those of `../shared/spec/nitejar-data.md`; a table
//! an older Nitejar did not have reads as empty. Timestamps there are Unix seconds; the rows
//! returned here carry them as they are.

use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{Row, SqliteConnection};
use std::collections::HashSet;
use std::path::Path;

/// Why a source cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source is not something this build can read (a PostgreSQL URL for now).
    #[error("{0}")]
    Unsupported(String),
    /// The file is missing, not SQLite, or not a Nitejar database.
    #[error("{0}")]
    Unreadable(String),
    /// A query on the source failed.
    #[error("reading the Nitejar database failed: {0}")]
    Query(#[from] sqlx::Error),
}

/// A `plugin_instances` row.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceInstance {
    /// Instance id.
    pub id: String,
    /// `builtin.telegram`, `builtin.github`, or a third-party plugin's id.
    pub plugin_id: String,
    /// Display name.
    pub name: String,
    /// Config JSON as stored (sensitive fields `enc:`-prefixed, or plaintext).
    pub config_json: String,
    /// Whether it was enabled.
    pub enabled: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

impl SourceInstance {
    /// The integration type: Nitejar does not store it; it is `plugin_id` without a leading
    /// `builtin.` or `legacy.`, otherwise its last dot-separated segment.
    pub fn integration_type(&self) -> String {
        integration_type_of(&self.plugin_id)
    }
}

/// Nitejar's rule for an instance's type from its plugin id.
pub fn integration_type_of(plugin_id: &str) -> String {
    for prefix in ["builtin.", "legacy."] {
        if let Some(rest) = plugin_id.strip_prefix(prefix) {
            return rest.to_string();
        }
    }
    plugin_id
        .rsplit('.')
        .next()
        .unwrap_or(plugin_id)
        .to_string()
}

/// An `agent_plugin_instances` row.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceAssignment {
    /// Agent id there.
    pub agent_id: String,
    /// Instance id.
    pub plugin_instance_id: String,
}

/// A `work_items` row.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceWorkItem {
    /// Id.
    pub id: String,
    /// Instance it came from.
    pub plugin_instance_id: String,
    /// Session key.
    pub session_key: String,
    /// Platform reference.
    pub source_ref: String,
    /// `NEW`, `DONE`, `FAILED`, ...
    pub status: String,
    /// Title.
    pub title: String,
    /// Payload JSON.
    pub payload: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// An `idempotency_keys` row (global there: not per instance).
#[derive(Debug, Clone, PartialEq)]
pub struct SourceKey {
    /// The key (`telegram:<update_id>`, `github:<delivery>`, ...).
    pub key: String,
    /// The work item it created.
    pub work_item_id: String,
}

/// A `plugins` row.
#[derive(Debug, Clone, PartialEq)]
pub struct SourcePlugin {
    /// Plugin id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Whether it was enabled.
    pub enabled: bool,
    /// `builtin`, `untrusted`, `unknown`.
    pub trust_level: String,
    /// `builtin`, `npm`, `git`, `upload`, `local`.
    pub source_kind: String,
    /// Package name, URL or path.
    pub source_ref: Option<String>,
    /// Installed version.
    pub current_version: Option<String>,
}

/// A `skills` row with its files.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSkill {
    /// Id there.
    pub id: String,
    /// Slug (`^[a-z][a-z0-9-]*$`, unique there).
    pub slug: String,
    /// Description.
    pub description: String,
    /// `admin` or `plugin`.
    pub source_kind: String,
    /// The plugin it came from (plugin skills).
    pub plugin_id: Option<String>,
    /// Markdown content.
    pub content: String,
    /// Whether it was enabled.
    pub enabled: bool,
    /// Tags (from `tags_json`; not a list reads as none).
    pub tags: Vec<String>,
    /// Files as (relative path, content).
    pub files: Vec<(String, String)>,
}

/// A `skill_assignments` row.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSkillAssignment {
    /// Id there.
    pub id: String,
    /// The skill.
    pub skill_id: String,
    /// `global`, `team` or `agent`.
    pub scope: String,
    /// Team or agent id (none for global).
    pub scope_id: Option<String>,
    /// Whether it was enabled.
    pub enabled: bool,
}

/// An open Nitejar database.
pub struct NitejarSource {
    pool: SqlitePool,
    tables: HashSet<String>,
}

impl NitejarSource {
    /// Opens `from`: a SQLite file path (read only). A `postgres://` URL is refused until this
    /// host has its PostgreSQL backend.
    pub async fn open(from: &str) -> Result<NitejarSource, SourceError> {
        let lower = from.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return Err(SourceError::Unsupported(
                "importing from PostgreSQL needs this host's PostgreSQL backend, which is not \
                 built yet; export the database to SQLite or import from Nitejar's SQLite file"
                    .into(),
            ));
        }
        let path = Path::new(from.strip_prefix("sqlite://").unwrap_or(from));
        if !path.is_file() {
            return Err(SourceError::Unreadable(format!(
                "{} is not a file on the server's machine",
                path.display()
            )));
        }
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .create_if_missing(false);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await
            .map_err(|e| {
                SourceError::Unreadable(format!("cannot open {} as SQLite: {e}", path.display()))
            })?;
        let names: Vec<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                .fetch_all(&pool)
                .await
                .map_err(|e| {
                    SourceError::Unreadable(format!(
                        "{} is not a SQLite database: {e}",
                        path.display()
                    ))
                })?;
        let tables: HashSet<String> = names.into_iter().collect();
        if !tables.contains("plugin_instances") {
            return Err(SourceError::Unreadable(format!(
                "{} is not a Nitejar database (it has no plugin_instances table)",
                path.display()
            )));
        }
        Ok(NitejarSource { pool, tables })
    }

    /// Whether the source has `table`.
    pub fn has_table(&self, table: &str) -> bool {
        self.tables.contains(table)
    }

    async fn conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>, SourceError> {
        Ok(self.pool.acquire().await?)
    }

    /// Every integration instance, by id.
    pub async fn instances(&self) -> Result<Vec<SourceInstance>, SourceError> {
        let mut conn = self.conn().await?;
        let rows = query_all(
            &mut conn,
            "SELECT id, plugin_id, name, config_json, enabled, created_at, updated_at
             FROM plugin_instances ORDER BY id",
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SourceInstance {
                    id: r.try_get("id")?,
                    plugin_id: r.try_get("plugin_id")?,
                    name: r.try_get("name")?,
                    config_json: r.try_get("config_json")?,
                    enabled: r.try_get::<i64, _>("enabled")? != 0,
                    created_at: r.try_get::<Option<i64>, _>("created_at")?.unwrap_or(0),
                    updated_at: r.try_get::<Option<i64>, _>("updated_at")?.unwrap_or(0),
                })
            })
            .collect()
    }

    /// Agent assignments of instances.
    pub async fn assignments(&self) -> Result<Vec<SourceAssignment>, SourceError> {
        if !self.has_table("agent_plugin_instances") {
            return Ok(vec![]);
        }
        let mut conn = self.conn().await?;
        let rows = query_all(
            &mut conn,
            "SELECT agent_id, plugin_instance_id FROM agent_plugin_instances
             ORDER BY plugin_instance_id, created_at, agent_id",
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SourceAssignment {
                    agent_id: r.try_get("agent_id")?,
                    plugin_instance_id: r.try_get("plugin_instance_id")?,
                })
            })
            .collect()
    }

    /// Every work item, oldest first.
    pub async fn work_items(&self) -> Result<Vec<SourceWorkItem>, SourceError> {
        if !self.has_table("work_items") {
            return Ok(vec![]);
        }
        let mut conn = self.conn().await?;
        let rows = query_all(
            &mut conn,
            "SELECT id, plugin_instance_id, session_key, source_ref, status, title, payload,
                    created_at, updated_at
             FROM work_items ORDER BY created_at, id",
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SourceWorkItem {
                    id: r.try_get("id")?,
                    plugin_instance_id: r
                        .try_get::<Option<String>, _>("plugin_instance_id")?
                        .unwrap_or_default(),
                    session_key: r
                        .try_get::<Option<String>, _>("session_key")?
                        .unwrap_or_default(),
                    source_ref: r
                        .try_get::<Option<String>, _>("source_ref")?
                        .unwrap_or_default(),
                    status: r
                        .try_get::<Option<String>, _>("status")?
                        .unwrap_or_default(),
                    title: r.try_get::<Option<String>, _>("title")?.unwrap_or_default(),
                    payload: r
                        .try_get::<Option<String>, _>("payload")?
                        .unwrap_or_else(|| "{}".into()),
                    created_at: r.try_get::<Option<i64>, _>("created_at")?.unwrap_or(0),
                    updated_at: r.try_get::<Option<i64>, _>("updated_at")?.unwrap_or(0),
                })
            })
            .collect()
    }

    /// Every idempotency key.
    pub async fn idempotency_keys(&self) -> Result<Vec<SourceKey>, SourceError> {
        if !self.has_table("idempotency_keys") {
            return Ok(vec![]);
        }
        let mut conn = self.conn().await?;
        let rows = query_all(
            &mut conn,
            "SELECT key, work_item_id FROM idempotency_keys ORDER BY key",
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SourceKey {
                    key: r.try_get("key")?,
                    work_item_id: r.try_get("work_item_id")?,
                })
            })
            .collect()
    }

    /// Every installed plugin (built-in ones included).
    pub async fn plugins(&self) -> Result<Vec<SourcePlugin>, SourceError> {
        if !self.has_table("plugins") {
            return Ok(vec![]);
        }
        let mut conn = self.conn().await?;
        let rows = query_all(
            &mut conn,
            "SELECT id, name, enabled, trust_level, source_kind, source_ref, current_version
             FROM plugins ORDER BY id",
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SourcePlugin {
                    id: r.try_get("id")?,
                    name: r.try_get::<Option<String>, _>("name")?.unwrap_or_default(),
                    enabled: r.try_get::<Option<i64>, _>("enabled")?.unwrap_or(0) != 0,
                    trust_level: r
                        .try_get::<Option<String>, _>("trust_level")?
                        .unwrap_or_default(),
                    source_kind: r
                        .try_get::<Option<String>, _>("source_kind")?
                        .unwrap_or_default(),
                    source_ref: r.try_get("source_ref")?,
                    current_version: r.try_get("current_version")?,
                })
            })
            .collect()
    }

    /// Every skill with its files.
    pub async fn skills(&self) -> Result<Vec<SourceSkill>, SourceError> {
        if !self.has_table("skills") {
            return Ok(vec![]);
        }
        let mut conn = self.conn().await?;
        let rows = query_all(
            &mut conn,
            "SELECT id, slug, description, source_kind, plugin_id, content, enabled, tags_json
             FROM skills ORDER BY slug, id",
        )
        .await?;
        let mut skills: Vec<SourceSkill> = rows
            .iter()
            .map(|r| {
                let tags: Option<String> = r.try_get("tags_json")?;
                Ok(SourceSkill {
                    id: r.try_get("id")?,
                    slug: r.try_get("slug")?,
                    description: r
                        .try_get::<Option<String>, _>("description")?
                        .unwrap_or_default(),
                    source_kind: r
                        .try_get::<Option<String>, _>("source_kind")?
                        .unwrap_or_default(),
                    plugin_id: r.try_get("plugin_id")?,
                    content: r.try_get("content")?,
                    enabled: r.try_get::<Option<i64>, _>("enabled")?.unwrap_or(1) != 0,
                    tags: tags
                        .and_then(|t| serde_json::from_str(&t).ok())
                        .unwrap_or_default(),
                    files: vec![],
                })
            })
            .collect::<Result<_, SourceError>>()?;
        if self.has_table("skill_files") {
            let rows = query_all(
                &mut conn,
                "SELECT skill_id, relative_path, content FROM skill_files
                 ORDER BY skill_id, relative_path",
            )
            .await?;
            for r in &rows {
                let skill_id: String = r.try_get("skill_id")?;
                if let Some(s) = skills.iter_mut().find(|s| s.id == skill_id) {
                    s.files
                        .push((r.try_get("relative_path")?, r.try_get("content")?));
                }
            }
        }
        Ok(skills)
    }

    /// Every skill assignment.
    pub async fn skill_assignments(&self) -> Result<Vec<SourceSkillAssignment>, SourceError> {
        if !self.has_table("skill_assignments") {
            return Ok(vec![]);
        }
        let mut conn = self.conn().await?;
        let rows = query_all(
            &mut conn,
            "SELECT id, skill_id, scope, scope_id, enabled FROM skill_assignments
             ORDER BY skill_id, priority DESC, id",
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SourceSkillAssignment {
                    id: r.try_get("id")?,
                    skill_id: r.try_get("skill_id")?,
                    scope: r.try_get("scope")?,
                    scope_id: r.try_get("scope_id")?,
                    enabled: r.try_get::<Option<i64>, _>("enabled")?.unwrap_or(1) != 0,
                })
            })
            .collect()
    }

    /// Closes the source.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

async fn query_all(
    conn: &mut SqliteConnection,
    sql: &str,
) -> Result<Vec<sqlx::sqlite::SqliteRow>, SourceError> {
    Ok(sqlx::query(sql).fetch_all(conn).await?)
}

#[cfg(test)]
mod tests {
    use super::integration_type_of;

    #[test]
    fn the_type_is_derived_as_nitejar_derives_it() {
        assert_eq!(integration_type_of("builtin.telegram"), "telegram");
        assert_eq!(integration_type_of("legacy.github"), "github");
        assert_eq!(integration_type_of("com.acme.slack"), "slack");
        assert_eq!(integration_type_of("discord"), "discord");
    }
}
