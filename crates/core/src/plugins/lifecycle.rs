//! Upgrade, rollback and uninstall (spec §6.3, §6.4).
//!
//! - **Upgrade**: the new version is installed beside the active one (files, version row,
//!   artifact) without touching it. Its permissions are compared with what the operator has
//!   granted: when it asks for nothing more, it is activated at once; otherwise it waits as the
//!   plugin's `pendingVersion` until the operator consents to **exactly** the added permissions
//!   (`approve`), and the old version keeps serving meanwhile. Only newer versions (semver) are
//!   upgrades; going back is a rollback.
//! - **Activation without restart**: the registry swaps the loaded plugin; calls in flight hold
//!   the old one and finish on it, new calls get the new one, hooks are re-registered. The
//!   database row is updated first and the `current` pointer second; boot re-points `current`
//!   at the database's version, so a crash between the two cannot leave them disagreeing. If the
//!   new version fails to load, the previous one is restored.
//! - **Rollback** flips back to an installed version (default: the newest one older than the
//!   active one). Grants are per plugin, so the version runs with the granted subset of what it
//!   declares.
//! - **Uninstall** (not for built-ins: disable those) stops the plugin, removes its rows and,
//!   on request, its files (`purgeFiles`) and its data (`purgeData`: key-value storage, secret
//!   values, file areas). Receipts, integration instances, work items and runs are never touched.

use super::installer::{InstallError, InstallSource, set_current, stage};
use super::package::PluginPackage;
use crate::plugins::Plugins;
use crate::receipts::Receipt;
use nitejar_sandbox::manifest::Manifest;
use nitejar_store::{Purge, VersionRow};
use std::collections::BTreeSet;
use std::time::Instant;

/// Why a lifecycle action was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// The plugin is not installed.
    #[error("plugin {0} is not installed")]
    NotInstalled(String),
    /// The action does not apply in the plugin's state; the message says why and what to do.
    #[error("{0}")]
    Conflict(String),
    /// The request is not valid for this plugin (no consent, a permission or secret it does
    /// not declare); the message says what to send.
    #[error("{0}")]
    Invalid(String),
    /// The trust mode requires every declared permission to be granted first.
    #[error("{0}")]
    GrantsRequired(String),
    /// Safe mode: only built-in plugins are enabled.
    #[error("{0}")]
    SafeMode(String),
    /// The plugin was enabled but failed to load (it stays disabled).
    #[error("{0}")]
    LoadFailed(String),
    /// The operator's consent does not match the added permissions.
    #[error("{0}")]
    Consent(String),
    /// Installing the new version failed.
    #[error(transparent)]
    Install(#[from] InstallError),
    /// The version could not be put in service (the previous one was restored).
    #[error("activation failed: {0}")]
    Activation(String),
    /// Files could not be changed.
    #[error("file operation failed: {0}")]
    Io(#[from] std::io::Error),
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] nitejar_store::DbError),
}

pub use nitejar_api::lifecycle::{
    ReloadReport, UninstallRequest as UninstallOptions, UpgradeReport,
};

fn parse_version(v: &str) -> Option<semver::Version> {
    semver::Version::parse(v).ok()
}

fn manifest_of(row: &VersionRow) -> Result<Manifest, LifecycleError> {
    Manifest::parse(row.manifest_json.as_bytes())
        .map_err(|e| LifecycleError::Conflict(format!("stored manifest unreadable: {e}")))
}

async fn granted(ctx: &Plugins, id: &str) -> Result<BTreeSet<String>, LifecycleError> {
    Ok(ctx.store.granted_permissions(id).await?)
}

/// Stages `pkg` as the next version of an installed plugin and activates it unless it needs
/// consent to added permissions.
pub async fn upgrade(
    ctx: &Plugins,
    pkg: PluginPackage,
    source: InstallSource,
) -> Result<UpgradeReport, LifecycleError> {
    let id = pkg.manifest.id.clone();
    let row = ctx
        .store
        .get_plugin(&id)
        .await?
        .ok_or_else(|| LifecycleError::NotInstalled(id.clone()))?;
    if row.is_builtin() {
        return Err(LifecycleError::Conflict(format!(
            "{id} is a built-in: it is upgraded with the nitejar binary"
        )));
    }
    let from = row.current_version.clone().unwrap_or_default();
    let newer = match (parse_version(&pkg.manifest.version), parse_version(&from)) {
        (Some(new), Some(old)) => new > old,
        _ => false,
    };
    if !newer {
        return Err(LifecycleError::Conflict(format!(
            "{id} {} is not newer than the active {from}; use rollback to go back to an installed version",
            pkg.manifest.version
        )));
    }
    let version = pkg.manifest.version.clone();
    let declared_old: BTreeSet<String> = Manifest::parse(row.manifest_json.as_bytes())
        .map(|m| m.disclosures().into_iter().collect())
        .unwrap_or_default();
    let declared_new: BTreeSet<String> = pkg.manifest.disclosures().into_iter().collect();
    stage(ctx, pkg, source).await?;
    crate::crashpoint::reach("upgrade.staged");
    let have = granted(ctx, &id).await?;
    let added: Vec<String> = declared_new.difference(&have).cloned().collect();
    let removed: Vec<String> = declared_old.difference(&declared_new).cloned().collect();
    let mut report = UpgradeReport {
        plugin_id: id.clone(),
        from_version: from.clone(),
        version: version.clone(),
        status: "activated".into(),
        added_permissions: added.clone(),
        removed_permissions: removed,
    };
    if added.is_empty() {
        activate_version(ctx, &id, &version, "upgrade").await?;
    } else {
        // The disclosure rows appear (not granted) so the operator sees what is asked.
        ctx.store.ensure_disclosures(&id, &added).await?;
        ctx.store.set_pending_version(&id, Some(&version)).await?;
        report.status = "pending_consent".into();
        ctx.receipts.emit(
            Receipt::new(&id, "upgrade", "pending_consent")
                .version(&version)
                .detail(
                    serde_json::json!({ "from": from, "to": version, "addedPermissions": added }),
                ),
        );
    }
    Ok(report)
}

/// Activates the pending upgrade once the operator consents to exactly its added permissions.
pub async fn approve(
    ctx: &Plugins,
    id: &str,
    consent: &[String],
) -> Result<UpgradeReport, LifecycleError> {
    let row = ctx
        .store
        .get_plugin(id)
        .await?
        .ok_or_else(|| LifecycleError::NotInstalled(id.into()))?;
    let pending = row.pending_version.clone().ok_or_else(|| {
        LifecycleError::Conflict(format!("{id} has no upgrade waiting for consent"))
    })?;
    let v = ctx
        .store
        .get_version(id, &pending)
        .await?
        .ok_or_else(|| LifecycleError::Conflict(format!("{id} {pending} is not installed")))?;
    let declared: BTreeSet<String> = manifest_of(&v)?.disclosures().into_iter().collect();
    let have = granted(ctx, id).await?;
    let added: BTreeSet<String> = declared.difference(&have).cloned().collect();
    let given: BTreeSet<String> = consent.iter().cloned().collect();
    if given != added {
        return Err(LifecycleError::Consent(format!(
            "consent to exactly the added permissions: {:?} (got {:?})",
            added, given
        )));
    }
    let list: Vec<String> = added.iter().cloned().collect();
    ctx.store.acknowledge(id, &list).await?;
    activate_version(ctx, id, &pending, "upgrade").await?;
    Ok(UpgradeReport {
        plugin_id: id.into(),
        from_version: row.current_version.unwrap_or_default(),
        version: pending,
        status: "activated".into(),
        added_permissions: list,
        removed_permissions: vec![],
    })
}

/// The upgrade waiting for consent, if any: its version and the permissions it adds (declared,
/// not granted) and drops, as [`upgrade`] reported them.
pub async fn pending_upgrade(
    ctx: &Plugins,
    id: &str,
) -> Result<Option<UpgradeReport>, LifecycleError> {
    let row = ctx
        .store
        .get_plugin(id)
        .await?
        .ok_or_else(|| LifecycleError::NotInstalled(id.into()))?;
    let Some(pending) = row.pending_version.clone() else {
        return Ok(None);
    };
    let Some(v) = ctx.store.get_version(id, &pending).await? else {
        return Ok(None);
    };
    let declared: BTreeSet<String> = manifest_of(&v)?.disclosures().into_iter().collect();
    let declared_old: BTreeSet<String> = Manifest::parse(row.manifest_json.as_bytes())
        .map(|m| m.disclosures().into_iter().collect())
        .unwrap_or_default();
    let have = granted(ctx, id).await?;
    Ok(Some(UpgradeReport {
        plugin_id: id.into(),
        from_version: row.current_version.unwrap_or_default(),
        version: pending,
        status: "pending_consent".into(),
        added_permissions: declared.difference(&have).cloned().collect(),
        removed_permissions: declared_old.difference(&declared).cloned().collect(),
    }))
}

/// Discards a pending upgrade (its files stay installed, like any inactive version).
pub async fn discard_pending(ctx: &Plugins, id: &str) -> Result<(), LifecycleError> {
    if ctx.store.pending_version(id).await?.is_none() {
        return Err(LifecycleError::Conflict(format!(
            "{id} has no upgrade waiting for consent"
        )));
    }
    ctx.store.set_pending_version(id, None).await?;
    Ok(())
}

/// Re-reads a plugin installed from a local directory (the development loop: rebuild, then
/// reload, without bumping the version). The directory must still hold the same plugin id and
/// version (a new version is an upgrade); new content is validated and trust-checked like an
/// install, replaces the active version's files, artifact and manifest, and is activated at once
/// when the plugin is enabled. Permissions it newly declares start ungranted.
pub async fn reload(ctx: &Plugins, id: &str) -> Result<ReloadReport, LifecycleError> {
    let row = ctx
        .store
        .get_plugin(id)
        .await?
        .ok_or_else(|| LifecycleError::NotInstalled(id.into()))?;
    let (true, Some(dir)) = (row.source_kind == "local", row.source_ref.clone()) else {
        return Err(LifecycleError::Conflict(format!(
            "{id} was installed from {}; only plugins installed from a local directory are re-read (use upgrade)",
            row.source_kind
        )));
    };
    let current = row.current_version.clone().unwrap_or_default();
    let path = std::path::PathBuf::from(&dir);
    let pkg = tokio::task::spawn_blocking(move || PluginPackage::from_dir(&path))
        .await
        .map_err(|e| std::io::Error::other(format!("reading task failed: {e}")))?
        .map_err(|e| LifecycleError::Conflict(format!("re-reading {dir}: {e}")))?;
    if pkg.manifest.id != id || pkg.manifest.version != current {
        return Err(LifecycleError::Conflict(format!(
            "{dir} now holds {} {}; reload takes a rebuild of {id} {current} (a new version is an upgrade)",
            pkg.manifest.id, pkg.manifest.version
        )));
    }
    let unchanged = row.current_checksum.as_deref() == Some(pkg.digest.as_str())
        && Manifest::parse(row.manifest_json.as_bytes()).ok().as_ref() == Some(&pkg.manifest);
    let checksum = pkg.digest.clone();
    if !unchanged {
        let source = InstallSource {
            kind: "local",
            reference: Some(dir),
            commit: None,
        };
        super::installer::replace_active(ctx, pkg, source).await?;
    }
    if row.enabled {
        ctx.registry
            .activate(id)
            .await
            .map_err(LifecycleError::Activation)?;
    }
    let ungranted = ctx
        .store
        .list_disclosures(id)
        .await?
        .into_iter()
        .filter(|d| !d.acknowledged)
        .map(|d| d.permission)
        .collect();
    Ok(ReloadReport {
        plugin_id: id.to_string(),
        version: current,
        status: if unchanged { "unchanged" } else { "reloaded" }.into(),
        checksum,
        ungranted_permissions: ungranted,
    })
}

/// Rolls back to `version`, or to the newest installed version older than the active one.
pub async fn rollback(
    ctx: &Plugins,
    id: &str,
    version: Option<&str>,
) -> Result<VersionRow, LifecycleError> {
    let row = ctx
        .store
        .get_plugin(id)
        .await?
        .ok_or_else(|| LifecycleError::NotInstalled(id.into()))?;
    let current = row.current_version.clone().unwrap_or_default();
    let versions = ctx.store.list_versions(id).await?;
    let target = match version {
        Some(v) if v == current => {
            return Err(LifecycleError::Conflict(format!(
                "{id} {v} is already the active version"
            )));
        }
        Some(v) => versions
            .iter()
            .find(|r| r.version == v)
            .cloned()
            .ok_or_else(|| {
                LifecycleError::Conflict(format!("{id} {v} is not installed; installed: {}", {
                    let all: Vec<&str> = versions.iter().map(|r| r.version.as_str()).collect();
                    all.join(", ")
                }))
            })?,
        None => {
            let cur = parse_version(&current);
            versions
                .iter()
                .filter_map(|r| parse_version(&r.version).map(|v| (v, r)))
                .filter(|(v, _)| cur.as_ref().is_some_and(|c| v < c))
                .max_by(|a, b| a.0.cmp(&b.0))
                .map(|(_, r)| r.clone())
                .ok_or_else(|| {
                    LifecycleError::Conflict(format!(
                        "{id} has no installed version older than {current} to roll back to"
                    ))
                })?
        }
    };
    activate_version(ctx, id, &target.version, "rollback").await?;
    Ok(target)
}

/// Makes `version` the active one: database, then pointer, then (when enabled) the registry.
/// Restores the previous version if the new one fails to load.
async fn activate_version(
    ctx: &Plugins,
    id: &str,
    version: &str,
    kind: &str,
) -> Result<(), LifecycleError> {
    let started = Instant::now();
    let row = ctx
        .store
        .get_plugin(id)
        .await?
        .ok_or_else(|| LifecycleError::NotInstalled(id.into()))?;
    let target = ctx
        .store
        .get_version(id, version)
        .await?
        .ok_or_else(|| LifecycleError::Conflict(format!("{id} {version} is not installed")))?;
    let previous = match &row.current_version {
        Some(v) => ctx.store.get_version(id, v).await?,
        None => None,
    };
    let manifest = manifest_of(&target)?;
    ctx.store.set_active_version(&target).await?;
    crate::crashpoint::reach("upgrade.db_active");
    ctx.store
        .ensure_disclosures(id, &manifest.disclosures())
        .await?;
    let plugin_dir = ctx.config.plugins_dir.join(id);
    set_current(&plugin_dir, version)?;
    let mut outcome = Ok(());
    if row.enabled
        && let Err(e) = ctx.registry.activate(id).await
    {
        // Put the previous version back in service.
        if let Some(prev) = &previous {
            ctx.store.set_active_version(prev).await?;
            set_current(&plugin_dir, &prev.version)?;
            let _ = ctx.registry.activate(id).await;
        }
        outcome = Err(LifecycleError::Activation(e));
    }
    let from = row.current_version.unwrap_or_default();
    let (status, detail) = match &outcome {
        Ok(()) => ("ok", serde_json::json!({ "from": from, "to": version })),
        Err(e) => (
            "error",
            serde_json::json!({ "from": from, "to": version, "error": e.to_string() }),
        ),
    };
    ctx.receipts.emit(
        Receipt::new(id, kind, status)
            .version(version)
            .duration(started.elapsed())
            .detail(detail),
    );
    outcome
}

/// Uninstalls a plugin (see the module docs).
pub async fn uninstall(
    ctx: &Plugins,
    id: &str,
    options: UninstallOptions,
) -> Result<(), LifecycleError> {
    let started = Instant::now();
    let row = ctx
        .store
        .get_plugin(id)
        .await?
        .ok_or_else(|| LifecycleError::NotInstalled(id.into()))?;
    if row.is_builtin() {
        return Err(LifecycleError::Conflict(format!(
            "{id} is a built-in and cannot be uninstalled; disable it instead"
        )));
    }
    // Stop it first: no new calls reach it from here on.
    ctx.registry.deactivate(id);
    let plugin_dir = ctx.config.plugins_dir.join(id);
    if !options.purge_files && plugin_dir.is_dir() {
        // Marked before the rows go, so boot never mistakes kept files for a killed install.
        std::fs::write(
            plugin_dir.join(super::installer::UNINSTALLED_MARKER),
            nitejar_store::now_ms().to_string(),
        )?;
    }
    ctx.store
        .delete_plugin(
            id,
            Purge {
                data: options.purge_data,
            },
        )
        .await?;
    crate::skills::remove_plugin(&ctx.skills, id).await?;
    let mut removed = Vec::new();
    if options.purge_files {
        let dir = ctx.config.plugins_dir.join(id);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
            removed.push(dir.display().to_string());
        }
    }
    if options.purge_data {
        let dir = ctx.config.data_dir.join("plugin-files").join(id);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
            removed.push(dir.display().to_string());
        }
    }
    ctx.receipts.emit(
        Receipt::new(id, "uninstall", "ok")
            .version(row.current_version.as_deref().unwrap_or(""))
            .duration(started.elapsed())
            .detail(serde_json::json!({
                "purgeFiles": options.purge_files,
                "purgeData": options.purge_data,
                "removed": removed,
            })),
    );
    Ok(())
}
