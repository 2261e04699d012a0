//! Install sources end to end: npm against a local registry started by the test, git against
//! local repositories made with the real `git`, previews for every source, provenance kept with
//! each version, upgrades from the recorded source, and clear errors for bad references.

use nitejar_tests::sources::{GitRepo, NpmRegistry, npm_tgz};
use nitejar_tests::{HostOptions, TestHost, chain_package};
use reqwest::Method;
use serde_json::{Value, json};

const ID: &str = "test.chain";
const PKG: &str = "@acme/nitejar-chain";

fn version_pkg(version: &str, network: &[&str]) -> tempfile::TempDir {
    let (version, network) = (version.to_string(), json!(network));
    chain_package(move |m| {
        m["version"] = json!(version);
        m["permissions"]["network"] = network;
    })
}

async fn post(host: &TestHost, path: &str, body: Value, status: u16) -> Value {
    host.admin_json(Method::POST, path, Some(body), status)
        .await
}

async fn host_with_registry(registry: &NpmRegistry) -> TestHost {
    TestHost::start_with(HostOptions {
        npm_registry: Some(registry.url.clone()),
        ..Default::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_preview_install_and_upgrade_from_a_local_registry() {
    let registry = NpmRegistry::start().await;
    let v1 = version_pkg("0.1.0", &["http://chat.test"]);
    let v2 = version_pkg("0.2.0", &["http://chat.test", "http://extra.test"]);
    registry.publish(PKG, "0.1.0", v1.path());
    registry.publish(PKG, "0.2.0", v2.path());
    let host = host_with_registry(&registry).await;

    // Preview: identity, permissions, contributions, trust; nothing installed.
    let p = post(
        &host,
        "/plugins/preview",
        json!({"sourceKind": "npm", "sourceRef": format!("{PKG}@^0.1")}),
        200,
    )
    .await;
    assert_eq!(p["pluginId"], ID, "{p}");
    assert_eq!(p["version"], "0.1.0");
    assert_eq!(p["action"], "install");
    assert_eq!(p["source"]["kind"], "npm");
    assert_eq!(p["source"]["ref"], format!("{PKG}@0.1.0"));
    assert_eq!(p["permissions"], json!(["network:http://chat.test"]));
    assert_eq!(p["contributes"]["tools"], json!(["lookup"]));
    assert_eq!(p["trust"]["allowed"], true);
    assert_eq!(p["trust"]["mode"], "self_host_open");
    host.admin_json(Method::GET, &format!("/plugins/{ID}"), None, 404)
        .await;

    // Install the exact version; it starts disabled, with its provenance recorded.
    let r = post(
        &host,
        "/plugins/install",
        json!({"sourceKind": "npm", "sourceRef": format!("{PKG}@0.1.0")}),
        201,
    )
    .await;
    assert_eq!(r["version"], "0.1.0", "{r}");
    let p = host
        .admin_json(Method::GET, &format!("/plugins/{ID}"), None, 200)
        .await;
    assert_eq!(p["enabled"], false);
    assert_eq!(p["sourceKind"], "npm");
    assert_eq!(p["sourceRef"], format!("{PKG}@0.1.0"));
    let versions = host
        .admin_json(Method::GET, &format!("/plugins/{ID}/versions"), None, 200)
        .await;
    assert_eq!(
        versions["versions"][0]["source"],
        json!({"kind": "npm", "ref": format!("{PKG}@0.1.0"), "commit": null}),
        "{versions}"
    );
    // The token was never configured, so no credentials went to the registry.
    assert!(registry.auth_headers().iter().all(Option::is_none));

    // Grant, enable, then preview the upgrade: the diff shows the added permission.
    host.grant_and_enable(ID, &["network:http://chat.test"])
        .await;
    let p = post(
        &host,
        "/plugins/preview",
        json!({"sourceKind": "npm", "sourceRef": PKG}),
        200,
    )
    .await;
    assert_eq!(p["action"], "upgrade", "{p}");
    assert_eq!(p["version"], "0.2.0");
    assert_eq!(
        p["permissionDiff"]["added"],
        json!(["network:http://extra.test"])
    );

    // Upgrade with no source: npm's newest release of the recorded package; it asks for more,
    // so it waits for consent.
    let up = post(&host, &format!("/plugins/{ID}/upgrade"), json!({}), 200).await;
    assert_eq!(up["version"], "0.2.0", "{up}");
    assert_eq!(up["status"], "pending_consent");
    let up = post(
        &host,
        &format!("/plugins/{ID}/upgrade/approve"),
        json!({"permissions": ["network:http://extra.test"]}),
        200,
    )
    .await;
    assert_eq!(up["status"], "activated", "{up}");
    let p = host
        .admin_json(Method::GET, &format!("/plugins/{ID}"), None, 200)
        .await;
    assert_eq!(p["version"], "0.2.0");
    assert_eq!(p["sourceRef"], format!("{PKG}@0.2.0"));
    assert!(host.app.registry.get(ID).is_some());
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npm_errors_are_clear_and_nothing_is_installed() {
    let registry = NpmRegistry::start().await;
    let v1 = version_pkg("0.1.0", &["http://chat.test"]);
    registry.publish(PKG, "0.1.0", v1.path());
    registry.publish("corrupted", "1.0.0", v1.path());
    registry.corrupt("corrupted", "1.0.0");
    // A package whose tarball has no manifest.
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("README.md"), "hi").unwrap();
    registry.publish("not-a-plugin", "1.0.0", empty.path());
    let host = host_with_registry(&registry).await;

    let install = |r: &str| json!({"sourceKind": "npm", "sourceRef": r});
    let e = post(&host, "/plugins/install", install("nope"), 422).await;
    let e2 = post(
        &host,
        "/plugins/install/npm",
        json!({"sourceRef": "nope"}),
        422,
    )
    .await;
    assert_eq!(e2, e, "the spec §15.3 alias behaves the same");
    assert_eq!(e["error"]["code"], "source_not_found", "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("nope"));
    let e = post(
        &host,
        "/plugins/install",
        install(&format!("{PKG}@^2")),
        422,
    )
    .await;
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no version matching"),
        "{e}"
    );
    let e = post(&host, "/plugins/install", install("corrupted"), 502).await;
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("integrity"),
        "{e}"
    );
    let e = post(&host, "/plugins/install", install("not-a-plugin"), 422).await;
    assert_eq!(e["error"]["code"], "invalid_package", "{e}");
    let e = post(&host, "/plugins/install", install("../etc/passwd"), 400).await;
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("npm package name")
    );
    let e = post(
        &host,
        "/plugins/install",
        json!({"sourceKind": "npm", "sourceRef": PKG, "options": {"registry": "ftp://x"}}),
        400,
    )
    .await;
    assert!(e["error"]["message"].as_str().unwrap().contains("registry"));
    let e = post(
        &host,
        "/plugins/install",
        json!({"sourceKind": "svn", "sourceRef": "x"}),
        400,
    )
    .await;
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("local, npm, git")
    );
    host.admin_json(Method::GET, &format!("/plugins/{ID}"), None, 404)
        .await;
    // A registry that is down: 502, not a 500.
    let e = post(
        &host,
        "/plugins/install",
        json!({"sourceKind": "npm", "sourceRef": PKG, "options": {"registry": "http://127.0.0.1:9"}}),
        502,
    )
    .await;
    assert_eq!(e["error"]["code"], "source_unavailable");
    // Staging is left empty whatever failed.
    let staged: Vec<_> = std::fs::read_dir(&host.app.config.staging_dir)
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(staged.is_empty(), "{staged:?}");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_install_at_a_ref_records_the_commit_and_upgrades_from_the_branch() {
    let repo = GitRepo::new();
    let v1 = version_pkg("0.1.0", &["http://chat.test"]);
    let c1 = repo.commit_package("", v1.path(), "v0.1.0");
    repo.tag("v0.1.0");
    let v2 = version_pkg("0.2.0", &["http://chat.test"]);
    let c2 = repo.commit_package("", v2.path(), "v0.2.0");
    let host = TestHost::start().await;

    // Preview and install the tag: the commit is recorded.
    let src = json!({"sourceKind": "git", "sourceRef": format!("{}#v0.1.0", repo.url())});
    let p = post(&host, "/plugins/preview", src.clone(), 200).await;
    assert_eq!(p["version"], "0.1.0", "{p}");
    assert_eq!(p["source"]["commit"], c1);
    let r = post(&host, "/plugins/install", src, 201).await;
    assert_eq!(r["version"], "0.1.0", "{r}");
    let versions = host
        .admin_json(Method::GET, &format!("/plugins/{ID}/versions"), None, 200)
        .await;
    assert_eq!(versions["versions"][0]["source"]["kind"], "git");
    assert_eq!(
        versions["versions"][0]["source"]["commit"], c1,
        "{versions}"
    );

    host.admin_json(
        Method::POST,
        &format!("/plugins/{ID}/grants"),
        Some(json!({"permissions": ["network:http://chat.test"]})),
        200,
    )
    .await;
    // Upgrading from the recorded source (the same tag) finds nothing newer.
    let e = post(&host, &format!("/plugins/{ID}/upgrade"), json!({}), 409).await;
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not newer"),
        "{e}"
    );
    // The branch has moved on: upgrade from it (a commit id works as a ref too).
    let up = post(
        &host,
        &format!("/plugins/{ID}/upgrade"),
        json!({"sourceKind": "git", "sourceRef": repo.url(), "options": {"ref": "main"}}),
        200,
    )
    .await;
    assert_eq!(up["status"], "activated", "{up}");
    let versions = host
        .admin_json(Method::GET, &format!("/plugins/{ID}/versions"), None, 200)
        .await;
    let v2row = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"] == "0.2.0")
        .unwrap()
        .clone();
    assert_eq!(v2row["source"]["commit"], c2, "{versions}");
    let p = post(
        &host,
        "/plugins/preview",
        json!({"sourceKind": "git", "sourceRef": repo.url(), "options": {"ref": c1}}),
        200,
    )
    .await;
    assert_eq!(p["version"], "0.1.0");
    assert_eq!(p["action"], "older_version");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_packages_in_a_subdirectory_and_bad_references() {
    let repo = GitRepo::new();
    let v1 = version_pkg("0.1.0", &["http://chat.test"]);
    repo.commit_package("plugins/chain", v1.path(), "add plugin");
    // A package whose component was never built and is not a cargo project.
    let unbuilt = tempfile::tempdir().unwrap();
    std::fs::copy(
        v1.path().join("nitejar.plugin.json"),
        unbuilt.path().join("nitejar.plugin.json"),
    )
    .unwrap();
    repo.commit_package("plugins/unbuilt", unbuilt.path(), "add unbuilt");
    let host = TestHost::start().await;
    let git = |path: &str| json!({"sourceKind": "git", "sourceRef": repo.url(), "options": {"path": path}});

    let p = post(&host, "/plugins/preview", git("plugins/chain"), 200).await;
    assert_eq!(p["pluginId"], ID, "{p}");
    // The spec §15.3 alias installs it.
    let r = post(
        &host,
        "/plugins/install/git",
        json!({"sourceRef": repo.url(), "options": {"path": "plugins/chain"}}),
        201,
    )
    .await;
    assert_eq!(r["pluginId"], ID, "{r}");
    post(
        &host,
        &format!("/plugins/{ID}/uninstall"),
        json!({"purgeFiles": true}),
        200,
    )
    .await;
    let e = post(&host, "/plugins/preview", git("plugins/unbuilt"), 422).await;
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no built component"),
        "{e}"
    );
    let e = post(&host, "/plugins/preview", git(""), 422).await;
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nitejar.plugin.json"),
        "{e}"
    );
    let e = post(&host, "/plugins/preview", git("../../etc"), 400).await;
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("inside the repository")
    );
    let e = post(
        &host,
        "/plugins/install",
        json!({"sourceKind": "git", "sourceRef": format!("{}#no-such-tag", repo.url())}),
        422,
    )
    .await;
    assert_eq!(e["error"]["code"], "source_not_found", "{e}");
    for bad in [
        "--upload-pack=touch /tmp/x",
        "ext::sh -c touch% /tmp/x",
        "relative/repo",
    ] {
        let e = post(
            &host,
            "/plugins/install",
            json!({"sourceKind": "git", "sourceRef": bad}),
            400,
        )
        .await;
        assert!(
            e["error"]["message"].as_str().unwrap().contains("git URL"),
            "{e}"
        );
    }
    let e = post(
        &host,
        "/plugins/install",
        json!({"sourceKind": "git", "sourceRef": format!("file://{}/missing", repo.dir.path().display())}),
        502,
    )
    .await;
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("git clone"),
        "{e}"
    );
    host.admin_json(Method::GET, &format!("/plugins/{ID}"), None, 404)
        .await;
    host.stop().await;
}

/// A git repository holding a cargo project and no built component: the host builds it with
/// `cargo build --release --target wasm32-wasip2` and validates what the build produced (this
/// project exports no plugin interface, so validation names that, which proves the build ran
/// and its output reached the validator); outside `self_host_open` the host refuses to build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_install_builds_a_cargo_project_without_a_committed_component() {
    let repo = GitRepo::new();
    repo.commit_file(
        "Cargo.toml",
        br#"[package]
name = "tiny-plugin"
version = "0.3.0"
edition = "2021"

[lib]
crate-type = ["cdylib"]

[workspace]
"#,
        "cargo project",
    );
    repo.commit_file("src/lib.rs", b"//! Contributes nothing.\n", "lib");
    let manifest = json!({
        "schemaVersion": 1, "id": "acme.tiny", "name": "Tiny", "version": "0.3.0",
        "entry": "target/plugin.wasm", "engine": {"nitejar": ">=0.1.0"}
    });
    repo.commit_file(
        "nitejar.plugin.json",
        manifest.to_string().as_bytes(),
        "manifest",
    );
    let src = json!({"sourceKind": "git", "sourceRef": repo.url()});
    let host = TestHost::start().await;
    let e = post(&host, "/plugins/preview", src.clone(), 422).await;
    assert_eq!(e["error"]["code"], "invalid_plugin", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("exports no nitejar:plugin interface"),
        "{e}"
    );
    host.stop().await;

    let host = TestHost::start_with(HostOptions {
        trust: Some(nitejar_core::plugins::trust::TrustPolicy {
            mode: nitejar_core::plugins::trust::TrustMode::SelfHostGuarded,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await;
    let e = post(&host, "/plugins/preview", src, 422).await;
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("only self_host_open allows"),
        "{e}"
    );
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_preview_before_install() {
    let host = TestHost::start().await;
    let v1 = version_pkg("0.1.0", &["http://chat.test"]);
    let resp = host
        .admin(Method::POST, "/plugins/preview/upload")
        .body(npm_tgz(v1.path()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let p: Value = resp.json().await.unwrap();
    assert_eq!(p["pluginId"], ID, "{p}");
    assert_eq!(p["source"]["kind"], "upload");
    assert!(
        p["consentText"]
            .as_str()
            .unwrap()
            .contains("network:http://chat.test")
    );
    host.admin_json(Method::GET, &format!("/plugins/{ID}"), None, 404)
        .await;
    // A browser form: multipart/form-data with the file; its name is kept as the source.
    let mut form = b"--XBOUNDARY\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n--XBOUNDARY\r\nContent-Disposition: form-data; name=\"file\"; filename=\"chain-0.1.0.tgz\"\r\nContent-Type: application/gzip\r\n\r\n".to_vec();
    form.extend(npm_tgz(v1.path()));
    form.extend(b"\r\n--XBOUNDARY--\r\n");
    let resp = host
        .admin(Method::POST, "/plugins/upload")
        .header("content-type", "multipart/form-data; boundary=XBOUNDARY")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let p = host
        .admin_json(Method::GET, &format!("/plugins/{ID}"), None, 200)
        .await;
    assert_eq!(p["sourceKind"], "upload");
    assert_eq!(p["sourceRef"], "chain-0.1.0.tgz", "{p}");
    let resp = host
        .admin(Method::POST, "/plugins/preview/upload")
        .header("content-type", "multipart/form-data; boundary=XBOUNDARY")
        .body("--XBOUNDARY\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n--XBOUNDARY--\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "no file field");
    let resp = host
        .admin(Method::POST, "/plugins/preview/upload")
        .body("not a package")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    host.stop().await;
}

/// A plugin installed from a local directory is re-read on reload: a rebuild of the same
/// version replaces the active files and artifact and is activated at once; new permissions
/// start ungranted; a new version or another source is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_installs_are_re_read_on_reload() {
    let host = TestHost::start().await;
    let dir = version_pkg("0.1.0", &["http://chat.test"]);
    host.install_and_enable(dir.path(), &["network:http://chat.test"])
        .await;
    let before = host
        .admin_json(Method::GET, &format!("/plugins/{ID}"), None, 200)
        .await;
    let r = post(&host, &format!("/plugins/{ID}/reload"), json!({}), 200).await;
    assert_eq!(r["status"], "unchanged", "{r}");

    // "Rebuild": different component bytes (a custom section added), one more permission.
    let wasm = std::fs::read(dir.path().join("plugin.wasm")).unwrap();
    let rebuilt = nitejar_core::plugins::package::embed_manifest(&wasm, b"{}");
    std::fs::write(dir.path().join("plugin.wasm"), &rebuilt).unwrap();
    let mut m: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("nitejar.plugin.json")).unwrap())
            .unwrap();
    m["permissions"]["network"] = json!(["http://chat.test", "http://extra.test"]);
    std::fs::write(dir.path().join("nitejar.plugin.json"), m.to_string()).unwrap();
    let r = post(&host, &format!("/plugins/{ID}/reload"), json!({}), 200).await;
    assert_eq!(r["status"], "reloaded", "{r}");
    assert_ne!(r["checksum"], before["checksum"]);
    assert_eq!(
        r["ungrantedPermissions"],
        json!(["network:http://extra.test"])
    );
    let installed = host
        .app
        .config
        .plugins_dir
        .join(ID)
        .join("versions/0.1.0/plugin.wasm");
    assert_eq!(std::fs::read(installed).unwrap(), rebuilt);
    assert!(host.app.registry.get(ID).is_some(), "reloaded and loaded");
    let d = host
        .admin_json(Method::GET, &format!("/plugins/{ID}/doctor"), None, 200)
        .await;
    // Files and checksum agree; the only problem is the new, ungranted permission.
    assert_eq!(d["files"], "ok", "{d}");
    assert_eq!(d["problems"].as_array().unwrap().len(), 1, "{d}");
    assert_eq!(d["problems"][0]["check"], "grants", "{d}");
    assert!(
        host.receipts(ID)
            .await
            .iter()
            .any(|r| r["kind"] == "reload" && r["status"] == "ok")
    );

    // A new version in the directory is an upgrade, not a reload; other sources never reload.
    m["version"] = json!("0.2.0");
    std::fs::write(dir.path().join("nitejar.plugin.json"), m.to_string()).unwrap();
    let e = post(&host, &format!("/plugins/{ID}/reload"), json!({}), 409).await;
    assert!(
        e["error"]["message"].as_str().unwrap().contains("upgrade"),
        "{e}"
    );
    let e = post(&host, "/plugins/builtin.telegram/reload", json!({}), 409).await;
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("local directory"),
        "{e}"
    );
    post(&host, "/plugins/no.such/reload", json!({}), 404).await;
    host.stop().await;
}
