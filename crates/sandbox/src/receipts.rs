//! Receipts: the record of everything a plugin does (spec §19), and the sink they go to.
//!
//! The sandbox only builds receipts and queues them; where they are stored is decided above it:
//! [`ReceiptSink::channel`] hands the consuming end ([`ReceiptQueue`]) to whoever writes them
//! (the host's batch writer into `plugin_events`). Emitting never blocks and never touches
//! storage on the caller's path.

use crate::capabilities::log::LogState;
use crate::failure::PluginFailure;
use crate::hooks::FailPolicy;
use serde::Serialize;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// `executionMode` of everything a plugin runs.
pub const EXECUTION_MODE: &str = "wasm_sandbox";

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One receipt: built with the methods below, stored as it is by the writer.
///
/// Cheap to build on a plugin call's path: no id and no JSON text yet. The writer gives it its
/// time-ordered id (in emit order) and serialises its [`Detail`] off the caller's thread.
#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    /// Plugin id (`nitejar.host` for refusals before a package is read); shared with the loaded
    /// plugin on the hot path.
    pub plugin_id: Arc<str>,
    /// Plugin version, when known.
    pub plugin_version: Option<Arc<str>>,
    /// Kind of action (`hook`, `integration`, `permission_denied`, `install`, ...).
    pub kind: Cow<'static, str>,
    /// Outcome (`ok`, `error`, `timeout`, `blocked`, ...).
    pub status: Cow<'static, str>,
    /// Correlated work item.
    pub work_item_id: Option<String>,
    /// Correlated job.
    pub job_id: Option<String>,
    /// Hook event name, for hook receipts.
    pub hook_name: Option<Cow<'static, str>>,
    /// Duration in milliseconds.
    pub duration_ms: Option<i64>,
    /// Always [`EXECUTION_MODE`] for plugin code.
    pub execution_mode: &'static str,
    /// Structured detail, serialised to JSON by the writer.
    pub detail: Detail,
    /// Creation time (ms since the epoch).
    pub created_at: i64,
}

/// A receipt's structured detail, as it was given: JSON text is made by [`Detail::to_json`]
/// (the writer), not by whoever emits it.
#[derive(Debug, Clone, PartialEq)]
pub enum Detail {
    /// No detail.
    None,
    /// Any JSON value (host actions: installs, grants, refusals, ...).
    Json(serde_json::Value),
    /// A plugin call (hooks, integrations, tools): the typed record of the hot path.
    Call(Box<CallDetail>),
}

impl Detail {
    /// The detail as stored (`detail_json`): `None` for [`Detail::None`].
    pub fn to_json(&self) -> Option<String> {
        match self {
            Detail::None => None,
            Detail::Json(v) => Some(v.to_string()),
            Detail::Call(c) => Some(serde_json::to_string(c).unwrap_or_else(|e| {
                // Every field serialises (strings, numbers, a tagged enum); kept total anyway.
                serde_json::json!({ "operation": c.operation, "detailError": e.to_string() })
                    .to_string()
            })),
        }
    }

    /// The detail as a JSON value (tests and in-process readers).
    pub fn to_value(&self) -> serde_json::Value {
        self.to_json()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(serde_json::Value::Null)
    }
}

/// What one plugin call did, as its receipt's detail (`detail_json`): the same keys for every
/// kind of call; hooks add their handler's registration and effect.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallDetail {
    /// The export or hook called (`parse-webhook`, `run.pre_prompt`, ...).
    pub operation: &'static str,
    /// The failure as text, when the call failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The failure, typed (`{"failure": "timeout", ...}`), when the call failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<PluginFailure>,
    /// The guest's log lines (escaped, capped), when it logged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs: Option<Vec<String>>,
    /// Lines over the per-call cap, when it logged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs_dropped: Option<u32>,
    /// A summary of what the call returned, for calls that record one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// Instructions the call used (when budgets are on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<u64>,
    /// For a hook handler in a chain: its registration and what its answer did.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub handler: Option<HandlerDetail>,
}

impl CallDetail {
    /// The detail of a call of `operation` that ended with `result`, `logs` and `fuel_used`.
    pub fn of<R>(
        operation: &'static str,
        result: &Result<R, PluginFailure>,
        logs: &LogState,
        fuel_used: Option<u64>,
    ) -> CallDetail {
        let failure = result.as_ref().err();
        let logged = !logs.lines.is_empty() || logs.dropped > 0;
        CallDetail {
            operation,
            error: failure.map(|f| f.to_string()),
            failure: failure.cloned(),
            logs: logged.then(|| logs.lines.clone()),
            logs_dropped: logged.then_some(logs.dropped),
            result: None,
            instructions: fuel_used,
            handler: None,
        }
    }
}

/// A hook handler's registration and effect, in its receipt's detail.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HandlerDetail {
    /// Its priority (higher runs first).
    pub priority: i32,
    /// `fail_open` or `fail_closed`.
    pub fail_policy: FailPolicy,
    /// The deadline it was given (its timeout capped by the chain budget left).
    pub timeout_ms: u64,
    /// What its answer did: `applied`, `blocked`, `continued`, `chain_stopped`, `not_run`.
    pub effect: &'static str,
    /// Set when crash-loop protection held it (never called).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
}

impl Receipt {
    /// A receipt of `kind` with `status` for `plugin_id`.
    pub fn new(plugin_id: &str, kind: &str, status: &str) -> Receipt {
        Receipt {
            plugin_id: Arc::from(plugin_id),
            plugin_version: None,
            kind: Cow::Owned(kind.to_string()),
            status: Cow::Owned(status.to_string()),
            work_item_id: None,
            job_id: None,
            hook_name: None,
            duration_ms: None,
            execution_mode: EXECUTION_MODE,
            detail: Detail::None,
            created_at: now_ms(),
        }
    }
    /// Sets the plugin version.
    pub fn version(mut self, v: &str) -> Self {
        self.plugin_version = Some(Arc::from(v));
        self
    }
    /// Correlates with a work item and job.
    pub fn correlate(mut self, work_item_id: Option<&str>, job_id: Option<&str>) -> Self {
        self.work_item_id = work_item_id.map(str::to_string);
        self.job_id = job_id.map(str::to_string);
        self
    }
    /// Sets the hook event name.
    pub fn hook(mut self, hook: Option<&str>) -> Self {
        self.hook_name = hook.map(|h| Cow::Owned(h.to_string()));
        self
    }
    /// Sets the duration.
    pub fn duration(mut self, d: Duration) -> Self {
        self.duration_ms = Some(d.as_millis() as i64);
        self
    }
    /// Sets the structured detail.
    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Detail::Json(detail);
        self
    }
    /// Sets a plugin call's typed detail.
    pub fn call_detail(mut self, detail: CallDetail) -> Self {
        self.detail = Detail::Call(Box::new(detail));
        self
    }
}

/// Where receipts are sent (cheap to clone).
#[derive(Clone, Debug)]
pub struct ReceiptSink {
    tx: mpsc::UnboundedSender<Receipt>,
    flush_tx: mpsc::UnboundedSender<oneshot::Sender<()>>,
}

/// The consuming end of a [`ReceiptSink`]: receipts in emit order, and flush requests, each to
/// be answered once every receipt emitted before it is stored.
pub struct ReceiptQueue {
    /// Receipts, in the order they were emitted.
    pub receipts: mpsc::UnboundedReceiver<Receipt>,
    /// Flush requests: answer after storing everything received before the request.
    pub flushes: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
}

impl ReceiptSink {
    /// A sink and the queue its receipts arrive on.
    pub fn channel() -> (ReceiptSink, ReceiptQueue) {
        let (tx, receipts) = mpsc::unbounded_channel();
        let (flush_tx, flushes) = mpsc::unbounded_channel();
        (
            ReceiptSink { tx, flush_tx },
            ReceiptQueue { receipts, flushes },
        )
    }

    /// A sink that drops everything (benchmarks of the call path without storage).
    pub fn discard() -> ReceiptSink {
        Self::channel().0
    }

    /// Queues a receipt. Never blocks, and does not wake the writer (it collects on a timer).
    pub fn emit(&self, receipt: Receipt) {
        if self.tx.send(receipt).is_err() {
            tracing::debug!("receipt dropped: the writer is stopped");
        }
    }

    /// Waits until every receipt emitted before this call is stored (returns at once when no
    /// writer is listening).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.flush_tx.send(done).is_ok() {
            let _ = wait.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn receipts_arrive_in_order_and_a_flush_follows_them() {
        let (sink, mut queue) = ReceiptSink::channel();
        sink.emit(Receipt::new("p", "hook", "ok").hook(Some("run.pre_prompt")));
        sink.emit(Receipt::new("p", "hook", "error"));
        let flush = tokio::spawn({
            let sink = sink.clone();
            async move { sink.flush().await }
        });
        let waiter = queue.flushes.recv().await.unwrap();
        let first = queue.receipts.try_recv().unwrap();
        let second = queue.receipts.try_recv().unwrap();
        assert_eq!((&*first.status, &*second.status), ("ok", "error"));
        assert_eq!(first.hook_name.as_deref(), Some("run.pre_prompt"));
        assert_eq!(first.execution_mode, EXECUTION_MODE);
        waiter.send(()).unwrap();
        flush.await.unwrap();
    }

    #[test]
    fn a_call_detail_is_serialised_with_the_keys_readers_expect() {
        let logs = LogState {
            lines: vec!["[info] <b>hi</b>".into()],
            dropped: 2,
            ..LogState::default()
        };
        let failed: Result<(), PluginFailure> = Err(PluginFailure::Timeout { timeout_ms: 50 });
        let mut d = CallDetail::of("run.pre_prompt", &failed, &logs, Some(1234));
        d.handler = Some(HandlerDetail {
            priority: 7,
            fail_policy: FailPolicy::FailClosed,
            timeout_ms: 50,
            effect: "blocked",
            held: false,
        });
        let r = Receipt::new("p", "hook", "timeout").call_detail(d);
        let v = r.detail.to_value();
        assert_eq!(
            v,
            serde_json::json!({
                "operation": "run.pre_prompt",
                "error": PluginFailure::Timeout { timeout_ms: 50 }.to_string(),
                "failure": { "failure": "timeout", "timeout_ms": 50 },
                "logs": ["[info] <b>hi</b>"],
                "logsDropped": 2,
                "instructions": 1234,
                "priority": 7,
                "failPolicy": "fail_closed",
                "timeoutMs": 50,
                "effect": "blocked",
            })
        );
        // A successful call without logs: only what happened.
        let ok: Result<(), PluginFailure> = Ok(());
        let mut d = CallDetail::of("parse-webhook", &ok, &LogState::default(), None);
        d.result = Some(serde_json::json!({ "workItems": 1 }));
        let r = Receipt::new("p", "integration", "ok").call_detail(d);
        assert_eq!(
            r.detail.to_json().as_deref(),
            Some(r#"{"operation":"parse-webhook","result":{"workItems":1}}"#)
        );
        assert_eq!(Receipt::new("p", "install", "ok").detail.to_json(), None);
    }

    #[tokio::test]
    async fn a_discarding_sink_never_blocks() {
        let sink = ReceiptSink::discard();
        sink.emit(Receipt::new("p", "hook", "ok"));
        sink.flush().await;
    }
}
