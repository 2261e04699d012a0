//! The admin web UI at `/admin`: server-rendered pages (templates compiled into the binary,
//! every value auto-escaped), one stylesheet and one small script file (progressive
//! enhancement only: copy buttons, upload feedback; no inline script), nothing fetched from
//! another host.
//!
//! - **Sign-in** with the admin token (compared in constant time) gives a session cookie
//!   (`HttpOnly`, `SameSite=Strict`, `Path=/admin`, `Secure` when the request came over TLS:
//!   `X-Forwarded-Proto: https` or an `https` `NITEJAR_PUBLIC_URL`). Sessions live in memory
//!   (a restart signs everyone out), end after [`SESSION_IDLE`] without a request, and on
//!   sign-out. A page requested without a session redirects to sign-in.
//! - **Every state-changing form** is a POST carrying the session's CSRF token (compared in
//!   constant time); a POST whose `Origin` is another host is refused before anything else.
//! - **Headers** on every page: a strict Content-Security-Policy (`default-src 'none'`, the
//!   stylesheet from this origin, the one script by its hash, no inline script or style,
//!   forms to this origin only, no framing), `X-Content-Type-Options: nosniff`, `Referrer-Policy: same-origin` (not
//!   `no-referrer`: with it browsers send `Origin: null` on the UI's own form posts, which the
//!   same-origin check must refuse), `Cache-Control: no-store`.
//!
//! Pages read the same typed answers as the API (`nitejar-api`), by calling the API's own
//! handlers, so what a page shows is what the API reports.

mod forms;
mod install;
mod instances;
mod lifecycle;
mod plugins;
mod schema_form;
mod session;
mod system;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::Environment;
use nitejar_core::app::App;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A session ends after this long without a request.
pub const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);

/// At most this many sessions at once; signing in beyond it ends the least recently used.
pub const MAX_SESSIONS: usize = 256;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "nitejar_session";

/// The Content-Security-Policy of every UI answer: nothing from elsewhere, no inline script or
/// style, and the only script that may run is `app.js` itself (allowed by its hash, not by
/// origin: every other path of this origin, plugin webhook answers included, stays unable to
/// serve script to the UI).
pub fn content_security_policy() -> &'static str {
    static CSP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CSP.get_or_init(|| {
        format!(
            "default-src 'none'; script-src '{}'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            script_integrity()
        )
    })
}

/// `sha384-<base64>` of `app.js`: its `integrity` attribute and its CSP source.
pub fn script_integrity() -> &'static str {
    static SRI: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SRI.get_or_init(|| {
        use base64::Engine as _;
        use sha2::Digest as _;
        let digest = sha2::Sha384::digest(SCRIPT.as_bytes());
        format!(
            "sha384-{}",
            base64::engine::general_purpose::STANDARD.encode(digest)
        )
    })
}

const STYLESHEET: &str = include_str!("assets/app.css");

/// The only script: progressive enhancement (copy buttons, upload feedback); every page works
/// without it.
const SCRIPT: &str = include_str!("assets/app.js");

/// One signed-in browser.
#[derive(Clone)]
struct Session {
    csrf: String,
    last_seen: Instant,
    /// What the last action did, shown once on the next page.
    notice: Option<String>,
}

/// The UI's state: the app, the templates, the sessions.
pub struct Ui {
    app: Arc<App>,
    templates: Environment<'static>,
    sessions: Mutex<HashMap<String, Session>>,
    staged: install::Staging,
}

/// The signed-in session of a request (put there by [`require_session`]).
#[derive(Clone)]
pub struct SignedIn {
    /// The session id (the cookie's value).
    pub id: String,
    /// The form token of this session.
    pub csrf: String,
    /// What the last action did (taken from the session by the page that shows it).
    pub notice: Option<String>,
}

fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The templates, compiled into the binary.
fn templates() -> Environment<'static> {
    let mut env = Environment::new();
    // Names end in .html, so every value is HTML-escaped unless marked safe (none is).
    for (name, source) in [
        ("base.html", include_str!("templates/base.html")),
        ("login.html", include_str!("templates/login.html")),
        ("error.html", include_str!("templates/error.html")),
        ("overview.html", include_str!("templates/overview.html")),
        ("plugins.html", include_str!("templates/plugins.html")),
        ("plugin.html", include_str!("templates/plugin.html")),
        ("events.html", include_str!("templates/events.html")),
        ("receipts.html", include_str!("templates/receipts.html")),
        ("uninstall.html", include_str!("templates/uninstall.html")),
        ("install.html", include_str!("templates/install.html")),
        ("preview.html", include_str!("templates/preview.html")),
        ("fields.html", include_str!("templates/fields.html")),
        ("field.html", include_str!("templates/field.html")),
        ("instances.html", include_str!("templates/instances.html")),
        (
            "instance_form.html",
            include_str!("templates/instance_form.html"),
        ),
        ("instance.html", include_str!("templates/instance.html")),
        ("work_items.html", include_str!("templates/work_items.html")),
        ("runs.html", include_str!("templates/runs.html")),
        ("run.html", include_str!("templates/run.html")),
        ("hooks.html", include_str!("templates/hooks.html")),
        ("doctor.html", include_str!("templates/doctor.html")),
        ("skills.html", include_str!("templates/skills.html")),
        ("skill.html", include_str!("templates/skill.html")),
        ("agents.html", include_str!("templates/agents.html")),
        ("import.html", include_str!("templates/import.html")),
    ] {
        env.add_template(name, source)
            .expect("the UI's templates are valid (checked by the tests)");
    }
    env.add_global("script_integrity", script_integrity());
    env.add_filter("when", when);
    env.add_filter("short", |s: String| s.chars().take(12).collect::<String>());
    env
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS UTC` (a template filter).
fn when(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

impl Ui {
    fn new(app: Arc<App>) -> Ui {
        Ui {
            app,
            templates: templates(),
            sessions: Mutex::new(HashMap::new()),
            staged: install::Staging::default(),
        }
    }

    /// Renders a signed-in page: `ctx` plus what every page's frame needs (the navigation,
    /// the form token, the safe-mode banner, the notice of the last action).
    fn page(
        &self,
        s: &SignedIn,
        template: &str,
        title: &str,
        nav: &str,
        ctx: minijinja::Value,
    ) -> Response {
        self.render(
            template,
            minijinja::context! {
                title => title,
                nav => nav,
                csrf => s.csrf.clone(),
                notice => s.notice.clone(),
                safe_mode => self.app.config.safe_mode,
                ..ctx
            },
        )
    }

    /// Keeps `message` for the session's next page (after a redirect).
    fn notify(&self, s: &SignedIn, message: impl Into<String>) {
        if let Some(session) = self.sessions.lock().expect("sessions lock").get_mut(&s.id) {
            session.notice = Some(message.into());
        }
    }

    /// Renders `template` with `ctx`; a rendering failure is a plain 500 page.
    fn render(&self, template: &str, ctx: minijinja::Value) -> Response {
        match self
            .templates
            .get_template(template)
            .and_then(|t| t.render(ctx))
        {
            Ok(html) => Html(html).into_response(),
            Err(e) => {
                tracing::error!("rendering {template} failed: {e:#}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the page could not be rendered",
                )
                    .into_response()
            }
        }
    }

    /// A page telling what went wrong, with `status`.
    fn error_page(
        &self,
        status: StatusCode,
        signed_in: Option<&SignedIn>,
        message: &str,
    ) -> Response {
        let mut resp = self.render(
            "error.html",
            minijinja::context! {
                title => status.canonical_reason().unwrap_or("Error"),
                status => status.as_u16(),
                message => message,
                csrf => signed_in.map(|s| s.csrf.clone()),
            },
        );
        *resp.status_mut() = status;
        resp
    }

    /// The live session `id`, touched; `take_notice` moves its notice out (a page shows it).
    fn session(&self, id: &str, take_notice: bool) -> Option<Session> {
        let mut sessions = self.sessions.lock().expect("sessions lock");
        let now = Instant::now();
        sessions.retain(|_, s| now.duration_since(s.last_seen) < SESSION_IDLE);
        let s = sessions.get_mut(id)?;
        s.last_seen = now;
        let copy = s.clone();
        if take_notice {
            s.notice = None;
        }
        Some(copy)
    }

    fn start_session(&self) -> String {
        let mut sessions = self.sessions.lock().expect("sessions lock");
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
        let id = random_token();
        sessions.insert(
            id.clone(),
            Session {
                csrf: random_token(),
                last_seen: Instant::now(),
                notice: None,
            },
        );
        id
    }

    fn end_session(&self, id: &str) {
        self.sessions.lock().expect("sessions lock").remove(id);
        self.staged.drop_session(id);
    }
}

/// The session id the request's cookie names, if any.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
}

/// Whether the request arrived over TLS (directly behind a proxy that says so, or the host's
/// public URL is https).
fn over_tls(app: &App, headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
        || app
            .config
            .public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
}

/// A POST from another site: its `Origin` names a host other than the one it was sent to.
fn cross_site(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        // No Origin (an older browser, or not a browser): the CSRF token decides.
        return false;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("");
    origin == "null" || !origin_host.eq_ignore_ascii_case(host)
}

/// Security headers on every UI answer.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(content_security_policy()) {
        h.insert("content-security-policy", csp);
    }
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    resp
}

/// Pages need a session: without one, a redirect to sign-in. A POST also needs the same
/// origin (checked here) and the session's CSRF token (checked by the form's handler).
async fn require_session(State(ui): State<Arc<Ui>>, mut req: Request, next: Next) -> Response {
    if req.method() == axum::http::Method::POST && cross_site(req.headers()) {
        return ui.error_page(
            StatusCode::FORBIDDEN,
            None,
            "This form was sent from another site; nothing was changed.",
        );
    }
    let is_get = req.method() == axum::http::Method::GET;
    let Some((id, session)) =
        session_cookie(req.headers()).and_then(|id| ui.session(&id, is_get).map(|s| (id, s)))
    else {
        return Redirect::to("/admin/login").into_response();
    };
    req.extensions_mut().insert(SignedIn {
        id,
        csrf: session.csrf,
        notice: session.notice,
    });
    next.run(req).await
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLESHEET,
    )
        .into_response()
}

/// The UI's routes, to be served under `/admin`.
pub fn router(app: Arc<App>) -> Router {
    let ui = Arc::new(Ui::new(app));
    let upload_limit = DefaultBodyLimit::max(nitejar_core::limits::MAX_UPLOAD_BYTES + 64 * 1024);
    let pages = Router::new()
        .route("/", get(plugins::overview))
        .route("/plugins", get(plugins::plugins))
        .route("/plugins/{id}", get(plugins::plugin))
        .route("/plugins/{id}/events", get(plugins::events))
        .route("/plugins/{id}/enable", post(plugins::enable))
        .route("/plugins/{id}/disable", post(plugins::disable))
        .route("/plugins/{id}/grants", post(plugins::grant))
        .route("/plugins/{id}/revoke", post(plugins::revoke))
        .route("/plugins/{id}/secrets", post(plugins::set_secret))
        .route("/plugins/{id}/limits", post(plugins::set_limits))
        .route("/plugins/{id}/hooks/{hook}", post(plugins::set_hook))
        .route(
            "/plugins/{id}/upgrade",
            get(install::upgrade_start).post(lifecycle::upgrade),
        )
        .route("/plugins/{id}/upgrade/approve", post(lifecycle::approve))
        .route("/plugins/{id}/upgrade/discard", post(lifecycle::discard))
        .route("/plugins/{id}/rollback", post(lifecycle::rollback))
        .route("/plugins/{id}/reload", post(lifecycle::reload))
        .route(
            "/plugins/{id}/uninstall",
            get(lifecycle::uninstall_form).post(lifecycle::uninstall),
        )
        .route("/install", get(install::start).post(install::install))
        .route("/install/preview", post(install::preview))
        .route(
            "/install/upload",
            post(install::preview_upload).layer(upload_limit),
        )
        .route("/instances", get(instances::list).post(instances::create))
        .route("/instances/new", get(instances::new_form))
        .route(
            "/instances/{id}",
            get(instances::show).post(instances::update),
        )
        .route("/instances/{id}/{action}", post(instances::action))
        .route("/runs", get(instances::runs))
        .route("/runs/{id}", get(instances::run))
        .route("/hooks", get(system::hooks))
        .route("/doctor", get(system::doctor))
        .route("/skills", get(system::skills).post(system::create_skill))
        .route("/skills/sync", post(system::sync_skills))
        .route(
            "/skills/{id}",
            get(system::skill).post(system::update_skill),
        )
        .route("/skills/{id}/assignments", post(system::assign_skill))
        .route("/skills/{id}/delete", post(system::delete_skill))
        .route("/agents", get(system::agents).post(system::create_agent))
        .route("/agents/{id}", post(system::update_agent))
        .route("/import", get(system::import_form).post(system::import))
        .route("/logout", post(session::logout))
        .layer(axum::middleware::from_fn_with_state(
            ui.clone(),
            require_session,
        ));
    Router::new()
        .route("/login", get(session::login_form).post(session::login))
        .route("/app.css", get(stylesheet))
        .route("/app.js", get(script))
        .merge(pages)
        .fallback(session::not_found)
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(ui)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A preview as the API answers it.
    fn preview(allowed: bool, action: &str) -> serde_json::Value {
        serde_json::json!({
            "pluginId": "a", "name": "<b>", "version": "1.1.0", "description": "<b>",
            "author": null, "license": "MIT", "homepage": null, "checksum": "c0ffee",
            "apiVersion": "0.1.0", "engine": {"nitejar": ">=0.1"},
            "source": {"kind": "upload", "ref": "a.tgz", "commit": null},
            "permissions": ["network:x", "secret:k"],
            "contributes": {"integrations": ["t"], "hooks": ["run.pre_prompt", {"event": "tool.pre_exec", "priority": 2}], "skills": [], "tools": ["x"]},
            "trust": {"mode": "self_host_guarded", "allowed": allowed, "level": "unsigned", "basis": "open_mode", "reason": "<b>", "signed": false},
            "action": action, "installed": {"version": "1.0.0", "enabled": true},
            "permissionDiff": {"added": ["secret:k"], "removed": ["network:z"]},
            "executionMode": "wasm_sandbox", "consentText": "<b>",
        })
    }

    #[test]
    fn times_are_shown_in_utc() {
        assert_eq!(when(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(when(1_764_578_400_000), "2025-12-01 08:40:00 UTC");
        assert_eq!(when(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(when(-1000), "1969-12-31 23:59:59 UTC");
    }

    /// Every template renders every branch (a wrong filter or field fails here, not as a 500).
    #[test]
    fn every_template_renders_every_branch() {
        let env = templates();
        let plugin = serde_json::json!({
            "id": "a/b c", "name": "<b>", "enabled": false, "loaded": false,
            "trustLevel": "untrusted", "sourceKind": "npm", "sourceRef": "x", "version": "1.0.0",
            "pendingVersion": "1.1.0", "lastLoadError": "boom",
            "alert": {"kind": "crash_loop", "message": "disabled after 5 failures"},
            "effectiveLimitations": ["a", "b"], "recentFailures": 2, "checksum": "c0ffee",
            "description": "<b>",
            "contributes": {"integrations": ["t"], "hooks": [], "skills": ["s"], "tools": []},
        });
        let enabled = serde_json::json!({"id": "c", "name": "c", "enabled": true, "loaded": true,
            "trustLevel": "builtin", "sourceKind": "builtin", "effectiveLimitations": [],
            "contributes": {"integrations": [], "hooks": [], "skills": [], "tools": []}});
        let runtime = serde_json::json!({"executionMode": "wasm_sandbox", "trustMode": "self_host_open",
            "hostEnforcedControls": ["x"], "effectiveLimitations": ["y"]});
        let receipts = serde_json::json!([
            {"kind": "hook", "status": "ok", "hookName": "run.pre_prompt", "durationMs": 0, "detailJson": "{}", "createdAt": 5},
            {"kind": "integration", "status": "error", "hookName": null, "durationMs": null, "detailJson": "<b>", "createdAt": 6},
        ]);
        let integration =
            serde_json::json!({"type": "t", "displayName": "<b>", "description": "<b>"});
        let form_fields = serde_json::json!([
            {"key": "a<b>", "label": "<b>", "help": "<b>", "widget": "password", "required": true, "value": "********", "checked": false, "options": [], "advanced": false, "sensitive": true},
            {"key": "b", "label": "b", "help": null, "widget": "checkbox", "required": false, "value": "", "checked": true, "options": [], "advanced": false, "sensitive": false},
            {"key": "c", "label": "c", "help": "h", "widget": "select", "required": true, "value": "y", "checked": false, "options": ["x", "y"], "advanced": true, "sensitive": false},
            {"key": "d", "label": "d", "help": "h", "widget": "list", "required": false, "value": "1, 2", "checked": false, "options": [], "advanced": true, "sensitive": false},
            {"key": "e", "label": "e", "help": null, "widget": "number", "required": false, "value": "3", "checked": false, "options": [], "advanced": false, "sensitive": false},
        ]);
        let work_items = serde_json::json!([
            {"id": "w", "title": "<b>", "status": "failed", "sessionKey": "s", "createdAt": 0, "text": "<b>",
             "pluginInstanceId": "i", "integrationType": "t"},
            {"id": "w2", "title": "", "status": "done", "sessionKey": "s", "createdAt": 1}]);
        let cases = [
            (
                "login.html",
                minijinja::context! { title => "t", error => "e" },
            ),
            ("login.html", minijinja::context! { title => "t" }),
            (
                "error.html",
                minijinja::context! { title => "t", message => "m", csrf => "c", safe_mode => true },
            ),
            (
                "overview.html",
                minijinja::context! {
                    title => "t", nav => "overview", csrf => "c", safe_mode => true,
                    runtime => minijinja::Value::from_serialize(&runtime),
                    attention => minijinja::Value::from_serialize(serde_json::json!([
                        {"id": "a", "name": "<b>", "reasons": ["<b>", "load error: x"]}])),
                    plugin_count => 2, enabled_count => 1,
                    chart => minijinja::Value::from_serialize(serde_json::json!([
                        {"x": 0, "received": 60, "done": 30, "failed": 5, "label": "<b>"}])),
                    totals => (1, 2, 3),
                    failures => minijinja::Value::from_serialize(&receipts),
                },
            ),
            (
                "overview.html",
                minijinja::context! {
                    title => "t", nav => "overview", csrf => "c",
                    runtime => minijinja::Value::from_serialize(&runtime),
                    attention => minijinja::Value::from_serialize(Vec::<serde_json::Value>::new()),
                    plugin_count => 0, enabled_count => 0,
                    chart => minijinja::Value::from_serialize(Vec::<serde_json::Value>::new()),
                    totals => (0, 0, 0),
                    failures => minijinja::Value::from_serialize(Vec::<serde_json::Value>::new()),
                },
            ),
            (
                "plugins.html",
                minijinja::context! {
                    title => "t", nav => "plugins", csrf => "c",
                    plugins => minijinja::Value::from_serialize([&plugin, &enabled]),
                },
            ),
            (
                "plugin.html",
                minijinja::context! {
                    title => "t", nav => "plugins", csrf => "c", notice => "<b>",
                    plugin => minijinja::Value::from_serialize(&plugin),
                    disclosures => minijinja::Value::from_serialize(serde_json::json!([
                        {"permission": "network:x", "acknowledged": false},
                        {"permission": "secret:k", "acknowledged": true}])),
                    secrets => minijinja::Value::from_serialize(serde_json::json!([
                        {"key": "k", "set": true}, {"key": "<b>", "set": false}])),
                    pending => minijinja::Value::from_serialize(serde_json::json!({
                        "pluginId": "a", "fromVersion": "1.0.0", "version": "1.1.0",
                        "status": "pending_consent", "addedPermissions": ["network:y"],
                        "removedPermissions": ["network:x"]})),
                    diff => minijinja::Value::from_serialize(serde_json::json!([
                        {"permission": "network:x", "active": true, "pending": false, "granted": false, "added": false},
                        {"permission": "network:y", "active": false, "pending": true, "granted": false, "added": true}])),
                    versions => minijinja::Value::from_serialize(serde_json::json!({
                        "pluginId": "a", "active": "1.0.0", "pending": "1.1.0", "versions": [
                        {"version": "1.0.0", "checksum": "abcdef0123456789", "installedAt": 1_764_578_400_000i64,
                         "source": {"kind": "git", "ref": "https://x", "commit": "0123456789abcdef"}},
                        {"version": "1.1.0", "checksum": "ffff", "installedAt": 0, "source": null}]})),
                    health => minijinja::Value::from_serialize(serde_json::json!({
                        "healthy": false, "files": "ok", "cache": "compiled",
                        "problems": [{"check": "load", "detail": "<b>", "fix": "f"}]})),
                    receipts => minijinja::Value::from_serialize(&receipts),
                    hooks => minijinja::Value::from_serialize(serde_json::json!([
                        {"event": "run.pre_prompt", "priority": 1, "failPolicy": "fail_open", "timeoutMs": null, "override": null},
                        {"event": "tool.pre_exec", "priority": 0, "failPolicy": "fail_closed", "timeoutMs": 50,
                         "override": {"priority": 3, "failPolicy": "fail_open", "enabled": false}}])),
                    fuel_max => 10, fuel_override => 5,
                    history => minijinja::Value::from_serialize(&receipts),
                },
            ),
            (
                "plugin.html",
                minijinja::context! {
                    title => "t", nav => "plugins", csrf => "c",
                    plugin => minijinja::Value::from_serialize(&enabled),
                    disclosures => minijinja::Value::from_serialize(Vec::<serde_json::Value>::new()),
                    secrets => minijinja::Value::from_serialize(Vec::<serde_json::Value>::new()),
                    diff => minijinja::Value::from_serialize(Vec::<serde_json::Value>::new()),
                    versions => minijinja::Value::from_serialize(serde_json::json!({"versions": []})),
                    health => minijinja::Value::from_serialize(serde_json::json!({"healthy": true, "problems": []})),
                    receipts => minijinja::Value::from_serialize(Vec::<serde_json::Value>::new()),
                    hooks => minijinja::Value::from_serialize(Vec::<serde_json::Value>::new()),
                },
            ),
            (
                "events.html",
                minijinja::context! {
                    title => "t", nav => "plugins", csrf => "c",
                    plugin => minijinja::Value::from_serialize(&plugin),
                    events => minijinja::Value::from_serialize(&receipts),
                    next => "kind=&status=&cursor=x", first_page => false, filter_query => "kind=&status=",
                    kind => "hook", status => "<b>", kinds => ["hook", "<b>"], statuses => ["ok"],
                },
            ),
            (
                "uninstall.html",
                minijinja::context! { title => "t", csrf => "c", plugin => minijinja::Value::from_serialize(&plugin) },
            ),
            (
                "install.html",
                minijinja::context! { title => "t", csrf => "c", max_mib => 50, trust_mode => "self_host_open" },
            ),
            (
                "install.html",
                minijinja::context! { title => "t", csrf => "c", max_mib => 50, trust_mode => "x",
                upgrading => true, plugin => minijinja::Value::from_serialize(&plugin) },
            ),
            (
                "preview.html",
                minijinja::context! { title => "t", csrf => "c",
                preview => minijinja::Value::from_serialize(preview(true, "install")),
                carry => minijinja::Value::from_serialize(serde_json::json!({"staged": "tok"})) },
            ),
            (
                "preview.html",
                minijinja::context! { title => "t", csrf => "c",
                preview => minijinja::Value::from_serialize(preview(true, "upgrade")),
                carry => minijinja::Value::from_serialize(serde_json::json!({"sourceKind": "git", "sourceRef": "<b>", "ref": "main"})) },
            ),
            (
                "preview.html",
                minijinja::context! { title => "t", csrf => "c",
                preview => minijinja::Value::from_serialize(preview(false, "older_version")),
                carry => minijinja::Value::from_serialize(serde_json::json!({})) },
            ),
            (
                "instances.html",
                minijinja::context! { title => "t", csrf => "c",
                instances => minijinja::Value::from_serialize(serde_json::json!([
                    {"id": "i", "name": "<b>", "type": "t", "enabled": true, "pluginId": "p", "pluginAvailable": false, "updatedAt": 0}])),
                types => minijinja::Value::from_serialize(serde_json::json!([
                    {"type": "t", "displayName": "<b>", "description": "d", "pluginId": "p"}])) },
            ),
            (
                "instances.html",
                minijinja::context! { title => "t", csrf => "c",
                instances => minijinja::Value::from_serialize(Vec::<serde_json::Value>::new()),
                types => minijinja::Value::from_serialize(Vec::<serde_json::Value>::new()) },
            ),
            (
                "instance_form.html",
                minijinja::context! { title => "t", csrf => "c", name => "<b>",
                integration => minijinja::Value::from_serialize(&integration),
                fields => minijinja::Value::from_serialize(&form_fields),
                problems => ["<b>"] },
            ),
            (
                "instance.html",
                minijinja::context! { title => "t", csrf => "c", webhook => "http://h/<b>", mask => "********",
                instance => minijinja::Value::from_serialize(serde_json::json!({
                    "id": "i", "name": "<b>", "type": "t", "enabled": false, "pluginId": "p",
                    "pluginAvailable": true, "createdAt": 0, "config": {}})),
                integration => minijinja::Value::from_serialize(&integration),
                fields => minijinja::Value::from_serialize(&form_fields),
                agents => minijinja::Value::from_serialize(serde_json::json!([
                    {"id": "a", "name": "<b>", "isDefault": true}, {"id": "b", "name": "x", "isDefault": false}])),
                assigned => "b",
                work_items => minijinja::Value::from_serialize(&work_items) },
            ),
            (
                "instance.html",
                minijinja::context! { title => "t", csrf => "c", webhook => "x", mask => "********",
                instance => minijinja::Value::from_serialize(serde_json::json!({
                    "id": "i", "name": "n", "type": "t", "enabled": true, "pluginId": "p",
                    "pluginAvailable": false, "createdAt": 0, "config": {}})),
                integration => minijinja::Value::from_serialize(Option::<serde_json::Value>::None),
                fields => minijinja::Value::from_serialize(Option::<serde_json::Value>::None),
                agents => minijinja::Value::from_serialize(Vec::<serde_json::Value>::new()),
                work_items => minijinja::Value::from_serialize(Vec::<serde_json::Value>::new()) },
            ),
            (
                "runs.html",
                minijinja::context! { title => "t", csrf => "c",
                work_items => minijinja::Value::from_serialize(&work_items),
                instances => minijinja::Value::from_serialize(serde_json::json!([{"id": "i", "name": "<b>"}])),
                next => "a=b", first_page => false, filter_query => "x", instance => "i", status => "done",
                statuses => ["done"] },
            ),
            (
                "run.html",
                minijinja::context! { title => "t", csrf => "c",
                view => minijinja::Value::from_serialize(serde_json::json!({
                    "workItem": work_items[0], "job": {"status": "failed", "attempts": 2, "lastError": "<b>"},
                    "delivery": {"status": "blocked", "attempts": 1, "externalId": "9", "error": "<b>", "content": "<b>"}})),
                timeline => minijinja::Value::from_serialize(serde_json::json!([
                    {"source": "step", "what": "prompt", "offset": 0, "turn": 0, "attempt": 1, "detail": "<b>"},
                    {"source": "receipt", "what": "hook", "hook": "run.pre_prompt", "plugin": "<b>", "status": "error", "duration": 3, "offset": 4, "detail": ""},
                    {"source": "receipt", "what": "integration", "hook": null, "plugin": "p", "status": "ok", "duration": null, "offset": 5, "detail": "x"}])) },
            ),
            (
                "run.html",
                minijinja::context! { title => "t", csrf => "c",
                view => minijinja::Value::from_serialize(serde_json::json!({"workItem": null, "job": null, "delivery": null})),
                timeline => minijinja::Value::from_serialize(Vec::<serde_json::Value>::new()) },
            ),
            (
                "hooks.html",
                minijinja::context! { title => "t", csrf => "c",
                table => minijinja::Value::from_serialize(serde_json::json!({
                    "chainBudgetMs": 1000, "defaultTimeoutMs": 100, "hooks": {
                        "run.pre_prompt": [{"pluginId": "<b>", "version": "1", "priority": 2, "failPolicy": "fail_open", "timeoutMs": 5}],
                        "tool.pre_exec": []}})) },
            ),
            (
                "doctor.html",
                minijinja::context! { title => "t", csrf => "c",
                report => minijinja::Value::from_serialize(serde_json::json!({
                    "healthy": false, "safeMode": true, "plugins": [
                    {"pluginId": "<b>", "version": "1", "enabled": true, "loaded": false, "files": "ok", "cache": "none",
                     "healthy": false, "grants": {"ungranted": ["<b>"]}, "problems": [{"check": "load", "detail": "<b>", "fix": "<b>"}]},
                    {"pluginId": "x", "version": null, "enabled": false, "loaded": false, "files": "ok", "cache": "none",
                     "healthy": true, "grants": {"ungranted": []}, "problems": []}]})) },
            ),
            (
                "skills.html",
                minijinja::context! { title => "t", csrf => "c",
                skills => minijinja::Value::from_serialize(serde_json::json!([
                    {"skillId": "admin:1", "name": "<b>", "description": "<b>", "source": "plugin", "pluginId": "p",
                     "enabled": true, "available": false, "assignments": [{"scope": "agent", "ref": "<b>"}, {"scope": "global", "ref": ""}],
                     "shadowedBy": "<b>"}])) },
            ),
            (
                "skill.html",
                minijinja::context! { title => "t", csrf => "c",
                skill => minijinja::Value::from_serialize(serde_json::json!({
                    "skillId": "admin:1", "name": "<b>", "description": "<b>", "source": "admin", "tags": ["a", "<b>"],
                    "enabled": false, "available": true, "assignments": [{"scope": "agent", "ref": "<b>"}],
                    "shadowedBy": null, "checksum": "abc", "content": "<b>", "files": ["<b>"]})),
                agents => minijinja::Value::from_serialize(serde_json::json!([{"id": "a", "name": "<b>"}])),
                types => minijinja::Value::from_serialize(serde_json::json!([{"type": "t", "displayName": "<b>"}])) },
            ),
            (
                "skill.html",
                minijinja::context! { title => "t", csrf => "c",
                skill => minijinja::Value::from_serialize(serde_json::json!({
                    "skillId": "plugin:p:s", "name": "n", "description": "", "source": "plugin", "pluginId": "p",
                    "tags": [], "enabled": true, "available": true, "assignments": [], "checksum": "abc", "files": []})),
                agents => minijinja::Value::from_serialize(Vec::<serde_json::Value>::new()),
                types => minijinja::Value::from_serialize(Vec::<serde_json::Value>::new()) },
            ),
            (
                "agents.html",
                minijinja::context! { title => "t", csrf => "c",
                agents => minijinja::Value::from_serialize(serde_json::json!([
                    {"id": "a", "name": "<b>", "systemPrompt": "<b>", "isDefault": true, "team": "<b>",
                     "model": {"provider": "openai", "model": "<b>", "temperature": 0.2, "maxTokens": 5, "maxTurns": 2}},
                    {"id": "b", "name": "x", "systemPrompt": "", "isDefault": false, "team": null, "model": null}])) },
            ),
            (
                "import.html",
                minijinja::context! { title => "t", csrf => "c" },
            ),
            (
                "import.html",
                minijinja::context! { title => "t", csrf => "c", from => "<b>", error => "<b>" },
            ),
            (
                "import.html",
                minijinja::context! { title => "t", csrf => "c", from => "x",
                report => minijinja::Value::from_serialize(serde_json::json!({
                    "dryRun": true, "source": "<b>",
                    "instances": {"read": 1, "created": 0, "unchanged": 0, "skipped": 1},
                    "assignments": {"read": 0, "created": 0, "unchanged": 0, "skipped": 0},
                    "workItems": {"read": 0, "created": 0, "unchanged": 0, "skipped": 0},
                    "idempotencyKeys": {"read": 0, "created": 0, "unchanged": 0, "skipped": 0},
                    "skills": {"read": 0, "created": 0, "unchanged": 0, "skipped": 0},
                    "skillAssignments": {"read": 0, "created": 0, "unchanged": 0, "skipped": 0},
                    "thirdPartyPlugins": [{"id": "<b>", "name": "<b>", "version": null, "sourceKind": "npm",
                        "sourceRef": "<b>", "enabled": true, "instances": 1, "replacement": "<b>"}],
                    "rows": [{"table": "plugin_instances", "id": "<b>", "action": "skipped", "reason": "<b>"}]})) },
            ),
        ];
        for (name, ctx) in cases {
            let html = env
                .get_template(name)
                .unwrap()
                .render(ctx)
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert!(!html.contains("<b>"), "{name}: values are escaped");
        }
    }

    #[test]
    fn origins_of_other_hosts_are_cross_site() {
        let headers = |origin: Option<&str>| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:3000"));
            if let Some(o) = origin {
                h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
            }
            h
        };
        assert!(!cross_site(&headers(None)));
        assert!(!cross_site(&headers(Some("http://127.0.0.1:3000"))));
        assert!(!cross_site(&headers(Some("https://127.0.0.1:3000"))));
        assert!(cross_site(&headers(Some("http://evil.example"))));
        assert!(cross_site(&headers(Some(
            "http://127.0.0.1:3000.evil.example"
        ))));
        assert!(cross_site(&headers(Some("null"))));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; nitejar_session=abc; b=2"),
        );
        assert_eq!(session_cookie(&h).as_deref(), Some("abc"));
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("nitejar_sessionx=abc"),
        );
        assert_eq!(session_cookie(&h), None);
    }
}
