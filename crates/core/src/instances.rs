//! Integration instances: configured connections of an integration type.
//!
//! Every create and update runs the same three checks, with no per-type code in the host:
//! the plugin's JSON Schema (`config-schema` of its descriptor), then its `validate-config` in
//! the sandbox, then encryption of the fields the descriptor marks sensitive (AES-256-GCM, each
//! value a separate ciphertext string inside the config JSON). Responses carry the config with
//! those fields replaced by [`REDACTED`].
//!
//! - **Partial update**: keys in the patch replace stored ones, `null` removes a key, and a
//!   sensitive field sent back as [`REDACTED`] (or left out) keeps its stored ciphertext byte for
//!   byte.
//! - **Enable only after a connection test**: creating an enabled instance, or enabling one,
//!   first runs the plugin's `test-connection`; a failure refuses the change and says why.
//!   Create with `"enabled": false` to store a config before the platform is reachable.
//! - Validation errors never echo the submitted values (they may be secrets).

use crate::crypto::SecretBox;
use crate::plugins::registry::PluginRegistry;
use nitejar_sandbox::bindings::exports::nitejar::plugin::integration::Descriptor;
use nitejar_sandbox::runtime::{LoadedPlugin, PluginRuntime};
use nitejar_store::{InstanceRow, Store};
use serde_json::{Map, Value};
use std::sync::Arc;

/// What instance operations need: the store, the loaded plugins (an instance's type is served by
/// one of them), the sandbox to validate and test configs in, the secret box, and two settings.
pub struct Instances {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Loaded plugins.
    pub registry: Arc<PluginRegistry>,
    /// The sandbox.
    pub runtime: Arc<PluginRuntime>,
    /// Encrypts and decrypts sensitive config fields.
    pub secrets: SecretBox,
    /// `NITEJAR_PUBLIC_URL`, for full webhook URLs.
    pub public_url: Option<String>,
    /// Deadline of a `validate-config` or `test-connection` call.
    pub integration_timeout_ms: u64,
}

/// What the operator sees instead of a sensitive value.
pub const REDACTED: &str = "********";

/// Why an instance operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// No enabled plugin provides the type.
    #[error("no enabled plugin provides integration type {0:?}")]
    UnknownType(String),
    /// No such instance.
    #[error("no integration instance {0}")]
    NotFound(String),
    /// The plugin that owns the instance is disabled or failed to load.
    #[error("plugin {0} is not enabled; enable it to change or test its instances")]
    PluginUnavailable(String),
    /// The config is not acceptable; each entry is a problem to fix.
    #[error("invalid config: {}", .0.join("; "))]
    InvalidConfig(Vec<String>),
    /// The connection test failed, so the instance was not enabled.
    #[error("connection test failed: {0}")]
    ConnectionFailed(String),
    /// The plugin failed while validating or testing.
    #[error("the plugin failed: {0}")]
    Plugin(String),
    /// A stored secret could not be decrypted (wrong `ENCRYPTION_KEY`).
    #[error(
        "a stored secret could not be decrypted; is ENCRYPTION_KEY the one it was stored with?"
    )]
    Undecryptable,
    /// Storage failed.
    #[error(transparent)]
    Db(#[from] nitejar_store::DbError),
}

pub use nitejar_api::instances::ConnectionCheck;
use nitejar_api::instances::Instance;

/// The webhook path of an instance, and the full URL when `NITEJAR_PUBLIC_URL` is set.
pub fn webhook_url(public_url: Option<&str>, integration_type: &str, id: &str) -> String {
    let path = format!("/api/webhooks/plugins/{integration_type}/{id}");
    match public_url {
        Some(base) => format!("{}{path}", base.trim_end_matches('/')),
        None => path,
    }
}

/// The config JSON with sensitive fields decrypted (for the plugin only).
pub fn decrypt_config(
    secrets: &SecretBox,
    stored: &str,
    descriptor: Option<&Descriptor>,
) -> Result<String, crate::crypto::CryptoError> {
    decrypt_map(secrets, stored, descriptor).map(|m| Value::Object(m).to_string())
}

fn decrypt_map(
    secrets: &SecretBox,
    stored: &str,
    descriptor: Option<&Descriptor>,
) -> Result<Map<String, Value>, crate::crypto::CryptoError> {
    let mut config: Map<String, Value> = serde_json::from_str(stored).unwrap_or_default();
    if let Some(d) = descriptor {
        for field in &d.sensitive_fields {
            if let Some(Value::String(v)) = config.get(field) {
                let plain = secrets.decrypt(v)?;
                config.insert(field.clone(), Value::String(plain));
            }
        }
    }
    Ok(config)
}

/// The config with sensitive fields replaced by [`REDACTED`].
pub fn redacted_config(stored: &str, sensitive: &[String]) -> Map<String, Value> {
    let mut config: Map<String, Value> = serde_json::from_str(stored).unwrap_or_default();
    for field in sensitive {
        if config.contains_key(field) {
            config.insert(field.clone(), Value::String(REDACTED.into()));
        }
    }
    config
}

/// The operator-facing view of an instance (sensitive fields redacted).
pub fn view(ctx: &Instances, row: &InstanceRow) -> Instance {
    let plugin = ctx.registry.get(&row.plugin_id);
    let sensitive = plugin
        .as_ref()
        .and_then(|p| p.descriptor(&row.integration_type))
        .map(|d| d.sensitive_fields.clone())
        .unwrap_or_else(|| every_string_field(&row.config_json));
    Instance {
        id: row.id.clone(),
        plugin_id: row.plugin_id.clone(),
        integration_type: row.integration_type.clone(),
        name: row.name.clone(),
        enabled: row.enabled,
        plugin_available: plugin.is_some(),
        config: redacted_config(&row.config_json, &sensitive),
        webhook_url: webhook_url(ctx.public_url.as_deref(), &row.integration_type, &row.id),
        created_at: row.created_at,
        updated_at: row.updated_at,
        connection: None,
    }
}

/// With the plugin unavailable, which fields are sensitive is unknown: redact every string.
fn every_string_field(stored: &str) -> Vec<String> {
    serde_json::from_str::<Map<String, Value>>(stored)
        .map(|m| {
            m.into_iter()
                .filter(|(_, v)| v.is_string())
                .map(|(k, _)| k)
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn provider(
    ctx: &Instances,
    integration_type: &str,
) -> Result<Arc<LoadedPlugin>, InstanceError> {
    ctx.registry
        .by_integration_type(integration_type)
        .ok_or_else(|| InstanceError::UnknownType(integration_type.into()))
}

fn owner(ctx: &Instances, row: &InstanceRow) -> Result<Arc<LoadedPlugin>, InstanceError> {
    ctx.registry
        .get(&row.plugin_id)
        .filter(|p| p.descriptor(&row.integration_type).is_some())
        .ok_or_else(|| InstanceError::PluginUnavailable(row.plugin_id.clone()))
}

/// Checks `config` against the descriptor's JSON Schema. Messages name the field and the rule,
/// never the value.
pub fn check_schema(
    descriptor: &Descriptor,
    config: &Map<String, Value>,
) -> Result<(), InstanceError> {
    let schema: Value = serde_json::from_str(&descriptor.config_schema).map_err(|_| {
        InstanceError::Plugin("the plugin's config schema is not valid JSON".into())
    })?;
    let validator = jsonschema::validator_for(&schema).map_err(|e| {
        InstanceError::Plugin(format!(
            "the plugin's config schema is invalid: {}",
            e.masked()
        ))
    })?;
    let instance = Value::Object(config.clone());
    let problems: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| {
            let path = e.instance_path().to_string();
            let field = path.trim_start_matches('/').replace('/', ".");
            let message = e.masked().to_string();
            if field.is_empty() {
                message
            } else {
                format!("`{field}`: {message}")
            }
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(InstanceError::InvalidConfig(problems))
    }
}

/// Runs one integration call with a config on a blocking thread, within the integration
/// deadline.
async fn in_sandbox<T: Send + 'static>(
    ctx: &Instances,
    plugin: &Arc<LoadedPlugin>,
    integration_type: &str,
    config: &Map<String, Value>,
    call: impl FnOnce(&PluginRuntime, &LoadedPlugin, &str, &str, u64) -> T + Send + 'static,
) -> Result<T, InstanceError> {
    let runtime = ctx.runtime.clone();
    let timeout_ms = ctx.integration_timeout_ms;
    let (p, t, c) = (
        plugin.clone(),
        integration_type.to_string(),
        Value::Object(config.clone()).to_string(),
    );
    tokio::task::spawn_blocking(move || call(&runtime, &p, &t, &c, timeout_ms))
        .await
        .map_err(|e| InstanceError::Plugin(e.to_string()))
}

/// Schema, then the plugin's `validate-config`.
pub(crate) async fn validate(
    ctx: &Instances,
    plugin: &Arc<LoadedPlugin>,
    integration_type: &str,
    config: &Map<String, Value>,
) -> Result<(), InstanceError> {
    let descriptor = plugin
        .descriptor(integration_type)
        .ok_or_else(|| InstanceError::UnknownType(integration_type.into()))?;
    check_schema(descriptor, config)?;
    let verdict = in_sandbox(ctx, plugin, integration_type, config, |rt, p, t, c, ms| {
        rt.validate_config(p, t, c, ms)
    })
    .await?;
    match verdict {
        Ok(Ok(())) => Ok(()),
        Ok(Err(problems)) => Err(InstanceError::InvalidConfig(problems)),
        Err(f) => Err(InstanceError::Plugin(f.to_string())),
    }
}

/// Runs the plugin's `test-connection` on a plaintext config.
pub async fn test_config(
    ctx: &Instances,
    plugin: &Arc<LoadedPlugin>,
    integration_type: &str,
    config: &Map<String, Value>,
) -> Result<ConnectionCheck, InstanceError> {
    let status = in_sandbox(ctx, plugin, integration_type, config, |rt, p, t, c, ms| {
        rt.test_connection(p, t, c, ms)
    })
    .await?;
    match status {
        Ok(s) => Ok(ConnectionCheck {
            ok: s.ok,
            detail: s.detail,
        }),
        Err(nitejar_sandbox::runtime::PluginFailure::PluginError { code, message, .. }) => {
            Ok(ConnectionCheck {
                ok: false,
                detail: Some(format!("{code}: {message}")),
            })
        }
        Err(f) => Err(InstanceError::Plugin(f.to_string())),
    }
}

/// A stored config before an update: decrypted, and as stored.
type Previous<'a> = (&'a Map<String, Value>, &'a Map<String, Value>);

/// Encrypts the sensitive fields of `config`, reusing `previous` ciphertexts for values that did
/// not change (so an update that does not touch a secret keeps its stored bytes).
fn encrypt(
    ctx: &Instances,
    mut config: Map<String, Value>,
    descriptor: &Descriptor,
    previous: Option<Previous<'_>>,
) -> String {
    for field in &descriptor.sensitive_fields {
        let Some(Value::String(plain)) = config.get(field) else {
            continue;
        };
        let kept = previous.and_then(|(old_plain, old_stored)| {
            (old_plain.get(field) == Some(&Value::String(plain.clone())))
                .then(|| old_stored.get(field).cloned())
                .flatten()
        });
        let stored = kept.unwrap_or_else(|| Value::String(ctx.secrets.encrypt(plain)));
        config.insert(field.clone(), stored);
    }
    Value::Object(config).to_string()
}

/// Validates and creates an instance; with `enabled`, only after a passing connection test.
pub async fn create(
    ctx: &Instances,
    integration_type: &str,
    name: &str,
    config: Map<String, Value>,
    enabled: bool,
) -> Result<InstanceRow, InstanceError> {
    let plugin = provider(ctx, integration_type)?;
    validate(ctx, &plugin, integration_type, &config).await?;
    if enabled {
        let check = test_config(ctx, &plugin, integration_type, &config).await?;
        if !check.ok {
            return Err(InstanceError::ConnectionFailed(
                check.detail.unwrap_or_else(|| "no detail".into()),
            ));
        }
    }
    let descriptor = plugin
        .descriptor(integration_type)
        .ok_or_else(|| InstanceError::UnknownType(integration_type.into()))?;
    let id = uuid::Uuid::now_v7().to_string();
    let stored = encrypt(ctx, config, descriptor, None);
    ctx.store
        .insert_instance(&id, plugin.id(), integration_type, name, &stored, enabled)
        .await?;
    ctx.store
        .get_instance(&id)
        .await?
        .ok_or(InstanceError::NotFound(id))
}

async fn load(ctx: &Instances, id: &str) -> Result<InstanceRow, InstanceError> {
    ctx.store
        .get_instance(id)
        .await?
        .ok_or_else(|| InstanceError::NotFound(id.into()))
}

/// Applies a partial update (see the module docs). Returns the stored row and, for an enabled
/// instance whose config changed, the result of a connection test of the new config.
pub async fn update(
    ctx: &Instances,
    id: &str,
    name: Option<&str>,
    patch: Option<Map<String, Value>>,
) -> Result<(InstanceRow, Option<ConnectionCheck>), InstanceError> {
    let row = load(ctx, id).await?;
    let mut check = None;
    let config_json = match patch {
        None => None,
        Some(patch) => {
            let plugin = owner(ctx, &row)?;
            let descriptor = plugin
                .descriptor(&row.integration_type)
                .ok_or_else(|| InstanceError::PluginUnavailable(row.plugin_id.clone()))?;
            let old_stored: Map<String, Value> =
                serde_json::from_str(&row.config_json).unwrap_or_default();
            let old_plain = decrypt_map(&ctx.secrets, &row.config_json, Some(descriptor))
                .map_err(|_| InstanceError::Undecryptable)?;
            let mut merged = old_plain.clone();
            for (k, v) in patch {
                let sensitive = descriptor.sensitive_fields.contains(&k);
                match v {
                    Value::Null => {
                        merged.remove(&k);
                    }
                    Value::String(s) if sensitive && s == REDACTED => {}
                    v => {
                        merged.insert(k, v);
                    }
                }
            }
            validate(ctx, &plugin, &row.integration_type, &merged).await?;
            if row.enabled && merged != old_plain {
                check = Some(test_config(ctx, &plugin, &row.integration_type, &merged).await?);
            }
            Some(encrypt(
                ctx,
                merged,
                descriptor,
                Some((&old_plain, &old_stored)),
            ))
        }
    };
    ctx.store
        .update_instance(id, name, config_json.as_deref())
        .await?;
    Ok((load(ctx, id).await?, check))
}

/// Tests a stored instance's connection.
pub async fn test(ctx: &Instances, id: &str) -> Result<ConnectionCheck, InstanceError> {
    let row = load(ctx, id).await?;
    let plugin = owner(ctx, &row)?;
    let config = decrypt_map(
        &ctx.secrets,
        &row.config_json,
        plugin.descriptor(&row.integration_type),
    )
    .map_err(|_| InstanceError::Undecryptable)?;
    test_config(ctx, &plugin, &row.integration_type, &config).await
}

/// Enables (after a passing connection test) or disables an instance.
pub async fn set_enabled(
    ctx: &Instances,
    id: &str,
    enabled: bool,
) -> Result<(InstanceRow, Option<ConnectionCheck>), InstanceError> {
    let mut check = None;
    if enabled {
        let c = test(ctx, id).await?;
        if !c.ok {
            return Err(InstanceError::ConnectionFailed(
                c.detail.unwrap_or_else(|| "no detail".into()),
            ));
        }
        check = Some(c);
    } else {
        load(ctx, id).await?;
    }
    ctx.store.set_instance_enabled(id, enabled).await?;
    Ok((load(ctx, id).await?, check))
}

/// Deletes an instance (its agent assignment goes with it; its work items and runs stay).
pub async fn delete(ctx: &Instances, id: &str) -> Result<(), InstanceError> {
    if ctx.store.delete_instance(id).await? {
        Ok(())
    } else {
        Err(InstanceError::NotFound(id.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nitejar_sandbox::bindings::exports::nitejar::plugin::integration::{
        Category, ResponseMode,
    };
    use serde_json::json;

    fn descriptor(schema: Value) -> Descriptor {
        Descriptor {
            integration_type: "t".into(),
            display_name: "T".into(),
            description: String::new(),
            icon: String::new(),
            category: Category::Other,
            response_mode: ResponseMode::Final,
            config_schema: schema.to_string(),
            ui_schema: None,
            sensitive_fields: vec!["token".into()],
        }
    }

    #[test]
    fn schema_errors_name_the_field_but_never_the_value() {
        let d = descriptor(json!({
            "type": "object", "required": ["token"],
            "properties": {"token": {"type": "string", "minLength": 20}},
            "additionalProperties": false
        }));
        let config: Map<String, Value> =
            serde_json::from_value(json!({"token": "hunter2-secret", "extra": 1})).unwrap();
        let Err(InstanceError::InvalidConfig(problems)) = check_schema(&d, &config) else {
            panic!("expected schema problems");
        };
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().any(|p| p.starts_with("`token`")));
        assert!(
            problems.iter().all(|p| !p.contains("hunter2")),
            "{problems:?}"
        );
        let ok: Map<String, Value> =
            serde_json::from_value(json!({"token": "x".repeat(20)})).unwrap();
        assert!(check_schema(&d, &ok).is_ok());
    }

    #[test]
    fn a_broken_plugin_schema_is_the_plugin_failing() {
        let d = descriptor(json!({"type": 12}));
        assert!(matches!(
            check_schema(&d, &Map::new()),
            Err(InstanceError::Plugin(_))
        ));
    }

    #[test]
    fn redaction() {
        let v = redacted_config(r#"{"token":"enc","name":"x"}"#, &["token".into()]);
        assert_eq!(Value::Object(v), json!({"token": REDACTED, "name": "x"}));
        assert_eq!(
            every_string_field(r#"{"a":"x","b":1}"#),
            vec!["a".to_string()]
        );
    }
}
