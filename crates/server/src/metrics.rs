//! `GET /api/admin/metrics`: the host's counters in the Prometheus text format, behind the admin
//! token like the rest of the admin API (Prometheus sends it with `authorization:
//! credentials_file`). Today: webhook answer times and answers by status class
//! ([`nitejar_core::ingress::latency`]).

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use nitejar_core::app::App;
use std::sync::Arc;

/// The content type of the Prometheus text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /api/admin/metrics`.
pub async fn serve(State(app): State<Arc<App>>) -> Response {
    (
        [(CONTENT_TYPE, PROMETHEUS_TEXT)],
        app.ingress.latency.render(),
    )
        .into_response()
}
