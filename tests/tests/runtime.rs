//! The runtime without a server: compile cache, typed hook calls and their receipts, and a
//! looping hook stopped by the store's epoch deadline.

use nitejar_core::plugins::package::PluginPackage;
use nitejar_core::receipts::{ReceiptSink, ReceiptWriter};
use nitejar_sandbox::bindings::exports::nitejar::plugin::hooks::*;
use nitejar_sandbox::bindings::exports::nitejar::plugin::integration;
use nitejar_sandbox::cache::CacheOutcome;
use nitejar_sandbox::hooks::HookEvent;
use nitejar_sandbox::runtime::{
    Grants, LoadedPlugin, PluginFailure, PluginRuntime, RuntimeOptions,
};
use nitejar_store::Store;
use nitejar_tests::guest_package;
use std::sync::Arc;

struct Rig {
    runtime: PluginRuntime,
    store: Arc<dyn Store>,
    sink: ReceiptSink,
    _dir: tempfile::TempDir,
}

async fn rig_in(dir: tempfile::TempDir) -> Rig {
    rig_with(dir, nitejar_sandbox::limits::INLINE_BUDGET_MS).await
}

/// A rig whose webhook parse calls may run `inline_budget_ms` on the caller's thread.
async fn rig_with(dir: tempfile::TempDir, inline_budget_ms: u64) -> Rig {
    let store = nitejar_store::open(&dir.path().join("t.db")).await.unwrap();
    let (sink, _writer) = ReceiptWriter::start(store.clone());
    let runtime = PluginRuntime::new(RuntimeOptions {
        memory_bytes: nitejar_core::limits::DEFAULT_GUEST_MEMORY_BYTES,
        cache_dir: dir.path().join("cache"),
        files_root: dir.path().join("files"),
        outbound_overrides: Default::default(),
        kv: Some(store.clone()),
        kv_quota: Default::default(),
        receipts: sink.clone(),
        crash_guard: None,
        fuel: true,
        pool_instances: nitejar_sandbox::limits::POOL_TOTAL_COMPONENT_INSTANCES,
        idle_code_release: None,
        inline_budget_ms,
    })
    .unwrap();
    Rig {
        runtime,
        store,
        sink,
        _dir: dir,
    }
}

impl Rig {
    /// Loads the test package `name` with every permission it declares granted (off the async
    /// worker, as the host does).
    fn load(&self, name: &str) -> LoadedPlugin {
        let pkg = package(name);
        let grants = Grants::all_declared(&pkg.manifest);
        tokio::task::block_in_place(|| self.runtime.load(&pkg.manifest, &pkg.wasm, &grants))
            .unwrap()
    }

    /// `plugin_id`'s receipts, once every receipt emitted so far is written.
    async fn receipts(&self, plugin_id: &str) -> Vec<nitejar_store::EventRow> {
        self.sink.flush().await;
        self.store.list_events(plugin_id, 100, None).await.unwrap()
    }
}

fn package(name: &str) -> PluginPackage {
    PluginPackage::from_dir(&guest_package(name)).unwrap()
}

fn ctx() -> HookContext {
    HookContext {
        plugin_instance_id: None,
        work_item_id: Some("wi-1".into()),
        job_id: Some("job-1".into()),
        agent_id: None,
    }
}

fn pre_deliver(content: &str) -> ResponsePreDeliverEvent {
    ResponsePreDeliverEvent {
        content: content.into(),
        integration_type: "webhook".into(),
        plugin_instance_id: "i1".into(),
        work_item_id: "wi-1".into(),
        streaming: false,
        hit_limit: false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn components_compile_once_and_stale_cache_files_are_replaced() {
    let rig = rig_in(tempfile::tempdir().unwrap()).await;
    let pkg = package("hooks");
    let grants = Grants::all_declared(&pkg.manifest);
    let rt = &rig.runtime;
    let first = tokio::task::block_in_place(|| rt.load(&pkg.manifest, &pkg.wasm, &grants)).unwrap();
    assert_eq!(first.cache, CacheOutcome::Compiled);
    let second =
        tokio::task::block_in_place(|| rt.load(&pkg.manifest, &pkg.wasm, &grants)).unwrap();
    assert_eq!(second.cache, CacheOutcome::Hit);
    // A corrupt cache file is detected and rebuilt, and the plugin still works. The garbage
    // replaces the file (renamed over it): the loaded plugins map the old one, and a cache
    // file is never written in place while a host runs (see `nitejar_sandbox::cache`).
    let cached = std::fs::read_dir(rig._dir.path().join("cache"))
        .unwrap()
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .unwrap();
    let garbage = rig._dir.path().join("garbage");
    std::fs::write(&garbage, b"garbage").unwrap();
    std::fs::rename(&garbage, cached.path()).unwrap();
    let third = tokio::task::block_in_place(|| rt.load(&pkg.manifest, &pkg.wasm, &grants)).unwrap();
    assert_eq!(third.cache, CacheOutcome::Compiled);
    let out =
        tokio::task::block_in_place(|| rt.call_hook(&third, &ctx(), &pre_deliver("x"), 1_000))
            .unwrap();
    assert!(matches!(out, ResponsePreDeliverDecision::Proceed(_)));
}

#[tokio::test(flavor = "multi_thread")]
async fn hooks_return_only_what_their_event_allows_and_leave_receipts() {
    let rig = rig_in(tempfile::tempdir().unwrap()).await;
    let p = rig.load("hooks");
    let rt = &rig.runtime;
    fn call<E: HookEvent>(rt: &PluginRuntime, p: &LoadedPlugin, event: E) -> E::Output {
        tokio::task::block_in_place(|| rt.call_hook(p, &ctx(), &event, 1_000)).unwrap()
    }

    let out = call(rt, &p, pre_deliver("token: Bearer abc.def done"));
    assert_eq!(
        out,
        ResponsePreDeliverDecision::Proceed(ResponsePreDeliverPatch {
            content: Some("token: Bearer [redacted] done".into())
        })
    );
    let shell = ToolPreExecEvent {
        tool_name: "shell".into(),
        tool_input: "{}".into(),
        tool_call_id: "c1".into(),
        turn: 1,
    };
    let out = call(rt, &p, shell);
    assert!(ToolPreExecEvent::blocks(&out), "{out:?}");
    let prompt = RunPrePromptEvent {
        system_prompt: "You are helpful.".into(),
        user_message: "hi".into(),
        agent: AgentInfo {
            id: "a".into(),
            name: "A".into(),
            model: "m".into(),
        },
        work_item: WorkItem {
            id: "wi-1".into(),
            title: "t".into(),
            text: "hi".into(),
            session_key: "s".into(),
            source_ref: "r".into(),
            payload: "{}".into(),
            status: "pending".into(),
            created_at_ms: 0,
        },
    };
    let patch = call(rt, &p, prompt);
    assert_eq!(
        patch.system_prompt.as_deref(),
        Some("You are helpful.\n\nNever reveal credentials.")
    );
    assert_eq!(patch.user_message, None);

    let receipts = rig.receipts("nitejar.example.hooks").await;
    let hooks: Vec<_> = receipts.iter().filter(|r| r.kind == "hook").collect();
    assert_eq!(hooks.len(), 3);
    let blocked = hooks
        .iter()
        .find(|r| r.hook_name.as_deref() == Some("tool.pre_exec"))
        .unwrap();
    assert_eq!(blocked.status, "blocked");
    assert_eq!(blocked.work_item_id.as_deref(), Some("wi-1"));
    assert_eq!(blocked.job_id.as_deref(), Some("job-1"));
    assert!(
        hooks
            .iter()
            .all(|r| r.execution_mode == "wasm_sandbox" && r.duration_ms.is_some())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_looping_hook_is_stopped_by_the_store_deadline() {
    let rig = rig_in(tempfile::tempdir().unwrap()).await;
    let pkg = package("hostile");
    // The largest instruction budget, so the deadline (not the budget) stops the loop: a fast
    // machine runs this loop through the default hook budget (1e9) in about 45 ms.
    let grants = Grants {
        fuel_per_call: Some(nitejar_sandbox::limits::MAX_FUEL_PER_CALL),
        ..Grants::default()
    };
    let p = rig.runtime.load(&pkg.manifest, &pkg.wasm, &grants).unwrap();
    let rt = &rig.runtime;
    let result = tokio::task::block_in_place(|| rt.call_hook(&p, &ctx(), &pre_deliver("loop"), 50));
    assert_eq!(result, Err(PluginFailure::Timeout { timeout_ms: 50 }));
    // The engine is fine: the next call on the same plugin is served.
    let ok = tokio::task::block_in_place(|| rt.call_hook(&p, &ctx(), &pre_deliver("ok"), 1_000))
        .unwrap();
    assert_eq!(
        ok,
        ResponsePreDeliverDecision::Proceed(ResponsePreDeliverPatch {
            content: Some("served".into())
        })
    );
    let receipts = rig.receipts("test.hostile").await;
    let timeout = receipts
        .iter()
        .find(|r| r.status == "timeout")
        .expect("a timeout receipt");
    assert_eq!(timeout.hook_name.as_deref(), Some("response.pre_deliver"));
}

/// KiB of this process's pages resident in the mappings that overlap `range`.
#[cfg(target_os = "linux")]
fn resident_kib(range: &std::ops::Range<usize>) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut total = 0;
    let mut inside = false;
    for line in smaps.lines() {
        let head = line.split_whitespace().next().unwrap_or("");
        if let Some((a, b)) = head.split_once('-')
            && let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            inside = a < range.end && b > range.start;
        } else if inside && let Some(kib) = line.strip_prefix("Rss:") {
            total += kib
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .unwrap();
        }
    }
    total
}

/// A plugin's compiled code is mapped from the compile cache; what its calls touched is handed
/// back to the kernel once it is loaded and whenever it has been idle since the last look, and
/// read again when it is called. (The rig's runtime never looks on its own, so each look here
/// is the test's.)
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread")]
async fn an_idle_plugins_code_is_handed_back_and_read_again_when_called() {
    let rig = rig_in(tempfile::tempdir().unwrap()).await;
    let rt = &rig.runtime;
    let p = Arc::new(rig.load("hooks"));
    let image = p.image_range();
    let call = |text: &str| {
        tokio::task::block_in_place(|| rt.call_hook(&p, &ctx(), &pre_deliver(text), 1_000)).unwrap()
    };
    assert!(matches!(
        call("first"),
        ResponsePreDeliverDecision::Proceed(_)
    ));
    let used = resident_kib(&image);
    assert!(used > 0, "a call maps code");

    // Its first instance is prepared in the background, then its pages are handed back.
    rt.prewarm(&p);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while resident_kib(&image) >= used && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let loaded = resident_kib(&image);
    assert!(
        loaded < used,
        "{loaded} KiB resident once loaded, {used} KiB before"
    );

    // Called: read again, and it works. The next look finds it used (kept), the one after
    // finds it idle (handed back).
    let out = call("token: Bearer abc.def done");
    assert_eq!(
        out,
        ResponsePreDeliverDecision::Proceed(ResponsePreDeliverPatch {
            content: Some("token: Bearer [redacted] done".into())
        })
    );
    let called = resident_kib(&image);
    assert!(
        called > loaded,
        "{called} KiB after a call, {loaded} KiB before"
    );
    rt.release_idle_code();
    assert_eq!(
        resident_kib(&image),
        called,
        "used since the last look: kept"
    );
    rt.release_idle_code();
    let idle = resident_kib(&image);
    assert!(
        idle < called,
        "idle: handed back ({idle} KiB, {called} KiB before)"
    );
    assert!(matches!(
        call("again"),
        ResponsePreDeliverDecision::Proceed(_)
    ));
}

/// Under a hold (a boot holds one while it loads its plugins), instances asked for ahead of
/// demand wait; once the hold is dropped they are prepared, and a run finds one ready.
#[tokio::test(flavor = "multi_thread")]
async fn instances_ahead_of_demand_wait_for_a_hold_and_are_prepared_after() {
    let rig = rig_in(tempfile::tempdir().unwrap()).await;
    let rt = &rig.runtime;
    let p = Arc::new(rig.load("hooks"));
    let hold = rt.hold_prewarm();
    rt.prewarm(&p);
    tokio::task::block_in_place(|| rt.wait_prewarm());
    assert_eq!(p.pool_len(), 0, "held: nothing prepared");
    drop(hold);
    tokio::task::block_in_place(|| rt.wait_prewarm());
    assert!(p.pool_len() >= 1, "prepared once the hold is dropped");
    let (hits, misses) = rt.pool_stats();
    let warm = tokio::task::block_in_place(|| rt.checkout(&p)).unwrap();
    assert_eq!(
        rt.pool_stats(),
        (hits + 1, misses),
        "a run took the prepared instance"
    );
    rt.retire(vec![warm]);
}

/// A run takes a prepared instance without waking the prewarm thread; the pool is topped up
/// when the run ends (so the thread works between runs, not beside them), and the run's
/// instance is torn down there even when no other run follows to wake the thread.
#[tokio::test(flavor = "multi_thread")]
async fn pools_are_topped_up_when_runs_end_and_finished_instances_never_wait_unseen() {
    let rig = rig_in(tempfile::tempdir().unwrap()).await;
    let rt = &rig.runtime;
    let p = Arc::new(rig.load("hooks"));
    rt.prewarm(&p);
    tokio::task::block_in_place(|| rt.wait_prewarm());
    let prepared = p.pool_len();
    assert!(prepared >= 1, "prepared ahead of demand");
    let (hits, misses) = rt.pool_stats();
    let warm = tokio::task::block_in_place(|| rt.checkout(&p)).unwrap();
    assert_eq!(rt.pool_stats(), (hits + 1, misses), "taken from the pool");
    tokio::task::block_in_place(|| rt.wait_prewarm());
    assert_eq!(
        p.pool_len(),
        prepared - 1,
        "no top-up while the run goes on"
    );
    // The run ends: its instance is queued for teardown and the pool topped up.
    rt.retire_run(vec![(p.clone(), warm)]);
    tokio::task::block_in_place(|| rt.wait_prewarm());
    assert_eq!(p.pool_len(), prepared, "topped up once the run ended");
    assert_eq!(rt.instances_retiring(), 0, "torn down with the top-up");
    // Runs that end while the thread is parked (idle for longer than it lingers after a chore)
    // wake it for their instances: nothing is topped up here, so only that wake-up can tear
    // them down. (On a loaded machine the thread may still be lingering after 20 ms; it then
    // finds them on its own, and the test passes without trying the parked case.)
    let held: Vec<_> = (0..5)
        .map(|_| tokio::task::block_in_place(|| rt.checkout(&p)).unwrap())
        .collect();
    tokio::task::block_in_place(|| rt.wait_prewarm());
    for (round, warm) in held.into_iter().enumerate() {
        std::thread::sleep(std::time::Duration::from_millis(20));
        rt.retire(vec![warm]);
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while rt.instances_retiring() > 0 {
            assert!(
                std::time::Instant::now() < give_up,
                "round {round}: a finished run's instance was never torn down"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

/// Runs reserve room for their instances in the pool up front and wait in turn for it, so
/// runs holding part of what they need can never fill the pool between them.
#[tokio::test(flavor = "multi_thread")]
async fn runs_reserve_room_in_the_instance_pool_and_wait_in_turn() {
    let rig = rig_in(tempfile::tempdir().unwrap()).await;
    let rt = &rig.runtime;
    let room = nitejar_sandbox::limits::POOL_TOTAL_COMPONENT_INSTANCES as usize
        - nitejar_sandbox::limits::POOL_OUTSIDE_RUNS;
    let first = rt.reserve_instances(room - 10).await;
    assert_eq!(first.instances(), room - 10);
    let mut second = Box::pin(rt.reserve_instances(20));
    assert!(futures::poll!(&mut second).is_pending(), "no room: waits");
    drop(first);
    let second = second.await;
    assert_eq!(second.instances(), 20);
    drop(second);
    // More plugins than the pool holds: all the room (the pool itself bounds the rest).
    assert_eq!(rt.reserve_instances(100_000).await.instances(), room);
    assert_eq!(rt.reserve_instances(0).await.instances(), 0);
}

/// A webhook's parse call runs on the async worker that took the request only when it cannot
/// block it (`nitejar_sandbox::inline`). Computing, the clocks, random numbers and log lines
/// are answered there, with the call's receipt. Every attack that reaches for anything else
/// (a sleep, keys, secrets, files, HTTP) or runs too long is stopped before it acts, leaves no
/// receipt, and is handed to a blocking thread, where the same call runs in full; that version
/// of the plugin stays on the blocking path. This test's task runs on a runtime worker, where a
/// host call that blocked would panic.
#[tokio::test(flavor = "multi_thread")]
async fn webhook_parse_calls_run_on_the_callers_thread_only_when_they_cannot_block_it() {
    use nitejar_sandbox::bindings::exports::nitejar::plugin::integration::ParseOutcome;
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files").join("test.hostile");
    // A budget no honest call here comes near even on a loaded machine (a budget stop would
    // hand the call over, and the assertions below are about what the plugin reaches for);
    // the looping attack shows it is a bound.
    let rig = rig_with(dir, 1_000).await;
    let pkg = package("hostile");
    let grants = Grants::all_declared(&pkg.manifest);
    let rt = &rig.runtime;
    let load = || tokio::task::block_in_place(|| rt.load(&pkg.manifest, &pkg.wasm, &grants));
    let instance = hostile_instance();
    let request = attack_request;
    let text = |r: Option<Result<ParseOutcome, PluginFailure>>| match r {
        Some(Ok(ParseOutcome::WorkItem(m))) => m.text,
        other => panic!("not answered with a work item: {other:?}"),
    };

    let p = load().unwrap();
    assert_eq!(
        text(rt.parse_webhook_inline(&p, &instance, &request("ok", ""), 5_000)),
        "ok: served"
    );
    let pure = text(rt.parse_webhook_inline(&p, &instance, &request("pure", "k"), 5_000));
    assert!(
        pure.starts_with("ok: 1 keys, clock after 2020: true, "),
        "{pure}"
    );
    assert_eq!(
        text(rt.parse_webhook_inline(&p, &instance, &request("spin", "1000"), 5_000)),
        "ok: spun 1000: 499500"
    );
    assert_eq!(
        text(rt.parse_webhook_inline(&p, &instance, &request("log-flood", ""), 5_000)),
        "ok: flooded"
    );
    assert_eq!(rt.inline_stats(), (4, 0));

    let attacks = [
        ("sleep", "1"),
        ("kv", "k"),
        ("secret", "declared.token"),
        ("http", "http://allowed.test/"),
        ("fs-read", "/shared/x.txt"),
        ("fs-write", "/scratch/inline.txt"),
        ("fs-mkdir", "/scratch/inline-dir"),
        ("memory", ""),
        ("trap", ""),
        ("oversized", ""),
    ];
    for (n, (attack, target)) in (1..).zip(attacks) {
        let p = load().unwrap();
        let r = rt.parse_webhook_inline(&p, &instance, &request(attack, target), 5_000);
        assert!(r.is_none(), "{attack}: answered on the worker: {r:?}");
        assert_eq!(rt.inline_stats(), (4, n), "{attack}");
        let r = rt.parse_webhook_inline(&p, &instance, &request("ok", ""), 5_000);
        assert!(r.is_none(), "{attack}: the version left the blocking path");
    }
    // Stopped before they acted: nothing was written or made.
    assert!(!files.join("scratch/inline.txt").exists());
    assert!(!files.join("scratch/inline-dir").exists());
    // The same call on a blocking thread runs in full.
    let p = load().unwrap();
    let write = request("fs-write", "/scratch/inline.txt");
    let full = tokio::task::block_in_place(|| rt.parse_webhook(&p, &instance, &write, 5_000));
    assert_eq!(text(Some(full)), "ok: written");
    assert!(files.join("scratch/inline.txt").exists());

    // Running out of the budget may be the machine's load: a strike, the version stays until
    // its third. A budget much shorter than the call's deadline stops the loop (the largest
    // instruction budget, so the time, not the fuel, stops it).
    let short = rig_with(tempfile::tempdir().unwrap(), 20).await;
    let unmetered = Grants {
        fuel_per_call: Some(nitejar_sandbox::limits::MAX_FUEL_PER_CALL),
        ..grants.clone()
    };
    let p =
        tokio::task::block_in_place(|| short.runtime.load(&pkg.manifest, &pkg.wasm, &unmetered))
            .unwrap();
    let rt = &short.runtime;
    for strike in 1..=nitejar_sandbox::limits::INLINE_STRIKES {
        let r = rt.parse_webhook_inline(&p, &instance, &request("loop", ""), 60_000);
        assert!(r.is_none(), "the loop was answered: {r:?}");
        let ok = rt.parse_webhook_inline(&p, &instance, &request("ok", ""), 60_000);
        if strike < nitejar_sandbox::limits::INLINE_STRIKES {
            assert_eq!(text(ok), "ok: served", "strike {strike}");
        } else {
            assert!(ok.is_none(), "the third strike moves the version");
        }
    }

    // One receipt per call answered: four on the worker, the full call; none for the attempts.
    let receipts = rig.receipts("test.hostile").await;
    let parse = receipts
        .iter()
        .filter(|r| r.kind == "integration")
        .collect::<Vec<_>>();
    assert_eq!(parse.len(), 5, "{parse:?}");
    assert!(parse.iter().all(|r| r.status == "ok"));
    let flood = parse
        .iter()
        .filter_map(|r| r.detail_json.as_deref())
        .find(|d| d.contains("forged"))
        .expect("the log lines of the call answered on the worker are in its receipt");
    assert!(!flood.contains('\u{1b}'), "logged lines are escaped");
}

/// A parse call's log lines reach the host's log once, wherever the call ran: an attempt on the
/// caller's thread that is handed over keeps its lines to itself (the run on the blocking thread
/// logs them), and one that stands sends its lines when it is over.
#[tokio::test(flavor = "multi_thread")]
async fn a_parse_call_handed_to_a_blocking_thread_logs_its_lines_once() {
    let rig = rig_in(tempfile::tempdir().unwrap()).await;
    let rt = &rig.runtime;
    let p = rig.load("hostile");
    let instance = hostile_instance();
    let request = |attack: &str| attack_request(attack, "k");
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let sink = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
        .with_writer(move || Writer(sink.clone()))
        .finish();
    {
        // This thread's subscriber while the guard lives: every call below runs on it.
        let _guard = tracing_subscriber::util::SubscriberInitExt::set_default(subscriber);
        // Stands: its lines are sent when it is over.
        let pure = rt.parse_webhook_inline(&p, &instance, &request("pure"), 5_000);
        assert!(matches!(pure, Some(Ok(_))), "{pure:?}");
        // Handed over after logging: the run on the blocking thread logs the line.
        let attempt = rt.parse_webhook_inline(&p, &instance, &request("log-kv"), 5_000);
        assert!(attempt.is_none(), "{attempt:?}");
        let full = tokio::task::block_in_place(|| {
            rt.parse_webhook(&p, &instance, &request("log-kv"), 5_000)
        });
        assert!(full.is_ok(), "{full:?}");
    }
    let text = String::from_utf8(log.lock().unwrap().clone()).unwrap();
    assert_eq!(text.matches("pure attack").count(), 1, "{text}");
    assert_eq!(
        text.matches("logged before the kv call").count(),
        1,
        "{text}"
    );
}

/// A webhook instance of the hostile plugin's integration.
fn hostile_instance() -> integration::Instance {
    integration::Instance {
        id: "i1".into(),
        integration_type: "hostile".into(),
        config: "{}".into(),
    }
}

/// A delivery that asks the hostile plugin's parse call for `attack` on `target`.
fn attack_request(attack: &str, target: &str) -> integration::WebhookRequest {
    integration::WebhookRequest {
        method: "POST".into(),
        path: "/".into(),
        query: String::new(),
        headers: Vec::new(),
        body: serde_json::json!({ "attack": attack, "target": target, "id": attack })
            .to_string()
            .into_bytes(),
    }
}

/// A `tracing` writer into a shared buffer.
struct Writer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
