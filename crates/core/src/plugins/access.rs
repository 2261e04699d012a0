//! Enable, disable, grants and secrets: the rules an operator's consent goes through (spec
//! §15: consent for third-party plugins, grants required by the trust mode, safe mode, the
//! crash-loop alert cleared by an explicit enable). Every decision leaves a receipt; the HTTP
//! layer only maps [`LifecycleError`] to a status.

use super::Plugins;
use super::lifecycle::LifecycleError;
use crate::receipts::Receipt;
use nitejar_sandbox::manifest::Manifest;
use nitejar_store::PluginRow;
use serde_json::json;
use std::time::Instant;

/// The plugin row of `id`, or [`LifecycleError::NotInstalled`].
pub async fn installed(ctx: &Plugins, id: &str) -> Result<PluginRow, LifecycleError> {
    ctx.store
        .get_plugin(id)
        .await?
        .ok_or_else(|| LifecycleError::NotInstalled(id.to_string()))
}

/// A lifecycle receipt for `row`: its active version and the time since `started`.
fn action_receipt(row: &PluginRow, kind: &str, status: &str, started: Instant) -> Receipt {
    let r = Receipt::new(&row.id, kind, status).duration(started.elapsed());
    match &row.current_version {
        Some(v) => r.version(v),
        None => r,
    }
}

/// Reloads `id` when it is in service, so a new grant or secret takes effect at once.
async fn reload_if_loaded(ctx: &Plugins, id: &str) {
    if ctx.registry.get(id).is_some() {
        let _ = ctx.registry.activate(id).await;
    }
}

/// Enables `id` and puts it in service; returns the version that loaded.
///
/// A third-party plugin needs `consent`; in a trust mode that requires grants, every declared
/// permission must be granted first; in safe mode only built-ins are enabled. Enabling clears a
/// crash-loop alert. A plugin that fails to load stays disabled.
pub async fn enable(ctx: &Plugins, id: &str, consent: bool) -> Result<String, LifecycleError> {
    let started = Instant::now();
    let row = installed(ctx, id).await?;
    let third_party = !row.is_builtin();
    if third_party && !consent {
        return Err(LifecycleError::Invalid(
            "enabling a third-party plugin needs explicit consent: send {\"consent\": true} after reviewing its permissions".into(),
        ));
    }
    let mode = ctx.config.trust.mode;
    if third_party && mode.grants_required() {
        let missing: Vec<String> = ctx
            .store
            .list_disclosures(id)
            .await?
            .into_iter()
            .filter(|d| !d.acknowledged)
            .map(|d| d.permission)
            .collect();
        if !missing.is_empty() {
            ctx.receipts.emit(
                action_receipt(&row, "enable", "blocked", started).detail(json!({
                    "reason": "permissions not granted", "missing": missing,
                    "trustMode": mode.as_str(),
                })),
            );
            return Err(LifecycleError::GrantsRequired(format!(
                "trust mode {} requires every declared permission to be granted before enable; not granted: {}",
                mode.as_str(),
                missing.join(", ")
            )));
        }
    }
    if ctx.config.safe_mode && third_party {
        ctx.receipts.emit(
            action_receipt(&row, "enable", "blocked", started)
                .detail(json!({ "reason": "safe mode: only built-in plugins are loaded" })),
        );
        return Err(LifecycleError::SafeMode(
            "the host runs in safe mode (NITEJAR_SAFE_MODE=1, or SLOPBOT_SAFE_MODE=1): only built-in plugins are loaded; restart without it to enable third-party plugins".into(),
        ));
    }
    ctx.store.set_plugin_enabled(id, true).await?;
    ctx.store.set_plugin_alert(id, None).await?;
    ctx.crash_guard.clear(id);
    let result = ctx.registry.activate(id).await;
    let status = if result.is_ok() { "ok" } else { "error" };
    ctx.receipts.emit(
        action_receipt(&row, "enable", status, started).detail(json!({ "consent": consent })),
    );
    match result {
        Ok(p) => Ok(p.version().to_string()),
        Err(e) => {
            ctx.store.set_plugin_enabled(id, false).await?;
            Err(LifecycleError::LoadFailed(e))
        }
    }
}

/// Disables `id`: new calls stop reaching it at once (calls in flight finish).
pub async fn disable(ctx: &Plugins, id: &str) -> Result<(), LifecycleError> {
    let started = Instant::now();
    let row = installed(ctx, id).await?;
    ctx.store.set_plugin_enabled(id, false).await?;
    // The operator has acted on a crash-loop alert: its held handlers are released, here and
    // at the next boot.
    ctx.store.set_plugin_alert(id, None).await?;
    ctx.registry.deactivate(id);
    ctx.receipts
        .emit(action_receipt(&row, "disable", "ok", started));
    Ok(())
}

/// Grants declared permissions of `id` (each must be one it declares); returns how many changed.
pub async fn grant(ctx: &Plugins, id: &str, permissions: &[String]) -> Result<u64, LifecycleError> {
    change_grants(ctx, id, permissions, true).await
}

/// Withdraws grants of `id` (each must be one it declares); returns how many changed. A loaded
/// plugin is reloaded at once, so the sandbox stops allowing what was revoked.
pub async fn revoke(
    ctx: &Plugins,
    id: &str,
    permissions: &[String],
) -> Result<u64, LifecycleError> {
    change_grants(ctx, id, permissions, false).await
}

/// Grants (`granted`) or revokes declared permissions, with a receipt, and reloads a loaded
/// plugin so its sandbox follows at once.
async fn change_grants(
    ctx: &Plugins,
    id: &str,
    permissions: &[String],
    granted: bool,
) -> Result<u64, LifecycleError> {
    let started = Instant::now();
    let row = installed(ctx, id).await?;
    let known = ctx.store.list_disclosures(id).await?;
    if let Some(unknown) = permissions
        .iter()
        .find(|p| !known.iter().any(|k| &k.permission == *p))
    {
        return Err(LifecycleError::Invalid(format!(
            "{unknown:?} is not a permission {id} declares"
        )));
    }
    let (changed, kind) = if granted {
        (ctx.store.acknowledge(id, permissions).await?, "grant")
    } else {
        (ctx.store.revoke(id, permissions).await?, "revoke")
    };
    let key = if granted { "granted" } else { "revoked" };
    ctx.receipts
        .emit(action_receipt(&row, kind, "ok", started).detail(json!({ key: permissions })));
    reload_if_loaded(ctx, id).await;
    Ok(changed)
}

/// The permissions each plugin's active version declares and the operator has not granted,
/// for the plugins that have any (a disclosure row left by a pending upgrade or by an older
/// version is not counted: only what the active manifest declares).
pub async fn ungranted(
    ctx: &Plugins,
) -> Result<std::collections::BTreeMap<String, Vec<String>>, LifecycleError> {
    let granted: std::collections::HashSet<(String, String)> =
        ctx.store.all_grants().await?.into_iter().collect();
    let mut out = std::collections::BTreeMap::new();
    for row in ctx.store.list_plugins().await? {
        let Ok(manifest) = Manifest::parse(row.manifest_json.as_bytes()) else {
            continue;
        };
        let missing: Vec<String> = manifest
            .disclosures()
            .into_iter()
            .filter(|p| !granted.contains(&(row.id.clone(), p.clone())))
            .collect();
        if !missing.is_empty() {
            out.insert(row.id, missing);
        }
    }
    Ok(out)
}

/// Stores the value of a secret `id` declares (encrypted at rest; never echoed or logged).
pub async fn set_secret(
    ctx: &Plugins,
    id: &str,
    key: &str,
    value: &str,
) -> Result<(), LifecycleError> {
    let started = Instant::now();
    let row = installed(ctx, id).await?;
    let manifest = Manifest::parse(row.manifest_json.as_bytes()).map_err(|e| {
        LifecycleError::Conflict(format!("the stored manifest of {id} is unreadable: {e}"))
    })?;
    if !manifest.permissions.secrets.iter().any(|s| s == key) {
        return Err(LifecycleError::Invalid(format!(
            "{id} does not declare the secret {key:?}"
        )));
    }
    ctx.store
        .set_secret(id, key, &ctx.secrets.encrypt(value))
        .await?;
    ctx.receipts
        .emit(action_receipt(&row, "secret_set", "ok", started).detail(json!({ "key": key })));
    reload_if_loaded(ctx, id).await;
    Ok(())
}

/// Disables a plugin the crash guard tripped on: out of the registry (no new calls), disabled
/// in the store with an alert, and an `auto_disable` receipt. Enabling it again clears it.
pub async fn disable_after_crash_loop(ctx: &Plugins, id: &str, failures: usize) {
    let version = ctx.registry.get(id).map(|p| p.version().to_string());
    let held = ctx.registry.hold(id);
    let window_ms = ctx.crash_guard.window().as_millis() as u64;
    let alert = nitejar_api::plugins::PluginAlert {
        kind: "crash_loop".into(),
        message: crash_loop_message(failures, window_ms, held),
        failures: failures as u64,
        threshold: ctx.crash_guard.threshold() as u64,
        window_ms,
        at: nitejar_store::now_ms(),
    };
    let alert = serde_json::to_value(&alert).expect("an alert serializes");
    let stored = alert.to_string();
    // The receipt is queued before the row shows the plugin disabled, so anyone who sees it
    // disabled and then flushes the receipts finds the `auto_disable` receipt.
    let mut r = Receipt::new(id, "auto_disable", "error").detail(alert);
    if let Some(v) = version {
        r = r.version(&v);
    }
    ctx.receipts.emit(r);
    if let Err(e) = ctx.store.set_plugin_alert(id, Some(&stored)).await {
        tracing::error!(plugin.id = id, "recording the auto-disable failed: {e}");
    }
    tracing::warn!(
        plugin.id = id,
        failures,
        "crash-loop protection disabled the plugin"
    );
}

/// The alert of a crash-loop disable; says what its held fail-closed handlers do meanwhile.
pub fn crash_loop_message(failures: usize, window_ms: u64, held: usize) -> String {
    let mut msg = format!(
        "disabled after {failures} failures within {} s; see its receipts, fix or roll back, then enable it again",
        window_ms / 1000
    );
    if held > 0 {
        msg.push_str(&format!(
            ". Its {held} fail-closed handler(s) of blocking hooks stay in place and block their operations until you enable, disable or uninstall it"
        ));
    }
    msg
}

/// Sets (or with `None` clears) the operator's instruction budget per call for `id`, within
/// the host's maximum; a loaded plugin is reloaded so the budget applies at once.
pub async fn set_fuel_override(
    ctx: &Plugins,
    id: &str,
    fuel: Option<u64>,
) -> Result<(), LifecycleError> {
    let started = Instant::now();
    let row = installed(ctx, id).await?;
    let max = nitejar_sandbox::limits::MAX_FUEL_PER_CALL;
    if let Some(f) = fuel
        && !(1..=max).contains(&f)
    {
        return Err(LifecycleError::Invalid(format!(
            "fuelPerCall must be between 1 and {max} (got {f})"
        )));
    }
    ctx.store.set_fuel_override(id, fuel).await?;
    ctx.receipts.emit(
        action_receipt(&row, "limits_set", "ok", started).detail(json!({ "fuelPerCall": fuel })),
    );
    reload_if_loaded(ctx, id).await;
    Ok(())
}
