//! `POST /import/nitejar`: bring a Nitejar database's integrations and history here.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The request: where the Nitejar database is, and whether to only show what would happen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportRequest {
    /// A SQLite file path on the server's machine, or a `postgres://` URL.
    pub from: String,
    /// Only report what would be done; write nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What happened (or, in a dry run, would happen) to one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RowAction {
    /// Written here.
    Created,
    /// Already here as it is there; nothing written.
    Unchanged,
    /// Not brought over; `reason` says why. The rest of the import went on.
    Skipped,
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RowReport {
    /// The source table (`plugin_instances`, `agent_plugin_instances`, `work_items`, ...).
    pub table: String,
    /// The row's key there.
    pub id: String,
    /// What was done.
    pub action: RowAction,
    /// Why it was skipped, or what to know about it (a plaintext secret was encrypted, the
    /// instance was imported disabled, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Counts for one kind of row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Rows read from the source.
    pub read: u64,
    /// Rows written here.
    pub created: u64,
    /// Rows already here.
    pub unchanged: u64,
    /// Rows not brought over (each listed in `rows`).
    pub skipped: u64,
}

/// A third-party plugin that was installed in Nitejar. Nitejar plugins are JavaScript packages;
/// they cannot run in this host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThirdPartyPlugin {
    /// Plugin id there.
    pub id: String,
    /// Name.
    pub name: String,
    /// Version installed there.
    pub version: Option<String>,
    /// `npm`, `git`, `upload` or `local`.
    pub source_kind: String,
    /// Package name, URL or path it was installed from.
    pub source_ref: Option<String>,
    /// Whether it was enabled there.
    pub enabled: bool,
    /// Its integration instances in the source (not imported unless this host has the type).
    pub instances: u64,
    /// What replaces it here: the plugin of the same id when one is installed, else what to do.
    pub replacement: String,
}

/// The import report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    /// Whether this was a dry run (nothing written).
    pub dry_run: bool,
    /// The source, as given.
    pub source: String,
    /// Integration instances (same ids, types and webhook URLs).
    pub instances: Counts,
    /// Agent assignments of those instances.
    pub assignments: Counts,
    /// Work items (history; never run here).
    pub work_items: Counts,
    /// Idempotency keys (a platform redelivery after the move creates nothing new).
    pub idempotency_keys: Counts,
    /// Skills with their files (admin skills here, id `admin:<id there>`).
    pub skills: Counts,
    /// Skill assignments.
    pub skill_assignments: Counts,
    /// Third-party plugins installed there.
    pub third_party_plugins: Vec<ThirdPartyPlugin>,
    /// Every instance, assignment and skill row, and every work item or key row that was
    /// skipped.
    pub rows: Vec<RowReport>,
}
