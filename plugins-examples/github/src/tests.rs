//! Native unit tests over the repository's webhook fixtures (`tests/fixtures/webhooks/github`).

use super::*;
use nitejar_plugin_sdk::http::HttpError;
use nitejar_plugin_sdk::testing::{MockHost, with_host};

const SECRET: &str = "gh-webhook-secret-0123";

fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(name: &str) -> Vec<u8> {
    let path = repo_root()
        .join("tests/fixtures/webhooks/github")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

fn test_key() -> String {
    std::fs::read_to_string(repo_root().join("tests/fixtures/github-app-test-key.pem")).unwrap()
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn instance(extra: Value) -> Instance {
    let mut config = json!({ "webhookSecret": SECRET, "token": "ghp_testtoken" });
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    Instance {
        id: "inst-1".into(),
        integration_type: TYPE.into(),
        config: config.to_string(),
    }
}

fn request(event: &str, body: Vec<u8>, signature: String) -> WebhookRequest {
    let h = |n: &str, v: &str| Header {
        name: n.into(),
        value: v.into(),
    };
    WebhookRequest {
        method: "POST".into(),
        path: "/".into(),
        query: String::new(),
        headers: vec![
            h("x-github-event", event),
            h("x-github-delivery", "d-1"),
            h("x-hub-signature-256", &signature),
        ],
        body,
    }
}

fn parse_with(event: &str, body: Vec<u8>, extra: Value) -> ParseOutcome {
    let sig = sign(&body);
    GitHub::parse_webhook(instance(extra), request(event, body, sig)).unwrap()
}

fn parse(event: &str, name: &str) -> ParseOutcome {
    parse_with(event, fixture(name), json!({}))
}

fn item(o: ParseOutcome) -> InboundMessage {
    match o {
        ParseOutcome::WorkItem(m) => m,
        other => panic!("expected a work item, got {other:?}"),
    }
}

#[test]
fn issue_comment_mentioning_the_bot() {
    let m = item(parse("issue_comment", "issue_comment.created.json"));
    assert_eq!(m.session_key, "github:acme/widgets#412");
    assert_eq!(m.idempotency_key.as_deref(), Some("d-1"));
    assert!(m.text.starts_with("@nitejar can you look"));
    let ctx: Value = serde_json::from_str(m.response_context.as_deref().unwrap()).unwrap();
    assert_eq!(
        ctx,
        json!({ "owner": "acme", "repo": "widgets", "issueNumber": 412, "installationId": 51234987 })
    );
    // Another handle: not mentioned, ignored; policy `all`: answered.
    let body = fixture("issue_comment.created.json");
    assert!(matches!(
        parse_with(
            "issue_comment",
            body.clone(),
            json!({ "mentionHandle": "ops-bot" })
        ),
        ParseOutcome::Ignored(_)
    ));
    assert!(matches!(
        parse_with(
            "issue_comment",
            body.clone(),
            json!({ "mentionHandle": "ops-bot", "commentPolicy": "all" })
        ),
        ParseOutcome::WorkItem(_)
    ));
    // A bot's comment is ignored.
    let mut v: Value = serde_json::from_slice(&body).unwrap();
    v["sender"]["type"] = json!("Bot");
    assert!(matches!(
        parse_with("issue_comment", v.to_string().into_bytes(), json!({})),
        ParseOutcome::Ignored(r) if r.contains("bot")
    ));
}

#[test]
fn issues_opened_and_check_runs() {
    let m = item(parse("issues", "issues.opened.json"));
    assert_eq!(m.session_key, "github:acme/widgets#415");
    assert!(m.text.starts_with("Crash when importing a CSV with BOM"));
    let m = item(parse("check_run", "check_run.completed.json"));
    assert_eq!(m.session_key, "github:acme/widgets#416");
    assert!(
        m.sender.unwrap().is_bot,
        "check runs come from bots and are kept"
    );
    assert!(m.text.contains("concluded failure"));
    assert!(m.text.contains("checkout_retries_on_timeout"));
    // A green check is not a work item.
    let mut v: Value = serde_json::from_slice(&fixture("check_run.completed.json")).unwrap();
    v["check_run"]["conclusion"] = json!("success");
    assert!(matches!(
        parse_with("check_run", v.to_string().into_bytes(), json!({})),
        ParseOutcome::Ignored(_)
    ));
}

#[test]
fn ping_allowlist_and_signature() {
    assert!(matches!(
        parse("ping", "ping.json"),
        ParseOutcome::Respond(r) if r.status == 200
    ));
    assert!(matches!(
        parse_with(
            "issues",
            fixture("issues.opened.json"),
            json!({ "allowedRepos": ["acme/other"] })
        ),
        ParseOutcome::Ignored(r) if r.contains("allowedRepos")
    ));
    assert!(matches!(
        parse_with(
            "issues",
            fixture("issues.opened.json"),
            json!({ "allowedRepos": ["ACME/Widgets"] })
        ),
        ParseOutcome::WorkItem(_)
    ));
    let body = fixture("issues.opened.json");
    for sig in [
        String::new(),
        "sha256=00".into(),
        sign(b"other body"),
        sign(&body).replace("sha256=", "sha1="),
    ] {
        let out = GitHub::parse_webhook(instance(json!({})), request("issues", body.clone(), sig));
        assert!(matches!(out, Ok(ParseOutcome::Unauthorized(_))));
    }
    // No secret configured: nothing is accepted.
    let open = Instance {
        config: json!({ "token": "t" }).to_string(),
        ..instance(json!({}))
    };
    let sig = sign(&body);
    assert!(matches!(
        GitHub::parse_webhook(open, request("issues", body, sig)),
        Ok(ParseOutcome::Unauthorized(_))
    ));
}

#[test]
fn mention_matching() {
    assert!(mentions("@nitejar look", "@nitejar"));
    assert!(mentions("hey @Nitejar, look", "@nitejar"));
    assert!(!mentions("@nitejar-ci look", "@nitejar"));
    assert!(!mentions("me@nitejar.com", "@nitejar"));
    assert!(!mentions("nothing here", "@nitejar"));
}

#[test]
fn config_validation() {
    assert!(GitHub::validate_config(TYPE.into(), instance(json!({})).config).is_ok());
    let app = json!({ "webhookSecret": SECRET, "appId": "123", "privateKey": test_key() });
    assert!(GitHub::validate_config(TYPE.into(), app.to_string()).is_ok());
    let problems = GitHub::validate_config(
        TYPE.into(),
        json!({ "appId": "x", "privateKey": "nope", "commentPolicy": "some" }).to_string(),
    )
    .unwrap_err();
    assert_eq!(problems.len(), 4, "{problems:?}");
}

fn created(v: Value) -> Result<Response, HttpError> {
    Ok(Response {
        status: 201,
        headers: vec![],
        body: v.to_string().into_bytes(),
    })
}

#[test]
fn app_auth_exchanges_once_and_caches_the_token_encrypted() {
    let exchanges = std::rc::Rc::new(std::cell::Cell::new(0));
    let e = exchanges.clone();
    MockHost::default()
        .responder(move |req| {
            if req.url.ends_with("/app/installations/51234987/access_tokens") {
                e.set(e.get() + 1);
                return created(
                    json!({ "token": "ghs_installation_token", "expires_at": "2099-01-01T00:00:00Z" }),
                );
            }
            let auth = req
                .headers
                .iter()
                .find(|(k, _)| k == "authorization")
                .unwrap();
            assert_eq!(auth.1, "Bearer ghs_installation_token");
            created(json!({ "id": 99, "html_url": "https://github.com/acme/widgets/issues/412#issuecomment-99" }))
        })
        .install();
    let inst = Instance {
        config: json!({ "webhookSecret": SECRET, "appId": "123", "privateKey": test_key() })
            .to_string(),
        ..instance(json!({}))
    };
    let ctx = Some(
        json!({ "owner": "acme", "repo": "widgets", "issueNumber": 412, "installationId": 51234987 })
            .to_string(),
    );
    let opts = PostOptions {
        hit_limit: false,
        idempotency_key: None,
    };
    for _ in 0..2 {
        let r = GitHub::post_response(
            inst.clone(),
            "wi".into(),
            "hi".into(),
            ctx.clone(),
            opts.clone(),
        )
        .unwrap();
        assert_eq!(r.external_id.as_deref(), Some("99"));
    }
    assert_eq!(exchanges.get(), 1);
    let stored = with_host(|h| h.kv.values().next().cloned().unwrap());
    assert!(
        !String::from_utf8_lossy(&stored).contains("ghs_installation_token"),
        "the cached token is encrypted"
    );
    // The JWT is an RS256 token for the App id.
    let jwt = auth::app_jwt("123", &test_key(), 1_000_000).unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, parts[1])
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims,
        json!({ "iat": 999_940, "exp": 1_000_540, "iss": 123 })
    );
}

#[test]
fn a_comment_posted_without_an_answer_is_found_not_posted_twice() {
    use std::cell::RefCell;
    use std::rc::Rc;
    // The stand-in keeps the comments; the first POST reaches it but its answer is lost.
    let comments: Rc<RefCell<Vec<Value>>> = Rc::default();
    let posts = Rc::new(RefCell::new(0));
    let (c, p) = (comments.clone(), posts.clone());
    MockHost::default()
        .responder(move |req| {
            if req.method == "POST" {
                *p.borrow_mut() += 1;
                let body: Value = serde_json::from_slice(&req.body).unwrap();
                let id = 500 + c.borrow().len();
                c.borrow_mut().push(json!({
                    "id": id,
                    "body": body["body"],
                    "html_url": format!("https://github.com/acme/widgets/issues/7#issuecomment-{id}"),
                }));
                if *p.borrow() == 1 {
                    return Err(HttpError::Transport("timed out reading the answer".into()));
                }
                return created(c.borrow().last().unwrap().clone());
            }
            assert!(req.url.contains("/issues/7/comments?per_page=100&since="), "{}", req.url);
            Ok(Response {
                status: 200,
                headers: vec![],
                body: Value::Array(c.borrow().clone()).to_string().into_bytes(),
            })
        })
        .install();
    let inst = instance(json!({ "token": "ghp_pat" }));
    let ctx = Some(json!({ "owner": "acme", "repo": "widgets", "issueNumber": 7 }).to_string());
    let post = |key: &str| {
        GitHub::post_response(
            inst.clone(),
            "wi".into(),
            "the answer".into(),
            ctx.clone(),
            PostOptions {
                hit_limit: false,
                idempotency_key: Some(key.into()),
            },
        )
    };
    assert!(post("job-1").unwrap_err().retryable);
    let found = post("job-1").unwrap();
    assert_eq!(found.external_id.as_deref(), Some("500"));
    assert_eq!(*posts.borrow(), 1, "found, not posted again");
    let body = comments.borrow()[0]["body"].as_str().unwrap().to_string();
    assert!(
        body.starts_with("the answer\n\n<!-- nitejar-reply:job-1 -->"),
        "{body}"
    );
    // Another reply on the same issue is posted (its marker is its own).
    post("job-2").unwrap();
    assert_eq!(*posts.borrow(), 2);
}
