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

const TOKEN: &str = "process-test-admin-token-0123";

/// A `nitejar serve` process on `data`, its log on `stdout`, answering `/healthz`.
struct Server {
    child: std::process::Child,
    base: String,
    client: reqwest::Client,
}

impl Server {
    async fn start(data: &std::path::Path, stdout: Stdio) -> Server {
        Self::start_env(data, stdout, &[]).await
    }

    /// Starts the server with extra environment variables.
    async fn start_env(data: &std::path::Path, stdout: Stdio, env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let mut child = Command::new(server_binary())
            .envs(env.iter().copied())
            .arg("serve")
            .env_remove("DATABASE_URL")
            .env("NITEJAR_DATA_DIR", data)
            .env("NITEJAR_BIND", format!("127.0.0.1:{port}"))
            .env("NITEJAR_ADMIN_TOKEN", TOKEN)
            .env(
                "NITEJAR_PLUGIN_CACHE_DIR",
                nitejar_tests::shared_compile_cache(),
            )
            .stdout(stdout)
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
        Server {
            child,
            base,
            client,
        }
    }

    fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}/api/admin{path}", self.base))
            .bearer_auth(TOKEN)
    }

    /// Creates an integration instance (`{"type", "name", "config"}`); its id.
    async fn create_instance(&self, body: serde_json::Value) -> String {
        let r = self
            .admin(reqwest::Method::POST, "/instances")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        r.json::<serde_json::Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// A delivery to the generic webhook integration's `instance`, signed with `secret`.
    fn generic_webhook(
        &self,
        instance: &str,
        secret: &str,
        body: String,
    ) -> reqwest::RequestBuilder {
        self.client
            .post(format!(
                "{}/api/webhooks/plugins/webhook/{instance}",
                self.base
            ))
            .header(
                "x-signature-256",
                nitejar_tests::sign(secret, body.as_bytes()),
            )
            .body(body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_server_cleanly_and_flushes_receipts() {
    let data = tempfile::tempdir().unwrap();
    // The log goes to a file, as under a service manager: plain text, no colour codes.
    let logs = tempfile::NamedTempFile::new().unwrap();
    let mut server = Server::start(data.path(), Stdio::from(logs.reopen().unwrap())).await;
    // An action whose receipt is queued right before the signal.
    let r = server
        .admin(reqwest::Method::POST, "/plugins/builtin.telegram/disable")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let kill = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
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
        .list_events("builtin.telegram", 50, None)
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
        .env("NITEJAR_ADMIN_TOKEN", TOKEN)
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

/// Another process's connection to the host's database, holding its write lock
/// (`BEGIN EXCLUSIVE`) until it commits.
async fn lock_database(data: &std::path::Path) -> sqlx::SqliteConnection {
    use sqlx::Connection;
    let mut locker =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", data.join("nitejar.db").display()))
            .await
            .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut locker)
        .await
        .unwrap();
    locker
}

/// Another process holds the database's write lock for longer than the host waits for it: a
/// webhook and an admin write are answered 503 with `Retry-After` (not 500), nothing half
/// accepted stays behind, the receipts of that time are written once the lock is gone, and the
/// same delivery then succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn a_locked_database_answers_503_with_retry_after_and_loses_no_receipt() {
    use sqlx::Connection;
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), Stdio::null()).await;
    let secret = "locked-db-signing-secret";
    let instance = server
        .create_instance(serde_json::json!({"type": "webhook", "name": "lock test", "config": {"secret": secret}}))
        .await;
    let body = serde_json::json!({"id": "locked-1", "text": "hello"}).to_string();
    let webhook = || {
        server
            .generic_webhook(&instance, secret, body.clone())
            .send()
    };
    let integration_receipts = || async {
        let store = nitejar_store::open(&data.path().join("nitejar.db"))
            .await
            .unwrap();
        let n = store
            .list_events("nitejar.example.webhook", 500, None)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.kind == "integration")
            .count();
        store.close().await;
        n
    };
    let before = integration_receipts().await;

    // Another process takes the write lock and keeps it past the host's 10 s busy timeout.
    let mut locker = lock_database(data.path()).await;
    let (hook, admin) = tokio::join!(
        webhook(),
        server
            .admin(reqwest::Method::POST, "/plugins/builtin.telegram/disable")
            .send()
    );
    for (what, r) in [("webhook", hook.unwrap()), ("admin write", admin.unwrap())] {
        assert_eq!(r.status().as_u16(), 503, "{what}");
        assert_eq!(
            r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
            Some("5"),
            "{what}"
        );
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "unavailable", "{what}: {v}");
    }
    sqlx::query("COMMIT").execute(&mut locker).await.unwrap();
    locker.close().await.unwrap();

    // The lock is gone: the same delivery is accepted (nothing of the first one stayed), and
    // the receipt of the call made while the database was locked is written.
    let r = webhook().await.unwrap();
    assert_eq!(r.status().as_u16(), 202, "{}", r.text().await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = integration_receipts().await;
        if n >= before + 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "receipts were lost: {n} integration receipts, expected {}",
            before + 2
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A delivery waiting for its work item's write holds none of its plugin's call slots: while
/// another process holds the database's write lock, more deliveries than the plugin has slots
/// all wait for their writes (none is refused as busy) and are all accepted when the lock is
/// gone.
#[tokio::test(flavor = "multi_thread")]
async fn deliveries_waiting_on_a_locked_database_hold_no_call_slot() {
    use nitejar_sandbox::limits::{CALL_SLOT_WAIT_MS, MAX_CONCURRENT_CALLS_PER_PLUGIN};
    use sqlx::Connection;
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), Stdio::null()).await;
    let secret = "slot-test-signing-secret";
    let instance = server
        .create_instance(serde_json::json!({"type": "webhook", "name": "slot test", "config": {"secret": secret}}))
        .await;
    let mut locker = lock_database(data.path()).await;
    // One after another, so each parse call runs on its request's thread (a burst would send
    // most to blocking threads, whose slots were always given back after the call). Each
    // delivery then waits on the database.
    let mut deliveries = Vec::new();
    for i in 0..MAX_CONCURRENT_CALLS_PER_PLUGIN + 8 {
        let body = serde_json::json!({"id": format!("slot-{i}"), "text": "hello"}).to_string();
        deliveries.push(tokio::spawn(
            server.generic_webhook(&instance, secret, body).send(),
        ));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The lock is held past how long a delivery waits for a slot (with slots held by
    // deliveries waiting on the database, the last eight are answered 503 busy by then) and
    // well under the host's 10 s busy timeout.
    tokio::time::sleep(Duration::from_millis(2 * CALL_SLOT_WAIT_MS)).await;
    sqlx::query("COMMIT").execute(&mut locker).await.unwrap();
    locker.close().await.unwrap();
    for (i, d) in deliveries.into_iter().enumerate() {
        let r = d.await.unwrap().unwrap();
        let status = r.status().as_u16();
        assert_eq!(status, 202, "delivery {i}: {}", r.text().await.unwrap());
    }
}

const TG_TOKEN: &str = "987654321:AAFkill9-process-test-token";
const TG_SECRET: &str = "tg-kill9-secret";
const GH_SECRET: &str = "gh-kill9-signing-secret";
const GH_PAT: &str = "ghp_kill9ProcessTestToken0123";
/// Deliveries per platform.
const N: usize = 8;

/// The run of work item `id` once its job has finished (done or failed).
async fn finished_run(server: &Server, id: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = server
            .admin(reqwest::Method::GET, &format!("/work-items/{id}/run"))
            .send()
            .await
            .unwrap();
        if r.status().is_success() {
            let v: serde_json::Value = r.json().await.unwrap();
            if matches!(v["job"]["status"].as_str(), Some("done" | "failed")) {
                return v;
            }
        }
        assert!(Instant::now() < deadline, "the run of {id} did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGKILL while replies are on the wire (the platform stand-ins have taken a reply in and not
/// answered yet), then a restart on the same data directory: every accepted delivery
/// is answered, each GitHub reply is one comment (the re-run finds the comment carrying the
/// reply's marker instead of posting again), and each Telegram message gets at most one reply
/// message, exactly one when its delivery says delivered: one whose send was interrupted is
/// not sent again (at most once; Telegram cannot be asked) and its delivery says so.
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_while_replies_are_on_the_wire_posts_each_reply_once() {
    use nitejar_tests::platforms::PlatformApi;
    use serde_json::{Value, json};
    let key = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/github-app-test-key.pem"),
    )
    .unwrap();
    let tg = PlatformApi::telegram(TG_TOKEN).await;
    let gh = PlatformApi::github(4242, &key, GH_PAT).await;
    let overrides = format!(
        "api.telegram.org=http://{},api.github.com=http://{}",
        tg.addr, gh.addr
    );
    let env = [
        ("NITEJAR_OUTBOUND_OVERRIDES", overrides.as_str()),
        // Runs of both platforms at once, so both have a reply on the wire at the kill.
        ("NITEJAR_RUN_WORKERS", "4"),
    ];
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start_env(data.path(), Stdio::null(), &env).await;
    let tg_id = server
        .create_instance(json!({"type": "telegram", "name": "tg", "config": {"botToken": TG_TOKEN, "webhookSecret": TG_SECRET}}))
        .await;
    let gh_id = server
        .create_instance(json!({"type": "github", "name": "gh", "config": {"webhookSecret": GH_SECRET, "token": GH_PAT}}))
        .await;
    use std::sync::atomic::Ordering::SeqCst;
    tg.state.hold_replies.store(true, SeqCst);
    gh.state.hold_replies.store(true, SeqCst);

    // N messages to the Telegram bot and N GitHub comments mentioning it, each accepted.
    let comment: Value = serde_json::from_slice(&nitejar_tests::webhook_fixture(
        "github",
        "issue_comment.created.json",
    ))
    .unwrap();
    let mut items = Vec::new();
    for i in 0..N {
        let update = json!({
            "update_id": 5000 + i,
            "message": {
                "message_id": 700 + i,
                "from": {"id": 88123, "is_bot": false, "first_name": "Lee"},
                "chat": {"id": 88123, "first_name": "Lee", "type": "private"},
                "date": 1763900301,
                "text": format!("question {i}"),
            }
        });
        let r = server
            .client
            .post(format!(
                "{}/api/webhooks/plugins/telegram/{tg_id}",
                server.base
            ))
            .header("x-telegram-bot-api-secret-token", TG_SECRET)
            .header("content-type", "application/json")
            .body(update.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
        let v: Value = r.json().await.unwrap();
        items.push((
            "telegram",
            700 + i,
            v["workItemId"].as_str().unwrap().to_string(),
        ));

        let mut c = comment.clone();
        c["issue"]["number"] = json!(2000 + i);
        c["comment"]["id"] = json!(9_000_000 + i);
        let body = c.to_string();
        let r = server
            .client
            .post(format!(
                "{}/api/webhooks/plugins/github/{gh_id}",
                server.base
            ))
            .header("x-github-event", "issue_comment")
            .header("x-github-delivery", format!("kill9-{i}"))
            .header(
                "x-hub-signature-256",
                nitejar_tests::sign(GH_SECRET, body.as_bytes()),
            )
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
        let v: Value = r.json().await.unwrap();
        items.push((
            "github",
            2000 + i,
            v["workItemId"].as_str().unwrap().to_string(),
        ));
    }

    // Killed while replies are on the wire: both platforms have taken one in, not answered.
    let deadline = Instant::now() + Duration::from_secs(60);
    while tg.state.held_replies.load(SeqCst) == 0 || gh.state.held_replies.load(SeqCst) == 0 {
        assert!(Instant::now() < deadline, "no replies were posted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    tg.state.hold_replies.store(false, SeqCst);
    gh.state.hold_replies.store(false, SeqCst);
    let server = Server::start_env(data.path(), Stdio::null(), &env).await;

    let mut uncertain = 0;
    for (platform, n, id) in &items {
        let run = finished_run(&server, id).await;
        let delivery = &run["delivery"];
        match *platform {
            "github" => {
                assert_eq!(delivery["status"], "delivered", "{run}");
                let comments: Vec<Value> = gh
                    .state
                    .comments
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(issue, _)| issue.ends_with(&format!("/{n}")))
                    .map(|(_, c)| c.clone())
                    .collect();
                assert_eq!(comments.len(), 1, "issue {n}: {comments:?}");
            }
            _ => {
                let sent = tg
                    .calls_to("/sendMessage")
                    .iter()
                    .filter(|c| c.body["reply_parameters"]["message_id"] == json!(n))
                    .count();
                if delivery["status"] == "failed" {
                    // Its send was begun before the kill: it reached the stand-in at most once
                    // (with four run workers, a send can be cut off after its record was written
                    // and before its request left; then it never arrives, and is not sent again).
                    let error = delivery["error"].as_str().unwrap_or("");
                    assert!(error.contains("at most once"), "{run}");
                    assert!(sent <= 1, "message {n} sent {sent} times: {run}");
                    if sent == 1 {
                        uncertain += 1;
                    }
                } else {
                    assert_eq!(delivery["status"], "delivered", "{run}");
                    assert_eq!(sent, 1, "message {n}: {run}");
                }
            }
        }
    }
    // The kill did hit replies on the wire: GitHub was asked for an interrupted reply's
    // comment, and a Telegram reply the stand-in took in has a delivery saying it was not
    // sent again.
    assert!(
        gh.calls()
            .iter()
            .any(|c| c.method == "GET" && c.path.contains("/comments?")),
        "no interrupted GitHub reply was looked for"
    );
    assert!(uncertain >= 1, "no interrupted Telegram reply");
}

/// A filesystem of its own for a data directory: a small tmpfs, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts `size` (e.g. `32m`); `None` when this machine does not allow it (not root).
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk { dir })
    }

    /// Writes a filler file until the filesystem is full.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.dir.path().join("filler")).unwrap();
        let chunk = vec![0u8; 64 << 10];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
    }

    /// Frees the space the filler took.
    fn free(&self) {
        std::fs::remove_file(self.dir.path().join("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A full disk under the data directory: webhooks and admin writes are answered 503 with
/// `Retry-After` (never 500, never a hang), `/readyz` says why while it lasts (`/healthz` keeps
/// saying the process is alive), and once space is freed the host serves again by itself: no
/// restart, nothing accepted lost, the receipts of that time written.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_is_reported_and_heals_without_a_restart() {
    let Some(disk) = SmallDisk::mount("32m") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root and must be able to mount a tmpfs"
        );
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let data = disk.dir.path().join("data");
    let server = Server::start(&data, Stdio::null()).await;
    let ready = async || {
        let r = server
            .client
            .get(format!("{}/readyz", server.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let retry = r.headers().get("retry-after").is_some();
        (status, retry, r.json::<serde_json::Value>().await.unwrap())
    };
    assert_eq!(ready().await.0, 200);
    let secret = "full-disk-signing-secret";
    let instance = server
        .create_instance(
            serde_json::json!({"type": "webhook", "name": "disk", "config": {"secret": secret}}),
        )
        .await;
    let webhook = async |id: &str| {
        let body = serde_json::json!({"id": id, "text": format!("hello {id}")}).to_string();
        let started = Instant::now();
        let r = server
            .generic_webhook(&instance, secret, body)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let retry = r.headers().get("retry-after").is_some();
        let v: serde_json::Value = r.json().await.unwrap();
        (status, retry, v, started.elapsed())
    };
    let mut accepted = Vec::new();
    let (s, _, v, _) = webhook("before").await;
    assert_eq!(s, 202, "{v}");
    accepted.push(v["workItemId"].as_str().unwrap().to_string());

    disk.fill();
    let mut refused = Vec::new();
    // SQLite may still fit a few writes into space its log already holds: deliveries go on
    // until the disk refuses some (each answered 202 or 503, never a hang or a 500).
    for i in 0..300 {
        if refused.len() >= 3 {
            break;
        }
        let id = format!("during-{i}");
        let (s, retry, v, took) = webhook(&id).await;
        assert!(took < Duration::from_secs(15), "{id} took {took:?}");
        match s {
            202 => accepted.push(v["workItemId"].as_str().unwrap().to_string()),
            503 => {
                assert!(retry, "{id}: 503 without Retry-After");
                assert_eq!(v["error"]["code"], "unavailable", "{v}");
                refused.push(id);
            }
            other => panic!("{id}: {other} {v}"),
        }
    }
    assert!(!refused.is_empty(), "the full disk refused nothing");
    let (s, retry, v) = ready().await;
    assert_eq!((s, retry), (503, true), "{v}");
    assert_eq!(v["error"]["code"], "not_ready", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("full"),
        "{v}"
    );
    let alive = server
        .client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(alive.status().as_u16(), 200);

    // Space is freed: the host heals by itself.
    disk.free();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ready().await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "still not ready after space was freed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The senders retry what was refused, and new traffic goes through.
    for id in refused.iter().map(String::as_str).chain(["after"]) {
        let (s, _, v, took) = webhook(id).await;
        assert_eq!(s, 202, "{id}: {v}");
        assert!(took < Duration::from_secs(5), "{id} took {took:?}");
        accepted.push(v["workItemId"].as_str().unwrap().to_string());
    }
    let r = server
        .admin(reqwest::Method::POST, "/plugins/builtin.telegram/disable")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "admin writes work again");
    // Nothing accepted was lost: every work item's run finishes.
    for id in &accepted {
        let run = finished_run(&server, id).await;
        assert_eq!(run["job"]["status"], "done", "{run}");
    }
}

/// The run workers' threads (`nitejar-runs`) are scheduled `NITEJAR_RUN_NICE` steps after the
/// ingress's, which keep the process's priority; a value outside 0-19 stops the server at
/// start with the variable named (`SLOPBOT_` works as well), as does a run-yield share over
/// 100%.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread")]
async fn run_threads_are_scheduled_after_the_ingress_and_a_bad_nice_is_refused() {
    /// (thread name, nice value) of every thread of `pid`, from `/proc`.
    fn threads(pid: u32) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
            let dir = t.unwrap().path();
            let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
            // After the name's closing parenthesis: state is field 3, nice field 19.
            let Some((_, rest)) = stat.rsplit_once(") ") else {
                continue;
            };
            let nice = rest.split(' ').nth(16).and_then(|n| n.parse().ok());
            if let Some(nice) = nice {
                out.push((name.trim().to_string(), nice));
            }
        }
        out
    }
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_env(data.path(), Stdio::null(), &[("NITEJAR_RUN_NICE", "7")]).await;
    let all = threads(server.child.id());
    let runs: Vec<i64> = all
        .iter()
        .filter(|(n, _)| n == "nitejar-runs")
        .map(|(_, nice)| *nice)
        .collect();
    let ingress: Vec<i64> = all
        .iter()
        .filter(|(n, _)| n == "tokio-rt-worker")
        .map(|(_, nice)| *nice)
        .collect();
    assert!(!runs.is_empty() && !ingress.is_empty(), "{all:?}");
    let base = ingress[0];
    assert!(ingress.iter().all(|n| *n == base), "{all:?}");
    assert!(runs.iter().all(|n| *n == (base + 7).min(19)), "{all:?}");
    drop(server);

    for (var, value, range) in [
        ("NITEJAR_RUN_NICE", "20", "0 to 19"),
        ("SLOPBOT_RUN_NICE", "-1", "0 to 19"),
        ("NITEJAR_RUN_YIELD_PERCENT", "101", "0 to 100"),
    ] {
        let mut child = Command::new(server_binary())
            .arg("serve")
            .env_remove("DATABASE_URL")
            .env_remove("NITEJAR_RUN_NICE")
            .env(var, value)
            .env("NITEJAR_DATA_DIR", data.path())
            .env("NITEJAR_BIND", "127.0.0.1:0")
            .env("NITEJAR_ADMIN_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A server that took the value would serve on: stop it and fail, rather than hang.
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > Duration::from_secs(60) {
                child.kill().unwrap();
                panic!("{var}={value}: the server started");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{var}={value} started");
        assert!(
            stderr.contains(var) && stderr.contains(range),
            "{var}={value}: {stderr}"
        );
    }
}
