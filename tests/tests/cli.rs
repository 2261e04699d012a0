//! The `nitejar` CLI against a running server: tables and `--json`, schema-driven instance
//! configs, consent, run view, and exit codes. The command functions are the binary's own
//! (`nitejar::cli::run`); one test also runs the built binary when it is present.

use clap::Parser;
use nitejar::cli::{ClientCommand, Connection};
use nitejar_tests::platforms::PlatformApi;
use nitejar_tests::{ADMIN_TOKEN, HostOptions, TestHost, chain_package, cli};
use serde_json::{Value, json};

const TG_TOKEN: &str = "123456789:AAEhBOweik9ai3Fs2yZ-nitejarCliToken";

/// The CLI's own argument parser (as in the binary), without `serve`, for the tests below
/// that build their own command lines.
#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    command: ClientCommand,
    #[command(flatten)]
    connection: Connection,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_instances_and_runs_from_the_cli() {
    let api = PlatformApi::telegram(TG_TOKEN).await;
    let host = TestHost::start_with(HostOptions {
        overrides: [("api.telegram.org".to_string(), api.target())].into(),
        ..Default::default()
    })
    .await;

    // Tables and JSON.
    let (code, out) = cli(&host, &["plugin", "list"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("ID"), "{out}");
    assert!(
        out.contains("builtin.telegram") && out.contains("builtin.github"),
        "{out}"
    );
    let (code, out) = cli(&host, &["--json", "plugin", "list"]).await;
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["plugins"].as_array().unwrap().len(),
        3,
        "the built-ins only: {v}"
    );
    let (code, out) = cli(&host, &["plugin", "show", "builtin.telegram"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("network:api.telegram.org") && out.contains("granted"),
        "{out}"
    );
    let (code, out) = cli(&host, &["plugin", "show", "no.such.plugin"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not installed"), "{out}");

    // Instruction budgets: shown, set and reset from the CLI; out of range is refused.
    assert!(
        out_has(
            &host,
            "builtin.telegram",
            "instructions: budget host defaults"
        )
        .await
    );
    let (code, out) = cli(
        &host,
        &[
            "plugin",
            "limits",
            "builtin.telegram",
            "--fuel-per-call",
            "7000000000",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("at most 7000000000 instructions per call"),
        "{out}"
    );
    assert!(
        out_has(
            &host,
            "builtin.telegram",
            "instructions: budget 7000000000 per call (operator)"
        )
        .await
    );
    let (code, out) = cli(
        &host,
        &[
            "plugin",
            "limits",
            "builtin.telegram",
            "--fuel-per-call",
            "0",
        ],
    )
    .await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("fuelPerCall must be between 1"), "{out}");
    let (code, out) = cli(
        &host,
        &["plugin", "limits", "builtin.telegram", "--default"],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out_has(
            &host,
            "builtin.telegram",
            "instructions: budget host defaults"
        )
        .await
    );

    // Fields come from the schema: required and secret flags, no per-type code.
    let (code, out) = cli(&host, &["instance", "types"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("telegram (Telegram, plugin builtin.telegram)"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("botToken") && l.contains("required,secret")),
        "{out}"
    );

    // Missing required field without a terminal: exit 1 naming it. Unknown field: exit 1.
    let (code, out) = cli(&host, &["instance", "create", "telegram", "--name", "bot"]).await;
    assert_eq!(code, 1);
    assert!(out.contains("missing required fields: botToken"), "{out}");
    let (code, out) = cli(
        &host,
        &[
            "instance",
            "create",
            "telegram",
            "--name",
            "bot",
            "--set",
            "colour=red",
        ],
    )
    .await;
    assert_eq!(code, 1, "{out}");
    let token_arg = format!("botToken={TG_TOKEN}");
    let (code, out) = cli(
        &host,
        &[
            "--json",
            "instance",
            "create",
            "telegram",
            "--name",
            "ops bot",
            "--set",
            &token_arg,
            "--set",
            "webhookSecret=cli-secret-1",
            "--set",
            "allowedChatIds=-1001748203311,42",
            "--set",
            "useMessageThreads=false",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let inst: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        inst["config"]["allowedChatIds"],
        json!([-1001748203311i64, 42])
    );
    assert_eq!(inst["config"]["useMessageThreads"], false);
    assert!(!out.contains(TG_TOKEN) && !out.contains("cli-secret-1"));
    let id = inst["id"].as_str().unwrap().to_string();
    let (code, out) = cli(&host, &["instance", "list"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains(&id) && out.contains("/api/webhooks/plugins/telegram/"),
        "{out}"
    );
    let (code, out) = cli(&host, &["instance", "test", &id]).await;
    assert_eq!((code, out.contains("connection ok")), (0, true), "{out}");
    let (code, out) = cli(
        &host,
        &[
            "instance",
            "update",
            &id,
            "--name",
            "renamed",
            "--unset",
            "allowedChatIds",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("renamed") && !out.contains("allowedChatIds"),
        "{out}"
    );

    // A run, seen from the CLI: steps, receipts in order, delivery.
    let (status, v) = host
        .webhook(
            "telegram",
            &id,
            &[("x-telegram-bot-api-secret-token", "cli-secret-1")],
            nitejar_tests::webhook_fixture("telegram", "group-text.json"),
        )
        .await;
    assert_eq!(status, 202, "{v}");
    let item = v["workItemId"].as_str().unwrap().to_string();
    host.wait_for_run(&item).await;
    let (code, out) = cli(&host, &["run", "show", &item]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("status: done"), "{out}");
    let ack = out.find("acknowledge-receipt").expect("ack receipt");
    let post = out.find("post-response").expect("post receipt");
    assert!(ack < post, "{out}");
    assert!(out.contains("DELIVERY delivered"), "{out}");
    let (code, out) = cli(
        &host,
        &["plugin", "logs", "builtin.telegram", "--limit", "5"],
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 6, "{out}");

    // Disable, delete; a second delete is refused (exit 1).
    assert_eq!(cli(&host, &["instance", "disable", &id]).await.0, 0);
    assert_eq!(cli(&host, &["instance", "delete", &id]).await.0, 0);
    assert_eq!(cli(&host, &["instance", "delete", &id]).await.0, 1);
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_needs_consent_to_enable() {
    let host = TestHost::start().await;
    let pkg = chain_package(|_| {});
    let (code, out) = cli(&host, &["plugin", "install", pkg.path().to_str().unwrap()]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("installed test.chain"), "{out}");
    // Without a terminal and without --yes: exit 4, still disabled, nothing granted.
    let (code, out) = cli(&host, &["plugin", "enable", "test.chain"]).await;
    assert_eq!(code, 4, "{out}");
    let p = host
        .admin_json(reqwest::Method::GET, "/plugins/test.chain", None, 200)
        .await;
    assert_eq!(p["enabled"], false);
    assert!(
        p["disclosures"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["acknowledged"] == false)
    );
    let (code, out) = cli(&host, &["plugin", "enable", "test.chain", "--yes"]).await;
    assert_eq!(code, 0, "{out}");
    let p = host
        .admin_json(reqwest::Method::GET, "/plugins/test.chain", None, 200)
        .await;
    assert_eq!(p["enabled"], true);
    assert!(
        p["disclosures"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["acknowledged"] == true)
    );
    // Revoke withdraws a grant (and the loaded plugin is reloaded without it); an undeclared
    // permission is refused.
    let (code, out) = cli(
        &host,
        &["plugin", "revoke", "test.chain", "network:http://chat.test"],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("revoked 1 permission(s) of test.chain"),
        "{out}"
    );
    let p = host
        .admin_json(reqwest::Method::GET, "/plugins/test.chain", None, 200)
        .await;
    assert_eq!(p["disclosures"][0]["acknowledged"], false, "{p}");
    let (code, _) = cli(
        &host,
        &["plugin", "revoke", "test.chain", "network:http://evil"],
    )
    .await;
    assert_ne!(code, 0);
    assert_eq!(cli(&host, &["plugin", "disable", "test.chain"]).await.0, 0);

    // An uploaded .wasm package (manifest in a custom section is not needed here: a bad file
    // is refused with exit 1 and a reason).
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bad.path(), b"not a package").unwrap();
    let (code, out) = cli(&host, &["plugin", "install", bad.path().to_str().unwrap()]).await;
    assert_eq!(code, 1, "{out}");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_rollback_uninstall_from_the_cli() {
    let host = TestHost::start().await;
    let v1 = chain_package(|_| {});
    let v2 = chain_package(|m| {
        m["version"] = json!("0.2.0");
        m["permissions"]["network"] = json!(["http://chat.test", "http://extra.test"]);
    });
    assert_eq!(
        cli(&host, &["plugin", "install", v1.path().to_str().unwrap()])
            .await
            .0,
        0
    );
    assert_eq!(
        cli(&host, &["plugin", "enable", "test.chain", "--yes"])
            .await
            .0,
        0
    );
    let (code, out) = cli(&host, &["plugin", "doctor"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("test.chain") && l.ends_with("healthy")),
        "{out}"
    );
    assert_eq!(cli(&host, &["plugin", "doctor", "no.such"]).await.0, 1);
    // Adds a permission: without consent it waits (exit 4), with --yes it is activated.
    let (code, out) = cli(
        &host,
        &[
            "plugin",
            "upgrade",
            "test.chain",
            v2.path().to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("waits for consent"), "{out}");
    let (code, out) = cli(&host, &["plugin", "versions", "test.chain"]).await;
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .any(|l| l.starts_with("0.2.0") && l.contains("pending consent")),
        "{out}"
    );
    let (code, out) = cli(
        &host,
        &[
            "plugin",
            "upgrade",
            "test.chain",
            v2.path().to_str().unwrap(),
            "--yes",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("0.1.0 -> 0.2.0: activated") && out.contains("+ network:http://extra.test"),
        "{out}"
    );
    let (code, out) = cli(&host, &["plugin", "rollback", "test.chain"]).await;
    assert_eq!((code, out.trim()), (0, "test.chain rolled back to 0.1.0"));
    assert_eq!(cli(&host, &["plugin", "rollback", "test.chain"]).await.0, 1);
    // Uninstall needs confirmation (or --yes).
    assert_eq!(
        cli(&host, &["plugin", "uninstall", "test.chain"]).await.0,
        4
    );
    let (code, out) = cli(
        &host,
        &[
            "plugin",
            "uninstall",
            "test.chain",
            "--purge-files",
            "--purge-data",
            "--yes",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(!host.app.config.plugins_dir.join("test.chain").exists());
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skills_from_the_cli() {
    let host = TestHost::start().await;
    let note = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(note.path(), "Page the on-call engineer.").unwrap();
    let content = format!("@{}", note.path().display());
    let (code, out) = cli(
        &host,
        &[
            "--json",
            "skill",
            "create",
            "--name",
            "escalation",
            "--description",
            "Who to page",
            "--content",
            &content,
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let id = serde_json::from_str::<Value>(&out).unwrap()["skillId"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, out) = cli(
        &host,
        &[
            "skill",
            "assign",
            &id,
            "--scope",
            "integration_type",
            "--ref",
            "telegram",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("assigned: integration_type telegram"), "{out}");
    let (code, out) = cli(
        &host,
        &[
            "skill",
            "list",
            "--scope",
            "integration_type",
            "--ref",
            "telegram",
        ],
    )
    .await;
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .any(|l| l.contains("escalation") && l.contains("integration_type:telegram")),
        "{out}"
    );
    let (code, out) = cli(&host, &["skill", "show", &id]).await;
    assert!(
        code == 0 && out.contains("Page the on-call engineer."),
        "{out}"
    );
    assert_eq!(cli(&host, &["skill", "disable", &id]).await.0, 0);
    assert_eq!(
        cli(
            &host,
            &[
                "skill",
                "unassign",
                &id,
                "--scope",
                "integration_type",
                "--ref",
                "telegram"
            ]
        )
        .await
        .0,
        0
    );
    assert_eq!(
        cli(&host, &["skill", "assign", &id, "--scope", "planet"])
            .await
            .0,
        1
    );
    let (code, out) = cli(&host, &["skill", "sync"]).await;
    assert_eq!((code, out.trim()), (0, "synced 0, removed 0"));
    assert_eq!(cli(&host, &["skill", "delete", &id]).await.0, 0);
    assert_eq!(cli(&host, &["skill", "show", &id]).await.0, 1);
    host.stop().await;
}

#[tokio::test]
async fn unreachable_server_and_bad_token_exit_codes() {
    let host = TestHost::start().await;
    let argv = [
        "nitejar",
        "--url",
        &host.base,
        "--token",
        "wrong-token-0123456789",
        "plugin",
        "list",
    ];
    let parsed = Args::try_parse_from(argv).unwrap();
    let mut out = Vec::new();
    assert_eq!(
        nitejar::cli::run(&parsed.connection, parsed.command, &mut out).await,
        1
    );
    let base = host.base.clone();
    host.stop().await;
    let argv = [
        "nitejar",
        "--url",
        &base,
        "--token",
        ADMIN_TOKEN,
        "plugin",
        "list",
    ];
    let parsed = Args::try_parse_from(argv).unwrap();
    let mut out = Vec::new();
    assert_eq!(
        nitejar::cli::run(&parsed.connection, parsed.command, &mut out).await,
        3
    );
}

/// Whether `plugin show <id>` prints `needle`.
async fn out_has(host: &TestHost, id: &str, needle: &str) -> bool {
    let (code, out) = cli(host, &["plugin", "show", id]).await;
    assert_eq!(code, 0, "{out}");
    out.contains(needle) || panic!("`plugin show {id}` lacks {needle:?}:\n{out}")
}
