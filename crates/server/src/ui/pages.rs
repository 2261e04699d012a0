//! The UI's pages: each calls the API's own handler and renders its typed answer.

use super::{SESSION_COOKIE, SignedIn, Ui, csrf_ok, over_tls, session_cookie};
use crate::auth::token_matches;
use crate::error::ApiError;
use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{Value, context};
use std::collections::HashMap;
use std::sync::Arc;

/// An API error as a page (its message is written for people and never holds secrets).
fn api_error(ui: &Ui, s: &SignedIn, e: ApiError) -> Response {
    ui.error_page(e.status, Some(s), &e.message)
}

fn bad_form(ui: &Ui, s: &SignedIn) -> Response {
    ui.error_page(
        StatusCode::FORBIDDEN,
        Some(s),
        "The form's token is missing or stale (reload the page and try again); nothing was changed.",
    )
}

/// `GET /admin/login`.
pub async fn login_form(State(ui): State<Arc<Ui>>) -> Response {
    ui.render("login.html", context! { title => "Sign in" })
}

/// `POST /admin/login`: the admin token in, a session cookie out.
pub async fn login(
    State(ui): State<Arc<Ui>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if super::cross_site(&headers) {
        return ui.error_page(
            StatusCode::FORBIDDEN,
            None,
            "This form was sent from another site; nothing was changed.",
        );
    }
    let presented = form.get("token").map(|t| t.trim()).unwrap_or("");
    if !token_matches(presented, &ui.app.admin_token) {
        let mut resp = ui.render(
            "login.html",
            context! {
                title => "Sign in",
                error => "That is not the admin token (see the admin-token file in the data directory).",
            },
        );
        *resp.status_mut() = StatusCode::UNAUTHORIZED;
        return resp;
    }
    let id = ui.start_session();
    let secure = if over_tls(&ui.app, &headers) {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!("{SESSION_COOKIE}={id}; Path=/admin; HttpOnly; SameSite=Strict{secure}");
    let mut resp = Redirect::to("/admin").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// `POST /admin/logout`.
pub async fn logout(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&s, &form) {
        return bad_form(&ui, &s);
    }
    if let Some(id) = session_cookie(&headers) {
        ui.end_session(&id);
    }
    let mut resp = Redirect::to("/admin/login").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "nitejar_session=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    resp
}

/// `GET /admin`: the runtime posture (word for word from the API) and what needs attention.
pub async fn overview(State(ui): State<Arc<Ui>>, Extension(s): Extension<SignedIn>) -> Response {
    let list = match crate::admin::list_plugins(State(ui.app.clone())).await {
        Ok(l) => l.0,
        Err(e) => return api_error(&ui, &s, e),
    };
    let attention: Vec<_> = list
        .plugins
        .iter()
        .filter(|p| {
            p.alert.is_some()
                || p.last_load_error.is_some()
                || p.pending_version.is_some()
                || (p.enabled && !p.loaded)
        })
        .collect();
    ui.render(
        "overview.html",
        context! {
            title => "Overview",
            nav => "overview",
            csrf => s.csrf,
            safe_mode => list.safe_mode,
            runtime => Value::from_serialize(&list.runtime),
            attention => Value::from_serialize(&attention),
            plugin_count => list.plugins.len(),
            enabled_count => list.plugins.iter().filter(|p| p.enabled).count(),
        },
    )
}

/// `GET /admin/plugins`.
pub async fn plugins(State(ui): State<Arc<Ui>>, Extension(s): Extension<SignedIn>) -> Response {
    match crate::admin::list_plugins(State(ui.app.clone())).await {
        Ok(l) => ui.render(
            "plugins.html",
            context! {
                title => "Plugins",
                nav => "plugins",
                csrf => s.csrf,
                safe_mode => l.0.safe_mode,
                plugins => Value::from_serialize(&l.0.plugins),
            },
        ),
        Err(e) => api_error(&ui, &s, e),
    }
}

/// `GET /admin/plugins/{id}`: the plugin, its permissions and grants, its latest receipts.
pub async fn plugin(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    Path(id): Path<String>,
) -> Response {
    let detail = match crate::admin::get_plugin(State(ui.app.clone()), Path(id.clone())).await {
        Ok(d) => d.0,
        Err(e) => return api_error(&ui, &s, e),
    };
    ui.app.receipts.flush().await;
    let receipts = match ui.app.store.list_events(&id, 50, None).await {
        Ok(r) => r,
        Err(e) => return api_error(&ui, &s, ApiError::from(e)),
    };
    ui.render(
        "plugin.html",
        context! {
            title => detail.plugin.name.clone(),
            nav => "plugins",
            csrf => s.csrf,
            plugin => Value::from_serialize(&detail.plugin),
            disclosures => Value::from_serialize(&detail.disclosures),
            receipts => Value::from_serialize(&receipts),
        },
    )
}

/// `POST /admin/plugins/{id}/enable`: with `consent` when the plugin's permissions were shown.
pub async fn enable(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&s, &form) {
        return bad_form(&ui, &s);
    }
    let consent = form.get("consent").is_some_and(|v| v == "yes");
    let body = Some(crate::error::ApiJson(nitejar_api::plugins::EnableRequest {
        consent,
    }));
    let result = crate::admin::enable_plugin(State(ui.app.clone()), Path(id.clone()), body).await;
    back_to_plugin(&ui, &s, &id, result)
}

/// `POST /admin/plugins/{id}/disable`.
pub async fn disable(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&s, &form) {
        return bad_form(&ui, &s);
    }
    let result = crate::admin::disable_plugin(State(ui.app.clone()), Path(id.clone())).await;
    back_to_plugin(&ui, &s, &id, result)
}

/// After a plugin action: back to its page, or the API's refusal as a page.
fn back_to_plugin<T>(ui: &Ui, s: &SignedIn, id: &str, result: Result<T, ApiError>) -> Response {
    match result {
        Ok(_) => Redirect::to(&plugin_path(id)).into_response(),
        Err(e) => api_error(ui, s, e),
    }
}

/// A plugin page's path, its id percent-encoded.
fn plugin_path(id: &str) -> String {
    let encoded: String = id
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("/admin/plugins/{encoded}")
}

/// Any other path under `/admin`.
pub async fn not_found(State(ui): State<Arc<Ui>>) -> Response {
    ui.error_page(StatusCode::NOT_FOUND, None, "There is no such page.")
}
