//! Sign-in and sign-out.

use super::forms::{Fields, bad_form};
use super::{SESSION_COOKIE, SignedIn, Ui, over_tls, session_cookie};
use crate::auth::token_matches;
use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use std::sync::Arc;

/// `GET /admin/login`.
pub async fn login_form(State(ui): State<Arc<Ui>>) -> Response {
    ui.render("login.html", context! { title => "Sign in" })
}

/// `POST /admin/login`: the admin token in, a session cookie out.
pub async fn login(State(ui): State<Arc<Ui>>, headers: HeaderMap, form: Fields) -> Response {
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
    form: Fields,
) -> Response {
    if !form.csrf_ok(&s) {
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

/// Any other path under `/admin`.
pub async fn not_found(State(ui): State<Arc<Ui>>) -> Response {
    ui.error_page(StatusCode::NOT_FOUND, None, "There is no such page.")
}
