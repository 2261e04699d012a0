//! Integration instances: configured connections of an integration type.
//!
//! Config is validated by the plugin's `validate-config` in the sandbox; fields the descriptor
//! marks sensitive are stored AES-256-GCM encrypted inside the config JSON and redacted in every
//! API response.

use crate::app::App;
use crate::runtime::bindings::exports::nitejar::plugin::integration::Descriptor;
use serde_json::{Map, Value};

/// What the operator sees instead of a sensitive value.
pub const REDACTED: &str = "********";

/// Why an instance could not be created.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// No enabled plugin provides the type.
    #[error("no enabled plugin provides integration type {0:?}")]
    UnknownType(String),
    /// The config is not acceptable; each entry is a problem to fix.
    #[error("invalid config: {}", .0.join("; "))]
    InvalidConfig(Vec<String>),
    /// The plugin failed while validating.
    #[error("the plugin failed to validate the config: {0}")]
    Plugin(String),
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
}

/// Encrypts the sensitive fields of `config`.
pub fn encrypt_config(
    app: &App,
    mut config: Map<String, Value>,
    descriptor: &Descriptor,
) -> String {
    for field in &descriptor.sensitive_fields {
        if let Some(Value::String(v)) = config.get(field) {
            let enc = app.secrets.encrypt(v);
            config.insert(field.clone(), Value::String(enc));
        }
    }
    Value::Object(config).to_string()
}

/// The config JSON with sensitive fields decrypted (for the plugin only).
pub fn decrypt_config(
    app: &App,
    stored: &str,
    descriptor: Option<&Descriptor>,
) -> Result<String, crate::crypto::CryptoError> {
    let mut config: Map<String, Value> = serde_json::from_str(stored).unwrap_or_default();
    if let Some(d) = descriptor {
        for field in &d.sensitive_fields {
            if let Some(Value::String(v)) = config.get(field) {
                let plain = app.secrets.decrypt(v)?;
                config.insert(field.clone(), Value::String(plain));
            }
        }
    }
    Ok(Value::Object(config).to_string())
}

/// The config with sensitive fields replaced by [`REDACTED`].
pub fn redacted_config(stored: &str, sensitive: &[String]) -> Value {
    let mut config: Map<String, Value> = serde_json::from_str(stored).unwrap_or_default();
    for field in sensitive {
        if config.contains_key(field) {
            config.insert(field.clone(), Value::String(REDACTED.into()));
        }
    }
    Value::Object(config)
}

/// Validates and creates an instance; returns its id.
pub async fn create(
    app: &App,
    integration_type: &str,
    name: &str,
    config: Map<String, Value>,
) -> Result<String, InstanceError> {
    let plugin = app
        .registry
        .by_integration_type(integration_type)
        .ok_or_else(|| InstanceError::UnknownType(integration_type.into()))?;
    let descriptor = plugin
        .descriptor(integration_type)
        .expect("registry matched the type")
        .clone();
    let runtime = app.runtime.clone();
    let timeout_ms = app.config.integration_timeout_ms;
    let (p, t, c) = (
        plugin.clone(),
        integration_type.to_string(),
        Value::Object(config.clone()).to_string(),
    );
    let verdict =
        tokio::task::spawn_blocking(move || runtime.validate_config(&p, &t, &c, timeout_ms))
            .await
            .map_err(|e| InstanceError::Plugin(e.to_string()))?;
    match verdict {
        Ok(Ok(())) => {}
        Ok(Err(problems)) => return Err(InstanceError::InvalidConfig(problems)),
        Err(f) => return Err(InstanceError::Plugin(f.to_string())),
    }
    let id = uuid::Uuid::now_v7().to_string();
    let stored = encrypt_config(app, config, &descriptor);
    app.db
        .insert_instance(&id, plugin.id(), integration_type, name, &stored)
        .await?;
    Ok(id)
}
