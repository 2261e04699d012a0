//! Receipts: the record of everything a plugin does (spec §19), written to `plugin_events`.
//!
//! Emitting a receipt never blocks and never touches the database on the caller's path: receipts
//! go through a channel to one writer task that collects them for up to
//! [`RECEIPT_FLUSH_INTERVAL_MS`] (or [`RECEIPT_BATCH_SIZE`] receipts) and writes each batch with
//! one multi-row insert. [`ReceiptSink::flush`] waits
//! until everything emitted before it is written; [`ReceiptWriter::shutdown`] drains the rest,
//! so none is lost on a clean stop.

use crate::db::{Db, EventRow, now_ms};
use crate::limits::{RECEIPT_BATCH_SIZE, RECEIPT_FLUSH_INTERVAL_MS};
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
}

/// Where receipts are sent (cheap to clone).
#[derive(Clone, Debug)]
pub struct ReceiptSink {
    tx: mpsc::UnboundedSender<EventRow>,
    flush_tx: mpsc::UnboundedSender<oneshot::Sender<()>>,
}

/// The writer task; keep it to shut down cleanly.
pub struct ReceiptWriter {
    task: tokio::task::JoinHandle<()>,
}

impl ReceiptSink {
    /// Starts the batch writer on the current tokio runtime.
    pub fn start(db: Db) -> (ReceiptSink, ReceiptWriter) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (flush_tx, flush_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(write_loop(db, rx, flush_rx));
        (ReceiptSink { tx, flush_tx }, ReceiptWriter { task })
    }

    /// A sink that drops everything (benchmarks of the call path without a database).
    pub fn discard() -> ReceiptSink {
        let (tx, _rx) = mpsc::unbounded_channel();
        let (flush_tx, _flush_rx) = mpsc::unbounded_channel();
        ReceiptSink { tx, flush_tx }
    }

    /// Queues a receipt. Never blocks, and does not wake the writer (it collects on a timer).
    pub fn emit(&self, receipt: Receipt) {
        if self.tx.send(receipt.0).is_err() {
            tracing::debug!("receipt dropped: the writer is stopped");
        }
    }

    /// Waits until every receipt emitted before this call is in the database.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.flush_tx.send(done).is_ok() {
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

async fn write_loop(
    db: Db,
    mut rx: mpsc::UnboundedReceiver<EventRow>,
    mut flush_rx: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
) {
    let interval = Duration::from_millis(RECEIPT_FLUSH_INTERVAL_MS);
    let mut batch: Vec<EventRow> = Vec::new();
    let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        // Wake for the first receipt of a batch, or a flush request.
        let closed = tokio::select! {
            r = rx.recv() => match r {
                Some(r) => { batch.push(r); false }
                None => true,
            },
            Some(w) = flush_rx.recv() => { waiters.push(w); false }
        };
        // Collect for the interval without listening on the receipt channel, so the many
        // `emit`s of busy plugin calls cause no cross-thread wake-ups; a flush cuts it short.
        if !closed && waiters.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                Some(w) = flush_rx.recv() => waiters.push(w),
            }
        }
        // Everything queued before now joins the batch (a flush requested after an emit
        // therefore always sees that receipt).
        while let Ok(r) = rx.try_recv() {
            batch.push(r);
        }
        while let Ok(w) = flush_rx.try_recv() {
            waiters.push(w);
        }
        for chunk in batch.chunks(RECEIPT_BATCH_SIZE) {
            if let Err(e) = db.insert_events(chunk).await {
                tracing::error!("writing {} receipts failed: {e}", chunk.len());
            }
        }
        batch.clear();
        for w in waiters.drain(..) {
            let _ = w.send(());
        }
        if closed {
            return;
        }
    }
}
