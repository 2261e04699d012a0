//! Integration instances (forms generated from each type's schema, see [`super::schema_form`])
//! and runs (work items with filters; a run's timeline of steps, receipts and delivery).

use super::forms::{Fields, act, api_error, bad_form, encode};
use super::schema_form::{self, MASK};
use super::{SignedIn, Ui, over_tls};
use crate::error::{ApiError, ApiJson, ApiQuery};
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{Value, context};
use nitejar_api::instances::{
    CreateInstanceRequest, Instance, IntegrationType, UpdateInstanceRequest, WorkItemsQuery,
};
use nitejar_api::runs::AssignAgentRequest;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

/// Work items per page of the runs list, and on an instance's page.
const WORK_ITEMS_PAGE: u32 = 50;
const RECENT_WORK_ITEMS: u32 = 10;

/// An instance page's path.
fn instance_path(id: &str) -> String {
    format!("/admin/instances/{}", encode(id))
}

/// The absolute webhook URL: as the API gives it when the host knows its public URL, else
/// on the address this page was reached at.
fn webhook_url(ui: &Ui, headers: &HeaderMap, url: &str) -> String {
    if url.starts_with("http://") || url.starts_with("https://") {
        return url.to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = if over_tls(&ui.app, headers) {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}{url}")
}

async fn types(ui: &Ui) -> Vec<IntegrationType> {
    crate::instances::list_types(State(ui.app.clone()))
        .await
        .0
        .integration_types
}

/// `GET /admin/instances`: every instance, and a new one of each type.
pub async fn list(State(ui): State<Arc<Ui>>, Extension(s): Extension<SignedIn>) -> Response {
    let instances = match crate::instances::list(State(ui.app.clone())).await {
        Ok(l) => l.0.instances,
        Err(e) => return api_error(&ui, &s, e),
    };
    ui.page(
        &s,
        "instances.html",
        "Instances",
        "instances",
        context! {
            instances => Value::from_serialize(&instances),
            types => Value::from_serialize(&types(&ui).await),
        },
    )
}

/// Query of the new-instance form.
#[derive(Deserialize)]
pub struct NewQuery {
    #[serde(rename = "type")]
    integration_type: Option<String>,
}

fn type_named(types: Vec<IntegrationType>, name: &str) -> Result<IntegrationType, ApiError> {
    types
        .into_iter()
        .find(|t| t.integration_type == name)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "no enabled plugin provides the integration type {name:?}"
            ))
        })
}

fn form_page(
    ui: &Ui,
    s: &SignedIn,
    t: &IntegrationType,
    fields: Vec<schema_form::FormField>,
    name: &str,
    problems: &[String],
) -> Response {
    let mut resp = ui.page(
        s,
        "instance_form.html",
        &format!("New {} instance", t.display_name),
        "instances",
        context! {
            integration => Value::from_serialize(t),
            fields => Value::from_serialize(&fields),
            name => name,
            problems => problems,
        },
    );
    if !problems.is_empty() {
        *resp.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    resp
}

/// `GET /admin/instances/new?type=`: the form generated from the type's schema.
pub async fn new_form(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    Query(q): Query<NewQuery>,
) -> Response {
    let name = q.integration_type.unwrap_or_default();
    match type_named(types(&ui).await, &name) {
        Ok(t) => {
            let fields = schema_form::fields(&t, None, None);
            form_page(&ui, &s, &t, fields, "", &[])
        }
        Err(e) => api_error(&ui, &s, e),
    }
}

/// `POST /admin/instances`: creates an instance from the generated form (`type`, `name`,
/// `cfg.*`, `enable`); a refusal shows the form again with what was typed (secrets excepted).
pub async fn create(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    form: Fields,
) -> Response {
    if !form.csrf_ok(&s) {
        return bad_form(&ui, &s);
    }
    let t = match type_named(types(&ui).await, form.get("type").unwrap_or("")) {
        Ok(t) => t,
        Err(e) => return api_error(&ui, &s, e),
    };
    let name = form.text("name").unwrap_or_default();
    let again = |problems: Vec<String>| {
        let fields = schema_form::fields(&t, None, Some(&form));
        form_page(&ui, &s, &t, fields, &name, &problems)
    };
    let config = match schema_form::read(&t, &form, false) {
        Ok(c) => c,
        Err(problems) => return again(problems),
    };
    let request = CreateInstanceRequest {
        integration_type: t.integration_type.clone(),
        name: name.clone(),
        config,
        enabled: form.ticked("enable"),
    };
    match crate::instances::create(State(ui.app.clone()), ApiJson(request)).await {
        Ok((_, created)) => {
            let i = created.0;
            ui.notify(
                &s,
                format!(
                    "Created {}{}.",
                    i.name,
                    if i.enabled {
                        " and enabled it (the connection test passed)"
                    } else {
                        " (disabled)"
                    }
                ),
            );
            Redirect::to(&instance_path(&i.id)).into_response()
        }
        Err(e) if e.status.is_client_error() => again(vec![e.message]),
        Err(e) => api_error(&ui, &s, e),
    }
}

/// `GET /admin/instances/{id}`: the instance, its webhook URL, the edit form, its agent and
/// its recent work items.
pub async fn show(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let app = ui.app.clone();
    let instance: Instance = match crate::instances::get(State(app.clone()), Path(id.clone())).await
    {
        Ok(i) => i.0,
        Err(e) => return api_error(&ui, &s, e),
    };
    let t = types(&ui)
        .await
        .into_iter()
        .find(|t| t.integration_type == instance.integration_type);
    let fields = t
        .as_ref()
        .map(|t| schema_form::fields(t, Some(&instance.config), None));
    let agents = match crate::runs::list_agents(State(app.clone())).await {
        Ok(a) => a.0.agents,
        Err(e) => return api_error(&ui, &s, e),
    };
    let assigned = match app.store.agent_for_instance(&id).await {
        Ok(a) => a.map(|a| a.id),
        Err(e) => return api_error(&ui, &s, e.into()),
    };
    let recent = crate::runs::list_work_items(
        State(app.clone()),
        ApiQuery(WorkItemsQuery {
            instance: Some(id.clone()),
            limit: Some(RECENT_WORK_ITEMS),
            ..Default::default()
        }),
    )
    .await;
    let recent = match recent {
        Ok(p) => p.0.work_items,
        Err(e) => return api_error(&ui, &s, e),
    };
    let title = instance.name.clone();
    ui.page(
        &s,
        "instance.html",
        &title,
        "instances",
        context! {
            webhook => webhook_url(&ui, &headers, &instance.webhook_url),
            instance => Value::from_serialize(&instance),
            integration => Value::from_serialize(&t),
            fields => Value::from_serialize(&fields),
            agents => Value::from_serialize(&agents),
            assigned => assigned,
            work_items => Value::from_serialize(&recent),
            mask => MASK,
        },
    )
}

/// `POST /admin/instances/{id}`: saves the edit form (`name`, `cfg.*`; the mask keeps a
/// stored secret).
pub async fn update(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    Path(id): Path<String>,
    form: Fields,
) -> Response {
    let app = ui.app.clone();
    let action = async {
        let current = crate::instances::get(State(app.clone()), Path(id.clone()))
            .await?
            .0;
        let t = type_named(types(&ui).await, &current.integration_type)?;
        let config = schema_form::read(&t, &form, true)
            .map_err(|problems| ApiError::bad_request(problems.join("; ")))?;
        let request = UpdateInstanceRequest {
            name: form.text("name"),
            config: Some(config),
        };
        crate::instances::update(State(app.clone()), Path(id.clone()), ApiJson(request)).await
    };
    act(&ui, &s, &form, &instance_path(&id), action, |i| {
        let check = match &i.0.connection {
            Some(c) if c.ok => " The connection test passed.",
            Some(_) => " The connection test failed.",
            None => "",
        };
        format!("Saved {}.{check}", i.0.name)
    })
    .await
}

/// `POST /admin/instances/{id}/{action}` for `enable`, `disable`, `test`, `delete` (with
/// `confirm` equal to the instance's name) and `agent` (`agentId`).
pub async fn action(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    Path((id, action)): Path<(String, String)>,
    form: Fields,
) -> Response {
    let app = ui.app.clone();
    let here = instance_path(&id);
    let (id2, st) = (id.clone(), State(app.clone()));
    match action.as_str() {
        "enable" => {
            act(
                &ui,
                &s,
                &form,
                &here,
                crate::instances::enable(st, Path(id2)),
                |i| format!("Enabled {}: the connection test passed.", i.0.name),
            )
            .await
        }
        "disable" => {
            act(
                &ui,
                &s,
                &form,
                &here,
                crate::instances::disable(st, Path(id2)),
                |i| format!("Disabled {}: its webhooks are refused.", i.0.name),
            )
            .await
        }
        "test" => {
            act(
                &ui,
                &s,
                &form,
                &here,
                crate::instances::test(st, Path(id2)),
                |c| {
                    let c = c.0;
                    format!(
                        "Connection test {}{}",
                        if c.ok { "passed" } else { "failed" },
                        c.detail.map(|d| format!(": {d}")).unwrap_or_default()
                    )
                },
            )
            .await
        }
        "agent" => {
            let body = ApiJson(AssignAgentRequest {
                agent_id: form.get("agentId").unwrap_or("").to_string(),
            });
            act(
                &ui,
                &s,
                &form,
                &here,
                crate::runs::assign_agent(st, Path(id2), body),
                |_| "The agent was assigned.".into(),
            )
            .await
        }
        "delete" => {
            let action = async {
                let current = crate::instances::get(st.clone(), Path(id2.clone()))
                    .await?
                    .0;
                if form.get("confirm").map(str::trim) != Some(current.name.as_str()) {
                    return Err(ApiError::bad_request(format!(
                        "type the instance's name ({}) to confirm; nothing was deleted",
                        current.name
                    )));
                }
                crate::instances::delete(st, Path(id2)).await?;
                Ok(current.name)
            };
            act(&ui, &s, &form, "/admin/instances", action, |name| {
                format!("Deleted {name}; its work items and runs are kept.")
            })
            .await
        }
        _ => super::session::not_found(State(ui.clone())).await,
    }
}

/// Query of the runs list.
#[derive(Deserialize, Default)]
pub struct RunsFilter {
    instance: Option<String>,
    status: Option<String>,
    cursor: Option<String>,
}

/// `GET /admin/runs?instance=&status=&cursor=`: work items, newest first.
pub async fn runs(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    Query(q): Query<RunsFilter>,
) -> Response {
    let blank = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    let (instance, status, cursor) = (blank(q.instance), blank(q.status), blank(q.cursor));
    let page = crate::runs::list_work_items(
        State(ui.app.clone()),
        ApiQuery(WorkItemsQuery {
            instance: instance.clone(),
            status: status.clone(),
            limit: Some(WORK_ITEMS_PAGE),
            cursor: cursor.clone(),
        }),
    )
    .await;
    let page = match page {
        Ok(p) => p.0,
        Err(e) => return api_error(&ui, &s, e),
    };
    let instances = match crate::instances::list(State(ui.app.clone())).await {
        Ok(l) => l.0.instances,
        Err(e) => return api_error(&ui, &s, e),
    };
    let filter_query = format!(
        "instance={}&status={}",
        encode(instance.as_deref().unwrap_or("")),
        encode(status.as_deref().unwrap_or(""))
    );
    ui.page(
        &s,
        "runs.html",
        "Runs",
        "runs",
        context! {
            work_items => Value::from_serialize(&page.work_items),
            instances => Value::from_serialize(&instances),
            next => page.next_cursor.map(|c| format!("{filter_query}&cursor={}", encode(&c))),
            first_page => cursor.is_none(),
            filter_query => filter_query,
            instance => instance,
            status => status,
            statuses => ["pending", "running", "done", "failed"],
        },
    )
}

/// `GET /admin/runs/{work_item_id}`: the run as one timeline (steps and receipts in time
/// order, with durations), and its delivery.
pub async fn run(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    Path(id): Path<String>,
) -> Response {
    let view = match crate::runs::work_item_run(State(ui.app.clone()), Path(id)).await {
        Ok(v) => v.0,
        Err(e) => return api_error(&ui, &s, e),
    };
    let start = view
        .work_item
        .as_ref()
        .map(|w| w.created_at)
        .unwrap_or_default();
    let mut timeline: Vec<serde_json::Value> = Vec::new();
    for st in &view.steps {
        timeline.push(json!({
            "at": st.created_at, "offset": st.created_at - start, "source": "step",
            "what": st.kind, "turn": st.turn, "attempt": st.attempt,
            "detail": pretty(&st.detail),
        }));
    }
    for r in &view.receipts {
        let rc = &r.receipt;
        timeline.push(json!({
            "at": rc.created_at, "offset": rc.created_at - start, "source": "receipt",
            "what": rc.kind, "hook": rc.hook_name.clone().or_else(|| {
                r.detail["operation"].as_str().map(str::to_string)
            }), "plugin": rc.plugin_id,
            "status": rc.status, "duration": rc.duration_ms, "detail": pretty(&r.detail),
        }));
    }
    // Stable: a step and a receipt of the same millisecond keep their own order.
    timeline.sort_by_key(|e| e["at"].as_i64().unwrap_or_default());
    let title = view
        .work_item
        .as_ref()
        .map(|w| w.title.clone())
        .unwrap_or_else(|| "Run".into());
    ui.page(
        &s,
        "run.html",
        &title,
        "runs",
        context! {
            view => Value::from_serialize(&view),
            timeline => Value::from_serialize(&timeline),
        },
    )
}

/// A detail as indented JSON, cut at 4 KiB (the API has it whole).
fn pretty(v: &serde_json::Value) -> String {
    if v.is_null() {
        return String::new();
    }
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    if s.len() > 4096 {
        let mut cut = 4096;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("\n... (the API has it whole)");
    }
    s
}
