//! Model backends: an OpenAI-compatible chat-completions endpoint, and the built-in
//! deterministic offline model (the default, so the whole flow runs with no network).
//!
//! Both produce a chat-completion JSON object that goes through the same parser, so the run
//! loop cannot tell them apart.
//!
//! The offline model: when the last message is the user's, every line of it of the form
//! `/tool <name> <json object>` (or `/tool <name>`) naming an offered tool becomes a tool call;
//! without such lines it answers `Received: <message>`. When the last messages are tool results
//! it answers with them (`<tool>: <output>`, one per line) and ends the run.

use crate::limits::MAX_MODEL_RESPONSE_BYTES;
use serde::Serialize;
use serde_json::{Value, json};
use std::time::Duration;

pub use nitejar_api::runs::{ModelSettings, Provider};

/// One model call.
#[derive(Debug, Clone)]
pub struct ChatRequest<'a> {
    /// Model name.
    pub model: &'a str,
    /// Temperature.
    pub temperature: f64,
    /// Token limit.
    pub max_tokens: u32,
    /// Messages (OpenAI chat format).
    pub messages: &'a [Value],
    /// Tools (OpenAI `tools` format).
    pub tools: &'a [Value],
}

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolCall {
    /// The model's id for the call.
    pub id: String,
    /// Tool name.
    pub name: String,
    /// Arguments as the model wrote them (should be a JSON object).
    pub arguments: String,
}

/// Token usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Completion tokens.
    pub completion_tokens: u32,
}

/// What the model answered.
#[derive(Debug, Clone)]
pub struct ModelReply {
    /// Text, if any.
    pub content: Option<String>,
    /// Tool calls, if any.
    pub tool_calls: Vec<ToolCall>,
    /// Usage.
    pub usage: Usage,
    /// The raw chat-completion object.
    pub raw: Value,
}

/// A failed model call.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// No endpoint is configured for the `openai` provider.
    #[error(
        "the agent uses provider openai but NITEJAR_MODEL_BASE_URL (or OPENAI_BASE_URL) is not set"
    )]
    NotConfigured,
    /// The endpoint could not be reached or answered with an error status.
    #[error("the model endpoint failed: {0}")]
    Endpoint(String),
    /// The answer was not a chat completion.
    #[error("the model endpoint answered something that is not a chat completion: {0}")]
    Malformed(String),
}

/// Calls models; one per process.
pub struct ModelClient {
    http: reqwest::Client,
    base_url: Option<String>,
    api_key: Option<String>,
}

impl ModelClient {
    /// A client for the configured endpoint (if any).
    pub fn new(base_url: Option<String>, api_key: Option<String>) -> ModelClient {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        ModelClient {
            http,
            base_url: base_url.map(|u| u.trim_end_matches('/').to_string()),
            api_key,
        }
    }

    /// Makes one call (two retries on 429, 5xx and connection errors for `openai`).
    pub async fn complete(
        &self,
        provider: Provider,
        req: &ChatRequest<'_>,
    ) -> Result<ModelReply, ModelError> {
        let raw = match provider {
            Provider::Offline => offline_completion(req),
            Provider::Openai => self.openai(req).await?,
        };
        parse_completion(raw)
    }

    async fn openai(&self, req: &ChatRequest<'_>) -> Result<Value, ModelError> {
        let base = self.base_url.as_deref().ok_or(ModelError::NotConfigured)?;
        let mut body = json!({
            "model": req.model,
            "messages": req.messages,
            "temperature": req.temperature,
            "max_tokens": req.max_tokens,
        });
        if !req.tools.is_empty() {
            body["tools"] = Value::from(req.tools.to_vec());
        }
        let url = format!("{base}/chat/completions");
        let mut last = String::new();
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
            }
            let mut r = self.http.post(&url).json(&body);
            if let Some(k) = &self.api_key {
                r = r.bearer_auth(k);
            }
            let resp = match r.send().await {
                Ok(resp) => resp,
                Err(e) => {
                    last = format!("{}", e.without_url());
                    continue;
                }
            };
            let status = resp.status();
            let bytes = read_limited(resp).await?;
            if status.is_success() {
                return serde_json::from_slice(&bytes)
                    .map_err(|e| ModelError::Malformed(e.to_string()));
            }
            last = format!(
                "status {status}: {}",
                nitejar_sandbox::capabilities::log::sanitize(&String::from_utf8_lossy(&bytes), 300)
            );
            if !(status.as_u16() == 429 || status.is_server_error()) {
                break;
            }
        }
        Err(ModelError::Endpoint(last))
    }
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, ModelError> {
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| ModelError::Endpoint(format!("{}", e.without_url())))?
    {
        if out.len() + chunk.len() > MAX_MODEL_RESPONSE_BYTES {
            return Err(ModelError::Malformed(format!(
                "the answer is larger than {MAX_MODEL_RESPONSE_BYTES} bytes"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Reads a chat-completion object.
pub fn parse_completion(raw: Value) -> Result<ModelReply, ModelError> {
    let msg = raw
        .pointer("/choices/0/message")
        .ok_or_else(|| ModelError::Malformed("no choices[0].message".into()))?;
    let content = msg
        .get("content")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let mut tool_calls = Vec::new();
    if let Some(calls) = msg.get("tool_calls").and_then(Value::as_array) {
        for (i, c) in calls.iter().enumerate() {
            let name = c
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| ModelError::Malformed(format!("tool_calls[{i}] has no name")))?;
            let arguments = match c.pointer("/function/arguments") {
                Some(Value::String(s)) => s.clone(),
                Some(v @ Value::Object(_)) => v.to_string(),
                _ => "{}".into(),
            };
            let id = c
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("call_{i}"));
            tool_calls.push(ToolCall {
                id,
                name: name.to_string(),
                arguments,
            });
        }
    }
    let number = |p: &str| raw.pointer(p).and_then(Value::as_u64).unwrap_or(0) as u32;
    let usage = Usage {
        prompt_tokens: number("/usage/prompt_tokens"),
        completion_tokens: number("/usage/completion_tokens"),
    };
    Ok(ModelReply {
        content,
        tool_calls,
        usage,
        raw,
    })
}

/// The offline model's answer, as a chat-completion object.
pub fn offline_completion(req: &ChatRequest<'_>) -> Value {
    let offered: Vec<&str> = req
        .tools
        .iter()
        .filter_map(|t| t.pointer("/function/name").and_then(Value::as_str))
        .collect();
    let last_role = req
        .messages
        .last()
        .and_then(|m| m.get("role"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let (content, tool_calls) = if last_role == "tool" {
        (Some(tool_results_text(req.messages)), Vec::new())
    } else {
        let user = req
            .messages
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            .and_then(|m| m.get("content"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let calls: Vec<Value> = user
            .lines()
            .filter_map(|l| l.trim().strip_prefix("/tool "))
            .filter_map(|rest| {
                let rest = rest.trim();
                let (name, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, "{}"));
                offered.contains(&name).then(|| (name, args.trim()))
            })
            .enumerate()
            .map(|(i, (name, args))| {
                json!({
                    "id": format!("call_offline_{i}"),
                    "type": "function",
                    "function": { "name": name, "arguments": args },
                })
            })
            .collect();
        if calls.is_empty() {
            (Some(format!("Received: {user}")), calls)
        } else {
            (None, calls)
        }
    };
    let mut message = json!({ "role": "assistant", "content": content });
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::from(tool_calls);
    }
    let words = |s: &str| s.split_whitespace().count() as u64;
    let prompt_tokens: u64 = req
        .messages
        .iter()
        .filter_map(|m| m.get("content").and_then(Value::as_str))
        .map(words)
        .sum();
    let completion_tokens = message
        .get("content")
        .and_then(Value::as_str)
        .map_or(0, words);
    json!({
        "id": "offline",
        "object": "chat.completion",
        "model": req.model,
        "choices": [{ "index": 0, "message": message, "finish_reason": "stop" }],
        "usage": { "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens },
    })
}

/// `<tool>: <output>` for each tool result after the last assistant message.
fn tool_results_text(messages: &[Value]) -> String {
    let start = messages
        .iter()
        .rposition(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
        .unwrap_or(0);
    let names = messages[start]
        .get("tool_calls")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    messages[start + 1..]
        .iter()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("tool"))
        .map(|m| {
            let id = m.get("tool_call_id").and_then(Value::as_str).unwrap_or("");
            let name = names
                .iter()
                .find(|c| c.get("id").and_then(Value::as_str) == Some(id))
                .and_then(|c| c.pointer("/function/name"))
                .and_then(Value::as_str)
                .unwrap_or("tool");
            let out = m.get("content").and_then(Value::as_str).unwrap_or("");
            format!("{name}: {out}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str) -> Value {
        json!({"type": "function", "function": {"name": name, "description": "", "parameters": {}}})
    }

    #[test]
    fn offline_model_calls_offered_tools_then_answers_with_their_results() {
        let tools = [tool("lookup")];
        let mut messages = vec![
            json!({"role": "system", "content": "be brief"}),
            json!({"role": "user", "content": "hi\n/tool lookup {\"q\":\"x\"}\n/tool missing {}"}),
        ];
        let req = ChatRequest {
            model: "m",
            temperature: 0.0,
            max_tokens: 10,
            messages: &messages,
            tools: &tools,
        };
        let reply = parse_completion(offline_completion(&req)).unwrap();
        assert_eq!(reply.content, None);
        assert_eq!(reply.tool_calls.len(), 1);
        assert_eq!(reply.tool_calls[0].name, "lookup");
        assert_eq!(reply.tool_calls[0].arguments, "{\"q\":\"x\"}");
        messages.push(reply.raw["choices"][0]["message"].clone());
        messages
            .push(json!({"role": "tool", "tool_call_id": reply.tool_calls[0].id, "content": "42"}));
        let req = ChatRequest {
            model: "m",
            temperature: 0.0,
            max_tokens: 10,
            messages: &messages,
            tools: &tools,
        };
        let reply = parse_completion(offline_completion(&req)).unwrap();
        assert_eq!(reply.content.as_deref(), Some("lookup: 42"));
        assert!(reply.tool_calls.is_empty());
    }

    #[test]
    fn offline_model_echoes_without_tool_lines() {
        let messages = [json!({"role": "user", "content": "hello"})];
        let req = ChatRequest {
            model: "m",
            temperature: 0.0,
            max_tokens: 10,
            messages: &messages,
            tools: &[],
        };
        let reply = parse_completion(offline_completion(&req)).unwrap();
        assert_eq!(reply.content.as_deref(), Some("Received: hello"));
        assert!(reply.usage.prompt_tokens > 0);
    }

    #[test]
    fn malformed_completions_are_errors() {
        assert!(parse_completion(json!({"choices": []})).is_err());
        assert!(
            parse_completion(json!({"choices": [{"message": {"tool_calls": [{"function": {}}]}}]}))
                .is_err()
        );
    }
}
