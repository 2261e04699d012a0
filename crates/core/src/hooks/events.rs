//! How each hook's result applies to its event: the validation and mutation rules of the nine
//! events, one [`ApplyHook`] impl per event.
//!
//! A handler can only return the fields its hook allows (the WIT decision/patch types); here
//! every returned value is checked before anything is applied, so a handler that returns an
//! invalid value changes nothing and counts as failed.

use crate::limits::{MAX_HOOK_KEY_BYTES, MAX_WORK_ITEM_TITLE_BYTES};
use nitejar_sandbox::bindings::exports::nitejar::plugin::hooks as wit;
use nitejar_sandbox::hooks::HookEvent;

/// A hook event whose handlers' results the dispatcher applies.
pub trait ApplyHook: HookEvent {
    /// Validates `output` and applies it. `Ok(Some(reason))` blocks the operation; `Err` says
    /// which value broke which rule (nothing is applied).
    fn apply(&mut self, output: Self::Output) -> Result<Option<String>, String>;
}

/// Observe-only events: handlers return nothing to apply.
macro_rules! observe_only {
    ($($event:ty),*) => {$(
        impl ApplyHook for $event {
            fn apply(&mut self, (): ()) -> Result<Option<String>, String> {
                Ok(None)
            }
        }
    )*};
}
observe_only!(
    wit::WorkItemPostCreateEvent,
    wit::ModelPostCallEvent,
    wit::ResponsePostDeliverEvent
);

/// A block's reason, never empty.
fn block_reason(r: String) -> Option<String> {
    Some(if r.trim().is_empty() {
        "blocked by plugin".into()
    } else {
        r
    })
}

impl ApplyHook for wit::WorkItemPreCreateEvent {
    fn apply(&mut self, output: wit::WorkItemPreCreateDecision) -> Result<Option<String>, String> {
        let p = match output {
            wit::WorkItemPreCreateDecision::Block(r) => return Ok(block_reason(r)),
            wit::WorkItemPreCreateDecision::Proceed(p) => p,
        };
        if let Some(t) = &p.title {
            text_rule("title", t, MAX_WORK_ITEM_TITLE_BYTES)?;
        }
        if let Some(k) = &p.session_key {
            text_rule("session-key", k, MAX_HOOK_KEY_BYTES)?;
        }
        if let Some(payload) = &p.payload {
            json_object_rule("payload", payload)?;
        }
        let w = &mut self.work_item;
        set(&mut w.title, p.title);
        set(&mut w.session_key, p.session_key);
        set(&mut w.payload, p.payload);
        Ok(None)
    }
}

impl ApplyHook for wit::RunPrePromptEvent {
    fn apply(&mut self, p: wit::RunPrePromptPatch) -> Result<Option<String>, String> {
        if let Some(u) = &p.user_message
            && u.trim().is_empty()
        {
            return Err("user-message must not be empty".into());
        }
        set(&mut self.system_prompt, p.system_prompt);
        set(&mut self.user_message, p.user_message);
        Ok(None)
    }
}

impl ApplyHook for wit::ModelPreCallEvent {
    fn apply(&mut self, output: wit::ModelPreCallDecision) -> Result<Option<String>, String> {
        let p = match output {
            wit::ModelPreCallDecision::Block(r) => return Ok(block_reason(r)),
            wit::ModelPreCallDecision::Proceed(p) => p,
        };
        if let Some(m) = &p.model {
            text_rule("model", m, MAX_HOOK_KEY_BYTES)?;
        }
        if let Some(t) = p.temperature
            && !(t.is_finite() && (0.0..=2.0).contains(&t))
        {
            return Err(format!("temperature {t} must be between 0.0 and 2.0"));
        }
        if p.max_tokens == Some(0) {
            return Err("max-tokens must be at least 1".into());
        }
        set(&mut self.model, p.model);
        if let Some(t) = p.temperature {
            self.temperature = t;
        }
        if let Some(m) = p.max_tokens {
            self.max_tokens = m;
        }
        Ok(None)
    }
}

impl ApplyHook for wit::ToolPreExecEvent {
    fn apply(&mut self, output: wit::ToolPreExecDecision) -> Result<Option<String>, String> {
        let p = match output {
            wit::ToolPreExecDecision::Block(r) => return Ok(block_reason(r)),
            wit::ToolPreExecDecision::Proceed(p) => p,
        };
        if let Some(i) = &p.tool_input {
            json_object_rule("tool-input", i)?;
        }
        set(&mut self.tool_input, p.tool_input);
        Ok(None)
    }
}

impl ApplyHook for wit::ToolPostExecEvent {
    fn apply(&mut self, p: wit::ToolPostExecPatch) -> Result<Option<String>, String> {
        set(&mut self.tool_result.output, p.output);
        Ok(None)
    }
}

impl ApplyHook for wit::ResponsePreDeliverEvent {
    fn apply(&mut self, output: wit::ResponsePreDeliverDecision) -> Result<Option<String>, String> {
        let p = match output {
            wit::ResponsePreDeliverDecision::Block(r) => return Ok(block_reason(r)),
            wit::ResponsePreDeliverDecision::Proceed(p) => p,
        };
        if let Some(c) = &p.content
            && c.trim().is_empty()
        {
            return Err("content must not be empty (block the delivery to suppress it)".into());
        }
        set(&mut self.content, p.content);
        Ok(None)
    }
}

fn set(field: &mut String, value: Option<String>) {
    if let Some(v) = value {
        *field = v;
    }
}

fn text_rule(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    if value.len() > max {
        return Err(format!(
            "{field} is {} bytes; the limit is {max}",
            value.len()
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{field} must not contain control characters"));
    }
    Ok(())
}

fn json_object_rule(field: &str, value: &str) -> Result<(), String> {
    match serde_json::from_str::<serde_json::Value>(value) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        _ => Err(format!("{field} must be a JSON object")),
    }
}
