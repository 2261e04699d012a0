//! Admin authentication: `Authorization: Bearer <token>`, compared in constant time.

use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use nitejar_core::app::App;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Whether `presented` equals `expected`, without an early exit on the first difference.
pub fn token_matches(presented: &str, expected: &str) -> bool {
    presented.len() == expected.len() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

/// Rejects requests without the admin token (401).
pub async fn require_admin(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !token_matches(presented, &app.admin_token) {
        let mut resp = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong admin token",
        )
        .into_response();
        resp.headers_mut()
            .insert("www-authenticate", "Bearer".parse().expect("static header"));
        return resp;
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn compares_tokens() {
        assert!(super::token_matches("abc", "abc"));
        assert!(!super::token_matches("abd", "abc"));
        assert!(!super::token_matches("ab", "abc"));
        assert!(!super::token_matches("", "abc"));
        assert!(
            !super::token_matches("abc ", "abc"),
            "no trailing whitespace"
        );
    }
}
