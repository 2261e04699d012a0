//! Skills: repository, plugin and admin skills in one index; scopes; precedence; plugin
//! upgrade, rollback and uninstall; and `use_skill` in an agent run on the offline model.

use nitejar_tests::{HostOptions, TestHost, guest_package, sign};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::Path;

const PLUGIN: &str = "test.skills";
const CHECKLIST: &str = "plugin:test.skills:deploy-checklist";
const TRIAGE: &str = "plugin:test.skills:triage";
const SECRET: &str = "a-signing-secret-123";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// The skills test package at `version`, its checklist file saying `marker`.
fn skills_package(version: &str, marker: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&guest_package("skills"), dir.path());
    let mpath = dir.path().join("nitejar.plugin.json");
    let mut m: Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    m["version"] = json!(version);
    std::fs::write(&mpath, m.to_string()).unwrap();
    std::fs::write(
        dir.path().join("skills/deploy-checklist.md"),
        format!("# Deploy checklist ({marker})\n\n1. Check CI.\n"),
    )
    .unwrap();
    dir
}

/// A data directory with one repository skill (and a supporting file).
fn data_with_repo_skill(name: &str) -> tempfile::TempDir {
    let data = tempfile::tempdir().unwrap();
    let d = data.path().join("skills").join(name);
    std::fs::create_dir_all(d.join("reference")).unwrap();
    std::fs::write(
        d.join("SKILL.md"),
        format!("---\nname: {name}\ndescription: Notes for deploys\n---\n\n# {name}\nRoll out region by region."),
    )
    .unwrap();
    std::fs::write(d.join("reference/regions.md"), "eu, us, ap").unwrap();
    data
}

async fn post(host: &TestHost, path: &str, body: Value, status: u16) -> Value {
    host.admin_json(Method::POST, path, Some(body), status)
        .await
}

async fn assign(host: &TestHost, skill: &str, scope: &str, r: &str, assigned: bool) {
    post(
        host,
        &format!("/skills/{skill}/assignments"),
        json!({ "scope": scope, "ref": r, "assigned": assigned }),
        200,
    )
    .await;
}

async fn resolved(host: &TestHost, agent: &str, instance: &str) -> Vec<String> {
    let v = host
        .admin_json(
            Method::GET,
            &format!("/agents/{agent}/skills?instance={instance}"),
            None,
            200,
        )
        .await;
    v["skills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["skillId"].as_str().unwrap().to_string())
        .collect()
}

async fn setup(data: tempfile::TempDir) -> (TestHost, String, String, String) {
    let host = TestHost::start_in(data, HostOptions::default()).await;
    host.install_and_enable(&guest_package("skills"), &[]).await;
    let instance = host
        .create_instance("webhook", json!({ "secret": SECRET }))
        .await;
    let agents = host.admin_json(Method::GET, "/agents", None, 200).await;
    let default = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["isDefault"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ops = post(
        &host,
        "/agents",
        json!({
            "name": "ops", "systemPrompt": "You run ops.", "team": "sre",
            "model": {"provider": "offline", "model": "nitejar-offline"}
        }),
        201,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    (host, instance, default, ops)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_source_resolves_and_scopes_include_and_exclude() {
    let (host, instance, default, ops) = setup(data_with_repo_skill("deploy-notes")).await;
    let admin = post(
        &host,
        "/skills",
        json!({ "name": "escalation", "description": "Who to page", "content": "Page the on-call." }),
        201,
    )
    .await["skillId"]
        .as_str()
        .unwrap()
        .to_string();
    let all = host.admin_json(Method::GET, "/skills", None, 200).await;
    let sources: Vec<(String, String)> = all["skills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["skillId"].as_str().unwrap().to_string(),
                s["source"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(sources.len(), 4, "{sources:?}");
    for (id, source) in [
        ("repo:deploy-notes", "repo"),
        (CHECKLIST, "plugin"),
        (TRIAGE, "plugin"),
        (admin.as_str(), "admin"),
    ] {
        assert!(
            sources.contains(&(id.to_string(), source.to_string())),
            "{id}"
        );
    }
    let repo = host
        .admin_json(Method::GET, "/skills/repo:deploy-notes", None, 200)
        .await;
    assert_eq!(repo["files"], json!(["reference/regions.md"]));
    assert!(
        repo["content"]
            .as_str()
            .unwrap()
            .contains("region by region")
    );
    let file_skill = host
        .admin_json(Method::GET, &format!("/skills/{CHECKLIST}"), None, 200)
        .await;
    assert!(
        file_skill["content"].as_str().unwrap().contains("(v1)"),
        "{file_skill}"
    );

    // Nothing assigned: nothing resolves.
    assert!(resolved(&host, &default, &instance).await.is_empty());
    assign(&host, "repo:deploy-notes", "global", "", true).await;
    assign(&host, CHECKLIST, "integration_type", "webhook", true).await;
    assign(&host, TRIAGE, "team", "sre", true).await;
    assign(&host, &admin, "agent", &ops, true).await;
    // Deterministic order: by name.
    assert_eq!(
        resolved(&host, &default, &instance).await,
        [CHECKLIST, "repo:deploy-notes"]
    );
    assert_eq!(
        resolved(&host, &ops, &instance).await,
        [CHECKLIST, "repo:deploy-notes", admin.as_str(), TRIAGE]
    );
    // Another integration type, team or agent does not reach them.
    assign(&host, CHECKLIST, "integration_type", "webhook", false).await;
    assign(&host, CHECKLIST, "integration_type", "telegram", true).await;
    assign(&host, TRIAGE, "team", "sre", false).await;
    assign(&host, TRIAGE, "team", "other-team", true).await;
    assert_eq!(
        resolved(&host, &ops, &instance).await,
        ["repo:deploy-notes", admin.as_str()]
    );
    // Disabled skills and a disabled plugin's skills are not offered.
    host.admin_json(
        Method::PATCH,
        "/skills/repo:deploy-notes",
        Some(json!({ "enabled": false })),
        200,
    )
    .await;
    assign(&host, CHECKLIST, "global", "", true).await;
    assert_eq!(
        resolved(&host, &ops, &instance).await,
        [CHECKLIST, admin.as_str()]
    );
    host.disable(PLUGIN).await;
    assert_eq!(resolved(&host, &ops, &instance).await, [admin.as_str()]);
    // Filters of the listing.
    let v = host
        .admin_json(Method::GET, "/skills?source=plugin", None, 200)
        .await;
    assert_eq!(v["skills"].as_array().unwrap().len(), 2);
    let v = host
        .admin_json(Method::GET, "/skills?scope=team&ref=other-team", None, 200)
        .await;
    assert_eq!(v["skills"][0]["skillId"], TRIAGE);
    // Bad input is a 4xx.
    post(
        &host,
        &format!("/skills/{TRIAGE}/assignments"),
        json!({"scope": "planet", "ref": "x"}),
        400,
    )
    .await;
    post(
        &host,
        &format!("/skills/{TRIAGE}/assignments"),
        json!({"scope": "global", "ref": "x"}),
        400,
    )
    .await;
    post(
        &host,
        &format!("/skills/{TRIAGE}/assignments"),
        json!({"scope": "agent", "ref": "nobody"}),
        404,
    )
    .await;
    post(
        &host,
        "/skills",
        json!({"name": "Bad Name", "content": "x"}),
        400,
    )
    .await;
    post(
        &host,
        "/skills",
        json!({"name": "escalation", "content": "x"}),
        409,
    )
    .await;
    host.admin_json(
        Method::PATCH,
        &format!("/skills/{TRIAGE}"),
        Some(json!({"content": "mine"})),
        409,
    )
    .await;
    host.stop().await;
}

/// Admin > repo > plugin when names collide; the loser is listed with `shadowedBy`, its
/// registration receipt says so, and it stays reachable by id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_collisions_follow_the_documented_precedence() {
    let (host, instance, default, _) = setup(data_with_repo_skill("deploy-checklist")).await;
    assign(&host, CHECKLIST, "global", "", true).await;
    assign(&host, "repo:deploy-checklist", "global", "", true).await;
    assert_eq!(
        resolved(&host, &default, &instance).await,
        ["repo:deploy-checklist"],
        "repo beats plugin"
    );
    let p = host
        .admin_json(Method::GET, &format!("/skills/{CHECKLIST}"), None, 200)
        .await;
    assert_eq!(p["shadowedBy"], "repo:deploy-checklist");
    let admin = post(
        &host,
        "/skills",
        json!({ "name": "deploy-checklist", "content": "The operator's own checklist." }),
        201,
    )
    .await["skillId"]
        .as_str()
        .unwrap()
        .to_string();
    assign(&host, &admin, "global", "", true).await;
    assert_eq!(resolved(&host, &default, &instance).await, [admin.as_str()]);
    // Re-registering the plugin cannot take the name: its receipt records the shadowing.
    host.disable(PLUGIN).await;
    host.admin_json(
        Method::POST,
        &format!("/plugins/{PLUGIN}/enable"),
        Some(json!({"consent": true})),
        200,
    )
    .await;
    let receipts = host.receipts(PLUGIN).await;
    let last = receipts
        .iter()
        .rev()
        .find(|r| r["kind"] == "skill" && r["detailJson"].as_str().unwrap().contains(CHECKLIST))
        .unwrap();
    let detail: Value = serde_json::from_str(last["detailJson"].as_str().unwrap()).unwrap();
    assert_eq!(detail["shadowedBy"], admin.as_str());
    assert_eq!(resolved(&host, &default, &instance).await, [admin.as_str()]);
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_upgrade_rollback_and_uninstall_follow_the_active_version() {
    let (host, instance, default, _) = setup(tempfile::tempdir().unwrap()).await;
    assign(&host, CHECKLIST, "global", "", true).await;
    let content = |v: Value| v["content"].as_str().unwrap().to_string();
    let path = format!("/skills/{CHECKLIST}");
    let get = || host.admin_json(Method::GET, &path, None, 200);
    assert!(content(get().await).contains("(v1)"));
    let v2 = skills_package("0.2.0", "v2");
    let up = post(
        &host,
        &format!("/plugins/{PLUGIN}/upgrade"),
        json!({"sourceKind": "local", "sourceRef": v2.path()}),
        200,
    )
    .await;
    assert_eq!(up["status"], "activated", "{up}");
    let s = get().await;
    assert!(content(s.clone()).contains("(v2)"), "{s}");
    assert_eq!(s["pluginVersion"], "0.2.0");
    assert_eq!(
        s["assignments"],
        json!([{"scope": "global", "ref": ""}]),
        "assignments kept"
    );
    post(
        &host,
        &format!("/plugins/{PLUGIN}/rollback"),
        json!({}),
        200,
    )
    .await;
    let s = get().await;
    assert!(content(s.clone()).contains("(v1)"), "{s}");
    assert_eq!(s["pluginVersion"], "0.1.0");
    assert_eq!(resolved(&host, &default, &instance).await, [CHECKLIST]);
    post(
        &host,
        &format!("/plugins/{PLUGIN}/uninstall"),
        json!({}),
        200,
    )
    .await;
    host.admin_json(Method::GET, &format!("/skills/{CHECKLIST}"), None, 404)
        .await;
    host.admin_json(Method::GET, &format!("/skills/{TRIAGE}"), None, 404)
        .await;
    let v = host
        .admin_json(Method::GET, "/skills?scope=global", None, 200)
        .await;
    assert_eq!(v["skills"], json!([]), "its assignments went with it");
    assert!(resolved(&host, &default, &instance).await.is_empty());
    host.stop().await;
}

/// End to end: the offline model calls `use_skill` for a plugin skill assigned to the run's
/// integration type; the run record shows the listing and the content it received.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_run_uses_a_plugin_skill() {
    let (host, instance, _, _) = setup(tempfile::tempdir().unwrap()).await;
    assign(&host, CHECKLIST, "integration_type", "webhook", true).await;
    let body = json!({
        "id": "evt-skill",
        "text": "/tool use_skill {\"skill\": \"deploy-checklist\"}"
    })
    .to_string()
    .into_bytes();
    let sig = sign(SECRET, &body);
    let (status, v) = host
        .webhook("webhook", &instance, &[("x-signature-256", &sig)], body)
        .await;
    assert_eq!(status, 202, "{v}");
    let run = host.wait_for_run(v["workItemId"].as_str().unwrap()).await;
    let steps = run["steps"].as_array().unwrap();
    let prompt = steps.iter().find(|s| s["kind"] == "prompt").unwrap();
    let system = prompt["detail"]["systemPrompt"].as_str().unwrap();
    assert!(
        system.contains("- deploy-checklist: Steps before a production deploy"),
        "{system}"
    );
    assert!(
        !system.contains("triage"),
        "unassigned skills are not listed"
    );
    let call = steps.iter().find(|s| s["kind"] == "tool_call").unwrap();
    assert_eq!(call["detail"]["tool"], "use_skill");
    assert_eq!(call["detail"]["isError"], false);
    let output = call["detail"]["output"].as_str().unwrap();
    assert!(
        output.contains(CHECKLIST) && output.contains("Deploy checklist (v1)"),
        "{output}"
    );
    let fin = steps.iter().find(|s| s["kind"] == "final").unwrap();
    assert!(
        fin["detail"]["content"]
            .as_str()
            .unwrap()
            .contains("Deploy checklist (v1)")
    );
    host.stop().await;
}
