//! Upgrade (with consent to exactly the added permissions), rollback and uninstall with each
//! purge option, with real files: the `current` pointer, the database and the loaded version
//! always agree, and integration, work item and run data are never touched.

use nitejar_tests::{TestHost, chain_package};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::Path;

const ID: &str = "test.chain";
const TOKEN: &str = "chat-token-123";

fn version_pkg(version: &str, network: &[&str]) -> tempfile::TempDir {
    let (version, network) = (version.to_string(), json!(network));
    chain_package(move |m| {
        m["version"] = json!(version);
        m["permissions"]["network"] = network;
    })
}

/// `current` -> `versions/<v>`, the database and the registry all name `version`.
async fn assert_active(host: &TestHost, version: &str) {
    let link = std::fs::read_link(host.app.config.plugins_dir.join(ID).join("current")).unwrap();
    assert_eq!(link, Path::new("versions").join(version));
    let p = host
        .admin_json(Method::GET, &format!("/plugins/{ID}"), None, 200)
        .await;
    assert_eq!(p["version"], version, "{p}");
    assert_eq!(host.app.registry.get(ID).unwrap().version(), version);
}

async fn post(host: &TestHost, path: &str, body: Value, status: u16) -> Value {
    host.admin_json(Method::POST, path, Some(body), status)
        .await
}

/// Sends a chat message and waits for its run; returns the plugin versions its receipts name.
async fn run_versions(host: &TestHost, instance: &str, msg: &str) -> Vec<String> {
    let body = json!({ "id": msg, "text": "hi", "chat": "room-1" }).to_string();
    let (status, v) = host
        .webhook(
            "chat",
            instance,
            &[("x-chat-token", TOKEN)],
            body.into_bytes(),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let run = host.wait_for_run(v["workItemId"].as_str().unwrap()).await;
    let mut versions: Vec<String> = run["receipts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["pluginId"] == ID)
        .map(|r| r["pluginVersion"].as_str().unwrap().to_string())
        .collect();
    versions.dedup();
    versions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_waits_for_consent_to_exactly_the_additions_then_rolls_back() {
    let host = TestHost::start().await;
    let v1 = version_pkg("0.1.0", &["http://chat.test"]);
    host.install_and_enable(v1.path(), &["network:http://chat.test"])
        .await;
    let instance = host
        .create_instance("chat", json!({ "token": TOKEN }))
        .await;
    assert_active(&host, "0.1.0").await;

    // Installing another version is an upgrade, not an install.
    let v2 = version_pkg("0.2.0", &["http://chat.test", "http://extra.test"]);
    let v = post(
        &host,
        "/plugins/install",
        json!({"sourceKind": "local", "sourceRef": v2.path()}),
        409,
    )
    .await;
    assert_eq!(v["error"]["code"], "already_installed", "{v}");

    // The upgrade asks for one more host: staged, not active, until consent.
    let up = post(
        &host,
        &format!("/plugins/{ID}/upgrade"),
        json!({"sourceKind": "local", "sourceRef": v2.path()}),
        200,
    )
    .await;
    assert_eq!(up["status"], "pending_consent", "{up}");
    assert_eq!(up["addedPermissions"], json!(["network:http://extra.test"]));
    assert_active(&host, "0.1.0").await;
    assert!(
        host.app
            .config
            .plugins_dir
            .join(ID)
            .join("versions/0.2.0/plugin.wasm")
            .exists()
    );
    let p = host
        .admin_json(Method::GET, &format!("/plugins/{ID}"), None, 200)
        .await;
    assert_eq!(p["pendingVersion"], "0.2.0");
    assert_eq!(run_versions(&host, &instance, "m1").await, ["0.1.0"]);

    // Consent must be exactly the additions.
    for wrong in [
        json!([]),
        json!(["network:http://chat.test", "network:http://extra.test"]),
        json!(["network:http://other.test"]),
    ] {
        let v = post(
            &host,
            &format!("/plugins/{ID}/upgrade/approve"),
            json!({ "permissions": wrong }),
            422,
        )
        .await;
        assert_eq!(v["error"]["code"], "consent_mismatch", "{v}");
        assert_active(&host, "0.1.0").await;
    }
    let ok = post(
        &host,
        &format!("/plugins/{ID}/upgrade/approve"),
        json!({ "permissions": ["network:http://extra.test"] }),
        200,
    )
    .await;
    assert_eq!(ok["status"], "activated");
    assert_active(&host, "0.2.0").await;
    assert_eq!(run_versions(&host, &instance, "m2").await, ["0.2.0"]);
    let hooks = host.admin_json(Method::GET, "/hooks", None, 200).await;
    assert!(
        hooks.to_string().contains("0.2.0"),
        "hooks re-registered: {hooks}"
    );

    // Nothing added: activated at once.
    let v3 = version_pkg("0.3.0", &["http://chat.test", "http://extra.test"]);
    let up = post(
        &host,
        &format!("/plugins/{ID}/upgrade"),
        json!({"sourceKind": "local", "sourceRef": v3.path()}),
        200,
    )
    .await;
    assert_eq!(up["status"], "activated", "{up}");
    assert_active(&host, "0.3.0").await;

    // Going back is a rollback, not an upgrade.
    let v = post(
        &host,
        &format!("/plugins/{ID}/upgrade"),
        json!({"sourceKind": "local", "sourceRef": v1.path()}),
        409,
    )
    .await;
    assert!(
        v["error"]["message"].as_str().unwrap().contains("rollback"),
        "{v}"
    );
    let r = post(&host, &format!("/plugins/{ID}/rollback"), json!({}), 200).await;
    assert_eq!(r["version"], "0.2.0");
    assert_active(&host, "0.2.0").await;
    let r = post(
        &host,
        &format!("/plugins/{ID}/rollback"),
        json!({"version": "0.1.0"}),
        200,
    )
    .await;
    assert_eq!(r["version"], "0.1.0");
    assert_active(&host, "0.1.0").await;
    assert_eq!(run_versions(&host, &instance, "m3").await, ["0.1.0"]);
    post(&host, &format!("/plugins/{ID}/rollback"), json!({}), 409).await;
    post(
        &host,
        &format!("/plugins/{ID}/rollback"),
        json!({"version": "9.9.9"}),
        409,
    )
    .await;
    let versions = host
        .admin_json(Method::GET, &format!("/plugins/{ID}/versions"), None, 200)
        .await;
    assert_eq!(versions["versions"].as_array().unwrap().len(), 3);
    assert_eq!(versions["active"], "0.1.0");

    // Receipts for every step.
    let kinds: Vec<String> = host
        .receipts(ID)
        .await
        .iter()
        .filter(|r| r["kind"] == "upgrade" || r["kind"] == "rollback")
        .map(|r| {
            format!(
                "{}:{}:{}",
                r["kind"].as_str().unwrap(),
                r["status"].as_str().unwrap(),
                r["pluginVersion"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "upgrade:pending_consent:0.2.0",
            "upgrade:ok:0.2.0",
            "upgrade:ok:0.3.0",
            "rollback:ok:0.2.0",
            "rollback:ok:0.1.0"
        ]
    );

    // A restart keeps the rolled-back version; a pointer left behind by a crash is repaired.
    let data = host.stop_keep_data().await;
    let plugin_dir = data.path().join("plugins").join(ID);
    nitejar_core::plugins::installer::set_current(&plugin_dir, "0.3.0").unwrap();
    let host = TestHost::start_in(data, Default::default()).await;
    assert_active(&host, "0.1.0").await;
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninstall_with_each_purge_option_keeps_integration_data() {
    let host = TestHost::start().await;
    let v = post(&host, "/plugins/builtin.telegram/uninstall", json!({}), 409).await;
    assert!(
        v["error"]["message"].as_str().unwrap().contains("disable"),
        "{v}"
    );
    post(&host, "/plugins/no.such/uninstall", json!({}), 404).await;

    let pkg = version_pkg("0.1.0", &["http://chat.test"]);
    host.install_and_enable(pkg.path(), &["network:http://chat.test"])
        .await;
    let instance = host
        .create_instance("chat", json!({ "token": TOKEN }))
        .await;
    run_versions(&host, &instance, "m1").await;
    let items = host
        .admin_json(
            Method::GET,
            &format!("/instances/{instance}/work-items"),
            None,
            200,
        )
        .await;
    host.app
        .store
        .set(
            ID,
            "state",
            b"kept?",
            nitejar_sandbox::capabilities::kv::KvQuota {
                max_keys: 10,
                max_bytes: 1 << 20,
            },
        )
        .await
        .unwrap();
    let files = host.app.config.data_dir.join("plugin-files").join(ID);
    std::fs::create_dir_all(&files).unwrap();
    let plugin_dir = host.app.config.plugins_dir.join(ID);

    // No purge: unregistered and stopped; files and data stay for a reinstall.
    let v = post(&host, &format!("/plugins/{ID}/uninstall"), json!({}), 200).await;
    assert_eq!(v["uninstalled"], true);
    host.admin_json(Method::GET, &format!("/plugins/{ID}"), None, 404)
        .await;
    assert!(host.app.registry.get(ID).is_none());
    assert!(plugin_dir.join("versions/0.1.0/plugin.wasm").exists());
    assert!(files.exists());
    assert_eq!(
        host.app.store.get(ID, "state").await.unwrap().as_deref(),
        Some(&b"kept?"[..])
    );
    let (status, _) = host
        .webhook(
            "chat",
            &instance,
            &[("x-chat-token", TOKEN)],
            json!({"id": "m2", "text": "hi"}).to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, 503, "the instance stays, its plugin is gone");
    let inst = host
        .admin_json(Method::GET, &format!("/instances/{instance}"), None, 200)
        .await;
    assert_eq!(inst["pluginAvailable"], false);
    assert_eq!(
        inst["config"]["token"], "********",
        "redacted without the plugin too"
    );
    let after = host
        .admin_json(
            Method::GET,
            &format!("/instances/{instance}/work-items"),
            None,
            200,
        )
        .await;
    assert_eq!(items, after, "work items untouched");

    // Reinstall, then uninstall purging files and data.
    host.install_and_enable(pkg.path(), &["network:http://chat.test"])
        .await;
    post(
        &host,
        &format!("/plugins/{ID}/uninstall"),
        json!({"purgeFiles": true, "purgeData": true}),
        200,
    )
    .await;
    assert!(!plugin_dir.exists());
    assert!(!files.exists());
    assert_eq!(host.app.store.get(ID, "state").await.unwrap(), None);
    assert_eq!(
        host.admin_json(
            Method::GET,
            &format!("/instances/{instance}/work-items"),
            None,
            200
        )
        .await,
        items
    );
    // The audit trail stays.
    let kinds: Vec<String> = host
        .receipts(ID)
        .await
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds.iter().filter(|k| *k == "uninstall").count(), 2);
    host.stop().await;
}

/// Safe mode boots built-ins only: an enabled third-party plugin stays installed and enabled in
/// the database but is not run (receipted), enabling one is refused, and a normal boot brings
/// it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safe_mode_boots_builtins_only() {
    let host = TestHost::start().await;
    let pkg = version_pkg("0.1.0", &["http://chat.test"]);
    host.install_and_enable(pkg.path(), &["network:http://chat.test"])
        .await;
    let instance = host
        .create_instance("chat", json!({ "token": TOKEN }))
        .await;
    let data = host.stop_keep_data().await;

    let safe = nitejar_tests::HostOptions {
        safe_mode: true,
        ..Default::default()
    };
    let host = TestHost::start_in(data, safe).await;
    assert!(host.app.registry.get(ID).is_none());
    assert!(host.app.registry.get("builtin.telegram").is_some());
    let list = host.admin_json(Method::GET, "/plugins", None, 200).await;
    assert_eq!(list["safeMode"], true);
    let body = json!({ "id": "s1", "text": "hi", "chat": "r" }).to_string();
    let (status, _) = host
        .webhook(
            "chat",
            &instance,
            &[("x-chat-token", TOKEN)],
            body.into_bytes(),
        )
        .await;
    assert_eq!(status, 503);
    let v = post(
        &host,
        &format!("/plugins/{ID}/enable"),
        json!({"consent": true}),
        409,
    )
    .await;
    assert_eq!(v["error"]["code"], "safe_mode");
    let blocked: Vec<String> = host
        .receipts(ID)
        .await
        .iter()
        .filter(|r| r["status"] == "blocked")
        .map(|r| r["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(blocked, ["load", "enable"]);
    let data = host.stop_keep_data().await;

    let host = TestHost::start_in(data, Default::default()).await;
    assert_active(&host, "0.1.0").await;
    host.stop().await;
}

/// Doctor: healthy after an install; a lost component file and a stale `current` pointer are
/// reported with what to do; a restart repairs both and the doctor is satisfied again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_reports_problems_and_a_restart_repairs_them() {
    let host = TestHost::start().await;
    let v1 = version_pkg("0.1.0", &["http://chat.test"]);
    host.install_and_enable(v1.path(), &["network:http://chat.test"])
        .await;
    let all = host.admin_json(Method::GET, "/doctor", None, 200).await;
    assert_eq!(all["healthy"], true, "{all}");
    let v2 = version_pkg("0.2.0", &["http://chat.test"]);
    post(
        &host,
        &format!("/plugins/{ID}/upgrade"),
        json!({"sourceKind": "local", "sourceRef": v2.path()}),
        200,
    )
    .await;
    let dir = host.app.config.plugins_dir.join(ID);
    std::fs::remove_file(dir.join("versions/0.2.0/plugin.wasm")).unwrap();
    nitejar_core::plugins::installer::set_current(&dir, "0.1.0").unwrap();
    let d = host
        .admin_json(Method::GET, &format!("/plugins/{ID}/doctor"), None, 200)
        .await;
    assert_eq!(d["healthy"], false);
    assert_eq!(d["files"], "missing");
    let checks: Vec<&str> = d["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["check"].as_str().unwrap())
        .collect();
    assert_eq!(checks, ["files", "current_pointer"], "{d}");
    assert!(
        d["problems"][0]["fix"]
            .as_str()
            .unwrap()
            .contains("stored artifact")
    );
    let data = host.stop_keep_data().await;
    let host = TestHost::start_in(data, Default::default()).await;
    let d = host
        .admin_json(Method::GET, &format!("/plugins/{ID}/doctor"), None, 200)
        .await;
    assert_eq!(d["healthy"], true, "{d}");
    assert_eq!(d["cache"], "compiled");
    assert_active(&host, "0.2.0").await;
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_embedded_integrations_are_built_in_and_enabled_at_first_boot() {
    let host = TestHost::start().await;
    let list = host.admin_json(Method::GET, "/plugins", None, 200).await;
    let mut builtin: Vec<(String, bool, String)> = list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_string(),
                p["enabled"].as_bool().unwrap(),
                p["trustLevel"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    builtin.sort();
    let expected = [
        "builtin.github",
        "builtin.telegram",
        "nitejar.example.webhook",
    ];
    assert_eq!(
        builtin,
        expected.map(|id| (id.to_string(), true, "builtin".to_string())),
        "{list}"
    );

    // A data directory where an earlier version shipped the example hooks plugin as built in
    // (installed, enabled, trust `builtin`): the next boot demotes it, disabled until reviewed.
    host.install_and_enable(&nitejar_tests::guest_package("hooks"), &[])
        .await;
    host.app
        .store
        .set_trust_level("nitejar.example.hooks", "builtin")
        .await
        .unwrap();
    let data = host.stop_keep_data().await;
    let host = TestHost::start_in(data, Default::default()).await;
    let p = host
        .admin_json(Method::GET, "/plugins/nitejar.example.hooks", None, 200)
        .await;
    assert_eq!(p["enabled"], false, "{p}");
    assert_eq!(p["trustLevel"], "untrusted", "{p}");
    assert!(
        p.to_string().contains("no longer") || p.to_string().contains("does not"),
        "the alert says why: {p}"
    );
    assert!(host.app.registry.get("nitejar.example.hooks").is_none());
    // The operator can enable it like any installed plugin.
    host.admin_json(
        Method::POST,
        "/plugins/nitejar.example.hooks/enable",
        Some(json!({ "consent": true })),
        200,
    )
    .await;
    assert!(host.app.registry.get("nitejar.example.hooks").is_some());
    host.stop().await;
}

/// A boot loads plugins concurrently but puts them in service in a fixed order: built-ins, then
/// by install time, whichever finishes loading first. Here the cache is cold, so the first
/// plugin installed (the largest component) takes longest to compile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_boot_puts_plugins_in_service_in_install_order_whatever_loads_first() {
    let host = TestHost::start().await;
    let first_boot = host.last_startup().await;
    let builtins = first_boot["loaded"].as_array().unwrap().clone();
    assert!(!builtins.is_empty());
    let installed = ["hostile", "lift", "skills"];
    for name in installed {
        host.install_and_enable(&nitejar_tests::guest_package(name), &[])
            .await;
    }
    let chain = chain_package(|_| {});
    host.install_and_enable(chain.path(), &[]).await;
    let data = host.stop_keep_data().await;

    let cold = tempfile::tempdir().unwrap();
    let opts = nitejar_tests::HostOptions {
        cache_dir: Some(cold.path().to_path_buf()),
        ..Default::default()
    };
    let host = TestHost::start_in(data, opts).await;
    let boot = host.last_startup().await;
    assert_eq!(boot["failed"], json!([]));
    let mut expected = builtins;
    expected.extend(installed.iter().map(|n| json!(format!("test.{n}"))));
    expected.push(json!("test.chain"));
    assert_eq!(boot["loaded"], json!(expected));
    // Each plugin's `load` receipt was emitted in that order too (receipt ids are UUIDv7s made
    // in emit order).
    let mut loads = Vec::new();
    for id in expected.iter().map(|v| v.as_str().unwrap()) {
        let r = host.receipts(id).await;
        let load = r.iter().rfind(|r| r["kind"] == "load").unwrap();
        assert_eq!(load["status"], "ok", "{load:#}");
        loads.push(load["id"].as_str().unwrap().to_string());
    }
    let mut sorted = loads.clone();
    sorted.sort();
    assert_eq!(loads, sorted);
    host.stop().await;
}
