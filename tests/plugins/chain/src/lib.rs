//! Chain test plugin.
//!
//! - Integration `chat`: `POST` a JSON body `{"id", "text", "chat"}` with header
//!   `x-chat-token` equal to the instance's `token`; replies are posted to
//!   `http://chat.test/send` as `{"chat", "text", "workItemId"}` with an `idempotency-key`
//!   header (the host's key).
//! - Tool `lookup`: `{"q": "..."}` -> `lookup(<q>)`; its input also echoes the `chain` counter
//!   added by `tool.pre_exec` handlers, so tests can see how many handlers changed it.
//! - Hooks: every handler makes a small visible change by default, and obeys directives found
//!   in the event data: `!loop` spins forever, `!trap` panics, `!error` returns an error,
//!   `!block` blocks, `!invalid` returns a value the host must reject, `!spin:<ms>` busy-waits,
//!   `!count` (`tool.post_exec`) appends how many such calls this instance has seen.
//!   Directives are read from the tool input (`tool.*`), the reply text (`response.*`), the
//!   work item text (`work_item.*`, `run.pre_prompt`) and the messages (`model.*`).

use nitejar_plugin_sdk::hooks::*;
use nitejar_plugin_sdk::integration::{
    Category, Descriptor, InboundMessage, Instance, ParseOutcome, PostOptions, PostResult,
    ResponseMode, WebhookRequest,
};
use nitejar_plugin_sdk::tools::{ToolContext, ToolDefinition, ToolOutput};
use nitejar_plugin_sdk::{Contributions, Hooks, Integration, Plugin, Tools, export_plugin, http};
use serde_json::{Value, json};

struct Chain;

/// `tool.post_exec` calls with `!count` seen by this instance.
static POST_EXEC_CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Plugin for Chain {
    fn contributions() -> Contributions {
        Contributions {
            integrations: vec!["chat".into()],
            hooks: vec![
                HookName::WorkItemPreCreate,
                HookName::WorkItemPostCreate,
                HookName::RunPrePrompt,
                HookName::ModelPreCall,
                HookName::ModelPostCall,
                HookName::ToolPreExec,
                HookName::ToolPostExec,
                HookName::ResponsePreDeliver,
                HookName::ResponsePostDeliver,
            ],
            tools: vec!["lookup".into()],
            skills: vec![],
        }
    }
}

/// What a directive in `text` asks for.
enum Directive {
    None,
    Loop,
    Trap,
    Error,
    Block,
    Invalid,
}

fn directive(text: &str) -> Directive {
    // Every directive starts with `!`: text without one (all real data) is passed over with
    // one byte search instead of six substring searches.
    if !text.as_bytes().contains(&b'!') {
        return Directive::None;
    }
    if let Some(i) = text.find("!spin:") {
        let ms: u64 = text[i + 6..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap_or(0);
        let start = std::time::Instant::now();
        while start.elapsed().as_millis() < u128::from(ms) {
            std::hint::spin_loop();
        }
    }
    if text.contains("!loop") {
        Directive::Loop
    } else if text.contains("!trap") {
        Directive::Trap
    } else if text.contains("!error") {
        Directive::Error
    } else if text.contains("!block") {
        Directive::Block
    } else if text.contains("!invalid") {
        Directive::Invalid
    } else {
        Directive::None
    }
}

/// Runs the failure directives shared by every hook; returns the ones a hook must act on.
fn obey(text: &str) -> Result<Directive, PluginError> {
    match directive(text) {
        Directive::Loop => {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        Directive::Trap => panic!("chain plugin trapped on purpose"),
        Directive::Error => Err(PluginError::new("chain_error", "failed on purpose")),
        d => Ok(d),
    }
}

fn header<'a>(req: &'a WebhookRequest, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

fn config_token(config: &str) -> Option<String> {
    serde_json::from_str::<Value>(config)
        .ok()?
        .get("token")?
        .as_str()
        .map(str::to_string)
}

impl Integration for Chain {
    fn describe() -> Vec<Descriptor> {
        vec![Descriptor {
            integration_type: "chat".into(),
            display_name: "Chat (test)".into(),
            description: "A chat platform stand-in for tests.".into(),
            icon: "chat".into(),
            category: Category::Messaging,
            response_mode: ResponseMode::Final,
            config_schema: json!({
                "type": "object",
                "required": ["token"],
                "properties": { "token": { "type": "string", "minLength": 8 } },
                "additionalProperties": false
            })
            .to_string(),
            ui_schema: None,
            sensitive_fields: vec!["token".into()],
        }]
    }

    fn validate_config(_t: String, config: String) -> Result<(), Vec<String>> {
        match config_token(&config) {
            Some(t) if t.len() >= 8 => Ok(()),
            _ => Err(vec!["`token` must be at least 8 characters".into()]),
        }
    }

    fn parse_webhook(instance: Instance, req: WebhookRequest) -> Result<ParseOutcome, PluginError> {
        let token = config_token(&instance.config).unwrap_or_default();
        if token.is_empty() || header(&req, "x-chat-token") != Some(token.as_str()) {
            return Ok(ParseOutcome::Unauthorized("bad token".into()));
        }
        let body: Value = serde_json::from_slice(&req.body)
            .map_err(|e| PluginError::new("bad_body", e.to_string()))?;
        let text = body["text"].as_str().unwrap_or("").to_string();
        let id = body["id"].as_str().unwrap_or("").to_string();
        let chat = body["chat"].as_str().unwrap_or("c1").to_string();
        Ok(ParseOutcome::WorkItem(InboundMessage {
            title: text.chars().take(40).collect(),
            text,
            session_key: format!("chat:{chat}"),
            source_ref: format!("chat:{id}"),
            sender: None,
            command: None,
            idempotency_key: Some(id),
            payload: body.to_string(),
            response_context: Some(json!({ "chat": chat }).to_string()),
        }))
    }

    fn post_response(
        _instance: Instance,
        work_item_id: String,
        content: String,
        response_context: Option<String>,
        options: PostOptions,
    ) -> Result<PostResult, PluginError> {
        let chat = response_context
            .and_then(|c| serde_json::from_str::<Value>(&c).ok())
            .and_then(|c| c["chat"].as_str().map(str::to_string))
            .unwrap_or_default();
        let mut req = http::Request::post("http://chat.test/send").json(&json!({
            "chat": chat, "text": content, "workItemId": work_item_id,
        }));
        if let Some(k) = &options.idempotency_key {
            req = req.header("idempotency-key", k);
        }
        let resp = req
            .send()
            .map_err(|e| PluginError::retryable("post_failed", format!("{e:?}")))?;
        if resp.status >= 500 {
            return Err(PluginError::retryable(
                "post_failed",
                format!("status {}", resp.status),
            ));
        }
        if resp.status >= 300 {
            return Err(PluginError::new(
                "post_failed",
                format!("status {}", resp.status),
            ));
        }
        let external_id = resp
            .json()
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_string));
        Ok(PostResult {
            delivered: true,
            external_id,
            detail: None,
        })
    }
}

impl Tools for Chain {
    fn list_tools() -> Vec<ToolDefinition> {
        vec![ToolDefinition {
            name: "lookup".into(),
            description: "Looks a query up.".into(),
            parameters: json!({
                "type": "object",
                "properties": { "q": { "type": "string" } },
                "required": ["q"]
            })
            .to_string(),
        }]
    }

    fn prompt_section(_ctx: ToolContext) -> Option<String> {
        Some("Use `lookup` to look things up.".into())
    }

    fn call_tool(
        _ctx: ToolContext,
        name: String,
        input: String,
    ) -> Result<ToolOutput, PluginError> {
        if name != "lookup" {
            return Err(PluginError::new("unknown_tool", name));
        }
        let v: Value = serde_json::from_str(&input).unwrap_or(Value::Null);
        let q = v["q"].as_str().unwrap_or("");
        let chain = v["chain"].as_u64().unwrap_or(0);
        Ok(ToolOutput {
            output: format!("lookup({q}) chain={chain}"),
            is_error: false,
        })
    }
}

impl Hooks for Chain {
    fn work_item_pre_create(
        _ctx: HookContext,
        ev: WorkItemPreCreateEvent,
    ) -> Result<WorkItemPreCreateDecision, PluginError> {
        Ok(match obey(&ev.work_item.text)? {
            Directive::Block => WorkItemPreCreateDecision::Block("chain blocked it".into()),
            Directive::Invalid => WorkItemPreCreateDecision::Proceed(WorkItemPreCreatePatch {
                title: None,
                payload: Some("not json".into()),
                session_key: None,
            }),
            _ => WorkItemPreCreateDecision::Proceed(WorkItemPreCreatePatch {
                title: Some(format!("{} +pre_create", ev.work_item.title)),
                payload: None,
                session_key: None,
            }),
        })
    }

    fn work_item_post_create(
        _ctx: HookContext,
        ev: WorkItemPostCreateEvent,
    ) -> Result<(), PluginError> {
        obey(&ev.work_item.text).map(|_| ())
    }

    fn run_pre_prompt(
        _ctx: HookContext,
        ev: RunPrePromptEvent,
    ) -> Result<RunPrePromptPatch, PluginError> {
        Ok(match obey(&ev.user_message)? {
            Directive::Invalid => RunPrePromptPatch {
                system_prompt: None,
                user_message: Some("   ".into()),
            },
            _ => RunPrePromptPatch {
                system_prompt: Some(format!("{}\n[pre_prompt]", ev.system_prompt)),
                user_message: None,
            },
        })
    }

    fn model_pre_call(
        _ctx: HookContext,
        ev: ModelPreCallEvent,
    ) -> Result<ModelPreCallDecision, PluginError> {
        // Only the newest message carries directives (the first turn's user text would
        // otherwise repeat on every turn).
        let last = serde_json::from_str::<Value>(&ev.messages)
            .ok()
            .and_then(|m| m.as_array().and_then(|a| a.last().cloned()))
            .map(|m| m.to_string())
            .unwrap_or_default();
        Ok(match obey(&last)? {
            Directive::Block => ModelPreCallDecision::Block("chain blocked the model".into()),
            Directive::Invalid => ModelPreCallDecision::Proceed(ModelPreCallPatch {
                model: None,
                temperature: Some(9.0),
                max_tokens: None,
            }),
            _ => ModelPreCallDecision::Proceed(ModelPreCallPatch {
                model: None,
                temperature: Some(0.5),
                max_tokens: None,
            }),
        })
    }

    fn model_post_call(_ctx: HookContext, _ev: ModelPostCallEvent) -> Result<(), PluginError> {
        Ok(())
    }

    fn tool_pre_exec(
        _ctx: HookContext,
        ev: ToolPreExecEvent,
    ) -> Result<ToolPreExecDecision, PluginError> {
        Ok(match obey(&ev.tool_input)? {
            Directive::Block => ToolPreExecDecision::Block("chain blocked the tool".into()),
            Directive::Invalid => ToolPreExecDecision::Proceed(ToolPreExecPatch {
                tool_input: Some("[1, 2]".into()),
            }),
            _ => {
                let mut input: Value = serde_json::from_str(&ev.tool_input).unwrap_or(json!({}));
                let n = input["chain"].as_u64().unwrap_or(0);
                input["chain"] = (n + 1).into();
                ToolPreExecDecision::Proceed(ToolPreExecPatch {
                    tool_input: Some(input.to_string()),
                })
            }
        })
    }

    fn tool_post_exec(
        _ctx: HookContext,
        ev: ToolPostExecEvent,
    ) -> Result<ToolPostExecPatch, PluginError> {
        obey(&ev.tool_input)?;
        // `!count`: a counter in the instance's memory, to show what state is shared within a
        // run (one instance) and never across runs.
        let count = if ev.tool_input.contains("!count") {
            let n = POST_EXEC_CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            format!(" #{n}")
        } else {
            String::new()
        };
        Ok(ToolPostExecPatch {
            output: Some(format!("{} +post_exec{count}", ev.tool_result.output)),
        })
    }

    fn response_pre_deliver(
        _ctx: HookContext,
        ev: ResponsePreDeliverEvent,
    ) -> Result<ResponsePreDeliverDecision, PluginError> {
        Ok(match obey(&ev.content)? {
            Directive::Block => ResponsePreDeliverDecision::Block("chain blocked delivery".into()),
            Directive::Invalid => ResponsePreDeliverDecision::Proceed(ResponsePreDeliverPatch {
                content: Some(String::new()),
            }),
            _ => ResponsePreDeliverDecision::Proceed(ResponsePreDeliverPatch {
                content: Some(format!("{} +pre_deliver", ev.content)),
            }),
        })
    }

    fn response_post_deliver(
        _ctx: HookContext,
        _ev: ResponsePostDeliverEvent,
    ) -> Result<(), PluginError> {
        Ok(())
    }
}

export_plugin!(Chain: Integration, Hooks, Tools);
