//! Human-readable tables for the CLI (the `--json` output is the API's own).

use nitejar_api::import::{Counts, ImportReport, RowAction};
use nitejar_api::instances::{Instance, InstanceList, IntegrationTypeList};
use nitejar_api::lifecycle::{PluginHealth, Preview, UpgradeReport, VersionList};
use nitejar_api::plugins::{EventPage, HookDeclaration, PluginDetail, PluginList};
use nitejar_api::runs::RunView;
use nitejar_api::skills::{Skill, SkillList};
use serde_json::Value;

/// Lays out rows under headers, columns padded to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(headers.iter().map(|h| h.to_string()).collect())];
    out.extend(rows.iter().map(|r| line(r.clone())));
    out.join("\n")
}

/// Text for the terminal: control characters (escape sequences, carriage returns, ...) that a
/// plugin could put in a name, an error or a receipt are shown escaped, never interpreted.
fn safe(s: &str) -> String {
    use nitejar_core::text::is_deceptive;
    if !s.chars().any(is_deceptive) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if is_deceptive(c) {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// An optional text, `-` when absent.
fn opt(v: &Option<String>) -> String {
    v.as_deref().map_or_else(|| "-".into(), safe)
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

/// A cell from a JSON value (strings unquoted, null as `-`).
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => safe(s),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        other => other.to_string(),
    }
}

/// `plugin list`.
pub fn plugins(v: &PluginList) -> String {
    let rows: Vec<Vec<String>> = v
        .plugins
        .iter()
        .map(|p| {
            vec![
                safe(&p.id),
                opt(&p.version),
                yes_no(p.enabled),
                yes_no(p.loaded),
                safe(&p.trust_level),
                p.recent_failures.to_string(),
                opt(&p.last_load_error),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "VERSION",
            "ENABLED",
            "LOADED",
            "TRUST",
            "FAILURES",
            "LOAD ERROR",
        ],
        &rows,
    )
}

/// `plugin show`.
pub fn plugin(d: &PluginDetail) -> String {
    let p = &d.plugin;
    let mut out = format!(
        "{} {} ({})\nenabled: {}  loaded: {}  trust: {}  source: {} {}\nexecution mode: {}\n",
        safe(&p.id),
        opt(&p.version),
        safe(&p.name),
        yes_no(p.enabled),
        yes_no(p.loaded),
        safe(&p.trust_level),
        safe(&p.source_kind),
        opt(&p.source_ref),
        safe(&p.posture.execution_mode),
    );
    let rows: Vec<Vec<String>> = d
        .disclosures
        .iter()
        .map(|d| {
            vec![
                safe(&d.permission),
                if d.acknowledged {
                    "granted"
                } else {
                    "not granted"
                }
                .into(),
            ]
        })
        .collect();
    if rows.is_empty() {
        out.push_str("permissions: none declared\n");
    } else {
        out.push_str(&table(&["PERMISSION", "GRANT"], &rows));
        out.push('\n');
    }
    if let Some(i) = &p.instructions {
        let budget = match i.budget_per_call {
            Some(n) => format!("{n} per call ({})", safe(&i.source)),
            None => {
                let defaults: Vec<String> = i
                    .defaults
                    .iter()
                    .map(|(k, v)| format!("{} {v}", safe(k)))
                    .collect();
                format!("host defaults ({})", defaults.join(", "))
            }
        };
        out.push_str(&format!(
            "instructions: budget {budget}; {} calls, {} total, {} average\n",
            i.calls, i.total, i.average
        ));
    }
    if let Some(a) = &p.alert {
        out.push_str(&format!("ALERT: {}\n", safe(&a.message)));
    }
    if let Some(v) = &p.pending_version {
        out.push_str(&format!(
            "pending upgrade to {}: waits for consent to its added permissions\n",
            safe(v)
        ));
    }
    for l in &p.posture.effective_limitations {
        out.push_str(&format!("limitation: {}\n", safe(l)));
    }
    out
}

/// `plugin install` (and `--preview`): what the package is and asks for, before installing.
pub fn preview(p: &Preview) -> String {
    let mut out = format!(
        "{} {} ({}) from {} {}{}\nchecksum: {}  API: {}  action: {}\n",
        safe(&p.plugin_id),
        safe(&p.version),
        safe(&p.name),
        safe(&p.source.kind),
        opt(&p.source.reference),
        p.source
            .commit
            .as_deref()
            .map(|c| format!(" at {}", safe(c)))
            .unwrap_or_default(),
        safe(&p.checksum),
        safe(&p.api_version),
        safe(&p.action),
    );
    let t = &p.trust;
    if t.allowed {
        out.push_str(&format!(
            "trust: {} ({}, mode {})\n",
            opt(&t.level),
            opt(&t.basis),
            safe(&t.mode)
        ));
    } else {
        out.push_str(&format!("trust: REFUSED: {}\n", opt(&t.reason)));
    }
    if p.permissions.is_empty() {
        out.push_str("permissions: none declared\n");
    } else {
        out.push_str("permissions it asks for:\n");
        for x in &p.permissions {
            out.push_str(&format!("  - {}\n", safe(x)));
        }
    }
    let c = &p.contributes;
    let hooks: Vec<String> = c
        .hooks
        .iter()
        .map(|h| match h {
            HookDeclaration::Name(n) => n.clone(),
            HookDeclaration::Detailed(o) => o.event.clone(),
        })
        .collect();
    for (label, names) in [
        ("integrations", &c.integrations),
        ("hooks", &hooks),
        ("tools", &c.tools),
        ("skills", &c.skills),
    ] {
        if !names.is_empty() {
            out.push_str(&format!("{label}: {}\n", safe(&names.join(", "))));
        }
    }
    for x in p.permission_diff.iter().flat_map(|d| &d.added) {
        out.push_str(&format!("  + new permission: {}\n", safe(x)));
    }
    out
}

/// `plugin upgrade`.
pub fn upgrade(v: &UpgradeReport) -> String {
    let mut out = format!(
        "{} {} -> {}: {}",
        safe(&v.plugin_id),
        safe(&v.from_version),
        safe(&v.version),
        safe(&v.status)
    );
    for p in &v.added_permissions {
        out.push_str(&format!("\n  + {}", safe(p)));
    }
    for p in &v.removed_permissions {
        out.push_str(&format!("\n  - {}", safe(p)));
    }
    out
}

/// `plugin doctor`.
pub fn doctor(plugins: &[PluginHealth]) -> String {
    let rows: Vec<Vec<String>> = plugins
        .iter()
        .map(|p| {
            vec![
                safe(&p.plugin_id),
                opt(&p.version),
                yes_no(p.enabled),
                yes_no(p.loaded),
                safe(&p.files),
                safe(&p.cache),
                if p.healthy { "healthy" } else { "PROBLEMS" }.into(),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "ID", "VERSION", "ENABLED", "LOADED", "FILES", "CACHE", "STATE",
        ],
        &rows,
    );
    for p in plugins {
        for pr in &p.problems {
            out.push_str(&format!(
                "\n{} [{}] {}\n  fix: {}",
                safe(&p.plugin_id),
                safe(&pr.check),
                safe(&pr.detail),
                safe(&pr.fix)
            ));
        }
    }
    out
}

/// `plugin versions`.
pub fn versions(v: &VersionList) -> String {
    let rows: Vec<Vec<String>> = v
        .versions
        .iter()
        .map(|r| {
            let state = if Some(&r.version) == v.active.as_ref() {
                "active"
            } else if Some(&r.version) == v.pending.as_ref() {
                "pending consent"
            } else {
                ""
            };
            vec![
                safe(&r.version),
                state.to_string(),
                safe(&r.checksum),
                safe(&r.api_version),
            ]
        })
        .collect();
    table(&["VERSION", "STATE", "SHA256", "API"], &rows)
}

/// `skill list`.
pub fn skills(v: &SkillList) -> String {
    let rows: Vec<Vec<String>> = v
        .skills
        .iter()
        .map(|s| {
            let scopes: Vec<String> = s
                .assignments
                .iter()
                .map(|a| {
                    if a.scope_ref.is_empty() {
                        safe(&a.scope)
                    } else {
                        format!("{}:{}", safe(&a.scope), safe(&a.scope_ref))
                    }
                })
                .collect();
            vec![
                safe(&s.skill_id),
                safe(&s.name),
                safe(&s.source),
                yes_no(s.enabled),
                scopes.join(","),
                opt(&s.shadowed_by),
            ]
        })
        .collect();
    table(
        &["ID", "NAME", "SOURCE", "ENABLED", "ASSIGNED", "SHADOWED BY"],
        &rows,
    )
}

/// One skill.
pub fn skill(s: &Skill) -> String {
    let mut out = format!(
        "{} ({}, {})  enabled: {}\n{}\n",
        safe(&s.skill_id),
        safe(&s.name),
        safe(&s.source),
        yes_no(s.enabled),
        safe(&s.description)
    );
    if let Some(by) = &s.shadowed_by {
        out.push_str(&format!(
            "shadowed by {} (same name, higher precedence)\n",
            safe(by)
        ));
    }
    for a in &s.assignments {
        out.push_str(&format!(
            "assigned: {} {}\n",
            safe(&a.scope),
            safe(&a.scope_ref)
        ));
    }
    for f in &s.files {
        out.push_str(&format!("file: {}\n", safe(f)));
    }
    if let Some(c) = &s.content {
        // Markdown for the reader: line breaks stay, other control characters are escaped.
        let text: String = c.split('\n').map(safe).collect::<Vec<_>>().join("\n");
        out.push_str(&format!("\n{text}\n"));
    }
    out
}

/// `plugin logs`: receipts, newest first.
pub fn events(v: &EventPage) -> String {
    let rows: Vec<Vec<String>> = v
        .events
        .iter()
        .map(|e| {
            let detail: Value = e
                .detail_json
                .as_deref()
                .and_then(|d| serde_json::from_str(d).ok())
                .unwrap_or(Value::Null);
            let what = detail["operation"]
                .as_str()
                .or(detail["capability"].as_str())
                .unwrap_or("");
            vec![
                e.created_at.to_string(),
                safe(&e.kind),
                safe(what),
                opt(&e.hook_name),
                safe(&e.status),
                e.duration_ms.map_or("-".into(), |d| d.to_string()),
                opt(&e.work_item_id),
            ]
        })
        .collect();
    table(
        &[
            "AT (ms)",
            "KIND",
            "WHAT",
            "HOOK",
            "STATUS",
            "MS",
            "WORK ITEM",
        ],
        &rows,
    )
}

/// `instance types`: each type and its config fields from the schema.
pub fn types(v: &IntegrationTypeList) -> String {
    let mut out = String::new();
    for t in &v.integration_types {
        out.push_str(&format!(
            "{} ({}, plugin {})\n",
            safe(&t.integration_type),
            safe(&t.display_name),
            safe(&t.plugin_id)
        ));
        let required: Vec<&str> = t.config_schema["required"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let sensitive: Vec<&str> = t.sensitive_fields.iter().map(String::as_str).collect();
        let rows: Vec<Vec<String>> = t.config_schema["properties"]
            .as_object()
            .map(|props| {
                props
                    .iter()
                    .map(|(k, p)| {
                        let kind = p
                            .get("enum")
                            .map(|e| e.to_string())
                            .unwrap_or_else(|| cell(&p["type"]));
                        let mut flags = Vec::new();
                        if required.contains(&k.as_str()) {
                            flags.push("required");
                        }
                        if sensitive.contains(&k.as_str()) {
                            flags.push("secret");
                        }
                        vec![
                            format!("  {}", safe(k)),
                            safe(&kind),
                            flags.join(","),
                            safe(p["title"].as_str().unwrap_or("")),
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push_str(&table(&["  FIELD", "TYPE", "FLAGS", "TITLE"], &rows));
        out.push_str("\n\n");
    }
    out
}

/// `instance list`.
pub fn instances(v: &InstanceList) -> String {
    let rows: Vec<Vec<String>> = v
        .instances
        .iter()
        .map(|i| {
            vec![
                safe(&i.id),
                safe(&i.integration_type),
                safe(&i.name),
                yes_no(i.enabled),
                safe(&i.webhook_url),
            ]
        })
        .collect();
    table(&["ID", "TYPE", "NAME", "ENABLED", "WEBHOOK URL"], &rows)
}

/// One instance (config with secrets redacted by the server).
pub fn instance(i: &Instance) -> String {
    let mut out = format!(
        "{} {} ({})\nenabled: {}\nwebhook URL: {}\nconfig: {}\n",
        safe(&i.integration_type),
        safe(&i.id),
        safe(&i.name),
        yes_no(i.enabled),
        safe(&i.webhook_url),
        safe(&Value::Object(i.config.clone()).to_string())
    );
    if let Some(c) = &i.connection {
        out.push_str(&format!(
            "connection: {} {}\n",
            if c.ok { "ok" } else { "FAILED" },
            opt(&c.detail)
        ));
    }
    out
}

/// `run show`: job, steps, receipts in order, delivery.
pub fn run(v: &RunView) -> String {
    let mut out = match &v.job {
        Some(job) => format!(
            "job {}  status: {}  attempts: {}  agent: {}\n",
            safe(&job.id),
            safe(&job.status),
            job.attempts,
            safe(&job.agent_id),
        ),
        None => "job -  (no agent answers this work item's instance)\n".to_string(),
    };
    if let Some(e) = v.job.as_ref().and_then(|j| j.last_error.as_deref()) {
        out.push_str(&format!("error: {}\n", safe(e)));
    }
    out.push_str("\nSTEPS\n");
    let steps: Vec<Vec<String>> = v
        .steps
        .iter()
        .map(|s| {
            let mut detail = s.detail.to_string();
            if detail.chars().count() > 100 {
                detail = detail.chars().take(97).collect::<String>() + "...";
            }
            vec![s.turn.to_string(), safe(&s.kind), safe(&detail)]
        })
        .collect();
    out.push_str(&table(&["TURN", "KIND", "DETAIL"], &steps));
    out.push_str("\n\nRECEIPTS (in order)\n");
    let receipts: Vec<Vec<String>> = v
        .receipts
        .iter()
        .map(|r| {
            let e = &r.receipt;
            vec![
                safe(&e.plugin_id),
                safe(&e.kind),
                safe(
                    e.hook_name
                        .as_deref()
                        .or(r.detail["operation"].as_str())
                        .unwrap_or("-"),
                ),
                safe(&e.status),
                e.duration_ms.map_or("-".into(), |d| d.to_string()),
            ]
        })
        .collect();
    out.push_str(&table(
        &["PLUGIN", "KIND", "HOOK/OPERATION", "STATUS", "MS"],
        &receipts,
    ));
    match &v.delivery {
        Some(d) => out.push_str(&format!(
            "\n\nDELIVERY {}  attempts: {}  external id: {}{}\n",
            safe(&d.status),
            d.attempts,
            opt(&d.external_id),
            d.error
                .as_deref()
                .map(|e| format!("  error: {}", safe(e)))
                .unwrap_or_default()
        )),
        None => out.push_str("\n\nDELIVERY -\n"),
    }
    out
}

/// `import nitejar`: counts, then every listed row, then the third-party plugins.
pub fn import(r: &ImportReport) -> String {
    let verb = if r.dry_run {
        "would import"
    } else {
        "imported"
    };
    let counts = |name: &str, c: &Counts| {
        vec![
            name.to_string(),
            c.read.to_string(),
            c.created.to_string(),
            c.unchanged.to_string(),
            c.skipped.to_string(),
        ]
    };
    let mut out = format!(
        "{} from {}{}\n\n",
        verb,
        safe(&r.source),
        if r.dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        }
    );
    let created = if r.dry_run { "to create" } else { "created" };
    out.push_str(&table(
        &["rows", "read", created, "unchanged", "skipped"],
        &[
            counts("instances", &r.instances),
            counts("agent assignments", &r.assignments),
            counts("work items", &r.work_items),
            counts("idempotency keys", &r.idempotency_keys),
            counts("skills", &r.skills),
            counts("skill assignments", &r.skill_assignments),
        ],
    ));
    if !r.rows.is_empty() {
        out.push_str("\n\n");
        let rows: Vec<Vec<String>> = r
            .rows
            .iter()
            .map(|row| {
                let action = match row.action {
                    RowAction::Created if r.dry_run => "create",
                    RowAction::Created => "created",
                    RowAction::Unchanged => "unchanged",
                    RowAction::Skipped => "skipped",
                };
                vec![
                    safe(&row.table),
                    safe(&row.id),
                    action.into(),
                    opt(&row.reason),
                ]
            })
            .collect();
        out.push_str(&table(&["table", "id", "action", "note"], &rows));
    }
    if !r.third_party_plugins.is_empty() {
        out.push_str("\n\nthird-party Nitejar plugins (JavaScript; they do not run here):\n");
        let rows: Vec<Vec<String>> = r
            .third_party_plugins
            .iter()
            .map(|p| {
                vec![
                    safe(&p.id),
                    safe(&p.name),
                    opt(&p.version),
                    format!("{} {}", safe(&p.source_kind), opt(&p.source_ref)),
                    p.instances.to_string(),
                    safe(&p.replacement),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "plugin",
                "name",
                "version",
                "source",
                "instances",
                "replacement",
            ],
            &rows,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_pad_columns() {
        let t = table(
            &["A", "LONG HEADER"],
            &[vec!["xyz".into(), "1".into()], vec!["q".into(), "".into()]],
        );
        assert_eq!(t, "A    LONG HEADER\nxyz  1\nq");
    }

    #[test]
    fn cells() {
        assert_eq!(cell(&json!(null)), "-");
        assert_eq!(cell(&json!(true)), "yes");
        assert_eq!(cell(&json!("s")), "s");
        assert_eq!(cell(&json!(3)), "3");
    }

    #[test]
    fn terminal_control_characters_are_shown_escaped() {
        let hostile = "evil\u{1b}[2J\u{1b}]0;pwned\u{7}\rname";
        let shown = safe(hostile);
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert_eq!(shown, "evil\\u{1b}[2J\\u{1b}]0;pwned\\u{7}\\rname");
        assert_eq!(cell(&json!(hostile)), shown);
        assert_eq!(safe("plain, ünïcode"), "plain, ünïcode");
        // A right-to-left override makes "network: exe.evil" read differently; zero-width
        // characters hide text.
        assert_eq!(
            safe("http://ok\u{202E}live\u{200B}.test"),
            "http://ok\\u{202e}live\\u{200b}.test"
        );
    }
}
