//! Built-in GitHub integration (`builtin.github`, type `github`), a sandboxed component like any
//! third-party plugin: its only network grant is `api.github.com`.
//!
//! Inbound (`parse-webhook`), read as Nitejar reads it (keys and fields from
//! `tests/fixtures/nitejar/nitejar-data.md`, so history imported from Nitejar continues):
//! - `X-Hub-Signature-256` is verified in constant time (HMAC-SHA256 over the raw body with
//!   `webhookSecret`); a missing secret or a mismatch is 401, before anything is parsed
//!   (Nitejar answers 200 `{"ignored": true}`: a deliberate difference);
//! - `X-GitHub-Event` is required; `ping` is acknowledged (200) and creates nothing;
//! - `installation` and `installation_repositories` keep the App's installations and their
//!   repositories in the plugin's storage (`installation:<id>`), no work item;
//! - work-item events need `X-GitHub-Delivery`; the idempotency key is `github:<delivery>`
//!   (GitHub redelivers with the same id);
//! - `issue_comment` `created` becomes a work item when not sent by a bot and, with
//!   `commentPolicy: "mentions"`, when the comment mentions `mentionHandle` (default
//!   `@nitejar`); the default policy is `all`, as in Nitejar;
//! - `issues` `opened`/`reopened` (unless `trackIssueOpen` is false; bot senders ignored);
//! - `check_run` `completed` on a pull request with a failing conclusion (`failure`,
//!   `timed_out`, `cancelled`, `action_required`, `startup_failure`) unless `trackCheckRun` is
//!   false; bots are allowed here, since CI is a bot;
//! - repositories outside `allowedRepos` (when set) and every other event are ignored;
//! - session key `<owner>/<repo>#issue:<n>` (a pull request's number for a check run); source
//!   refs `<owner>/<repo>#issue:<n>#comment:<id>`, `<owner>/<repo>#issue:<n>`,
//!   `<owner>/<repo>#pr:<n>#check:<id>`; titles `[<owner>/<repo>#<n>] <issue title>` and
//!   `[<owner>/<repo>#<n>] CI: <name> — <conclusion>`, cut to 200 characters.
//!
//! Outbound: `post-response` posts an issue comment (`POST /repos/{o}/{r}/issues/{n}/comments`)
//! authenticated with `token`, or as a GitHub App (`appId` + `privateKey`; the installation id
//! comes from the webhook). `test-connection` calls `GET /user` (token) or `GET /app` (App).

mod auth;

use auth::Auth;
use hmac::{Hmac, Mac};
use nitejar_plugin_sdk::http::{Request, Response};
use nitejar_plugin_sdk::integration::*;
use nitejar_plugin_sdk::{Contributions, Integration, Plugin, delivery, export_plugin, kv};
use serde_json::{Value, json};
use sha2::Sha256;

const TYPE: &str = "github";
const DEFAULT_API: &str = "https://api.github.com";
const USER_AGENT: &str = "nitejar-builtin-github";
/// GitHub's limit on a comment body.
const MAX_COMMENT_CHARS: usize = 65_000;
const FAILING_CONCLUSIONS: &[&str] = &[
    "failure",
    "timed_out",
    "cancelled",
    "action_required",
    "startup_failure",
];

/// The integration (public for the native fuzz targets in `fuzz/`).
pub struct GitHub;

impl Plugin for GitHub {
    fn contributions() -> Contributions {
        Contributions::integrations(&[TYPE])
    }
}

/// Which issue comments become work items.
#[derive(Debug, Clone, Copy, PartialEq)]
enum CommentPolicy {
    /// Only comments mentioning the handle.
    Mentions,
    /// Every comment by a person.
    All,
}

/// An instance's configuration (the field names of the original GitHub integration, plus
/// `token` for token authentication and `apiBaseUrl` for GitHub Enterprise Server).
#[derive(Debug, Clone)]
struct Config {
    webhook_secret: Option<String>,
    auth: Option<Auth>,
    allowed_repos: Vec<String>,
    comment_policy: CommentPolicy,
    mention_handle: String,
    track_issue_open: bool,
    track_check_run: bool,
    api_base_url: String,
}

fn string_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

impl Config {
    /// Parses a stored config. `strict` (validate-config) also requires what receiving and
    /// replying need; parsing at call time only needs what the call uses.
    fn parse(config: &str, strict: bool) -> Result<Config, Vec<String>> {
        let v: Value = serde_json::from_str(config)
            .map_err(|e| vec![format!("the config is not JSON: {e}")])?;
        let mut problems = Vec::new();
        let manifest_pending = v.get("manifestPending").and_then(Value::as_bool) == Some(true);
        let webhook_secret = string_field(&v, "webhookSecret").map(str::to_string);
        if strict && !manifest_pending && webhook_secret.is_none() {
            problems.push(
                "`webhookSecret` is required (unless `manifestPending`): set the same secret \
                 in the GitHub webhook settings"
                    .into(),
            );
        }
        // Nitejar's pair rules: appId + privateKey and clientId + clientSecret come together,
        // and one pair (or, here, a `token`) is complete unless the App is still being set up.
        let has = |k: &str| match v.get(k) {
            Some(Value::String(s)) => !s.trim().is_empty(),
            Some(Value::Number(_)) => true,
            _ => false,
        };
        for (a, b) in [("appId", "privateKey"), ("clientId", "clientSecret")] {
            if has(a) != has(b) {
                let (set, missing) = if has(a) { (a, b) } else { (b, a) };
                problems.push(format!("`{missing}` is required with `{set}`"));
            }
        }
        let complete = has("token")
            || (has("appId") && has("privateKey"))
            || (has("clientId") && has("clientSecret"));
        if strict && !manifest_pending && !complete {
            problems.push(
                "set `token`, or `appId` and `privateKey` (GitHub App), or `clientId` and \
                 `clientSecret`"
                    .into(),
            );
        }
        let app_id = match v.get("appId") {
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => string_field(&v, "appId").map(str::to_string),
        };
        let auth = match (
            string_field(&v, "token"),
            app_id.as_deref(),
            string_field(&v, "privateKey"),
        ) {
            (Some(t), _, _) => Some(Auth::Token(t.to_string())),
            (None, Some(id), Some(key)) => {
                if let Err(e) = auth::parse_key(key) {
                    problems.push(e);
                }
                if id.parse::<u64>().is_err() {
                    problems.push("`appId` must be the App's numeric id".into());
                }
                Some(Auth::App {
                    app_id: id.to_string(),
                    private_key: key.to_string(),
                })
            }
            // Incomplete pairs are reported above; replies then say what is missing.
            _ => None,
        };
        let allowed_repos = match v.get("allowedRepos") {
            None | Some(Value::Null) => vec![],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|r| match r.as_str() {
                    Some(s) if s.contains('/') => Some(s.trim().to_ascii_lowercase()),
                    _ => {
                        problems.push(format!("`allowedRepos`: {r} is not owner/repo"));
                        None
                    }
                })
                .collect(),
            Some(_) => {
                problems.push("`allowedRepos` must be a list of owner/repo".into());
                vec![]
            }
        };
        // Nitejar's defaults: every comment, handle `@nitejar`.
        let comment_policy = match string_field(&v, "commentPolicy") {
            None | Some("all") => CommentPolicy::All,
            Some("mentions") => CommentPolicy::Mentions,
            Some(other) => {
                problems.push(format!(
                    "`commentPolicy` {other:?} is not \"mentions\" or \"all\""
                ));
                CommentPolicy::All
            }
        };
        let mention_handle = match string_field(&v, "mentionHandle") {
            Some(h) if h.starts_with('@') => h.to_string(),
            Some(h) => format!("@{h}"),
            None => "@nitejar".to_string(),
        };
        let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(true);
        let api_base_url = match string_field(&v, "apiBaseUrl") {
            None => DEFAULT_API.to_string(),
            Some(u) if u.starts_with("https://") || u.starts_with("http://") => {
                u.trim_end_matches('/').to_string()
            }
            Some(_) => {
                problems.push("`apiBaseUrl` must be an http(s) URL".into());
                DEFAULT_API.to_string()
            }
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Config {
            webhook_secret,
            auth,
            allowed_repos,
            comment_policy,
            mention_handle,
            track_issue_open: flag("trackIssueOpen"),
            track_check_run: flag("trackCheckRun"),
            api_base_url,
        })
    }

    fn from_instance(config: &str) -> Result<Config, PluginError> {
        Config::parse(config, false).map_err(|p| PluginError::new("invalid_config", p.join("; ")))
    }

    fn repo_allowed(&self, full_name: &str) -> bool {
        self.allowed_repos.is_empty()
            || self.allowed_repos.contains(&full_name.to_ascii_lowercase())
    }
}

fn header<'a>(req: &'a WebhookRequest, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// Constant-time check of `sha256=<hex>` against the HMAC of the raw body.
fn signature_valid(secret: &str, body: &[u8], header: Option<&str>) -> bool {
    let Some(sig) = header
        .and_then(|h| h.trim().strip_prefix("sha256="))
        .and_then(|h| hex::decode(h).ok())
    else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// Whether `text` mentions `handle` as a whole word (`@nitejar` but not `@nitejar-ci`).
fn mentions(text: &str, handle: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let handle = handle.to_ascii_lowercase();
    lower.match_indices(&handle).any(|(i, _)| {
        let before_ok = i == 0
            || !lower[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '@');
        let after_ok = !lower[i + handle.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        before_ok && after_ok
    })
}

fn is_bot(user: &Value) -> bool {
    user.get("type").and_then(Value::as_str) == Some("Bot")
}

fn sender_of(user: &Value) -> Option<Sender> {
    let login = user.get("login").and_then(Value::as_str)?;
    Some(Sender {
        id: user.get("id").map(Value::to_string).unwrap_or_default(),
        name: login.to_string(),
        is_bot: is_bot(user),
    })
}

/// The pieces every work item from one repository event shares.
struct Item<'a> {
    body: &'a Value,
    repo: &'a str,
    number: u64,
    title: String,
    text: String,
    source_ref: String,
    kind: &'a str,
    delivery: &'a str,
}

fn work_item(item: Item<'_>) -> ParseOutcome {
    let (owner, name) = item.repo.split_once('/').unwrap_or((item.repo, ""));
    let context = json!({
        "owner": owner,
        "repo": name,
        "issueNumber": item.number,
        "installationId": item.body.pointer("/installation/id").and_then(Value::as_u64),
    });
    let payload = json!({
        "event": item.kind,
        "action": item.body.get("action"),
        "repository": item.repo,
        "number": item.number,
        "issue": item.body.get("issue").map(|i| json!({
            "title": i.get("title"), "state": i.get("state"), "htmlUrl": i.get("html_url"),
            "author": i.pointer("/user/login"), "body": i.get("body"),
            "labels": i.get("labels").and_then(Value::as_array).map(|l| l.iter().filter_map(|x| x.get("name")).collect::<Vec<_>>()),
        })),
        "comment": item.body.get("comment").map(|c| json!({
            "id": c.get("id"), "htmlUrl": c.get("html_url"), "author": c.pointer("/user/login"),
        })),
        "checkRun": item.body.get("check_run").map(|c| json!({
            "id": c.get("id"), "name": c.get("name"), "conclusion": c.get("conclusion"),
            "headSha": c.get("head_sha"), "detailsUrl": c.get("details_url"), "htmlUrl": c.get("html_url"),
            "output": c.get("output"),
        })),
        "sender": item.body.pointer("/sender/login"),
        "deliveryId": item.delivery,
    });
    ParseOutcome::WorkItem(InboundMessage {
        title: item.title,
        text: item.text,
        session_key: format!("{}#issue:{}", item.repo, item.number),
        source_ref: item.source_ref,
        sender: item.body.get("sender").and_then(sender_of),
        command: None,
        idempotency_key: Some(format!("github:{}", item.delivery)),
        payload: payload.to_string(),
        response_context: Some(context.to_string()),
    })
}

/// Nitejar's title rule: at most `max` characters, else the first `max - 3` and `...`.
fn cut_title(title: &str, max: usize) -> String {
    if title.chars().count() <= max {
        return title.to_string();
    }
    let mut out: String = title.chars().take(max - 3).collect();
    out.push_str("...");
    out
}

/// The kv key of a GitHub App installation this integration has seen.
fn installation_key(id: u64) -> String {
    format!("installation:{id}")
}

/// Keeps the App's installations and their repositories (`installation` and
/// `installation_repositories` events) in the plugin's storage, as Nitejar keeps them; no work
/// item. The answer says what was recorded; a storage failure is the plugin's error (502).
fn installation_event(event: &str, body: &Value) -> Result<ParseOutcome, PluginError> {
    let action = body.get("action").and_then(Value::as_str).unwrap_or("");
    let Some(id) = body.pointer("/installation/id").and_then(Value::as_u64) else {
        return Ok(ParseOutcome::Ignored(format!(
            "{event} event without an installation id"
        )));
    };
    let names = |key: &str| -> Vec<String> {
        body.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.get("full_name").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let key = installation_key(id);
    let stored: Value = kv::get(&key)
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    let mut repos: Vec<String> = stored
        .get("repositories")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let deleted = event == "installation" && action == "deleted";
    match (event, action) {
        ("installation", "created") => repos = names("repositories"),
        ("installation_repositories", _) => {
            let removed = names("repositories_removed");
            repos.retain(|r| !removed.contains(r));
            for r in names("repositories_added") {
                if !repos.contains(&r) {
                    repos.push(r);
                }
            }
        }
        _ => {}
    }
    repos.sort();
    let result = if deleted {
        kv::delete(&key).map(|_| ())
    } else {
        let record = json!({
            "id": id,
            "account": body.pointer("/installation/account/login"),
            "repositorySelection": body.pointer("/installation/repository_selection"),
            "suspended": action == "suspend"
                || (action != "unsuspend" && stored.get("suspended") == Some(&json!(true))),
            "repositories": repos,
        });
        kv::set(&key, record.to_string().as_bytes())
    };
    result.map_err(|e| {
        PluginError::retryable(
            "storage_error",
            format!("could not record installation {id}: {e}"),
        )
    })?;
    Ok(ParseOutcome::Respond(WebhookResponse {
        status: 200,
        headers: vec![Header {
            name: "content-type".into(),
            value: "application/json".into(),
        }],
        body: json!({
            "ok": true,
            "event": event,
            "action": action,
            "installationId": id,
            "repositories": if deleted { 0 } else { repos.len() },
        })
        .to_string()
        .into_bytes(),
    }))
}

fn parse_event(cfg: &Config, event: &str, delivery: &str, body: &Value) -> ParseOutcome {
    let ignored = |why: String| ParseOutcome::Ignored(why);
    let action = body.get("action").and_then(Value::as_str).unwrap_or("");
    let repo = body
        .pointer("/repository/full_name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if repo.is_empty() {
        return ignored(format!("{event} event without a repository"));
    }
    if !cfg.repo_allowed(repo) {
        return ignored(format!("repository {repo} is not in allowedRepos"));
    }
    let sender = body.get("sender").cloned().unwrap_or(Value::Null);
    match event {
        "issue_comment" => {
            if action != "created" {
                return ignored(format!("issue_comment {action}"));
            }
            if is_bot(&sender) {
                return ignored("comment by a bot".into());
            }
            let text = body
                .pointer("/comment/body")
                .and_then(Value::as_str)
                .unwrap_or("");
            if cfg.comment_policy == CommentPolicy::Mentions && !mentions(text, &cfg.mention_handle)
            {
                return ignored(format!("comment does not mention {}", cfg.mention_handle));
            }
            let number = body
                .pointer("/issue/number")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let issue_title = body
                .pointer("/issue/title")
                .and_then(Value::as_str)
                .unwrap_or("");
            let comment_id = body.pointer("/comment/id").and_then(Value::as_u64);
            work_item(Item {
                body,
                repo,
                number,
                title: cut_title(&format!("[{repo}#{number}] {issue_title}"), 200),
                text: text.to_string(),
                source_ref: format!("{repo}#issue:{number}#comment:{}", comment_id.unwrap_or(0)),
                kind: event,
                delivery,
            })
        }
        "issues" => {
            if !matches!(action, "opened" | "reopened") {
                return ignored(format!("issues {action}"));
            }
            if !cfg.track_issue_open {
                return ignored("trackIssueOpen is off".into());
            }
            if is_bot(&sender) {
                return ignored("issue opened by a bot".into());
            }
            let number = body
                .pointer("/issue/number")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            let title = body
                .pointer("/issue/title")
                .and_then(Value::as_str)
                .unwrap_or("");
            let issue_body = body
                .pointer("/issue/body")
                .and_then(Value::as_str)
                .unwrap_or("");
            work_item(Item {
                body,
                repo,
                number,
                title: cut_title(&format!("[{repo}#{number}] {title}"), 200),
                text: format!("{title}\n\n{issue_body}").trim().to_string(),
                source_ref: format!("{repo}#issue:{number}"),
                kind: event,
                delivery,
            })
        }
        "check_run" => {
            if action != "completed" {
                return ignored(format!("check_run {action}"));
            }
            if !cfg.track_check_run {
                return ignored("trackCheckRun is off".into());
            }
            let run = body.get("check_run").cloned().unwrap_or(Value::Null);
            let conclusion = run.get("conclusion").and_then(Value::as_str).unwrap_or("");
            if !FAILING_CONCLUSIONS.contains(&conclusion) {
                return ignored(format!("check run concluded {conclusion:?}"));
            }
            let Some(pr) = run
                .get("pull_requests")
                .and_then(Value::as_array)
                .and_then(|p| p.first())
            else {
                return ignored("check run not attached to a pull request".into());
            };
            let number = pr.get("number").and_then(Value::as_u64).unwrap_or(0);
            let name = run.get("name").and_then(Value::as_str).unwrap_or("check");
            let branch = pr
                .pointer("/head/ref")
                .and_then(Value::as_str)
                .unwrap_or("");
            let out_title = run
                .pointer("/output/title")
                .and_then(Value::as_str)
                .unwrap_or("");
            let summary = run
                .pointer("/output/summary")
                .and_then(Value::as_str)
                .unwrap_or("");
            let details = run
                .get("details_url")
                .or_else(|| run.get("html_url"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let text = format!(
                "Check run \"{name}\" on pull request #{number} ({branch}) concluded {conclusion}: \
                 {out_title}\n\n{summary}\n\nDetails: {details}"
            );
            work_item(Item {
                body,
                repo,
                number,
                title: cut_title(
                    &format!("[{repo}#{number}] CI: {name} \u{2014} {conclusion}"),
                    200,
                ),
                text,
                source_ref: format!(
                    "{repo}#pr:{number}#check:{}",
                    run.get("id").and_then(Value::as_u64).unwrap_or(0)
                ),
                kind: event,
                delivery,
            })
        }
        other => ignored(format!("event {other:?} is not handled")),
    }
}

/// A GitHub API request with the headers GitHub requires.
fn api(method: &str, url: &str, bearer: &str) -> Request {
    Request::new(method, url)
        .header("accept", "application/vnd.github+json")
        .header("x-github-api-version", "2022-11-28")
        .header("user-agent", USER_AGENT)
        .header("authorization", &format!("Bearer {bearer}"))
}

/// The hidden marker a reply's comment carries (an HTML comment GitHub does not render), so an
/// attempt that lost GitHub's answer can find the comment instead of posting it twice.
fn reply_marker(idempotency_key: &str) -> String {
    let key: String = idempotency_key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        .take(128)
        .collect();
    format!("<!-- nitejar-reply:{key} -->")
}

/// What a created (or found) comment says about itself.
fn posted(comment: &Value) -> PostResult {
    PostResult {
        delivered: true,
        external_id: comment.get("id").map(|id| id.to_string()),
        detail: comment
            .get("html_url")
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

/// Looks for the comment carrying `marker` among the issue's comments updated since shortly
/// before `since` (Unix seconds; the whole list when unknown), newest pages included.
fn find_comment(
    url: &str,
    token: &str,
    marker: &str,
    since: Option<u64>,
) -> Result<Option<PostResult>, PluginError> {
    let mut query = String::from("per_page=100");
    if let Some(t) = since {
        query.push_str(&format!(
            "&since={}",
            delivery::rfc3339(t.saturating_sub(300))
        ));
    }
    for page in 1..=10 {
        let resp = api("GET", &format!("{url}?{query}&page={page}"), token).send()?;
        if resp.status != 200 {
            return Err(api_error("list comments", &resp));
        }
        let list = resp.json().unwrap_or(Value::Null);
        let Some(items) = list.as_array() else {
            return Ok(None);
        };
        if let Some(c) = items.iter().find(|c| {
            c.get("body")
                .and_then(Value::as_str)
                .is_some_and(|b| b.contains(marker))
        }) {
            return Ok(Some(posted(c)));
        }
        if items.len() < 100 {
            break;
        }
    }
    Ok(None)
}

/// Maps a non-success answer to a plugin error (never including credentials).
fn api_error(what: &str, resp: &Response) -> PluginError {
    let message = resp
        .json()
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default();
    let msg = format!(
        "GitHub {what} failed ({}): {}",
        resp.status,
        message.chars().take(300).collect::<String>()
    );
    let rate_limited = resp.status == 429
        || (resp.status == 403 && resp.header("x-ratelimit-remaining") == Some("0"));
    if rate_limited || resp.status >= 500 {
        PluginError::retryable("upstream_error", msg)
    } else {
        PluginError::new("upstream_rejected", msg)
    }
}

/// A bearer token for repository calls.
fn bearer(
    cfg: &Config,
    installation_id: Option<u64>,
) -> Result<(String, Option<u64>), PluginError> {
    match &cfg.auth {
        None => Err(PluginError::new(
            "invalid_config",
            "no credentials to post replies: set `token`, or `appId` and `privateKey` \
             (`clientId` and `clientSecret` alone cannot post)",
        )),
        Some(Auth::Token(t)) => Ok((t.clone(), None)),
        Some(Auth::App {
            app_id,
            private_key,
        }) => {
            let id = installation_id.ok_or_else(|| {
                PluginError::new(
                    "invalid_input",
                    "no installation id in the webhook; is the webhook sent by the GitHub App?",
                )
            })?;
            let now = auth::now();
            if let Some(t) = auth::cached_token(private_key, id, now) {
                return Ok((t, Some(id)));
            }
            let jwt = auth::app_jwt(app_id, private_key, now)?;
            let url = format!("{}/app/installations/{id}/access_tokens", cfg.api_base_url);
            let resp = api("POST", &url, &jwt).send()?;
            if resp.status != 201 && resp.status != 200 {
                return Err(api_error("installation token exchange", &resp));
            }
            let v = resp.json()?;
            let token = v
                .get("token")
                .and_then(Value::as_str)
                .ok_or_else(|| PluginError::new("upstream_error", "no token in GitHub's answer"))?;
            let expires = v
                .get("expires_at")
                .and_then(Value::as_str)
                .and_then(auth::parse_timestamp)
                .unwrap_or(now + 3600);
            auth::store_token(private_key, id, token, expires);
            Ok((token.to_string(), Some(id)))
        }
    }
}

impl Integration for GitHub {
    fn describe() -> Vec<Descriptor> {
        vec![Descriptor {
            integration_type: TYPE.into(),
            display_name: "GitHub".into(),
            description: "Issue comments that mention the bot, new issues and failed checks on \
                          pull requests become work items; the agent answers with a comment."
                .into(),
            icon: "github".into(),
            category: Category::Code,
            response_mode: ResponseMode::Final,
            config_schema: json!({
                "type": "object",
                "properties": {
                    "webhookSecret": {"type": "string", "title": "Webhook secret", "description": "Required unless manifestPending; the same secret as in the GitHub webhook settings."},
                    "token": {"type": "string", "title": "Token", "description": "A personal access or fine-grained token; or use a GitHub App below."},
                    "appId": {"type": ["string", "integer"], "title": "GitHub App id"},
                    "appSlug": {"type": "string", "title": "GitHub App slug"},
                    "clientId": {"type": "string", "title": "GitHub App client id"},
                    "clientSecret": {"type": "string", "title": "GitHub App client secret"},
                    "privateKey": {"type": "string", "title": "GitHub App private key (PEM)"},
                    "allowedRepos": {"type": "array", "items": {"type": "string", "pattern": "^[^/]+/[^/]+$"}, "title": "Allowed repositories (owner/repo)"},
                    "commentPolicy": {"enum": ["mentions", "all"], "default": "all", "title": "Issue comments"},
                    "mentionHandle": {"type": "string", "default": "@nitejar", "title": "Mention handle", "description": "With commentPolicy mentions, the handle a comment must mention."},
                    "trackIssueOpen": {"type": "boolean", "default": true, "title": "Answer opened issues"},
                    "trackCheckRun": {"type": "boolean", "default": true, "title": "Answer failed checks on pull requests"},
                    "tokenTTL": {"type": "integer"},
                    "permissions": {"type": "object"},
                    "manifestPending": {"type": "boolean"},
                    "apiBaseUrl": {"type": "string", "title": "API base URL", "description": "Default https://api.github.com (GitHub Enterprise: https://HOST/api/v3; that host must also be granted)."}
                },
                // Fields Nitejar or a newer version wrote are kept, not refused.
                "additionalProperties": true
            })
            .to_string(),
            ui_schema: Some(
                json!({
                    "ui:order": ["webhookSecret", "token", "appId", "appSlug", "privateKey", "allowedRepos", "commentPolicy", "mentionHandle", "trackIssueOpen", "trackCheckRun"],
                    "webhookSecret": {"ui:widget": "password"},
                    "token": {"ui:widget": "password"},
                    "clientSecret": {"ui:widget": "password"},
                    "privateKey": {"ui:widget": "textarea", "ui:sensitive": true}
                })
                .to_string(),
            ),
            sensitive_fields: vec![
                "privateKey".into(),
                "clientSecret".into(),
                "webhookSecret".into(),
                "token".into(),
            ],
        }]
    }

    fn validate_config(_t: String, config: String) -> Result<(), Vec<String>> {
        Config::parse(&config, true).map(|_| ())
    }

    fn parse_webhook(instance: Instance, req: WebhookRequest) -> Result<ParseOutcome, PluginError> {
        let cfg = Config::from_instance(&instance.config)?;
        let Some(secret) = &cfg.webhook_secret else {
            return Ok(ParseOutcome::Unauthorized(
                "no webhookSecret is configured for this instance".into(),
            ));
        };
        if !signature_valid(secret, &req.body, header(&req, "x-hub-signature-256")) {
            return Ok(ParseOutcome::Unauthorized(
                "X-Hub-Signature-256 does not match the body".into(),
            ));
        }
        let Some(event) = header(&req, "x-github-event").filter(|e| !e.is_empty()) else {
            return Ok(bad_request(
                "missing_event",
                "the X-GitHub-Event header is required",
            ));
        };
        let delivery = header(&req, "x-github-delivery").filter(|d| !d.trim().is_empty());
        let body: Value = match serde_json::from_slice(&req.body) {
            Ok(v @ Value::Object(_)) => v,
            _ => return Ok(bad_request("invalid_body", "the body is not a JSON object")),
        };
        if event == "ping" {
            return Ok(ParseOutcome::Respond(WebhookResponse {
                status: 200,
                headers: vec![Header {
                    name: "content-type".into(),
                    value: "application/json".into(),
                }],
                body: json!({ "ok": true, "event": "ping", "hookId": body.get("hook_id") })
                    .to_string()
                    .into_bytes(),
            }));
        }
        if matches!(event, "installation" | "installation_repositories") {
            return installation_event(event, &body);
        }
        let Some(delivery) = delivery else {
            return Ok(bad_request(
                "missing_delivery",
                "the X-GitHub-Delivery header is required (it identifies a redelivery)",
            ));
        };
        Ok(parse_event(&cfg, event, delivery, &body))
    }

    fn post_response(
        instance: Instance,
        _work_item_id: String,
        content: String,
        response_context: Option<String>,
        options: PostOptions,
    ) -> Result<PostResult, PluginError> {
        let cfg = Config::from_instance(&instance.config)?;
        let ctx: Value = response_context
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or(Value::Null);
        let (Some(owner), Some(repo), Some(number)) = (
            ctx.get("owner").and_then(Value::as_str),
            ctx.get("repo").and_then(Value::as_str),
            ctx.get("issueNumber").and_then(Value::as_u64),
        ) else {
            return Err(PluginError::new(
                "invalid_input",
                "the response context lacks owner, repo or issueNumber",
            ));
        };
        let mut guard = delivery::Guard::new(&options);
        if guard.part(0) == delivery::Part::Sent {
            // Posted by an earlier attempt whose outcome the host did not record.
            return Ok(PostResult {
                delivered: true,
                external_id: guard.external_id().map(str::to_string),
                detail: Some("already posted by an earlier attempt".into()),
            });
        }
        let mut body = content;
        if body.chars().count() > MAX_COMMENT_CHARS {
            body = body.chars().take(MAX_COMMENT_CHARS).collect();
            body.push_str("\n\n…(truncated)");
        }
        let marker = options.idempotency_key.as_deref().map(reply_marker);
        if let Some(m) = &marker {
            body.push_str("\n\n");
            body.push_str(m);
        }
        let (token, installation) =
            bearer(&cfg, ctx.get("installationId").and_then(Value::as_u64))?;
        let url = format!(
            "{}/repos/{owner}/{repo}/issues/{number}/comments",
            cfg.api_base_url
        );
        if guard.part(0) == delivery::Part::Uncertain
            && let Some(m) = &marker
        {
            // An earlier attempt handed the comment to GitHub and got no answer: look for it
            // before posting again.
            if let Some(found) = find_comment(&url, &token, m, guard.started_at())? {
                guard.sent(0, found.external_id.as_deref());
                return Ok(found);
            }
        }
        guard.sending(0);
        // No answer (`?`): GitHub may have the comment; the guard stays uncertain, so the next
        // attempt looks for it first.
        let resp = api("POST", &url, &token)
            .json(&json!({ "body": body }))
            .send()?;
        if resp.status == 401
            && let Some(id) = installation
        {
            guard.not_sent(0);
            // A revoked or expired installation token: forget it, let the host retry.
            auth::forget_token(id);
            return Err(PluginError::retryable(
                "upstream_error",
                "GitHub refused the cached installation token; it was dropped",
            ));
        }
        if resp.status != 201 && resp.status != 200 {
            guard.not_sent(0);
            return Err(api_error("comment", &resp));
        }
        let result = posted(&resp.json().unwrap_or(Value::Null));
        guard.sent(0, result.external_id.as_deref());
        Ok(result)
    }

    fn test_connection(_t: String, config: String) -> Result<ConnectionStatus, PluginError> {
        let cfg = match Config::parse(&config, false) {
            Ok(c) => c,
            Err(p) => {
                return Ok(ConnectionStatus {
                    ok: false,
                    detail: Some(p.join("; ")),
                });
            }
        };
        let failed = |detail: String| {
            Ok(ConnectionStatus {
                ok: false,
                detail: Some(detail),
            })
        };
        let (url, bearer, what) = match &cfg.auth {
            None => {
                return failed(
                    "no credentials to post replies: set `token`, or `appId` and \
                     `privateKey` (`clientId` and `clientSecret` alone cannot post)"
                        .into(),
                );
            }
            Some(Auth::Token(t)) => (format!("{}/user", cfg.api_base_url), t.clone(), "token"),
            Some(Auth::App {
                app_id,
                private_key,
            }) => (
                format!("{}/app", cfg.api_base_url),
                auth::app_jwt(app_id, private_key, auth::now())?,
                "App",
            ),
        };
        let resp = match api("GET", &url, &bearer).send() {
            Ok(r) => r,
            Err(e) => return failed(format!("could not reach the GitHub API: {e}")),
        };
        if resp.status != 200 {
            return failed(format!(
                "GitHub refused the {what} ({}); check the credentials",
                resp.status
            ));
        }
        let v = resp.json().unwrap_or(Value::Null);
        let name = v
            .get("login")
            .or_else(|| v.get("slug"))
            .and_then(Value::as_str)
            .unwrap_or("?");
        Ok(ConnectionStatus {
            ok: true,
            detail: Some(format!("authenticated as {what} {name}")),
        })
    }
}

export_plugin!(GitHub: Integration);

#[cfg(test)]
mod tests;
