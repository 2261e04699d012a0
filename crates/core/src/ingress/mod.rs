//! Webhook ingress: `POST /api/webhooks/plugins/{type}/{instanceId}` -> parse-webhook in the
//! sandbox -> an idempotent work item.
//!
//! Outcomes: unknown or disabled instance 404; type mismatch 400; body over the limit 413
//! (enforced by the router); the plugin reports a bad signature 401; the plugin fails (trap,
//! timeout, limit, error) 502 with a receipt; the host is at capacity 503. The idempotency key
//! (the plugin's, else the source reference) is scoped per instance and made atomic by the
//! database's primary key, so concurrent redeliveries create exactly one work item.
//!
//! Hooks: `work_item.pre_create` runs before the work item exists (its handlers see the ids the
//! item and its job will get; a block answers `{"ignored": true}` and creates nothing) and may
//! change title, payload and session key; `work_item.post_create` runs after it is stored. The
//! job is stored with the work item but held until `work_item.post_create` has run, so the run's
//! hooks always come after it; a redelivery of a known key runs no hooks.
//!
//! Writes: work items are written in batches by one task ([`writer`]): deliveries that arrive
//! while a batch commits share the next transaction, and each is answered after its batch is
//! committed. Without `work_item` hooks a delivery is one read (the instance) and its share of
//! one write transaction (key, work item, and its job queued for the instance's agent).

pub mod latency;
pub mod writer;

use crate::agent::Workers;
use crate::crypto::SecretBox;
use crate::hooks::HookDispatcher;
use crate::hooks::RunScope;
use crate::limits::MAX_WORK_ITEM_TITLE_BYTES;
use crate::plugins::registry::PluginRegistry;
use crate::receipts::{Receipt, ReceiptSink};
use nitejar_sandbox::bindings::exports::nitejar::plugin::hooks as h;
use nitejar_sandbox::bindings::exports::nitejar::plugin::integration::{self as wit, ParseOutcome};
use nitejar_sandbox::bindings::nitejar::plugin::types::Header;
use nitejar_sandbox::runtime::PluginFailure;
use nitejar_sandbox::runtime::PluginRuntime;
use nitejar_store::Store;
use nitejar_store::{CreateOutcome, JobPlan, NewWorkItem, WorkItemCreate};
use serde_json::json;
use std::sync::Arc;
use writer::{WorkItemWriter, WriteFailed};

/// What webhook ingress needs: the store (instance, idempotency, work item and job), the loaded
/// plugins, the hook dispatcher (`work_item.pre_create` / `post_create`), the sandbox, the secret
/// box (the instance config is decrypted for the plugin), the run workers to wake, a deadline.
pub struct Ingress {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Loaded plugins.
    pub registry: Arc<PluginRegistry>,
    /// Runs the work-item hook chains.
    pub dispatcher: Arc<HookDispatcher>,
    /// The sandbox.
    pub runtime: Arc<PluginRuntime>,
    /// Decrypts the instance config.
    pub secrets: SecretBox,
    /// Woken when a job is queued.
    pub workers: Workers,
    /// Receipts of what the host changed in a plugin's answer.
    pub receipts: ReceiptSink,
    /// Writes new work items in batches (group commit).
    pub writer: WorkItemWriter,
    /// Deadline of a `parse-webhook` call.
    pub integration_timeout_ms: u64,
    /// How long answers took (recorded by the HTTP route, read by `GET /api/admin/metrics`).
    pub latency: latency::LatencyHistogram,
}

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

    /// The answer when the database failed: 503 with `Retry-After` when it is busy or full
    /// (the platform redelivers; nothing was accepted), else 500.
    fn db_failed(what: &str, e: &nitejar_store::DbError) -> WebhookReply {
        Self::store_failed(what, e.is_transient(), e)
    }

    /// The answer when the batch a work item was written in failed: as [`Self::db_failed`].
    fn write_failed(e: &WriteFailed) -> WebhookReply {
        Self::store_failed("writing a work item", e.transient, e)
    }

    fn store_failed(what: &str, transient: bool, e: &dyn std::fmt::Display) -> WebhookReply {
        if transient {
            tracing::warn!("{what}: {e}; answered 503");
            let mut reply = Self::error(
                503,
                "unavailable",
                "the database is busy or full; retry shortly",
            );
            reply.headers.push((
                "retry-after".into(),
                crate::limits::DB_RETRY_AFTER_SECS.to_string(),
            ));
            reply
        } else {
            tracing::error!("{what}: {e}");
            Self::error(500, "internal", "internal error")
        }
    }

    /// The host (or this plugin's share of it) is at capacity: 503 with `Retry-After`.
    fn busy() -> WebhookReply {
        let mut reply = Self::error(503, "busy", "the host is at capacity; retry later");
        reply.headers.push(("retry-after".into(), "1".into()));
        reply
    }

    /// The answer for a failed work item task: a database failure as [`Self::db_failed`].
    fn task_failed(e: &anyhow::Error) -> WebhookReply {
        match e
            .chain()
            .find_map(|c| c.downcast_ref::<nitejar_store::DbError>())
        {
            Some(db) => Self::db_failed("webhook work item", db),
            None => {
                tracing::error!("webhook work item: {e:#}");
                Self::error(500, "internal", "internal error")
            }
        }
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
    ctx: &Arc<Ingress>,
    integration_type: &str,
    instance_id: &str,
    req: InboundRequest,
) -> WebhookReply {
    let instance = match ctx.store.get_instance(instance_id).await {
        Ok(Some(i)) if i.enabled => i,
        Ok(_) => {
            return WebhookReply::error(
                404,
                "unknown_instance",
                "no enabled integration instance with this id",
            );
        }
        Err(e) => return WebhookReply::db_failed("webhook instance lookup", &e),
    };
    if instance.integration_type != integration_type {
        return WebhookReply::error(
            400,
            "type_mismatch",
            format!("instance {instance_id} is not of type {integration_type:?}"),
        );
    }
    let Some(plugin) = ctx
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
        &ctx.secrets,
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
    let runtime = ctx.runtime.clone();
    let call_plugin = plugin.clone();
    let timeout_ms = ctx.integration_timeout_ms;
    let wait = std::time::Duration::from_millis(nitejar_sandbox::limits::CALL_SLOT_WAIT_MS);
    let parse_started = std::time::Instant::now();
    let Some(turn) = plugin.queue_for_call(wait).await else {
        return WebhookReply::busy();
    };
    // On this thread when the plugin cannot block it (see `nitejar_sandbox::inline`): two
    // cross-thread wake-ups fewer; else on a blocking thread, as it would run anyway. Either
    // way the call slot is given back as soon as the call returns: a delivery waiting on its
    // work item's write holds none of its plugin's slots.
    let outcome =
        match runtime.parse_webhook_inline(&plugin, &wit_instance, &wit_request, timeout_ms) {
            Some(result) => {
                drop(turn);
                Ok(result)
            }
            None => {
                tokio::task::spawn_blocking(move || {
                    let _turn = turn;
                    runtime.parse_webhook(&call_plugin, &wit_instance, &wit_request, timeout_ms)
                })
                .await
            }
        };
    ctx.latency.parse.record(parse_started.elapsed());
    let outcome = match outcome {
        Ok(Ok(o)) => o,
        Ok(Err(PluginFailure::Busy)) => {
            return WebhookReply::busy();
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
                return refuse_output(
                    ctx,
                    (plugin.id(), plugin.version()),
                    &instance.id,
                    format!("the plugin asked for status {}", r.status),
                );
            }
            let (headers, dropped) = crate::response_headers::filter(
                r.headers.into_iter().map(|h| (h.name, h.value)).collect(),
            );
            if !dropped.is_empty() {
                ctx.receipts.emit(
                    Receipt::new(plugin.id(), "webhook_response", "blocked")
                        .version(plugin.version())
                        .detail(json!({
                            "instanceId": instance.id,
                            "reason": "headers a plugin may not set were dropped",
                            "dropped": dropped,
                        })),
                );
            }
            WebhookReply {
                status: r.status,
                headers,
                body: r.body,
            }
        }
        ParseOutcome::WorkItem(msg) => {
            create_work_item(
                ctx,
                (plugin.id(), plugin.version()),
                &instance.id,
                integration_type,
                msg,
            )
            .await
        }
    }
}

/// A parse-webhook result the host refuses (the call itself succeeded): 502 to the sender,
/// and a receipt that says why, so the operator sees the plugin's fault where its calls are.
fn refuse_output(
    ctx: &Ingress,
    (plugin_id, version): (&str, &str),
    instance_id: &str,
    reason: String,
) -> WebhookReply {
    ctx.receipts.emit(
        Receipt::new(plugin_id, "webhook_output", "invalid_output")
            .version(version)
            .detail(json!({ "instanceId": instance_id, "reason": reason })),
    );
    WebhookReply::error(502, "plugin_failed", reason)
}

async fn create_work_item(
    ctx: &Arc<Ingress>,
    plugin: (&str, &str),
    instance_id: &str,
    integration_type: &str,
    msg: wit::InboundMessage,
) -> WebhookReply {
    if serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&msg.payload).is_err() {
        return refuse_output(
            ctx,
            plugin,
            instance_id,
            "the plugin returned a payload that is not a JSON object".into(),
        );
    }
    if let Some(rc) = &msg.response_context
        && serde_json::from_str::<serde_json::Value>(rc).is_err()
    {
        return refuse_output(
            ctx,
            plugin,
            instance_id,
            "the plugin returned a response context that is not JSON".into(),
        );
    }
    let key = msg
        .idempotency_key
        .clone()
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| msg.source_ref.clone());
    if key.is_empty() {
        return refuse_output(
            ctx,
            plugin,
            instance_id,
            "the plugin returned neither an idempotency key nor a source reference".into(),
        );
    }
    // One view of the hook table for the whole delivery: whether the job is held for
    // `work_item.post_create` and which handlers run are decided once.
    let table = ctx.registry.hook_table();
    let pre_create = table.has(crate::hooks::HookName::WorkItemPreCreate);
    let post_create = table.has(crate::hooks::HookName::WorkItemPostCreate);
    // Hooks must not run for a redelivery, so with `pre_create` handlers a known key is
    // answered before them; without, the write itself recognises it.
    if pre_create {
        match ctx.store.find_idempotent(instance_id, &key).await {
            Ok(Some(id)) => {
                return WebhookReply::json(200, json!({ "workItemId": id, "duplicate": true }));
            }
            Ok(None) => {}
            Err(e) => return WebhookReply::db_failed("idempotency lookup", &e),
        }
    }
    // Hook handlers see the run's agent; without hooks the write looks it up itself.
    let agent = if pre_create || post_create {
        match ctx.store.agent_for_instance(instance_id).await {
            Ok(a) => Some(a),
            Err(e) => return WebhookReply::db_failed("agent lookup", &e),
        }
    } else {
        None
    };
    let work_item_id = uuid::Uuid::now_v7().to_string();
    let job_id = uuid::Uuid::now_v7().to_string();
    let title = work_item_title(&msg.title);
    let mut item = NewWorkItem {
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
    if agent.is_none() {
        // No hooks: nothing else to do but write it.
        let create = WorkItemCreate {
            id: work_item_id,
            item,
            idempotency_key: key,
            job: JobPlan::InstanceAgent {
                job_id,
                held: false,
            },
        };
        return match write(ctx, create).await {
            Ok(created) => created_reply(ctx, created),
            Err(e) => WebhookReply::write_failed(&e),
        };
    }
    // The rest runs as its own task: a client that hangs up must not leave a held job behind.
    let ctx = ctx.clone();
    let agent_id = agent.flatten().map(|a| a.id);
    let task = tokio::spawn(async move {
        use crate::hooks::HookName::{WorkItemPostCreate, WorkItemPreCreate};
        let room = ctx
            .runtime
            .reserve_instances(table.plugins_handling(&[WorkItemPreCreate, WorkItemPostCreate]))
            .await;
        let scope = RunScope::reserved(
            h::HookContext {
                plugin_instance_id: Some(item.plugin_instance_id.clone()),
                work_item_id: Some(work_item_id.clone()),
                job_id: agent_id.as_ref().map(|_| job_id.clone()),
                agent_id: agent_id.clone(),
            },
            room,
        );
        let mut scope = Some(scope);
        if pre_create {
            let event = h::WorkItemPreCreateEvent {
                work_item: h::WorkItemDraft {
                    title: item.title.clone(),
                    text: item.text.clone(),
                    session_key: item.session_key.clone(),
                    source_ref: item.source_ref.clone(),
                    payload: item.payload_json.clone(),
                },
                integration_type: item.integration_type.clone(),
                plugin_instance_id: item.plugin_instance_id.clone(),
            };
            let pre_table = table.clone();
            let (s, d) = in_scope(&ctx, scope.take(), move |ctx, s| {
                ctx.dispatcher.dispatch(&pre_table, s, event)
            })
            .await?;
            scope = Some(s);
            if let Some(b) = d.blocked {
                return Ok(WebhookReply::json(
                    200,
                    json!({ "ignored": true, "reason": b.reason, "blockedBy": b.plugin_id }),
                ));
            }
            let e = d.event;
            item.title = e.work_item.title;
            item.session_key = e.work_item.session_key;
            item.payload_json = e.work_item.payload;
        }
        let job = match &agent_id {
            Some(agent) => JobPlan::Agent {
                job_id: job_id.clone(),
                agent_id: agent.clone(),
                held: post_create,
            },
            None => JobPlan::None,
        };
        let create = WorkItemCreate {
            id: work_item_id,
            item: item.clone(),
            idempotency_key: key,
            job,
        };
        let created = match write(&ctx, create).await {
            Ok(c) => c,
            Err(e) => return Ok(WebhookReply::write_failed(&e)),
        };
        let id = match &created.outcome {
            CreateOutcome::Duplicate(_) => return Ok(created_reply(&ctx, created)),
            CreateOutcome::Created(id) => id.clone(),
        };
        if post_create {
            let now = nitejar_store::now_ms().max(0) as u64;
            let event = h::WorkItemPostCreateEvent {
                work_item: h::WorkItem {
                    id: id.clone(),
                    title: item.title.clone(),
                    text: item.text.clone(),
                    session_key: item.session_key.clone(),
                    source_ref: item.source_ref.clone(),
                    payload: item.payload_json.clone(),
                    status: "pending".into(),
                    created_at_ms: now,
                },
                integration_type: item.integration_type.clone(),
                plugin_instance_id: item.plugin_instance_id.clone(),
            };
            let (s, _) = in_scope(&ctx, scope.take(), move |ctx, s| {
                ctx.dispatcher.dispatch(&table, s, event)
            })
            .await?;
            scope = Some(s);
        }
        if let Some(s) = scope.take() {
            s.finish(&ctx.runtime);
        }
        if post_create && let Some(job) = &created.job_id {
            ctx.store
                .release_job(job)
                .await
                .map_err(|e| anyhow::Error::from(e).context("releasing the job failed"))?;
        }
        Ok::<_, anyhow::Error>(created_reply(&ctx, created))
    });
    match task.await {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => WebhookReply::task_failed(&e),
        Err(e) => {
            tracing::error!("webhook task failed: {e}");
            WebhookReply::error(500, "internal", "internal error")
        }
    }
}

/// Writes a work item through the batching writer, timing it for the metrics.
async fn write(
    ctx: &Ingress,
    create: WorkItemCreate,
) -> Result<nitejar_store::Created, WriteFailed> {
    let started = std::time::Instant::now();
    let written = ctx.writer.create(create).await;
    ctx.latency.write.record(started.elapsed());
    written
}

/// The answer for a written work item (202, or 200 for a key seen before); wakes a worker for
/// its job.
fn created_reply(ctx: &Ingress, created: nitejar_store::Created) -> WebhookReply {
    match created.outcome {
        CreateOutcome::Duplicate(id) => {
            WebhookReply::json(200, json!({ "workItemId": id, "duplicate": true }))
        }
        CreateOutcome::Created(id) => {
            if created.job_id.is_some() {
                ctx.workers.wake();
            }
            WebhookReply::json(
                202,
                json!({ "workItemId": id, "jobId": created.job_id, "duplicate": false }),
            )
        }
    }
}

/// Runs `f` with the scope on a blocking thread and hands the scope back (dropped there when
/// the caller no longer needs it).
async fn in_scope<T: Send + 'static>(
    ctx: &Arc<Ingress>,
    scope: Option<RunScope>,
    f: impl FnOnce(&Ingress, &mut RunScope) -> T + Send + 'static,
) -> anyhow::Result<(RunScope, T)> {
    let mut scope = scope.ok_or_else(|| anyhow::anyhow!("hook scope lost"))?;
    let ctx = ctx.clone();
    tokio::task::spawn_blocking(move || {
        let out = f(&ctx, &mut scope);
        (scope, out)
    })
    .await
    .map_err(|e| anyhow::anyhow!("hook task failed: {e}"))
}

/// A work item title as stored: control characters (which the hook rules refuse in a title)
/// become spaces and the title is cut to [`MAX_WORK_ITEM_TITLE_BYTES`], so an integration's
/// title always satisfies the rules a hook that passes it on is held to; a hook is never blamed
/// (and crash-loop disabled) for a value another plugin produced.
pub fn work_item_title(raw: &str) -> String {
    let clean: String = raw
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let cut = truncate_utf8(clean.trim(), MAX_WORK_ITEM_TITLE_BYTES).trim_end();
    if cut.is_empty() {
        "(untitled)".to_string()
    } else {
        cut.to_string()
    }
}

/// The longest prefix of `s` that is at most `max_bytes` bytes and ends on a character boundary.
fn truncate_utf8(s: &str, max_bytes: usize) -> &str {
    if s.len() <= max_bytes {
        return s;
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod title_tests {
    use super::{truncate_utf8, work_item_title};

    #[test]
    fn titles_satisfy_the_hook_rules_whatever_the_integration_sent() {
        assert_eq!(work_item_title("deploy\u{7}\r\ndone"), "deploy   done");
        assert_eq!(work_item_title(" \n\t "), "(untitled)");
        let long = format!("{}\u{1b}", "x".repeat(600));
        let t = work_item_title(&long);
        assert!(t.len() <= 512 && !t.chars().any(char::is_control));
    }

    #[test]
    fn titles_are_cut_in_bytes_on_a_character_boundary() {
        assert_eq!(truncate_utf8("short", 512), "short");
        let long = "é".repeat(400); // 800 bytes
        let cut = truncate_utf8(&long, 512);
        assert_eq!(cut.len(), 512);
        assert_eq!(cut.chars().count(), 256);
        let odd = format!("a{}", "é".repeat(300)); // a boundary falls inside a character
        assert_eq!(truncate_utf8(&odd, 512).len(), 511);
    }
}
