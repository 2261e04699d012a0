//! The registry of loaded (enabled, compiled, validated) plugins and their integration types.
//!
//! Lookups take a read lock and clone an `Arc`, so a call in flight keeps the version it
//! started with even if the plugin is reloaded or disabled meanwhile. The hook table is rebuilt
//! on every activation and deactivation, so hooks are registered on enable/upgrade/rollback and
//! unregistered on disable/uninstall.

use super::installer::read_verified_component;
use super::trust::PackageSignature;
use crate::crypto::SecretBox;
use crate::hooks::{HookName, HookOverride, HookTable, table::TableEntry};
use crate::plugins::PluginSettings;
use crate::receipts::{Receipt, ReceiptSink};
use crate::skills::SkillCatalog;
use nitejar_sandbox::manifest::Manifest;
use nitejar_sandbox::runtime::{Grants, LoadedPlugin, PluginRuntime};
use nitejar_store::{LoadInputs, Store};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// Prefix of the load error when the trust policy refuses a plugin (its receipt is `blocked`).
pub const TRUST_REFUSAL: &str = "trust policy: ";

/// One loaded plugin with its registration order and hook overrides.
struct Entry {
    plugin: Arc<LoadedPlugin>,
    seq: u64,
    overrides: Overrides,
}

/// A plugin's hook overrides, as stored.
type Overrides = Vec<(HookName, HookOverride)>;

/// How a load ended, for its plugin's row (see [`PluginRegistry::commit_unrecorded`]).
pub struct LoadOutcome {
    id: String,
    error: Option<String>,
}

/// A plugin version [`PluginRegistry::prepare`] loaded (or failed to), not yet in service: hand
/// it to [`PluginRegistry::commit`].
pub struct Prepared {
    id: String,
    started: Instant,
    loaded: Result<(LoadedPlugin, Overrides), String>,
}

impl Prepared {
    /// A load of `id` that began at `started` and stopped with `error` before
    /// [`PluginRegistry::prepare`] could finish (its task panicked): committing it records the
    /// failure like any other.
    pub fn failed(id: &str, started: Instant, error: String) -> Prepared {
        Prepared {
            id: id.to_string(),
            started,
            loaded: Err(error),
        }
    }

    /// The plugin's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// What activating a plugin needs: its rows, files, grants and secrets, the policy in force, the
/// sandbox to load it into, and the skills index its version registers into.
pub struct RegistryDeps {
    /// The store (plugin rows, versions, grants, secrets, hook overrides).
    pub store: Arc<dyn Store>,
    /// The sandbox plugins are loaded into.
    pub runtime: Arc<PluginRuntime>,
    /// Decrypts granted secret values.
    pub secrets: SecretBox,
    /// Load receipts.
    pub receipts: ReceiptSink,
    /// Where a version registers its skills.
    pub skills: Arc<SkillCatalog>,
    /// The trust policy in force (checked at every load, not only at install), safe mode, and
    /// where versions are installed (a missing or tampered component is restored from its
    /// stored artifact).
    pub settings: Arc<PluginSettings>,
    /// Timeout of a hook that declares none.
    pub default_hook_timeout_ms: u64,
}

/// Loaded plugins by id, and the hook table built from them.
pub struct PluginRegistry {
    plugins: RwLock<HashMap<String, Entry>>,
    /// Plugins out of service after crash-loop protection tripped whose fail-closed handlers
    /// of blocking hooks stay registered, held (see [`PluginRegistry::hold`]). Lock order:
    /// `plugins`, then `held`.
    held: RwLock<HashMap<String, Entry>>,
    hooks: RwLock<Arc<HookTable>>,
    next_seq: AtomicU64,
    deps: RegistryDeps,
}

impl PluginRegistry {
    /// An empty registry that loads plugins with `deps`.
    pub fn new(deps: RegistryDeps) -> PluginRegistry {
        PluginRegistry {
            plugins: RwLock::new(HashMap::new()),
            held: RwLock::new(HashMap::new()),
            hooks: RwLock::new(Arc::new(HookTable::default())),
            next_seq: AtomicU64::new(0),
            deps,
        }
    }

    /// The loaded plugin `id`.
    pub fn get(&self, id: &str) -> Option<Arc<LoadedPlugin>> {
        self.plugins
            .read()
            .expect("registry lock")
            .get(id)
            .map(|e| e.plugin.clone())
    }

    /// Every loaded plugin, by id.
    pub fn all(&self) -> Vec<Arc<LoadedPlugin>> {
        let mut all: Vec<Arc<LoadedPlugin>> = self
            .plugins
            .read()
            .expect("registry lock")
            .values()
            .map(|e| e.plugin.clone())
            .collect();
        all.sort_by(|a, b| a.id().cmp(b.id()));
        all
    }

    /// The loaded plugin providing `integration_type`.
    pub fn by_integration_type(&self, integration_type: &str) -> Option<Arc<LoadedPlugin>> {
        self.plugins
            .read()
            .expect("registry lock")
            .values()
            .find(|e| e.plugin.descriptor(integration_type).is_some())
            .map(|e| e.plugin.clone())
    }

    /// Ids of loaded plugins.
    pub fn loaded_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .plugins
            .read()
            .expect("registry lock")
            .keys()
            .cloned()
            .collect();
        ids.sort();
        ids
    }

    /// The hook table as of now (a dispatch keeps the one it started with).
    pub fn hook_table(&self) -> Arc<HookTable> {
        self.hooks.read().expect("hook table lock").clone()
    }

    /// Removes a plugin from service (new calls no longer reach it) and unregisters its hooks,
    /// held ones included (an operator's disable, uninstall, upgrade or rollback).
    pub fn deactivate(&self, id: &str) -> bool {
        let mut plugins = self.plugins.write().expect("registry lock");
        let removed = plugins.remove(id).is_some();
        let was_held = self.held.write().expect("held lock").remove(id).is_some();
        self.rebuild_hooks(&plugins);
        removed || was_held
    }

    /// Takes a plugin crash-loop protection tripped on out of service like
    /// [`Self::deactivate`], except that its fail-closed handlers of blocking hooks stay
    /// registered, held: never called, each blocks its operation until an operator enables,
    /// disables or uninstalls the plugin. (A plugin that guarded something with a fail-closed
    /// hook must not open it by failing.) Returns how many handlers are held.
    pub fn hold(&self, id: &str) -> usize {
        let mut plugins = self.plugins.write().expect("registry lock");
        let Some(entry) = plugins.remove(id) else {
            return 0;
        };
        self.held
            .write()
            .expect("held lock")
            .insert(id.to_string(), entry);
        self.rebuild_hooks(&plugins);
        let held = self.hook_table().held_count(id);
        if held == 0 {
            self.held.write().expect("held lock").remove(id);
        }
        held
    }

    /// Re-reads `id`'s hook overrides and re-registers its hooks (no-op when not loaded).
    pub async fn reload_overrides(&self, id: &str) -> Result<(), nitejar_store::DbError> {
        let overrides = self.deps.store.list_hook_overrides(id).await?;
        let mut plugins = self.plugins.write().expect("registry lock");
        if let Some(e) = plugins.get_mut(id) {
            e.overrides = overrides;
        }
        self.rebuild_hooks(&plugins);
        Ok(())
    }

    fn rebuild_hooks(&self, plugins: &HashMap<String, Entry>) {
        let held = self.held.read().expect("held lock");
        fn entry(e: &Entry, held: bool) -> TableEntry<'_> {
            TableEntry {
                plugin: &e.plugin,
                seq: e.seq,
                overrides: &e.overrides,
                held,
            }
        }
        let table = HookTable::build(
            plugins
                .values()
                .map(|e| entry(e, false))
                .chain(held.values().map(|e| entry(e, true))),
            self.deps.default_hook_timeout_ms,
        );
        *self.hooks.write().expect("hook table lock") = Arc::new(table);
    }

    /// Loads the current version of `id` with its grants and puts it in service.
    /// A failure is recorded on the plugin row and as a `load` receipt; it never panics.
    pub async fn activate(&self, id: &str) -> Result<Arc<LoadedPlugin>, String> {
        let prepared = self.prepare(id).await;
        self.commit(prepared).await
    }

    /// The first half of [`Self::activate`]: reads, verifies and loads the current version of
    /// `id` into the sandbox without putting it in service. Several may run at once (a boot
    /// prepares its plugins concurrently); [`Self::commit`] then puts each in service, in
    /// the order that decides which plugin gets a contested integration type.
    pub async fn prepare(&self, id: &str) -> Prepared {
        let started = Instant::now();
        let loaded = self.prepare_inner(id).await;
        Prepared {
            id: id.to_string(),
            started,
            loaded,
        }
    }

    /// The second half of [`Self::activate`]: puts a prepared plugin in service (unless another
    /// loaded plugin took one of its integration types meanwhile), and records the outcome on
    /// the plugin row and as a `load` receipt.
    pub async fn commit(&self, prepared: Prepared) -> Result<Arc<LoadedPlugin>, String> {
        let (result, outcome) = self.commit_unrecorded(prepared).await;
        self.record_loads(vec![outcome]).await;
        result
    }

    /// [`Self::commit`] but for the plugin row: the outcome is returned, to be recorded with
    /// [`Self::record_loads`] (a boot records all of its loads in one write: one each, waited
    /// for between loads that are put in service one after another, was a third of a boot).
    pub async fn commit_unrecorded(
        &self,
        prepared: Prepared,
    ) -> (Result<Arc<LoadedPlugin>, String>, LoadOutcome) {
        let Prepared {
            id,
            started,
            loaded,
        } = prepared;
        let id = id.as_str();
        let result = match loaded {
            Ok((plugin, overrides)) => self.put_in_service(id, plugin, overrides).await,
            Err(e) => Err(e),
        };
        let (status, detail, version) = match &result {
            Ok(p) => (
                "ok",
                serde_json::json!({ "cache": format!("{:?}", p.cache), "apiVersion": p.api_version }),
                Some(p.version().to_string()),
            ),
            Err(e) if e.starts_with(TRUST_REFUSAL) => (
                "blocked",
                serde_json::json!({ "error": e, "trustMode": self.deps.settings.trust.mode.as_str() }),
                None,
            ),
            Err(e) => ("error", serde_json::json!({ "error": e }), None),
        };
        let mut r = Receipt::new(id, "load", status)
            .duration(started.elapsed())
            .detail(detail);
        if let Some(v) = version {
            r = r.version(&v);
        }
        self.deps.receipts.emit(r);
        let outcome = LoadOutcome {
            id: id.to_string(),
            error: result.as_ref().err().cloned(),
        };
        (result, outcome)
    }

    /// Records loads' outcomes on their plugins' rows (the error, or none), in one write. A
    /// failure to write is logged: the `load` receipts have the outcomes too.
    pub async fn record_loads(&self, outcomes: Vec<LoadOutcome>) {
        let outcomes: Vec<(String, Option<String>)> =
            outcomes.into_iter().map(|o| (o.id, o.error)).collect();
        if let Err(e) = self.deps.store.set_plugin_load_errors(&outcomes).await {
            tracing::warn!("recording {} plugin loads failed: {e}", outcomes.len());
        }
    }

    async fn prepare_inner(&self, id: &str) -> Result<(LoadedPlugin, Overrides), String> {
        // Everything read here comes from one snapshot, in one read (a boot makes one each).
        let inputs = self
            .deps
            .store
            .load_inputs(id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("plugin {id} is not installed"))?;
        let row = &inputs.plugin;
        if self.deps.settings.safe_mode && !row.is_builtin() {
            return Err("safe mode: only built-in plugins are loaded".into());
        }
        let (Some(version), Some(checksum)) =
            (row.current_version.clone(), row.current_checksum.clone())
        else {
            return Err(format!("plugin {id} has no active version"));
        };
        let manifest = Manifest::parse(row.manifest_json.as_bytes()).map_err(|e| e.to_string())?;
        let wasm = read_verified_component(
            &*self.deps.store,
            &self.deps.settings,
            id,
            &version,
            &manifest,
            &checksum,
        )
        .await?;
        if !row.is_builtin() {
            // The policy in force decides, not the one at install time (a revoked key or a
            // stricter mode stops the plugin here).
            let verdict = self
                .deps
                .settings
                .trust
                .check(
                    id,
                    &version,
                    &checksum,
                    inputs
                        .version
                        .as_ref()
                        .and_then(PackageSignature::stored)
                        .as_ref(),
                    &row.source_kind,
                )
                .map_err(|e| format!("{TRUST_REFUSAL}{e}"))?;
            if verdict.level != row.trust() {
                let _ = self
                    .deps
                    .store
                    .set_trust_level(id, verdict.level.as_str())
                    .await;
            }
        }
        let grants = grants_for(&self.deps, &inputs)?;
        // Checked again when it goes into service; here so a refusal costs no load.
        self.check_integration_types(id, &manifest)?;
        let runtime = self.deps.runtime.clone();
        // `wasm` was just checked against `checksum`: its digest, not computed again.
        let loaded = tokio::task::spawn_blocking(move || {
            runtime.load_digested(&manifest, &wasm, &checksum, &grants)
        })
        .await
        .map_err(|e| format!("load task failed: {e}"))?
        .map_err(|e| e.to_string())?;
        Ok((loaded, inputs.hook_overrides))
    }

    /// Refuses a manifest whose integration types another loaded plugin provides.
    fn check_integration_types(&self, id: &str, manifest: &Manifest) -> Result<(), String> {
        for t in &manifest.contributes.integrations {
            if let Some(other) = self.by_integration_type(t).filter(|p| p.id() != id) {
                return Err(format!(
                    "integration type {t:?} is already provided by {}",
                    other.id()
                ));
            }
        }
        Ok(())
    }

    /// Puts a loaded plugin in service: registered, its hooks in the table, its instances
    /// prepared, its skills indexed.
    async fn put_in_service(
        &self,
        id: &str,
        loaded: LoadedPlugin,
        overrides: Overrides,
    ) -> Result<Arc<LoadedPlugin>, String> {
        self.check_integration_types(id, &loaded.manifest)?;
        let loaded = Arc::new(loaded);
        {
            let mut plugins = self.plugins.write().expect("registry lock");
            self.held.write().expect("held lock").remove(id);
            plugins.insert(
                id.to_string(),
                Entry {
                    plugin: loaded.clone(),
                    seq: self.next_seq.fetch_add(1, Ordering::Relaxed),
                    overrides,
                },
            );
            self.rebuild_hooks(&plugins);
        }
        self.deps.runtime.prewarm(&loaded);
        // Registers this version's skills (and drops the ones it no longer has).
        crate::skills::register_plugin(&self.deps.skills, &loaded)
            .await
            .map_err(|e| format!("registering skills failed: {e}"))?;
        Ok(loaded)
    }
}

/// The operator's grants for a plugin, with its secret values decrypted.
fn grants_for(deps: &RegistryDeps, inputs: &LoadInputs) -> Result<Grants, String> {
    let permissions = inputs
        .disclosures
        .iter()
        .filter(|a| a.acknowledged)
        .map(|a| a.permission.clone())
        .collect();
    let mut secret_values = std::collections::BTreeMap::new();
    for (key, enc) in &inputs.secrets {
        let value = deps
            .secrets
            .decrypt(enc)
            .map_err(|e| format!("secret {key}: {e}"))?;
        secret_values.insert(key.clone(), value);
    }
    Ok(Grants {
        permissions,
        secret_values,
        fuel_per_call: inputs.fuel_per_call,
    })
}
