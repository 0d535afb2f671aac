//! The outcome writer: one thread records attempt outcomes in batches of whatever has arrived,
//! so an attempt waits on the store only when the writer falls behind. The per-minute counts
//! and the endpoint health are merged once per batch instead of once per attempt.

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap, FxHashSet};

use belter_common::records::{DeliveryStatus, StreamEvent, StreamKind};
use belter_common::{DeliveryId, EndpointId};
use tokio::sync::mpsc;

use crate::state::AppState;
use crate::store::{
    AttemptRecord, Completion, DeliveryRecord, Displaced, DueWork, EndpointOutcomes, OutcomeCounts,
};

/// Maximum outcomes written in one batch.
const MAX_BATCH: usize = 512;

/// Outcomes waiting for the writer before attempts wait to hand theirs over. Attempts keep their
/// concurrency slot while they wait, so memory stays bounded when the store falls behind.
const QUEUE_CAPACITY: usize = 4_096;

/// Margin before a delivery's retention ends from which its outcome checks that the retention
/// sweep has not removed it. Younger deliveries skip that read. The margin covers attempts and
/// outcome queueing many times over, and a forward jump of the clock up to its size.
const PRUNE_CHECK_MARGIN_MS: u64 = 60 * 60 * 1_000;

/// A batch smaller than this waits [`LINGER`] once for more outcomes before it is written, so
/// the writer wakes less often and merges the per-minute counts and the endpoint health over
/// more attempts.
const LINGER_BELOW: usize = 64;

/// How long a small batch waits for more outcomes.
const LINGER: std::time::Duration = std::time::Duration::from_millis(1);

/// How long a delivery whose outcome could not be written waits before it is read again.
const REREAD_AFTER_MS: u64 = 1_000;

/// One ended attempt.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) endpoint_id: EndpointId,
    /// The delivery as it was when the attempt started.
    pub(crate) due: DueWork,
    pub(crate) attempt: AttemptRecord,
    pub(crate) completion: Completion,
    pub(crate) ended_at: u64,
}

enum Message {
    Outcome(Box<Outcome>),
    Stop,
}

/// Hands outcomes to the writer.
#[derive(Clone)]
pub(crate) struct OutcomeSender(mpsc::Sender<Message>);

/// The writer's end of the channel.
pub(crate) struct OutcomeReceiver(mpsc::Receiver<Message>);

/// Creates the channel to the outcome writer.
pub(crate) fn channel() -> (OutcomeSender, OutcomeReceiver) {
    let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
    (OutcomeSender(sender), OutcomeReceiver(receiver))
}

impl OutcomeSender {
    /// Queues an outcome for writing. Returns `false` when the writer has stopped; the
    /// delivery's due entry then stays, and it is sent again after a restart.
    pub(crate) async fn send(&self, outcome: Box<Outcome>) -> bool {
        self.0.send(Message::Outcome(outcome)).await.is_ok()
    }

    /// Asks the writer to stop once it has written every outcome sent before.
    pub(crate) async fn stop(&self) {
        let _ = self.0.send(Message::Stop).await;
    }
}

/// Writes outcomes until [`OutcomeSender::stop`]. Runs on a thread of its own, since sled
/// blocks.
pub(crate) fn run(state: AppState, mut receiver: OutcomeReceiver) {
    tracing::info!("outcome writer started");
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut stopping = false;
    while !stopping {
        match receiver.0.blocking_recv() {
            Some(Message::Outcome(outcome)) => batch.push(*outcome),
            Some(Message::Stop) | None => break,
        }
        stopping = take_waiting(&mut receiver, &mut batch);
        if !stopping && batch.len() < LINGER_BELOW {
            std::thread::sleep(LINGER);
            stopping = take_waiting(&mut receiver, &mut batch);
        }
        write_batch(&state, &mut batch);
    }
    tracing::info!("outcome writer stopped");
}

/// Moves the outcomes already queued into `batch`, up to [`MAX_BATCH`]. Returns whether a stop
/// was among them.
fn take_waiting(receiver: &mut OutcomeReceiver, batch: &mut Vec<Outcome>) -> bool {
    while batch.len() < MAX_BATCH {
        match receiver.0.try_recv() {
            Ok(Message::Outcome(outcome)) => batch.push(*outcome),
            Ok(Message::Stop) => return true,
            Err(_) => return false,
        }
    }
    false
}

/// One outcome with the delivery's record as the attempt left it.
struct Prepared {
    endpoint_id: EndpointId,
    delivery_id: DeliveryId,
    due_key: Vec<u8>,
    record: DeliveryRecord,
    /// The attempt that this one displaced from the record, to move to the attempts tree.
    displaced: Option<AttemptRecord>,
    /// Whether the stored record contains a latest attempt that the caller's copy left out.
    stored_attempt: bool,
    succeeded: bool,
    completion: Completion,
    ended_at: u64,
    check_pruned: bool,
}

impl Prepared {
    fn new(outcome: Outcome, retention_ms: u64) -> Self {
        let Outcome {
            endpoint_id,
            due,
            attempt,
            completion,
            ended_at,
        } = outcome;
        let DueWork {
            delivery_id,
            due_key,
            mut record,
            stored_attempt,
        } = due;
        let succeeded = attempt.succeeded;
        let check_pruned = record.created_at.saturating_add(retention_ms)
            <= ended_at.saturating_add(PRUNE_CHECK_MARGIN_MS);
        let displaced = record.after_attempt(attempt, completion, ended_at);
        Self {
            endpoint_id,
            delivery_id,
            due_key,
            record,
            displaced,
            stored_attempt,
            succeeded,
            completion,
            ended_at,
            check_pruned,
        }
    }

    /// Checks whether this is a delivery's first attempt and it ended the delivery, so that the
    /// delivery's record is the only write before the removal of its due entry.
    fn ends_first_attempt(&self) -> bool {
        self.displaced.is_none()
            && !self.stored_attempt
            && !self.check_pruned
            && self.record.next_attempt_at.is_none()
    }
}

/// Writes a batch of outcomes and empties it.
fn write_batch(state: &AppState, batch: &mut Vec<Outcome>) {
    let mut counts: BTreeMap<u64, OutcomeCounts> = BTreeMap::new();
    let mut health: FxHashMap<EndpointId, EndpointOutcomes> = FxHashMap::default();
    let mut ended: i64 = 0;
    let mut retries = false;
    let retention_ms = u64::try_from(state.config.retention.as_millis()).unwrap_or(u64::MAX);
    let prepared: Vec<Prepared> = batch
        .drain(..)
        .map(|outcome| Prepared::new(outcome, retention_ms))
        .collect();
    // A first attempt that ended the delivery writes only the delivery's record, so those
    // records go into their delivery groups together, one write per group.
    let in_groups: Vec<(&DeliveryId, &DeliveryRecord)> = prepared
        .iter()
        .filter(|prepared| prepared.ends_first_attempt())
        .map(|prepared| (&prepared.delivery_id, &prepared.record))
        .collect();
    let written_in_groups = match state.store.write_records_in_groups(&in_groups) {
        Ok(written) => written,
        Err(error) => {
            tracing::error!(%error, "cannot write outcomes into their delivery groups, so each is written on its own");
            FxHashSet::default()
        }
    };
    for prepared in prepared {
        let Prepared {
            endpoint_id,
            delivery_id,
            due_key,
            record,
            displaced,
            stored_attempt,
            succeeded,
            completion,
            ended_at,
            check_pruned,
        } = prepared;
        health
            .entry(endpoint_id.clone())
            .or_default()
            .add(succeeded, ended_at);
        let displaced = match (&displaced, stored_attempt) {
            (Some(attempt), _) => Displaced::Attempt(attempt),
            (None, true) => Displaced::Stored,
            (None, false) => Displaced::Nothing,
        };
        let record_written = written_in_groups.contains(&delivery_id);
        let unindexed = state.ready.is_unindexed(&delivery_id, &due_key);
        let recorded = state.store.record_outcome(
            &delivery_id,
            &due_key,
            unindexed,
            &record,
            displaced,
            check_pruned,
            record_written,
        );
        let recorded = match recorded {
            // The delivery's record is written, and only the removal of its due entry failed.
            // A later read of the due index finds the delivery ended and removes the entry.
            Err(error) if record_written => {
                tracing::error!(%error, %delivery_id, "cannot remove the due entry of an ended delivery, so a later read of the queue removes it");
                Ok(true)
            }
            other => other,
        };
        match recorded {
            Ok(stored) => {
                state.ready.settled(&delivery_id);
                let minute = counts.entry(ended_at / 60_000).or_default();
                minute.ok += u64::from(succeeded);
                minute.failed += u64::from(!succeeded);
                minute.gave_up +=
                    u64::from(completion == Completion::Final(DeliveryStatus::Failed));
                // The retention sweep counted a pruned delivery when it removed it.
                if stored && matches!(completion, Completion::Final(_)) {
                    ended += 1;
                }
                let next_due = match completion {
                    Completion::RetryAt(due_ms) => {
                        retries = true;
                        Some(due_ms)
                    }
                    Completion::Final(_) => None,
                };
                state.ready.finished(&endpoint_id, &delivery_id, next_due);
                if stored {
                    state.publish_with(|| StreamEvent {
                        kind: StreamKind::AttemptFinished,
                        delivery: Some(state.delivery_view(&delivery_id, &record)),
                        attempt: record.latest_attempt.as_deref().map(AttemptRecord::to_api),
                        missed: None,
                    });
                } else {
                    tracing::debug!(%delivery_id, "delivery pruned during its attempt");
                }
            }
            Err(error) => {
                tracing::error!(%error, %delivery_id, "cannot record an attempt; the delivery is sent again");
                state.ready.finished(&endpoint_id, &delivery_id, None);
                state.ready.request_scan(&endpoint_id);
                state
                    .ready
                    .defer_scan(&endpoint_id, ended_at + REREAD_AFTER_MS);
                retries = true;
            }
        }
    }
    state.add_waiting(-ended);
    for (minute, minute_counts) in counts {
        if let Err(error) = state.store.count_outcome(minute * 60_000, minute_counts) {
            tracing::error!(%error, "cannot count attempt outcomes");
        }
    }
    for (endpoint_id, outcomes) in &health {
        if let Err(error) = state.store.record_endpoint_outcomes(endpoint_id, outcomes) {
            tracing::error!(%error, %endpoint_id, "cannot store endpoint health");
        }
    }
    for endpoint_id in health.keys() {
        cancel_if_deleted(state, endpoint_id);
    }
    if retries {
        state.wake_scheduler.notify_one();
    }
}

/// Cancels what an endpoint deleted during its attempts still has queued, and drops its lane
/// once no attempt runs. A delete between an attempt's check of its endpoint and the outcome
/// cancels the queue too early, and the retry that the outcome writes would stay pending.
fn cancel_if_deleted(state: &AppState, endpoint_id: &EndpointId) {
    if state.endpoints.get(endpoint_id).is_some() {
        return;
    }
    match state.cancel_queue(endpoint_id) {
        Ok(cancelled) if !cancelled.is_empty() => {
            tracing::info!(%endpoint_id, cancelled = cancelled.len(), "cancelled queued deliveries of a deleted endpoint");
        }
        Ok(_) => {}
        Err(error) => {
            tracing::error!(%error, %endpoint_id, "cannot cancel deliveries of a deleted endpoint");
        }
    }
}
