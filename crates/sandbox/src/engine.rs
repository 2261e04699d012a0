//! The one shared wasmtime engine: component model, epoch interruption, pooling allocator,
//! bounded stack; and the ticker thread that advances the epoch.

use crate::limits::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Builds the engine. `memory_bytes` is the per-instance memory limit (also the pool's slot size);
/// `fuel` turns on instruction budgets (always on in the product; benchmarks compare);
/// `instances` is the pool's size in component instances (see
/// [`crate::limits::pool_instances_for`]), memories, tables and core instances in proportion.
pub fn build_engine(memory_bytes: usize, fuel: bool, instances: u32) -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        .total_memories(instances.saturating_mul(POOL_MEMORIES_PER_INSTANCE))
        .total_tables(instances.saturating_mul(POOL_TABLES_PER_INSTANCE))
        .total_core_instances(instances.saturating_mul(POOL_CORE_INSTANCES_PER_INSTANCE))
        .max_memory_size(memory_bytes)
        .max_memories_per_component(MAX_GUEST_MEMORIES as u32)
        .max_tables_per_component(MAX_GUEST_TABLES as u32)
        .max_core_instances_per_component(MAX_GUEST_INSTANCES as u32)
        .table_elements(MAX_GUEST_TABLE_ELEMENTS)
        .linear_memory_keep_resident(POOL_MEMORY_KEEP_RESIDENT_BYTES)
        .table_keep_resident(POOL_TABLE_KEEP_RESIDENT_BYTES)
        // Where the kernel has PAGEMAP_SCAN (Linux 6.7+), teardown resets only the pages an
        // instance dirtied instead of memsetting the whole kept-resident range.
        .pagemap_scan(Enabled::Auto);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .consume_fuel(fuel)
        .max_wasm_stack(MAX_GUEST_STACK_BYTES)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config)
}

/// Advances the engine epoch every [`EPOCH_TICK_MS`] until dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts the ticker thread for `engine`.
    pub fn start(engine: Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("nitejar-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(EPOCH_TICK_MS));
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch ticker thread");
        EpochTicker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Epoch ticks for a deadline `ms` from now. The next tick may come at once (the call can
/// start just before it), so `n` ticks guarantee only `(n - 1)` full tick periods: one more is
/// added, and the interrupt never fires before `ms` have passed (it would otherwise land up to
/// one tick early, and a call stopped then would not count as past its deadline).
pub fn deadline_ticks(ms: u64) -> u64 {
    ms.div_ceil(EPOCH_TICK_MS) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_never_fires_early() {
        for ms in [0, 1, 299, 300, 301, 1_500] {
            let ticks = deadline_ticks(ms);
            // The first tick may come at once: the rest are whole periods.
            assert!((ticks - 1) * EPOCH_TICK_MS >= ms, "{ms} ms: {ticks} ticks");
            assert!((ticks - 1) * EPOCH_TICK_MS < ms + 2 * EPOCH_TICK_MS.max(1));
        }
    }
}
