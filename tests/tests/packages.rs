//! Packages and installation: every accepted form, the on-disk layout, consent, and the
//! install-time checks that refuse a component whose manifest does not match it.

use nitejar_core::plugins::package::embed_manifest;
use nitejar_tests::{TestHost, guest_package, package_with_manifest};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::Path;

fn npm_tgz(dir: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for name in ["nitejar.plugin.json", "plugin.wasm"] {
        b.append_path_with_name(dir.join(name), format!("package/{name}"))
            .unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

async fn upload(host: &TestHost, bytes: Vec<u8>) -> (u16, Value) {
    let resp = host
        .admin(Method::POST, "/plugins/upload")
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn uploads_install_disabled_into_the_versioned_layout() {
    let host = TestHost::start().await;
    // A package declaring the bundled example's integration type is refused at install
    // (decided here, not by which one happens to load first).
    let clone = package_with_manifest("webhook", |m| {
        m["id"] = "com.acme.webhook-clone".into();
        m["contributes"]["integrations"] = json!(["webhook"]);
    });
    let (status, v) = upload(&host, npm_tgz(clone.path())).await;
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["error"]["code"], "integration_type_taken");

    let pkg = package_with_manifest("hostile", |m| {
        m["id"] = "com.acme.hook-relay".into();
    });
    let (status, v) = upload(&host, npm_tgz(pkg.path())).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["pluginId"], "com.acme.hook-relay");
    assert_eq!(v["apiVersion"], "0.1.0");

    let root = host.app.config.plugins_dir.join("com.acme.hook-relay");
    assert!(root.join("versions/0.1.0/plugin.wasm").is_file());
    assert!(root.join("versions/0.1.0/nitejar.plugin.json").is_file());
    assert_eq!(
        std::fs::read_link(root.join("current")).unwrap(),
        Path::new("versions/0.1.0")
    );
    assert_eq!(
        std::fs::read_dir(&host.app.config.staging_dir)
            .unwrap()
            .count(),
        0,
        "staging is clean"
    );

    let detail = host
        .admin_json(Method::GET, "/plugins/com.acme.hook-relay", None, 200)
        .await;
    assert_eq!(detail["enabled"], false, "installed plugins start disabled");
    assert_eq!(detail["sourceKind"], "upload");
    assert_eq!(detail["executionMode"], "wasm_sandbox");

    // Third-party enable needs explicit consent.
    let v = host
        .admin_json(
            Method::POST,
            "/plugins/com.acme.hook-relay/enable",
            Some(json!({})),
            400,
        )
        .await;
    assert!(v["error"]["message"].as_str().unwrap().contains("consent"));
    assert_eq!(
        host.admin_json(Method::GET, "/plugins/com.acme.hook-relay", None, 200)
            .await["enabled"],
        false
    );

    // Re-uploading the same version with the same bytes is idempotent...
    assert_eq!(upload(&host, npm_tgz(pkg.path())).await.0, 201);
    // ...with different bytes it is refused: versions are immutable.
    let other = package_with_manifest("hooks", |m| {
        m["id"] = "com.acme.hook-relay".into();
    });
    let (status, v) = upload(&host, npm_tgz(other.path())).await;
    assert_eq!(status, 409, "{v}");

    let receipts = host.receipts("com.acme.hook-relay").await;
    let installs: Vec<_> = receipts
        .iter()
        .filter(|r| r["kind"] == "install")
        .map(|r| r["status"].clone())
        .collect();
    assert_eq!(installs, vec![json!("ok"), json!("ok"), json!("error")]);
    host.stop().await;
}

#[tokio::test]
async fn a_bare_wasm_carries_its_manifest() {
    let host = TestHost::start().await;
    let manifest = json!({
        "schemaVersion": 1, "id": "com.acme.bare-hooks", "name": "Bare", "version": "2.0.0",
        "entry": "plugin.wasm", "engine": {"nitejar": ">=0.1.0 <1.0.0"},
        "contributes": {"hooks": ["response.pre_deliver"]}
    });
    let wasm = std::fs::read(guest_package("hooks").join("plugin.wasm")).unwrap();
    let (status, v) = upload(
        &host,
        embed_manifest(&wasm, manifest.to_string().as_bytes()),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let v = host
        .admin_json(
            Method::POST,
            "/plugins/com.acme.bare-hooks/enable",
            Some(json!({"consent": true})),
            200,
        )
        .await;
    assert_eq!(v["version"], "2.0.0");

    // A component without the section, or something that is no package at all, is refused.
    let (status, v) = upload(&host, wasm).await;
    assert_eq!(status, 422);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("custom section"),
        "{v}"
    );
    let (status, _) = upload(&host, b"#!/bin/sh\nrm -rf /".to_vec()).await;
    assert_eq!(status, 422);
    host.stop().await;
}

#[tokio::test]
async fn mismatched_or_unsafe_packages_are_refused_with_actionable_errors() {
    let host = TestHost::start().await;
    type Edit = Box<dyn FnOnce(&mut Value)>;
    let cases: Vec<(&str, Edit, u16, &str)> = vec![
        (
            "hostile",
            Box::new(|m| m["permissions"]["network"] = json!([])),
            422,
            "imports wasi:http/outgoing-handler",
        ),
        (
            "hostile",
            Box::new(|m| m["permissions"]["secrets"] = json!([])),
            422,
            "imports nitejar:plugin/secrets",
        ),
        (
            "hooks",
            Box::new(|m| m["contributes"]["hooks"] = json!(["model.pre_call"])),
            422,
            "does not handle",
        ),
        // SDK plugins export every interface; the component's own description catches this.
        (
            "hooks",
            Box::new(|m| m["contributes"]["integrations"] = json!(["jira"])),
            422,
            "does not implement it (it implements [])",
        ),
        // A component that describes a type its manifest does not declare.
        (
            "webhook",
            Box::new(|m| m["contributes"]["integrations"] = json!(["jira"])),
            422,
            "integration.describe returned type \"webhook\", which the manifest does not declare",
        ),
        (
            "webhook",
            Box::new(|m| m["engine"]["nitejar"] = json!(">=9.0.0")),
            422,
            "does not include this host",
        ),
        (
            "webhook",
            Box::new(|m| m["entry"] = json!("../../etc/passwd.wasm")),
            422,
            "entry",
        ),
        (
            "webhook",
            Box::new(|m| m["entry"] = json!("missing.wasm")),
            422,
            "does not exist",
        ),
        (
            "webhook",
            Box::new(|m| m["permissions"]["allowProcessSpawn"] = json!(true)),
            422,
            "cannot spawn",
        ),
    ];
    for (name, edit, status, expected) in cases {
        let dir = package_with_manifest(name, edit);
        let v = host
            .admin_json(
                Method::POST,
                "/plugins/install",
                Some(json!({"sourceKind": "local", "sourceRef": dir.path()})),
                status,
            )
            .await;
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(expected),
            "{name}: {msg:?} should mention {expected:?}"
        );
    }
    // An archive that tries to escape its directory is refused and writes nothing outside staging.
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    h.as_gnu_mut().unwrap().name[..20].copy_from_slice(b"package/../../pwned!");
    h.set_cksum();
    b.append(&h, &b"evil"[..]).unwrap();
    let (status, v) = upload(&host, b.into_inner().unwrap().finish().unwrap()).await;
    assert_eq!(status, 422, "{v}");
    assert!(!host.app.config.plugins_dir.join("pwned!").exists());
    assert!(!host.app.config.data_dir.join("pwned!").exists());

    // Unknown manifest keys and unknown request fields are client errors, never 500s.
    let dir = package_with_manifest("webhook", |m| m["surprise"] = json!(1));
    let v = host
        .admin_json(
            Method::POST,
            "/plugins/install",
            Some(json!({"sourceKind": "local", "sourceRef": dir.path()})),
            422,
        )
        .await;
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `surprise`")
    );
    let v = host
        .admin_json(
            Method::POST,
            "/plugins/install",
            Some(json!({"sourceKind": "ftp", "sourceRef": "x"})),
            400,
        )
        .await;
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not one of local, npm, git")
    );
    host.stop().await;
}

#[tokio::test]
async fn a_tampered_component_is_restored_from_the_stored_artifact_at_boot() {
    let host = TestHost::start().await;
    let config = (*host.app.config).clone();
    let wasm_path = config
        .plugins_dir
        .join("nitejar.example.webhook/versions/0.1.0/plugin.wasm");
    let original = std::fs::read(&wasm_path).unwrap();
    // Stop, corrupt the file, boot again on the same data dir.
    let data = host.stop_keep_data().await;
    std::fs::write(&wasm_path, b"\0asm tampered").unwrap();
    let (app, shutdown) = nitejar_core::app::App::start(config).await.unwrap();
    assert!(
        app.registry.get("nitejar.example.webhook").is_some(),
        "restored and loaded"
    );
    assert_eq!(std::fs::read(&wasm_path).unwrap(), original);
    shutdown.run(app).await;
    drop(data);
}

#[tokio::test]
async fn a_rebuilt_builtin_with_the_same_version_replaces_the_old_build_at_boot() {
    let host = TestHost::start().await;
    let config = (*host.app.config).clone();
    let id = "nitejar.example.webhook";
    let row = host.app.store.get_plugin(id).await.unwrap().unwrap();
    let dir = config.plugins_dir.join(id).join("versions/0.1.0");
    // Make the data dir look like it was installed by an older build of the same version.
    std::fs::write(dir.join(".checksum"), "old-build").unwrap();
    std::fs::write(dir.join("plugin.wasm"), b"\0asm old build").unwrap();
    host.app
        .store
        .record_install(&nitejar_store::InstallRecord {
            plugin_id: id,
            name: &row.name,
            trust_level: "builtin",
            source_kind: "builtin",
            source_ref: row.source_ref.as_deref(),
            version: "0.1.0",
            checksum: "old-build",
            install_path: &dir.to_string_lossy(),
            manifest_json: &row.manifest_json,
            api_version: "0.1.0",
            wasm: b"\0asm old build",
            signature_json: None,
            source_json: None,
        })
        .await
        .unwrap();
    let data = host.stop_keep_data().await;
    let (app, shutdown) = nitejar_core::app::App::start(config)
        .await
        .expect("boot succeeds");
    let loaded = app.registry.get(id).expect("the current build is loaded");
    let current = app.store.get_plugin(id).await.unwrap().unwrap();
    assert_eq!(
        current.current_checksum.as_deref(),
        Some(loaded.digest.as_str())
    );
    assert_eq!(
        std::fs::read_to_string(dir.join(".checksum")).unwrap(),
        loaded.digest
    );
    shutdown.run(app).await;
    drop(data);
}
