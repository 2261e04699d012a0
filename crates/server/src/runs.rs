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

use crate::error::{ApiError, ApiJson, ApiQuery, ApiResult};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use nitejar_api::instances::{WorkItemPage, WorkItemsQuery};
use nitejar_api::runs::{
    Agent, AgentList, AgentRequest, AssignAgentRequest, AssignAgentResponse, Delivery,
    FailPolicy as ApiFailPolicy, HookHandler, HookOverride as ApiHookOverride,
    HookOverrideResponse, HookTableView, Job, RunReceipt, RunView, Step,
};
use nitejar_core::app::App;
use nitejar_core::hooks::{FailPolicy, HookName, HookOverride};
use nitejar_core::limits::DEFAULT_HOOK_CHAIN_BUDGET_MS;
use nitejar_store::{AgentFields, AgentRow, JobRow, WorkItemFilter};
use serde_json::Value;
use std::sync::Arc;

/// Longest agent system prompt.
const MAX_SYSTEM_PROMPT_BYTES: usize = 64 << 10;

/// The API's view of an agent row.
fn agent_view(a: &AgentRow) -> Agent {
    Agent {
        id: a.id.clone(),
        name: a.name.clone(),
        system_prompt: a.system_prompt.clone(),
        model: serde_json::from_str(&a.model_json).ok(),
        is_default: a.is_default,
        team: a.team.clone(),
        created_at: a.created_at,
        updated_at: a.updated_at,
    }
}

/// Checks an agent request; returns its model settings as stored.
fn check_agent(body: &AgentRequest) -> ApiResult<String> {
    let name = body.name.trim();
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
    if body.system_prompt.len() > MAX_SYSTEM_PROMPT_BYTES {
        return Err(ApiError::bad_request(format!(
            "systemPrompt is longer than {MAX_SYSTEM_PROMPT_BYTES} bytes"
        )));
    }
    body.model
        .validate()
        .map_err(|e| ApiError::bad_request(format!("model: {e}")))?;
    serde_json::to_string(&body.model).map_err(ApiError::internal)
}

/// `GET /api/admin/agents`.
pub async fn list_agents(State(app): State<Arc<App>>) -> ApiResult<Json<AgentList>> {
    Ok(Json(AgentList {
        agents: app
            .store
            .list_agents()
            .await?
            .iter()
            .map(agent_view)
            .collect(),
    }))
}

/// `POST /api/admin/agents`.
pub async fn create_agent(
    State(app): State<Arc<App>>,
    ApiJson(body): ApiJson<AgentRequest>,
) -> ApiResult<(StatusCode, Json<Agent>)> {
    let model_json = check_agent(&body)?;
    if app
        .store
        .get_agent_by_name(body.name.trim())
        .await?
        .is_some()
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "name_taken",
            format!("an agent named {:?} exists", body.name.trim()),
        ));
    }
    let id = app
        .store
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
        .store
        .get_agent(&id)
        .await?
        .ok_or_else(|| ApiError::internal("agent vanished"))?;
    Ok((StatusCode::CREATED, Json(agent_view(&agent))))
}

/// `GET /api/admin/agents/{id}`.
pub async fn get_agent(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Agent>> {
    let agent = app
        .store
        .get_agent(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no agent {id}")))?;
    Ok(Json(agent_view(&agent)))
}

/// `PUT /api/admin/agents/{id}`: replaces name, prompt and model settings.
pub async fn update_agent(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AgentRequest>,
) -> ApiResult<Json<Agent>> {
    let model_json = check_agent(&body)?;
    if let Some(other) = app.store.get_agent_by_name(body.name.trim()).await?
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
    if !app.store.update_agent(&id, &fields).await? {
        return Err(ApiError::not_found(format!("no agent {id}")));
    }
    get_agent(State(app), Path(id)).await
}

/// `PUT /api/admin/instances/{id}/agent`.
pub async fn assign_agent(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AssignAgentRequest>,
) -> ApiResult<Json<AssignAgentResponse>> {
    if app.store.get_instance(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("no integration instance {id}")));
    }
    if app.store.get_agent(&body.agent_id).await?.is_none() {
        return Err(ApiError::bad_request(format!("no agent {}", body.agent_id)));
    }
    app.store.assign_agent(&id, &body.agent_id).await?;
    Ok(Json(AssignAgentResponse {
        instance_id: id,
        agent_id: body.agent_id,
    }))
}

/// A run seen whole: its work item, job, steps, receipts and delivery.
async fn run_view(app: &App, job: Option<JobRow>, work_item_id: &str) -> ApiResult<RunView> {
    let work_item = app
        .store
        .get_work_item(work_item_id)
        .await?
        .map(crate::views::work_item);
    let steps = match &job {
        Some(j) => app.store.list_steps(&j.id).await?,
        None => Vec::new(),
    };
    let steps = steps
        .into_iter()
        .map(|s| Step {
            detail: serde_json::from_str(&s.detail_json).unwrap_or(Value::Null),
            id: s.id,
            job_id: s.job_id,
            attempt: s.attempt,
            turn: s.turn,
            kind: s.kind,
            created_at: s.created_at,
        })
        .collect();
    let delivery = match &job {
        Some(j) => app.store.get_delivery(&j.id).await?.map(|d| Delivery {
            job_id: d.job_id,
            work_item_id: d.work_item_id,
            status: d.status,
            content: d.content,
            attempts: d.attempts,
            external_id: d.external_id,
            error: d.error,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }),
        None => None,
    };
    app.receipts.flush().await;
    let receipts = app
        .store
        .events_for_work_item(work_item_id)
        .await?
        .into_iter()
        .map(|e| RunReceipt {
            detail: e
                .detail_json
                .as_deref()
                .and_then(|d| serde_json::from_str(d).ok())
                .unwrap_or(Value::Null),
            receipt: crate::views::receipt(e),
        })
        .collect();
    let result: Value = job
        .as_ref()
        .and_then(|j| j.result_json.as_deref())
        .and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or(Value::Null);
    Ok(RunView {
        work_item,
        job: job.map(|j| Job {
            id: j.id,
            work_item_id: j.work_item_id,
            agent_id: j.agent_id,
            status: j.status,
            attempts: j.attempts,
            claimed_by: j.claimed_by,
            last_error: j.last_error,
            created_at: j.created_at,
            updated_at: j.updated_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
        }),
        result,
        steps,
        receipts,
        delivery,
    })
}

/// `GET /api/admin/work-items/{id}/run`.
pub async fn work_item_run(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> ApiResult<Json<RunView>> {
    if app.store.get_work_item(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("no work item {id}")));
    }
    let job = app.store.job_for_work_item(&id).await?;
    Ok(Json(run_view(&app, job, &id).await?))
}

/// `GET /api/admin/work-items?instance=&status=&limit=&cursor=`: newest first.
pub async fn list_work_items(
    State(app): State<Arc<App>>,
    ApiQuery(q): ApiQuery<WorkItemsQuery>,
) -> ApiResult<Json<WorkItemPage>> {
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let before = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => {
            let parsed = c
                .split_once(':')
                .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_string())));
            Some(parsed.ok_or_else(|| {
                ApiError::bad_request("cursor is not a nextCursor this listing returned")
            })?)
        }
    };
    let filter = WorkItemFilter {
        instance_id: q.instance.filter(|s| !s.is_empty()),
        status: q.status.filter(|s| !s.is_empty()),
    };
    let rows = app.store.search_work_items(&filter, limit, before).await?;
    let next_cursor = (rows.len() as u32 == limit)
        .then(|| rows.last().map(|r| format!("{}:{}", r.created_at, r.id)))
        .flatten();
    Ok(Json(WorkItemPage {
        work_items: rows.into_iter().map(crate::views::work_item).collect(),
        next_cursor,
    }))
}

/// `GET /api/admin/jobs/{id}`.
pub async fn get_job(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> ApiResult<Json<RunView>> {
    let job = app
        .store
        .get_job(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
    let wi = job.work_item_id.clone();
    Ok(Json(run_view(&app, Some(job), &wi).await?))
}

/// `GET /api/admin/hooks`: every event's handlers in dispatch order.
pub async fn hook_table(State(app): State<Arc<App>>) -> ApiResult<Json<HookTableView>> {
    let table = app.registry.hook_table();
    let hooks = HookName::ALL
        .into_iter()
        .map(|event| {
            let handlers = table
                .handlers(event)
                .iter()
                .map(|h| HookHandler {
                    plugin_id: h.plugin.id().into(),
                    version: h.plugin.version().into(),
                    priority: h.priority,
                    fail_policy: api_policy(h.fail_policy),
                    timeout_ms: h.timeout_ms,
                })
                .collect();
            (event.as_str().to_string(), handlers)
        })
        .collect();
    Ok(Json(HookTableView {
        chain_budget_ms: app.config.hook_chain_budget_ms,
        default_timeout_ms: app.config.hook_timeout_ms,
        hooks,
    }))
}

/// The sandbox's failure policy as the API's.
fn api_policy(p: FailPolicy) -> ApiFailPolicy {
    match p {
        FailPolicy::FailOpen => ApiFailPolicy::FailOpen,
        FailPolicy::FailClosed => ApiFailPolicy::FailClosed,
    }
}

/// The API's override as the sandbox's registration override.
fn sandbox_override(o: &ApiHookOverride) -> HookOverride {
    HookOverride {
        priority: o.priority,
        fail_policy: o.fail_policy.map(|p| match p {
            ApiFailPolicy::FailOpen => FailPolicy::FailOpen,
            ApiFailPolicy::FailClosed => FailPolicy::FailClosed,
        }),
        timeout_ms: o.timeout_ms,
        enabled: o.enabled,
    }
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
    ApiJson(request): ApiJson<ApiHookOverride>,
) -> ApiResult<Json<HookOverrideResponse>> {
    let body = sandbox_override(&request);
    let event = parse_hook(&hook)?;
    let row = app
        .store
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
    app.store.set_hook_override(&id, event, Some(&body)).await?;
    app.registry.reload_overrides(&id).await?;
    app.receipts.emit(
        nitejar_core::receipts::Receipt::new(&id, "hook_override", "ok")
            .hook(Some(event.as_str()))
            .detail(serde_json::to_value(&body).unwrap_or_default()),
    );
    Ok(Json(HookOverrideResponse {
        plugin_id: id,
        hook: event.as_str().into(),
        override_: Some(request),
    }))
}

/// `DELETE /api/admin/plugins/{id}/hooks/{hook}`: back to the manifest's registration.
pub async fn clear_hook_override(
    State(app): State<Arc<App>>,
    Path((id, hook)): Path<(String, String)>,
) -> ApiResult<Json<HookOverrideResponse>> {
    let event = parse_hook(&hook)?;
    app.store.set_hook_override(&id, event, None).await?;
    app.registry.reload_overrides(&id).await?;
    Ok(Json(HookOverrideResponse {
        plugin_id: id,
        hook: event.as_str().into(),
        override_: None,
    }))
}
