//! The built-in Telegram and GitHub plugins end to end: every shared fixture through the real
//! webhook route of a running server, agent runs on the offline model, and replies reaching
//! local stand-ins of api.telegram.org / api.github.com through the outbound override (the
//! plugins' allowlists unchanged). Plus the instance lifecycle, confinement of the built-ins to
//! their own hosts, per-instance idempotency, compatibility of stored instances across
//! upgrades, and a grep for every secret in the database file, logs, receipts and responses.

use nitejar_tests::platforms::PlatformApi;
use nitejar_tests::{HostOptions, TestHost};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

const TG_TOKEN: &str = "123456789:AAEhBOweik9ai3Fs2yZ-nitejarTestToken";
const TG_SECRET: &str = "tg-webhook-secret-token-9";
const GH_SECRET: &str = "gh-webhook-secret-0123456789";
const GH_PAT: &str = "ghp_patSecretValue0123456789abcdef";
const GH_APP_ID: u64 = 4242;
const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

// ---- log capture: every line the host logs in this test binary, for the secrets grep ----------

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogSink;
impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            // The host's own filter at the most verbose level an operator can ask for, except
            // the compiler's own tracing (each compiled function's IR: gigabytes when the
            // compile cache is cold, and nothing a plugin or an operator's secret reaches).
            .with_env_filter(nitejar_core::logging::filter(Some(
                "trace,cranelift_codegen=info,cranelift_frontend=info,cranelift_entity=info,\
                 regalloc2=info,wasmtime_cranelift=info,wasmtime_environ=info",
            )))
            .with_ansi(false)
            .with_writer(|| LogSink)
            .try_init();
    });
}

// ---- fixtures ---------------------------------------------------------------------------------

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(kind: &str, name: &str) -> Vec<u8> {
    nitejar_tests::webhook_fixture(kind, name)
}

fn app_key() -> String {
    std::fs::read_to_string(repo_root().join("tests/fixtures/github-app-test-key.pem")).unwrap()
}

fn gh_sign(body: &[u8]) -> String {
    nitejar_tests::sign(GH_SECRET, body)
}

/// A host whose requests for `api_host` go to the stand-in `api`.
async fn host_with(api_host: &str, api: &PlatformApi) -> TestHost {
    capture_logs();
    TestHost::start_with(HostOptions {
        overrides: [(api_host.to_string(), api.target())].into(),
        ..Default::default()
    })
    .await
}

async fn telegram_host(api: &PlatformApi) -> TestHost {
    host_with("api.telegram.org", api).await
}

async fn create(host: &TestHost, kind: &str, name: &str, config: Value, status: u16) -> Value {
    host.admin_json(
        Method::POST,
        "/instances",
        Some(json!({ "type": kind, "name": name, "config": config })),
        status,
    )
    .await
}

async fn work_item_count(host: &TestHost, instance: &str) -> usize {
    host.admin_json(
        Method::GET,
        &format!("/instances/{instance}/work-items"),
        None,
        200,
    )
    .await["workItems"]
        .as_array()
        .unwrap()
        .len()
}

/// A correctly authenticated Telegram delivery of fixture `name` to instance `id`.
async fn tg_update(host: &TestHost, id: &str, name: &str) -> (u16, Value) {
    host.webhook(
        "telegram",
        id,
        &[(SECRET_HEADER, TG_SECRET)],
        fixture("telegram", name),
    )
    .await
}

/// Runs one statement on the host's database file behind its back (what an older build, or
/// Nitejar, left there); the rows it changed.
async fn raw_sql(host_db: &std::path::Path, statement: &str, binds: &[&str]) -> u64 {
    use sqlx::ConnectOptions;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(host_db)
        .connect()
        .await
        .unwrap();
    let mut q = sqlx::query(statement);
    for b in binds {
        q = q.bind(*b);
    }
    q.execute(&mut conn).await.unwrap().rows_affected()
}

fn tg_config() -> Value {
    json!({ "botToken": TG_TOKEN, "webhookSecret": TG_SECRET })
}

// ---- Telegram ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_fixtures_end_to_end() {
    let api = PlatformApi::telegram(TG_TOKEN).await;
    let host = telegram_host(&api).await;
    let inst = create(&host, "telegram", "ops bot", tg_config(), 201).await;
    let id = inst["id"].as_str().unwrap().to_string();
    assert_eq!(
        inst["webhookUrl"],
        format!("/api/webhooks/plugins/telegram/{id}")
    );
    assert_eq!(inst["config"]["botToken"], "********");
    assert_eq!(api.calls_to("/getMe").len(), 1, "enabled only after getMe");

    let mut items = std::collections::BTreeMap::new();
    for (file, status) in [
        ("group-text.json", 202),
        ("forum-thread-photo-reply.json", 202),
        ("private-command.json", 202),
        ("from-bot-ignored.json", 200),
        ("channel-post-ignored.json", 200),
        // Answered as Nitejar answers it (a new update id).
        ("edited-message.json", 202),
        // Attachments without text, in a forum topic (was "ignored: no text, caption or photo").
        ("video-note-forum-topic.json", 202),
    ] {
        let (got, v) = host
            .webhook(
                "telegram",
                &id,
                &[(SECRET_HEADER, TG_SECRET)],
                fixture("telegram", file),
            )
            .await;
        assert_eq!(got, status, "{file}: {v}");
        if status == 202 {
            items.insert(file, v["workItemId"].as_str().unwrap().to_string());
        } else {
            assert_eq!(v["ignored"], true, "{file}: {v}");
        }
    }

    // The documented outcome of each work item.
    let group = host.work_item(&items["group-text.json"]).await;
    assert_eq!(group["sessionKey"], "telegram:-1001748203311");
    assert_eq!(
        group["text"],
        "@nitejar_bot can you summarize the deploy failures from last night?"
    );
    let forum = host
        .work_item(&items["forum-thread-photo-reply.json"])
        .await;
    // Nitejar's keys (tests/fixtures/nitejar/nitejar-data.md), so history imported from it continues.
    assert_eq!(forum["sessionKey"], "telegram:-1001748203311:thread:1877");
    assert_eq!(forum["sourceRef"], "telegram:-1001748203311:1877:1901");
    let row = host
        .app
        .store
        .get_work_item(&items["forum-thread-photo-reply.json"])
        .await
        .unwrap()
        .unwrap();
    let ctx: Value = serde_json::from_str(row.response_context_json.as_deref().unwrap()).unwrap();
    assert_eq!(
        ctx,
        json!({"chatId": -1001748203311i64, "messageId": 1901, "messageThreadId": 1877, "replyToMessageId": 1899})
    );
    let payload: Value = serde_json::from_str(forum["payloadJson"].as_str().unwrap()).unwrap();
    assert_eq!(
        payload["attachments"][0]["fileId"],
        "AgACAgQAAxkBAAIBm2VYlarge"
    );
    let note = host.work_item(&items["video-note-forum-topic.json"]).await;
    assert_eq!(note["sessionKey"], "telegram:-1001748203311:thread:1877");
    assert_eq!(note["title"], "video_note from Ops Room");
    let payload: Value = serde_json::from_str(note["payloadJson"].as_str().unwrap()).unwrap();
    assert_eq!(payload["attachments"][0]["type"], "video_note");
    assert_eq!(payload["attachments"][0]["width"], 240);
    let command = host.work_item(&items["private-command.json"]).await;
    assert_eq!(command["command"], "clear");
    assert_eq!(command["sessionKey"], "telegram:88123");

    // Every run delivers through sendMessage with the exact body the Bot API expects.
    for id in items.values() {
        let run = host.wait_for_run(id).await;
        assert_eq!(run["delivery"]["status"], "delivered", "{run}");
    }
    let sends = api.calls_to("/sendMessage");
    assert_eq!(sends.len(), 5);
    let by_message = |m: i64| {
        sends
            .iter()
            .find(|c| c.body["reply_parameters"]["message_id"] == m)
            .unwrap_or_else(|| panic!("no reply to message {m}"))
            .body
            .clone()
    };
    // (Message 1893 is answered twice: the original and its edit.)
    let original = json!({
        "chat_id": -1001748203311i64,
        "text": "Received: @nitejar_bot can you summarize the deploy failures from last night?",
        "parse_mode": "HTML",
        "reply_parameters": {"message_id": 1893, "allow_sending_without_reply": true}
    });
    assert!(
        sends.iter().any(|c| c.body == original),
        "no reply {original} in {sends:?}"
    );
    assert_eq!(by_message(1911)["message_thread_id"], 1877);
    let forum_reply = by_message(1901);
    assert_eq!(forum_reply["chat_id"], -1001748203311i64);
    assert_eq!(forum_reply["message_thread_id"], 1877);
    let text = forum_reply["text"].as_str().unwrap();
    assert!(
        text.starts_with(
            "Received: [In reply to Nitejar: &quot;Which dashboard do you mean?&quot;]"
        ),
        "{text}"
    );
    assert!(text.contains("this one, the red panel"), "{text}");
    assert_eq!(by_message(52)["chat_id"], 88123);

    // 👀 while working, typing, the reply, then the reaction cleared.
    let calls = api.calls();
    let pos = |pred: &dyn Fn(&nitejar_tests::platforms::ApiCall) -> bool| {
        calls.iter().position(pred).expect("call present")
    };
    let ack = pos(&|c| {
        c.path.ends_with("/setMessageReaction")
            && c.body["message_id"] == 1893
            && c.body["reaction"] == json!([{"type": "emoji", "emoji": "👀"}])
    });
    let reply = pos(&|c| {
        c.path.ends_with("/sendMessage") && c.body["reply_parameters"]["message_id"] == 1893
    });
    let clear = pos(&|c| {
        c.path.ends_with("/setMessageReaction")
            && c.body["message_id"] == 1893
            && c.body["reaction"] == json!([])
    });
    assert!(ack < reply && reply < clear, "order: {ack} {reply} {clear}");
    assert!(calls.iter().any(|c| c.path.ends_with("/sendChatAction")
        && c.body == json!({"chat_id": -1001748203311i64, "message_thread_id": 1877, "action": "typing"})));

    // A wrong or missing secret token creates nothing and answers 401; a redelivery is a duplicate.
    let before = work_item_count(&host, &id).await;
    for headers in [vec![(SECRET_HEADER, "wrong-token")], vec![]] {
        let (status, _) = host
            .webhook(
                "telegram",
                &id,
                &headers,
                fixture("telegram", "group-text.json"),
            )
            .await;
        assert_eq!(status, 401);
    }
    let (status, v) = tg_update(&host, &id, "group-text.json").await;
    assert_eq!((status, v["duplicate"].clone()), (200, json!(true)));
    assert_eq!(work_item_count(&host, &id).await, before);

    // Receipts like any plugin: parse, acknowledge, post, all under builtin.telegram.
    let receipts = host.receipts("builtin.telegram").await;
    for op in [
        "parse-webhook",
        "acknowledge-receipt",
        "post-response",
        "test-connection",
    ] {
        assert!(
            receipts.iter().any(|r| r["detailJson"]
                .as_str()
                .is_some_and(|d| d.contains(&format!("\"operation\":\"{op}\"")))),
            "no {op} receipt"
        );
    }
    assert_no_secret_anywhere(&host, &[TG_TOKEN, TG_SECRET]).await;
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_markup_refused_falls_back_to_plain_text() {
    let api = PlatformApi::telegram(TG_TOKEN).await;
    api.state
        .reject_html
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let host = telegram_host(&api).await;
    let id = create(&host, "telegram", "bot", tg_config(), 201).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, v) = tg_update(&host, &id, "group-text.json").await;
    assert_eq!(status, 202, "{v}");
    let run = host.wait_for_run(v["workItemId"].as_str().unwrap()).await;
    assert_eq!(run["delivery"]["status"], "delivered", "{run}");
    let sends = api.calls_to("/sendMessage");
    assert_eq!(sends.len(), 2);
    assert_eq!(sends[0].body["parse_mode"], "HTML");
    assert!(sends[1].body.get("parse_mode").is_none());
    assert_eq!(
        sends[1].body["text"],
        "Received: @nitejar_bot can you summarize the deploy failures from last night?"
    );
    host.stop().await;
}

/// Two bots receive the same update id: idempotency is per instance, so both get a work item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_is_scoped_per_instance() {
    let api = PlatformApi::telegram(TG_TOKEN).await;
    let host = telegram_host(&api).await;
    let mut ids = Vec::new();
    for name in ["bot a", "bot b"] {
        ids.push(
            create(&host, "telegram", name, tg_config(), 201).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let mut items = Vec::new();
    for id in &ids {
        let (status, v) = host
            .webhook(
                "telegram",
                id,
                &[(SECRET_HEADER, TG_SECRET)],
                fixture("telegram", "group-text.json"),
            )
            .await;
        assert_eq!(status, 202, "{v}");
        items.push(v["workItemId"].as_str().unwrap().to_string());
    }
    assert_ne!(items[0], items[1]);
    for item in &items {
        assert_eq!(
            host.wait_for_run(item).await["delivery"]["status"],
            "delivered"
        );
    }
    host.stop().await;
}

// ---- GitHub -----------------------------------------------------------------------------------

async fn github_host(api: &PlatformApi) -> TestHost {
    host_with("api.github.com", api).await
}

async fn github_webhook(
    host: &TestHost,
    id: &str,
    event: &str,
    delivery: &str,
    body: Vec<u8>,
    signature: Option<String>,
) -> (u16, Value) {
    let sig = signature.unwrap_or_else(|| gh_sign(&body));
    host.webhook(
        "github",
        id,
        &[
            ("x-github-event", event),
            ("x-github-delivery", delivery),
            ("x-hub-signature-256", &sig),
            ("content-type", "application/json"),
        ],
        body,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_fixtures_end_to_end_as_an_app() {
    let key = app_key();
    let api = PlatformApi::github(GH_APP_ID, &key, GH_PAT).await;
    let host = github_host(&api).await;
    let inst = create(
        &host,
        "github",
        "acme",
        json!({ "webhookSecret": GH_SECRET, "appId": GH_APP_ID.to_string(), "privateKey": key }),
        201,
    )
    .await;
    let id = inst["id"].as_str().unwrap().to_string();
    assert_eq!(inst["config"]["privateKey"], "********");
    assert_eq!(
        api.calls_to("/app").len(),
        1,
        "test-connection as the App (JWT verified)"
    );

    // ping: acknowledged, nothing created.
    let (status, v) = github_webhook(
        &host,
        &id,
        "ping",
        "d-ping",
        fixture("github", "ping.json"),
        None,
    )
    .await;
    assert_eq!((status, v["ok"].clone()), (200, json!(true)), "{v}");
    assert_eq!(work_item_count(&host, &id).await, 0);

    // Each event, one at a time (so the installation token cache is observable).
    let cases = [
        ("issue_comment", "d-1", "issue_comment.created.json", 412),
        ("issues", "d-2", "issues.opened.json", 415),
        ("check_run", "d-3", "check_run.completed.json", 416),
    ];
    for (event, delivery, file, number) in cases {
        let (status, v) =
            github_webhook(&host, &id, event, delivery, fixture("github", file), None).await;
        assert_eq!(status, 202, "{event}: {v}");
        let item = host.work_item(v["workItemId"].as_str().unwrap()).await;
        assert_eq!(item["sessionKey"], format!("acme/widgets#issue:{number}"));
        let run = host.wait_for_run(v["workItemId"].as_str().unwrap()).await;
        assert_eq!(run["delivery"]["status"], "delivered", "{run}");
        let posted = api.calls_to(&format!("/repos/acme/widgets/issues/{number}/comments"));
        assert_eq!(posted.len(), 1, "{event}");
        assert_eq!(posted[0].method, "POST");
        // The model's answer, then the reply's hidden marker (the job id), by which an
        // attempt that lost GitHub's answer finds the comment instead of posting it twice.
        assert_eq!(
            posted[0].body,
            json!({ "body": format!(
                "Received: {}\n\n<!-- nitejar-reply:{} -->",
                item["text"].as_str().unwrap(),
                v["jobId"].as_str().unwrap()
            ) })
        );
        assert_eq!(
            posted[0].header("accept"),
            Some("application/vnd.github+json")
        );
        assert_eq!(posted[0].header("x-github-api-version"), Some("2022-11-28"));
        assert!(
            posted[0]
                .header("authorization")
                .unwrap()
                .starts_with("Bearer ghs_installation_51234987_")
        );
    }
    assert_eq!(
        api.state
            .tokens_issued
            .load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the installation token is cached across runs until it expires"
    );
    let first = api.calls_to("/repos/acme/widgets/issues/412/comments");
    assert!(
        first[0].body["body"]
            .as_str()
            .unwrap()
            .starts_with("Received: @nitejar can you look at the last 10 CI runs")
    );

    // Redelivery: same delivery id, nothing new. Bad signature: 401, nothing new.
    let before = work_item_count(&host, &id).await;
    let (status, v) = github_webhook(
        &host,
        &id,
        "issue_comment",
        "d-1",
        fixture("github", "issue_comment.created.json"),
        None,
    )
    .await;
    assert_eq!((status, v["duplicate"].clone()), (200, json!(true)), "{v}");
    for bad in [
        "sha256=0000".to_string(),
        nitejar_tests::sign("another-secret-entirely", b"x"),
        String::new(),
    ] {
        let (status, _) = github_webhook(
            &host,
            &id,
            "issues",
            "d-new",
            fixture("github", "issues.opened.json"),
            Some(bad),
        )
        .await;
        assert_eq!(status, 401);
    }
    // A bot's comment is ignored.
    let mut bot: Value =
        serde_json::from_slice(&fixture("github", "issue_comment.created.json")).unwrap();
    bot["sender"]["type"] = json!("Bot");
    let (status, v) = github_webhook(
        &host,
        &id,
        "issue_comment",
        "d-bot",
        bot.to_string().into_bytes(),
        None,
    )
    .await;
    assert_eq!((status, v["ignored"].clone()), (200, json!(true)));
    assert_eq!(work_item_count(&host, &id).await, before);

    let key_line = key.lines().nth(3).unwrap().to_string();
    assert_no_secret_anywhere(
        &host,
        &[GH_SECRET, &key_line, "ghs_installation_51234987_0"],
    )
    .await;
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_with_a_token_and_repo_allowlist() {
    let api = PlatformApi::github(GH_APP_ID, &app_key(), GH_PAT).await;
    let host = github_host(&api).await;
    // A wrong token fails the connection test: not created enabled.
    let v = create(
        &host,
        "github",
        "acme",
        json!({ "webhookSecret": GH_SECRET, "token": "ghp_wrong_token_value_000000" }),
        422,
    )
    .await;
    assert_eq!(v["error"]["code"], "connection_failed", "{v}");
    assert!(!v.to_string().contains("ghp_wrong"), "{v}");
    let id = create(
        &host,
        "github",
        "acme",
        json!({ "webhookSecret": GH_SECRET, "token": GH_PAT, "allowedRepos": ["acme/other"] }),
        201,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, v) = github_webhook(
        &host,
        &id,
        "issues",
        "d-1",
        fixture("github", "issues.opened.json"),
        None,
    )
    .await;
    assert_eq!((status, v["ignored"].clone()), (200, json!(true)), "{v}");
    // Allow the repository (partial update: the secrets stay as stored).
    host.admin_json(
        Method::PATCH,
        &format!("/instances/{id}"),
        Some(json!({ "config": { "allowedRepos": ["acme/widgets"] } })),
        200,
    )
    .await;
    let (status, v) = github_webhook(
        &host,
        &id,
        "issues",
        "d-1",
        fixture("github", "issues.opened.json"),
        None,
    )
    .await;
    assert_eq!(status, 202, "{v}");
    let run = host.wait_for_run(v["workItemId"].as_str().unwrap()).await;
    assert_eq!(run["delivery"]["status"], "delivered", "{run}");
    let posted = api.calls_to("/repos/acme/widgets/issues/415/comments");
    assert_eq!(
        posted[0].header("authorization"),
        Some(format!("Bearer {GH_PAT}").as_str())
    );
    assert_no_secret_anywhere(&host, &[GH_SECRET, GH_PAT]).await;
    host.stop().await;
}

// ---- confinement, lifecycle, compatibility ----------------------------------------------------

/// The built-ins are listed like any plugin, with their permissions, and cannot reach any host
/// but their own: pointing them elsewhere is refused by the sandbox and receipted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtins_are_confined_to_their_own_hosts() {
    let elsewhere = PlatformApi::telegram(TG_TOKEN).await;
    let host = TestHost::start().await;
    let list = host.admin_json(Method::GET, "/plugins", None, 200).await;
    for (id, net) in [
        ("builtin.telegram", "api.telegram.org"),
        ("builtin.github", "api.github.com"),
    ] {
        let p = list["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .unwrap_or_else(|| panic!("{id} listed"));
        assert_eq!(p["enabled"], true);
        assert_eq!(p["executionMode"], "wasm_sandbox");
        assert_eq!(p["declaredCapabilities"]["network"], json!([net]), "{p}");
    }
    let target = format!("http://{}", elsewhere.addr);
    let v = create(
        &host,
        "telegram",
        "redirected",
        json!({ "botToken": TG_TOKEN, "apiBaseUrl": target }),
        422,
    )
    .await;
    assert_eq!(v["error"]["code"], "connection_failed", "{v}");
    let v = create(
        &host,
        "github",
        "redirected",
        json!({ "webhookSecret": GH_SECRET, "token": GH_PAT, "apiBaseUrl": target }),
        422,
    )
    .await;
    assert_eq!(v["error"]["code"], "connection_failed", "{v}");
    assert_eq!(elsewhere.calls().len(), 0, "nothing reached the other host");
    for id in ["builtin.telegram", "builtin.github"] {
        let receipts = host.receipts(id).await;
        let denied = receipts
            .iter()
            .find(|r| r["kind"] == "permission_denied")
            .unwrap_or_else(|| panic!("{id}: no permission_denied receipt"));
        let detail = denied["detailJson"].as_str().unwrap();
        assert!(detail.contains(&target), "{detail}");
        assert!(
            !detail.contains(TG_TOKEN),
            "the bot token is in the URL path, never in receipts"
        );
    }
    // The host keeps serving.
    assert_eq!(
        host.admin_json(Method::GET, "/integration-types", None, 200)
            .await["integrationTypes"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_lifecycle() {
    let api = PlatformApi::telegram(TG_TOKEN).await;
    let host = telegram_host(&api).await;
    // Forms come from the schema.
    let types = host
        .admin_json(Method::GET, "/integration-types", None, 200)
        .await;
    let tg = types["integrationTypes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "telegram")
        .unwrap()
        .clone();
    assert_eq!(tg["pluginId"], "builtin.telegram");
    assert_eq!(tg["configSchema"]["required"], json!(["botToken"]));
    assert_eq!(tg["sensitiveFields"], json!(["botToken", "webhookSecret"]));

    // Schema errors name the field, never the value; unknown types are 400.
    let v = create(
        &host,
        "telegram",
        "x",
        json!({ "botToken": "short-secret", "allowedChatIds": "all" }),
        422,
    )
    .await;
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("`botToken`") && msg.contains("allowedChatIds"),
        "{msg}"
    );
    assert!(!msg.contains("short-secret"), "{msg}");
    // A field this host does not know (Nitejar, or a newer version, wrote it) is kept as is.
    let extra = host
        .admin_json(
            Method::POST,
            "/instances",
            Some(
                json!({"type": "telegram", "name": "with extra", "enabled": false,
                        "config": { "botToken": TG_TOKEN, "colour": "red" }}),
            ),
            201,
        )
        .await;
    assert_eq!(extra["config"]["colour"], "red");
    create(&host, "nope", "x", json!({}), 400).await;

    // Created disabled: no connection test, webhooks 404 until enabled.
    let inst = host
        .admin_json(
            Method::POST,
            "/instances",
            Some(json!({"type": "telegram", "name": "later", "config": tg_config(), "enabled": false})),
            201,
        )
        .await;
    let id = inst["id"].as_str().unwrap().to_string();
    assert_eq!(api.calls_to("/getMe").len(), 0);
    let (status, _) = tg_update(&host, &id, "group-text.json").await;
    assert_eq!(status, 404);
    let stored = |host: &TestHost, id: String| {
        let db = host.app.store.clone();
        async move {
            let row = db.get_instance(&id).await.unwrap().unwrap();
            serde_json::from_str::<Value>(&row.config_json).unwrap()
        }
    };
    let before = stored(&host, id.clone()).await;
    assert!(before["botToken"].as_str().unwrap() != TG_TOKEN);

    // Partial update: name and a plain field; a redacted secret keeps its ciphertext.
    let v = host
        .admin_json(
            Method::PATCH,
            &format!("/instances/{id}"),
            Some(json!({"name": "renamed", "config": {"botToken": "********", "allowedChatIds": [-1001748203311i64]}})),
            200,
        )
        .await;
    assert_eq!(v["name"], "renamed");
    assert_eq!(v["config"]["allowedChatIds"], json!([-1001748203311i64]));
    let after = stored(&host, id.clone()).await;
    assert_eq!(
        after["botToken"], before["botToken"],
        "untouched secret, same bytes"
    );
    assert_eq!(after["webhookSecret"], before["webhookSecret"]);
    // `null` removes a key; the secret token is then no longer required.
    host.admin_json(
        Method::PATCH,
        &format!("/instances/{id}"),
        Some(json!({"config": {"webhookSecret": null}})),
        200,
    )
    .await;
    assert!(
        stored(&host, id.clone())
            .await
            .get("webhookSecret")
            .is_none()
    );
    host.admin_json(
        Method::PATCH,
        &format!("/instances/{id}"),
        Some(json!({"config": {"webhookSecret": TG_SECRET}})),
        200,
    )
    .await;

    // Enable runs the connection test; a rejected token refuses it.
    let v = host
        .admin_json(Method::POST, &format!("/instances/{id}/enable"), None, 200)
        .await;
    assert_eq!(v["enabled"], true);
    assert_eq!(v["connection"]["ok"], true);
    assert!(
        v["connection"]["detail"]
            .as_str()
            .unwrap()
            .contains("@nitejar_bot")
    );
    let t = host
        .admin_json(Method::POST, &format!("/instances/{id}/test"), None, 200)
        .await;
    assert_eq!(t["ok"], true);
    let t = host
        .admin_json(
            Method::POST,
            "/instances/test",
            Some(json!({"type": "telegram", "config": {"botToken": "987654321:AAwrongwrongwrongwrongwrong"}})),
            200,
        )
        .await;
    assert_eq!(t["ok"], false, "{t}");
    let (status, v) = tg_update(&host, &id, "group-text.json").await;
    assert_eq!(status, 202, "{v}");
    let item = v["workItemId"].as_str().unwrap().to_string();
    host.wait_for_run(&item).await;

    // Disable: webhooks 404. Delete: gone, its work items stay.
    host.admin_json(Method::POST, &format!("/instances/{id}/disable"), None, 200)
        .await;
    let (status, _) = tg_update(&host, &id, "private-command.json").await;
    assert_eq!(status, 404);
    let resp = host
        .admin(Method::DELETE, &format!("/instances/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    host.admin_json(Method::GET, &format!("/instances/{id}"), None, 404)
        .await;
    host.admin_json(Method::DELETE, &format!("/instances/{id}"), None, 404)
        .await;
    assert_eq!(host.work_item(&item).await["id"], item.as_str());
    host.admin_json(Method::POST, &format!("/instances/{id}/enable"), None, 404)
        .await;
    assert_no_secret_anywhere(&host, &[TG_TOKEN, TG_SECRET]).await;
    host.stop().await;
}

fn row_checksums(rows: &[nitejar_store::InstanceRow]) -> Vec<(String, String)> {
    rows.iter()
        .map(|r| {
            let mut h = Sha256::new();
            for part in [
                &r.id,
                &r.plugin_id,
                &r.integration_type,
                &r.name,
                &r.config_json,
            ] {
                h.update(part.as_bytes());
                h.update([0]);
            }
            (r.id.clone(), hex::encode(h.finalize()))
        })
        .collect()
}

/// Spec §20: instances survive a host restart and a built-in plugin upgrade with their ids,
/// types, encrypted config bytes and webhook URLs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_survive_host_and_builtin_upgrades_byte_for_byte() {
    let tg = PlatformApi::telegram(TG_TOKEN).await;
    let gh = PlatformApi::github(GH_APP_ID, &app_key(), GH_PAT).await;
    let opts = HostOptions {
        overrides: [
            ("api.telegram.org".to_string(), tg.target()),
            ("api.github.com".to_string(), gh.target()),
        ]
        .into(),
        ..Default::default()
    };
    let host = TestHost::start_with(opts.clone()).await;
    let tg_id = create(&host, "telegram", "bot", tg_config(), 201).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    create(
        &host,
        "github",
        "repo",
        json!({ "webhookSecret": GH_SECRET, "token": GH_PAT }),
        201,
    )
    .await;
    let before = row_checksums(&host.app.store.list_instances().await.unwrap());
    let urls_before = host.admin_json(Method::GET, "/instances", None, 200).await;
    let data = host.stop_keep_data().await;

    // A built-in upgrade: the database says an older build of each built-in is installed, so
    // the next boot installs the bundled one over it (the path a new binary takes).
    let changed = raw_sql(
        &data.path().join("nitejar.db"),
        "UPDATE plugins SET current_checksum = 'sha256:older-build' WHERE id IN ('builtin.telegram', 'builtin.github')",
        &[],
    )
    .await;
    assert_eq!(changed, 2);
    let host = TestHost::start_in(data, opts).await;
    let installs = host
        .receipts("builtin.telegram")
        .await
        .into_iter()
        .filter(|r| r["kind"] == "install")
        .count();
    assert_eq!(installs, 2, "re-installed by the upgrade");
    let after = row_checksums(&host.app.store.list_instances().await.unwrap());
    assert_eq!(before, after);
    let urls_after = host.admin_json(Method::GET, "/instances", None, 200).await;
    let urls = |v: &Value| -> Vec<Value> {
        v["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| json!([i["id"], i["type"], i["webhookUrl"]]))
            .collect()
    };
    assert_eq!(urls(&urls_before), urls(&urls_after));
    // And the old webhook URL still works with the old, still-encrypted config.
    let (status, v) = tg_update(&host, &tg_id, "group-text.json").await;
    assert_eq!(status, 202, "{v}");
    host.stop().await;
}

// ---- the secrets grep -------------------------------------------------------------------------

/// No secret in the database file (and its WAL), the logs, any receipt, or any admin response.
async fn assert_no_secret_anywhere(host: &TestHost, secrets: &[&str]) {
    host.app.receipts.flush().await;
    let mut places: Vec<(String, Vec<u8>)> = Vec::new();
    for entry in std::fs::read_dir(&host.app.config.data_dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("nitejar.db") {
            places.push((name, std::fs::read(&path).unwrap()));
        }
    }
    assert!(!places.is_empty(), "database file found");
    let logs = LOGS.lock().unwrap().clone();
    assert!(
        String::from_utf8_lossy(&logs).contains("builtin."),
        "the host's logs are captured (else the grep proves nothing)"
    );
    assert!(
        String::from_utf8_lossy(&logs).contains(" TRACE "),
        "the logs are captured at trace level"
    );
    places.push(("logs".into(), logs));
    for path in ["/plugins", "/instances", "/integration-types", "/hooks"] {
        let v = host.admin_json(Method::GET, path, None, 200).await;
        places.push((path.into(), v.to_string().into_bytes()));
    }
    for plugin in ["builtin.telegram", "builtin.github"] {
        let v = host
            .admin_json(
                Method::GET,
                &format!("/plugins/{plugin}/events?limit=500"),
                None,
                200,
            )
            .await;
        places.push((format!("{plugin} events"), v.to_string().into_bytes()));
    }
    for secret in secrets {
        for (place, bytes) in &places {
            let hay = String::from_utf8_lossy(bytes);
            if let Some(at) = hay.find(secret) {
                let line_start = hay[..at].rfind('\n').map_or(0, |i| i + 1);
                let line_end = hay[at..].find('\n').map_or(hay.len(), |i| at + i);
                let line: String = hay[line_start..line_end].chars().take(400).collect();
                panic!("a secret appears in {place}: {line}");
            }
        }
    }
}

/// An instance whose stored config holds Nitejar's `enc:` values (AES-256-GCM, 16-byte IV,
/// written here by Node.js `crypto` exactly as Nitejar does, with this host's key): the blob is
/// used as it is, never rewritten, and the webhook secret and bot token decrypt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_with_nitejar_encrypted_secrets_works_as_stored() {
    // `TestHost`'s key ("ab" x 32), the values TG_TOKEN and TG_SECRET.
    const TOKEN_ENC: &str = "enc:ISIjJCUmJygpKissLS4vMPJOq80XGIl2RnierUeXX9l344wjVjv94ZPAeIQloPvB8qISa5RorHqiHsRdFbfMEjNF7IJ8m9zOCJcKOh7J";
    const SECRET_ENC: &str =
        "enc:MTIzNDU2Nzg5Ojs8PT4/QNtIQJrVv1LJWC8lPzO+QLFKUTZfZncfpXa+/aIbrV1eK8JY9ZGGtygI";
    let api = PlatformApi::telegram(TG_TOKEN).await;
    let host = telegram_host(&api).await;
    let inst = create(&host, "telegram", "moved bot", tg_config(), 201).await;
    let id = inst["id"].as_str().unwrap().to_string();
    let stored = json!({ "botToken": TOKEN_ENC, "webhookSecret": SECRET_ENC }).to_string();
    raw_sql(
        &host.app.config.data_dir.join("nitejar.db"),
        "UPDATE plugin_instances SET config_json = ? WHERE id = ?",
        &[&stored, &id],
    )
    .await;
    // Written behind the host's back: instances are answered from memory, so the host reads
    // the row again within a second (`store::sqlite::instance_cache`).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while host
        .app
        .store
        .get_instance(&id)
        .await
        .unwrap()
        .unwrap()
        .config_json
        != stored
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the row was never read again"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, v) = tg_update(&host, &id, "private-command.json").await;
    assert_eq!(status, 202, "the enc: webhook secret verified: {v}");
    let run = host.wait_for_run(v["workItemId"].as_str().unwrap()).await;
    assert_eq!(run["delivery"]["status"], "delivered", "{run}");
    assert_eq!(
        api.calls_to("/sendMessage").len(),
        1,
        "posted with the enc: bot token"
    );
    // A wrong secret is still refused, and the stored blob was not rewritten.
    let (status, _) = host
        .webhook(
            "telegram",
            &id,
            &[(SECRET_HEADER, "wrong")],
            fixture("telegram", "group-text.json"),
        )
        .await;
    assert_eq!(status, 401);
    let row = host.app.store.get_instance(&id).await.unwrap().unwrap();
    assert_eq!(row.config_json, stored);
    host.stop().await;
}

/// Conversation memory by session (issue 15): a run's model input holds the earlier messages
/// and replies of its session (same instance and session key), and `/clear` starts afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_telegram_session_remembers_until_clear() {
    let api = PlatformApi::telegram(TG_TOKEN).await;
    let model = nitejar_tests::ScriptedModel::start(|_, i| {
        Some(nitejar_tests::completion_text(&format!("answer {}", i + 1)))
    })
    .await;
    let host = TestHost::start_with(HostOptions {
        overrides: [("api.telegram.org".to_string(), api.target())].into(),
        model_base_url: Some(model.base_url.clone()),
        ..Default::default()
    })
    .await;
    let id = create(&host, "telegram", "memory", tg_config(), 201).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let say = |update_id: i64, chat: i64, text: &str| {
        let body = json!({"update_id": update_id, "message": {
            "message_id": update_id, "date": 1763900000 + update_id,
            "from": {"id": 5120348812i64, "is_bot": false, "first_name": "Ana"},
            "chat": {"id": chat, "type": "private", "first_name": "Ana"},
            "text": text,
        }});
        let host = &host;
        let id = id.clone();
        async move {
            let (status, v) = host
                .webhook(
                    "telegram",
                    &id,
                    &[(SECRET_HEADER, TG_SECRET)],
                    body.to_string().into_bytes(),
                )
                .await;
            assert_eq!(status, 202, "{v}");
            let run = host.wait_for_run(v["workItemId"].as_str().unwrap()).await;
            assert_eq!(run["delivery"]["status"], "delivered", "{run}");
        }
    };
    let conversation = |i: usize| -> Vec<(String, String)> {
        model.requests.lock().unwrap()[i]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .skip(1) // the system prompt
            .map(|m| {
                (
                    m["role"].as_str().unwrap().to_string(),
                    m["content"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    say(1, 88123, "my name is Ana").await;
    say(2, 88123, "I work on payments").await;
    // Another chat is another session.
    say(3, 99001, "unrelated").await;
    say(4, 88123, "what do you know about me?").await;
    assert_eq!(conversation(2), pairs(&[("user", "unrelated")]));
    assert_eq!(
        conversation(3),
        pairs(&[
            ("user", "my name is Ana"),
            ("assistant", "answer 1"),
            ("user", "I work on payments"),
            ("assistant", "answer 2"),
            ("user", "what do you know about me?"),
        ])
    );
    // `/clear` is answered without the model; the next message starts afresh.
    say(5, 88123, "/clear").await;
    assert_eq!(model.count(), 4, "the model is not called for /clear");
    let sends = api.calls_to("/sendMessage");
    assert_eq!(
        sends.last().unwrap().body["text"],
        nitejar_core::limits::CLEAR_REPLY
    );
    say(6, 88123, "who am I?").await;
    assert_eq!(conversation(4), pairs(&[("user", "who am I?")]));
    host.stop().await;
}
