//! The application: configuration, database, runtime, registry and receipts, booted together.
//!
//! Boot (spec §17.2): open the database and run migrations, start the receipt writer, build the
//! runtime, register bundled plugins, activate every enabled plugin (loaded concurrently, one
//! per core, and put in service one by one in a fixed order: built-ins first, then by install
//! time; a plugin that fails to load is recorded and skipped, never blocking boot; in safe mode
//! only built-ins are activated), re-queue jobs a stopped process left behind, make sure a
//! default agent exists, start the run workers, and emit a startup receipt summary.

use crate::agent::model::{ModelClient, ModelSettings, Provider};
use crate::agent::{Runner, Workers};
use crate::config::Config;
use crate::crypto::SecretBox;
use crate::hooks::{CrashGuard, HookDispatcher};
use crate::ingress::Ingress;
use crate::instances::Instances;
use crate::plugins::registry::{PluginRegistry, Prepared, RegistryDeps};
use crate::plugins::{PluginSettings, Plugins};
use crate::receipts::{Receipt, ReceiptSink, ReceiptWriter};
use crate::skills::SkillCatalog;
use futures::StreamExt;
use nitejar_sandbox::runtime::{PluginRuntime, RuntimeOptions};
use nitejar_store::Store;
use std::sync::Arc;

/// Receipt plugin id for host-level events (startup summaries).
pub const HOST_RECEIPT_ID: &str = "nitejar.host";

/// The booted host: each domain service with exactly the dependencies it was built with, and
/// the shared parts the HTTP layer reads directly. Domain code never takes an `App`: it takes
/// its service ([`Plugins`], [`Instances`], [`Ingress`], [`Runner`], [`SkillCatalog`],
/// [`PluginRegistry`]).
pub struct App {
    /// Configuration.
    pub config: Arc<Config>,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The sandbox.
    pub runtime: Arc<PluginRuntime>,
    /// Loaded plugins and the hook table.
    pub registry: Arc<PluginRegistry>,
    /// Runs hook chains.
    pub dispatcher: Arc<HookDispatcher>,
    /// Failures per plugin (crash-guard accounting).
    pub crash_guard: Arc<CrashGuard>,
    /// The plugin domain: install, upgrade, rollback, enable, grants, secrets, doctor.
    pub plugins: Arc<Plugins>,
    /// Integration instances.
    pub instances: Instances,
    /// Webhook ingress.
    pub ingress: Arc<Ingress>,
    /// Agent runs.
    pub runner: Arc<Runner>,
    /// The skills index.
    pub skills: Arc<SkillCatalog>,
    /// Agent-run workers.
    pub workers: Workers,
    /// The runtime the run workers run on, scheduled after the ingress's threads.
    pub runs: crate::agent::runs_runtime::RunsRuntime,
    /// Whether the webhook ingress is saturated (run workers yield to it).
    pub ingress_load: Arc<crate::agent::ingress_load::IngressLoad>,
    /// Receipts.
    pub receipts: ReceiptSink,
    /// Admin API bearer token.
    pub admin_token: String,
}

/// Handles needed to stop cleanly.
pub struct Shutdown {
    writer: ReceiptWriter,
    workers: Vec<tokio::task::JoinHandle<()>>,
    guardian: tokio::task::JoinHandle<()>,
}

impl Shutdown {
    /// Stops the run workers (a run in progress is re-queued at the next boot), flushes every
    /// queued receipt and closes the database.
    pub async fn run(self, app: Arc<App>) {
        self.guardian.abort();
        app.workers.stop();
        for w in &self.workers {
            w.abort();
        }
        for w in self.workers {
            let _ = w.await;
        }
        self.writer.shutdown(app.receipts.clone()).await;
        app.store.close().await;
    }
}

impl App {
    /// Boots the application.
    pub async fn start(config: Config) -> anyhow::Result<(Arc<App>, Shutdown)> {
        let config = Arc::new(config);
        writable_data_dir(&config)?;
        for dir in [&config.plugins_dir, &config.staging_dir, &config.cache_dir] {
            std::fs::create_dir_all(dir).map_err(|e| {
                anyhow::anyhow!(
                    "cannot create {} ({e}); check that it is writable or set the variable that moves it",
                    dir.display()
                )
            })?;
        }
        // A crash mid-install leaves only staging leftovers: clear them.
        for entry in std::fs::read_dir(&config.staging_dir)?.flatten() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
        let store = nitejar_store::open_with(&config.database_path, config.durability)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot open the database {} ({e}); it must be a writable file in a writable directory (DATABASE_URL moves it)",
                    config.database_path.display()
                )
            })?;
        let (receipts, writer) =
            ReceiptWriter::start(store.clone() as Arc<dyn nitejar_store::EventStore>);
        let secrets = SecretBox::from_config(config.encryption_key.as_deref(), &config.data_dir)?;
        let admin_token = admin_token(&config)?;
        let crash_guard = Arc::new(CrashGuard::new(
            std::time::Duration::from_millis(config.crash_window_ms),
            config.crash_threshold,
        ));
        let (trips, mut tripped) = tokio::sync::mpsc::unbounded_channel();
        crash_guard.set_notifier(trips);
        // The instance pool is sized for the plugins installed now, with room for more.
        let installed = store.list_plugins().await?.len();
        let pool_instances =
            nitejar_sandbox::limits::pool_instances_for(installed, config.run_workers);
        let runtime = Arc::new(PluginRuntime::new(RuntimeOptions {
            memory_bytes: config.guest_memory_bytes,
            cache_dir: config.cache_dir.clone(),
            files_root: config.data_dir.join("plugin-files"),
            outbound_overrides: config.outbound_overrides.clone(),
            kv: Some(store.clone()),
            kv_quota: config.kv_quota,
            receipts: receipts.clone(),
            crash_guard: Some(crash_guard.clone()),
            fuel: true,
            pool_instances,
            idle_code_release: Some(std::time::Duration::from_millis(
                nitejar_sandbox::limits::IDLE_CODE_RELEASE_MS,
            )),
            inline_budget_ms: nitejar_sandbox::limits::INLINE_BUDGET_MS,
        })?);
        let dispatcher = Arc::new(HookDispatcher::new(
            runtime.clone(),
            config.hook_chain_budget_ms,
            crash_guard.clone(),
        ));
        let skills = Arc::new(SkillCatalog {
            store: store.clone(),
            receipts: receipts.clone(),
            skills_dir: config.skills_dir.clone(),
            plugins_dir: config.plugins_dir.clone(),
        });
        let settings = Arc::new(PluginSettings::from_config(&config));
        let registry = Arc::new(PluginRegistry::new(RegistryDeps {
            store: store.clone(),
            runtime: runtime.clone(),
            secrets: secrets.clone(),
            receipts: receipts.clone(),
            skills: skills.clone(),
            settings: settings.clone(),
            default_hook_timeout_ms: config.hook_timeout_ms,
        }));
        let plugins = Arc::new(Plugins {
            store: store.clone(),
            registry: registry.clone(),
            runtime: runtime.clone(),
            receipts: receipts.clone(),
            crash_guard: crash_guard.clone(),
            secrets: secrets.clone(),
            skills: skills.clone(),
            config: settings,
        });
        let workers = Workers::default();
        let runs = crate::agent::runs_runtime::RunsRuntime::start(config.run_nice)?;
        // The runtime this is called on serves the requests (the server's main runtime).
        let ingress_load = crate::agent::ingress_load::IngressLoad::watch(
            tokio::runtime::Handle::current(),
            runs.handle(),
            config.run_yield_percent,
        );
        let app = Arc::new(App {
            instances: Instances {
                store: store.clone(),
                registry: registry.clone(),
                runtime: runtime.clone(),
                secrets: secrets.clone(),
                public_url: config.public_url.clone(),
                integration_timeout_ms: config.integration_timeout_ms,
            },
            ingress: Arc::new(Ingress {
                store: store.clone(),
                registry: registry.clone(),
                dispatcher: dispatcher.clone(),
                runtime: runtime.clone(),
                secrets: secrets.clone(),
                workers: workers.clone(),
                receipts: receipts.clone(),
                writer: crate::ingress::writer::WorkItemWriter::start(store.clone()),
                integration_timeout_ms: config.integration_timeout_ms,
                latency: Default::default(),
            }),
            runner: Arc::new(Runner {
                store: store.clone(),
                registry: registry.clone(),
                dispatcher: dispatcher.clone(),
                runtime: runtime.clone(),
                models: ModelClient::new(
                    config.model_base_url.clone(),
                    config.model_api_key.clone(),
                ),
                secrets,
                skills: skills.clone(),
                hook_timeout_ms: config.hook_timeout_ms,
                integration_timeout_ms: config.integration_timeout_ms,
            }),
            config,
            store,
            runtime,
            registry,
            dispatcher,
            crash_guard,
            plugins,
            skills,
            workers,
            runs,
            ingress_load,
            receipts,
            admin_token,
        });
        let started = std::time::Instant::now();
        let bundled = crate::plugins::bundled::register_all(&app.plugins).await?;
        let skills = crate::skills::sync_repo(&app.skills).await?;
        for p in &skills.problems {
            tracing::warn!("skills directory: {p}");
        }
        let cleaned = crate::plugins::installer::reconcile(&app.plugins).await?;
        let mut loaded = Vec::new();
        let mut failed = Vec::new();
        let mut skipped = Vec::new();
        // Built-ins first, then in install order: deterministic, and a built-in's integration
        // types are never taken by a plugin that happened to load before it.
        let mut rows = app.store.list_plugins().await?;
        rows.sort_by_key(|r| (!r.is_builtin(), r.installed_at, r.id.clone()));
        // What to activate, in that order (`true`: held after, see below).
        let mut to_activate: Vec<(String, bool)> = Vec::new();
        for row in rows {
            if let Some(v) = &row.current_version {
                let dir = app.config.plugins_dir.join(&row.id);
                match crate::plugins::installer::ensure_current(&dir, v) {
                    Ok(true) => tracing::warn!(
                        plugin.id = %row.id,
                        "`current` did not point at the recorded version {v}; repaired"
                    ),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(plugin.id = %row.id, "repairing `current`: {e}"),
                }
            }
            if !row.enabled {
                // Crash-loop protection disabled it: activated, then held (see below).
                if row.crash_loop_disabled() {
                    to_activate.push((row.id, true));
                }
                continue;
            }
            if app.config.safe_mode && !row.is_builtin() {
                app.receipts
                    .emit(
                        Receipt::new(&row.id, "load", "blocked").detail(serde_json::json!({
                            "reason": "safe mode: only built-in plugins are loaded",
                        })),
                    );
                skipped.push(row.id);
                continue;
            }
            to_activate.push((row.id, false));
        }
        // Loaded concurrently (reading, verifying and mapping a component and its describe
        // calls are most of a boot), put in service one by one in the order above. Four per
        // core: a load also waits (on its blocking task, the disk), which the others overlap.
        let concurrency = std::thread::available_parallelism()
            .map_or(8, |n| n.get().saturating_mul(4).clamp(4, 16));
        // Instances ahead of demand, and handing loaded code back, wait until every plugin is
        // in service (they would take the cores from the loads; see `hold_prewarm`).
        let prewarm_hold = app.runtime.hold_prewarm();
        let registry = app.registry.clone();
        let mut loads = futures::stream::iter(to_activate)
            .map(move |(id, hold)| {
                let registry = registry.clone();
                let started = std::time::Instant::now();
                let task = tokio::spawn({
                    let id = id.clone();
                    async move { registry.prepare(&id).await }
                });
                async move {
                    let prepared = task.await.unwrap_or_else(|e| {
                        let error = format!("loading stopped unexpectedly: {e}");
                        Prepared::failed(&id, started, error)
                    });
                    (id, prepared, hold)
                }
            })
            .buffered(concurrency);
        let mut outcomes = Vec::new();
        while let Some((id, prepared, hold)) = loads.next().await {
            // A failure (a panicked load too) is recorded on the row and as a `load` receipt.
            let (result, outcome) = app.registry.commit_unrecorded(prepared).await;
            outcomes.push(outcome);
            if hold {
                // Held across restarts: a plugin crash-loop protection disabled keeps its
                // fail-closed handlers of blocking hooks in place, blocking, until an operator
                // acts (PluginRegistry::hold).
                if result.is_ok() {
                    let held = app.registry.hold(&id);
                    tracing::warn!(plugin.id = %id, held, "disabled by crash-loop protection; fail-closed handlers held");
                }
                continue;
            }
            match result {
                Ok(_) => loaded.push(id),
                Err(e) => {
                    tracing::warn!(plugin.id = %id, "plugin failed to load: {e}");
                    failed.push(serde_json::json!({ "pluginId": id, "error": e }));
                }
            }
        }
        app.registry.record_loads(outcomes).await;
        drop(prewarm_hold);
        let requeued = app.store.requeue_orphaned_jobs().await?;
        ensure_default_agent(&*app.store, &app.config).await?;
        let workers = app.workers.start(
            &app.runner,
            app.config.run_workers,
            app.runs.handle(),
            &app.ingress_load,
        );
        app.receipts.emit(
            Receipt::new(
                HOST_RECEIPT_ID,
                "startup",
                if failed.is_empty() { "ok" } else { "error" },
            )
            .version(nitejar_sandbox::manifest::HOST_VERSION)
            .duration(started.elapsed())
            .detail(serde_json::json!({
                "bundled": bundled, "loaded": loaded, "failed": failed, "requeuedJobs": requeued,
                "safeMode": app.config.safe_mode, "skippedBySafeMode": skipped,
                "repoSkills": skills.synced.len(), "skillProblems": skills.problems,
                "cleanedAfterCrash": cleaned, "trustMode": app.config.trust.mode.as_str(),
            })),
        );
        // Crash-loop trips: the guard already refuses calls; this disables the plugin for good.
        let plugins = Arc::downgrade(&app.plugins);
        let guardian = tokio::spawn(async move {
            while let Some((id, failures)) = tripped.recv().await {
                let Some(plugins) = plugins.upgrade() else {
                    break;
                };
                crate::plugins::access::disable_after_crash_loop(&plugins, &id, failures).await;
            }
        });
        Ok((
            app,
            Shutdown {
                writer,
                workers,
                guardian,
            },
        ))
    }
}

/// Makes sure the data directory exists and is writable, or says which path and what to do
/// (instead of a bare "Read-only file system (os error 30)").
fn writable_data_dir(config: &Config) -> anyhow::Result<()> {
    let dir = &config.data_dir;
    let probe = dir.join(".nitejar-write-check");
    std::fs::create_dir_all(dir)
        .and_then(|_| std::fs::write(&probe, b"ok"))
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| {
            anyhow::anyhow!(
                "the data directory {} is not writable ({e}): nitejar keeps its database, plugins, keys and receipts there; set NITEJAR_DATA_DIR to a writable directory, or mount a writable volume there (Docker: -v nitejar-data:/app/data)",
                dir.display()
            )
        })
}

/// Name of the agent created at first boot; it answers instances without an assignment.
pub const DEFAULT_AGENT_NAME: &str = "default";

/// Creates the default agent on first boot (provider and model from the configuration).
async fn ensure_default_agent(store: &dyn Store, config: &Config) -> anyhow::Result<()> {
    if store.list_agents().await?.iter().any(|a| a.is_default) {
        return Ok(());
    }
    let provider = if config.default_provider == "openai" {
        Provider::Openai
    } else {
        Provider::Offline
    };
    let settings = ModelSettings {
        provider,
        model: config.default_model.clone(),
        temperature: 0.2,
        max_tokens: 1024,
        max_turns: crate::limits::DEFAULT_MAX_TURNS,
    };
    store
        .insert_agent(
            &nitejar_store::AgentFields {
                name: DEFAULT_AGENT_NAME,
                system_prompt: "You are Nitejar, a helpful assistant. Answer briefly.",
                model_json: &serde_json::to_string(&settings)?,
                team: None,
            },
            true,
        )
        .await?;
    Ok(())
}

/// The configured admin token, or one generated into `<data>/admin-token` (owner-only).
fn admin_token(config: &Config) -> anyhow::Result<String> {
    if let Some(t) = &config.admin_token {
        anyhow::ensure!(
            t.len() >= 16,
            "NITEJAR_ADMIN_TOKEN must be at least 16 characters"
        );
        return Ok(t.clone());
    }
    let path = config.data_dir.join("admin-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        return Ok(t.trim().to_string());
    }
    use aes_gcm::aead::{OsRng, rand_core::RngCore};
    let mut bytes = [0u8; 24];
    OsRng.fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    crate::crypto::write_owner_only(&path, token.as_bytes())?;
    tracing::warn!(
        "NITEJAR_ADMIN_TOKEN is not set: generated an admin token in {} (owner-only)",
        path.display()
    );
    Ok(token)
}
