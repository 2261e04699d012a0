//! Admin API for integration types and instances (the service is [`nitejar_core::instances`]).
//!
//! Forms and the CLI are generated from `GET /integration-types` (each type's JSON Schema, UI
//! hints and sensitive fields); nothing here branches on a type.

use crate::error::{ApiError, ApiJson, ApiResult};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use nitejar_api::import::{ImportReport, ImportRequest};
use nitejar_api::instances::{
    CreateInstanceRequest, Instance, InstanceList, IntegrationType, IntegrationTypeList,
    TestConfigRequest, UpdateInstanceRequest,
};
use nitejar_core::app::App;
use nitejar_core::instances::{self, ConnectionCheck, InstanceError};
use nitejar_core::nitejar_import::{self, ImportError};
use serde_json::Value;
use std::sync::Arc;

impl From<InstanceError> for ApiError {
    fn from(e: InstanceError) -> Self {
        let e = match e {
            InstanceError::Db(db) => return ApiError::from(db),
            other => other,
        };
        let (status, code) = match &e {
            InstanceError::UnknownType(_) => (StatusCode::BAD_REQUEST, "unknown_type"),
            InstanceError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            InstanceError::PluginUnavailable(_) => (StatusCode::CONFLICT, "plugin_unavailable"),
            InstanceError::InvalidConfig(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_config"),
            InstanceError::ConnectionFailed(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "connection_failed")
            }
            InstanceError::Plugin(_) => (StatusCode::BAD_GATEWAY, "plugin_failed"),
            InstanceError::Undecryptable => (StatusCode::CONFLICT, "undecryptable"),
            InstanceError::Db(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

/// `GET /api/admin/integration-types`: every type enabled plugins provide, with the JSON
/// Schema, UI hints and sensitive fields a form is generated from.
pub async fn list_types(State(app): State<Arc<App>>) -> Json<IntegrationTypeList> {
    let mut types = Vec::new();
    for plugin in app.registry.all() {
        for d in &plugin.integrations {
            let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
            types.push(IntegrationType {
                integration_type: d.integration_type.clone(),
                plugin_id: plugin.id().into(),
                plugin_version: plugin.version().into(),
                display_name: d.display_name.clone(),
                description: d.description.clone(),
                icon: d.icon.clone(),
                category: format!("{:?}", d.category).to_lowercase(),
                response_mode: format!("{:?}", d.response_mode).to_lowercase(),
                config_schema: parse(&d.config_schema),
                ui_schema: d.ui_schema.as_deref().map(parse),
                sensitive_fields: d.sensitive_fields.clone(),
            });
        }
    }
    types.sort_by(|a, b| a.integration_type.cmp(&b.integration_type));
    Json(IntegrationTypeList {
        integration_types: types,
    })
}

/// A display name: 1-200 characters, no control characters.
fn check_name(name: &str) -> ApiResult<()> {
    if name.trim().is_empty()
        || name.len() > 200
        || name.chars().any(nitejar_core::text::is_deceptive)
    {
        return Err(ApiError::bad_request(
            "name must be 1-200 characters without control characters",
        ));
    }
    Ok(())
}

/// `POST /api/admin/instances`: schema, validate-config, connection test (when enabled), then
/// stored with sensitive fields encrypted.
pub async fn create(
    State(app): State<Arc<App>>,
    ApiJson(body): ApiJson<CreateInstanceRequest>,
) -> ApiResult<(StatusCode, Json<Instance>)> {
    check_name(&body.name)?;
    let row = instances::create(
        &app.instances,
        &body.integration_type,
        body.name.trim(),
        body.config,
        body.enabled,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(instances::view(&app.instances, &row)),
    ))
}

/// `GET /api/admin/instances` (sensitive fields redacted).
pub async fn list(State(app): State<Arc<App>>) -> ApiResult<Json<InstanceList>> {
    let rows = app.store.list_instances().await?;
    Ok(Json(InstanceList {
        instances: rows
            .iter()
            .map(|r| instances::view(&app.instances, r))
            .collect(),
    }))
}

/// `GET /api/admin/instances/{id}`.
pub async fn get(State(app): State<Arc<App>>, Path(id): Path<String>) -> ApiResult<Json<Instance>> {
    let row = app
        .store
        .get_instance(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no integration instance {id}")))?;
    Ok(Json(instances::view(&app.instances, &row)))
}

/// The view with the connection test this change ran, if any.
fn with_check(mut view: Instance, check: Option<ConnectionCheck>) -> Instance {
    view.connection = check;
    view
}

/// `PATCH /api/admin/instances/{id}`: partial update (see [`nitejar_core::instances`]).
pub async fn update(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateInstanceRequest>,
) -> ApiResult<Json<Instance>> {
    if let Some(n) = &body.name {
        check_name(n)?;
    }
    let (row, check) = instances::update(
        &app.instances,
        &id,
        body.name.as_deref().map(str::trim),
        body.config,
    )
    .await?;
    Ok(Json(with_check(
        instances::view(&app.instances, &row),
        check,
    )))
}

/// `DELETE /api/admin/instances/{id}`: the instance and its agent assignment; work items stay.
pub async fn delete(State(app): State<Arc<App>>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    instances::delete(&app.instances, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/admin/instances/{id}/enable`: only after a passing connection test.
pub async fn enable(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Instance>> {
    let (row, check) = instances::set_enabled(&app.instances, &id, true).await?;
    Ok(Json(with_check(
        instances::view(&app.instances, &row),
        check,
    )))
}

/// `POST /api/admin/instances/{id}/disable`: webhooks to it answer 404 from now on.
pub async fn disable(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Instance>> {
    let (row, _) = instances::set_enabled(&app.instances, &id, false).await?;
    Ok(Json(instances::view(&app.instances, &row)))
}

/// `POST /api/admin/instances/{id}/test`: the plugin's `test-connection` on the stored config.
pub async fn test(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> ApiResult<Json<ConnectionCheck>> {
    Ok(Json(instances::test(&app.instances, &id).await?))
}

/// `POST /api/admin/instances/test`: tests a config before creating an instance (schema and
/// validate-config first, so the plugin only ever sees a valid config).
pub async fn test_unsaved(
    State(app): State<Arc<App>>,
    ApiJson(body): ApiJson<TestConfigRequest>,
) -> ApiResult<Json<ConnectionCheck>> {
    let plugin = app
        .registry
        .by_integration_type(&body.integration_type)
        .ok_or_else(|| InstanceError::UnknownType(body.integration_type.clone()))?;
    let descriptor = plugin
        .descriptor(&body.integration_type)
        .ok_or_else(|| InstanceError::UnknownType(body.integration_type.clone()))?;
    instances::check_schema(descriptor, &body.config)?;
    Ok(Json(
        instances::test_config(
            &app.instances,
            &plugin,
            &body.integration_type,
            &body.config,
        )
        .await?,
    ))
}

/// `POST /api/admin/import/nitejar`: imports a Nitejar database (see
/// [`nitejar_core::nitejar_import`]); a source that cannot be read is 400 `bad_source`.
pub async fn import_nitejar(
    State(app): State<Arc<App>>,
    ApiJson(body): ApiJson<ImportRequest>,
) -> ApiResult<Json<ImportReport>> {
    if body.from.trim().is_empty() {
        return Err(ApiError::bad_request(
            "`from` is required: the Nitejar SQLite file",
        ));
    }
    match nitejar_import::import(&app.instances, &body).await {
        Ok(report) => Ok(Json(report)),
        Err(ImportError::Source(why)) => {
            Err(ApiError::new(StatusCode::BAD_REQUEST, "bad_source", why))
        }
        Err(ImportError::Db(e)) => Err(ApiError::from(e)),
    }
}
