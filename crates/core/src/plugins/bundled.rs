//! Plugins bundled in the binary: built from source in `plugins-examples/` by `crates/core/build.rs`,
//! embedded, and installed at boot through exactly the same installer, sandbox and receipts as
//! any third-party plugin (they only skip the operator's consent, being part of the binary).

use super::installer::{InstallSource, install};
use super::package::PluginPackage;
use crate::plugins::Plugins;

include!(concat!(env!("OUT_DIR"), "/bundled.rs"));

/// Where the build placed every guest package, bundled or not (tests and benches install the
/// test plugins from here).
pub const GUEST_PACKAGES_DIR: &str = env!("NITEJAR_GUEST_PACKAGES_DIR");

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
    Ok(ids)
}
