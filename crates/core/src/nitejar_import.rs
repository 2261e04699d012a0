//! `nitejar import nitejar`: bring a Nitejar database (SQLite file or PostgreSQL, read only)'s
//! integrations and history to this host (spec §20: existing integration rows, ids, types,
//! encrypted config blobs and webhook URLs keep working).
//!
//! What carries over, row by row (a row that cannot be brought over is reported with the
//! reason and does not stop the rest):
//! - **Instances**: same id (so the webhook URL `/api/webhooks/plugins/{type}/{id}` is the
//!   same), the type Nitejar derives from the plugin id, name, enabled, timestamps, and the
//!   `config_json` **byte for byte** (its `enc:` secrets decrypt here with the same
//!   `ENCRYPTION_KEY`, in any of Nitejar's three key forms). Exception: a sensitive field
//!   stored in plaintext (Nitejar ran without a key) is encrypted on import, and the row says
//!   so. The config is validated like any other (schema, then the plugin's `validate-config`);
//!   one that does not validate is imported disabled, with the problems in the report. No
//!   connection test runs: the import does not call the platforms.
//! - **Agent assignments**, when the agent exists here (agents are not imported: create it,
//!   then re-run; the instance answers with the default agent meanwhile). One agent per
//!   instance here; further rows for the same instance are reported.
//! - **Work items** with their ids, keys, titles, payloads, statuses (lowercased) and times:
//!   history, never run here. **Idempotency keys** (global in Nitejar) are kept under the
//!   instance of their work item, so a platform redelivery after the move creates nothing.
//! - **Skills** become admin skills (`admin:<id there>`, named by their slug) with their files
//!   (a file whose path is not a plain relative path is left out and reported); a skill a
//!   Nitejar plugin contributed is imported the same way and says so. **Skill assignments**
//!   follow: global ones, and agent ones whose agent exists here; team scopes and disabled
//!   assignments are reported.
//! - **Third-party plugins** are listed with what replaces them here; they are JavaScript
//!   packages and never run here. Their instances are imported only if a plugin here provides
//!   the type.
//!
//! A dry run reads and checks everything and writes nothing. Running the import again changes
//! nothing: rows already here are `unchanged` (an instance here with the same id and a
//! different config is left as it is and reported).

use crate::crypto::SecretBox;
use crate::instances::{self, Instances};
use nitejar_api::import::{
    Counts, ImportReport, ImportRequest, RowAction, RowReport, ThirdPartyPlugin,
};
use nitejar_store::nitejar_source::{NitejarSource, SourceError, SourceInstance};
use nitejar_store::{ImportedInstance, ImportedWorkItem, NewSkill};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};

/// At most this many skipped work item and key rows are listed one by one (the counts cover
/// all of them).
pub const MAX_LISTED_SKIPS: usize = 200;

/// Why the import did not run.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The source cannot be read (missing, not SQLite, not Nitejar, not supported yet).
    #[error("{0}")]
    Source(String),
    /// This host's database failed.
    #[error(transparent)]
    Db(#[from] nitejar_store::DbError),
}

impl From<SourceError> for ImportError {
    fn from(e: SourceError) -> Self {
        ImportError::Source(e.to_string())
    }
}

/// Runs the import (or, with `dry_run`, reports what it would do).
pub async fn import(ctx: &Instances, req: &ImportRequest) -> Result<ImportReport, ImportError> {
    let source = NitejarSource::open(&req.from).await?;
    let result = run(ctx, &source, req).await;
    source.close().await;
    result
}

/// Rows listed in the report, with their caps.
struct Rows {
    rows: Vec<RowReport>,
    listed_skips: HashMap<&'static str, usize>,
}

impl Rows {
    fn push(&mut self, table: &'static str, id: &str, action: RowAction, reason: Option<String>) {
        self.rows.push(RowReport {
            table: table.into(),
            id: id.into(),
            action,
            reason,
        });
    }

    /// A skipped row of a big table: listed up to [`MAX_LISTED_SKIPS`] per table.
    fn skip_capped(&mut self, table: &'static str, id: &str, reason: String) {
        let listed = self.listed_skips.entry(table).or_default();
        if *listed < MAX_LISTED_SKIPS {
            *listed += 1;
            self.push(table, id, RowAction::Skipped, Some(reason));
        }
    }
}

fn count(c: &mut Counts, action: RowAction) {
    match action {
        RowAction::Created => c.created += 1,
        RowAction::Unchanged => c.unchanged += 1,
        RowAction::Skipped => c.skipped += 1,
    }
}

async fn run(
    ctx: &Instances,
    source: &NitejarSource,
    req: &ImportRequest,
) -> Result<ImportReport, ImportError> {
    let mut report = ImportReport {
        dry_run: req.dry_run,
        source: req.from.clone(),
        instances: Counts::default(),
        assignments: Counts::default(),
        work_items: Counts::default(),
        idempotency_keys: Counts::default(),
        skills: Counts::default(),
        skill_assignments: Counts::default(),
        third_party_plugins: vec![],
        rows: vec![],
    };
    let mut rows = Rows {
        rows: vec![],
        listed_skips: HashMap::new(),
    };

    // Instances: id -> type, for every instance that is (or, in a dry run, would be) here.
    let source_instances = source.instances().await?;
    let mut here: HashMap<String, String> = HashMap::new();
    let mut not_here: HashMap<String, String> = HashMap::new();
    for inst in &source_instances {
        report.instances.read += 1;
        let (action, reason) = import_instance(ctx, inst, req.dry_run).await?;
        count(&mut report.instances, action);
        match action {
            RowAction::Skipped => {
                not_here.insert(inst.id.clone(), reason.clone().unwrap_or_default());
            }
            _ => {
                here.insert(inst.id.clone(), inst.integration_type());
            }
        }
        rows.push("plugin_instances", &inst.id, action, reason);
    }

    // Agent assignments: one agent per instance here.
    let mut assigned: HashSet<String> = HashSet::new();
    for a in source.assignments().await? {
        report.assignments.read += 1;
        let id = format!("{}/{}", a.agent_id, a.plugin_instance_id);
        let (action, reason) = if !here.contains_key(&a.plugin_instance_id) {
            (
                RowAction::Skipped,
                Some(format!(
                    "instance {} was not imported",
                    a.plugin_instance_id
                )),
            )
        } else if assigned.contains(&a.plugin_instance_id) {
            (
                RowAction::Skipped,
                Some(
                    "this host assigns one agent per instance; an earlier row of the \
                     instance was used"
                        .into(),
                ),
            )
        } else if ctx.store.get_agent(&a.agent_id).await?.is_none() {
            (
                RowAction::Skipped,
                Some(format!(
                    "agent {} is not defined here (agents are not imported); the instance \
                     answers with the default agent until one is assigned",
                    a.agent_id
                )),
            )
        } else {
            assigned.insert(a.plugin_instance_id.clone());
            let current = ctx.store.agent_for_instance(&a.plugin_instance_id).await?;
            if current.is_some_and(|c| c.id == a.agent_id) {
                (RowAction::Unchanged, None)
            } else {
                if !req.dry_run {
                    ctx.store
                        .assign_agent(&a.plugin_instance_id, &a.agent_id)
                        .await?;
                }
                (RowAction::Created, None)
            }
        };
        count(&mut report.assignments, action);
        rows.push("agent_plugin_instances", &id, action, reason);
    }

    // Work items and their idempotency keys.
    let mut keys_by_item: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for k in source.idempotency_keys().await? {
        report.idempotency_keys.read += 1;
        keys_by_item.entry(k.work_item_id).or_default().push(k.key);
    }
    for w in source.work_items().await? {
        report.work_items.read += 1;
        let keys = keys_by_item.remove(&w.id).unwrap_or_default();
        let Some(integration_type) = here.get(&w.plugin_instance_id) else {
            let why = not_here
                .get(&w.plugin_instance_id)
                .map(|r| format!("its instance was not imported: {r}"))
                .unwrap_or_else(|| {
                    format!("its instance {} is not in the source", w.plugin_instance_id)
                });
            report.work_items.skipped += 1;
            report.idempotency_keys.skipped += keys.len() as u64;
            for k in &keys {
                rows.skip_capped("idempotency_keys", k, why.clone());
            }
            rows.skip_capped("work_items", &w.id, why);
            continue;
        };
        let payload: Value = serde_json::from_str(&w.payload).unwrap_or(Value::Null);
        let text = payload
            .get("body")
            .and_then(Value::as_str)
            .filter(|b| !b.is_empty())
            .unwrap_or(&w.title)
            .to_string();
        let item = ImportedWorkItem {
            id: w.id.clone(),
            plugin_instance_id: w.plugin_instance_id.clone(),
            integration_type: integration_type.clone(),
            title: w.title.clone(),
            text,
            session_key: w.session_key.clone(),
            source_ref: w.source_ref.clone(),
            payload_json: if payload.is_object() {
                w.payload.clone()
            } else {
                "{}".into()
            },
            status: w.status.to_ascii_lowercase(),
            created_at: w.created_at.saturating_mul(1000),
            updated_at: w.updated_at.saturating_mul(1000),
        };
        if req.dry_run {
            let exists = ctx.store.get_work_item(&w.id).await?.is_some();
            count(
                &mut report.work_items,
                if exists {
                    RowAction::Unchanged
                } else {
                    RowAction::Created
                },
            );
            for k in &keys {
                let known = ctx
                    .store
                    .find_idempotent(&w.plugin_instance_id, k)
                    .await?
                    .is_some();
                count(
                    &mut report.idempotency_keys,
                    if known {
                        RowAction::Unchanged
                    } else {
                        RowAction::Created
                    },
                );
            }
            continue;
        }
        let written = ctx.store.import_work_item(&item, &keys).await?;
        count(
            &mut report.work_items,
            if written.work_item_created {
                RowAction::Created
            } else {
                RowAction::Unchanged
            },
        );
        report.idempotency_keys.created += written.keys_created;
        report.idempotency_keys.unchanged += keys.len() as u64 - written.keys_created;
    }
    // Keys whose work item is not in the source.
    for (item, keys) in keys_by_item {
        for k in keys {
            report.idempotency_keys.skipped += 1;
            rows.skip_capped(
                "idempotency_keys",
                &k,
                format!("its work item {item} is not in the source"),
            );
        }
    }

    import_skills(ctx, source, req.dry_run, &mut report, &mut rows).await?;
    report.third_party_plugins = third_party_plugins(ctx, source, &source_instances).await?;
    report.rows = rows.rows;
    Ok(report)
}

/// Whether a skill file's path is a plain relative path (no `..`, no root, no backslash, no
/// control characters).
fn safe_relative_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 512
        && !path.starts_with('/')
        && !path.contains('\\')
        && !path.chars().any(char::is_control)
        && path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

/// Skills become admin skills here (`admin:<id there>`, named by their slug), with their
/// files; assignments follow their skill. A skill changed here since an earlier import, or
/// whose name another admin skill here has, is left as it is and reported.
async fn import_skills(
    ctx: &Instances,
    source: &NitejarSource,
    dry_run: bool,
    report: &mut ImportReport,
    rows: &mut Rows,
) -> Result<(), ImportError> {
    let admin_here = ctx.store.skills_of("admin", None).await?;
    let mut imported: HashSet<String> = HashSet::new();
    for s in source.skills().await? {
        report.skills.read += 1;
        let skill_id = format!("admin:{}", s.id);
        let mut notes = Vec::new();
        let files: Vec<(String, Vec<u8>)> = s
            .files
            .iter()
            .filter(|(path, _)| {
                let ok = safe_relative_path(path);
                if !ok {
                    notes.push(format!(
                        "file {:?} left out: not a plain relative path",
                        path.escape_debug().to_string()
                    ));
                }
                ok
            })
            .map(|(p, c)| (p.clone(), c.clone().into_bytes()))
            .collect();
        let new = NewSkill {
            skill_id: &skill_id,
            name: &s.slug,
            description: &s.description,
            tags: &s.tags,
            source: "admin",
            plugin_id: None,
            plugin_version: None,
            content: &s.content,
            files: &files,
            enabled: s.enabled,
        };
        if s.source_kind == "plugin" {
            notes.push(format!(
                "from Nitejar plugin {} (it does not run here): imported as an admin skill",
                s.plugin_id.as_deref().unwrap_or("?")
            ));
        }
        let (action, reason) = if !crate::skills::valid_name(&s.slug) {
            (
                RowAction::Skipped,
                Some(format!(
                    "its slug {:?} is not a valid skill name here",
                    s.slug
                )),
            )
        } else if s.content.trim().is_empty()
            || s.content.len() > crate::limits::MAX_SKILL_CONTENT_BYTES
        {
            (
                RowAction::Skipped,
                Some("its content is empty or larger than 256 KiB".into()),
            )
        } else if let Some(existing) = ctx.store.get_skill(&skill_id).await? {
            imported.insert(s.id.clone());
            if existing.checksum == new.checksum() && existing.name == s.slug {
                (RowAction::Unchanged, None)
            } else {
                (
                    RowAction::Skipped,
                    Some("changed here since it was imported; left as it is".into()),
                )
            }
        } else if admin_here.iter().any(|a| a.name == s.slug) {
            (
                RowAction::Skipped,
                Some(format!("an admin skill named {:?} exists here", s.slug)),
            )
        } else {
            if !dry_run {
                ctx.store.upsert_skill(&new).await?;
            }
            imported.insert(s.id.clone());
            (RowAction::Created, None)
        };
        count(&mut report.skills, action);
        let reason = match (reason, notes.is_empty()) {
            (Some(r), _) => Some(r),
            (None, false) => Some(notes.join("; ")),
            (None, true) => None,
        };
        rows.push("skills", &s.id, action, reason);
    }
    for a in source.skill_assignments().await? {
        report.skill_assignments.read += 1;
        let skill_id = format!("admin:{}", a.skill_id);
        let scope_ref = a.scope_id.clone().unwrap_or_default();
        let skipped = |why: String| (RowAction::Skipped, Some(why));
        let (action, reason) = if !imported.contains(&a.skill_id) {
            skipped(format!("skill {} was not imported", a.skill_id))
        } else if !a.enabled {
            skipped("disabled there".into())
        } else if !matches!(a.scope.as_str(), "global" | "agent") {
            skipped(format!(
                "scope {:?}: Nitejar's teams are not imported; assign it here by team name",
                a.scope
            ))
        } else if a.scope == "agent" && ctx.store.get_agent(&scope_ref).await?.is_none() {
            skipped(format!(
                "agent {scope_ref} is not defined here (agents are not imported)"
            ))
        } else {
            let scope_ref = if a.scope == "global" {
                String::new()
            } else {
                scope_ref
            };
            let existing = ctx.store.skill_assignments(&skill_id).await?;
            if existing.contains(&(a.scope.clone(), scope_ref.clone())) {
                (RowAction::Unchanged, None)
            } else {
                if !dry_run {
                    ctx.store
                        .set_skill_assignment(&skill_id, &a.scope, &scope_ref, true)
                        .await?;
                }
                (RowAction::Created, None)
            }
        };
        count(&mut report.skill_assignments, action);
        rows.push("skill_assignments", &a.id, action, reason);
    }
    Ok(())
}

/// Brings one instance over (or says what would happen).
async fn import_instance(
    ctx: &Instances,
    inst: &SourceInstance,
    dry_run: bool,
) -> Result<(RowAction, Option<String>), ImportError> {
    let skipped = |why: String| Ok((RowAction::Skipped, Some(why)));
    let integration_type = inst.integration_type();
    let Ok(plugin) = instances::provider(ctx, &integration_type) else {
        return skipped(format!(
            "no enabled plugin here provides integration type `{integration_type}` (Nitejar \
             plugin {})",
            inst.plugin_id
        ));
    };
    let Some(descriptor) = plugin.descriptor(&integration_type) else {
        return skipped(format!(
            "plugin {} does not describe `{integration_type}`",
            plugin.id()
        ));
    };
    let Ok(Value::Object(stored)) = serde_json::from_str::<Value>(&inst.config_json) else {
        return skipped("its config_json is not a JSON object".into());
    };
    // The config as the plugin sees it, and the sensitive fields stored in plaintext.
    let mut plain = stored.clone();
    let mut plaintext_fields = Vec::new();
    for field in &descriptor.sensitive_fields {
        let Some(Value::String(v)) = stored.get(field) else {
            continue;
        };
        if SecretBox::is_ciphertext(v) {
            match ctx.secrets.decrypt(v) {
                Ok(p) => {
                    plain.insert(field.clone(), Value::String(p));
                }
                Err(_) => {
                    return skipped(format!(
                        "`{field}` does not decrypt with this host's ENCRYPTION_KEY; start the \
                         host with the key Nitejar used (64 hex, 44 base64 or 32 characters)"
                    ));
                }
            }
        } else {
            plaintext_fields.push(field.clone());
        }
    }

    if let Some(existing) = ctx.store.get_instance(&inst.id).await? {
        let existing_plain = instances::decrypt_config(
            &ctx.secrets,
            &existing.config_json,
            plugin.descriptor(&existing.integration_type),
        )
        .ok()
        .and_then(|c| serde_json::from_str::<Map<String, Value>>(&c).ok());
        return if existing.integration_type == integration_type
            && existing_plain.as_ref() == Some(&plain)
        {
            Ok((RowAction::Unchanged, None))
        } else {
            skipped(
                "an instance with this id already exists here with another type or config; \
                 it was left as it is"
                    .into(),
            )
        };
    }

    let mut notes = Vec::new();
    let config_json = if plaintext_fields.is_empty() {
        inst.config_json.clone()
    } else {
        let mut sealed = stored.clone();
        for field in &plaintext_fields {
            if let Some(Value::String(v)) = stored.get(field) {
                sealed.insert(field.clone(), Value::String(ctx.secrets.encrypt(v)));
            }
        }
        notes.push(format!(
            "plaintext {} encrypted on import (Nitejar stored {} without ENCRYPTION_KEY)",
            plaintext_fields
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", "),
            if plaintext_fields.len() == 1 {
                "it"
            } else {
                "them"
            }
        ));
        Value::Object(sealed).to_string()
    };
    let mut enabled = inst.enabled;
    if let Err(e) = instances::validate(ctx, &plugin, &integration_type, &plain).await {
        if enabled {
            notes.push(format!("imported disabled: {e}"));
        } else {
            notes.push(format!("{e}"));
        }
        enabled = false;
    }
    if !dry_run {
        let row = ImportedInstance {
            id: inst.id.clone(),
            plugin_id: plugin.id().to_string(),
            integration_type,
            name: inst.name.clone(),
            config_json,
            enabled,
            created_at: inst.created_at.saturating_mul(1000),
            updated_at: inst.updated_at.saturating_mul(1000),
        };
        if !ctx.store.import_instance(&row).await? {
            return Ok((RowAction::Unchanged, None));
        }
    }
    let reason = (!notes.is_empty()).then(|| notes.join("; "));
    Ok((RowAction::Created, reason))
}

/// The third-party plugins installed in the source, with what replaces each here.
async fn third_party_plugins(
    ctx: &Instances,
    source: &NitejarSource,
    instances: &[SourceInstance],
) -> Result<Vec<ThirdPartyPlugin>, ImportError> {
    let mut out = Vec::new();
    for p in source.plugins().await? {
        if p.source_kind == "builtin" || p.trust_level == "builtin" || p.id.starts_with("builtin.")
        {
            continue;
        }
        let own: Vec<&SourceInstance> = instances.iter().filter(|i| i.plugin_id == p.id).collect();
        let mut types: Vec<String> = own.iter().map(|i| i.integration_type()).collect();
        types.sort();
        types.dedup();
        let replacement = if let Some(installed) = ctx.registry.get(&p.id) {
            format!(
                "installed here as {} {} (a WebAssembly build)",
                installed.id(),
                installed.version()
            )
        } else if let Some((t, provider)) = types.iter().find_map(|t| {
            ctx.registry
                .by_integration_type(t)
                .map(|provider| (t.clone(), provider))
        }) {
            format!(
                "its integration type `{t}` is provided here by {}; its instances were imported \
                 for that plugin",
                provider.id()
            )
        } else {
            "none here: Nitejar plugins are JavaScript packages and this host runs WebAssembly \
             components; it needs a WebAssembly build (README \"Writing a plugin\")"
                .to_string()
        };
        out.push(ThirdPartyPlugin {
            id: p.id,
            name: p.name,
            version: p.current_version,
            source_kind: p.source_kind,
            source_ref: p.source_ref,
            enabled: p.enabled,
            instances: own.len() as u64,
            replacement,
        });
    }
    Ok(out)
}
