//! Writing accepted events with their deliveries, reading them back, and pruning what is past
//! retention.

use belter_common::records::{AttemptTrigger, DeliveryStatus};
use belter_common::{DeliveryId, EndpointId, EventId, EventType};

use std::collections::BTreeMap;
use std::ops::Range;

use bytes::Bytes;

use super::groups::{find_member, group_key, is_group_key, key_span, tree_end};
use super::{
    due_group_key, due_key, DeliveryRecord, DueWork, EventRecord, IdempotencyRecord, Store,
    StoreError,
};
use crate::codec::{
    decode, decode_group_pointer, encode, encode_group, encode_group_pointer, group_members,
};

/// An event accepted at ingest, ready to store.
#[derive(Debug)]
pub(crate) struct NewEvent {
    pub(crate) id: EventId,
    pub(crate) kind: EventType,
    pub(crate) created_at: u64,
    pub(crate) body: Vec<u8>,
}

/// A delivery to create with an event.
#[derive(Debug)]
pub(crate) struct NewDelivery {
    pub(crate) id: DeliveryId,
    pub(crate) endpoint_id: EndpointId,
    pub(crate) target_url: String,
    /// Written without its due entry, because a ready lane keeps it in memory; see
    /// [`Store::recover_unindexed`].
    pub(crate) deferred: bool,
}

/// One event of an ingest write with the deliveries made from it.
#[derive(Debug)]
pub(crate) struct NewEventWrite {
    pub(crate) event: NewEvent,
    pub(crate) deliveries: Vec<NewDelivery>,
    /// For a derived event: the rule id and the id of the event it was derived from.
    pub(crate) derived_from: Option<(String, String)>,
}

/// An idempotency key with what to keep for its repeats.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Idempotency<'a> {
    pub(crate) key: &'a str,
    /// The 202 response body.
    pub(crate) response: &'a [u8],
    /// SHA-256 of the request body.
    pub(crate) fingerprint: &'a [u8],
}

/// One ingest request of a batch: its events and its idempotency key with the response to keep.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IngestJob<'a> {
    pub(crate) writes: &'a [NewEventWrite],
    pub(crate) idempotency: Option<Idempotency<'a>>,
}

/// An ingest request encoded for the store.
struct EncodedJob<'a> {
    /// The events the request carried, in id order, which may share a record group.
    events: Vec<(&'a str, Vec<u8>)>,
    /// Events derived by rules, written one by one: their ids were made after the request's.
    derived: Vec<(&'a str, Vec<u8>)>,
    /// The id and record of each delivery of the request's own events, in id order.
    deliveries: Vec<(&'a str, Vec<u8>)>,
    /// The id and record of each delivery of the derived events, written one by one.
    derived_deliveries: Vec<(&'a str, Vec<u8>)>,
    /// The due entries, keys and values: one per endpoint for the deliveries that are not
    /// deferred, a due group when there are several.
    due: Vec<(Vec<u8>, Vec<u8>)>,
    idempotency: Option<(&'a str, Vec<u8>)>,
}

impl<'a> EncodedJob<'a> {
    fn new(job: &IngestJob<'a>) -> Result<Self, StoreError> {
        let mut events = Vec::with_capacity(job.writes.len());
        let mut derived = Vec::new();
        let mut deliveries = Vec::new();
        let mut derived_deliveries = Vec::new();
        let mut due: BTreeMap<(&str, u64), Vec<&str>> = BTreeMap::new();
        for write in job.writes {
            let event = &write.event;
            let event_record = EventRecord {
                event_type: event.kind.code(),
                created_at: event.created_at,
                body: event.body.clone(),
                deliveries: write
                    .deliveries
                    .iter()
                    .map(|delivery| delivery.id.to_string())
                    .collect(),
                derived_from: write.derived_from.clone(),
            };
            let encoded = (event.id.as_str(), encode(&event_record)?);
            if write.derived_from.is_some() {
                derived.push(encoded);
            } else {
                events.push(encoded);
            }
            for delivery in &write.deliveries {
                let record = (
                    delivery.id.as_str(),
                    encode(&new_delivery_record(event, delivery))?,
                );
                if write.derived_from.is_some() {
                    derived_deliveries.push(record);
                } else {
                    deliveries.push(record);
                }
                if !delivery.deferred {
                    due.entry((delivery.endpoint_id.as_str(), event.created_at))
                        .or_default()
                        .push(delivery.id.as_str());
                }
            }
        }
        let idempotency = match job.idempotency {
            Some(entry) => Some((
                entry.key,
                encode(&IdempotencyRecord {
                    created_at: job.writes.first().map_or(0, |write| write.event.created_at),
                    response: entry.response.to_vec(),
                    fingerprint: entry.fingerprint.to_vec(),
                })?,
            )),
            None => None,
        };
        events.sort_unstable_by(|left, right| left.0.cmp(right.0));
        deliveries.sort_unstable_by(|left, right| left.0.cmp(right.0));
        let due = due
            .into_iter()
            .map(|((endpoint, due_ms), ids)| due_entry(endpoint, due_ms, ids))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            events,
            derived,
            deliveries,
            derived_deliveries,
            due,
            idempotency,
        })
    }
}

/// Builds the due entry of one request's deliveries to one endpoint: the delivery's own entry
/// for one, a due group for several.
fn due_entry(
    endpoint: &str,
    due_ms: u64,
    mut ids: Vec<&str>,
) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
    ids.sort_unstable();
    match ids.as_slice() {
        [id] => Ok((due_key(endpoint, due_ms, id), Vec::new())),
        [first, .., last] => {
            let members: Vec<(&str, &[u8])> = ids.iter().map(|id| (*id, &[][..])).collect();
            Ok((
                due_group_key(endpoint, due_ms, first, last),
                encode_group(&members)?,
            ))
        }
        [] => Err(StoreError::Codec(crate::codec::CodecError::Empty)),
    }
}

/// Builds a new delivery's record: pending, and due when its event was accepted.
fn new_delivery_record(event: &NewEvent, delivery: &NewDelivery) -> DeliveryRecord {
    DeliveryRecord {
        event_id: event.id.to_string(),
        event_type: event.kind.code(),
        endpoint_id: delivery.endpoint_id.to_string(),
        target_url: delivery.target_url.clone(),
        status: DeliveryStatus::Pending,
        attempt_count: 0,
        scheduled_attempts: 0,
        created_at: event.created_at,
        updated_at: event.created_at,
        next_attempt_at: Some(event.created_at),
        next_trigger: AttemptTrigger::First,
        last_status_code: None,
        last_failure: None,
        last_error: None,
        last_latency_ms: None,
        latest_attempt: None,
    }
}

impl NewEventWrite {
    /// Returns each delivery as the due index contains it once written, with its endpoint.
    #[cfg(test)]
    pub(crate) fn due_works(&self) -> impl Iterator<Item = (&EndpointId, DueWork)> + '_ {
        self.deliveries
            .iter()
            .map(|delivery| (&delivery.endpoint_id, self.due_work(delivery)))
    }

    /// Builds one of this event's deliveries as the due index contains it once written.
    pub(crate) fn due_work(&self, delivery: &NewDelivery) -> DueWork {
        DueWork {
            delivery_id: delivery.id.clone(),
            due_key: due_key(
                delivery.endpoint_id.as_str(),
                self.event.created_at,
                delivery.id.as_str(),
            ),
            record: new_delivery_record(&self.event, delivery),
            stored_attempt: false,
        }
    }

    /// Builds the stored record of one of this event's deliveries.
    pub(crate) fn delivery_record(&self, delivery: &NewDelivery) -> DeliveryRecord {
        new_delivery_record(&self.event, delivery)
    }
}

/// The outcome of an ingest write.
#[derive(Debug)]
pub(crate) enum IngestWrite {
    /// The event and its deliveries were written.
    Written,
    /// The idempotency key was used before; nothing was written. Holds the first response and
    /// the first request's fingerprint.
    Duplicate {
        response: Vec<u8>,
        fingerprint: Vec<u8>,
    },
}

/// Largest stored value whose body an attempt sends as a slice of it. The slice keeps the whole
/// value in memory until the attempt ends. A larger value's body is copied, so the default 512
/// attempts in flight keep at most 32 MiB of stored values.
const MAX_SHARED_VALUE: usize = 64 * 1024;

/// Part of a stored value, owned by a [`Bytes`] so an attempt sends it without a copy.
struct StoredSlice {
    bytes: sled::IVec,
    range: Range<usize>,
}

impl AsRef<[u8]> for StoredSlice {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[self.range.clone()]
    }
}

/// Returns the end of the span of the last key in the events tree, or nothing when it is empty.
pub(super) fn events_end(events: &sled::Tree) -> Result<Vec<u8>, StoreError> {
    Ok(tree_end(events)?)
}

/// Counts the pointers into each event log segment that the events tree holds.
pub(super) fn count_log_pointers(
    events: &sled::Tree,
) -> Result<rustc_hash::FxHashMap<u64, u64>, StoreError> {
    let mut live = rustc_hash::FxHashMap::default();
    for entry in events.iter() {
        let (key, stored) = entry?;
        if !is_group_key(&key) {
            continue;
        }
        match decode_group_pointer(&stored) {
            Ok(Some(pointer)) => *live.entry(pointer.segment).or_default() += 1,
            Ok(None) => {}
            // A read of the group reports it again; the store still opens.
            Err(error) => {
                tracing::error!(%error, key = %String::from_utf8_lossy(&key), "cannot read an event group's pointer");
            }
        }
    }
    Ok(live)
}

/// What one retention sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pruned {
    pub(crate) events: u64,
    pub(crate) deliveries: u64,
    /// Deliveries removed while still waiting for an attempt.
    pub(crate) pending: u64,
}

impl Store {
    /// Writes one event with its deliveries; see [`Store::write_events`].
    #[cfg(test)]
    pub(crate) fn write_event(
        &self,
        event: &NewEvent,
        deliveries: &[NewDelivery],
        idempotency: Option<Idempotency<'_>>,
    ) -> Result<IngestWrite, StoreError> {
        let write = NewEventWrite {
            event: NewEvent {
                id: event.id.clone(),
                kind: event.kind,
                created_at: event.created_at,
                body: event.body.clone(),
            },
            deliveries: deliveries
                .iter()
                .map(|delivery| NewDelivery {
                    id: delivery.id.clone(),
                    endpoint_id: delivery.endpoint_id.clone(),
                    target_url: delivery.target_url.clone(),
                    deferred: delivery.deferred,
                })
                .collect(),
            derived_from: None,
        };
        self.write_events(std::slice::from_ref(&write), idempotency)
    }

    /// Writes events (an accepted one and those derived from it), their deliveries, the
    /// deliveries' due entries and the idempotency key. The caller flushes before responding.
    #[cfg(test)]
    pub(crate) fn write_events(
        &self,
        writes: &[NewEventWrite],
        idempotency: Option<Idempotency<'_>>,
    ) -> Result<IngestWrite, StoreError> {
        self.write_job(&IngestJob {
            writes,
            idempotency,
        })
    }

    /// Writes several ingest requests, as [`Store::write_events`] does for one, and returns each
    /// request's outcome in order. A key repeated within the batch counts as used by its first
    /// request. The checked key and its write cannot race another request, because only the
    /// group commit's write stage calls this, one batch at a time.
    pub(crate) fn write_batch(
        &self,
        jobs: &[IngestJob<'_>],
    ) -> Vec<Result<IngestWrite, StoreError>> {
        jobs.iter().map(|job| self.write_job(job)).collect()
    }

    /// Writes one ingest request without a transaction. The order makes any prefix harmless:
    /// the events, then the deliveries, then their due entries, and the idempotency key last. A crash
    /// before the flush leaves at worst an event without deliveries, or deliveries that are sent
    /// although the request got no 202. The key is kept only once everything it covers is written.
    ///
    /// NOTE: this relies on sled recovering its log as a prefix, up to the first write that did
    /// not reach the disk. sled's log design implies it, but no test kills the daemon mid-group.
    fn write_job(&self, job: &IngestJob<'_>) -> Result<IngestWrite, StoreError> {
        if let Some(entry) = &job.idempotency {
            if let Some(existing) = self.idempotency.get(entry.key.as_bytes())? {
                let first: IdempotencyRecord = decode(&existing)?;
                return Ok(IngestWrite::Duplicate {
                    response: first.response,
                    fingerprint: first.fingerprint,
                });
            }
        }
        let encoded = EncodedJob::new(job)?;
        let one_key = self.write_event_records(&encoded.events)?;
        for (id, record) in &encoded.derived {
            // After the clock went back, a derived id can fall in a stored group's span. Alone
            // there, its key would hide the group's later members from `Store::event`.
            self.write_event_alone(id, record)?;
        }
        // Retention removes a delivery group with the events key that contains the request's
        // events, so the group is written only when they all went under one key.
        self.write_new_deliveries(&encoded.deliveries, one_key)?;
        for (id, record) in &encoded.derived_deliveries {
            self.put_own_record(id.as_bytes(), record)?;
        }
        for (key, value) in &encoded.due {
            self.due.insert(key.as_slice(), value.as_slice())?;
        }
        if let Some((key, record)) = &encoded.idempotency {
            // sled may flush the key before the flush stage syncs the event log. A repeat of a key
            // on disk gets 202, so the groups that the key covers go to disk first.
            self.event_log.sync()?;
            self.idempotency.insert(key.as_bytes(), record.as_slice())?;
        }
        Ok(IngestWrite::Written)
    }

    /// Writes encoded events, sorted by id: as one record group when there are several and no
    /// stored key falls in their span, one by one otherwise. Returns whether they all went
    /// under one key: one group, or one event.
    fn write_event_records(&self, events: &[(&str, Vec<u8>)]) -> Result<bool, StoreError> {
        if let [(first, _), .., (last, _)] = events {
            if self.after_stored_events(first) || self.span_is_free(first, last)? {
                let group = encode_group(events)?;
                self.put_logged_group(&group_key(first, last), &group)?;
                return Ok(true);
            }
        }
        for (id, record) in events {
            self.write_event_alone(id, record)?;
        }
        Ok(events.len() == 1)
    }

    /// Writes one event under its own key, or into the record group whose span contains its id.
    fn write_event_alone(&self, id: &str, record: &[u8]) -> Result<(), StoreError> {
        if !self.after_stored_events(id) {
            if let Some(entry) = self.events.range(id.as_bytes()..).next() {
                let (key, stored) = entry?;
                let (first, last) = key_span(&key);
                let in_span = is_group_key(&key) && first < id.as_bytes() && id.as_bytes() <= last;
                // A group that the event log lost cannot take the event, which goes alone.
                let group = if in_span {
                    self.load_event_group(stored)?
                } else {
                    None
                };
                if let Some(bytes) = group {
                    let mut members = group_members(&bytes)?;
                    members.retain(|(member, _)| *member != id.as_bytes());
                    members.push((id.as_bytes(), record));
                    members.sort_unstable_by(|left, right| left.0.cmp(right.0));
                    // Joins are rare, so the joined group stays in sled.
                    let joined = encode_group(&members)?;
                    if let Some(replaced) = self.events.insert(key, joined)? {
                        self.release_stored_group(&replaced);
                    }
                    self.recent_groups.clear();
                    return Ok(());
                }
            }
        }
        self.events.insert(id.as_bytes(), record)?;
        Ok(())
    }

    /// Checks whether `id` sorts after every event stored when the store opened. Ids made by
    /// this process always do, unless the clock went back since the store was last written.
    /// Their keys then cannot fall into the span of a stored group, nor a group of theirs cover
    /// a stored key, so no read is needed before their write.
    fn after_stored_events(&self, id: &str) -> bool {
        id.as_bytes() > self.events_end.as_slice()
    }

    /// Checks that no stored event or group lies between the event ids `first` and `last`, so
    /// a group of that span leaves every id with one key that can contain it.
    fn span_is_free(&self, first: &str, last: &str) -> Result<bool, StoreError> {
        // Spans do not overlap and keys sort by their ends, so only the first key that ends at
        // or after `first` can reach into the span.
        match self.events.range(first.as_bytes()..).next() {
            Some(entry) => {
                let (key, _) = entry?;
                Ok(key_span(&key).0 > last.as_bytes())
            }
            None => Ok(true),
        }
    }

    /// Reads one event, stored alone or in a record group.
    pub(crate) fn event(&self, id: &str) -> Result<Option<EventRecord>, StoreError> {
        match self.find_event(id)? {
            Some((bytes, record)) => Ok(Some(decode(&bytes[record])?)),
            None => Ok(None),
        }
    }

    /// Reads the body of one event, all that an attempt needs, without copying it.
    pub(crate) fn event_body(&self, id: &str) -> Result<Option<Bytes>, StoreError> {
        let Some((bytes, record)) = self.find_event(id)? else {
            return Ok(None);
        };
        let Some(body) = EventRecord::body_range(&bytes[record.clone()])? else {
            return Ok(Some(Bytes::from(
                decode::<EventRecord>(&bytes[record])?.body,
            )));
        };
        let range = record.start + body.start..record.start + body.end;
        if bytes.len() > MAX_SHARED_VALUE {
            return Ok(Some(Bytes::copy_from_slice(&bytes[range])));
        }
        Ok(Some(Bytes::from_owner(StoredSlice { bytes, range })))
    }

    /// Finds the stored record of one event: the stored value that contains it, and where in
    /// that value it lies. A group read recently is searched first. An id that the kept group
    /// lacks may have joined the group since, so sled is read then.
    fn find_event(&self, id: &str) -> Result<Option<(sled::IVec, Range<usize>)>, StoreError> {
        find_member(&self.events, &self.recent_groups, id, |stored| {
            self.load_event_group(stored)
        })
    }

    /// Writes a record group to the event log, and the pointer to it under `key`.
    fn put_logged_group(&self, key: &[u8], group: &[u8]) -> Result<(), StoreError> {
        let pointer = self.event_log.append(group)?;
        let replaced = self
            .events
            .insert(key, encode_group_pointer(&pointer))
            .inspect_err(|_| self.event_log.release(pointer.segment))?;
        if let Some(replaced) = replaced {
            self.release_stored_group(&replaced);
        }
        Ok(())
    }

    /// Returns the bytes that a value of the events tree stands for: the value itself, or the
    /// group in the event log that it points to. `None` when the event log lost that group.
    fn load_event_group(&self, stored: sled::IVec) -> Result<Option<sled::IVec>, StoreError> {
        match decode_group_pointer(&stored)? {
            None => Ok(Some(stored)),
            Some(pointer) => Ok(self.event_log.read(&pointer)?.map(sled::IVec::from)),
        }
    }

    /// Counts off the event log's pointer that a value removed from the events tree held.
    fn release_stored_group(&self, stored: &[u8]) {
        if let Ok(Some(pointer)) = decode_group_pointer(stored) {
            self.event_log.release(pointer.segment);
        }
    }

    /// Deletes the event log segments that retention left without events, once sled has the
    /// removals on disk. Returns how many it deleted.
    pub(crate) async fn remove_emptied_segments(&self) -> Result<usize, StoreError> {
        // Only segments emptied before the flush starts have their last removal in it.
        let emptied = self.event_log.take_emptied();
        if emptied.is_empty() {
            return Ok(0);
        }
        if let Err(error) = self.db.flush_async().await {
            self.event_log.keep_emptied(emptied);
            return Err(error.into());
        }
        Ok(self.event_log.remove_segments(emptied)?)
    }

    /// Decodes the events under one key of the events tree: one event, or a record group.
    fn events_under(key: &[u8], bytes: &[u8]) -> Result<Vec<EventRecord>, StoreError> {
        if !is_group_key(key) {
            return Ok(vec![decode(bytes)?]);
        }
        let mut events = Vec::new();
        for (_, record) in group_members(bytes)? {
            events.push(decode(record)?);
        }
        Ok(events)
    }

    /// Removes events accepted before `cutoff_ms` with their deliveries, attempts and due
    /// entries. A call stops once it removed `max_events`, so one sweep does not hold the store
    /// long. A record group is removed whole, so the last group can take a call past the limit.
    pub(crate) fn prune_before(
        &self,
        cutoff_ms: u64,
        max_events: usize,
    ) -> Result<Pruned, StoreError> {
        let mut pruned = Pruned::default();
        let mut entries = self.events.iter();
        while pruned.events < max_events as u64 {
            let Some(entry) = entries.next() else {
                break;
            };
            let (key, stored) = entry?;
            let Some(bytes) = self.load_event_group(stored)? else {
                // TODO: the deliveries of a lost group stay in the store.
                tracing::error!(key = %String::from_utf8_lossy(&key), "removing an event group that the event log lost");
                if let Some(removed) = self.events.remove(&key)? {
                    self.release_stored_group(&removed);
                }
                self.recent_groups.clear();
                continue;
            };
            let events = Self::events_under(&key, &bytes)?;
            if events.iter().any(|event| event.created_at >= cutoff_ms) {
                break;
            }
            let delivery_ids = || events.iter().flat_map(|event| &event.deliveries);
            for delivery_id in delivery_ids() {
                if self.clear_delivery(delivery_id)? {
                    pruned.pending += 1;
                }
                pruned.deliveries += 1;
            }
            // The groups go before the deliveries' own records, so that a crash in between
            // cannot leave a group's older copy of a record in its place.
            self.remove_delivery_groups(delivery_ids())?;
            for delivery_id in delivery_ids() {
                self.deliveries.remove(delivery_id.as_bytes())?;
            }
            // The events go last, so a crash mid-way leaves them for the next sweep to finish.
            if let Some(removed) = self.events.remove(&key)? {
                self.release_stored_group(&removed);
            }
            self.recent_groups.clear();
            pruned.events += events.len() as u64;
        }
        Ok(pruned)
    }

    /// Removes a delivery's attempts and queue entries, which leaves only its record for the
    /// caller to remove. Returns whether it was still waiting for an attempt or in one.
    ///
    /// The record's status decides, not the due entry, because a new delivery that a ready lane
    /// keeps in memory has no entry yet.
    ///
    /// NOTE: an outcome written between the read of the record and its removal here is counted
    /// as ended by the outcome writer too, so the waiting count can drop twice in that window.
    pub(super) fn clear_delivery(&self, delivery_id: &str) -> Result<bool, StoreError> {
        let Some(stored) = self.delivery_bytes(delivery_id)? else {
            return Ok(false);
        };
        let record: DeliveryRecord = decode(stored.bytes())?;
        let mut was_waiting =
            record.status == DeliveryStatus::Pending && record.next_attempt_at.is_some();
        if let Some(due_ms) = record.next_attempt_at {
            self.due
                .remove(due_key(&record.endpoint_id, due_ms, delivery_id))?;
        }
        was_waiting |= self.inflight.remove(delivery_id.as_bytes())?.is_some();
        let attempt_keys: Vec<_> = self
            .attempts
            .scan_prefix(delivery_id.as_bytes())
            .keys()
            .collect::<Result<_, _>>()?;
        for key in attempt_keys {
            self.attempts.remove(key)?;
        }
        Ok(was_waiting)
    }

    /// Removes idempotency keys first used before `cutoff_ms`.
    pub(crate) fn prune_idempotency(&self, cutoff_ms: u64) -> Result<u64, StoreError> {
        let mut removed = 0;
        for entry in self.idempotency.iter() {
            let (key, bytes) = entry?;
            let record: IdempotencyRecord = decode(&bytes)?;
            if record.created_at < cutoff_ms {
                self.idempotency.remove(key)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use rustc_hash::FxHashSet;

    use super::*;
    use crate::codec::GroupIndex;
    use crate::store::groups::CachedGroup;
    use crate::store::open_temp;

    fn sample_event(created_at: u64) -> NewEvent {
        NewEvent {
            id: EventId::generate(),
            kind: EventType::CsatReceived,
            created_at,
            body: br#"{"id":"x"}"#.to_vec(),
        }
    }

    fn sample_delivery() -> NewDelivery {
        NewDelivery {
            id: DeliveryId::generate(),
            endpoint_id: EndpointId::generate(),
            target_url: "http://127.0.0.1:9/hook".to_owned(),
            deferred: false,
        }
    }

    #[test]
    fn write_event_stores_all_parts() {
        let (_dir, store) = open_temp();
        let event = sample_event(1_000);
        let delivery = sample_delivery();
        let outcome = store
            .write_event(&event, std::slice::from_ref(&delivery), None)
            .unwrap();
        assert!(matches!(outcome, IngestWrite::Written));
        let stored = store.event(event.id.as_str()).unwrap().unwrap();
        assert_eq!(stored.body, event.body);
        assert_eq!(stored.deliveries, vec![delivery.id.to_string()]);
        let due = store
            .load_due(&delivery.endpoint_id, 1_000, 10, &FxHashSet::default())
            .unwrap()
            .works;
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].delivery_id, delivery.id);
        let written: Vec<_> = NewEventWrite {
            event: NewEvent {
                id: event.id.clone(),
                kind: event.kind,
                created_at: event.created_at,
                body: Vec::new(),
            },
            deliveries: vec![delivery],
            derived_from: None,
        }
        .due_works()
        .map(|(_, work)| work)
        .collect();
        assert_eq!(
            written[0].due_key, due[0].due_key,
            "ingest hands over the stored key"
        );
    }

    #[test]
    fn repeated_idempotency_key_writes_nothing() {
        let (_dir, store) = open_temp();
        let first = sample_event(1_000);
        let outcome = store
            .write_event(
                &first,
                &[],
                Some(Idempotency {
                    key: "key-1",
                    response: b"first answer",
                    fingerprint: b"f",
                }),
            )
            .unwrap();
        assert!(matches!(outcome, IngestWrite::Written));
        let second = sample_event(2_000);
        let outcome = store
            .write_event(
                &second,
                &[],
                Some(Idempotency {
                    key: "key-1",
                    response: b"second answer",
                    fingerprint: b"f",
                }),
            )
            .unwrap();
        match outcome {
            IngestWrite::Duplicate { response, .. } => assert_eq!(response, b"first answer"),
            IngestWrite::Written => panic!("second write with the same key was stored"),
        }
        assert!(store.event(second.id.as_str()).unwrap().is_none());
    }

    #[test]
    fn batch_repeats_key_within_itself() {
        let (_dir, store) = open_temp();
        let first = NewEventWrite {
            event: sample_event(1_000),
            deliveries: vec![sample_delivery()],
            derived_from: None,
        };
        let second = NewEventWrite {
            event: sample_event(1_001),
            deliveries: Vec::new(),
            derived_from: None,
        };
        let jobs = [
            IngestJob {
                writes: std::slice::from_ref(&first),
                idempotency: Some(Idempotency {
                    key: "key-1",
                    response: b"first",
                    fingerprint: b"f",
                }),
            },
            IngestJob {
                writes: std::slice::from_ref(&second),
                idempotency: Some(Idempotency {
                    key: "key-1",
                    response: b"second",
                    fingerprint: b"f",
                }),
            },
        ];
        let outcomes = store.write_batch(&jobs);
        assert!(matches!(outcomes[0], Ok(IngestWrite::Written)));
        assert!(
            matches!(&outcomes[1], Ok(IngestWrite::Duplicate { response, .. }) if response == b"first")
        );
        assert!(store.event(first.event.id.as_str()).unwrap().is_some());
        assert!(store.event(second.event.id.as_str()).unwrap().is_none());
    }

    #[test]
    fn prune_removes_only_old_events() {
        let (_dir, store) = open_temp();
        let old = sample_event(1_000);
        let old_delivery = sample_delivery();
        store
            .write_event(&old, std::slice::from_ref(&old_delivery), None)
            .unwrap();
        let young = sample_event(5_000);
        store.write_event(&young, &[], None).unwrap();

        let pruned = store.prune_before(2_000, 100).unwrap();
        assert_eq!(pruned.events, 1);
        assert_eq!(pruned.deliveries, 1);
        assert_eq!(pruned.pending, 1);
        assert!(store.event(old.id.as_str()).unwrap().is_none());
        assert!(store.event(young.id.as_str()).unwrap().is_some());
        assert!(store.delivery(&old_delivery.id).unwrap().is_none());
        assert_eq!(store.next_due(&old_delivery.endpoint_id).unwrap(), None);
    }

    fn write_with_id(id: &EventId, created_at: u64) -> NewEventWrite {
        NewEventWrite {
            event: NewEvent {
                id: id.clone(),
                ..sample_event(created_at)
            },
            deliveries: vec![sample_delivery()],
            derived_from: None,
        }
    }

    fn body_of(store: &Store, id: &EventId) -> Option<Vec<u8>> {
        store
            .event(id.as_str())
            .unwrap()
            .map(|event| event.deliveries.concat().into_bytes())
    }

    #[test]
    fn events_of_one_request_share_one_key() {
        let (_dir, store) = open_temp();
        let ids = EventId::generate_run(5);
        let writes: Vec<_> = [0, 2, 4]
            .iter()
            .map(|&at| write_with_id(&ids[at], 1_000))
            .collect();
        store.write_events(&writes, None).unwrap();
        assert_eq!(store.events.len(), 1, "one record group");
        for write in &writes {
            let stored = store.event(write.event.id.as_str()).unwrap().unwrap();
            assert_eq!(stored.deliveries, vec![write.deliveries[0].id.to_string()]);
            assert_eq!(stored.body, write.event.body);
        }
        assert!(store.event(ids[1].as_str()).unwrap().is_none(), "in span");
        assert!(store.event(ids[3].as_str()).unwrap().is_none(), "in span");
        let later = EventId::generate();
        assert!(store.event(later.as_str()).unwrap().is_none(), "after");
        let earlier = EventId::first_at(0);
        assert!(store.event(earlier.as_str()).unwrap().is_none(), "before");
    }

    /// Stores the events of `ids` 0, 2 and 4 as one group and opens the store again, as a start
    /// after the clock went back would find it. Returns the store and the group's writes.
    fn group_before_clock_went_back(
        dir: &tempfile::TempDir,
        ids: &[EventId],
    ) -> (Store, Vec<NewEventWrite>) {
        let path = dir.path().join("db");
        let group: Vec<_> = [0, 2, 4]
            .iter()
            .map(|&at| write_with_id(&ids[at], 1_000))
            .collect();
        {
            let store = Store::open(&path).unwrap();
            store.write_events(&group, None).unwrap();
            store.db.flush().unwrap();
        }
        (crate::store::reopen(&path).unwrap(), group)
    }

    /// Asserts that each event of `writes` reads back with its own delivery.
    fn assert_readable<'a>(store: &Store, writes: impl IntoIterator<Item = &'a NewEventWrite>) {
        for write in writes {
            assert_eq!(
                body_of(store, &write.event.id),
                Some(write.deliveries[0].id.to_string().into_bytes()),
                "event {}",
                write.event.id
            );
        }
    }

    #[test]
    fn events_readable_after_clock_goes_back() {
        let dir = tempfile::tempdir().unwrap();
        let ids = EventId::generate_run(6);
        let (store, group) = group_before_clock_went_back(&dir, &ids);

        // The next start made ids inside and around the stored group's span.
        let inside = write_with_id(&ids[1], 2_000);
        store
            .write_events(std::slice::from_ref(&inside), None)
            .unwrap();
        let across = [write_with_id(&ids[3], 2_000), write_with_id(&ids[5], 2_000)];
        store.write_events(&across, None).unwrap();

        assert_readable(&store, group.iter().chain([&inside]).chain(&across));
        assert_eq!(
            store.events.len(),
            2,
            "the group took two ids in, one stays alone"
        );

        let pruned = store.prune_before(3_000, 100).unwrap();
        assert_eq!(pruned.events, 6);
        assert_eq!(pruned.deliveries, 6);
        assert!(store.events.is_empty());
    }

    #[test]
    fn body_read_sees_joined_member() {
        let dir = tempfile::tempdir().unwrap();
        let ids = EventId::generate_run(5);
        let (store, group) = group_before_clock_went_back(&dir, &ids);
        for write in &group {
            let body = store.event_body(write.event.id.as_str()).unwrap();
            assert_eq!(body.as_deref(), Some(&write.event.body[..]));
        }
        assert!(store.event_body(ids[1].as_str()).unwrap().is_none());

        // A read that raced the join below and kept the group as it was before it.
        let generation = store.recent_groups.generation();
        let (key, stored) = store.events.first().unwrap().unwrap();
        let before = store.load_event_group(stored).unwrap().unwrap();
        let mut inside = write_with_id(&ids[1], 2_000);
        inside.event.body = b"{\"joined\":true}".to_vec();
        store
            .write_events(std::slice::from_ref(&inside), None)
            .unwrap();
        let kept = || CachedGroup {
            key: key.clone(),
            bytes: before.clone(),
            index: GroupIndex::read(&before).unwrap(),
        };
        store.recent_groups.keep(kept(), generation);
        assert!(
            store.recent_groups.containing(ids[1].as_str()).is_none(),
            "a read older than the join keeps nothing"
        );
        store
            .recent_groups
            .keep(kept(), store.recent_groups.generation());
        let body = store.event_body(ids[1].as_str()).unwrap();
        assert_eq!(body.as_deref(), Some(&b"{\"joined\":true}"[..]));

        // Bodies of a group too large to share are copied.
        let large_ids = EventId::generate_run(2);
        let large: Vec<_> = large_ids
            .iter()
            .zip([b'a', b'b'])
            .map(|(id, fill)| {
                let mut write = write_with_id(id, 2_400);
                write.event.body = vec![fill; MAX_SHARED_VALUE];
                write
            })
            .collect();
        store.write_events(&large, None).unwrap();
        for write in &large {
            let body = store.event_body(write.event.id.as_str()).unwrap();
            assert_eq!(body.as_deref(), Some(&write.event.body[..]));
        }

        let alone = sample_event(2_500);
        store.write_event(&alone, &[], None).unwrap();
        let body = store.event_body(alone.id.as_str()).unwrap();
        assert_eq!(body.as_deref(), Some(&alone.body[..]));

        store.prune_before(3_000, 100).unwrap();
        for id in ids.iter().chain(&large_ids).chain([&alone.id]) {
            assert!(store.event_body(id.as_str()).unwrap().is_none(), "{id}");
        }
    }

    #[test]
    fn derived_event_keeps_group_readable() {
        let dir = tempfile::tempdir().unwrap();
        let ids = EventId::generate_run(5);
        let (store, group) = group_before_clock_went_back(&dir, &ids);

        // After the clock went back, an evaluation and the breach derived from it got ids inside
        // the stored group's span.
        let source = write_with_id(&ids[1], 2_000);
        let mut derived = write_with_id(&ids[3], 2_000);
        derived.derived_from = Some(("rule".to_owned(), ids[1].to_string()));
        let request = [source, derived];
        store.write_events(&request, None).unwrap();
        assert_readable(&store, group.iter().chain(&request));

        let pruned = store.prune_before(3_000, 100).unwrap();
        assert_eq!(pruned.events, 5);
        assert!(store.events.is_empty());
    }

    #[test]
    fn prune_takes_whole_old_group() {
        let (_dir, store) = open_temp();
        let ids = EventId::generate_run(3);
        let writes: Vec<_> = ids.iter().map(|id| write_with_id(id, 1_000)).collect();
        store.write_events(&writes, None).unwrap();
        let young = sample_event(5_000);
        store.write_event(&young, &[], None).unwrap();

        assert_eq!(store.prune_before(1_000, 100).unwrap().events, 0);
        let pruned = store.prune_before(2_000, 1).unwrap();
        assert_eq!(
            pruned.events, 3,
            "a group goes whole, past the call's limit"
        );
        assert_eq!(pruned.deliveries, 3);
        assert_eq!(pruned.pending, 3);
        for write in &writes {
            assert!(store.event(write.event.id.as_str()).unwrap().is_none());
            assert!(store.delivery(&write.deliveries[0].id).unwrap().is_none());
        }
        assert!(store.event(young.id.as_str()).unwrap().is_some());
    }

    #[test]
    fn derived_events_are_written_alone() {
        let (_dir, store) = open_temp();
        let ids = EventId::generate_run(2);
        let mut writes: Vec<_> = ids.iter().map(|id| write_with_id(id, 1_000)).collect();
        let derived_id = EventId::generate();
        let mut derived = write_with_id(&derived_id, 1_000);
        derived.derived_from = Some(("rule".to_owned(), ids[0].to_string()));
        writes.push(derived);
        store.write_events(&writes, None).unwrap();
        assert_eq!(store.events.len(), 2);
        assert!(store.events.get(derived_id.as_str()).unwrap().is_some());
        for write in &writes {
            assert!(store.event(write.event.id.as_str()).unwrap().is_some());
        }
    }

    fn segment_count(path: &std::path::Path) -> usize {
        std::fs::read_dir(path.join(super::super::EVENT_LOG_DIR))
            .unwrap()
            .count()
    }

    #[test]
    fn logged_group_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let ids = EventId::generate_run(3);
        let writes: Vec<_> = ids.iter().map(|id| write_with_id(id, 1_000)).collect();
        {
            let store = Store::open(&path).unwrap();
            store.write_events(&writes, None).unwrap();
            let (_, stored) = store.events.first().unwrap().unwrap();
            assert!(
                decode_group_pointer(&stored).unwrap().is_some(),
                "sled holds a pointer, not the group"
            );
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            runtime.block_on(store.flush()).unwrap();
        }
        let store = crate::store::reopen(&path).unwrap();
        assert_readable(&store, &writes);
        assert_eq!(segment_count(&path), 1);

        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(
            runtime.block_on(store.remove_emptied_segments()).unwrap(),
            0
        );
        assert_eq!(store.prune_before(2_000, 100).unwrap().events, 3);
        assert_eq!(
            runtime.block_on(store.remove_emptied_segments()).unwrap(),
            1
        );
        assert_eq!(segment_count(&path), 0);
    }

    #[test]
    fn lost_log_group_reads_as_gone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let ids = EventId::generate_run(2);
        let lost: Vec<_> = ids.iter().map(|id| write_with_id(id, 1_000)).collect();
        {
            let store = Store::open(&path).unwrap();
            store.write_events(&lost, None).unwrap();
            store.db.flush().unwrap();
        }
        // As after a power loss: sled flushed the pointer, but the group never reached the disk.
        for entry in std::fs::read_dir(path.join(super::super::EVENT_LOG_DIR)).unwrap() {
            std::fs::File::options()
                .write(true)
                .open(entry.unwrap().path())
                .unwrap()
                .set_len(0)
                .unwrap();
        }
        let store = crate::store::reopen(&path).unwrap();
        assert!(store.event_body(ids[0].as_str()).unwrap().is_none());

        let kept: Vec<_> = EventId::generate_run(2)
            .iter()
            .map(|id| write_with_id(id, 3_000))
            .collect();
        store.write_events(&kept, None).unwrap();
        store.prune_before(2_000, 100).unwrap();
        assert_eq!(
            store.events.len(),
            1,
            "the lost group is gone, the new one stays"
        );
        assert_readable(&store, &kept);
    }

    #[test]
    fn join_releases_the_logged_group() {
        let dir = tempfile::tempdir().unwrap();
        let ids = EventId::generate_run(5);
        let (store, group) = group_before_clock_went_back(&dir, &ids);
        let inside = write_with_id(&ids[1], 2_000);
        store
            .write_events(std::slice::from_ref(&inside), None)
            .unwrap();
        assert_readable(&store, group.iter().chain([&inside]));

        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let removed = runtime.block_on(store.remove_emptied_segments()).unwrap();
        assert_eq!(removed, 1, "the joined group no longer points into the log");
        assert_readable(&store, group.iter().chain([&inside]));
    }

    #[test]
    fn idempotency_key_follows_synced_groups() {
        let (_dir, store) = open_temp();
        let writes: Vec<_> = EventId::generate_run(2)
            .iter()
            .map(|id| write_with_id(id, 1_000))
            .collect();
        let idempotency = Idempotency {
            key: "retry-1",
            response: b"{}",
            fingerprint: b"f",
        };
        store.write_events(&writes, Some(idempotency)).unwrap();
        assert!(
            !store.event_log.has_unsynced(),
            "the groups are synced before the key is written"
        );
    }

    #[test]
    fn newer_format_keeps_the_event_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let store = Store::open(&path).unwrap();
            let writes: Vec<_> = EventId::generate_run(2)
                .iter()
                .map(|id| write_with_id(id, 1_000))
                .collect();
            store.write_events(&writes, None).unwrap();
            store
                .meta
                .insert(
                    super::super::STORE_FORMAT_KEY,
                    &[super::super::STORE_FORMAT + 1],
                )
                .unwrap();
            store.db.flush().unwrap();
        }
        // A segment whose pointers only the newer build can read.
        let unknown = path
            .join(super::super::EVENT_LOG_DIR)
            .join("00000000000000000009.log");
        std::fs::write(&unknown, b"newer groups").unwrap();
        assert!(matches!(
            crate::store::reopen(&path),
            Err(StoreError::NewerFormat { .. })
        ));
        assert!(
            unknown.exists(),
            "a store this build cannot read keeps its log"
        );
        assert_eq!(segment_count(&path), 2);
    }

    #[test]
    fn corrupt_pointer_still_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let ids = EventId::generate_run(2);
        {
            let store = Store::open(&path).unwrap();
            let writes: Vec<_> = ids.iter().map(|id| write_with_id(id, 1_000)).collect();
            store.write_events(&writes, None).unwrap();
            let (key, _) = store.events.first().unwrap().unwrap();
            store.events.insert(key, &[0x80, 1, 2, 3][..]).unwrap();
            store.db.flush().unwrap();
        }
        let store = crate::store::reopen(&path).unwrap();
        let error = store.event_body(ids[0].as_str()).unwrap_err();
        assert!(
            error.to_string().contains("4 bytes, expected 25"),
            "{error}"
        );
    }
}
