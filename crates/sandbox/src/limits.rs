//! Limits of the sandbox: every bound on a guest (time, memory, tables, bytes crossing the
//! boundary, storage, outbound HTTP) as a named constant with its unit in the name (STYLE #6).
//!
//! The host's own limits (request bodies, packages, runs) live in the host's `limits` module,
//! which re-exports these so every default can be read in one place.

/// Deadline for install-time calls (describe, contributions).
pub const DEFAULT_INSPECT_TIMEOUT_MS: u64 = 2_000;

/// How often the epoch ticker advances the engine epoch; deadlines are counted in ticks.
pub const EPOCH_TICK_MS: u64 = 1;

/// How long a webhook's parse call may run on the async worker that took the request before it
/// is stopped and run again on a blocking thread (see [`crate::inline`]). A parse call takes tens
/// of microseconds; this is the most a slow plugin holds a worker, at most
/// [`INLINE_STRIKES`] times per loaded version.
pub const INLINE_BUDGET_MS: u64 = 10;

/// Parse calls of one plugin version that may run out of [`INLINE_BUDGET_MS`] on the caller's
/// thread before its calls stay on blocking threads (one could be the machine's load, not the
/// plugin). Any other stop there moves it at once.
pub const INLINE_STRIKES: u32 = 3;

/// Linear memory one plugin instance may grow to.
pub const DEFAULT_GUEST_MEMORY_BYTES: usize = 64 << 20;

/// Table elements one instance may have.
pub const MAX_GUEST_TABLE_ELEMENTS: usize = 20_000;

/// Core instances, tables and memories one component instance may create.
pub const MAX_GUEST_INSTANCES: usize = 32;

/// Tables one component instance may create.
pub const MAX_GUEST_TABLES: usize = 16;

/// Memories one component instance may create.
pub const MAX_GUEST_MEMORIES: usize = 4;

/// Native stack a guest may use; deep recursion traps with a stack overflow.
pub const MAX_GUEST_STACK_BYTES: usize = 512 << 10;

/// The smallest instance pool: component instances alive at once in the pooling allocator
/// (back-pressure beyond). The pool is sized at boot by [`pool_instances_for`].
pub const POOL_TOTAL_COMPONENT_INSTANCES: u32 = 256;

/// The largest instance pool the host sizes itself to: every memory slot reserves address
/// space (4 GiB plus a guard region, never committed until used), so the total stays well
/// inside a process's 128 TiB even with a few hosts in one process (tests).
pub const MAX_POOL_COMPONENT_INSTANCES: u32 = 2_048;

/// Instances a plugin may need at once beyond the run workers' and its prepared ones (a
/// webhook or configuration call, a run's replacement after a trap).
const POOL_SPARE_PER_PLUGIN: usize = 1;

/// Plugins the pool leaves room for beyond those installed at boot (installs while running).
const POOL_HEADROOM_PLUGINS: usize = 32;

/// The instance pool for a host with `plugins` installed and `run_workers` run workers: every
/// worker's run holds one instance of each plugin it calls, each plugin keeps
/// [`PREWARMED_INSTANCES`] prepared, plus spare calls and a reserve for webhooks
/// ([`MAX_CONCURRENT_CALLS_PER_PLUGIN`]) and teardown; between [`POOL_TOTAL_COMPONENT_INSTANCES`]
/// and [`MAX_POOL_COMPONENT_INSTANCES`].
pub fn pool_instances_for(plugins: usize, run_workers: usize) -> u32 {
    let per_plugin = run_workers.saturating_add(PREWARMED_INSTANCES + POOL_SPARE_PER_PLUGIN);
    let wanted = plugins
        .saturating_add(POOL_HEADROOM_PLUGINS)
        .saturating_mul(per_plugin)
        .saturating_add(4 * MAX_CONCURRENT_CALLS_PER_PLUGIN);
    u32::try_from(wanted)
        .unwrap_or(u32::MAX)
        .clamp(POOL_TOTAL_COMPONENT_INSTANCES, MAX_POOL_COMPONENT_INSTANCES)
}

/// Most calls one plugin may have in progress on fresh instances (webhooks, config checks):
/// an eighth of the smallest pool, so one plugin's slow or waiting calls leave room for
/// everyone else. Over it, that plugin's calls wait briefly, then are refused as busy (503).
pub const MAX_CONCURRENT_CALLS_PER_PLUGIN: usize = POOL_TOTAL_COMPONENT_INSTANCES as usize / 8;

/// How long a webhook waits for one of its plugin's call slots before it is answered busy
/// (503): long enough for a burst to queue behind calls that take milliseconds, short enough
/// that a plugin whose calls hang refuses its own traffic quickly.
pub const CALL_SLOT_WAIT_MS: u64 = 250;

/// Instances of the pool runs never reserve (see `PluginRuntime::reserve_instances`): room for
/// calls on fresh instances (webhooks, configuration checks) and for finished runs' instances
/// waiting for teardown.
pub const POOL_OUTSIDE_RUNS: usize = 2 * MAX_CONCURRENT_CALLS_PER_PLUGIN;

/// How long a run waits for room in a full instance pool (after giving back every prepared
/// instance) before the call is refused as busy.
pub const CAPACITY_WAIT_MS: u64 = 1_000;

/// Linear memories, tables and core instances of the pool per component instance (a
/// component made by the usual toolchains has one or two memories and a few core instances).
pub const POOL_MEMORIES_PER_INSTANCE: u32 = 2;
/// See [`POOL_MEMORIES_PER_INSTANCE`].
pub const POOL_TABLES_PER_INSTANCE: u32 = 4;
/// See [`POOL_MEMORIES_PER_INSTANCE`].
pub const POOL_CORE_INSTANCES_PER_INSTANCE: u32 = 8;

/// Bytes of each pooled linear memory kept resident (reset in place) when an instance is torn
/// down, so the next instance in that slot does not page-fault its stack, data and first heap
/// pages back in (each fault also costs a TLB shootdown across the host's threads).
pub const POOL_MEMORY_KEEP_RESIDENT_BYTES: usize = 2 << 20;

/// The same for tables.
pub const POOL_TABLE_KEEP_RESIDENT_BYTES: usize = 64 << 10;

/// Largest data a plugin may return from one call (all strings and lists of the result).
pub const MAX_GUEST_OUTPUT_BYTES: usize = 1 << 20;

/// Instruction budget of a hook call (wasmtime fuel, about one unit per wasm instruction).
/// Hooks sit on every run's path, so theirs is the smallest.
pub const DEFAULT_FUEL_HOOK: u64 = 1_000_000_000;

/// Instruction budget of an integration call (parse-webhook, validate-config, test-connection,
/// post-response, acknowledge-receipt).
pub const DEFAULT_FUEL_INTEGRATION: u64 = 5_000_000_000;

/// Instruction budget of a tool call or prompt section.
pub const DEFAULT_FUEL_TOOL: u64 = 5_000_000_000;

/// Instruction budget of load-time calls (describe) and of instantiation.
pub const DEFAULT_FUEL_LOAD: u64 = 1_000_000_000;

/// The most a manifest (`limits.fuelPerCall`) or an operator override may give one call.
pub const MAX_FUEL_PER_CALL: u64 = 50_000_000_000;

/// The default instruction budget of a call of `kind` (`hook`, `integration`, `tool`, `load`).
pub fn default_fuel(kind: &str) -> u64 {
    match kind {
        "hook" => DEFAULT_FUEL_HOOK,
        "tool" => DEFAULT_FUEL_TOOL,
        "load" => DEFAULT_FUEL_LOAD,
        _ => DEFAULT_FUEL_INTEGRATION,
    }
}

/// Most bytes the host copies out of a guest in one transfer (a call's return value, or the
/// arguments of one host call), counted while copying and every alias of the same guest bytes
/// counted again (wasmtime's per-store "hostcall fuel"). Twice the output cap, so a value just
/// under the cap always lifts; the host memory in flight is at most this per instance.
pub const MAX_TRANSFER_BYTES: usize = 2 * MAX_GUEST_OUTPUT_BYTES;

/// Longest guest log line kept; longer lines are truncated.
pub const MAX_LOG_LINE_BYTES: usize = 4 << 10;

/// Log lines kept per plugin call; the rest are counted and dropped.
pub const MAX_LOG_LINES_PER_CALL: u32 = 100;

/// Longest key in plugin key-value storage.
pub const MAX_KV_KEY_BYTES: usize = 256;

/// Largest value in plugin key-value storage.
pub const MAX_KV_VALUE_BYTES: usize = 64 << 10;

/// Most keys returned by one `list-keys`.
pub const MAX_KV_LIST_KEYS: u32 = 1_000;

/// Most keys one plugin may keep in key-value storage (its quota).
pub const MAX_KV_KEYS_PER_PLUGIN: u64 = 10_000;

/// Most bytes (keys and values together) one plugin may keep in key-value storage.
pub const MAX_KV_BYTES_PER_PLUGIN: u64 = 16 << 20;

/// Outbound HTTP: time to establish a connection.
pub const HTTP_CONNECT_TIMEOUT_MS: u64 = 5_000;

/// Outbound HTTP: largest response body a plugin may read.
pub const MAX_HTTP_RESPONSE_BYTES: usize = 8 << 20;

/// Most instances of a run-serving plugin (hooks, tools) kept instantiated ahead of demand.
/// Each plugin starts with [`PREWARMED_AT_FIRST`] and gets one more each time a run found none
/// ready, up to this: capacity follows the runs a plugin serves, and an idle plugin holds one.
/// Eight rather than four: a run that drew a pool to half asks for a top-up, so a busy plugin's
/// pool is refilled four at a time, half as many wake-ups of the prewarm thread (`hook_chain`
/// back to back: 1.79-1.93x the JavaScript dispatcher against 2.14-2.20x, alternated).
pub const PREWARMED_INSTANCES: usize = 8;

/// Instances of a run-serving plugin kept ready before any run has asked for more.
pub const PREWARMED_AT_FIRST: usize = 1;

/// How long a plugin's code must go unused (no call, no new instance) before its pages are
/// handed back to the kernel: between one and two of these after its last call, as the
/// prewarm thread looks this often (see `nitejar_sandbox::instance`).
pub const IDLE_CODE_RELEASE_MS: u64 = 60_000;

/// Crash-loop protection: this many failures inside the window disable a plugin
/// (`SLOPBOT_PLUGIN_CRASH_THRESHOLD`; spec default).
pub const DEFAULT_CRASH_THRESHOLD: usize = 5;

/// The crash-loop window (`SLOPBOT_PLUGIN_CRASH_WINDOW_MS`; spec default: five minutes).
pub const DEFAULT_CRASH_WINDOW_MS: u64 = 300_000;

#[cfg(test)]
mod pool_tests {
    use super::*;

    /// The pool grows with the plugins installed and the run workers, within its bounds.
    #[test]
    fn the_pool_is_sized_from_plugins_and_workers_within_bounds() {
        assert!(pool_instances_for(0, 4) >= POOL_TOTAL_COMPONENT_INSTANCES);
        let hundred = pool_instances_for(100, 4) as usize;
        // Every worker's run holds an instance of each plugin, each keeps its prepared ones.
        assert!(hundred >= 100 * (4 + PREWARMED_INSTANCES), "{hundred}");
        assert!(pool_instances_for(100, 8) > pool_instances_for(100, 4));
        assert_eq!(pool_instances_for(10_000, 4), MAX_POOL_COMPONENT_INSTANCES);
        assert_eq!(
            pool_instances_for(usize::MAX, usize::MAX),
            MAX_POOL_COMPONENT_INSTANCES
        );
    }
}
