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
    // Receipts not written yet, oldest first: a batch the database refused (locked, full) is
    // kept and written again, never dropped, up to MAX_PENDING_RECEIPTS.
    let mut batch: Vec<EventRow> = Vec::new();
    let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
    let mut shutdown_tries = 0;
    loop {
        // Wake for the first receipt of a batch, or a flush request; with receipts waiting
        // for the database, also to try them again.
        let retry = !batch.is_empty();
        let closed = tokio::select! {
            r = rx.recv() => match r {
                Some(r) => { batch.push(EventRow::from(r)); false }
                None => true,
            },
            Some(w) = flush_rx.recv() => { waiters.push(w); false }
            _ = tokio::time::sleep(RECEIPT_RETRY_INTERVAL), if retry => false,
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
        let mut written = 0;
        for chunk in batch.chunks(RECEIPT_BATCH_SIZE) {
            match db.insert_events(chunk).await {
                Ok(_) => written += chunk.len(),
                Err(e) => {
                    tracing::warn!(
                        "writing {} receipts failed ({e}); they are kept and written again",
                        batch.len() - written
                    );
                    break;
                }
            }
        }
        batch.drain(..written);
        if batch.len() > MAX_PENDING_RECEIPTS {
            let over = batch.len() - MAX_PENDING_RECEIPTS;
            batch.drain(..over);
            tracing::error!(
                "the database has refused receipts for too long: the oldest {over} were dropped (at most {MAX_PENDING_RECEIPTS} are kept waiting)"
            );
        }
        // A flush waits for the write attempt, not for a database that may stay locked.
        for w in waiters.drain(..) {
            let _ = w.send(());
        }
        if closed {
            shutdown_tries += 1;
            if batch.is_empty() || shutdown_tries > SHUTDOWN_RETRIES {
                if !batch.is_empty() {
                    tracing::error!(
                        "stopping with {} receipts the database would not take",
                        batch.len()
                    );
                }
                return;
            }
            tokio::time::sleep(RECEIPT_RETRY_INTERVAL).await;
        }
    }
}

/// How long the writer waits before writing refused receipts again.
const RECEIPT_RETRY_INTERVAL: Duration = Duration::from_millis(500);

/// Receipts kept waiting for a database that refuses them (about 100 MB at the most); past
/// that the oldest are dropped, with an error in the log.
pub const MAX_PENDING_RECEIPTS: usize = 200_000;

/// Write attempts at shutdown before giving up on refused receipts.
const SHUTDOWN_RETRIES: u32 = 6;
