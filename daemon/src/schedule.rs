//! The scheduler: claims due deliveries endpoint by endpoint within the concurrency limits,
//! runs their attempts, and records what follows each one. Every endpoint has its own due range
//! and its own in-flight limit, so a slow or dead endpoint never holds up the others.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use belter_common::records::{
    AttemptTrigger, DeliveryStatus, FailureKind, StreamEvent, StreamKind,
};
use belter_common::{DeliveryId, Timestamp};
use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::deliver::{self, AttemptRequest};
use crate::formats;
use crate::registry::EndpointEntry;
use crate::retry::{self, AttemptOutcome};
use crate::state::AppState;
use crate::store::{AttemptRecord, Completion, DeliveryRecord, OutcomeCounts};

/// Longest the scheduler sleeps without a wake-up, as a guard against a missed notification.
const MAX_IDLE: Duration = Duration::from_secs(5);

/// Extra time in-flight attempts get at shutdown beyond the attempt timeout.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

fn now_ms() -> u64 {
    Timestamp::now().as_millis()
}

/// Runs the scheduler until shutdown, then lets the attempts in flight end. An attempt still
/// running after the attempt timeout and a short grace stays in the in-flight set, which the
/// next start puts back in the queue.
pub(crate) async fn run(state: AppState) {
    let global = Arc::new(Semaphore::new(state.config.max_in_flight));
    let mut attempts = JoinSet::new();
    let mut rotation = 0usize;
    tracing::info!(
        retry_schedule = %state.config.retry_schedule_text(),
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
            "attempts still running at shutdown are queued again at the next start"
        );
        attempts.shutdown().await;
    }
    tracing::info!("scheduler stopped");
}

/// Claims what is due on every active endpoint within the limits, and returns when the
/// scheduler should look again, in ms since the epoch.
fn dispatch_due(
    state: &AppState,
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
            continue;
        }
        let busy = entry.health.in_flight.load(Ordering::Relaxed);
        let free = state
            .config
            .max_in_flight_per_endpoint
            .saturating_sub(busy)
            .min(global.available_permits());
        if free > 0 {
            claim_and_spawn(state, global, attempts, &entry, free, now);
        }
        match state.store.next_due(&entry.id) {
            Ok(Some(due)) if due > now => wake_at = wake_at.min(due),
            Ok(_) => {}
            Err(error) => {
                tracing::error!(%error, endpoint_id = %entry.id, "cannot read the due index")
            }
        }
    }
    wake_at
}

fn claim_and_spawn(
    state: &AppState,
    global: &Arc<Semaphore>,
    attempts: &mut JoinSet<()>,
    entry: &EndpointEntry,
    free: usize,
    now: u64,
) {
    let due = match state.store.due_entries(&entry.id, now, free) {
        Ok(due) => due,
        Err(error) => {
            tracing::error!(%error, endpoint_id = %entry.id, "cannot read the due index");
            return;
        }
    };
    for item in due {
        let Ok(permit) = global.clone().try_acquire_owned() else {
            return;
        };
        match state.store.claim(&item, now) {
            Ok(Some(record)) => {
                entry.health.in_flight.fetch_add(1, Ordering::Relaxed);
                let task = run_attempt(
                    state.clone(),
                    entry.clone(),
                    item.delivery_id,
                    record,
                    permit,
                );
                attempts.spawn(task);
            }
            Ok(None) => {}
            Err(error) => {
                tracing::error!(%error, delivery_id = %item.delivery_id, "cannot claim a due delivery");
            }
        }
    }
}

/// Runs one attempt and records its outcome. The permit and the endpoint's in-flight count are
/// released when it ends.
async fn run_attempt(
    state: AppState,
    entry: EndpointEntry,
    delivery_id: DeliveryId,
    record: DeliveryRecord,
    permit: OwnedSemaphorePermit,
) {
    let number = record.attempt_count + 1;
    let trigger = record.next_trigger;
    let started_at = now_ms();
    state.publish(StreamEvent {
        kind: StreamKind::AttemptStarted,
        delivery: Some(record.to_api(&delivery_id, false)),
        attempt: None,
        missed: None,
    });

    let event = match state.store.event(&record.event_id) {
        Ok(Some(event)) => event,
        Ok(None) => {
            tracing::warn!(%delivery_id, event_id = %record.event_id, "event is gone, delivery dropped");
            finish(&state, &entry, permit);
            return;
        }
        Err(error) => {
            tracing::error!(%error, %delivery_id, "cannot read the event of a delivery");
            finish(&state, &entry, permit);
            return;
        }
    };
    let kind = record.kind();
    let body = formats::render(
        entry.record.format,
        &event.body,
        entry.record.routing_key.as_deref(),
    );
    let request = AttemptRequest {
        url: &record.target_url,
        body: Bytes::from(body),
        secrets: entry.record.signing_secrets(started_at),
        event_type: kind.as_str(),
        event_id: &record.event_id,
        delivery_id: delivery_id.as_str(),
        attempt: number,
        standard_webhooks: entry.record.standard_webhooks,
    };
    tracing::debug!(%delivery_id, endpoint_id = %entry.id, attempt = number, ?trigger, "attempt started");
    let result = deliver::send(
        &state.http,
        &state.policy,
        request,
        state.config.attempt_timeout,
    )
    .await;
    let ended_at = now_ms();

    let endpoint_gone = state.endpoints.get(&entry.id).is_none();
    let blocked = result.failure == Some(FailureKind::BlockedByPolicy);
    let completion = if endpoint_gone && !result.succeeded {
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
        retry::after_attempt(
            &state.config.retry_schedule,
            record.scheduled_attempts,
            trigger,
            outcome,
            ended_at,
            random_unit(),
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
        error: result.error.clone(),
        response_body: result.response_body.clone(),
        signature: result.signatures.belter.clone(),
        standard_signature: result.signatures.standard.clone(),
    };
    log_outcome(&delivery_id, &entry, &attempt, completion);
    state.metrics.record_attempt(&attempt, completion);
    entry.health.record(result.succeeded, ended_at);
    if let Err(error) = state
        .store
        .record_endpoint_outcome(&entry.id, result.succeeded, ended_at)
    {
        tracing::error!(%error, endpoint_id = %entry.id, "cannot store endpoint health");
    }
    track_failing_run(&state, &entry, result.succeeded, ended_at);

    match state
        .store
        .complete(&delivery_id, &attempt, completion, ended_at)
    {
        Ok(Some(updated)) => {
            count_outcome(&state, &attempt, completion, ended_at);
            state.publish(StreamEvent {
                kind: StreamKind::AttemptFinished,
                delivery: Some(updated.to_api(&delivery_id, entry.record.paused)),
                attempt: Some(attempt.to_api()),
                missed: None,
            });
        }
        Ok(None) => tracing::debug!(%delivery_id, "delivery pruned during its attempt"),
        Err(error) => {
            tracing::error!(%error, %delivery_id, "cannot record an attempt; it is sent again after a restart");
        }
    }
    finish(&state, &entry, permit);
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

fn finish(state: &AppState, entry: &EndpointEntry, permit: OwnedSemaphorePermit) {
    entry.health.in_flight.fetch_sub(1, Ordering::Relaxed);
    drop(permit);
    state.wake_scheduler.notify_one();
}

fn count_outcome(state: &AppState, attempt: &AttemptRecord, completion: Completion, at: u64) {
    let gave_up = completion == Completion::Final(DeliveryStatus::Failed);
    let counts = OutcomeCounts {
        ok: u64::from(attempt.succeeded),
        failed: u64::from(!attempt.succeeded),
        gave_up: u64::from(gave_up),
    };
    if let Err(error) = state.store.count_outcome(at, counts) {
        tracing::error!(%error, "cannot count an attempt outcome");
    }
    if matches!(completion, Completion::Final(_)) {
        state.add_waiting(-1);
    }
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
        Completion::Final(DeliveryStatus::Succeeded) => tracing::info!(
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
