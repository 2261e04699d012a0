//! The OpenAPI document is served, every operation it lists is routed by the server (a request
//! to it never gets the router's own `unknown_route`/`method_not_allowed`), and real answers of
//! a running server, successes and errors, match the schemas it gives them.

use nitejar_tests::{ADMIN_TOKEN, TestHost};
use serde_json::Value;

/// The document a running host serves.
async fn served_document(host: &TestHost) -> Value {
    reqwest::get(format!("{}/api/openapi.json", host.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_routed() {
    let host = TestHost::start().await;
    let doc = served_document(&host).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, methods) in paths {
        for (method, op) in methods.as_object().unwrap() {
            operations += 1;
            assert!(op["summary"].as_str().is_some_and(|s| !s.is_empty()));
            // Every JSON body, asked or answered, has a real schema.
            let bodies = op["responses"]
                .as_object()
                .unwrap()
                .values()
                .chain(op.get("requestBody"));
            for b in bodies {
                if let Some(schema) = b["content"].get("application/json") {
                    let schema = &schema["schema"];
                    assert!(
                        schema.as_object().is_some_and(|o| !o.is_empty()),
                        "{method} {path}: a JSON body without a schema"
                    );
                }
            }
            let url = format!(
                "{}{}",
                host.base,
                path.split('/')
                    .map(|s| if s.starts_with('{') { "x" } else { s })
                    .collect::<Vec<_>>()
                    .join("/")
            );
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let mut req = host.client.request(m, &url).bearer_auth(ADMIN_TOKEN);
            if method != "get" && method != "delete" {
                req = req.header("content-type", "application/json").body("{}");
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let body = resp.text().await.unwrap();
            let unrouted = (status == 404 || status == 405)
                && (body.contains("\"unknown_route\"") || body.contains("\"method_not_allowed\""));
            assert!(!unrouted, "{method} {path} is not routed ({status})");
            assert!(status < 500, "{method} {path} -> {status}: {body}");
        }
    }
    assert!(operations >= 50, "{operations}");
    // What no operation serves answers in the documented error shape, so the check above can
    // tell a missing route from a handler's own 404.
    for (method, path, status, code) in [
        (
            reqwest::Method::GET,
            "/api/admin/nope",
            404,
            "unknown_route",
        ),
        (reqwest::Method::GET, "/nope", 404, "unknown_route"),
        (
            reqwest::Method::DELETE,
            "/api/admin/plugins",
            405,
            "method_not_allowed",
        ),
        (reqwest::Method::PUT, "/healthz", 405, "method_not_allowed"),
    ] {
        let resp = host
            .client
            .request(method, format!("{}{path}", host.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{path}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["code"], code, "{path}: {v}");
    }
    host.stop().await;
}

/// How `body`, the answer of `method path` with `status`, breaks the schema the document gives
/// that answer (the success schema, or the error schema for any other status).
fn violations(doc: &Value, method: &str, path: &str, status: u16, body: &Value) -> Vec<String> {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} is not documented");
    let responses = op["responses"].as_object().unwrap();
    let response = responses
        .get(&status.to_string())
        .unwrap_or_else(|| &responses["default"]);
    let schema = &response["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "{method} {path} {status}: no schema");
    let root = serde_json::json!({ "allOf": [schema], "components": doc["components"] });
    let validator = jsonschema::validator_for(&root).expect("the document's schema compiles");
    validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// Asserts that `body` matches its documented schema.
fn check(doc: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let errors = violations(doc, method, path, status, body);
    assert!(
        errors.is_empty(),
        "{method} {path} -> {status} does not match its schema: {errors:?}\n{body:#}"
    );
}

/// Real answers of a running server, validated against the document, for every typed
/// operation: success bodies and error bodies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_match_the_documented_schemas() {
    use reqwest::Method;
    let host = TestHost::start().await;
    host.install_and_enable(&nitejar_tests::guest_package("hooks"), &[])
        .await;
    let doc = served_document(&host).await;
    let call = async |method: Method, path: &str, body: Option<Value>| -> (u16, Value) {
        let mut req = host.admin(method, path);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap()
            },
        )
    };
    let id = "test.hostile";
    let source = serde_json::json!({
        "sourceKind": "local",
        "sourceRef": nitejar_tests::guest_package("hostile"),
    });
    let (s, v) = call(Method::POST, "/plugins/preview", Some(source.clone())).await;
    assert_eq!((s, &v["action"]), (200, &Value::from("install")), "{v}");
    check(&doc, "post", "/api/admin/plugins/preview", s, &v);
    let (s, v) = call(Method::POST, "/plugins/install", Some(source.clone())).await;
    assert_eq!(s, 201, "{v}");
    check(&doc, "post", "/api/admin/plugins/install", s, &v);
    let (s, v) = call(Method::POST, "/plugins/preview", Some(source)).await;
    assert_eq!(v["action"], "reinstall");
    check(&doc, "post", "/api/admin/plugins/preview", s, &v);
    let p = format!("/plugins/{id}");

    let (s, v) = call(Method::GET, "/plugins", None).await;
    assert_eq!(s, 200);
    check(&doc, "get", "/api/admin/plugins", s, &v);
    // The schemas are strict enough to catch a drifted answer.
    let mut drifted = v.clone();
    drifted["plugins"][0]
        .as_object_mut()
        .unwrap()
        .remove("enabled");
    assert!(!violations(&doc, "get", "/api/admin/plugins", 200, &drifted).is_empty());
    drifted["plugins"] = 5.into();
    assert!(!violations(&doc, "get", "/api/admin/plugins", 200, &drifted).is_empty());
    assert!(!violations(&doc, "get", "/api/admin/plugins", 404, &v).is_empty());
    let (s, v) = call(Method::GET, &p, None).await;
    assert_eq!(s, 200);
    check(&doc, "get", "/api/admin/plugins/{id}", s, &v);
    let (s, v) = call(
        Method::POST,
        &format!("{p}/grants"),
        Some(serde_json::json!({ "permissions": ["network:http://allowed.test"] })),
    )
    .await;
    assert_eq!((s, v["granted"].as_u64()), (200, Some(1)));
    check(&doc, "post", "/api/admin/plugins/{id}/grants", s, &v);
    let (s, _) = call(
        Method::PUT,
        &format!("{p}/secrets/declared.token"),
        Some(serde_json::json!({ "value": "s3cret" })),
    )
    .await;
    assert_eq!(s, 204);
    let (s, v) = call(
        Method::POST,
        &format!("{p}/enable"),
        Some(serde_json::json!({ "consent": true })),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    check(&doc, "post", "/api/admin/plugins/{id}/enable", s, &v);
    // Loaded now: the answer carries the API version and the integration types too.
    let (s, v) = call(Method::GET, &p, None).await;
    assert_eq!(v["loaded"], true);
    check(&doc, "get", "/api/admin/plugins/{id}", s, &v);
    let (s, v) = call(Method::POST, &format!("{p}/disable"), None).await;
    check(&doc, "post", "/api/admin/plugins/{id}/disable", s, &v);
    for (path, template) in [
        (format!("{p}/versions"), "/api/admin/plugins/{id}/versions"),
        (format!("{p}/doctor"), "/api/admin/plugins/{id}/doctor"),
        ("/doctor".to_string(), "/api/admin/doctor"),
    ] {
        let (s, v) = call(Method::GET, &path, None).await;
        assert_eq!(s, 200, "{path}: {v}");
        check(&doc, "get", template, s, &v);
    }
    let (s, v) = call(Method::GET, &format!("{p}/events?limit=3"), None).await;
    assert_eq!((s, v["events"].as_array().map(Vec::len)), (200, Some(3)));
    check(&doc, "get", "/api/admin/plugins/{id}/events", s, &v);

    // Errors: the documented error body, for every kind of client mistake.
    for (method, path, template, body, status) in [
        (
            Method::GET,
            "/plugins/nope".to_string(),
            "/api/admin/plugins/{id}",
            None,
            404,
        ),
        (
            Method::POST,
            format!("{p}/grants"),
            "/api/admin/plugins/{id}/grants",
            Some(serde_json::json!({ "permissions": ["network:evil.example"] })),
            400,
        ),
        (
            Method::POST,
            format!("{p}/enable"),
            "/api/admin/plugins/{id}/enable",
            Some(serde_json::json!({ "consent": false })),
            400,
        ),
    ] {
        let m = method.as_str().to_ascii_lowercase();
        let (s, v) = call(method, &path, body).await;
        assert_eq!(s, status, "{path}: {v}");
        check(&doc, &m, template, s, &v);
    }
    // Integration types and instances, through a webhook delivery's work item.
    let (s, v) = call(Method::GET, "/integration-types", None).await;
    check(&doc, "get", "/api/admin/integration-types", s, &v);
    let (s, v) = call(
        Method::POST,
        "/instances/test",
        Some(serde_json::json!({ "type": "webhook", "config": { "secret": "s3cret-0123456789" } })),
    )
    .await;
    check(&doc, "post", "/api/admin/instances/test", s, &v);
    let (s, v) = call(
        Method::POST,
        "/instances",
        Some(serde_json::json!({ "type": "webhook", "name": "hook", "config": { "secret": "s3cret-0123456789" } })),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    check(&doc, "post", "/api/admin/instances", s, &v);
    assert_eq!(v["config"]["secret"], "********");
    let instance = v["id"].as_str().unwrap().to_string();
    let i = format!("/instances/{instance}");
    let (s, v) = call(
        Method::PATCH,
        &i,
        Some(serde_json::json!({ "name": "renamed" })),
    )
    .await;
    assert_eq!((s, &v["name"]), (200, &Value::from("renamed")), "{v}");
    check(&doc, "patch", "/api/admin/instances/{id}", s, &v);
    for (method, path, template) in [
        (Method::GET, i.clone(), "/api/admin/instances/{id}"),
        (Method::GET, "/instances".into(), "/api/admin/instances"),
        (
            Method::POST,
            format!("{i}/disable"),
            "/api/admin/instances/{id}/disable",
        ),
        (
            Method::POST,
            format!("{i}/enable"),
            "/api/admin/instances/{id}/enable",
        ),
        (
            Method::POST,
            format!("{i}/test"),
            "/api/admin/instances/{id}/test",
        ),
    ] {
        let m = method.as_str().to_ascii_lowercase();
        let (s, v) = call(method, &path, None).await;
        assert_eq!(s, 200, "{path}: {v}");
        check(&doc, &m, template, s, &v);
    }
    let body = br#"{"text":"hello","id":"m1"}"#.to_vec();
    let sig = nitejar_tests::sign("s3cret-0123456789", &body);
    let (status, _) = host
        .webhook("webhook", &instance, &[("x-signature-256", &sig)], body)
        .await;
    assert!(status == 202 || status == 200, "{status}");
    let (s, v) = call(Method::GET, &format!("{i}/work-items"), None).await;
    assert_eq!(v["workItems"].as_array().map(Vec::len), Some(1), "{v}");
    check(&doc, "get", "/api/admin/instances/{id}/work-items", s, &v);
    let item = v["workItems"][0]["id"].as_str().unwrap().to_string();
    let run = host.wait_for_run(&item).await;
    check(&doc, "get", "/api/admin/work-items/{id}/run", 200, &run);
    let job = run["job"]["id"].as_str().unwrap().to_string();
    let (s, v) = call(Method::GET, &format!("/jobs/{job}"), None).await;
    check(&doc, "get", "/api/admin/jobs/{id}", s, &v);
    assert!(!v["receipts"].as_array().unwrap().is_empty(), "{v}");

    // Agents, assignment and the hook table with an override.
    let (s, v) = call(Method::GET, "/agents", None).await;
    check(&doc, "get", "/api/admin/agents", s, &v);
    let agent = serde_json::json!({
        "name": "helper", "systemPrompt": "Be brief.",
        "model": { "provider": "offline", "model": "nitejar-offline" }
    });
    let (s, v) = call(Method::POST, "/agents", Some(agent.clone())).await;
    assert_eq!(s, 201, "{v}");
    check(&doc, "post", "/api/admin/agents", s, &v);
    let agent_id = v["id"].as_str().unwrap().to_string();
    let (s, v) = call(
        Method::PUT,
        &format!("/agents/{agent_id}"),
        Some(agent.clone()),
    )
    .await;
    check(&doc, "put", "/api/admin/agents/{id}", s, &v);
    let (s, v) = call(Method::GET, &format!("/agents/{agent_id}"), None).await;
    check(&doc, "get", "/api/admin/agents/{id}", s, &v);
    let (s, v) = call(
        Method::PUT,
        &format!("{i}/agent"),
        Some(serde_json::json!({ "agentId": agent_id })),
    )
    .await;
    check(&doc, "put", "/api/admin/instances/{id}/agent", s, &v);
    let (s, v) = call(
        Method::POST,
        "/agents",
        Some(serde_json::json!({ "name": "x", "systemPrompt": "", "model": { "provider": "nope", "model": "m" } })),
    )
    .await;
    assert!(s == 400 || s == 422, "{s} {v}");
    check(&doc, "post", "/api/admin/agents", s, &v);
    let hook_path = "/plugins/nitejar.example.hooks/hooks/tool.pre_exec";
    let (s, v) = call(
        Method::PUT,
        hook_path,
        Some(serde_json::json!({ "priority": 7, "failPolicy": "failClosed" })),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    check(&doc, "put", "/api/admin/plugins/{id}/hooks/{hook}", s, &v);
    let (s, v) = call(Method::GET, "/hooks", None).await;
    assert_eq!(v["hooks"]["tool.pre_exec"][0]["priority"], 7, "{v}");
    check(&doc, "get", "/api/admin/hooks", s, &v);
    let (s, v) = call(Method::DELETE, hook_path, None).await;
    check(
        &doc,
        "delete",
        "/api/admin/plugins/{id}/hooks/{hook}",
        s,
        &v,
    );
    let (s, v) = call(
        Method::POST,
        "/instances",
        Some(serde_json::json!({ "type": "nope", "name": "x" })),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    check(&doc, "post", "/api/admin/instances", s, &v);

    // Readiness, and an import (a Nitejar database with its tables and no rows; then a source
    // that is not one).
    let resp = host
        .client
        .get(format!("{}/readyz", host.base))
        .send()
        .await
        .unwrap();
    let s = resp.status().as_u16();
    let v: Value = resp.json().await.unwrap();
    check(&doc, "get", "/readyz", s, &v);
    let nitejar = tempfile::tempdir().unwrap();
    let db = nitejar.path().join("nitejar.sqlite");
    {
        use sqlx::ConnectOptions;
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db)
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let schema = std::fs::read_to_string(root.join("fixtures/nitejar/schema.sql")).unwrap();
        sqlx::raw_sql(&schema).execute(&mut conn).await.unwrap();
    }
    for (from, status) in [
        (db.to_string_lossy().into_owned(), 200),
        ("/nope".into(), 400),
    ] {
        let (s, v) = call(
            Method::POST,
            "/import/nitejar",
            Some(serde_json::json!({"from": from, "dryRun": true})),
        )
        .await;
        assert_eq!(s, status, "{v}");
        check(&doc, "post", "/api/admin/import/nitejar", s, &v);
    }

    // Skills: create, edit, assign, resolve for a run, sync, delete.
    let (s, v) = call(
        Method::POST,
        "/skills",
        Some(serde_json::json!({ "name": "brief", "description": "Be brief", "content": "Answer in one line." })),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    check(&doc, "post", "/api/admin/skills", s, &v);
    let skill = format!("/skills/{}", v["skillId"].as_str().unwrap());
    let (s, v) = call(
        Method::PATCH,
        &skill,
        Some(serde_json::json!({ "tags": ["style"] })),
    )
    .await;
    check(&doc, "patch", "/api/admin/skills/{id}", s, &v);
    let (s, v) = call(
        Method::POST,
        &format!("{skill}/assignments"),
        Some(serde_json::json!({ "scope": "global" })),
    )
    .await;
    assert_eq!(v["assignments"][0]["scope"], "global", "{v}");
    check(&doc, "post", "/api/admin/skills/{id}/assignments", s, &v);
    for (path, template) in [
        (skill.clone(), "/api/admin/skills/{id}"),
        ("/skills".to_string(), "/api/admin/skills"),
        (
            format!("/agents/{agent_id}/skills?instance={instance}"),
            "/api/admin/agents/{id}/skills",
        ),
    ] {
        let (s, v) = call(Method::GET, &path, None).await;
        assert_eq!(s, 200, "{path}: {v}");
        check(&doc, "get", template, s, &v);
    }
    let (s, v) = call(Method::POST, "/skills/sync", None).await;
    check(&doc, "post", "/api/admin/skills/sync", s, &v);
    let (s, _) = call(Method::DELETE, &skill, None).await;
    assert_eq!(s, 204);
    let (s, _) = call(Method::DELETE, &i, None).await;
    assert_eq!(s, 204);

    // Malformed requests get the documented error body too, with the extractor's status.
    let raw = |content_type: Option<&str>, body: &str| {
        let mut req = host.admin(Method::POST, "/agents").body(body.to_string());
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        req
    };
    for (req, status, code) in [
        (
            raw(Some("application/json"), "{not json"),
            400,
            "invalid_json",
        ),
        (raw(None, "{}"), 415, "unsupported_media_type"),
        (
            raw(Some("application/json"), r#"{"name": 5}"#),
            422,
            "invalid_body",
        ),
        (
            host.admin(Method::GET, &format!("{p}/events?limit=many")),
            400,
            "invalid_query",
        ),
    ] {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["code"], code, "{v}");
        check(&doc, "post", "/api/admin/agents", status, &v);
    }

    let (s, v) = call(
        Method::POST,
        &format!("{p}/uninstall"),
        Some(serde_json::json!({ "purgeData": true })),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    check(&doc, "post", "/api/admin/plugins/{id}/uninstall", s, &v);
    host.stop().await;
}
