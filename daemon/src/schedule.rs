//! The scheduler: takes due deliveries endpoint by endpoint within the concurrency limits and
//! runs their attempts. Every endpoint has its own lane of ready deliveries and its own
//! in-flight limit, so a slow or dead endpoint never holds up the others. An attempt's task
//! goes on with the next delivery of its endpoint's lane while there is one, and the scheduler
//! reads the due index into a lane before it runs dry. Outcomes go to the outcome writer through
//! a bounded queue, so an attempt waits on the store only when the writer falls behind.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use belter_common::records::{
    AttemptTrigger, DeliveryFormat, DeliveryStatus, FailureKind, StreamEvent, StreamKind,
};
use belter_common::{DeliveryId, Timestamp};
use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::deliver::{self, AttemptRequest};
use crate::formats;
use crate::outcome::Outcome;
use crate::ready::Work;
use crate::registry::EndpointEntry;
use crate::retry::{self, AttemptOutcome};
use crate::state::AppState;
use crate::store::{AttemptRecord, Completion, DeliveryRecord};

/// Longest the scheduler sleeps without a wake-up, as a guard against a missed notification.
const MAX_IDLE: Duration = Duration::from_secs(5);

/// Extra time in-flight attempts get at shutdown beyond the attempt timeout.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How long a lane whose due index cannot be read waits before the next read.
const REREAD_AFTER_MS: u64 = 1_000;

fn now_ms() -> u64 {
    Timestamp::now().as_millis()
}

/// Runs the scheduler until shutdown, then lets the attempts in flight end and stops the
/// outcome writer once their outcomes are queued. An attempt still running after the attempt
/// timeout and a short grace keeps its due entry, so the next start sends it again.
pub(crate) async fn run(state: AppState) {
    // Shared by every attempt task, so starting an attempt adds one reference instead of
    // cloning every handle in the state.
    let state = Arc::new(state);
    let global = Arc::new(Semaphore::new(state.config.max_in_flight));
    let mut attempts = JoinSet::new();
    let mut rotation = 0usize;
    let retry_schedule = match state.config.retry_schedule_text() {
        text if text.is_empty() => "none (no retries)".to_owned(),
        text => text,
    };
    tracing::info!(
        %retry_schedule,
        max_in_flight = state.config.max_in_flight,
        max_in_flight_per_endpoint = state.config.max_in_flight_per_endpoint,
        "scheduler started"
    );
    loop {
        while let Some(joined) = attempts.try_join_next() {
            if let Err(error) = joined {
                tracing::error!(%error, "attempt task failed");
            }
        }
        if state.shutdown.is_cancelled() {
            break;
        }
        let now = now_ms();
        let wake_at = dispatch_due(&state, &global, &mut attempts, &mut rotation, now);
        let sleep = Duration::from_millis(wake_at.saturating_sub(now)).min(MAX_IDLE);
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = state.wake_scheduler.notified() => {}
            () = state.shutdown.cancelled() => {}
        }
    }

    let in_flight = attempts.len();
    tracing::info!(
        in_flight,
        "scheduler stopping, waiting for attempts in flight"
    );
    let deadline = state.config.attempt_timeout + SHUTDOWN_GRACE;
    let drained = tokio::time::timeout(deadline, async {
        while attempts.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = attempts.len(),
            "attempts still running at shutdown are sent again at the next start"
        );
        attempts.shutdown().await;
    }
    state.outcomes.stop().await;
    tracing::info!("scheduler stopped");
}

/// Starts what is due on every active endpoint within the limits, and returns when the
/// scheduler should look again, in ms since the epoch.
fn dispatch_due(
    state: &Arc<AppState>,
    global: &Arc<Semaphore>,
    attempts: &mut JoinSet<()>,
    rotation: &mut usize,
    now: u64,
) -> u64 {
    let mut wake_at = now + MAX_IDLE.as_millis() as u64;
    let mut endpoints = state.endpoints.all();
    if endpoints.is_empty() {
        return wake_at;
    }
    // Start at a different endpoint each pass, so none gets the global slots first every time.
    *rotation = (*rotation + 1) % endpoints.len();
    endpoints.rotate_left(*rotation);

    for entry in endpoints {
        if entry.record.paused {
            state.ready.release(&entry.id);
            continue;
        }
        let busy = entry.health.in_flight.load(Ordering::Relaxed);
        let free = state
            .config
            .max_in_flight_per_endpoint
            .saturating_sub(busy)
            .min(global.available_permits());
        // A lane may request a read with every slot busy, so that its attempts find work after it.
        load_lane(state, &entry, free, now);
        if free > 0 {
            for work in state.ready.take(&entry.id, free) {
                let Ok(permit) = global.clone().try_acquire_owned() else {
                    // Only the scheduler takes permits, so this is not expected. The delivery
                    // stays in the due index and is read again, or the indexer writes its entry
                    // first when ingest wrote it without one.
                    state
                        .ready
                        .finished(&entry.id, &work.due.delivery_id, Some(now));
                    continue;
                };
                entry.health.in_flight.fetch_add(1, Ordering::Relaxed);
                attempts.spawn(run_attempts(
                    Arc::clone(state),
                    Arc::clone(&entry),
                    work,
                    permit,
                ));
            }
        }
        if let Some(due) = state.ready.next_due(&entry.id) {
            wake_at = wake_at.min(due.max(now + 1));
        }
    }
    wake_at
}

/// Reads an endpoint's due index into its lane when the lane needs a read.
fn load_lane(state: &AppState, entry: &EndpointEntry, free: usize, now: u64) {
    let Some(plan) = state.ready.plan_scan(&entry.id, free, now) else {
        return;
    };
    match state.store.load_due(&entry.id, now, plan.room, &plan.known) {
        Ok(loaded) => state.ready.fill(&entry.id, plan, loaded),
        Err(error) => {
            tracing::error!(%error, endpoint_id = %entry.id, "cannot read the due index");
            state.ready.defer_scan(&entry.id, now + REREAD_AFTER_MS);
        }
    }
}

/// The body of an attempt, or why there is none.
enum AttemptBody {
    Ready(Bytes),
    /// The event was pruned with the delivery, or the event log lost it.
    Gone,
    /// The store failed to read the event.
    Unreadable,
}

/// Returns the body to send: the stored event body, rendered for the endpoint's format. Reads
/// the event when ingest did not hand the body over.
fn attempt_body(state: &AppState, entry: &EndpointEntry, work: &mut Work) -> AttemptBody {
    let stored = match work.body.take() {
        Some(body) => body,
        None => match state.store.event_body(&work.due.record.event_id) {
            Ok(Some(body)) => body,
            Ok(None) => {
                tracing::warn!(delivery_id = %work.due.delivery_id, event_id = %work.due.record.event_id, "event is gone, so the delivery ends as failed");
                return AttemptBody::Gone;
            }
            Err(error) => {
                tracing::error!(%error, delivery_id = %work.due.delivery_id, event_id = %work.due.record.event_id, reread_after_ms = REREAD_AFTER_MS, "cannot read the event of a delivery, so its endpoint's queue is read again later");
                return AttemptBody::Unreadable;
            }
        },
    };
    if entry.record.format == DeliveryFormat::Raw {
        return AttemptBody::Ready(stored);
    }
    AttemptBody::Ready(Bytes::from(formats::render(
        entry.record.format,
        &stored,
        entry.record.routing_key.as_deref(),
    )))
}

/// Runs attempts in one task: the one it was started with, and then, while the endpoint's lane
/// has work, the next ones, without a scheduler pass or a new task for each. The permit and the
/// endpoint's in-flight count are released when the task ends, after the writer has taken the
/// last outcome.
async fn run_attempts(
    state: Arc<AppState>,
    mut entry: Arc<EndpointEntry>,
    mut work: Work,
    permit: OwnedSemaphorePermit,
) {
    loop {
        if !run_attempt(&state, &entry, work).await {
            finish(&state, &entry, permit);
            // The read that the skipped delivery requested needs a scheduler pass, however
            // many slots are free.
            state.wake_scheduler.notify_one();
            return;
        }
        match next_work(&state, &entry, &permit) {
            Some((current, next)) => {
                entry = current;
                work = next;
            }
            None => break,
        }
    }
    finish(&state, &entry, permit);
}

/// Takes the next delivery for a task whose attempt ended: from the same endpoint's lane, with the
/// endpoint's current entry. Returns nothing when belterd is stopping, the endpoint was paused or
/// deleted, or the global limit has a scheduler step or fewer slots free, so that the scheduler
/// shares them out among the endpoints.
fn next_work(
    state: &AppState,
    entry: &EndpointEntry,
    permit: &OwnedSemaphorePermit,
) -> Option<(Arc<EndpointEntry>, Work)> {
    if state.shutdown.is_cancelled() {
        return None;
    }
    if permit.semaphore().available_permits() <= step(state.config.max_in_flight_per_endpoint) {
        // The release that follows may not reach the scheduler's wake-up threshold, so this
        // wakes it to hand the slot out.
        state.wake_scheduler.notify_one();
        return None;
    }
    let current = state
        .endpoints
        .get(&entry.id)
        .filter(|current| !current.record.paused)?;
    let (next, wants_read) = state.ready.take_next(&entry.id);
    if wants_read {
        state.wake_scheduler.notify_one();
    }
    Some((current, next?))
}

/// Runs one attempt and hands its outcome to the outcome writer. Returns `false` when the
/// delivery was skipped because its event could not be read.
async fn run_attempt(state: &Arc<AppState>, entry: &Arc<EndpointEntry>, mut work: Work) -> bool {
    let delivery_id = work.due.delivery_id.clone();
    let record = &work.due.record;
    let number = record.attempt_count + 1;
    let trigger = record.next_trigger;
    let started_at = now_ms();
    state.publish_with(|| {
        let mut view = record.to_api(&delivery_id, false);
        view.status = DeliveryStatus::InFlight;
        StreamEvent {
            kind: StreamKind::AttemptStarted,
            delivery: Some(view),
            attempt: None,
            missed: None,
        }
    });

    let body = match attempt_body(state, entry, &mut work) {
        AttemptBody::Ready(body) => body,
        AttemptBody::Gone => {
            return end_without_event(state, entry, work, number, trigger, started_at).await;
        }
        AttemptBody::Unreadable => {
            // After a failed read, the next read of the queue waits, so the same error does not
            // repeat at once.
            state.ready.request_scan(&entry.id);
            state.ready.finished(&entry.id, &delivery_id, None);
            // NOTE: no test makes the store fail to read an event, so this branch has not run.
            state
                .ready
                .defer_scan(&entry.id, started_at + REREAD_AFTER_MS);
            return false;
        }
    };
    let record = &work.due.record;
    let kind = record.kind();
    let request = AttemptRequest {
        url: &record.target_url,
        // A delivery keeps the URL it was made for, which can differ from the endpoint's now.
        parsed_url: entry
            .parsed_url
            .as_ref()
            .filter(|_| record.target_url == entry.record.url),
        body,
        secrets: entry.record.signing_secrets(started_at),
        signing_key: Some(&entry.signing_key),
        event_type: kind.as_str(),
        event_id: &record.event_id,
        delivery_id: delivery_id.as_str(),
        attempt: number,
        standard_webhooks: entry.record.standard_webhooks,
    };
    tracing::trace!(%delivery_id, endpoint_id = %entry.id, attempt = number, ?trigger, "attempt started");
    // The exchange's future is most of an attempt's size, and spawning moves the attempt's
    // future several times, so the exchange lives on the heap.
    let result = Box::pin(deliver::send(
        &state.http,
        &state.policy,
        request,
        state.config.attempt_timeout,
        &|| entry.health.resend_allowed(now_ms()),
    ))
    .await;
    let ended_at = now_ms();
    if result.resend_reset && entry.health.pause_resends(ended_at) {
        tracing::info!(%delivery_id, endpoint_id = %entry.id, "a resend on a new connection was reset too, so this endpoint gets no resends after a reset for {} minutes", crate::registry::RESEND_PAUSE_MS / 60_000);
    }

    let blocked = result.failure == Some(FailureKind::BlockedByPolicy);
    // A success ends the delivery whatever became of its endpoint, so only a failure looks the
    // endpoint up.
    let completion = if !result.succeeded && state.endpoints.get(&entry.id).is_none() {
        Completion::Final(DeliveryStatus::Cancelled)
    } else if blocked {
        // The policy only changes with a restart, so a retry would be blocked again; a replay
        // after the operator opens the range sends it.
        Completion::Final(DeliveryStatus::Failed)
    } else {
        let outcome = if result.succeeded {
            AttemptOutcome::Succeeded
        } else {
            AttemptOutcome::Failed {
                retry_after: result.retry_after,
            }
        };
        let before = &work.due.record;
        let succeeded_before = trigger == AttemptTrigger::Replay
            && !result.succeeded
            && succeeded_once(state, &delivery_id, before);
        retry::after_attempt(
            &state.config.retry_schedule,
            before.scheduled_attempts,
            succeeded_before,
            trigger,
            outcome,
            ended_at,
            // A success needs no jitter, and the system call that makes it costs about 1 % of
            // belterd's time per delivered event.
            if result.succeeded { 0.0 } else { random_unit() },
        )
    };
    let attempt = AttemptRecord {
        number,
        trigger,
        started_at,
        latency_ms: result.latency_ms,
        succeeded: result.succeeded,
        status_code: result.status_code,
        failure: result.failure,
        error: result.error,
        response_body: result.response_body,
        signature: result.signatures.belter,
        standard_signature: result.signatures.standard,
    };
    log_outcome(&delivery_id, entry, &attempt, completion);
    state.metrics.record_attempt(&attempt, completion);
    entry.health.record(attempt.succeeded, ended_at);
    track_failing_run(state, entry, attempt.succeeded, ended_at);
    hand_over_outcome(state, entry, work, attempt, completion, ended_at).await;
    // The task goes on, or releases its slot, once the writer has taken the outcome, so
    // attempts cannot run ahead of the store without bound.
    true
}

/// Hands an attempt's outcome to the outcome writer, waiting while its queue is full.
async fn hand_over_outcome(
    state: &AppState,
    entry: &EndpointEntry,
    work: Work,
    attempt: AttemptRecord,
    completion: Completion,
    ended_at: u64,
) {
    let sent = state
        .outcomes
        .send(Box::new(Outcome {
            endpoint_id: entry.id.clone(),
            due: work.due,
            attempt,
            completion,
            ended_at,
        }))
        .await;
    if !sent {
        tracing::warn!(endpoint_id = %entry.id, "the outcome writer has stopped; the delivery is sent again after a restart");
    }
}

/// Ends a delivery whose event is gone as failed, with the cause in an attempt that sent
/// nothing. Without an outcome, a delivery whose record outlived its event, because the event
/// log lost the group, would be read from the queue and handed out again at once. The outcome
/// writer leaves a delivery that retention removed as it is. Returns whether the task may go on.
async fn end_without_event(
    state: &Arc<AppState>,
    entry: &Arc<EndpointEntry>,
    work: Work,
    number: u32,
    trigger: AttemptTrigger,
    started_at: u64,
) -> bool {
    let completion = Completion::Final(DeliveryStatus::Failed);
    let attempt = AttemptRecord {
        number,
        trigger,
        started_at,
        latency_ms: 0,
        succeeded: false,
        status_code: None,
        failure: Some(FailureKind::Other),
        error: Some(
            "the event's body is missing from the store, so nothing was sent; restore the data \
             directory from a backup to send it"
                .to_owned(),
        ),
        response_body: None,
        signature: String::new(),
        standard_signature: None,
    };
    log_outcome(&work.due.delivery_id, entry, &attempt, completion);
    state.metrics.record_attempt(&attempt, completion);
    hand_over_outcome(state, entry, work, attempt, completion, now_ms()).await;
    true
}

/// Returns whether any attempt of a delivery succeeded, so a failed replay of it does not start
/// the retry schedule again. Reads the attempts tree unless the latest attempt settles it. A
/// store error counts as a success, which ends the replay instead of scheduling retries.
fn succeeded_once(state: &AppState, id: &DeliveryId, record: &DeliveryRecord) -> bool {
    if record.attempt_count > 0 && record.last_failure.is_none() {
        return true;
    }
    match state.store.attempts(id, record) {
        Ok(attempts) => attempts.iter().any(|attempt| attempt.succeeded),
        Err(error) => {
            tracing::error!(%error, delivery_id = %id, "cannot read the attempts of a replayed delivery; it gets no retries");
            true
        }
    }
}

/// A random number in `[0, 1)` for retry jitter; 0 if the OS random source fails.
fn random_unit() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.0;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// Tracks when an endpoint's current run of failures began, and pauses the endpoint once every
/// attempt has failed for the configured period, instead of retrying into it forever.
fn track_failing_run(state: &AppState, entry: &EndpointEntry, succeeded: bool, now: u64) {
    let Some(current) = state.endpoints.get(&entry.id) else {
        return;
    };
    let record = &current.record;
    let pause_after = u64::try_from(state.config.auto_pause_after.as_millis()).unwrap_or(u64::MAX);
    let changed = match (succeeded, record.failing_since) {
        (true, None) => return,
        (true, Some(_)) => state.endpoints.modify(&state.store, &entry.id, |record| {
            record.failing_since = None;
        }),
        (false, None) => state.endpoints.modify(&state.store, &entry.id, |record| {
            record.failing_since = Some(now);
        }),
        (false, Some(since)) if !record.paused && now.saturating_sub(since) >= pause_after => {
            let reason = format!(
                "paused by belterd: every attempt failed since {}",
                Timestamp::from_millis(since)
            );
            tracing::warn!(endpoint_id = %entry.id, failing_since = %Timestamp::from_millis(since), "endpoint paused: every attempt failed for the auto-pause period");
            state.endpoints.modify(&state.store, &entry.id, |record| {
                record.paused = true;
                record.paused_reason = Some(reason);
            })
        }
        (false, Some(_)) => return,
    };
    if let Err(error) = changed {
        tracing::error!(%error, endpoint_id = %entry.id, "cannot record endpoint health");
    }
}

/// Releases the concurrency slot of an attempt task that ends, and wakes the scheduler when
/// [`wakes_scheduler`] allows it. Under load one pass then starts several attempts instead of
/// one per ended task.
fn finish(state: &AppState, entry: &EndpointEntry, permit: OwnedSemaphorePermit) {
    let before = entry.health.in_flight.fetch_sub(1, Ordering::Relaxed);
    let global_free = permit.semaphore().available_permits() + 1;
    drop(permit);
    let limit = state.config.max_in_flight_per_endpoint;
    if wakes_scheduler(limit, before.saturating_sub(1), global_free) {
        state.wake_scheduler.notify_one();
    }
}

/// Checks whether an attempt task that ends wakes the scheduler. A step is an eighth of `limit`,
/// from 1 to 16. It wakes when the endpoint, with `in_flight` attempts still running, has a step of free
/// slots, or when the global limit has a step or fewer (`global_free`, the released slot
/// included), because another endpoint may be waiting for a global slot. Other freed slots wait
/// for the next pass, at the latest after [`MAX_IDLE`].
fn wakes_scheduler(limit: usize, in_flight: usize, global_free: usize) -> bool {
    let step = step(limit);
    limit.saturating_sub(in_flight) >= step || global_free <= step
}

/// Returns the scheduler's step for a per-endpoint limit: an eighth of it, from 1 to 16.
fn step(limit: usize) -> usize {
    (limit / 8).clamp(1, 16)
}

fn log_outcome(
    delivery_id: &DeliveryId,
    entry: &EndpointEntry,
    attempt: &AttemptRecord,
    completion: Completion,
) {
    let status = attempt
        .status_code
        .map(|code| code.to_string())
        .or_else(|| attempt.failure.map(|kind| kind.label().to_owned()))
        .unwrap_or_default();
    let error = attempt.error.as_deref().unwrap_or_default();
    match completion {
        Completion::Final(DeliveryStatus::Succeeded) => tracing::debug!(
            %delivery_id, endpoint_id = %entry.id, attempt = attempt.number, %status,
            latency_ms = attempt.latency_ms, "delivered"
        ),
        Completion::Final(DeliveryStatus::Failed) => tracing::warn!(
            %delivery_id, endpoint_id = %entry.id, attempt = attempt.number, %status, error,
            "delivery failed, no attempts left"
        ),
        Completion::Final(final_status) => tracing::info!(
            %delivery_id, endpoint_id = %entry.id, attempt = attempt.number, %status,
            final_status = final_status.as_str(), "delivery ended"
        ),
        Completion::RetryAt(due) => tracing::info!(
            %delivery_id, endpoint_id = %entry.id, attempt = attempt.number, %status, error,
            retry_at = %Timestamp::from_millis(due), "attempt failed, retry scheduled"
        ),
    }
    if attempt.trigger == AttemptTrigger::Replay {
        tracing::debug!(%delivery_id, "replay attempt ended");
    }
}

#[cfg(test)]
mod tests {
    use super::wakes_scheduler;

    /// Free global slots far above any step, so only the endpoint's own slots decide.
    const GLOBAL_FREE: usize = 400;

    #[test]
    fn wakes_at_an_eighth_of_the_limit() {
        assert!(!wakes_scheduler(64, 63, GLOBAL_FREE));
        assert!(!wakes_scheduler(64, 57, GLOBAL_FREE));
        assert!(wakes_scheduler(64, 56, GLOBAL_FREE));
        assert!(wakes_scheduler(64, 0, GLOBAL_FREE));
    }

    #[test]
    fn small_limit_wakes_at_every_slot() {
        for limit in 1..16 {
            assert!(
                wakes_scheduler(limit, limit - 1, GLOBAL_FREE),
                "limit {limit}"
            );
        }
        assert!(!wakes_scheduler(16, 15, GLOBAL_FREE));
        assert!(wakes_scheduler(16, 14, GLOBAL_FREE));
    }

    #[test]
    fn large_limit_wakes_at_sixteen_slots() {
        assert!(!wakes_scheduler(4096, 4081, GLOBAL_FREE));
        assert!(wakes_scheduler(4096, 4080, GLOBAL_FREE));
    }

    #[test]
    fn full_global_limit_wakes_at_every_slot() {
        assert!(wakes_scheduler(64, 63, 1));
        assert!(wakes_scheduler(64, 63, 8));
        assert!(!wakes_scheduler(64, 63, 9));
    }
}
