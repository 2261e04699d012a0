//! The receipt writer: stores what the sandbox's [`ReceiptSink`] queues in `plugin_events`.
//!
//! Receipts are built and queued by `nitejar_sandbox::receipts` (re-exported here); emitting one
//! never blocks and never touches the database on the caller's path: they go through a channel
//! to one writer task that collects them for up to
//! [`RECEIPT_FLUSH_INTERVAL_MS`] (or [`RECEIPT_BATCH_SIZE`] receipts) and writes each batch with
//! one multi-row insert. [`ReceiptSink::flush`] waits
//! until everything emitted before it is written; [`ReceiptWriter::shutdown`] drains the rest,
//! so none is lost on a clean stop.

use crate::limits::{RECEIPT_BATCH_SIZE, RECEIPT_FLUSH_INTERVAL_MS};
pub use nitejar_sandbox::receipts::{EXECUTION_MODE, Receipt, ReceiptQueue, ReceiptSink};
use nitejar_store::{EventRow, EventStore};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The writer task; keep it to shut down cleanly.
pub struct ReceiptWriter {
    task: tokio::task::JoinHandle<()>,
}

impl ReceiptWriter {
    /// A sink whose receipts this writer stores in `db`, batched (started on the current tokio
    /// runtime).
    pub fn start(db: Arc<dyn EventStore>) -> (ReceiptSink, ReceiptWriter) {
        let (sink, queue) = ReceiptSink::channel();
        let task = tokio::spawn(write_loop(db, queue.receipts, queue.flushes));
        (sink, ReceiptWriter { task })
    }

    /// Writes everything still queued, then stops. Call after every sender is dropped, or
    /// after [`ReceiptSink::flush`] when senders remain.
    pub async fn shutdown(self, sink: ReceiptSink) {
        sink.flush().await;
        drop(sink);
        self.task.abort();
    }
}

async fn write_loop(
    db: Arc<dyn EventStore>,
    mut rx: mpsc::UnboundedReceiver<Receipt>,
    mut flush_rx: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
) {
    let interval = Duration::from_millis(RECEIPT_FLUSH_INTERVAL_MS);
    let mut batch: Vec<EventRow> = Vec::new();
    let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        // Wake for the first receipt of a batch, or a flush request.
        let closed = tokio::select! {
            r = rx.recv() => match r {
                Some(r) => { batch.push(EventRow::from(r)); false }
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
            batch.push(EventRow::from(r));
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
