//! Receipts: the record of everything a plugin does (spec §19), and the sink they go to.
//!
//! The sandbox only builds receipts and queues them; where they are stored is decided above it:
//! [`ReceiptSink::channel`] hands the consuming end ([`ReceiptQueue`]) to whoever writes them
//! (the host's batch writer into `plugin_events`). Emitting never blocks and never touches
//! storage on the caller's path.

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
#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    /// UUIDv7 id (time-ordered).
    pub id: String,
    /// Plugin id (`nitejar.host` for refusals before a package is read).
    pub plugin_id: String,
    /// Plugin version, when known.
    pub plugin_version: Option<String>,
    /// Kind of action (`hook`, `integration`, `permission_denied`, `install`, ...).
    pub kind: String,
    /// Outcome (`ok`, `error`, `timeout`, `blocked`, ...).
    pub status: String,
    /// Correlated work item.
    pub work_item_id: Option<String>,
    /// Correlated job.
    pub job_id: Option<String>,
    /// Hook event name, for hook receipts.
    pub hook_name: Option<String>,
    /// Duration in milliseconds.
    pub duration_ms: Option<i64>,
    /// Always [`EXECUTION_MODE`] for plugin code.
    pub execution_mode: String,
    /// Structured detail (JSON text).
    pub detail_json: Option<String>,
    /// Creation time (ms since the epoch).
    pub created_at: i64,
}

impl Receipt {
    /// A receipt of `kind` with `status` for `plugin_id`.
    pub fn new(plugin_id: &str, kind: &str, status: &str) -> Receipt {
        Receipt {
            id: uuid::Uuid::now_v7().to_string(),
            plugin_id: plugin_id.to_string(),
            plugin_version: None,
            kind: kind.to_string(),
            status: status.to_string(),
            work_item_id: None,
            job_id: None,
            hook_name: None,
            duration_ms: None,
            execution_mode: EXECUTION_MODE.to_string(),
            detail_json: None,
            created_at: now_ms(),
        }
    }
    /// Sets the plugin version.
    pub fn version(mut self, v: &str) -> Self {
        self.plugin_version = Some(v.to_string());
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
        self.hook_name = hook.map(str::to_string);
        self
    }
    /// Sets the duration.
    pub fn duration(mut self, d: Duration) -> Self {
        self.duration_ms = Some(d.as_millis() as i64);
        self
    }
    /// Sets the structured detail.
    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail_json = Some(detail.to_string());
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
        assert_eq!(
            (first.status.as_str(), second.status.as_str()),
            ("ok", "error")
        );
        assert_eq!(first.hook_name.as_deref(), Some("run.pre_prompt"));
        assert_eq!(first.execution_mode, EXECUTION_MODE);
        waiter.send(()).unwrap();
        flush.await.unwrap();
    }

    #[tokio::test]
    async fn a_discarding_sink_never_blocks() {
        let sink = ReceiptSink::discard();
        sink.emit(Receipt::new("p", "hook", "ok"));
        sink.flush().await;
    }
}
