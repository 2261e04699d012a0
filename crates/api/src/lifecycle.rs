//! Plugin lifecycle: install sources, upgrades with consent, rollback, reload, uninstall,
//! versions and health.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a package comes from: `POST /plugins/install`, `/preview` and `/{id}/upgrade`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InstallRequest {
    /// `local`, `npm` or `git` (uploads go to the `/upload` operations).
    pub source_kind: Option<String>,
    /// A directory, `name[@version|tag|range]`, or a git URL (`#ref` allowed).
    pub source_ref: Option<String>,
    /// Per-source options.
    #[serde(default)]
    pub options: SourceOptions,
}

/// Options of an install, preview or upgrade request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceOptions {
    /// npm: registry URL for this request (default: the configured one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// git: branch, tag or commit (default: the remote's default branch).
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    /// git: the package directory inside the repository (default: its root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Where an installed version came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SourceInfo {
    /// `builtin`, `upload`, `local`, `npm` or `git`.
    pub kind: String,
    /// File name, path, package name or URL.
    #[serde(rename = "ref")]
    pub reference: Option<String>,
    /// git: the commit installed.
    pub commit: Option<String>,
}

/// What an upgrade did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeReport {
    /// Plugin id.
    pub plugin_id: String,
    /// The version that was active.
    pub from_version: String,
    /// The new version.
    pub version: String,
    /// `activated`, or `pending_consent` until the operator approves the added permissions.
    pub status: String,
    /// Permissions the new version declares that are not granted.
    pub added_permissions: Vec<String>,
    /// Permissions the active version declares that the new one does not.
    pub removed_permissions: Vec<String>,
}

/// `POST /plugins/{id}/upgrade/approve`: consent to exactly the added permissions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// The pending upgrade's added permissions, all of them.
    pub permissions: Vec<String>,
}

/// `POST /plugins/{id}/rollback`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The installed version to activate (default: the newest older one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Answer of `POST /plugins/{id}/rollback`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollbackResponse {
    /// Plugin id.
    pub plugin_id: String,
    /// The version active now.
    pub version: String,
    /// Its component's sha256.
    pub checksum: String,
}

/// What a reload of a locally installed plugin did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReloadReport {
    /// Plugin id.
    pub plugin_id: String,
    /// The (unchanged) version.
    pub version: String,
    /// `reloaded` (new content taken) or `unchanged`.
    pub status: String,
    /// The component's checksum now.
    pub checksum: String,
    /// Permissions the new manifest declares that are not granted yet.
    pub ungranted_permissions: Vec<String>,
}

/// `POST /plugins/{id}/uninstall`: what to remove besides the registration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UninstallRequest {
    /// Remove every installed version's files.
    #[serde(default)]
    pub purge_files: bool,
    /// Remove the plugin's data: key-value storage, secret values, its file area.
    #[serde(default)]
    pub purge_data: bool,
}

/// Answer of `POST /plugins/{id}/uninstall`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UninstallResponse {
    /// Plugin id.
    pub plugin_id: String,
    /// Always true.
    pub uninstalled: bool,
    /// Whether its files were removed.
    pub purge_files: bool,
    /// Whether its data was removed.
    pub purge_data: bool,
}

/// One installed version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    /// Plugin id.
    pub plugin_id: String,
    /// Version.
    pub version: String,
    /// sha256 of the component.
    pub checksum: String,
    /// Its directory on the host.
    pub install_path: String,
    /// WIT API version its component targets.
    pub api_version: String,
    /// When it was installed (ms since the epoch).
    pub installed_at: i64,
    /// Where it came from.
    pub source: Option<SourceInfo>,
}

/// `GET /plugins/{id}/versions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionList {
    /// Plugin id.
    pub plugin_id: String,
    /// The active version.
    pub active: Option<String>,
    /// A staged upgrade waiting for consent.
    pub pending: Option<String>,
    /// Every installed version.
    pub versions: Vec<VersionInfo>,
}

/// One problem the doctor found, and what to do about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Problem {
    /// `load`, `crash_loop`, `pending_upgrade`, `grants`, `files`, `current_pointer`,
    /// `artifact`.
    pub check: String,
    /// What is wrong.
    pub detail: String,
    /// What to do.
    pub fix: String,
}

/// Declared permissions and which are granted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GrantState {
    /// Every declared permission.
    pub declared: Vec<String>,
    /// The granted ones.
    pub granted: Vec<String>,
    /// The others.
    pub ungranted: Vec<String>,
}

/// `GET /plugins/{id}/doctor`: one plugin's health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginHealth {
    /// Plugin id.
    pub plugin_id: String,
    /// Active version.
    pub version: Option<String>,
    /// Whether it is enabled.
    pub enabled: bool,
    /// Whether it is loaded.
    pub loaded: bool,
    /// Why it failed to load, if it did.
    pub last_load_error: Option<String>,
    /// Failures inside the crash-loop window.
    pub recent_failures: u64,
    /// Grants.
    pub grants: GrantState,
    /// `ok`, `checksum_mismatch`, `missing` or `checksum_file_stale`.
    pub files: String,
    /// `compiled`, `cold (compiled on next load)` or `none`.
    pub cache: String,
    /// No problems.
    pub healthy: bool,
    /// What is wrong and what to do.
    pub problems: Vec<Problem>,
}

/// `GET /doctor`: every plugin's health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    /// Every plugin healthy.
    pub healthy: bool,
    /// Whether the host runs built-ins only.
    pub safe_mode: bool,
    /// Each plugin.
    pub plugins: Vec<PluginHealth>,
}

/// What an install did: `POST /plugins/install`, `/upload`, `/install/npm`, `/install/git`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstallReport {
    /// Plugin id.
    pub plugin_id: String,
    /// Installed version.
    pub version: String,
    /// sha256 of the component.
    pub checksum: String,
    /// The version directory.
    pub install_path: String,
    /// WIT API version.
    pub api_version: String,
    /// Permissions the operator must grant before the plugin can use them.
    pub disclosures: Vec<String>,
}

/// The trust policy's verdict on a package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TrustVerdict {
    /// `self_host_open`, `self_host_guarded` or `saas_locked`.
    pub mode: String,
    /// Whether the policy lets it be installed.
    pub allowed: bool,
    /// The trust level it would get (when allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// Why it is trusted (when allowed): `open_mode`, `trusted_key`, `platform_key`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<String>,
    /// Why it is refused (when not allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether the package carries a signature.
    pub signed: bool,
}

/// The installed version a preview compares against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InstalledState {
    /// The active version.
    pub version: String,
    /// Whether it is enabled.
    pub enabled: bool,
}

/// Permissions a new version adds (not granted yet) and drops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PermissionDiff {
    /// Declared by the package and not granted.
    pub added: Vec<String>,
    /// Declared by the installed version, not by the package.
    pub removed: Vec<String>,
}

/// The host versions a package runs on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EngineRange {
    /// Semver range of Nitejar versions.
    pub nitejar: String,
    /// Accepted for compatibility with the spec's JS plugins; ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// What the operator reviews before installing or upgrading: `POST /plugins/preview`,
/// `/preview/upload`. Nothing is written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    /// Plugin id.
    pub plugin_id: String,
    /// Display name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Description.
    pub description: Option<String>,
    /// Author.
    pub author: Option<String>,
    /// SPDX license.
    pub license: Option<String>,
    /// Home page.
    pub homepage: Option<String>,
    /// sha256 of the component.
    pub checksum: String,
    /// WIT API version its component targets.
    pub api_version: String,
    /// The host versions it runs on.
    pub engine: EngineRange,
    /// Where it comes from.
    pub source: SourceInfo,
    /// Every permission it declares (each needs a grant).
    pub permissions: Vec<String>,
    /// What it contributes.
    pub contributes: crate::plugins::DeclaredContributions,
    /// The trust policy's verdict.
    pub trust: TrustVerdict,
    /// `install`, `upgrade`, `reinstall` or `older_version`.
    pub action: String,
    /// The installed version, if any.
    pub installed: Option<InstalledState>,
    /// Against the installed version, if any.
    pub permission_diff: Option<PermissionDiff>,
    /// Always `wasm_sandbox`.
    pub execution_mode: String,
    /// The consent sentence shown to the operator.
    pub consent_text: String,
}
