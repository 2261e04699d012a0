//! Reading a Nitejar database (the TypeScript product this host replaces), for
//! `nitejar import nitejar`: a SQLite file or a PostgreSQL database (the same schema on both,
//! made by one set of migrations). Read only: a SQLite file is opened read-only, a PostgreSQL
//! session is set read-only, and nothing in the source is changed. The tables and their columns
//! are those of `tests/fixtures/nitejar/nitejar-data.md`; a table an older Nitejar did not have reads as
//! empty. Timestamps there are Unix seconds; the rows returned here carry them as they are.
//!
//! Rows are read into [`Record`]s (column name -> value, typed by what the database holds:
//! SQLite's 0/1 and PostgreSQL's booleans read alike), then into the typed rows below.

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{Column, Row};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// Why a source cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file is missing, not SQLite, the server unreachable, or not a Nitejar database.
    #[error("{0}")]
    Unreadable(String),
    /// A query on the source failed.
    #[error("reading the Nitejar database failed: {0}")]
    Query(#[from] sqlx::Error),
    /// A row lacks a required value.
    #[error("reading the Nitejar database failed: {table}.{column} is missing or not {expected}")]
    Column {
        /// Table.
        table: &'static str,
        /// Column.
        column: &'static str,
        /// What it should have held.
        expected: &'static str,
    },
}

/// One value of a source row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// SQL NULL (or a type this reader does not take).
    Null,
    /// An integer.
    Int(i64),
    /// A boolean (PostgreSQL).
    Bool(bool),
    /// Text.
    Text(String),
}

/// One source row: column name -> value.
#[derive(Debug, Clone, Default)]
pub struct Record {
    table: &'static str,
    cells: HashMap<String, Cell>,
}

impl Record {
    fn cell(&self, column: &str) -> &Cell {
        self.cells.get(column).unwrap_or(&Cell::Null)
    }

    /// A required text value.
    fn text(&self, column: &'static str) -> Result<String, SourceError> {
        self.opt_text(column).ok_or(SourceError::Column {
            table: self.table,
            column,
            expected: "text",
        })
    }

    /// An optional text value (numbers read as their decimal text).
    fn opt_text(&self, column: &str) -> Option<String> {
        match self.cell(column) {
            Cell::Text(t) => Some(t.clone()),
            Cell::Int(i) => Some(i.to_string()),
            _ => None,
        }
    }

    /// An integer (0 when absent).
    fn int(&self, column: &str) -> i64 {
        match self.cell(column) {
            Cell::Int(i) => *i,
            Cell::Bool(b) => i64::from(*b),
            Cell::Text(t) => t.trim().parse().unwrap_or(0),
            Cell::Null => 0,
        }
    }

    /// A boolean: 0/1 on SQLite, a boolean on PostgreSQL; `default` when absent.
    fn flag(&self, column: &str, default: bool) -> bool {
        match self.cell(column) {
            Cell::Bool(b) => *b,
            Cell::Int(i) => *i != 0,
            Cell::Text(t) => matches!(t.as_str(), "1" | "t" | "true"),
            Cell::Null => default,
        }
    }
}

/// The connection to the source.
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
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
    pool: Pool,
    tables: HashSet<String>,
}

impl NitejarSource {
    /// Opens `from`: a SQLite file path (read only), or a `postgres://` URL (a read-only
    /// session).
    pub async fn open(from: &str) -> Result<NitejarSource, SourceError> {
        let lower = from.to_ascii_lowercase();
        let (pool, names) =
            if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
                open_postgres(from).await?
            } else {
                open_sqlite(from).await?
            };
        let tables: HashSet<String> = names.into_iter().collect();
        if !tables.contains("plugin_instances") {
            return Err(SourceError::Unreadable(
                "the source is not a Nitejar database (it has no plugin_instances table)".into(),
            ));
        }
        Ok(NitejarSource { pool, tables })
    }

    /// Whether the source has `table`.
    pub fn has_table(&self, table: &str) -> bool {
        self.tables.contains(table)
    }

    /// Runs a query without parameters; every row as a [`Record`].
    async fn records(&self, table: &'static str, sql: &str) -> Result<Vec<Record>, SourceError> {
        match &self.pool {
            Pool::Sqlite(pool) => {
                let rows = sqlx::query(sql).fetch_all(pool).await?;
                Ok(rows
                    .iter()
                    .map(|r| {
                        let mut cells = HashMap::new();
                        for (i, col) in r.columns().iter().enumerate() {
                            let cell = if let Ok(Some(v)) = r.try_get::<Option<i64>, _>(i) {
                                Cell::Int(v)
                            } else if let Ok(Some(v)) = r.try_get::<Option<String>, _>(i) {
                                Cell::Text(v)
                            } else {
                                Cell::Null
                            };
                            cells.insert(col.name().to_string(), cell);
                        }
                        Record { table, cells }
                    })
                    .collect())
            }
            Pool::Postgres(pool) => {
                let rows = sqlx::query(sql).fetch_all(pool).await?;
                Ok(rows
                    .iter()
                    .map(|r| {
                        let mut cells = HashMap::new();
                        for (i, col) in r.columns().iter().enumerate() {
                            let cell = if let Ok(Some(v)) = r.try_get::<Option<i64>, _>(i) {
                                Cell::Int(v)
                            } else if let Ok(Some(v)) = r.try_get::<Option<i32>, _>(i) {
                                Cell::Int(i64::from(v))
                            } else if let Ok(Some(v)) = r.try_get::<Option<i16>, _>(i) {
                                Cell::Int(i64::from(v))
                            } else if let Ok(Some(v)) = r.try_get::<Option<bool>, _>(i) {
                                Cell::Bool(v)
                            } else if let Ok(Some(v)) = r.try_get::<Option<String>, _>(i) {
                                Cell::Text(v)
                            } else if let Ok(Some(v)) = r.try_get::<Option<serde_json::Value>, _>(i)
                            {
                                // A json/jsonb column: its text.
                                Cell::Text(v.to_string())
                            } else {
                                Cell::Null
                            };
                            cells.insert(col.name().to_string(), cell);
                        }
                        Record { table, cells }
                    })
                    .collect())
            }
        }
    }

    /// Every integration instance, by id.
    pub async fn instances(&self) -> Result<Vec<SourceInstance>, SourceError> {
        let rows = self
            .records(
                "plugin_instances",
                "SELECT id, plugin_id, name, config_json, enabled, created_at, updated_at
                 FROM plugin_instances ORDER BY id",
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(SourceInstance {
                    id: r.text("id")?,
                    plugin_id: r.text("plugin_id")?,
                    name: r.opt_text("name").unwrap_or_default(),
                    config_json: r.opt_text("config_json").unwrap_or_else(|| "{}".into()),
                    enabled: r.flag("enabled", true),
                    created_at: r.int("created_at"),
                    updated_at: r.int("updated_at"),
                })
            })
            .collect()
    }

    /// Agent assignments of instances.
    pub async fn assignments(&self) -> Result<Vec<SourceAssignment>, SourceError> {
        if !self.has_table("agent_plugin_instances") {
            return Ok(vec![]);
        }
        let rows = self
            .records(
                "agent_plugin_instances",
                "SELECT agent_id, plugin_instance_id FROM agent_plugin_instances
                 ORDER BY plugin_instance_id, created_at, agent_id",
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(SourceAssignment {
                    agent_id: r.text("agent_id")?,
                    plugin_instance_id: r.text("plugin_instance_id")?,
                })
            })
            .collect()
    }

    /// Every work item, oldest first.
    pub async fn work_items(&self) -> Result<Vec<SourceWorkItem>, SourceError> {
        if !self.has_table("work_items") {
            return Ok(vec![]);
        }
        let rows = self
            .records(
                "work_items",
                "SELECT id, plugin_instance_id, session_key, source_ref, status, title, payload,
                        created_at, updated_at
                 FROM work_items ORDER BY created_at, id",
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(SourceWorkItem {
                    id: r.text("id")?,
                    plugin_instance_id: r.opt_text("plugin_instance_id").unwrap_or_default(),
                    session_key: r.opt_text("session_key").unwrap_or_default(),
                    source_ref: r.opt_text("source_ref").unwrap_or_default(),
                    status: r.opt_text("status").unwrap_or_default(),
                    title: r.opt_text("title").unwrap_or_default(),
                    payload: r.opt_text("payload").unwrap_or_else(|| "{}".into()),
                    created_at: r.int("created_at"),
                    updated_at: r.int("updated_at"),
                })
            })
            .collect()
    }

    /// Every idempotency key.
    pub async fn idempotency_keys(&self) -> Result<Vec<SourceKey>, SourceError> {
        if !self.has_table("idempotency_keys") {
            return Ok(vec![]);
        }
        let rows = self
            .records(
                "idempotency_keys",
                "SELECT key, work_item_id FROM idempotency_keys ORDER BY key",
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(SourceKey {
                    key: r.text("key")?,
                    work_item_id: r.text("work_item_id")?,
                })
            })
            .collect()
    }

    /// Every installed plugin (built-in ones included).
    pub async fn plugins(&self) -> Result<Vec<SourcePlugin>, SourceError> {
        if !self.has_table("plugins") {
            return Ok(vec![]);
        }
        let rows = self
            .records(
                "plugins",
                "SELECT id, name, enabled, trust_level, source_kind, source_ref, current_version
                 FROM plugins ORDER BY id",
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(SourcePlugin {
                    id: r.text("id")?,
                    name: r.opt_text("name").unwrap_or_default(),
                    enabled: r.flag("enabled", false),
                    trust_level: r.opt_text("trust_level").unwrap_or_default(),
                    source_kind: r.opt_text("source_kind").unwrap_or_default(),
                    source_ref: r.opt_text("source_ref"),
                    current_version: r.opt_text("current_version"),
                })
            })
            .collect()
    }

    /// Every skill with its files.
    pub async fn skills(&self) -> Result<Vec<SourceSkill>, SourceError> {
        if !self.has_table("skills") {
            return Ok(vec![]);
        }
        let rows = self
            .records(
                "skills",
                "SELECT id, slug, description, source_kind, plugin_id, content, enabled, tags_json
                 FROM skills ORDER BY slug, id",
            )
            .await?;
        let mut skills: Vec<SourceSkill> = rows
            .iter()
            .map(|r| {
                Ok(SourceSkill {
                    id: r.text("id")?,
                    slug: r.text("slug")?,
                    description: r.opt_text("description").unwrap_or_default(),
                    source_kind: r.opt_text("source_kind").unwrap_or_default(),
                    plugin_id: r.opt_text("plugin_id"),
                    content: r.opt_text("content").unwrap_or_default(),
                    enabled: r.flag("enabled", true),
                    tags: r
                        .opt_text("tags_json")
                        .and_then(|t| serde_json::from_str(&t).ok())
                        .unwrap_or_default(),
                    files: vec![],
                })
            })
            .collect::<Result<_, SourceError>>()?;
        if self.has_table("skill_files") {
            let rows = self
                .records(
                    "skill_files",
                    "SELECT skill_id, relative_path, content FROM skill_files
                     ORDER BY skill_id, relative_path",
                )
                .await?;
            for r in &rows {
                let skill_id = r.text("skill_id")?;
                if let Some(s) = skills.iter_mut().find(|s| s.id == skill_id) {
                    s.files.push((
                        r.text("relative_path")?,
                        r.opt_text("content").unwrap_or_default(),
                    ));
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
        let rows = self
            .records(
                "skill_assignments",
                "SELECT id, skill_id, scope, scope_id, enabled FROM skill_assignments
                 ORDER BY skill_id, priority DESC, id",
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(SourceSkillAssignment {
                    id: r.text("id")?,
                    skill_id: r.text("skill_id")?,
                    scope: r.text("scope")?,
                    scope_id: r.opt_text("scope_id"),
                    enabled: r.flag("enabled", true),
                })
            })
            .collect()
    }

    /// Closes the source.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }
}

/// A SQLite file, read only; its table names.
async fn open_sqlite(from: &str) -> Result<(Pool, Vec<String>), SourceError> {
    let path = Path::new(from.strip_prefix("sqlite://").unwrap_or(from));
    if !path.is_file() {
        return Err(SourceError::Unreadable(format!(
            "{} is not a file on the server's machine",
            path.display()
        )));
    }
    crate::sqlite::library::configure();
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
                SourceError::Unreadable(format!("{} is not a SQLite database: {e}", path.display()))
            })?;
    Ok((Pool::Sqlite(pool), names))
}

/// A PostgreSQL database, in read-only sessions; the table names of its search path. Errors
/// never repeat the URL (it may hold a password).
async fn open_postgres(url: &str) -> Result<(Pool, Vec<String>), SourceError> {
    let opts = PgConnectOptions::from_str(url).map_err(|_| {
        SourceError::Unreadable(
            "the PostgreSQL URL is not valid (postgres://user:password@host:port/database)".into(),
        )
    })?;
    let opts = opts.options([("default_transaction_read_only", "on")]);
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(opts)
        .await
        .map_err(|e| {
            SourceError::Unreadable(format!(
                "cannot connect to the PostgreSQL database: {}",
                redact_error(&e)
            ))
        })?;
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = ANY (current_schemas(false))",
    )
    .fetch_all(&pool)
    .await?;
    Ok((Pool::Postgres(pool), names))
}

/// A connection error's text without anything of the URL (sqlx's messages name the host and
/// the server's reason, never the password, but stay cautious: only the kind and the reason).
fn redact_error(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => db.message().to_string(),
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::PoolTimedOut => "timed out".into(),
        sqlx::Error::Tls(_) => "TLS failed".into(),
        _ => "the connection failed".into(),
    }
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
