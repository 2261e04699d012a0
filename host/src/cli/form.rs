//! Instance configs from an integration type's JSON Schema: `--set key=value` typed by the
//! schema, prompts for missing required fields on a terminal, and yes/no consent prompts.

use super::client::CliError;
use nitejar_api::instances::IntegrationType;
use serde_json::{Map, Value};
use std::io::{BufRead, IsTerminal, Write};

/// Converts `raw` to the property's type (the rules are shared with the admin UI's forms).
pub fn typed(key: &str, prop: &Value, raw: &str) -> Result<Value, CliError> {
    nitejar_api::instances::typed_value(prop, raw)
        .map_err(|m| CliError::Local(format!("--set {key}: {m}")))
}

fn read_value(key: &str, raw: &str) -> Result<String, CliError> {
    match raw.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map(|s| s.trim_end_matches('\n').to_string())
            .map_err(|e| CliError::Local(format!("--set {key}=@{path}: {e}"))),
        None => Ok(raw.to_string()),
    }
}

/// Builds a config from `--set` pairs for the integration type `t` (from
/// `GET /integration-types`). With `complete`, missing required fields are prompted for on a
/// terminal, or reported.
pub fn build(
    t: Option<&IntegrationType>,
    sets: &[String],
    complete: bool,
    interactive: bool,
    out: &mut dyn Write,
) -> Result<Map<String, Value>, CliError> {
    let schema = t.map_or(&Value::Null, |t| &t.config_schema);
    let props = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let sensitive: Vec<&str> = t
        .map(|t| t.sensitive_fields.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let mut config = Map::new();
    for s in sets {
        let (key, raw) = s
            .split_once('=')
            .ok_or_else(|| CliError::Local(format!("--set {s:?}: write key=value")))?;
        let prop = match props.get(key) {
            Some(p) => p.clone(),
            None if props.is_empty() => Value::Null,
            None => {
                let known: Vec<&String> = props.keys().collect();
                return Err(CliError::Local(format!(
                    "--set {key}: not a field of this type (fields: {known:?})"
                )));
            }
        };
        let raw = read_value(key, raw)?;
        config.insert(key.to_string(), typed(key, &prop, &raw)?);
    }
    if !complete {
        return Ok(config);
    }
    let required: Vec<String> = schema["required"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let missing: Vec<String> = required
        .into_iter()
        .filter(|k| !config.contains_key(k))
        .collect();
    if missing.is_empty() {
        return Ok(config);
    }
    if !interactive {
        return Err(CliError::Local(format!(
            "missing required fields: {} (pass --set KEY=VALUE)",
            missing.join(", ")
        )));
    }
    for key in missing {
        let prop = props.get(&key).cloned().unwrap_or(Value::Null);
        let title = prop["title"].as_str().unwrap_or(&key);
        let hint = prop["description"].as_str().unwrap_or("");
        let prompt = format!(
            "{title} ({key}){}: ",
            if hint.is_empty() {
                String::new()
            } else {
                format!(" - {hint}")
            }
        );
        let raw = if sensitive.contains(&key.as_str()) {
            rpassword::prompt_password(prompt).map_err(|e| CliError::Local(e.to_string()))?
        } else {
            write!(out, "{prompt}").map_err(|e| CliError::Local(e.to_string()))?;
            out.flush().ok();
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| CliError::Local(e.to_string()))?;
            line.trim_end_matches(['\r', '\n']).to_string()
        };
        config.insert(key.clone(), typed(&key, &prop, &raw)?);
    }
    Ok(config)
}

/// Whether prompts are possible: a terminal on stdin and no `--no-input`.
pub fn interactive(no_input: bool) -> bool {
    !no_input && std::io::stdin().is_terminal()
}

/// Asks a yes/no question when `interactive`; otherwise the answer is no.
pub fn confirm(question: &str, interactive: bool, out: &mut dyn Write) -> Result<bool, CliError> {
    if !interactive {
        return Ok(false);
    }
    write!(out, "{question} [y/N] ").map_err(|e| CliError::Local(e.to_string()))?;
    out.flush().ok();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::Local(e.to_string()))?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_typed_by_the_schema() {
        let ids = json!({"type": "array", "items": {"type": ["integer", "string"]}});
        assert_eq!(typed("k", &ids, "-100, abc").unwrap(), json!([-100, "abc"]));
        assert_eq!(
            typed("k", &json!({"type": "boolean"}), "no").unwrap(),
            json!(false)
        );
        assert_eq!(
            typed("k", &json!({"enum": ["mentions", "all"]}), "all").unwrap(),
            json!("all")
        );
        assert!(typed("k", &json!({"enum": ["a"]}), "b").is_err());
        assert!(typed("k", &json!({"type": "integer"}), "x").is_err());
        assert_eq!(
            typed("k", &json!({"type": ["string", "integer"]}), "42").unwrap(),
            json!(42)
        );
        assert_eq!(typed("k", &json!({}), "text").unwrap(), json!("text"));
    }

    #[test]
    fn unknown_fields_and_missing_required_are_reported() {
        let t: IntegrationType = serde_json::from_value(json!({
            "type": "chat", "pluginId": "p", "pluginVersion": "1.0.0", "displayName": "Chat",
            "description": "", "icon": "", "category": "other", "responseMode": "final",
            "configSchema": {"type": "object", "required": ["token"],
                "properties": {"token": {"type": "string"}, "n": {"type": "integer"}}},
            "uiSchema": null,
            "sensitiveFields": ["token"]
        }))
        .unwrap();
        let t = Some(&t);
        let mut out = Vec::new();
        assert!(build(t, &["nope=1".into()], true, false, &mut out).is_err());
        let partial = build(t, &["n=3".into()], false, false, &mut out).unwrap();
        assert_eq!(Value::Object(partial), json!({"n": 3}));
        // Without prompts, a missing required field is an error naming it.
        let err = build(t, &["n=3".into()], true, false, &mut out).unwrap_err();
        assert!(err.to_string().contains("token"), "{err}");
    }
}
