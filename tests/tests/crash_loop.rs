//! Crash-loop protection: N failures in M minutes disable a plugin and stop it at once, with an
//! `auto_disable` receipt and an alert; the host keeps serving; re-enabling clears it.

use nitejar_tests::{HostOptions, TestHost, chain_package, guest_package};
use reqwest::Method;
use serde_json::{Value, json};

async fn wait_disabled(host: &TestHost, id: &str) -> Value {
    for _ in 0..100 {
        let p = host
            .admin_json(Method::GET, &format!("/plugins/{id}"), None, 200)
            .await;
        if p["enabled"] == false {
            return p;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{id} was not disabled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashing_webhooks_disable_the_plugin_and_reenable_clears_it() {
    let host = TestHost::start_with(HostOptions {
        crash_threshold: Some(3),
        integration_timeout_ms: Some(300),
        ..Default::default()
    })
    .await;
    host.install_and_enable(&guest_package("hostile"), &[])
        .await;
    let instance = host.create_instance("hostile", json!({})).await;
    let attack = |n: usize, name: &str| {
        json!({"attack": name, "target": "", "id": format!("a{n}")})
            .to_string()
            .into_bytes()
    };
    // An error the plugin returns on purpose is not a crash.
    for n in 0..3 {
        let (status, _) = host
            .webhook("hostile", &instance, &[], attack(n, "ok"))
            .await;
        assert_eq!(status, 202);
    }
    for (n, name) in [(10, "trap"), (11, "loop"), (12, "trap")] {
        let (status, v) = host
            .webhook("hostile", &instance, &[], attack(n, name))
            .await;
        assert_eq!(status, 502, "{name}: {v}");
    }
    let p = wait_disabled(&host, "test.hostile").await;
    assert_eq!(p["alert"]["kind"], "crash_loop", "{p}");
    assert_eq!(p["alert"]["failures"], 3);
    assert!(host.app.registry.get("test.hostile").is_none());
    let receipts = host.receipts("test.hostile").await;
    let auto = receipts
        .iter()
        .filter(|r| r["kind"] == "auto_disable")
        .collect::<Vec<_>>();
    assert_eq!(auto.len(), 1, "one auto_disable receipt");
    let calls_before = receipts
        .iter()
        .filter(|r| r["kind"] == "integration")
        .count();

    // Stopped: no more calls reach it; the rest of the host serves on.
    let (status, _) = host
        .webhook("hostile", &instance, &[], attack(20, "ok"))
        .await;
    assert_eq!(status, 503);
    let calls_after = host
        .receipts("test.hostile")
        .await
        .iter()
        .filter(|r| r["kind"] == "integration")
        .count();
    assert_eq!(calls_before, calls_after, "no call was made");
    let hooks = host.admin_json(Method::GET, "/plugins", None, 200).await;
    assert!(hooks["plugins"].as_array().unwrap().len() >= 4);

    // Re-enabling clears the alert and the count; it serves again.
    host.admin_json(
        Method::POST,
        "/plugins/test.hostile/enable",
        Some(json!({"consent": true})),
        200,
    )
    .await;
    let p = host
        .admin_json(Method::GET, "/plugins/test.hostile", None, 200)
        .await;
    assert_eq!(
        (p["alert"].clone(), p["recentFailures"].clone()),
        (Value::Null, json!(0))
    );
    let (status, _) = host
        .webhook("hostile", &instance, &[], attack(21, "ok"))
        .await;
    assert_eq!(status, 202);
    host.stop().await;
}

/// A hook handler that keeps failing trips the guard: its remaining handlers are not called,
/// and the run completes without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_hook_plugin_is_stopped_mid_run() {
    let host = TestHost::start_with(HostOptions {
        crash_threshold: Some(2),
        ..Default::default()
    })
    .await;
    let pkg = chain_package(|_| {});
    host.install_and_enable(pkg.path(), &["network:http://chat.test"])
        .await;
    let instance = host
        .create_instance("chat", json!({ "token": "chat-token-123" }))
        .await;
    // `!trap` makes every handler of the chain plugin trap (fail-open by default).
    let body = json!({"id": "m1", "text": "!trap please", "chat": "r"}).to_string();
    let (status, v) = host
        .webhook(
            "chat",
            &instance,
            &[("x-chat-token", "chat-token-123")],
            body.into_bytes(),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let run = host.wait_for_run(v["workItemId"].as_str().unwrap()).await;
    wait_disabled(&host, "test.chain").await;
    let hook_receipts: Vec<&Value> = run["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "hook")
        .collect();
    let traps = hook_receipts
        .iter()
        .filter(|r| r["detail"]["failure"]["failure"] == "trap")
        .count();
    let not_made = hook_receipts
        .iter()
        .filter(|r| r["detail"]["failure"]["failure"] == "disabled")
        .count();
    assert_eq!(
        traps, 2,
        "exactly the threshold of calls trapped: {hook_receipts:?}"
    );
    // After the trip nothing of the plugin ran: its later handlers were either skipped as not
    // made (the run's dispatch had them in its table) or gone from the table altogether.
    assert_eq!(traps + not_made, hook_receipts.len(), "{hook_receipts:?}");
    let p = host
        .admin_json(Method::GET, "/plugins/test.chain", None, 200)
        .await;
    assert_eq!(p["alert"]["kind"], "crash_loop");
    host.stop().await;
}

/// A plugin that guarded an operation with a fail-closed hook does not open it by crashing:
/// when crash-loop protection disables it, its fail-closed handlers of blocking hooks stay in
/// place, held (never called), and block until an operator enables, disables or uninstalls it,
/// across a restart too. The alert says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_looped_plugins_fail_closed_hooks_keep_blocking_until_an_operator_acts() {
    let opts = || HostOptions {
        crash_threshold: Some(2),
        ..Default::default()
    };
    let host = TestHost::start_with(opts()).await;
    let pkg = chain_package(|m| {
        m["contributes"]["hooks"] = json!([
            { "event": "work_item.pre_create", "failPolicy": "fail_closed", "timeoutMs": 2000 }
        ]);
    });
    host.install_and_enable(pkg.path(), &["network:http://chat.test"])
        .await;
    const SECRET: &str = "held-hook-signing-secret";
    let instance = host
        .create_instance("webhook", json!({ "secret": SECRET }))
        .await;
    async fn send(host: &TestHost, instance: &str, id: &str, text: &str) -> (u16, Value) {
        let body = json!({ "id": id, "text": text }).to_string().into_bytes();
        let sig = nitejar_tests::sign(SECRET, &body);
        host.webhook("webhook", instance, &[("x-signature-256", &sig)], body)
            .await
    }
    // `!trap` makes the guard trap: fail-closed, so each delivery is blocked; two trip it.
    for i in 0..2 {
        let (status, v) = send(&host, &instance, &format!("trap-{i}"), "!trap now").await;
        assert_eq!((status, &v["ignored"]), (200, &json!(true)), "{v}");
    }
    let p = wait_disabled(&host, "test.chain").await;
    let alert = p["alert"]["message"].as_str().unwrap();
    assert!(alert.contains("1 fail-closed handler"), "{alert}");

    // A harmless delivery is still blocked: by the held handler, without calling the plugin
    // (its receipt says `disabled`, held, blocked; receipts are written in batches).
    let (status, v) = send(&host, &instance, "ok-1", "hello").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["blockedBy"], "test.chain", "{v}");
    assert!(v["reason"].as_str().unwrap().contains("held"), "{v}");
    let mut held = None;
    for _ in 0..100 {
        held = host
            .receipts("test.chain")
            .await
            .into_iter()
            .filter(|r| r["kind"] == "hook")
            .map(|r| serde_json::from_str::<Value>(r["detailJson"].as_str().unwrap()).unwrap())
            .find(|d| d["held"] == true);
        if held.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let detail = held.expect("a receipt of the held handler");
    assert_eq!(detail["effect"], "blocked", "{detail}");
    assert_eq!(detail["failure"]["failure"], "disabled", "{detail}");

    // Still held after a restart.
    let data = host.stop_keep_data().await;
    let host = TestHost::start_in(data, opts()).await;
    let (status, v) = send(&host, &instance, "ok-2", "hello").await;
    assert_eq!(
        (status, &v["blockedBy"]),
        (200, &json!("test.chain")),
        "{v}"
    );

    // The operator disables it: what it guarded is now the operator's decision, and open.
    host.disable("test.chain").await;
    let (status, v) = send(&host, &instance, "ok-3", "hello").await;
    assert_eq!(status, 202, "{v}");
    host.stop().await;
}
