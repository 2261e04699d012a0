//! `nitejar import nitejar` end to end (issue 15, spec §20): a Nitejar database built as Nitejar
//! stores it, on SQLite (`tests/fixtures/nitejar/schema.sql`) and on PostgreSQL
//! (`schema.postgres.sql`, a throwaway server), with secrets encrypted by Node's crypto as
//! Nitejar does (`tests/fixtures/nitejar/secrets.json`) and the host's key in two of Nitejar's
//! three forms (base64, 32 raw characters; hex is every other test's), imported through the
//! admin API and the CLI. Then the old webhook URLs answer
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

/// A SQL string literal.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The rows of the Nitejar database, as one SQL script for either backend (booleans 0/1 on
/// SQLite, TRUE/FALSE on PostgreSQL): two built-in instances with `enc:` secrets, one Telegram
/// instance stored without a key (plaintext token), a third-party Slack plugin with an
/// instance, an agent assignment, work items with their idempotency keys, a key whose work item
/// is gone, skills with files (one with a path that climbs out) and assignments of each scope.
fn nitejar_rows(postgres: bool) -> String {
    let b = |v: bool| match (postgres, v) {
        (true, true) => "TRUE",
        (true, false) => "FALSE",
        (false, true) => "1",
        (false, false) => "0",
    };
    let s = secrets();
    let tg = json!({
        "botToken": s["telegramBotToken"], "webhookSecret": s["telegramWebhookSecret"],
        "allowedChatIds": [-1001748203311i64, 88123], "useMessageThreads": true
    });
    // As Nitejar's GitHub App setup flow stores it.
    let gh = json!({
        "appId": GH_APP_ID.to_string(), "appSlug": "acme-nitejar", "clientId": "Iv1.0123456789abcdef",
        "clientSecret": s["githubClientSecret"], "privateKey": s["githubPrivateKey"],
        "webhookSecret": s["githubWebhookSecret"], "manifestPending": false,
        "permissions": {"preset": "robust"}, "commentPolicy": "mentions"
    });
    let plain = json!({ "botToken": TG_TOKEN });
    let slack = json!({ "signingSecret": "enc:AAAA", "channel": "#ops" });
    let mut sql = String::new();
    for (id, plugin, name, config, created) in [
        (
            TG_ID,
            "builtin.telegram",
            "Ops bot",
            tg.to_string(),
            1763000000,
        ),
        (
            GH_ID,
            "builtin.github",
            "acme/widgets",
            gh.to_string(),
            1763000100,
        ),
        (
            PLAIN_ID,
            "builtin.telegram",
            "Old bot",
            plain.to_string(),
            1763000200,
        ),
        (
            SLACK_ID,
            "com.acme.slack",
            "Slack",
            slack.to_string(),
            1763000300,
        ),
    ] {
        sql += &format!(
            "INSERT INTO plugin_instances (id, plugin_id, name, config_json, scope, enabled,
               created_at, updated_at) VALUES ({}, {}, {}, {}, 'global', {}, {created}, {created});\n",
            lit(id), lit(plugin), lit(name), lit(&config), b(true)
        );
    }
    for (id, name, kind, trust, source_ref) in [
        (
            "builtin.telegram",
            "Telegram",
            "builtin",
            "builtin",
            "NULL".to_string(),
        ),
        (
            "builtin.github",
            "GitHub",
            "builtin",
            "builtin",
            "NULL".to_string(),
        ),
        // A name a terminal would interpret (the CLI must show it escaped).
        (
            "com.acme.slack",
            "Slack \u{1b}[2J for Nitejar",
            "npm",
            "untrusted",
            lit("@acme/nitejar-slack"),
        ),
    ] {
        sql += &format!(
            "INSERT INTO plugins (id, name, enabled, trust_level, source_kind, source_ref,
               current_version, manifest_json, installed_at, updated_at, last_loaded_at)
             VALUES ({}, {}, {}, {}, {}, {source_ref}, '1.4.2', '{{}}', 1763000000, 1763000000,
               1763000000123);\n",
            lit(id),
            lit(name),
            b(true),
            lit(trust),
            lit(kind)
        );
    }
    sql += &format!(
        "INSERT INTO agent_plugin_instances (agent_id, plugin_instance_id, policy_json, created_at)
         VALUES ('agent-nitejar-1', {}, '{{}}', 1763000000);\n",
        lit(TG_ID)
    );
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
        sql += &format!(
            "INSERT INTO work_items (id, plugin_instance_id, session_key, source, source_ref,
               status, title, payload, created_at, updated_at)
             VALUES ({}, {}, {}, {}, {}, {}, {}, {}, 1763001000, 1763001060);
             INSERT INTO idempotency_keys (key, work_item_id, created_at)
             VALUES ({}, {}, 1763001000);\n",
            lit(id),
            lit(inst),
            lit(session),
            lit(src),
            lit(source_ref),
            lit(status),
            lit(title),
            lit(&payload.to_string()),
            lit(key),
            lit(id)
        );
    }
    sql += "INSERT INTO idempotency_keys (key, work_item_id, created_at)
            VALUES ('telegram:1', 'wi-purged', 1763000000);\n";
    for (id, slug, kind, plugin, content) in [
        (
            "sk-1",
            "escalation",
            "admin",
            "NULL",
            "Page the on-call engineer, then post in #ops.",
        ),
        (
            "sk-2",
            "slack-etiquette",
            "plugin",
            "'com.acme.slack'",
            "Thread replies in Slack.",
        ),
    ] {
        sql += &format!(
            "INSERT INTO skills (id, name, slug, description, category, source_kind, plugin_id,
               content, is_directory, enabled, tags_json, created_at, updated_at)
             VALUES ({}, {}, {}, 'How we escalate', 'ops', {}, {plugin}, {}, {}, {},
               '[\"ops\"]', 1763000000, 1763000000);\n",
            lit(id),
            lit(slug),
            lit(slug),
            lit(kind),
            lit(content),
            b(true),
            b(true)
        );
    }
    for (id, path, content) in [
        ("sf-1", "contacts/oncall.md", "Primary: +1 555 0100"),
        ("sf-2", "../../etc/cron.d/evil", "* * * * * root sh"),
    ] {
        sql += &format!(
            "INSERT INTO skill_files (id, skill_id, relative_path, content, content_type,
               size_bytes, created_at, updated_at)
             VALUES ({}, 'sk-1', {}, {}, 'text/markdown', 20, 1763000000, 1763000000);\n",
            lit(id),
            lit(path),
            lit(content)
        );
    }
    for (id, scope, scope_id, enabled) in [
        ("sa-1", "global", "NULL", true),
        ("sa-2", "agent", "'agent-nitejar-1'", true),
        ("sa-3", "team", "'team-7'", true),
        ("sa-4", "global", "NULL", false),
    ] {
        sql +=
            &format!(
            "INSERT INTO skill_assignments (id, skill_id, skill_slug, scope, scope_id, priority,
               auto_inject, enabled, created_at, updated_at)
             VALUES ({}, 'sk-1', 'escalation', {}, {scope_id}, 0, {}, {}, 1763000000,
               1763000000);\n",
            lit(id), lit(scope), b(true), b(enabled)
        );
    }
    sql += "INSERT INTO agents (id, handle, name, created_at, updated_at)
            VALUES ('agent-nitejar-1', 'ops', 'Ops', 1, 1);\n";
    sql
}

/// A Nitejar database to import from, and what proves it was only read.
#[allow(async_fn_in_trait)]
trait Source {
    /// What `--from` takes.
    fn from(&self) -> String;
    /// `(id, config_json)` of every instance row.
    async fn configs(&self) -> Vec<(String, String)>;
    /// Everything the source holds, hashed.
    async fn fingerprint(&self) -> Vec<String>;
}

/// A Nitejar SQLite file (WAL mode, as Nitejar runs it).
struct SqliteSource(PathBuf);

impl SqliteSource {
    async fn create(dir: &Path) -> SqliteSource {
        use sqlx::ConnectOptions;
        let db = dir.join("nitejar.sqlite");
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db)
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .connect()
            .await
            .unwrap();
        let schema =
            std::fs::read_to_string(repo_root().join("tests/fixtures/nitejar/schema.sql")).unwrap();
        sqlx::raw_sql(&schema).execute(&mut conn).await.unwrap();
        sqlx::raw_sql(&nitejar_rows(false))
            .execute(&mut conn)
            .await
            .unwrap();
        // Closed before anything reads the file: dropped, it would close on its own thread
        // later, and being the last connection, remove the write-ahead log then, between the
        // two fingerprints (a read-only connection leaves an empty one behind).
        use sqlx::Connection;
        conn.close().await.unwrap();
        SqliteSource(db)
    }
}

impl Source for SqliteSource {
    fn from(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }

    async fn configs(&self) -> Vec<(String, String)> {
        use sqlx::ConnectOptions;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&self.0)
            .read_only(true)
            .connect()
            .await
            .unwrap();
        sqlx::query_as("SELECT id, config_json FROM plugin_instances ORDER BY id")
            .fetch_all(&mut conn)
            .await
            .unwrap()
    }

    async fn fingerprint(&self) -> Vec<String> {
        ["", "-wal"]
            .iter()
            .filter_map(|suffix| std::fs::read(format!("{}{suffix}", self.0.display())).ok())
            .map(|bytes| hex::encode(Sha256::digest(&bytes)))
            .collect()
    }
}

/// A Nitejar PostgreSQL database on a throwaway server.
struct PostgresSource(nitejar_tests::postgres::TempPostgres);

impl PostgresSource {
    async fn create(pg: nitejar_tests::postgres::TempPostgres) -> PostgresSource {
        let pool = sqlx::PgPool::connect(&pg.url).await.unwrap();
        let schema =
            std::fs::read_to_string(repo_root().join("tests/fixtures/nitejar/schema.postgres.sql"))
                .unwrap();
        sqlx::raw_sql(&schema).execute(&pool).await.unwrap();
        sqlx::raw_sql(&nitejar_rows(true))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        PostgresSource(pg)
    }
}

impl Source for PostgresSource {
    fn from(&self) -> String {
        self.0.url.clone()
    }

    async fn configs(&self) -> Vec<(String, String)> {
        let pool = sqlx::PgPool::connect(&self.0.url).await.unwrap();
        let rows = sqlx::query_as("SELECT id, config_json FROM plugin_instances ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        rows
    }

    async fn fingerprint(&self) -> Vec<String> {
        let pool = sqlx::PgPool::connect(&self.0.url).await.unwrap();
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = 'public' ORDER BY 1",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let mut out = Vec::new();
        for t in tables {
            let rows: Vec<String> = sqlx::query_scalar(&format!(
                "SELECT row_to_json(x)::text FROM {t} x ORDER BY 1"
            ))
            .fetch_all(&pool)
            .await
            .unwrap();
            out.push(format!(
                "{t}: {}",
                hex::encode(Sha256::digest(rows.join("\n").as_bytes()))
            ));
        }
        pool.close().await;
        out
    }
}

fn config_checksum(config: &str) -> String {
    hex::encode(Sha256::digest(config.as_bytes()))
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
async fn a_nitejar_sqlite_database_is_imported_with_nothing_lost_and_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let src = SqliteSource::create(dir.path()).await;
    // ENCRYPTION_KEY in its 44-character base64 form.
    let host = import_and_check(&src, secrets()["encryptionKey"].as_str().unwrap()).await;

    // Bad sources are the client's mistake, named; nothing panics. (An empty `from` is 400
    // too, and a text file is not a database.)
    let not_sqlite = dir.path().join("notes.txt");
    std::fs::write(&not_sqlite, "hello").unwrap();
    for (from, needle) in [
        ("/nonexistent/nitejar.sqlite".to_string(), "not a file"),
        (
            "postgres://nitejar@127.0.0.1:1/nitejar".to_string(),
            "cannot connect to the PostgreSQL",
        ),
        (
            "postgres://nitejar@localhost:notaport/nitejar".to_string(),
            "not valid",
        ),
        (not_sqlite.to_string_lossy().into_owned(), "SQLite"),
        (" ".to_string(), "`from` is required"),
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
    host.stop().await;
}

/// The same database on PostgreSQL (booleans and bigints where SQLite has integers), on a
/// throwaway server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nitejar_postgres_database_is_imported_with_nothing_lost_and_nothing_twice() {
    let Some(pg) = nitejar_tests::postgres::TempPostgres::start() else {
        return;
    };
    let src = PostgresSource::create(pg).await;
    // The same key as 32 characters used as bytes (the hex form is the other tests' default).
    let host = import_and_check(&src, "nitejar-import-test-key-32-bytes").await;
    host.stop().await;
}

/// Imports `src` (dry run, import, second import, CLI dry run) and checks what carried over,
/// that the old webhook URLs answer and reply, that imported keys stop redeliveries, and that
/// the source was only read. Returns the host for more checks.
async fn import_and_check(src: &impl Source, encryption_key: &str) -> TestHost {
    let source = src.from();
    let before_configs = src.configs().await;
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
        encryption_key: Some(encryption_key.to_string()),
        ..Default::default()
    })
    .await;
    let fingerprint_before = src.fingerprint().await;

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
        src.fingerprint().await,
        fingerprint_before,
        "the source is untouched"
    );
    assert_eq!(src.configs().await, before_configs);
    host
}
