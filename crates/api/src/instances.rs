//! Integration types and instances: the configured connections webhooks arrive through.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// An integration type a loaded plugin provides: what forms and the CLI are generated from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationType {
    /// The type key.
    #[serde(rename = "type")]
    pub integration_type: String,
    /// The plugin that provides it.
    pub plugin_id: String,
    /// That plugin's active version.
    pub plugin_version: String,
    /// Display name.
    pub display_name: String,
    /// Description.
    pub description: String,
    /// Icon name.
    pub icon: String,
    /// `messaging`, `code`, `productivity`, `other`, ...
    pub category: String,
    /// `final` or `streaming`.
    pub response_mode: String,
    /// The JSON Schema instance configs are checked against.
    pub config_schema: Value,
    /// Form hints (field order, widgets, help), when the type has them.
    pub ui_schema: Option<Value>,
    /// Config fields stored encrypted and shown as `********`.
    pub sensitive_fields: Vec<String>,
}

/// `GET /integration-types`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationTypeList {
    /// Every type, by key.
    pub integration_types: Vec<IntegrationType>,
}

/// The result of a connection test: the platform's answer to the plugin's check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConnectionCheck {
    /// Whether the platform accepted the configuration.
    pub ok: bool,
    /// What was checked or what failed (never a secret).
    pub detail: Option<String>,
}

/// An integration instance; sensitive config values are shown as `********`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    /// Instance id (part of its webhook URL).
    pub id: String,
    /// The plugin that provides its type.
    pub plugin_id: String,
    /// The integration type.
    #[serde(rename = "type")]
    pub integration_type: String,
    /// Display name.
    pub name: String,
    /// Whether webhooks are accepted.
    pub enabled: bool,
    /// Whether the providing plugin is loaded.
    pub plugin_available: bool,
    /// The config, sensitive values redacted.
    pub config: Map<String, Value>,
    /// Where the platform sends webhooks (absolute when a public URL is configured).
    pub webhook_url: String,
    /// Creation time (ms since the epoch).
    pub created_at: i64,
    /// Last change (ms since the epoch).
    pub updated_at: i64,
    /// The connection test run by this change, when it ran one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnectionCheck>,
}

/// `GET /instances`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InstanceList {
    /// Every instance.
    pub instances: Vec<Instance>,
}

fn yes() -> bool {
    true
}

/// `POST /instances`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInstanceRequest {
    /// The integration type.
    #[serde(rename = "type")]
    pub integration_type: String,
    /// Display name (1-200 characters, no control characters).
    pub name: String,
    /// The config, checked against the type's schema and the plugin's validation.
    #[serde(default)]
    pub config: Map<String, Value>,
    /// Enable at once (default), which needs a passing connection test.
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// `PATCH /instances/{id}`: keys replace, `null` removes, a sensitive field left out or sent as
/// `********` keeps its stored value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateInstanceRequest {
    /// New display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Config changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Map<String, Value>>,
}

/// `POST /instances/test`: test a config before saving it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestConfigRequest {
    /// The integration type.
    #[serde(rename = "type")]
    pub integration_type: String,
    /// The config to test.
    #[serde(default)]
    pub config: Map<String, Value>,
}

/// A work item: one event from a platform, answered by one agent run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkItem {
    /// Id.
    pub id: String,
    /// The instance it came through.
    pub plugin_instance_id: String,
    /// Integration type.
    pub integration_type: String,
    /// Title.
    pub title: String,
    /// Message text.
    pub text: String,
    /// Conversation key.
    pub session_key: String,
    /// Platform reference.
    pub source_ref: String,
    /// Command, if any (`clear`, ...).
    pub command: Option<String>,
    /// The integration's payload, as JSON text.
    pub payload_json: String,
    /// `pending`, `running`, `done`, `failed` or `blocked`.
    pub status: String,
    /// Creation time (ms since the epoch).
    pub created_at: i64,
}

/// `GET /instances/{id}/work-items`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkItemList {
    /// Oldest first.
    pub work_items: Vec<WorkItem>,
}

/// Query of `GET /work-items`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkItemsQuery {
    /// Only this instance's work items.
    pub instance: Option<String>,
    /// Only work items with this status (`queued`, `running`, `done`, `failed`, ...).
    pub status: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// `GET /work-items`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkItemPage {
    /// Newest first.
    pub work_items: Vec<WorkItem>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The JSON types a property accepts, in the order to try them.
fn types_of(prop: &Value) -> Vec<&str> {
    if prop.get("enum").is_some() {
        return vec!["enum"];
    }
    match &prop["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => {
            let mut v: Vec<&str> = ts.iter().filter_map(Value::as_str).collect();
            // Try the stricter readings first: "42" as an integer before a string.
            v.sort_by_key(|t| match *t {
                "integer" => 0,
                "number" => 1,
                "boolean" => 2,
                _ => 3,
            });
            v
        }
        _ => vec!["string"],
    }
}

/// Converts `raw`, typed by a person (a form field, a `--set` value), to the JSON type the
/// schema property `prop` accepts: an enum member, an integer, a number, a boolean
/// (`true/yes/1`, `false/no/0`), a comma-separated array of its items, a JSON object, or a
/// string.
pub fn typed_value(prop: &Value, raw: &str) -> Result<Value, String> {
    let bad = |want: &str| format!("{raw:?} is not {want}");
    for t in types_of(prop) {
        let v = match t {
            "enum" => {
                let options = prop["enum"].as_array().cloned().unwrap_or_default();
                return options
                    .iter()
                    .find(|o| {
                        o.as_str() == Some(raw)
                            || serde_json::from_str::<Value>(raw).ok().as_ref() == Some(*o)
                    })
                    .cloned()
                    .ok_or_else(|| {
                        format!("{raw:?} is not one of {}", Value::Array(options.clone()))
                    });
            }
            "integer" => raw.trim().parse::<i64>().ok().map(Value::from),
            "number" => raw.trim().parse::<f64>().ok().map(Value::from),
            "boolean" => match raw.trim() {
                "true" | "yes" | "1" => Some(Value::Bool(true)),
                "false" | "no" | "0" => Some(Value::Bool(false)),
                _ => None,
            },
            "array" => {
                let items = &prop["items"];
                let mut out = Vec::new();
                for part in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    out.push(typed_value(items, part)?);
                }
                Some(Value::Array(out))
            }
            "object" => Some(serde_json::from_str(raw).map_err(|_| bad("a JSON object"))?),
            _ => Some(Value::String(raw.to_string())),
        };
        if let Some(v) = v {
            return Ok(v);
        }
    }
    Err(bad(&types_of(prop).join(" or ")))
}
