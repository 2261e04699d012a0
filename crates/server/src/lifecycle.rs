//! Admin API for upgrades, rollback and uninstall (the service is
//! [`nitejar_core::plugins::lifecycle`]).

use crate::admin::{Upload, fetch_package, fetch_upload, install_error, required_source};
use crate::error::{ApiError, ApiJson, ApiResult};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use nitejar_api::lifecycle::{
    ApproveRequest, HealthReport, InstallRequest, PluginHealth, ReloadReport, RollbackRequest,
    RollbackResponse, SourceInfo, UninstallResponse, UpgradeReport, VersionInfo, VersionList,
};
use nitejar_core::app::App;
use nitejar_core::plugins::lifecycle::{self, LifecycleError, UninstallOptions};
use nitejar_core::plugins::package::PluginPackage;
use std::sync::Arc;

impl From<LifecycleError> for ApiError {
    fn from(e: LifecycleError) -> Self {
        match e {
            LifecycleError::NotInstalled(_) => ApiError::not_found(e.to_string()),
            LifecycleError::Conflict(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            LifecycleError::Invalid(m) => ApiError::bad_request(m),
            LifecycleError::GrantsRequired(m) => {
                ApiError::new(StatusCode::CONFLICT, "grants_required", m)
            }
            LifecycleError::SafeMode(m) => ApiError::new(StatusCode::CONFLICT, "safe_mode", m),
            LifecycleError::LoadFailed(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "load_failed", m)
            }
            LifecycleError::Consent(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "consent_mismatch",
                e.to_string(),
            ),
            LifecycleError::Install(i) => install_error(i),
            LifecycleError::Activation(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "activation_failed",
                e.to_string(),
            ),
            LifecycleError::Io(io) => ApiError::internal(io),
            LifecycleError::Db(db) => ApiError::from(db),
        }
    }
}

fn same_plugin(id: &str, pkg: &PluginPackage) -> ApiResult<()> {
    if pkg.manifest.id != id {
        return Err(ApiError::bad_request(format!(
            "the package is {}, not {id}",
            pkg.manifest.id
        )));
    }
    Ok(())
}

/// An npm reference without its version (`@s/a@1.0.0` -> `@s/a`).
fn npm_name(reference: &str) -> &str {
    match reference.rfind('@') {
        Some(i) if i > 0 => &reference[..i],
        _ => reference,
    }
}

/// `POST /api/admin/plugins/{id}/upgrade` with `{"sourceKind", "sourceRef", "options"}`, or an
/// empty body to upgrade from the source the plugin was installed from.
pub async fn upgrade(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: Option<ApiJson<InstallRequest>>,
) -> ApiResult<Json<UpgradeReport>> {
    let body = body.map(|b| b.0).unwrap_or_default();
    let f = match body.source_kind {
        Some(_) => {
            let (kind, reference) = required_source(&body)?;
            fetch_package(&app, kind, reference, &body.options).await?
        }
        // No source: the one the plugin was installed from (npm: the newest release; git: the
        // same ref, which may have moved; local: the same directory, re-read).
        None => {
            let row = app
                .store
                .get_plugin(&id)
                .await?
                .ok_or_else(|| ApiError::not_found(format!("plugin {id} is not installed")))?;
            let reference = match (row.source_kind.as_str(), row.source_ref.as_deref()) {
                ("npm", Some(r)) => npm_name(r).to_string(),
                ("git" | "local", Some(r)) => r.to_string(),
                (kind, _) => {
                    return Err(ApiError::bad_request(format!(
                        "{id} was installed from {kind}; name the new version's source (sourceKind, sourceRef) or upload it to /upgrade/upload"
                    )));
                }
            };
            fetch_package(&app, &row.source_kind, &reference, &body.options).await?
        }
    };
    same_plugin(&id, &f.pkg)?;
    Ok(Json(
        lifecycle::upgrade(&app.plugins, f.pkg, f.source).await?,
    ))
}

/// `POST /api/admin/plugins/{id}/upgrade/upload` (body: `.tgz` or `.wasm`).
pub async fn upgrade_upload(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: Upload,
) -> ApiResult<Json<UpgradeReport>> {
    let f = fetch_upload(&app, body).await?;
    same_plugin(&id, &f.pkg)?;
    Ok(Json(
        lifecycle::upgrade(&app.plugins, f.pkg, f.source).await?,
    ))
}

/// `POST /api/admin/plugins/{id}/upgrade/approve` with exactly the added permissions.
pub async fn approve(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ApproveRequest>,
) -> ApiResult<Json<UpgradeReport>> {
    Ok(Json(
        lifecycle::approve(&app.plugins, &id, &body.permissions).await?,
    ))
}

/// `DELETE /api/admin/plugins/{id}/upgrade`: discard the pending upgrade.
pub async fn discard(State(app): State<Arc<App>>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    lifecycle::discard_pending(&app.plugins, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/admin/plugins/{id}/rollback` `{"version"?}`.
pub async fn rollback(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: Option<ApiJson<RollbackRequest>>,
) -> ApiResult<Json<RollbackResponse>> {
    let body = body.map(|ApiJson(b)| b).unwrap_or_default();
    let v = lifecycle::rollback(&app.plugins, &id, body.version.as_deref()).await?;
    Ok(Json(RollbackResponse {
        plugin_id: id,
        version: v.version,
        checksum: v.checksum,
    }))
}

/// `POST /api/admin/plugins/{id}/reload`: re-read a plugin installed from a local directory.
pub async fn reload(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> ApiResult<Json<ReloadReport>> {
    Ok(Json(lifecycle::reload(&app.plugins, &id).await?))
}

/// `POST /api/admin/plugins/{id}/uninstall` `{"purgeFiles"?, "purgeData"?}`.
pub async fn uninstall(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: Option<ApiJson<UninstallOptions>>,
) -> ApiResult<Json<UninstallResponse>> {
    let options = body.map(|ApiJson(b)| b).unwrap_or_default();
    lifecycle::uninstall(&app.plugins, &id, options).await?;
    Ok(Json(UninstallResponse {
        plugin_id: id,
        uninstalled: true,
        purge_files: options.purge_files,
        purge_data: options.purge_data,
    }))
}

/// `GET /api/admin/doctor`: every plugin's health and what to do about each problem.
pub async fn doctor_all(State(app): State<Arc<App>>) -> ApiResult<Json<HealthReport>> {
    Ok(Json(
        nitejar_core::plugins::doctor::diagnose_all(&app.plugins).await?,
    ))
}

/// `GET /api/admin/plugins/{id}/doctor`.
pub async fn doctor(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> ApiResult<Json<PluginHealth>> {
    let row = app
        .store
        .get_plugin(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("plugin {id} is not installed")))?;
    Ok(Json(
        nitejar_core::plugins::doctor::diagnose(&app.plugins, &row).await?,
    ))
}

/// `GET /api/admin/plugins/{id}/versions`: installed versions, the active and pending ones.
pub async fn versions(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> ApiResult<Json<VersionList>> {
    let row = app
        .store
        .get_plugin(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("plugin {id} is not installed")))?;
    let versions = app
        .store
        .list_versions(&id)
        .await?
        .into_iter()
        .map(|v| VersionInfo {
            source: v
                .source_json
                .as_deref()
                .and_then(|s| serde_json::from_str::<SourceInfo>(s).ok()),
            plugin_id: v.plugin_id,
            version: v.version,
            checksum: v.checksum,
            install_path: v.install_path,
            api_version: v.api_version,
            installed_at: v.installed_at,
        })
        .collect();
    Ok(Json(VersionList {
        plugin_id: id,
        active: row.current_version,
        pending: row.pending_version,
        versions,
    }))
}
