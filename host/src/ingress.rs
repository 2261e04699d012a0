//! Webhook ingress: `POST /api/webhooks/plugins/{type}/{instanceId}` -> parse-webhook in the
//! sandbox -> an idempotent work item.
//!
//! Outcomes: unknown or disabled instance 404; type mismatch 400; body over the limit 413
//! (enforced by the router); the plugin reports a bad signature 401; the plugin fails (trap,
//! timeout, limit, error) 502 with a receipt; the host is at capacity 503. The idempotency key
//! (the plugin's, else the source reference) is scoped per instance and made atomic by the
//! database's primary key, so concurrent redeliveries create exactly one work item.

use crate::app::App;
use crate::db::{CreateOutcome, NewWorkItem};
use crate::runtime::PluginFailure;
use crate::runtime::bindings::exports::nitejar::plugin::integration::{self as wit, ParseOutcome};
use crate::runtime::bindings::nitejar::plugin::types::Header;
use serde_json::json;
use std::sync::Arc;

/// Longest text fields of a parsed message the host stores.
const MAX_TITLE_BYTES: usize = 512;

/// The HTTP answer to a webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookReply {
    /// Status code.
    pub status: u16,
    /// Extra headers (from a plugin's direct response).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl WebhookReply {
    fn json(status: u16, value: serde_json::Value) -> WebhookReply {
        WebhookReply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: value.to_string().into_bytes(),
        }
    }
    fn error(status: u16, code: &str, message: impl Into<String>) -> WebhookReply {
        Self::json(
            status,
            json!({ "error": { "code": code, "message": message.into() } }),
        )
    }
}

/// An inbound request as the router saw it.
pub struct InboundRequest {
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// Query string.
    pub query: String,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Raw body (already size-limited).
    pub body: Vec<u8>,
}

/// Handles one webhook delivery.
pub async fn handle_webhook(
    app: &Arc<App>,
    integration_type: &str,
    instance_id: &str,
    req: InboundRequest,
) -> WebhookReply {
    let instance = match app.db.get_instance(instance_id).await {
        Ok(Some(i)) if i.enabled => i,
        Ok(_) => {
            return WebhookReply::error(
                404,
                "unknown_instance",
                "no enabled integration instance with this id",
            );
        }
        Err(e) => {
            tracing::error!("webhook instance lookup failed: {e}");
            return WebhookReply::error(500, "internal", "internal error");
        }
    };
    if instance.integration_type != integration_type {
        return WebhookReply::error(
            400,
            "type_mismatch",
            format!("instance {instance_id} is not of type {integration_type:?}"),
        );
    }
    let Some(plugin) = app
        .registry
        .get(&instance.plugin_id)
        .filter(|p| p.descriptor(integration_type).is_some())
    else {
        return WebhookReply::error(
            503,
            "plugin_unavailable",
            "the plugin providing this integration is not enabled or failed to load",
        );
    };
    let config = match crate::instances::decrypt_config(
        app,
        &instance.config_json,
        plugin.descriptor(integration_type),
    ) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(instance.id = instance_id, "instance config unreadable: {e}");
            return WebhookReply::error(
                500,
                "internal",
                "the instance configuration could not be decrypted",
            );
        }
    };
    let wit_instance = wit::Instance {
        id: instance.id.clone(),
        integration_type: integration_type.into(),
        config,
    };
    let wit_request = wit::WebhookRequest {
        method: req.method,
        path: req.path,
        query: req.query,
        headers: req
            .headers
            .into_iter()
            .map(|(name, value)| Header { name, value })
            .collect(),
        body: req.body,
    };
    let runtime = app.runtime.clone();
    let call_plugin = plugin.clone();
    let timeout_ms = app.config.integration_timeout_ms;
    let outcome = tokio::task::spawn_blocking(move || {
        runtime.parse_webhook(&call_plugin, &wit_instance, &wit_request, timeout_ms)
    })
    .await;
    let outcome = match outcome {
        Ok(Ok(o)) => o,
        Ok(Err(PluginFailure::Busy)) => {
            return WebhookReply::error(503, "busy", "the host is at capacity; retry later");
        }
        Ok(Err(f)) => {
            // The caller is the outside world: name the kind only; details are in the receipt.
            return WebhookReply::error(
                502,
                "plugin_failed",
                format!(
                    "the integration plugin failed ({}); the operator can see why in its receipts",
                    f.kind()
                ),
            );
        }
        Err(e) => {
            tracing::error!("webhook task failed: {e}");
            return WebhookReply::error(500, "internal", "internal error");
        }
    };
    match outcome {
        ParseOutcome::Unauthorized(reason) => WebhookReply::error(401, "unauthorized", reason),
        ParseOutcome::Ignored(reason) => {
            WebhookReply::json(200, json!({ "ignored": true, "reason": reason }))
        }
        ParseOutcome::Respond(r) => {
            let ok = (200..300).contains(&r.status) || (400..500).contains(&r.status);
            if !ok {
                return WebhookReply::error(
                    502,
                    "plugin_failed",
                    format!("the plugin asked for status {}", r.status),
                );
            }
            WebhookReply {
                status: r.status,
                headers: r.headers.into_iter().map(|h| (h.name, h.value)).collect(),
                body: r.body,
            }
        }
        ParseOutcome::WorkItem(msg) => {
            create_work_item(app, &instance.id, integration_type, msg).await
        }
    }
}

async fn create_work_item(
    app: &App,
    instance_id: &str,
    integration_type: &str,
    msg: wit::InboundMessage,
) -> WebhookReply {
    if serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&msg.payload).is_err() {
        return WebhookReply::error(
            502,
            "plugin_failed",
            "the plugin returned a payload that is not a JSON object",
        );
    }
    if let Some(ctx) = &msg.response_context
        && serde_json::from_str::<serde_json::Value>(ctx).is_err()
    {
        return WebhookReply::error(
            502,
            "plugin_failed",
            "the plugin returned a response context that is not JSON",
        );
    }
    let key = msg
        .idempotency_key
        .clone()
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| msg.source_ref.clone());
    if key.is_empty() {
        return WebhookReply::error(
            502,
            "plugin_failed",
            "the plugin returned neither an idempotency key nor a source reference",
        );
    }
    let title: String = msg.title.chars().take(MAX_TITLE_BYTES).collect();
    let item = NewWorkItem {
        plugin_instance_id: instance_id.to_string(),
        integration_type: integration_type.to_string(),
        title,
        text: msg.text,
        session_key: msg.session_key,
        source_ref: msg.source_ref,
        sender_json: msg
            .sender
            .map(|s| json!({ "id": s.id, "name": s.name, "isBot": s.is_bot }).to_string()),
        command: msg.command,
        payload_json: msg.payload,
        response_context_json: msg.response_context,
    };
    match app.db.create_work_item_idempotent(&item, &key).await {
        Ok(CreateOutcome::Created(id)) => {
            WebhookReply::json(202, json!({ "workItemId": id, "duplicate": false }))
        }
        Ok(CreateOutcome::Duplicate(id)) => {
            WebhookReply::json(200, json!({ "workItemId": id, "duplicate": true }))
        }
        Err(e) => {
            tracing::error!("creating a work item failed: {e}");
            WebhookReply::error(500, "internal", "internal error")
        }
    }
}
