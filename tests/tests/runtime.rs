//! The runtime without a server: compile cache, typed hook calls and their receipts, and a
//! looping hook stopped by the store's epoch deadline.

use nitejar_core::plugins::package::PluginPackage;
use nitejar_core::receipts::{ReceiptSink, ReceiptWriter};
use nitejar_sandbox::bindings::exports::nitejar::plugin::hooks::*;
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
    })
    .unwrap();
    Rig {
        runtime,
        store,
        sink,
        _dir: dir,
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
    let pkg = package("hooks");
    let p = rig
        .runtime
        .load(
            &pkg.manifest,
            &pkg.wasm,
            &Grants::all_declared(&pkg.manifest),
        )
        .unwrap();
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

    rig.sink.flush().await;
    let receipts = rig
        .store
        .list_events("nitejar.example.hooks", 100, None)
        .await
        .unwrap();
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
    rig.sink.flush().await;
    let receipts = rig
        .store
        .list_events("test.hostile", 100, None)
        .await
        .unwrap();
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
    let pkg = package("hooks");
    let rt = &rig.runtime;
    let grants = Grants::all_declared(&pkg.manifest);
    let p = Arc::new(
        tokio::task::block_in_place(|| rt.load(&pkg.manifest, &pkg.wasm, &grants)).unwrap(),
    );
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
