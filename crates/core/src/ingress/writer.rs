//! Group commit of webhook work items: one task writes every new work item (with its key and
//! job) through [`Store::create_work_items`], taking whatever deliveries queued up while the
//! previous batch committed. Under load many deliveries share one transaction; alone, a
//! delivery is a batch of one and waits for nothing. Each delivery is answered only after its
//! batch is committed, so a 202 still means stored.

use nitejar_store::{Created, Store, WorkItemCreate};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Most work items written in one transaction.
pub const MAX_BATCH: usize = 128;

/// Deliveries waiting for the writer before senders wait for room (back-pressure).
const QUEUE: usize = 4096;

/// Why a work item was not written: the batch's transaction failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct WriteFailed {
    /// The database's state (busy, locked, full), not the delivery's: retry later.
    pub transient: bool,
    /// The database error.
    pub message: String,
}

type Reply = oneshot::Sender<Result<Created, WriteFailed>>;

/// The handle deliveries send their work items to (cheap to clone).
#[derive(Clone)]
pub struct WorkItemWriter {
    tx: mpsc::Sender<(WorkItemCreate, Reply)>,
}

impl WorkItemWriter {
    /// Starts the writer task on the current tokio runtime; it ends when every handle is
    /// dropped (after writing what was queued).
    pub fn start(store: Arc<dyn Store>) -> WorkItemWriter {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(store, rx));
        WorkItemWriter { tx }
    }

    /// Writes one work item (in the next batch) and returns what happened to it.
    pub async fn create(&self, item: WorkItemCreate) -> Result<Created, WriteFailed> {
        let stopped = || WriteFailed {
            transient: true,
            message: "the work item writer has stopped".into(),
        };
        let (reply, answer) = oneshot::channel();
        self.tx.send((item, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn write_batches(store: Arc<dyn Store>, mut rx: mpsc::Receiver<(WorkItemCreate, Reply)>) {
    let mut items = Vec::with_capacity(MAX_BATCH);
    let mut replies = Vec::with_capacity(MAX_BATCH);
    while let Some((item, reply)) = rx.recv().await {
        items.push(item);
        replies.push(reply);
        while items.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok((item, reply)) => {
                    items.push(item);
                    replies.push(reply);
                }
                Err(_) => break,
            }
        }
        match store.create_work_items(&items).await {
            Ok(outcomes) => {
                for (reply, outcome) in replies.drain(..).zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                let failed = WriteFailed {
                    transient: e.is_transient(),
                    message: e.to_string(),
                };
                for reply in replies.drain(..) {
                    let _ = reply.send(Err(failed.clone()));
                }
            }
        }
        items.clear();
    }
}
