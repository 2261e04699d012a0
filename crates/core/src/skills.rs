//! Skills (spec §13): repository, plugin and admin skills in one index, scoped, usable by the
//! agent through the built-in `use_skill` tool.
//!
//! - **Repository skills**: every directory under the skills directory (`NITEJAR_SKILLS_DIR`,
//!   default `<data>/skills`) holding a `SKILL.md` whose front matter names it (`name`,
//!   `description`; the agent-skills layout); the other files beside it are its supporting
//!   files. Synced at boot and on `POST /api/admin/skills/sync`; id `repo:<name>`.
//! - **Plugin skills**: what an enabled plugin's `skills.list-skills` returns, inline or read
//!   from a file of its package (kept with the installed version). Registered whenever the
//!   plugin is activated (enable, upgrade, rollback, boot) with the active version's content,
//!   removed on uninstall; a disabled plugin's skills are not offered. Id
//!   `plugin:<plugin-id>:<skill-id>`. Each registration leaves a `skill` receipt.
//! - **Admin skills**: created and edited through the API; id `admin:<uuid>`.
//!
//! **Names and precedence.** A name is unique within a source. Across sources the same name
//! resolves by precedence **admin > repo > plugin**: a plugin can never shadow an operator's
//! skill. The losing skill stays listed with `shadowedBy`, its registration receipt says so,
//! and it remains reachable by its stable id.
//!
//! **Scopes.** A skill reaches a run through assignments: `global`, `team` (the agent's team),
//! `agent` (agent id) or `integration_type` (the instance's type). The resolver returns the
//! enabled skills assigned to any scope of the run, deduplicated by name by precedence,
//! ordered by name then id.

use crate::plugins::registry::PluginRegistry;
use crate::receipts::Receipt;
use crate::receipts::ReceiptSink;
use nitejar_sandbox::bindings::exports::nitejar::plugin::skills::SkillSource;
use nitejar_sandbox::runtime::LoadedPlugin;
use nitejar_store::{AgentRow, NewSkill, SkillRow, Store};
use serde_json::{Value, json};
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;

/// The scopes an assignment can name.
pub const SCOPES: &[&str] = &["global", "team", "agent", "integration_type"];

/// Largest SKILL.md or skill file content accepted.
const MAX_SKILL_BYTES: u64 = 256 << 10;
/// Largest total of one repository skill's supporting files, and their count.
const MAX_SKILL_FILES_BYTES: u64 = 2 << 20;
const MAX_SKILL_FILES: usize = 200;

/// What the skills index needs: the store, the receipt sink, the repository's skills directory
/// and the plugins directory (a plugin's skills are files of its version directory).
pub struct SkillCatalog {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Receipts of registrations and removals.
    pub receipts: ReceiptSink,
    /// The repository's skills directory.
    pub skills_dir: PathBuf,
    /// Where plugin versions are installed.
    pub plugins_dir: PathBuf,
}

/// Lower wins when names collide.
pub fn rank(source: &str) -> u8 {
    match source {
        "admin" => 0,
        "repo" => 1,
        _ => 2,
    }
}

/// Whether `name` is a valid skill name (also the `use_skill` alias).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
        && !name.starts_with(['-', '.'])
}

/// Splits a SKILL.md into (name, description, body) from its `---` front matter.
pub fn parse_skill_md(text: &str) -> Result<(String, String, String), String> {
    let rest = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
        .ok_or("SKILL.md must start with `---` front matter (name, description)")?;
    let end = rest
        .find("\n---")
        .ok_or("SKILL.md front matter is not closed by `---`")?;
    let (front, body) = (&rest[..end], &rest[end + 4..]);
    let body = body.trim_start_matches(['\r', '\n']).to_string();
    let mut name = None;
    let mut description = String::new();
    for line in front.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim().trim_matches(|c| c == '"' || c == '\'').to_string();
        match k.trim() {
            "name" => name = Some(v),
            "description" => description = v,
            _ => {}
        }
    }
    let name = name.ok_or("SKILL.md front matter has no `name`")?;
    if !valid_name(&name) {
        return Err(format!(
            "skill name {name:?} must be lower-case letters, digits, `-`, `_`, `.` (64 at most)"
        ));
    }
    Ok((name, description, body))
}

pub use nitejar_api::skills::SyncReport;
use nitejar_api::skills::{Skill, SkillAssignment};

fn read_files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = Vec::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| e.to_string())?;
        for entry in entries.flatten() {
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).map_err(|e| e.to_string())?;
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(dir)
                .map_err(|e| e.to_string())?
                .to_string_lossy()
                .replace('\\', "/");
            if !meta.is_file() || rel == "SKILL.md" {
                continue; // links are skipped, never followed
            }
            total += meta.len();
            if total > MAX_SKILL_FILES_BYTES || out.len() >= MAX_SKILL_FILES {
                return Err(format!(
                    "supporting files exceed {MAX_SKILL_FILES} files or {MAX_SKILL_FILES_BYTES} bytes"
                ));
            }
            out.push((rel, std::fs::read(&path).map_err(|e| e.to_string())?));
        }
    }
    out.sort();
    Ok(out)
}

/// Re-reads the skills directory into the index.
pub async fn sync_repo(ctx: &SkillCatalog) -> Result<SyncReport, nitejar_store::DbError> {
    let mut report = SyncReport::default();
    let dir = &ctx.skills_dir;
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut dirs: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        dirs.sort();
        for d in dirs.into_iter().filter(|d| d.is_dir()) {
            let md = d.join("SKILL.md");
            if !md.is_file() {
                continue;
            }
            let label = d
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let parsed = std::fs::metadata(&md)
                .map_err(|e| e.to_string())
                .and_then(|m| {
                    if m.len() > MAX_SKILL_BYTES {
                        Err(format!("SKILL.md is larger than {MAX_SKILL_BYTES} bytes"))
                    } else {
                        std::fs::read_to_string(&md).map_err(|e| e.to_string())
                    }
                })
                .and_then(|t| parse_skill_md(&t))
                .and_then(|(n, desc, body)| read_files(&d).map(|f| (n, desc, body, f)));
            let (name, description, body, files) = match parsed {
                Ok(p) => p,
                Err(e) => {
                    report.problems.push(format!("{label}: {e}"));
                    continue;
                }
            };
            if found.contains(&name) {
                report.problems.push(format!(
                    "{label}: another directory already defines {name:?}"
                ));
                continue;
            }
            let id = format!("repo:{name}");
            ctx.store
                .upsert_skill(&NewSkill {
                    skill_id: &id,
                    name: &name,
                    description: &description,
                    tags: &[],
                    source: "repo",
                    plugin_id: None,
                    plugin_version: None,
                    content: &body,
                    files: &files,
                    enabled: true,
                })
                .await?;
            found.push(name);
            report.synced.push(id);
        }
    }
    for row in ctx.store.skills_of("repo", None).await? {
        if !found.contains(&row.name) {
            ctx.store.delete_skill(&row.skill_id).await?;
            report.removed.push(row.skill_id);
        }
    }
    Ok(report)
}

/// The skill of `all` that wins over (`row_id`, `name`, `source`) by precedence, if any.
pub fn shadowed_by(all: &[SkillRow], row_id: &str, name: &str, source: &str) -> Option<String> {
    all.iter()
        .filter(|s| s.name == name && s.skill_id != row_id && rank(&s.source) < rank(source))
        .min_by_key(|s| rank(&s.source))
        .map(|s| s.skill_id.clone())
}

/// Registers the skills of an activated plugin version (replacing its previous set).
pub async fn register_plugin(
    ctx: &SkillCatalog,
    plugin: &LoadedPlugin,
) -> Result<(), nitejar_store::DbError> {
    let dir =
        crate::plugins::installer::version_dir(&ctx.plugins_dir, plugin.id(), plugin.version());
    let mut kept = Vec::new();
    for skill in &plugin.skills {
        let id = format!("plugin:{}:{}", plugin.id(), skill.id);
        let content = match &skill.source {
            SkillSource::Inline(c) => Ok(c.clone()),
            SkillSource::File(p) if nitejar_sandbox::manifest::safe_relative_path(p) => {
                match std::fs::metadata(dir.join(p)) {
                    Ok(m) if m.len() > MAX_SKILL_BYTES => {
                        Err(format!("{p} is larger than {MAX_SKILL_BYTES} bytes"))
                    }
                    Ok(_) => std::fs::read_to_string(dir.join(p))
                        .map_err(|e| format!("{p} is not readable UTF-8: {e}")),
                    Err(_) => Err(format!("{p} is not in the installed package")),
                }
            }
            SkillSource::File(p) => Err(format!("{p:?} escapes the package")),
        };
        let name_ok = valid_name(&skill.name);
        let content = match (content, name_ok) {
            (Ok(c), true) => c,
            (Err(e), _) => {
                ctx.receipts.emit(
                    Receipt::new(plugin.id(), "skill", "error")
                        .version(plugin.version())
                        .detail(json!({ "skillId": id, "error": e })),
                );
                continue;
            }
            (Ok(_), false) => {
                ctx.receipts.emit(
                    Receipt::new(plugin.id(), "skill", "error")
                        .version(plugin.version())
                        .detail(json!({ "skillId": id, "error": format!("invalid skill name {:?}", skill.name) })),
                );
                continue;
            }
        };
        let new = NewSkill {
            skill_id: &id,
            name: &skill.name,
            description: skill.description.as_deref().unwrap_or(""),
            tags: &skill.tags,
            source: "plugin",
            plugin_id: Some(plugin.id()),
            plugin_version: Some(plugin.version()),
            content: &content,
            files: &[],
            enabled: skill.default_enabled,
        };
        let checksum = new.checksum();
        ctx.store.upsert_skill(&new).await?;
        let shadow = shadowed_by(&ctx.store.list_skills().await?, &id, &skill.name, "plugin");
        ctx.receipts.emit(
            Receipt::new(plugin.id(), "skill", "ok")
                .version(plugin.version())
                .detail(json!({
                    "skillId": id, "name": skill.name, "checksum": checksum, "shadowedBy": shadow,
                })),
        );
        kept.push(id);
    }
    for row in ctx.store.skills_of("plugin", Some(plugin.id())).await? {
        if !kept.contains(&row.skill_id) {
            ctx.store.delete_skill(&row.skill_id).await?;
            ctx.receipts.emit(
                Receipt::new(plugin.id(), "skill", "removed")
                    .version(plugin.version())
                    .detail(json!({ "skillId": row.skill_id })),
            );
        }
    }
    Ok(())
}

/// Removes an uninstalled plugin's skills and their assignments.
pub async fn remove_plugin(
    ctx: &SkillCatalog,
    plugin_id: &str,
) -> Result<(), nitejar_store::DbError> {
    for row in ctx.store.skills_of("plugin", Some(plugin_id)).await? {
        ctx.store.delete_skill(&row.skill_id).await?;
        ctx.receipts.emit(
            Receipt::new(plugin_id, "skill", "removed")
                .detail(json!({ "skillId": row.skill_id, "reason": "uninstall" })),
        );
    }
    Ok(())
}

/// Whether a skill can be offered now (a plugin skill needs its plugin loaded).
fn available(registry: &PluginRegistry, row: &SkillRow) -> bool {
    match (&row.source[..], &row.plugin_id) {
        ("plugin", Some(p)) => registry.get(p).is_some(),
        _ => true,
    }
}

/// Keeps, per name, the skill that wins by precedence; order by name then id.
pub fn by_precedence(mut rows: Vec<SkillRow>) -> Vec<SkillRow> {
    rows.sort_by(|a, b| {
        a.name
            .cmp(&b.name)
            .then(rank(&a.source).cmp(&rank(&b.source)))
            .then(a.skill_id.cmp(&b.skill_id))
    });
    rows.dedup_by(|later, first| later.name == first.name);
    rows
}

/// The skills of a run: enabled, assigned to one of its scopes, available, by precedence.
pub async fn resolve(
    ctx: &SkillCatalog,
    registry: &PluginRegistry,
    agent: &AgentRow,
    integration_type: &str,
) -> Result<Vec<SkillRow>, nitejar_store::DbError> {
    let mut scopes = vec![
        ("global", ""),
        ("agent", agent.id.as_str()),
        ("integration_type", integration_type),
    ];
    if let Some(team) = agent.team.as_deref() {
        scopes.push(("team", team));
    }
    let rows = ctx.store.assigned_skills(&scopes).await?;
    Ok(by_precedence(
        rows.into_iter()
            .filter(|r| available(registry, r))
            .collect(),
    ))
}

/// The API view of a skill (content only when `full`); `all` is the whole index, read once by
/// the caller, for `shadowedBy`.
pub async fn view(
    ctx: &SkillCatalog,
    registry: &PluginRegistry,
    all: &[SkillRow],
    row: &SkillRow,
    full: bool,
) -> Result<Skill, nitejar_store::DbError> {
    Ok(Skill {
        skill_id: row.skill_id.clone(),
        name: row.name.clone(),
        description: row.description.clone(),
        tags: serde_json::from_str(&row.tags_json).unwrap_or_default(),
        source: row.source.clone(),
        plugin_id: row.plugin_id.clone(),
        plugin_version: row.plugin_version.clone(),
        content: full.then(|| row.content.clone()),
        checksum: row.checksum.clone(),
        enabled: row.enabled,
        created_at: row.created_at,
        updated_at: row.updated_at,
        available: available(registry, row),
        shadowed_by: shadowed_by(all, &row.skill_id, &row.name, &row.source),
        assignments: ctx
            .store
            .skill_assignments(&row.skill_id)
            .await?
            .into_iter()
            .map(|(scope, scope_ref)| SkillAssignment { scope, scope_ref })
            .collect(),
        files: ctx.store.skill_file_paths(&row.skill_id).await?,
    })
}

/// The system-prompt section listing a run's skills (name and description), within `budget`
/// bytes; skills that do not fit are counted.
pub fn prompt_section(skills: &[SkillRow], budget: usize) -> Option<String> {
    if skills.is_empty() {
        return None;
    }
    let mut out = String::from("Skills you can read with the use_skill tool (pass the name):");
    let mut left_out = 0;
    for s in skills {
        let line = if s.description.is_empty() {
            format!("\n- {}", s.name)
        } else {
            format!("\n- {}: {}", s.name, s.description)
        };
        if out.len() + line.len() > budget {
            left_out += 1;
        } else {
            out.push_str(&line);
        }
    }
    if left_out > 0 {
        out.push_str(&format!(
            "\n({left_out} more not listed; use_skill accepts their names too)"
        ));
    }
    Some(out)
}

/// `use_skill`: finds a run's skill by stable id or by name, and renders what the model gets.
pub fn use_skill(
    skills: &[SkillRow],
    files: &[(String, Vec<String>)],
    input: &Value,
) -> (String, bool) {
    let key = ["skill", "name", "id"]
        .iter()
        .find_map(|k| input.get(*k).and_then(Value::as_str))
        .unwrap_or("")
        .trim();
    if key.is_empty() {
        return ("error: pass {\"skill\": \"<name or id>\"}".into(), true);
    }
    let Some(s) = skills
        .iter()
        .find(|s| s.skill_id == key)
        .or_else(|| skills.iter().find(|s| s.name == key))
    else {
        let names: Vec<&str> = skills.iter().map(|s| s.name.as_str()).collect();
        return (
            format!(
                "error: no skill {key:?} is available here; available: {}",
                names.join(", ")
            ),
            true,
        );
    };
    let mut out = format!(
        "# Skill {} ({})\n\n{}",
        s.name,
        s.skill_id,
        s.content.trim_end()
    );
    if let Some((_, paths)) = files.iter().find(|(id, _)| id == &s.skill_id)
        && !paths.is_empty()
    {
        out.push_str(&format!("\n\nFiles: {}", paths.join(", ")));
    }
    (out, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, name: &str, source: &str) -> SkillRow {
        SkillRow {
            skill_id: id.into(),
            name: name.into(),
            description: format!("{name} things"),
            tags_json: "[]".into(),
            source: source.into(),
            plugin_id: None,
            plugin_version: None,
            content: format!("content of {id}"),
            checksum: String::new(),
            enabled: true,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn front_matter() {
        let (n, d, b) = parse_skill_md(
            "---\nname: deploy\ndescription: \"How to deploy\"\n---\n\n# Deploy\nsteps",
        )
        .unwrap();
        assert_eq!(
            (n.as_str(), d.as_str(), b.as_str()),
            ("deploy", "How to deploy", "# Deploy\nsteps")
        );
        assert!(parse_skill_md("# no front matter").is_err());
        assert!(parse_skill_md("---\ndescription: x\n---\n").is_err());
        assert!(parse_skill_md("---\nname: Bad Name\n---\n").is_err());
    }

    #[test]
    fn precedence_admin_then_repo_then_plugin() {
        let rows = vec![
            row("plugin:p:x", "x", "plugin"),
            row("repo:x", "x", "repo"),
            row("admin:1", "x", "admin"),
            row("plugin:p:a", "a", "plugin"),
            row("repo:b", "b", "repo"),
            row("plugin:q:b", "b", "plugin"),
        ];
        let ids: Vec<String> = by_precedence(rows)
            .into_iter()
            .map(|r| r.skill_id)
            .collect();
        assert_eq!(ids, ["plugin:p:a", "repo:b", "admin:1"]);
    }

    #[test]
    fn use_skill_by_id_or_name_and_prompt_budget() {
        let skills = vec![row("repo:a", "a", "repo"), row("admin:2", "b", "admin")];
        let files = vec![("repo:a".to_string(), vec!["ref.md".to_string()])];
        let (out, err) = use_skill(&skills, &files, &json!({"skill": "a"}));
        assert!(
            !err && out.contains("content of repo:a") && out.contains("Files: ref.md"),
            "{out}"
        );
        let (out, err) = use_skill(&skills, &files, &json!({"id": "admin:2"}));
        assert!(!err && out.contains("content of admin:2"));
        let (out, err) = use_skill(&skills, &files, &json!({"skill": "zzz"}));
        assert!(err && out.contains("available: a, b"));
        let section = prompt_section(&skills, 80).unwrap();
        assert!(section.contains("- a: a things"), "{section}");
        assert!(section.contains("1 more not listed"), "{section}");
        assert_eq!(prompt_section(&[], 100), None);
    }
}
