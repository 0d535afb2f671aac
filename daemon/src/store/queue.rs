//! The delivery queue: due entries per endpoint, claiming them for an attempt, recording the
//! outcome, replays, cancellation and recovery of attempts cut short by a crash.

use belter_common::records::{AttemptTrigger, DeliveryStatus};
use belter_common::{DeliveryId, EndpointId};
use sled::transaction::{ConflictableTransactionError, Transactional};

use super::{
    abort, attempt_key, due_key, parse_due_key, AttemptRecord, DeliveryRecord, Store, StoreError,
};
use crate::codec::{decode, encode};

/// One due entry of an endpoint.
#[derive(Debug, Clone)]
pub(crate) struct DueEntry {
    pub(crate) delivery_id: DeliveryId,
    key: sled::IVec,
}

/// The next step of a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Completion {
    /// Try again at this time (ms since the epoch).
    RetryAt(u64),
    /// No more attempts; the delivery ends in this status.
    Final(DeliveryStatus),
}

/// The outcome of queueing a replay.
#[derive(Debug)]
pub(crate) enum ReplayOutcome {
    /// Queued for an attempt now.
    Queued(DeliveryRecord),
    /// An attempt is running now, so nothing was queued.
    InFlight,
    /// No such delivery, or it was pruned.
    NotFound,
}

impl Store {
    /// Lists up to `limit` due entries of an endpoint with a due time at or before `now_ms`, in
    /// due order.
    pub(crate) fn due_entries(
        &self,
        endpoint: &EndpointId,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<DueEntry>, StoreError> {
        let start = endpoint.as_str().as_bytes().to_vec();
        let end = due_key(endpoint.as_str(), now_ms.saturating_add(1), "");
        let mut entries = Vec::new();
        for item in self.due.range(start..end).keys().take(limit) {
            let key = item?;
            let (_, delivery_id) = parse_due_key(endpoint, &key)?;
            entries.push(DueEntry { delivery_id, key });
        }
        Ok(entries)
    }

    /// Returns the due time of an endpoint's earliest due entry.
    pub(crate) fn next_due(&self, endpoint: &EndpointId) -> Result<Option<u64>, StoreError> {
        match self
            .due
            .scan_prefix(endpoint.as_str().as_bytes())
            .keys()
            .next()
        {
            Some(key) => Ok(Some(parse_due_key(endpoint, &key?)?.0)),
            None => Ok(None),
        }
    }

    /// Moves a due entry to the in-flight set and marks the delivery in flight. Returns `None`
    /// when the entry is gone, because a replay, a cancellation or pruning got there first.
    ///
    /// No transaction is used: sled 0.34 serializes every transaction with the flush, and the
    /// scheduler is the only claimer. The in-flight entry is written before the due entry is
    /// removed, so a crash in between sends the delivery again rather than losing it.
    pub(crate) fn claim(
        &self,
        entry: &DueEntry,
        now_ms: u64,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        let id = entry.delivery_id.as_str().as_bytes();
        let Some(bytes) = self.deliveries.get(id)? else {
            self.due.remove(&entry.key)?;
            return Ok(None);
        };
        let endpoint = decode::<DeliveryRecord>(&bytes)?.endpoint_id;
        if self.inflight.insert(id, endpoint.as_bytes())?.is_some() {
            // Already in flight: a second due entry, left by a crash, is dropped, since the
            // running attempt's outcome decides what comes next.
            self.due.remove(&entry.key)?;
            return Ok(None);
        }
        if self.due.remove(&entry.key)?.is_none() {
            self.inflight.remove(id)?;
            return Ok(None);
        }
        let updated = self.update_delivery(id, |record| {
            record.status = DeliveryStatus::InFlight;
            record.updated_at = now_ms;
            record.next_attempt_at = None;
        })?;
        if updated.is_none() {
            self.inflight.remove(id)?;
        }
        Ok(updated)
    }

    /// Applies `change` to a stored delivery atomically for that key, and returns the result;
    /// `None` when the delivery does not exist.
    fn update_delivery(
        &self,
        id: &[u8],
        change: impl Fn(&mut DeliveryRecord),
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        let mut failure = None;
        let updated = self.deliveries.update_and_fetch(id, |old| {
            let old = old?;
            match decode::<DeliveryRecord>(old) {
                Ok(mut record) => {
                    change(&mut record);
                    match encode(&record) {
                        Ok(bytes) => Some(bytes),
                        Err(error) => {
                            failure = Some(error);
                            Some(old.to_vec())
                        }
                    }
                }
                Err(error) => {
                    failure = Some(error);
                    Some(old.to_vec())
                }
            }
        })?;
        if let Some(error) = failure {
            return Err(error.into());
        }
        match updated {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Records an attempt and what follows it, and takes the delivery out of the in-flight set.
    /// Returns the updated delivery, or `None` when it was pruned during the attempt.
    ///
    /// The writes go in an order that a crash can only repeat: the attempt, the next due entry,
    /// the delivery, and last the removal from the in-flight set, which a restart would otherwise
    /// turn into a new attempt.
    pub(crate) fn complete(
        &self,
        delivery_id: &DeliveryId,
        attempt: &AttemptRecord,
        completion: Completion,
        now_ms: u64,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        let id = delivery_id.as_str().as_bytes();
        let Some(bytes) = self.deliveries.get(id)? else {
            self.inflight.remove(id)?;
            return Ok(None);
        };
        let endpoint = decode::<DeliveryRecord>(&bytes)?.endpoint_id;
        self.attempts
            .insert(attempt_key(delivery_id, attempt.number), encode(attempt)?)?;
        if let Completion::RetryAt(due_ms) = completion {
            self.due
                .insert(due_key(&endpoint, due_ms, delivery_id.as_str()), &[][..])?;
        }
        let updated = self.update_delivery(id, |record| {
            record.attempt_count = record.attempt_count.max(attempt.number);
            if attempt.trigger != AttemptTrigger::Replay {
                record.scheduled_attempts += 1;
            }
            record.updated_at = now_ms;
            record.last_status_code = attempt.status_code;
            record.last_failure = attempt.failure;
            record.last_error = attempt.error.clone();
            record.last_latency_ms = Some(attempt.latency_ms);
            match completion {
                Completion::RetryAt(due_ms) => {
                    record.status = DeliveryStatus::Pending;
                    record.next_attempt_at = Some(due_ms);
                    record.next_trigger = AttemptTrigger::Retry;
                }
                Completion::Final(status) => {
                    record.status = status;
                    record.next_attempt_at = None;
                }
            }
        })?;
        self.inflight.remove(id)?;
        Ok(updated)
    }

    /// Queues a delivery for a replay attempt at `now_ms`, unless an attempt is running.
    pub(crate) fn requeue(
        &self,
        delivery_id: &DeliveryId,
        target_url: &str,
        now_ms: u64,
    ) -> Result<ReplayOutcome, StoreError> {
        let id = delivery_id.as_str().as_bytes();
        let outcome = (&self.deliveries, &self.due).transaction(|(deliveries, due)| {
            let Some(bytes) = deliveries.get(id)? else {
                return Ok(ReplayOutcome::NotFound);
            };
            let mut record: DeliveryRecord = decode(&bytes).map_err(abort)?;
            if record.status == DeliveryStatus::InFlight {
                return Ok(ReplayOutcome::InFlight);
            }
            if let Some(old_due) = record.next_attempt_at {
                due.remove(due_key(&record.endpoint_id, old_due, delivery_id.as_str()))?;
            }
            record.status = DeliveryStatus::Pending;
            record.next_attempt_at = Some(now_ms);
            record.next_trigger = AttemptTrigger::Replay;
            target_url.clone_into(&mut record.target_url);
            record.updated_at = now_ms;
            due.insert(
                due_key(&record.endpoint_id, now_ms, delivery_id.as_str()),
                &[][..],
            )?;
            deliveries.insert(id, encode(&record).map_err(abort)?)?;
            Ok::<_, ConflictableTransactionError<StoreError>>(ReplayOutcome::Queued(record))
        })?;
        Ok(outcome)
    }

    /// Cancels every queued delivery of an endpoint and returns their ids. Attempts in flight
    /// are not touched; their outcome is recorded when they end.
    pub(crate) fn cancel_endpoint(
        &self,
        endpoint: &EndpointId,
        now_ms: u64,
    ) -> Result<Vec<DeliveryId>, StoreError> {
        let entries = self.due_entries(endpoint, u64::MAX - 1, usize::MAX)?;
        let mut cancelled = Vec::with_capacity(entries.len());
        for entry in entries {
            let id = entry.delivery_id.as_str().as_bytes();
            let done = (&self.due, &self.deliveries).transaction(|(due, deliveries)| {
                if due.remove(&entry.key)?.is_none() {
                    return Ok(false);
                }
                if let Some(bytes) = deliveries.get(id)? {
                    let mut record: DeliveryRecord = decode(&bytes).map_err(abort)?;
                    record.status = DeliveryStatus::Cancelled;
                    record.next_attempt_at = None;
                    record.updated_at = now_ms;
                    deliveries.insert(id, encode(&record).map_err(abort)?)?;
                }
                Ok::<_, ConflictableTransactionError<StoreError>>(true)
            })?;
            if done {
                cancelled.push(entry.delivery_id);
            }
        }
        Ok(cancelled)
    }

    /// Puts every delivery whose attempt was cut short, by a crash or a stop, back in the queue
    /// due at `now_ms`, so it is sent again. Returns how many there were.
    pub(crate) fn recover_inflight(&self, now_ms: u64) -> Result<u64, StoreError> {
        let mut recovered = 0;
        for item in self.inflight.iter() {
            let (id, _endpoint) = item?;
            (&self.inflight, &self.deliveries, &self.due).transaction(
                |(inflight, deliveries, due)| {
                    inflight.remove(&id)?;
                    let Some(bytes) = deliveries.get(&id)? else {
                        return Ok(());
                    };
                    let mut record: DeliveryRecord = decode(&bytes).map_err(abort)?;
                    let delivery_id = String::from_utf8_lossy(&id).into_owned();
                    record.status = DeliveryStatus::Pending;
                    record.next_attempt_at = Some(now_ms);
                    record.updated_at = now_ms;
                    due.insert(due_key(&record.endpoint_id, now_ms, &delivery_id), &[][..])?;
                    deliveries.insert(&id, encode(&record).map_err(abort)?)?;
                    Ok::<_, ConflictableTransactionError<StoreError>>(())
                },
            )?;
            recovered += 1;
        }
        Ok(recovered)
    }

    /// Deliveries waiting in the queue or in flight now. Reads every entry.
    #[cfg(test)]
    pub(crate) fn waiting_count(&self) -> u64 {
        (self.due.len() + self.inflight.len()) as u64
    }

    /// Counts the due entries due before `before_ms` and the in-flight entries. Reads every
    /// entry, so the daemon runs it in the background after it starts.
    pub(crate) fn count_waiting_before(&self, before_ms: u64) -> Result<u64, StoreError> {
        let mut count = self.inflight.len() as u64;
        // Every endpoint id has the same length, so the due time sits at a fixed offset.
        let time_at = EndpointId::PREFIX.len() + 26;
        for key in self.due.iter().keys() {
            let key = key?;
            let due_ms = key
                .get(time_at..time_at + 8)
                .and_then(|slice| <[u8; 8]>::try_from(slice).ok())
                .map_or(0, u64::from_be_bytes);
            if due_ms < before_ms {
                count += 1;
            }
        }
        Ok(count)
    }

    /// Reads one delivery.
    pub(crate) fn delivery(&self, id: &DeliveryId) -> Result<Option<DeliveryRecord>, StoreError> {
        match self.deliveries.get(id.as_str().as_bytes())? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Reads every attempt of a delivery, oldest first.
    pub(crate) fn attempts(&self, id: &DeliveryId) -> Result<Vec<AttemptRecord>, StoreError> {
        let mut attempts = Vec::new();
        for item in self.attempts.scan_prefix(id.as_str().as_bytes()).values() {
            attempts.push(decode(&item?)?);
        }
        Ok(attempts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{open_temp, NewDelivery, NewEvent};
    use belter_common::{EventId, EventType};

    fn queued_delivery(store: &Store, at: u64) -> (EndpointId, DeliveryId) {
        let endpoint = EndpointId::generate();
        let delivery = NewDelivery {
            id: DeliveryId::generate(),
            endpoint_id: endpoint.clone(),
            target_url: "http://127.0.0.1:9/".to_owned(),
        };
        let event = NewEvent {
            id: EventId::generate(),
            kind: EventType::FrustrationDetected,
            created_at: at,
            body: b"{}".to_vec(),
        };
        store
            .write_event(&event, std::slice::from_ref(&delivery), None)
            .unwrap();
        (endpoint, delivery.id)
    }

    fn failed_attempt(number: u32, trigger: AttemptTrigger) -> AttemptRecord {
        AttemptRecord {
            number,
            trigger,
            started_at: 1,
            latency_ms: 2,
            succeeded: false,
            status_code: Some(500),
            failure: Some(belter_common::records::FailureKind::HttpStatus),
            error: Some("HTTP 500".to_owned()),
            response_body: None,
            signature: "v1=00".to_owned(),
            standard_signature: None,
        }
    }

    #[test]
    fn claim_then_retry_requeues() {
        let (_dir, store) = open_temp();
        let (endpoint, id) = queued_delivery(&store, 100);
        assert!(store.due_entries(&endpoint, 99, 10).unwrap().is_empty());
        let entries = store.due_entries(&endpoint, 100, 10).unwrap();
        let record = store.claim(&entries[0], 100).unwrap().unwrap();
        assert_eq!(record.status, DeliveryStatus::InFlight);
        assert!(store.claim(&entries[0], 100).unwrap().is_none());
        assert_eq!(store.waiting_count(), 1);
        assert_eq!(
            store.count_waiting_before(0).unwrap(),
            1,
            "the in-flight entry"
        );

        let attempt = failed_attempt(1, AttemptTrigger::First);
        let updated = store
            .complete(&id, &attempt, Completion::RetryAt(500), 150)
            .unwrap()
            .unwrap();
        assert_eq!(updated.status, DeliveryStatus::Pending);
        assert_eq!(updated.scheduled_attempts, 1);
        assert_eq!(store.next_due(&endpoint).unwrap(), Some(500));
        assert_eq!(store.attempts(&id).unwrap().len(), 1);
    }

    #[test]
    fn replay_moves_due_entry_to_now() {
        let (_dir, store) = open_temp();
        let (endpoint, id) = queued_delivery(&store, 100);
        let entries = store.due_entries(&endpoint, 100, 10).unwrap();
        store.claim(&entries[0], 100).unwrap();
        assert!(matches!(
            store.requeue(&id, "http://127.0.0.1:9/", 120).unwrap(),
            ReplayOutcome::InFlight
        ));
        store
            .complete(
                &id,
                &failed_attempt(1, AttemptTrigger::First),
                Completion::RetryAt(10_000),
                150,
            )
            .unwrap();
        let outcome = store.requeue(&id, "http://127.0.0.1:9/moved", 200).unwrap();
        assert!(matches!(outcome, ReplayOutcome::Queued(_)));
        let entries = store.due_entries(&endpoint, 200, 10).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(store.next_due(&endpoint).unwrap(), Some(200));
        assert!(matches!(
            store
                .requeue(&DeliveryId::generate(), "http://127.0.0.1:9/", 200)
                .unwrap(),
            ReplayOutcome::NotFound
        ));
    }

    #[test]
    fn recover_puts_inflight_back() {
        let (_dir, store) = open_temp();
        let (endpoint, id) = queued_delivery(&store, 100);
        let entries = store.due_entries(&endpoint, 100, 10).unwrap();
        store.claim(&entries[0], 100).unwrap();
        assert_eq!(store.recover_inflight(300).unwrap(), 1);
        let entries = store.due_entries(&endpoint, 300, 10).unwrap();
        assert_eq!(entries[0].delivery_id, id);
        let record = store.delivery(&id).unwrap().unwrap();
        assert_eq!(record.status, DeliveryStatus::Pending);
    }

    #[test]
    fn cancel_marks_queued_deliveries() {
        let (_dir, store) = open_temp();
        let (endpoint, id) = queued_delivery(&store, 100);
        let cancelled = store.cancel_endpoint(&endpoint, 200).unwrap();
        assert_eq!(cancelled, vec![id.clone()]);
        let record = store.delivery(&id).unwrap().unwrap();
        assert_eq!(record.status, DeliveryStatus::Cancelled);
        assert_eq!(store.waiting_count(), 0);
    }
}
