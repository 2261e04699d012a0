//! Doctor (spec §17, issue: "per plugin load status, last error, grants, file/checksum and cache
//! health, and what to do about each problem"). Read-only: it reports, it never repairs (boot
//! and activation already re-materialize missing files from the stored artifact).

use super::installer::{CHECKSUM_FILE, version_dir};
use super::package::sha256_hex;
use crate::plugins::Plugins;
use nitejar_api::lifecycle::{GrantState, HealthReport, PluginHealth, Problem};
use nitejar_sandbox::manifest::Manifest;
use nitejar_store::PluginRow;

/// One finding: what is wrong and what to do.
fn problem(check: &str, detail: String, fix: &str) -> Problem {
    Problem {
        check: check.into(),
        detail,
        fix: fix.into(),
    }
}

/// The doctor's report of one plugin.
pub async fn diagnose(
    ctx: &Plugins,
    row: &PluginRow,
) -> Result<PluginHealth, nitejar_store::DbError> {
    let mut problems = Vec::new();
    let loaded = ctx.registry.get(&row.id);
    let version = row.current_version.clone().unwrap_or_default();
    let checksum = row.current_checksum.clone().unwrap_or_default();
    // Load status.
    if row.enabled && loaded.is_none() {
        let why = row
            .last_load_error
            .clone()
            .unwrap_or_else(|| "not loaded".into());
        problems.push(problem(
            "load",
            why,
            "read the error; fix the package and upgrade, roll back to a working version, or disable it",
        ));
    }
    if let Some(alert) = &row.alert_json {
        problems.push(problem(
            "crash_loop",
            alert.clone(),
            "look at its receipts (nitejar plugin logs), fix or roll back, then enable it again",
        ));
    }
    if let Some(p) = &row.pending_version {
        problems.push(problem(
            "pending_upgrade",
            format!("{p} waits for consent to its added permissions"),
            "approve it (nitejar plugin upgrade --yes, or POST /upgrade/approve) or discard it (DELETE /upgrade)",
        ));
    }
    // Grants: declared by the active manifest vs granted.
    let declared = Manifest::parse(row.manifest_json.as_bytes())
        .map(|m| m.disclosures())
        .unwrap_or_default();
    let acks = ctx.store.list_disclosures(&row.id).await?;
    let granted: Vec<String> = acks
        .iter()
        .filter(|a| a.acknowledged && declared.contains(&a.permission))
        .map(|a| a.permission.clone())
        .collect();
    let ungranted: Vec<String> = declared
        .iter()
        .filter(|d| !granted.contains(d))
        .cloned()
        .collect();
    if !ungranted.is_empty() && row.enabled {
        problems.push(problem(
            "grants",
            format!("declared but not granted: {}", ungranted.join(", ")),
            "grant them (nitejar plugin enable) if the plugin needs them; calls using them are refused meanwhile",
        ));
    }
    // Files and checksums.
    let dir = version_dir(&ctx.config.plugins_dir, &row.id, &version);
    let mut files = "ok";
    if !version.is_empty() {
        let entry = Manifest::parse(row.manifest_json.as_bytes())
            .map(|m| dir.join(m.entry.trim_start_matches("./")))
            .ok();
        match entry.as_ref().map(std::fs::read) {
            Some(Ok(bytes)) if sha256_hex(&bytes) == checksum => {}
            Some(Ok(_)) => {
                files = "checksum_mismatch";
                problems.push(problem(
                    "files",
                    format!("{} does not match the recorded checksum", dir.display()),
                    "restart or re-enable: activation restores it from the stored artifact",
                ));
            }
            _ => {
                files = "missing";
                problems.push(problem(
                    "files",
                    format!(
                        "the component of {version} is missing under {}",
                        dir.display()
                    ),
                    "restart or re-enable: activation restores it from the stored artifact",
                ));
            }
        }
        let recorded = std::fs::read_to_string(dir.join(CHECKSUM_FILE)).unwrap_or_default();
        if files == "ok" && recorded.trim() != checksum {
            files = "checksum_file_stale";
            problems.push(problem(
                "files",
                format!("{CHECKSUM_FILE} in {} disagrees with the database", dir.display()),
                "restart: the version directory is rewritten from the stored artifact when it is used",
            ));
        }
        let link = std::fs::read_link(ctx.config.plugins_dir.join(&row.id).join("current")).ok();
        if link.as_deref() != Some(std::path::Path::new("versions").join(&version).as_path()) {
            problems.push(problem(
                "current_pointer",
                format!("`current` does not point at versions/{version}"),
                "restart: boot re-points it at the database's version",
            ));
        }
        match ctx.store.get_artifact(&row.id, &version).await? {
            Some((c, bytes)) if c == checksum && sha256_hex(&bytes) == checksum => {}
            _ => problems.push(problem(
                "artifact",
                format!("no intact stored artifact for {version}"),
                "reinstall the same version (or upgrade): the stored copy is what restores lost files",
            )),
        }
    }
    // Compile cache.
    let cache = if checksum.is_empty() {
        "none"
    } else if ctx.runtime.cache_path(&checksum).is_file() {
        "compiled"
    } else {
        "cold (compiled on next load)"
    };
    Ok(PluginHealth {
        plugin_id: row.id.clone(),
        version: row.current_version.clone(),
        enabled: row.enabled,
        loaded: loaded.is_some(),
        last_load_error: row.last_load_error.clone(),
        recent_failures: ctx.crash_guard.recent_failures(&row.id) as u64,
        grants: GrantState {
            declared,
            granted,
            ungranted,
        },
        files: files.into(),
        cache: cache.into(),
        healthy: problems.is_empty(),
        problems,
    })
}

/// The doctor's report of every installed plugin.
pub async fn diagnose_all(ctx: &Plugins) -> Result<HealthReport, nitejar_store::DbError> {
    let mut out = Vec::new();
    for row in ctx.store.list_plugins().await? {
        out.push(diagnose(ctx, &row).await?);
    }
    Ok(HealthReport {
        healthy: out.iter().all(|p| p.healthy),
        safe_mode: ctx.config.safe_mode,
        plugins: out,
    })
}
