//! The background sweep that removes events, deliveries, attempts, idempotency keys and counts
//! older than the retention period.

use belter_common::Timestamp;

use crate::state::AppState;

/// Events removed per store call, so a long sweep yields between batches.
const PRUNE_BATCH: usize = 1_000;

/// Runs a sweep at start and then every retention interval, until shutdown.
pub(crate) async fn run(state: AppState) {
    loop {
        sweep(&state).await;
        tokio::select! {
            () = tokio::time::sleep(state.config.retention_interval) => {}
            () = state.shutdown.cancelled() => break,
        }
    }
    tracing::debug!("retention sweep stopped");
}

/// Removes everything older than the retention period.
pub(crate) async fn sweep(state: &AppState) {
    let retention_ms = u64::try_from(state.config.retention.as_millis()).unwrap_or(u64::MAX);
    let cutoff = Timestamp::now().minus_millis(retention_ms).as_millis();
    let mut events = 0;
    let mut deliveries = 0;
    let mut pending = 0;
    loop {
        match state.store.prune_before(cutoff, PRUNE_BATCH) {
            Ok(pruned) => {
                events += pruned.events;
                deliveries += pruned.deliveries;
                pending += pruned.pending;
                state.add_waiting(-i64::try_from(pruned.pending).unwrap_or(i64::MAX));
                if pruned.events < PRUNE_BATCH as u64 || state.shutdown.is_cancelled() {
                    break;
                }
            }
            Err(error) => {
                tracing::error!(%error, "retention sweep failed");
                return;
            }
        }
        tokio::task::yield_now().await;
    }
    match state.store.remove_emptied_segments().await {
        Ok(0) => {}
        Ok(removed) => tracing::info!(removed, "deleted event log segments past retention"),
        Err(error) => tracing::error!(%error, "cannot delete event log segments past retention"),
    }
    if let Err(error) = state.store.prune_idempotency(cutoff) {
        tracing::error!(%error, "cannot prune idempotency keys");
    }
    let window_start = (Timestamp::now().as_millis() / 60_000)
        .saturating_sub(crate::registry::FAILURE_WINDOW_MINUTES);
    if let Err(error) = state.store.prune_endpoint_failures(window_start) {
        tracing::error!(%error, "cannot prune endpoint failure counts");
    }
    if let Err(error) = state.store.prune_stats(cutoff) {
        tracing::error!(%error, "cannot prune outcome counts");
    }
    if pending > 0 {
        tracing::warn!(
            pending,
            "pruned deliveries that were still waiting for an attempt, such as those of an endpoint paused for the whole retention period"
        );
    }
    if events > 0 {
        tracing::info!(events, deliveries, "pruned records past retention");
    }
}
