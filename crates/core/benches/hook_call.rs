//! Benchmark: one hook call on a fresh instance through the full runtime, against (a) the same
//! work as a native Rust function and (b) a bare wasmtime call of the same component, in one run.
//!
//! Run: `cargo bench -p nitejar-core --bench hook_call` (or `just bench`). Prints medians, p90 and
//! ratios; it asserts nothing, because timings belong in benchmarks, not tests.
//!
//! - native: the example hook's redaction as a plain Rust function.
//! - bare: the same compiled component on the same engine: fresh store, instantiate from a
//!   prepared `InstancePre`, call `response-pre-deliver`; only WASI linked, no limiter, no
//!   capability state, no receipt.
//! - runtime: `PluginRuntime::call_hook`: fresh store with epoch deadline, memory/table limiter,
//!   capabilities (network/secrets/kv/log state), output-size check, classified result and a
//!   receipt queued to the batch writer (which writes to SQLite on another thread).
//! - runtime, receipts not written: the same call with a sink that drops receipts, to show what
//!   the concurrent batch writer costs the call path on this machine.
//! - runtime, fuel off: the same call on an engine without instruction budgets (wasmtime fuel),
//!   to show what the budgets cost (the product always runs with them).

/// The allocator the `nitejar` binary uses, so the figures are the product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use nitejar_core::plugins::package::PluginPackage;
use nitejar_core::receipts::{ReceiptSink, ReceiptWriter};
use nitejar_sandbox::bindings::exports::nitejar::plugin::hooks::{
    self, HookContext, ResponsePreDeliverDecision, ResponsePreDeliverEvent, ResponsePreDeliverPatch,
};
use nitejar_sandbox::runtime::{Grants, PluginRuntime, RuntimeOptions};

use std::path::Path;
use std::time::{Duration, Instant};
use wasmtime::Store;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

const WARMUP: usize = 300;
const ITERATIONS: usize = 3_000;
const CONTENT: &str = "deploy done; use Bearer abc.def.ghi for the next step";

/// The example hook's work, natively.
fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("Bearer ") {
        out.push_str(&rest[..i + 7]);
        rest = &rest[i + 7..];
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        out.push_str("[redacted]");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn native_hook(ev: &ResponsePreDeliverEvent) -> ResponsePreDeliverDecision {
    ResponsePreDeliverDecision::Proceed(ResponsePreDeliverPatch {
        content: Some(redact(&ev.content)),
    })
}

struct BareState {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for BareState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn measure(name: &str, mut f: impl FnMut()) -> (String, Duration, Duration) {
    for _ in 0..WARMUP {
        f();
    }
    let mut samples: Vec<Duration> = (0..ITERATIONS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    samples.sort();
    (
        name.to_string(),
        samples[samples.len() / 2],
        samples[samples.len() * 9 / 10],
    )
}

/// A runtime rooted in `dir` (shared compile cache), with or without a database and receipts.
fn runtime_in(
    dir: &Path,
    db: Option<std::sync::Arc<dyn nitejar_store::Store>>,
    receipts: ReceiptSink,
    fuel: bool,
) -> PluginRuntime {
    PluginRuntime::new(RuntimeOptions {
        memory_bytes: nitejar_core::limits::DEFAULT_GUEST_MEMORY_BYTES,
        cache_dir: dir.join("cache"),
        files_root: dir.join("files"),
        outbound_overrides: Default::default(),
        kv: db.map(|d| d as std::sync::Arc<dyn nitejar_sandbox::capabilities::kv::KvStore>),
        kv_quota: Default::default(),
        receipts,
        crash_guard: None,
        fuel,
        pool_instances: nitejar_sandbox::limits::POOL_TOTAL_COMPONENT_INSTANCES,
        idle_code_release: None,
        inline_budget_ms: nitejar_sandbox::limits::INLINE_BUDGET_MS,
    })
    .unwrap()
}

fn main() {
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _guard = tokio_rt.enter();
    let dir = tempfile::tempdir().unwrap();
    let db = tokio_rt
        .block_on(nitejar_store::open(&dir.path().join("bench.db")))
        .unwrap();
    let (sink, _writer) = ReceiptWriter::start(db.clone());
    let db_for_probe = db.clone();
    let runtime = runtime_in(dir.path(), Some(db), sink.clone(), true);
    let pkg = PluginPackage::from_dir(
        &Path::new(nitejar_core::plugins::bundled::GUEST_PACKAGES_DIR).join("hooks"),
    )
    .unwrap();
    let plugin = runtime
        .load(
            &pkg.manifest,
            &pkg.wasm,
            &Grants::all_declared(&pkg.manifest),
        )
        .unwrap();

    let ctx = HookContext {
        plugin_instance_id: None,
        work_item_id: Some("wi".into()),
        job_id: Some("job".into()),
        agent_id: None,
    };
    let event = ResponsePreDeliverEvent {
        content: CONTENT.into(),
        integration_type: "webhook".into(),
        plugin_instance_id: "i".into(),
        work_item_id: "wi".into(),
        streaming: false,
        hit_limit: false,
    };
    let expected = native_hook(&event);

    // Bare wasmtime: same engine, same compiled component, nothing but WASI linked.
    let engine = runtime.engine().clone();
    let component = Component::new(&engine, &pkg.wasm).unwrap();
    let mut linker = Linker::<BareState>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
    let pre = linker.instantiate_pre(&component).unwrap();
    let indices = hooks::GuestIndices::new(&pre).unwrap();

    let quiet = runtime_in(dir.path(), None, ReceiptSink::discard(), true);
    let quiet_plugin = quiet
        .load(
            &pkg.manifest,
            &pkg.wasm,
            &Grants::all_declared(&pkg.manifest),
        )
        .unwrap();
    let unmetered = runtime_in(dir.path(), None, ReceiptSink::discard(), false);
    let unmetered_plugin = unmetered
        .load(
            &pkg.manifest,
            &pkg.wasm,
            &Grants::all_declared(&pkg.manifest),
        )
        .unwrap();
    let input = event.clone();
    let results = [
        measure("native Rust function", || {
            assert_eq!(std::hint::black_box(native_hook(&event)), expected);
        }),
        measure("bare wasmtime (fresh instance)", || {
            let mut store = Store::new(
                &engine,
                BareState {
                    wasi: WasiCtx::builder().build(),
                    table: ResourceTable::new(),
                },
            );
            store.set_epoch_deadline(1_000_000);
            store.set_fuel(u64::MAX).unwrap();
            let instance = pre.instantiate(&mut store).unwrap();
            let guest = indices.load(&mut store, &instance).unwrap();
            let out = guest
                .call_response_pre_deliver(&mut store, &ctx, &event)
                .unwrap()
                .unwrap();
            assert_eq!(out, expected);
        }),
        measure("nitejar runtime (fresh instance)", || {
            let out = runtime.call_hook(&plugin, &ctx, &input, 1_500).unwrap();
            assert_eq!(out, expected);
        }),
        measure("runtime, receipts not written", || {
            quiet.call_hook(&quiet_plugin, &ctx, &input, 1_500).unwrap();
        }),
        measure("runtime, receipts not written, fuel off", || {
            unmetered
                .call_hook(&unmetered_plugin, &ctx, &input, 1_500)
                .unwrap();
        }),
    ];
    tokio_rt.block_on(sink.flush());

    println!(
        "one response.pre_deliver hook call (small mutation), {ITERATIONS} iterations after {WARMUP} warm-up"
    );
    println!("{:<36} {:>12} {:>12}", "path", "median", "p90");
    for (name, median, p90) in &results {
        println!(
            "{name:<36} {:>10.2}µs {:>10.2}µs",
            median.as_secs_f64() * 1e6,
            p90.as_secs_f64() * 1e6
        );
    }
    let (native, bare, full) = (results[0].1, results[1].1, results[2].1);
    // Cost of writing receipts: one batch of 256 rows like the ones the calls produced.
    let sample = tokio_rt
        .block_on(db_for_probe.list_events("nitejar.example.hooks", 256, None))
        .unwrap();
    // The same receipts again, as the product's writer hands them over (rows made on the write
    // thread).
    let rows: Vec<_> = sample
        .into_iter()
        .map(|r| {
            let mut receipt =
                nitejar_core::receipts::Receipt::new(&r.plugin_id, &r.kind, &r.status)
                    .correlate(r.work_item_id.as_deref(), r.job_id.as_deref())
                    .hook(r.hook_name.as_deref());
            receipt.plugin_version = r.plugin_version.as_deref().map(Into::into);
            receipt.duration_ms = r.duration_ms;
            if let Some(d) = r
                .detail_json
                .as_deref()
                .and_then(|d| serde_json::from_str(d).ok())
            {
                receipt = receipt.detail(d);
            }
            receipt
        })
        .collect();
    let n = rows.len();
    let t = Instant::now();
    tokio_rt
        .block_on(db_for_probe.insert_receipts(std::sync::Arc::new(rows)))
        .unwrap();
    println!(
        "receipt batch insert ({n} rows, off the call path): {:.1}µs per receipt",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    println!(
        "ratio runtime / bare wasmtime: {:.2}x",
        full.as_secs_f64() / bare.as_secs_f64()
    );
    println!(
        "ratio runtime / native:        {:.1}x",
        full.as_secs_f64() / native.as_secs_f64()
    );
    println!(
        "ratio bare / native:           {:.1}x",
        bare.as_secs_f64() / native.as_secs_f64()
    );
    let (metered, unmetered) = (results[3].1, results[4].1);
    let (calls, used) = quiet_plugin.instructions_used();
    println!(
        "instruction budgets (fuel) on / off: {:.2}x ({} instructions per call)",
        metered.as_secs_f64() / unmetered.as_secs_f64(),
        used / calls.max(1)
    );
}
