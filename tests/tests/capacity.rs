//! Capacity follows the plugins installed, and the host at capacity is never blamed on a plugin
//! (issue 17): a hundred hook plugins serve runs on every worker at once without a call refused
//! as busy, and crash-loop protection disables none of them.

use nitejar_tests::{HostOptions, TestHost, chain_package};
use serde_json::{Value, json};

const PLUGINS: usize = 100;
const DELIVERIES: usize = 24;
const SECRET: &str = "capacity-signing-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_hook_plugins_serve_concurrent_runs_and_none_is_disabled() {
    // The product's crash-loop threshold (5 failures in 5 minutes) is on.
    let host = TestHost::start().await;
    // The chain component under a hundred ids, each with two mutating run hooks: every run
    // calls all of them, on every run worker at once.
    for n in 0..PLUGINS {
        let pkg = chain_package(|m| {
            m["id"] = json!(format!("load.hooks-{n:03}"));
            m["contributes"] = json!({ "hooks": ["run.pre_prompt", "response.pre_deliver"] });
        });
        host.install_and_enable(pkg.path(), &[]).await;
    }
    let instance = host
        .create_instance("webhook", json!({ "secret": SECRET }))
        .await;
    // Installed while running: the pool sized at boot makes room by giving back prepared
    // instances and waiting for runs to end.
    traffic(&host, &instance, "live").await;
    none_disabled(&host).await;
    // Booted with them: the pool is sized for a hundred plugins from the start.
    let data = host.stop_keep_data().await;
    let host = TestHost::start_in(data, HostOptions::default()).await;
    traffic(&host, &instance, "booted").await;
    none_disabled(&host).await;
    host.stop().await;
}

/// Sends [`DELIVERIES`] signed webhooks at once and checks every run: done, both hooks of
/// every plugin ran and changed the reply, no handler was refused for capacity.
async fn traffic(host: &TestHost, instance: &str, tag: &str) {
    let sends = (0..DELIVERIES).map(|i| {
        let host = &host;
        let instance = &instance;
        async move {
            let body = json!({"id": format!("{tag}-{i}"), "text": format!("run {i}")}).to_string();
            let sig = nitejar_tests::sign(SECRET, body.as_bytes());
            let (status, v) = host
                .webhook(
                    "webhook",
                    instance,
                    &[("x-signature-256", &sig)],
                    body.into_bytes(),
                )
                .await;
            assert_eq!(status, 202, "{v}");
            v["workItemId"].as_str().unwrap().to_string()
        }
    });
    let ids = futures::future::join_all(sends).await;
    for id in &ids {
        let run = host.wait_for_run(id).await;
        assert_eq!(run["job"]["status"], "done", "{run}");
        let hooks: Vec<&Value> = run["receipts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["kind"] == "hook")
            .collect();
        let failed: Vec<&&Value> = hooks.iter().filter(|r| r["status"] != "ok").collect();
        assert!(
            failed.is_empty(),
            "every handler ran; none was refused for capacity: {failed:?}"
        );
        assert_eq!(
            hooks.len(),
            2 * PLUGINS,
            "both hooks of every plugin ran in run {id}"
        );
        let delivered = run["delivery"]["content"].as_str().unwrap_or_default();
        assert_eq!(
            delivered.matches("+pre_deliver").count(),
            PLUGINS,
            "each plugin's change reached the reply"
        );
    }
}

/// Every one of the hundred plugins is enabled and has no alert.
async fn none_disabled(host: &TestHost) {
    let plugins = host
        .admin_json(reqwest::Method::GET, "/plugins", None, 200)
        .await;
    let plugins = plugins["plugins"].as_array().unwrap_or_else(|| {
        panic!("plugin list: {plugins}");
    });
    let ours: Vec<&Value> = plugins
        .iter()
        .filter(|p| p["id"].as_str().unwrap_or("").starts_with("load.hooks-"))
        .collect();
    assert_eq!(ours.len(), PLUGINS);
    for p in ours {
        assert_eq!(p["enabled"], true, "{p}");
        assert!(p["alert"].is_null(), "{p}");
    }
}
