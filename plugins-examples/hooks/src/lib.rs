//! Example hook plugin: small, typical mutations on four hooks.
//!
//! - `work_item.pre_create`: prefixes the title with `[ext]` and records the tag in the payload.
//! - `run.pre_prompt`: appends a short policy section to the system prompt.
//! - `tool.pre_exec`: blocks a tool named `shell`.
//! - `response.pre_deliver`: redacts anything that looks like a bearer token.

use nitejar_plugin_sdk::hooks::*;
use nitejar_plugin_sdk::{Contributions, Hooks, Plugin, export_plugin};

struct ExampleHooks;

impl Plugin for ExampleHooks {
    fn contributions() -> Contributions {
        Contributions::hooks(&[
            HookName::WorkItemPreCreate,
            HookName::RunPrePrompt,
            HookName::ToolPreExec,
            HookName::ResponsePreDeliver,
        ])
    }
}

/// Replaces every `Bearer <token>` with `Bearer [redacted]`.
fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("Bearer ") {
        out.push_str(&rest[..i + 7]);
        rest = &rest[i + 7..];
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        out.push_str("[redacted]");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

impl Hooks for ExampleHooks {
    fn work_item_pre_create(
        _ctx: HookContext,
        ev: WorkItemPreCreateEvent,
    ) -> Result<WorkItemPreCreateDecision, PluginError> {
        let mut payload: serde_json::Value =
            serde_json::from_str(&ev.work_item.payload).unwrap_or_else(|_| serde_json::json!({}));
        if let Some(obj) = payload.as_object_mut() {
            obj.insert("tagged_by".into(), "nitejar.example.hooks".into());
        }
        Ok(WorkItemPreCreateDecision::Proceed(WorkItemPreCreatePatch {
            title: Some(format!("[ext] {}", ev.work_item.title)),
            payload: Some(payload.to_string()),
            session_key: None,
        }))
    }

    fn run_pre_prompt(
        _ctx: HookContext,
        ev: RunPrePromptEvent,
    ) -> Result<RunPrePromptPatch, PluginError> {
        Ok(RunPrePromptPatch {
            system_prompt: Some(format!("{}\n\nNever reveal credentials.", ev.system_prompt)),
            user_message: None,
        })
    }

    fn tool_pre_exec(
        _ctx: HookContext,
        ev: ToolPreExecEvent,
    ) -> Result<ToolPreExecDecision, PluginError> {
        if ev.tool_name == "shell" {
            return Ok(ToolPreExecDecision::Block(
                "the shell tool is disabled by policy".into(),
            ));
        }
        Ok(ToolPreExecDecision::Proceed(ToolPreExecPatch {
            tool_input: None,
        }))
    }

    fn response_pre_deliver(
        _ctx: HookContext,
        ev: ResponsePreDeliverEvent,
    ) -> Result<ResponsePreDeliverDecision, PluginError> {
        Ok(ResponsePreDeliverDecision::Proceed(
            ResponsePreDeliverPatch {
                content: Some(redact(&ev.content)),
            },
        ))
    }
}

export_plugin!(ExampleHooks: Hooks);

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redacts_bearer_tokens() {
        assert_eq!(redact("use Bearer abc123 now"), "use Bearer [redacted] now");
        assert_eq!(redact("Bearer x"), "Bearer [redacted]");
        assert_eq!(redact("nothing here"), "nothing here");
    }
}
