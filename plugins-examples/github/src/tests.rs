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
    assert_eq!(m.session_key, "acme/widgets#issue:412");
    assert_eq!(m.idempotency_key.as_deref(), Some("github:d-1"));
    let comment_id = serde_json::from_slice::<Value>(&fixture("issue_comment.created.json"))
        .unwrap()["comment"]["id"]
        .clone();
    assert_eq!(
        m.source_ref,
        format!("acme/widgets#issue:412#comment:{comment_id}")
    );
    assert!(m.title.starts_with("[acme/widgets#412] "), "{}", m.title);
    assert!(m.text.starts_with("@nitejar can you look"));
    let ctx: Value = serde_json::from_str(m.response_context.as_deref().unwrap()).unwrap();
    assert_eq!(
        ctx,
        json!({ "owner": "acme", "repo": "widgets", "issueNumber": 412, "installationId": 51234987 })
    );
    // Another handle with policy `mentions`: not mentioned, ignored; the default policy is
    // Nitejar's `all`: answered.
    let body = fixture("issue_comment.created.json");
    assert!(matches!(
        parse_with(
            "issue_comment",
            body.clone(),
            json!({ "mentionHandle": "ops-bot", "commentPolicy": "mentions" })
        ),
        ParseOutcome::Ignored(_)
    ));
    assert!(matches!(
        parse_with(
            "issue_comment",
            body.clone(),
            json!({ "mentionHandle": "ops-bot" })
        ),
        ParseOutcome::WorkItem(_)
    ));
    // The default handle is `@nitejar`, whatever the App's slug.
    assert!(matches!(
        parse_with(
            "issue_comment",
            body.clone(),
            json!({ "appSlug": "ops-bot", "commentPolicy": "mentions" })
        ),
        ParseOutcome::WorkItem(_)
    ));
    // A long issue title is cut to 200 characters as Nitejar cuts it.
    let mut v: Value = serde_json::from_slice(&body).unwrap();
    v["issue"]["title"] = json!("x".repeat(300));
    let m = item(parse_with(
        "issue_comment",
        v.to_string().into_bytes(),
        json!({}),
    ));
    assert_eq!(m.title.chars().count(), 200);
    assert!(m.title.ends_with("x..."));
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
    assert_eq!(m.session_key, "acme/widgets#issue:415");
    assert_eq!(m.source_ref, "acme/widgets#issue:415");
    assert!(
        m.title
            .starts_with("[acme/widgets#415] Crash when importing"),
        "{}",
        m.title
    );
    assert!(m.text.starts_with("Crash when importing a CSV with BOM"));
    let m = item(parse("check_run", "check_run.completed.json"));
    assert_eq!(m.session_key, "acme/widgets#issue:416");
    let run: Value = serde_json::from_slice(&fixture("check_run.completed.json")).unwrap();
    assert_eq!(
        m.source_ref,
        format!("acme/widgets#pr:416#check:{}", run["check_run"]["id"])
    );
    assert_eq!(
        m.title,
        format!(
            "[acme/widgets#416] CI: {} \u{2014} failure",
            run["check_run"]["name"].as_str().unwrap()
        )
    );
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
    let valid = |c: Value| GitHub::validate_config(TYPE.into(), c.to_string());
    assert!(valid(serde_json::from_str(&instance(json!({})).config).unwrap()).is_ok());
    let app = json!({ "webhookSecret": SECRET, "appId": "123", "privateKey": test_key() });
    assert!(valid(app).is_ok());
    let problems =
        valid(json!({ "appId": "x", "privateKey": "nope", "commentPolicy": "some" })).unwrap_err();
    assert_eq!(problems.len(), 4, "{problems:?}");
    // Nitejar's rules: a numeric appId, the client pair alone, a short secret, unknown fields
    // Nitejar's setup flow wrote.
    assert!(
        valid(
            json!({ "webhookSecret": "short", "appId": 123, "privateKey": test_key(),
                      "appSlug": "acme-nitejar", "permissions": {"preset": "robust"},
                      "manifestPending": false, "somethingNew": 1 })
        )
        .is_ok()
    );
    assert!(
        valid(json!({ "webhookSecret": SECRET, "clientId": "Iv1.a", "clientSecret": "c" })).is_ok()
    );
    // Manifest pending: no secret and no credentials yet.
    assert!(valid(json!({ "manifestPending": true })).is_ok());
    // Pairs come together; a secret is required once the App is set up.
    let problems =
        valid(json!({ "webhookSecret": SECRET, "token": "t", "clientId": "Iv1.a" })).unwrap_err();
    assert_eq!(problems, ["`clientSecret` is required with `clientId`"]);
    let problems = valid(json!({ "token": "t", "manifestPending": false })).unwrap_err();
    assert!(
        problems[0].contains("`webhookSecret` is required"),
        "{problems:?}"
    );
    let problems = valid(json!({ "webhookSecret": SECRET })).unwrap_err();
    assert!(problems[0].contains("set `token`"), "{problems:?}");
}

#[test]
fn installations_are_kept_without_a_work_item() {
    MockHost::default().install();
    let created = json!({
        "action": "created",
        "installation": {"id": 777, "account": {"login": "acme"}, "repository_selection": "selected"},
        "repositories": [{"id": 1, "full_name": "acme/widgets"}, {"id": 2, "full_name": "acme/api"}],
        "sender": {"login": "ana", "type": "User"}
    });
    let out = parse_with("installation", created.to_string().into_bytes(), json!({}));
    assert!(
        matches!(&out, ParseOutcome::Respond(r) if r.status == 200),
        "{out:?}"
    );
    let stored = |host: &mut MockHost| -> Option<Value> {
        host.kv
            .get("installation:777")
            .map(|b| serde_json::from_slice(b).unwrap())
    };
    let v = with_host(stored).unwrap();
    assert_eq!(v["repositories"], json!(["acme/api", "acme/widgets"]));
    assert_eq!(v["account"], "acme");
    let changed = json!({
        "action": "added",
        "installation": {"id": 777},
        "repositories_added": [{"full_name": "acme/web"}],
        "repositories_removed": [{"full_name": "acme/api"}]
    });
    let body = changed.to_string().into_bytes();
    let sig = sign(&body);
    let mut req = request("installation_repositories", body, sig);
    req.headers.retain(|h| h.name != "x-github-delivery");
    let out = GitHub::parse_webhook(instance(json!({})), req).unwrap();
    assert!(matches!(out, ParseOutcome::Respond(r) if r.status == 200));
    let v = with_host(stored).unwrap();
    assert_eq!(v["repositories"], json!(["acme/web", "acme/widgets"]));
    let deleted = json!({"action": "deleted", "installation": {"id": 777}});
    parse_with("installation", deleted.to_string().into_bytes(), json!({}));
    assert!(with_host(stored).is_none());
}

#[test]
fn work_item_events_need_a_delivery_id() {
    let body = fixture("issues.opened.json");
    let sig = sign(&body);
    let mut req = request("issues", body, sig);
    req.headers.retain(|h| h.name != "x-github-delivery");
    let out = GitHub::parse_webhook(instance(json!({})), req).unwrap();
    assert!(matches!(out, ParseOutcome::Respond(r) if r.status == 400));
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
