//! Dispatcher semantics (WS7 §8.2) with real hook plugins: the chain test component installed
//! under several ids with different priorities, policies and timeouts.

use nitejar_core::hooks::{ApplyHook, Dispatched, RunScope};
use nitejar_sandbox::bindings::exports::nitejar::plugin::hooks as h;
use nitejar_tests::{HostOptions, TestHost, chain_package};
use serde_json::{Value, json};

/// Installs the chain component as `id` with only the given hook registrations.
async fn install_handler(host: &TestHost, id: &str, hooks: Value) {
    let pkg = chain_package(|m| {
        m["id"] = id.into();
        m["contributes"] = json!({ "hooks": hooks });
        // The largest instruction budget, so deadlines (not budgets) stop the looping handlers
        // these tests are about.
        m["limits"] = json!({ "fuelPerCall": nitejar_sandbox::limits::MAX_FUEL_PER_CALL });
    });
    host.install_and_enable(pkg.path(), &[]).await;
}

async fn start(opts: HostOptions) -> TestHost {
    TestHost::start_with(opts).await
}

fn ctx() -> h::HookContext {
    h::HookContext {
        plugin_instance_id: None,
        work_item_id: Some("wi-test".into()),
        job_id: Some("job-test".into()),
        agent_id: None,
    }
}

fn pre_exec(input: Value) -> h::ToolPreExecEvent {
    h::ToolPreExecEvent {
        tool_name: "lookup".into(),
        tool_input: input.to_string(),
        tool_call_id: "call-1".into(),
        turn: 1,
    }
}

fn post_exec(input: Value) -> h::ToolPostExecEvent {
    h::ToolPostExecEvent {
        tool_name: "lookup".into(),
        tool_input: input.to_string(),
        tool_call_id: "call-1".into(),
        tool_result: h::ToolResult {
            output: "out".into(),
            is_error: false,
        },
        duration_ms: 1,
        turn: 1,
    }
}

fn dispatch<E: ApplyHook>(host: &TestHost, event: E) -> Dispatched<E> {
    let table = host.app.registry.hook_table();
    let mut scope = RunScope::new(ctx());
    tokio::task::block_in_place(|| host.app.dispatcher.dispatch(&table, &mut scope, event))
}

fn tool_input(d: &Dispatched<h::ToolPreExecEvent>) -> Value {
    serde_json::from_str(&d.event.tool_input).unwrap()
}

fn statuses<E>(d: &Dispatched<E>) -> Vec<(&str, &str)> {
    d.handlers
        .iter()
        .map(|o| (o.plugin_id.as_str(), o.status))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn handlers_run_by_priority_then_id_and_each_sees_the_previous_changes() {
    let host = start(HostOptions::default()).await;
    install_handler(
        &host,
        "t.low",
        json!([{ "event": "tool.pre_exec", "priority": 1 }]),
    )
    .await;
    install_handler(
        &host,
        "t.high-b",
        json!([{ "event": "tool.pre_exec", "priority": 10 }]),
    )
    .await;
    install_handler(
        &host,
        "t.high-a",
        json!([{ "event": "tool.pre_exec", "priority": 10 }]),
    )
    .await;
    let d = dispatch(&host, pre_exec(json!({ "q": "x" })));
    assert_eq!(
        statuses(&d),
        vec![("t.high-a", "ok"), ("t.high-b", "ok"), ("t.low", "ok")]
    );
    assert!(d.blocked.is_none());
    // Each handler increments the counter it was given: 3 means each saw the last one's change.
    assert_eq!(tool_input(&d)["chain"], 3);

    // The operator can override a registration; the new order applies to the next event.
    host.admin_json(
        reqwest::Method::PUT,
        "/plugins/t.low/hooks/tool.pre_exec",
        Some(json!({ "priority": 100 })),
        200,
    )
    .await;
    let d = dispatch(&host, pre_exec(json!({ "q": "x" })));
    assert_eq!(d.handlers[0].plugin_id, "t.low");
    let table = host
        .admin_json(reqwest::Method::GET, "/hooks", None, 200)
        .await;
    assert_eq!(table["hooks"]["tool.pre_exec"][0]["pluginId"], "t.low");
    assert_eq!(table["hooks"]["tool.pre_exec"][0]["priority"], 100);
    // An override of a hook the plugin does not register is refused.
    host.admin_json(
        reqwest::Method::PUT,
        "/plugins/t.low/hooks/model.pre_call",
        Some(json!({ "priority": 1 })),
        400,
    )
    .await;

    // Disabling unregisters at once.
    host.disable("t.high-a").await;
    let d = dispatch(&host, pre_exec(json!({ "q": "x" })));
    assert_eq!(statuses(&d), vec![("t.low", "ok"), ("t.high-b", "ok")]);

    // Receipts: one per call, with the hook, status and correlation ids in real columns.
    let receipts = host.receipts("t.high-b").await;
    let hook_receipts: Vec<&Value> = receipts.iter().filter(|r| r["kind"] == "hook").collect();
    assert_eq!(hook_receipts.len(), 3);
    for r in hook_receipts {
        assert_eq!(r["hookName"], "tool.pre_exec");
        assert_eq!(r["status"], "ok");
        assert_eq!(r["workItemId"], "wi-test");
        assert_eq!(r["jobId"], "job-test");
        assert_eq!(r["pluginVersion"], "0.1.0");
        assert!(r["durationMs"].is_number());
    }
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_looping_handler_is_stopped_at_its_timeout_and_the_host_keeps_serving() {
    let host = start(HostOptions::default()).await;
    install_handler(
        &host,
        "t.loop",
        json!([{ "event": "tool.pre_exec", "timeoutMs": 100 }]),
    )
    .await;
    let d = dispatch(&host, pre_exec(json!({ "q": "!loop" })));
    assert_eq!(statuses(&d), vec![("t.loop", "timeout")]);
    assert!(d.blocked.is_none(), "fail_open is the default");
    assert_eq!(tool_input(&d), json!({ "q": "!loop" }), "no change applied");
    let receipts = host.receipts("t.loop").await;
    let r = receipts.iter().rfind(|r| r["kind"] == "hook").unwrap();
    assert_eq!(r["status"], "timeout");
    let detail: Value = serde_json::from_str(r["detailJson"].as_str().unwrap()).unwrap();
    assert_eq!(detail["failure"]["failure"], "timeout");
    assert_eq!(detail["effect"], "continued");
    // The same plugin answers the next event normally.
    let d = dispatch(&host, pre_exec(json!({ "q": "ok" })));
    assert_eq!(statuses(&d), vec![("t.loop", "ok")]);
    assert!(host.app.crash_guard.recent_failures("t.loop") >= 1);
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chain_budget_caps_deadlines_and_receipts_handlers_it_cannot_run() {
    let host = start(HostOptions {
        hook_chain_budget_ms: Some(1_000),
        ..Default::default()
    })
    .await;
    for i in 0..6 {
        install_handler(
            &host,
            &format!("t.slow{i}"),
            json!([{ "event": "tool.pre_exec", "timeoutMs": 300 }]),
        )
        .await;
    }
    let d = dispatch(&host, pre_exec(json!({ "q": "!loop" })));
    let s: Vec<&str> = d.handlers.iter().map(|o| o.status).collect();
    assert_eq!(s.len(), 6, "every handler is accounted for: {s:?}");
    assert_eq!(&s[..3], &["timeout"; 3], "{s:?}");
    assert!(
        s[3] == "timeout" || s[3] == "budget_exceeded",
        "the fourth gets what is left: {s:?}"
    );
    assert_eq!(&s[4..], &["budget_exceeded"; 2], "{s:?}");
    let receipts = host.receipts("t.slow5").await;
    assert!(
        receipts
            .iter()
            .any(|r| r["kind"] == "hook" && r["status"] == "budget_exceeded")
    );
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fail_open_continues_and_never_skips_a_later_fail_closed_handler() {
    let host = start(HostOptions::default()).await;
    // The first handler's deadline is shorter than the 150 ms the event makes handlers spin.
    install_handler(
        &host,
        "t.a-open",
        json!([{ "event": "tool.pre_exec", "priority": 10, "timeoutMs": 50 }]),
    )
    .await;
    install_handler(
        &host,
        "t.b-closed",
        json!([{ "event": "tool.pre_exec", "priority": 1, "failPolicy": "fail_closed", "timeoutMs": 2000 }]),
    )
    .await;
    let d = dispatch(&host, pre_exec(json!({ "q": "!spin:150" })));
    assert_eq!(
        statuses(&d),
        vec![("t.a-open", "timeout"), ("t.b-closed", "ok")]
    );
    assert!(d.blocked.is_none());
    assert_eq!(
        tool_input(&d)["chain"],
        1,
        "only the second handler's change"
    );
    // An error (not a timeout) is handled the same way.
    let d = dispatch(&host, pre_exec(json!({ "q": "!error" })));
    assert_eq!(d.handlers[0].status, "error");
    let b = d
        .blocked
        .expect("the fail-closed handler also errors, so it blocks");
    assert_eq!(b.plugin_id, "t.b-closed");
    assert!(b.by_failure);
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fail_closed_blocks_a_blocking_hook_and_stops_other_chains() {
    let host = start(HostOptions::default()).await;
    install_handler(
        &host,
        "t.a-closed",
        json!([
            { "event": "tool.pre_exec", "priority": 10, "failPolicy": "fail_closed", "timeoutMs": 50 },
            { "event": "tool.post_exec", "priority": 10, "failPolicy": "fail_closed", "timeoutMs": 50 }
        ]),
    )
    .await;
    install_handler(
        &host,
        "t.b-open",
        json!([
            { "event": "tool.pre_exec", "priority": 1, "timeoutMs": 2000 },
            { "event": "tool.post_exec", "priority": 1, "timeoutMs": 2000 }
        ]),
    )
    .await;
    // A trap in a fail-closed handler on a blocking hook blocks the operation.
    let d = dispatch(&host, pre_exec(json!({ "q": "!trap" })));
    assert_eq!(statuses(&d), vec![("t.a-closed", "error")]);
    let b = d.blocked.expect("blocked");
    assert!(b.by_failure && b.reason.contains("trapped"), "{b:?}");
    // A timeout too.
    let d = dispatch(&host, pre_exec(json!({ "q": "!spin:150" })));
    assert_eq!(statuses(&d), vec![("t.a-closed", "timeout")]);
    assert!(d.blocked.is_some());
    // On a hook that cannot block, a fail-closed failure ends the chain without blocking.
    let d = dispatch(&host, post_exec(json!({ "q": "!spin:150" })));
    assert_eq!(statuses(&d), vec![("t.a-closed", "timeout")]);
    assert!(d.blocked.is_none());
    assert_eq!(d.event.tool_result.output, "out");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn block_decisions_and_invalid_values() {
    let host = start(HostOptions::default()).await;
    install_handler(
        &host,
        "t.one",
        json!([{ "event": "tool.pre_exec", "priority": 5 }]),
    )
    .await;
    install_handler(
        &host,
        "t.two",
        json!([{ "event": "tool.pre_exec", "priority": 1 }]),
    )
    .await;
    let d = dispatch(&host, pre_exec(json!({ "q": "!block" })));
    assert_eq!(
        statuses(&d),
        vec![("t.one", "blocked")],
        "a block ends the chain"
    );
    let b = d.blocked.unwrap();
    assert_eq!(b.reason, "chain blocked the tool");
    assert!(!b.by_failure);
    // A patch that breaks a field's rule (tool-input must be a JSON object) is rejected: the
    // handler counts as failed (fail-open here), nothing of it is applied, the chain goes on.
    let d = dispatch(&host, pre_exec(json!({ "q": "!invalid" })));
    assert_eq!(statuses(&d), vec![("t.one", "error"), ("t.two", "error")]);
    assert_eq!(tool_input(&d), json!({ "q": "!invalid" }));
    let receipts = host.receipts("t.one").await;
    let r = receipts.iter().rfind(|r| r["kind"] == "hook").unwrap();
    let detail: Value = serde_json::from_str(r["detailJson"].as_str().unwrap()).unwrap();
    assert_eq!(detail["failure"]["failure"], "invalid_output");
    assert!(
        detail["error"]
            .as_str()
            .unwrap()
            .contains("tool-input must be a JSON object")
    );
    host.stop().await;
}

/// One instance per plugin per run: a handler's memory is shared by the calls of a run and
/// never by another run, including when the pool reuses a memory slot that was kept resident
/// (it is reset to the component's initial image).
#[tokio::test(flavor = "multi_thread")]
async fn guest_state_is_shared_within_a_run_and_never_across_runs() {
    let host = start(HostOptions::default()).await;
    install_handler(&host, "t.count", json!(["tool.post_exec"])).await;
    let table = host.app.registry.hook_table();
    let output = |d: &Dispatched<h::ToolPostExecEvent>| d.event.tool_result.output.clone();
    for run in 0..40 {
        let mut scope = RunScope::new(ctx());
        let seen: Vec<String> = (0..3)
            .map(|_| {
                let d = tokio::task::block_in_place(|| {
                    host.app.dispatcher.dispatch(
                        &table,
                        &mut scope,
                        post_exec(json!({ "q": "!count" })),
                    )
                });
                output(&d)
            })
            .collect();
        assert_eq!(
            seen,
            [
                "out +post_exec #1",
                "out +post_exec #2",
                "out +post_exec #3"
            ],
            "run {run}"
        );
        scope.finish(&host.app.runtime);
    }
    host.stop().await;
}
