//! Plugins: what is installed, what it declares, what the operator granted, what it did.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the host enforces and what it cannot (spec §15.4: never claim more than is enforced).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuntimePosture {
    /// Always `wasm_sandbox`.
    pub execution_mode: String,
    /// `self_host_open`, `self_host_guarded` or `saas_locked`.
    pub trust_mode: String,
    /// Every control the host enforces on every plugin.
    pub host_enforced_controls: Vec<String>,
    /// What the host cannot enforce.
    pub effective_limitations: Vec<String>,
}

/// The permissions a plugin declares (its manifest's `permissions`); each needs a grant too.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeclaredPermissions {
    /// Outbound HTTP allowlist entries.
    #[serde(default)]
    pub network: Vec<String>,
    /// Secret keys.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Directories visible read-only.
    #[serde(default)]
    pub filesystem_read: Vec<String>,
    /// Directories visible read-write.
    #[serde(default)]
    pub filesystem_write: Vec<String>,
    /// Always false: there is no process spawning in the sandbox.
    #[serde(default)]
    pub allow_process_spawn: bool,
}

/// One hook registration as declared: an event name, or an event with options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum HookDeclaration {
    /// `"tool.pre_exec"`.
    Name(String),
    /// `{"event", "priority", "failPolicy", "timeoutMs"}`.
    Detailed(HookDeclarationOptions),
}

/// Options of a declared hook registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookDeclarationOptions {
    /// The hook event.
    pub event: String,
    /// Higher runs first.
    #[serde(default)]
    pub priority: i32,
    /// `fail_open` or `fail_closed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_policy: Option<String>,
    /// Per-handler timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// What a plugin declares it contributes (its manifest's `contributes`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeclaredContributions {
    /// Integration types.
    #[serde(default)]
    pub integrations: Vec<String>,
    /// Hook registrations.
    #[serde(default)]
    pub hooks: Vec<HookDeclaration>,
    /// Skill ids.
    #[serde(default)]
    pub skills: Vec<String>,
    /// Agent tool names.
    #[serde(default)]
    pub tools: Vec<String>,
}

/// An integration type a loaded plugin provides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationSummary {
    /// The type key (`telegram`, `github`, ...).
    #[serde(rename = "type")]
    pub integration_type: String,
    /// Display name.
    pub display_name: String,
    /// Config fields stored encrypted and never shown.
    pub sensitive_fields: Vec<String>,
}

/// Why the host disabled a plugin on its own; cleared by enabling it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginAlert {
    /// `crash_loop` (crash-loop protection) or `no_longer_builtin` (an earlier version of the
    /// host shipped it as built in; this one does not).
    pub kind: String,
    /// What happened, for the operator.
    pub message: String,
    /// Failures inside the window (`crash_loop`; 0 otherwise).
    pub failures: u64,
    /// The failure count that trips the protection (`crash_loop`; 0 otherwise).
    pub threshold: u64,
    /// The sliding window (`crash_loop`; 0 otherwise).
    pub window_ms: u64,
    /// When (ms since the epoch).
    pub at: i64,
}

/// One installed plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginSummary {
    /// Plugin id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Whether the operator enabled it.
    pub enabled: bool,
    /// Whether it is loaded and serving now.
    pub loaded: bool,
    /// `builtin`, `trusted`, `untrusted` or `unknown`.
    pub trust_level: String,
    /// `builtin`, `npm`, `git`, `upload` or `local`.
    pub source_kind: String,
    /// Package name, URL or file reference.
    pub source_ref: Option<String>,
    /// Active version.
    pub version: Option<String>,
    /// A staged upgrade waiting for consent to its added permissions.
    pub pending_version: Option<String>,
    /// sha256 of the active component.
    pub checksum: Option<String>,
    /// Why it failed to load, if it did.
    pub last_load_error: Option<String>,
    /// Failures inside the crash-loop window.
    pub recent_failures: u64,
    /// Set when crash-loop protection disabled it.
    pub alert: Option<PluginAlert>,
    /// The permissions its manifest declares.
    pub declared_capabilities: DeclaredPermissions,
    /// What its manifest declares it contributes.
    pub contributes: DeclaredContributions,
    /// Install time (ms since the epoch).
    pub installed_at: i64,
    /// Last change (ms since the epoch).
    pub updated_at: i64,
    /// The WIT API version its component targets (when loaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// The integration types it provides (when loaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrations: Option<Vec<IntegrationSummary>>,
    /// Instruction budgets and what its calls used (when loaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<InstructionUsage>,
    /// The runtime posture, repeated on every plugin.
    #[serde(flatten)]
    pub posture: RuntimePosture,
}

/// `GET /api/admin/plugins`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginList {
    /// Every installed plugin.
    pub plugins: Vec<PluginSummary>,
    /// The runtime posture.
    pub runtime: RuntimePosture,
    /// Whether the host runs built-ins only.
    pub safe_mode: bool,
}

/// A declared permission and whether the operator granted it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Disclosure {
    /// `network:<rule>`, `secret:<key>`, `fs:read:<dir>` or `fs:write:<dir>`.
    pub permission: String,
    /// Whether it is granted.
    pub acknowledged: bool,
}

/// `GET /api/admin/plugins/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginDetail {
    /// The plugin.
    #[serde(flatten)]
    pub plugin: PluginSummary,
    /// Each declared permission with its grant.
    pub disclosures: Vec<Disclosure>,
    /// Each declared secret and whether a value is stored (values are never returned).
    #[serde(default)]
    pub secrets: Vec<SecretState>,
    /// The upgrade waiting for consent to the permissions it adds, if any.
    #[serde(default)]
    pub pending_upgrade: Option<crate::lifecycle::UpgradeReport>,
}

/// A declared secret: whether a value is stored (the value itself is never returned).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretState {
    /// The key the manifest declares.
    pub key: String,
    /// Whether a value is stored.
    pub set: bool,
}

/// One receipt: something a plugin did, or something done to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    /// UUIDv7 id (time-ordered; the events listing's cursor).
    pub id: String,
    /// Plugin id (`nitejar.host` for refusals before a package is read).
    pub plugin_id: String,
    /// Plugin version, when known.
    pub plugin_version: Option<String>,
    /// `hook`, `integration`, `tool`, `permission_denied`, `quota_exceeded`, `install`, ...
    pub kind: String,
    /// `ok`, `error`, `timeout`, `blocked`, ...
    pub status: String,
    /// Correlated work item.
    pub work_item_id: Option<String>,
    /// Correlated job.
    pub job_id: Option<String>,
    /// Hook event, for hook receipts.
    pub hook_name: Option<String>,
    /// Duration in milliseconds.
    pub duration_ms: Option<i64>,
    /// Always `wasm_sandbox`.
    pub execution_mode: String,
    /// Structured detail, as JSON text.
    pub detail_json: Option<String>,
    /// When (ms since the epoch).
    pub created_at: i64,
}

/// `GET /api/admin/plugins/{id}/events`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventPage {
    /// Receipts, newest first.
    pub events: Vec<Receipt>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Query of `GET /api/admin/plugins/{id}/events`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// Only receipts of this kind (`hook`, `integration`, `install`, ...).
    pub kind: Option<String>,
    /// Only receipts with this outcome (`ok`, `error`, `timeout`, `blocked`, ...).
    pub status: Option<String>,
}

/// `POST /api/admin/plugins/{id}/grants`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    /// Declared permissions to grant (`network:api.example.com`, `secret:token`, ...).
    pub permissions: Vec<String>,
}

/// Answer of `POST /api/admin/plugins/{id}/revoke`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RevokeResponse {
    /// How many permissions changed from granted to not granted.
    pub revoked: u64,
}

/// Answer of `POST /api/admin/plugins/{id}/grants`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GrantResponse {
    /// How many permissions changed from not granted to granted.
    pub granted: u64,
}

/// Instruction budgets (wasmtime fuel, about one unit per wasm instruction) of a loaded plugin
/// and what its calls used since it was loaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstructionUsage {
    /// The budget of every call when the operator or the manifest set one; otherwise each call
    /// kind has the host's default (`defaults`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_per_call: Option<u64>,
    /// Where `budgetPerCall` comes from: `operator`, `manifest` or `default`.
    pub source: String,
    /// The host's default budget per call kind (`hook`, `integration`, `tool`, `load`).
    pub defaults: std::collections::BTreeMap<String, u64>,
    /// Calls metered since the plugin was loaded.
    pub calls: u64,
    /// Instructions those calls used in total.
    pub total: u64,
    /// Average instructions per call.
    pub average: u64,
}

/// `PUT /api/admin/plugins/{id}/limits`: the operator's budgets for one plugin.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitsRequest {
    /// Instructions each call may use (1 to the host maximum); `null` goes back to the
    /// manifest's value or the defaults.
    pub fuel_per_call: Option<u64>,
}

/// What `PUT /api/admin/plugins/{id}/limits` stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LimitsResponse {
    /// The operator's budget now in force (`null`: none).
    pub fuel_per_call: Option<u64>,
    /// The host's maximum per call.
    pub max_fuel_per_call: u64,
}

/// `PUT /api/admin/plugins/{id}/secrets/{key}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRequest {
    /// The value (stored encrypted, never shown again).
    pub value: String,
}

/// `POST /api/admin/plugins/{id}/enable`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnableRequest {
    /// Required for third-party plugins: the operator reviewed its permissions.
    #[serde(default)]
    pub consent: bool,
}

/// Answer of `POST /api/admin/plugins/{id}/enable` and `/disable`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EnableResponse {
    /// Whether it is enabled now.
    pub enabled: bool,
    /// Whether it is loaded now (enable only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loaded: Option<bool>,
    /// The active version (enable only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}
