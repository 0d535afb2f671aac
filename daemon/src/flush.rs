//! Group commit: ingest requests that arrive while a flush runs share the next one, so the
//! daemon answers 202 only after a flush without paying one flush per request.

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::store::Store;

/// A flush that failed, shared by every request that waited for it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot flush the store: {0}")]
pub(crate) struct FlushError(String);

type Waiter = oneshot::Sender<Result<(), FlushError>>;

/// Handle to the flush task.
#[derive(Clone)]
pub(crate) struct Flusher {
    requests: mpsc::UnboundedSender<Waiter>,
}

impl Flusher {
    /// Starts the flush task. It ends when every handle is dropped.
    pub(crate) fn spawn(store: Store) -> (Self, JoinHandle<()>) {
        let (requests, receiver) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(store, receiver));
        (Self { requests }, task)
    }

    /// Waits until everything written before this call is on disk.
    pub(crate) async fn flush(&self) -> Result<(), FlushError> {
        let (sender, receiver) = oneshot::channel();
        self.requests
            .send(sender)
            .map_err(|_| FlushError("the flush task has stopped".to_owned()))?;
        receiver
            .await
            .map_err(|_| FlushError("the flush task has stopped".to_owned()))?
    }
}

async fn run(store: Store, mut receiver: mpsc::UnboundedReceiver<Waiter>) {
    while let Some(first) = receiver.recv().await {
        let mut waiters = vec![first];
        while let Ok(next) = receiver.try_recv() {
            waiters.push(next);
        }
        let result = store
            .flush()
            .await
            .map_err(|error| FlushError(error.to_string()));
        if let Err(error) = &result {
            tracing::error!(%error, waiters = waiters.len(), "flush failed");
        }
        for waiter in waiters {
            // A waiter that gave up (its request was dropped) needs no answer.
            let _ = waiter.send(result.clone());
        }
    }
}
