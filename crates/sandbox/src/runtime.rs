//! The sandboxed plugin runtime: one engine, components compiled once per digest and cached,
//! and the bounded instances every call runs in.
//!
//! Integration and load-time calls (parse-webhook, validate-config, test-connection, describe)
//! each get a fresh instance in a fresh store, dropped after the call. An agent run takes one
//! instance per plugin ([`PluginRuntime::checkout`], usually prepared ahead of demand) for all
//! its hook, tool and delivery calls, and retires it at the end of the run: guest state is
//! shared within a run and never across runs. Every store has an epoch deadline (reset per
//! call), a memory/table limiter, no environment, no inherited stdio, only the granted
//! preopens, and capability state built from the plugin's policies. A trap, timeout or limit
//! hit becomes a classified [`PluginFailure`] with a receipt (and poisons the instance); the
//! engine and every other plugin keep serving.

use crate::capabilities::filesystem::FilesystemPolicy;
use crate::capabilities::kv::{KvQuota, KvStore};
use crate::capabilities::log::LogState;
use crate::capabilities::network::{NetworkPolicy, NetworkRule, OutboundOverrides};
use crate::capabilities::secrets::{SecretsPolicy, policy_for};

use crate::bindings::exports::nitejar::plugin::{hooks, integration, metadata, skills, tools};
use crate::bindings::nitejar::plugin::types::PluginError as WitPluginError;
pub use crate::failure::PluginFailure;
use crate::hooks::{HookEvent, HookName};
use crate::instance::{Prewarmer, StoreFactory, Warm, invoke};
use crate::limits::{DEFAULT_INSPECT_TIMEOUT_MS, MAX_CONCURRENT_CALLS_PER_PLUGIN};
use crate::manifest::{HookRegistration, Manifest};
use crate::output::OutputSize;
use crate::receipts::{CallDetail, Detail, HandlerDetail, Receipt, ReceiptSink};
use crate::store::HostState;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, HasSelf, Instance, InstancePre, Linker};
use wasmtime::{Engine, Store};

/// Why a plugin could not be loaded; the message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a valid component for this host.
    #[error("the component could not be compiled: {0}")]
    Compile(String),
    /// The component targets an API version or imports something this host does not provide.
    #[error("the component is incompatible with this host: {0}")]
    Incompatible(String),
    /// The component and its manifest disagree.
    #[error("the component does not match its manifest: {0}")]
    Mismatch(String),
    /// Inspecting the component (calling its describe exports) failed.
    #[error("inspecting the component failed: {0}")]
    Inspect(#[from] PluginFailure),
    /// A directory could not be prepared.
    #[error("preparing the plugin's files failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The operator's grants for one plugin.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// Granted disclosure keys (`network:<rule>`, `secret:<key>`, `fs:read:<dir>`, ...).
    pub permissions: BTreeSet<String>,
    /// Decrypted values of the plugin's secrets (only declared + granted ones are used).
    pub secret_values: BTreeMap<String, String>,
    /// The operator's instruction budget per call for this plugin, overriding the manifest's
    /// and the defaults (capped at [`crate::limits::MAX_FUEL_PER_CALL`]).
    pub fuel_per_call: Option<u64>,
}

impl Grants {
    /// Every declared permission granted (built-in plugins, tests).
    pub fn all_declared(manifest: &Manifest) -> Grants {
        Grants {
            permissions: manifest.disclosures().into_iter().collect(),
            secret_values: BTreeMap::new(),
            fuel_per_call: None,
        }
    }
}

/// What a component says it implements (host-side copy of `metadata.contributions`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Contributions {
    /// Integration types.
    pub integrations: Vec<String>,
    /// Hook events.
    pub hooks: Vec<HookName>,
    /// Tool names.
    pub tools: Vec<String>,
    /// Skill ids.
    pub skills: Vec<String>,
}

/// Export lookups resolved once per component.
pub(crate) struct ExportIndices {
    pub(crate) metadata: Option<metadata::GuestIndices>,
    pub(crate) integration: Option<integration::GuestIndices>,
    pub(crate) hooks: Option<hooks::GuestIndices>,
    pub(crate) tools: Option<tools::GuestIndices>,
    pub(crate) skills: Option<skills::GuestIndices>,
}

/// A compiled, validated plugin version ready to be called.
pub struct LoadedPlugin {
    /// The manifest.
    pub manifest: Manifest,
    /// sha256 of the component bytes.
    pub digest: String,
    /// WIT package version the component targets.
    pub api_version: String,
    /// What the component implements.
    pub contributions: Contributions,
    /// Its hook registrations, as its manifest declares them (checked against `contributions`
    /// at load; the hook table is built from these).
    pub hook_registrations: Vec<HookRegistration>,
    /// Integration descriptors (from `integration.describe`).
    pub integrations: Vec<integration::Descriptor>,
    /// Tools the component offers (from `tools.list-tools`).
    pub tools: Vec<tools::ToolDefinition>,
    /// Skills the component contributes (from `skills.list-skills`).
    pub skills: Vec<skills::Skill>,
    /// Whether the component came from the compile cache.
    pub cache: crate::cache::CacheOutcome,
    pub(crate) id: Arc<str>,
    pub(crate) version: Arc<str>,
    pub(crate) pre: InstancePre<HostState>,
    /// The restricted instance for parse calls on the caller's thread ([`crate::inline`]),
    /// prepared at the first webhook (boot and other plugins never pay for it); `None` where it
    /// could not be prepared.
    inline_pre: std::sync::OnceLock<Option<InstancePre<HostState>>>,
    /// Attempts on the caller's thread that ran out of time; at
    /// [`crate::limits::INLINE_STRIKES`] (or at once for any other stop) this version's parse
    /// calls go to a blocking thread from then on.
    inline_strikes: std::sync::atomic::AtomicU32,
    pub(crate) exports: ExportIndices,
    pub(crate) network: Arc<NetworkPolicy>,
    pub(crate) secrets: Arc<SecretsPolicy>,
    pub(crate) filesystem: FilesystemPolicy,
    pool: Mutex<Vec<Warm>>,
    /// Calls on fresh instances in progress (bounded by [`MAX_CONCURRENT_CALLS_PER_PLUGIN`]).
    in_flight: std::sync::atomic::AtomicUsize,
    /// Where async callers (webhooks) wait their turn for one of those slots.
    call_queue: Arc<tokio::sync::Semaphore>,
    /// Instances to keep prepared: grows by one each time a run found none ready (see
    /// [`crate::limits::PREWARMED_INSTANCES`]).
    prewarm_target: std::sync::atomic::AtomicUsize,
    /// The instruction budget of every call, when the operator or the manifest set one.
    pub(crate) fuel_per_call: Option<u64>,
    /// Who set it: `operator`, `manifest`, or `default` (none set).
    fuel_source: &'static str,
    /// Instructions used by this version's calls so far (calls, total).
    metered: (std::sync::atomic::AtomicU64, std::sync::atomic::AtomicU64),
    /// Set whenever the plugin's code runs (an instance made, a call); the prewarm thread
    /// clears it and hands the code of plugins idle since its last look back to the kernel.
    pub(crate) code_used: Arc<std::sync::atomic::AtomicBool>,
    /// The compile-cache file the code is mapped from.
    pub(crate) image_file: PathBuf,
}

/// A call slot of one plugin, released when dropped.
struct Admitted<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl LoadedPlugin {
    /// The instruction budget of one call of `kind` (`hook`, `integration`, `tool`, `load`).
    pub fn fuel_budget(&self, kind: &str) -> u64 {
        self.fuel_per_call
            .unwrap_or_else(|| crate::limits::default_fuel(kind))
    }

    /// The instruction budget of every call set by the operator or the manifest, if any.
    pub fn fuel_per_call(&self) -> Option<u64> {
        self.fuel_per_call
    }

    /// Who set [`Self::fuel_per_call`]: `operator`, `manifest`, or `default` (none set).
    pub fn fuel_source(&self) -> &'static str {
        self.fuel_source
    }

    /// Instructions this loaded version used: (calls metered, total instructions).
    pub fn instructions_used(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering;
        (
            self.metered.0.load(Ordering::Relaxed),
            self.metered.1.load(Ordering::Relaxed),
        )
    }

    /// Counts one call's instructions.
    fn meter(&self, used: Option<u64>) {
        use std::sync::atomic::Ordering;
        if let Some(used) = used {
            self.metered.0.fetch_add(1, Ordering::Relaxed);
            self.metered.1.fetch_add(used, Ordering::Relaxed);
        }
    }

    /// Waits up to `wait` for a turn at one of the plugin's call slots, for calls made from
    /// async code (webhooks): a burst of deliveries queues for the few milliseconds the calls
    /// ahead take instead of being refused as busy; `None` when the slots stayed full (the
    /// plugin's calls are slow or stuck: busy, 503). Hold the permit for the call.
    pub async fn queue_for_call(
        &self,
        wait: std::time::Duration,
    ) -> Option<tokio::sync::OwnedSemaphorePermit> {
        tokio::time::timeout(wait, self.call_queue.clone().acquire_owned())
            .await
            .ok()?
            .ok()
    }

    /// Takes one of the plugin's call slots, or `None` when all are in use: one plugin's slow
    /// calls fill its own slots, never the host's shared instance pool.
    fn admit(&self) -> Option<Admitted<'_>> {
        use std::sync::atomic::Ordering;
        let n = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let slot = Admitted(&self.in_flight);
        (n < MAX_CONCURRENT_CALLS_PER_PLUGIN).then_some(slot)
    }

    /// Plugin id.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// Plugin version.
    pub fn version(&self) -> &str {
        &self.version
    }
    /// Where the plugin's compiled image is mapped in this process (its code and data, see
    /// [`crate::cache`]): for looking at what of it is resident.
    pub fn image_range(&self) -> std::ops::Range<usize> {
        let r = self.pre.component().image_range();
        r.start as usize..r.end as usize
    }
    /// Whether runs call this plugin (hooks or tools), so instances are prepared ahead of demand.
    pub fn serves_runs(&self) -> bool {
        !self.contributions.hooks.is_empty() || !self.tools.is_empty()
    }
    /// Instances to keep prepared now.
    pub(crate) fn prewarm_target(&self) -> usize {
        self.prewarm_target
            .load(std::sync::atomic::Ordering::Relaxed)
    }
    /// A run found no instance ready: keep one more prepared (up to the most).
    fn prewarm_more(&self) {
        use std::sync::atomic::Ordering;
        let _ = self
            .prewarm_target
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < crate::limits::PREWARMED_INSTANCES).then_some(n + 1)
            });
    }
    /// Instances of this plugin prepared and waiting for a run.
    pub fn pool_len(&self) -> usize {
        self.pool.lock().map(|p| p.len()).unwrap_or(0)
    }
    pub(crate) fn pool_put(&self, warm: Warm) {
        if let Ok(mut p) = self.pool.lock() {
            p.push(warm);
        }
    }
    pub(crate) fn pool_take(&self) -> Option<Warm> {
        self.pool.lock().ok().and_then(|mut p| p.pop())
    }
    /// The descriptor of `integration_type`, if this plugin provides it.
    pub fn descriptor(&self, integration_type: &str) -> Option<&integration::Descriptor> {
        self.integrations
            .iter()
            .find(|d| d.integration_type == integration_type)
    }
}

/// Room in the instance pool held for one run (see [`PluginRuntime::reserve_instances`]);
/// given back when dropped.
#[derive(Debug)]
pub struct InstanceReservation(Option<tokio::sync::OwnedSemaphorePermit>);

impl InstanceReservation {
    /// Instances reserved.
    pub fn instances(&self) -> usize {
        self.0.as_ref().map_or(0, |p| p.num_permits())
    }
}

/// Correlation ids for a call's receipts.
#[derive(Debug, Clone, Default)]
pub struct Correlation {
    /// Work item.
    pub work_item_id: Option<String>,
    /// Job.
    pub job_id: Option<String>,
}

/// No correlation (calls outside a work item's run).
static NO_CORRELATION: Correlation = Correlation {
    work_item_id: None,
    job_id: None,
};

/// How to run one call.
#[derive(Clone)]
pub(crate) struct CallSpec<'a> {
    pub(crate) kind: &'static str,
    pub(crate) operation: &'static str,
    pub(crate) hook: Option<HookName>,
    pub(crate) timeout_ms: u64,
    pub(crate) correlation: &'a Correlation,
    /// Bytes of strings and lists the call hands the guest; the output cap grows by this much
    /// (a hook may return what it was given, changed, without being blamed for its size).
    pub(crate) input_bytes: usize,
}

impl<'a> CallSpec<'a> {
    /// A non-hook call of `kind`/`operation` stopped after `timeout_ms`.
    pub(crate) fn new(
        kind: &'static str,
        operation: &'static str,
        timeout_ms: u64,
        correlation: &'a Correlation,
    ) -> Self {
        CallSpec {
            kind,
            operation,
            hook: None,
            timeout_ms,
            correlation,
            input_bytes: 0,
        }
    }
}

/// Everything needed to build the runtime.
pub struct RuntimeOptions {
    /// Per-instance memory limit.
    pub memory_bytes: usize,
    /// Compiled-component cache directory.
    pub cache_dir: PathBuf,
    /// Root of the plugins' file areas (`<data>/plugin-files`).
    pub files_root: PathBuf,
    /// Operator outbound overrides.
    pub outbound_overrides: OutboundOverrides,
    /// Where the kv capability stores values (none: kv calls answer `unavailable`).
    pub kv: Option<Arc<dyn KvStore>>,
    /// Every plugin's kv quota.
    pub kv_quota: KvQuota,
    /// Receipt sink.
    pub receipts: ReceiptSink,
    /// Crash-loop protection: crashes of non-hook calls are counted here, and no call is made
    /// to a plugin it tripped on.
    pub crash_guard: Option<Arc<crate::crash_guard::CrashGuard>>,
    /// Instruction budgets (wasmtime fuel). On in the product; benchmarks turn it off to
    /// measure what it costs.
    pub fuel: bool,
    /// Component instances alive at once ([`crate::limits::pool_instances_for`] the plugins
    /// installed and the run workers; [`crate::limits::POOL_TOTAL_COMPONENT_INSTANCES`] when
    /// unsure).
    pub pool_instances: u32,
    /// How often the prewarm thread hands idle plugins' code back to the kernel
    /// ([`crate::limits::IDLE_CODE_RELEASE_MS`] in the product); `None`: only when asked
    /// ([`PluginRuntime::release_idle_code`]) and once after each plugin's first instances.
    pub idle_code_release: Option<std::time::Duration>,
    /// How long a webhook's parse call may run on the async worker that took the request before
    /// it is stopped and run on a blocking thread ([`crate::inline`]);
    /// [`crate::limits::INLINE_BUDGET_MS`] in the product.
    pub inline_budget_ms: u64,
}

/// The plugin runtime (one per process).
pub struct PluginRuntime {
    engine: Engine,
    linker: Linker<HostState>,
    cache: crate::cache::ComponentCache,
    _ticker: crate::engine::EpochTicker,
    files_root: PathBuf,
    overrides: OutboundOverrides,
    receipts: ReceiptSink,
    factory: Arc<StoreFactory>,
    prewarmer: Prewarmer,
    pool_hits: std::sync::atomic::AtomicU64,
    /// The instance pool's room for runs and webhook hook chains, one permit per instance
    /// (see [`PluginRuntime::reserve_instances`]).
    run_room: Arc<tokio::sync::Semaphore>,
    run_room_total: usize,
    pool_misses: std::sync::atomic::AtomicU64,
    /// Parse calls on callers' threads in progress, up to [`crate::inline::inline_room`].
    inline_room: tokio::sync::Semaphore,
    /// How long one may run there ([`RuntimeOptions::inline_budget_ms`]).
    inline_budget_ms: u64,
    /// Parse calls answered on the caller's thread, and attempts handed to a blocking thread.
    inline_counts: (std::sync::atomic::AtomicU64, std::sync::atomic::AtomicU64),
    crash_guard: Option<Arc<crate::crash_guard::CrashGuard>>,
}

/// A plugin call's result plus what the receipt needs.
pub(crate) struct Finished<R> {
    pub(crate) result: Result<R, PluginFailure>,
    pub(crate) duration: Duration,
    pub(crate) logs: LogState,
    /// Instructions the call used (none when budgets are off or the call never ran).
    pub(crate) fuel_used: Option<u64>,
}

impl PluginRuntime {
    /// Builds the engine, linker, cache and epoch ticker.
    pub fn new(opts: RuntimeOptions) -> anyhow::Result<PluginRuntime> {
        let engine =
            crate::engine::build_engine(opts.memory_bytes, opts.fuel, opts.pool_instances)?;
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        crate::capabilities::filesystem::link_open_guard(&mut linker)?;
        crate::capabilities::network::link_name_lookup_refusal(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker)?;
        crate::capabilities::blocking::link_bounded_waits(&mut linker)?;
        crate::bindings::Plugin::add_to_linker::<HostState, HasSelf<HostState>>(
            &mut linker,
            |s| s,
        )?;
        let cache = crate::cache::ComponentCache::new(&opts.cache_dir, &engine)?;
        let ticker = crate::engine::EpochTicker::start(engine.clone());
        let factory = Arc::new(StoreFactory {
            memory_bytes: opts.memory_bytes,
            kv: opts.kv,
            kv_quota: opts.kv_quota,
            receipts: opts.receipts.clone(),
            handle: tokio::runtime::Handle::try_current().ok(),
        });
        let prewarmer = Prewarmer::start(factory.clone(), opts.idle_code_release);
        let run_room_total = (opts.pool_instances as usize)
            .saturating_sub(crate::limits::POOL_OUTSIDE_RUNS)
            .max(1);
        Ok(PluginRuntime {
            run_room: Arc::new(tokio::sync::Semaphore::new(run_room_total)),
            run_room_total,
            engine,
            linker,
            cache,
            _ticker: ticker,
            files_root: opts.files_root,
            overrides: opts.outbound_overrides,
            receipts: opts.receipts,
            factory,
            prewarmer,
            pool_hits: Default::default(),
            pool_misses: Default::default(),
            inline_room: tokio::sync::Semaphore::new(crate::inline::inline_room()),
            inline_budget_ms: opts.inline_budget_ms,
            inline_counts: Default::default(),
            crash_guard: opts.crash_guard,
        })
    }

    /// The engine (benchmarks compare against bare wasmtime on it).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The receipt sink.
    pub fn receipts(&self) -> &ReceiptSink {
        &self.receipts
    }

    /// Where a plugin's file area lives.
    pub fn files_dir(&self, plugin_id: &str) -> PathBuf {
        self.files_root.join(plugin_id)
    }

    /// Compiles (or loads from cache), validates against the manifest, and inspects a component.
    pub fn load(
        &self,
        manifest: &Manifest,
        wasm: &[u8],
        grants: &Grants,
    ) -> Result<LoadedPlugin, LoadError> {
        self.load_digested(manifest, wasm, &crate::cache::sha256_hex(wasm), grants)
    }

    /// [`Self::load`] for a component whose SHA-256 (lower-case hex, [`crate::cache::sha256_hex`])
    /// the caller just checked: `digest` names its compiled copy in the cache, so it must be
    /// the digest of `wasm` (the compiled file is trusted by its name).
    pub fn load_digested(
        &self,
        manifest: &Manifest,
        wasm: &[u8],
        digest: &str,
        grants: &Grants,
    ) -> Result<LoadedPlugin, LoadError> {
        let digest = digest.to_string();
        let (component, cache) = self
            .cache
            .load(&self.engine, &digest, wasm)
            .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        let api_version = check_component_shape(&self.engine, &component, manifest)?;
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            LoadError::Incompatible(format!(
                "{e:#} (the host provides WASI 0.2, wasi:http and nitejar:plugin@0.1.0)"
            ))
        })?;
        let exports = ExportIndices {
            metadata: metadata::GuestIndices::new(&pre).ok(),
            integration: integration::GuestIndices::new(&pre).ok(),
            hooks: hooks::GuestIndices::new(&pre).ok(),
            tools: tools::GuestIndices::new(&pre).ok(),
            skills: skills::GuestIndices::new(&pre).ok(),
        };
        let files_dir = self.files_dir(&manifest.id);
        let p = &manifest.permissions;
        let filesystem = FilesystemPolicy::new(
            &files_dir,
            &p.filesystem_read,
            &p.filesystem_write,
            &grants.permissions,
        );
        filesystem.prepare()?;
        let (granted, ungranted): (Vec<NetworkRule>, Vec<NetworkRule>) = p
            .network
            .iter()
            .filter_map(|r| NetworkRule::parse(r).ok())
            .partition(|r| grants.permissions.contains(&format!("network:{}", r.raw)));
        let granted_secrets = grants
            .secret_values
            .iter()
            .filter(|(k, _)| grants.permissions.contains(&format!("secret:{k}")))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let image_file = self.cache.path_for(&digest);
        let mut plugin = LoadedPlugin {
            manifest: manifest.clone(),
            digest,
            api_version,
            contributions: Contributions::default(),
            hook_registrations: Vec::new(),
            integrations: Vec::new(),
            tools: Vec::new(),
            skills: Vec::new(),
            cache,
            id: manifest.id.as_str().into(),
            version: manifest.version.as_str().into(),
            pre,
            inline_pre: Default::default(),
            inline_strikes: Default::default(),
            exports,
            network: Arc::new(NetworkPolicy {
                rules: granted,
                ungranted,
                overrides: self.overrides.clone(),
            }),
            secrets: Arc::new(policy_for(&p.secrets, granted_secrets)),
            filesystem,
            pool: Mutex::new(Vec::new()),
            in_flight: Default::default(),
            call_queue: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_CALLS_PER_PLUGIN)),
            prewarm_target: std::sync::atomic::AtomicUsize::new(crate::limits::PREWARMED_AT_FIRST),
            fuel_per_call: grants
                .fuel_per_call
                .or(manifest.limits.as_ref().and_then(|l| l.fuel_per_call))
                .map(|f| f.clamp(1, crate::limits::MAX_FUEL_PER_CALL)),
            fuel_source: match (grants.fuel_per_call, &manifest.limits) {
                (Some(_), _) => "operator",
                (None, Some(l)) if l.fuel_per_call.is_some() => "manifest",
                _ => "default",
            },
            metered: Default::default(),
            code_used: Default::default(),
            image_file,
        };
        self.inspect(&mut plugin)?;
        Ok(plugin)
    }

    /// Calls the describe exports and checks them against the manifest.
    fn inspect(&self, plugin: &mut LoadedPlugin) -> Result<(), LoadError> {
        let corr = Correlation::default();
        let spec = CallSpec::new("load", "describe", DEFAULT_INSPECT_TIMEOUT_MS, &corr);
        let Some(meta) = plugin.exports.metadata.clone() else {
            return Err(LoadError::Mismatch("it does not export nitejar:plugin/metadata (build it with the SDK's export_plugin!)".into()));
        };
        let integ = plugin.exports.integration.clone();
        let wants_integrations = !plugin.manifest.contributes.integrations.is_empty();
        let tool_idx = plugin.exports.tools.clone();
        let wants_tools = !plugin.manifest.contributes.tools.is_empty();
        let skill_idx = plugin.exports.skills.clone();
        let wants_skills = !plugin.manifest.contributes.skills.is_empty();
        let done = self.run(plugin, &spec, |store, inst| {
            let contributions = meta.load(&mut *store, inst)?.call_describe(&mut *store)?;
            let descriptors = match (&integ, wants_integrations) {
                (Some(i), true) => i.load(&mut *store, inst)?.call_describe(&mut *store)?,
                _ => Vec::new(),
            };
            let tools = match (&tool_idx, wants_tools) {
                (Some(t), true) => t.load(&mut *store, inst)?.call_list_tools(&mut *store)?,
                _ => Vec::new(),
            };
            let skills = match (&skill_idx, wants_skills) {
                (Some(k), true) => k.load(&mut *store, inst)?.call_list_skills(&mut *store)?,
                _ => Vec::new(),
            };
            Ok(Ok((contributions, ((descriptors, tools), skills))))
        });
        let (c, ((descriptors, tools), skills)) = done.result?;
        plugin.contributions = Contributions {
            integrations: c.integrations,
            hooks: c.hooks.into_iter().map(hook_from_wit).collect(),
            tools: c.tools,
            skills: c.skills,
        };
        plugin.integrations = descriptors;
        plugin.tools = tools
            .into_iter()
            .filter(|t| plugin.manifest.contributes.tools.contains(&t.name))
            .collect();
        plugin.skills = skills
            .into_iter()
            .filter(|k| plugin.manifest.contributes.skills.contains(&k.id))
            .collect();
        plugin.hook_registrations = check_contributions(plugin)?;
        Ok(())
    }

    /// Runs `f` on a fresh instance in a fresh bounded store (integration and load calls).
    fn run<R: OutputSize>(
        &self,
        plugin: &LoadedPlugin,
        spec: &CallSpec<'_>,
        f: impl FnOnce(&mut Store<HostState>, &Instance) -> wasmtime::Result<Result<R, WitPluginError>>,
    ) -> Finished<R> {
        let start = Instant::now();
        if self.is_tripped(&plugin.id) {
            return Finished {
                result: Err(PluginFailure::Disabled),
                duration: start.elapsed(),
                logs: LogState::default(),
                fuel_used: None,
            };
        }
        let Some(_slot) = plugin.admit() else {
            return Finished {
                result: Err(PluginFailure::Busy),
                duration: start.elapsed(),
                logs: LogState::default(),
                fuel_used: None,
            };
        };
        match self.factory.instantiate(plugin) {
            Err(failure) => Finished {
                result: Err(failure),
                duration: start.elapsed(),
                logs: LogState::default(),
                fuel_used: None,
            },
            Ok(mut warm) => {
                let mut done = invoke(&mut warm, spec, f);
                done.duration = start.elapsed();
                done
            }
        }
    }

    /// Where the compiled form of component `digest` is cached for this engine.
    pub fn cache_path(&self, digest: &str) -> PathBuf {
        self.cache.path_for(digest)
    }

    /// Whether crash-loop protection tripped on `plugin_id` (no call may be made to it).
    pub fn is_tripped(&self, plugin_id: &str) -> bool {
        self.crash_guard
            .as_ref()
            .is_some_and(|g| g.is_tripped(plugin_id))
    }

    /// Emits the receipt of a finished call (and counts a crash); `status_ok` names the
    /// success status.
    fn receipt<R>(
        &self,
        plugin: &LoadedPlugin,
        spec: &CallSpec<'_>,
        done: &Finished<R>,
        status_ok: &str,
        extra: Option<serde_json::Value>,
    ) {
        if let (Err(f), Some(guard)) = (&done.result, &self.crash_guard)
            && f.is_crash()
        {
            guard.record(&plugin.id, false);
        }
        let status = match &done.result {
            Ok(_) => status_ok,
            Err(f) => f.receipt_status(),
        };
        let mut detail = CallDetail::of(spec.operation, &done.result, &done.logs, done.fuel_used);
        detail.result = extra;
        plugin.meter(done.fuel_used);
        self.receipts.emit(
            Receipt::new(&plugin.id, spec.kind, status)
                .version(&plugin.version)
                .correlate(
                    spec.correlation.work_item_id.as_deref(),
                    spec.correlation.job_id.as_deref(),
                )
                .hook(spec.hook.map(HookName::as_str))
                .duration(done.duration)
                .call_detail(detail),
        );
    }

    /// The one call path of every export call but hooks (whose results the dispatcher checks
    /// before their receipt, see [`PluginRuntime::invoke_hook`]): the missing-export guard, the
    /// instance (a fresh one, or the run's), the deadline and limits of `spec`, and the
    /// receipt. Blocking: call from a blocking thread.
    fn call<X: Export, R: OutputSize>(
        &self,
        plugin: &LoadedPlugin,
        on: On<'_>,
        spec: &CallSpec<'_>,
        receipt: Receipted<'_, R>,
        f: impl FnOnce(
            &X::Indices,
            &mut Store<HostState>,
            &Instance,
        ) -> wasmtime::Result<Result<R, WitPluginError>>,
    ) -> Result<R, PluginFailure> {
        let Some(idx) = X::indices(&plugin.exports).cloned() else {
            return Err(PluginFailure::MissingExport {
                export: X::NAME.into(),
            });
        };
        let done = match on {
            On::Fresh => self.run(plugin, spec, |store, inst| f(&idx, store, inst)),
            On::Run(warm) => invoke(warm, spec, |store, inst| f(&idx, store, inst)),
        };
        match receipt {
            Receipted::Always(extra) => {
                let extra = done.result.as_ref().ok().and_then(extra);
                self.receipt(plugin, spec, &done, "ok", extra);
            }
            Receipted::OnFailure if done.result.is_err() => {
                self.receipt(plugin, spec, &done, "ok", None);
            }
            Receipted::OnFailure => {}
        }
        done.result
    }

    /// Runs `integration.parse-webhook` on a fresh instance (blocking).
    pub fn parse_webhook(
        &self,
        plugin: &LoadedPlugin,
        instance: &integration::Instance,
        request: &integration::WebhookRequest,
        timeout_ms: u64,
    ) -> Result<integration::ParseOutcome, PluginFailure> {
        self.call::<IntegrationExport, _>(
            plugin,
            On::Fresh,
            &parse_spec(request, timeout_ms),
            Receipted::Always(&parse_result),
            |x, store, inst| {
                x.load(&mut *store, inst)?
                    .call_parse_webhook(&mut *store, instance, request)
            },
        )
    }

    /// Runs `integration.parse-webhook` on the caller's thread, in the restricted instance
    /// ([`crate::inline`]), when that cannot block it: `Some` with the call's result (and its
    /// receipt written), or `None` when the call must run on a blocking thread with
    /// [`PluginRuntime::parse_webhook`] (this plugin version needs more than the restricted
    /// instance gives, it is tripped or busy, or the attempts allowed at once are running).
    /// Safe to call from an async task: it holds the thread for at most
    /// [`crate::limits::INLINE_BUDGET_MS`].
    pub fn parse_webhook_inline(
        &self,
        plugin: &LoadedPlugin,
        instance: &integration::Instance,
        request: &integration::WebhookRequest,
        timeout_ms: u64,
    ) -> Option<Result<integration::ParseOutcome, PluginFailure>> {
        use std::sync::atomic::Ordering::Relaxed;
        let idx = plugin.exports.integration.as_ref()?;
        let pre = plugin
            .inline_pre
            .get_or_init(|| {
                crate::inline::prepare(plugin.pre.engine(), plugin.pre.component()).ok()
            })
            .as_ref()?;
        if plugin.inline_strikes.load(Relaxed) >= crate::limits::INLINE_STRIKES
            || self.is_tripped(&plugin.id)
        {
            return None;
        }
        let _room = self.inline_room.try_acquire().ok()?;
        let _slot = plugin.admit()?;
        let start = Instant::now();
        let mut warm = match self.factory.instantiate_from(plugin, pre, false) {
            // The instance pool is full: the host's capacity, never held against the plugin.
            Err(PluginFailure::Busy) => return None,
            other => other.ok(),
        };
        let spec = parse_spec(request, timeout_ms);
        let budget = CallSpec {
            timeout_ms: timeout_ms.min(self.inline_budget_ms),
            ..spec.clone()
        };
        let done = warm.as_mut().map(|warm| {
            // Its log lines reach tracing only if the attempt stands (else the run on the
            // blocking thread logs them).
            warm.defer_logs();
            invoke(warm, &budget, |store, inst| {
                idx.load(&mut *store, inst)?
                    .call_parse_webhook(&mut *store, instance, request)
            })
        });
        match done {
            // It returned: this is the call.
            Some(mut done)
                if matches!(done.result, Ok(_) | Err(PluginFailure::PluginError { .. })) =>
            {
                done.duration = start.elapsed();
                done.logs.replay(&plugin.id);
                self.inline_counts.0.fetch_add(1, Relaxed);
                let extra = done.result.as_ref().ok().and_then(parse_result);
                self.receipt(plugin, &spec, &done, "ok", extra);
                Some(done.result)
            }
            // It stopped (or could not start): nothing of it is kept; it runs again elsewhere.
            // Out of time may be the machine's load (a thread waiting for a core): a strike.
            // Anything else is what the plugin needs, and stays so.
            stopped => {
                let failure = stopped.and_then(|d| d.result.err());
                let strikes = match failure {
                    Some(PluginFailure::Timeout { .. }) => 1,
                    _ => crate::limits::INLINE_STRIKES,
                };
                let why = failure
                    .as_ref()
                    .map_or("it could not be instantiated", PluginFailure::kind);
                let before = plugin.inline_strikes.fetch_add(strikes, Relaxed);
                self.inline_counts.1.fetch_add(1, Relaxed);
                if before < crate::limits::INLINE_STRIKES
                    && before + strikes >= crate::limits::INLINE_STRIKES
                {
                    tracing::debug!(
                        plugin_id = %plugin.id,
                        "parse-webhook needs more than the restricted instance ({why}): this \
                         version's parse calls run on a blocking thread from now on"
                    );
                }
                None
            }
        }
    }

    /// Parse calls answered on the caller's thread, and attempts there that were handed to a
    /// blocking thread ([`PluginRuntime::parse_webhook_inline`]).
    pub fn inline_stats(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.inline_counts.0.load(Relaxed),
            self.inline_counts.1.load(Relaxed),
        )
    }

    /// Runs `integration.validate-config` on a fresh instance (blocking).
    pub fn validate_config(
        &self,
        plugin: &LoadedPlugin,
        integration_type: &str,
        config: &str,
        timeout_ms: u64,
    ) -> Result<Result<(), Vec<String>>, PluginFailure> {
        self.call::<IntegrationExport, _>(
            plugin,
            On::Fresh,
            &CallSpec::new(
                "integration",
                "validate-config",
                timeout_ms,
                &Correlation::default(),
            ),
            Receipted::Always(&|_| None),
            |x, store, inst| {
                Ok(Ok(x.load(&mut *store, inst)?.call_validate_config(
                    &mut *store,
                    integration_type,
                    config,
                )?))
            },
        )
    }

    /// Runs `integration.test-connection` on a fresh instance (blocking).
    pub fn test_connection(
        &self,
        plugin: &LoadedPlugin,
        integration_type: &str,
        config: &str,
        timeout_ms: u64,
    ) -> Result<integration::ConnectionStatus, PluginFailure> {
        self.call::<IntegrationExport, _>(
            plugin,
            On::Fresh,
            &CallSpec::new(
                "integration",
                "test-connection",
                timeout_ms,
                &Correlation::default(),
            ),
            Receipted::Always(&|r: &integration::ConnectionStatus| {
                Some(serde_json::json!({ "connectionOk": r.ok }))
            }),
            |x, store, inst| {
                x.load(&mut *store, inst)?.call_test_connection(
                    &mut *store,
                    integration_type,
                    config,
                )
            },
        )
    }

    /// Reserves room in the instance pool for a run (or a webhook's hook chain) that may call
    /// `plugins` plugins, one instance each, waiting (in turn) while runs in progress hold it.
    ///
    /// A run takes its instances one by one as its hooks and tools are called and keeps them
    /// to its end. Without reserving, runs that each hold part of what they need could fill
    /// the pool between them (after plugins were installed while running, beyond what the pool
    /// was sized for at boot) and wait for each other until refused as busy; reserved, as many
    /// runs proceed at once as the pool has room for and the others start when they end. On a
    /// pool sized for the plugins installed ([`crate::limits::pool_instances_for`]) this never
    /// waits. Hold the reservation until the run's instances are given back.
    pub async fn reserve_instances(&self, plugins: usize) -> InstanceReservation {
        let n = plugins.min(self.run_room_total);
        if n == 0 {
            return InstanceReservation(None);
        }
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        // The semaphore is never closed; if it were, the run would go on unreserved.
        InstanceReservation(self.run_room.clone().acquire_many_owned(n).await.ok())
    }

    /// Takes an instance of `plugin` for one run: a prepared one when available (replacements
    /// are made in the background when runs finish, see [`PluginRuntime::retire_run`]), else
    /// a new one (and the pool is then topped up at once). Blocking.
    ///
    /// When the instance pool is full, other plugins' prepared instances are given back first
    /// (they are made again when there is room), then the call waits up to
    /// [`crate::limits::CAPACITY_WAIT_MS`] for finished runs to return theirs before it is
    /// refused as busy: capacity is the host's, so a run waits for it rather than skipping a
    /// handler, and a busy refusal is never counted against the plugin.
    pub fn checkout(&self, plugin: &Arc<LoadedPlugin>) -> Result<Warm, PluginFailure> {
        let warm = plugin.pool_take();
        if warm.is_none() {
            if plugin.serves_runs() {
                plugin.prewarm_more();
            }
            self.prewarmer.request(plugin);
        }
        let counter = if warm.is_some() {
            &self.pool_hits
        } else {
            &self.pool_misses
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(w) = warm {
            return Ok(w);
        }
        let deadline = Instant::now() + Duration::from_millis(crate::limits::CAPACITY_WAIT_MS);
        loop {
            match self.factory.instantiate(plugin) {
                Err(PluginFailure::Busy) => {
                    // The deadline bounds the wait even while prepared instances keep being
                    // made and given back.
                    if Instant::now() >= deadline {
                        return Err(PluginFailure::Busy);
                    }
                    if self.prewarmer.release_prepared() == 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                other => return other,
            }
        }
    }

    /// Run instances taken from the prepared pool, and made on demand because it was empty.
    pub fn pool_stats(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.pool_hits.load(Relaxed), self.pool_misses.load(Relaxed))
    }

    /// Hands back the code of plugins idle since the last look now, as the prewarm thread does
    /// every [`crate::limits::IDLE_CODE_RELEASE_MS`]: a plugin whose code ran since is counted
    /// as idle from now, one that did not is released (see [`crate::instance`]).
    pub fn release_idle_code(&self) {
        self.prewarmer.release_idle();
    }

    /// Tears down instances on the background thread (see [`PluginRuntime::retire_run`] for a
    /// run's).
    pub fn retire(&self, instances: Vec<Warm>) {
        if !instances.is_empty() {
            self.prewarmer.retire(instances, Vec::new());
        }
    }

    /// Ends a run: its instances are torn down on the background thread, which also tops up
    /// the pool of each plugin it used once half of that pool's prepared instances are taken.
    /// Top-ups wait for the end of runs (not their first call), so the background thread
    /// works between runs rather than beside them, and back-to-back runs wake it once per few
    /// runs, not once or twice each.
    pub fn retire_run(&self, used: Vec<(Arc<LoadedPlugin>, Warm)>) {
        let mut refill = Vec::new();
        let mut instances = Vec::with_capacity(used.len());
        for (plugin, warm) in used {
            if plugin.serves_runs() && plugin.pool_len() * 2 <= plugin.prewarm_target() {
                refill.push(plugin);
            }
            instances.push(warm);
        }
        if !instances.is_empty() || !refill.is_empty() {
            self.prewarmer.retire(instances, refill);
        }
    }

    /// Prepares instances of `plugin` ahead of demand when runs call it (hooks or tools), then
    /// hands its code back to the kernel until it is called (see [`crate::instance`]: the pages
    /// of a plugin left idle are released). Called once for every plugin loaded.
    pub fn prewarm(&self, plugin: &Arc<LoadedPlugin>) {
        self.prewarmer.request(plugin);
    }

    /// Holds [`PluginRuntime::prewarm`]'s work until the hold is dropped; what was asked for
    /// meanwhile is then done in order. A boot loads its plugins under a hold: preparing
    /// instances and handing code back compete with the loads for the cores, and a plugin
    /// serves without prepared instances (a run makes one on demand), so they wait until every
    /// plugin is in service.
    pub fn hold_prewarm(&self) -> crate::instance::PrewarmHold {
        self.prewarmer.hold()
    }

    /// Instances of finished runs handed to the prewarm thread and not torn down yet.
    pub fn instances_retiring(&self) -> usize {
        self.prewarmer.retiring()
    }

    /// Blocks until the prewarm thread has done what was asked of it before this call (what a
    /// [`PluginRuntime::hold_prewarm`] keeps waiting still waits). For tests and benchmarks.
    pub fn wait_prewarm(&self) {
        self.prewarmer.flush();
    }

    /// Calls one hook handler in `warm` without writing a receipt (the dispatcher validates the
    /// output first, then calls [`PluginRuntime::hook_receipt`]). Blocking.
    pub fn invoke_hook<E: HookEvent>(
        &self,
        plugin: &LoadedPlugin,
        warm: &mut Warm,
        ctx: &hooks::HookContext,
        event: &E,
        timeout_ms: u64,
    ) -> HookCall<E::Output> {
        let corr = Correlation {
            work_item_id: ctx.work_item_id.clone(),
            job_id: ctx.job_id.clone(),
        };
        let spec = CallSpec {
            kind: "hook",
            operation: E::NAME.as_str(),
            hook: Some(E::NAME),
            timeout_ms,
            correlation: &corr,
            input_bytes: event.output_bytes(),
        };
        let Some(idx) = plugin.exports.hooks.as_ref() else {
            return HookCall::failed(PluginFailure::MissingExport {
                export: "nitejar:plugin/hooks".into(),
            });
        };
        // The typed export handles are looked up once per instance (normally by the prewarm
        // thread), not once per call.
        let g = match warm.hooks_guest(idx) {
            Ok(g) => g,
            Err(e) => {
                return HookCall::failed(PluginFailure::Instantiate {
                    detail: format!("loading the hooks export failed: {e:#}"),
                });
            }
        };
        let done = invoke(warm, &spec, |store, _inst| event.call_guest(&g, store, ctx));
        HookCall {
            result: done.result,
            duration: done.duration,
            logs: done.logs,
            fuel_used: done.fuel_used,
        }
    }

    /// Writes the receipt of a hook call with `status`; `handler` (its registration and
    /// effect in a chain) joins its detail.
    pub fn hook_receipt<O>(
        &self,
        plugin: &LoadedPlugin,
        hook: HookName,
        ctx: &hooks::HookContext,
        call: &HookCall<O>,
        status: &'static str,
        handler: Option<HandlerDetail>,
    ) {
        let mut detail = CallDetail::of(hook.as_str(), &call.result, &call.logs, call.fuel_used);
        detail.handler = handler;
        plugin.meter(call.fuel_used);
        // Built in place (the builder methods would move the record once per field): this runs
        // for every handler of every run.
        self.receipts.emit(Receipt {
            plugin_id: plugin.id.clone(),
            plugin_version: Some(plugin.version.clone()),
            kind: Cow::Borrowed("hook"),
            status: Cow::Borrowed(status),
            work_item_id: ctx.work_item_id.clone(),
            job_id: ctx.job_id.clone(),
            hook_name: Some(Cow::Borrowed(hook.as_str())),
            duration_ms: Some(call.duration.as_millis() as i64),
            execution_mode: crate::receipts::EXECUTION_MODE,
            detail: Detail::Call(Box::new(detail)),
            created_at: crate::receipts::now_ms(),
        });
    }

    /// Calls one hook handler on a fresh instance and writes its receipt (no dispatcher
    /// semantics; tests and benchmarks). Blocking.
    pub fn call_hook<E: HookEvent>(
        &self,
        plugin: &LoadedPlugin,
        ctx: &hooks::HookContext,
        event: &E,
        timeout_ms: u64,
    ) -> Result<E::Output, PluginFailure> {
        let start = Instant::now();
        let mut call = match self.factory.instantiate(plugin) {
            Ok(mut warm) => self.invoke_hook(plugin, &mut warm, ctx, event, timeout_ms),
            Err(f) => HookCall::failed(f),
        };
        call.duration = start.elapsed();
        let status = match &call.result {
            Ok(out) if E::blocks(out) => "blocked",
            Ok(_) => "ok",
            Err(f) => f.receipt_status(),
        };
        self.hook_receipt(plugin, E::NAME, ctx, &call, status, None);
        call.result
    }

    /// Asks a tool plugin for its system-prompt section, in the run's instance (a receipt only
    /// when it fails). Blocking.
    pub fn prompt_section(
        &self,
        plugin: &LoadedPlugin,
        warm: &mut Warm,
        ctx: &tools::ToolContext,
        timeout_ms: u64,
    ) -> Result<Option<String>, PluginFailure> {
        self.call::<ToolsExport, _>(
            plugin,
            On::Run(warm),
            &CallSpec::new("tool", "prompt-section", timeout_ms, &tool_correlation(ctx)),
            Receipted::OnFailure,
            |x, store, inst| {
                Ok(Ok(x
                    .load(&mut *store, inst)?
                    .call_prompt_section(&mut *store, ctx)?))
            },
        )
    }

    /// Runs tool `name` of `plugin` in the run's instance and writes a `tool` receipt. Blocking.
    pub fn call_tool(
        &self,
        plugin: &LoadedPlugin,
        warm: &mut Warm,
        ctx: &tools::ToolContext,
        name: &str,
        input: &str,
        timeout_ms: u64,
    ) -> Result<tools::ToolOutput, PluginFailure> {
        self.call::<ToolsExport, _>(
            plugin,
            On::Run(warm),
            &CallSpec::new("tool", "call-tool", timeout_ms, &tool_correlation(ctx)),
            Receipted::Always(&|_| Some(serde_json::json!({ "tool": name }))),
            |x, store, inst| {
                x.load(&mut *store, inst)?
                    .call_call_tool(&mut *store, ctx, name, input)
            },
        )
    }

    /// Posts a reply through the integration's `post-response`, in the run's instance, and
    /// writes an `integration` receipt. Blocking.
    #[allow(clippy::too_many_arguments)]
    pub fn post_response(
        &self,
        plugin: &LoadedPlugin,
        warm: &mut Warm,
        correlation: &Correlation,
        instance: &integration::Instance,
        content: &str,
        response_context: Option<&str>,
        options: &integration::PostOptions,
        timeout_ms: u64,
    ) -> Result<integration::PostResult, PluginFailure> {
        let work_item_id = correlation.work_item_id.clone().unwrap_or_default();
        self.call::<IntegrationExport, _>(
            plugin,
            On::Run(warm),
            &CallSpec::new("integration", "post-response", timeout_ms, correlation),
            Receipted::Always(&|r: &integration::PostResult| {
                Some(serde_json::json!({ "delivered": r.delivered }))
            }),
            |x, store, inst| {
                x.load(&mut *store, inst)?.call_post_response(
                    &mut *store,
                    instance,
                    &work_item_id,
                    content,
                    response_context,
                    options,
                )
            },
        )
    }

    /// Runs `integration.acknowledge-receipt` on the run's instance (blocking).
    pub fn acknowledge_receipt(
        &self,
        plugin: &LoadedPlugin,
        warm: &mut Warm,
        correlation: &Correlation,
        instance: &integration::Instance,
        response_context: Option<&str>,
        timeout_ms: u64,
    ) -> Result<(), PluginFailure> {
        self.call::<IntegrationExport, _>(
            plugin,
            On::Run(warm),
            &CallSpec::new(
                "integration",
                "acknowledge-receipt",
                timeout_ms,
                correlation,
            ),
            Receipted::Always(&|_| None),
            |x, store, inst| {
                x.load(&mut *store, inst)?.call_acknowledge_receipt(
                    &mut *store,
                    instance,
                    response_context,
                )
            },
        )
    }
}

/// The correlation of a tool call's receipts.
fn tool_correlation(ctx: &tools::ToolContext) -> Correlation {
    Correlation {
        work_item_id: Some(ctx.work_item_id.clone()),
        job_id: Some(ctx.job_id.clone()),
    }
}

/// The spec of a `parse-webhook` call: a work item carries what the platform sent (text,
/// payload), so the output cap grows with the request.
fn parse_spec(request: &integration::WebhookRequest, timeout_ms: u64) -> CallSpec<'static> {
    CallSpec {
        input_bytes: request.output_bytes(),
        ..CallSpec::new("integration", "parse-webhook", timeout_ms, &NO_CORRELATION)
    }
}

/// The outcome a `parse-webhook` receipt names.
fn parse_result(o: &integration::ParseOutcome) -> Option<serde_json::Value> {
    Some(serde_json::Value::from(match o {
        integration::ParseOutcome::WorkItem(_) => "work_item",
        integration::ParseOutcome::Ignored(_) => "ignored",
        integration::ParseOutcome::Respond(_) => "respond",
        integration::ParseOutcome::Unauthorized(_) => "unauthorized",
    }))
}

/// Which instance a call runs in.
enum On<'w> {
    /// A fresh instance, dropped after the call (integration and load-time calls).
    Fresh,
    /// The run's instance of the plugin (tools, delivery).
    Run(&'w mut Warm),
}

/// Which receipt a call leaves.
enum Receipted<'a, R> {
    /// One for every call; the function adds a `result` to its detail from the output.
    Always(&'a dyn Fn(&R) -> Option<serde_json::Value>),
    /// One only when the call fails.
    OnFailure,
}

/// An export interface of the plugin world, as the call path's missing-export guard sees it.
trait Export {
    /// The interface's export indices.
    type Indices: Clone;
    /// Its name, for the error when a component does not export it.
    const NAME: &'static str;
    /// Its indices in a loaded component, if exported.
    fn indices(e: &ExportIndices) -> Option<&Self::Indices>;
}

/// `nitejar:plugin/integration`.
struct IntegrationExport;

impl Export for IntegrationExport {
    type Indices = integration::GuestIndices;
    const NAME: &'static str = "nitejar:plugin/integration";
    fn indices(e: &ExportIndices) -> Option<&Self::Indices> {
        e.integration.as_ref()
    }
}

/// `nitejar:plugin/tools`.
struct ToolsExport;

impl Export for ToolsExport {
    type Indices = tools::GuestIndices;
    const NAME: &'static str = "nitejar:plugin/tools";
    fn indices(e: &ExportIndices) -> Option<&Self::Indices> {
        e.tools.as_ref()
    }
}

/// A finished hook call, before its receipt.
pub struct HookCall<O> {
    /// The handler's output or failure.
    pub result: Result<O, PluginFailure>,
    /// Wall time of the call.
    pub duration: Duration,
    logs: LogState,
    fuel_used: Option<u64>,
}

impl<O> HookCall<O> {
    /// A call that could not start.
    pub fn failed(failure: PluginFailure) -> Self {
        HookCall {
            result: Err(failure),
            duration: Duration::ZERO,
            logs: LogState::default(),
            fuel_used: None,
        }
    }

    /// The same call (duration, guest logs) with its result replaced, e.g. after the caller
    /// validated the output.
    pub fn with_result<O2>(self, result: Result<O2, PluginFailure>) -> HookCall<O2> {
        HookCall {
            result,
            duration: self.duration,
            logs: self.logs,
            fuel_used: self.fuel_used,
        }
    }

    /// A finished call with no guest logs (fakes of the sandbox in dispatcher tests).
    pub fn finished(result: Result<O, PluginFailure>, duration: Duration) -> Self {
        HookCall {
            result,
            duration,
            logs: LogState::default(),
            fuel_used: None,
        }
    }
}

fn hook_from_wit(h: crate::bindings::nitejar::plugin::types::HookName) -> HookName {
    use crate::bindings::nitejar::plugin::types::HookName as W;
    match h {
        W::WorkItemPreCreate => HookName::WorkItemPreCreate,
        W::WorkItemPostCreate => HookName::WorkItemPostCreate,
        W::RunPrePrompt => HookName::RunPrePrompt,
        W::ModelPreCall => HookName::ModelPreCall,
        W::ModelPostCall => HookName::ModelPostCall,
        W::ToolPreExec => HookName::ToolPreExec,
        W::ToolPostExec => HookName::ToolPostExec,
        W::ResponsePreDeliver => HookName::ResponsePreDeliver,
        W::ResponsePostDeliver => HookName::ResponsePostDeliver,
    }
}

/// Checks the component's WIT API version and imports against the manifest; returns the version.
fn check_component_shape(
    engine: &Engine,
    component: &Component,
    manifest: &Manifest,
) -> Result<String, LoadError> {
    let ty = component.component_type();
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let imports: Vec<String> = ty
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let versions: BTreeSet<&str> = exports
        .iter()
        .filter_map(|e| e.strip_prefix("nitejar:plugin/"))
        .filter_map(|e| e.split_once('@'))
        .map(|(_, v)| v)
        .collect();
    let version = match versions.len() {
        0 => {
            return Err(LoadError::Incompatible(
                "it exports no nitejar:plugin interface; build it against the Nitejar WIT package (the SDK)".into(),
            ));
        }
        1 => versions.into_iter().next().unwrap().to_string(),
        _ => {
            return Err(LoadError::Incompatible(format!(
                "it mixes WIT API versions {versions:?}"
            )));
        }
    };
    if !crate::bindings::SUPPORTED_API_VERSIONS.contains(&version.as_str()) {
        return Err(LoadError::Incompatible(format!(
            "it targets nitejar:plugin@{version}; this host supports {:?}",
            crate::bindings::SUPPORTED_API_VERSIONS
        )));
    }
    let p = &manifest.permissions;
    let imports_http = imports
        .iter()
        .any(|i| i.starts_with("wasi:http/outgoing-handler@"));
    if imports_http && p.network.is_empty() {
        return Err(LoadError::Mismatch(
            "it imports wasi:http/outgoing-handler but permissions.network is empty; list the hosts it calls".into(),
        ));
    }
    let imports_secrets = imports
        .iter()
        .any(|i| i.starts_with("nitejar:plugin/secrets@"));
    if imports_secrets && p.secrets.is_empty() {
        return Err(LoadError::Mismatch(
            "it imports nitejar:plugin/secrets but permissions.secrets is empty; list the keys it reads".into(),
        ));
    }
    let needs = [
        (!manifest.contributes.integrations.is_empty(), "integration"),
        (!manifest.contributes.hooks.is_empty(), "hooks"),
        (!manifest.contributes.tools.is_empty(), "tools"),
        (!manifest.contributes.skills.is_empty(), "skills"),
    ];
    for (needed, iface) in needs {
        let name = format!("nitejar:plugin/{iface}@{version}");
        if needed && !exports.contains(&name) {
            return Err(LoadError::Mismatch(format!(
                "the manifest contributes {iface} but the component does not export {name}"
            )));
        }
    }
    Ok(version)
}

/// Every contribution the manifest declares must be implemented by the component; its hook
/// registrations.
fn check_contributions(plugin: &LoadedPlugin) -> Result<Vec<HookRegistration>, LoadError> {
    let m = &plugin.manifest.contributes;
    let c = &plugin.contributions;
    // A plugin provides exactly the integration types its manifest declares: a descriptor for
    // an undeclared type (another plugin's, a built-in's) or a second one for the same type
    // refuses the component, so what the operator reviewed is what it serves. (A component may
    // implement more than its manifest enables; the host never calls what is not declared.)
    let mut described = std::collections::BTreeSet::new();
    for d in &plugin.integrations {
        let t = &d.integration_type;
        if !m.integrations.contains(t) {
            return Err(LoadError::Mismatch(format!(
                "integration.describe returned type {:?}, which the manifest does not declare (it declares {:?})",
                crate::capabilities::log::sanitize(t, 64),
                m.integrations
            )));
        }
        if !described.insert(t.as_str()) {
            return Err(LoadError::Mismatch(format!(
                "integration.describe returned type {t:?} more than once"
            )));
        }
    }
    for t in &m.integrations {
        if !c.integrations.contains(t) {
            return Err(LoadError::Mismatch(format!(
                "contributes.integrations lists {t:?} but the component does not implement it (it implements {:?})",
                c.integrations
            )));
        }
        if plugin.descriptor(t).is_none() {
            return Err(LoadError::Mismatch(format!(
                "integration {t:?} has no descriptor: the component's integration.describe must return one for it"
            )));
        }
    }
    let hooks = plugin
        .manifest
        .hook_registrations()
        .map_err(|e| LoadError::Mismatch(e.to_string()))?;
    for h in &hooks {
        if !c.hooks.contains(&h.event) {
            return Err(LoadError::Mismatch(format!(
                "contributes.hooks lists {} but the component does not handle it",
                h.event.as_str()
            )));
        }
    }
    for (kind, declared, implemented) in [
        ("tools", &m.tools, &c.tools),
        ("skills", &m.skills, &c.skills),
    ] {
        if let Some(missing) = declared.iter().find(|d| !implemented.contains(d)) {
            return Err(LoadError::Mismatch(format!(
                "contributes.{kind} lists {missing:?} but the component does not provide it"
            )));
        }
    }
    Ok(hooks)
}
