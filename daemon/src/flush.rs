//! Group commit. Ingest requests that arrive together are written in one batch and share one
//! flush, and other writers that need a flush share it too. The daemon responds 202
//! only after the flush, without paying a flush per request.

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::store::{Idempotency, IngestJob, IngestWrite, NewEventWrite, Store};

/// Maximum wait for a flush before the requests that need it get an error.
const FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Most ingest requests written in one batch.
const MAX_BATCH: usize = 256;

/// A flush that failed, shared by every request that waited for it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot flush the store: {0}")]
pub(crate) struct FlushError(String);

/// A failed ingest write.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum WriteError {
    /// The write failed; a part of the request may be stored, but it got no 202.
    #[error("cannot write to the store: {0}")]
    Store(String),
    /// The request was written but not flushed.
    #[error(transparent)]
    Flush(#[from] FlushError),
}

/// An idempotency key with the response and request fingerprint to keep for its repeats.
#[derive(Debug, Clone)]
pub(crate) struct IdempotencyOwned {
    pub(crate) key: String,
    pub(crate) response: Vec<u8>,
    pub(crate) fingerprint: Vec<u8>,
}

/// One ingest request for the writer.
struct WriteJob {
    writes: Vec<NewEventWrite>,
    idempotency: Option<IdempotencyOwned>,
    reply: oneshot::Sender<Result<(IngestWrite, Vec<NewEventWrite>), WriteError>>,
}

enum Request {
    Flush(oneshot::Sender<Result<(), FlushError>>),
    Write(WriteJob),
}

/// Handle to the writer task.
#[derive(Clone)]
pub(crate) struct Flusher {
    requests: mpsc::UnboundedSender<Request>,
}

fn stopped() -> FlushError {
    FlushError("the flush task has stopped".to_owned())
}

impl Flusher {
    /// Starts the write stage on a thread and the flush stage as a task. Both end when every
    /// handle is dropped; the returned task ends last.
    pub(crate) fn spawn(store: Store) -> std::io::Result<(Self, JoinHandle<()>)> {
        let (requests, receiver) = mpsc::unbounded_channel();
        let (to_flush, flush_receiver) = mpsc::unbounded_channel();
        let writer_store = store.clone();
        std::thread::Builder::new()
            .name("belter-ingest-writer".to_owned())
            .spawn(move || write_stage(&writer_store, receiver, &to_flush))?;
        let task = tokio::spawn(flush_stage(store, flush_receiver));
        Ok((Self { requests }, task))
    }

    /// Waits until everything written before this call is on disk.
    pub(crate) async fn flush(&self) -> Result<(), FlushError> {
        let (sender, receiver) = oneshot::channel();
        self.requests
            .send(Request::Flush(sender))
            .map_err(|_| stopped())?;
        receiver.await.map_err(|_| stopped())?
    }

    /// Writes an ingest request's events in the next batch and waits for its flush. Returns
    /// the outcome with the writes, handed back for the caller's announcements.
    pub(crate) async fn write(
        &self,
        writes: Vec<NewEventWrite>,
        idempotency: Option<IdempotencyOwned>,
    ) -> Result<(IngestWrite, Vec<NewEventWrite>), WriteError> {
        let (reply, receiver) = oneshot::channel();
        let job = WriteJob {
            writes,
            idempotency,
            reply,
        };
        self.requests
            .send(Request::Write(job))
            .map_err(|_| WriteError::Flush(stopped()))?;
        receiver.await.map_err(|_| WriteError::Flush(stopped()))?
    }
}

/// Requests written to the store and waiting for a flush.
struct Written {
    jobs: Vec<(JobReply, IngestWrite)>,
    flushes: Vec<oneshot::Sender<Result<(), FlushError>>>,
}

/// Runs the write stage on a thread of its own, since sled blocks. It takes every request that
/// has arrived, writes the jobs, replies to the ones that need no flush, and passes the rest to
/// the flush stage, so it writes the next batch while the flush stage flushes the last one.
fn write_stage(
    store: &Store,
    mut receiver: mpsc::UnboundedReceiver<Request>,
    flush_stage: &mpsc::UnboundedSender<Written>,
) {
    while let Some(first) = receiver.blocking_recv() {
        let mut flushes = Vec::new();
        let mut jobs = Vec::new();
        let mut next = Some(first);
        while let Some(request) = next {
            match request {
                Request::Flush(waiter) => flushes.push(waiter),
                Request::Write(job) => jobs.push(job),
            }
            next = if jobs.len() < MAX_BATCH {
                receiver.try_recv().ok()
            } else {
                None
            };
        }

        let batch = jobs.len();
        let started = std::time::Instant::now();
        let written = write_jobs(store, jobs);
        tracing::trace!(
            batch,
            write_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "group written"
        );
        // Jobs whose write failed or that repeated an idempotency key need no flush, so they
        // get their response at once; a store that cannot write may not finish a flush either.
        let mut waiting = Vec::with_capacity(written.len());
        for (job, outcome) in written {
            match outcome {
                Ok(IngestWrite::Written) => waiting.push((job, IngestWrite::Written)),
                Ok(duplicate) => {
                    let _ = job.reply.send(Ok((duplicate, job.writes)));
                }
                Err(error) => {
                    let _ = job.reply.send(Err(error));
                }
            }
        }
        if waiting.is_empty() && flushes.is_empty() {
            continue;
        }
        let handed = flush_stage.send(Written {
            jobs: waiting,
            flushes,
        });
        if handed.is_err() {
            tracing::error!("the flush stage has stopped, so ingest requests get no response");
            return;
        }
    }
}

/// Runs the flush stage: flushes once for every group written since the last flush, then
/// replies to them all.
async fn flush_stage(store: Store, mut receiver: mpsc::UnboundedReceiver<Written>) {
    while let Some(first) = receiver.recv().await {
        let mut groups = vec![first];
        while let Ok(group) = receiver.try_recv() {
            groups.push(group);
        }
        let started = std::time::Instant::now();
        let flushed = match tokio::time::timeout(FLUSH_TIMEOUT, store.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(FlushError(error.to_string())),
            Err(_) => Err(FlushError(format!(
                "the flush did not finish within {} s, so the disk may be full",
                FLUSH_TIMEOUT.as_secs()
            ))),
        };
        tracing::trace!(
            groups = groups.len(),
            flush_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "group commit"
        );
        if let Err(error) = &flushed {
            tracing::error!(%error, "flush failed");
        }
        for group in groups {
            for waiter in group.flushes {
                // A waiter that gave up (its request was dropped) needs no response.
                let _ = waiter.send(flushed.clone());
            }
            for (job, outcome) in group.jobs {
                let answer = match &flushed {
                    Err(error) => Err(WriteError::Flush(error.clone())),
                    Ok(()) => Ok((outcome, job.writes)),
                };
                // A request that gave up needs no response.
                let _ = job.reply.send(answer);
            }
        }
    }
}

/// The reply half of a job.
struct JobReply {
    writes: Vec<NewEventWrite>,
    reply: oneshot::Sender<Result<(IngestWrite, Vec<NewEventWrite>), WriteError>>,
}

/// Writes every job and pairs each reply with its outcome.
fn write_jobs(
    store: &Store,
    jobs: Vec<WriteJob>,
) -> Vec<(JobReply, Result<IngestWrite, WriteError>)> {
    if jobs.is_empty() {
        return Vec::new();
    }
    let batch: Vec<IngestJob<'_>> = jobs
        .iter()
        .map(|job| IngestJob {
            writes: &job.writes,
            idempotency: job.idempotency.as_ref().map(|entry| Idempotency {
                key: &entry.key,
                response: &entry.response,
                fingerprint: &entry.fingerprint,
            }),
        })
        .collect();
    let result = store.write_batch(&batch);
    drop(batch);
    jobs.into_iter()
        .map(|job| JobReply {
            writes: job.writes,
            reply: job.reply,
        })
        .zip(result)
        .map(|(reply, outcome)| {
            let outcome = outcome.map_err(|error| {
                tracing::error!(%error, "ingest write failed");
                WriteError::Store(error.to_string())
            });
            (reply, outcome)
        })
        .collect()
}
