//! The host-wide pages: hooks in dispatch order, skills (with the assignments editor and
//! admin skills in Markdown), agents (prompt and model), the doctor, and the import of a
//! Nitejar database.

use super::forms::{Fields, act, api_error, encode};
use super::{SignedIn, Ui};
use crate::error::{ApiError, ApiJson, ApiQuery};
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::{Value, context};
use nitejar_api::import::ImportRequest;
use nitejar_api::runs::{AgentRequest, ModelSettings, Provider};
use nitejar_api::skills::{
    AssignSkillRequest, CreateSkillRequest, SkillsQuery, UpdateSkillRequest,
};
use std::sync::Arc;

/// `GET /admin/hooks`: every event's handlers in the order they run.
pub async fn hooks(State(ui): State<Arc<Ui>>, Extension(s): Extension<SignedIn>) -> Response {
    match crate::runs::hook_table(State(ui.app.clone())).await {
        Ok(t) => ui.page(
            &s,
            "hooks.html",
            "Hooks",
            "hooks",
            context! { table => Value::from_serialize(&t.0) },
        ),
        Err(e) => api_error(&ui, &s, e),
    }
}

/// `GET /admin/doctor`: every plugin's health and what to do about each problem.
pub async fn doctor(State(ui): State<Arc<Ui>>, Extension(s): Extension<SignedIn>) -> Response {
    match crate::lifecycle::doctor_all(State(ui.app.clone())).await {
        Ok(r) => ui.page(
            &s,
            "doctor.html",
            "Doctor",
            "doctor",
            context! { report => Value::from_serialize(&r.0) },
        ),
        Err(e) => api_error(&ui, &s, e),
    }
}

fn skill_path(id: &str) -> String {
    format!("/admin/skills/{}", encode(id))
}

/// `GET /admin/skills`: every skill with its source, what shadows it, and where it is
/// offered; the form for a new admin skill.
pub async fn skills(State(ui): State<Arc<Ui>>, Extension(s): Extension<SignedIn>) -> Response {
    match crate::skills::list(State(ui.app.clone()), ApiQuery(SkillsQuery::default())).await {
        Ok(l) => ui.page(
            &s,
            "skills.html",
            "Skills",
            "skills",
            context! { skills => Value::from_serialize(&l.0.skills) },
        ),
        Err(e) => api_error(&ui, &s, e),
    }
}

/// `GET /admin/skills/{id}`: the skill's content and files, its assignments, and for an
/// admin skill the editor.
pub async fn skill(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    Path(id): Path<String>,
) -> Response {
    let skill = match crate::skills::get(State(ui.app.clone()), Path(id)).await {
        Ok(k) => k.0,
        Err(e) => return api_error(&ui, &s, e),
    };
    let agents = match crate::runs::list_agents(State(ui.app.clone())).await {
        Ok(a) => a.0.agents,
        Err(e) => return api_error(&ui, &s, e),
    };
    let types = crate::instances::list_types(State(ui.app.clone()))
        .await
        .0
        .integration_types;
    ui.page(
        &s,
        "skill.html",
        &skill.name.clone(),
        "skills",
        context! {
            skill => Value::from_serialize(&skill),
            agents => Value::from_serialize(&agents),
            types => Value::from_serialize(&types),
        },
    )
}

/// `POST /admin/skills`: a new admin skill (`name`, `description`, `content`, `tags`).
pub async fn create_skill(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    form: Fields,
) -> Response {
    let body = ApiJson(CreateSkillRequest {
        name: form.text("name").unwrap_or_default(),
        description: form.text("description").unwrap_or_default(),
        content: form.get("content").unwrap_or("").to_string(),
        tags: tags(&form),
        enabled: true,
    });
    let app = ui.app.clone();
    let action = async {
        let (_, created) = crate::skills::create(State(app), body).await?;
        Ok(created.0)
    };
    // The new skill's page is known only after it is created: go to the list, which links it.
    act(&ui, &s, &form, "/admin/skills", action, |k| {
        format!("Created the admin skill {} ({}).", k.name, k.skill_id)
    })
    .await
}

fn tags(form: &Fields) -> Vec<String> {
    form.get("tags")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// `POST /admin/skills/{id}`: saves an admin skill's description, content and tags, or with
/// `enabled` only (any skill) turns it on or off.
pub async fn update_skill(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    Path(id): Path<String>,
    form: Fields,
) -> Response {
    let body = match form.get("enabled") {
        Some(v) => UpdateSkillRequest {
            enabled: Some(v == "yes"),
            ..Default::default()
        },
        None => UpdateSkillRequest {
            description: form.text("description"),
            content: form.get("content").map(str::to_string),
            tags: Some(tags(&form)),
            enabled: None,
        },
    };
    let action = crate::skills::update(State(ui.app.clone()), Path(id.clone()), ApiJson(body));
    act(&ui, &s, &form, &skill_path(&id), action, |k| {
        format!(
            "Saved {}{}.",
            k.0.name,
            if k.0.enabled { "" } else { " (disabled)" }
        )
    })
    .await
}

/// `POST /admin/skills/{id}/assignments`: offers the skill in a scope (`scope`, `ref`), or
/// with `remove` stops offering it there.
pub async fn assign_skill(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    Path(id): Path<String>,
    form: Fields,
) -> Response {
    let body = ApiJson(AssignSkillRequest {
        scope: form.text("scope").unwrap_or_default(),
        scope_ref: form.text("ref").unwrap_or_default(),
        assigned: form.get("remove").is_none(),
    });
    let action = crate::skills::assign(State(ui.app.clone()), Path(id.clone()), body);
    act(&ui, &s, &form, &skill_path(&id), action, |_| {
        "Assignments saved.".to_string()
    })
    .await
}

/// `POST /admin/skills/{id}/delete`: removes an admin skill.
pub async fn delete_skill(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    Path(id): Path<String>,
    form: Fields,
) -> Response {
    let action = crate::skills::delete(State(ui.app.clone()), Path(id.clone()));
    act(&ui, &s, &form, "/admin/skills", action, |_| {
        format!("Deleted the skill {id}.")
    })
    .await
}

/// `POST /admin/skills/sync`: re-reads the skills directory.
pub async fn sync_skills(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    form: Fields,
) -> Response {
    let action = crate::skills::sync(State(ui.app.clone()));
    act(&ui, &s, &form, "/admin/skills", action, |r| {
        let r = r.0;
        let mut notice = format!(
            "Synced the skills directory: {} read, {} removed.",
            r.synced.len(),
            r.removed.len()
        );
        if !r.problems.is_empty() {
            notice.push_str(&format!(" Problems: {}", r.problems.join("; ")));
        }
        notice
    })
    .await
}

/// `GET /admin/agents`: every agent, editable, and the form for a new one.
pub async fn agents(State(ui): State<Arc<Ui>>, Extension(s): Extension<SignedIn>) -> Response {
    match crate::runs::list_agents(State(ui.app.clone())).await {
        Ok(a) => ui.page(
            &s,
            "agents.html",
            "Agents",
            "agents",
            context! { agents => Value::from_serialize(&a.0.agents) },
        ),
        Err(e) => api_error(&ui, &s, e),
    }
}

/// The agent a posted form describes (`name`, `systemPrompt`, `provider`, `model`,
/// `temperature`, `maxTokens`, `maxTurns`, `team`).
fn agent_request(form: &Fields) -> Result<AgentRequest, ApiError> {
    fn number<T: std::str::FromStr>(form: &Fields, name: &str, default: T) -> Result<T, ApiError> {
        match form.text(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| ApiError::bad_request(format!("{name}: {v:?} is not a number"))),
        }
    }
    let provider = match form.get("provider").unwrap_or("offline") {
        "openai" => Provider::Openai,
        "offline" => Provider::Offline,
        other => {
            return Err(ApiError::bad_request(format!(
                "provider {other:?} is neither offline nor openai"
            )));
        }
    };
    Ok(AgentRequest {
        name: form.text("name").unwrap_or_default(),
        system_prompt: form.get("systemPrompt").unwrap_or("").to_string(),
        model: ModelSettings {
            provider,
            model: form.text("model").unwrap_or_default(),
            temperature: number(form, "temperature", 0.2)?,
            max_tokens: number(form, "maxTokens", 1024)?,
            max_turns: number(form, "maxTurns", 8)?,
        },
        team: form.text("team"),
    })
}

/// `POST /admin/agents`: a new agent.
pub async fn create_agent(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    form: Fields,
) -> Response {
    let app = ui.app.clone();
    let action = async {
        let body = agent_request(&form)?;
        crate::runs::create_agent(State(app), ApiJson(body)).await
    };
    act(&ui, &s, &form, "/admin/agents", action, |a| {
        format!("Created the agent {}.", a.1.0.name)
    })
    .await
}

/// `POST /admin/agents/{id}`: saves an agent's prompt and model.
pub async fn update_agent(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    Path(id): Path<String>,
    form: Fields,
) -> Response {
    let app = ui.app.clone();
    let action = async {
        let body = agent_request(&form)?;
        crate::runs::update_agent(State(app), Path(id.clone()), ApiJson(body)).await
    };
    act(&ui, &s, &form, "/admin/agents", action, |a| {
        format!("Saved the agent {}.", a.0.name)
    })
    .await
}

/// `GET /admin/import`: the form to import a Nitejar database.
pub async fn import_form(State(ui): State<Arc<Ui>>, Extension(s): Extension<SignedIn>) -> Response {
    ui.page(
        &s,
        "import.html",
        "Import from Nitejar",
        "import",
        context! {},
    )
}

/// `POST /admin/import`: imports (or with `dryRun`, only reads) a Nitejar SQLite file or
/// PostgreSQL database (`from`) and shows the report of every row.
pub async fn import(
    State(ui): State<Arc<Ui>>,
    Extension(s): Extension<SignedIn>,
    form: Fields,
) -> Response {
    if !form.csrf_ok(&s) {
        return super::forms::bad_form(&ui, &s);
    }
    let request = ImportRequest {
        from: form.text("from").unwrap_or_default(),
        dry_run: form.ticked("dryRun"),
    };
    match crate::instances::import_nitejar(State(ui.app.clone()), ApiJson(request.clone())).await {
        Ok(report) => ui.page(
            &s,
            "import.html",
            "Import from Nitejar",
            "import",
            context! {
                from => request.from,
                report => Value::from_serialize(&report.0),
            },
        ),
        Err(e) if e.status == StatusCode::BAD_REQUEST => {
            let mut resp = ui.page(
                &s,
                "import.html",
                "Import from Nitejar",
                "import",
                context! { from => request.from, error => e.message },
            );
            *resp.status_mut() = StatusCode::BAD_REQUEST;
            resp
        }
        Err(e) => api_error(&ui, &s, e),
    }
}
