//! Receipts: the record of everything a plugin does (spec §19), written to `plugin_events`.
//!
//! Emitting a receipt never blocks and never touches the database on the caller's path: receipts
//! go through a channel to one writer task that inserts whatever is queued (up to
//! [`RECEIPT_BATCH_SIZE`]) in one transaction. [`ReceiptSink::flush`] waits
//! until everything emitted before it is written; [`ReceiptWriter::shutdown`] drains the rest,
//! so none is lost on a clean stop.

use crate::db::{Db, EventRow, now_ms};
use crate::limits::RECEIPT_BATCH_SIZE;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// `executionMode` of everything a plugin runs.
pub const EXECUTION_MODE: &str = "wasm_sandbox";

/// A receipt being built.
#[derive(Debug, Clone)]
pub struct Receipt(EventRow);

impl Receipt {
    /// A receipt of `kind` with `status` for `plugin_id`.
    pub fn new(plugin_id: &str, kind: &str, status: &str) -> Receipt {
        Receipt(EventRow {
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
        })
    }
    /// Sets the plugin version.
    pub fn version(mut self, v: &str) -> Self {
        self.0.plugin_version = Some(v.to_string());
        self
    }
    /// Correlates with a work item and job.
    pub fn correlate(mut self, work_item_id: Option<&str>, job_id: Option<&str>) -> Self {
        self.0.work_item_id = work_item_id.map(str::to_string);
        self.0.job_id = job_id.map(str::to_string);
        self
    }
    /// Sets the hook event name.
    pub fn hook(mut self, hook: Option<&str>) -> Self {
        self.0.hook_name = hook.map(str::to_string);
        self
    }
    /// Sets the duration.
    pub fn duration(mut self, d: Duration) -> Self {
        self.0.duration_ms = Some(d.as_millis() as i64);
        self
    }
    /// Sets the structured detail.
    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.0.detail_json = Some(detail.to_string());
        self
    }
    /// The row as it will be stored.
    pub fn row(&self) -> &EventRow {
        &self.0
    }
}

enum Message {
    Receipt(EventRow),
    Flush(oneshot::Sender<()>),
}

/// Where receipts are sent (cheap to clone).
#[derive(Clone, Debug)]
pub struct ReceiptSink {
    tx: mpsc::UnboundedSender<Message>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("receipt message")
    }
}

/// The writer task; keep it to shut down cleanly.
pub struct ReceiptWriter {
    task: tokio::task::JoinHandle<()>,
}

impl ReceiptSink {
    /// Starts the batch writer on the current tokio runtime.
    pub fn start(db: Db) -> (ReceiptSink, ReceiptWriter) {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(write_loop(db, rx));
        (ReceiptSink { tx }, ReceiptWriter { task })
    }

    /// A sink that drops everything (install-time inspection before a plugin exists).
    pub fn discard() -> ReceiptSink {
        let (tx, _rx) = mpsc::unbounded_channel();
        ReceiptSink { tx }
    }

    /// Queues a receipt. Never blocks.
    pub fn emit(&self, receipt: Receipt) {
        if self.tx.send(Message::Receipt(receipt.0)).is_err() {
            tracing::debug!("receipt dropped: the writer is stopped");
        }
    }

    /// Waits until every receipt emitted before this call is in the database.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

impl ReceiptWriter {
    /// Writes everything still queued, then stops. Call after every sender is dropped, or
    /// after [`ReceiptSink::flush`] when senders remain.
    pub async fn shutdown(self, sink: ReceiptSink) {
        sink.flush().await;
        drop(sink);
        self.task.abort();
    }
}

async fn write_loop(db: Db, mut rx: mpsc::UnboundedReceiver<Message>) {
    let mut batch: Vec<EventRow> = Vec::new();
    let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
    // Natural batching: wait for one message, then take everything already queued (up to a
    // cap) into the same transaction. Under load batches grow; when idle latency stays low.
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Message::Receipt(r) => batch.push(r),
                Message::Flush(w) => waiters.push(w),
            }
            if batch.len() < RECEIPT_BATCH_SIZE {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            if let Err(e) = db.insert_events(&batch).await {
                tracing::error!("writing {} receipts failed: {e}", batch.len());
            }
            batch.clear();
        }
        for w in waiters.drain(..) {
            let _ = w.send(());
        }
    }
}
