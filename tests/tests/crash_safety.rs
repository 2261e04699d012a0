//! `kill -9` during install and during upgrade: a real server process (this test binary,
//! re-run as a child) is stopped at each named crash point of the installer and the upgrade
//! (`NITEJAR_CRASH_POINT`, see `nitejar_core::crashpoint`) and killed with SIGKILL there; the next
//! boot on the same data directory must find the previous state, with files and database in
//! agreement and the doctor reporting healthy.

use nitejar_core::app::App;
use nitejar_core::config::Config;
use nitejar_tests::{ADMIN_TOKEN, HostOptions, TestHost, chain_package};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

const ID: &str = "test.chain";
const CHILD_ENV: &str = "NITEJAR_TEST_CHILD_DATA";

/// The child: a server on the data directory the parent names, until it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the crash tests run it as their child process"]
async fn child_server() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut config = Config::for_data_dir(&dir);
    config.admin_token = Some(ADMIN_TOKEN.into());
    config.encryption_key = Some("ab".repeat(32));
    let (app, _shutdown) = App::start(config).await.expect("child boots");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("listening http://{}", listener.local_addr().unwrap());
    axum::serve(listener, nitejar_server::router(app))
        .await
        .unwrap();
}

/// Boots a child server on `data` that stops at `point`, sends `path` + `body` to it, waits
/// until it reports the crash point, and kills it with SIGKILL.
async fn kill_at(point: &str, data: &Path, path: &str, body: Value) {
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_server", "--ignored", "--nocapture"])
        .env(CHILD_ENV, data)
        .env("NITEJAR_CRASH_POINT", point)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Drain stderr from the start (a full pipe would block the child), watching for the marker.
    let marker = format!("paused at crash point {point}");
    let (reached_tx, reached) = tokio::sync::oneshot::channel::<()>();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    tokio::spawn(async move {
        let mut tx = Some(reached_tx);
        while let Ok(Some(line)) = stderr.next_line().await {
            if line.contains(&marker)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(());
            }
        }
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = stdout.next_line().await.unwrap() {
            if let Some(b) = line.strip_prefix("listening ") {
                return b.to_string();
            }
        }
        panic!("the child exited before listening");
    })
    .await
    .expect("child listens");
    let url = format!("{base}/api/admin{path}");
    let request = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
    });
    tokio::time::timeout(Duration::from_secs(120), reached)
        .await
        .unwrap_or_else(|_| panic!("{point} not reached in time"))
        .unwrap_or_else(|_| panic!("the child exited before reaching {point}"));
    child.kill().await.unwrap(); // SIGKILL
    let outcome = request.await.unwrap();
    assert!(outcome.is_err(), "the request must die with the server");
}

/// Files and database agree, nothing is left in staging, and the doctor is happy.
async fn assert_consistent(host: &TestHost) {
    let d = host.admin_json(Method::GET, "/doctor", None, 200).await;
    assert_eq!(d["healthy"], true, "{d}");
    let config = &host.app.config;
    let staged: Vec<_> = std::fs::read_dir(&config.staging_dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(staged.is_empty(), "{staged:?}");
    for row in host.app.store.list_plugins().await.unwrap() {
        let dir = config.plugins_dir.join(&row.id);
        let versions: Vec<String> = host
            .app
            .store
            .list_versions(&row.id)
            .await
            .unwrap()
            .into_iter()
            .map(|v| v.version)
            .collect();
        let mut on_disk: Vec<String> = std::fs::read_dir(dir.join("versions"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let mut want = versions.clone();
        want.sort();
        assert_eq!(on_disk, want, "{}", row.id);
        if let Some(v) = &row.current_version {
            let link = std::fs::read_link(dir.join("current")).unwrap();
            assert_eq!(link, Path::new("versions").join(v), "{}", row.id);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_install_leaves_the_plugin_uninstalled_and_reinstallable() {
    let pkg = chain_package(|_| {});
    let data = tempfile::tempdir().unwrap();
    for point in [
        "install.validated",
        "install.staged",
        "install.version_dir",
        "install.current",
    ] {
        kill_at(
            point,
            data.path(),
            "/plugins/install",
            json!({"sourceKind": "local", "sourceRef": pkg.path()}),
        )
        .await;
        // Restart on the crashed data directory.
        let host = reopen(data.path()).await;
        host.admin_json(Method::GET, &format!("/plugins/{ID}"), None, 404)
            .await;
        assert!(
            !host.app.config.plugins_dir.join(ID).exists(),
            "{point}: no files of the killed install remain"
        );
        assert_consistent(&host).await;
        close(host).await;
    }
    // And the install works afterwards.
    let host = reopen(data.path()).await;
    host.install_and_enable(pkg.path(), &["network:http://chat.test"])
        .await;
    assert_consistent(&host).await;
    close(host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_upgrade_keeps_a_consistent_active_version() {
    let v1 = chain_package(|m| m["version"] = json!("0.1.0"));
    let v2 = chain_package(|m| m["version"] = json!("0.2.0"));
    for (point, active_after) in [("upgrade.staged", "0.1.0"), ("upgrade.db_active", "0.2.0")] {
        let data = tempfile::tempdir().unwrap();
        let host = reopen(data.path()).await;
        host.install_and_enable(v1.path(), &["network:http://chat.test"])
            .await;
        close(host).await;

        kill_at(
            point,
            data.path(),
            &format!("/plugins/{ID}/upgrade"),
            json!({"sourceKind": "local", "sourceRef": v2.path()}),
        )
        .await;

        let host = reopen(data.path()).await;
        let p = host
            .admin_json(Method::GET, &format!("/plugins/{ID}"), None, 200)
            .await;
        // Before the database names the new version, the old one stays active; once it does
        // (the commit point), boot completes the switch of the `current` pointer.
        assert_eq!(p["version"], active_after, "{point}: {p}");
        assert_eq!(p["enabled"], true);
        assert_eq!(
            host.app.registry.get(ID).unwrap().version(),
            active_after,
            "{point}"
        );
        assert_consistent(&host).await;
        // The upgrade can be finished (or is already done) afterwards.
        if active_after == "0.1.0" {
            let up = host
                .admin_json(
                    Method::POST,
                    &format!("/plugins/{ID}/upgrade"),
                    Some(json!({"sourceKind": "local", "sourceRef": v2.path()})),
                    200,
                )
                .await;
            assert_eq!(up["status"], "activated", "{up}");
            assert_consistent(&host).await;
        }
        close(host).await;
    }
}

/// A host on an existing data directory that outlives it.
async fn reopen(dir: &Path) -> TestHost {
    TestHost::start_at(dir.to_path_buf(), HostOptions::default()).await
}

async fn close(host: TestHost) {
    host.stop().await;
}

/// Files an uninstall keeps (no `--purge-files`) are not mistaken for a killed install at the
/// next boot; reinstalling picks them up again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_kept_by_an_uninstall_survive_a_restart() {
    let pkg = chain_package(|_| {});
    let data = tempfile::tempdir().unwrap();
    let host = reopen(data.path()).await;
    host.install_and_enable(pkg.path(), &["network:http://chat.test"])
        .await;
    host.admin_json(
        Method::POST,
        &format!("/plugins/{ID}/uninstall"),
        Some(json!({})),
        200,
    )
    .await;
    let kept = host
        .app
        .config
        .plugins_dir
        .join(ID)
        .join("versions/0.1.0/plugin.wasm");
    close(host).await;

    let host = reopen(data.path()).await;
    assert!(kept.is_file(), "kept across the restart");
    host.admin_json(Method::GET, &format!("/plugins/{ID}"), None, 404)
        .await;
    let d = host.admin_json(Method::GET, "/doctor", None, 200).await;
    assert_eq!(d["healthy"], true, "{d}");
    host.install_and_enable(pkg.path(), &["network:http://chat.test"])
        .await;
    assert!(
        !host
            .app
            .config
            .plugins_dir
            .join(ID)
            .join(nitejar_core::plugins::installer::UNINSTALLED_MARKER)
            .exists()
    );
    assert_consistent(&host).await;
    close(host).await;
}
