//! Admin API for skills (spec §15: listSkills, setSkillAssignment; admin CRUD). The service is
//! [`nitejar_core::skills`].

use crate::error::{ApiError, ApiJson, ApiQuery, ApiResult};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use nitejar_api::skills::{
    AssignSkillRequest, CreateSkillRequest, ResolveQuery, ResolvedSkill, ResolvedSkills, Skill,
    SkillList, SkillsQuery, SyncReport, UpdateSkillRequest,
};
use nitejar_core::app::App;
use nitejar_core::skills::{self, SCOPES, valid_name};
use nitejar_store::NewSkill;
use std::sync::Arc;

/// The skill `id`, or a 404 naming it.
async fn skill_or_404(app: &App, id: &str) -> ApiResult<nitejar_store::SkillRow> {
    app.store
        .get_skill(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no skill {id}")))
}

/// `GET /api/admin/skills?source=&scope=&ref=`.
pub async fn list(
    State(app): State<Arc<App>>,
    ApiQuery(q): ApiQuery<SkillsQuery>,
) -> ApiResult<Json<SkillList>> {
    let mut out = Vec::new();
    let all = app.store.list_skills().await?;
    for row in &all {
        if q.source.as_deref().is_some_and(|s| s != row.source) {
            continue;
        }
        let v = skills::view(&app.skills, &app.registry, &all, row, false).await?;
        if let Some(scope) = q.scope.as_deref() {
            let hit = v.assignments.iter().any(|x| {
                x.scope == scope && q.scope_ref.as_deref().is_none_or(|r| x.scope_ref == r)
            });
            if !hit {
                continue;
            }
        }
        out.push(v);
    }
    Ok(Json(SkillList { skills: out }))
}

/// `GET /api/admin/skills/{id}` (with content and file names).
pub async fn get(State(app): State<Arc<App>>, Path(id): Path<String>) -> ApiResult<Json<Skill>> {
    let row = skill_or_404(&app, &id).await?;
    Ok(Json(
        skills::view(
            &app.skills,
            &app.registry,
            &app.store.list_skills().await?,
            &row,
            true,
        )
        .await?,
    ))
}

fn check(name: &str, content: &str) -> ApiResult<()> {
    if !valid_name(name) {
        return Err(ApiError::bad_request(
            "name must be 1-64 lower-case letters, digits, `-`, `_` or `.`",
        ));
    }
    if content.trim().is_empty() || content.len() > nitejar_core::limits::MAX_SKILL_CONTENT_BYTES {
        return Err(ApiError::bad_request("content must be 1 byte to 256 KiB"));
    }
    Ok(())
}

/// `POST /api/admin/skills`: creates an admin skill (names are unique among admin skills).
pub async fn create(
    State(app): State<Arc<App>>,
    ApiJson(b): ApiJson<CreateSkillRequest>,
) -> ApiResult<(StatusCode, Json<Skill>)> {
    check(&b.name, &b.content)?;
    if app
        .store
        .skills_of("admin", None)
        .await?
        .iter()
        .any(|s| s.name == b.name)
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "name_taken",
            format!("an admin skill named {:?} exists", b.name),
        ));
    }
    let id = format!("admin:{}", uuid::Uuid::now_v7());
    app.store
        .upsert_skill(&NewSkill {
            skill_id: &id,
            name: &b.name,
            description: &b.description,
            tags: &b.tags,
            source: "admin",
            plugin_id: None,
            plugin_version: None,
            content: &b.content,
            files: &[],
            enabled: b.enabled,
        })
        .await?;
    let row = app.store.get_skill(&id).await?.expect("just stored");
    Ok((
        StatusCode::CREATED,
        Json(
            skills::view(
                &app.skills,
                &app.registry,
                &app.store.list_skills().await?,
                &row,
                true,
            )
            .await?,
        ),
    ))
}

/// `PATCH /api/admin/skills/{id}`: `enabled` for any skill; content fields of admin skills only
/// (repository and plugin skills change at their source).
pub async fn update(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<UpdateSkillRequest>,
) -> ApiResult<Json<Skill>> {
    let row = skill_or_404(&app, &id).await?;
    let edits = b.description.is_some() || b.content.is_some() || b.tags.is_some();
    if edits && row.source != "admin" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_editable",
            format!(
                "{id} is a {} skill: change it at its source (only `enabled` can be set here)",
                row.source
            ),
        ));
    }
    if edits {
        let content = b.content.unwrap_or(row.content.clone());
        check(&row.name, &content)?;
        let tags = b
            .tags
            .unwrap_or_else(|| serde_json::from_str(&row.tags_json).unwrap_or_default());
        app.store
            .upsert_skill(&NewSkill {
                skill_id: &id,
                name: &row.name,
                description: b.description.as_deref().unwrap_or(&row.description),
                tags: &tags,
                source: "admin",
                plugin_id: None,
                plugin_version: None,
                content: &content,
                files: &[],
                enabled: row.enabled,
            })
            .await?;
    }
    if let Some(e) = b.enabled {
        app.store.set_skill_enabled(&id, e).await?;
    }
    let row = app.store.get_skill(&id).await?.expect("exists");
    Ok(Json(
        skills::view(
            &app.skills,
            &app.registry,
            &app.store.list_skills().await?,
            &row,
            true,
        )
        .await?,
    ))
}

/// `DELETE /api/admin/skills/{id}`: admin skills only.
pub async fn delete(State(app): State<Arc<App>>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let row = skill_or_404(&app, &id).await?;
    if row.source != "admin" {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_deletable",
            format!(
                "{id} is a {} skill: remove it at its source, or disable it",
                row.source
            ),
        ));
    }
    app.store.delete_skill(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/admin/skills/{id}/assignments` `{"scope", "ref", "assigned"}`.
pub async fn assign(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<AssignSkillRequest>,
) -> ApiResult<Json<Skill>> {
    let row = skill_or_404(&app, &id).await?;
    if !SCOPES.contains(&b.scope.as_str()) {
        return Err(ApiError::bad_request(format!(
            "scope must be one of {SCOPES:?}"
        )));
    }
    let scope_ref = b.scope_ref.trim();
    if (b.scope == "global") != scope_ref.is_empty() {
        return Err(ApiError::bad_request(
            "`ref` is empty for scope global and required for the others (team name, agent id, integration type)",
        ));
    }
    if b.scope == "agent" && app.store.get_agent(scope_ref).await?.is_none() {
        return Err(ApiError::not_found(format!("no agent {scope_ref}")));
    }
    app.store
        .set_skill_assignment(&id, &b.scope, scope_ref, b.assigned)
        .await?;
    Ok(Json(
        skills::view(
            &app.skills,
            &app.registry,
            &app.store.list_skills().await?,
            &row,
            false,
        )
        .await?,
    ))
}

/// `POST /api/admin/skills/sync`: re-reads the repository skills directory.
pub async fn sync(State(app): State<Arc<App>>) -> ApiResult<Json<SyncReport>> {
    Ok(Json(skills::sync_repo(&app.skills).await?))
}

/// `GET /api/admin/agents/{id}/skills?instance=`: what a run of this agent on this instance gets.
pub async fn resolve(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ResolveQuery>,
) -> ApiResult<Json<ResolvedSkills>> {
    let agent = app
        .store
        .get_agent(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no agent {id}")))?;
    let instance =
        app.store.get_instance(&q.instance).await?.ok_or_else(|| {
            ApiError::not_found(format!("no integration instance {}", q.instance))
        })?;
    let rows = skills::resolve(
        &app.skills,
        &app.registry,
        &agent,
        &instance.integration_type,
    )
    .await?;
    Ok(Json(ResolvedSkills {
        skills: rows
            .into_iter()
            .map(|r| ResolvedSkill {
                skill_id: r.skill_id,
                name: r.name,
                source: r.source,
            })
            .collect(),
    }))
}
