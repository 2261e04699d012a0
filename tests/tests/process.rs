//! The `nitejar` binary as operators run it: a real server process, stopped with signals.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The `nitejar` binary of this build (built here, so a stale one is never tested).
fn server_binary() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--workspace", "--bins", "--locked", "--quiet"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("running cargo build");
        assert!(status.success(), "building the nitejar binary failed");
        // target/<profile>/deps/<test binary> -> target/<profile>/nitejar
        std::env::current_exe()
            .unwrap()
            .parent()
            .and_then(|d| d.parent())
            .unwrap()
            .join("nitejar")
    })
    .clone()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_server_cleanly_and_flushes_receipts() {
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::NamedTempFile::new().unwrap();
    let port = free_port();
    let token = "process-test-admin-token-0123";
    let mut child = Command::new(server_binary())
        .arg("serve")
        .env_remove("DATABASE_URL")
        .env("NITEJAR_DATA_DIR", data.path())
        .env("NITEJAR_BIND", format!("127.0.0.1:{port}"))
        .env("NITEJAR_ADMIN_TOKEN", token)
        .env(
            "NITEJAR_PLUGIN_CACHE_DIR",
            nitejar_tests::shared_compile_cache(),
        )
        // The log goes to a file, as under a service manager: plain text, no colour codes.
        .stdout(Stdio::from(logs.reopen().unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the server did not come up"
        );
        assert!(child.try_wait().unwrap().is_none(), "the server exited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // An action whose receipt is queued right before the signal.
    let r = client
        .post(format!(
            "{base}/api/admin/plugins/nitejar.example.hooks/disable"
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "SIGTERM did not stop the server");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        status.success(),
        "exited with {status:?} (not a clean stop)"
    );
    // The receipt of the last action is in the database.
    let store = nitejar_store::open(&data.path().join("nitejar.db"))
        .await
        .unwrap();
    let events = store
        .list_events("nitejar.example.hooks", 50, None)
        .await
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert!(kinds.contains(&"disable"), "{kinds:?}");

    // The database (secrets, configs, receipts) is readable by its owner only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.path().join("nitejar.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "nitejar.db mode {:o}", mode & 0o777);
    let log = std::fs::read_to_string(logs.path()).unwrap();
    assert!(log.contains("INFO"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log file: {log:?}"
    );
}

#[tokio::test]
async fn a_data_dir_that_cannot_be_written_is_named_with_what_to_do() {
    // A path below a regular file can never be created (works as root too, unlike chmod).
    let blocker = tempfile::NamedTempFile::new().unwrap();
    let data = blocker.path().join("data");
    let out = Command::new(server_binary())
        .arg("serve")
        .env_remove("DATABASE_URL")
        .env("NITEJAR_DATA_DIR", &data)
        .env("NITEJAR_BIND", "127.0.0.1:0")
        .env("NITEJAR_ADMIN_TOKEN", "process-test-admin-token-0123")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&data.display().to_string())
            && stderr.contains("not writable")
            && stderr.contains("NITEJAR_DATA_DIR"),
        "{stderr}"
    );
}
