//! The receipt writer: stores what the sandbox's [`ReceiptSink`] queues in `plugin_events`.
//!
//! Receipts are built and queued by `nitejar_sandbox::receipts` (re-exported here); emitting one
//! never blocks and never touches the database on the caller's path: they go through a channel
//! to one writer task that collects them for up to
//! [`RECEIPT_FLUSH_INTERVAL_MS`] and hands them, in batches of up to [`RECEIPT_BATCH_SIZE`], to
//! the database's write thread as they were emitted (it makes their rows:
//! [`EventStore::insert_receipts`]). [`ReceiptSink::flush`] waits
//! until everything emitted before it is written; [`ReceiptWriter::shutdown`] drains the rest,
//! so none is lost on a clean stop.

use crate::limits::{RECEIPT_BATCH_SIZE, RECEIPT_FLUSH_INTERVAL_MS};
pub use nitejar_sandbox::receipts::{EXECUTION_MODE, Receipt, ReceiptQueue, ReceiptSink};
use nitejar_store::EventStore;
use std::collections::VecDeque;
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
    // Receipts not written yet, oldest first, in batches of at most RECEIPT_BATCH_SIZE: a
    // batch the database refused (locked, full) is kept and written again, never dropped, up
    // to MAX_PENDING_RECEIPTS. Receipts go to the write thread as they were emitted (it makes
    // their rows), so nothing is converted or copied here.
    let mut pending: VecDeque<Arc<Vec<Receipt>>> = VecDeque::new();
    let mut pending_len = 0usize;
    // What arrived since the last write (its buffer is kept from one round to the next).
    let mut arrived: Vec<Receipt> = Vec::new();
    let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
    let mut shutdown_tries = 0;
    loop {
        // Wake for the first receipt of a batch, or a flush request; with receipts waiting
        // for the database, also to try them again.
        let retry = !pending.is_empty();
        let closed = tokio::select! {
            r = rx.recv() => match r {
                Some(r) => { arrived.push(r); false }
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
            arrived.push(r);
        }
        while let Ok(w) = flush_rx.try_recv() {
            waiters.push(w);
        }
        pending_len += arrived.len();
        let mut drained = arrived.drain(..);
        loop {
            let batch: Vec<Receipt> = drained.by_ref().take(RECEIPT_BATCH_SIZE).collect();
            if batch.is_empty() {
                break;
            }
            pending.push_back(Arc::new(batch));
        }
        drop(drained);
        while let Some(batch) = pending.front() {
            match db.insert_receipts(batch.clone()).await {
                Ok(()) => {
                    pending_len -= batch.len();
                    pending.pop_front();
                }
                Err(e) => {
                    tracing::warn!(
                        "writing {pending_len} receipts failed ({e}); they are kept and written again"
                    );
                    break;
                }
            }
        }
        if pending_len > MAX_PENDING_RECEIPTS {
            let over = pending_len - MAX_PENDING_RECEIPTS;
            let mut left = over;
            while left > 0 {
                let Some(front) = pending.front_mut() else {
                    break;
                };
                if front.len() <= left {
                    left -= front.len();
                    pending.pop_front();
                } else {
                    Arc::make_mut(front).drain(..left);
                    left = 0;
                }
            }
            pending_len -= over - left;
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
            if pending.is_empty() || shutdown_tries > SHUTDOWN_RETRIES {
                if !pending.is_empty() {
                    tracing::error!(
                        "stopping with {pending_len} receipts the database would not take"
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// How many receipts of `plugin` are stored, without flushing.
    async fn stored(db: &Arc<dyn nitejar_store::Store>, plugin: &str) -> usize {
        db.list_events(plugin, 1000, None).await.unwrap().len()
    }

    /// Waits (without flushing) until `n` receipts of `plugin` are stored; false after 5 s.
    async fn written(db: &Arc<dyn nitejar_store::Store>, plugin: &str, n: usize) -> bool {
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if stored(db, plugin).await == n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        false
    }

    /// Receipts that keep coming are written batch after batch without a flush, a flush in
    /// the middle sees every receipt emitted before it, and after a quiet spell the first
    /// receipt is written too (nothing waits for a flush or a shutdown to be stored).
    #[tokio::test]
    async fn receipts_are_written_while_they_keep_coming_and_after_a_quiet_spell() {
        let dir = tempfile::tempdir().unwrap();
        let db = nitejar_store::open(&dir.path().join("t.db")).await.unwrap();
        let (sink, writer) = ReceiptWriter::start(db.clone());
        let interval = Duration::from_millis(RECEIPT_FLUSH_INTERVAL_MS);
        // A stream over several intervals, with a flush halfway.
        let mut emitted = 0;
        let end = Instant::now() + interval * 6;
        let mut flushed = false;
        while Instant::now() < end {
            sink.emit(Receipt::new("p", "hook", "ok"));
            emitted += 1;
            if !flushed && Instant::now() + interval * 3 > end {
                sink.flush().await;
                assert_eq!(
                    stored(&db, "p").await,
                    emitted,
                    "a flush sees every emit before it"
                );
                flushed = true;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(
            written(&db, "p", emitted).await,
            "the stream's receipts were written"
        );
        // Quiet for several intervals: the writer waits on the channel again.
        tokio::time::sleep(interval * 4).await;
        sink.emit(Receipt::new("p", "hook", "ok"));
        assert!(
            written(&db, "p", emitted + 1).await,
            "the first receipt after a quiet spell"
        );
        writer.shutdown(sink).await;
    }
}
