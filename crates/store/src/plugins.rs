//! The plugin aggregate: installed plugins, their versions and artifacts, pending upgrades, the
//! crash-loop alert, the operator's hook overrides; and the grants aggregate: declared
//! permissions with the operator's acknowledgements, and secret values (stored encrypted).

use crate::DbResult;
use async_trait::async_trait;
use nitejar_sandbox::hooks::{HookName, HookOverride};
use serde::Serialize;
use sqlx::FromRow;

/// A `plugins` row.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct PluginRow {
    /// Plugin id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Whether the plugin runs.
    pub enabled: bool,
    /// builtin | trusted | untrusted | unknown.
    pub trust_level: String,
    /// builtin | npm | git | upload | local.
    pub source_kind: String,
    /// Package name, URL or file reference.
    pub source_ref: Option<String>,
    /// Active version.
    pub current_version: Option<String>,
    /// sha256 of the active component.
    pub current_checksum: Option<String>,
    /// Directory of the active version.
    pub current_install_path: Option<String>,
    /// Active manifest.
    pub manifest_json: String,
    /// Last load error, if the plugin failed to load.
    pub last_load_error: Option<String>,
    /// Install time.
    pub installed_at: i64,
    /// Last change.
    pub updated_at: i64,
    /// A staged upgrade waiting for consent to its added permissions.
    pub pending_version: Option<String>,
    /// Why the host disabled the plugin on its own (crash-loop protection), as JSON.
    pub alert_json: Option<String>,
}

/// How far a plugin is trusted, as stored in `plugins.trust_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustLevel {
    /// Shipped inside the host binary (registered at boot from the bundled packages).
    Builtin,
    /// Allowed by the trust policy (signed by a trusted key, or a source the mode trusts).
    Trusted,
    /// Installed, but not vouched for.
    Untrusted,
    /// A stored value this version does not know.
    Unknown,
}

impl TrustLevel {
    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            TrustLevel::Builtin => "builtin",
            TrustLevel::Trusted => "trusted",
            TrustLevel::Untrusted => "untrusted",
            TrustLevel::Unknown => "unknown",
        }
    }

    /// Reads a stored value (anything unrecognised is [`TrustLevel::Unknown`], never built-in).
    pub fn parse(s: &str) -> TrustLevel {
        match s {
            "builtin" => TrustLevel::Builtin,
            "trusted" => TrustLevel::Trusted,
            "untrusted" => TrustLevel::Untrusted,
            _ => TrustLevel::Unknown,
        }
    }
}

impl Serialize for TrustLevel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl PluginRow {
    /// The plugin's trust level.
    pub fn trust(&self) -> TrustLevel {
        TrustLevel::parse(&self.trust_level)
    }

    /// Whether the plugin is one the host ships.
    pub fn is_builtin(&self) -> bool {
        self.trust() == TrustLevel::Builtin
    }

    /// Whether crash-loop protection disabled it (and no operator has acted since).
    pub fn crash_loop_disabled(&self) -> bool {
        !self.enabled
            && self
                .alert_json
                .as_deref()
                .and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok())
                .is_some_and(|a| a["kind"] == "crash_loop")
    }
}

/// Everything recorded about one installed plugin version.
#[derive(Debug, Clone, Copy)]
pub struct InstallRecord<'a> {
    /// Plugin id.
    pub plugin_id: &'a str,
    /// Display name.
    pub name: &'a str,
    /// builtin | trusted | untrusted | unknown.
    pub trust_level: &'a str,
    /// builtin | upload | local | npm | git.
    pub source_kind: &'a str,
    /// Package name, path, file or URL.
    pub source_ref: Option<&'a str>,
    /// Version installed (becomes current).
    pub version: &'a str,
    /// sha256 of the component.
    pub checksum: &'a str,
    /// Version directory.
    pub install_path: &'a str,
    /// Manifest JSON.
    pub manifest_json: &'a str,
    /// WIT API version of the component.
    pub api_version: &'a str,
    /// Component bytes (kept so boot can restore missing or tampered files).
    pub wasm: &'a [u8],
    /// The package signature with the digests it covers (boot re-checks it).
    pub signature_json: Option<&'a str>,
    /// Where the version came from: `{"kind", "ref", "commit"}`.
    pub source_json: Option<&'a str>,
}

/// A `plugin_disclosure_acks` row.
#[derive(Debug, Clone, FromRow, Serialize, PartialEq)]
pub struct DisclosureRow {
    /// `network:<rule>`, `secret:<key>`, `fs:read:<dir>`, `fs:write:<dir>`.
    pub permission: String,
    /// Whether the operator granted it.
    pub acknowledged: bool,
}

/// What loading a plugin reads (see [`PluginStore::load_inputs`]).
#[derive(Debug, Clone)]
pub struct LoadInputs {
    /// The plugin's row.
    pub plugin: PluginRow,
    /// The row of its active version (`None` without one, or when the row is missing).
    pub version: Option<VersionRow>,
    /// Its declared permissions and the operator's acknowledgements, by permission.
    pub disclosures: Vec<DisclosureRow>,
    /// Its secrets: key and encrypted value.
    pub secrets: Vec<(String, String)>,
    /// The operator's fuel override (see [`PluginStore::fuel_override`]).
    pub fuel_per_call: Option<u64>,
    /// The operator's hook overrides (see [`PluginStore::list_hook_overrides`]).
    pub hook_overrides: Vec<(HookName, HookOverride)>,
}

/// A `plugin_versions` row.
#[derive(Debug, Clone, FromRow, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionRow {
    /// Plugin id.
    pub plugin_id: String,
    /// Version.
    pub version: String,
    /// sha256 of the component.
    pub checksum: String,
    /// Version directory.
    pub install_path: String,
    /// The version's manifest.
    #[serde(skip)]
    pub manifest_json: String,
    /// WIT API version.
    pub api_version: String,
    /// When it was installed.
    pub installed_at: i64,
    /// The package signature and the digests it covers (shown as `signed`).
    #[serde(skip)]
    pub signature_json: Option<String>,
    /// Where it came from: `{"kind", "ref", "commit"}`.
    #[serde(rename = "source", serialize_with = "as_json")]
    pub source_json: Option<String>,
}

/// Serializes a JSON text column as the JSON it holds.
fn as_json<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    use serde::Serialize;
    v.as_deref()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
        .serialize(s)
}

/// What an uninstall removes besides the plugin's rows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Purge {
    /// Plugin data: key-value storage and operator-set secret values.
    pub data: bool,
}

/// Installed plugins and everything recorded per plugin (one row per plugin, one per version).
#[async_trait]
pub trait PluginStore: Send + Sync {
    /// Records an install in one transaction: the plugin row (keeping `enabled` and
    /// `installed_at` of an existing row), the version row and the artifact bytes.
    async fn record_install(&self, v: &InstallRecord<'_>) -> DbResult<()>;

    /// One plugin.
    async fn get_plugin(&self, id: &str) -> DbResult<Option<PluginRow>>;

    /// All plugins, by id.
    async fn list_plugins(&self) -> DbResult<Vec<PluginRow>>;

    /// What loading plugin `id` reads, from one snapshot of the database: its row, its active
    /// version's row, its grants and its operator's settings. `None` when it is not installed.
    async fn load_inputs(&self, id: &str) -> DbResult<Option<LoadInputs>>;

    /// Enables or disables a plugin.
    async fn set_plugin_enabled(&self, id: &str, enabled: bool) -> DbResult<bool>;

    /// Records (or clears) plugins' load errors, and when they were loaded, in one transaction:
    /// `(plugin id, error)` each.
    async fn set_plugin_load_errors(&self, outcomes: &[(String, Option<String>)]) -> DbResult<()>;

    /// The stored component bytes of a plugin version.
    async fn get_artifact(
        &self,
        plugin_id: &str,
        version: &str,
    ) -> DbResult<Option<(String, Vec<u8>)>>;

    /// Records a version beside the active one (files are already in place), with its artifact;
    /// the plugin row (active version, source) is not touched.
    async fn record_version(&self, v: &super::InstallRecord<'_>) -> DbResult<()>;

    /// Every installed version of a plugin.
    async fn list_versions(&self, plugin_id: &str) -> DbResult<Vec<VersionRow>>;

    /// One installed version.
    async fn get_version(&self, plugin_id: &str, version: &str) -> DbResult<Option<VersionRow>>;

    /// Makes `v` the active version (and clears any pending upgrade), in one statement.
    async fn set_active_version(&self, v: &VersionRow) -> DbResult<()>;

    /// Records the trust level the policy in force gives the active version.
    async fn set_trust_level(&self, plugin_id: &str, level: &str) -> DbResult<()>;

    /// The staged version waiting for consent, if any.
    async fn pending_version(&self, plugin_id: &str) -> DbResult<Option<String>>;

    /// Sets or clears the staged version waiting for consent.
    async fn set_pending_version(&self, plugin_id: &str, version: Option<&str>) -> DbResult<()>;

    /// Disables a plugin and records why (crash-loop protection), or clears the alert.
    async fn set_plugin_alert(&self, plugin_id: &str, alert: Option<&str>) -> DbResult<()>;

    /// Makes a plugin recorded as built in an ordinary untrusted one, disabled with `alert`
    /// (its package is no longer embedded in the binary). False when it was not built in.
    async fn demote_builtin(&self, plugin_id: &str, alert: &str) -> DbResult<bool>;

    /// Removes a plugin's rows (versions, artifacts, grants and hook overrides with it), and
    /// with `purge.data` its stored data and secret values. Receipts, integration instances,
    /// work items and runs are never touched.
    async fn delete_plugin(&self, plugin_id: &str, purge: Purge) -> DbResult<bool>;

    /// The operator's instruction budget per call for a plugin, if set.
    async fn fuel_override(&self, plugin_id: &str) -> DbResult<Option<u64>>;

    /// Sets (or with `None` removes) the operator's instruction budget per call.
    async fn set_fuel_override(&self, plugin_id: &str, fuel: Option<u64>) -> DbResult<()>;

    /// The operator's hook overrides of a plugin.
    async fn list_hook_overrides(&self, plugin_id: &str)
    -> DbResult<Vec<(HookName, HookOverride)>>;

    /// Sets (or with `None` removes) one hook override.
    async fn set_hook_override(
        &self,
        plugin_id: &str,
        hook: HookName,
        value: Option<&HookOverride>,
    ) -> DbResult<()>;
}

/// Declared permissions, the operator's grants, and secret values (the caller encrypts).
#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Makes sure one disclosure row exists per permission; never acknowledges anything.
    async fn ensure_disclosures(&self, plugin_id: &str, permissions: &[String]) -> DbResult<()>;

    /// Acknowledges (grants) the listed permissions; returns how many rows changed.
    async fn acknowledge(&self, plugin_id: &str, permissions: &[String]) -> DbResult<u64>;

    /// Withdraws the grants of the listed permissions; returns how many rows changed.
    async fn revoke(&self, plugin_id: &str, permissions: &[String]) -> DbResult<u64>;

    /// Every granted permission of every plugin, as `(plugin id, permission)`.
    async fn all_grants(&self) -> DbResult<Vec<(String, String)>>;

    /// The disclosures of a plugin and whether each is granted.
    async fn list_disclosures(&self, plugin_id: &str) -> DbResult<Vec<DisclosureRow>>;

    /// The permissions the operator granted a plugin.
    async fn granted_permissions(
        &self,
        plugin_id: &str,
    ) -> DbResult<std::collections::BTreeSet<String>>;

    /// Stores an (already encrypted) secret value.
    async fn set_secret(&self, plugin_id: &str, key: &str, value_encrypted: &str) -> DbResult<()>;

    /// All (encrypted) secrets of a plugin.
    async fn list_secrets(&self, plugin_id: &str) -> DbResult<Vec<(String, String)>>;
}
