//! The registry of loaded (enabled, compiled, validated) plugins and their integration types.
//!
//! Lookups take a read lock and clone an `Arc`, so a call in flight keeps the version it
//! started with even if the plugin is reloaded or disabled meanwhile.

use super::installer::read_verified_component;
use super::manifest::Manifest;
use crate::app::App;
use crate::receipts::Receipt;
use crate::runtime::{Grants, LoadedPlugin};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// Loaded plugins by id.
#[derive(Default)]
pub struct PluginRegistry {
    plugins: RwLock<HashMap<String, Arc<LoadedPlugin>>>,
}

impl PluginRegistry {
    /// The loaded plugin `id`.
    pub fn get(&self, id: &str) -> Option<Arc<LoadedPlugin>> {
        self.plugins.read().expect("registry lock").get(id).cloned()
    }

    /// The loaded plugin providing `integration_type`.
    pub fn by_integration_type(&self, integration_type: &str) -> Option<Arc<LoadedPlugin>> {
        self.plugins
            .read()
            .expect("registry lock")
            .values()
            .find(|p| p.descriptor(integration_type).is_some())
            .cloned()
    }

    /// Ids of loaded plugins.
    pub fn loaded_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .plugins
            .read()
            .expect("registry lock")
            .keys()
            .cloned()
            .collect();
        ids.sort();
        ids
    }

    /// Removes a plugin from service (new calls no longer reach it).
    pub fn deactivate(&self, id: &str) -> bool {
        self.plugins
            .write()
            .expect("registry lock")
            .remove(id)
            .is_some()
    }

    /// Loads the current version of `id` with its grants and puts it in service.
    /// A failure is recorded on the plugin row and as a `load` receipt; it never panics.
    pub async fn activate(&self, app: &App, id: &str) -> Result<Arc<LoadedPlugin>, String> {
        let started = Instant::now();
        let result = self.activate_inner(app, id).await;
        let (status, detail, version) = match &result {
            Ok(p) => (
                "ok",
                serde_json::json!({ "cache": format!("{:?}", p.cache), "apiVersion": p.api_version }),
                Some(p.version().to_string()),
            ),
            Err(e) => ("error", serde_json::json!({ "error": e }), None),
        };
        let _ = app
            .db
            .set_plugin_load_error(id, result.as_ref().err().map(String::as_str))
            .await;
        let mut r = Receipt::new(id, "load", status)
            .duration(started.elapsed())
            .detail(detail);
        if let Some(v) = version {
            r = r.version(&v);
        }
        app.receipts.emit(r);
        result
    }

    async fn activate_inner(&self, app: &App, id: &str) -> Result<Arc<LoadedPlugin>, String> {
        let row = app
            .db
            .get_plugin(id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("plugin {id} is not installed"))?;
        let (Some(version), Some(checksum)) =
            (row.current_version.clone(), row.current_checksum.clone())
        else {
            return Err(format!("plugin {id} has no active version"));
        };
        let manifest = Manifest::parse(row.manifest_json.as_bytes()).map_err(|e| e.to_string())?;
        let wasm = read_verified_component(app, id, &version, &manifest, &checksum).await?;
        let grants = grants_for(app, &manifest).await?;
        for t in &manifest.contributes.integrations {
            if let Some(other) = self.by_integration_type(t).filter(|p| p.id() != id) {
                return Err(format!(
                    "integration type {t:?} is already provided by {}",
                    other.id()
                ));
            }
        }
        let runtime = app.runtime.clone();
        let loaded = tokio::task::spawn_blocking(move || runtime.load(&manifest, &wasm, &grants))
            .await
            .map_err(|e| format!("load task failed: {e}"))?
            .map_err(|e| e.to_string())?;
        let loaded = Arc::new(loaded);
        self.plugins
            .write()
            .expect("registry lock")
            .insert(id.to_string(), loaded.clone());
        Ok(loaded)
    }
}

/// The operator's grants for a plugin, with its secret values decrypted.
async fn grants_for(app: &App, manifest: &Manifest) -> Result<Grants, String> {
    let acks = app
        .db
        .list_disclosures(&manifest.id)
        .await
        .map_err(|e| e.to_string())?;
    let permissions = acks
        .into_iter()
        .filter(|a| a.acknowledged)
        .map(|a| a.permission)
        .collect();
    let mut secret_values = std::collections::BTreeMap::new();
    for (key, enc) in app
        .db
        .list_secrets(&manifest.id)
        .await
        .map_err(|e| e.to_string())?
    {
        let value = app
            .secrets
            .decrypt(&enc)
            .map_err(|e| format!("secret {key}: {e}"))?;
        secret_values.insert(key, value);
    }
    Ok(Grants {
        permissions,
        secret_values,
    })
}
