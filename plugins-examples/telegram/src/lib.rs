//! Built-in Telegram integration (`builtin.telegram`, type `telegram`), a sandboxed component
//! like any third-party plugin: its only network grant is `api.telegram.org`.
//!
//! Inbound (`parse-webhook`), one Bot API `Update` per request, read as Nitejar reads it (keys
//! and payload fields from `tests/fixtures/nitejar/nitejar-data.md`, so history imported from Nitejar
//! continues):
//! - with `webhookSecret` set, the `X-Telegram-Bot-Api-Secret-Token` header must match
//!   (compared in constant time over SHA-256 digests), else the host answers 401;
//! - `message` and `edited_message` become work items when they carry trimmed text, a caption
//!   or an attachment (photo, document, audio, voice, video, video note, animation, sticker:
//!   one `payload.attachments` item per kind, the largest photo size, each described in the
//!   text the agent reads); the replied-to message is quoted as context; the first `/word` of
//!   the text is the work item's `command` (`/clear@bot` -> `clear`);
//! - ignored: messages from bots, channel posts, other update types, chats not in
//!   `allowedChatIds` (when set), messages with nothing to answer;
//! - idempotency key `telegram:<update_id>` (the host scopes it per instance); session key
//!   `telegram:<chat>`, or `telegram:<chat>:thread:<thread>` when the message has a thread
//!   (unless `useMessageThreads` is false); source ref `telegram:<chat>[:<thread>]:<message>`;
//!   title the text, else `<kind> from <chat name>`, cut to 100 characters.
//!
//! Outbound: `acknowledge-receipt` reacts with 👀 and shows "typing"; `post-response` shows
//! "typing", sends the reply as Telegram HTML converted from Markdown (resent as plain text if
//! Telegram refuses the markup), split into pieces under Telegram's 4096-character limit, as a
//! reply to the user's message and in its topic, then clears the 👀 reaction.
//! `test-connection` calls `getMe`.

mod format;

use nitejar_plugin_sdk::http::{HttpError, Request, Response};
use nitejar_plugin_sdk::integration::*;
use nitejar_plugin_sdk::{Contributions, Integration, Plugin, delivery, export_plugin, log};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const TYPE: &str = "telegram";
const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";
const DEFAULT_API: &str = "https://api.telegram.org";
const ACK_EMOJI: &str = "👀";

/// The integration (public for the native fuzz targets in `fuzz/`).
pub struct Telegram;

impl Plugin for Telegram {
    fn contributions() -> Contributions {
        Contributions::integrations(&[TYPE])
    }
}

/// An instance's configuration (the field names of the original Telegram integration).
#[derive(Debug, Clone, PartialEq)]
struct Config {
    bot_token: String,
    webhook_secret: Option<String>,
    allowed_chat_ids: Vec<i64>,
    use_message_threads: bool,
    api_base_url: String,
}

impl Config {
    /// Parses and checks a config; every problem is an operator-facing sentence.
    fn parse(config: &str) -> Result<Config, Vec<String>> {
        let v: Value = serde_json::from_str(config)
            .map_err(|e| vec![format!("the config is not JSON: {e}")])?;
        let mut problems = Vec::new();
        let bot_token = v.get("botToken").and_then(Value::as_str).unwrap_or("");
        let token_ok = bot_token.split_once(':').is_some_and(|(id, secret)| {
            !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_digit())
                && secret.len() >= 20
                && secret
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
        if bot_token.is_empty() {
            problems.push("`botToken` is required (from @BotFather)".to_string());
        } else if !token_ok {
            problems.push("`botToken` does not look like a bot token (`<digits>:<secret>`)".into());
        }
        let webhook_secret = match v.get("webhookSecret") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => {
                if s.len() > 256
                    || !s
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                {
                    problems.push(
                        "`webhookSecret` must be 1-256 characters of A-Z, a-z, 0-9, _ and - \
                         (Telegram's rule for secret_token)"
                            .into(),
                    );
                }
                Some(s.clone())
            }
            Some(_) => {
                problems.push("`webhookSecret` must be a string".into());
                None
            }
        };
        let mut allowed_chat_ids = Vec::new();
        match v.get("allowedChatIds") {
            None | Some(Value::Null) => {}
            Some(Value::Array(ids)) => {
                for id in ids {
                    match id
                        .as_i64()
                        .or_else(|| id.as_str().and_then(|s| s.trim().parse().ok()))
                    {
                        Some(n) => allowed_chat_ids.push(n),
                        None => problems.push(format!("`allowedChatIds`: {id} is not a chat id")),
                    }
                }
            }
            Some(_) => problems.push("`allowedChatIds` must be a list of chat ids".into()),
        }
        let use_message_threads = v
            .get("useMessageThreads")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let api_base_url = match v.get("apiBaseUrl").and_then(Value::as_str) {
            None | Some("") => DEFAULT_API.to_string(),
            Some(u) if u.starts_with("https://") || u.starts_with("http://") => {
                u.trim_end_matches('/').to_string()
            }
            Some(_) => {
                problems.push("`apiBaseUrl` must be an http(s) URL".into());
                DEFAULT_API.to_string()
            }
        };
        if problems.is_empty() {
            Ok(Config {
                bot_token: bot_token.to_string(),
                webhook_secret,
                allowed_chat_ids,
                use_message_threads,
                api_base_url,
            })
        } else {
            Err(problems)
        }
    }

    fn from_instance(config: &str) -> Result<Config, PluginError> {
        Config::parse(config).map_err(|p| PluginError::new("invalid_config", p.join("; ")))
    }
}

/// Constant-time comparison of a presented secret with the configured one (digests, so the
/// comparison does not stop early on a length mismatch either).
fn secret_matches(presented: &str, expected: &str) -> bool {
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    bool::from(a.ct_eq(&b))
}

fn header<'a>(req: &'a WebhookRequest, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

fn display_name(user: &Value) -> String {
    let first = user.get("first_name").and_then(Value::as_str).unwrap_or("");
    let last = user.get("last_name").and_then(Value::as_str).unwrap_or("");
    let name = format!("{first} {last}").trim().to_string();
    if !name.is_empty() {
        return name;
    }
    match user.get("username").and_then(Value::as_str) {
        Some(u) => format!("@{u}"),
        None => "someone".into(),
    }
}

/// The largest photo size (by pixels, then bytes).
fn largest_photo(photos: &[Value]) -> Option<&Value> {
    photos.iter().max_by_key(|p| {
        let w = p.get("width").and_then(Value::as_u64).unwrap_or(0);
        let h = p.get("height").and_then(Value::as_u64).unwrap_or(0);
        let size = p.get("file_size").and_then(Value::as_u64).unwrap_or(0);
        (w * h, size)
    })
}

/// The attachment kinds a message can carry, in the order Nitejar lists them (the first one
/// present names an attachment-only message's title).
const ATTACHMENT_KINDS: [&str; 8] = [
    "photo",
    "document",
    "audio",
    "voice",
    "video",
    "video_note",
    "animation",
    "sticker",
];

/// Bot API field -> payload field, for the optional attachment fields (present only when the
/// Bot API sent them).
const ATTACHMENT_FIELDS: [(&str, &str); 11] = [
    ("file_name", "fileName"),
    ("mime_type", "mimeType"),
    ("width", "width"),
    ("height", "height"),
    ("file_size", "fileSize"),
    ("duration", "duration"),
    ("performer", "performer"),
    ("title", "title"),
    ("emoji", "emoji"),
    ("is_animated", "isAnimated"),
    ("is_video", "isVideo"),
];

/// One item per attachment kind present: `{type, fileId, fileUniqueId, ...}` (Nitejar's shape;
/// for photos the largest size, for a video note width = height = `length`).
fn attachments(msg: &Value) -> Vec<Value> {
    let caption = msg.get("caption").and_then(Value::as_str);
    ATTACHMENT_KINDS
        .iter()
        .filter_map(|kind| {
            let raw = msg.get(*kind)?;
            let file = match raw {
                Value::Array(sizes) => largest_photo(sizes)?,
                Value::Object(_) => raw,
                _ => return None,
            };
            let file_id = file.get("file_id").and_then(Value::as_str)?;
            let mut item = serde_json::Map::new();
            item.insert("type".into(), json!(kind));
            item.insert("fileId".into(), json!(file_id));
            item.insert(
                "fileUniqueId".into(),
                file.get("file_unique_id").cloned().unwrap_or(Value::Null),
            );
            for (from, to) in ATTACHMENT_FIELDS {
                if let Some(v) = file.get(from).filter(|v| !v.is_null()) {
                    item.insert(to.into(), v.clone());
                }
            }
            // A video note is square: its side is `length`.
            if let Some(side) = file.get("length").filter(|v| !v.is_null()) {
                item.insert("width".into(), side.clone());
                item.insert("height".into(), side.clone());
            }
            if let Some(c) = caption {
                item.insert("caption".into(), json!(c));
            }
            Some(Value::Object(item))
        })
        .collect()
}

/// A line the agent reads for an attachment: `[Video note attached: 240x240, 9 s, file_id …]`.
fn describe_attachment(a: &Value) -> String {
    let kind = a["type"].as_str().unwrap_or("file");
    let mut label: String = kind.replace('_', " ");
    if let Some(first) = label.get(..1) {
        label = first.to_uppercase() + &label[1..];
    }
    let mut parts = Vec::new();
    if let (Some(w), Some(h)) = (a["width"].as_u64(), a["height"].as_u64()) {
        parts.push(format!("{w}x{h}"));
    }
    if let Some(d) = a["duration"].as_u64() {
        parts.push(format!("{d} s"));
    }
    for key in ["fileName", "mimeType", "emoji"] {
        if let Some(s) = a[key].as_str() {
            parts.push(s.to_string());
        }
    }
    parts.push(format!("file_id {}", a["fileId"].as_str().unwrap_or("")));
    format!("[{label} attached: {}]", parts.join(", "))
}

/// The chat's name as Nitejar shows it: its title, else the username, else `Chat <id>`.
fn chat_name(chat: &Value, chat_id: i64) -> String {
    chat.get("title")
        .or_else(|| chat.get("username"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| format!("Chat {chat_id}"))
}

/// Nitejar's title rule: at most 100 characters, else the first 97 and `...`.
fn cut_title(title: &str, max: usize) -> String {
    if title.chars().count() <= max {
        return title.to_string();
    }
    let mut out: String = title.chars().take(max - 3).collect();
    out.push_str("...");
    out
}

/// The first `^/(\w+)` of the text (`/clear@nitejar_bot args` -> `clear`), as Nitejar reads it.
fn command_of(text: &str) -> Option<String> {
    let rest = text.strip_prefix('/')?;
    let name: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

fn first_line(text: &str, max: usize) -> String {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut out: String = line.trim().chars().take(max).collect();
    if line.trim().chars().count() > max {
        out.push('…');
    }
    out
}

/// Turns one `message` (or `edited_message`) into a work item, or says why not. The keys and
/// payload fields are Nitejar's (`tests/fixtures/nitejar/nitejar-data.md`), so history imported from
/// Nitejar continues in the same sessions and a redelivery is recognised.
fn message_outcome(cfg: &Config, update_id: i64, msg: &Value, edited: bool) -> ParseOutcome {
    let ignored = |why: &str| ParseOutcome::Ignored(why.to_string());
    let Some(from) = msg.get("from") else {
        return ignored("message without a sender");
    };
    if from.get("is_bot").and_then(Value::as_bool).unwrap_or(false) {
        return ignored("sent by a bot");
    }
    let chat = msg.get("chat").cloned().unwrap_or(Value::Null);
    let Some(chat_id) = chat.get("id").and_then(Value::as_i64) else {
        return ignored("message without a chat");
    };
    if !cfg.allowed_chat_ids.is_empty() && !cfg.allowed_chat_ids.contains(&chat_id) {
        return ignored("chat not in allowedChatIds");
    }
    let Some(message_id) = msg.get("message_id").and_then(Value::as_i64) else {
        return ignored("message without an id");
    };
    let body = msg
        .get("text")
        .or_else(|| msg.get("caption"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim();
    let attachments = attachments(msg);
    if body.is_empty() && attachments.is_empty() {
        return ignored("no text, caption or attachment");
    }
    let command = command_of(body);
    // Nitejar keys a session by the message's thread whenever it has one (threads on).
    let thread_id = msg
        .get("message_thread_id")
        .and_then(Value::as_i64)
        .filter(|_| cfg.use_message_threads);
    // Replies go into the thread only for forum topics (a reply thread in a plain supergroup
    // is followed by replying to the message).
    let topic_id = thread_id.filter(|_| {
        msg.get("is_topic_message")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    });
    let reply = msg.get("reply_to_message").map(|r| {
        let from = r.get("from").cloned().unwrap_or(Value::Null);
        json!({
            "messageId": r.get("message_id"),
            "from": display_name(&from),
            "fromBot": from.get("is_bot").and_then(Value::as_bool).unwrap_or(false),
            "text": r.get("text").or_else(|| r.get("caption")).and_then(Value::as_str).unwrap_or(""),
        })
    });
    let sender_name = display_name(from);
    let mut text = String::new();
    if let Some(r) = &reply {
        let quoted = first_line(r["text"].as_str().unwrap_or(""), 200);
        text.push_str(&format!(
            "[In reply to {}: \"{}\"]\n",
            r["from"].as_str().unwrap_or(""),
            quoted
        ));
    }
    text.push_str(body);
    for a in &attachments {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&describe_attachment(a));
    }
    let chat_name = chat_name(&chat, chat_id);
    let title = if body.is_empty() {
        let kind = attachments[0]["type"].as_str().unwrap_or("attachment");
        cut_title(&format!("{kind} from {chat_name}"), 100)
    } else {
        cut_title(body, 100)
    };
    let (session_key, source_ref) = match thread_id {
        Some(t) => (
            format!("telegram:{chat_id}:thread:{t}"),
            format!("telegram:{chat_id}:{t}:{message_id}"),
        ),
        None => (
            format!("telegram:{chat_id}"),
            format!("telegram:{chat_id}:{message_id}"),
        ),
    };
    let mut context = json!({ "chatId": chat_id, "messageId": message_id });
    if let Some(t) = topic_id {
        context["messageThreadId"] = json!(t);
    }
    if let Some(r) = reply.as_ref().and_then(|r| r["messageId"].as_i64()) {
        context["replyToMessageId"] = json!(r);
    }
    let sender_id = from.get("id").map(|v| v.to_string()).unwrap_or_default();
    let username = from.get("username").and_then(Value::as_str);
    let payload = json!({
        "body": body,
        "source": "telegram",
        "actor": {
            "kind": "human",
            "externalId": sender_id,
            "handle": username,
            "displayName": sender_name,
            "source": "telegram",
        },
        "chatId": chat_id,
        "chatType": chat.get("type"),
        "chatName": chat_name,
        "messageId": message_id,
        "messageThreadId": thread_id,
        "senderId": from.get("id"),
        "senderName": sender_name,
        "senderUsername": username,
        "timestamp": msg.get("date"),
        "replyToMessageId": reply.as_ref().map(|r| r["messageId"].clone()),
        "replyToMessageText": reply.as_ref().map(|r| r["text"].clone()),
        "attachments": attachments,
        "updateId": update_id,
        "edited": edited,
        "isForum": chat.get("is_forum").and_then(Value::as_bool).unwrap_or(false),
        "replyTo": reply,
    });
    ParseOutcome::WorkItem(InboundMessage {
        title,
        text,
        session_key,
        source_ref,
        sender: Some(Sender {
            id: sender_id,
            name: sender_name,
            is_bot: false,
        }),
        command,
        idempotency_key: Some(format!("telegram:{update_id}")),
        payload: payload.to_string(),
        response_context: Some(context.to_string()),
    })
}

/// A failed Bot API call.
#[derive(Debug)]
enum ApiError {
    /// Telegram answered with `ok: false`.
    Api {
        status: u16,
        description: String,
        retry_after: Option<u64>,
    },
    /// The request did not get an answer (denied by the host, transport failure).
    Http(HttpError),
}

impl ApiError {
    /// Whether the outcome is known to be "not sent": Telegram answered, or the request never
    /// left the host. A transport failure may have happened after Telegram got the message.
    fn answered(&self) -> bool {
        !matches!(self, ApiError::Http(HttpError::Transport(_)))
    }

    fn into_plugin_error(self, method: &str) -> PluginError {
        match self {
            ApiError::Http(e) => e.into(),
            ApiError::Api {
                status,
                description,
                retry_after,
            } => {
                let msg = format!("Telegram {method} failed ({status}): {description}");
                if status == 429 || status >= 500 {
                    let wait = retry_after.map(|s| format!(" (retry after {s} s)"));
                    PluginError::retryable("upstream_error", msg + &wait.unwrap_or_default())
                } else {
                    PluginError::new("upstream_rejected", msg)
                }
            }
        }
    }
}

/// Calls a Bot API method. The token is part of the URL, never of an error message.
fn call(cfg: &Config, method: &str, body: &Value) -> Result<Value, ApiError> {
    let url = format!("{}/bot{}/{method}", cfg.api_base_url, cfg.bot_token);
    let resp: Response = Request::post(&url)
        .json(body)
        .send()
        .map_err(ApiError::Http)?;
    let parsed: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
    if (200..300).contains(&resp.status) && parsed.get("ok").and_then(Value::as_bool) == Some(true)
    {
        return Ok(parsed.get("result").cloned().unwrap_or(Value::Null));
    }
    Err(ApiError::Api {
        status: resp.status,
        description: parsed
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("no description")
            .chars()
            .take(300)
            .collect(),
        retry_after: parsed
            .pointer("/parameters/retry_after")
            .and_then(Value::as_u64),
    })
}

/// Calls a method whose failure must not fail the operation (typing, reactions).
fn best_effort(cfg: &Config, method: &str, body: &Value) {
    if let Err(e) = call(cfg, method, body) {
        let why = match e {
            ApiError::Http(e) => e.to_string(),
            ApiError::Api {
                status,
                description,
                ..
            } => format!("{status} {description}"),
        };
        log::warn(&format!("Telegram {method} failed (ignored): {why}"));
    }
}

/// Where a reply goes, from the work item's response context.
struct Target {
    chat_id: i64,
    message_id: Option<i64>,
    thread_id: Option<i64>,
}

impl Target {
    fn from_context(context: Option<&str>) -> Result<Target, PluginError> {
        let ctx: Value = context
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or(Value::Null);
        let chat_id = ctx.get("chatId").and_then(Value::as_i64).ok_or_else(|| {
            PluginError::new("invalid_input", "the response context has no chatId")
        })?;
        Ok(Target {
            chat_id,
            message_id: ctx.get("messageId").and_then(Value::as_i64),
            thread_id: ctx.get("messageThreadId").and_then(Value::as_i64),
        })
    }

    fn base(&self) -> Value {
        let mut body = json!({ "chat_id": self.chat_id });
        if let Some(t) = self.thread_id {
            body["message_thread_id"] = json!(t);
        }
        body
    }
}

fn is_markup_error(e: &ApiError) -> bool {
    matches!(e, ApiError::Api { status: 400, description, .. }
        if description.contains("can't parse entities") || description.contains("can't find end"))
}

/// KV key holding how many pieces of a reply were already sent (so a retried delivery of a
/// long reply does not repeat the pieces Telegram accepted).
impl Integration for Telegram {
    fn describe() -> Vec<Descriptor> {
        vec![Descriptor {
            integration_type: TYPE.into(),
            display_name: "Telegram".into(),
            description: "A Telegram bot: messages in groups, topics and private chats become \
                          work items; the agent replies in the same chat and topic."
                .into(),
            icon: "telegram".into(),
            category: Category::Messaging,
            response_mode: ResponseMode::Final,
            config_schema: json!({
                "type": "object",
                "required": ["botToken"],
                "properties": {
                    "botToken": {
                        "type": "string", "minLength": 20, "title": "Bot token",
                        "description": "From @BotFather, e.g. 123456:ABC-DEF..."
                    },
                    "webhookSecret": {
                        "type": "string", "pattern": "^[A-Za-z0-9_-]{1,256}$",
                        "title": "Webhook secret token",
                        "description": "Pass the same value as secret_token to setWebhook; requests without it are refused."
                    },
                    "allowedChatIds": {
                        "type": "array", "items": {"type": ["integer", "string"]},
                        "title": "Allowed chat ids",
                        "description": "When set, messages from other chats are ignored."
                    },
                    "useMessageThreads": {
                        "type": "boolean", "default": true,
                        "title": "Reply inside forum topics"
                    },
                    "apiBaseUrl": {
                        "type": "string", "title": "Bot API server",
                        "description": "Default https://api.telegram.org. Any other host must also be granted to the plugin."
                    }
                },
                // Fields Nitejar or a newer version wrote are kept, not refused.
                "additionalProperties": true
            })
            .to_string(),
            ui_schema: Some(
                json!({
                    "ui:order": ["botToken", "webhookSecret", "allowedChatIds", "useMessageThreads", "apiBaseUrl"],
                    "botToken": {"ui:widget": "password"},
                    "webhookSecret": {"ui:widget": "password"},
                    "apiBaseUrl": {"ui:advanced": true}
                })
                .to_string(),
            ),
            sensitive_fields: vec!["botToken".into(), "webhookSecret".into()],
        }]
    }

    fn validate_config(_t: String, config: String) -> Result<(), Vec<String>> {
        Config::parse(&config).map(|_| ())
    }

    fn parse_webhook(instance: Instance, req: WebhookRequest) -> Result<ParseOutcome, PluginError> {
        let cfg = Config::from_instance(&instance.config)?;
        if let Some(secret) = &cfg.webhook_secret {
            let presented = header(&req, SECRET_HEADER).unwrap_or("");
            if !secret_matches(presented, secret) {
                return Ok(ParseOutcome::Unauthorized(
                    "the X-Telegram-Bot-Api-Secret-Token header does not match".into(),
                ));
            }
        }
        let update: Value = match serde_json::from_slice(&req.body) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return Ok(bad_request(
                    "invalid_body",
                    "the body is not a Telegram update (a JSON object)",
                ));
            }
        };
        let update_id = update.get("update_id").and_then(Value::as_i64).unwrap_or(0);
        if let Some(msg) = update.get("message") {
            return Ok(message_outcome(&cfg, update_id, msg, false));
        }
        if let Some(msg) = update.get("edited_message") {
            return Ok(message_outcome(&cfg, update_id, msg, true));
        }
        let why = if update.get("channel_post").is_some()
            || update.get("edited_channel_post").is_some()
        {
            "channel post".to_string()
        } else {
            let kinds: Vec<&str> = update
                .as_object()
                .map(|o| {
                    o.keys()
                        .map(String::as_str)
                        .filter(|k| *k != "update_id")
                        .collect()
                })
                .unwrap_or_default();
            format!("unsupported update type: {}", kinds.join(", "))
        };
        Ok(ParseOutcome::Ignored(why))
    }

    fn post_response(
        instance: Instance,
        _work_item_id: String,
        content: String,
        response_context: Option<String>,
        options: PostOptions,
    ) -> Result<PostResult, PluginError> {
        let cfg = Config::from_instance(&instance.config)?;
        let target = Target::from_context(response_context.as_deref())?;
        let pieces = format::chunks(&content);
        if pieces.is_empty() {
            return Err(PluginError::new("invalid_input", "the reply is empty"));
        }
        let mut guard = delivery::Guard::new(&options);
        let n = pieces.len();
        if (0..n).all(|i| guard.part(i) == delivery::Part::Sent) {
            // Sent by an earlier attempt whose outcome the host did not record.
            return Ok(PostResult {
                delivered: true,
                external_id: guard
                    .external_id()
                    .map(|id| format!("{}:{id}", target.chat_id)),
                detail: Some("already sent by an earlier attempt".into()),
            });
        }
        let mut action = target.base();
        action["action"] = json!("typing");
        best_effort(&cfg, "sendChatAction", &action);
        let mut sent_now = 0;
        let mut plain = 0;
        // Telegram cannot be asked whether a message arrived: a part handed over without an
        // answer is not sent again (at most once), and the result says so.
        let mut uncertain = None;
        for (i, piece) in pieces.iter().enumerate() {
            match guard.part(i) {
                delivery::Part::Sent => continue,
                delivery::Part::Uncertain => {
                    uncertain = Some(i);
                    guard.sent(i, None);
                    continue;
                }
                delivery::Part::NotSent => {}
            }
            let mut body = target.base();
            body["text"] = json!(format::to_telegram_html(piece));
            body["parse_mode"] = json!("HTML");
            if let (0, Some(m)) = (i, target.message_id) {
                body["reply_parameters"] =
                    json!({ "message_id": m, "allow_sending_without_reply": true });
            }
            guard.sending(i);
            let sent = match call(&cfg, "sendMessage", &body) {
                Err(e) if is_markup_error(&e) => {
                    log::warn("Telegram refused the HTML reply; sending it as plain text");
                    plain += 1;
                    body["text"] = json!(piece);
                    if let Some(o) = body.as_object_mut() {
                        o.remove("parse_mode");
                    }
                    call(&cfg, "sendMessage", &body)
                }
                other => other,
            };
            let sent = match sent {
                Ok(v) => v,
                Err(e) => {
                    if e.answered() {
                        guard.not_sent(i);
                    }
                    return Err(e.into_plugin_error("sendMessage"));
                }
            };
            sent_now += 1;
            let id = sent.get("message_id").and_then(Value::as_i64);
            guard.sent(i, id.map(|id| id.to_string()).as_deref());
        }
        if sent_now == 0
            && let Some(i) = uncertain
        {
            return Err(PluginError::new(
                "delivery_uncertain",
                format!(
                    "part {} of {n} of this reply was handed to Telegram by an earlier attempt \
                     that got no answer; Telegram cannot be asked whether it arrived, so it is \
                     not sent again (at most once)",
                    i + 1
                ),
            ));
        }
        if let Some(m) = target.message_id {
            best_effort(
                &cfg,
                "setMessageReaction",
                &json!({ "chat_id": target.chat_id, "message_id": m, "reaction": [] }),
            );
        }
        let mode = if plain > 0 { "plain text" } else { "HTML" };
        let mut detail = format!("{sent_now} message(s) sent as {mode}");
        if let Some(i) = uncertain {
            detail.push_str(&format!(
                "; part {} of {n} was handed to Telegram by an earlier attempt that got no \
                 answer and was not sent again (at most once)",
                i + 1
            ));
        }
        Ok(PostResult {
            delivered: true,
            external_id: guard
                .external_id()
                .map(|id| format!("{}:{id}", target.chat_id)),
            detail: Some(detail),
        })
    }

    fn acknowledge_receipt(
        instance: Instance,
        response_context: Option<String>,
    ) -> Result<(), PluginError> {
        let cfg = Config::from_instance(&instance.config)?;
        let target = Target::from_context(response_context.as_deref())?;
        if let Some(m) = target.message_id {
            best_effort(
                &cfg,
                "setMessageReaction",
                &json!({
                    "chat_id": target.chat_id,
                    "message_id": m,
                    "reaction": [{ "type": "emoji", "emoji": ACK_EMOJI }],
                }),
            );
        }
        let mut action = target.base();
        action["action"] = json!("typing");
        best_effort(&cfg, "sendChatAction", &action);
        Ok(())
    }

    fn test_connection(_t: String, config: String) -> Result<ConnectionStatus, PluginError> {
        let cfg = match Config::parse(&config) {
            Ok(c) => c,
            Err(p) => {
                return Ok(ConnectionStatus {
                    ok: false,
                    detail: Some(p.join("; ")),
                });
            }
        };
        Ok(match call(&cfg, "getMe", &json!({})) {
            Ok(me) => ConnectionStatus {
                ok: true,
                detail: Some(format!(
                    "connected as @{} (bot id {})",
                    me.get("username").and_then(Value::as_str).unwrap_or("?"),
                    me.get("id").map(Value::to_string).unwrap_or_default()
                )),
            },
            Err(ApiError::Api {
                status,
                description,
                ..
            }) => ConnectionStatus {
                ok: false,
                detail: Some(format!(
                    "Telegram refused getMe ({status}): {description}; check the bot token"
                )),
            },
            Err(ApiError::Http(e)) => ConnectionStatus {
                ok: false,
                detail: Some(format!("could not reach the Bot API: {e}")),
            },
        })
    }
}

export_plugin!(Telegram: Integration);

#[cfg(test)]
mod tests;
