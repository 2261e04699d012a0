//! The overview, the plugin list, a plugin's page and its everyday actions (enable with
//! consent, disable, grant and revoke, secrets, limits, hook overrides) and its receipts.
//! Each page calls the API's own handlers and renders their typed answers.

use super::forms::{Fields, act, api_error, encode, plugin_path};
use super::{SignedIn, Ui};
use crate::error::{ApiError, ApiJson, ApiQuery};
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use minijinja::{Value, context};
use nitejar_api::plugins::{EnableRequest, EventsQuery, GrantRequest, LimitsRequest};
use nitejar_sandbox::manifest::Manifest;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Receipts on a plugin's page (the events page pages through all of them).
const RECENT_RECEIPTS: u32 = 20;

/// The receipt kinds of a plugin's version history.
const HISTORY_KINDS: [&str; 4] = ["install", "upgrade", "rollback", "reload"];

/// Receipts per page of the events timeline.
const EVENTS_PAGE: u32 = 50;

/// `GET /admin`: the runtime posture (word for word from the API) and what needs attention.
pub async fn overview(State(ui): State<Arc<Ui>>, Extension(s): Extension<SignedIn>) -> Response {
    let list = match crate::admin::list_plugins(State(ui.app.clone())).await {
        Ok(l) => l.0,
        Err(e) => return api_error(&ui, &s, e),
    };
    let ungranted = match nitejar_core::plugins::access::ungranted(&ui.app.plugins).await {
        Ok(u) => u,
        Err(e) => return api_error(&ui, &s, e.into()),
    };
    // Each plugin that needs the operator, with every reason.
    let attention: Vec<serde_json::Value> = list
        .plugins
        .iter()
        .filter_map(|p| {
            let mut reasons = Vec::new();
            if let Some(a) = &p.alert {
                reasons.push(a.message.clone());
            }
            if let Some(e) = &p.last_load_error {
                reasons.push(format!("load error: {e}"));
            }
            if let Some(v) = &p.pending_version {
                reasons.push(format!("the upgrade to {v} waits for consent"));
            }
            if p.enabled && !p.loaded && p.last_load_error.is_none() {
                reasons.push("enabled but not loaded".into());
            }
            if let Some(missing) = ungranted.get(&p.id) {
                reasons.push(format!(
                    "{} declared permission(s) not granted",
                    missing.len()
                ));
            }
            (!reasons.is_empty()).then(|| json!({ "id": p.id, "name": p.name, "reasons": reasons }))
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default();
    let (chart, totals) = match ui.app.store.activity(now - 3_600_000).await {
        Ok(minutes) => activity_chart(&minutes, now / 60_000),
        Err(e) => return api_error(&ui, &s, e.into()),
    };
    ui.app.receipts.flush().await;
    let failures: Vec<_> = match ui.app.store.recent_failures(RECENT_FAILURES).await {
        Ok(rows) => rows.into_iter().map(crate::views::receipt).collect(),
        Err(e) => return api_error(&ui, &s, e.into()),
    };
    ui.page(
        &s,
        "overview.html",
        "Overview",
        "overview",
        context! {
            chart => Value::from_serialize(&chart),
            totals => Value::from_serialize(totals),
            failures => Value::from_serialize(&failures),
            runtime => Value::from_serialize(&list.runtime),
            attention => Value::from_serialize(&attention),
            plugin_count => list.plugins.len(),
            enabled_count => list.plugins.iter().filter(|p| p.enabled).count(),
        },
    )
}

/// Failures listed on the overview.
const RECENT_FAILURES: u32 = 10;

/// Height of the overview chart's bars area, in SVG units.
const CHART_HEIGHT: i64 = 60;

/// The overview's chart of the last hour: one slot per minute (oldest first) with the bar
/// heights of work items received, runs done and runs failed; and the hour's totals
/// (received, done, failed).
fn activity_chart(
    minutes: &[nitejar_store::ActivityMinute],
    this_minute: i64,
) -> (Vec<serde_json::Value>, (i64, i64, i64)) {
    let window = this_minute - 59..=this_minute;
    let peak = minutes
        .iter()
        .filter(|m| window.contains(&m.minute))
        .map(|m| m.received.max(m.done + m.failed))
        .max()
        .unwrap_or(0)
        .max(1);
    let height = |n: i64| (n * CHART_HEIGHT + peak - 1) / peak;
    let mut totals = (0, 0, 0);
    let slots = (0..60)
        .map(|i| {
            let minute = this_minute - 59 + i;
            let m = minutes
                .iter()
                .find(|m| m.minute == minute)
                .cloned()
                .unwrap_or_default();
            totals.0 += m.received;
            totals.1 += m.done;
            totals.2 += m.failed;
            json!({
                "x": i * 10,
                "received": height(m.received),
                "done": height(m.done),
                "failed": height(m.failed),
                "label": format!("{} min ago: {} received, {} done, {} failed", 59 - i, m.received, m.done, m.failed),
            })
        })
        .collect();
    (slots, totals)
}

/// `GET /admin/plugins`.
pub async fn plugins(State(ui): State<Arc<Ui>>, Extension(s): Extension<SignedIn>) -> Response {
    match crate::admin::list_plugins(State(ui.app.clone())).await {
        Ok(l) => ui.page(
            &s,
            "plugins.html",
            "Plugins",
            "plugins",
            context! { plugins => Value::from_serialize(&l.0.plugins) },
        ),
        Err(e) => api_error(&ui, &s, e),
    }
}

/// `GET /admin/plugins/{id}`: everything about one plugin, with a form for each action.
pub async fn plugin(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    Path(id): Path<String>,
) -> Response {
    match plugin_context(&ui, &id).await {
        Ok((title, ctx)) => ui.page(&s, "plugin.html", &title, "plugins", ctx),
        Err(e) => api_error(&ui, &s, e),
    }
}

async fn plugin_context(ui: &Ui, id: &str) -> Result<(String, Value), ApiError> {
    let app = ui.app.clone();
    let detail = crate::admin::get_plugin(State(app.clone()), Path(id.to_string()))
        .await?
        .0;
    let versions = crate::lifecycle::versions(State(app.clone()), Path(id.to_string()))
        .await?
        .0;
    let health = crate::lifecycle::doctor(State(app.clone()), Path(id.to_string()))
        .await?
        .0;
    ui.app.receipts.flush().await;
    let receipts: Vec<_> = app
        .store
        .list_events(id, RECENT_RECEIPTS, None)
        .await?
        .into_iter()
        .map(crate::views::receipt)
        .collect();
    let row = app
        .store
        .get_plugin(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("plugin {id} is not installed")))?;
    let manifest = Manifest::parse(row.manifest_json.as_bytes()).ok();
    // The pending upgrade's permissions beside the active version's, one row per permission.
    let diff = match &detail.pending_upgrade {
        Some(p) => {
            let active: BTreeSet<String> = manifest
                .as_ref()
                .map(|m| m.disclosures().into_iter().collect())
                .unwrap_or_default();
            let pending: BTreeSet<String> = app
                .store
                .get_version(id, &p.version)
                .await?
                .and_then(|v| Manifest::parse(v.manifest_json.as_bytes()).ok())
                .map(|m| m.disclosures().into_iter().collect())
                .unwrap_or_default();
            let granted: BTreeSet<String> = app.store.granted_permissions(id).await?;
            active
                .union(&pending)
                .map(|perm| {
                    json!({
                        "permission": perm,
                        "active": active.contains(perm),
                        "pending": pending.contains(perm),
                        "granted": granted.contains(perm),
                        "added": p.added_permissions.contains(perm),
                    })
                })
                .collect::<Vec<_>>()
        }
        None => Vec::new(),
    };
    let hooks = hook_rows(ui, id, manifest.as_ref()).await?;
    // The versions' history: installs, upgrades, rollbacks and reloads, newest first.
    let mut history = Vec::new();
    for kind in HISTORY_KINDS {
        let filter = nitejar_store::EventFilter {
            kind: Some(kind.to_string()),
            status: None,
        };
        history.extend(
            app.store
                .search_events(id, &filter, RECENT_RECEIPTS, None)
                .await?,
        );
    }
    history.sort_by(|a, b| b.id.cmp(&a.id));
    history.truncate(RECENT_RECEIPTS as usize);
    let history: Vec<_> = history.into_iter().map(crate::views::receipt).collect();
    let title = detail.plugin.name.clone();
    Ok((
        title,
        context! {
            plugin => Value::from_serialize(&detail.plugin),
            disclosures => Value::from_serialize(&detail.disclosures),
            secrets => Value::from_serialize(&detail.secrets),
            pending => Value::from_serialize(&detail.pending_upgrade),
            diff => Value::from_serialize(&diff),
            versions => Value::from_serialize(&versions),
            health => Value::from_serialize(&health),
            receipts => Value::from_serialize(&receipts),
            hooks => Value::from_serialize(&hooks),
            history => Value::from_serialize(&history),
            fuel_max => nitejar_sandbox::limits::MAX_FUEL_PER_CALL,
            fuel_override => app.store.fuel_override(id).await?,
        },
    ))
}

/// The plugin's declared hook registrations with the operator's override of each.
async fn hook_rows(
    ui: &Ui,
    id: &str,
    manifest: Option<&Manifest>,
) -> Result<Vec<serde_json::Value>, ApiError> {
    let Some(registrations) = manifest.and_then(|m| m.hook_registrations().ok()) else {
        return Ok(Vec::new());
    };
    let overrides = ui.app.store.list_hook_overrides(id).await?;
    Ok(registrations
        .iter()
        .map(|r| {
            let o = overrides
                .iter()
                .find(|(event, _)| *event == r.event)
                .map(|(_, o)| o);
            json!({
                "event": r.event.as_str(),
                "priority": r.priority,
                "failPolicy": r.fail_policy,
                "timeoutMs": r.timeout_ms,
                "override": o,
            })
        })
        .collect())
}

/// A page about one plugin (`template`, titled `<verb> <name>`): the plugin as `plugin`, and
/// `extra`.
pub async fn about_plugin(
    ui: &Ui,
    s: &SignedIn,
    id: String,
    template: &str,
    verb: &str,
    extra: Value,
) -> Response {
    match crate::admin::get_plugin(State(ui.app.clone()), Path(id)).await {
        Ok(d) => ui.page(
            s,
            template,
            &format!("{verb} {}", d.0.plugin.name),
            "plugins",
            context! { plugin => Value::from_serialize(&d.0.plugin), ..extra },
        ),
        Err(e) => api_error(ui, s, e),
    }
}

/// `POST /admin/plugins/{id}/enable`: with `consent` when the plugin's permissions were shown.
/// Enabling also clears a crash-loop alert (the re-enable of the alert banner).
pub async fn enable(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    Path(id): Path<String>,
    form: Fields,
) -> Response {
    let body = Some(ApiJson(EnableRequest {
        consent: form.ticked("consent"),
    }));
    let action = crate::admin::enable_plugin(State(ui.app.clone()), Path(id.clone()), body);
    act(&ui, &s, &form, &plugin_path(&id), action, |r| {
        format!(
            "Enabled {id}{}.",
            r.0.version.map(|v| format!(" {v}")).unwrap_or_default()
        )
    })
    .await
}

/// `POST /admin/plugins/{id}/disable`.
pub async fn disable(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    Path(id): Path<String>,
    form: Fields,
) -> Response {
    let action = crate::admin::disable_plugin(State(ui.app.clone()), Path(id.clone()));
    act(&ui, &s, &form, &plugin_path(&id), action, |_| {
        format!("Disabled {id}: no new calls reach it.")
    })
    .await
}

/// `POST /admin/plugins/{id}/grants`: grants the ticked permissions (`permission` fields).
pub async fn grant(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    Path(id): Path<String>,
    form: Fields,
) -> Response {
    change_grants(&ui, &s, id, &form, true).await
}

/// `POST /admin/plugins/{id}/revoke`: withdraws the grants of the `permission` fields.
pub async fn revoke(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    Path(id): Path<String>,
    form: Fields,
) -> Response {
    change_grants(&ui, &s, id, &form, false).await
}

async fn change_grants(ui: &Ui, s: &SignedIn, id: String, form: &Fields, grant: bool) -> Response {
    let body = ApiJson(GrantRequest {
        permissions: form.all("permission"),
    });
    let (app, to) = (State(ui.app.clone()), plugin_path(&id));
    let action = async {
        Ok(if grant {
            format!(
                "Granted {} permission(s).",
                crate::admin::grant(app, Path(id), body).await?.0.granted
            )
        } else {
            format!(
                "Revoked {} permission(s).",
                crate::admin::revoke(app, Path(id), body).await?.0.revoked
            )
        })
    };
    act(ui, s, form, &to, action, |notice| notice).await
}

/// `POST /admin/plugins/{id}/secrets`: stores the value of one declared secret (`key`,
/// `value`). The value is never shown again.
pub async fn set_secret(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    Path(id): Path<String>,
    form: Fields,
) -> Response {
    let key = form.get("key").unwrap_or_default().to_string();
    let value = form.get("value").unwrap_or_default().to_string();
    let action = async {
        if value.is_empty() {
            return Err(ApiError::bad_request(
                "type the secret's value (an empty value is not stored)",
            ));
        }
        crate::admin::set_secret(
            State(ui.app.clone()),
            Path((id.clone(), key.clone())),
            ApiJson(nitejar_api::plugins::SecretRequest { value }),
        )
        .await
    };
    act(&ui, &s, &form, &plugin_path(&id), action, |_| {
        format!("Stored the secret {key}.")
    })
    .await
}

/// `POST /admin/plugins/{id}/limits`: the instruction budget per call (`fuel`, blank for the
/// host default).
pub async fn set_limits(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    Path(id): Path<String>,
    form: Fields,
) -> Response {
    let fuel = form.text("fuel");
    let action = async {
        let fuel_per_call = match fuel.as_deref() {
            None => None,
            Some(f) => Some(f.replace('_', "").parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("{f:?} is not a whole number of instructions"))
            })?),
        };
        crate::admin::set_limits(
            State(ui.app.clone()),
            Path(id.clone()),
            ApiJson(LimitsRequest { fuel_per_call }),
        )
        .await
    };
    act(&ui, &s, &form, &plugin_path(&id), action, |r| {
        match r.0.fuel_per_call {
            Some(f) => format!("Instruction budget per call: {f}."),
            None => "Instruction budget per call: the host default.".into(),
        }
    })
    .await
}

/// `POST /admin/plugins/{id}/hooks/{hook}`: the operator's override of one registration
/// (`priority`, `failPolicy`, `timeoutMs`, `enabled`; blank keeps the manifest's), or with
/// `reset` back to the manifest's registration.
pub async fn set_hook(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    Path((id, hook)): Path<(String, String)>,
    form: Fields,
) -> Response {
    let app = ui.app.clone();
    let reset = form.get("reset").is_some();
    let action = async {
        if reset {
            return crate::runs::clear_hook_override(State(app), Path((id.clone(), hook.clone())))
                .await;
        }
        let number = |name: &str| -> Result<Option<i64>, ApiError> {
            form.text(name)
                .map(|v| {
                    v.parse::<i64>().map_err(|_| {
                        ApiError::bad_request(format!("{name}: {v:?} is not a number"))
                    })
                })
                .transpose()
        };
        let priority = number("priority")?
            .map(|p| {
                i32::try_from(p).map_err(|_| ApiError::bad_request("priority is out of range"))
            })
            .transpose()?;
        let timeout_ms = number("timeoutMs")?
            .map(|t| {
                u64::try_from(t).map_err(|_| ApiError::bad_request("timeoutMs must be positive"))
            })
            .transpose()?;
        let fail_policy = match form.text("failPolicy").as_deref() {
            None => None,
            Some("fail_open") => Some(nitejar_api::runs::FailPolicy::FailOpen),
            Some("fail_closed") => Some(nitejar_api::runs::FailPolicy::FailClosed),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "failPolicy {other:?} is neither fail_open nor fail_closed"
                )));
            }
        };
        let request = nitejar_api::runs::HookOverride {
            priority,
            fail_policy,
            timeout_ms,
            enabled: Some(!form.ticked("unregister")),
        };
        crate::runs::set_hook_override(
            State(app),
            Path((id.clone(), hook.clone())),
            ApiJson(request),
        )
        .await
    };
    act(&ui, &s, &form, &plugin_path(&id), action, |r| {
        match r.0.override_ {
            Some(_) => format!("Changed the {} registration.", r.0.hook),
            None => format!("The {} registration is the manifest's again.", r.0.hook),
        }
    })
    .await
}

/// Query of the events timeline.
#[derive(Deserialize, Default)]
pub struct EventsFilter {
    kind: Option<String>,
    status: Option<String>,
    cursor: Option<String>,
}

/// `GET /admin/plugins/{id}/events?kind=&status=&cursor=`: the receipts, newest first,
/// filtered and paginated.
pub async fn events(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    Path(id): Path<String>,
    Query(q): Query<EventsFilter>,
) -> Response {
    let blank = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    let (kind, status, cursor) = (blank(q.kind), blank(q.status), blank(q.cursor));
    let query = EventsQuery {
        limit: Some(EVENTS_PAGE),
        cursor: cursor.clone(),
        kind: kind.clone(),
        status: status.clone(),
    };
    let detail = match crate::admin::get_plugin(State(ui.app.clone()), Path(id.clone())).await {
        Ok(d) => d.0,
        Err(e) => return api_error(&ui, &s, e),
    };
    let page =
        match crate::admin::list_events(State(ui.app.clone()), Path(id.clone()), ApiQuery(query))
            .await
        {
            Ok(p) => p.0,
            Err(e) => return api_error(&ui, &s, e),
        };
    let filter_query = format!(
        "kind={}&status={}",
        encode(kind.as_deref().unwrap_or("")),
        encode(status.as_deref().unwrap_or(""))
    );
    ui.page(
        &s,
        "events.html",
        &format!("Receipts of {}", detail.plugin.name),
        "plugins",
        context! {
            plugin => Value::from_serialize(&detail.plugin),
            events => Value::from_serialize(&page.events),
            next => page.next_cursor.map(|c| format!("{filter_query}&cursor={}", encode(&c))),
            first_page => cursor.is_none(),
            filter_query => filter_query,
            kind => kind,
            status => status,
            kinds => RECEIPT_KINDS,
            statuses => RECEIPT_STATUSES,
        },
    )
}

/// The receipt kinds the filter offers (any other kind can still be typed in the query).
const RECEIPT_KINDS: &[&str] = &[
    "hook",
    "integration",
    "tool",
    "permission_denied",
    "quota_exceeded",
    "install",
    "load",
    "upgrade",
    "rollback",
    "reload",
    "enable",
    "disable",
    "auto_disable",
    "grant",
    "revoke",
    "secret_set",
    "limits_set",
    "hook_override",
];

/// The receipt outcomes the filter offers.
const RECEIPT_STATUSES: &[&str] = &["ok", "error", "timeout", "blocked", "pending_consent"];

#[cfg(test)]
mod tests {
    use super::*;
    use nitejar_store::ActivityMinute;

    #[test]
    fn the_chart_scales_to_the_busiest_minute_and_sums_the_hour() {
        let minutes = [
            ActivityMinute {
                minute: 100,
                received: 4,
                done: 1,
                failed: 1,
            },
            ActivityMinute {
                minute: 159,
                received: 1,
                done: 0,
                failed: 0,
            },
            // Older than the hour: not drawn, not counted.
            ActivityMinute {
                minute: 10,
                received: 99,
                done: 0,
                failed: 0,
            },
        ];
        let (slots, totals) = activity_chart(&minutes, 159);
        assert_eq!(slots.len(), 60);
        assert_eq!(totals, (5, 1, 1));
        assert_eq!(slots[59]["received"], 15, "1 of 4, rounded up");
        assert_eq!(
            slots[0]["received"], 60,
            "minute 100, the busiest, is slot 0"
        );
        assert_eq!(slots[0]["done"], 15);
        let (slots, totals) = activity_chart(&minutes, 170);
        assert_eq!(totals, (1, 0, 0), "minute 100 is out of the window");
        assert_eq!(
            slots[48]["received"], 60,
            "the one minute left is full height"
        );
        assert_eq!(activity_chart(&[], 5).1, (0, 0, 0));
    }
}
