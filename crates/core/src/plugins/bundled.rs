//! Plugins bundled in the binary: built from source in `plugins-examples/` by `crates/core/build.rs`,
//! embedded, and installed at boot through exactly the same installer, sandbox and receipts as
//! any third-party plugin (they only skip the operator's consent, being part of the binary).
//!
//! Built-in means embedded: `crates/core/build.rs` embeds the built-in integrations (generic
//! webhook, Telegram, GitHub) and nothing else. The example hooks plugin and the test plugins
//! are packages beside the binary, installed and consented to like any other.

use super::installer::{InstallSource, install};
use super::package::PluginPackage;
use crate::plugins::Plugins;

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// Where the build placed every guest package, bundled or not (tests and benches install the
/// test plugins from here).
pub const GUEST_PACKAGES_DIR: &str = env!("NITEJAR_GUEST_PACKAGES_DIR");

/// The integration types the bundled (built-in) plugins provide, with the id of the plugin that
/// provides each: reserved, so a third-party plugin can never take one.
pub fn builtin_integration_types() -> &'static [(String, String)] {
    static TYPES: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();
    TYPES.get_or_init(|| {
        BUNDLED
            .iter()
            .filter_map(|(_, manifest, _)| {
                nitejar_sandbox::manifest::Manifest::parse(manifest.as_bytes()).ok()
            })
            .flat_map(|m| {
                let id = m.id.clone();
                m.contributes
                    .integrations
                    .into_iter()
                    .map(move |t| (t, id.clone()))
            })
            .collect()
    })
}

/// Installs (or confirms) every bundled plugin and enables it with its declared permissions.
pub async fn register_all(ctx: &Plugins) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    for (name, manifest, wasm) in BUNDLED {
        let pkg = PluginPackage::from_parts(manifest.as_bytes().to_vec(), wasm.to_vec())
            .map_err(|e| anyhow::anyhow!("bundled plugin {name}: {e}"))?;
        let id = pkg.manifest.id.clone();
        let current = ctx.store.get_plugin(&id).await?;
        if current.as_ref().and_then(|p| p.current_checksum.as_deref()) != Some(pkg.digest.as_str())
        {
            let source = InstallSource {
                kind: "builtin",
                reference: Some(format!("bundled:{name}")),
                commit: None,
            };
            install(ctx, pkg.clone(), source).await?;
            ctx.store
                .acknowledge(&id, &pkg.manifest.disclosures())
                .await?;
            if current.is_none() {
                ctx.store.set_plugin_enabled(&id, true).await?;
            }
        }
        ids.push(id);
    }
    demote_former_builtins(ctx, &ids).await?;
    Ok(ids)
}

/// A plugin recorded as built in whose package this binary does not embed (an earlier version
/// shipped it, e.g. the example hooks plugin) is built in no longer: it becomes untrusted and
/// disabled, with an alert, until the operator reviews and enables it like any installed plugin.
async fn demote_former_builtins(ctx: &Plugins, bundled: &[String]) -> anyhow::Result<()> {
    for row in ctx.store.list_plugins().await? {
        if !row.is_builtin() || bundled.contains(&row.id) {
            continue;
        }
        let alert = nitejar_api::plugins::PluginAlert {
            kind: "no_longer_builtin".into(),
            message: "an earlier version of the host shipped this plugin as built in; this one \
                      does not, so it was disabled: review its permissions and enable it to use it"
                .into(),
            failures: 0,
            threshold: 0,
            window_ms: 0,
            at: nitejar_store::now_ms(),
        };
        let alert = serde_json::to_string(&alert).expect("an alert serializes");
        if !ctx.store.demote_builtin(&row.id, &alert).await? {
            continue;
        }
        tracing::warn!(
            plugin.id = %row.id,
            "no longer built in: disabled until the operator reviews and enables it"
        );
    }
    Ok(())
}
