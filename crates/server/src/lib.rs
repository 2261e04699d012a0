//! Nitejar's HTTP surface: the authenticated admin API and the public webhook endpoints.
//!
//! Routes only: each handler checks the request, calls `nitejar-core`, and answers with the
//! `nitejar-api` types (the OpenAPI document is generated from the same types).

#![warn(missing_docs)]

pub mod admin;
pub mod auth;
pub mod error;
pub mod instances;
pub mod lifecycle;
pub mod metrics;
pub mod openapi;
pub mod runs;
pub mod skills;
pub mod ui;
pub mod views;
pub mod webhooks;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use nitejar_core::app::App;
use nitejar_core::limits::{MAX_UPLOAD_BYTES, MAX_WEBHOOK_BODY_BYTES};
use std::sync::Arc;

/// Builds the router.
pub fn router(app: Arc<App>) -> Router {
    let admin = Router::new()
        .route("/plugins", get(admin::list_plugins))
        .route("/plugins/install", post(admin::install_plugin))
        .route("/plugins/install/npm", post(admin::install_npm))
        .route("/plugins/install/git", post(admin::install_git))
        .route("/plugins/preview", post(admin::preview_plugin))
        .route(
            "/plugins/preview/upload",
            post(admin::preview_upload).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
        )
        .route(
            "/plugins/upload",
            post(admin::upload_plugin).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
        )
        .route("/plugins/{id}", get(admin::get_plugin))
        .route("/plugins/{id}/events", get(admin::list_events))
        .route("/plugins/{id}/grants", post(admin::grant))
        .route("/plugins/{id}/revoke", post(admin::revoke))
        .route("/plugins/{id}/secrets/{key}", put(admin::set_secret))
        .route("/plugins/{id}/limits", put(admin::set_limits))
        .route("/plugins/{id}/enable", post(admin::enable_plugin))
        .route("/plugins/{id}/disable", post(admin::disable_plugin))
        .route("/plugins/{id}/versions", get(lifecycle::versions))
        .route("/plugins/{id}/doctor", get(lifecycle::doctor))
        .route("/doctor", get(lifecycle::doctor_all))
        .route("/metrics", get(metrics::serve))
        .route(
            "/plugins/{id}/upgrade",
            post(lifecycle::upgrade).delete(lifecycle::discard),
        )
        .route(
            "/plugins/{id}/upgrade/upload",
            post(lifecycle::upgrade_upload).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
        )
        .route("/plugins/{id}/upgrade/approve", post(lifecycle::approve))
        .route("/plugins/{id}/rollback", post(lifecycle::rollback))
        .route("/plugins/{id}/reload", post(lifecycle::reload))
        .route("/plugins/{id}/uninstall", post(lifecycle::uninstall))
        .route("/integration-types", get(instances::list_types))
        .route("/instances", get(instances::list).post(instances::create))
        .route("/instances/test", post(instances::test_unsaved))
        .route("/import/nitejar", post(instances::import_nitejar))
        .route(
            "/instances/{id}",
            get(instances::get)
                .patch(instances::update)
                .delete(instances::delete),
        )
        .route("/instances/{id}/enable", post(instances::enable))
        .route("/instances/{id}/disable", post(instances::disable))
        .route("/instances/{id}/test", post(instances::test))
        .route("/instances/{id}/work-items", get(admin::list_work_items))
        .route("/instances/{id}/agent", put(runs::assign_agent))
        .route("/agents", get(runs::list_agents).post(runs::create_agent))
        .route("/agents/{id}", get(runs::get_agent).put(runs::update_agent))
        .route("/agents/{id}/skills", get(skills::resolve))
        .route("/skills", get(skills::list).post(skills::create))
        .route("/skills/sync", post(skills::sync))
        .route(
            "/skills/{id}",
            get(skills::get)
                .patch(skills::update)
                .delete(skills::delete),
        )
        .route("/skills/{id}/assignments", post(skills::assign))
        .route("/work-items", get(runs::list_work_items))
        .route("/work-items/{id}/run", get(runs::work_item_run))
        .route("/jobs/{id}", get(runs::get_job))
        .route("/hooks", get(runs::hook_table))
        .route(
            "/plugins/{id}/hooks/{hook}",
            put(runs::set_hook_override).delete(runs::clear_hook_override),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::require_admin,
        ));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/api/openapi.json", get(openapi::serve))
        .nest("/api/admin", admin)
        .nest_service("/admin", ui::router(app.clone()))
        .route(
            "/api/webhooks/plugins/{integration_type}/{instance_id}",
            post(webhooks::receive)
                .layer(DefaultBodyLimit::max(MAX_WEBHOOK_BODY_BYTES))
                .layer(axum::middleware::from_fn_with_state(
                    app.clone(),
                    webhooks::timed,
                )),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(unknown_route)
        .with_state(app)
}

/// Readiness: 200 `{"ready": true}` when the host can take work now (the database takes a
/// write within [`READY_PROBE_TIMEOUT`], and the data directory's filesystem has
/// [`nitejar_core::limits::MIN_FREE_DISK_BYTES`] free), else 503 with `Retry-After` and the
/// reason. A full
/// disk or a database locked by another process shows here while it lasts; `/healthz` only
/// says the process is alive.
async fn readyz(axum::extract::State(app): axum::extract::State<Arc<App>>) -> Response {
    let free = rustix::fs::statvfs(&app.config.data_dir)
        .ok()
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize));
    let reason = match tokio::time::timeout(READY_PROBE_TIMEOUT, app.store.probe_write()).await {
        Ok(Ok(())) if free.is_some_and(|f| f < nitejar_core::limits::MIN_FREE_DISK_BYTES) => {
            "the disk holding the database is full (under 4 MiB free)"
        }
        Ok(Ok(())) => {
            return Json(nitejar_api::health::Readiness { ready: true }).into_response();
        }
        Err(_) => "the database did not take a write within 2 s (locked by another writer?)",
        Ok(Err(e)) => {
            let text = e.to_string();
            if text.contains("full") || text.contains("No space") {
                "the disk holding the database is full"
            } else if text.contains("locked") || text.contains("busy") {
                "the database is locked by another writer"
            } else if text.contains("readonly") || text.contains("read-only") {
                "the database is read-only"
            } else {
                "the database cannot be written"
            }
        }
    };
    tracing::warn!("not ready: {reason}");
    error::ApiError {
        retry_after: Some(nitejar_core::limits::DB_RETRY_AFTER_SECS),
        ..error::ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", reason)
    }
    .into_response()
}

/// How long the readiness probe waits for its write.
const READY_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// A path no route serves: the documented error body, not an empty 404.
async fn unknown_route() -> error::ApiError {
    error::ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_route",
        "no such route; the API is described at /api/openapi.json",
    )
}

/// A route that exists, asked with a method it does not serve.
async fn method_not_allowed() -> error::ApiError {
    error::ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not serve that method; see /api/openapi.json",
    )
}
