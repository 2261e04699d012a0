//! Instance forms generated from an integration type's JSON Schema and UI hints (no code per
//! type): one field per property, in `ui:order` then by name, typed by the schema (text,
//! number, checkbox, choice, list, JSON), `ui:widget: password` and sensitive fields as
//! password inputs, `ui:advanced` fields folded away. Sensitive values are never put back in
//! a page: a stored one shows as the mask, and leaving the mask keeps it.

use super::forms::Fields;
use nitejar_api::instances::{IntegrationType, typed_value};
use serde::Serialize;
use serde_json::{Map, Value};

/// What a stored sensitive value shows as (the API's redaction).
pub const MASK: &str = "********";

/// One generated form field.
#[derive(Debug, Serialize)]
pub struct FormField {
    /// The config key; the input is named `cfg.<key>`.
    pub key: String,
    /// The schema's `title`, else the key.
    pub label: String,
    /// The schema's `description`.
    pub help: Option<String>,
    /// `text`, `password`, `number`, `checkbox`, `select`, `list` or `json`.
    pub widget: &'static str,
    /// Listed in the schema's `required`.
    pub required: bool,
    /// The value to show (never a sensitive value: the mask instead).
    pub value: String,
    /// For a checkbox: whether it is ticked.
    pub checked: bool,
    /// For a choice: the options.
    pub options: Vec<String>,
    /// Folded under "Advanced".
    pub advanced: bool,
    /// Stored encrypted and never shown.
    pub sensitive: bool,
}

fn widget(prop: &Value, hint: &Value, sensitive: bool) -> &'static str {
    if sensitive || hint["ui:widget"] == "password" {
        return "password";
    }
    if prop.get("enum").is_some() {
        return "select";
    }
    let types: Vec<&str> = match &prop["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    match types.as_slice() {
        ["boolean"] => "checkbox",
        ["integer"] | ["number"] => "number",
        ["array"] => "list",
        ["object"] => "json",
        _ => "text",
    }
}

/// A config value as typed in a field.
fn shown(value: &Value, widget: &str) -> String {
    match (value, widget) {
        (Value::String(s), _) => s.clone(),
        (Value::Null, _) => String::new(),
        (Value::Array(items), "list") => items
            .iter()
            .map(|i| match i {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        (other, _) => other.to_string(),
    }
}

/// The type's properties in form order: `ui:order` first, then the rest by name.
fn ordered(t: &IntegrationType) -> Vec<(String, Value)> {
    let props = t.config_schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let order: Vec<String> = t
        .ui_schema
        .as_ref()
        .and_then(|u| u["ui:order"].as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut out: Vec<(String, Value)> = order
        .iter()
        .filter_map(|k| props.get(k).map(|p| (k.clone(), p.clone())))
        .collect();
    let mut rest: Vec<(String, Value)> = props
        .into_iter()
        .filter(|(k, _)| !order.contains(k))
        .collect();
    rest.sort_by(|a, b| a.0.cmp(&b.0));
    out.extend(rest);
    out
}

/// The form of type `t`: with `current` (an instance's redacted config) to edit it, with
/// `posted` (a refused form) to show what was typed again (sensitive fields stay empty), or
/// with neither for a new instance (the schema's defaults).
pub fn fields(
    t: &IntegrationType,
    current: Option<&Map<String, Value>>,
    posted: Option<&Fields>,
) -> Vec<FormField> {
    let required: Vec<&str> = t.config_schema["required"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    ordered(t)
        .into_iter()
        .map(|(key, prop)| {
            let hint = t
                .ui_schema
                .as_ref()
                .map(|u| u[key.as_str()].clone())
                .unwrap_or(Value::Null);
            let sensitive = t.sensitive_fields.contains(&key);
            let widget = widget(&prop, &hint, sensitive);
            let name = format!("cfg.{key}");
            let (value, checked) = match (current, posted) {
                (_, Some(form)) => (
                    if sensitive {
                        String::new()
                    } else {
                        form.get(&name).unwrap_or("").to_string()
                    },
                    form.ticked(&name),
                ),
                (Some(config), None) => {
                    let v = config.get(&key).cloned().unwrap_or(Value::Null);
                    let value = if sensitive {
                        if v.is_null() {
                            String::new()
                        } else {
                            MASK.into()
                        }
                    } else {
                        shown(&v, widget)
                    };
                    (value, v == Value::Bool(true))
                }
                (None, None) => {
                    let d = prop.get("default").cloned().unwrap_or(Value::Null);
                    (shown(&d, widget), d == Value::Bool(true))
                }
            };
            FormField {
                label: prop["title"].as_str().unwrap_or(&key).to_string(),
                help: prop["description"].as_str().map(str::to_string),
                widget,
                required: required.contains(&key.as_str()),
                value,
                checked,
                options: prop["enum"]
                    .as_array()
                    .map(|o| o.iter().map(|v| shown(v, "text")).collect())
                    .unwrap_or_default(),
                advanced: hint["ui:advanced"] == true,
                sensitive,
                key,
            }
        })
        .collect()
}

/// The config a posted form sets, typed by the schema. Creating (`editing` false): blank
/// fields are left out. Editing: a blank field removes the key (`null`), and a sensitive
/// field left as the mask (or blank) keeps its stored value. Every field that cannot be read
/// is reported, by its label.
pub fn read(
    t: &IntegrationType,
    form: &Fields,
    editing: bool,
) -> Result<Map<String, Value>, Vec<String>> {
    let mut config = Map::new();
    let mut problems = Vec::new();
    for f in fields(t, None, None) {
        let name = format!("cfg.{}", f.key);
        if f.widget == "checkbox" {
            config.insert(f.key, Value::Bool(form.ticked(&name)));
            continue;
        }
        let raw = form.get(&name).unwrap_or("").trim();
        if f.sensitive && editing && (raw.is_empty() || raw == MASK) {
            continue;
        }
        if raw.is_empty() {
            if editing {
                config.insert(f.key, Value::Null);
            }
            continue;
        }
        let prop = &t.config_schema["properties"][f.key.as_str()];
        let raw = if f.widget == "list" {
            raw.replace(['\r', '\n'], ",")
        } else {
            raw.to_string()
        };
        match typed_value(prop, &raw) {
            Ok(v) => {
                config.insert(f.key, v);
            }
            Err(m) => problems.push(format!("{}: {m}", f.label)),
        }
    }
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn telegram_like() -> IntegrationType {
        IntegrationType {
            integration_type: "t".into(),
            plugin_id: "p".into(),
            plugin_version: "1".into(),
            display_name: "T".into(),
            description: String::new(),
            icon: String::new(),
            category: "messaging".into(),
            response_mode: "final".into(),
            config_schema: json!({
                "type": "object", "required": ["botToken"],
                "properties": {
                    "botToken": {"type": "string", "title": "Bot token"},
                    "allowed": {"type": "array", "items": {"type": ["integer", "string"]}},
                    "threads": {"type": "boolean", "default": true},
                    "mode": {"enum": ["a", "b"]},
                    "limit": {"type": "integer"},
                    "zeta": {"type": "string"},
                }
            }),
            ui_schema: Some(
                json!({"ui:order": ["botToken", "threads"], "zeta": {"ui:advanced": true}}),
            ),
            sensitive_fields: vec!["botToken".into()],
        }
    }

    fn form(pairs: &[(&str, &str)]) -> Fields {
        Fields::from_pairs(pairs)
    }

    #[test]
    fn fields_follow_the_schema_and_hints() {
        let t = telegram_like();
        let f = fields(&t, None, None);
        let keys: Vec<&str> = f.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(
            keys,
            ["botToken", "threads", "allowed", "limit", "mode", "zeta"]
        );
        let widgets: Vec<&str> = f.iter().map(|f| f.widget).collect();
        assert_eq!(
            widgets,
            ["password", "checkbox", "list", "number", "select", "text"]
        );
        assert!(f[0].required && f[0].sensitive && f[1].checked && f[5].advanced);
        assert_eq!(f[4].options, ["a", "b"]);
        // Editing: the stored secret shows as the mask, never its value.
        let current = json!({"botToken": MASK, "allowed": [1, "x"], "threads": false, "limit": 3});
        let f = fields(&t, current.as_object(), None);
        assert_eq!(f[0].value, MASK);
        assert!(!f[1].checked);
        assert_eq!(f[2].value, "1, x");
        assert_eq!(f[3].value, "3");
    }

    #[test]
    fn posted_forms_are_typed_and_the_mask_keeps_the_secret() {
        let t = telegram_like();
        let posted = form(&[
            ("cfg.botToken", "123456:abc"),
            ("cfg.allowed", "12, -100\nteam"),
            ("cfg.limit", "7"),
            ("cfg.mode", "b"),
            ("cfg.zeta", ""),
        ]);
        let c = read(&t, &posted, false).unwrap();
        assert_eq!(
            Value::Object(c),
            json!({"botToken": "123456:abc", "allowed": [12, -100, "team"], "threads": false, "limit": 7, "mode": "b"})
        );
        let edit = form(&[
            ("cfg.botToken", MASK),
            ("cfg.threads", "yes"),
            ("cfg.limit", ""),
        ]);
        let c = read(&t, &edit, true).unwrap();
        assert!(
            !c.contains_key("botToken"),
            "the mask keeps the stored value"
        );
        assert_eq!(c["threads"], true);
        assert_eq!(c["limit"], Value::Null, "blank removes");
        let bad = form(&[("cfg.limit", "many"), ("cfg.mode", "c")]);
        let problems = read(&t, &bad, false).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("limit: "), "{problems:?}");
    }
}
