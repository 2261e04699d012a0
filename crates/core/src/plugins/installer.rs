//! Installing a package: validate in the sandbox, write the spec §8 layout, record it.
//!
//! Order matters so a crash leaves the previous state intact: the component is compiled and
//! checked against its manifest first; files are written to `_staging/<uuid>` and renamed into
//! `<plugins>/<id>/versions/<version>` in one step; the `current` pointer is replaced atomically
//! (a new symlink renamed over the old); the database rows come last. A version directory that
//! already exists with the same checksum is reused (idempotent install); with a different
//! checksum the install is refused (versions are immutable: bump the version), except for
//! built-ins, whose content comes with the binary and replaces the directory.

use super::package::PluginPackage;
use crate::plugins::Plugins;
use crate::receipts::Receipt;
use nitejar_sandbox::manifest::{MANIFEST_FILE, Manifest};
use nitejar_sandbox::runtime::{Grants, LoadError};
use nitejar_store::InstallRecord;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// File in a version directory holding the component's sha256.
pub const CHECKSUM_FILE: &str = ".checksum";

/// File in a plugin directory whose files an uninstall kept on purpose (no `--purge-files`):
/// boot leaves such a directory alone although no plugin row names it; installing the plugin
/// again removes the marker.
pub const UNINSTALLED_MARKER: &str = ".uninstalled";

/// Where a package came from.
#[derive(Debug, Clone)]
pub struct InstallSource {
    /// builtin | upload | local | npm | git.
    pub kind: &'static str,
    /// File name, path, package name or URL.
    pub reference: Option<String>,
    /// git: the commit installed.
    pub commit: Option<String>,
}

impl InstallSource {
    /// Provenance kept with the version (`plugin_versions.source_json`) and shown by the API.
    pub fn info(&self) -> SourceInfo {
        SourceInfo {
            kind: self.kind.into(),
            reference: self.reference.clone(),
            commit: self.commit.clone(),
        }
    }

    /// [`InstallSource::info`] as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.info()).expect("source info serializes")
    }
}

/// Why an install failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The component failed validation.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The same version is installed with different content.
    #[error(
        "{id} {version} is already installed with a different checksum; versions are immutable, bump the version"
    )]
    VersionConflict {
        /// Plugin id.
        id: String,
        /// Version.
        version: String,
    },
    /// Another version of the plugin is installed: that is an upgrade.
    #[error(
        "{id} is already installed at version {installed}; use upgrade (POST /api/admin/plugins/{id}/upgrade) to move to {version}"
    )]
    AlreadyInstalled {
        /// Plugin id.
        id: String,
        /// The installed version.
        installed: String,
        /// The version offered.
        version: String,
    },
    /// The trust policy refuses the package.
    #[error("{0}")]
    Refused(String),
    /// An integration type the package declares is provided by another installed or built-in
    /// plugin (decided here, at install, never by load order).
    #[error("{0}")]
    IntegrationTypeTaken(String),
    /// Writing files failed.
    #[error("writing the plugin files failed: {0}")]
    Io(#[from] std::io::Error),
    /// Recording the install failed.
    #[error(transparent)]
    Db(#[from] nitejar_store::DbError),
}

pub use nitejar_api::lifecycle::InstallReport;
use nitejar_api::lifecycle::{
    EngineRange, InstalledState, PermissionDiff, Preview, SourceInfo, TrustVerdict,
};

/// The directory of one installed version.
pub fn version_dir(plugins_dir: &Path, id: &str, version: &str) -> PathBuf {
    plugins_dir.join(id).join("versions").join(version)
}

/// Installs a package and makes it the active version. Leaves the plugin disabled unless it is
/// a built-in.
pub async fn install(
    ctx: &Plugins,
    pkg: PluginPackage,
    source: InstallSource,
) -> Result<InstallReport, InstallError> {
    install_with(ctx, pkg, source, true, false).await
}

/// Replaces the files, artifact and manifest of the active version with `pkg` (same id and
/// version): how a plugin installed from a local directory picks up a rebuild (see
/// [`super::lifecycle::reload`]). Validated and trust-checked like an install.
pub async fn replace_active(
    ctx: &Plugins,
    pkg: PluginPackage,
    source: InstallSource,
) -> Result<InstallReport, InstallError> {
    install_with(ctx, pkg, source, true, true).await
}

/// Installs a package's files and version rows beside the active version without activating
/// it (the first half of an upgrade; see [`super::lifecycle`]).
pub async fn stage(
    ctx: &Plugins,
    pkg: PluginPackage,
    source: InstallSource,
) -> Result<InstallReport, InstallError> {
    install_with(ctx, pkg, source, false, false).await
}

async fn install_with(
    ctx: &Plugins,
    pkg: PluginPackage,
    source: InstallSource,
    activate: bool,
    replace: bool,
) -> Result<InstallReport, InstallError> {
    let started = Instant::now();
    let id = pkg.manifest.id.clone();
    let result = install_inner(ctx, &pkg, &source, activate, replace).await;
    let (status, detail) = match &result {
        Ok(r) => (
            "ok",
            serde_json::json!({ "source": source.kind, "checksum": r.checksum, "apiVersion": r.api_version, "activated": activate }),
        ),
        Err(e @ InstallError::Refused(_)) => (
            "blocked",
            serde_json::json!({ "source": source.kind, "reason": e.to_string(), "trustMode": ctx.config.trust.mode.as_str() }),
        ),
        Err(e) => (
            "error",
            serde_json::json!({ "source": source.kind, "error": e.to_string() }),
        ),
    };
    ctx.receipts.emit(
        Receipt::new(&id, if replace { "reload" } else { "install" }, status)
            .version(&pkg.manifest.version)
            .duration(started.elapsed())
            .detail(detail),
    );
    result
}

/// Compiles the component (cached by digest) and checks it against its manifest; returns the
/// WIT API version it targets.
async fn validate(ctx: &Plugins, pkg: &PluginPackage) -> Result<String, InstallError> {
    let runtime = ctx.runtime.clone();
    let (manifest, wasm) = (pkg.manifest.clone(), pkg.wasm.clone());
    let loaded =
        tokio::task::spawn_blocking(move || runtime.load(&manifest, &wasm, &Grants::default()))
            .await
            .map_err(|e| std::io::Error::other(format!("validation task failed: {e}")))??;
    Ok(loaded.api_version.clone())
}

/// Refuses a third-party package that declares an integration type a built-in plugin provides,
/// or one another installed plugin declares (whether or not it is enabled).
async fn check_integration_types(ctx: &Plugins, m: &Manifest) -> Result<(), InstallError> {
    let builtin = super::bundled::builtin_integration_types();
    let installed = ctx.store.list_plugins().await?;
    for t in &m.contributes.integrations {
        if let Some((_, owner)) = builtin.iter().find(|(bt, owner)| bt == t && owner != &m.id) {
            return Err(InstallError::IntegrationTypeTaken(format!(
                "integration type {t:?} is provided by the built-in plugin {owner}; a third-party plugin cannot provide it (choose another type name)"
            )));
        }
        let other = installed.iter().find(|row| {
            row.id != m.id
                && Manifest::parse(row.manifest_json.as_bytes())
                    .is_ok_and(|o| o.contributes.integrations.contains(t))
        });
        if let Some(row) = other {
            return Err(InstallError::IntegrationTypeTaken(format!(
                "integration type {t:?} is already provided by the installed plugin {}; uninstall it first or choose another type name",
                row.id
            )));
        }
    }
    Ok(())
}

async fn install_inner(
    ctx: &Plugins,
    pkg: &PluginPackage,
    source: &InstallSource,
    activate: bool,
    replace: bool,
) -> Result<InstallReport, InstallError> {
    let m = &pkg.manifest;
    if activate
        && source.kind != "builtin"
        && let Some(installed) = ctx
            .store
            .get_plugin(&m.id)
            .await?
            .and_then(|p| p.current_version)
            .filter(|v| v != &m.version)
    {
        return Err(InstallError::AlreadyInstalled {
            id: m.id.clone(),
            installed,
            version: m.version.clone(),
        });
    }
    // 1. Trust policy, then validate: compile (cached by digest), check exports/imports and
    //    contributions.
    let trust_level = if source.kind == "builtin" {
        super::trust::TrustLevel::Builtin
    } else {
        ctx.config
            .trust
            .check_package(pkg, source.kind)
            .map_err(InstallError::Refused)?
            .level
    };
    if source.kind != "builtin" {
        check_integration_types(ctx, m).await?;
    }
    let api_version = validate(ctx, pkg).await?;
    let point = |name: &str| {
        if activate && source.kind != "builtin" {
            crate::crashpoint::reach(name);
        }
    };
    point("install.validated");

    // 2. Files: staging, then one rename into the immutable version directory.
    let dir = version_dir(&ctx.config.plugins_dir, &m.id, &m.version);
    let existing = std::fs::read_to_string(dir.join(CHECKSUM_FILE)).ok();
    let same = existing.as_deref().map(str::trim) == Some(pkg.digest.as_str());
    if dir.exists() && !same && source.kind != "builtin" && !replace {
        return Err(InstallError::VersionConflict {
            id: m.id.clone(),
            version: m.version.clone(),
        });
    }
    if !same {
        // Built-ins are part of the binary: a rebuilt built-in replaces its version directory.
        let staging = ctx
            .config
            .staging_dir
            .join(uuid::Uuid::new_v4().to_string());
        write_version_files(&staging, pkg)?;
        point("install.staged");
        std::fs::create_dir_all(dir.parent().expect("version dir has a parent"))?;
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        if let Err(e) = std::fs::rename(&staging, &dir) {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e.into());
        }
        point("install.version_dir");
    }
    let path = dir.to_string_lossy().into_owned();
    let manifest_json = serde_json::to_string(m).expect("manifest serializes");
    let signature_json = super::trust::TrustPolicy::stored_signature(pkg)
        .map(|s| serde_json::to_string(&s).expect("signature serializes"));
    let source_json = source.to_json().to_string();
    let record = InstallRecord {
        plugin_id: &m.id,
        name: &m.name,
        trust_level: trust_level.as_str(),
        source_kind: source.kind,
        source_ref: source.reference.as_deref(),
        version: &m.version,
        checksum: &pkg.digest,
        install_path: &path,
        manifest_json: &manifest_json,
        api_version: &api_version,
        wasm: &pkg.wasm,
        signature_json: signature_json.as_deref(),
        source_json: Some(&source_json),
    };
    if !activate {
        ctx.store.record_version(&record).await?;
        return Ok(InstallReport {
            plugin_id: m.id.clone(),
            version: m.version.clone(),
            checksum: pkg.digest.clone(),
            install_path: path,
            api_version: api_version.clone(),
            disclosures: m.disclosures(),
        });
    }
    set_current(&ctx.config.plugins_dir.join(&m.id), &m.version)?;
    point("install.current");

    // 3. Database: plugin, version + artifact, one disclosure row per declared capability.
    ctx.store.record_install(&record).await?;
    let _ = std::fs::remove_file(ctx.config.plugins_dir.join(&m.id).join(UNINSTALLED_MARKER));
    let disclosures = m.disclosures();
    ctx.store.ensure_disclosures(&m.id, &disclosures).await?;
    Ok(InstallReport {
        plugin_id: m.id.clone(),
        version: m.version.clone(),
        checksum: pkg.digest.clone(),
        install_path: path,
        api_version: api_version.clone(),
        disclosures,
    })
}

fn write_version_files(staging: &Path, pkg: &PluginPackage) -> std::io::Result<()> {
    let entry = staging.join(pkg.manifest.entry.trim_start_matches("./"));
    std::fs::create_dir_all(entry.parent().expect("entry has a parent"))?;
    for (path, data) in [
        (staging.join(MANIFEST_FILE), pkg.manifest_json.as_slice()),
        (entry, pkg.wasm.as_slice()),
        (staging.join(CHECKSUM_FILE), pkg.digest.as_bytes()),
    ] {
        let f = std::fs::File::create(&path)?;
        std::io::Write::write_all(&mut &f, data)?;
        f.sync_all()?;
    }
    for (rel, data) in &pkg.files {
        // Paths were read from a directory walk under `skills/`; check again before writing.
        if !nitejar_sandbox::manifest::safe_relative_path(rel) {
            continue;
        }
        let path = staging.join(rel);
        std::fs::create_dir_all(path.parent().expect("file has a parent"))?;
        std::fs::write(&path, data)?;
    }
    Ok(())
}

/// Points `<plugin>/current` at `versions/<version>` atomically (new link renamed over the old).
pub fn set_current(plugin_dir: &Path, version: &str) -> std::io::Result<()> {
    let tmp = plugin_dir.join(format!(".current-{}", uuid::Uuid::new_v4()));
    #[cfg(unix)]
    std::os::unix::fs::symlink(Path::new("versions").join(version), &tmp)?;
    #[cfg(not(unix))]
    std::fs::write(&tmp, format!("versions/{version}"))?;
    std::fs::rename(&tmp, plugin_dir.join("current"))
}

/// Makes `<plugin>/current` point at `version` when it does not already (boot uses it so the
/// pointer always agrees with the database, whatever a crash interrupted).
pub fn ensure_current(plugin_dir: &Path, version: &str) -> std::io::Result<bool> {
    let want = Path::new("versions").join(version);
    #[cfg(unix)]
    let have = std::fs::read_link(plugin_dir.join("current")).ok();
    #[cfg(not(unix))]
    let have = std::fs::read_to_string(plugin_dir.join("current"))
        .ok()
        .map(PathBuf::from);
    if have.as_deref() == Some(want.as_path()) || !plugin_dir.exists() {
        return Ok(false);
    }
    set_current(plugin_dir, version)?;
    Ok(true)
}

/// Reads the active component of an installed version, verifying its checksum; re-materializes
/// the files from the stored artifact when they are missing or do not match.
pub async fn read_verified_component(
    store: &dyn nitejar_store::Store,
    config: &super::PluginSettings,
    id: &str,
    version: &str,
    manifest: &nitejar_sandbox::manifest::Manifest,
    checksum: &str,
) -> Result<Vec<u8>, String> {
    let dir = version_dir(&config.plugins_dir, id, version);
    let entry = dir.join(manifest.entry.trim_start_matches("./"));
    if let Ok(bytes) = std::fs::read(&entry) {
        if super::package::sha256_hex(&bytes) == checksum {
            return Ok(bytes);
        }
        tracing::warn!(
            plugin.id = id,
            "component file {} does not match its checksum; restoring it",
            entry.display()
        );
    }
    let (stored_checksum, bytes) = store
        .get_artifact(id, version)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{id} {version}: component file missing and no stored artifact"))?;
    if stored_checksum != checksum || super::package::sha256_hex(&bytes) != checksum {
        return Err(format!(
            "{id} {version}: the stored artifact does not match the recorded checksum; refusing to load it"
        ));
    }
    let pkg = super::package::PluginPackage::from_parts(
        serde_json::to_vec(manifest).map_err(|e| e.to_string())?,
        bytes.clone(),
    )
    .map_err(|e| e.to_string())?;
    let staging = config.staging_dir.join(uuid::Uuid::new_v4().to_string());
    write_version_files(&staging, &pkg).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.parent().expect("version dir has a parent"))
        .map_err(|e| e.to_string())?;
    std::fs::rename(&staging, &dir).map_err(|e| e.to_string())?;
    Ok(bytes)
}

/// What the operator reviews before installing (or upgrading to) a package: identity, declared
/// permissions, contributions, the trust verdict and, when the plugin is installed, the
/// permission diff. The component is fully validated (compiled and checked against its
/// manifest), so a package that previews cleanly installs cleanly; nothing is written.
pub async fn preview(
    ctx: &Plugins,
    pkg: &PluginPackage,
    source: &InstallSource,
) -> Result<Preview, InstallError> {
    let m = &pkg.manifest;
    check_integration_types(ctx, m).await?;
    let api_version = validate(ctx, pkg).await?;
    let signed = pkg.signature.is_some();
    let mode = ctx.config.trust.mode.as_str().to_string();
    let trust = match ctx.config.trust.check_package(pkg, source.kind) {
        Ok(v) => TrustVerdict {
            mode,
            allowed: true,
            level: Some(v.level.as_str().into()),
            basis: Some(v.basis.into()),
            reason: None,
            signed,
        },
        Err(reason) => TrustVerdict {
            mode,
            allowed: false,
            level: None,
            basis: None,
            reason: Some(reason),
            signed,
        },
    };
    let declared = m.disclosures();
    let installed = ctx.store.get_plugin(&m.id).await?;
    let (action, installed_state, permission_diff) = match &installed {
        None => ("install", None, None),
        Some(row) => {
            let granted = ctx.store.granted_permissions(&m.id).await?;
            let old: std::collections::BTreeSet<String> =
                nitejar_sandbox::manifest::Manifest::parse(row.manifest_json.as_bytes())
                    .map(|m| m.disclosures().into_iter().collect())
                    .unwrap_or_default();
            let new: std::collections::BTreeSet<String> = declared.iter().cloned().collect();
            let current = row.current_version.clone().unwrap_or_default();
            let action = match (
                semver::Version::parse(&m.version),
                semver::Version::parse(&current),
            ) {
                _ if current == m.version => "reinstall",
                (Ok(a), Ok(b)) if a > b => "upgrade",
                _ => "older_version",
            };
            (
                action,
                Some(InstalledState {
                    version: current,
                    enabled: row.enabled,
                }),
                Some(PermissionDiff {
                    added: new.difference(&granted).cloned().collect(),
                    removed: old.difference(&new).cloned().collect(),
                }),
            )
        }
    };
    let consent_text = format!(
        "{} runs as a sandboxed WebAssembly component. It can only use the permissions you grant: {}. Enable it only if you trust its author with them.",
        m.name,
        if declared.is_empty() {
            "none declared".to_string()
        } else {
            declared.join(", ")
        }
    );
    Ok(Preview {
        plugin_id: m.id.clone(),
        name: m.name.clone(),
        version: m.version.clone(),
        description: m.description.clone(),
        author: m.author.clone(),
        license: m.license.clone(),
        homepage: m.homepage.clone(),
        checksum: pkg.digest.clone(),
        api_version,
        engine: EngineRange {
            nitejar: m.engine.nitejar.clone(),
            node: m.engine.node.clone(),
        },
        source: source.info(),
        permissions: declared,
        contributes: super::declarations(m).1,
        trust,
        action: action.into(),
        installed: installed_state,
        permission_diff,
        execution_mode: crate::receipts::EXECUTION_MODE.into(),
        consent_text,
    })
}

/// Boot-time repair after a crash: empties `_staging`, removes plugin directories with no
/// plugin row (an install killed before its database write; not the files an uninstall kept,
/// see [`UNINSTALLED_MARKER`]) and version directories with no version row, and recreates missing disclosure rows of active manifests, so files and
/// database agree. Returns what it removed (for the startup receipt).
pub async fn reconcile(ctx: &Plugins) -> Result<Vec<String>, InstallError> {
    let mut removed = Vec::new();
    let config = &ctx.config;
    if let Ok(entries) = std::fs::read_dir(&config.staging_dir) {
        for e in entries.flatten() {
            let path = e.path();
            let gone = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            if gone.is_ok() {
                removed.push(path.display().to_string());
            }
        }
    }
    let plugins = ctx.store.list_plugins().await?;
    for row in &plugins {
        if let Ok(m) = nitejar_sandbox::manifest::Manifest::parse(row.manifest_json.as_bytes()) {
            ctx.store
                .ensure_disclosures(&row.id, &m.disclosures())
                .await?;
        }
    }
    let Ok(entries) = std::fs::read_dir(&config.plugins_dir) else {
        return Ok(removed);
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        // Only directories in the layout this module writes (`<id>/versions`, `<id>/current`).
        let managed = path.join("versions").is_dir();
        if !managed || path == config.staging_dir || path == config.cache_dir {
            continue;
        }
        if !plugins.iter().any(|p| p.id == name) {
            if path.join(UNINSTALLED_MARKER).exists() {
                continue;
            }
            if std::fs::remove_dir_all(&path).is_ok() {
                removed.push(path.display().to_string());
            }
            continue;
        }
        let known: Vec<String> = ctx
            .store
            .list_versions(&name)
            .await?
            .into_iter()
            .map(|v| v.version)
            .collect();
        for v in std::fs::read_dir(path.join("versions"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let version = v.file_name().to_string_lossy().into_owned();
            if !known.contains(&version) && std::fs::remove_dir_all(v.path()).is_ok() {
                removed.push(v.path().display().to_string());
            }
        }
    }
    for r in &removed {
        tracing::warn!("removed {r}: left by an interrupted install");
    }
    Ok(removed)
}
