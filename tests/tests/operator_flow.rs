//! The operator flow of spec §26, driven through the CLI (`nitejar::cli::run`, the binary's
//! own command code) against a running server, checked through the admin API and the files on
//! disk: install from npm (a local registry started by the test), preview, consent, enable, an
//! instance of the plugin's integration type, a webhook whose run leaves hook and integration
//! receipts, an upgrade that adds a permission (blocked until consent to exactly the diff),
//! rollback, and uninstall with each purge option, reinstalling from git, upload and a local
//! directory in between.

use nitejar_tests::sources::{GitRepo, NpmRegistry, npm_tgz};
use nitejar_tests::{HostOptions, TestHost, chain_package, cli};
use reqwest::Method;
use serde_json::{Value, json};

const ID: &str = "test.chain";
const PKG: &str = "@acme/nitejar-chain";
const TOKEN: &str = "chat-token-26";

async fn ok(host: &TestHost, args: &[&str]) -> String {
    let (code, out) = cli(host, args).await;
    assert_eq!(code, 0, "nitejar {args:?}: {out}");
    out
}

fn version_pkg(version: &str, network: &[&str]) -> tempfile::TempDir {
    let (version, network) = (version.to_string(), json!(network));
    chain_package(move |m| {
        m["version"] = json!(version);
        m["permissions"]["network"] = network;
    })
}

async fn plugin(host: &TestHost) -> Value {
    host.admin_json(Method::GET, &format!("/plugins/{ID}"), None, 200)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_26_operator_flow_through_the_cli() {
    let registry = NpmRegistry::start().await;
    let v1 = version_pkg("0.1.0", &["http://chat.test"]);
    let v2 = version_pkg("0.2.0", &["http://chat.test", "http://extra.test"]);
    registry.publish(PKG, "0.1.0", v1.path());
    registry.publish(PKG, "0.2.0", v2.path());
    let host = TestHost::start_with(HostOptions {
        npm_registry: Some(registry.url.clone()),
        ..Default::default()
    })
    .await;
    let plugin_dir = host.app.config.plugins_dir.join(ID);

    // 3-4. Preview from npm, then install: disabled, declared capabilities shown.
    let out = ok(
        &host,
        &[
            "plugin",
            "install",
            &format!("npm:{PKG}@0.1.0"),
            "--preview",
        ],
    )
    .await;
    assert!(out.contains("test.chain 0.1.0"), "{out}");
    assert!(out.contains("network:http://chat.test"), "{out}");
    assert!(out.contains("trust: untrusted (open_mode"), "{out}");
    host.admin_json(Method::GET, &format!("/plugins/{ID}"), None, 404)
        .await;
    let out = ok(&host, &["plugin", "install", &format!("npm:{PKG}@0.1.0")]).await;
    assert!(
        out.contains("installed test.chain 0.1.0 (disabled)"),
        "{out}"
    );
    assert!(plugin_dir.join("versions/0.1.0/plugin.wasm").is_file());
    assert_eq!(plugin(&host).await["enabled"], false);
    let out = ok(&host, &["plugin", "show", ID]).await;
    assert!(out.contains("not granted"), "{out}");
    assert!(out.contains("wasm_sandbox"), "{out}");

    // 5-6. Consent is required; with it, the grants and the enable happen.
    let (code, out) = cli(&host, &["plugin", "enable", ID]).await;
    assert_eq!(code, 4, "{out}");
    assert_eq!(plugin(&host).await["enabled"], false);
    ok(&host, &["plugin", "enable", ID, "--yes"]).await;
    let p = plugin(&host).await;
    assert_eq!(p["enabled"], true, "{p}");
    assert!(
        p["disclosures"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["acknowledged"] == true)
    );

    // 7-9. An instance of the plugin's type, a webhook, receipts of hooks and integration.
    let out = ok(
        &host,
        &[
            "--json",
            "instance",
            "create",
            "chat",
            "--name",
            "ops chat",
            "--set",
            &format!("token={TOKEN}"),
        ],
    )
    .await;
    let instance = serde_json::from_str::<Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, v) = host
        .webhook(
            "chat",
            &instance,
            &[("x-chat-token", TOKEN)],
            json!({"id": "m1", "text": "hello", "chat": "room-1"})
                .to_string()
                .into_bytes(),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let item = v["workItemId"].as_str().unwrap().to_string();
    host.wait_for_run(&item).await;
    let out = ok(&host, &["run", "show", &item]).await;
    assert!(out.contains("work_item.pre_create"), "{out}");
    assert!(out.contains("response.post_deliver"), "{out}");
    let receipts = host.receipts(ID).await;
    for kind in ["hook", "integration"] {
        let r = receipts
            .iter()
            .find(|r| r["kind"] == kind && r["workItemId"] == item.as_str())
            .unwrap_or_else(|| panic!("a {kind} receipt for the work item"));
        assert_eq!(r["executionMode"], "wasm_sandbox");
        assert_eq!(r["pluginVersion"], "0.1.0");
    }

    // 10. Upgrade from the recorded source (npm's newest): it adds a permission, so it waits.
    let (code, out) = cli(&host, &["plugin", "upgrade", ID]).await;
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("waits for consent"), "{out}");
    let p = plugin(&host).await;
    assert_eq!(p["version"], "0.1.0");
    assert_eq!(p["pendingVersion"], "0.2.0");
    assert_eq!(host.app.registry.get(ID).unwrap().version(), "0.1.0");
    // With consent to the diff it activates, without a restart.
    let out = ok(&host, &["plugin", "upgrade", ID, "--yes"]).await;
    assert!(out.contains("0.1.0 -> 0.2.0: activated"), "{out}");
    assert!(out.contains("+ network:http://extra.test"), "{out}");
    assert_eq!(host.app.registry.get(ID).unwrap().version(), "0.2.0");
    assert_eq!(
        std::fs::read_link(plugin_dir.join("current")).unwrap(),
        std::path::Path::new("versions/0.2.0")
    );

    // 11. Roll back.
    ok(&host, &["plugin", "rollback", ID, "--to", "0.1.0"]).await;
    assert_eq!(plugin(&host).await["version"], "0.1.0");
    assert_eq!(host.app.registry.get(ID).unwrap().version(), "0.1.0");
    let out = ok(&host, &["plugin", "versions", ID]).await;
    assert!(out.contains("0.2.0"), "{out}");

    // Uninstall keeping files and data, reinstall from git, uninstall purging files; reinstall
    // from an upload, uninstall purging data; reinstall from a local directory, purge both.
    let files = host.app.config.data_dir.join("plugin-files").join(ID);
    std::fs::create_dir_all(&files).unwrap();
    ok(&host, &["plugin", "uninstall", ID, "--yes"]).await;
    assert!(plugin_dir.join("versions/0.1.0/plugin.wasm").is_file());
    assert!(files.exists());
    host.admin_json(Method::GET, &format!("/plugins/{ID}"), None, 404)
        .await;

    let repo = GitRepo::new();
    let commit = repo.commit_package("plugin", v1.path(), "release 0.1.0");
    let out = ok(
        &host,
        &[
            "plugin",
            "install",
            &format!("git+{}", repo.url()),
            "--subdir",
            "plugin",
        ],
    )
    .await;
    assert!(out.contains(&format!("at {commit}")), "{out}");
    assert_eq!(plugin(&host).await["sourceKind"], "git");
    ok(
        &host,
        &["plugin", "uninstall", ID, "--purge-files", "--yes"],
    )
    .await;
    assert!(!plugin_dir.exists());
    assert!(files.exists(), "data kept");

    let tgz = tempfile::NamedTempFile::with_suffix(".tgz").unwrap();
    std::fs::write(tgz.path(), npm_tgz(v1.path())).unwrap();
    ok(&host, &["plugin", "install", tgz.path().to_str().unwrap()]).await;
    assert_eq!(plugin(&host).await["sourceKind"], "upload");
    ok(&host, &["plugin", "uninstall", ID, "--purge-data", "--yes"]).await;
    assert!(!files.exists(), "data purged");
    assert!(plugin_dir.join("versions/0.1.0").is_dir(), "files kept");

    ok(&host, &["plugin", "install", v1.path().to_str().unwrap()]).await;
    assert_eq!(plugin(&host).await["sourceKind"], "local");
    ok(
        &host,
        &[
            "plugin",
            "uninstall",
            ID,
            "--purge-files",
            "--purge-data",
            "--yes",
        ],
    )
    .await;
    assert!(!plugin_dir.exists());

    // The instance and its work items outlive every uninstall; the doctor is healthy.
    let items = host
        .admin_json(
            Method::GET,
            &format!("/instances/{instance}/work-items"),
            None,
            200,
        )
        .await;
    assert_eq!(items["workItems"].as_array().unwrap().len(), 1, "{items}");
    let out = ok(&host, &["plugin", "doctor"]).await;
    assert!(!out.contains("PROBLEM"), "{out}");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_from_the_cli_satisfies_guarded_mode() {
    let keydir = tempfile::tempdir().unwrap();
    let key = keydir.path().join("signing.key");
    let pkg = version_pkg("0.1.0", &["http://chat.test"]);
    let host = TestHost::start().await;
    let out = ok(&host, &["plugin", "keygen", "--out", key.to_str().unwrap()]).await;
    let public = out.rsplit(": ").next().unwrap().trim().to_string();
    // A key is never overwritten.
    let (code, _) = cli(&host, &["plugin", "keygen", "--out", key.to_str().unwrap()]).await;
    assert_eq!(code, 1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    host.stop().await;

    let host = TestHost::start_with(HostOptions {
        trust: Some(nitejar_core::plugins::trust::TrustPolicy {
            mode: nitejar_core::plugins::trust::TrustMode::SelfHostGuarded,
            trusted_keys: nitejar_core::plugins::trust::parse_keys(&public).unwrap(),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await;
    let (code, out) = cli(&host, &["plugin", "install", pkg.path().to_str().unwrap()]).await;
    assert_eq!(code, 1, "unsigned is refused: {out}");
    assert!(out.contains("trust: REFUSED"), "{out}");
    ok(
        &host,
        &[
            "plugin",
            "sign",
            pkg.path().to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    )
    .await;
    let out = ok(&host, &["plugin", "install", pkg.path().to_str().unwrap()]).await;
    assert!(out.contains("trust: trusted (trusted_key"), "{out}");
    ok(&host, &["plugin", "enable", ID, "--yes"]).await;
    assert!(host.app.registry.get(ID).is_some());

    // `pack` makes a self-contained .wasm that uploads as the same plugin.
    let wasm = keydir.path().join("chain.wasm");
    ok(
        &host,
        &[
            "plugin",
            "pack",
            pkg.path().to_str().unwrap(),
            "--out",
            wasm.to_str().unwrap(),
        ],
    )
    .await;
    assert!(std::fs::read(&wasm).unwrap().starts_with(b"\0asm"));
    host.stop().await;
}
