//! The delivery queue: due entries per endpoint, reading them for the scheduler, recording
//! outcomes, replays, cancellation and recovery of attempts cut short by an older version.
//!
//! A due entry stays in the index while its attempt runs and is removed only with the outcome,
//! so a crash during an attempt sends it again. A new delivery that ingest hands to a ready lane
//! is written without one, which saves a write and a removal when its first attempt succeeds.
//! The indexer writes its entry when the lane lets the delivery go without an outcome, and
//! [`Store::recover_unindexed`] writes the entries that a crash left unwritten.
//!
//! An entry counts only while its delivery is pending with that very due time. Any other entry
//! is left over from a crash between two writes, or was written by the indexer while the outcome
//! was written, and it is removed when it is read. A due group names several deliveries of one
//! ingest request. An outcome leaves it in place, which saves a write and a removal per
//! delivery. The outcome of the last delivery that a read handed out removes it, and otherwise a
//! read once none of its deliveries is waiting or running.
//!
//! No sled transaction or batch is used, because either one switches every read and write of the
//! process to a global lock in sled 0.34.

use rustc_hash::FxHashSet;

use belter_common::records::{AttemptTrigger, DeliveryStatus};
use belter_common::{DeliveryId, EndpointId};

use super::{
    attempt_key, due_key, is_due_group, parse_due_entry, split_due_key, AttemptRecord,
    DeliveryRecord, DueIds, Store, StoreError,
};
use crate::codec::{decode, encode};

/// A delivery read from the due index, with the key of its entry.
#[derive(Debug, Clone)]
pub(crate) struct DueWork {
    pub(crate) delivery_id: DeliveryId,
    /// Its due entry, removed when the outcome is written.
    pub(crate) due_key: Vec<u8>,
    /// The delivery, without the latest attempt of the stored record, so that lanes full of
    /// retries and replays stay small.
    pub(crate) record: DeliveryRecord,
    /// Whether the stored record contains a latest attempt that `record` leaves out. The outcome
    /// reads it back and moves it to the attempts tree.
    pub(crate) stored_attempt: bool,
}

/// The attempt that an outcome replaces as the delivery's latest.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Displaced<'a> {
    /// The delivery had no attempt before.
    Nothing,
    /// This attempt, which the caller holds.
    Attempt(&'a AttemptRecord),
    /// The latest attempt of the stored record, which the caller's copy left out.
    Stored,
}

/// The result of one read of an endpoint's due index.
#[derive(Debug, Default)]
pub(crate) struct LoadedDue {
    pub(crate) works: Vec<DueWork>,
    /// Whether every entry due by then was read, rather than stopping at the limit.
    pub(crate) complete: bool,
    /// The earliest due time after then, when the read was complete.
    pub(crate) next_due: Option<u64>,
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
    /// Queued for an attempt now, with the record as written.
    Queued(Box<DeliveryRecord>),
    /// No such delivery, or it was pruned.
    NotFound,
}

impl DueIds {
    fn into_vec(self) -> Vec<DeliveryId> {
        match self {
            DueIds::One(id) => vec![id],
            DueIds::Group(ids) => ids,
        }
    }
}

/// The due groups whose deliveries a read of the queue handed out, each with the number of them
/// still without an outcome. The outcome that brings a count to zero removes the group, so the
/// next read does not load each of its deliveries again only to find them ended. A group that
/// is not here, because a read found one of its deliveries running or stopped at the limit, or
/// because belterd started since, is removed by a read as before.
#[derive(Default)]
pub(super) struct GroupsInFlight(std::sync::Mutex<rustc_hash::FxHashMap<Vec<u8>, usize>>);

/// Maximum number of groups that [`GroupsInFlight`] follows. Past it, the count is cleared,
/// and reads remove the groups it followed.
const MAX_GROUPS_IN_FLIGHT: usize = 100_000;

impl GroupsInFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, rustc_hash::FxHashMap<Vec<u8>, usize>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts counting the outcomes of a group after a read handed out `count` deliveries, all
    /// that it had waiting.
    fn handed_out(&self, key: &[u8], count: usize) {
        let mut groups = self.lock();
        if groups.len() >= MAX_GROUPS_IN_FLIGHT {
            groups.clear();
        }
        groups.insert(key.to_vec(), count);
    }

    /// Counts one outcome of a delivery of the group `key`. Returns whether it was the last.
    fn settled(&self, key: &[u8]) -> bool {
        let mut groups = self.lock();
        let Some(left) = groups.get_mut(key) else {
            return false;
        };
        *left = left.saturating_sub(1);
        if *left > 0 {
            return false;
        }
        groups.remove(key);
        true
    }
}

/// The deliveries that the due groups of one endpoint and due time name, read once for the
/// consecutive deliveries of one ingest request.
#[derive(Default)]
struct GroupCache {
    prefix: Vec<u8>,
    ids: FxHashSet<DeliveryId>,
}

impl GroupCache {
    /// Checks whether a due group of `endpoint` due at `due_ms` names the delivery `id`.
    fn holds(
        &mut self,
        store: &Store,
        endpoint: &str,
        due_ms: u64,
        id: &str,
    ) -> Result<bool, StoreError> {
        let prefix = due_key(endpoint, due_ms, "");
        if prefix != self.prefix {
            self.ids.clear();
            let parsed = EndpointId::parse(endpoint).map_err(|error| StoreError::CorruptKey {
                tree: "deliveries",
                detail: error.to_string(),
            })?;
            for item in store.due.scan_prefix(&prefix) {
                let (key, value) = item?;
                if let (_, DueIds::Group(ids)) = parse_due_entry(&parsed, &key, &value)? {
                    self.ids.extend(ids);
                }
            }
            self.prefix = prefix;
        }
        Ok(DeliveryId::parse(id).is_ok_and(|id| self.ids.contains(&id)))
    }
}

/// Checks whether a due entry with this due time is the live one of `record`.
fn is_live(record: &DeliveryRecord, due_ms: u64) -> bool {
    record.status == DeliveryStatus::Pending && record.next_attempt_at == Some(due_ms)
}

impl Store {
    /// Reads an endpoint's entries due at or before `now_ms` with their deliveries, up to
    /// `limit`, skipping `known`, and removes the stale entries it meets.
    pub(crate) fn load_due(
        &self,
        endpoint: &EndpointId,
        now_ms: u64,
        limit: usize,
        known: &FxHashSet<DeliveryId>,
    ) -> Result<LoadedDue, StoreError> {
        let start = endpoint.as_str().as_bytes().to_vec();
        let after_now = due_key(endpoint.as_str(), now_ms.saturating_add(1), "");
        let mut loaded = LoadedDue {
            complete: true,
            ..LoadedDue::default()
        };
        for item in self.due.range(start..after_now.clone()) {
            let (key, value) = item?;
            let (due_ms, ids) = parse_due_entry(endpoint, &key, &value)?;
            let group = matches!(ids, DueIds::Group(_));
            // An entry stays while it names a delivery that is known or live.
            let mut any_known = false;
            let mut handed_out = 0;
            for delivery_id in ids.into_vec() {
                if known.contains(&delivery_id) {
                    any_known = true;
                    continue;
                }
                if loaded.works.len() >= limit {
                    loaded.complete = false;
                    return Ok(loaded);
                }
                let Some(mut record) = self.live_delivery(&delivery_id, due_ms)? else {
                    continue;
                };
                handed_out += 1;
                let stored_attempt = record.latest_attempt.take().is_some();
                loaded.works.push(DueWork {
                    delivery_id,
                    due_key: key.to_vec(),
                    record,
                    stored_attempt,
                });
            }
            if !any_known && handed_out == 0 {
                self.due.remove(&key)?;
            } else if group && !any_known {
                self.groups_in_flight.handed_out(&key, handed_out);
            }
        }
        if let Some(key) = self.due.range(after_now..).keys().next() {
            let key = key?;
            if key.starts_with(endpoint.as_str().as_bytes()) {
                loaded.next_due = Some(split_due_key(endpoint, &key)?.0);
            }
        }
        Ok(loaded)
    }

    /// Reads a delivery that is pending with the due time `due_ms`, if it is.
    fn live_delivery(
        &self,
        delivery_id: &DeliveryId,
        due_ms: u64,
    ) -> Result<Option<DeliveryRecord>, StoreError> {
        let Some(stored) = self.delivery_bytes(delivery_id.as_str())? else {
            return Ok(None);
        };
        let record: DeliveryRecord = decode(stored.bytes())?;
        Ok(is_live(&record, due_ms).then_some(record))
    }

    /// Returns the due time of an endpoint's earliest due entry, one whose attempt runs included.
    /// A due group whose deliveries all ended is removed on the way.
    pub(crate) fn next_due(&self, endpoint: &EndpointId) -> Result<Option<u64>, StoreError> {
        for item in self.due.scan_prefix(endpoint.as_str().as_bytes()) {
            let (key, value) = item?;
            let (due_ms, ids) = parse_due_entry(endpoint, &key, &value)?;
            let DueIds::Group(ids) = ids else {
                return Ok(Some(due_ms));
            };
            for id in &ids {
                if self.live_delivery(id, due_ms)?.is_some() {
                    return Ok(Some(due_ms));
                }
            }
            self.due.remove(&key)?;
        }
        Ok(None)
    }

    /// Records the delivery as it is after an attempt, with that attempt as its latest, moves
    /// the attempt it `displaced` to the attempts tree, and replaces the delivery's due entry
    /// `due_key_now` with the next one, if any. With `check_pruned`, it first checks that the
    /// delivery is still stored, and returns `false`, writing nothing but the removal of the
    /// entry, when the retention sweep removed it during the attempt. The caller skips that
    /// read for deliveries too young for the sweep.
    ///
    /// The writes go in an order that a crash can only repeat: the displaced attempt, the next
    /// due entry, the delivery, and last the removal of the entry that started the attempt.
    /// With `unindexed`, the delivery was written without that entry, so nothing is removed.
    /// With `record_written`, [`Store::write_records_in_groups`] already wrote the delivery.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_outcome(
        &self,
        delivery_id: &DeliveryId,
        due_key_now: &[u8],
        unindexed: bool,
        updated: &DeliveryRecord,
        displaced: Displaced<'_>,
        check_pruned: bool,
        record_written: bool,
    ) -> Result<bool, StoreError> {
        let id = delivery_id.as_str().as_bytes();
        // A due group stays until a read finds none of its deliveries waiting.
        let group = is_due_group(&updated.endpoint_id, due_key_now);
        let read_stored = check_pruned || matches!(displaced, Displaced::Stored);
        let stored = if read_stored {
            match self.delivery_bytes(delivery_id.as_str())? {
                Some(stored) => Some(stored),
                None => {
                    if !unindexed && (!group || self.groups_in_flight.settled(due_key_now)) {
                        self.due.remove(due_key_now)?;
                    }
                    return Ok(false);
                }
            }
        } else {
            None
        };
        let stored_attempt = match (displaced, &stored) {
            (Displaced::Stored, Some(stored)) => {
                decode::<DeliveryRecord>(stored.bytes())?.latest_attempt
            }
            _ => None,
        };
        let moved = match displaced {
            Displaced::Attempt(attempt) => Some(attempt),
            Displaced::Stored => stored_attempt.as_deref(),
            Displaced::Nothing => None,
        };
        if let Some(attempt) = moved {
            self.attempts
                .insert(attempt_key(delivery_id, attempt.number), encode(attempt)?)?;
        }
        let next_key = updated
            .next_attempt_at
            .map(|due_ms| due_key(&updated.endpoint_id, due_ms, delivery_id.as_str()));
        if let Some(key) = &next_key {
            self.due.insert(key.as_slice(), &[][..])?;
        }
        if !record_written {
            self.put_own_record(id, &encode(updated)?)?;
        }
        let ended = if group {
            self.groups_in_flight.settled(due_key_now)
        } else {
            next_key.as_deref() != Some(due_key_now)
        };
        if !unindexed && ended {
            self.due.remove(due_key_now)?;
        }
        Ok(true)
    }

    /// Writes due entries of deliveries that were written without one.
    pub(crate) fn write_due_entries<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<(), StoreError> {
        for key in keys {
            self.due.insert(key, &[][..])?;
        }
        Ok(())
    }

    /// Writes the missing due entries of pending deliveries made at or after the time that
    /// [`Store::mark_indexed_before`] recorded last. Only a crash leaves any: ingest writes a
    /// delivery that a ready lane keeps in memory without its entry, and the indexer writes the
    /// entry when the lane lets the delivery go without an outcome, or after the hold limit.
    /// Returns how many were written.
    pub(crate) fn recover_unindexed(&self) -> Result<u64, StoreError> {
        let Some(since_ms) = self.indexed_before()? else {
            return Ok(0);
        };
        let start = DeliveryId::first_at(since_ms);
        let mut written = 0;
        let mut groups = GroupCache::default();
        let mut end = DeliveryId::PREFIX.as_bytes().to_vec();
        end.push(0xff);
        for item in self.scan_deliveries(start.as_str().as_bytes(), &end, false) {
            let (id, stored) = item?;
            let record: DeliveryRecord = decode(stored.bytes())?;
            let Some(due_ms) = record.next_attempt_at else {
                continue;
            };
            if record.status != DeliveryStatus::Pending {
                continue;
            }
            let id = std::str::from_utf8(&id).map_err(|_| StoreError::CorruptKey {
                tree: "deliveries",
                detail: "not UTF-8".to_owned(),
            })?;
            let key = due_key(&record.endpoint_id, due_ms, id);
            if self.due.contains_key(&key)?
                || groups.holds(self, &record.endpoint_id, due_ms, id)?
            {
                continue;
            }
            self.due.insert(key, &[][..])?;
            written += 1;
        }
        Ok(written)
    }

    /// Queues a delivery for a replay attempt at `now_ms`. The caller makes sure no attempt of
    /// it is running.
    pub(crate) fn requeue(
        &self,
        delivery_id: &DeliveryId,
        target_url: &str,
        now_ms: u64,
    ) -> Result<ReplayOutcome, StoreError> {
        let id = delivery_id.as_str().as_bytes();
        let Some(stored) = self.delivery_bytes(delivery_id.as_str())? else {
            return Ok(ReplayOutcome::NotFound);
        };
        let mut record: DeliveryRecord = decode(stored.bytes())?;
        let old_key = record
            .next_attempt_at
            .map(|due_ms| due_key(&record.endpoint_id, due_ms, delivery_id.as_str()));
        record.status = DeliveryStatus::Pending;
        record.next_attempt_at = Some(now_ms);
        record.next_trigger = AttemptTrigger::Replay;
        target_url.clone_into(&mut record.target_url);
        record.updated_at = now_ms;
        let new_key = due_key(&record.endpoint_id, now_ms, delivery_id.as_str());
        self.due.insert(new_key.as_slice(), &[][..])?;
        self.put_own_record(id, &encode(&record)?)?;
        if let Some(old_key) = old_key.filter(|old_key| *old_key != new_key) {
            self.due.remove(old_key)?;
        }
        Ok(ReplayOutcome::Queued(Box::new(record)))
    }

    /// Cancels every queued delivery of an endpoint, except the `running` ones, and returns
    /// their ids. A running attempt's outcome is recorded when it ends.
    pub(crate) fn cancel_endpoint(
        &self,
        endpoint: &EndpointId,
        now_ms: u64,
        running: &FxHashSet<DeliveryId>,
    ) -> Result<Vec<DeliveryId>, StoreError> {
        let mut cancelled = Vec::new();
        for item in self.due.scan_prefix(endpoint.as_str().as_bytes()) {
            let (key, value) = item?;
            let (due_ms, ids) = parse_due_entry(endpoint, &key, &value)?;
            if let DueIds::One(delivery_id) = &ids {
                if running.contains(delivery_id) {
                    continue;
                }
            }
            for delivery_id in ids.into_vec() {
                if running.contains(&delivery_id) {
                    continue;
                }
                let Some(mut record) = self.live_delivery(&delivery_id, due_ms)? else {
                    continue;
                };
                record.status = DeliveryStatus::Cancelled;
                record.next_attempt_at = None;
                record.updated_at = now_ms;
                self.put_own_record(delivery_id.as_str().as_bytes(), &encode(&record)?)?;
                cancelled.push(delivery_id);
            }
            // A running delivery of a group needs no entry: its outcome writes its next one.
            self.due.remove(&key)?;
        }
        Ok(cancelled)
    }

    /// Puts every delivery that an older version of belterd marked in flight, and whose attempt
    /// a stop cut short, back in the queue due at `now_ms`. Returns how many there were.
    pub(crate) fn recover_inflight(&self, now_ms: u64) -> Result<u64, StoreError> {
        let mut recovered = 0;
        for item in self.inflight.iter() {
            let (id, _endpoint) = item?;
            let delivery_id = String::from_utf8_lossy(&id).into_owned();
            if let Some(stored) = self.delivery_bytes(&delivery_id)? {
                let mut record: DeliveryRecord = decode(stored.bytes())?;
                record.status = DeliveryStatus::Pending;
                record.next_attempt_at = Some(now_ms);
                record.updated_at = now_ms;
                self.due
                    .insert(due_key(&record.endpoint_id, now_ms, &delivery_id), &[][..])?;
                self.put_own_record(&id, &encode(&record)?)?;
            }
            self.inflight.remove(&id)?;
            recovered += 1;
        }
        Ok(recovered)
    }

    /// Counts the deliveries that due entries name, which is the number of waiting deliveries
    /// while no attempt runs. Reads every entry of the due index.
    ///
    /// A due group can outlive its deliveries, which may also have moved to a retry's or a
    /// replay's entry or been pruned. The last outcome removes it only when one read handed out
    /// all of them, and otherwise a later read does. So it counts only the deliveries that are
    /// still pending with its due time, which costs one read of each.
    pub(crate) fn count_waiting(&self) -> Result<u64, StoreError> {
        let mut count = 0;
        for item in self.due.iter() {
            let (key, value) = item?;
            // A single entry has an empty value, and a due group lists its deliveries.
            if value.is_empty() {
                count += 1;
                continue;
            }
            for (id, _) in crate::codec::group_members(&value)? {
                let id = std::str::from_utf8(id).map_err(|_| StoreError::CorruptKey {
                    tree: "due",
                    detail: "a due group member is not UTF-8".to_owned(),
                })?;
                let Some(stored) = self.delivery_bytes(id)? else {
                    continue;
                };
                let record: DeliveryRecord = decode(stored.bytes())?;
                let waits_here = record.status == DeliveryStatus::Pending
                    && record.next_attempt_at.is_some_and(|due_ms| {
                        key.starts_with(&due_key(&record.endpoint_id, due_ms, ""))
                    });
                count += u64::from(waits_here);
            }
        }
        Ok(count)
    }

    /// Reads one delivery.
    pub(crate) fn delivery(&self, id: &DeliveryId) -> Result<Option<DeliveryRecord>, StoreError> {
        match self.delivery_bytes(id.as_str())? {
            Some(stored) => Ok(Some(decode(stored.bytes())?)),
            None => Ok(None),
        }
    }

    /// Reads every attempt of a delivery, oldest first: the attempts tree, then the latest
    /// attempt kept in `record`. A tree entry with the latest attempt's number or a higher one is
    /// skipped, because a crash between the two writes of an outcome leaves such a copy.
    pub(crate) fn attempts(
        &self,
        id: &DeliveryId,
        record: &DeliveryRecord,
    ) -> Result<Vec<AttemptRecord>, StoreError> {
        let latest_number = record.latest_attempt.as_ref().map(|latest| latest.number);
        let mut attempts = Vec::new();
        for item in self.attempts.scan_prefix(id.as_str().as_bytes()).values() {
            let attempt: AttemptRecord = decode(&item?)?;
            if latest_number.is_none_or(|latest| attempt.number < latest) {
                attempts.push(attempt);
            }
        }
        attempts.extend(record.latest_attempt.as_deref().cloned());
        Ok(attempts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{open_temp, NewDelivery, NewEvent, NewEventWrite};
    use belter_common::{EventId, EventType};

    fn queued_delivery(store: &Store, at: u64) -> (EndpointId, DeliveryId) {
        let endpoint = EndpointId::generate();
        let delivery = NewDelivery {
            id: DeliveryId::generate(),
            endpoint_id: endpoint.clone(),
            target_url: "http://127.0.0.1:9/".to_owned(),
            deferred: false,
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

    fn load(store: &Store, endpoint: &EndpointId, now: u64) -> LoadedDue {
        store
            .load_due(endpoint, now, 10, &FxHashSet::default())
            .unwrap()
    }

    #[test]
    fn recovery_writes_entries_after_mark() {
        let (_dir, store) = open_temp();
        let write_deferred = |at: u64| {
            let delivery = NewDelivery {
                id: DeliveryId::generate(),
                endpoint_id: EndpointId::generate(),
                target_url: "http://127.0.0.1:9/".to_owned(),
                deferred: true,
            };
            let event = NewEvent {
                id: EventId::generate(),
                kind: EventType::CsatReceived,
                created_at: at,
                body: b"{}".to_vec(),
            };
            store
                .write_event(&event, std::slice::from_ref(&delivery), None)
                .unwrap();
            (delivery.endpoint_id, delivery.id)
        };
        let (endpoint, id) = write_deferred(100);
        assert!(load(&store, &endpoint, 100).works.is_empty());
        assert_eq!(store.recover_unindexed().unwrap(), 0, "no mark, no scan");

        store.mark_indexed_before(id.timestamp_ms()).unwrap();
        assert_eq!(store.recover_unindexed().unwrap(), 1);
        let loaded = load(&store, &endpoint, 100);
        assert_eq!(loaded.works.len(), 1);
        assert_eq!(loaded.works[0].delivery_id, id);
        assert_eq!(store.recover_unindexed().unwrap(), 0, "written already");

        let (older, _) = write_deferred(200);
        store
            .mark_indexed_before(u64::from(u32::MAX) << 12)
            .unwrap();
        assert_eq!(
            store.recover_unindexed().unwrap(),
            0,
            "made before the mark"
        );
        assert!(load(&store, &older, 200).works.is_empty());
    }

    #[test]
    fn unindexed_outcome_removes_no_entry() {
        let (_dir, store) = open_temp();
        let (endpoint, id) = queued_delivery(&store, 100);
        let work = load(&store, &endpoint, 100).works.remove(0);
        let mut updated = work.record.clone();
        updated.after_attempt(
            failed_attempt(1, AttemptTrigger::First),
            Completion::Final(DeliveryStatus::Failed),
            150,
        );
        assert!(store
            .record_outcome(
                &id,
                &work.due_key,
                true,
                &updated,
                Displaced::Nothing,
                true,
                false
            )
            .unwrap());
        assert_eq!(store.count_waiting().unwrap(), 1, "the entry is left alone");
        assert!(
            load(&store, &endpoint, 100).works.is_empty(),
            "and dropped when read, since the delivery ended"
        );
        assert_eq!(store.count_waiting().unwrap(), 0);
    }

    #[test]
    fn outcome_with_retry_moves_the_due_entry() {
        let (_dir, store) = open_temp();
        let (endpoint, id) = queued_delivery(&store, 100);
        let early = load(&store, &endpoint, 99);
        assert!(early.works.is_empty());
        assert_eq!(early.next_due, Some(100));
        let loaded = load(&store, &endpoint, 100);
        assert!(loaded.complete);
        let work = &loaded.works[0];
        assert_eq!(work.delivery_id, id);
        let skipped = store
            .load_due(&endpoint, 100, 10, &FxHashSet::from_iter([id.clone()]))
            .unwrap();
        assert!(skipped.works.is_empty(), "a known delivery is skipped");

        let mut updated = work.record.clone();
        let displaced = updated.after_attempt(
            failed_attempt(1, AttemptTrigger::First),
            Completion::RetryAt(500),
            150,
        );
        assert!(displaced.is_none(), "the first attempt displaces nothing");
        assert!(!work.stored_attempt);
        assert!(store
            .record_outcome(
                &id,
                &work.due_key,
                false,
                &updated,
                Displaced::Nothing,
                true,
                false
            )
            .unwrap());
        let stored = store.delivery(&id).unwrap().unwrap();
        assert_eq!(stored.status, DeliveryStatus::Pending);
        assert_eq!(stored.scheduled_attempts, 1);
        assert_eq!(stored.next_attempt_at, Some(500));
        assert!(load(&store, &endpoint, 499).works.is_empty());
        assert_eq!(load(&store, &endpoint, 500).works.len(), 1);
        assert_eq!(store.attempts(&id, &stored).unwrap().len(), 1);
        assert_eq!(
            store.attempts.len(),
            0,
            "the latest attempt stays in the delivery record"
        );
        assert_eq!(store.count_waiting().unwrap(), 1);
    }

    #[test]
    fn next_outcome_moves_latest_attempt_to_tree() {
        let (_dir, store) = open_temp();
        let (endpoint, id) = queued_delivery(&store, 100);
        let work = load(&store, &endpoint, 100).works.remove(0);
        let mut record = work.record.clone();
        let displaced = record.after_attempt(
            failed_attempt(1, AttemptTrigger::First),
            Completion::RetryAt(500),
            150,
        );
        assert!(displaced.is_none());
        store
            .record_outcome(
                &id,
                &work.due_key,
                false,
                &record,
                Displaced::Nothing,
                false,
                false,
            )
            .unwrap();

        let retry = load(&store, &endpoint, 500).works.remove(0);
        assert!(retry.stored_attempt, "the stored record has attempt 1");
        assert!(
            retry.record.latest_attempt.is_none(),
            "the loaded copy leaves it out"
        );
        let mut record = retry.record.clone();
        let displaced = record.after_attempt(
            failed_attempt(2, AttemptTrigger::Retry),
            Completion::Final(DeliveryStatus::Failed),
            600,
        );
        assert!(displaced.is_none());
        store
            .record_outcome(
                &id,
                &retry.due_key,
                false,
                &record,
                Displaced::Stored,
                false,
                false,
            )
            .unwrap();

        let stored = store.delivery(&id).unwrap().unwrap();
        assert_eq!(store.attempts.len(), 1, "attempt 1 moved to the tree");
        let numbers: Vec<u32> = store
            .attempts(&id, &stored)
            .unwrap()
            .iter()
            .map(|attempt| attempt.number)
            .collect();
        assert_eq!(numbers, vec![1, 2]);
        assert_eq!(store.count_waiting().unwrap(), 0);
    }

    #[test]
    fn caller_attempt_goes_to_tree() {
        let (_dir, store) = open_temp();
        let (endpoint, id) = queued_delivery(&store, 100);
        let work = load(&store, &endpoint, 100).works.remove(0);
        let mut record = work.record.clone();
        record.after_attempt(
            failed_attempt(1, AttemptTrigger::First),
            Completion::Final(DeliveryStatus::Failed),
            150,
        );
        store
            .record_outcome(
                &id,
                &work.due_key,
                false,
                &record,
                Displaced::Nothing,
                true,
                false,
            )
            .unwrap();

        // A replay whose caller still has attempt 1 in its copy.
        let displaced = record.after_attempt(
            failed_attempt(2, AttemptTrigger::Replay),
            Completion::Final(DeliveryStatus::Failed),
            200,
        );
        let held = displaced.unwrap();
        store
            .record_outcome(
                &id,
                &[],
                false,
                &record,
                Displaced::Attempt(&held),
                true,
                false,
            )
            .unwrap();

        let stored = store.delivery(&id).unwrap().unwrap();
        let numbers: Vec<u32> = store
            .attempts(&id, &stored)
            .unwrap()
            .iter()
            .map(|attempt| attempt.number)
            .collect();
        assert_eq!(numbers, vec![1, 2]);
    }

    #[test]
    fn pruned_delivery_outcome_writes_nothing() {
        let (_dir, store) = open_temp();
        let (endpoint, id) = queued_delivery(&store, 100);
        let work = load(&store, &endpoint, 100).works.remove(0);
        store.deliveries.remove(id.as_str()).unwrap();
        let mut record = work.record.clone();
        record.after_attempt(
            failed_attempt(1, AttemptTrigger::First),
            Completion::RetryAt(500),
            150,
        );
        let written = store
            .record_outcome(
                &id,
                &work.due_key,
                false,
                &record,
                Displaced::Nothing,
                true,
                false,
            )
            .unwrap();
        assert!(!written);
        assert!(store.delivery(&id).unwrap().is_none());
        assert_eq!(store.count_waiting().unwrap(), 0, "no retry entry is left");
    }

    #[test]
    fn attempts_skip_tree_copy_of_latest() {
        let (_dir, store) = open_temp();
        let (endpoint, id) = queued_delivery(&store, 100);
        let work = load(&store, &endpoint, 100).works.remove(0);
        let mut record = work.record.clone();
        record.after_attempt(
            failed_attempt(1, AttemptTrigger::First),
            Completion::RetryAt(500),
            150,
        );
        store
            .record_outcome(
                &id,
                &work.due_key,
                false,
                &record,
                Displaced::Nothing,
                true,
                false,
            )
            .unwrap();
        // As a crash after the displaced attempt's write and before the delivery's leaves it.
        store
            .attempts
            .insert(
                attempt_key(&id, 1),
                encode(&failed_attempt(1, AttemptTrigger::First)).unwrap(),
            )
            .unwrap();
        let stored = store.delivery(&id).unwrap().unwrap();
        assert_eq!(store.attempts(&id, &stored).unwrap().len(), 1);
    }

    #[test]
    fn version_one_delivery_record_is_read() {
        let (_dir, store) = open_temp();
        let (endpoint, id) = queued_delivery(&store, 100);
        let old = crate::store::records::DeliveryRecordV1 {
            event_id: "evt_01J00000000000000000000000".to_owned(),
            event_type: 3,
            endpoint_id: endpoint.to_string(),
            target_url: "http://127.0.0.1:9/".to_owned(),
            status: DeliveryStatus::Pending,
            attempt_count: 1,
            scheduled_attempts: 1,
            created_at: 100,
            updated_at: 150,
            next_attempt_at: Some(100),
            next_trigger: AttemptTrigger::Retry,
            last_status_code: Some(500),
            last_failure: Some(belter_common::records::FailureKind::HttpStatus),
            last_error: Some("HTTP 500".to_owned()),
            last_latency_ms: Some(2),
        };
        let mut bytes = vec![crate::codec::FIRST_VERSION];
        bytes.extend(bincode::serde::encode_to_vec(&old, bincode::config::standard()).unwrap());
        store
            .put_own_record(id.as_str().as_bytes(), &bytes)
            .unwrap();
        store
            .attempts
            .insert(
                attempt_key(&id, 1),
                encode(&failed_attempt(1, AttemptTrigger::First)).unwrap(),
            )
            .unwrap();

        let stored = store.delivery(&id).unwrap().unwrap();
        assert_eq!(stored.last_status_code, Some(500));
        assert_eq!(stored.attempt_count, 1);
        assert!(stored.latest_attempt.is_none());
        assert_eq!(store.attempts(&id, &stored).unwrap().len(), 1);
        let due = load(&store, &endpoint, 100);
        assert_eq!(due.works.len(), 1, "the old record is still due");
    }

    #[test]
    fn stale_entries_are_removed_when_read() {
        let (_dir, store) = open_temp();
        let (endpoint, id) = queued_delivery(&store, 100);
        // As a crash between a retry's due entry and its delivery write leaves it.
        store
            .due
            .insert(due_key(endpoint.as_str(), 90, id.as_str()), &[][..])
            .unwrap();
        let loaded = load(&store, &endpoint, 200);
        assert_eq!(loaded.works.len(), 1);
        assert_eq!(loaded.works[0].record.next_attempt_at, Some(100));
        assert_eq!(store.count_waiting().unwrap(), 1);
    }

    #[test]
    fn replay_moves_due_entry_to_now() {
        let (_dir, store) = open_temp();
        let (endpoint, id) = queued_delivery(&store, 100);
        let outcome = store.requeue(&id, "http://127.0.0.1:9/moved", 200).unwrap();
        assert!(matches!(outcome, ReplayOutcome::Queued(_)));
        let loaded = load(&store, &endpoint, 200);
        assert_eq!(loaded.works.len(), 1);
        assert_eq!(
            loaded.works[0].record.target_url,
            "http://127.0.0.1:9/moved"
        );
        assert_eq!(store.count_waiting().unwrap(), 1);
        assert!(matches!(
            store
                .requeue(&DeliveryId::generate(), "http://127.0.0.1:9/", 200)
                .unwrap(),
            ReplayOutcome::NotFound
        ));
    }

    #[test]
    fn recover_puts_old_inflight_entries_back() {
        let (_dir, store) = open_temp();
        let (endpoint, id) = queued_delivery(&store, 100);
        store.due.clear().unwrap();
        store
            .inflight
            .insert(id.as_str().as_bytes(), endpoint.as_str().as_bytes())
            .unwrap();
        assert_eq!(store.recover_inflight(300).unwrap(), 1);
        let loaded = load(&store, &endpoint, 300);
        assert_eq!(loaded.works[0].delivery_id, id);
        assert_eq!(store.count_waiting().unwrap(), 1);
    }

    #[test]
    fn cancel_marks_queued_deliveries_but_not_running_ones() {
        let (_dir, store) = open_temp();
        let (endpoint, id) = queued_delivery(&store, 100);
        let running = FxHashSet::from_iter([id.clone()]);
        assert!(store
            .cancel_endpoint(&endpoint, 200, &running)
            .unwrap()
            .is_empty());
        let cancelled = store
            .cancel_endpoint(&endpoint, 200, &FxHashSet::default())
            .unwrap();
        assert_eq!(cancelled, vec![id.clone()]);
        let record = store.delivery(&id).unwrap().unwrap();
        assert_eq!(record.status, DeliveryStatus::Cancelled);
        assert_eq!(store.count_waiting().unwrap(), 0);
    }

    /// Writes one request of `count` events to one endpoint, whose deliveries share a due group.
    fn queued_group(store: &Store, at: u64, count: usize) -> (EndpointId, Vec<DeliveryId>) {
        let endpoint = EndpointId::generate();
        let writes: Vec<NewEventWrite> = EventId::generate_run(count)
            .into_iter()
            .map(|id| NewEventWrite {
                event: NewEvent {
                    id,
                    kind: EventType::CsatReceived,
                    created_at: at,
                    body: b"{}".to_vec(),
                },
                deliveries: vec![NewDelivery {
                    id: DeliveryId::generate(),
                    endpoint_id: endpoint.clone(),
                    target_url: "http://127.0.0.1:9/".to_owned(),
                    deferred: false,
                }],
                derived_from: None,
            })
            .collect();
        store.write_events(&writes, None).unwrap();
        let ids = writes
            .iter()
            .map(|write| write.deliveries[0].id.clone())
            .collect();
        (endpoint, ids)
    }

    fn succeed(store: &Store, work: &DueWork) {
        let mut updated = work.record.clone();
        updated.after_attempt(
            AttemptRecord {
                succeeded: true,
                status_code: Some(200),
                failure: None,
                error: None,
                ..failed_attempt(1, AttemptTrigger::First)
            },
            Completion::Final(DeliveryStatus::Succeeded),
            150,
        );
        assert!(store
            .record_outcome(
                &work.delivery_id,
                &work.due_key,
                false,
                &updated,
                Displaced::Nothing,
                true,
                false
            )
            .unwrap());
    }

    #[test]
    fn request_deliveries_share_one_entry() {
        let (_dir, store) = open_temp();
        let (endpoint, ids) = queued_group(&store, 100, 3);
        assert_eq!(store.due.len(), 1, "one due group");
        assert_eq!(store.count_waiting().unwrap(), 3);
        assert_eq!(store.next_due(&endpoint).unwrap(), Some(100));

        let works = load(&store, &endpoint, 100).works;
        let loaded: Vec<_> = works.iter().map(|work| work.delivery_id.clone()).collect();
        assert_eq!(loaded, ids);
        succeed(&store, &works[0]);
        succeed(&store, &works[1]);
        assert_eq!(store.due.len(), 1, "an outcome leaves the group");

        let running = FxHashSet::from_iter([ids[2].clone()]);
        let again = store.load_due(&endpoint, 100, 10, &running).unwrap();
        assert!(again.works.is_empty());
        assert_eq!(store.due.len(), 1, "kept while a delivery runs");

        succeed(&store, &works[2]);
        assert!(load(&store, &endpoint, 100).works.is_empty());
        assert!(store.due.is_empty(), "removed once every delivery ended");
        assert_eq!(store.count_waiting().unwrap(), 0);
    }

    #[test]
    fn count_skips_ended_group_deliveries() {
        let (_dir, store) = open_temp();
        let (endpoint, ids) = queued_group(&store, 100, 4);
        let works = load(&store, &endpoint, 100).works;
        succeed(&store, &works[0]);
        let mut retried = works[1].record.clone();
        retried.after_attempt(
            failed_attempt(1, AttemptTrigger::First),
            Completion::RetryAt(500),
            150,
        );
        store
            .record_outcome(
                &ids[1],
                &works[1].due_key,
                false,
                &retried,
                Displaced::Nothing,
                true,
                false,
            )
            .unwrap();
        assert!(matches!(
            store.requeue(&ids[2], "http://127.0.0.1:9/", 200).unwrap(),
            ReplayOutcome::Queued(_)
        ));
        assert_eq!(store.due.len(), 3, "the group, the retry and the replay");
        assert_eq!(
            store.count_waiting().unwrap(),
            3,
            "the retry, the replay and the delivery still waiting in the group"
        );

        succeed(&store, &works[3]);
        assert_eq!(
            store.count_waiting().unwrap(),
            2,
            "no delivery waits in the group"
        );
    }

    #[test]
    fn last_outcome_removes_the_group() {
        let (_dir, store) = open_temp();
        let (endpoint, _) = queued_group(&store, 100, 3);
        let works = load(&store, &endpoint, 100).works;
        succeed(&store, &works[2]);
        succeed(&store, &works[0]);
        assert_eq!(store.due.len(), 1, "a delivery still runs");
        succeed(&store, &works[1]);
        assert!(store.due.is_empty(), "removed by the last outcome");

        // A read that found a delivery running hands out the rest without following the group.
        let (endpoint, ids_two) = queued_group(&store, 100, 3);
        let running = FxHashSet::from_iter([ids_two[0].clone()]);
        let rest = store.load_due(&endpoint, 100, 10, &running).unwrap().works;
        assert_eq!(rest.len(), 2);
        for work in &rest {
            succeed(&store, work);
        }
        assert_eq!(store.due.len(), 1, "kept for the delivery that runs");
    }

    #[test]
    fn next_due_drops_an_ended_group() {
        let (_dir, store) = open_temp();
        let (endpoint, _) = queued_group(&store, 100, 2);
        for work in load(&store, &endpoint, 100).works {
            succeed(&store, &work);
            // As after a restart between the read and the outcomes.
            store.groups_in_flight.lock().clear();
        }
        assert_eq!(store.next_due(&endpoint).unwrap(), None);
        assert!(store.due.is_empty());
    }

    #[test]
    fn limit_stops_inside_a_group() {
        let (_dir, store) = open_temp();
        let (endpoint, ids) = queued_group(&store, 100, 3);
        let first = store
            .load_due(&endpoint, 100, 2, &FxHashSet::default())
            .unwrap();
        assert!(!first.complete);
        assert_eq!(first.works.len(), 2);
        let known: FxHashSet<_> = ids[..2].iter().cloned().collect();
        let rest = store.load_due(&endpoint, 100, 2, &known).unwrap();
        assert!(rest.complete);
        assert_eq!(rest.works.len(), 1);
        assert_eq!(rest.works[0].delivery_id, ids[2]);
    }

    #[test]
    fn cancel_skips_running_group_member() {
        let (_dir, store) = open_temp();
        let (endpoint, ids) = queued_group(&store, 100, 3);
        let running = FxHashSet::from_iter([ids[1].clone()]);
        let cancelled = store.cancel_endpoint(&endpoint, 200, &running).unwrap();
        assert_eq!(cancelled, vec![ids[0].clone(), ids[2].clone()]);
        assert!(store.due.is_empty());
        let status = |id: &DeliveryId| store.delivery(id).unwrap().unwrap().status;
        assert_eq!(status(&ids[0]), DeliveryStatus::Cancelled);
        assert_eq!(status(&ids[1]), DeliveryStatus::Pending);
    }

    #[test]
    fn recovery_skips_deliveries_of_a_group() {
        let (_dir, store) = open_temp();
        let (endpoint, _) = queued_group(&store, 100, 3);
        store.mark_indexed_before(0).unwrap();
        assert_eq!(store.recover_unindexed().unwrap(), 0);
        assert_eq!(store.due.len(), 1);
        assert_eq!(load(&store, &endpoint, 100).works.len(), 3);
    }

    #[test]
    fn own_record_wins_before_and_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let store = Store::open(&path).unwrap();
        let (_, ids) = queued_group(&store, 100, 3);
        assert!(store.deliveries.is_empty(), "the three share one group");
        let replayed = store.requeue(&ids[1], "http://127.0.0.1:9/moved", 300);
        assert!(matches!(replayed, Ok(ReplayOutcome::Queued(_))));
        let url = |store: &Store, id: &DeliveryId| store.delivery(id).unwrap().unwrap().target_url;
        assert_eq!(url(&store, &ids[1]), "http://127.0.0.1:9/moved");
        assert_eq!(url(&store, &ids[2]), "http://127.0.0.1:9/");
        drop(store);

        let store = crate::store::reopen(&path).unwrap();
        assert_eq!(url(&store, &ids[1]), "http://127.0.0.1:9/moved");
        assert_eq!(url(&store, &ids[0]), "http://127.0.0.1:9/");
        let later = queued_group(&store, 400, 2).1;
        store
            .requeue(&later[0], "http://127.0.0.1:9/later", 500)
            .unwrap();
        assert_eq!(url(&store, &later[0]), "http://127.0.0.1:9/later");
        assert_eq!(url(&store, &later[1]), "http://127.0.0.1:9/");
    }

    #[test]
    fn group_retry_gets_own_entry() {
        let (_dir, store) = open_temp();
        let (endpoint, ids) = queued_group(&store, 100, 2);
        let works = load(&store, &endpoint, 100).works;
        let mut updated = works[0].record.clone();
        updated.after_attempt(
            failed_attempt(1, AttemptTrigger::First),
            Completion::RetryAt(500),
            150,
        );
        assert!(store
            .record_outcome(
                &ids[0],
                &works[0].due_key,
                false,
                &updated,
                Displaced::Nothing,
                true,
                false
            )
            .unwrap());
        assert_eq!(store.due.len(), 2, "the group and the retry's entry");

        let known = FxHashSet::from_iter([ids[1].clone()]);
        assert!(store
            .load_due(&endpoint, 100, 10, &known)
            .unwrap()
            .works
            .is_empty());
        let later = load(&store, &endpoint, 500).works;
        let due: Vec<_> = later.iter().map(|work| work.delivery_id.clone()).collect();
        assert_eq!(
            due,
            vec![ids[1].clone(), ids[0].clone()],
            "the group's other delivery, then the retry"
        );
    }
}
