//! Plugins: packages, installation, bundled plugins and the registry of loaded ones.

pub mod access;
pub mod bundled;
pub mod doctor;
pub mod installer;
pub mod lifecycle;
pub mod package;
pub mod registry;
pub mod sources;
pub mod trust;

use crate::config::{Config, Redacted};
use crate::crypto::SecretBox;
use crate::hooks::CrashGuard;
use crate::receipts::ReceiptSink;
use crate::skills::SkillCatalog;
use nitejar_api::plugins::{
    DeclaredContributions, DeclaredPermissions, HookDeclaration, HookDeclarationOptions,
};
use nitejar_sandbox::manifest::{HookEntry, Manifest};
use nitejar_sandbox::runtime::PluginRuntime;
use nitejar_store::Store;
use registry::PluginRegistry;
use std::path::PathBuf;
use std::sync::Arc;
use trust::TrustPolicy;

/// The configuration the plugin domain reads: where plugins live, what may be installed and
/// loaded, and how packages are fetched.
#[derive(Debug, Clone)]
pub struct PluginSettings {
    /// Installed versions: `<plugins_dir>/<id>/<version>`.
    pub plugins_dir: PathBuf,
    /// Scratch space for installs (cleared at boot).
    pub staging_dir: PathBuf,
    /// The compile cache (may sit inside the plugins directory; never taken for a plugin).
    pub cache_dir: PathBuf,
    /// The data directory (plugin files live in `<data_dir>/plugin-files/<id>`).
    pub data_dir: PathBuf,
    /// The trust policy in force.
    pub trust: TrustPolicy,
    /// Safe mode: only built-ins load.
    pub safe_mode: bool,
    /// npm registry for `npm` sources.
    pub npm_registry: String,
    /// npm token, if any.
    pub npm_token: Option<Redacted>,
    /// Whether git sources may run their build.
    pub git_build: bool,
}

impl PluginSettings {
    /// The plugin settings of a host configuration.
    pub fn from_config(c: &Config) -> PluginSettings {
        PluginSettings {
            plugins_dir: c.plugins_dir.clone(),
            staging_dir: c.staging_dir.clone(),
            cache_dir: c.cache_dir.clone(),
            data_dir: c.data_dir.clone(),
            trust: c.trust.clone(),
            safe_mode: c.safe_mode,
            npm_registry: c.npm_registry.clone(),
            npm_token: c.npm_token.clone(),
            git_build: c.git_build,
        }
    }
}

/// The plugin domain's dependencies: what installing, upgrading, rolling back, enabling,
/// granting and diagnosing plugins use, and nothing else. Built once at boot.
pub struct Plugins {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Loaded plugins.
    pub registry: Arc<PluginRegistry>,
    /// The sandbox (validates packages at install and preview).
    pub runtime: Arc<PluginRuntime>,
    /// Lifecycle receipts.
    pub receipts: ReceiptSink,
    /// Crash-loop accounting (enable clears it, the doctor reports it).
    pub crash_guard: Arc<CrashGuard>,
    /// Encrypts secret values.
    pub secrets: SecretBox,
    /// The skills index (uninstall removes a plugin's skills).
    pub skills: Arc<SkillCatalog>,
    /// What the plugin domain reads from the configuration.
    pub config: Arc<PluginSettings>,
}

/// The API's view of a manifest's declarations.
pub fn declarations(m: &Manifest) -> (DeclaredPermissions, DeclaredContributions) {
    let p = m.permissions.clone();
    let permissions = DeclaredPermissions {
        network: p.network,
        secrets: p.secrets,
        filesystem_read: p.filesystem_read,
        filesystem_write: p.filesystem_write,
        allow_process_spawn: p.allow_process_spawn,
    };
    let c = m.contributes.clone();
    let contributions = DeclaredContributions {
        integrations: c.integrations,
        hooks: c
            .hooks
            .into_iter()
            .map(|h| match h {
                HookEntry::Name(n) => HookDeclaration::Name(n),
                HookEntry::Detailed(o) => HookDeclaration::Detailed(HookDeclarationOptions {
                    event: o.event,
                    priority: o.priority,
                    fail_policy: o.fail_policy,
                    timeout_ms: o.timeout_ms,
                }),
            })
            .collect(),
        skills: c.skills,
        tools: c.tools,
    };
    (permissions, contributions)
}
