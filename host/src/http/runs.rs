//! Admin API for agents, runs and hook registrations (authenticated like the rest of
//! `/api/admin`).
//!
//! - `GET/POST /agents`, `GET/PUT /agents/{id}`: agents (name, system prompt, model settings);
//! - `PUT /instances/{id}/agent`: which agent answers an integration instance;
//! - `GET /work-items/{id}/run` and `GET /jobs/{id}`: a run: its job, steps (prompt, model
//!   calls, tool calls, final response), every receipt of the work item in order (hook calls
//!   included), and the delivery;
//! - `GET /hooks`: the hook table in dispatch order; `PUT/DELETE /plugins/{id}/hooks/{hook}`:
//!   the operator's override of one registration (re-registered at once).

use super::error::{ApiError, ApiResult};
use crate::agent::model::ModelSettings;
use crate::app::App;
use crate::hooks::{HookName, HookOverride};
use crate::limits::DEFAULT_HOOK_CHAIN_BUDGET_MS;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use nitejar_store::{AgentFields, AgentRow, JobRow};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// Longest agent system prompt.
const MAX_SYSTEM_PROMPT_BYTES: usize = 64 << 10;

fn agent_json(a: &AgentRow) -> Value {
    let model: Value = serde_json::from_str(&a.model_json).unwrap_or(Value::Null);
    let mut v = serde_json::to_value(a).unwrap_or_default();
    v["model"] = model;
    v
}

/// Body of agent create/replace.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentBody {
    name: String,
    system_prompt: String,
    model: ModelSettings,
    /// Team (skill scope `team`).
    #[serde(default)]
    team: Option<String>,
}

impl AgentBody {
    fn check(&self) -> ApiResult<String> {
        let name = self.name.trim();
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(ApiError::bad_request(
                "name must be 1-64 characters of letters, digits, '-', '_' or '.'",
            ));
        }
        if self.system_prompt.len() > MAX_SYSTEM_PROMPT_BYTES {
            return Err(ApiError::bad_request(format!(
                "systemPrompt is longer than {MAX_SYSTEM_PROMPT_BYTES} bytes"
            )));
        }
        self.model
            .validate()
            .map_err(|e| ApiError::bad_request(format!("model: {e}")))?;
        serde_json::to_string(&self.model).map_err(ApiError::internal)
    }
}

/// `GET /api/admin/agents`.
pub async fn list_agents(State(app): State<Arc<App>>) -> ApiResult<Json<Value>> {
    let list: Vec<Value> = app.db.list_agents().await?.iter().map(agent_json).collect();
    Ok(Json(json!({ "agents": list })))
}

/// `POST /api/admin/agents`.
pub async fn create_agent(
    State(app): State<Arc<App>>,
    Json(body): Json<AgentBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let model_json = body.check()?;
    if app.db.get_agent_by_name(body.name.trim()).await?.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "name_taken",
            format!("an agent named {:?} exists", body.name.trim()),
        ));
    }
    let id = app
        .db
        .insert_agent(
            &AgentFields {
                name: body.name.trim(),
                system_prompt: &body.system_prompt,
                model_json: &model_json,
                team: body
                    .team
                    .as_deref()
                    .map(str::trim)
                    .filter(|t| !t.is_empty()),
            },
            false,
        )
        .await?;
    let agent = app
        .db
        .get_agent(&id)
        .await?
        .ok_or_else(|| ApiError::internal("agent vanished"))?;
    Ok((StatusCode::CREATED, Json(agent_json(&agent))))
}

/// `GET /api/admin/agents/{id}`.
pub async fn get_agent(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let agent = app
        .db
        .get_agent(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no agent {id}")))?;
    Ok(Json(agent_json(&agent)))
}

/// `PUT /api/admin/agents/{id}`: replaces name, prompt and model settings.
pub async fn update_agent(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Json(body): Json<AgentBody>,
) -> ApiResult<Json<Value>> {
    let model_json = body.check()?;
    if let Some(other) = app.db.get_agent_by_name(body.name.trim()).await?
        && other.id != id
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "name_taken",
            format!("an agent named {:?} exists", body.name.trim()),
        ));
    }
    let fields = AgentFields {
        name: body.name.trim(),
        system_prompt: &body.system_prompt,
        model_json: &model_json,
        team: body
            .team
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty()),
    };
    if !app.db.update_agent(&id, &fields).await? {
        return Err(ApiError::not_found(format!("no agent {id}")));
    }
    get_agent(State(app), Path(id)).await
}

/// Body of `PUT /api/admin/instances/{id}/agent`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AssignBody {
    agent_id: String,
}

/// `PUT /api/admin/instances/{id}/agent`.
pub async fn assign_agent(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Json(body): Json<AssignBody>,
) -> ApiResult<Json<Value>> {
    if app.db.get_instance(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("no integration instance {id}")));
    }
    if app.db.get_agent(&body.agent_id).await?.is_none() {
        return Err(ApiError::bad_request(format!("no agent {}", body.agent_id)));
    }
    app.db.assign_agent(&id, &body.agent_id).await?;
    Ok(Json(json!({ "instanceId": id, "agentId": body.agent_id })))
}

async fn run_json(app: &App, job: Option<JobRow>, work_item_id: &str) -> ApiResult<Value> {
    let item = app.db.get_work_item(work_item_id).await?;
    let steps = match &job {
        Some(j) => app.db.list_steps(&j.id).await?,
        None => Vec::new(),
    };
    let steps: Vec<Value> = steps
        .iter()
        .map(|s| {
            let mut v = serde_json::to_value(s).unwrap_or_default();
            v["detail"] = serde_json::from_str(&s.detail_json).unwrap_or(Value::Null);
            v
        })
        .collect();
    let delivery = match &job {
        Some(j) => app.db.get_delivery(&j.id).await?,
        None => None,
    };
    app.receipts.flush().await;
    let receipts: Vec<Value> = app
        .db
        .events_for_work_item(work_item_id)
        .await?
        .iter()
        .map(|e| {
            let mut v = serde_json::to_value(e).unwrap_or_default();
            v["detail"] = e
                .detail_json
                .as_deref()
                .and_then(|d| serde_json::from_str(d).ok())
                .unwrap_or(Value::Null);
            v
        })
        .collect();
    let result: Value = job
        .as_ref()
        .and_then(|j| j.result_json.as_deref())
        .and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or(Value::Null);
    Ok(json!({
        "workItem": item,
        "job": job,
        "result": result,
        "steps": steps,
        "receipts": receipts,
        "delivery": delivery,
    }))
}

/// `GET /api/admin/work-items/{id}/run`.
pub async fn work_item_run(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    if app.db.get_work_item(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("no work item {id}")));
    }
    let job = app.db.job_for_work_item(&id).await?;
    Ok(Json(run_json(&app, job, &id).await?))
}

/// `GET /api/admin/jobs/{id}`.
pub async fn get_job(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let job = app
        .db
        .get_job(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
    let wi = job.work_item_id.clone();
    Ok(Json(run_json(&app, Some(job), &wi).await?))
}

/// `GET /api/admin/hooks`: every event's handlers in dispatch order.
pub async fn hook_table(State(app): State<Arc<App>>) -> ApiResult<Json<Value>> {
    let table = app.registry.hook_table();
    let mut out = serde_json::Map::new();
    for event in HookName::ALL {
        let list: Vec<Value> = table
            .handlers(event)
            .iter()
            .map(|h| {
                json!({
                    "pluginId": h.plugin.id(), "version": h.plugin.version(),
                    "priority": h.priority, "failPolicy": h.fail_policy, "timeoutMs": h.timeout_ms,
                })
            })
            .collect();
        out.insert(event.as_str().into(), list.into());
    }
    Ok(Json(json!({
        "chainBudgetMs": app.config.hook_chain_budget_ms,
        "defaultTimeoutMs": app.config.hook_timeout_ms,
        "hooks": out,
    })))
}

fn parse_hook(hook: &str) -> ApiResult<HookName> {
    HookName::parse(hook).ok_or_else(|| {
        ApiError::bad_request(format!(
            "{hook:?} is not a hook; use one of {}",
            HookName::ALL.map(HookName::as_str).join(", ")
        ))
    })
}

/// `PUT /api/admin/plugins/{id}/hooks/{hook}`: overrides priority, failPolicy, timeoutMs or
/// enabled of one registration declared by the plugin's manifest.
pub async fn set_hook_override(
    State(app): State<Arc<App>>,
    Path((id, hook)): Path<(String, String)>,
    Json(body): Json<HookOverride>,
) -> ApiResult<Json<Value>> {
    let event = parse_hook(&hook)?;
    let row = app
        .db
        .get_plugin(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("plugin {id} is not installed")))?;
    let manifest = nitejar_sandbox::manifest::Manifest::parse(row.manifest_json.as_bytes())
        .map_err(ApiError::internal)?;
    let declared = manifest
        .hook_registrations()
        .map_err(ApiError::internal)?
        .iter()
        .any(|r| r.event == event);
    if !declared {
        return Err(ApiError::bad_request(format!(
            "plugin {id} does not register {}; only hooks in its manifest can be overridden",
            event.as_str()
        )));
    }
    if let Some(t) = body.timeout_ms
        && (t == 0 || t > DEFAULT_HOOK_CHAIN_BUDGET_MS)
    {
        return Err(ApiError::bad_request(format!(
            "timeoutMs must be between 1 and {DEFAULT_HOOK_CHAIN_BUDGET_MS}"
        )));
    }
    app.db.set_hook_override(&id, event, Some(&body)).await?;
    app.registry.reload_overrides(&app, &id).await?;
    app.receipts.emit(
        crate::receipts::Receipt::new(&id, "hook_override", "ok")
            .hook(Some(event.as_str()))
            .detail(serde_json::to_value(&body).unwrap_or_default()),
    );
    Ok(Json(
        json!({ "pluginId": id, "hook": event.as_str(), "override": body }),
    ))
}

/// `DELETE /api/admin/plugins/{id}/hooks/{hook}`: back to the manifest's registration.
pub async fn clear_hook_override(
    State(app): State<Arc<App>>,
    Path((id, hook)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let event = parse_hook(&hook)?;
    app.db.set_hook_override(&id, event, None).await?;
    app.registry.reload_overrides(&app, &id).await?;
    Ok(Json(
        json!({ "pluginId": id, "hook": event.as_str(), "override": null }),
    ))
}
