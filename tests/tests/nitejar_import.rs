//! `nitejar import nitejar` end to end (issue 15, spec §20): a Nitejar database built as Nitejar
//! stores it (`tests/fixtures/nitejar/schema.sql`; secrets encrypted by Node's crypto as
//! Nitejar does, `tests/fixtures/nitejar/secrets.json`, with the key in its 44-character
//! base64 form), imported through the admin API and the CLI. Then the old webhook URLs answer
//! signed Telegram and GitHub deliveries, and the runs reply through local stand-ins of both
//! platforms; a redelivery of an imported idempotency key creates nothing; a second import
//! changes nothing; the source is never written.

use axum::http::Method;
use nitejar_tests::platforms::PlatformApi;
use nitejar_tests::{HostOptions, TestHost};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

const TG_TOKEN: &str = "123456789:AAEhBOweik9ai3Fs2yZ-nitejarTestToken";
const TG_SECRET: &str = "tg-webhook-secret-token-9";
const GH_SECRET: &str = "gh-webhook-secret-0123456789";
const GH_PAT: &str = "ghp_patSecretValue0123456789abcdef";
const GH_APP_ID: u64 = 4242;
/// Ids as Nitejar made them (uuids).
const TG_ID: &str = "6f1c2a9e-3b7d-4e21-9a0c-5d8e7f6a1b01";
const GH_ID: &str = "6f1c2a9e-3b7d-4e21-9a0c-5d8e7f6a1b02";
const PLAIN_ID: &str = "6f1c2a9e-3b7d-4e21-9a0c-5d8e7f6a1b03";
const SLACK_ID: &str = "6f1c2a9e-3b7d-4e21-9a0c-5d8e7f6a1b04";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn secrets() -> Value {
    let text = std::fs::read_to_string(repo_root().join("tests/fixtures/nitejar/secrets.json"))
        .expect("secrets fixture");
    serde_json::from_str(&text).unwrap()
}

async fn exec(db: &Path, sql: &str, binds: &[&str]) {
    use sqlx::ConnectOptions;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .connect()
        .await
        .unwrap();
    if binds.is_empty() {
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    } else {
        let mut q = sqlx::query(sql);
        for b in binds {
            q = q.bind(*b);
        }
        q.execute(&mut conn).await.unwrap();
    }
}

/// The Nitejar database: two built-in instances with `enc:` secrets, one Telegram instance
/// stored without a key (plaintext token), a third-party Slack plugin with an instance,
/// an agent assignment, work items with their idempotency keys, and a key whose work item is
/// gone.
async fn nitejar_db(dir: &Path) -> PathBuf {
    let db = dir.join("nitejar.sqlite");
    let schema =
        std::fs::read_to_string(repo_root().join("tests/fixtures/nitejar/schema.sql")).unwrap();
    exec(&db, &schema, &[]).await;
    let s = secrets();
    let tg = json!({
        "botToken": s["telegramBotToken"], "webhookSecret": s["telegramWebhookSecret"],
        "allowedChatIds": [-1001748203311i64, 88123], "useMessageThreads": true
    });
    // As Nitejar's GitHub App setup flow stores it (and `apiBaseUrl` unknown to Nitejar: kept).
    let key = std::fs::read_to_string(repo_root().join("tests/fixtures/github-app-test-key.pem"))
        .unwrap();
    assert!(!key.is_empty());
    let gh = json!({
        "appId": GH_APP_ID.to_string(), "appSlug": "acme-nitejar", "clientId": "Iv1.0123456789abcdef",
        "clientSecret": s["githubClientSecret"], "privateKey": s["githubPrivateKey"],
        "webhookSecret": s["githubWebhookSecret"], "manifestPending": false,
        "permissions": {"preset": "robust"}, "commentPolicy": "mentions"
    });
    let plain = json!({ "botToken": TG_TOKEN });
    let slack = json!({ "signingSecret": "enc:AAAA", "channel": "#ops" });
    for (id, plugin, name, config, created) in [
        (
            TG_ID,
            "builtin.telegram",
            "Ops bot",
            tg.to_string(),
            "1763000000",
        ),
        (
            GH_ID,
            "builtin.github",
            "acme/widgets",
            gh.to_string(),
            "1763000100",
        ),
        (
            PLAIN_ID,
            "builtin.telegram",
            "Old bot",
            plain.to_string(),
            "1763000200",
        ),
        (
            SLACK_ID,
            "com.acme.slack",
            "Slack",
            slack.to_string(),
            "1763000300",
        ),
    ] {
        exec(
            &db,
            "INSERT INTO plugin_instances (id, plugin_id, name, config_json, scope, enabled,
               created_at, updated_at) VALUES (?, ?, ?, ?, 'global', 1, ?, ?)",
            &[id, plugin, name, &config, created, created],
        )
        .await;
    }
    for (id, name, kind, trust, source_ref) in [
        ("builtin.telegram", "Telegram", "builtin", "builtin", ""),
        ("builtin.github", "GitHub", "builtin", "builtin", ""),
        // A name a terminal would interpret (the CLI must show it escaped).
        (
            "com.acme.slack",
            "Slack \u{1b}[2J for Nitejar",
            "npm",
            "untrusted",
            "@acme/nitejar-slack",
        ),
    ] {
        exec(
            &db,
            "INSERT INTO plugins (id, name, enabled, trust_level, source_kind, source_ref,
               current_version, manifest_json, installed_at, updated_at, last_loaded_at)
             VALUES (?, ?, 1, ?, ?, NULLIF(?, ''), '1.4.2', '{}', 1763000000, 1763000000,
               1763000000123)",
            &[id, name, trust, kind, source_ref],
        )
        .await;
    }
    exec(
        &db,
        "INSERT INTO agent_plugin_instances (agent_id, plugin_instance_id, policy_json, created_at)
         VALUES ('agent-nitejar-1', ?, '{}', 1763000000)",
        &[TG_ID],
    )
    .await;
    let items = [
        (
            "wi-tg-1",
            TG_ID,
            "telegram:-1001748203311",
            "telegram",
            "telegram:-1001748203311:1893",
            "DONE",
            "@nitejar_bot can you summarize the deploy failures from last night?",
            json!({"body": "@nitejar_bot can you summarize the deploy failures from last night?", "source": "telegram", "chatId": -1001748203311i64}),
            "telegram:730918401",
        ),
        (
            "wi-gh-1",
            GH_ID,
            "acme/widgets#issue:412",
            "github",
            "acme/widgets#issue:412#comment:1",
            "FAILED",
            "[acme/widgets#412] Import fails",
            json!({"body": "@nitejar why?", "source": "github"}),
            "github:d-imported",
        ),
        (
            "wi-slack-1",
            SLACK_ID,
            "slack:C1",
            "slack",
            "slack:C1:1",
            "DONE",
            "hello",
            json!({"body": "hello"}),
            "slack:ev-1",
        ),
    ];
    for (id, inst, session, src, source_ref, status, title, payload, key) in items {
        exec(
            &db,
            "INSERT INTO work_items (id, plugin_instance_id, session_key, source, source_ref,
               status, title, payload, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1763001000, 1763001060)",
            &[
                id,
                inst,
                session,
                src,
                source_ref,
                status,
                title,
                &payload.to_string(),
            ],
        )
        .await;
        exec(
            &db,
            "INSERT INTO idempotency_keys (key, work_item_id, created_at) VALUES (?, ?, 1763001000)",
            &[key, id],
        )
        .await;
    }
    exec(
        &db,
        "INSERT INTO idempotency_keys (key, work_item_id, created_at)
         VALUES ('telegram:1', 'wi-purged', 1763000000)",
        &[],
    )
    .await;
    for (id, slug, kind, plugin, content) in [
        (
            "sk-1",
            "escalation",
            "admin",
            "",
            "Page the on-call engineer, then post in #ops.",
        ),
        (
            "sk-2",
            "slack-etiquette",
            "plugin",
            "com.acme.slack",
            "Thread replies in Slack.",
        ),
    ] {
        exec(
            &db,
            "INSERT INTO skills (id, name, slug, description, category, source_kind, plugin_id,
               content, is_directory, enabled, tags_json, created_at, updated_at)
             VALUES (?, ?, ?, 'How we escalate', 'ops', ?, NULLIF(?, ''), ?, 1, 1,
               '[\"ops\"]', 1763000000, 1763000000)",
            &[id, slug, slug, kind, plugin, content],
        )
        .await;
    }
    for (id, path, content) in [
        ("sf-1", "contacts/oncall.md", "Primary: +1 555 0100"),
        ("sf-2", "../../etc/cron.d/evil", "* * * * * root sh"),
    ] {
        exec(
            &db,
            "INSERT INTO skill_files (id, skill_id, relative_path, content, content_type,
               size_bytes, created_at, updated_at)
             VALUES (?, 'sk-1', ?, ?, 'text/markdown', 20, 1763000000, 1763000000)",
            &[id, path, content],
        )
        .await;
    }
    for (id, scope, scope_id, enabled) in [
        ("sa-1", "global", "", "1"),
        ("sa-2", "agent", "agent-nitejar-1", "1"),
        ("sa-3", "team", "team-7", "1"),
        ("sa-4", "global", "", "0"),
    ] {
        exec(
            &db,
            "INSERT INTO skill_assignments (id, skill_id, skill_slug, scope, scope_id, priority,
               auto_inject, enabled, created_at, updated_at)
             VALUES (?, 'sk-1', 'escalation', ?, NULLIF(?, ''), 0, 1, ?, 1763000000, 1763000000)",
            &[id, scope, scope_id, enabled],
        )
        .await;
    }
    exec(
        &db,
        "INSERT INTO agents (id, handle, name, created_at, updated_at)
         VALUES ('agent-nitejar-1', 'ops', 'Ops', 1, 1)",
        &[],
    )
    .await;
    db
}

/// Every file of the source database, hashed (it must never change).
fn fingerprint(db: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for suffix in ["", "-wal"] {
        let path = PathBuf::from(format!("{}{suffix}", db.display()));
        if let Ok(bytes) = std::fs::read(&path) {
            out.push((suffix.to_string(), hex::encode(Sha256::digest(&bytes))));
        }
    }
    out
}

fn config_checksum(config: &str) -> String {
    hex::encode(Sha256::digest(config.as_bytes()))
}

async fn source_configs(db: &Path) -> Vec<(String, String)> {
    use sqlx::ConnectOptions;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .read_only(true)
        .connect()
        .await
        .unwrap();
    sqlx::query_as("SELECT id, config_json FROM plugin_instances ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

fn row<'a>(report: &'a Value, table: &str, id: &str) -> &'a Value {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["table"] == table && r["id"] == id)
        .unwrap_or_else(|| panic!("no {table} row {id} in {report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nitejar_database_is_imported_with_nothing_lost_and_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let db = nitejar_db(dir.path()).await;
    let source = db.to_string_lossy().to_string();
    let before_configs = source_configs(&db).await;
    let tg_api = PlatformApi::telegram(TG_TOKEN).await;
    let key = std::fs::read_to_string(repo_root().join("tests/fixtures/github-app-test-key.pem"))
        .unwrap();
    let gh_api = PlatformApi::github(GH_APP_ID, &key, GH_PAT).await;
    let host = TestHost::start_with(HostOptions {
        overrides: [
            ("api.telegram.org".to_string(), tg_api.target()),
            ("api.github.com".to_string(), gh_api.target()),
        ]
        .into(),
        encryption_key: Some(secrets()["encryptionKey"].as_str().unwrap().to_string()),
        ..Default::default()
    })
    .await;
    let fingerprint_before = fingerprint(&db);

    // A dry run writes nothing and says what would happen.
    let dry = host
        .admin_json(
            Method::POST,
            "/import/nitejar",
            Some(json!({"from": source, "dryRun": true})),
            200,
        )
        .await;
    assert_eq!(dry["dryRun"], true);
    assert_eq!(
        dry["instances"],
        json!({"read": 4, "created": 3, "unchanged": 0, "skipped": 1})
    );
    assert_eq!(dry["workItems"]["created"], 2, "{dry}");
    let list = host.admin_json(Method::GET, "/instances", None, 200).await;
    assert_eq!(list["instances"], json!([]), "the dry run wrote nothing");

    let report = host
        .admin_json(
            Method::POST,
            "/import/nitejar",
            Some(json!({"from": source})),
            200,
        )
        .await;
    assert_eq!(
        report["instances"],
        json!({"read": 4, "created": 3, "unchanged": 0, "skipped": 1}),
        "{report}"
    );
    assert_eq!(
        report["workItems"],
        json!({"read": 3, "created": 2, "unchanged": 0, "skipped": 1})
    );
    assert_eq!(
        report["idempotencyKeys"],
        json!({"read": 4, "created": 2, "unchanged": 0, "skipped": 2})
    );
    // The third-party plugin is named, with what replaces it; its instance is not faked.
    let third = &report["thirdPartyPlugins"];
    assert_eq!(third.as_array().unwrap().len(), 1, "{third}");
    assert_eq!(third[0]["id"], "com.acme.slack");
    assert_eq!(third[0]["sourceRef"], "@acme/nitejar-slack");
    assert_eq!(third[0]["instances"], 1);
    assert!(
        third[0]["replacement"]
            .as_str()
            .unwrap()
            .contains("JavaScript"),
        "{third}"
    );
    let slack = row(&report, "plugin_instances", SLACK_ID);
    assert_eq!(slack["action"], "skipped");
    assert!(
        slack["reason"].as_str().unwrap().contains("`slack`"),
        "{slack}"
    );
    // Agents are not imported: the assignment says so.
    let assignment = row(
        &report,
        "agent_plugin_instances",
        &format!("agent-nitejar-1/{TG_ID}"),
    );
    assert_eq!(assignment["action"], "skipped");
    // The plaintext token was encrypted, and the report says so.
    let plain = row(&report, "plugin_instances", PLAIN_ID);
    assert!(
        plain["reason"]
            .as_str()
            .unwrap()
            .contains("plaintext `botToken` encrypted"),
        "{plain}"
    );

    // Skills: admin skills with their files (never a path outside the skill).
    assert_eq!(
        report["skills"],
        json!({"read": 2, "created": 2, "unchanged": 0, "skipped": 0})
    );
    let skill = host
        .admin_json(Method::GET, "/skills/admin:sk-1", None, 200)
        .await;
    assert_eq!(skill["name"], "escalation");
    assert_eq!(skill["source"], "admin");
    assert_eq!(skill["files"], json!(["contacts/oncall.md"]), "{skill}");
    assert!(
        row(&report, "skills", "sk-1")["reason"]
            .as_str()
            .unwrap()
            .contains("not a plain relative path")
    );
    assert!(
        row(&report, "skills", "sk-2")["reason"]
            .as_str()
            .unwrap()
            .contains("com.acme.slack")
    );
    assert_eq!(
        report["skillAssignments"],
        json!({"read": 4, "created": 1, "unchanged": 0, "skipped": 3})
    );
    assert_eq!(
        skill["assignments"],
        json!([{"scope": "global", "ref": ""}]),
        "{skill}"
    );

    // Config blobs byte for byte (checksums), except the plaintext one, now encrypted.
    for (id, config) in &before_configs {
        if id == SLACK_ID {
            continue;
        }
        let here = host.app.store.get_instance(id).await.unwrap().unwrap();
        if id == PLAIN_ID {
            assert!(!here.config_json.contains(TG_TOKEN), "encrypted at rest");
            let v: Value = serde_json::from_str(&here.config_json).unwrap();
            assert!(v["botToken"].as_str().unwrap().starts_with("v1:"));
            continue;
        }
        assert_eq!(
            config_checksum(&here.config_json),
            config_checksum(config),
            "{id}: config_json byte for byte"
        );
        assert!(here.enabled, "{id}");
    }
    let gh_row = host.app.store.get_instance(GH_ID).await.unwrap().unwrap();
    assert_eq!(gh_row.integration_type, "github");
    assert_eq!(gh_row.created_at, 1_763_000_100_000);
    // The API shows the same webhook URL Nitejar had, secrets redacted.
    let tg = host
        .admin_json(Method::GET, &format!("/instances/{TG_ID}"), None, 200)
        .await;
    assert_eq!(
        tg["webhookUrl"],
        format!("/api/webhooks/plugins/telegram/{TG_ID}")
    );
    assert_eq!(tg["config"]["botToken"], "********");

    // A redelivery of an imported update creates nothing; a new one runs and replies.
    let tg_hook = |file: &str| {
        let body = nitejar_tests::webhook_fixture("telegram", file);
        let host = &host;
        async move {
            host.webhook(
                "telegram",
                TG_ID,
                &[("x-telegram-bot-api-secret-token", TG_SECRET)],
                body,
            )
            .await
        }
    };
    let (status, v) = tg_hook("group-text.json").await;
    assert_eq!((status, &v["duplicate"]), (200, &json!(true)), "{v}");
    assert_eq!(v["workItemId"], "wi-tg-1");
    let (status, v) = tg_hook("private-command.json").await;
    assert_eq!(status, 202, "{v}");
    let run = host.wait_for_run(v["workItemId"].as_str().unwrap()).await;
    assert_eq!(run["delivery"]["status"], "delivered", "{run}");
    assert_eq!(tg_api.calls_to("/sendMessage").len(), 1);
    // The imported history shows, never run.
    let imported = host.work_item("wi-tg-1").await;
    assert_eq!(imported["status"], "done");
    assert_eq!(imported["sessionKey"], "telegram:-1001748203311");

    let gh_hook = |delivery: &'static str| {
        let body = nitejar_tests::webhook_fixture("github", "issue_comment.created.json");
        let sig = nitejar_tests::sign(GH_SECRET, &body);
        let host = &host;
        async move {
            host.webhook(
                "github",
                GH_ID,
                &[
                    ("x-github-event", "issue_comment"),
                    ("x-github-delivery", delivery),
                    ("x-hub-signature-256", &sig),
                    ("content-type", "application/json"),
                ],
                body,
            )
            .await
        }
    };
    let (status, v) = gh_hook("d-imported").await;
    assert_eq!((status, &v["workItemId"]), (200, &json!("wi-gh-1")), "{v}");
    let (status, v) = gh_hook("d-after-the-move").await;
    assert_eq!(status, 202, "{v}");
    let run = host.wait_for_run(v["workItemId"].as_str().unwrap()).await;
    assert_eq!(run["delivery"]["status"], "delivered", "{run}");
    assert_eq!(
        gh_api
            .calls_to("/repos/acme/widgets/issues/412/comments")
            .iter()
            .filter(|c| c.method == "POST")
            .count(),
        1,
        "replied as the GitHub App with the imported enc: private key"
    );

    // A second import changes nothing.
    let again = host
        .admin_json(
            Method::POST,
            "/import/nitejar",
            Some(json!({"from": source})),
            200,
        )
        .await;
    for kind in [
        "instances",
        "workItems",
        "idempotencyKeys",
        "skills",
        "skillAssignments",
    ] {
        assert_eq!(again[kind]["created"], 0, "{kind}: {again}");
    }
    assert_eq!(again["instances"]["unchanged"], 3);
    assert_eq!(again["workItems"]["unchanged"], 2);

    // The CLI runs the same operation (a dry run here) and prints the report as tables,
    // source strings escaped.
    let (code, out) = nitejar_tests::cli(
        &host,
        &["import", "nitejar", "--from", &source, "--dry-run"],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("would import from "), "{out}");
    assert!(
        out.contains("com.acme.slack") && out.contains("\\u{1b}[2J"),
        "{out}"
    );
    assert!(
        !out.contains('\u{1b}'),
        "no raw escape reaches the terminal: {out}"
    );

    // The source was only read.
    assert_eq!(
        fingerprint(&db),
        fingerprint_before,
        "the source is untouched"
    );
    assert_eq!(source_configs(&db).await, before_configs);

    // Bad sources are the client's mistake, named; nothing panics.
    for (from, needle) in [
        ("/nonexistent/nitejar.sqlite", "not a file"),
        ("postgres://nitejar@localhost/nitejar", "PostgreSQL"),
    ] {
        let v = host
            .admin_json(
                Method::POST,
                "/import/nitejar",
                Some(json!({"from": from})),
                400,
            )
            .await;
        assert!(
            v["error"]["message"].as_str().unwrap().contains(needle),
            "{v}"
        );
    }
    let not_sqlite = dir.path().join("notes.txt");
    std::fs::write(&not_sqlite, "hello").unwrap();
    let v = host
        .admin_json(
            Method::POST,
            "/import/nitejar",
            Some(json!({"from": not_sqlite})),
            400,
        )
        .await;
    assert_eq!(v["error"]["code"], "bad_source", "{v}");
    host.stop().await;
}
