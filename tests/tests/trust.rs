//! Trust modes (spec §7, §18.3, §23) and safe mode, as a matrix: which sources and packages
//! each mode accepts, grants before enable, re-checking at boot when the policy changes, and a
//! receipt for every refusal. Also: a tampered artifact is refused at boot with a receipt.

use nitejar_core::plugins::package::PluginPackage;
use nitejar_core::plugins::trust::{self, TrustMode, TrustPolicy};
use nitejar_tests::sources::{GitRepo, NpmRegistry, npm_tgz};
use nitejar_tests::{HostOptions, TestHost, chain_package};
use reqwest::Method;
use serde_json::{Value, json};

const ID: &str = "test.chain";
const GRANT: &str = "network:http://chat.test";

fn policy(mode: TrustMode) -> (TrustPolicy, ed25519_keys::Keys) {
    let keys = ed25519_keys::Keys::new();
    (
        TrustPolicy {
            mode,
            trusted_keys: vec![keys.trusted.verifying_key()],
            platform_keys: vec![keys.platform.verifying_key()],
            allowlist: Vec::new(),
        },
        keys,
    )
}

mod ed25519_keys {
    /// A trusted key, a platform key and one nobody trusts.
    pub struct Keys {
        pub trusted: ed25519_dalek::SigningKey,
        pub platform: ed25519_dalek::SigningKey,
        pub stranger: ed25519_dalek::SigningKey,
    }
    impl Keys {
        pub fn new() -> Keys {
            use nitejar_core::plugins::trust::generate_key;
            Keys {
                trusted: generate_key(),
                platform: generate_key(),
                stranger: generate_key(),
            }
        }
    }
}

/// The chain package, signed by `key` when given (the signature file written next to it).
fn package(key: Option<&ed25519_dalek::SigningKey>) -> tempfile::TempDir {
    let dir = chain_package(|_| {});
    if let Some(key) = key {
        let pkg = PluginPackage::from_dir(dir.path()).unwrap();
        std::fs::write(
            dir.path().join(trust::SIGNATURE_FILE),
            serde_json::to_vec(&trust::sign(&pkg, key)).unwrap(),
        )
        .unwrap();
    }
    dir
}

async fn start(policy: TrustPolicy, registry: Option<&NpmRegistry>) -> TestHost {
    TestHost::start_with(HostOptions {
        trust: Some(policy),
        npm_registry: registry.map(|r| r.url.clone()),
        ..Default::default()
    })
    .await
}

async fn post(host: &TestHost, path: &str, body: Value, status: u16) -> Value {
    host.admin_json(Method::POST, path, Some(body), status)
        .await
}

async fn install_local(host: &TestHost, dir: &std::path::Path, status: u16) -> Value {
    post(
        host,
        "/plugins/install",
        json!({"sourceKind": "local", "sourceRef": dir}),
        status,
    )
    .await
}

fn detail(r: &Value) -> Value {
    serde_json::from_str(r["detailJson"].as_str().unwrap_or("null")).unwrap()
}

/// The first receipt of `plugin` with `kind` and `status` (`receipts` flushes the writer first).
async fn receipt(host: &TestHost, plugin: &str, kind: &str, status: &str) -> Value {
    host.receipts(plugin)
        .await
        .into_iter()
        .find(|r| r["kind"] == kind && r["status"] == status)
        .unwrap_or_else(|| panic!("no {kind}/{status} receipt for {plugin}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guarded_mode_needs_a_trusted_signature_or_the_allowlist_and_all_grants() {
    let (mut policy, keys) = policy(TrustMode::SelfHostGuarded);
    let unsigned = package(None);
    let checksum = PluginPackage::from_dir(unsigned.path()).unwrap().digest;
    let host = start(policy.clone(), None).await;

    // Unsigned, and signed by a key nobody trusts: refused, with receipts.
    let e = install_local(&host, unsigned.path(), 403).await;
    assert_eq!(e["error"]["code"], "trust_policy", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not signed")
    );
    let r = receipt(&host, ID, "install", "blocked").await;
    assert_eq!(detail(&r)["trustMode"], "self_host_guarded", "{r}");
    let stranger = package(Some(&keys.stranger));
    let e = install_local(&host, stranger.path(), 403).await;
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not by a trusted key")
    );

    // The preview says so before anything is installed.
    let p = post(
        &host,
        "/plugins/preview",
        json!({"sourceKind": "local", "sourceRef": unsigned.path()}),
        200,
    )
    .await;
    assert_eq!(p["trust"]["allowed"], false, "{p}");

    // A package changed after signing is refused.
    let tampered = package(Some(&keys.trusted));
    let mut m: Value = serde_json::from_slice(
        &std::fs::read(tampered.path().join("nitejar.plugin.json")).unwrap(),
    )
    .unwrap();
    m["permissions"]["network"] = json!(["http://chat.test", "http://evil.test"]);
    std::fs::write(tampered.path().join("nitejar.plugin.json"), m.to_string()).unwrap();
    install_local(&host, tampered.path(), 403).await;

    // Signed by the trusted key: installed as trusted; enable needs every grant first.
    let signed = package(Some(&keys.trusted));
    install_local(&host, signed.path(), 201).await;
    let p = host
        .admin_json(Method::GET, &format!("/plugins/{ID}"), None, 200)
        .await;
    assert_eq!(p["trustLevel"], "trusted", "{p}");
    let e = post(
        &host,
        &format!("/plugins/{ID}/enable"),
        json!({"consent": true}),
        409,
    )
    .await;
    assert_eq!(e["error"]["code"], "grants_required", "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains(GRANT));
    receipt(&host, ID, "enable", "blocked").await;
    host.grant_and_enable(ID, &[GRANT]).await;
    assert!(host.app.registry.get(ID).is_some());
    host.stop().await;

    // The allowlist (id + checksum) admits the unsigned package.
    policy.allowlist = vec![(ID.to_string(), checksum)];
    let host = start(policy, None).await;
    install_local(&host, unsigned.path(), 201).await;
    let p = host
        .admin_json(Method::GET, &format!("/plugins/{ID}"), None, 200)
        .await;
    assert_eq!(p["trustLevel"], "trusted");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saas_locked_refuses_every_arbitrary_source_and_runs_platform_signed_plugins() {
    let (policy, keys) = policy(TrustMode::SaasLocked);
    let registry = NpmRegistry::start().await;
    let signed_by_platform = package(Some(&keys.platform));
    registry.publish("chain", "0.1.0", signed_by_platform.path());
    let repo = GitRepo::new();
    repo.commit_package("", signed_by_platform.path(), "signed");
    let host = start(policy, Some(&registry)).await;

    // Built-ins run.
    assert!(host.app.registry.get("builtin.telegram").is_some());
    // Upload, npm and git are refused before anything is fetched, each with a receipt, even
    // for a platform-signed package.
    let resp = host
        .admin(Method::POST, "/plugins/upload")
        .body(npm_tgz(signed_by_platform.path()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    for (kind, reference) in [("npm", "chain".to_string()), ("git", repo.url())] {
        let e = post(
            &host,
            "/plugins/install",
            json!({"sourceKind": kind, "sourceRef": reference}),
            403,
        )
        .await;
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("refuses {kind}")),
            "{e}"
        );
    }
    let refusals: Vec<Value> = host
        .receipts(nitejar_core::app::HOST_RECEIPT_ID)
        .await
        .into_iter()
        .filter(|r| r["kind"] == "install" && r["status"] == "blocked")
        .collect();
    assert_eq!(refusals.len(), 3, "{refusals:?}");
    assert_eq!(
        registry.auth_headers().len(),
        0,
        "nothing was fetched from npm"
    );

    // A local package signed by a trusted (not platform) key is refused; platform-signed runs.
    let trusted_only = package(Some(&keys.trusted));
    install_local(&host, trusted_only.path(), 403).await;
    install_local(&host, signed_by_platform.path(), 201).await;
    host.grant_and_enable(ID, &[GRANT]).await;
    assert!(host.app.registry.get(ID).is_some());
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stricter_policy_at_boot_stops_plugins_it_no_longer_accepts() {
    let (open, _keys) = policy(TrustMode::SelfHostOpen);
    let host = start(open.clone(), None).await;
    let unsigned = package(None);
    host.install_and_enable(unsigned.path(), &[GRANT]).await;
    let p = host
        .admin_json(Method::GET, &format!("/plugins/{ID}"), None, 200)
        .await;
    assert_eq!(p["trustLevel"], "untrusted");
    let data = host.stop_keep_data().await;

    // Restart guarded: the unsigned plugin stays installed and enabled but does not load.
    let guarded = TrustPolicy {
        mode: TrustMode::SelfHostGuarded,
        ..open.clone()
    };
    let host = TestHost::start_in(
        data,
        HostOptions {
            trust: Some(guarded),
            ..Default::default()
        },
    )
    .await;
    assert!(host.app.registry.get(ID).is_none());
    let r = receipt(&host, ID, "load", "blocked").await;
    assert!(
        detail(&r)["error"]
            .as_str()
            .unwrap()
            .contains("trust policy"),
        "{r}"
    );
    let d = host
        .admin_json(Method::GET, &format!("/plugins/{ID}/doctor"), None, 200)
        .await;
    assert_eq!(d["healthy"], false, "{d}");
    // Built-ins are unaffected.
    assert!(host.app.registry.get("builtin.github").is_some());
    let data = host.stop_keep_data().await;

    // Back to open: it loads again.
    let host = TestHost::start_in(
        data,
        HostOptions {
            trust: Some(open),
            ..Default::default()
        },
    )
    .await;
    assert!(host.app.registry.get(ID).is_some());
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safe_mode_in_every_trust_mode_runs_builtins_only() {
    for mode in [
        TrustMode::SelfHostOpen,
        TrustMode::SelfHostGuarded,
        TrustMode::SaasLocked,
    ] {
        let (policy, keys) = policy(mode);
        let host = start(policy.clone(), None).await;
        let pkg = package(Some(&keys.platform));
        host.install_and_enable(pkg.path(), &[GRANT]).await;
        let data = host.stop_keep_data().await;
        let host = TestHost::start_in(
            data,
            HostOptions {
                trust: Some(policy),
                safe_mode: true,
                ..Default::default()
            },
        )
        .await;
        assert!(host.app.registry.get(ID).is_none(), "{mode:?}");
        assert!(
            host.app.registry.get("builtin.telegram").is_some(),
            "{mode:?}"
        );
        receipt(&host, ID, "load", "blocked").await;
        host.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_stored_artifact_is_refused_at_boot_with_a_receipt() {
    let host = TestHost::start().await;
    let pkg = package(None);
    host.install_and_enable(pkg.path(), &[GRANT]).await;
    let config = host.app.config.clone();
    let data = host.stop_keep_data().await;
    // Both copies changed: the file on disk and the artifact kept in the database.
    let wasm = config
        .plugins_dir
        .join(ID)
        .join("versions/0.1.0/plugin.wasm");
    std::fs::write(&wasm, b"\0asm tampered").unwrap();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", config.database_path.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE plugin_artifacts SET bytes = ? WHERE plugin_id = ?")
        .bind(b"\0asm evil".to_vec())
        .bind(ID)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let host = TestHost::start_in(data, HostOptions::default()).await;
    assert!(host.app.registry.get(ID).is_none(), "refused");
    let r = receipt(&host, ID, "load", "error").await;
    assert!(
        detail(&r)["error"]
            .as_str()
            .unwrap()
            .contains("does not match the recorded checksum"),
        "{r}"
    );
    let d = host
        .admin_json(Method::GET, &format!("/plugins/{ID}/doctor"), None, 200)
        .await;
    assert_eq!(d["healthy"], false, "{d}");
    // The host keeps serving: built-ins run.
    assert!(host.app.registry.get("builtin.telegram").is_some());
    host.stop().await;
}
