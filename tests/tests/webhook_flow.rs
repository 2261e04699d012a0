//! The first end-to-end flow: signed webhook -> parse-webhook in the sandbox -> work item,
//! with every client error answered precisely and secrets never leaving the host.

use nitejar_tests::{ADMIN_TOKEN, TestHost, sign};
use reqwest::Method;
use serde_json::json;

const SECRET: &str = "webhook-signing-secret-42";

async fn host_with_instance() -> (TestHost, String) {
    let host = TestHost::start().await;
    let instance = host
        .create_instance("webhook", json!({"secret": SECRET}))
        .await;
    (host, instance)
}

fn delivery(id: &str, text: &str) -> Vec<u8> {
    json!({"id": id, "text": text, "session": "s1", "sender": "ada"})
        .to_string()
        .into_bytes()
}

#[tokio::test]
async fn a_signed_webhook_creates_one_work_item() {
    let (host, instance) = host_with_instance().await;
    let body = delivery("evt-1", "deploy the docs please");
    let sig = sign(SECRET, &body);
    let (status, v) = host
        .webhook("webhook", &instance, &[("x-signature-256", &sig)], body)
        .await;
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["duplicate"], false);
    let item = host.work_item(v["workItemId"].as_str().unwrap()).await;
    assert_eq!(item["text"], "deploy the docs please");
    assert_eq!(item["sessionKey"], format!("webhook:{instance}:s1"));
    assert_eq!(item["integrationType"], "webhook");
    // The agent may already have picked it up.
    assert!(
        ["pending", "running", "done"].contains(&item["status"].as_str().unwrap()),
        "{item}"
    );

    // The parse-webhook call left a receipt with the outcome and the execution mode.
    let receipts = host.receipts("nitejar.example.webhook").await;
    let call = receipts
        .iter()
        .rev()
        .find(|r| {
            r["kind"] == "integration"
                && r["detailJson"]
                    .as_str()
                    .is_some_and(|d| d.contains("\"operation\":\"parse-webhook\""))
        })
        .expect("integration receipt");
    assert_eq!(call["status"], "ok");
    assert_eq!(call["executionMode"], "wasm_sandbox");
    let detail: serde_json::Value =
        serde_json::from_str(call["detailJson"].as_str().unwrap()).unwrap();
    assert_eq!(detail["operation"], "parse-webhook");
    assert_eq!(detail["result"], "work_item");
    host.stop().await;
}

#[tokio::test]
async fn fifty_concurrent_redeliveries_create_exactly_one_work_item() {
    let (host, instance) = host_with_instance().await;
    let body = delivery("evt-dup", "only once");
    let sig = sign(SECRET, &body);
    let headers = [("x-signature-256", sig.as_str())];
    let calls = (0..50).map(|_| host.webhook("webhook", &instance, &headers, body.clone()));
    let results = futures::future::join_all(calls).await;
    let created: Vec<_> = results.iter().filter(|(s, _)| *s == 202).collect();
    let duplicates: Vec<_> = results
        .iter()
        .filter(|(s, v)| *s == 200 && v["duplicate"] == true)
        .collect();
    assert_eq!(created.len(), 1, "{results:?}");
    assert_eq!(duplicates.len(), 49, "{results:?}");
    let id = &created[0].1["workItemId"];
    assert!(
        duplicates.iter().all(|(_, v)| &v["workItemId"] == id),
        "duplicates point at the one work item"
    );
    let items = host.app.store.list_work_items(&instance).await.unwrap();
    assert_eq!(items.len(), 1);

    // The same delivery id on another instance is a different key (scoped per instance).
    let other = host
        .create_instance("webhook", json!({"secret": SECRET}))
        .await;
    let (status, _) = host
        .webhook("webhook", &other, &[("x-signature-256", &sig)], body)
        .await;
    assert_eq!(status, 202);
    host.stop().await;
}

#[tokio::test]
async fn bad_signatures_and_bad_requests_create_nothing() {
    let (host, instance) = host_with_instance().await;
    let body = delivery("evt-2", "hello");

    let wrong = sign("another-secret-entirely", &body);
    let (status, v) = host
        .webhook(
            "webhook",
            &instance,
            &[("x-signature-256", &wrong)],
            body.clone(),
        )
        .await;
    assert_eq!(status, 401, "{v}");
    let (status, _) = host.webhook("webhook", &instance, &[], body.clone()).await;
    assert_eq!(status, 401);
    // A valid signature over different bytes does not verify this body.
    let (status, _) = host
        .webhook(
            "webhook",
            &instance,
            &[("x-signature-256", &sign(SECRET, b"{}"))],
            body.clone(),
        )
        .await;
    assert_eq!(status, 401);

    let sig = sign(SECRET, &body);
    let (status, v) = host
        .webhook(
            "webhook",
            "no-such-instance",
            &[("x-signature-256", &sig)],
            body.clone(),
        )
        .await;
    assert_eq!(status, 404, "{v}");
    let (status, v) = host
        .webhook(
            "telegram",
            &instance,
            &[("x-signature-256", &sig)],
            body.clone(),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], "type_mismatch");

    let huge = vec![b'x'; nitejar_core::limits::MAX_WEBHOOK_BODY_BYTES + 1];
    let (status, _) = host
        .webhook(
            "webhook",
            &instance,
            &[("x-signature-256", &sign(SECRET, &huge))],
            huge,
        )
        .await;
    assert_eq!(status, 413);

    // A correctly signed body the integration cannot use (not JSON, empty, no `text`) is
    // answered 400 in the error shape, never 200 `ignored`: the sender must learn it was not
    // delivered (and may fix and resend it).
    for bad in [
        b"not json at all".to_vec(),
        Vec::new(),
        b"[1, 2]".to_vec(),
        json!({"id": "x"}).to_string().into_bytes(),
    ] {
        let (status, v) = host
            .webhook(
                "webhook",
                &instance,
                &[("x-signature-256", &sign(SECRET, &bad))],
                bad.clone(),
            )
            .await;
        assert_eq!(status, 400, "{:?} -> {v}", String::from_utf8_lossy(&bad));
        assert_eq!(v["error"]["code"], "invalid_body", "{v}");
        assert!(v["error"]["message"].is_string(), "{v}");
    }

    assert!(
        host.app
            .store
            .list_work_items(&instance)
            .await
            .unwrap()
            .is_empty()
    );
    host.stop().await;
}

/// Deliveries without an id (neither `id` nor `X-Delivery-Id`) are told apart by their bytes:
/// distinct messages each make a work item, the same bytes again are a redelivery.
#[tokio::test]
async fn deliveries_without_an_id_are_not_collapsed_into_one() {
    let (host, instance) = host_with_instance().await;
    let send = |text: &str| {
        let body = json!({"text": text, "session": "s1"})
            .to_string()
            .into_bytes();
        let sig = sign(SECRET, &body);
        let host = &host;
        let instance = instance.clone();
        async move {
            host.webhook(
                "webhook",
                &instance,
                &[("x-signature-256", &sig), ("x-delivery-id", "")],
                body,
            )
            .await
        }
    };
    let (a, va) = send("first").await;
    let (b, vb) = send("second").await;
    let (c, vc) = send("first").await;
    assert_eq!((a, b, c), (202, 202, 200), "{va} {vb} {vc}");
    assert_eq!(vc["duplicate"], true, "{vc}");
    assert_eq!(vc["workItemId"], va["workItemId"]);
    assert_ne!(va["workItemId"], vb["workItemId"]);
    host.stop().await;
}

#[tokio::test]
async fn admin_api_requires_the_token_and_never_returns_secrets() {
    let (host, instance) = host_with_instance().await;
    for token in [
        None,
        Some("wrong-token-wrong-token"),
        Some(&ADMIN_TOKEN[1..]),
    ] {
        let mut req = host.client.get(format!("{}/api/admin/plugins", host.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        assert_eq!(req.send().await.unwrap().status().as_u16(), 401);
    }
    let list = host.admin_json(Method::GET, "/instances", None, 200).await;
    let text = list.to_string();
    assert!(
        !text.contains(SECRET),
        "instance listing leaks the secret: {text}"
    );
    assert_eq!(list["instances"][0]["config"]["secret"], "********");
    assert_eq!(
        list["instances"][0]["webhookUrl"],
        format!("/api/webhooks/plugins/webhook/{instance}")
    );

    // Invalid config is refused by the plugin's validate-config with an actionable message.
    let v = host
        .admin_json(
            Method::POST,
            "/instances",
            Some(json!({"type": "webhook", "name": "x", "config": {"secret": "short"}})),
            422,
        )
        .await;
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`secret`: value is shorter than 16 characters"),
        "{v}"
    );
    // The plugin's JSON Schema is checked first, and errors never echo the submitted value.
    assert!(!v.to_string().contains("short\""), "{v}");
    let v = host
        .admin_json(
            Method::POST,
            "/instances",
            Some(json!({"type": "nope", "name": "x"})),
            400,
        )
        .await;
    assert_eq!(v["error"]["code"], "unknown_type");

    // The plugin list reports the runtime posture truthfully.
    let plugins = host.admin_json(Method::GET, "/plugins", None, 200).await;
    let webhook = plugins["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "nitejar.example.webhook")
        .unwrap();
    assert_eq!(webhook["executionMode"], "wasm_sandbox");
    assert!(webhook["hostEnforcedControls"].as_array().unwrap().len() >= 5);
    assert!(
        !webhook["effectiveLimitations"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // The secret is not stored in plaintext anywhere in the database files.
    host.app.receipts.flush().await;
    let db_path = host.app.config.database_path.clone();
    host.stop().await;
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", db_path.display());
        if let Ok(bytes) = std::fs::read(&path) {
            let found = bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
            assert!(!found, "{path} contains the plaintext secret");
        }
    }
}

/// The value of one line of the metrics text, found by everything before the value.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn metrics_time_every_webhook_answer_behind_the_admin_token() {
    let (host, instance) = host_with_instance().await;
    let body = delivery("evt-metrics", "hello");
    let sig = sign(SECRET, &body);
    let signed = [("x-signature-256", sig.as_str())];
    let (status, _) = host
        .webhook("webhook", &instance, &signed, body.clone())
        .await;
    assert_eq!(status, 202);
    let (status, _) = host
        .webhook("webhook", &instance, &signed, body.clone())
        .await;
    assert_eq!(status, 200, "the redelivery");
    let (status, _) = host.webhook("webhook", &instance, &[], body.clone()).await;
    assert_eq!(status, 401);
    let (status, _) = host.webhook("webhook", "nope", &signed, body).await;
    assert_eq!(status, 404);
    // Refused by the body limit before the handler: timed all the same.
    let (status, _) = host
        .webhook("webhook", &instance, &signed, vec![b' '; 1024 * 1024 + 1])
        .await;
    assert_eq!(status, 413);

    let url = format!("{}/api/admin/metrics", host.base);
    let resp = host.client.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 401, "no token");
    let resp = host
        .client
        .get(&url)
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "a wrong token");
    let resp = host.admin(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = resp.text().await.unwrap();
    let name = "nitejar_webhook_request_duration_seconds";
    assert_eq!(metric(&text, &format!("{name}_count")), 5.0, "{text}");
    assert_eq!(metric(&text, &format!("{name}_bucket{{le=\"+Inf\"}}")), 5.0);
    // Cumulative and never decreasing; every answer here took well under 10 s.
    let buckets: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{name}_bucket")))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    assert_eq!(metric(&text, &format!("{name}_bucket{{le=\"10\"}}")), 5.0);
    let sum = metric(&text, &format!("{name}_sum"));
    assert!(sum > 0.0 && sum < 50.0, "{sum}");
    let class = |c: &str| {
        metric(
            &text,
            &format!("nitejar_webhook_requests_total{{class=\"{c}\"}}"),
        )
    };
    assert_eq!((class("2xx"), class("4xx"), class("5xx")), (2.0, 3.0, 0.0));
    // The stages: the plugin parsed three (the 202, the redelivery, the 401); two reached the
    // write (the redelivery is recognised there).
    let stage = |s: &str| {
        metric(
            &text,
            &format!("nitejar_webhook_stage_duration_seconds_count{{stage=\"{s}\"}}"),
        )
    };
    assert_eq!((stage("parse"), stage("write")), (3.0, 2.0), "{text}");
    host.stop().await;
}
