//! Writing accepted events with their deliveries, reading them back, and pruning what is past
//! retention.

use belter_common::records::{AttemptTrigger, DeliveryStatus};
use belter_common::{DeliveryId, EndpointId, EventId, EventType};

use super::{due_key, DeliveryRecord, DueWork, EventRecord, IdempotencyRecord, Store, StoreError};
use crate::codec::{decode, encode};

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

/// A delivery's id, record and due entry, encoded; a deferred delivery has no due entry yet.
type EncodedDelivery<'a> = (&'a str, Vec<u8>, Option<Vec<u8>>);

/// An ingest request encoded for the store.
struct EncodedJob<'a> {
    events: Vec<(&'a str, Vec<u8>)>,
    deliveries: Vec<EncodedDelivery<'a>>,
    idempotency: Option<(&'a str, Vec<u8>)>,
}

impl<'a> EncodedJob<'a> {
    fn new(job: &IngestJob<'a>) -> Result<Self, StoreError> {
        let mut events = Vec::with_capacity(job.writes.len());
        let mut deliveries = Vec::new();
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
            events.push((event.id.as_str(), encode(&event_record)?));
            for (delivery, (_, work)) in write.deliveries.iter().zip(write.due_works()) {
                let due_key = (!delivery.deferred).then_some(work.due_key);
                deliveries.push((delivery.id.as_str(), encode(&work.record)?, due_key));
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
        Ok(Self {
            events,
            deliveries,
            idempotency,
        })
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
    pub(crate) fn due_works(&self) -> impl Iterator<Item = (&EndpointId, DueWork)> + '_ {
        self.deliveries.iter().map(|delivery| {
            let work = DueWork {
                delivery_id: delivery.id.clone(),
                due_key: due_key(
                    delivery.endpoint_id.as_str(),
                    self.event.created_at,
                    delivery.id.as_str(),
                ),
                record: new_delivery_record(&self.event, delivery),
                stored_attempt: false,
            };
            (&delivery.endpoint_id, work)
        })
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
    /// the events, then each delivery with its due entry, and the idempotency key last. A crash
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
        for (id, record) in &encoded.events {
            self.events.insert(id.as_bytes(), record.as_slice())?;
        }
        for (id, record, key) in &encoded.deliveries {
            self.deliveries.insert(id.as_bytes(), record.as_slice())?;
            if let Some(key) = key {
                self.due.insert(key.as_slice(), &[][..])?;
            }
        }
        if let Some((key, record)) = &encoded.idempotency {
            self.idempotency.insert(key.as_bytes(), record.as_slice())?;
        }
        Ok(IngestWrite::Written)
    }

    /// Reads one event.
    pub(crate) fn event(&self, id: &str) -> Result<Option<EventRecord>, StoreError> {
        match self.events.get(id.as_bytes())? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Removes events accepted before `cutoff_ms` with their deliveries, attempts and due
    /// entries, at most `max_events` of them per call so one sweep does not hold the store long.
    pub(crate) fn prune_before(
        &self,
        cutoff_ms: u64,
        max_events: usize,
    ) -> Result<Pruned, StoreError> {
        let mut pruned = Pruned::default();
        for entry in self.events.iter().take(max_events) {
            let (key, bytes) = entry?;
            let event: EventRecord = decode(&bytes)?;
            if event.created_at >= cutoff_ms {
                break;
            }
            for delivery_id in &event.deliveries {
                if self.remove_delivery(delivery_id)? {
                    pruned.pending += 1;
                }
                pruned.deliveries += 1;
            }
            // The event goes last, so a crash mid-way leaves it for the next sweep to finish.
            self.events.remove(key)?;
            pruned.events += 1;
        }
        Ok(pruned)
    }

    /// Removes a delivery with its attempts and queue entries. Returns whether it was still
    /// waiting for an attempt or in one.
    ///
    /// The record's status decides, not the due entry, because a new delivery that a ready lane
    /// keeps in memory has no entry yet.
    ///
    /// NOTE: an outcome written between the read of the record and its removal here is counted
    /// as ended by the outcome writer too, so the waiting count can drop twice in that window.
    fn remove_delivery(&self, delivery_id: &str) -> Result<bool, StoreError> {
        let Some(bytes) = self.deliveries.get(delivery_id.as_bytes())? else {
            return Ok(false);
        };
        let record: DeliveryRecord = decode(&bytes)?;
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
        self.deliveries.remove(delivery_id.as_bytes())?;
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
    use std::collections::HashSet;

    use super::*;
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
            .load_due(&delivery.endpoint_id, 1_000, 10, &HashSet::new())
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
}
