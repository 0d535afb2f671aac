//! The indexer: writes the due entries of new deliveries that ingest wrote without one, once
//! their ready lane lets them go without an outcome, or keeps them in memory past the hold limit.
//! It also records the time before which every pending delivery has its entry, which bounds
//! what the next start scans after a crash.

use std::collections::BTreeSet;
use std::time::Duration;

use belter_common::{EndpointId, Timestamp};

use crate::ready::{ReadyLanes, Sweep};
use crate::state::AppState;
use crate::store::{Store, StoreError};

/// How long a ready lane may hold a new delivery without its due entry.
const HOLD_LIMIT_MS: u64 = 2_000;

/// Time between two sweeps of the unindexed list.
const SWEEP_EVERY: Duration = Duration::from_millis(200);

/// Sweeps the unindexed list until shutdown.
pub(crate) async fn run(state: AppState) {
    tracing::info!("indexer started");
    let mut ticker = tokio::time::interval(SWEEP_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let sweeping = state.clone();
        if let Err(error) = tokio::task::spawn_blocking(move || sweep_once(&sweeping)).await {
            tracing::error!(%error, "the indexer's sweep failed");
        }
    }
    tracing::info!("indexer stopped");
}

/// Writes the due entries that are due for writing, then has the lanes of their endpoints read
/// them. Blocks on the store.
pub(crate) fn sweep_once(state: &AppState) {
    let now = Timestamp::now().as_millis();
    let sweep = state.ready.sweep(now.saturating_sub(HOLD_LIMIT_MS));
    if sweep.entries.is_empty() && sweep.indexed_before.is_none() {
        return;
    }
    if let Err(error) = write(&state.store, &sweep, sweep.indexed_before) {
        tracing::error!(%error, deliveries = sweep.entries.len(), "writing due entries failed, so the next sweep tries them again");
        state.ready.unsweep(sweep.entries);
        return;
    }
    let endpoints: BTreeSet<&EndpointId> = sweep
        .entries
        .iter()
        .map(|(endpoint, ..)| endpoint)
        .collect();
    for endpoint in endpoints {
        // An endpoint deleted while its entries were written: the deletion's cancel may have
        // read its queue before them, so they are cancelled here.
        if state.endpoints.get(endpoint).is_none() {
            if let Err(error) = state.cancel_queue(endpoint) {
                tracing::error!(%error, endpoint_id = %endpoint, "cannot cancel deliveries of a deleted endpoint");
            }
            continue;
        }
        state.ready.request_scan(endpoint);
    }
    if !sweep.entries.is_empty() {
        tracing::debug!(
            deliveries = sweep.entries.len(),
            "due entries written for deliveries that left memory"
        );
        state.wake_scheduler.notify_one();
    }
}

/// Writes every remaining due entry at a stop, once no attempt runs and the outcome writer has
/// ended, so that the next start needs no scan.
pub(crate) fn index_all(ready: &ReadyLanes, store: &Store) -> Result<(), StoreError> {
    let now = Timestamp::now().as_millis();
    let sweep = ready.sweep(u64::MAX);
    write(store, &sweep, Some(now))
}

fn write(store: &Store, sweep: &Sweep, indexed_before: Option<u64>) -> Result<(), StoreError> {
    store.write_due_entries(sweep.entries.iter().map(|(.., key)| key.as_slice()))?;
    if let Some(ms) = indexed_before {
        store.mark_indexed_before(ms)?;
    }
    Ok(())
}
