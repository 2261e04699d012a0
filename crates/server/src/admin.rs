//! Admin API handlers (authenticated by [`crate::auth::require_admin`]).
//!
//! This is the minimal surface of the first slice: install (local path or upload), grant,
//! set secrets, enable/disable, list plugins and receipts, list work items (instances are in
//! [`crate::instances`]).
//! Every plugin response carries the runtime posture (`executionMode`, `hostEnforcedControls`,
//! `effectiveLimitations`) and never a secret value.

use crate::error::{ApiError, ApiJson, ApiQuery, ApiResult};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use nitejar_api::instances::WorkItemList;
use nitejar_api::lifecycle::{InstallReport, InstallRequest, Preview};
use nitejar_api::plugins::{
    Disclosure, EnableRequest, EnableResponse, EventPage, EventsQuery, GrantRequest, GrantResponse,
    InstructionUsage, IntegrationSummary, LimitsRequest, LimitsResponse, PluginDetail, PluginList,
    PluginSummary, RevokeResponse, RuntimePosture, SecretRequest, SecretState,
};
use nitejar_core::app::App;
use nitejar_core::app::HOST_RECEIPT_ID;
use nitejar_core::plugins::installer::{self, InstallError, install};
use nitejar_core::plugins::package::PackageError;
use nitejar_core::plugins::sources::{self, Fetched, SourceError, SourceOptions};
use nitejar_core::plugins::{access, declarations};
use nitejar_core::receipts::{EXECUTION_MODE, Receipt};
use nitejar_sandbox::manifest::Manifest;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// What the host enforces for every plugin (spec §15.4: never claim more than is enforced).
pub const HOST_ENFORCED_CONTROLS: &[&str] = &[
    "outbound HTTP only via wasi:http, checked per request against granted permissions.network (scheme, host, port)",
    "resolved addresses checked: private, loopback, link-local and metadata ranges refused unless named",
    "redirects never followed for the plugin",
    "no raw sockets and no DNS lookups inside the sandbox",
    "secrets readable only when declared and granted",
    "filesystem limited to preopened, granted directories (read-only or read-write as declared)",
    "no process spawning, no host environment variables, no inherited stdio",
    "per-call deadline (epoch interruption), also on host calls a plugin waits in (clock sleeps, stalled HTTP bodies)",
    "per-call instruction budget (wasmtime fuel), memory, table, instance and output-size limits; returned values bounded while they are copied",
    "at most 32 calls of one plugin in progress at once, so one plugin cannot take the whole instance pool",
    "a plugin provides exactly the integration types its manifest declares; built-in types are reserved",
    "a plugin's own webhook answer cannot set framing, cookies or active content types",
    "fresh instance per integration call and per agent run: no guest state crosses integration calls or runs (a run's hook, tool and delivery calls share its instance)",
];

/// What the host cannot enforce.
pub const EFFECTIVE_LIMITATIONS: &[&str] = &[
    "an allowed host can still receive any data the plugin was given or can read",
    "a plugin can spend its whole time and memory budget on every call it receives",
    "granted secrets are visible to the plugin in plaintext while it runs",
];

fn posture(app: &App) -> RuntimePosture {
    RuntimePosture {
        execution_mode: EXECUTION_MODE.into(),
        trust_mode: app.config.trust.mode.as_str().into(),
        host_enforced_controls: HOST_ENFORCED_CONTROLS
            .iter()
            .map(|s| s.to_string())
            .collect(),
        effective_limitations: EFFECTIVE_LIMITATIONS
            .iter()
            .map(|s| s.to_string())
            .collect(),
    }
}

fn plugin_summary(app: &App, row: &nitejar_store::PluginRow) -> PluginSummary {
    let loaded = app.registry.get(&row.id);
    let (declared_capabilities, contributes) = Manifest::parse(row.manifest_json.as_bytes())
        .map(|m| declarations(&m))
        .unwrap_or_default();
    PluginSummary {
        id: row.id.clone(),
        name: row.name.clone(),
        enabled: row.enabled,
        loaded: loaded.is_some(),
        trust_level: row.trust_level.clone(),
        source_kind: row.source_kind.clone(),
        source_ref: row.source_ref.clone(),
        version: row.current_version.clone(),
        pending_version: row.pending_version.clone(),
        checksum: row.current_checksum.clone(),
        last_load_error: row.last_load_error.clone(),
        recent_failures: app.crash_guard.recent_failures(&row.id) as u64,
        alert: row
            .alert_json
            .as_deref()
            .and_then(|a| serde_json::from_str(a).ok()),
        declared_capabilities,
        contributes,
        installed_at: row.installed_at,
        updated_at: row.updated_at,
        api_version: loaded.as_ref().map(|p| p.api_version.clone()),
        integrations: loaded.as_ref().map(|p| {
            p.integrations
                .iter()
                .map(|d| IntegrationSummary {
                    integration_type: d.integration_type.clone(),
                    display_name: d.display_name.clone(),
                    sensitive_fields: d.sensitive_fields.clone(),
                })
                .collect()
        }),
        instructions: loaded.as_ref().map(|p| instruction_usage(p)),
        posture: posture(app),
    }
}

/// A loaded plugin's instruction budgets and use.
fn instruction_usage(p: &nitejar_sandbox::runtime::LoadedPlugin) -> InstructionUsage {
    let (calls, total) = p.instructions_used();
    InstructionUsage {
        budget_per_call: p.fuel_per_call(),
        source: p.fuel_source().into(),
        defaults: ["hook", "integration", "tool", "load"]
            .into_iter()
            .map(|k| (k.to_string(), nitejar_sandbox::limits::default_fuel(k)))
            .collect(),
        calls,
        total,
        average: total / calls.max(1),
    }
}

/// `GET /api/admin/plugins`.
pub async fn list_plugins(State(app): State<Arc<App>>) -> ApiResult<Json<PluginList>> {
    let rows = app.store.list_plugins().await?;
    Ok(Json(PluginList {
        plugins: rows.iter().map(|r| plugin_summary(&app, r)).collect(),
        runtime: posture(&app),
        safe_mode: app.config.safe_mode,
    }))
}

/// The plugin row of `id`, or a 404 that says it is not installed.
async fn installed_plugin(app: &App, id: &str) -> ApiResult<nitejar_store::PluginRow> {
    app.store
        .get_plugin(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("plugin {id} is not installed")))
}

/// `GET /api/admin/plugins/{id}`.
pub async fn get_plugin(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> ApiResult<Json<PluginDetail>> {
    let row = installed_plugin(&app, &id).await?;
    let disclosures = app
        .store
        .list_disclosures(&id)
        .await?
        .into_iter()
        .map(|d| Disclosure {
            permission: d.permission,
            acknowledged: d.acknowledged,
        })
        .collect();
    let stored: std::collections::BTreeSet<String> = app
        .store
        .list_secrets(&id)
        .await?
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    let secrets = Manifest::parse(row.manifest_json.as_bytes())
        .map(|m| m.permissions.secrets)
        .unwrap_or_default()
        .into_iter()
        .map(|key| SecretState {
            set: stored.contains(&key),
            key,
        })
        .collect();
    let pending_upgrade =
        nitejar_core::plugins::lifecycle::pending_upgrade(&app.plugins, &id).await?;
    Ok(Json(PluginDetail {
        plugin: plugin_summary(&app, &row),
        disclosures,
        secrets,
        pending_upgrade,
    }))
}

/// `GET /api/admin/plugins/{id}/events?limit=&cursor=&kind=&status=` (newest first;
/// `nextCursor` pages on).
pub async fn list_events(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> ApiResult<Json<EventPage>> {
    app.receipts.flush().await;
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let filter = nitejar_store::EventFilter {
        kind: q.kind.filter(|k| !k.is_empty()),
        status: q.status.filter(|s| !s.is_empty()),
    };
    let rows = app
        .store
        .search_events(&id, &filter, limit, q.cursor.as_deref())
        .await?;
    let next_cursor = (rows.len() as u32 == limit)
        .then(|| rows.last().map(|r| r.id.clone()))
        .flatten();
    let events = rows.into_iter().map(crate::views::receipt).collect();
    Ok(Json(EventPage {
        events,
        next_cursor,
    }))
}

/// The API error for an install failure.
pub fn install_error(e: InstallError) -> ApiError {
    match e {
        InstallError::Load(l) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_plugin",
            l.to_string(),
        ),
        InstallError::VersionConflict { .. } => {
            ApiError::new(StatusCode::CONFLICT, "version_conflict", e.to_string())
        }
        InstallError::AlreadyInstalled { .. } => {
            ApiError::new(StatusCode::CONFLICT, "already_installed", e.to_string())
        }
        InstallError::Refused(m) => ApiError::new(StatusCode::FORBIDDEN, "trust_policy", m),
        InstallError::IntegrationTypeTaken(m) => {
            ApiError::new(StatusCode::CONFLICT, "integration_type_taken", m)
        }
        other => ApiError::internal(other),
    }
}

/// The API error for an unreadable package.
pub fn package_error(e: PackageError) -> ApiError {
    match e {
        PackageError::Io(io) => ApiError::internal(io),
        other => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_package",
            other.to_string(),
        ),
    }
}

/// The API error for a source that could not be read; a trust refusal is also a receipt.
pub fn source_error(app: &App, e: SourceError, kind: &str, reference: Option<&str>) -> ApiError {
    match e {
        SourceError::BadRequest(m) => ApiError::bad_request(m),
        SourceError::Refused(m) => {
            app.receipts.emit(
                Receipt::new(HOST_RECEIPT_ID, "install", "blocked").detail(json!({
                    "source": kind, "sourceRef": reference, "reason": m,
                    "trustMode": app.config.trust.mode.as_str(),
                })),
            );
            ApiError::new(StatusCode::FORBIDDEN, "trust_policy", m)
        }
        SourceError::NotFound(m) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "source_not_found", m)
        }
        SourceError::Fetch(m) => ApiError::new(StatusCode::BAD_GATEWAY, "source_unavailable", m),
        SourceError::Package(p) => package_error(p),
    }
}

/// Reads the package an install, preview or upgrade request names.
pub async fn fetch_package(
    app: &App,
    kind: &str,
    reference: &str,
    options: &SourceOptions,
) -> ApiResult<Fetched> {
    sources::fetch(&app.plugins, kind, reference, options)
        .await
        .map_err(|e| source_error(app, e, kind, Some(reference)))
}

/// Reads an uploaded package: a `.tgz` (npm layout, extracted in staging) or a bare `.wasm`.
pub async fn fetch_upload(app: &App, upload: Upload) -> ApiResult<Fetched> {
    let name = upload.file_name.clone();
    sources::upload(&app.plugins, upload.bytes, upload.file_name)
        .await
        .map_err(|e| source_error(app, e, "upload", name.as_deref()))
}

/// An uploaded package: the raw request body, or the first file of a `multipart/form-data`
/// body (what a browser form sends), with its file name. Size-limited by the route.
pub struct Upload {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// The file name, when the upload was multipart.
    pub file_name: Option<String>,
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for Upload {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let multipart = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("multipart/form-data"));
        let too_large = |e: String| {
            if e.contains("length limit") || e.contains("too large") {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e)
            } else {
                ApiError::bad_request(format!("reading the upload failed: {e}"))
            }
        };
        if !multipart {
            let body = Bytes::from_request(req, state)
                .await
                .map_err(|e| too_large(e.body_text()))?;
            return Ok(Upload {
                bytes: body.to_vec(),
                file_name: None,
            });
        }
        let mut form = axum::extract::Multipart::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        while let Some(field) = form
            .next_field()
            .await
            .map_err(|e| too_large(e.body_text()))?
        {
            if field.file_name().is_none() && field.name() != Some("file") {
                continue;
            }
            let file_name = field.file_name().map(str::to_string);
            let bytes = field.bytes().await.map_err(|e| too_large(e.body_text()))?;
            return Ok(Upload {
                bytes: bytes.to_vec(),
                file_name,
            });
        }
        Err(ApiError::bad_request(
            "the multipart upload has no file field (send the package as a file, or as the raw body)",
        ))
    }
}

/// Both fields of a source request, or a 400 naming what is missing.
pub fn required_source(body: &InstallRequest) -> ApiResult<(&str, &str)> {
    match (body.source_kind.as_deref(), body.source_ref.as_deref()) {
        (Some(k), Some(r)) => Ok((k, r)),
        _ => Err(ApiError::bad_request(
            "send {\"sourceKind\": \"local\" | \"npm\" | \"git\", \"sourceRef\": ...} (uploads go to /upload)",
        )),
    }
}

fn created(report: InstallReport) -> (StatusCode, Json<InstallReport>) {
    (StatusCode::CREATED, Json(report))
}

/// `POST /api/admin/plugins/install` with `{"sourceKind": "local" | "npm" | "git",
/// "sourceRef": ..., "options": {...}}`.
pub async fn install_plugin(
    State(app): State<Arc<App>>,
    ApiJson(body): ApiJson<InstallRequest>,
) -> ApiResult<(StatusCode, Json<InstallReport>)> {
    let (kind, reference) = required_source(&body)?;
    let f = fetch_package(&app, kind, reference, &body.options).await?;
    let report = install(&app.plugins, f.pkg, f.source)
        .await
        .map_err(install_error)?;
    Ok(created(report))
}

/// Body of `POST /api/admin/plugins/install/npm` and `/install/git` (spec §15.3).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceBody {
    source_ref: String,
    #[serde(default)]
    options: SourceOptions,
}

async fn install_from(
    app: &App,
    kind: &str,
    body: SourceBody,
) -> ApiResult<(StatusCode, Json<InstallReport>)> {
    let f = fetch_package(app, kind, &body.source_ref, &body.options).await?;
    let report = install(&app.plugins, f.pkg, f.source)
        .await
        .map_err(install_error)?;
    Ok(created(report))
}

/// `POST /api/admin/plugins/install/npm` `{"sourceRef": "name@range", "options"?}`.
pub async fn install_npm(
    State(app): State<Arc<App>>,
    ApiJson(body): ApiJson<SourceBody>,
) -> ApiResult<(StatusCode, Json<InstallReport>)> {
    install_from(&app, "npm", body).await
}

/// `POST /api/admin/plugins/install/git` `{"sourceRef": "url#ref", "options"?}`.
pub async fn install_git(
    State(app): State<Arc<App>>,
    ApiJson(body): ApiJson<SourceBody>,
) -> ApiResult<(StatusCode, Json<InstallReport>)> {
    install_from(&app, "git", body).await
}

/// `POST /api/admin/plugins/upload`: the body is a `.tgz` (npm layout) or a bare `.wasm`.
pub async fn upload_plugin(
    State(app): State<Arc<App>>,
    body: Upload,
) -> ApiResult<(StatusCode, Json<InstallReport>)> {
    let f = fetch_upload(&app, body).await?;
    let report = install(&app.plugins, f.pkg, f.source)
        .await
        .map_err(install_error)?;
    Ok(created(report))
}

/// `POST /api/admin/plugins/preview`: what installing the source would do, nothing written.
pub async fn preview_plugin(
    State(app): State<Arc<App>>,
    ApiJson(body): ApiJson<InstallRequest>,
) -> ApiResult<Json<Preview>> {
    let (kind, reference) = required_source(&body)?;
    let f = fetch_package(&app, kind, reference, &body.options).await?;
    Ok(Json(
        installer::preview(&app.plugins, &f.pkg, &f.source)
            .await
            .map_err(install_error)?,
    ))
}

/// `POST /api/admin/plugins/preview/upload`: preview of an uploaded `.tgz` or `.wasm`.
pub async fn preview_upload(State(app): State<Arc<App>>, body: Upload) -> ApiResult<Json<Preview>> {
    let f = fetch_upload(&app, body).await?;
    Ok(Json(
        installer::preview(&app.plugins, &f.pkg, &f.source)
            .await
            .map_err(install_error)?,
    ))
}

/// `POST /api/admin/plugins/{id}/grants` with the disclosure keys to grant.
pub async fn grant(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<GrantRequest>,
) -> ApiResult<Json<GrantResponse>> {
    let granted = access::grant(&app.plugins, &id, &body.permissions).await?;
    Ok(Json(GrantResponse { granted }))
}

/// `POST /api/admin/plugins/{id}/revoke` with the disclosure keys whose grants to withdraw.
pub async fn revoke(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<GrantRequest>,
) -> ApiResult<Json<RevokeResponse>> {
    let revoked = access::revoke(&app.plugins, &id, &body.permissions).await?;
    Ok(Json(RevokeResponse { revoked }))
}

/// `PUT /api/admin/plugins/{id}/secrets/{key}`: stores a secret value (encrypted).
pub async fn set_secret(
    State(app): State<Arc<App>>,
    Path((id, key)): Path<(String, String)>,
    ApiJson(body): ApiJson<SecretRequest>,
) -> ApiResult<StatusCode> {
    access::set_secret(&app.plugins, &id, &key, &body.value).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /api/admin/plugins/{id}/limits` with `{"fuelPerCall": n | null}`.
pub async fn set_limits(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<LimitsRequest>,
) -> ApiResult<Json<LimitsResponse>> {
    access::set_fuel_override(&app.plugins, &id, body.fuel_per_call).await?;
    Ok(Json(LimitsResponse {
        fuel_per_call: body.fuel_per_call,
        max_fuel_per_call: nitejar_sandbox::limits::MAX_FUEL_PER_CALL,
    }))
}

/// `POST /api/admin/plugins/{id}/enable` with `{"consent": true}` for third-party plugins.
pub async fn enable_plugin(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: Option<ApiJson<EnableRequest>>,
) -> ApiResult<Json<EnableResponse>> {
    let consent = body.map(|b| b.0.consent).unwrap_or(false);
    let version = access::enable(&app.plugins, &id, consent).await?;
    Ok(Json(EnableResponse {
        enabled: true,
        loaded: Some(true),
        version: Some(version),
    }))
}

/// `POST /api/admin/plugins/{id}/disable`: stops new calls at once.
pub async fn disable_plugin(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> ApiResult<Json<EnableResponse>> {
    access::disable(&app.plugins, &id).await?;
    Ok(Json(EnableResponse {
        enabled: false,
        loaded: None,
        version: None,
    }))
}

/// `GET /api/admin/instances/{id}/work-items`.
pub async fn list_work_items(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> ApiResult<Json<WorkItemList>> {
    let work_items = app
        .store
        .list_work_items(&id)
        .await?
        .into_iter()
        .map(crate::views::work_item)
        .collect();
    Ok(Json(WorkItemList { work_items }))
}
